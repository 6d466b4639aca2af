"""The kernel's blocked scoring (h2o_predict, csrc/score.c) against the numpy reference.

Many rows (several blocks, a partial register tile, output counts that end inside a vector)
of every row kind (dense, CSR, the column store's FRAME rows), every hidden activation and
output (softmax, linear with an identity and a log link, the autoencoder's reconstruction
and its error), every prediction (output, hidden layers, loss), with dropout ratios that
scoring turns into scales; the sparse first-layer path gives the dense path's bits; a row's
result depends on neither the thread count nor the other rows of its call; a scratch
shorter than the layout asks is refused.
"""
import numpy as np
import pytest

import reference_net as ref
from h2odl_mpi._kernel import ffi, lib
from h2odl_mpi.data.frame import Frame
from h2odl_mpi.data.preprocess import Preprocess
from h2odl_mpi.kernel import NetConfig, Network, Rows

N_IN, HIDDEN, N_ROWS = 21, (37, 19), 150     # 150 rows: blocks of 64, 64 and 22
ACTIVATIONS = ["Tanh", "Rectifier", "Maxout", "ExpRectifier"]
OUTPUTS = [("softmax", None), ("linear", "Quadratic"), ("linear", "poisson"), ("autoencoder", None)]
# float32 sums in another order than the float64 reference: relative 3e-5 of the largest value
RTOL, ATOL = 3e-5, 1e-6


def config(activation, output, loss, n_in=N_IN):
    n_out = {"softmax": 5, "linear": 1, "autoencoder": n_in}[output]
    return NetConfig(units=[n_in, *HIDDEN, n_out], activation=activation, output=output,
                     loss=loss or "Quadratic", input_dropout_ratio=0.15,
                     hidden_dropout_ratios=[0.2, 0.1])


def model_of(net, cfg, seed):
    """A kernel buffer with random weights and biases and the reference's view of it."""
    buf = net.new_model(seed=seed)
    model = ref.Model.from_buffer(cfg, buf)
    rng = np.random.default_rng(seed + 1)
    for (name, _), arr in model.arrays.items():
        if name == "b":
            arr[...] = rng.uniform(-0.3, 0.3, arr.shape)
    buf[:] = model.to_buffer()
    return buf, ref.Model.from_buffer(cfg, buf)


def inputs(rng, n, n_cols=N_IN, zero_fraction=0.3):
    x = rng.normal(0.0, 1.0, size=(n, n_cols))
    x[rng.random((n, n_cols)) < zero_fraction] = 0.0
    return x.astype(np.float32)


def targets(cfg, rng, n):
    if cfg.output == "softmax":
        return rng.integers(0, cfg.units[-1], n).astype(np.float32)
    if cfg.output == "autoencoder":
        return None
    t = rng.integers(0, 4, n) if cfg.loss == "poisson" else rng.normal(0.0, 1.2, n)
    t = t.astype(np.float32)
    t[3] = np.nan     # a missing target: its loss is NaN
    return t


def frame_rows(x, y):
    """x and y as FRAME rows over the column store (no standardisation: the store's rows
    are x as float32), and the inputs the kernel sees."""
    data = {f"c{i}": x[:, i].astype(np.float64) for i in range(x.shape[1])}
    data["y"] = np.zeros(len(x)) if y is None else y.astype(np.float64)
    frame = Frame.from_arrays(data, chunk_rows=40)
    params = dict(response="y", standardize=False)
    pre = Preprocess.fit(frame, params)
    rows = pre.rows(frame)
    return Rows.from_source(rows.frame, y=y), rows.expand()


def make_rows(kind, x, y):
    """(rows of `kind`, the dense inputs the kernel sees)."""
    if kind == "dense":
        return Rows.dense(x, y=y), x
    if kind == "csr":
        indptr, indices, values = ref.dense_to_csr(x)
        return Rows.csr(indptr, indices, values, x.shape[1], y=y), x
    return frame_rows(x, y)


def expected(cfg, model, x, y):
    fwds = [ref.forward(cfg, model, x[r]) for r in range(len(x))]
    want = {"output": np.array([ref.output_value(cfg, f) for f in fwds])}
    want["loss"] = np.array([[np.nan if y is not None and np.isnan(y[r])
                              else ref.row_loss(cfg, f, None if y is None else float(y[r]))]
                             for r, f in enumerate(fwds)])
    if cfg.output == "autoencoder":
        want["recon"] = np.array([[ref.reconstruction_mse(f)] for f in fwds])
    for layer in range(len(HIDDEN)):
        want[f"hidden{layer}"] = np.array([ref.hidden_output(f, layer) for f in fwds])
    return want


def predict(net, buf, rows, what, threads=1):
    if what.startswith("hidden"):
        return net.predict(buf, rows, what="hidden", layer=int(what[-1]), threads=threads)
    return net.predict(buf, rows, what=what, threads=threads)


@pytest.mark.parametrize("kind", ["dense", "csr", "frame"])
@pytest.mark.parametrize("output,loss", OUTPUTS, ids=[o if not l else f"{o}-{l}" for o, l in OUTPUTS])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_blocked_scoring_matches_reference(activation, output, loss, kind):
    cfg = config(activation, output, loss)
    net = Network(cfg)
    buf, model = model_of(net, cfg, seed=3)
    rng = np.random.default_rng(4)
    x = inputs(rng, N_ROWS)
    y = targets(cfg, rng, N_ROWS)
    rows, seen = make_rows(kind, x, y)
    assert rows.kind == kind
    np.testing.assert_array_equal(seen, x)
    for what, want in expected(cfg, model, x, y).items():
        got = predict(net, buf, rows, what)
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL * max(1.0, np.nanmax(np.abs(want))),
                                   err_msg=f"{what} ({kind} rows)")


@pytest.mark.parametrize("activation,output", [("Rectifier", "softmax"), ("Maxout", "autoencoder")])
def test_sparse_first_layer_gives_the_dense_paths_bits(activation, output):
    """A block of mostly-zero rows takes the sparse first-layer path, a block mixing them
    with dense rows the register tiles: the sparse rows' results are the same bits."""
    cfg = config(activation, output, None, n_in=90)
    net = Network(cfg)
    buf, _ = model_of(net, cfg, seed=5)
    rng = np.random.default_rng(6)
    sparse = inputs(rng, 64, n_cols=90, zero_fraction=0.97)
    dense = inputs(rng, 32, n_cols=90, zero_fraction=0.0)
    mixed = np.concatenate([dense, sparse[:32]])          # one block: mostly non-zero
    alone = net.predict(buf, Rows.dense(sparse), threads=1)
    together = net.predict(buf, Rows.dense(mixed), threads=1)
    np.testing.assert_array_equal(together[32:], alone[:32])
    indptr, indices, values = ref.dense_to_csr(sparse)
    np.testing.assert_array_equal(net.predict(buf, Rows.csr(indptr, indices, values, 90), threads=1), alone)


def test_a_rows_result_depends_on_neither_threads_nor_its_neighbours():
    cfg = config("Rectifier", "softmax", None)
    net = Network(cfg)
    buf, _ = model_of(net, cfg, seed=7)
    rng = np.random.default_rng(8)
    x = inputs(rng, 300)
    full = net.predict(buf, Rows.dense(x), threads=1)
    for threads in (2, 3):
        np.testing.assert_array_equal(net.predict(buf, Rows.dense(x), threads=threads), full)
    for lo, hi in ((70, 141), (1, 2), (250, 300)):
        np.testing.assert_array_equal(net.predict(buf, Rows.dense(x[lo:hi]), threads=2), full[lo:hi])
    np.testing.assert_array_equal(net.predict(buf, Rows.dense(x), threads=1), full)   # again


def test_short_scratch_is_refused():
    cfg = config("Tanh", "softmax", None)
    net = Network(cfg)
    buf, _ = model_of(net, cfg, seed=9)
    x = inputs(np.random.default_rng(10), 5)
    rows = Rows.dense(x)
    lay = net._layout
    assert lay.score_shared > 0 and lay.score_per_thread > 0
    need = int(lay.score_shared + 2 * lay.score_per_thread)
    out = np.empty((5, 5), dtype=np.float32)
    for floats, ok in ((need - 1, False), (need, True)):
        ws = np.zeros(need, dtype=np.float32)
        keep = []
        rc = lib.h2o_predict(net._c, ffi.cast("float *", buf.ctypes.data), ffi.cast("float *", ws.ctypes.data),
                             floats, 2, rows.to_c(keep, 2), lib.H2O_PRED_OUTPUT, -1,
                             ffi.cast("float *", out.ctypes.data))
        assert rc == (lib.H2O_OK if ok else lib.H2O_EARG)
        if ok:
            np.testing.assert_array_equal(out, net.predict(buf, rows, threads=1))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_training_after_scoring_gives_the_bits_of_training_alone(activation):
    """Scoring and training share the network's scratch: what scoring leaves there must not
    reach training (a Maxout unit dropped by dropout once read a stale channel index, and
    wrote out of its gradient's bounds, when scoring had left floats where it looked)."""
    cfg = config(activation, "softmax", None)
    rng = np.random.default_rng(12)
    x = inputs(rng, 120)
    y = targets(cfg, rng, 120)
    y[3] = 1.0
    results = []
    for score_first in (False, True):
        net = Network(cfg)
        buf, _ = model_of(net, cfg, seed=13)
        if score_first:
            net.predict(buf, Rows.dense(inputs(np.random.default_rng(14), 150) * 1e3), threads=1)
        for step in range(3):
            net.train(buf, Rows.dense(x, y=y), samples_before=120 * step, seed=15, threads=1)
        results.append(buf.copy())
    np.testing.assert_array_equal(results[0], results[1])
