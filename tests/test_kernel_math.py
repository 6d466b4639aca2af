"""The C kernel against the independent numpy reference (tests/reference_net.py).

Small random networks, one row at a time: the buffer layout, the forward pass and loss of
every activation x output/loss (dense and CSR rows), the one-row gradient (against the
reference's backward and against central differences of predict(what="loss")), and one-row
and few-row updates of the whole buffer (ADADELTA, Nesterov / plain momentum with ramp,
annealing and decay, l1, l2, max_w2, fast_mode on and off).
"""
import dataclasses

import numpy as np
import pytest

import reference_net as ref
from h2odl_mpi.kernel import NetConfig, Network, Rows

ACTIVATIONS = ["Tanh", "Rectifier", "Maxout", "ExpRectifier"]
LINEAR_LOSSES = ["Quadratic", "Absolute", "Huber", "Quantile", "poisson", "gamma", "tweedie",
                 "bernoulli"]
OUTPUTS = [("softmax", None)] + [("linear", loss) for loss in LINEAR_LOSSES] + [("autoencoder", None)]
OUTPUT_IDS = ["softmax"] + [f"linear-{loss}" for loss in LINEAR_LOSSES] + ["autoencoder"]
N_IN, HIDDEN, N_CLASSES = 6, (5, 4), 3
SEGMENT_NAMES = {"W": "weights", "b": "biases", "Edx2_W": "ada_dx2_weights",
                 "Eg2_W": "ada_g2_weights", "Edx2_b": "ada_dx2_biases", "Eg2_b": "ada_g2_biases",
                 "V_W": "momentum_weights", "V_b": "momentum_biases"}


# ---- fixtures and helpers ------------------------------------------------------------------

def make_config(activation, output, loss=None, hidden=HIDDEN, n_in=N_IN, **overrides):
    n_out = {"softmax": N_CLASSES, "linear": 1, "autoencoder": n_in}[output]
    kw = dict(units=[n_in, *hidden, n_out], activation=activation, output=output,
              loss=loss or "Quadratic", huber_delta=0.6, quantile_alpha=0.3, tweedie_power=1.4)
    kw.update(overrides)
    return NetConfig(**kw)


def random_inputs(rng, n, n_cols=N_IN, zero_fraction=0.3):
    x = rng.normal(0.0, 1.0, size=(n, n_cols))
    x[rng.random((n, n_cols)) < zero_fraction] = 0.0
    x[:, 0] = np.where(x[:, 0] == 0, 0.5, x[:, 0])     # no all-zero rows
    return x.astype(np.float32)


def random_targets(cfg, rng, n):
    if cfg.output == "softmax":
        return rng.integers(0, cfg.units[-1], n).astype(np.float32)
    if cfg.output == "autoencoder":
        return None
    loss = cfg.loss
    if loss == "poisson":
        t = rng.integers(0, 4, n)
    elif loss == "gamma":
        t = rng.uniform(0.3, 2.5, n)
    elif loss == "tweedie":
        t = np.where(rng.random(n) < 0.3, 0.0, rng.uniform(0.2, 2.5, n))
    elif loss == "bernoulli":
        t = rng.integers(0, 2, n)
    else:
        t = rng.normal(0.0, 1.2, n)
    return t.astype(np.float32)


def make_rows(x, y=None, weight=None, offset=None, csr=False):
    if not csr:
        return Rows.dense(x, y=y, weight=weight, offset=offset)
    indptr, indices, values = ref.dense_to_csr(x)
    return Rows.csr(indptr, indices, values, x.shape[1], y=y, weight=weight, offset=offset)


def init_model(net, cfg, seed, with_state=False):
    """A kernel buffer with random weights and biases (and optimizer state if asked), and
    the reference's float64 view of exactly those float32 values."""
    buf = net.new_model(seed=seed)
    model = ref.Model.from_buffer(cfg, buf)
    rng = np.random.default_rng(seed + 7919)
    for (name, l), arr in model.arrays.items():
        if name == "b":
            arr[...] = rng.uniform(-0.3, 0.3, arr.shape)
        elif with_state and name.startswith(("Edx2", "Eg2")):
            arr[...] = rng.uniform(0.0, 1e-3, arr.shape)
        elif with_state and name.startswith("V_"):
            arr[...] = rng.uniform(-0.05, 0.05, arr.shape)
    buf[:] = model.to_buffer()
    return buf, ref.Model.from_buffer(cfg, buf)


def target_of(y, r):
    return None if y is None else float(y[r])


def kink_margin(cfg, model, x, t, offset=0.0, mode="plain"):
    """Distance of this row from every non-differentiable point of the reference network:
    rectifier / exp-rectifier nets at 0, Maxout ties, Absolute / Quantile at r = 0 and
    Huber at |r| = delta (inf when there is none)."""
    fwd = ref.forward(cfg, model, x, offset=offset, mode=mode)
    margins = [np.inf]
    for l, net in enumerate(fwd.nets):
        if fwd.raw[l] is None:
            continue
        if cfg.activation in ("Rectifier", "ExpRectifier"):
            margins.append(np.min(np.abs(net)))
        elif cfg.activation == "Maxout":
            pairs = net.reshape(-1, 2)
            margins.append(np.min(np.abs(pairs[:, 0] - pairs[:, 1])))
    if cfg.output == "linear" and cfg.loss in ("Absolute", "Quantile", "Huber"):
        r = abs(t - fwd.y[0])
        margins.append(abs(r - cfg.huber_delta) if cfg.loss == "Huber" else r)
    return float(min(margins))


def assert_buffers_match(cfg, before, got, want, rtol=2e-3, atol_frac=2e-6):
    """Compare a kernel-updated buffer with the reference's, array by array: entries the
    reference leaves untouched must be bit-identical to `before`, entries it changes must
    change, and every change must match within float32 tolerance."""
    for seg in ref.layout(cfg):
        size = int(np.prod(seg.shape))
        sl = slice(seg.offset, seg.offset + size)
        b0 = before[sl].astype(np.float64)
        g = got[sl].astype(np.float64)
        w = want[sl]
        label = f"{seg.name}[layer {seg.layer}]"
        untouched = w == b0
        moved = np.flatnonzero(untouched & (g != b0))
        assert moved.size == 0, (
            f"{label}: kernel changed {moved.size} entries the reference leaves untouched, "
            f"e.g. flat index {moved[0]}: {b0[moved[0]]!r} -> {g[moved[0]]!r}")
        visible = ~untouched & (np.abs(w - b0) > 1e-5 * np.abs(b0))
        frozen = np.flatnonzero(visible & (g == b0))
        assert frozen.size == 0, (
            f"{label}: kernel left {frozen.size} entries unchanged that the reference updates, "
            f"e.g. flat index {frozen[0]}: want {b0[frozen[0]]!r} -> {w[frozen[0]]!r}")
        atol = atol_frac * max(np.max(np.abs(w)), 1e-30)
        np.testing.assert_allclose(g - b0, w - b0, rtol=rtol, atol=atol, err_msg=label)


# ---- layout --------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides", [
    dict(activation="Rectifier", output="softmax"),
    dict(activation="Maxout", output="autoencoder"),
    dict(activation="Maxout", output="linear", adaptive_rate=False, momentum_stable=0.9),
    dict(activation="Tanh", output="linear", adaptive_rate=False),
], ids=["ada-softmax", "ada-maxout-ae", "momentum-maxout", "manual-no-momentum"])
def test_layout_follows_header(overrides):
    overrides = dict(overrides)
    cfg = make_config(overrides.pop("activation"), overrides.pop("output"), **overrides)
    net = Network(cfg)
    want = ref.layout(cfg)
    got = net.segments()
    assert [(SEGMENT_NAMES[s.name], s.layer, s.offset) for s in want] == \
        [(name, layer, int(off)) for name, layer, off, _ in got]
    assert net.n_params == ref.n_params(cfg) and net.n_total == ref.n_total(cfg)
    assert net.rows == [ref.layer_rows(cfg, l) for l in range(len(cfg.units) - 1)]
    model = net.new_model(seed=3)
    for l in range(len(cfg.units) - 1):
        # output-major: one unit's (or channel's) incoming weights are one row of the view
        assert net.view(model, "weights", l).shape == (ref.layer_rows(cfg, l), cfg.units[l])
        np.testing.assert_array_equal(net.view(model, "weights", l),
                                      ref.Model.from_buffer(cfg, model).W(l))


# ---- forward and loss ----------------------------------------------------------------------

@pytest.mark.parametrize("output,loss", OUTPUTS, ids=OUTPUT_IDS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_forward_matches_reference(activation, output, loss):
    cfg = make_config(activation, output, loss, input_dropout_ratio=0.15,
                      hidden_dropout_ratios=[0.2, 0.1])
    net = Network(cfg)
    buf, model = init_model(net, cfg, seed=11)
    rng = np.random.default_rng(5)
    n = 9
    x = random_inputs(rng, n)
    y = random_targets(cfg, rng, n)
    offset = rng.uniform(-0.3, 0.3, n).astype(np.float32) if output == "linear" else None
    fwds = [ref.forward(cfg, model, x[r], offset=0.0 if offset is None else float(offset[r]))
            for r in range(n)]
    want = {"output": np.array([ref.output_value(cfg, f) for f in fwds]),
            "loss": np.array([[ref.row_loss(cfg, f, target_of(y, r))] for r, f in enumerate(fwds)])}
    if output == "autoencoder":
        want["recon"] = np.array([[ref.reconstruction_mse(f)] for f in fwds])
    for layer in range(len(HIDDEN)):
        want[f"hidden{layer}"] = np.array([ref.hidden_output(f, layer) for f in fwds])

    results = {}
    for csr in (False, True):
        rows = make_rows(x, y, offset=offset, csr=csr)
        for what in want:
            if what.startswith("hidden"):
                got = net.predict(buf, rows, what="hidden", layer=int(what[-1]), threads=1)
            else:
                got = net.predict(buf, rows, what=what, threads=1)
            np.testing.assert_allclose(got, want[what], rtol=3e-5,
                                       atol=1e-6 * max(1.0, np.abs(want[what]).max()),
                                       err_msg=f"{what} ({'csr' if csr else 'dense'} rows)")
            results[(what, csr)] = got
    for what in want:
        np.testing.assert_allclose(results[(what, True)], results[(what, False)], rtol=1e-5,
                                   atol=1e-6, err_msg=f"{what}: CSR and dense rows differ")


@pytest.mark.parametrize("output,loss", OUTPUTS, ids=OUTPUT_IDS)
def test_forward_and_gradient_without_a_hidden_layer_match_reference(output, loss):
    cfg = make_config("Rectifier", output, loss, hidden=(), input_dropout_ratio=0.15)
    net = Network(cfg)
    buf, model = init_model(net, cfg, seed=13)
    rng = np.random.default_rng(8)
    x = random_inputs(rng, 7)
    y = random_targets(cfg, rng, 7)
    fwds = [ref.forward(cfg, model, x[r]) for r in range(7)]
    got = net.predict(buf, make_rows(x, y), what="output", threads=1)
    np.testing.assert_allclose(got, np.array([ref.output_value(cfg, f) for f in fwds]), rtol=3e-5, atol=1e-6)
    want = ref.gradient(cfg, model, x[0], target_of(y, 0), weight=1.0, offset=0.0)
    got = net.gradient(buf, make_rows(x[:1], None if y is None else y[:1]), 0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-6 * np.abs(want).max())


@pytest.mark.parametrize("zero_fraction", [0.0, 0.6, 0.95])
@pytest.mark.parametrize("activation,output,loss", [("Rectifier", "softmax", None),
                                                    ("Maxout", "linear", "gamma"),
                                                    ("Tanh", "autoencoder", None)])
def test_forward_of_wide_sparse_rows_matches_reference(activation, output, loss, zero_fraction):
    """Wider layers and mostly-zero rows: the kernel's vectorised and gather paths."""
    cfg = make_config(activation, output, loss, hidden=(37, 19), n_in=45)
    net = Network(cfg)
    buf, model = init_model(net, cfg, seed=12)
    rng = np.random.default_rng(13)
    x = random_inputs(rng, 6, n_cols=45, zero_fraction=zero_fraction)
    y = random_targets(cfg, rng, 6)
    want_out = np.array([ref.output_value(cfg, ref.forward(cfg, model, x[r])) for r in range(6)])
    want_loss = np.array([[ref.row_loss(cfg, ref.forward(cfg, model, x[r]), target_of(y, r))]
                          for r in range(6)])
    for csr in (False, True):
        rows = make_rows(x, y, csr=csr)
        np.testing.assert_allclose(net.predict(buf, rows, threads=1), want_out, rtol=3e-5,
                                   atol=1e-6 * max(1.0, np.abs(want_out).max()))
        np.testing.assert_allclose(net.predict(buf, rows, what="loss", threads=1), want_loss,
                                   rtol=3e-5, atol=1e-6 * max(1.0, np.abs(want_loss).max()))


def test_predict_threads_do_not_change_scores():
    cfg = make_config("Rectifier", "softmax", hidden_dropout_ratios=[0.3, 0.0])
    net = Network(cfg)
    buf, _ = init_model(net, cfg, seed=2)
    rng = np.random.default_rng(0)
    rows = make_rows(random_inputs(rng, 64), random_targets(cfg, rng, 64))
    np.testing.assert_array_equal(net.predict(buf, rows, threads=1),
                                  net.predict(buf, rows, threads=2))


# ---- gradients -----------------------------------------------------------------------------

def pick_smooth_rows(cfg, model, x, y, offset, count, margin):
    """Indices of `count` rows at least `margin` away from every kink, whose output error
    is large enough for finite differences to resolve the gradient."""
    chosen = []
    for r in range(len(x)):
        off = 0.0 if offset is None else float(offset[r])
        fwd = ref.forward(cfg, model, x[r], offset=off, mode="plain")
        error = np.abs(ref.backward(cfg, model, fwd, target_of(y, r))[-1]).max()
        if kink_margin(cfg, model, x[r], target_of(y, r), off) > margin and error > 0.2:
            chosen.append(r)
        if len(chosen) == count:
            return chosen
    pytest.fail(f"no {count} rows {margin} away from the kinks (test construction)")


def central_differences(net, buf, rows, n_params, step):
    """-dLoss/dparam of row 0 of `rows` by central differences of predict(what='loss'),
    and the resolution of those differences (float32 rounding of the loss / the step)."""
    fd, noise = np.empty(n_params), np.empty(n_params)
    for p in range(n_params):
        plus, minus = buf.copy(), buf.copy()
        plus[p] += np.float32(step)
        minus[p] -= np.float32(step)
        lp = float(net.predict(plus, rows, what="loss", threads=1)[0, 0])
        lm = float(net.predict(minus, rows, what="loss", threads=1)[0, 0])
        dp = float(plus[p]) - float(minus[p])
        fd[p] = -(lp - lm) / dp
        noise[p] = 8 * np.finfo(np.float32).eps * max(abs(lp), abs(lm)) / dp
    return fd, noise


@pytest.mark.parametrize("output,loss", OUTPUTS, ids=OUTPUT_IDS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradient_matches_reference_and_finite_differences(activation, output, loss):
    cfg = make_config(activation, output, loss)
    net = Network(cfg)
    buf, model = init_model(net, cfg, seed=23)
    rng = np.random.default_rng(17)
    n = 60
    x = random_inputs(rng, n)
    y = random_targets(cfg, rng, n)
    offset = rng.uniform(-0.3, 0.3, n).astype(np.float32) if output == "linear" else None
    weight = np.full(n, 1.7, np.float32)
    step = 4e-3
    P = net.n_params
    for r in pick_smooth_rows(cfg, model, x, y, offset, count=2, margin=0.05):
        off = 0.0 if offset is None else float(offset[r])
        t = target_of(y, r)
        # the reference's analytic gradient is itself checked against float64 differences
        want = ref.gradient(cfg, model, x[r], t, weight=1.0, offset=off)
        flat = ref.Model.from_buffer(cfg, buf).to_buffer(np.float64)[:P]
        h = 1e-6
        ref_fd = np.array([-(ref.loss_of_params(cfg, model, flat + h * e, x[r], t, off)
                             - ref.loss_of_params(cfg, model, flat - h * e, x[r], t, off)) / (2 * h)
                           for e in np.eye(P)])
        np.testing.assert_allclose(want, ref_fd, rtol=1e-5, atol=1e-7 * max(1, np.abs(want).max()),
                                   err_msg="reference backward vs float64 differences")

        weighted = make_rows(x[r:r + 1], None if y is None else y[r:r + 1], weight=weight[r:r + 1],
                             offset=None if offset is None else offset[r:r + 1])
        got = net.gradient(buf, weighted, 0)
        scale = np.abs(want).max()
        np.testing.assert_allclose(got, 1.7 * want, rtol=1e-4, atol=2e-6 * 1.7 * scale,
                                   err_msg="kernel gradient (row weight 1.7) vs reference")

        single = make_rows(x[r:r + 1], None if y is None else y[r:r + 1],
                           offset=None if offset is None else offset[r:r + 1])
        fd, noise = central_differences(net, buf, single, P, step)
        got1 = net.gradient(buf, single, 0)
        assert noise.max() < 0.05 * scale, "differences too coarse for this row (test construction)"
        bad = np.abs(fd - got1) > 1e-2 * np.abs(got1) + 2e-3 * scale + noise
        assert not bad.any(), (
            f"kernel gradient vs differences of predict(loss): {bad.sum()} of {P} params differ, "
            f"e.g. param {np.argmax(bad)}: gradient {got1[bad][0]:.6g}, differences {fd[bad][0]:.6g}")


def test_gradient_has_no_dropout_and_no_regularisation():
    """The gradient of a dropout + l1/l2 config is the plain network's loss gradient."""
    cfg = make_config("Tanh", "softmax", input_dropout_ratio=0.2, hidden_dropout_ratios=[0.3, 0.2],
                      l1=1e-2, l2=1e-2)
    net = Network(cfg)
    buf, model = init_model(net, cfg, seed=4)
    rng = np.random.default_rng(9)
    x = random_inputs(rng, 3)
    y = random_targets(cfg, rng, 3)
    rows = make_rows(x, y)
    for r in range(3):
        want = ref.gradient(cfg, model, x[r], float(y[r]), mode="plain")
        np.testing.assert_allclose(net.gradient(buf, rows, r), want, rtol=1e-4,
                                   atol=2e-6 * np.abs(want).max())


def test_gradient_of_csr_row_equals_dense():
    cfg = make_config("Rectifier", "linear", "Huber")
    net = Network(cfg)
    buf, _ = init_model(net, cfg, seed=8)
    rng = np.random.default_rng(3)
    x = random_inputs(rng, 4, zero_fraction=0.5)
    y = random_targets(cfg, rng, 4)
    dense, csr = make_rows(x, y), make_rows(x, y, csr=True)
    for r in range(4):
        np.testing.assert_allclose(net.gradient(buf, csr, r), net.gradient(buf, dense, r),
                                   rtol=1e-5, atol=1e-7)


# ---- one-row updates -----------------------------------------------------------------------

ADADELTA = dict(adaptive_rate=True, rho=0.95, epsilon=1e-6)
MOMENTUM = dict(adaptive_rate=False, rate=0.05, rate_annealing=1e-2, rate_decay=0.7,
                momentum_start=0.5, momentum_ramp=100.0, momentum_stable=0.9)
UPDATE_CASES = {
    # id: (activation, output, loss, overrides, csr rows, trigger max_w2)
    "ada-rect-softmax-fast": ("Rectifier", "softmax", None, dict(ADADELTA), False, False),
    "ada-rect-softmax-slow-l1l2": ("Rectifier", "softmax", None,
                                   dict(ADADELTA, fast_mode=False, l1=1e-3, l2=1e-2), False, False),
    "ada-rect-softmax-fast-l1l2-maxw2": ("Rectifier", "softmax", None,
                                         dict(ADADELTA, l1=1e-3, l2=1e-2), False, True),
    "ada-tanh-huber-maxw2": ("Tanh", "linear", "Huber", dict(ADADELTA), False, True),
    "ada-maxout-quadratic-l2": ("Maxout", "linear", "Quadratic", dict(ADADELTA, l2=1e-2), False, False),
    "ada-maxout-softmax-slow": ("Maxout", "softmax", None, dict(ADADELTA, fast_mode=False), False, False),
    "ada-exprect-gamma": ("ExpRectifier", "linear", "gamma", dict(ADADELTA, l1=1e-3), False, False),
    "ada-tanh-autoencoder": ("Tanh", "autoencoder", None, dict(ADADELTA), False, False),
    "ada-rect-softmax-csr": ("Rectifier", "softmax", None, dict(ADADELTA), True, False),
    "ada-tanh-quantile-csr-slow": ("Tanh", "linear", "Quantile", dict(ADADELTA, fast_mode=False), True, False),
    "nesterov-rect-softmax-l1l2-maxw2": ("Rectifier", "softmax", None,
                                         dict(MOMENTUM, l1=1e-3, l2=1e-2), False, True),
    "nesterov-maxout-quadratic-slow": ("Maxout", "linear", "Quadratic",
                                       dict(MOMENTUM, fast_mode=False, l2=1e-2), False, False),
    "plain-rect-poisson-slow-l1": ("Rectifier", "linear", "poisson",
                                   dict(MOMENTUM, nesterov_accelerated_gradient=False,
                                        fast_mode=False, l1=1e-3), False, False),
    "plain-tanh-softmax-maxw2": ("Tanh", "softmax", None,
                                 dict(MOMENTUM, nesterov_accelerated_gradient=False, l2=1e-2), False, True),
    "plain-maxout-autoencoder-csr": ("Maxout", "autoencoder", None,
                                     dict(MOMENTUM, nesterov_accelerated_gradient=False), True, False),
    "manual-nomomentum-rect-bernoulli-slow": ("Rectifier", "linear", "bernoulli",
                                              dict(MOMENTUM, momentum_start=0.0, momentum_stable=0.0,
                                                   fast_mode=False, l2=1e-2), False, False),
    "manual-nomomentum-tanh-softmax": ("Tanh", "softmax", None,
                                       dict(MOMENTUM, momentum_start=0.0, momentum_stable=0.0), False, False),
}
# wider layers (vector tails, the gather path for few non-zero inputs): n_in, hidden, zeros
WIDE = dict(n_in=45, hidden=(37, 19))
WIDE_CASES = {
    "wide-ada-rect-softmax-fast-maxw2": ("Rectifier", "softmax", None, dict(ADADELTA), False, True),
    "wide-ada-maxout-huber-slow-l2": ("Maxout", "linear", "Huber", dict(ADADELTA, fast_mode=False, l2=1e-2),
                                      False, False),
    "wide-ada-rect-autoencoder-csr": ("Rectifier", "autoencoder", None, dict(ADADELTA), True, False),
    "wide-nesterov-exprect-softmax-l1": ("ExpRectifier", "softmax", None, dict(MOMENTUM, l1=1e-3), False, True),
    "wide-plain-tanh-quadratic-csr-slow": ("Tanh", "linear", "Quadratic",
                                           dict(MOMENTUM, nesterov_accelerated_gradient=False,
                                                fast_mode=False, l2=1e-2), True, False),
}
UPDATE_CASES.update(WIDE_CASES)
# no hidden layer (hidden=[], H2O-3's linear / logistic model): the inputs feed the output
NO_HIDDEN = dict(hidden=())
NO_HIDDEN_CASES = {
    "nohidden-ada-softmax-l1l2-maxw2": ("Rectifier", "softmax", None, dict(ADADELTA, l1=1e-3, l2=1e-2), False, True),
    "nohidden-nesterov-huber-csr": ("Tanh", "linear", "Huber", dict(MOMENTUM), True, False),
    "nohidden-ada-autoencoder-slow": ("Maxout", "autoencoder", None, dict(ADADELTA, fast_mode=False), False, False),
}
UPDATE_CASES.update(NO_HIDDEN_CASES)
SAMPLES_BEFORE = 37


class NearKink(Exception):
    """A row of the test data lies too close to a kink for float32 to agree on its side."""


def reference_sequence(cfg, model, x, y, weight, offset, order, n0, sparse):
    """Apply the reference's one-row update to rows `order` in turn."""
    loss_sum, rescaled = 0.0, 0
    for k, r in enumerate(order):
        off = 0.0 if offset is None else float(offset[r])
        if kink_margin(cfg, model, x[r], target_of(y, r), off, mode="train") < 1e-3:
            raise NearKink
        model, info = ref.train_row(cfg, model, x[r].astype(np.float64), target_of(y, r),
                                    weight=float(weight[r]), offset=off, n=n0 + k, sparse=sparse)
        loss_sum += float(weight[r]) * info.loss
        rescaled += info.rescaled_rows
    return model, loss_sum, rescaled


def max_w2_that_triggers(cfg, model, x, y, weight, offset, order, n0, sparse):
    """A max_w2 below the squared norm of about half the rows the update touches."""
    loose = dataclasses.replace(cfg, max_w2=np.inf)
    new, _, _ = reference_sequence(loose, model, x, y, weight, offset, order, n0, sparse)
    norms = np.concatenate([(new.W(l) ** 2).sum(axis=1) for l in range(len(cfg.units) - 1)])
    return float(np.median(norms))


def run_update_case(case_id, order, seed, zero_fraction=0.35):
    """Train rows `order` with the kernel (threads=1) and the reference; the first data seed
    from `seed` on whose rows stay clear of kinks is used."""
    for attempt in range(20):
        try:
            return try_update_case(case_id, order, seed + 1000 * attempt, zero_fraction)
        except NearKink:
            continue
    pytest.fail("no kink-free data found (test construction)")


def try_update_case(case_id, order, seed, zero_fraction):
    activation, output, loss, overrides, csr, trigger = UPDATE_CASES[case_id]
    shape = WIDE if case_id in WIDE_CASES else NO_HIDDEN if case_id in NO_HIDDEN_CASES else {}
    cfg = make_config(activation, output, loss, **shape, **overrides)
    net = Network(cfg)
    buf, model = init_model(net, cfg, seed=seed, with_state=True)
    rng = np.random.default_rng(seed + 1)
    n = 4
    x = random_inputs(rng, n, n_cols=cfg.units[0], zero_fraction=zero_fraction)
    y = random_targets(cfg, rng, n)
    weight = rng.uniform(0.5, 2.0, n).astype(np.float32)
    offset = rng.uniform(-0.3, 0.3, n).astype(np.float32) if output == "linear" else None
    if trigger:
        cfg = dataclasses.replace(cfg, max_w2=max_w2_that_triggers(
            cfg, model, x, y, weight, offset, order, SAMPLES_BEFORE, csr))
        net = Network(cfg)
    want, loss_sum, rescaled = reference_sequence(cfg, model, x, y, weight, offset, order,
                                                  SAMPLES_BEFORE, csr)
    if trigger:
        assert rescaled > 0, "max_w2 did not trigger in the reference (test construction)"
    rows = make_rows(x, y, weight=weight, offset=offset, csr=csr)
    got = buf.copy()
    stats = net.train(got, rows, order=np.array(order), samples_before=SAMPLES_BEFORE, seed=99,
                      threads=1)
    assert (stats.trained, stats.skipped, stats.nonfinite) == (len(order), 0, False)
    assert stats.loss_sum == pytest.approx(loss_sum, rel=1e-4)
    assert_buffers_match(cfg, buf, got, want.to_buffer(np.float64))


@pytest.mark.parametrize("case_id", list(UPDATE_CASES))
def test_one_row_update_matches_reference(case_id):
    run_update_case(case_id, order=[2], seed=31)


@pytest.mark.parametrize("case_id", list(WIDE_CASES))
def test_one_row_update_of_a_mostly_zero_row_matches_reference(case_id):
    run_update_case(case_id, order=[0], seed=41, zero_fraction=0.9)


@pytest.mark.parametrize("case_id", ["ada-rect-softmax-fast-l1l2-maxw2", "ada-tanh-autoencoder",
                                     "nesterov-rect-softmax-l1l2-maxw2", "plain-rect-poisson-slow-l1",
                                     "ada-rect-softmax-csr"])
def test_row_sequence_matches_reference(case_id):
    run_update_case(case_id, order=[1, 3, 0], seed=57)


def test_momentum_ramp_and_annealing_follow_samples_before():
    """The same row trained at different sample counts moves the weights by the manual
    rate of that count (annealing, momentum ramp), as the reference says."""
    cfg = make_config("Tanh", "linear", "Quadratic", **MOMENTUM)
    net = Network(cfg)
    buf, model = init_model(net, cfg, seed=5, with_state=True)
    rng = np.random.default_rng(6)
    x = random_inputs(rng, 1)
    y = random_targets(cfg, rng, 1)
    rows = make_rows(x, y)
    for n0 in (0, 50, 99, 100, 400):
        want, _ = ref.train_row(cfg, model, x[0].astype(np.float64), float(y[0]), n=n0)
        got = buf.copy()
        net.train(got, rows, order=[0], samples_before=n0, threads=1)
        assert_buffers_match(cfg, buf, got, want.to_buffer(np.float64))
