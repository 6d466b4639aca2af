"""The training loop: Hogwild! on each rank, the ranks' models combined, scoring.

Each iteration, on every rank of the run's communicator:

    order = pick this rank's rows            (iteration_rows.RowPicker)
    train them                               (hogwild.Blocks: the kernel's threads)
    combine the ranks' models                (combine: one object, plain averaging by default)
    agree on the iteration's statistics      (collectives.agreed_sum: the same bits everywhere)
    decide: tune, score, stop, checkpoint    (iteration_rows, scoring, checkpoint)
    report                                   (reporting)

The rows per iteration (train_samples_per_iteration) are split among the ranks in
proportion to their rows; with TSPI = -2 they are tuned so that combining takes about
target_ratio_comm_to_comp of the time.  Every rank scores its own rows and the metrics are
combined exactly; rank 0 prints and writes files.  `train()` returns the run as a value
(`TrainingRun`: the model, the data description, the history, the metrics) and writes files
only when the parameters name them; it can be called many times in one process, on any
communicator, and leaves no signal handler or other global state behind.  On more than one
rank a stall watchdog (training.watchdog, --stall_timeout) watches the ranks for the run's
length: a rank that stops answering ends the job with a checkpoint of the last combined
model every rank keeps (checkpoint.LastCombined) and the requeue status.
"""
from dataclasses import dataclass, field
import time

import numpy as np

from h2odl_mpi.training import checkpoint as ckpt
from h2odl_mpi.model import importance
from h2odl_mpi import params as P
from h2odl_mpi.collectives import agreed_sum, allgather_counts, allreduce_scalar, rank_and_size, sum_in_place
from h2odl_mpi.training.combine import combiner_for
from h2odl_mpi.errors import UserError, agree
from h2odl_mpi.data.frame import Frame
from h2odl_mpi.threads import thread_scheme, threads_per_rank
from h2odl_mpi.training.hogwild import Blocks, row_seed
from h2odl_mpi.training.decoded_rows import DecodeBudget
from h2odl_mpi.training.iteration_rows import RowPicker, RowsPerIteration, row_shares, rows_for
from h2odl_mpi.kernel import Network
from h2odl_mpi.training.model_setup import check_checkpoint_levels, net_config, run_seed, starting_model
from h2odl_mpi.training.outputs import check_outputs, write_results
from h2odl_mpi.data.preprocess import Preprocess, check_validation_columns
from h2odl_mpi.training.reporting import Reporter, history_row, summary_of, with_cross_validation
from h2odl_mpi.training.scoring import BestModel, Scorer, StopRules, scoring_due
from h2odl_mpi.training.watchdog import ROWS, Watchdog


@dataclass
class TrainingRun:
    """A finished training run.  `run["key"]` reads the summary (`run.summary["key"]`)."""
    params: dict
    network: Network
    model: np.ndarray          # float32: weights, biases, optimizer state (network.segments())
    info: Preprocess           # the data description: inputs, encodings, scaling, response
    history: list              # the scoring history, one dict a scoring event
    summary: dict              # what the summary JSON holds
    state: dict                # the training state a checkpoint of the end holds

    @property
    def metrics(self):
        """{"training": ..., "validation": ...} of the final model."""
        return self.summary["metrics"]

    def __getitem__(self, key):
        return self.summary[key]


@dataclass
class TrainingData:
    """This rank's training rows: the compressed store and the kernel's view of it."""
    frame: Frame
    vframe: Frame
    rows: object               # kernel.Rows of this rank's rows: FRAME, or DENSE once decoded (decoded_rows)
    usable: np.ndarray         # indices of rows with a response and a non-zero weight
    n_total: int               # rows of an epoch over all ranks (balanced, with balance_classes)
    local_counts: list         # usable rows of every rank
    balance: np.ndarray = None  # balance_classes: sampling probabilities of the usable rows

    @property
    def n_local(self):
        return len(self.usable)


@dataclass
class Progress:
    """Where the run is, the same on every rank."""
    samples: int
    iteration: int
    tspi_used: list = field(default_factory=list)
    local_used: list = field(default_factory=list)
    train_metrics: dict = field(default_factory=dict)
    valid_metrics: dict = field(default_factory=dict)
    nonfinite: bool = False
    stop_reason: str = None
    interrupted: str = None    # the checkpoint written after a stop signal
    importances: list = None


@dataclass
class Clock:
    """Seconds spent, summed over iterations (compute, combine and wait are rank means)."""
    t_start: float
    data: float = 0.0
    restore: float = 0.0
    first_row: float = None
    comp: float = 0.0
    comm: float = 0.0
    wait: float = 0.0
    score: float = 0.0
    last_score_start: float = 0.0  # when the last scoring began and ended (H2O's duty cycle)
    last_score_end: float = 0.0
    last_ckpt: float = 0.0


class Stats:
    """One iteration's statistics, summed over the ranks in rank order (agreed bits)."""
    FIELDS = ("t_comp", "t_comm", "nonfinite", "score", "time_up", "t_wait", "signal", "checkpoint")

    def __init__(self, comm, size, values):
        total = agreed_sum(comm, np.array(values, dtype=np.float64))
        for name, v in zip(self.FIELDS, total):
            setattr(self, name, float(v))
        self.t_comp, self.t_comm, self.t_wait = self.t_comp / size, self.t_comm / size, self.t_wait / size


def train(params, comm=None, stop=None, combiner=None, config_file=None, data=None, holdout=None,
          cross_validation=None):
    """Train with validated params over `comm` (an mpi4py communicator or None); returns a
    TrainingRun.  Files are written (by rank 0) only where params name them.

    With a checkpoint directory, SIGTERM/SIGUSR1 stop training within a block of rows on
    every rank, write a checkpoint and raise checkpoint.TrainingInterrupted (the CLI exits
    with 85).  `stop`: a checkpoint.StopFlag installed earlier (the CLI's, which also sees
    signals that arrive while MPI starts, or a search's, which trains many models): the
    caller owns it and restores it; by default one is installed here, and the previous
    handlers are back when train() returns.  `combiner`: how the ranks' models are
    combined (see h2odl_mpi.training.combine); by default the one the parameters select.
    `config_file`: the --config file the parameters were read from (no output may overwrite it).
    `data`: the (training, validation or None) frames already read on `comm` from the files
    params name (a search reads them once for many models); by default they are read here.
    train() trains one model: with nfolds or fold_column the run is a cross-validation
    (h2odl_mpi.workflows.cross_validation.train_or_cross_validate), which calls train() for
    each fold model with `holdout` (folds.Holdout: the fold's rows, left out of training and
    scored as its validation rows) and for the main model with `cross_validation` (its
    results, which the summary and the model file carry)."""
    if (params.get("nfolds") or params.get("fold_column")) and holdout is None and cross_validation is None:
        raise UserError("nfolds/fold_column: train() trains one model; a cross-validation is "
                        "h2odl_mpi.workflows.cross_validation.train_or_cross_validate(params, comm)")
    flag = stop or ckpt.StopFlag()
    if params.get("checkpoint_dir"):
        flag.install()
    owner = ckpt.CheckpointDirectory(params.get("checkpoint_dir"), comm)  # its lock: rank 0's
    watch = None
    try:
        watch = Watchdog.start(params, comm, P.SPEC["stall_timeout"][1])  # (None: off)
        if watch is not None:  # (until the session keeps its model)
            watch.keeper = lambda culprits: _nothing_kept(params, owner, watch, culprits)
        combiner = combiner or combiner_for(params)
        session = Session(params, comm, flag, combiner, owner, config_file, data, holdout, cross_validation, watch)
        return session.run()
    finally:
        try:
            if combiner is not None and hasattr(combiner, "finish"):
                combiner.finish()  # (its node communicators)
            if watch is not None:
                watch.stop()
        finally:
            if stop is None:
                flag.restore()
            owner.release()


def _nothing_kept(params, owner, watch, culprits):
    """What the stall watchdog says before training starts, or without a checkpoint_dir."""
    _let_go(owner, watch, culprits)
    if params.get("checkpoint_dir"):
        return f"training had not started: nothing to save (the newest checkpoint in {params['checkpoint_dir']} stands)"
    return "no checkpoint_dir: the model trained so far is lost"


def _let_go(owner, watch, culprits):
    """The job ends: the checkpoint directory's lock goes, rank 0's own or, when rank 0
    stopped answering, the lock file it holds."""
    owner.release()
    if 0 in culprits:
        owner.break_lock(watch.table[0]["pid"], watch.table[0]["host"])


def read_data(params, comm):
    """This rank's share of the training data (all of it when replicated) and the
    validation data, in the compressed column store, checked."""
    return check_frames(params, *read_frames(params, comm))


def read_frames(params, comm):
    """(training, validation or None) frames of the files `params` names, read on `comm`;
    replicated as replicate_training_data says (H2O's default where params leave it out, as
    a search's fixed parameters may)."""
    replicate = params.get("replicate_training_data", P.SPEC["replicate_training_data"][1])
    na = params.get("na_strings")  # H2O-3's parse option: missing besides the defaults
    frame = Frame.read(params["train"], comm=comm, replicate=bool(replicate), na_strings=na)
    vframe = Frame.read(params["validation"], comm=comm, na_strings=na) if params.get("validation") else None
    return frame, vframe


def check_frames(params, frame, vframe):
    """The frames, refused when empty or when the validation columns do not fit."""
    for f, path in ((frame, params["train"]), (vframe, params.get("validation"))):
        if f is not None and f.n_rows == 0:
            raise UserError(f"{path}: no data rows")
    check_validation_columns(params, vframe)  # before any training, not at the first scoring
    return frame, vframe


def training_rows(params, comm, frame, vframe, info, holdout=None):
    """The kernel's rows of this rank and what an epoch and the row shares are made of;
    a fold model's (`holdout`) without the rows of its fold."""
    rows = info.rows(frame)
    n_total, balance = frame.n_rows, None
    if holdout is not None:  # cross-validation: the fold's rows are neither trained nor counted
        rows.y, n_total = holdout.training_targets(rows.y), holdout.n_train
    usable = rows.usable_rows()
    if info.class_rates is not None:  # balance_classes: per-row sampling probabilities
        rates = info.sampling_rates(rows.y)[usable]
        n_total = max(1, int(round(allreduce_scalar(comm, float(rates.sum())))))  # the balanced epoch
        balance = rates / rates.sum() if rates.sum() > 0 else None
    local_counts = allgather_counts(comm, len(usable))
    if sum(local_counts) == 0:
        raise UserError(f"{params['train']}: no usable training rows (missing response or zero weight)")
    return TrainingData(frame, vframe, rows, usable, n_total, local_counts, balance)


class Session:
    """One training run in progress: its parts, made once, and the loop over them."""

    def __init__(self, params, comm, flag, combiner, owner=None, config_file=None, data=None, holdout=None,
                 cross_validation=None, watch=None):
        self.params, self.comm, self.flag, self.combiner = params, comm, flag, combiner
        self.watch, self.last = watch, None  # the stall watchdog; the model it can save (_keep)
        self.holdout, self.cross_validation = holdout, cross_validation  # (cross-validation's, see train())
        self.owner = owner  # checkpoint.CheckpointDirectory: the checkpoint directory's lock
        self.rank, self.size = rank_and_size(comm)
        self.clock = Clock(t_start=time.time())
        self.report = Reporter(params, self.rank)
        check_outputs(params, comm, self.rank, owner, config_file)  # outputs vs inputs, writable, locked
        if watch is not None and self.rank == 0 and params.get("checkpoint_dir"):
            ckpt.write_rank_table(params["checkpoint_dir"], watch.table)  # (who is behind a launcher's PID)
        frame, vframe = check_frames(params, *data) if data is not None else read_data(params, comm)
        self.clock.data = time.time() - self.clock.t_start
        self.restored = ckpt.restore(params, comm, self.rank, frame, self.report.say)
        self.clock.restore = time.time() - self.clock.t_start - self.clock.data
        self.info = self.restored["info"] if self.restored else Preprocess.fit(frame, params)
        if self.restored:
            check_checkpoint_levels(self.info, frame)
        self.info.check_data(frame, vframe, fitted=not self.restored)  # Inf, overflow: refused
        self.data = training_rows(params, comm, frame, vframe, self.info, holdout)
        self.threads = self._threads()
        self.scheme = thread_scheme(params, self.threads)
        replicas = self.threads if self.scheme == "replicas" else 0
        self.network = Network(net_config(params, self.info, comm, replicas))  # (sizes checked on every rank)
        self.seed = run_seed(params, comm, self.restored)
        self.model = starting_model(params, comm, self.network, self.info, self.seed, self.restored)
        combiner.start(comm, self.model, self.network.n_params,
                       ckpt.combiner_state(self.restored, combiner, self.report.say))
        self.report.start(self.size, self.threads, self.network, params, self.data.n_total, self.info,
                          getattr(combiner, "layout", "flat"), self.scheme)
        self._place_start()
        self.decode = self._decode_budget()  # the rows read every iteration, decoded once where it pays
        self.data.rows = self.decode.decoded(self.data.rows, self.threads)
        self._make_scorers()
        self.blocks = Blocks(self.network, self.threads, watch.beating(self.flag) if watch else self.flag,
                             scheme=self.scheme)
        self.tspi = RowsPerIteration(params, comm, self.data, combiner,
                                     (self.blocks.kernel, self.model, self.threads, self.seed),
                                     self.restored["state"] if self.restored else None)
        if self.tspi.warning:
            self.report.say(f"warning: {self.tspi.warning}")
        self.history = list(self.restored["history"]) if self.restored else []
        self.best = BestModel(self.info.kind, params["overwrite_with_best_model"], params["stopping_metric"])
        self.stop_rules = StopRules(params, self.info)
        self.summary, self.state = None, None
        if watch is not None and params.get("checkpoint_dir"):
            self._stall_keeper()

    def _stall_keeper(self):
        """What the stall watchdog saves: the last combined model, which every rank keeps
        (the same bits everywhere), in the run's lineage."""
        self.owner.share_lineage(self, self.rank)
        self.last = ckpt.LastCombined()
        self._keep()
        directory = self.params["checkpoint_dir"]

        def save(culprits):
            done = self.last.write(directory, self)
            _let_go(self.owner, self.watch, culprits)
            return f"rank {self.rank}: {done}"
        self.watch.keeper = save

    def _keep(self):
        """After an iteration: the combined model and the state, for the stall watchdog."""
        if self.last is not None:
            self.last.keep(self.model, self.current(), self.training_state(streams=False), self.history)

    def _threads(self):
        """Kernel threads per rank; a refused count (from the environment, which may differ
        between nodes) fails every rank together."""
        threads, err = None, None
        try:
            threads = threads_per_rank(self.params, self.comm)
        except UserError as e:
            err = e
        agree(self.comm, err)
        return threads

    def _decode_budget(self):
        """What the rows read every iteration may take decoded (decoded_rows.DecodeBudget):
        nothing unless more than an epoch is left to train, so that each is read more than
        once (collective: every rank knows what is left)."""
        left = (self.target_samples - self.progress.samples) / self.data.n_total
        return DecodeBudget(self.comm) if left > 1 else DecodeBudget(nbytes=0)

    def _validation_rows(self):
        """The validation frame's rows; a fold model's: the rows of its fold it scores."""
        rows = self.info.rows(self.data.vframe, training=False)
        if self.holdout is not None:
            rows.y = self.holdout.validation_targets(rows.y)
        return rows

    def _make_scorers(self):
        p, d, info = self.params, self.data, self.info
        self.valid_scorer = (Scorer(d.vframe, self._validation_rows(), info, p,
                                    p["score_validation_samples"], self.seed + 2, self.comm,
                                    stratified=p["score_validation_sampling"] == "Stratified",
                                    budget=self.decode, threads=self.threads)
                             if d.vframe is not None else None)
        self.train_scorer = Scorer(d.frame, d.rows, info, p, p["score_training_samples"], self.seed + 1, self.comm,
                                   budget=self.decode, threads=self.threads)
        if self.network.config.loss == "Huber" and not self.restored:  # the initial model's residuals
            self.train_scorer.estimate_huber_delta(self.network, self.model, self.threads, p["huber_alpha"])

    def _place_start(self):
        """Where training starts (samples, iteration), where it ends, the random stream."""
        p, n_total = self.params, self.data.n_total
        self.target_samples = rows_for(p["epochs"], n_total)
        self.progress = Progress(samples=0, iteration=0)
        self.rng = np.random.default_rng([self.seed, self.rank])
        if self.restored:
            st = self.restored["state"]
            start, done_epochs = int(st["samples"]), float(st["epochs"])
            self.progress = Progress(samples=start, iteration=int(st["iteration"]))
            if p["epochs"] <= done_epochs and not p.get("resume"):
                raise UserError(f"epochs = {p['epochs']} must be larger than the checkpoint's {done_epochs:.6g} "
                                "epochs (epochs is the total, as in H2O)")
            if int(st.get("n_total", -1)) != n_total:  # other data: the remaining epochs on it
                self.target_samples = start + max(0, rows_for(p["epochs"] - done_epochs, n_total))
            self.target_samples = max(self.target_samples, start)
            self.rng = ckpt.restore_rng(self.rng, self.restored, self.seed, self.rank, self.size)
            self.report.say(f"continuing {self.restored['path']} at iteration {self.progress.iteration}, "
                            f"{done_epochs:.4g} epochs, {start:,} samples")
            if self.target_samples <= start:  # a resume of a finished run (its parameters checked)
                self.report.say(f"resume: {self.restored['path']} has trained its {done_epochs:.4g} epochs: nothing "
                                "to train; the outputs written are that run's model (a new experiment needs "
                                "another checkpoint_dir)")
        self.start_iteration, self.start_samples = self.progress.iteration, self.progress.samples
        self.picker = RowPicker(self.data, self.rng, p["shuffle_training_data"])
        self.checkpoint_every = ckpt.parse_interval(p["checkpoint_interval"])  # (kind, amount)
        history = self.restored["history"] if self.restored else []
        self.duration_before = float(history[-1].get("duration_s", 0.0)) if history else 0.0  # continued runs

    # ---- the loop -------------------------------------------------------------------
    def run(self):
        self.clock.last_score_start = self.clock.last_score_end = self.clock.last_ckpt = time.time()
        p = self.progress
        while p.samples < self.target_samples:
            p.iteration += 1
            rng_before = self.rng.bit_generator.state  # (to undo an iteration a signal cut to nothing)
            order = self.pick_rows()
            trained, nonfinite, t_comp = self.train_rows(order)
            rows_all, t_wait, t_comm = self.combine(trained)
            stats = self.agree(t_comp, t_comm, t_wait, nonfinite, rows_all)
            if not self.decide(stats, trained, rows_all, rng_before):
                break
            self._keep()
        return self.finish()

    def pick_rows(self):
        """This rank's rows of the iteration: its share of the rows per iteration."""
        tspi_now = min(self.tspi.value, self.target_samples - self.progress.samples)
        mine = int(row_shares(tspi_now, self.data.local_counts)[self.rank])
        order, tell = self.picker.pick(mine)
        if tell:
            self.report.say("shuffling the training rows: every iteration trains on all of them "
                            "(H2O enables shuffle_training_data then)")
        return order

    def current(self):
        """The global model (to score, keep or save): what the combining rule holds."""
        return self.combiner.current(self.model)

    def train_rows(self, order):
        """The rows through the kernel's threads: (rows done, non-finite seen, seconds)."""
        if self.clock.first_row is None:
            self.clock.first_row = time.time() - self.clock.t_start
        if self.watch is not None:
            self.watch.at(self.progress.iteration, ROWS)
        t0 = time.perf_counter()
        trained, nonfinite = self.blocks.train(self.model, self.data.rows, order, self.progress.samples,
                                               row_seed(self.seed, self.rank, self.progress.iteration))
        if self.watch is not None:
            self.watch.at(self.progress.iteration)
        return trained, nonfinite, time.perf_counter() - t0

    def combine(self, trained):
        """Every rank's model combined: (rows trained over all ranks, wait s, combine s).
        Fewer rows than the shares only after a stop signal; the exact integer sum doubles
        as the barrier that times waiting for slower ranks."""
        t1 = time.perf_counter()
        rows_all = int(sum_in_place(self.comm, np.array([trained], dtype=np.int64))[0])
        t2 = time.perf_counter()
        self.combiner.combine(self.comm, self.model, trained, rows_all)
        return rows_all, t2 - t1, time.perf_counter() - t2

    def agree(self, t_comp, t_comm, t_wait, nonfinite, rows_all):
        """The iteration's statistics; rank 0's clock decides when to score, stop for time
        and checkpoint, and the decision travels with the statistics."""
        c, p, params = self.clock, self.progress, self.params
        now, done = time.time(), p.samples + rows_all >= self.target_samples
        lead = self.rank == 0
        due = lead and rows_all > 0 and (done or p.iteration == self.start_iteration + 1 or scoring_due(
            now, c.last_score_start, c.last_score_end, params["score_interval"], params["score_duty_cycle"]))
        time_up = lead and params["max_runtime_secs"] > 0 and now - c.t_start >= params["max_runtime_secs"]
        ck_kind, ck_every = self.checkpoint_every
        ck_due = lead and bool(params.get("checkpoint_dir")) and not done and (
            (ck_kind == "seconds" and now - c.last_ckpt >= ck_every) or
            (ck_kind == "iterations" and p.iteration % ck_every == 0))
        return Stats(self.comm, self.size, (t_comp, t_comm, float(nonfinite), float(due or time_up),
                                            float(time_up), t_wait, float(self.flag.signum), float(ck_due)))

    def decide(self, stats, trained, rows_all, rng_before):
        """Tune, score, stop, checkpoint, from agreed statistics; False ends the loop."""
        c, p = self.clock, self.progress
        p.samples += rows_all  # rows processed, as H2O counts them (skipped rows included)
        c.comp, c.comm, c.wait = c.comp + stats.t_comp, c.comm + stats.t_comm, c.wait + stats.t_wait
        p.tspi_used.append(rows_all)
        p.local_used.append(trained)
        if stats.nonfinite > 0 or not np.all(np.isfinite(self.model[:self.network.n_params])):
            p.nonfinite = True
            if self.best.model is None:  # (the same on every rank) nothing good to keep: no model of NaNs
                kept = "" if self.params["overwrite_with_best_model"] else " (overwrite_with_best_model=false keeps none)"
                raise UserError(f"training diverged at iteration {p.iteration}: non-finite weights or loss and "
                                f"no good model scored before it{kept}; nothing written.  Try a lower rate, "
                                "standardize=true, or check the data for huge values")
            self.report.say(f"iteration {p.iteration}: non-finite weights or loss; stopping and "
                            "keeping the best model scored before it")
            self.model[:] = self.best.model
            return False
        self.tspi.update(rows_all, stats.t_comp, stats.t_comm)
        if stats.score > 0:
            self.score(rows_all)
        if stats.signal > 0 or stats.checkpoint > 0:
            self.checkpoint(rows_all, rng_before, signalled=stats.signal > 0)
            if p.interrupted:
                return False
        if stats.time_up > 0:
            p.stop_reason = p.stop_reason or f"max_runtime_secs={self.params['max_runtime_secs']} reached"
        if p.stop_reason:
            self.report.say(f"stopping early: {p.stop_reason}")
            return False
        return True

    def score(self, rows_all):
        """A scoring event: metrics, the Huber delta, the best model, stop rules, history."""
        c, p, params = self.clock, self.progress, self.params
        ts, c.last_score_start = time.perf_counter(), time.time()
        model = self.current()  # (a copy for some rules: taken once)
        self._score_metrics(model)
        if self.network.config.loss == "Huber":
            self.train_scorer.estimate_huber_delta(self.network, model, self.threads, params["huber_alpha"])
        c.score += time.perf_counter() - ts
        c.last_score_end = time.time()
        self.best.offer(model, p.valid_metrics or p.train_metrics)
        p.stop_reason = self.stop_rules.reason(p.train_metrics, p.valid_metrics)
        elapsed = time.time() - c.t_start
        row = history_row(p.iteration, p.samples / self.data.n_total, p.samples, self.duration_before + elapsed,
                          rows_all,
                          c.comm / max(c.comm + c.comp, 1e-12), p.train_metrics, p.valid_metrics)
        self.history.append(row)
        self.report.progress(row, self.info, p.samples, self.target_samples, c.comp + c.comm, elapsed,
                             self.start_samples)

    def _score_metrics(self, model=None):
        p, model = self.progress, self.current() if model is None else model
        p.train_metrics = self.train_scorer.score(self.network, model, self.threads)
        p.valid_metrics = self.valid_scorer.score(self.network, model, self.threads) \
            if self.valid_scorer else {}

    def _add_binomial_tables(self):
        """The final metrics of a two-class model with H2O's thresholds table, maximum
        criteria and gains/lift (its ROC and precision-recall curves)."""
        p = self.progress
        for metrics, scorer in ((p.train_metrics, self.train_scorer), (p.valid_metrics, self.valid_scorer)):
            if metrics and scorer is not None:
                tables = scorer.binomial_tables(self.network, self.model, self.threads)
                metrics.update({k: v for k, v in tables.items() if v is not None})

    def checkpoint(self, rows_all, rng_before, signalled):
        """A checkpoint now (the same decision on every rank); after a stop signal the
        loop ends and the run raises TrainingInterrupted."""
        p = self.progress
        if rows_all == 0:  # a signal before any row of this iteration: it did not happen
            p.iteration -= 1
            self.rng.bit_generator.state = rng_before
        path = ckpt.write_checkpoint(self.params["checkpoint_dir"], self.comm, self.rank, self, self.current(),
                                     self.training_state())
        self.clock.last_ckpt = time.time()
        if signalled:
            p.interrupted = path
            self.report.say(f"signal received: stopped at iteration {p.iteration}, "
                            f"checkpoint {path}; exit status {ckpt.REQUEUE_EXIT_CODE} (requeue)")

    def training_state(self, streams=True):
        return ckpt.training_state(self.comm, self.rng, self.progress, self.data.n_total, self.seed, self.size,
                                   self.tspi.value, self.tspi.tuned_for, self.combiner, self.model, streams)

    # ---- the end --------------------------------------------------------------------
    def finish(self):
        """The final model (the best one where asked), its metrics, the files, the value."""
        p, params = self.progress, self.params
        if p.interrupted:
            agree(self.comm, None)  # rank 0 has written the checkpoint before anyone exits
            raise ckpt.TrainingInterrupted(p.interrupted, self.flag.signum or "?")
        self.state = self.training_state()  # (the combining rule's state, before its model is taken)
        if not p.nonfinite:
            self.model = self.current()
        if p.iteration == self.start_iteration and (self.restored or not self.target_samples):  # nothing to train
            self._score_metrics(self.model)
        if not p.nonfinite and self.best.beats(p.valid_metrics or p.train_metrics):  # the same on every rank
            self.model[:] = self.best.model
            self._score_metrics(self.model)
        if not p.nonfinite and self.info.classification and self.info.n_classes == 2:
            self._add_binomial_tables()
        if params["variable_importances"]:
            p.importances = importance.table(self.info.input_names, importance.gedeon(self.network, self.model))
        self.summary = with_cross_validation(summary_of(self, self.clock, p), self.cross_validation)
        if params.get("checkpoint_dir"):
            ckpt.write_checkpoint(params["checkpoint_dir"], self.comm, self.rank, self, self.model, self.state)
        if self.rank == 0:
            write_results(self.comm, self, self.report.say)
            self.report.final(self.summary, self.info)
        if self.watch is not None:  # every rank waits for rank 0's files, watched: no one left hanging
            agree(self.comm, None)
        return TrainingRun(params, self.network, self.model, self.info, self.history, self.summary, self.state)
