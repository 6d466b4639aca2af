"""`predict`: score a data file with a saved model and write a predictions CSV; and
`predict_frame`, the same on a Frame for the Python API.

What comes out (H2O's columns):
- classification: `predict` (the class label) and one probability column per class, p<class>.
  With two classes the label is class 1 when p1 >= the model's threshold, as H2O labels:
  the max-F1 threshold of the final model's validation metrics when it had validation
  data, else of its training metrics (`default_threshold`, from the metrics the model
  file keeps); 0.5 when the model holds none.  Without a threshold (predict_frame's
  default) the larger probability wins.
- regression: `predict`, in the response's units.
- autoencoder: `reconstr_<input>` per input unit, numeric inputs back in the data's units
  (H2O's predict on an autoencoder); one-hot units as the network gives them.
- anomaly (autoencoders): `Reconstruction.MSE`, the per-row mean squared reconstruction
  error over the input units (in the network's normalised units, as H2O); with per_feature
  the squared error of each unit, `reconstr_<input>.SE` (their mean is the MSE).
- deepfeatures K: the activations of hidden layer K (0-based), `DF.L<K+1>.C<j>`.

Distributed: every rank reads its own share of the file (Frame.read(..., comm)), scores it
(the kernel's threads in parallel) and formats its rows as CSV text; rank 0 writes its
rows, then each other rank's, in rank order, received in pieces of at most 16 MiB
(point-to-point numpy byte buffers), into a temporary file renamed over `--out` at the end.
The ranks' shares are contiguous runs of the input in order except when several ranks read
one compressed file block by block in turn (frame/sharding.py, "strided"): then every rank
reads the whole file (replicated) and scores its own contiguous run of rows.  Rows come
out in the input's order either way, the same bytes as on one rank.

Nothing is written silently wrong: the output path is checked before any scoring (not a
directory, in a writable directory, not the data or model file itself, not inside a data
directory or matching a data pattern), a model with non-finite weights and data with Inf or
overflowing values are refused, and so is a NaN prediction, naming its row; a failed write
names the file and leaves no partial file.
"""
import csv
import fnmatch
import io
import math
import os

import numpy as np

from h2odl_mpi.atomic import discard, ensure_space, fsync_dir, same_file, write_bytes
from h2odl_mpi.collectives import (allgather_counts, allgather_values, bcast_bytes, gather_to_root,
                                   parallel, rank_and_size)
from h2odl_mpi.errors import UserError, agree
from h2odl_mpi.data.frame import Frame
from h2odl_mpi.model.model_io import load_model, read_file
from h2odl_mpi.evaluation.ensemble_model import is_ensemble, load_ensemble
from h2odl_mpi.evaluation.row_blocks import local_part, per_feature_errors, score_rows
from h2odl_mpi.threads import rank_threads

KINDS = ("predict", "anomaly", "deepfeatures", "reconstruction")
GATHER = ("root", "all", "none")
_PIECE = 1 << 24        # bytes of CSV text per message to rank 0
_GATHER_VALUES = 1 << 24  # numbers per rank per gather round (predict_frame)
_TAG = 7301


# ------------------------------------------------------------------------------ the command

def predict_file(model_path, data_path, out_path, comm=None, threads=None, anomaly=False,
                 deepfeatures=None, per_feature=False, reconstruction=False, na_strings=None):
    """The `predict` command (collective over `comm`): `out_path` written by rank 0.
    Returns this rank's (header, values) rows.  `na_strings`: H2O-3's parse option (values
    missing in the data file besides the defaults)."""
    kind = "anomaly" if anomaly else "deepfeatures" if deepfeatures is not None else \
        "reconstruction" if reconstruction else "predict"
    flags = {"kind": f"--{kind}", "layer": "--deepfeatures", "per_feature": "--per_feature"}
    network, model, info, params, attrs = load_for_scoring(
        model_path, comm, outputs=[("--out", out_path)],
        inputs=[("--data", data_path), ("--model", model_path)])
    _check_kind(network, info, kind, per_feature, deepfeatures, flags, model_path)
    frame = read_in_order(data_path, comm, na_strings=na_strings)
    threshold = model_threshold(attrs, params) if info.n_classes == 2 else None
    header, numbers, convert = _local_predictions(network, model, info, frame, comm, threads, kind,
                                                  per_feature, deepfeatures, threshold,
                                                  f"; nothing written to {out_path}")
    values = convert(numbers) if convert else numbers
    write_csv_ranks(comm, out_path, header, values)
    return header, values


def load_for_scoring(model_path, comm=None, outputs=(), inputs=()):
    """Collective: rank 0 checks the output files (`outputs`: (option, path) pairs, against
    the `inputs` pairs, check_output) and reads the model file, which every rank then loads
    from those bytes; a model with non-finite weights is refused.  Returns load_model's
    (network, model, info, params, attrs) on every rank; for an ensemble file
    ensemble_model.load_ensemble's, which predict_frame and model_performance score the same way."""
    err, image = None, b""
    if rank_and_size(comm)[0] == 0:
        try:
            for option, path in outputs:
                check_output(path, inputs, option)
            image = read_file(model_path)
        except Exception as e:  # noqa: BLE001 - reported on every rank by agree()
            err = e
    agree(comm, err)
    image = bcast_bytes(comm, image)
    if is_ensemble(image):  # its members' weighted mean, scored like one model
        return load_ensemble(model_path, image=image)
    network, model, info, params, attrs = load_model(model_path, image=image)
    if not np.all(np.isfinite(model[:network.n_params])):
        raise UserError(f"{model_path}: the model's weights are not all finite (a diverged model)")
    return network, model, info, params, attrs


def read_in_order(path, comm=None, na_strings=None):
    """The data file as a Frame whose ranks' rows, rank after rank, are the file's rows in
    order: distributed (each rank its share), or replicated where the ranks would read
    blocks in turn (one compressed file on several ranks), predict_frame then giving each
    rank a contiguous run.  Collective.  `na_strings`: H2O-3's parse option."""
    if parallel(comm) and _would_stride(path, comm):
        return Frame.read(path, comm=comm, replicate=True, na_strings=na_strings)
    frame = Frame.read(path, comm=comm, na_strings=na_strings)
    if parallel(comm) and not (frame.ingest or {}).get("file_order", True):
        return Frame.read(path, comm=comm, replicate=True, na_strings=na_strings)  # (not foreseen: read again)
    return frame


def _would_stride(path, comm):
    """Whether a distributed read of `path` would share blocks in turn (not file order)."""
    from h2odl_mpi.data.frame.readers import resolve
    from h2odl_mpi.data.frame.sharding import plan_text_shard
    rank, size = rank_and_size(comm)
    return plan_text_shard(resolve(path, comm), rank, size, False).mode == "strided"


# ------------------------------------------------------------------------------ the API

def predict_frame(network, model, info, frame, comm=None, threads=None, kind="predict",
                  per_feature=False, layer=None, gather="root", threshold=None):
    """Predictions for a Frame (collective over `comm`, by default the frame's): (header,
    values).  kind: "predict", "anomaly" (per_feature: each unit's squared error),
    "deepfeatures" (hidden `layer`, 0-based) or "reconstruction" (autoencoders; what
    "predict" gives for them).  threshold: the two-class labelling threshold (None: the
    larger probability; default_threshold() gives a model file's, as H2O).  gather: "root"
    (rank 0 gets all rows in the frame's order, the others None), "all" (every rank), or
    "none" (each rank its own rows).  values: a 2-D numpy array, float64, or object
    (labels, then probabilities) for classification."""
    if gather not in GATHER:
        raise UserError(f"gather: must be one of {', '.join(GATHER)}, not {gather!r}")
    comm = frame.comm if comm is None else comm
    _check_kind(network, info, kind, per_feature, layer, {"kind": f"kind={kind!r}", "layer": "layer",
                                                          "per_feature": "per_feature"})
    header, numbers, convert = _local_predictions(network, model, info, frame, comm, threads, kind,
                                                  per_feature, layer, threshold)
    if gather != "none":
        numbers = gather_matrix(comm, numbers, gather == "all")
    return header, None if numbers is None else convert(numbers) if convert else numbers


def _check_kind(network, info, kind, per_feature, layer, names, model_path=None):
    """UserError naming the option when `kind` does not suit the model."""
    where = f"{model_path}: " if model_path else ""
    if kind not in KINDS:
        raise UserError(f"kind: must be one of {', '.join(KINDS)}, not {kind!r}")
    if getattr(network, "is_ensemble", False) and (kind != "predict" or per_feature):
        raise UserError(f"{where}{names['kind']}: an ensemble gives its members' averaged predictions only")
    if kind in ("anomaly", "reconstruction") and not info.autoencoder:
        raise UserError(f"{where}{names['kind']} needs an autoencoder model")
    if per_feature and kind != "anomaly":
        raise UserError(f"{names['per_feature']}: only with anomaly (per-feature reconstruction errors)")
    if kind == "deepfeatures":
        n_hidden = network.n_layers - 1
        if not n_hidden:
            raise UserError(f"{names['kind']}: the model has no hidden layer (hidden=[])")
        if layer is None or not 0 <= int(layer) < n_hidden:
            raise UserError(f"{names['layer']}: the model has hidden layers 0..{n_hidden - 1}")


def _local_predictions(network, model, info, frame, comm, threads, kind, per_feature, layer,
                       threshold, nan_suffix=""):
    """_predictions' (header, numbers, convert) of this rank's rows after the collective
    checks: finite data, no NaN prediction."""
    info.check_finite(frame, response=False)
    rows = info.rows(frame, training=False)
    pick, first = local_part(frame, comm)
    threads = rank_threads(threads, comm)
    header, numbers, convert = _predictions(network, model, info, rows, pick, threads, kind,
                                            per_feature, layer, threshold)
    refuse_nan(comm, numbers, first, frame.source or "data", nan_suffix)
    return header, numbers, convert


def _predictions(network, model, info, rows, pick, threads, kind, per_feature, layer, threshold):
    """(header, float64 numbers of this rank's rows, None or a function turning them into
    the values written)."""
    if kind == "anomaly" and per_feature:
        return ([f"reconstr_{n}.SE" for n in info.input_names],
                per_feature_errors(network, model, rows, threads, pick), None)
    if kind == "anomaly":
        return ["Reconstruction.MSE"], score_rows(network, model, rows, "recon", threads, pick), None
    if kind == "deepfeatures":
        values = score_rows(network, model, rows, "hidden", threads, pick, layer=int(layer))
        return [f"DF.L{int(layer) + 1}.C{j + 1}" for j in range(values.shape[1])], values, None
    out = score_rows(network, model, rows, "output", threads, pick)
    if info.autoencoder:
        return [f"reconstr_{n}" for n in info.input_names], unscale_reconstruction(info, out), None
    if info.classification:
        prob = info.correct_probabilities(out)
        numbers = np.column_stack([class_labels(prob, threshold), prob])
        return ["predict"] + [f"p{d}" for d in info.domain], numbers, lambda m: _with_labels(info, m)
    return ["predict"], info.decode_response(out[:, :1].astype(np.float64)), None


def class_labels(prob, threshold=None):
    """Predicted class indices: with 2 classes and a threshold, class 1 iff p1 >= threshold
    (H2O); otherwise the most probable class (the first on ties)."""
    if prob.shape[1] == 2 and threshold is not None and math.isfinite(threshold):
        return (prob[:, 1] >= threshold).astype(np.int64)
    return prob.argmax(1) if len(prob) else np.zeros(0, dtype=np.int64)


def _with_labels(info, numbers):
    """[label, p...] object rows from [class index, p...] numbers."""
    labels = np.array(info.domain, dtype=object)[numbers[:, 0].astype(np.int64)]
    return np.column_stack([labels, numbers[:, 1:].astype(object)]) if len(numbers) else \
        np.zeros((0, numbers.shape[1]), dtype=object)


# ------------------------------------------------------------------------------ scoring

def unit_scaling(info):
    """(sub, mul) per input unit such that unit = (value - sub) * mul (one-hot and hashed
    units: 0, 1)."""
    sub, mul = np.zeros(info.n_inputs), np.ones(info.n_inputs)
    for col in info.columns:
        if col.kind == "binary":
            sub[col.input:col.input + col.width] = col.bit_sub
            mul[col.input:col.input + col.width] = col.bit_mul
        elif col.kind in ("numeric", "label"):
            sub[col.input], mul[col.input] = col.sub, col.mul
    return sub, mul


def unscale_reconstruction(info, out):
    """An autoencoder's output back in the inputs' units (numeric, label and binary units)."""
    sub, mul = unit_scaling(info)
    return np.asarray(out, dtype=np.float64) / mul + sub


def refuse_nan(comm, numbers, first_row, source, suffix=""):
    """Collective: UserError naming the first NaN prediction's data row (global, 1-based)."""
    bad = np.flatnonzero(np.isnan(numbers).any(axis=1)) if numbers.ndim == 2 else np.zeros(0, int)
    found = allgather_values(comm, np.array([first_row + bad[0] if bad.size else -1, bad.size], np.float64))
    found = found.reshape(-1, 2)
    hits = found[found[:, 0] >= 0]
    if len(hits):
        raise UserError(f"{source}: the prediction for data row {int(hits[:, 0].min()) + 1:,} is NaN "
                        f"({int(found[:, 1].sum()):,} rows in all){suffix}")


def model_threshold(attrs, params):
    """The two-class threshold a loaded model labels with: a MOJO's default_threshold, else
    default_threshold() of the model file's metrics and history."""
    if "mojo_threshold" in attrs:
        return float(attrs["mojo_threshold"])
    return default_threshold(attrs.get("history"), params, attrs.get("metrics"))


def default_threshold(history, params, metrics=None):
    """H2O's default threshold of a two-class model (Model.Output.defaultThreshold): the
    max-F1 threshold of the final model's validation metrics, else of its training metrics;
    0.5 without (an ensemble: of its validation, else cross-validation metrics).  `metrics`:
    the final model's, as the model file keeps them; files written before it kept none: then
    the final model is found in the scoring history: the last one scored, or, with
    overwrite_with_best_model, the best scored one where it beats the last (the trainer's
    rule, scoring.BestModel)."""
    for name in ("validation", "cross_validation", "training"):  # (cross_validation: ensembles only)
        t = ((metrics or {}).get(name) or {}).get("threshold")
        if _finite(t):
            return float(t)
    history = list(history or [])
    prefix = "validation_" if any(_finite(r.get("validation_threshold")) for r in history) else "training_"
    scored = [{k[len(prefix):]: v for k, v in r.items() if k.startswith(prefix)} for r in history]
    scored = [m for m in scored if "threshold" in m]
    if not scored:
        return 0.5
    final = scored[-1]
    if (params or {}).get("overwrite_with_best_model", True):
        from h2odl_mpi.evaluation.stopping import best_model_metric, h2o_loss
        metric = best_model_metric("classification", (params or {}).get("stopping_metric", "AUTO"))
        best, best_loss = None, math.nan
        for m in scored:
            loss = h2o_loss(m, metric)
            if not math.isnan(loss) and (best is None or loss < best_loss):
                best, best_loss = m, loss
        last = h2o_loss(final, metric)
        if best is not None and (math.isnan(last) or best_loss < last):
            final = best
    t = final.get("threshold")
    return float(t) if _finite(t) else 0.5


def _finite(v):
    return isinstance(v, (int, float)) and math.isfinite(v)


# ------------------------------------------------------------------------------ gathering

def gather_matrix(comm, m, to_all=False):
    """Every rank's (n_r, k) float64 rows in rank order: on rank 0 (None elsewhere), or on
    every rank; in rounds of at most _GATHER_VALUES numbers per rank."""
    m = np.ascontiguousarray(m, dtype=np.float64)
    if not parallel(comm):
        return m
    k = m.shape[1]
    counts = allgather_counts(comm, m.shape[0])
    step = max(1, _GATHER_VALUES // max(k, 1))
    pieces = [[] for _ in counts]
    for start in range(0, max(counts), step):
        part = m[start:start + step]
        sizes = [max(0, min(step, c - start)) for c in counts]
        got = allgather_values(comm, part.reshape(-1)).reshape(-1, k) if to_all else \
            gather_to_root(comm, part)
        if got is not None:
            for r, piece in enumerate(np.split(got, np.cumsum(sizes)[:-1])):
                pieces[r].append(piece)
    if not to_all and rank_and_size(comm)[0] != 0:
        return None
    flat = [p for per_rank in pieces for p in per_rank]
    return np.concatenate(flat) if flat else np.zeros((0, k))


# ------------------------------------------------------------------------------ outputs

def check_output(path, inputs=(), option="--out"):
    """UserError naming `option` unless `path` can be written: not a directory or a device,
    its directory there and writable, not one of `inputs` ((option, path) pairs) itself, nor
    in a data directory or matching a data pattern."""
    target = os.path.abspath(path)
    if os.path.isdir(target):
        raise UserError(f"{option} {path}: is a directory")
    if os.path.exists(target) and not os.path.isfile(target):  # a device or FIFO: never renamed over
        raise UserError(f"{option} {path}: is not a regular file")
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        raise UserError(f"{option} {path}: no such directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        read_only = bool(os.statvfs(parent).f_flag & os.ST_RDONLY)
        raise UserError(f"{option} {path}: cannot write in {parent} "
                        f"({'read-only file system' if read_only else 'permission denied'})")
    for name, other in inputs:
        if os.path.exists(target) and same_file(target, other):
            raise UserError(f"{option} {path}: is the {name} file: it would be overwritten")
        if os.path.isdir(other) and same_file(parent, other):
            raise UserError(f"{option} {path}: lies in the {name} directory {other}, whose files are read")
        if any(c in str(other) for c in "*?[") and not os.path.exists(other) and \
                fnmatch.fnmatch(target, os.path.abspath(other)):
            raise UserError(f"{option} {path}: matches the {name} pattern {other}")


def csv_text(header, values):
    """The CSV text (bytes) of `values`' rows, headed by `header` unless it is None."""
    text = io.StringIO(newline="")
    w = csv.writer(text)
    if header is not None:
        w.writerow(header)
    w.writerows(values.tolist())
    return text.getvalue().encode()


def write_csv(path, header, values):
    """The CSV, written whole (a temporary file renamed over `path`) or not at all."""
    try:
        write_bytes(path, csv_text(header, values))
    except OSError as e:
        raise UserError(f"--out {path}: cannot write: {e.strerror or e}") from None


def write_csv_ranks(comm, path, header, values):
    """Collective: the CSV of every rank's rows, rank after rank, written by rank 0 whole or
    not at all; each rank formats its own rows and sends the text in pieces."""
    if not parallel(comm):
        return write_csv(path, header, values)
    rank, size = rank_and_size(comm)
    text = csv_text(header if rank == 0 else None, values)
    sizes = allgather_counts(comm, len(text))
    sink = _Sink(path, sum(sizes)) if rank == 0 else None
    agree(comm, sink.error if sink else None, own_first=True)  # no room, cannot create: before any text moves
    if rank == 0:
        sink.write(text)
        for r in range(1, size):
            _receive(comm, r, sizes[r], sink)
        sink.close()
    else:
        _send(comm, text)
    agree(comm, sink.error if sink else None, own_first=True)


def _send(comm, text):
    data = np.frombuffer(text, dtype=np.uint8)
    for start in range(0, len(data), _PIECE):
        comm.Send(data[start:start + _PIECE], dest=0, tag=_TAG)


def _receive(comm, source, n, sink):
    buf = np.empty(min(n, _PIECE), dtype=np.uint8)
    while n > 0:
        piece = buf[:min(n, _PIECE)]
        comm.Recv(piece, source=source, tag=_TAG)
        sink.write(piece)        # (after a failure it only drains: the senders never hang)
        n -= len(piece)


class _Sink:
    """Rank 0's temporary file beside `path`, renamed over it by close(); the first failure
    is kept as a UserError naming the file, the temporary file removed, and later writes
    are dropped (the other ranks' text is still received: they never hang)."""

    def __init__(self, path, nbytes):
        self.path, self.tmp, self.fd, self.error = path, f"{path}.tmp{os.getpid()}", None, None
        try:
            ensure_space(os.path.dirname(os.path.abspath(path)), nbytes)
            self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        except OSError as e:
            self._fail(e)

    def write(self, data):
        view = memoryview(data).cast("B")
        done = 0
        while self.error is None and done < view.nbytes:
            try:
                done += os.write(self.fd, view[done:done + (1 << 26)])
            except OSError as e:
                self._fail(e)

    def close(self):
        if self.error is not None:
            return
        try:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = None
            os.replace(self.tmp, self.path)
            fsync_dir(self.path)
        except OSError as e:
            self._fail(e)

    def _fail(self, e):
        if self.error is None:
            self.error = UserError(f"--out {self.path}: cannot write: {e.strerror or e}")
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None
        discard(self.tmp)
