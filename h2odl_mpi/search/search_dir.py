"""The search directory: what a search has planned, claimed and finished, on disk.

    DIR/search.json             the search's identity (fixed parameters, space, strategy,
                                seed): a rerun of the same command continues it, another
                                search is refused
    DIR/search.lock             held by world rank 0 while the search runs
    DIR/claims/K                created exclusively (O_EXCL) by the group that trains model K
    DIR/results/K.json          model K's record, written atomically when it ends (done or
                                failed): a model with a record is never trained again
    DIR/models/model_K+1/       its model file (model.h5) and, while it trains, checkpoints/
    DIR/leaderboard.csv|json, DIR/best_model.h5      (h2odl_mpi.search.leaderboard)

A claim is how groups of ranks share out the models with no rank that only dispatches: the
first group to create claims/K trains model K.  At the start of a run, world rank 0 removes
the claims without a record (models a stopped run was training), so they are claimed again
and continue from their checkpoints.
"""
import json
import os
import shutil
import time

from h2odl_mpi.atomic import LockFile, LockHeld, describe_owner, write_bytes
from h2odl_mpi.collectives import bcast_obj
from h2odl_mpi.errors import UserError, agree

# fixed parameters that do not change which models a search trains (a rerun may change them)
IDENTITY_EXCLUDES = ("threads", "quiet_mode", "checkpoint_interval", "checkpoint_keep", "max_runtime_secs")


class SearchDirectory:
    """One search's directory; `open` is collective over the world communicator."""

    def __init__(self, path):
        self.path = path
        self.lock = None
        self.seed = None

    # ---- set-up (collective) -------------------------------------------------------------
    def open(self, comm, rank, identity, seed):
        """Create or continue the directory: lock it, check or write its identity, release
        the claims of unfinished models.  Returns the number of finished models."""
        err, state = None, None
        if rank == 0:
            try:
                state = self._open_here(identity, seed)
            except UserError as e:
                err = e
        agree(comm, err)
        state = bcast_obj(comm, state)
        self.seed = int(state["seed"])
        return int(state["finished"])

    def _open_here(self, identity, seed):
        try:
            for sub in ("claims", "results", "models"):
                os.makedirs(os.path.join(self.path, sub), exist_ok=True)
            self.lock = LockFile(os.path.join(self.path, "search.lock")).acquire()
        except LockHeld as e:
            raise UserError(f"--search_dir {self.path} is in use by another search: {describe_owner(e.owner)} "
                            f"(lock file {e.path})") from None
        except OSError as e:
            raise UserError(f"--search_dir {self.path}: cannot write there: {e.strerror or e}") from None
        seed = self._identity(identity, seed)
        finished = self.finished()
        for name in os.listdir(self._dir("claims")):
            if name.isdigit() and int(name) not in finished:
                os.unlink(self._dir("claims", name))  # stopped mid-training: claimed again
        return {"seed": seed, "finished": len(finished)}

    def _identity(self, identity, seed):
        """Write search.json, or check that it holds the same search; the search's seed."""
        path = self._dir("search.json")
        ident = json.loads(json.dumps(identity, default=_plain))  # (tuples as lists, as read back)
        if os.path.exists(path):
            old = self._read_json(path)
            diff = sorted(k for k in set(old.get("identity", {})) | set(ident)
                          if old.get("identity", {}).get(k) != ident.get(k))
            if diff:
                raise UserError(f"--search_dir {self.path} holds another search (differs in: "
                                f"{', '.join(diff[:8])}); give a new --search_dir, or the same grid file "
                                "and flags to continue it")
            return int(old["seed"])
        if seed < 0:
            seed = int(time.time_ns() % (2 ** 31))
        self._write_json(path, {"identity": ident, "seed": seed, "created": time.time()})
        return seed

    def close(self):
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    # ---- claims and records (a group's leader) ------------------------------------------
    def claim(self, k):
        """True when this process created claims/K (model K is its group's to train)."""
        if os.path.exists(self._result(k)):
            return False
        try:
            fd = os.open(self._dir("claims", str(k)), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as e:
            raise UserError(f"--search_dir {self.path}: cannot claim a model: {e.strerror or e}") from None
        os.close(fd)
        return True

    def record(self, k, rec):
        """Model K's record, written atomically (then its checkpoints are not needed)."""
        self._write_json(self._result(k), rec)
        shutil.rmtree(self.checkpoints(rec["model_id"]), ignore_errors=True)

    def finished(self):
        """{K: record} of every model with a record."""
        out = {}
        for name in os.listdir(self._dir("results")):
            stem, dot, ext = name.partition(".")
            if stem.isdigit() and ext == "json":
                try:
                    out[int(stem)] = self._read_json(self._dir("results", name))
                except UserError:
                    continue  # (only a half-copied file could be unreadable: atomic writes)
        return out

    def model_dir(self, model_id):
        return self._dir("models", model_id)

    def model_file(self, model_id):
        return self._dir("models", model_id, "model.h5")

    def checkpoints(self, model_id):
        return self._dir("models", model_id, "checkpoints")

    # ---- helpers -------------------------------------------------------------------------
    def _dir(self, *parts):
        return os.path.join(self.path, *parts)

    def _result(self, k):
        return self._dir("results", f"{k}.json")

    def _read_json(self, path):
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError) as e:
            raise UserError(f"{path}: cannot read: {e}") from None

    def _write_json(self, path, obj):
        try:
            write_bytes(path, json.dumps(obj, indent=1, sort_keys=True, default=_plain).encode())
        except OSError as e:
            raise UserError(f"{path}: cannot write: {e.strerror or e}") from None


def _plain(v):
    """JSON for numpy scalars and arrays in records."""
    if hasattr(v, "tolist"):
        return v.tolist()
    raise TypeError(f"not JSON: {type(v).__name__}")
