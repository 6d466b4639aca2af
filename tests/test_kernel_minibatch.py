"""mini_batch_size: the kernel's block update (csrc/minibatch.c) against the reference.

With mini_batch_size B > 1 each thread trains its rows in blocks of B trained rows, one update
a block (h2odl.h, MINI-BATCHES); tests/reference_net.py's train_block is that update in
float64 numpy.  One thread, a few blocks (the last one partial): the kernel's whole buffer
equals the reference's to float32 tolerance (assert_buffers_match: what the reference leaves
alone stays bit-identical, every visible change matches within rtol 2e-3) for B in 2, 5, 32
and every activation, output and loss, dropout (the kernel's own draws, rebuilt by
ref.dropout_masks), dense / CSR / FRAME rows, ADADELTA and the manual rate with Nesterov or
plain momentum, l1 / l2, max_w2, fast_mode on and off, inputs few enough for the compact path.
Also: B = 1 is the one-row path bit for bit (digests of the kernel before mini-batches, on
the baseline variant), FRAME rows train bit-identically to the equal DENSE rows, one thread
is bit-reproducible, skipped rows do not count in a block, the arguments are validated.
"""
import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import reference_net as ref
from h2odl_mpi.kernel import MAX_MINI_BATCH, NetConfig, Network, Rows
from test_kernel_math import (ACTIVATIONS, ADADELTA, MOMENTUM, OUTPUT_IDS, OUTPUTS,
                              assert_buffers_match, init_model, make_config, make_rows,
                              random_inputs, random_targets, target_of)

SAMPLES_BEFORE, SEED = 37, 99
BLOCKS = (2, 5, 32)


class NearKink(Exception):
    """A row lies too close to a kink for float32 and float64 to agree on its side."""


def kink_margin(cfg, model, x, t, offset, input_keep, hidden_keep):
    """Distance of a training row (its dropout masks applied) from the network's kinks:
    rectifier nets at 0, Maxout ties (kept units only), Absolute / Quantile at r = 0 and
    Huber at |r| = delta."""
    fwd = ref.forward(cfg, model, x, offset=offset, mode="train", input_keep=input_keep,
                      hidden_keep=hidden_keep)
    margins = [np.inf]
    for l, net in enumerate(fwd.nets):
        if fwd.raw[l] is None:
            continue
        kept = fwd.scale[l] != 0
        if cfg.activation in ("Rectifier", "ExpRectifier") and kept.any():
            margins.append(np.min(np.abs(net)[kept]))
        elif cfg.activation == "Maxout" and kept.any():
            pairs = net.reshape(-1, 2)
            margins.append(np.min(np.abs(pairs[:, 0] - pairs[:, 1])[kept]))
    if cfg.output == "linear" and cfg.loss in ("Absolute", "Quantile", "Huber"):
        r = abs(t - fwd.y[0])
        margins.append(abs(r - cfg.huber_delta) if cfg.loss == "Huber" else r)
    return float(min(margins))


def usable(y, weight, r):
    return not ((y is not None and np.isnan(y[r])) or (weight is not None and weight[r] == 0))


def reference_blocks(cfg, model, x, y, weight, offset, order, B, sparse, margin=2e-4):
    """The reference's updates of rows `order` trained by one kernel thread: blocks of B
    usable rows in order (skipped rows do not count), each row with the dropout masks the
    kernel draws at its sample number, the optimizer at the block's first row's.
    Returns (model, loss_sum, rows of W rescaled by max_w2)."""
    blocks, cur = [], []
    for k, r in enumerate(order):
        if usable(y, weight, r):
            cur.append((k, r))
            if len(cur) == B:
                blocks.append(cur)
                cur = []
    if cur:
        blocks.append(cur)
    loss_sum, rescaled = 0.0, 0
    for block in blocks:
        xs, ts, ws, offs, iks, hks = [], [], [], [], [], []
        for k, r in block:
            ik, hk = ref.dropout_masks(cfg, x[r], SEED, SAMPLES_BEFORE + k)
            off = 0.0 if offset is None else float(offset[r])
            if kink_margin(cfg, model, x[r].astype(np.float64), target_of(y, r), off, ik, hk) < margin:
                raise NearKink
            xs.append(x[r].astype(np.float64))
            ts.append(target_of(y, r))
            ws.append(1.0 if weight is None else float(weight[r]))
            offs.append(off)
            iks.append(ik)
            hks.append(hk)
        model, info = ref.train_block(cfg, model, xs, ts, ws, offs, n=SAMPLES_BEFORE + block[0][0],
                                      sparse=sparse, input_keeps=iks, hidden_keeps=hks)
        loss_sum += info.loss
        rescaled += info.rescaled_rows
    return model, loss_sum, rescaled


# ---- the block update against the reference ------------------------------------------------

DROPOUT = dict(input_dropout_ratio=0.2, hidden_dropout_ratios=[0.3, 0.1])
CASES = {
    # id: (activation, output, loss, overrides, rows: dense | csr, trigger max_w2, shape)
    "ada-rect-softmax-dropout": ("Rectifier", "softmax", None, dict(ADADELTA, **DROPOUT), "dense", False, {}),
    "ada-rect-softmax-csr-l1l2": ("Rectifier", "softmax", None, dict(ADADELTA, l1=1e-3, l2=1e-2), "csr", False, {}),
    "ada-rect-softmax-slow-l1l2-maxw2": ("Rectifier", "softmax", None,
                                         dict(ADADELTA, fast_mode=False, l1=1e-3, l2=1e-2), "dense", True, {}),
    "ada-tanh-huber-maxw2": ("Tanh", "linear", "Huber", dict(ADADELTA), "dense", True, {}),
    "ada-maxout-quadratic-slow-l2": ("Maxout", "linear", "Quadratic", dict(ADADELTA, fast_mode=False, l2=1e-2),
                                     "dense", False, {}),
    "ada-exprect-gamma-l1-dropout": ("ExpRectifier", "linear", "gamma", dict(ADADELTA, l1=1e-3, **DROPOUT),
                                     "dense", False, {}),
    "ada-tanh-autoencoder-dropout": ("Tanh", "autoencoder", None, dict(ADADELTA, **DROPOUT), "dense", False, {}),
    "ada-maxout-autoencoder-csr-slow-l1l2": ("Maxout", "autoencoder", None,
                                             dict(ADADELTA, fast_mode=False, l1=1e-3, l2=1e-2), "csr", False, {}),
    "nesterov-rect-softmax-l1l2-maxw2": ("Rectifier", "softmax", None, dict(MOMENTUM, l1=1e-3, l2=1e-2),
                                         "dense", True, {}),
    "nesterov-maxout-quadratic-slow-csr": ("Maxout", "linear", "Quadratic", dict(MOMENTUM, fast_mode=False, l2=1e-2),
                                           "csr", False, {}),
    "plain-rect-poisson-slow-l1": ("Rectifier", "linear", "poisson",
                                   dict(MOMENTUM, nesterov_accelerated_gradient=False, fast_mode=False, l1=1e-3),
                                   "dense", False, {}),
    "plain-tanh-softmax-maxw2-dropout": ("Tanh", "softmax", None,
                                         dict(MOMENTUM, nesterov_accelerated_gradient=False, l2=1e-2, **DROPOUT),
                                         "dense", True, {}),
    "manual-rect-bernoulli-slow-l2": ("Rectifier", "linear", "bernoulli",
                                      dict(MOMENTUM, momentum_start=0.0, momentum_stable=0.0, fast_mode=False, l2=1e-2),
                                      "dense", False, {}),
    "manual-rect-quantile-slow-shortcut": ("Rectifier", "linear", "Quantile",
                                           dict(MOMENTUM, momentum_start=0.0, momentum_stable=0.0, fast_mode=False),
                                           "dense", False, {}),
    # few non-zero inputs in the whole block: the compact path in the first layer (fast mode;
    # without it every weight learns: compact forward, dense update), and in a hidden layer
    # whose units are mostly dropped
    "sparse-ada-rect-softmax": ("Rectifier", "softmax", None, dict(ADADELTA, l2=1e-3), "dense", False,
                                dict(n_in=400, hidden=(23, 9), zero_fraction=0.995)),
    "sparse-ada-tanh-huber-slow": ("Tanh", "linear", "Huber", dict(ADADELTA, fast_mode=False), "dense", False,
                                   dict(n_in=400, hidden=(23, 9), zero_fraction=0.995)),
    "sparse-nesterov-tanh-autoencoder-csr": ("Tanh", "autoencoder", None, dict(MOMENTUM), "csr", False,
                                             dict(n_in=400, hidden=(23, 9), zero_fraction=0.995)),
    "wide-ada-rect-softmax-hidden-dropout": ("Rectifier", "softmax", None,
                                             dict(ADADELTA, hidden_dropout_ratios=[0.95, 0.0]), "dense", True,
                                             dict(n_in=45, hidden=(160, 19))),
    # no hidden layer (hidden=[]): the inputs feed the output layer
    "nohidden-ada-softmax-l1-maxw2": ("Rectifier", "softmax", None, dict(ADADELTA, l1=1e-3, input_dropout_ratio=0.2),
                                      "dense", True, dict(hidden=())),
    "nohidden-nesterov-quadratic-csr": ("Tanh", "linear", "Quadratic", dict(MOMENTUM), "csr", False, dict(hidden=())),
}


def block_case(case_id, B, seed, n_blocks=3.5, weight_zero=()):
    """Train ~n_blocks blocks with the kernel (one thread) and the reference; the first data
    seed from `seed` on whose rows stay clear of kinks is used."""
    for attempt in range(20):
        try:
            return try_block_case(case_id, B, seed + 1000 * attempt, n_blocks, weight_zero)
        except NearKink:
            continue
    pytest.fail("no kink-free data found (test construction)")


def try_block_case(case_id, B, seed, n_blocks, weight_zero):
    activation, output, loss, overrides, kind, trigger, shape = CASES[case_id]
    shape = dict(shape)
    zero_fraction = shape.pop("zero_fraction", 0.35)
    cfg = make_config(activation, output, loss, mini_batch_size=B, **shape, **overrides)
    net = Network(cfg)
    buf, model = init_model(net, cfg, seed=seed, with_state=True)
    rng = np.random.default_rng(seed + 1)
    n = max(int(B * n_blocks), B + 1)
    x = random_inputs(rng, n, n_cols=cfg.units[0], zero_fraction=zero_fraction)
    y = random_targets(cfg, rng, n)
    weight = rng.uniform(0.5, 2.0, n).astype(np.float32)
    weight[list(weight_zero)] = 0.0
    offset = rng.uniform(-0.3, 0.3, n).astype(np.float32) if output == "linear" else None
    order = rng.permutation(n)
    csr = kind == "csr"
    if trigger:   # a max_w2 below the squared norm of about half the rows of W
        loose = dataclasses.replace(cfg, max_w2=np.inf)
        new, _, _ = reference_blocks(loose, model, x, y, weight, offset, order, B, csr)
        norms = np.concatenate([(new.W(l) ** 2).sum(axis=1) for l in range(len(cfg.units) - 1)])
        cfg = dataclasses.replace(cfg, max_w2=float(np.median(norms)))
        net = Network(cfg)
    want, loss_sum, rescaled = reference_blocks(cfg, model, x, y, weight, offset, order, B, csr)
    if trigger:
        assert rescaled > 0, "max_w2 did not trigger in the reference (test construction)"
    got = buf.copy()
    stats = net.train(got, make_rows(x, y, weight=weight, offset=offset, csr=csr), order=order,
                      samples_before=SAMPLES_BEFORE, seed=SEED, threads=1)
    assert (stats.trained, stats.skipped, stats.nonfinite) == (n - len(weight_zero), len(weight_zero), False)
    assert stats.loss_sum == pytest.approx(loss_sum, rel=1e-4)
    assert_buffers_match(cfg, buf, got, want.to_buffer(np.float64))
    return cfg, x


@pytest.mark.parametrize("B", BLOCKS, ids=[f"B{b}" for b in BLOCKS])
@pytest.mark.parametrize("case_id", list(CASES))
def test_block_update_matches_reference(case_id, B):
    cfg, x = block_case(case_id, B, seed=31)
    if case_id.startswith("sparse") and B == 32:   # the case is what it says: few active inputs
        assert 4 * 64 < cfg.units[0], "test construction"
        assert np.count_nonzero(x[:32].any(axis=0)) * 4 < cfg.units[0], "not the compact path"


@pytest.mark.parametrize("B", BLOCKS, ids=[f"B{b}" for b in BLOCKS])
@pytest.mark.parametrize("output,loss", OUTPUTS, ids=OUTPUT_IDS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_and_output_with_dropout(activation, output, loss, B):
    """ADADELTA, input and hidden dropout, 2.4 blocks (B = 5: blocks of 5, 5 and 2)."""
    CASES["_every"] = (activation, output, loss, dict(ADADELTA, **DROPOUT), "dense", False, {})
    try:
        block_case("_every", B, seed=7, n_blocks=2.4)
    finally:
        del CASES["_every"]


def test_skipped_rows_do_not_count_in_a_block():
    """Rows of weight 0 (and NaN targets) are skipped: the blocks are the next B usable rows,
    the last block shorter."""
    block_case("ada-rect-softmax-dropout", 5, seed=3, n_blocks=3.0, weight_zero=(0, 4, 5, 11))
    cfg = make_config("Tanh", "linear", "Quadratic", mini_batch_size=4, **ADADELTA)
    net = Network(cfg)
    buf, model = init_model(net, cfg, seed=2)
    rng = np.random.default_rng(4)
    x = random_inputs(rng, 11)
    y = random_targets(cfg, rng, 11)
    y[[1, 2, 8]] = np.nan
    want, _, _ = reference_blocks(cfg, model, x, y, None, None, np.arange(11), 4, False)
    got = buf.copy()
    stats = net.train(got, make_rows(x, y), samples_before=SAMPLES_BEFORE, seed=SEED, threads=1)
    assert (stats.trained, stats.skipped) == (8, 3)
    assert_buffers_match(cfg, buf, got, want.to_buffer(np.float64))


# ---- FRAME rows ----------------------------------------------------------------------------

def frame_rows(n=300, seed=0):
    """A column store with numeric columns and a one-hot categorical (zero inputs), its
    FRAME rows and the same rows as a dense matrix."""
    from h2odl_mpi.data.frame import Frame
    from h2odl_mpi.data.preprocess import Preprocess
    rng = np.random.default_rng(seed)
    data = {"a": rng.normal(size=n), "b": np.where(rng.random(n) < 0.5, 0.0, rng.normal(size=n)),
            "c": np.array([f"L{int(u * 9)}" for u in rng.random(n)], dtype=object),
            "y": rng.normal(size=n)}
    frame = Frame.from_arrays(data, chunk_rows=70)
    pre = Preprocess.fit(frame, dict(response="y"))
    rows = pre.rows(frame)
    dense = Rows.dense(pre.expand(frame), y=rows.y, weight=rows.weight, offset=rows.offset)
    return pre, rows, dense


@pytest.mark.parametrize("B", BLOCKS, ids=[f"B{b}" for b in BLOCKS])
def test_frame_rows_train_like_dense_rows(B):
    pre, rows, dense = frame_rows()
    for cfg in (NetConfig(units=[pre.n_inputs, 12, 6, 1], output="linear", activation="Rectifier",
                          mini_batch_size=B, **DROPOUT),
                NetConfig(units=[pre.n_inputs, 7, pre.n_inputs], output="autoencoder", activation="Maxout",
                          mini_batch_size=B, adaptive_rate=False, momentum_stable=0.9, l1=1e-4,
                          input_dropout_ratio=0.3)):
        net = Network(cfg)
        a = net.new_model(seed=5)
        b = a.copy()
        order = np.random.default_rng(1).permutation(rows.n_rows)[:250]
        sa = net.train(a, rows, order, samples_before=11, seed=3, threads=1)
        sb = net.train(b, dense, order, samples_before=11, seed=3, threads=1)
        assert sa == sb and sa.trained == 250
        assert np.array_equal(a, b)
        assert not np.array_equal(a, net.new_model(seed=5))


def test_frame_rows_match_reference():
    pre, rows, dense = frame_rows(n=40)
    cfg = NetConfig(units=[pre.n_inputs, 9, 5, 1], output="linear", activation="Tanh", mini_batch_size=8,
                    l2=1e-3, **DROPOUT)
    net = Network(cfg)
    buf, model = init_model(net, cfg, seed=8, with_state=True)
    x = dense.x
    want, loss_sum, _ = reference_blocks(cfg, model, x, rows.y, None, None, np.arange(rows.n_rows), 8, False)
    got = buf.copy()
    stats = net.train(got, rows, samples_before=SAMPLES_BEFORE, seed=SEED, threads=1)
    assert stats.loss_sum == pytest.approx(loss_sum, rel=1e-4)
    assert_buffers_match(cfg, buf, got, want.to_buffer(np.float64))


# ---- B = 1, reproducibility, threads, arguments -------------------------------------------

# sha256[:16] of the model after each run below, from the kernel before mini-batches existed
# (its one-row path), on the baseline variant.  Refresh only with a change of the one-row math.
ROW_PATH_RUNS = {
    "ada-rect-dropout": (dict(activation="Rectifier", input_dropout_ratio=0.2, hidden_dropout_ratios=[0.3, 0.1]),
                         "dense"),
    "ada-maxout-csr-slow-l1l2": (dict(activation="Maxout", fast_mode=False, l1=1e-4, l2=1e-3), "csr"),
    "nesterov-tanh-maxw2": (dict(activation="Tanh", adaptive_rate=False, momentum_start=0.5, momentum_stable=0.9,
                                 momentum_ramp=500.0, max_w2=2.0), "dense"),
    "plain-exprect-l2": (dict(activation="ExpRectifier", adaptive_rate=False, momentum_stable=0.8,
                              nesterov_accelerated_gradient=False, l2=1e-3), "dense"),
}
ROW_PATH_DIGESTS = {"ada-rect-dropout": "0121c7ac1129815a", "ada-maxout-csr-slow-l1l2": "80f9bcc0818f7869",
                    "nesterov-tanh-maxw2": "27cec4c46539b2aa", "plain-exprect-l2": "d8cdcdd6a76b052e"}
ROW_PATH_SCRIPT = textwrap.dedent("""
    import hashlib, json, sys
    import numpy as np
    from h2odl_mpi.kernel import NetConfig, Network, Rows
    runs, extra = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 20)).astype(np.float32)
    x[rng.random(x.shape) < 0.4] = 0
    y = (np.abs(x[:, 0] + x[:, 1]) * 2).astype(int) % 3
    out = {}
    for name, (kw, kind) in runs.items():
        net = Network(NetConfig(units=[20, 16, 8, 3], **kw, **extra))
        if kind == "csr":
            nz = x != 0
            indptr = np.concatenate([[0], np.cumsum(nz.sum(1))])
            rows = Rows.csr(indptr, np.nonzero(nz)[1], x[nz], 20, y=y)
        else:
            rows = Rows.dense(x, y=y)
        model = net.new_model(seed=3)
        net.train(model, rows, np.random.default_rng(1).permutation(400), samples_before=5, seed=7, threads=1)
        out[name] = hashlib.sha256(model.tobytes()).hexdigest()[:16]
    print(json.dumps(out))
""")


def row_path_digests(extra):
    env = dict(os.environ, H2ODL_ISA="baseline")
    r = subprocess.run([sys.executable, "-c", ROW_PATH_SCRIPT, json.dumps(ROW_PATH_RUNS), json.dumps(extra)],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def test_mini_batch_size_1_is_the_one_row_path_bit_for_bit():
    assert row_path_digests({"mini_batch_size": 1}) == ROW_PATH_DIGESTS
    assert Network(NetConfig(units=[5, 4, 2], mini_batch_size=1))._layout.workspace_per_thread == \
        Network(NetConfig(units=[5, 4, 2]))._layout.workspace_per_thread


@pytest.mark.parametrize("B", [5, 32])
def test_one_thread_is_bit_reproducible(B):
    cfg = NetConfig(units=[30, 20, 10, 3], activation="Rectifier", mini_batch_size=B, **DROPOUT)
    rng = np.random.default_rng(0)
    x = random_inputs(rng, 500, n_cols=30)
    rows = Rows.dense(x, y=random_targets(cfg, rng, 500))
    net = Network(cfg)
    models = []
    for _ in range(2):
        m = net.new_model(seed=1)
        net.train(m, rows, seed=4, threads=1)
        models.append(m)
    assert np.array_equal(*models)
    assert not np.array_equal(models[0], net.new_model(seed=1))
    other = net.new_model(seed=1)   # the seed reaches the dropout masks
    net.train(other, rows, seed=5, threads=1)
    assert not np.array_equal(other, models[0])


def test_several_threads_train_every_row():
    cfg = NetConfig(units=[30, 20, 3], activation="Tanh", mini_batch_size=8)
    rng = np.random.default_rng(0)
    x = random_inputs(rng, 997, n_cols=30)
    y = random_targets(cfg, rng, 997)
    y[::50] = np.nan
    net = Network(cfg)
    m = net.new_model(seed=1)
    before = net.predict(m, Rows.dense(x, y=y), what="loss", threads=1)
    stats = net.train(m, Rows.dense(x, y=y), seed=4, threads=3)
    assert (stats.trained, stats.skipped, stats.nonfinite) == (997 - 20, 20, False)
    assert np.isfinite(m).all()
    after = net.predict(m, Rows.dense(x, y=y), what="loss", threads=1)
    assert np.nanmean(after) < np.nanmean(before)


def test_mini_batch_size_is_validated_and_sizes_the_workspace():
    for bad in (0, -1, MAX_MINI_BATCH + 1, 2.5, True):
        with pytest.raises(ValueError, match="mini_batch_size"):
            Network(NetConfig(units=[5, 4, 2], mini_batch_size=bad))
    ws = [Network(NetConfig(units=[50, 40, 2], mini_batch_size=b))._layout.workspace_per_thread
          for b in (1, 2, 16, MAX_MINI_BATCH)]
    assert ws[0] < ws[1] < ws[2] < ws[3]
    assert ws[3] > MAX_MINI_BATCH * (50 + 40 + 2)


def test_a_non_finite_block_stops_training_and_is_not_applied():
    cfg = NetConfig(units=[3, 4, 1], output="linear", loss="poisson", activation="Rectifier",
                    mini_batch_size=4)
    net = Network(cfg)
    model = net.new_model(seed=1)
    net.view(model, "biases", 1)[...] = 200.0          # exp(200) overflows float32
    x = np.ones((9, 3), np.float32)
    before = model.copy()
    stats = net.train(model, Rows.dense(x, y=np.ones(9, np.float32)), threads=1)
    assert stats.nonfinite and stats.trained == 0
    assert np.array_equal(model, before)


def test_hogwild_blocks_cut_calls_at_whole_mini_batches():
    """The trainer's kernel calls (hogwild.Blocks, a stop signal seen between calls) end at
    whole mini-batches: one thread trains the bits of a single call, skipped rows and all."""
    import types
    from h2odl_mpi.training.hogwild import Blocks
    rng = np.random.default_rng(0)
    x = random_inputs(rng, 1500, n_cols=10)
    y = (np.abs(x[:, 0]) * 2).astype(np.float32) // 1 % 3
    y[rng.random(1500) < 0.1] = np.nan
    weight = np.where(rng.random(1500) < 0.05, 0.0, 1.0).astype(np.float32)
    rows = Rows.dense(x, y=y, weight=weight)
    order = rng.permutation(1500)
    for B in (1, 7, 32):
        net = Network(NetConfig(units=[10, 8, 3], mini_batch_size=B, input_dropout_ratio=0.1))
        blocks = Blocks(net, 1, types.SimpleNamespace(signum=0), seconds=1e-5)
        blocks.block = 50                        # many calls
        a, b = net.new_model(seed=1), net.new_model(seed=1)
        assert blocks.train(a, rows, order, 100, 5) == (1500, False)
        net.train(b, rows, order, samples_before=100, seed=5, threads=1)
        assert np.array_equal(a, b), f"B = {B}"
        threads = Blocks(net, 3, types.SimpleNamespace(signum=0), seconds=1e-5)
        threads.block = 50
        assert threads.train(net.new_model(seed=1), rows, order, 100, 5) == (1500, False)
