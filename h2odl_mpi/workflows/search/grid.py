"""A search: groups of ranks each train one model at a time, data-parallel.

Everything that can refuse a search is checked before its directory is created or written
(a refused search leaves nothing behind, and the corrected command runs there): the fixed
parameters and their outputs, the space's size, the criteria (sort_by and stopping_metric
included), ranks_per_model, train's validation of the models' parameters known up front
(refused when it refuses every one), the search directory (search_dir.prepare) and the
data, read and checked for the columns the fixed parameters name.

COMM_WORLD is split into groups of `ranks_per_model` ranks.  Each group reads the training
and validation data once (sharded over its ranks) and loops:

    job = claim the next one          (its leader: a promoted rung (halving), else the next
                                       model and its proposal; the group hears it)
    train it on the group             (trainer.train, checkpointing into the model's folder)
    record it                         (done with its metrics, failed with its error, or
                                       waiting at the end of its rung (halving))

so a slow model holds back only its own group, and no rank only dispatches.  The proposal of
model k (its parameters) comes from the strategy: Cartesian and RandomDiscrete's plan
(hyperspace.ListedPlan), or bred from the records of earlier models (evolution.Evolution,
whose group waits for those records); it is kept in the model's folder.  World rank 0 prints
the leaderboard as models finish (between its own models) and writes it, with
best_model.h5 and search_progress.png.  SIGTERM/SIGUSR1 stop every group's model with a
checkpoint and end the search with exit status 85; the same command continues it: finished
models are not retrained, interrupted ones continue from their checkpoints.
"""
import math
import os
import time

from h2odl_mpi import params as P
from h2odl_mpi.training.checkpoint import REQUEUE_EXIT_CODE, StopFlag, TrainingInterrupted
from h2odl_mpi.collectives import allreduce_scalar, bcast_obj, rank_and_size, split
from h2odl_mpi.errors import UserError, agree, fail_alone
from h2odl_mpi.workflows.search import hyperspace, leaderboard, progress_plot
from h2odl_mpi.workflows.search.evolution import Evolution
from h2odl_mpi.workflows.search.grid_file import EVOLUTION_CRITERIA, HALVING_CRITERIA, check_idle, check_search
from h2odl_mpi.workflows.search.halving import Culling
from h2odl_mpi.workflows.search.search_dir import IDENTITY_EXCLUDES, SearchDirectory
from h2odl_mpi.evaluation.stopping import METRICS, resolve_metric, stop_early
from h2odl_mpi.training.trainer import check_frames, read_frames
from h2odl_mpi.workflows.cross_validation import train_or_cross_validate

POLL_S = 0.1           # a waiting leader looks at the search directory this often
PLOT_EVERY_S = 30.0    # search_progress.png while the search runs (and at its end)
CHECKED = 5000         # models whose parameters train's validation checks before the search begins


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
    search = None
    try:
        search = GridSearch(fixed, hyper_params, search_criteria, search_dir, ranks_per_model, comm, flag)
        return search.run()
    finally:
        if search is not None:
            search.dir.close()  # (rank 0's lock: also when the search fails)
        if stop is None:
            flag.restore()


def split_groups(comm, ranks_per_model):
    """(group communicator, group number, number of groups); the groups are consecutive ranks."""
    rank, size = rank_and_size(comm)
    if ranks_per_model < 1 or size % ranks_per_model:
        raise UserError(f"--ranks_per_model {ranks_per_model} must divide the number of ranks, {size}")
    if comm is None:
        return None, 0, 1
    return split(comm, rank // ranks_per_model, rank), rank // ranks_per_model, size // ranks_per_model


class GridSearch:
    def __init__(self, fixed, hyper, criteria, search_dir, ranks_per_model, comm, flag):
        self.world, self.flag = comm, flag
        self.rank, _ = rank_and_size(comm)
        # everything that can refuse the search, before its directory is created or written:
        # parameters, space, criteria, groups, the models' parameters, the directory, the data
        self.fixed = _check_fixed({P.canonical(k): v for k, v in fixed.items()})
        self.hyper, self.criteria = check_search(hyper, criteria)
        check_idle(self.fixed, self.hyper)
        _check_metrics(self.criteria)
        if self.criteria["strategy"] != "Evolutionary":
            hyperspace.planned_count(self.hyper, self.criteria)
        self.ranks_per_model = _ranks_per_model(ranks_per_model)
        self.group, self.group_index, self.n_groups = split_groups(comm, self.ranks_per_model)
        self.leader = rank_and_size(self.group)[0] == 0
        self.dir = SearchDirectory(search_dir)
        identity = self._identity()
        seed, groups = self.dir.prepare(comm, self.rank, identity, self.criteria["seed"], self.n_groups,
                                        [(k, self.fixed.get(k)) for k in ("train", "validation")])
        self.strategy = self._strategy(seed, groups)
        refused = self._check_proposals(seed)
        self.frames = self._read_frames()
        before = self.dir.open(comm, self.rank, identity, seed, self.n_groups)
        if (self.dir.seed, self.dir.groups) != (seed, groups):  # (another run began it meanwhile)
            self.strategy = self._strategy(self.dir.seed, self.dir.groups)
        self.culling = Culling(self.dir, self.criteria) if self.criteria["early_culling"] else None
        self.shown = set()     # (rank 0) the models already printed
        self.best_copied = None  # (rank 0) the model file best_model.h5 was last copied from
        self.plotted = time.time()  # (rank 0) when search_progress.png was last drawn; False: no matplotlib
        self.cursor = 0        # (a leader) the next model to try to claim
        self.t0 = time.time()
        size = hyperspace.space_size(self.hyper)
        if self.dir.replaced:
            self.say(f"grid: --search_dir {search_dir} held a search that never trained a model; it is replaced "
                     "by this one")
        self.say(f"grid: {self.strategy.count} model(s) planned ({self.criteria['strategy']}"
                 f"{', early culling' if self.culling and self.criteria['strategy'] != 'Halving' else ''}, "
                 f"space of {f'{size:,}' if math.isfinite(size) else 'continuous ranges'}), {self.n_groups} group(s) "
                 f"of {self.ranks_per_model} rank(s); {before} finished before; search_dir {search_dir}")
        if refused:
            self.say(f"grid: note: train refuses the parameters of {refused[0]} of the {refused[1]} model(s) "
                     f"checked; they are listed as failed (the first: {refused[2]})")

    def _identity(self):
        """What makes this search this search (search.json): a rerun must give the same."""
        c = self.criteria
        keys = ["strategy", "seed"] + (list(EVOLUTION_CRITERIA) if c["strategy"] == "Evolutionary" else []) + \
            (["early_culling"] + list(HALVING_CRITERIA) if c["early_culling"] else [])
        identity = {k: v for k, v in self.fixed.items() if k not in IDENTITY_EXCLUDES}
        identity.update({f"hyper_params.{k}": v for k, v in hyperspace.as_json(self.hyper).items()})
        identity.update({f"search_criteria.{k}": c[k] for k in keys})
        return identity

    def _strategy(self, seed, groups):
        """Where model k's parameters come from: a plan, or breeding (Evolutionary)."""
        if self.criteria["strategy"] == "Evolutionary":
            return Evolution(self.hyper, self.criteria, seed, groups)
        return hyperspace.ListedPlan(self.hyper, self.criteria, seed)

    def _check_proposals(self, seed):
        """Train's validation of the parameters of the models known before any trains (a
        plan's, Evolutionary's random first ones), at most CHECKED of them: the search is
        refused when it refuses every one (a mistake in the fixed parameters, or in all of
        the space); else (refused, checked, first error) or None."""
        known = self.strategy.count if isinstance(self.strategy, hyperspace.ListedPlan) else \
            min(self.strategy.count, self.strategy.population)
        checked = min(known, CHECKED)
        refused, first = 0, None
        for k in range(checked):
            try:
                P.validate(self._model_params(k, self.strategy.propose(k)["params"], seed))
            except UserError as e:
                refused, first = refused + 1, first or str(e)
        if checked and refused == checked:
            some = "every model" if checked == self.strategy.count else f"each of the first {checked} models"
            raise UserError(f"grid: train refuses the parameters of {some} of the search: {first}")
        return (refused, checked, first) if refused else None

    def say(self, msg):
        if self.rank == 0:
            print(msg, flush=True)

    def _read_frames(self):
        """The group's training and validation frames, read once for all its models, and
        the columns the fixed parameters name found in them (every model needs them)."""
        err, frames = None, None
        try:
            frames = read_frames(self.fixed, self.group)
            varied = set(self.hyper) | ({"response"} if "autoencoder" in self.hyper else set())
            _check_columns({k: v for k, v in self.fixed.items() if k not in varied}, *frames)
        except UserError as e:
            err = e
        agree(self.world, err)
        return frames

    # ---- the loop ------------------------------------------------------------------------
    def run(self):
        try:
            while True:
                job, remaining = self._next()
                if job is None:
                    break
                rec = self._train(job, remaining)
                if self.leader:
                    self._write_record(job, rec)
                if self.rank == 0:
                    self._refresh()
        except TrainingInterrupted:
            pass
        # a signal while a group waited or was between models stops the search as well
        stopped = allreduce_scalar(self.world, int(self.flag.signum), "max")
        board = self._finish(stopped)
        if stopped:
            raise SearchInterrupted(self.dir.path, stopped)
        return board

    def _next(self):
        """(job or None, seconds left or 0) for the group, decided by its leader."""
        pick = None
        if self.leader:
            try:
                pick = [self._claim_next(), self._remaining()]
            except UserError as e:
                fail_alone(self.world, str(e))  # the others of this group wait for this answer
        return bcast_obj(self.group, pick)

    def _claim_next(self):
        """The group's next job: a promoted rung, else a new model; while neither is there
        but other groups train (halving: one may make a model promotable), wait."""
        while not self._ended():
            job = self._claim_rung() if self.culling else None
            job = job or self._claim_model()
            if job is not None or not (self.culling and self.dir.in_flight()):
                return job
            time.sleep(POLL_S)
        return None

    def _ended(self):
        return bool(self.flag.signum) or self._remaining() < 0 or self._search_converged()

    def _claim_model(self):
        """The next model nobody claimed, with its proposal (None: no more, or the search
        ended while its proposal waited for the models it is bred from)."""
        while self.cursor < self.strategy.count:
            k = self.cursor
            self.cursor += 1
            if self.dir.claim(k):
                os.makedirs(self.dir.model_dir(f"model_{k + 1}"), exist_ok=True)
                t0 = time.time()
                proposal = self._proposal(k)
                if proposal is None:
                    self.dir.release(k)
                    return None
                return dict(self._job(k, 0, proposal), waited_s=round(time.time() - t0, 3))
        return None

    def _claim_rung(self):
        got = self.culling.promotion()
        return self._job(got[0], got[1], self.dir.proposal(got[0])) if got else None

    def _proposal(self, k):
        """Model k's proposal: kept from when it was first claimed, else made now from the
        records of the models it needs (waiting for them; None if the search ends first)."""
        saved = self.dir.proposal(k)
        if saved is not None:
            return saved
        records = self._wait_for(self.strategy.needs(k))
        if records is None:
            return None
        proposal = self.strategy.propose(k, records)
        self.dir.save_proposal(k, proposal)
        return proposal

    def _wait_for(self, needed):
        """{j: record} of the models `needed` once each has one (with halving: its rung-0
        record, which every model gets whatever happens to it later), or None when the
        search ends first."""
        needed = list(needed)
        while True:
            finals, rungs = self.dir.finished(), self.dir.rungs() if self.culling else {}
            records = {j: rungs.get((j, 0)) or finals.get(j) for j in needed}
            if all(r is not None for r in records.values()):
                return records
            if self._ended():
                return None
            time.sleep(POLL_S)

    def _job(self, k, rung, proposal):
        """What a group trains: model k (its proposal) to the end of `rung` (halving) or to
        its epochs: {"index", "rung", "proposal", "epochs" (None: the model's own), "last",
        "waited_s" (how long the proposal waited for the records it is bred from)}."""
        job = {"index": k, "rung": None, "proposal": proposal, "epochs": None, "last": True, "waited_s": 0.0}
        if self.culling:
            epochs = self._params_of(k, proposal["params"]).get("epochs", P.SPEC["epochs"][1])
            schedule = self.culling.schedule(float(epochs))
            job.update(rung=rung, epochs=schedule[rung], last=rung == len(schedule) - 1)
        return job

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
    def _params_of(self, k, combo, seed=None):
        """Model k's train parameters: the fixed ones, its own, its seed (from the search's,
        `seed`: by default the search directory's)."""
        raw = {**self.fixed, **combo}
        if int(raw.get("seed", -1)) == -1:  # one seed per model, from the search's
            raw["seed"] = ((self.dir.seed if seed is None else seed) + 7919 * (k + 1)) % (2 ** 31)
        return raw

    def _model_params(self, k, combo, seed=None):
        """Model k's train parameters as the search trains it: _params_of's, quiet, its
        files in its folder of the search directory."""
        model_id = f"model_{k + 1}"
        raw = self._params_of(k, combo, seed)
        ckpt = self.dir.checkpoints(model_id)
        raw.update(quiet_mode=True, model_out=self.dir.model_file(model_id), checkpoint_dir=ckpt, resume=ckpt)
        return raw

    def _train(self, job, remaining):
        """Train the job's model on the group (to its rung's end: halving); its record
        (done or failed).  A rung after the first continues the model's checkpoint."""
        k, proposal = job["index"], job["proposal"]
        model_id = f"model_{k + 1}"
        raw = self._model_params(k, proposal["params"])
        if job["epochs"] is not None:  # a rung: to its epochs, keeping the last model (see halving.py)
            raw["epochs"] = job["epochs"]
            if not job["last"]:
                raw["overwrite_with_best_model"] = False
        if remaining > 0:
            raw["max_runtime_secs"] = min(float(raw.get("max_runtime_secs") or math.inf), remaining)
        rec = {"index": k, "model_id": model_id, "params": proposal["params"], "parents": proposal["parents"],
               "island": proposal["island"], "rung": job["rung"], "seed": raw["seed"], "group": self.group_index,
               "ranks": self.ranks_per_model, "waited_s": job["waited_s"]}
        t0 = time.time()
        try:
            run = train_or_cross_validate(P.validate(raw), self.group, stop=self.flag, data=self.frames)
        except UserError as e:
            return {**rec, "status": "failed", "error": str(e), "wall_time_s": time.time() - t0}
        s = run.summary
        return {**rec, "status": "done", "kind": run.info.kind, "metrics": dict(s["metrics"]),
                "model_path": os.path.relpath(self.dir.model_file(model_id), self.dir.path),
                "wall_time_s": time.time() - t0, "training_time_s": s["training_time_s"],
                "training_samples": s["training_samples"], "epochs": s["epochs"], "stop_reason": s["stop_reason"],
                "continued_from": s["continued_from"]}

    def _write_record(self, job, rec):
        """The model's record; at the end of a rung below its last: the rung's record (the
        model waits there), unless it stopped before the rung's epochs (then it is done)."""
        rec["finished"] = time.time()
        waits = not job["last"] and rec["status"] == "done" and rec.get("stop_reason") == "epochs reached"
        try:
            if waits:
                self.dir.record_rung(job["index"], job["rung"], rec)
            else:
                self.dir.record(job["index"], rec)
        except UserError as e:
            fail_alone(self.world, str(e))

    # ---- what rank 0 shows and writes ----------------------------------------------------
    def _refresh(self, final=False):
        """World rank 0: print the models finished since it last looked; rewrite the
        leaderboard when there are new ones (and at the end); returns the board."""
        records = list(self.dir.finished().values())
        board = leaderboard.rows(records, self.criteria["sort_by"], self.dir.path, list(self.hyper))
        new = [r for r in board if r["model_id"] not in self.shown]
        for row in sorted(new, key=lambda r: leaderboard.id_order(r["model_id"])):
            self.say(leaderboard.line(row, list(self.hyper)))
            self.shown.add(row["model_id"])
        if new or final:
            self._write_board(records, board, final)
        return board

    def _write_board(self, records, board, final):
        """leaderboard.csv/json; best_model.h5 when the best model changed; the plot."""
        best = leaderboard.best_of(board)
        try:
            leaderboard.write(self.dir.path, board, list(self.hyper))
            if best is not None and best["model_path"] != self.best_copied:
                leaderboard.write_best(self.dir.path, best)
                self.best_copied = best["model_path"]
            self._plot(records, final)
        except UserError as e:
            fail_alone(self.world, str(e))

    def _plot(self, records, final):
        """search_progress.png: at the end, and every PLOT_EVERY_S while the search runs."""
        if self.plotted is False or (not final and time.time() - self.plotted < PLOT_EVERY_S):
            return
        plt = progress_plot.pyplot()
        if plt is None:
            self.say(progress_plot.MISSING)
            self.plotted = False
            return
        progress_plot.write(self.dir.path, records, self.criteria["sort_by"], self.dir.created, plt)
        self.plotted = time.time()

    def _finish(self, stopped):
        """Every group is done: rank 0 culls the models waiting in a rung (unless a signal
        stopped the search: they go on when it continues), writes and prints the
        leaderboard; every rank gets it."""
        agree(self.world, None)
        board = None
        if self.rank == 0:
            if self.culling and not stopped:
                self._cull()
            board = self._refresh(final=True)
            culled = sum(r['status'] == 'culled' for r in board)
            self.say(f"grid: {sum(r['status'] == 'done' for r in board)} model(s) done, "
                     + (f"{culled} culled, " if self.culling else "")
                     + f"{sum(r['status'] == 'failed' for r in board)} failed; leaderboard (best first):")
            for row in board:
                self.say(f"{row['rank']:>4} " + leaderboard.line(row, list(self.hyper)))
            self.dir.close()
        return bcast_obj(self.world, board)

    def _cull(self):
        try:
            self.culling.cull_waiting()
        except UserError as e:
            fail_alone(self.world, str(e))


def _ranks_per_model(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UserError(f"--ranks_per_model: a whole number of ranks, not {value!r}") from None


def _check_metrics(criteria):
    """sort_by and stopping_metric: metric names (else found only when the first models end)."""
    leaderboard.sort_key_of(criteria["sort_by"], "classification")
    try:
        resolve_metric(criteria["stopping_metric"])
    except ValueError as e:
        raise UserError(f"search_criteria: {e}") from None


def _check_columns(fixed, frame, vframe):
    """The data has rows and the columns `fixed` (the fixed parameters that no model
    changes) names: else train refuses every model of the search."""
    check_frames(fixed, frame, vframe)
    names, train = list(frame.names), fixed["train"]
    response = None if fixed.get("autoencoder") else fixed.get("response")
    if response and response not in names:
        raise UserError(f"response column {response!r} is not in the training data {train} "
                        f"(columns: {', '.join(names[:10])}{' ...' if len(names) > 10 else ''})")
    for key in ("weights_column", "offset_column", "fold_column"):
        if fixed.get(key) and fixed[key] not in names:
            raise UserError(f"{key}: no column named {fixed[key]!r} in {train}")
    for name in fixed.get("ignored_columns") or []:
        if name not in names:
            raise UserError(f"ignored_columns: no column named {name!r} in {train}")


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
