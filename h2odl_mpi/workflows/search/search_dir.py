"""The search directory: what a search has planned, claimed and finished, on disk.

    DIR/search.json             the search's identity (fixed parameters, space, strategy,
                                seed): a rerun of the same command continues it, another
                                search is refused
    DIR/search.lock             held by world rank 0 while the search runs
    DIR/claims/K                created exclusively (O_EXCL) by the group that trains model K
    DIR/results/K.json          model K's record, written atomically when it ends (done,
                                failed or culled): a model with a record is never trained again
    DIR/models/model_K+1/       its model file (model.h5), proposal.json (its parameters and
                                parents, written once when it is claimed) and, while it
                                trains, checkpoints/
    DIR/leaderboard.csv|json, DIR/best_model.h5, DIR/search_progress.png   (leaderboard, progress_plot)
  with successive halving (search.halving):
    DIR/rungs/K.R.json          model K's record at the end of rung R below its last (it
                                waits there, its checkpoints kept, to be promoted or culled)
    DIR/promoted/K.R            model K was promoted to rung R (kept: a resumed search
                                continues the rung even when it would not promote it now)
    DIR/claims/K.rR             created exclusively by the group that trains model K's rung R

Nothing is created before the search has passed every check (GridSearch, then `prepare`,
which only reads): `open` makes the directory, takes the lock, makes the subdirectories and
writes search.json last; if it fails, it releases the lock and removes what it made.  A
search.json whose search never claimed a model (left by a run stopped before its first, or
by an older version after a refusal) is replaced by the next search, not refused.

A claim is how groups of ranks share out the models with no rank that only dispatches: the
first group to create claims/K trains model K.  At the start of a run, world rank 0 removes
the claims of unfinished work (models, or rungs, a stopped run was training), so they are
claimed again and continue from their checkpoints.  Records are written once and never
change, so what a process has read of them is kept (`finished`, `rungs`).
"""
import json
import os
import shutil
import time

from h2odl_mpi.atomic import LockFile, LockHeld, describe_owner, same_file, write_bytes
from h2odl_mpi.collectives import bcast_obj
from h2odl_mpi.errors import UserError, agree
from h2odl_mpi.training.outputs import existing_ancestor, new_directories
from h2odl_mpi.workflows.search.leaderboard import json_value

# fixed parameters that do not change which models a search trains (a rerun may change them)
IDENTITY_EXCLUDES = ("threads", "thread_scheme", "quiet_mode", "checkpoint_interval", "checkpoint_keep",
                     "max_runtime_secs", "stall_timeout")


SUBDIRS = ("claims", "results", "models", "rungs", "promoted")


class SearchDirectory:
    """One search's directory; `open` is collective over the world communicator."""

    def __init__(self, path):
        self.path = path
        self.lock = None
        self.seed = None
        self.groups = None    # the number of groups of the search's first run (search.json)
        self.created = None   # when the search began (time.time())
        self.replaced = False  # search.json held a search that never claimed a model
        self._seen = {"results": {}, "rungs": {}}  # records read so far: they never change

    # ---- set-up (collective) -------------------------------------------------------------
    def prepare(self, comm, rank, identity, seed, groups=1, inputs=()):
        """Collective and read-only, before anything is created: refuse a path that cannot
        hold the search (a file, under a file, not writable, one of `inputs`: (name, path)
        pairs) or a directory holding another search; returns (seed, groups) of the search
        this run continues (its search.json's), else (`seed`, or one drawn now when it is
        negative, `groups`): what `open` then writes."""
        err, state = None, None
        if rank == 0:
            try:
                state = self._inspect(identity, inputs)
            except UserError as e:
                err = e
            if state is None:
                state = {"seed": seed if seed >= 0 else int(time.time_ns() % (2 ** 31)), "groups": int(groups)}
        agree(comm, err)
        state = bcast_obj(comm, state)
        return int(state["seed"]), int(state["groups"])

    def _inspect(self, identity, inputs):
        """(rank 0) search.json's state of the search this one continues, or None (a new
        search, or one that never claimed a model: replaced); UserError when refused."""
        path = self.path
        for name, other in inputs:
            if other and os.path.exists(path) and same_file(path, other):
                raise UserError(f"--search_dir {path}: is the {name} {other}: give the search a directory of its own")
        if os.path.exists(path) and not os.path.isdir(path):
            raise UserError(f"--search_dir {path}: is not a directory")
        where = existing_ancestor(path)
        if not os.path.isdir(where):
            raise UserError(f"--search_dir {path}: cannot be created: {where} is not a directory")
        if not os.access(where, os.W_OK | os.X_OK):
            raise UserError(f"--search_dir {path}: cannot write in {where} (permission denied)")
        if where != os.path.abspath(path) or not os.path.exists(self._dir("search.json")):
            return None
        old = self._read_json(self._dir("search.json"))
        diff = self._differences(old, identity)
        if diff and self.started():
            raise self._another(diff)
        return None if diff else {"seed": int(old["seed"]), "groups": int(old.get("groups", 1))}

    def open(self, comm, rank, identity, seed, groups=1):
        """Create or continue the directory: lock it, check or write its identity, release
        the claims of unfinished work.  Returns the number of finished models.  `seed`,
        `groups`: what `prepare` returned (search.json keeps them for a new search)."""
        err, state = None, None
        if rank == 0:
            try:
                state = self._open_here(identity, seed, groups)
            except UserError as e:
                err = e
        agree(comm, err)
        state = bcast_obj(comm, state)
        self.seed, self.groups, self.created = int(state["seed"]), int(state["groups"]), float(state["created"])
        self.replaced = bool(state.get("replaced"))
        return int(state["finished"])

    def _open_here(self, identity, seed, groups):
        """(rank 0) The lock, then search.json checked (written last, for a new search) and
        the subdirectories; a failure leaves no lock, and removes what this call created."""
        made = new_directories(self.path) + [self._dir(sub) for sub in SUBDIRS if not os.path.isdir(self._dir(sub))]
        try:
            try:
                os.makedirs(self.path, exist_ok=True)
                self.lock = LockFile(self._dir("search.lock")).acquire()
            except LockHeld as e:
                raise UserError(f"--search_dir {self.path} is in use by another search: {describe_owner(e.owner)} "
                                f"(lock file {e.path})") from None
            except OSError as e:
                raise UserError(f"--search_dir {self.path}: cannot write there: {e.strerror or e}") from None
            state, write = self._identity(identity, seed, groups)
            try:
                for sub in SUBDIRS:
                    os.makedirs(self._dir(sub), exist_ok=True)
            except OSError as e:
                raise UserError(f"--search_dir {self.path}: cannot write there: {e.strerror or e}") from None
            if write:
                self._write_json(self._dir("search.json"), write)
        except BaseException:
            self.close()
            for d in reversed(made):  # (deepest first; only what is still empty)
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            raise
        finished = self.finished()
        for name in os.listdir(self._dir("claims")):
            job = _job_of_claim(name)
            if job is not None and not self.job_done(*job):
                os.unlink(self._dir("claims", name))  # stopped mid-training: claimed again
        return dict(state, finished=len(finished))

    def _identity(self, identity, seed, groups):
        """(state: the search's seed, first number of groups, start time, whether it
        replaced a search that never started; what to write as search.json or None):
        search.json checked to hold the same search, else a new one.  A search.json whose
        search never claimed a model (left by a run that stopped before its first) is
        replaced."""
        path = self._dir("search.json")
        ident = json.loads(json.dumps(identity, default=json_value))  # (tuples as lists, as read back)
        replaced = False
        if os.path.exists(path):
            old = self._read_json(path)
            diff = self._differences(old, identity)
            if diff and self.started():
                raise self._another(diff)
            if not diff:
                return {"seed": int(old["seed"]), "groups": int(old.get("groups", groups)),
                        "created": float(old.get("created", time.time()))}, None
            replaced = True
        if seed < 0:
            seed = int(time.time_ns() % (2 ** 31))
        state = {"seed": seed, "groups": int(groups), "created": time.time()}
        return dict(state, replaced=replaced), {"identity": ident, **state}

    @staticmethod
    def _differences(old, identity):
        """The identity keys in which search.json's search (`old`) differs, sorted."""
        ident = json.loads(json.dumps(identity, default=json_value))
        was = old.get("identity", {}) if isinstance(old, dict) else {}
        return sorted(k for k in set(was) | set(ident) if was.get(k) != ident.get(k))

    def _another(self, diff):
        return UserError(f"--search_dir {self.path} holds another search (differs in: {', '.join(diff[:8])}); "
                         "give a new --search_dir, or the same grid file and flags to continue it")

    def started(self):
        """Whether a model of the search was ever claimed (anything in its subdirectories)."""
        return any(os.path.isdir(self._dir(sub)) and os.listdir(self._dir(sub)) for sub in SUBDIRS)

    def close(self):
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    # ---- claims and records (a group's leader) ------------------------------------------
    def claim(self, k):
        """True when this process created claims/K (model K is its group's to train)."""
        return not os.path.exists(self._result(k)) and self._create("claims", str(k), "a model")

    def release(self, k):
        """Give up the claim of model K (claimed, then not trained: the search ended)."""
        try:
            os.unlink(self._dir("claims", str(k)))
        except FileNotFoundError:
            pass

    def record(self, k, rec):
        """Model K's record, written atomically (then its checkpoints are not needed)."""
        self._write_json(self._result(k), rec)
        shutil.rmtree(self.checkpoints(rec["model_id"]), ignore_errors=True)

    def finished(self):
        """{K: record} of every model with a record."""
        return dict(self._records("results"))

    # ---- proposals (every strategy) -----------------------------------------------------
    def save_proposal(self, k, proposal):
        """Model K's parameters (and parents), fixed once it is claimed: a resumed search
        continues its checkpoints with the same ones, whatever it would propose now."""
        self._write_json(self._dir("models", f"model_{k + 1}", "proposal.json"), proposal)

    def proposal(self, k):
        path = self._dir("models", f"model_{k + 1}", "proposal.json")
        return self._read_json(path) if os.path.exists(path) else None

    # ---- rungs (successive halving) -----------------------------------------------------
    def claim_rung(self, k, r):
        """True when this process created claims/K.rR (rung R of model K is its group's)."""
        return not self.job_done(k, r) and self._create("claims", f"{k}.r{r}", "a rung")

    def mark_promoted(self, k, r):
        self._write_json(self._dir("promoted", f"{k}.{r}"), {"index": k, "rung": r, "when": time.time()})

    def promoted(self):
        """{(K, R)}: model K was promoted to rung R."""
        return {job for job in (_pair(n) for n in os.listdir(self._dir("promoted"))) if job is not None}

    def record_rung(self, k, r, rec):
        """Model K's record at the end of rung R (its checkpoints stay: it may go on)."""
        self._write_json(self._dir("rungs", f"{k}.{r}.json"), rec)

    def rungs(self):
        """{(K, R): record} of every rung a model ended below its last."""
        return dict(self._records("rungs"))

    def job_done(self, k, r=0):
        """Whether rung R of model K (R = 0: the model, without halving) has ended."""
        return os.path.exists(self._result(k)) or os.path.exists(self._dir("rungs", f"{k}.{r}.json"))

    def in_flight(self):
        """Whether some group is training a claimed model or rung now (its claim has no record)."""
        jobs = (_job_of_claim(n) for n in os.listdir(self._dir("claims")))
        return any(job is not None and not self.job_done(*job) for job in jobs)

    def model_dir(self, model_id):
        return self._dir("models", model_id)

    def model_file(self, model_id):
        return self._dir("models", model_id, "model.h5")

    def checkpoints(self, model_id):
        return self._dir("models", model_id, "checkpoints")

    # ---- helpers -------------------------------------------------------------------------
    def _dir(self, *parts):
        return os.path.join(self.path, *parts)

    def _records(self, sub):
        """{key: record} of results/ (key K) or rungs/ (key (K, R)), reading only new files."""
        seen = self._seen[sub]
        for name in os.listdir(self._dir(sub)):
            stem, _dot, ext = name.rpartition(".")
            key = (int(stem) if stem.isdigit() else None) if sub == "results" else _pair(stem)
            if ext != "json" or key is None or key in seen:
                continue
            try:
                seen[key] = self._read_json(self._dir(sub, name))
            except UserError:
                continue  # (only a half-copied file could be unreadable: atomic writes)
        return seen

    def _result(self, k):
        return self._dir("results", f"{k}.json")

    def _create(self, sub, name, what):
        """True when this process created DIR/sub/name (exclusively: the first to ask wins)."""
        try:
            fd = os.open(self._dir(sub, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as e:
            raise UserError(f"--search_dir {self.path}: cannot claim {what}: {e.strerror or e}") from None
        os.close(fd)
        return True

    def _read_json(self, path):
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError) as e:
            raise UserError(f"{path}: cannot read: {e}") from None

    def _write_json(self, path, obj):
        try:
            write_bytes(path, json.dumps(obj, indent=1, sort_keys=True, default=json_value).encode())
        except OSError as e:
            raise UserError(f"{path}: cannot write: {e.strerror or e}") from None


def _pair(text):
    """(K, R) of "K.R", or None."""
    a, dot, b = text.partition(".")
    return (int(a), int(b)) if dot and a.isdigit() and b.isdigit() else None


def _job_of_claim(name):
    """(K, R) of a claim's file name: "K" (a model: rung 0) or "K.rR", else None."""
    if name.isdigit():
        return int(name), 0
    a, dot, b = name.partition(".r")
    return (int(a), int(b)) if dot and a.isdigit() and b.isdigit() else None

