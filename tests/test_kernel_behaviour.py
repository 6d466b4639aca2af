"""Behaviour of the C kernel that a one-row reference cannot pin down.

Reproducibility of single-thread training (and how seeds and samples_before enter it), the
observed dropout fractions (seen through which weights a one-row update moves), max_w2
holding over a few hundred rows, l1 shrinking a pure-noise input's weights, skipped rows,
and kernel.py's argument validation (a ValueError that names the parameter).
"""
import dataclasses
import math

import numpy as np
import pytest

import reference_net as ref
from h2odl_mpi.kernel import NetConfig, Network, Rows


def regression_data(rng, n, n_cols):
    x = rng.normal(0.0, 1.0, size=(n, n_cols)).astype(np.float32)
    y = x[:, 0] - x[:, 1] + 0.5 * x[:, 2] + 0.1 * rng.normal(size=n)
    return x, y.astype(np.float32)


def classification_data(rng, n, n_cols, n_classes):
    x = rng.normal(0.0, 1.0, size=(n, n_cols)).astype(np.float32)
    y = (np.abs(x[:, 0] + x[:, 1]) * 1.3).astype(int) % n_classes
    return x, y.astype(np.float32)


def weight_matrix(cfg, model, l):
    """W_l as (rows, inputs), read with the reference's (header) layout."""
    return ref.Model.from_buffer(cfg, model).W(l)


# ---- reproducibility -----------------------------------------------------------------------

DROPOUT_CFG = NetConfig(units=[8, 12, 6, 3], activation="Rectifier", output="softmax",
                        input_dropout_ratio=0.2, hidden_dropout_ratios=[0.3, 0.2])


def trained(cfg, seed, order=None, init_seed=1, n=150):
    net = Network(cfg)
    x, y = classification_data(np.random.default_rng(0), n, cfg.units[0], cfg.units[-1])
    model = net.new_model(seed=init_seed)
    net.train(model, Rows.dense(x, y), order=order, seed=seed, threads=1)
    return model


def test_single_thread_training_is_bit_reproducible():
    a, b = trained(DROPOUT_CFG, seed=5), trained(DROPOUT_CFG, seed=5)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, Network(DROPOUT_CFG).new_model(seed=1)), "training changed nothing"


def test_dropout_seed_changes_the_result_only_with_dropout():
    assert not np.array_equal(trained(DROPOUT_CFG, seed=5), trained(DROPOUT_CFG, seed=6))
    no_dropout = dataclasses.replace(DROPOUT_CFG, input_dropout_ratio=0.0,
                                     hidden_dropout_ratios=[0.0, 0.0])
    assert np.array_equal(trained(no_dropout, seed=5), trained(no_dropout, seed=6))


def test_init_seed_changes_the_weights():
    net = Network(DROPOUT_CFG)
    assert np.array_equal(net.new_model(seed=3), net.new_model(seed=3))
    a, b = net.new_model(seed=3), net.new_model(seed=4)
    for l in range(3):
        assert not np.any(weight_matrix(DROPOUT_CFG, a, l) == weight_matrix(DROPOUT_CFG, b, l))


def test_split_training_with_samples_before_equals_one_call():
    """Dropout masks, annealing and the momentum ramp are keyed by the sample number, so
    two calls with the right samples_before reproduce one call bit for bit."""
    cfg = dataclasses.replace(DROPOUT_CFG, adaptive_rate=False, rate=0.02, rate_annealing=1e-3,
                              momentum_start=0.3, momentum_ramp=100, momentum_stable=0.8)
    net = Network(cfg)
    x, y = classification_data(np.random.default_rng(1), 120, cfg.units[0], cfg.units[-1])
    rows = Rows.dense(x, y)
    order = np.random.default_rng(2).permutation(120)
    whole, split = net.new_model(seed=9), net.new_model(seed=9)
    net.train(whole, rows, order=order, seed=77, threads=1)
    net.train(split, rows, order=order[:50], samples_before=0, seed=77, threads=1)
    net.train(split, rows, order=order[50:], samples_before=50, seed=77, threads=1)
    assert np.array_equal(whole, split)
    shifted = net.new_model(seed=9)
    net.train(shifted, rows, order=order, samples_before=1, seed=77, threads=1)
    assert not np.array_equal(whole, shifted)


# ---- dropout fractions ---------------------------------------------------------------------

def binomial_tolerance(p, trials, sigmas=5.0):
    return sigmas * math.sqrt(p * (1 - p) / trials)


def one_row_updates(net, model, rows, n_updates, seed=42):
    """Yield (before, after) buffers of n_updates independent one-row updates of `model`,
    each at its own sample number (so each draws its own dropout masks)."""
    for k in range(n_updates):
        after = model.copy()
        net.train(after, rows, order=[k % rows.n_rows], samples_before=k, seed=seed, threads=1)
        yield model, after


def test_hidden_dropout_fraction_matches_ratio():
    """All first-layer rectifiers are active (large positive biases) and the output error is
    large (far targets), so a unit's incoming weights stay unchanged exactly when dropout
    dropped it."""
    ratio, n_hidden, n_updates = 0.3, 60, 150
    cfg = NetConfig(units=[8, n_hidden, 1], activation="Rectifier", output="linear",
                    hidden_dropout_ratios=[ratio])
    net = Network(cfg)
    model = net.new_model(seed=2)
    m = ref.Model.from_buffer(cfg, model)
    m.arrays[("b", 0)][:] = 5.0
    model[:] = m.to_buffer()
    x = np.random.default_rng(3).normal(size=(40, 8)).astype(np.float32)
    assert np.all(x != 0)
    rows = Rows.dense(x, np.full(40, 100.0, np.float32))
    assert np.all(net.predict(model, rows, what="hidden", layer=0, threads=1) > 0)
    kept = []
    for before, after in one_row_updates(net, model, rows, n_updates):
        W0_changed = np.any(weight_matrix(cfg, after, 0) != weight_matrix(cfg, before, 0), axis=1)
        W1_changed = np.any(weight_matrix(cfg, after, 1) != weight_matrix(cfg, before, 1), axis=0)
        # a dropped unit (activation 0) also leaves its outgoing weights alone (fast_mode)
        np.testing.assert_array_equal(W0_changed, W1_changed)
        kept.append(W0_changed.mean())
    kept = np.array(kept)
    assert abs(kept.mean() - (1 - ratio)) < binomial_tolerance(ratio, n_updates * n_hidden)
    assert kept.std() > 0.02, "the number of dropped units never varies between rows"


def test_input_dropout_fraction_matches_ratio():
    """Tanh units all learn, so an input column's weights stay unchanged exactly when input
    dropout zeroed it (fast_mode skips zero inputs)."""
    ratio, n_in, n_updates = 0.25, 30, 150
    cfg = NetConfig(units=[n_in, 10, 3], activation="Tanh", output="softmax",
                    input_dropout_ratio=ratio)
    net = Network(cfg)
    model = net.new_model(seed=4)
    x, y = classification_data(np.random.default_rng(5), 40, n_in, 3)
    rows = Rows.dense(x, y)
    kept = [np.any(weight_matrix(cfg, after, 0) != weight_matrix(cfg, before, 0), axis=0).mean()
            for before, after in one_row_updates(net, model, rows, n_updates)]
    assert abs(np.mean(kept) - (1 - ratio)) < binomial_tolerance(ratio, n_updates * n_in)


def test_autoencoder_target_is_the_input_before_dropout():
    """Every input is 3 and |tanh| < 1, so each row loss (stats.loss_sum, sum_k (t_k - y_k)^2)
    is at least 6 * (3 - 1)^2 = 24 when the targets are the undropped inputs; a dropped input
    taken as a 0 target would contribute less than 1."""
    cfg = NetConfig(units=[6, 4, 6], activation="Tanh", output="autoencoder",
                    input_dropout_ratio=0.5)
    net = Network(cfg)
    model = net.new_model(seed=6)
    rows = Rows.dense(np.full((1, 6), 3.0, np.float32))
    losses, dropped = [], 0
    for k in range(30):
        after = model.copy()
        losses.append(net.train(after, rows, order=[0], samples_before=k, threads=1).loss_sum)
        dropped += np.all(weight_matrix(cfg, after, 0) == weight_matrix(cfg, model, 0), axis=0).sum()
    assert dropped > 0, "input dropout never dropped anything (test construction)"
    assert min(losses) >= 6 * 2.0 ** 2


# ---- max_w2 and l1 -------------------------------------------------------------------------

def row_norms2(cfg, model):
    return np.concatenate([(weight_matrix(cfg, model, l) ** 2).sum(axis=1)
                           for l in range(len(cfg.units) - 1)])


def test_max_w2_holds_after_training():
    max_w2 = 0.6
    cfg = NetConfig(units=[10, 16, 8, 1], activation="Rectifier", output="linear",
                    adaptive_rate=False, rate=0.02, rate_annealing=0.0, max_w2=max_w2)
    free = dataclasses.replace(cfg, max_w2=math.inf)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 10)).astype(np.float32)
    y = (4 * x[:, 0] - 3 * x[:, 1] + 2 * x[:, 2] * x[:, 3]).astype(np.float32)
    rows = Rows.dense(x, y)
    init = Network(cfg).new_model(seed=8, distribution="Uniform", scale=0.1)
    assert row_norms2(cfg, init).max() < max_w2
    models = {}
    for name, c in (("capped", cfg), ("free", free)):
        models[name] = init.copy()
        stats = Network(c).train(models[name], rows, seed=1, threads=1)
        assert stats.trained == 300 and not stats.nonfinite
    assert row_norms2(free, models["free"]).max() > 2 * max_w2, "max_w2 would not bind (test construction)"
    capped = row_norms2(cfg, models["capped"])
    assert capped.max() <= max_w2 * (1 + 1e-5)
    assert capped.max() > 0.9 * max_w2


def test_l1_shrinks_weights_of_a_noise_input():
    cfg = NetConfig(units=[6, 10, 1], activation="Tanh", output="linear",
                    adaptive_rate=False, rate=0.01, rate_annealing=0.0)
    rng = np.random.default_rng(9)
    x, y = regression_data(rng, 600, 6)            # column 5 is pure noise
    rows = Rows.dense(x, y)
    init = Network(cfg).new_model(seed=10)
    mean_abs = {}
    for l1 in (0.0, 1e-2):
        c = dataclasses.replace(cfg, l1=l1)
        model = init.copy()
        for epoch in range(3):
            Network(c).train(model, rows, samples_before=600 * epoch, threads=1)
        mean_abs[l1] = np.abs(weight_matrix(c, model, 0)[:, 5]).mean()
    initial = np.abs(weight_matrix(cfg, init, 0)[:, 5]).mean()
    assert mean_abs[1e-2] < 0.5 * mean_abs[0.0]
    assert mean_abs[1e-2] < 0.5 * initial


def test_set_huber_delta_changes_the_next_call_and_refuses_bad_values():
    cfg = NetConfig(units=[5, 8, 1], activation="Tanh", output="linear", loss="Huber",
                    huber_delta=1.0)
    x, y = regression_data(np.random.default_rng(21), 200, 5)
    rows = Rows.dense(x, 3 * y)                    # residuals on both sides of both deltas
    net = Network(dataclasses.replace(cfg))
    init = net.new_model(seed=22)

    def train(network):
        model = init.copy()
        stats = network.train(model, rows, seed=1, threads=1)
        return model, stats, network.predict(model, rows, what="loss", threads=1)

    wide, wide_stats, wide_loss = train(net)
    net.set_huber_delta(0.1)
    assert net.config.huber_delta == 0.1
    narrow, narrow_stats, narrow_loss = train(net)
    assert not np.array_equal(wide, narrow)
    assert wide_stats.loss_sum != narrow_stats.loss_sum
    assert not np.array_equal(wide_loss, narrow_loss)
    fresh = train(Network(dataclasses.replace(cfg, huber_delta=0.1)))
    assert np.array_equal(narrow, fresh[0]) and np.array_equal(narrow_loss, fresh[2])
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="huber_delta"):
            net.set_huber_delta(bad)
    assert net.config.huber_delta == 0.1


# ---- skipped rows and non-finite values ----------------------------------------------------

def test_missing_targets_and_zero_weights_are_skipped():
    cfg = NetConfig(units=[4, 5, 1], activation="Tanh", output="linear")
    net = Network(cfg)
    x = np.random.default_rng(11).normal(size=(4, 4)).astype(np.float32)
    y = np.array([1.0, np.nan, 0.5, 2.0], np.float32)
    w = np.array([1.0, 1.0, 0.0, 2.0], np.float32)
    rows = Rows.dense(x, y, weight=w)
    model = net.new_model(seed=12)
    untouched = model.copy()
    stats = net.train(model, rows, order=[1, 2], threads=1)
    assert (stats.trained, stats.skipped, stats.loss_sum) == (0, 2, 0.0)
    assert np.array_equal(model, untouched)
    stats = net.train(model, rows, order=[0, 1, 2, 3], threads=1)
    assert (stats.trained, stats.skipped) == (2, 2)
    assert not np.array_equal(model, untouched)


def test_non_finite_output_stops_training():
    cfg = NetConfig(units=[3, 4, 1], activation="Rectifier", output="linear", loss="poisson")
    net = Network(cfg)
    model = net.new_model(seed=13)
    m = ref.Model.from_buffer(cfg, model)
    m.arrays[("b", 1)][:] = 200.0                  # exp(200) overflows float32
    m.arrays[("b", 0)][:] = 1.0
    model[:] = m.to_buffer()
    rows = Rows.dense(np.ones((5, 3), np.float32), np.ones(5, np.float32))
    stats = net.train(model, rows, threads=1)
    assert stats.nonfinite and stats.trained == 0


# ---- argument validation -------------------------------------------------------------------

BASE = dict(units=[4, 5, 3], activation="Rectifier", output="softmax")


@pytest.mark.parametrize("overrides,match", [
    (dict(hidden_dropout_ratios=[0.1, 0.2]), "hidden_dropout_ratios"),
    (dict(hidden_dropout_ratios=[1.0]), r"hidden_dropout_ratios\[0\]"),
    (dict(input_dropout_ratio=-0.1), "input_dropout_ratio"),
    (dict(rho=1.5), "rho"),
    (dict(rho=0.0), "rho"),
    (dict(epsilon=0.0), "epsilon"),
    (dict(rate=-1.0), "rate"),
    (dict(rate_decay=0.0), "rate_decay"),
    (dict(momentum_stable=1.5), "momentum_stable"),
    (dict(l1=-1e-3), "l1"),
    (dict(l2=float("nan")), "l2"),
    (dict(max_w2=0.0), "max_w2"),
    (dict(activation="Sigmoid"), "activation"),
    (dict(output="ordinal"), "output"),
    (dict(output="linear"), "linear output"),
    (dict(output="linear", units=[4, 5, 1], loss="Hinge"), "loss"),
    (dict(output="linear", units=[4, 5, 1], loss="tweedie", tweedie_power=2.5), "tweedie_power"),
    (dict(output="autoencoder"), "autoencoder"),
    (dict(units=[4]), "units"),
    (dict(units=[4, 0, 3]), r"units\[1\]"),
], ids=lambda v: str(v) if isinstance(v, str) else None)
def test_bad_config_raises_naming_the_parameter(overrides, match):
    with pytest.raises(ValueError, match=match):
        Network(NetConfig(**dict(BASE, **overrides)))


def _net_model_rows(y=(0, 1, 2)):
    net = Network(NetConfig(**BASE))
    x = np.zeros((3, 4), np.float32)
    return net, net.new_model(seed=0), Rows.dense(x, np.array(y, np.float32))


@pytest.mark.parametrize("call,match", [
    (lambda net, m, r: net.predict(m, Rows.dense(np.zeros((2, 5)))), "columns"),
    (lambda net, m, r: net.train(m, Rows.dense(np.zeros((3, 4)), np.array([0, 3, 1])), threads=1),
     "class indices"),
    (lambda net, m, r: net.train(m, Rows.dense(np.zeros((3, 4)), np.array([0, 1.5, 1])), threads=1),
     "class indices"),
    (lambda net, m, r: net.train(m, Rows.dense(np.zeros((3, 4)), np.array([0, -1, 1])), threads=1),
     "class indices"),
    (lambda net, m, r: net.train(m, Rows.dense(np.zeros((3, 4))), threads=1), "targets"),
    (lambda net, m, r: Rows.dense(np.zeros((3, 4)), np.zeros(2)), "y has"),
    (lambda net, m, r: Rows.dense(np.zeros((3, 4)), np.zeros(3), weight=[1, -1, 1]), "weight"),
    (lambda net, m, r: Rows.dense(np.zeros(4)), "2-d"),
    (lambda net, m, r: Rows.csr([0, 2], [0, 9], [1.0, 1.0], 4), "column indices"),
    (lambda net, m, r: net.train(m[:-1].copy(), r, threads=1), "model"),
    (lambda net, m, r: net.train(m.astype(np.float64), r, threads=1), "model"),
    (lambda net, m, r: net.train(m, r, order=[0, 3], threads=1), "order"),
    (lambda net, m, r: net.train(m, r, samples_before=-1, threads=1), "samples_before"),
    (lambda net, m, r: net.train(m, r, threads=0), "threads"),
    (lambda net, m, r: net.predict(m, r, what="probabilities"), "what"),
    (lambda net, m, r: net.predict(m, r, what="hidden", layer=1), "layer"),
    (lambda net, m, r: net.predict(m, r, what="recon"), "autoencoder"),
    (lambda net, m, r: net.gradient(m, r, 3), "row"),
    (lambda net, m, r: net.new_model(distribution="Cauchy"), "initial_weight_distribution"),
    (lambda net, m, r: net.new_model(scale=0.0), "initial_weight_scale"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_call_raises_naming_the_argument(call, match):
    net, model, rows = _net_model_rows()
    with pytest.raises(ValueError, match=match):
        call(net, model, rows)
