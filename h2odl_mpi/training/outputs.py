"""The files a training run writes when asked (model_out, summary_json, scoring_history,
export_weights_and_biases, checkpoints): checked before any data is read (writable, and
none of them an input or another output), written by rank 0 atomically, and a failed write,
whatever raises it, ends the job with one line naming the file and the cause.  A model that
cannot be written where asked is kept: in the run's final checkpoint, or written to a
fallback path (beside the requested one, else in the temporary directory) that the message
names."""
import csv
import errno
import fnmatch
import io
import json
import os
import tempfile

from h2odl_mpi.atomic import same_file, write_bytes
from h2odl_mpi.training.checkpoint_files import checkpoint_path, is_checkpoint_name
from h2odl_mpi.collectives import parallel
from h2odl_mpi.errors import UserError, agree, fail_alone
from h2odl_mpi.model.model_io import export_weights_and_biases, save_model

INPUTS = ("train", "validation", "checkpoint", "pretrained_autoencoder")
OUTPUTS = ("model_out", "summary_json", "scoring_history")


def check_outputs(params, comm, rank, owner=None, config_file=None):
    """Before the data is read: rank 0 makes sure no output would overwrite an input or
    another output, and that it can write where the run will write (checkpoint_dir, and the
    directories of model_out, summary_json, scoring_history), so that a mistake fails in
    seconds on every rank, not after the training.  Then `owner` (a
    checkpoint.CheckpointDirectory) takes the checkpoint directory's lock.  config_file: the
    --config file the parameters came from (an input too)."""
    err = None
    if rank == 0:
        err = output_conflict(params, config_file) or _unwritable(params)
    agree(comm, err)
    if owner is not None:
        owner.acquire(rank, params)


def _unwritable(params):
    """A UserError for the first place the run cannot write into, or None.  Nothing is
    created here (a refused run leaves no directory behind): a directory that is not there
    yet must be creatable, its nearest existing ancestor a directory this process can
    write in; the run makes it when it first writes there (checkpoint_dir when it takes its
    lock, the others with their files)."""
    places = [("checkpoint_dir", params.get("checkpoint_dir"))] + [
        (k, os.path.dirname(os.path.abspath(params[k]))) for k in OUTPUTS if params.get(k)]
    for name, d in places:
        if not d:
            continue
        where = existing_ancestor(d)
        try:
            if not os.path.isdir(where):
                raise NotADirectoryError(errno.ENOTDIR, f"{where} is not a directory")
            with tempfile.TemporaryFile(dir=where):
                pass
        except OSError as e:
            return UserError(f"{name}: cannot write into {d}: {e.strerror or e}")
    return None


def existing_ancestor(path):
    """`path` (absolute) if it exists, else its nearest ancestor that does."""
    path = os.path.abspath(path)
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def new_directories(path):
    """The directories making `path` would create: it and its missing ancestors, outermost first."""
    path, out = os.path.abspath(path), []
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        out.append(path)
        path = os.path.dirname(path)
    return out[::-1]


def missing_directories(params):
    """The directories the run's files would create (checkpoint_dir, the directories of the
    outputs and of cross-validation's files, and their missing ancestors), outermost first."""
    wanted = [params.get("checkpoint_dir")] + [os.path.dirname(os.path.abspath(params[k]))
                                               for k in OUTPUTS if params.get(k)]
    wanted += [os.path.dirname(os.path.abspath(p)) for _k, p in cross_validation_outputs(params)]
    found = {d for w in wanted if w for d in new_directories(w)}
    return sorted(found, key=lambda p: (p.count(os.sep), p))


def remove_empty(directories):
    """Remove those of `directories` (missing_directories' list) that are there and empty,
    deepest first: what a refused run made and left empty.  Failures are ignored."""
    for d in sorted(directories, key=lambda p: -p.count(os.sep)):
        try:
            os.rmdir(d)
        except OSError:
            pass


def output_conflict(params, config_file=None, n_folds=None):
    """A UserError for the first output that is, or would be read as, an input (compared
    by real path, and by os.path.samefile where both exist), that is another output, or
    that is one of the checkpoint files checkpoint_dir writes and prunes; else None.
    n_folds: the folds of a cross-validation with a fold_column (known once it is read)."""
    outs = [(k, params[k]) for k in OUTPUTS if params.get(k)]
    if params.get("export_weights_and_biases") and params.get("model_out"):
        outs.append(("export_weights_and_biases", params["model_out"] + ".weights"))
    outs += cross_validation_outputs(params, n_folds)
    ins = [(k, params[k]) for k in INPUTS if params.get(k)] + ([("config", config_file)] if config_file else [])
    dirs = [(k, params[k]) for k in ("checkpoint_dir", "resume") if params.get(k)]
    for i, (name, out) in enumerate(outs):
        if os.path.isdir(out) and name != "export_weights_and_biases":
            return UserError(f"{name} {out} is a directory: give a file name")
        if os.path.exists(out) and not os.path.isdir(out) and not os.path.isfile(out):
            return UserError(f"{name} {out} is not a regular file (a device or a FIFO is never written over)")
        for other, path in outs[:i]:
            if same_file(out, path):
                return UserError(f"{name} and {other} are the same file ({out}): give each output its own file")
        for iname, path in ins:
            why = _reads(iname, path, out)
            if why:
                return UserError(f"{name} {out} {why}: an output may not overwrite an input")
        for dname, d in dirs:
            if _checkpoint_file_of(out, d):
                return UserError(f"{name} {out} is a checkpoint file name in {dname} {d} (ckpt_<iteration>.h5, "
                                 "written and pruned by the run): give another name")
    return _checkpoint_dir_conflict(params.get("checkpoint_dir"), ins)


def cross_validation_outputs(params, n_folds=None):
    """(parameter, path) of the files cross-validation writes next to model_out: each fold's
    model <stem>_cv_<k><ext> (keep_cross_validation_models; as many as the folds, when
    known), <stem>_cv_holdout_predictions.csv, <stem>_cv_fold_assignment.csv."""
    out = params.get("model_out")
    if not out or not (params.get("nfolds") or params.get("fold_column")):
        return []
    stem, ext = os.path.splitext(out)
    n = n_folds or params.get("nfolds") or 0
    files = [("keep_cross_validation_models", f"{stem}_cv_{k}{ext or '.h5'}")
             for k in range(1, n + 1) if params.get("keep_cross_validation_models")]
    for key, name in (("keep_cross_validation_predictions", "holdout_predictions"),
                      ("keep_cross_validation_fold_assignment", "fold_assignment")):
        if params.get(key):
            files.append((key, f"{stem}_cv_{name}.csv"))
    return files


def _reads(iname, path, out):
    """How input `iname` at `path` would read or be the output `out`, or None."""
    if same_file(out, path):
        return f"is the same file as {iname} {path}"
    if iname in ("train", "validation"):  # a directory or a pattern of data files
        if os.path.isdir(path) and same_file(os.path.dirname(os.path.abspath(out)), path):
            return f"lies in the {iname} directory {path}, whose files are read as data"
        if any(c in path for c in "*?[") and not os.path.exists(path) and \
                fnmatch.fnmatch(os.path.abspath(out), os.path.abspath(path)):
            return f"matches the {iname} pattern {path}"
    return None


def _checkpoint_file_of(path, directory):
    """Whether `path` is named like a checkpoint (ckpt_<iteration>.h5) inside `directory`."""
    return is_checkpoint_name(path) and same_file(os.path.dirname(os.path.abspath(path)), directory)


def _checkpoint_dir_conflict(directory, ins):
    """An input that is the checkpoint directory or one of its checkpoint files."""
    if not directory:
        return None
    for iname, path in ins:
        if same_file(directory, path):
            return UserError(f"checkpoint_dir {directory} is the same as {iname} {path}: "
                             "checkpoints may not be written among the inputs")
        if _checkpoint_file_of(path, directory):
            return UserError(f"{iname} {path} is one of the checkpoint files that checkpoint_dir {directory} "
                             f"writes and prunes: continue with --resume {directory}, or copy it elsewhere first")
    return None


# ------------------------------------------------------------------------------ writing
def cause(error):
    """An exception as one short line: an OSError's reason, else its type and message."""
    if isinstance(error, OSError) and error.strerror:
        text = error.strerror
    else:
        text = f"{type(error).__name__}: {error}"
    text = " ".join(str(text).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _fail(comm, run, message):
    """End the job with `message` (errors.fail_alone); in an MPI job, whose ranks end
    at once, the checkpoint directory's lock goes first."""
    owner = getattr(run, "owner", None)
    if owner is not None and parallel(comm):
        owner.release()
    fail_alone(comm, message)


def write_alone(comm, what, write, *args, run=None, **kwargs):
    """Rank 0 writes a file while the other ranks are elsewhere: any failure (disk full,
    quota, read-only, a library's error) ends the job with one line naming the file and
    the cause instead of a traceback or a hang."""
    try:
        return write(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - whatever the library raises it as
        _fail(comm, run, f"{what}: cannot write: {cause(e)}")


def write_model(comm, path, run, model, state, importances=None, cross_validation=None):
    """The model file (a checkpoint too: `state` is the training state).  If it cannot be
    written, the model is kept elsewhere and the message says where."""
    progress = {"epochs": state["epochs"], "training_samples": state["samples"], "iterations": state["iteration"]}

    def write(where):
        """The model file at `where`."""
        save_model(where, run.network, model, run.info, run.params, progress, run.history, state=state,
                   importances=importances, cross_validation=cross_validation,
                   metrics=(getattr(run, "summary", None) or {}).get("metrics"))  # (the final model's)
    try:
        write(path)
    except Exception as e:  # noqa: BLE001 - HDF5 raises RuntimeError, ValueError, ...
        _fail(comm, run, f"{path}: cannot write: {cause(e)}{_rescue(path, run, state, write)}")


def _rescue(path, run, state, write):
    """Keep a model that could not be written to `path`: name the run's checkpoint of the
    same model, or write it to the first fallback path that takes it; what to add to the
    error message."""
    owner = getattr(run, "owner", None)
    if owner is not None and owner.written and path != owner.written[-1] and os.path.exists(owner.written[-1]):
        if owner.written[-1] == checkpoint_path(owner.directory, state["iteration"]) and state is run.state:
            return f"; the trained model is in the checkpoint {owner.written[-1]}"
    tried = []
    for where in fallback_paths(path):
        try:
            write(where)
        except Exception as e:  # noqa: BLE001 - try the next place
            tried.append(f"{where}: {cause(e)}")
            continue
        return f"; the trained model was written to {where} instead"
    return "; the trained model could not be kept (tried " + "; ".join(tried) + ")"


def fallback_paths(path):
    """Where a model that cannot be written to `path` goes instead, in order: beside it,
    then in the temporary directory ($TMPDIR), each name holding this process's id."""
    root, ext = os.path.splitext(os.path.basename(path))
    name = f"{root or 'model'}.rescued-{os.getpid()}{ext or '.h5'}"
    return [os.path.join(os.path.dirname(os.path.abspath(path)), name),
            os.path.join(tempfile.gettempdir(), f"h2odl_mpi-{name}")]


def write_results(comm, run, say):
    """Rank 0: every output file the parameters ask for."""
    params = run.params
    if params.get("model_out"):
        write_model(comm, params["model_out"], run, run.model, run.state, run.summary["variable_importances"],
                    cross_validation_of(run.summary))
        say(f"model written to {params['model_out']}")
        if params.get("export_weights_and_biases"):
            where = params["model_out"] + ".weights"
            write_alone(comm, where, export_weights_and_biases, where, run.network, run.model, run.info, run=run)
            say(f"weights and biases written to {where}/")
    if params.get("scoring_history") and run.history:
        write_alone(comm, params["scoring_history"], write_history, params["scoring_history"], run.history, run=run)
    if params.get("summary_json"):
        write_alone(comm, params["summary_json"], write_json, params["summary_json"], run.summary, run=run)


def cross_validation_of(summary):
    """What a model file keeps of a cross-validated run's summary (None without one)."""
    if "cross_validation_metrics_summary" not in summary:
        return None
    return {"metrics": summary["metrics"].get("cross_validation"),
            "metrics_summary": summary["cross_validation_metrics_summary"],
            "models": summary.get("cross_validation_models")}


def write_json(path, summary):
    """The summary as JSON, written atomically (its directory made if missing)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_bytes(path, json.dumps(summary, indent=2, default=float).encode())


def write_history(path, history):
    """The scoring history as CSV (one row an event, scalar columns), written atomically."""
    keys = []
    for row in history:
        keys += [k for k in row if k not in keys and not isinstance(row[k], (list, dict))]
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    w.writerows(history)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_bytes(path, text.getvalue().encode())
    return keys
