"""The files a training run writes when asked (model_out, summary_json, scoring_history,
export_weights_and_biases): checked writable before any data is read, written by rank 0
atomically, and a failed write ends the job with one line naming the file."""
import csv
import json
import os
import tempfile

from h2odl_mpi.atomic import replacing
from h2odl_mpi.errors import UserError, agree, fail_alone
from h2odl_mpi.model_io import export_weights_and_biases, save_model


def check_outputs(params, comm, rank):
    """Before the data is read: rank 0 makes sure it can write where the run will write
    (checkpoint_dir, and the directories of model_out, summary_json, scoring_history), so
    that a typo fails in seconds on every rank, not after the training."""
    err = None
    if rank == 0:
        places = [("checkpoint_dir", params.get("checkpoint_dir"))] + [
            (k, os.path.dirname(os.path.abspath(params[k]))) for k in ("model_out", "summary_json", "scoring_history")
            if params.get(k)]
        for name, d in places:
            if not d:
                continue
            try:
                os.makedirs(d, exist_ok=True)
                with tempfile.TemporaryFile(dir=d):
                    pass
            except OSError as e:
                err = UserError(f"{name}: cannot write into {d}: {e.strerror or e}")
                break
    agree(comm, err)


def write_alone(comm, what, write, *args, **kwargs):
    """Rank 0 writes a file while the other ranks are elsewhere: a failure (disk full, quota)
    ends the job with a message naming the file instead of a traceback or a hang."""
    try:
        return write(*args, **kwargs)
    except OSError as e:
        fail_alone(comm, f"{what}: cannot write: {e.strerror or e}")


def write_model(comm, path, run, model, state, importances=None):
    """The model file (a checkpoint too: `state` is the training state)."""
    write_alone(comm, path, save_model, path, run.network, model, run.info, run.params,
                {"epochs": state["epochs"], "training_samples": state["samples"],
                 "iterations": state["iteration"]}, run.history, state=state, importances=importances)


def write_results(comm, run, say):
    """Rank 0: every output file the parameters ask for."""
    params = run.params
    if params.get("model_out"):
        write_model(comm, params["model_out"], run, run.model, run.state, run.summary["variable_importances"])
        say(f"model written to {params['model_out']}")
        if params.get("export_weights_and_biases"):
            where = params["model_out"] + ".weights"
            write_alone(comm, where, export_weights_and_biases, where, run.network, run.model, run.info)
            say(f"weights and biases written to {where}/")
    if params.get("scoring_history") and run.history:
        write_alone(comm, params["scoring_history"], write_history, params["scoring_history"], run.history)
    if params.get("summary_json"):
        write_alone(comm, params["summary_json"], write_json, params["summary_json"], run.summary)


def write_json(path, summary):
    with replacing(path) as tmp, open(tmp, "w") as f:
        json.dump(summary, f, indent=2, default=float)


def write_history(path, history):
    keys = []
    for row in history:
        keys += [k for k in row if k not in keys and not isinstance(row[k], (list, dict))]
    with replacing(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(history)
    return keys
