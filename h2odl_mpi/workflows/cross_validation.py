"""N-fold cross-validation, as H2O-3 does it (ModelBuilder.computeCrossValidation).

`train_or_cross_validate` (what the command line, the estimators and the searches call)
comes here when nfolds >= 2 or a fold_column is given, and trains one model with
training.trainer.train otherwise.  A cross-validation:

1. Folds: every training row gets a fold by its global row index (folds.py: Modulo,
   Random, Stratified, or the fold column's values), the same for any number of ranks.
2. Fold models: one per fold, trained on the rows outside the fold, with the run's seed;
   its validation rows are its fold (H2O's fold models have their holdout as validation
   frame: it drives their early stopping and best model).  The user's validation frame is
   the main model's only.  Each fold model's data description (standardisation, levels) is
   fitted on the whole training frame (H2O weights its means and SDs to the fold's rows).
3. Holdout predictions: each fold's rows predicted by its model, every rank its own rows
   (of a replicated frame: its share); they are combined, exactly over the ranks, into the
   cross-validation metrics (metrics.py, the names of the training metrics), and each
   fold's metrics into H2O's summary table: per metric the mean, the sd (n - 1, H2O's
   SimpleStats; NaN folds left out) and cv_<k>_valid, fold k's value.
4. The main model on all rows (trainer.train with the results), adjusted as H2O's Deep
   Learning does: overwrite_with_best_model false; with early stopping (stopping_rounds)
   or max_runtime_secs, the fold models' mean epochs and neither of the two.  The fold
   models share max_runtime_secs as H2O does: the budget over the rounds of fold models
   plus one.

Distribution: with at least as many ranks as folds, the folds train side by side on
sub-communicators (comm.Split): nfolds groups of r = size // nfolds ranks (ranks
0..r-1 fold 1, ...); the size - r * nfolds last ranks wait for the folds (a group of
another size would change its fold model).  Otherwise, or with side_by_side=False, the
folds train one after another on all ranks.  A fold model depends only on its number of
ranks and the seed, so the two ways give the same results for the same ranks per fold
model (bit for bit with reproducible=true).  Replicated frames hold the same rows on any
communicator and are shared; sharded ones are read again by each group.  A single
compressed file read block by block by several ranks has no file order, so its folds
train one after another on the frames as read.

Files (next to model_out, checked with the others before anything is read): each fold's
model <stem>_cv_<k><ext> (keep_cross_validation_models, written by the first rank of its
group), <stem>_cv_holdout_predictions.csv (keep_cross_validation_predictions: the columns
of `predict`, a row per training row in file order) and <stem>_cv_fold_assignment.csv
(keep_cross_validation_fold_assignment: fold_assignment, 0-based, H2O's column).  Fold
models write no checkpoints: with checkpoint_dir only the main model is checkpointed, and
a resumed run trains the fold models again.
"""
import csv
import io
import os
import time
from dataclasses import dataclass

import numpy as np

from h2odl_mpi.data import folds as F
from h2odl_mpi.evaluation import metrics
from h2odl_mpi.atomic import write_bytes
from h2odl_mpi.collectives import allgather_obj, allgather_values, gather_to_root, rank_and_size, split
from h2odl_mpi.errors import UserError, agree
from h2odl_mpi.data.frame import Frame
from h2odl_mpi.model.model_io import save_model
from h2odl_mpi.training.model_setup import run_seed
from h2odl_mpi.training.outputs import (cause, check_outputs, cross_validation_outputs, missing_directories,
                                       output_conflict, remove_empty)
from h2odl_mpi.data.preprocess import Preprocess
from h2odl_mpi.training.reporting import Reporter, fmt_metrics
from h2odl_mpi.training.scoring import weighted_quantile
from h2odl_mpi.threads import threads_per_rank
from h2odl_mpi.training.trainer import check_frames, read_data, train

_NOT_IN_TABLE = ("nobs", "threshold")  # (H2O's table leaves out row counts; the threshold is no metric)


@dataclass
class CrossValidation:
    """The results the main model carries (reporting.with_cross_validation)."""
    metrics: dict      # of the combined holdout predictions
    table: dict        # metric -> {"mean", "sd", "cv_1_valid", ...}
    models: list       # per fold: fold, holdout_rows, training_rows, epochs, stop_reason, model_file


@dataclass
class Predictions:
    """Holdout predictions of this rank's rows: global row index, output (class
    probabilities (n, K), or the prediction in the response's units), target, weight."""
    index: np.ndarray
    out: np.ndarray
    y: np.ndarray
    w: np.ndarray = None

    @staticmethod
    def join(parts, info, weighted):
        """The parts in one (an empty one, shaped for `info`, without parts)."""
        if parts:
            w = None if parts[0].w is None else np.concatenate([p.w for p in parts])
            return Predictions(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("index", "out", "y")), w)
        out = np.zeros((0, info.n_classes)) if info.classification else np.zeros(0)
        return Predictions(np.zeros(0, dtype=np.int64), out, np.zeros(0), np.zeros(0) if weighted else None)


@dataclass
class Layout:
    """How this rank takes part in the fold models."""
    group: object          # the communicator of its fold models (None: alone or idle)
    folds: list            # the folds it trains (0-based)
    ranks: int             # ranks per fold model
    side_by_side: bool
    lead: bool             # the first rank of its fold models' ranks (it reports their results)


def wants_cross_validation(params):
    """Whether the parameters ask for a cross-validation (nfolds or fold_column)."""
    return bool(params.get("nfolds") or params.get("fold_column"))


def train_or_cross_validate(params, comm=None, stop=None, combiner=None, config_file=None, data=None):
    """The run `params` asks for, collective over `comm`: one model (trainer.train), or with
    nfolds or fold_column a cross-validation and its main model (cross_validate).  Returns
    the (main) model's TrainingRun; the other arguments are train()'s.  A run that fails
    (refused: bad data, a checkpoint it cannot continue, ...) leaves none of the
    directories its outputs would have made (checkpoint_dir's, made when its lock is taken,
    before the data is read): rank 0 removes those still empty."""
    made = missing_directories(params) if rank_and_size(comm)[0] == 0 else []
    try:
        if wants_cross_validation(params):
            return cross_validate(params, comm, stop=stop, combiner=combiner, config_file=config_file, data=data)
        return train(params, comm, stop=stop, combiner=combiner, config_file=config_file, data=data)
    except Exception:
        remove_empty(made)
        raise


def cross_validate(params, comm=None, stop=None, combiner=None, config_file=None, data=None,
                   side_by_side=None):
    """Cross-validation, then the main model (collective over `comm`); returns the main
    model's TrainingRun, whose summary holds the cross-validation's results.  The other
    arguments are train()'s (`combiner` is the main model's; the fold models take the
    parameters' rule).  side_by_side=False trains the folds one after another on all ranks
    even when there are enough ranks to train them side by side."""
    t0, (rank, size) = time.time(), rank_and_size(comm)
    report = Reporter(params, rank)
    check_outputs(params, comm, rank, None, config_file)  # the main model's files and cross-validation's
    frame, vframe = check_frames(params, *data) if data is not None else read_data(params, comm)
    if params.get("fold_column") and params["fold_column"] not in frame.names:
        raise UserError(f"fold_column: no column named {params['fold_column']!r} in {params['train']}")
    params = dict(params, seed=run_seed(params, comm, None), ignored_columns=_ignored(params))
    info = Preprocess.fit(frame, params)  # (the classes, and the data's faults found before any fold)
    folds = F.assign(params, frame, info)
    agree(comm, output_conflict(params, config_file, folds.n_folds) if rank == 0 else None)
    layout = _layout(comm, folds.n_folds, frame, side_by_side)
    report.say(_plan_line(folds, layout, size))
    runs = _fold_models(params, comm, layout, frame, folds, info, report)
    cv, mine = _combine(params, comm, info, runs, layout)
    if layout.side_by_side:
        for m in cv.models:  # (each fold's metrics: the table's cv_<k>_valid column)
            scores = {name: row[f"cv_{m['fold']}_valid"] for name, row in cv.table.items()}
            report.say(_fold_line(m, scores, folds.n_folds, info))
    _keep_files(params, comm, info, folds, mine, frame.replicated)
    report.say(f"cross-validation done in {time.time() - t0:.1f}s; the main model trains on all "
               f"{frame.n_rows:,} rows")
    return train(main_params(params, cv.models, report.say), comm, stop=stop, combiner=combiner,
                 config_file=config_file, data=(frame, vframe), cross_validation=cv)


def _ignored(params):
    """ignored_columns with the fold column: never an input."""
    ignored = list(params.get("ignored_columns") or [])
    column = params.get("fold_column")
    return ignored + [column] if column and column not in ignored else ignored


def _layout(comm, n_folds, frame, side_by_side):
    """Side by side on groups of size // n_folds ranks when there are enough ranks (and the
    frame is in file order), else one after another on all of them."""
    rank, size = rank_and_size(comm)
    in_order = frame.replicated or bool((frame.ingest or {}).get("file_order", True))
    if side_by_side is False or size < n_folds or not in_order:
        return Layout(comm, list(range(n_folds)), size, False, rank == 0)
    r = size // n_folds
    color = rank // r if rank < r * n_folds else None
    group = split(comm, color, rank)
    if color is None:
        return Layout(None, [], r, True, False)
    return Layout(group, [color], r, True, group.Get_rank() == 0)


def fold_params(params, rounds, threads):
    """A fold model's parameters (H2O's cv_makeFramesAndBuilders): not folded itself, its
    fold as validation, no files, quiet, the threads of the whole run's ranks, and a share
    of max_runtime_secs (the budget over `rounds` of fold models plus the main model)."""
    p = dict(params, nfolds=0, fold_column=None, fold_assignment="AUTO", validation=None, model_out=None,
             summary_json=None, scoring_history=None, checkpoint_dir=None, resume=None,
             export_weights_and_biases=False, keep_cross_validation_predictions=False,
             keep_cross_validation_fold_assignment=False, quiet_mode=True, threads=threads)
    if params["max_runtime_secs"] > 0:
        p["max_runtime_secs"] = params["max_runtime_secs"] / (rounds + 1)
    return p


def main_params(params, models, say):
    """The main model's parameters, as H2O's Deep Learning sets them after its fold models
    (DeepLearning.cv_computeAndSetOptimalParameters): overwrite_with_best_model false; with
    early stopping or max_runtime_secs, the fold models' mean epochs and neither of them."""
    p = dict(params, overwrite_with_best_model=False)
    if params["stopping_rounds"] == 0 and params["max_runtime_secs"] == 0:
        return p
    epochs = float(np.mean([m["epochs"] for m in models]))
    say(f"cross-validation: the main model trains {epochs:.6g} epochs (the fold models' mean) without "
        "early stopping or max_runtime_secs, as H2O does")
    return dict(p, epochs=epochs, stopping_rounds=0, max_runtime_secs=0.0)


def _threads(params, comm):
    """Kernel threads per rank of the whole run (a group alone would count the node's cores
    for itself); a refused count fails every rank together."""
    threads, err = None, None
    try:
        threads = threads_per_rank(params, comm)
    except UserError as e:
        err = e
    agree(comm, err)
    return threads


def _fold_models(params, comm, layout, frame, folds, info, report):
    """This rank's fold models, trained, predicted and scored (a list of dicts, each with
    `result` and `predictions`); a failure in any group fails every rank."""
    threads, runs, err = _threads(params, comm), [], None
    try:
        if layout.group is not None or not layout.side_by_side:
            gframe, gfolds = _fold_data(params, layout, frame, folds, info)
            rounds = 1 if layout.side_by_side else folds.n_folds
            for j in layout.folds:
                runs.append(_fold_model(params, layout.group, gframe, gfolds, j, fold_params(params, rounds, threads)))
                if not layout.side_by_side:
                    report.say(_fold_line(runs[-1]["result"], runs[-1]["result"]["metrics"], folds.n_folds, info))
    except Exception as e:  # noqa: BLE001 - reported on every rank by agree()
        err = e
    finally:
        if layout.side_by_side and layout.group is not None:
            layout.group.Free()
    agree(comm, err, own_first=True)
    return runs


def _fold_data(params, layout, frame, folds, info):
    """The training frame and its folds on this rank's fold communicator: the run's own
    (one after another, or replicated: the same rows on any communicator), else read again
    on the group (in file order, so the rows keep their global indices and folds)."""
    if not layout.side_by_side or frame.replicated:
        return frame, folds
    gframe, _ = check_frames(params, Frame.read(params["train"], comm=layout.group, replicate=False), None)
    return gframe, F.assign(params, gframe, info)


def _fold_model(params, group, frame, folds, j, fparams):
    """Fold j's model over `group`: trained, its holdout rows predicted and scored, kept."""
    hold = F.holdout(folds, j, frame, group)
    run = train(fparams, group, data=(frame, frame), holdout=hold)
    pred = predict_holdout(run, frame, hold)
    m = holdout_metrics(run.info, params, pred, group, _huber_delta(run))
    result = {"fold": j + 1, "holdout_rows": folds.sizes[j], "training_rows": hold.n_train,
              "epochs": float(run.history[-1]["epochs"] if run.history else run["epochs"]),
              "stop_reason": run["stop_reason"], "model_file": _keep_model(params, group, run, j), "metrics": m}
    return {"result": result, "predictions": pred}


def _huber_delta(run):
    """The fold model's Huber delta in the response's units (as Scorer scores it)."""
    delta = run.network.config.huber_delta
    return None if delta is None or run.info.classification else delta * run.info.response_sd


def predict_holdout(run, frame, hold):
    """The fold rows this rank scores (hold.mine), predicted by the fold model: the kernel's
    prediction of the frame's rows, as Scorer makes it (probabilities corrected for
    balance_classes; regression in the response's units)."""
    info = run.info
    rows = info.rows(frame, training=False)
    pick = np.flatnonzero(hold.mine)
    out = run.network.predict(run.model, rows, "output", threads=run["threads_per_rank"])[pick]
    y = rows.y[pick].astype(np.float64)
    w = None if rows.weight is None else rows.weight[pick].astype(np.float64)
    if info.classification:
        out = np.asarray(info.correct_probabilities(out), dtype=np.float64)
    else:
        out, y = info.decode_response(out[:, 0].astype(np.float64)), info.decode_response(y)
    return Predictions(F.global_rows(frame)[pick], out, y, w)


def holdout_metrics(info, params, pred, comm, huber_delta=None):
    """H2O's metrics of holdout predictions, each rank passing its own, combined exactly
    over `comm` (collective): the metrics training reports (Scorer.score's arguments)."""
    if info.classification:
        return metrics.classification_metrics(pred.out, pred.y, pred.w, comm=comm)
    dist = params["distribution"] if params["distribution"] not in ("AUTO", "bernoulli") else "gaussian"
    return metrics.regression_metrics(pred.out, pred.y, pred.w, comm=comm, distribution=dist,
                                      tweedie_power=params["tweedie_power"], quantile_alpha=params["quantile_alpha"],
                                      huber_delta=huber_delta)


def _keep_model(params, group, run, j):
    """keep_cross_validation_models: the fold model's file (rank 0 of its group writes),
    or None; a failed write fails the group."""
    files = [path for key, path in cross_validation_outputs(params, j + 1) if key == "keep_cross_validation_models"]
    if not files:
        return None
    path, err = files[j], None
    if rank_and_size(group)[0] == 0:
        st = run.state
        try:
            save_model(path, run.network, run.model, run.info, run.params,
                       {"epochs": st["epochs"], "training_samples": st["samples"], "iterations": st["iteration"]},
                       run.history, state=st, importances=run.summary["variable_importances"])
        except Exception as e:  # noqa: BLE001 - HDF5 and the disk raise many kinds
            err = UserError(f"keep_cross_validation_models: {path}: cannot write: {cause(e)}")
    agree(group, err, own_first=True)
    return path


def _combine(params, comm, info, runs, layout):
    """The cross-validation's results, the same on every rank, and this rank's holdout
    predictions (of every fold it trained)."""
    mine = Predictions.join([r["predictions"] for r in runs], info, params.get("weights_column") is not None)
    delta = None
    if not info.classification and params["distribution"] == "huber":  # the holdout residuals' (H2O)
        ok = ~np.isnan(mine.y)
        w = np.ones(int(ok.sum())) if mine.w is None else mine.w[ok]
        delta = weighted_quantile(allgather_values(comm, np.abs(mine.y[ok] - mine.out[ok])),
                                  allgather_values(comm, w), params["huber_alpha"])
    cv_metrics = holdout_metrics(info, params, mine, comm, delta)
    results = sorted((r for part in allgather_obj(comm, [r["result"] for r in runs] if layout.lead else [])
                      for r in part), key=lambda r: r["fold"])
    table = summary_table([r["metrics"] for r in results])
    return CrossValidation(cv_metrics, table, [{k: v for k, v in r.items() if k != "metrics"} for r in results]), mine


def summary_table(fold_metrics):
    """H2O's cross-validation metrics summary of the folds' metrics (in fold order): per
    scalar metric, sorted by name, the mean and sd (n - 1) over the folds where it is not
    NaN (sd 0 with one such fold), and each fold's value, cv_<k>_valid."""
    names = sorted({k for m in fold_metrics for k in metrics.scalar_metrics(m)} - set(_NOT_IN_TABLE))
    table = {}
    for name in names:
        values = np.array([float(m.get(name, np.nan)) for m in fold_metrics])
        ok = values[~np.isnan(values)]
        row = {"mean": float(ok.mean()) if ok.size else float("nan"),
               "sd": float(ok.std(ddof=1)) if ok.size > 1 else 0.0}
        row.update({f"cv_{k + 1}_valid": float(v) for k, v in enumerate(values)})
        table[name] = row
    return table


def _plan_line(folds, layout, size):
    """What rank 0 says before the fold models."""
    how = f"one after another on {size} rank(s)"
    if layout.side_by_side:
        idle = size - layout.ranks * folds.n_folds
        how = f"side by side, {layout.ranks} rank(s) each" + (f", {idle} rank(s) waiting" if idle else "")
    return f"cross-validation: {folds.n_folds} folds ({folds.how}) of {', '.join(map(str, folds.sizes))} rows, {how}"


def _fold_line(result, scores, n_folds, info):
    return (f"cross-validation model {result['fold']}/{n_folds}: {result['holdout_rows']:,} rows held out, "
            f"{result['epochs']:.4g} epochs, holdout {fmt_metrics(scores, info)}")


def _keep_files(params, comm, info, folds, mine, replicated):
    """keep_cross_validation_predictions and keep_cross_validation_fold_assignment: rank 0
    writes the CSVs, rows in global order; a failed write fails every rank."""
    files = dict(cross_validation_outputs(params, folds.n_folds))
    want_pred = "keep_cross_validation_predictions" in files
    want_fold = "keep_cross_validation_fold_assignment" in files
    pred = gather_to_root(comm, np.column_stack([mine.index, mine.out])) if want_pred else None
    fold = None
    if want_fold:  # (a replicated frame: rank 0 holds every row)
        fold = folds.fold[:, None] if replicated else gather_to_root(comm, folds.fold[:, None])
    err = None
    if rank_and_size(comm)[0] == 0:
        try:
            if want_pred:
                header, rows = _prediction_rows(pred, info)
                _write_csv(files["keep_cross_validation_predictions"], header, rows)
            if want_fold:
                _write_csv(files["keep_cross_validation_fold_assignment"], ["fold_assignment"],
                           fold.astype(np.int64).tolist())
        except Exception as e:  # noqa: BLE001 - whatever the disk raises
            err = UserError(f"cannot write the cross-validation files next to {params['model_out']}: {cause(e)}")
    agree(comm, err, own_first=True)


def _prediction_rows(pred, info):
    """predict's columns (predict, then p<level> per class) of the gathered predictions,
    in global row order."""
    pred = pred[np.argsort(pred[:, 0], kind="stable")]
    if not info.classification:
        return ["predict"], pred[:, 1:].tolist()
    prob = pred[:, 1:]
    labels = np.array(info.domain, dtype=object)[prob.argmax(1)] if len(prob) else np.zeros(0, dtype=object)
    return ["predict"] + [f"p{d}" for d in info.domain], np.column_stack([labels, prob.astype(object)]).tolist()


def _write_csv(path, header, rows):
    """A CSV written whole (atomically) or not at all (its directory made if missing)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    text = io.StringIO(newline="")
    w = csv.writer(text)
    w.writerow(header)
    w.writerows(rows)
    write_bytes(path, text.getvalue().encode())
