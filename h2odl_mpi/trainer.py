"""The training protocol: Hogwild! on each rank, model averaging across ranks, scoring.

Each iteration every rank trains its share of train_samples_per_iteration (TSPI) rows with
the kernel's threads, then one in-place Allreduce over the single float32 model buffer
(weights, biases and optimizer state) divided by the number of ranks makes every rank hold
the same average.  Every rank weighs equally: with replicated data each processes the same
number of rows.  TSPI = -2 is tuned while running: the measured compute time per row and the
measured Allreduce time of the model set the next iteration's TSPI so that communication
takes about target_ratio_comm_to_comp of the time.  Rank 0 scores, logs and writes files.
"""
import csv
import json
import math
import os
import tempfile
import time

import numpy as np

from h2odl_mpi import importance, metrics
from h2odl_mpi.atomic import replacing
from h2odl_mpi.frame import Frame
from h2odl_mpi.preprocess import Preprocess
from h2odl_mpi.errors import UserError, agree, fail_alone
from h2odl_mpi import checkpoint as ckpt
from h2odl_mpi.kernel import NetConfig, Network, Rows, available_cores
from h2odl_mpi.model_io import export_weights_and_biases, load_model, save_model
from h2odl_mpi.stopping import EarlyStopping, best_is_better


def _mpi():
    from mpi4py import MPI
    return MPI


def threads_per_rank(params, comm):
    """--threads, else OMP_NUM_THREADS, else the batch system's cpus-per-task, else the
    cores this process may use divided among the ranks on this node."""
    if params.get("threads"):
        return int(params["threads"])
    for var in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK", "PBS_NUM_PPN", "NCPUS"):
        v = os.environ.get(var, "")
        if v.isdigit() and int(v) > 0:
            return int(v)
    local = 1
    if comm is not None and comm.Get_size() > 1:
        MPI = _mpi()
        node = comm.Split_type(MPI.COMM_TYPE_SHARED)
        local = node.Get_size()
        node.Free()
    return max(1, available_cores() // local)


def net_config(params, info):
    """The kernel's NetConfig for validated params and a data description."""
    act = params["activation"].replace("WithDropout", "")
    units = [info.n_inputs] + list(params["hidden"])
    dist, loss = params["distribution"], params["loss"]
    kw = {}
    if info.autoencoder:
        output, kloss = "autoencoder", "Quadratic"
        units.append(units[0])
    elif info.classification:
        if loss not in ("Automatic", "CrossEntropy"):
            raise UserError(f"loss {loss} with a categorical response is not supported: use CrossEntropy")
        output, kloss = "softmax", "Quadratic"
        units.append(info.n_classes)
    else:
        output = "linear"
        units.append(1)
        by_dist = {"poisson": "poisson", "gamma": "gamma", "tweedie": "tweedie", "bernoulli": "bernoulli",
                   "laplace": "Absolute", "huber": "Huber", "quantile": "Quantile"}
        kloss = by_dist.get(dist, "Quadratic" if loss in ("Automatic", "CrossEntropy") else loss)
        if loss == "CrossEntropy":
            raise UserError("loss CrossEntropy needs a categorical response")
    return NetConfig(
        units=units, activation=act, output=output, loss=kloss,
        input_dropout_ratio=params["input_dropout_ratio"],
        hidden_dropout_ratios=list(params["hidden_dropout_ratios"]),
        adaptive_rate=params["adaptive_rate"], rho=params["rho"], epsilon=params["epsilon"],
        rate=params["rate"], rate_annealing=params["rate_annealing"], rate_decay=params["rate_decay"],
        momentum_start=params["momentum_start"], momentum_ramp=params["momentum_ramp"],
        momentum_stable=params["momentum_stable"],
        nesterov_accelerated_gradient=params["nesterov_accelerated_gradient"],
        l1=params["l1"], l2=params["l2"], max_w2=params["max_w2"],
        quantile_alpha=params["quantile_alpha"], tweedie_power=params["tweedie_power"],
        fast_mode=params["fast_mode"], **kw)


def sample_rows(n, k, seed, classes=None):
    """k of n row indices without replacement, sorted; with `classes` (class index per row,
    NaN = missing) each class keeps its share of the rows (H2O's Stratified sampling)."""
    rng = np.random.default_rng(seed)
    if classes is None:
        return np.sort(rng.choice(n, k, replace=False))
    labels = np.where(np.isnan(classes), -1, classes).astype(np.int64)
    values, counts = np.unique(labels, return_counts=True)
    want = row_shares(k, counts)
    picks = [rng.choice(np.flatnonzero(labels == v), int(w), replace=False) for v, w in zip(values, want)]
    return np.sort(np.concatenate(picks))


class Scorer:
    """Metrics of a model on a data set, or on a fixed sample of its rows, as H2O reports
    them.  Each rank scores its own rows (its share of the sample, which keeps every rank's
    share of the usable rows) and the metrics are combined exactly over `comm`, so every
    rank holds the same numbers.  A sample is decoded once into sparse rows."""

    def __init__(self, frame, rows, info, params, n_max, seed, comm=None, stratified=False):
        rank = comm.Get_rank() if comm is not None else 0
        usable = rows.usable_rows()
        counts = comm.allgather(len(usable)) if comm is not None else [len(usable)]
        if n_max and sum(counts) > n_max:
            k = int(row_shares(n_max, counts)[rank])
            classes = rows.y[usable] if stratified and info.classification else None
            pick = usable[sample_rows(len(usable), k, seed + rank, classes)]
            rows = _sparse_sample(info, frame, rows, pick)
        self.rows, self.info, self.params, self.comm = rows, info, params, comm

    def score(self, network, model, threads):
        info, comm, rows = self.info, self.comm, self.rows
        if info.autoencoder:
            recon = network.predict(model, rows, "recon", threads=threads)[:, 0]
            return metrics.autoencoder_metrics(recon, comm=comm)
        out = network.predict(model, rows, "output", threads=threads)
        if info.classification:
            out = info.correct_probabilities(out)  # back to the data's class priors (balancing)
            return metrics.classification_metrics(out, rows.y, rows.weight, comm=comm)
        p = self.params
        dist = p["distribution"] if p["distribution"] not in ("AUTO", "bernoulli") else "gaussian"
        return metrics.regression_metrics(
            info.decode_response(out[:, 0].astype(np.float64)),
            info.decode_response(rows.y.astype(np.float64)), rows.weight, comm=comm,
            distribution=dist, tweedie_power=p["tweedie_power"], quantile_alpha=p["quantile_alpha"],
            huber_delta=network.config.huber_delta * info.response_sd)


def _sparse_sample(info, frame, rows, pick, block=512):
    """Rows `pick` of a FRAME `rows` decoded into CSR rows (memory ~ their non-zeros)."""
    indptr, indices, values = [np.zeros(1, dtype=np.int64)], [], []
    for start in range(0, len(pick), block):
        x = info.expand(frame, pick[start:start + block])
        r, c = np.nonzero(x)
        indices.append(c.astype(np.int32))
        values.append(x[r, c])
        indptr.append(indptr[-1][-1] + np.cumsum(np.bincount(r, minlength=x.shape[0])))
    sub = lambda a: None if a is None else a[pick]  # noqa: E731
    return Rows.csr(np.concatenate(indptr), np.concatenate(indices) if indices else np.zeros(0, np.int32),
                    np.concatenate(values) if values else np.zeros(0, np.float32), info.n_inputs,
                    sub(rows.y), sub(rows.weight), sub(rows.offset))


class AutoTuner:
    """TSPI = -2: pick the global rows per iteration so that t_comm / (t_comm + t_comp)
    approaches the target, from times measured every iteration (smoothed)."""

    def __init__(self, target, n_ranks, local_rows, total_rows, epochs, first_guess):
        self.target = max(target, 1e-6)
        self.lo = n_ranks  # at least one row per rank
        self.hi = max(self.lo, 10 * n_ranks * local_rows)  # 10 x what -1 would do
        self.hi = max(self.lo, min(self.hi, int(epochs * total_rows / 10) or self.lo))
        self.value = int(min(max(first_guess, self.lo), self.hi))

    def update(self, rows, t_comp, t_comm):
        if rows <= 0 or t_comp <= 0:
            return self.value
        t_row = t_comp / rows  # seconds per global row, ranks in parallel
        ideal = t_comm * (1.0 - self.target) / (self.target * t_row)
        # mostly the new measurement; a little geometric smoothing keeps one noisy
        # iteration from swinging the value
        new = math.exp(0.8 * math.log(max(ideal, 1.0)) + 0.2 * math.log(max(self.value, 1)))
        self.value = int(min(max(new, self.lo), self.hi))
        return self.value


def _log(rank, params, msg):
    if rank == 0 and not params.get("quiet_mode"):
        print(msg, flush=True)


def train(params, comm=None, stop=None):
    """Train with validated params over `comm` (an mpi4py communicator or None).

    Returns the summary dict (also written to summary_json by rank 0).  With a checkpoint
    directory, SIGTERM/SIGUSR1 stop training within a block of rows on every rank, write a
    checkpoint and raise checkpoint.TrainingInterrupted (the CLI exits with 85).  `stop`: a
    checkpoint.StopFlag installed earlier (the CLI's, which also sees signals that arrive
    while MPI starts); by default one is installed here."""
    flag = stop or ckpt.StopFlag()
    if params.get("checkpoint_dir"):
        flag.install()
    try:
        return _train(params, comm, flag)
    finally:
        flag.restore()


def _load_everywhere(path, comm, loaded=None):
    """load_model(path) on rank 0 (unless rank 0 passes what it `loaded` already), sent to
    every rank (one read of the file, not one per rank; the buffer goes by Bcast); a
    damaged file is the same UserError on every rank."""
    rank = comm.Get_rank() if comm is not None else 0
    err = None
    if rank == 0 and loaded is None:
        try:
            loaded = load_model(path)
        except Exception as e:  # noqa: BLE001 - reported on every rank by agree()
            err = e
    agree(comm, err)
    if comm is None or comm.Get_size() == 1:
        return loaded
    network, model, info, old, attrs = loaded if rank == 0 else (None,) * 5
    cfg, info, old, attrs, n = comm.bcast(
        (network.config, info, old, attrs, model.size) if rank == 0 else None, root=0)
    if rank != 0:
        network, model = Network(cfg), np.empty(n, dtype=np.float32)
    comm.Bcast(model, root=0)
    return network, model, info, old, attrs


def _restore(params, comm, rank, frame):
    """The checkpoint to continue from (--checkpoint FILE, or the newest valid one under
    --resume DIR) on every rank, or None.  A changed architecture, response or input
    layout is refused, naming each difference."""
    path, loaded = params.get("checkpoint"), []
    if not path and params.get("resume"):
        err = None
        if rank == 0:
            try:
                d = params["resume"]
                path = ckpt.newest_valid(d, loaded=loaded) if os.path.isdir(d) else None
            except Exception as e:  # noqa: BLE001 - reported on every rank
                err = e
        agree(comm, err)
        path = comm.bcast(path, root=0) if comm is not None else path
        if path is None:
            _log(rank, params, f"resume: no valid checkpoint in {params['resume']}: starting fresh")
            return None
    if not path:
        return None
    _network, model, info, old, attrs = _load_everywhere(path, comm, loaded[0] if loaded else None)
    diff = ckpt.differences(old, params) + ckpt.layout_differences(info, frame.names, params)
    if diff:
        raise UserError(f"{path}: cannot continue this model with a different architecture, response or "
                        "input layout: " + "; ".join(diff))
    state = dict(attrs.get("state") or {})
    state.setdefault("samples", int(attrs.get("training_samples", 0)))
    state.setdefault("iteration", int(attrs.get("iterations", 0)))
    state.setdefault("epochs", float(attrs.get("epochs", 0.0)))
    state.setdefault("seed", int(old.get("seed", 0)))
    return {"path": path, "model": model, "info": info, "state": state, "history": attrs.get("history", [])}


def _pretrained(params, comm, network, model, info):
    """pretrained_autoencoder: copy the input and hidden layers' weights and biases of an
    autoencoder model file into `model` (as H2O does; the output layer keeps its fresh
    weights).  The inputs and hidden layers must match."""
    path = params["pretrained_autoencoder"]
    ae_net, ae_model, ae_info, ae_params, _ = _load_everywhere(path, comm)
    problems = []
    if not ae_info.autoencoder:
        problems.append("it is not an autoencoder")
    if list(ae_params.get("hidden", [])) != list(params["hidden"]):
        problems.append(f"hidden: autoencoder {ae_params.get('hidden')}, now {params['hidden']}")
    if ae_params.get("activation") != params["activation"]:
        problems.append(f"activation: autoencoder {ae_params.get('activation')}, now {params['activation']}")
    if list(ae_info.input_names) != list(info.input_names):
        a, b = set(ae_info.input_names), set(info.input_names)
        problems.append(f"inputs: {len(ae_info.input_names)} in the autoencoder, {len(info.input_names)} now"
                        + (f"; only in the autoencoder: {sorted(a - b)[:5]}" if a - b else "")
                        + (f"; only now: {sorted(b - a)[:5]}" if b - a else ""))
    if problems:
        raise UserError(f"pretrained_autoencoder {path}: cannot initialise this model: " + "; ".join(problems))
    for layer in range(len(params["hidden"])):
        for name in ("weights", "biases"):
            network.view(model, name, layer)[...] = ae_net.view(ae_model, name, layer)


def _train_state(comm, rng, samples, iteration, n_total, seed, tspi, size, tuned_for):
    """The training state of a checkpoint (collective: every rank's RNG state).  tspi: the
    rows per iteration in use; tuned_for: the target_ratio_comm_to_comp it was tuned for
    (-1 when it was not auto-tuned)."""
    mine = json.dumps(rng.bit_generator.state)
    states = comm.gather(mine, root=0) if comm is not None else [mine]
    return {"samples": int(samples), "iteration": int(iteration), "epochs": samples / n_total,
            "n_total": int(n_total), "seed": int(seed), "n_ranks": int(size), "tspi": int(tspi),
            "tuned_for": float(tuned_for), "rng_states": states}


def _check_outputs(params, comm, rank):
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


def _write_alone(comm, what, write, *args, **kwargs):
    """Rank 0 writes a file while the other ranks are elsewhere: a failure (disk full, quota)
    ends the job with a message naming the file instead of a traceback or a hang."""
    try:
        return write(*args, **kwargs)
    except OSError as e:
        fail_alone(comm, f"{what}: cannot write: {e.strerror or e}")


def _train(params, comm, flag):
    rank = comm.Get_rank() if comm is not None else 0
    size = comm.Get_size() if comm is not None else 1
    t_start = time.time()
    _check_outputs(params, comm, rank)

    # ---- data: each rank reads its share into the compressed store (all rows when
    # replicate_training_data), inputs are decoded from it in C while training -------
    frame = Frame.read(params["train"], comm=comm, replicate=params["replicate_training_data"])
    vframe = Frame.read(params["validation"], comm=comm) if params.get("validation") else None
    for f, path in ((frame, params["train"]), (vframe, params.get("validation"))):
        if f is not None and f.n_rows == 0:
            raise UserError(f"{path}: no data rows")
    t_data = time.time() - t_start
    restored = _restore(params, comm, rank, frame)
    t_restore = time.time() - t_start - t_data
    info = restored["info"] if restored else Preprocess.fit(frame, params)
    rows = info.rows(frame)
    usable = rows.usable_rows()
    n_local = len(usable)
    n_total = frame.n_rows
    balance = None  # balance_classes: per-row sampling probabilities of the usable rows
    if info.class_rates is not None:
        rates = info.sampling_rates(rows.y)[usable]
        balanced = comm.allreduce(float(rates.sum())) if comm is not None else float(rates.sum())
        n_total = max(1, int(round(balanced)))  # an epoch is one pass over the balanced data
        balance = rates / rates.sum() if rates.sum() > 0 else None
    local_counts = comm.allgather(n_local) if comm is not None else [n_local]
    if sum(local_counts) == 0:
        raise UserError(f"{params['train']}: no usable training rows (missing response or zero weight)")
    cfg = net_config(params, info)
    network = Network(cfg)
    threads = threads_per_rank(params, comm)

    seed = params["seed"]
    if restored:
        seed = int(restored["state"]["seed"])
    elif seed == -1:
        seed = int(time.time() * 1e6) & 0x7FFFFFFF
    if comm is not None:
        seed = comm.bcast(seed, root=0)
    if restored:
        model = restored["model"]
        if model.size != network.n_total:
            raise UserError(f"{restored['path']}: model buffer has {model.size} values, the network "
                            f"needs {network.n_total}")
    else:
        model = network.new_model(seed, params["initial_weight_distribution"], params["initial_weight_scale"])
        if params.get("pretrained_autoencoder"):
            _pretrained(params, comm, network, model, info)
        if comm is not None:  # (a restored model is on every rank already)
            comm.Bcast(model, root=0)

    _log(rank, params, f"h2odl_mpi: {size} rank(s) x {threads} thread(s); network "
                       f"{'-'.join(map(str, network.units))} {params['activation']}; "
                       f"{n_total:,} training rows, {len(info.input_names)} inputs"
                       f"{', classes: ' + str(info.n_classes) if info.classification else ''}")

    train_scorer = Scorer(frame, rows, info, params, params["score_training_samples"], seed + 1, comm)
    valid_scorer = (Scorer(vframe, info.rows(vframe, training=False), info, params,
                           params["score_validation_samples"], seed + 2, comm,
                           stratified=params["score_validation_sampling"] == "Stratified")
                    if vframe is not None else None)

    # ---- rows per iteration -----------------------------------------------------------
    epochs = params["epochs"]
    target_samples = _rows_for(epochs, n_total)
    start_samples = start_iteration = 0
    if restored:
        st = restored["state"]
        start_samples, start_iteration = int(st["samples"]), int(st["iteration"])
        done_epochs = float(st["epochs"])
        if epochs <= done_epochs and not params.get("resume"):
            raise UserError(f"epochs = {epochs} must be larger than the checkpoint's {done_epochs:.6g} "
                            "epochs (epochs is the total, as in H2O)")
        if int(st.get("n_total", -1)) != n_total:  # other data: the remaining epochs on it
            target_samples = start_samples + max(0, _rows_for(epochs - done_epochs, n_total))
        target_samples = max(target_samples, start_samples)
        _log(rank, params, f"continuing {restored['path']} at iteration {start_iteration}, "
                           f"{done_epochs:.4g} epochs, {start_samples:,} samples")
    tspi_param = params["train_samples_per_iteration"]
    tuner = None
    if tspi_param == 0:
        tspi = n_total
    elif tspi_param == -1:
        tspi = size * n_local
    elif tspi_param > 0:
        tspi = tspi_param
    elif size == 1:
        tspi = n_total  # one rank: nothing to communicate, so an epoch per iteration
    else:
        tgt = params["target_ratio_comm_to_comp"]
        st = restored["state"] if restored else {}
        if st.get("n_ranks") == size and st.get("tspi", 0) > 0 and st.get("tuned_for") == tgt:
            first = int(st["tspi"])  # a restart on as many ranks: where the tuning had got to
        else:
            # first guess from a measured kernel probe and the measured allreduce, then tuned;
            # the slowest rank's time per row: every rank must start from the same value
            t_row = comm.allreduce(_probe_row_time(network, model, rows, threads, seed), op=_mpi().MAX)
            t_comm_probe = _time_allreduce(comm, model)
            first = min(100_000 * size, int(t_comm_probe * (1 - tgt) / (max(tgt, 1e-6) * t_row / size)))
        tuner = AutoTuner(tgt, size, n_local, n_total, epochs, first)
        tspi = tuner.value
    tuned_for = params["target_ratio_comm_to_comp"] if tuner else -1.0

    # ---- the loop ---------------------------------------------------------------------
    MPI = _mpi() if comm is not None else None
    samples, iteration = start_samples, start_iteration
    rng = np.random.default_rng([seed, rank])
    if restored:
        states = restored["state"].get("rng_states") or []
        if len(states) == size:  # same number of ranks: every rank continues its own stream
            rng.bit_generator.state = json.loads(states[rank])
        else:  # another number of ranks: new streams, derived from the seed and iteration
            rng = np.random.default_rng([seed, rank, iteration])
    ck_dir = params.get("checkpoint_dir")
    ck_kind, ck_every = ckpt.parse_interval(params["checkpoint_interval"])
    last_ckpt, interrupted = time.time(), None
    t_comp_total = t_comm_total = t_score_total = t_wait_total = 0.0
    history, best, best_value = list(restored["history"]) if restored else [], None, None
    duration_before = float(history[-1].get("duration_s", 0.0)) if history else 0.0  # continued runs
    last_score = time.time()
    tspi_used, local_used = [], []
    nonfinite = False
    train_metrics, valid_metrics = {}, {}
    # per-iteration statistics: compute s, comm s, non-finite, score now, time up, wait s, stop
    # signal, checkpoint now.  Every decision taken from them (TSPI, scoring, stopping,
    # checkpoints) must be identical on all ranks.
    stats_buf = np.zeros(8, dtype=np.float64)
    stats_all = np.zeros((size, 8), dtype=np.float64)
    stopper = EarlyStopping(params["stopping_rounds"], params["stopping_metric"],
                            params["stopping_tolerance"], classification=info.classification,
                            autoencoder=info.autoencoder)
    stop_reason = None
    blocks = _Blocks(network, threads, flag)
    rows_buf = np.zeros(1, dtype=np.int64)
    t_first_row, told_shuffle = None, False
    while samples < target_samples:
        iteration += 1
        rng_before = rng.bit_generator.state  # (to undo an iteration that a signal cut to nothing)
        tspi_now = min(tspi, target_samples - samples)
        shares = row_shares(tspi_now, local_counts)
        mine = int(shares[rank])
        # A part of the rows is trained in storage order (shuffle_training_data=false, H2O's
        # default); when a rank trains all its rows (or more) every iteration, they come
        # shuffled, as H2O then turns shuffling on: the same order every iteration would
        # leave the model fitted to the end of the file (sorted files: years, classes).
        in_order = not params["shuffle_training_data"] and mine < n_local
        if balance is not None:  # class-balanced resampling, with replacement
            order = rng.choice(n_local, size=mine, replace=True, p=balance)
        elif mine <= n_local:
            order = rng.choice(n_local, size=mine, replace=False)
        else:
            order = rng.integers(0, n_local, size=mine)
        if in_order:
            order.sort()
        elif not params["shuffle_training_data"] and not told_shuffle:
            told_shuffle = True
            _log(rank, params, "shuffling the training rows: every iteration trains on all of them "
                               "(H2O enables shuffle_training_data then)")
        order = usable[order]
        t0 = time.perf_counter()
        if t_first_row is None:
            t_first_row = time.time() - t_start
        trained, row_nonfinite = blocks.train(
            model, rows, order, samples, (seed * 1000003 + rank * 7919 + iteration) & 0x7FFFFFFFFFFFFFFF)
        t_comp = time.perf_counter() - t0
        t1 = time.perf_counter()
        # rows trained on every rank (fewer than the shares only after a stop signal); the
        # exact integer sum doubles as the barrier that times waiting for slower ranks
        rows_buf[0] = trained
        if size > 1:
            comm.Allreduce(MPI.IN_PLACE, rows_buf, op=MPI.SUM)
        t2 = time.perf_counter()
        if rows_buf[0] > 0:
            average_model(comm, model, weight=float(trained), total=float(rows_buf[0]))
        t_wait, t_comm = t2 - t1, time.perf_counter() - t2
        tspi_now = int(rows_buf[0])
        done = samples + tspi_now >= target_samples
        now = time.time()
        # rank 0's clock decides when to score; the decision travels with the stats
        due = rank == 0 and tspi_now > 0 and (done or iteration == start_iteration + 1 or (
            now - last_score >= params["score_interval"] and
            t_score_total <= params["score_duty_cycle"] * max(now - t_start, 1e-9)))
        time_up = rank == 0 and params["max_runtime_secs"] > 0 and \
            now - t_start >= params["max_runtime_secs"]
        ck_due = rank == 0 and bool(ck_dir) and not done and (
            (ck_kind == "seconds" and now - last_ckpt >= ck_every) or
            (ck_kind == "iterations" and iteration % ck_every == 0))
        stats_buf[:] = (t_comp, t_comm, float(row_nonfinite), float(due or time_up), float(time_up), t_wait,
                        float(flag.signum), float(ck_due))
        stats_buf = agreed_sum(comm, stats_buf, stats_all)
        t_comp_mean, t_comm_mean = stats_buf[0] / size, stats_buf[1] / size
        samples += tspi_now  # rows processed, as H2O counts them (skipped rows included)
        t_comp_total += t_comp_mean
        t_comm_total += t_comm_mean
        t_wait_total += stats_buf[5] / size
        tspi_used.append(tspi_now)
        local_used.append(trained)
        if stats_buf[2] > 0 or not np.all(np.isfinite(model[:network.n_params])):
            nonfinite = True
            _log(rank, params, f"iteration {iteration}: non-finite weights or loss; stopping and "
                               "keeping the last good model")
            if best is not None:
                model[:] = best
            break
        if tuner is not None:
            tspi = tuner.update(tspi_now, t_comp_mean, t_comm_mean)
        elapsed = time.time() - t_start
        if stats_buf[3] > 0:  # every rank scores its slice; metrics are combined exactly
            ts = time.perf_counter()
            train_metrics = train_scorer.score(network, model, threads)
            valid_metrics = valid_scorer.score(network, model, threads) if valid_scorer else {}
            t_score_total += time.perf_counter() - ts
            last_score = time.time()
            current = _best_model_value(valid_metrics or train_metrics, info)
            if params["overwrite_with_best_model"] and (best_value is None or not best_is_better(best_value, current, _BEST_BY[info.kind])):
                best_value, best = current, model.copy()
            stop_reason = _stop_reason(params, info, stopper, train_metrics, valid_metrics)
            row = {"iteration": iteration, "epochs": samples / n_total, "samples": samples,
                   "duration_s": duration_before + elapsed, "train_samples_per_iteration": tspi_now,
                   "comm_fraction": t_comm_total / max(t_comm_total + t_comp_total, 1e-12)}
            row.update({f"training_{k}": v for k, v in metrics.scalar_metrics(train_metrics).items()})
            row.update({f"validation_{k}": v for k, v in metrics.scalar_metrics(valid_metrics).items()})
            history.append(row)
            _log(rank, params, _progress_line(row, info, samples, target_samples,
                                              t_comp_total + t_comm_total, elapsed))
        if ck_dir and (stats_buf[6] > 0 or stats_buf[7] > 0):  # same decision on every rank
            if tspi_now == 0:  # a signal before any row of this iteration: it did not happen
                iteration -= 1
                rng.bit_generator.state = rng_before
            path = _write_checkpoint(ck_dir, params, comm, rank, network, model, info, history,
                                     _train_state(comm, rng, samples, iteration, n_total, seed, tspi, size,
                                                  tuned_for))
            last_ckpt = time.time()
            if stats_buf[6] > 0:
                interrupted = path
                _log(rank, params, f"signal received: stopped at iteration {iteration}, "
                                   f"checkpoint {path}; exit status {ckpt.REQUEUE_EXIT_CODE} (requeue)")
                break
        if stats_buf[4] > 0:
            stop_reason = stop_reason or f"max_runtime_secs={params['max_runtime_secs']} reached"
        if stop_reason:
            _log(rank, params, f"stopping early: {stop_reason}")
            break
    # ---- the end --------------------------------------------------------------------
    if interrupted:
        agree(comm, None)  # rank 0 has written the checkpoint before anyone exits
        raise ckpt.TrainingInterrupted(interrupted, flag.signum or "?")
    if iteration == start_iteration and restored:  # nothing left to train: score once
        train_metrics = train_scorer.score(network, model, threads)
        valid_metrics = valid_scorer.score(network, model, threads) if valid_scorer else {}
    if params["overwrite_with_best_model"] and best is not None and not nonfinite:
        current = _best_model_value(valid_metrics or train_metrics, info)
        if best_is_better(best_value, current, _BEST_BY[info.kind]):  # same on every rank
            model[:] = best
            train_metrics = train_scorer.score(network, model, threads)
            valid_metrics = valid_scorer.score(network, model, threads) if valid_scorer else {}
    importances = (importance.table(info.input_names, importance.gedeon(network, model))
                   if params["variable_importances"] else None)
    train_time = t_comp_total + t_comm_total + t_wait_total
    summary = {
        "training_samples": samples,
        "training_time_s": train_time,
        "samples_per_s": samples / train_time if train_time > 0 else 0.0,
        "epochs": samples / n_total,
        "iterations": iteration,
        "n_ranks": size,
        "threads_per_rank": threads,
        "comm_fraction": t_comm_total / train_time if train_time > 0 else 0.0,
        "wait_fraction": t_wait_total / train_time if train_time > 0 else 0.0,  # load imbalance
        "train_samples_per_iteration": tspi_used,
        "train_samples_per_iteration_param": tspi_param,
        "local_rows_per_iteration": local_used,  # this rank's share (rank 0's in the JSON)
        "scoring_time_s": t_score_total,
        "wall_time_s": time.time() - t_start,
        "seed": seed,
        "network": network.units,
        "nonfinite_stop": nonfinite,
        "stop_reason": stop_reason or ("non-finite values" if nonfinite else "epochs reached"),
        "metrics": {"training": train_metrics, "validation": valid_metrics},
        # seconds from the start of train(): data read, then (restarts) the checkpoint read
        # and sent to every rank, then the first row trained
        "startup_s": {"data_load": t_data, "restore": t_restore, "to_first_row": t_first_row},
        "continued_from": restored["path"] if restored else None,
        "variable_importances": importances,
    }
    state = _train_state(comm, rng, samples, iteration, n_total, seed, tspi, size, tuned_for)
    if ck_dir:
        _write_checkpoint(ck_dir, params, comm, rank, network, model, info, history, state)
    if rank == 0:
        if params.get("model_out"):
            _write_alone(comm, params["model_out"], save_model, params["model_out"], network, model, info,
                         params, {"epochs": summary["epochs"], "training_samples": samples,
                                  "iterations": iteration}, history, state=state, importances=importances)
            _log(rank, params, f"model written to {params['model_out']}")
            if params.get("export_weights_and_biases"):
                where = params["model_out"] + ".weights"
                _write_alone(comm, where, export_weights_and_biases, where, network, model, info)
                _log(rank, params, f"weights and biases written to {where}/")
        if params.get("scoring_history") and history:
            _write_alone(comm, params["scoring_history"], _write_history, params["scoring_history"], history)
        if params.get("summary_json"):
            _write_alone(comm, params["summary_json"], _write_json, params["summary_json"], summary)
        _log(rank, params, _final_lines(summary, info))
        if importances:
            _log(rank, params, "variable importances (Gedeon; the 10 largest, scaled): " + ", ".join(
                f"{r['variable']} {r['scaled_importance']:.3f}" for r in importances[:10]))
    summary["model"] = model
    summary["network_obj"] = network
    summary["preprocess"] = info
    summary["scoring_history"] = history
    return summary


class _Blocks:
    """An iteration's rows trained in blocks of about `seconds` each, so that a stop signal
    is seen within a block, not an iteration (an epoch, with train_samples_per_iteration
    0 or -1).  Sample numbers continue across blocks, so with one thread the result is
    bit-identical to a single kernel call.  The block size follows the measured speed
    (growing at most 4-fold a call from 256 rows), so an iteration shorter than `seconds`
    is one kernel call: every call ends with the threads waiting for the slowest."""

    def __init__(self, network, threads, flag, seconds=2.0):
        self.network, self.threads, self.flag, self.seconds = network, threads, flag, seconds
        self.block = 256

    def train(self, model, rows, order, samples_before, seed):
        """(rows done, non-finite seen); fewer rows than len(order) only after a signal."""
        done, n = 0, len(order)
        while done < n and not self.flag.signum:
            k = min(self.block, n - done)
            t = time.perf_counter()
            st = self.network.train(model, rows, order[done:done + k], samples_before=samples_before + done,
                                    seed=seed, threads=self.threads)
            dt = time.perf_counter() - t
            done += k
            if st.nonfinite:
                return done, True
            if k == self.block or k >= 64:  # a measurement worth taking
                want = self.seconds * k / max(dt, 1e-9)
                self.block = int(min(max(want, 16), max(4 * k, self.block), 1 << 24))
        return done, False


def _write_checkpoint(directory, params, comm, rank, network, model, info, history, state):
    """Rank 0 writes directory/ckpt_<iteration>.h5 atomically and prunes old ones; the
    other ranks go on and wait at the next collective.  Returns the path."""
    path = ckpt.checkpoint_path(directory, state["iteration"])
    if rank == 0:
        _write_alone(comm, path, save_model, path, network, model, info, params,
                     {"epochs": state["epochs"], "training_samples": state["samples"],
                      "iterations": state["iteration"]}, history, state=state)
        ckpt.prune(directory, params["checkpoint_keep"])
    return path


def average_model(comm, model, weight=1.0, total=None):
    """In place: every rank's float32 buffer becomes the weighted mean over the ranks of
    `comm`, sum_r weight_r * model_r / total (total = the sum of the weights, which every
    rank knows; default: equal weights).  A rank that trained no rows passes weight 0.

    A Reduce_scatter followed by an Allgatherv on the numpy buffer (no pickling): each
    element is summed once, on one rank, so every rank ends bit-identical by construction
    (MPI does not promise that of Allreduce), at Allreduce's bandwidth cost."""
    if comm is None or comm.Get_size() == 1:
        return model
    MPI = _mpi()
    size, rank = comm.Get_size(), comm.Get_rank()
    total = size if total is None else total
    if weight != 1.0:
        model *= np.float32(weight)
    n = model.size
    counts = np.full(size, n // size, dtype=np.int64)
    counts[: n % size] += 1
    displs = np.concatenate([[0], np.cumsum(counts)[:-1]])
    part = np.empty(int(counts[rank]), dtype=np.float32)
    comm.Reduce_scatter([model, MPI.FLOAT], [part, MPI.FLOAT], recvcounts=counts.tolist(), op=MPI.SUM)
    part *= np.float32(1.0 / total)
    comm.Allgatherv([part, MPI.FLOAT], [model, (counts.tolist(), displs.tolist()), MPI.FLOAT])
    return model


def agreed_sum(comm, local, scratch):
    """Column sums of every rank's small float64 vector, bit-identical on every rank
    (an Allgather, then the same sum in rank order everywhere; Allreduce does not promise
    identical bits, and decisions such as the next TSPI must agree exactly)."""
    if comm is None or comm.Get_size() == 1:
        return local
    comm.Allgather(local, scratch)
    total = scratch[0].copy()
    for r in range(1, scratch.shape[0]):
        total += scratch[r]
    return total


def _rows_for(epochs, n_rows):
    """Rows that `epochs` passes over n_rows make, rounded up, but not for the last bits
    of a decimal fraction: 0.93 + 0.5 epochs of 2000 rows are 2860 rows, though
    (0.93 + 0.5) * 2000 is 2860.0000000000005 in floating point."""
    return int(math.ceil(epochs * n_rows - 1e-9 * max(1.0, epochs * n_rows)))


def row_shares(tspi, local_counts):
    """Rows each rank trains this iteration: tspi split in proportion to the ranks' local
    row counts (largest remainder, so the shares add up to tspi exactly; equal shares with
    replicated data, 0 for a rank without rows)."""
    counts = np.asarray(local_counts, dtype=np.float64)
    if counts.sum() == 0:
        return np.zeros(len(counts), dtype=np.int64)
    exact = tspi * counts / counts.sum()
    shares = np.floor(exact).astype(np.int64)
    rest = int(tspi - shares.sum())
    if rest:
        order = np.lexsort((np.arange(len(counts)), -(exact - shares)))
        shares[order[:rest]] += 1
    return shares


# overwrite_with_best_model keeps the model with the lowest classification error
# (classifiers), deviance (regression) or reconstruction MSE (autoencoders), as H2O does
_BEST_BY = {"classification": "misclassification", "regression": "deviance", "autoencoder": "MSE"}


def _best_model_value(m, info):
    key = {"classification": "classification_error", "regression": "mean_residual_deviance",
           "autoencoder": "mse"}[info.kind]
    return (m or {}).get(key, math.nan)


def _stop_reason(params, info, stopper, train_m, valid_m):
    """Why training should stop after this scoring event (rank 0), or None."""
    if not info.autoencoder and train_m:
        if info.classification and params["classification_stop"] >= 0 and \
                train_m["classification_error"] <= params["classification_stop"]:
            return f"training classification error {train_m['classification_error']:.4g} <= classification_stop"
        if not info.classification and params["regression_stop"] >= 0 and \
                train_m["mse"] <= params["regression_stop"]:
            return f"training MSE {train_m['mse']:.4g} <= regression_stop"
    if stopper.add(valid_m or train_m):
        return (f"{stopper.metric_name} did not improve by stopping_tolerance="
                f"{params['stopping_tolerance']} over the last {params['stopping_rounds']} scoring events")
    return None


def _time_allreduce(comm, model, reps=3):
    """Measured seconds of one in-place Allreduce of the model's size (best of reps)."""
    MPI = _mpi()
    buf = np.zeros_like(model)
    best = math.inf
    for _ in range(reps):
        comm.Barrier()
        t = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        best = min(best, time.perf_counter() - t)
    return comm.allreduce(best, op=MPI.MAX)


def _probe_row_time(network, model, rows, threads, seed, n=200):
    """Measured seconds per row of the kernel on a scratch copy of the model."""
    scratch = model.copy()
    n = min(n, rows.n_rows)
    order = np.arange(n, dtype=np.int64)
    t = time.perf_counter()
    network.train(scratch, rows, order, seed=seed, threads=threads)
    return (time.perf_counter() - t) / max(n, 1)


def _write_json(path, summary):
    with replacing(path) as tmp, open(tmp, "w") as f:
        json.dump(summary, f, indent=2, default=float)


def _write_history(path, history):
    keys = []
    for row in history:
        keys += [k for k in row if k not in keys and not isinstance(row[k], (list, dict))]
    with replacing(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(history)
    return keys


def _fmt_metrics(m, info):
    if not m:
        return ""
    if info.autoencoder:
        return f"MSE {m['mse']:.5g}"
    if info.classification:
        s = f"err {m['classification_error']:.4f} logloss {m['logloss']:.4f}"
        return s + (f" AUC {m['auc']:.4f}" if "auc" in m else "")
    return f"RMSE {m['rmse']:.5g} R2 {m['r2']:.4f}"


def _progress_line(row, info, samples, target, train_time, elapsed):
    speed = samples / train_time if train_time > 0 else 0.0
    left = (target - samples) / speed if speed > 0 else 0.0
    parts = [f"iter {row['iteration']:4d}", f"epochs {row['epochs']:7.3f}", f"samples {samples:,}",
             f"{speed:,.0f} samples/s", f"ETA {left:6.1f}s",
             f"comm {100 * row['comm_fraction']:.1f}%", f"tspi {row['train_samples_per_iteration']:,}"]
    tm = {k[len('training_'):]: v for k, v in row.items() if k.startswith("training_")}
    vm = {k[len('validation_'):]: v for k, v in row.items() if k.startswith("validation_")}
    parts.append("train " + _fmt_metrics(tm, info))
    if vm:
        parts.append("valid " + _fmt_metrics(vm, info))
    return " | ".join(parts)


def _final_lines(summary, info):
    lines = [f"done: {summary['training_samples']:,} samples, {summary['epochs']:.3f} epochs, "
             f"{summary['iterations']} iterations in {summary['training_time_s']:.2f}s "
             f"({summary['samples_per_s']:,.0f} samples/s, comm {100 * summary['comm_fraction']:.1f}%)"]
    for name in ("training", "validation"):
        m = summary["metrics"][name]
        if m:
            lines.append(f"{name} metrics: " + ", ".join(
                f"{k} {v:.5g}" for k, v in metrics.scalar_metrics(m).items() if k != "nobs"))
    return "\n".join(lines)
