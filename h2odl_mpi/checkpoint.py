"""Checkpoints, restart and the batch system's warning signals (docs/model_format.md).

A checkpoint is a model file (h2odl_mpi.model_io) with the training state in /progress:
samples, iteration, epochs, the seed, every rank's numpy RNG state (JSON, no pickle).

- `--checkpoint_dir DIR`: rank 0 writes DIR/ckpt_<iteration, 9 digits>.h5 atomically every
  `--checkpoint_interval` (seconds, e.g. "600", or iterations, e.g. "100it"; "0": only at
  a signal and at the end), and keeps the newest `--checkpoint_keep` (default 3).
- `--checkpoint FILE` (H2O's name): continue the model in FILE; `--epochs` is the total.
- `--resume DIR`: continue from the newest valid checkpoint in DIR (damaged ones skipped
  with a warning), start fresh when there is none; checkpoints keep going to DIR.
- SIGTERM / SIGUSR1 (with a checkpoint directory): each rank stops training after its current
  block of rows (at most about 2 s of work, however long the iteration), the ranks average
  what they trained (weighted by their rows), rank 0 writes a checkpoint, and every rank
  exits with REQUEUE_EXIT_CODE.
"""
import glob
import os
import re
import signal
import sys

from h2odl_mpi.errors import UserError

# exit status meaning "stopped by SIGTERM/SIGUSR1 after writing a checkpoint: requeue me"
REQUEUE_EXIT_CODE = 85

# parameters that define the network, the response or the input layout: a checkpoint may
# not be continued with different values (everything else may change, as H2O allows:
# rates, regularisation, rows per iteration, scoring, ...).  ignored_columns may change as
# long as the inputs stay the same, which layout_differences checks.
FIXED = ("hidden", "activation", "response", "autoencoder", "standardize",
         "categorical_encoding", "use_all_factor_levels", "max_categorical_features",
         "missing_values_handling", "weights_column", "offset_column", "ignore_const_cols",
         "loss", "distribution", "tweedie_power", "quantile_alpha", "huber_alpha",
         "balance_classes", "class_sampling_factors", "max_after_balance_size")

_NAME = re.compile(r"ckpt_(\d+)\.h5$")


class TrainingInterrupted(Exception):
    """Training stopped on SIGTERM/SIGUSR1; `path` is the checkpoint written."""

    def __init__(self, path, signum):
        super().__init__(f"stopped by signal {signum}: checkpoint {path}; "
                         f"exit status {REQUEUE_EXIT_CODE} (requeue)")
        self.path, self.signum = path, signum


def parse_interval(text):
    """("seconds", s) or ("iterations", n) from "600", "2.5", "100it"; ("off", 0) for "0"."""
    t = str(text).strip().lower()
    try:
        if t.endswith("it"):
            n = int(t[:-2])
            if n < 0:
                raise ValueError
            return ("iterations", n) if n else ("off", 0)
        s = float(t)
        if not s >= 0:
            raise ValueError
        return ("seconds", s) if s else ("off", 0)
    except ValueError:
        raise UserError(f"checkpoint_interval: expected seconds (e.g. 600) or iterations "
                        f"(e.g. 100it), got {text!r}") from None


def checkpoint_path(directory, iteration):
    return os.path.join(directory, f"ckpt_{iteration:09d}.h5")


def list_checkpoints(directory):
    """Checkpoint files in `directory`, newest (highest iteration) first."""
    found = []
    for p in glob.glob(os.path.join(glob.escape(directory), "ckpt_*.h5")):
        m = _NAME.search(os.path.basename(p))
        if m:
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found, reverse=True)]


def prune(directory, keep):
    """Delete all but the newest `keep` checkpoints (keep <= 0: keep all), and temporary
    files that a killed writer left behind (only rank 0 writes, and not now)."""
    old = list_checkpoints(directory)[keep:] if keep > 0 else []
    stale = glob.glob(os.path.join(glob.escape(directory), "ckpt_*.h5.tmp*"))
    for p in old + stale:
        try:
            os.unlink(p)
        except OSError:
            pass


def newest_valid(directory, warn=True, loaded=None):
    """The newest checkpoint in `directory` that loads with its checksums, or None.
    A damaged one is skipped with a warning on stderr.  `loaded` (a list): receives what
    load_model returned for it, so that it need not be read twice."""
    from h2odl_mpi.model_io import load_model
    for p in list_checkpoints(directory):
        try:
            result = load_model(p)
        except UserError as e:
            if warn:
                print(f"warning: skipping damaged checkpoint: {e}", file=sys.stderr, flush=True)
            continue
        if loaded is not None:
            loaded.append(result)
        return p
    return None


def differences(old, new):
    """Human-readable differences in the FIXED parameters between a checkpoint's params
    and new ones."""
    out = []
    for k in FIXED:
        a, b = old.get(k), new.get(k)
        if isinstance(a, tuple):
            a = list(a)
        if isinstance(b, tuple):
            b = list(b)
        if a != b:
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
    """SIGTERM/SIGUSR1 set a flag the trainer reads once per iteration; the previous
    handlers come back on restore()."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

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
