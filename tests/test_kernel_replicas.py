"""thread_scheme replicas: h2o_train_replicas (h2odl.h, REPLICAS), its binding, the parameter.

Each thread copies the model into its own replica, trains its contiguous share of the rows
there as h2o_train's thread would, and the model becomes the float32 mean of the replicas.
Held here: one thread gives h2o_train's bits (every activation and output, mini_batch_size 1
and > 1, dropout, dense and CSR rows); with 2 and 3 threads each replica equals its share
trained alone on a copy of the model by one thread (h2o_train, itself held to the numpy
reference by test_kernel_math and test_kernel_minibatch), bit for bit, and the model equals
the numpy mean of the replicas, bit for bit (summed in replica order, then divided).  The
optimizers tested with several threads are those whose update does not depend on the sample
count (ADADELTA, and a manual rate without annealing or momentum ramp): a thread's n-th row
has sample count samples_before + n x T + t in a T-thread call, n alone (plus its offset) in
the one-thread reference.  Also: the arguments, the trainer's block loop, the parameter, the
run's first line and the memory checks.
"""
import numpy as np
import pytest

from h2odl_mpi import kernel, params as P, threads as thread_params
from h2odl_mpi._kernel import ffi, lib
from h2odl_mpi.errors import UserError
from h2odl_mpi.kernel import NetConfig, Network, Rows
from h2odl_mpi.training import hogwild, model_setup
from test_kernel_math import ACTIVATIONS, OUTPUT_IDS, OUTPUTS, make_config, make_rows, random_inputs, random_targets

SEED, SAMPLES_BEFORE, N_ROWS = 5, 41, 61
DROPOUT = dict(input_dropout_ratio=0.1, hidden_dropout_ratios=[0.2, 0.1])
# optimizers whose update does not depend on the sample count (see the module's docstring)
STEADY = {"adadelta": dict(adaptive_rate=True, rho=0.95, epsilon=1e-6),
          "momentum": dict(adaptive_rate=False, rate=0.02, rate_annealing=0.0, momentum_start=0.5,
                           momentum_ramp=0.0, momentum_stable=0.9, l2=1e-3)}


def case(activation, output, loss, batch, seed=SEED, **overrides):
    """A tiny network, its starting model (optimizer state not zero) and rows, some skipped."""
    cfg = make_config(activation, output, loss, mini_batch_size=batch, **overrides)
    net = Network(cfg)
    rng = np.random.default_rng(seed)
    model = net.new_model(seed)
    model[net.n_params:] = rng.uniform(0.0, 1e-3, net.n_total - net.n_params).astype(np.float32)
    x = random_inputs(rng, N_ROWS)
    y = random_targets(cfg, rng, N_ROWS)
    weight = rng.uniform(0.5, 2.0, N_ROWS).astype(np.float32)
    weight[[3, 30]] = 0.0                                  # skipped rows, in two shares
    return net, model, x, y, weight


def order_of(n=N_ROWS):
    return np.random.default_rng(17).permutation(n).astype(np.int64)


def mean_of(replicas):
    """The numpy reference of the combine: float32 sums in replica order, divided by T."""
    total = replicas[0].copy()
    for r in replicas[1:]:
        total += r
    return total / np.float32(len(replicas))


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("output,loss", OUTPUTS, ids=OUTPUT_IDS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_one_thread_is_h2o_train_bit_for_bit(activation, output, loss, batch):
    net, start, x, y, weight = case(activation, output, loss, batch, **DROPOUT)
    rows, order = make_rows(x, y, weight), order_of()
    hog, rep = start.copy(), start.copy()
    replicas = np.full((1, net.n_total), np.nan, np.float32)
    want = net.train(hog, rows, order, SAMPLES_BEFORE, SEED, threads=1)
    got = net.train_replicas(rep, rows, order, SAMPLES_BEFORE, SEED, threads=1, replicas=replicas)
    assert not np.array_equal(hog, start)
    assert hog.tobytes() == rep.tobytes() == replicas[0].tobytes()
    assert got == want and got.skipped == 2


def test_one_thread_csr_rows_are_h2o_train_bit_for_bit():
    net, start, x, y, weight = case("Rectifier", "softmax", None, 1)
    rows = make_rows(x, y, weight, csr=True)
    hog, rep = start.copy(), start.copy()
    net.train(hog, rows, order_of(), SAMPLES_BEFORE, SEED, threads=1)
    net.train_replicas(rep, rows, order_of(), SAMPLES_BEFORE, SEED, threads=1)
    assert hog.tobytes() == rep.tobytes()


@pytest.mark.parametrize("optimizer", sorted(STEADY))
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("activation,output,loss", [("Rectifier", "softmax", None), ("Tanh", "linear", "Huber"),
                                                    ("Maxout", "autoencoder", None)])
def test_replicas_are_their_shares_and_the_model_their_mean(activation, output, loss, threads, batch, optimizer):
    net, start, x, y, weight = case(activation, output, loss, batch, **DROPOUT, **STEADY[optimizer])
    rows, order, n = make_rows(x, y, weight), order_of(), N_ROWS
    model = start.copy()
    replicas = np.full((threads, net.n_total), np.nan, np.float32)
    stats = net.train_replicas(model, rows, order, SAMPLES_BEFORE, SEED, threads=threads, replicas=replicas)
    alone = []
    for t in range(threads):
        lo, hi = n * t // threads, n * (t + 1) // threads
        own = start.copy()
        alone.append(net.train(own, rows, order[lo:hi], SAMPLES_BEFORE + lo, SEED, threads=1))
        assert own.tobytes() == replicas[t].tobytes(), f"replica {t}"
    assert model.tobytes() == mean_of(replicas).tobytes()
    assert not any(np.array_equal(r, start) for r in replicas) and not np.array_equal(replicas[0], replicas[1])
    assert (stats.trained, stats.skipped) == (sum(a.trained for a in alone), 2)
    assert stats.loss_sum == pytest.approx(sum(a.loss_sum for a in alone), rel=1e-12)


def test_the_network_grows_its_own_replicas():
    """Without `replicas` the network's own buffer serves, grown for more threads."""
    net, start, x, y, weight = case("Rectifier", "softmax", None, 1)
    rows = make_rows(x, y, weight)
    for threads in (2, 3, 2):
        own, given = start.copy(), start.copy()
        net.train_replicas(own, rows, order_of(), threads=threads)
        net.train_replicas(given, rows, order_of(), threads=threads,
                           replicas=np.zeros((threads, net.n_total), np.float32))
        assert own.tobytes() == given.tobytes() != start.tobytes()


def test_non_finite_output_stops_every_replica():
    net = Network(NetConfig(units=[3, 4, 1], activation="Rectifier", output="linear", loss="poisson"))
    model = net.new_model(seed=13)
    net.view(model, "biases", 1)[:] = 200.0            # exp(200) overflows float32
    rows = Rows.dense(np.ones((6, 3), np.float32), np.ones(6, np.float32))
    stats = net.train_replicas(model, rows, threads=2)
    assert stats.nonfinite and stats.trained == 0


@pytest.mark.parametrize("bad,match", [("shape", r"shape \(2, "), ("dtype", "float32"), ("overlap", "overlap")])
def test_bad_replicas_are_refused(bad, match):
    net, start, x, y, weight = case("Rectifier", "softmax", None, 1)
    replicas = {"shape": np.zeros((3, net.n_total), np.float32),
                "dtype": np.zeros((2, net.n_total), np.float64)}.get(bad)
    if bad == "overlap":
        both = np.zeros(3 * net.n_total, np.float32)
        start, replicas = both[:net.n_total], both[net.n_total - 1:-1].reshape(2, net.n_total)  # one float shared
    with pytest.raises(ValueError, match=match):
        net.train_replicas(start, make_rows(x, y, weight), threads=2, replicas=replicas)


def test_the_kernel_refuses_a_model_inside_the_replicas():
    """The C check itself (Python refuses first): a model that overlaps the replicas."""
    net, start, x, y, weight = case("Rectifier", "softmax", None, 1)
    c, lay = net.config.to_c(), ffi.new("h2o_layout *")
    assert lib.h2o_layout_of(c, lay) == lib.H2O_OK
    workspace = np.zeros(2 * lay.workspace_per_thread, np.float32)
    both = np.zeros(3 * net.n_total, np.float32)
    keep, stats, order = [], ffi.new("h2o_train_stats *"), order_of()
    ptr = ffi.cast("float *", both.ctypes.data)
    rest = (ffi.cast("float *", workspace.ctypes.data), 2, make_rows(x, y, weight).to_c(keep, 2),
            ffi.cast("int64_t *", order.ctypes.data), order.size, 0, 1, stats)
    assert lib.h2o_train_replicas(c, ptr + net.n_total // 2, ptr, *rest) == lib.H2O_EARG
    assert lib.h2o_train_replicas(c, ptr, ptr + net.n_total - 1, *rest) == lib.H2O_EARG  # one float shared
    assert both.tobytes() == bytes(both.nbytes)                  # (nothing written)
    assert lib.h2o_train_replicas(c, ptr, ptr + net.n_total, *rest) == lib.H2O_OK


class _NoSignal:
    signum = 0


def test_the_block_loop_calls_the_scheme():
    """hogwild.Blocks with scheme replicas is train_replicas (one call: under 256 rows)."""
    net, start, x, y, weight = case("Rectifier", "softmax", None, 1)
    rows, order = make_rows(x, y, weight), order_of()
    got = {}
    for scheme in ("hogwild", "replicas"):
        got[scheme] = start.copy()
        hogwild.Blocks(net, 2, _NoSignal(), scheme=scheme).train(got[scheme], rows, order, SAMPLES_BEFORE, SEED)
    want = start.copy()
    net.train_replicas(want, rows, order, SAMPLES_BEFORE, SEED, threads=2)
    assert got["replicas"].tobytes() == want.tobytes() != got["hogwild"].tobytes()


# ---- the parameter --------------------------------------------------------------------------

def test_thread_scheme_parameter():
    base = {"train": "d.csv", "response": "y"}
    assert P.validate(base)["thread_scheme"] == "auto"
    assert thread_params.thread_scheme(P.validate(base), 2) == thread_params.AUTO_SCHEME == "replicas"
    assert thread_params.thread_scheme(P.validate(base), 1) == "hogwild"   # (one thread: no replica to pay for)
    for given, want in (("replicas", "replicas"), ("Replicas", "replicas"), ("HOGWILD", "hogwild")):
        p = P.validate(dict(base, thread_scheme=given))
        assert p["thread_scheme"] == want and thread_params.thread_scheme(p, 2) == want
    p = P.validate(dict(base, thread_scheme="replicas", reproducible=True, threads=2))
    assert (p["threads"], p["thread_scheme"]) == (1, "hogwild")   # one thread, one model: a seed's bits
    with pytest.raises(UserError, match="thread_scheme = 'threads' is not one of auto, hogwild, replicas"):
        P.validate(dict(base, thread_scheme="threads"))
    assert "thread_scheme" in dict(P.GROUPS)["training and epochs"]


@pytest.mark.parametrize("scheme", ["hogwild", "replicas"])
def test_the_first_line_names_the_scheme(tmp_path, capsys, scheme):
    from h2odl_mpi.training import trainer
    path = tmp_path / "d.csv"
    rng = np.random.default_rng(0)
    with open(path, "w") as f:
        f.write("a,b,y\n")
        f.writelines(f"{a:.4f},{b:.4f},{int(a + b > 0)}\n" for a, b in rng.normal(size=(300, 2)))
    run = trainer.train(P.validate({"train": str(path), "response": "y", "hidden": [4], "epochs": 1, "seed": 1,
                                    "threads": 2, "thread_scheme": scheme}))
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("h2odl_mpi: 1 rank(s) x 2 thread(s) (" + scheme + "); network 2-4-2"), first
    assert run.summary["thread_scheme"] == scheme and np.all(np.isfinite(run.model))


# ---- memory ---------------------------------------------------------------------------------

def test_the_memory_check_counts_the_replicas(monkeypatch):
    config = NetConfig(units=[50, 40, 3])
    n_total = kernel.buffer_floats(config)[1]
    assert kernel.replica_bytes(config, 4) == 4 * 4 * n_total
    room = 4 * n_total * (model_setup.MODEL_COPIES + 2)      # the copies and two replicas, no more
    monkeypatch.setattr(model_setup, "memory_available", lambda: room)
    model_setup.check_size({"hidden": [40]}, config, None)
    model_setup.check_size({"hidden": [40]}, config, None, replicas=2)
    with pytest.raises(UserError, match=r"6 copies while training, 3 of them the threads' replicas"):
        model_setup.check_size({"hidden": [40]}, config, None, replicas=3)


def test_the_network_refuses_replicas_beyond_memory(monkeypatch):
    net = Network(NetConfig(units=[50, 200, 3]))
    model, rows = net.new_model(1), Rows.dense(np.ones((4, 50), np.float32), np.zeros(4, np.float32))
    room = 4 * net.n_total * 2 + 50_000          # two replicas and the threads' scratch
    monkeypatch.setattr(kernel, "memory_available", lambda: room)
    net.train_replicas(model, rows, threads=2)
    with pytest.raises(ValueError, match=r"the replicas of 3 threads \(3 x the model buffer"):
        net.train_replicas(model, rows, threads=3)
