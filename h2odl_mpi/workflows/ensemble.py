"""Ensembles of a search's best models: their predictions averaged, as one model file.

    mpirun -n 4 python -m h2odl_mpi ensemble --search DIR --top 5 --model_out E.h5 \
        [--weights equal|fitted] [--data VALID] [--threads T]

or `build_ensemble(search_dir, top, model_out, weights="equal", data=None, comm=None)`.  The
members are the first `top` finished models of DIR's leaderboard (best first; earlier
ensembles left out).  The ensemble predicts the weighted mean of their predictions: class
probabilities (each member's corrected for balance_classes) or regression values in the
response's units; autoencoders are refused, and so are members whose response, classes or
kind differ from the best member's (the message names the model).

Weights (non-negative, normalised to sum 1):
- equal: 1/K each.
- fitted: H2O's stacked-ensemble metalearner with non_negative=true, as non-negative least
  squares without an intercept: minimise sum_i w_i ||sum_k a_k p_k(i) - t(i)||^2 over a >= 0,
  p_k(i) member k's prediction of row i, t(i) its target: for regression the response, for
  classification the one-hot vector of the true class with every class's probability a row
  of the problem (the per-class stacked form: the Brier score of the combined
  probabilities), w_i the row weights (weights_column).  Solved on the K x K normal
  equations (G = A'WA, c = A'Wt: sums over the rows, added in rank order over the ranks, so
  every rank solves the same problem): with scipy.optimize.nnls on a square root of G when
  scipy is there, else Lawson and Hanson's active-set algorithm on G in numpy
  (`nnls_weights`).  The solution is then divided by its sum (all zero: equal weights).
  The rows fitted on, first that applies: `data` (--data); the members' cross-validation
  holdout predictions (<model>_cv_holdout_predictions.csv, keep_cross_validation_predictions)
  when every member has them, with the targets of the training file (predictions no member
  made on rows it trained on, as H2O's stacked ensembles use them); the search's validation
  data (the members' parameter `validation`).  Without any of them, fitted is refused.

The ensemble's metrics join its members' in the leaderboard, as the row `ensemble_top<K>`
(status done, `members`, `weights`): on the search's validation data (scored as `evaluate`
scores the ensemble file), on the combined cross-validation holdout predictions when the
members have them, else on the training data.  Metrics on the data the weights were fitted
on flatter the ensemble a little (K weights fitted).  The record is kept in DIR/ensembles.json
(one per K: building ensemble_top<K> again replaces it), which the leaderboard merges
(leaderboard.rows), so a search continued later keeps the row; leaderboard.json and .csv are
rewritten; the ensemble file and these three are written together, all or none
(write_together); best_model.h5 stays the best single model.  DIR/search.lock is held
while the ensemble is built: a running search is not raced.

The file (docs/model_format.md, "Ensembles"): plain HDF5, format h2odl_mpi-ensemble-1, each
member's model file image as bytes plus the weights, written here; `predict`, `evaluate` and
`predict.load_for_scoring` take it as a model (h2odl_mpi.evaluation.ensemble_model reads and
scores it: `load_ensemble` gives the same 5-tuple as model_io.load_model).

Distributed as `predict`: rank 0 checks the output, reads the leaderboard and the members'
files and sends their bytes to every rank; each rank scores its own rows; sums are combined
in rank order; rank 0 writes the file (atomically) and the leaderboard.  Errors are one line.
"""
import csv
import io
import json
import math
import os
import time

import h5py
import numpy as np

from h2odl_mpi.version import VERSION
from h2odl_mpi.atomic import LockFile, LockHeld, describe_owner, discard, fsync_dir, write_bytes
from h2odl_mpi.collectives import agreed_sum, bcast_bytes, bcast_obj, rank_and_size
from h2odl_mpi.errors import UserError, agree
from h2odl_mpi.evaluation.ensemble_model import FORMAT, check_members, load_member, scoring_parts, weighted_mean
from h2odl_mpi.evaluation.performance import TABLES, model_performance
from h2odl_mpi.evaluation.predict import check_output, gather_matrix, read_in_order, refuse_nan
from h2odl_mpi.evaluation.row_blocks import blocks, local_part
from h2odl_mpi.model.model_io import checked_dataset, content_crc, seal, unseal
from h2odl_mpi.threads import rank_threads
from h2odl_mpi.workflows.cross_validation import Predictions, holdout_metrics
from h2odl_mpi.workflows.search import leaderboard
from h2odl_mpi.workflows.search.leaderboard import ENSEMBLES_FILE, json_value
from h2odl_mpi.workflows.search.search_dir import SearchDirectory

WEIGHTS = ("equal", "fitted")
HOLDOUT_SUFFIX = "_cv_holdout_predictions.csv"
_str = h5py.string_dtype()


# ------------------------------------------------------------------------------ the file

def ensemble_image(members, weights, method, fitted_on=None, metrics_by_data=None):
    """The ensemble file's bytes (HDF5, docs/model_format.md "Ensembles")."""
    image = io.BytesIO()
    info = members[0].info
    with h5py.File(image, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["ensemble"] = "weighted_mean"   # (what it is: its members' predictions averaged)
        f.attrs["software_version"] = VERSION
        f.attrs["kind"] = info.kind
        f.attrs["response"] = info.response
        f.attrs["domain"] = json.dumps(list(info.domain))
        f.attrs["weights_method"] = method
        f.attrs["fitted_on"] = fitted_on or ""
        g = f.create_group("ensemble")
        checked_dataset(g, "weights", np.asarray(weights, dtype=np.float64))
        checked_dataset(g, "model_ids", np.array([m.model_id for m in members], dtype=object), dtype=_str)
        mg = g.create_group("members")
        for i, m in enumerate(members):
            ds = checked_dataset(mg, f"member_{i}", np.frombuffer(m.image, dtype=np.uint8))
            ds.attrs["model_id"] = m.model_id
        if metrics_by_data:
            xg = f.create_group("metrics")
            for name, m in metrics_by_data.items():
                if m:
                    checked_dataset(xg, name, json.dumps(m, default=json_value), dtype=_str)
        f.attrs["content_crc32"] = content_crc(f)
    return seal(image.getvalue())


# ------------------------------------------------------------------------------ weights

def nnls_weights(gram, c, use_scipy=None):
    """Non-negative a minimising a'Ga - 2c'a, i.e. ||Aa - b||^2 with G = A'A, c = A'b.
    scipy.optimize.nnls on (R, d), R'R = G and R'd = c (from G's eigenvalues; G may be
    singular, e.g. for equal members), when scipy is there (use_scipy None) or asked for;
    else Lawson and Hanson's active-set algorithm on G itself (numpy)."""
    gram = np.asarray(gram, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    gram = (gram + gram.T) / 2
    if use_scipy is None or use_scipy:
        try:
            from scipy.optimize import nnls
        except ImportError:
            if use_scipy:
                raise
        else:
            r, d = _square_root(gram, c)
            if r.shape[0] == 0:
                return np.zeros(len(c))
            return np.maximum(nnls(r, d, maxiter=50 * len(c) + 100)[0], 0.0)
    return _nnls_gram(gram, c)


def _square_root(gram, c):
    """(R, d) with R'R = G and R'd = c on G's range (small eigenvalues dropped)."""
    s, v = np.linalg.eigh(gram)
    top = float(s.max()) if s.size else 0.0
    keep = s > max(top, 0.0) * len(c) * 1e-13 if top > 0 else np.zeros(len(s), dtype=bool)
    root = np.sqrt(s[keep])
    return root[:, None] * v[:, keep].T, (v[:, keep].T @ c) / root


def _nnls_gram(gram, c, max_iter=None):
    """Lawson-Hanson NNLS on the normal equations: the passive set P grows by the
    coordinate of the largest positive gradient c - Ga; a least-squares solve on P
    (min-norm, G_PP may be singular) that leaves P's orthant is cut back to it."""
    k = len(c)
    scale = max(float(np.abs(gram).max(initial=0.0)), float(np.abs(c).max(initial=0.0)), 1e-300)
    tol = 1e-12 * scale * max(k, 1)
    a = np.zeros(k)
    passive = np.zeros(k, dtype=bool)
    for _ in range(max_iter or 3 * k + 30):
        grad = c - gram @ a
        free = ~passive & (grad > tol)
        if not free.any():
            break
        passive[int(np.argmax(np.where(free, grad, -np.inf)))] = True
        for _inner in range(3 * k + 30):
            z = np.zeros(k)
            idx = np.flatnonzero(passive)
            z[idx] = np.linalg.lstsq(gram[np.ix_(idx, idx)], c[idx], rcond=None)[0]
            if np.all(z[idx] > 0):
                a = z
                break
            neg = passive & (z <= 0)
            step = np.min(a[neg] / np.where(a[neg] - z[neg] != 0, a[neg] - z[neg], np.inf))
            a = a + step * (z - a)
            passive &= a > tol / scale
            a[~passive] = 0.0
            if not passive.any():
                break
    return np.maximum(a, 0.0)


def normalised(a):
    """Weights divided by their sum; all zero (or not finite): equal weights."""
    a = np.asarray(a, dtype=np.float64)
    total = float(a.sum())
    if not math.isfinite(total) or total <= 0:
        return np.full(len(a), 1.0 / len(a))
    return a / total


def normal_equations(outputs, y, w, classification):
    """(G, c) of the rows with a target: G[k, j] = sum_i w_i <p_k(i), p_j(i)>, c[k] =
    sum_i w_i <p_k(i), t(i)>, t(i) the one-hot true class (classification) or the response."""
    k = len(outputs)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    ok = ~np.isnan(y)
    wv = np.ones(int(ok.sum())) if w is None else np.asarray(w, dtype=np.float64).reshape(-1)[ok]
    gram, c = np.zeros((k, k)), np.zeros(k)
    p = [np.asarray(o, dtype=np.float64)[ok] for o in outputs]
    p = [x if x.ndim == 2 else x[:, None] for x in p]
    for i in range(k):
        for j in range(i, k):
            gram[i, j] = gram[j, i] = float(np.sum(wv * np.sum(p[i] * p[j], axis=1)))
        if classification:
            c[i] = float(np.sum(wv * p[i][np.arange(len(wv)), y[ok].astype(np.int64)]))
        else:
            c[i] = float(np.sum(wv * p[i][:, 0] * y[ok]))
    return gram, c


def fit_weights(gram, c, use_scipy=None):
    """Normalised non-negative weights from the summed normal equations."""
    return normalised(nnls_weights(gram, c, use_scipy))


# ------------------------------------------------------------------------------ building

def build_ensemble(search_dir, top, model_out, weights="equal", data=None, comm=None, threads=None,
                   say=print):
    """Collective over `comm`: the ensemble of the top `top` finished models of the search
    in `search_dir`, written to `model_out` (rank 0), its row added to the leaderboard.
    Returns its record (model_id, members, weights, metrics, ...) on every rank."""
    t0 = time.time()
    rank = rank_and_size(comm)[0]
    if weights not in WEIGHTS:
        raise UserError(f"--weights: must be one of {', '.join(WEIGHTS)}, not {weights!r}")
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise UserError(f"--top: must be a whole number of models >= 1, not {top!r}")
    top = int(top)
    err, plan, images, lock = None, None, [], None
    if rank == 0:
        try:
            lock = _lock(search_dir)
            plan, images = _plan(search_dir, top, model_out, data, weights)
        except Exception as e:  # noqa: BLE001 - reported on every rank by agree()
            err = e
    try:
        agree(comm, err)
        plan = bcast_obj(comm, plan)
        images = [bcast_bytes(comm, images[i] if rank == 0 else b"") for i in range(len(plan["ids"]))]
        members = [load_member(mid, img, f"{path} ({mid})")
                   for mid, img, path in zip(plan["ids"], images, plan["paths"])]
        check_members(members)
        ens = _Build(members, plan, comm, threads)
        w, fitted_on = ens.weights(weights, data)
        scores = ens.metrics(w, data)
        rec = _record(plan, members, w, weights, fitted_on, scores, top, time.time() - t0)
        err = None
        if rank == 0:
            try:
                files = {model_out: ensemble_image(members, w, weights, fitted_on, scores)}
                files.update(_board_files(search_dir, rec))
                write_together(files, {model_out: "--model_out "})
            except Exception as e:  # noqa: BLE001
                err = e
        agree(comm, err, own_first=True)
    finally:
        if lock is not None:
            lock.release()
    if rank == 0 and say:
        src = next((s for s in ("cross_validation", "validation", "training") if scores.get(s)), None)
        shown = f"; {src} {_short_metrics(scores[src])}" if src else ""
        say(f"ensemble: {rec['model_id']} of {', '.join(rec['members'])}, weights "
            f"{', '.join(f'{x:.4g}' for x in w)} ({weights}{' on ' + fitted_on if fitted_on else ''}){shown}; "
            f"written to {model_out}")
    return rec


def _lock(search_dir):
    if not os.path.isdir(search_dir):
        raise UserError(f"--search {search_dir}: no such search directory")
    try:
        return LockFile(os.path.join(search_dir, "search.lock")).acquire()
    except LockHeld as e:
        raise UserError(f"--search {search_dir} is in use by a running search: {describe_owner(e.owner)} "
                        f"(lock file {e.path}); build the ensemble when it has ended") from None
    except OSError as e:
        raise UserError(f"--search {search_dir}: cannot lock it: {e.strerror or e}") from None


def _plan(search_dir, top, model_out, data, weights):
    """(rank 0) The members (ids, paths), the data they name, checked outputs; their bytes."""
    board = _read_board(search_dir)
    records = {r.get("model_id"): r for r in SearchDirectory(search_dir).finished().values()}
    done = [r for r in board if r.get("status") == "done" and not r.get("members")]
    if len(done) < top:
        raise UserError(f"--top {top}: the leaderboard of {search_dir} has {len(done)} finished model(s)")
    ids, paths, images = [], [], []
    for row in done[:top]:
        mid = row["model_id"]
        path = _model_file(search_dir, row, records.get(mid))
        ids.append(mid)
        paths.append(path)
        try:
            with open(path, "rb") as fh:
                images.append(fh.read())
        except OSError as e:
            raise UserError(f"{path}: cannot read the model file of {mid}: {e.strerror or e}") from None
    params = _params_of(images[0], paths[0])
    holdouts = [os.path.splitext(p)[0] + HOLDOUT_SUFFIX for p in paths]
    plan = {"ids": ids, "paths": paths, "search_dir": search_dir, "model_out": model_out,
            "train": params.get("train"), "validation": params.get("validation") or None,
            "holdouts": holdouts if all(os.path.isfile(h) for h in holdouts) else None}
    inputs = [(f"{mid} model", p) for mid, p in zip(ids, paths)]
    inputs += [(name, os.path.join(search_dir, name)) for name in
               ("leaderboard.json", "leaderboard.csv", "best_model.h5", ENSEMBLES_FILE, "search.json")]
    inputs += [(opt, p) for opt, p in (("--data", data), ("validation", plan["validation"]),
                                       ("train", plan["train"])) if p]
    inputs += [("holdout predictions", h) for h in plan["holdouts"] or []]
    check_output(model_out, inputs, "--model_out")
    for name in (ENSEMBLES_FILE, "leaderboard.json", "leaderboard.csv"):  # (the search's files it rewrites)
        check_output(os.path.join(search_dir, name), (), "--search")
    if weights == "fitted" and not (data or plan["holdouts"] or plan["validation"]):
        raise UserError("--weights fitted: no data to fit on: give --data, or search with validation data or "
                        "keep_cross_validation_predictions")
    return plan, images


def _read_board(search_dir):
    path = os.path.join(search_dir, "leaderboard.json")
    try:
        with open(path, encoding="utf-8") as fh:
            board = json.load(fh)
    except FileNotFoundError:
        raise UserError(f"--search {search_dir}: no leaderboard.json (has the search run there?)") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read the leaderboard: {e}") from None
    if not isinstance(board, list):
        raise UserError(f"{path}: not a leaderboard (a list of rows)")
    return board


def _model_file(search_dir, row, rec):
    """A member's model file: its record's path (relative to the search directory), else
    the row's, else models/<id>/model.h5."""
    tries = []
    if rec and rec.get("model_path"):
        tries.append(os.path.join(search_dir, rec["model_path"]))
    if row.get("model_path"):
        tries.append(row["model_path"])
    tries.append(os.path.join(search_dir, "models", row["model_id"], "model.h5"))
    for path in tries:
        if os.path.isfile(path):
            return path
    raise UserError(f"{row['model_id']}: its model file is not there ({tries[0]})")


def _params_of(image, path):
    image = unseal(image, path)  # (its seal checked before HDF5 parses a byte)
    try:
        with h5py.File(io.BytesIO(image), "r") as f:
            return json.loads(f.attrs["parameters"])
    except Exception as e:  # noqa: BLE001
        raise UserError(f"{path}: cannot read the model's parameters (damaged or not a model file?): {e}") from None


class _Build:
    """The collective steps of building an ensemble: weights, metrics."""

    def __init__(self, members, plan, comm, threads):
        self.members, self.plan, self.comm, self.threads = members, plan, comm, threads
        self.info = members[0].info
        self.frames = {}
        self._holdouts = None

    # ---- data and the members' predictions (collective) ----------------------------------
    def frame(self, path):
        if path not in self.frames:
            self.frames[path] = read_in_order(path, self.comm)
        return self.frames[path]

    def frame_outputs(self, path):
        """(each member's outputs, y, w) of this rank's rows of the labelled file."""
        frame = self.frame(path)
        if self.info.response not in frame.names:
            raise UserError(f"{path}: no response column {self.info.response!r}: the ensemble needs the labels")
        net, _w, info = scoring_parts(self.members, np.ones(len(self.members)) / len(self.members))
        info.check_finite(frame, response=True)
        rows = info.rows(frame, training=False)
        pick, first = local_part(frame, self.comm)
        threads = rank_threads(self.threads, self.comm)
        if pick is None:
            outs = net.member_outputs(rows, threads)
        else:
            parts = [net.member_outputs(rows.dense_subset(idx), threads) for idx in blocks(pick)]
            outs = [np.concatenate([p[k] for p in parts]) for k in range(len(self.members))]
        for o in outs:
            refuse_nan(self.comm, o, first, path)
        if self.info.classification:
            y = rows.y
        else:
            y = frame.decode(self.info.response)
        y = np.asarray(y, dtype=np.float64) if pick is None else np.asarray(y, dtype=np.float64)[pick]
        w = rows.weight if rows.weight is None or pick is None else rows.weight[pick]
        return outs, y, None if w is None else np.asarray(w, dtype=np.float64)

    def holdout_outputs(self):
        """(each member's holdout predictions, y, w): every row on rank 0, none elsewhere."""
        if self._holdouts is None:
            self._holdouts = self._read_holdouts()
        return self._holdouts

    def _read_holdouts(self):
        frame = self.frame(self.plan["train"])
        if self.info.response not in frame.names:
            raise UserError(f"{self.plan['train']}: no response column {self.info.response!r}")
        rows = self.info.rows(frame, training=False)
        pick, _first = local_part(frame, self.comm)
        y = rows.y if self.info.classification else frame.decode(self.info.response)
        w = np.ones(rows.n_rows) if rows.weight is None else rows.weight
        yw = np.column_stack([np.asarray(y, np.float64), np.asarray(w, np.float64)])
        yw = gather_matrix(self.comm, yw if pick is None else yw[pick])
        err, outs = None, [np.zeros((0, self.info.n_classes)) for _ in self.members]
        if yw is not None:
            try:
                outs = [_read_holdout(h, self.info, len(yw)) for h in self.plan["holdouts"]]
            except UserError as e:
                err = e
        agree(self.comm, err)
        if yw is None:
            yw = np.zeros((0, 2))
        return outs, yw[:, 0], (None if self.info.weights_column is None else yw[:, 1])

    # ---- weights ---------------------------------------------------------------------------
    def weights(self, method, data):
        k = len(self.members)
        if method == "equal":
            return np.full(k, 1.0 / k), None
        if data:
            outs, y, w = self.frame_outputs(data)
            on = data
        elif self.plan["holdouts"]:
            outs, y, w = self.holdout_outputs()
            on = "cross-validation holdout predictions"
        else:
            outs, y, w = self.frame_outputs(self.plan["validation"])
            on = self.plan["validation"]
        gram, c = normal_equations(outs, y, w, self.info.classification)
        total = agreed_sum(self.comm, np.concatenate([gram.ravel(), c]))
        return fit_weights(total[:k * k].reshape(k, k), total[k * k:]), on

    # ---- metrics ---------------------------------------------------------------------------
    def metrics(self, weights, data):
        """The ensemble's metrics by data set: validation (the search's validation data),
        cross_validation (combined holdout predictions), else training."""
        out = {}
        if self.plan["validation"]:
            out["validation"] = self.file_metrics(self.plan["validation"], weights)
        if self.plan["holdouts"]:
            outs, y, w = self.holdout_outputs()
            out["cross_validation"] = self.holdout_metrics(outs, y, w, weights)
        if not out:
            out["training"] = self.file_metrics(self.plan["train"], weights)
        return out

    def file_metrics(self, path, weights):
        net, model, info = scoring_parts(self.members, weights)
        perf = model_performance(net, model, info, self.frame(path), self.comm, self.threads,
                                 params=self.members[0].params, auc_type="NONE")
        return {k: v for k, v in sorted(perf.as_dict().items())
                if k not in TABLES and k not in ("model_category", "domain", "gini", "multinomial_auc_type")}

    def holdout_metrics(self, outs, y, w, weights):
        combined = weighted_mean(outs, weights)
        if not self.info.classification:
            combined = combined[:, 0]
        m0 = self.members[0]
        delta = m0.network.config.huber_delta
        delta = None if delta is None or self.info.classification else delta * self.info.response_sd
        pred = Predictions(np.arange(len(y)), combined, y, w)
        return dict(sorted(holdout_metrics(self.info, m0.params, pred, self.comm, delta).items()))


def _read_holdout(path, info, n_rows):
    """A member's holdout predictions CSV (predict's columns, a row per training row) as
    (n, K) probabilities or (n, 1) values."""
    want = ["predict"] + ([f"p{d}" for d in info.domain] if info.classification else [])
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            head = next(reader, None)
            if head != want:
                raise UserError(f"{path}: holdout predictions with columns {head}, expected {want}")
            cols = slice(1, None) if info.classification else slice(0, 1)
            values = np.array([[float(v) for v in row[cols]] for row in reader], dtype=np.float64)
    except OSError as e:
        raise UserError(f"{path}: cannot read the holdout predictions: {e.strerror or e}") from None
    except ValueError as e:
        raise UserError(f"{path}: holdout predictions that are not numbers: {e}") from None
    if len(values) != n_rows:
        raise UserError(f"{path}: {len(values):,} holdout predictions for {n_rows:,} training rows")
    return values.reshape(n_rows, -1)


def _record(plan, members, w, method, fitted_on, scores, top, wall):
    return {"index": 10 ** 9 + top, "model_id": f"ensemble_top{top}", "status": "done",
            "kind": members[0].info.kind, "params": {}, "metrics": scores,
            "model_path": os.path.relpath(os.path.abspath(plan["model_out"]), os.path.abspath(plan["search_dir"])),
            "members": [m.model_id for m in members], "weights": [float(x) for x in w],
            "weights_method": method, "fitted_on": fitted_on, "wall_time_s": wall, "finished": time.time()}


def _board_files(search_dir, rec):
    """(rank 0) {path: bytes} of the search's files the ensemble's row changes: DIR/ensembles.json
    with the record (replacing one of the same id), and the leaderboard made from it."""
    ensembles = [r for r in leaderboard.read_ensembles(search_dir) if r.get("model_id") != rec["model_id"]]
    ensembles.append(rec)
    sort_by, hyper = leaderboard.layout_of(_read_board(search_dir))
    records = list(SearchDirectory(search_dir).finished().values())
    board = leaderboard.rows(records, sort_by, search_dir, hyper, ensembles=ensembles)
    files = {os.path.join(search_dir, ENSEMBLES_FILE): json.dumps(ensembles, indent=1, default=json_value).encode()}
    files.update({os.path.join(search_dir, name): text.encode()
                  for name, text in leaderboard.texts(board, hyper).items()})
    return files


def write_together(files, options=None):
    """{path: bytes} written all or none: each to a temporary file beside its path first (a
    failure leaves every path as it was and no temporary file), then each renamed over its
    path.  A failure is a UserError naming the file (after options.get(path), e.g. the
    flag that named it)."""
    staged = []
    try:
        for path, data in files.items():
            tmp = f"{path}.new{os.getpid()}"
            try:
                write_bytes(tmp, data)
            except OSError as e:
                raise UserError(f"{(options or {}).get(path, '')}{path}: cannot write: {e.strerror or e}") from None
            staged.append((tmp, path))
        for tmp, path in staged:
            os.replace(tmp, path)
            fsync_dir(path)
    finally:
        for tmp, _path in staged:
            discard(tmp)


def _short_metrics(m):
    keys = ("logloss", "classification_error", "auc", "rmse", "mean_residual_deviance")
    return " ".join(f"{k} {m[k]:.6g}" for k in keys if isinstance(m.get(k), (int, float)))


# ------------------------------------------------------------------------------ the command

def add_arguments(parser):
    parser.add_argument("--search", required=True, metavar="DIR", help="a search directory (grid --search_dir)")
    parser.add_argument("--top", type=int, required=True, metavar="K", help="the best K finished models")
    parser.add_argument("--model_out", "--model-out", dest="model_out", required=True, metavar="FILE",
                        help="the ensemble's model file (HDF5) to write")
    parser.add_argument("--weights", default="equal", choices=WEIGHTS,
                        help="equal, or fitted: non-negative least squares on held-out predictions")
    parser.add_argument("--data", default=None, metavar="FILE",
                        help="labelled data to fit the weights on (default: the members' holdout predictions, "
                             "else the search's validation data)")
    parser.add_argument("--threads", type=int, default=0, help="kernel threads (0: all cores)")


def run(ns, comm):
    """The subcommand on every rank of `comm` (--threads checked by the CLI); exit status 0."""
    build_ensemble(ns.search, ns.top, ns.model_out, ns.weights, ns.data, comm, threads=ns.threads or None)
    return 0
