"""Checkpoints, restart and the batch system's warning signals (docs/model_format.md):
writing them, finding the one to continue from, and restoring a run's state from it (the
files' names, listing and pruning: training.checkpoint_files).

A checkpoint is a model file (h2odl_mpi.model.model_io) with the training state in /progress:
samples, iteration, epochs, the seed, every rank's numpy RNG state (JSON, no pickle).

- `--checkpoint_dir DIR`: rank 0 writes DIR/ckpt_<iteration, 9 digits>.h5 atomically every
  `--checkpoint_interval` (seconds, e.g. "600", or iterations, e.g. "100it"; "0": only at
  a signal and at the end), and keeps the newest `--checkpoint_keep` (default 3) of its own.
  The run owns DIR while it trains (CheckpointDirectory: the lock file DIR/.h2odl_mpi.lock,
  a second live run is refused); pruning removes only checkpoints of this run and of the
  runs it continues with `--resume DIR`, never another run's or a damaged file.
- `--checkpoint FILE` (H2O's name): continue the model in FILE; `--epochs` is the total.
- `--resume DIR`: continue from the newest valid checkpoint in DIR (damaged ones skipped
  with a warning), start fresh when there is none; checkpoints keep going to DIR.
- SIGTERM / SIGUSR1 (with a checkpoint directory): each rank stops training after its current
  block of rows (at most about 2 s of work, however long the iteration), the ranks average
  what they trained (weighted by their rows), rank 0 writes a checkpoint, and every rank
  exits with REQUEUE_EXIT_CODE.
- A rank that stops answering (`--stall_timeout`, training.watchdog): the leading healthy
  rank writes the last combined model it holds (LastCombined, kept after every iteration) as
  the checkpoint of that iteration, alone and atomically, and the job ends with
  REQUEUE_EXIT_CODE.  Such a checkpoint lacks the ranks' random streams (a collective would
  gather them): its resumed run draws new ones from the seed and the iteration.
"""
import json
import os
import signal
import sys
import threading
import time
import uuid

from h2odl_mpi.atomic import LockFile, LockHeld, describe_owner, discard, same_file, write_bytes
from h2odl_mpi.collectives import bcast_bytes, bcast_obj, gather_obj, rank_and_size
from h2odl_mpi.errors import REQUEUE_EXIT_CODE, UserError, agree
from h2odl_mpi.training.checkpoint_files import checkpoint_path, list_checkpoints, newest_valid, prune
from h2odl_mpi.training.outputs import write_model
from h2odl_mpi.params import parse_interval  # noqa: F401 - the checkpoint_interval parameter

# parameters that define the network, the response or the input layout: a checkpoint may
# not be continued with different values (everything else may change, as H2O allows:
# rates, regularisation, rows per iteration, scoring, ...).  ignored_columns may change as
# long as the inputs stay the same, which layout_differences checks.
FIXED = ("hidden", "activation", "response", "autoencoder", "standardize", "sparse",
         "categorical_encoding", "use_all_factor_levels", "max_categorical_features",
         "missing_values_handling", "weights_column", "offset_column", "ignore_const_cols",
         "loss", "distribution", "tweedie_power", "quantile_alpha", "huber_alpha",
         "balance_classes", "class_sampling_factors", "max_after_balance_size")

class TrainingInterrupted(Exception):
    """Training stopped on SIGTERM/SIGUSR1; `path` is the checkpoint written."""

    def __init__(self, path, signum):
        super().__init__(f"stopped by signal {signum}: checkpoint {path}; "
                         f"exit status {REQUEUE_EXIT_CODE} (requeue)")
        self.path, self.signum = path, signum


# what a --resume may change: it continues the same run (a requeued job), so only epochs
# (upward), the stopping and scoring settings that H2O lets a continued model change, and
# where the run writes and how many threads it runs (and how); any other difference is a new
# experiment, refused (resume_differences)
RESUME_MAY_CHANGE = frozenset((
    "epochs", "stopping_rounds", "stopping_metric", "stopping_tolerance", "max_runtime_secs",
    "classification_stop", "regression_stop", "score_interval", "score_training_samples",
    "score_validation_samples", "score_validation_sampling", "score_duty_cycle", "overwrite_with_best_model",
    "variable_importances", "quiet_mode", "threads", "thread_scheme", "model_out", "summary_json", "scoring_history",
    "export_weights_and_biases", "checkpoint", "resume", "checkpoint_dir", "checkpoint_interval",
    "checkpoint_keep", "keep_cross_validation_models", "keep_cross_validation_predictions",
    "keep_cross_validation_fold_assignment", "stall_timeout"))


def differences(old, new, names=FIXED):
    """Human-readable differences in the parameters `names` (by default FIXED) between a
    checkpoint's params and new ones."""
    out = []
    for k in names:
        a, b = old.get(k), new.get(k)
        if isinstance(a, tuple):
            a = list(a)
        if isinstance(b, tuple):
            b = list(b)
        if a != b:
            out.append(f"{k}: checkpoint {a!r}, now {b!r}")
    return out


def resume_differences(old, new):
    """The differences that make a --resume of `old`'s checkpoint another experiment: every
    parameter outside RESUME_MAY_CHANGE, the data files by the file they name."""
    names = sorted((set(old) | set(new)) - RESUME_MAY_CHANGE - {"train", "validation"})
    out = differences(old, new, names)
    for k in ("train", "validation"):
        a, b = old.get(k), new.get(k)
        if a != b and not (isinstance(a, str) and isinstance(b, str) and same_file(a, b)):
            out.append(f"{k}: checkpoint {a!r}, now {b!r}")
    return out


def layout_differences(info, names, params):
    """The input layout a checkpoint's data description (`info`) expects against the
    columns `names` of the new training data: input columns missing now, and columns
    that would be new inputs (H2O refuses both)."""
    inputs = [c.name for c in info.columns]
    missing = [n for n in inputs if n not in names]
    known = set(inputs) | set(info.dropped) | set(params.get("ignored_columns") or ())
    known |= {params.get("response"), params.get("weights_column"), params.get("offset_column"),
              info.response, info.weights_column, info.offset_column}
    extra = [n for n in names if n not in known]
    out = []
    if missing:
        out.append(f"input columns missing from the data: {', '.join(missing[:10])}"
                   f"{' ...' if len(missing) > 10 else ''}")
    if extra:
        out.append(f"columns the checkpoint does not use (add them to ignored_columns): "
                   f"{', '.join(extra[:10])}{' ...' if len(extra) > 10 else ''}")
    return out


class StopFlag:
    """SIGTERM/SIGUSR1 (and SIGINT: Ctrl-C stops the same way) set a flag the trainer reads
    once per iteration; the previous handlers come back on restore()."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)

    def __init__(self):
        self.signum = 0
        self._old = {}

    def install(self):
        """Catch the signals from now on (again, if something such as MPI_Init installed
        its own handler since); restore() brings back what was there the first time."""
        import threading
        if threading.current_thread() is not threading.main_thread():
            return self
        for s in self.SIGNALS:
            self._old.setdefault(s, signal.signal(s, self._handler))
        return self

    def _handler(self, signum, _frame):
        self.signum = signum

    def restore(self):
        for s, h in self._old.items():
            # None: a handler installed outside Python (C), which cannot be put back
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        self._old = {}


# ------------------------------------------------------------------------------ resume
def load_everywhere(path, comm):
    """load_model(path) on every rank from one read of the file: rank 0 reads its bytes,
    they go to every rank (Bcast of the HDF5 image, nothing pickled) and each rank parses
    them from memory, checksums included.  A missing or damaged file is the same
    UserError on every rank."""
    from h2odl_mpi.model.model_io import load_model
    rank, _ = rank_and_size(comm)
    image, err = None, None
    if rank == 0:
        try:
            if not os.path.exists(path):
                raise UserError(f"{path}: no such model file")
            with open(path, "rb") as f:
                image = f.read()
        except OSError as e:
            err = UserError(f"{path}: cannot read: {e.strerror or e}")
        except UserError as e:
            err = e
    agree(comm, err)
    image = bcast_bytes(comm, image)
    loaded = None
    try:
        loaded = load_model(path, image=image)
    except Exception as e:  # noqa: BLE001 - reported on every rank by agree()
        err = e
    agree(comm, err)
    return loaded


def _checkpoint_to_continue(params, comm, rank, say):
    """--checkpoint FILE, or the newest valid checkpoint under --resume DIR (the same path
    on every rank), or None."""
    path = params.get("checkpoint")
    if path or not params.get("resume"):
        return path or None
    err = None
    if rank == 0:
        try:
            d = params["resume"]
            path = newest_valid(d) if os.path.isdir(d) else None
        except Exception as e:  # noqa: BLE001 - reported on every rank
            err = e
    agree(comm, err)
    path = bcast_obj(comm, path)
    if path is None:
        say(f"resume: no valid checkpoint in {params['resume']}: starting fresh")
    return path


def restore(params, comm, rank, frame, say):
    """The checkpoint to continue from on every rank, as a dict (path, network, model,
    info, state, history), or None.  A changed architecture, response or input layout
    is refused, naming each difference."""
    path = _checkpoint_to_continue(params, comm, rank, say)
    if not path:
        return None
    network, model, info, old, attrs = load_everywhere(path, comm)
    if not params.get("checkpoint"):  # --resume: the same run, or refused
        _check_resume(path, params, old, attrs)
    if attrs.get("format") == "h2o-mojo":  # (model_io reads an H2O-3 MOJO as a model: mojo_reader)
        say(f"checkpoint {path}: an H2O-3 MOJO holds the weights and biases only: the optimizer state "
            "(ADADELTA's averages, momentum) starts fresh, and the training progress at 0")
    fixed = attrs.get("fixed_parameters", FIXED)   # (a MOJO states only some of them)
    diff = differences(old, params, fixed) + layout_differences(info, frame.names, params)
    if diff:
        raise UserError(f"{path}: cannot continue this model with a different architecture, response or "
                        "input layout: " + "; ".join(diff))
    state = dict(attrs.get("state") or {})
    state.setdefault("samples", int(attrs.get("training_samples", 0)))
    state.setdefault("iteration", int(attrs.get("iterations", 0)))
    state.setdefault("epochs", float(attrs.get("epochs", 0.0)))
    state.setdefault("seed", int(old.get("seed", 0)))
    if attrs.get("format") == "h2o-mojo":  # no seed of its own: this run's (the clock's for -1)
        seed = params["seed"] if params["seed"] != -1 else int(time.time() * 1e6) & 0x7FFFFFFF
        state["seed"] = int(bcast_obj(comm, seed))
    return {"path": path, "network": network, "model": model, "info": info, "state": state,
            "history": attrs.get("history", [])}


def _check_resume(path, params, old, attrs):
    """UserError unless `params` continue the run of checkpoint `path`: the same parameters
    but for RESUME_MAY_CHANGE, and epochs not below what it has trained."""
    where = f"resume {params['resume']}: {path}"
    diff = resume_differences(old, params)
    if diff:
        raise UserError(f"{where} was trained with other parameters ({'; '.join(diff)}): a resume continues "
                        "the same run; for a new experiment give another checkpoint_dir")
    done = float((attrs.get("state") or {}).get("epochs", attrs.get("epochs", 0.0)))
    if params["epochs"] < done * (1 - 1e-9):
        raise UserError(f"{where} has trained {done:.6g} epochs, more than epochs = {params['epochs']:g} "
                        "(epochs is the total; for a new experiment give another checkpoint_dir)")


def training_state(comm, rng, progress, n_total, seed, size, tspi, tuned_for, combiner, model, streams=True):
    """The training state a checkpoint holds (collective: every rank's RNG state goes to
    rank 0).  tspi: the rows per iteration in use; tuned_for: the target_ratio_comm_to_comp
    it was tuned for (-1 when it was not auto-tuned); combiner: the rule combining the ranks'
    models (of the training buffer `model`), whose name and arrays (the same on every rank)
    are kept.  streams=False: no collective, and no random streams (rng_states empty: a
    resumed run derives new ones, restore_rng)."""
    states = gather_obj(comm, json.dumps(rng.bit_generator.state)) if streams else []
    return {"samples": int(progress.samples), "iteration": int(progress.iteration),
            "epochs": progress.samples / n_total, "n_total": int(n_total), "seed": int(seed),
            "n_ranks": int(size), "tspi": int(tspi), "tuned_for": float(tuned_for), "rng_states": states,
            "combining_rule": combiner.name, "combiner_arrays": combiner.state(model)}


def combiner_state(restored, combiner, say):
    """The combining rule's arrays of a checkpoint to continue with, when it was written
    with the same rule (another rule starts afresh, which is said)."""
    if not restored:
        return None
    st = restored["state"]
    if st.get("combining_rule", combiner.name) != combiner.name:
        say(f"combining_rule: the checkpoint used {st['combining_rule']}, now {combiner.name}: "
            "its state starts afresh")
        return None
    return st.get("combiner_arrays") or None


def restore_rng(rng, restored, seed, rank, size):
    """This rank's random stream of a continued run: its own stream where the checkpoint
    has as many ranks, else new streams derived from the seed and the iteration."""
    states = restored["state"].get("rng_states") or []
    if len(states) == size:
        rng.bit_generator.state = json.loads(states[rank])
        return rng
    import numpy as np
    return np.random.default_rng([seed, rank, int(restored["state"]["iteration"])])


def write_checkpoint(directory, comm, rank, run, model, state):
    """Rank 0 writes directory/ckpt_<iteration>.h5 atomically and prunes old ones; the
    other ranks go on and wait at the next collective.  Returns the path."""
    path = checkpoint_path(directory, state["iteration"])
    if rank == 0:
        owner = getattr(run, "owner", None)
        if owner is None:  # a run made without train(): it owns what it writes, unlocked
            owner = run.owner = CheckpointDirectory(directory, comm)
        owner.write(path, run, model, state)
    return path


class LastCombined:
    """The last combined model of a run and its training state, kept by every rank after
    every iteration (`keep`, the main thread) so that any rank can write it as a checkpoint
    alone (`write`, the stall watchdog's thread), without a collective, while the training
    buffer is being changed by the next iteration or by a collective that will not end.
    The model is copied (one more buffer of the model's size) unless the combining rule
    made a copy already; the state has no random streams (training_state(streams=False))."""

    def __init__(self):
        self.lock = threading.Lock()
        self.model = self.state = self.history = None

    def keep(self, buffer, current, state, history):
        """After an iteration: `current` (the combined model; `buffer`, the training buffer,
        or a copy the rule made), `state` and the scoring history."""
        import numpy as np
        with self.lock:
            if np.shares_memory(current, buffer):
                if self.model is None or self.model.shape != current.shape or self.model is current:
                    self.model = np.empty_like(current)
                np.copyto(self.model, current)
            else:
                self.model = current
            self.state = dict(state, combiner_arrays={k: np.array(v, copy=True) for k, v in
                                                      (state.get("combiner_arrays") or {}).items()})
            self.history = list(history)

    def write(self, directory, run):
        """Write what was kept as the checkpoint of its iteration (atomically; a checkpoint
        of that iteration already there is kept as it is, as is the lock); returns what was
        done, as a phrase.  Raises what the write raises."""
        from h2odl_mpi.model.model_io import save_model
        with self.lock:
            if self.state is None:
                return "no iteration completed: nothing to save (the newest checkpoint stands)"
            it = self.state["iteration"]
            path = checkpoint_path(directory, it)
            if os.path.exists(path):
                return f"the checkpoint of iteration {it} is {path}"
            owner = getattr(run, "owner", None)
            lineage = owner.lineage if owner is not None else None
            progress = {"epochs": self.state["epochs"], "training_samples": self.state["samples"],
                        "iterations": it}
            save_model(path, run.network, self.model, run.info, run.params, progress, self.history,
                       state=dict(self.state, **({"lineage": lineage} if lineage else {})))
            return f"checkpoint {path} (iteration {it}) written"


# ------------------------------------------------------------------- the directory's owner
LOCK_NAME = ".h2odl_mpi.lock"
RANKS_NAME = ".h2odl_mpi.ranks"  # the run's processes, while it runs (write_rank_table)


def write_rank_table(directory, table):
    """Rank 0 of a multi-rank run: DIR/.h2odl_mpi.ranks, a line per rank naming its process
    (pid, host), so that the rank behind a launcher's "PID 1234 RUNNING AT node7" (MPICH's
    Hydra, when a rank is killed) can be told; removed with the lock when the run gives the
    directory up (CheckpointDirectory.release), which a killed job does not.
    A failure to write it is no error."""
    lines = ["# the processes of the run that holds this directory: a launcher's 'PID <pid> RUNNING AT <host>' "
             "is the rank on that line"]
    lines += [f"rank {r}: pid {t['pid']} on {t['host']}" + (f" (world rank {t['world']})" if t["world"] != r else "")
              for r, t in enumerate(table)]
    try:
        write_bytes(os.path.join(directory, RANKS_NAME), ("\n".join(lines) + "\n").encode())
    except OSError:
        pass


def remove_rank_table(directory):
    discard(os.path.join(directory, RANKS_NAME))


class CheckpointDirectory:
    """A run's ownership of its checkpoint directory, held by rank 0 from before the data
    is read to the end of train(): the lock file (a second live run is refused, a stale lock
    taken over), the checkpoints this run wrote, and its lineage: an id kept in each
    checkpoint's /progress and carried on by a `--resume` of the same directory, so that
    pruning removes the checkpoints of this run and its earlier requeued parts only."""

    def __init__(self, directory, comm=None):
        self.directory, self.comm = directory, comm
        self.lock, self.lineage, self.adopted = None, None, None
        self.written = []

    def acquire(self, rank, params=None):
        """Collective: rank 0 takes the directory's lock; a live owner, an unwritable
        directory or, for a run that does not resume it, a directory holding checkpoints
        (which this run would overwrite) is the same UserError on every rank.  No
        directory: nothing to do."""
        if not self.directory:
            return self
        err, note = None, None
        if rank == 0:
            lock = LockFile(os.path.join(self.directory, LOCK_NAME))
            try:
                os.makedirs(self.directory, exist_ok=True)
                self.lock, note = lock.acquire(), lock.taken_over
                err = self._others_checkpoints(params or {})
            except LockHeld as e:
                err = UserError(f"checkpoint_dir {self.directory} is in use by another run: "
                                f"{describe_owner(e.owner)} (lock file {e.path}); give another "
                                "checkpoint_dir, or delete the lock file if that run has ended")
            except OSError as e:
                err = UserError(f"checkpoint_dir: cannot write into {self.directory}: {e.strerror or e}")
        agree(self.comm, err)
        if note:
            print(f"warning: checkpoint_dir {self.directory}: took over the stale lock of {note}",
                  file=sys.stderr, flush=True)
        return self

    def _others_checkpoints(self, params):
        """A UserError if the directory holds checkpoints and this run does not resume it."""
        if params.get("resume") and same_file(params["resume"], self.directory):
            return None
        found = list_checkpoints(self.directory)
        if not found:
            return None
        self.release()
        names = ", ".join(os.path.basename(p) for p in found[:3]) + (" ..." if len(found) > 3 else "")
        return UserError(f"checkpoint_dir {self.directory} already holds checkpoints ({names}) that this run would "
                         f"overwrite: continue them with --resume {self.directory}, or give an empty directory")

    def break_lock(self, pid, host):
        """Remove the lock file if it is the process `pid` on `host`'s: the stall watchdog's
        leader, for a rank 0 that stopped answering while the job ends, so that the
        requeued run need not wait for the lock to go stale."""
        if not self.directory:
            return
        path = os.path.join(self.directory, LOCK_NAME)
        try:
            with open(path, encoding="utf-8") as f:
                owner = json.load(f)
        except (OSError, ValueError):
            return
        if isinstance(owner, dict) and owner.get("pid") == pid and owner.get("host") == host:
            discard(path)

    def release(self):
        """Give the directory up (rank 0 removes its lock file and the rank table with it:
        also when the job is about to end by MPI_Abort); safe to call again."""
        if self.lock is not None:
            remove_rank_table(self.directory)
            self.lock.release()
            self.lock = None

    def share_lineage(self, run, rank):
        """Collective: every rank takes rank 0's lineage (so that any rank can write a
        checkpoint of this run, LastCombined)."""
        if rank == 0:
            self._settle_lineage(run)
        self.lineage = bcast_obj(self.comm, self.lineage)
        self.adopted = bcast_obj(self.comm, self.adopted)

    def _settle_lineage(self, run):
        """The lineage, fixed at the first write: the continued checkpoint's when this run
        resumes the same directory, else a new one."""
        if self.lineage is not None:
            return
        params, restored = run.params, getattr(run, "restored", None)
        old = None
        if restored and params.get("resume") and same_file(params["resume"], self.directory):
            old = restored["state"].get("lineage")
        self.lineage = old or uuid.uuid4().hex
        self.adopted = restored["path"] if old else None

    def write(self, path, run, model, state):
        """Write the checkpoint `path` (rank 0), then prune."""
        self._settle_lineage(run)
        write_model(self.comm, path, run, model, dict(state, lineage=self.lineage))
        self.written.append(path)
        prune(self.directory, run.params["checkpoint_keep"],
              self.written + ([self.adopted] if self.adopted else []), self.lineage)
