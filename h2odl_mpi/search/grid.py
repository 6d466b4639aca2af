"""A grid or random search: groups of ranks each train one model at a time, data-parallel.

COMM_WORLD is split into groups of `ranks_per_model` ranks.  Each group reads the training
and validation data once (sharded over its ranks) and loops:

    k = claim the next model          (its leader: search_dir claims; the group hears it)
    train it on the group             (trainer.train, checkpointing into the model's folder)
    record it                         (done with its metrics, or failed with its error)

so a slow model holds back only its own group, and no rank only dispatches.  World rank 0
prints the leaderboard as models finish (between its own models) and writes it at the end,
with best_model.h5.  SIGTERM/SIGUSR1 stop every group's model with a checkpoint and end the
search with exit status 85; the same command continues it: finished models are not
retrained, interrupted ones continue from their checkpoints.
"""
import math
import os
import time

from h2odl_mpi import params as P
from h2odl_mpi.checkpoint import REQUEUE_EXIT_CODE, StopFlag, TrainingInterrupted
from h2odl_mpi.collectives import allreduce_scalar, bcast_obj, rank_and_size
from h2odl_mpi.errors import UserError, agree, fail_alone
from h2odl_mpi.frame import Frame
from h2odl_mpi.search import hyperspace, leaderboard
from h2odl_mpi.search.grid_file import check_criteria, check_hyper
from h2odl_mpi.search.search_dir import IDENTITY_EXCLUDES, SearchDirectory
from h2odl_mpi.stopping import METRICS, resolve_metric, stop_early

NO_MORE = -1


class SearchInterrupted(TrainingInterrupted):
    """The search stopped on a signal; its models in training wrote checkpoints."""

    def __init__(self, search_dir, signum):
        Exception.__init__(self, f"search stopped by signal {signum}: models in training checkpointed under "
                                 f"{search_dir}; run the same command to continue; exit status "
                                 f"{REQUEUE_EXIT_CODE} (requeue)")
        self.path, self.signum = search_dir, signum


def grid_search(fixed, hyper_params, search_criteria, search_dir, ranks_per_model=1, comm=None, stop=None):
    """Run (or continue) the search on `comm` (every rank calls it); returns the
    leaderboard rows, best first, on every rank.  `fixed`: train parameters every model
    gets (H2O names); `hyper_params`: {name: [values]}; `search_criteria`: H2O's."""
    flag = stop or StopFlag().install()
    try:
        return GridSearch(fixed, hyper_params, search_criteria, search_dir, ranks_per_model, comm, flag).run()
    finally:
        if stop is None:
            flag.restore()


def split_groups(comm, ranks_per_model):
    """(group communicator, group number, number of groups); the groups are consecutive ranks."""
    rank, size = rank_and_size(comm)
    if ranks_per_model < 1 or size % ranks_per_model:
        raise UserError(f"--ranks_per_model {ranks_per_model} must divide the number of ranks, {size}")
    if comm is None:
        return None, 0, 1
    return comm.Split(rank // ranks_per_model, rank), rank // ranks_per_model, size // ranks_per_model


class GridSearch:
    def __init__(self, fixed, hyper, criteria, search_dir, ranks_per_model, comm, flag):
        self.world, self.flag = comm, flag
        self.rank, _ = rank_and_size(comm)
        self.fixed = _check_fixed({P.canonical(k): v for k, v in fixed.items()})
        self.hyper, self.criteria = check_hyper(hyper), check_criteria(criteria)
        self.dir = SearchDirectory(search_dir)
        self.group, self.group_index, self.n_groups = split_groups(comm, int(ranks_per_model))
        self.leader = rank_and_size(self.group)[0] == 0
        self.ranks_per_model = int(ranks_per_model)
        identity = {k: v for k, v in self.fixed.items() if k not in IDENTITY_EXCLUDES}
        identity.update({f"hyper_params.{k}": v for k, v in self.hyper.items()})
        identity.update({f"search_criteria.{k}": self.criteria[k] for k in ("strategy", "seed")})
        before = self.dir.open(comm, self.rank, identity, self.criteria["seed"])
        self.plan = hyperspace.plan(self.hyper, {**self.criteria, "seed": self.dir.seed})
        self.frames = self._read_frames()
        self.shown = set()     # (rank 0) the models already printed
        self.cursor = 0        # (a leader) the next model to try to claim
        self.t0 = time.time()
        self.say(f"grid: {len(self.plan)} model(s) planned ({self.criteria['strategy']}, space of "
                 f"{hyperspace.space_size(self.hyper)}), {self.n_groups} group(s) of {self.ranks_per_model} "
                 f"rank(s); {before} finished before; search_dir {search_dir}")

    def say(self, msg):
        if self.rank == 0:
            print(msg, flush=True)

    def _read_frames(self):
        """The group's training and validation frames, read once for all its models."""
        err, frames = None, None
        try:
            f = self.fixed
            replicate = f.get("replicate_training_data", P.SPEC["replicate_training_data"][1])  # (H2O: true)
            frame = Frame.read(f["train"], comm=self.group, replicate=bool(replicate))
            vframe = Frame.read(f["validation"], comm=self.group) if f.get("validation") else None
            frames = (frame, vframe)
        except UserError as e:
            err = e
        agree(self.world, err)
        return frames

    # ---- the loop ------------------------------------------------------------------------
    def run(self):
        interrupted = None
        try:
            while True:
                k, remaining = self._next()
                if k == NO_MORE:
                    break
                rec = self._train(k, remaining)
                if self.leader:
                    self._write_record(k, rec)
                self._show_new()
        except TrainingInterrupted as e:
            interrupted = e
        stopped = allreduce_scalar(self.world, int(self.flag.signum if interrupted else 0), "max")
        board = self._finish()
        if stopped:
            raise SearchInterrupted(self.dir.path, stopped)
        return board

    def _next(self):
        """(model number, seconds left or 0) for the group, decided by its leader."""
        pick = None
        if self.leader:
            try:
                pick = [self._claim_next(), self._remaining()]
            except UserError as e:
                fail_alone(self.world, str(e))  # the others of this group wait for this answer
        return bcast_obj(self.group, pick)

    def _claim_next(self):
        if self.flag.signum or self._remaining() < 0 or self._search_converged():
            return NO_MORE
        while self.cursor < len(self.plan):
            k = self.cursor
            self.cursor += 1
            if self.dir.claim(k):
                os.makedirs(self.dir.model_dir(f"model_{k + 1}"), exist_ok=True)
                return k
        return NO_MORE

    def _remaining(self):
        """Seconds of max_runtime_secs left (0: no limit; negative: spent)."""
        limit = self.criteria["max_runtime_secs"]
        if limit <= 0:
            return 0.0
        left = limit - (time.time() - self.t0)
        return left if left > 0 else -1.0

    def _search_converged(self):
        """H2O's stopping rule on the best-so-far metric of the models in finishing order."""
        k = self.criteria["stopping_rounds"]
        if k <= 0:
            return False
        done = sorted((r for r in self.dir.finished().values() if r.get("status") == "done"),
                      key=lambda r: r.get("finished", 0.0))
        if len(done) < 2 * k:
            return False
        kind = done[0].get("kind", "classification")
        metric = resolve_metric(self.criteria["stopping_metric"], kind == "classification", kind == "autoencoder")
        key, direction = METRICS[metric][0], METRICS[metric][1]
        best, bests = math.nan, []
        for r in done:
            v = leaderboard.value_of(r, key)
            if math.isnan(best) or (not math.isnan(v) and direction * (v - best) > 0):
                best = v
            bests.append(best)
        return stop_early([math.nan] + bests, k, metric, self.criteria["stopping_tolerance"])

    # ---- one model -----------------------------------------------------------------------
    def _train(self, k, remaining):
        """Train model k on the group; its record (done or failed)."""
        from h2odl_mpi.trainer import train
        model_id = f"model_{k + 1}"
        combo = hyperspace.combination(self.hyper, self.plan[k])
        raw = {**self.fixed, **combo}
        if int(raw.get("seed", -1)) == -1:  # one seed per model, from the search's
            raw["seed"] = (self.dir.seed + 7919 * (k + 1)) % (2 ** 31)
        ckpt = self.dir.checkpoints(model_id)
        raw.update(quiet_mode=True, model_out=self.dir.model_file(model_id), checkpoint_dir=ckpt, resume=ckpt)
        if remaining > 0:
            raw["max_runtime_secs"] = min(float(raw.get("max_runtime_secs") or math.inf), remaining)
        rec = {"index": k, "model_id": model_id, "params": combo, "seed": raw["seed"], "group": self.group_index,
               "ranks": self.ranks_per_model}
        t0 = time.time()
        try:
            run = train(P.validate(raw), self.group, stop=self.flag, data=self.frames)
        except UserError as e:
            return {**rec, "status": "failed", "error": str(e), "wall_time_s": time.time() - t0}
        s = run.summary
        return {**rec, "status": "done", "kind": run.info.kind, "metrics": dict(s["metrics"]),
                "model_path": os.path.relpath(self.dir.model_file(model_id), self.dir.path),
                "wall_time_s": time.time() - t0, "training_time_s": s["training_time_s"],
                "training_samples": s["training_samples"], "epochs": s["epochs"], "stop_reason": s["stop_reason"],
                "continued_from": s["continued_from"]}

    def _write_record(self, k, rec):
        rec["finished"] = time.time()
        try:
            self.dir.record(k, rec)
        except UserError as e:
            fail_alone(self.world, str(e))

    # ---- what rank 0 shows and writes ----------------------------------------------------
    def _board(self):
        return leaderboard.rows(list(self.dir.finished().values()), self.criteria["sort_by"], self.dir.path,
                                list(self.hyper))

    def _show_new(self):
        """World rank 0: print the models finished since it last looked; refresh the files."""
        if self.rank != 0:
            return
        board = self._board()
        new = [r for r in board if r["model_id"] not in self.shown]
        for row in sorted(new, key=lambda r: int(r["model_id"].split("_")[-1])):
            self.say(leaderboard.line(row, list(self.hyper)))
            self.shown.add(row["model_id"])
        if new:
            self._write_board(board)

    def _write_board(self, board):
        try:
            leaderboard.write(self.dir.path, board, list(self.hyper))
            leaderboard.write_best(self.dir.path, board)
        except UserError as e:
            fail_alone(self.world, str(e))

    def _finish(self):
        """Every group is done: rank 0 writes and prints the leaderboard; every rank gets it."""
        agree(self.world, None)
        board = None
        if self.rank == 0:
            self._show_new()
            board = self._board()
            self._write_board(board)
            self.say(f"grid: {sum(r['status'] == 'done' for r in board)} model(s) done, "
                     f"{sum(r['status'] != 'done' for r in board)} failed; leaderboard (best first):")
            for row in board:
                self.say(f"{row['rank']:>4} " + leaderboard.line(row, list(self.hyper)))
            self.dir.close()
        return bcast_obj(self.world, board)


def _check_fixed(fixed):
    """The fixed parameters: data and response named; outputs are the search's own."""
    for name in ("train", "response"):
        if not fixed.get(name) and not (name == "response" and fixed.get("autoencoder")):
            raise UserError(f"grid: {name} is required (in the grid file or as --{name})")
    for name in ("model_out", "checkpoint_dir", "resume", "checkpoint", "summary_json", "scoring_history"):
        if fixed.get(name):
            raise UserError(f"grid: {name} is set by the search (each model writes into --search_dir); "
                            "leave it out")
    return fixed
