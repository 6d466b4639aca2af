"""distribution huber: the Huber delta follows huber_alpha, as in H2O (the huber_alpha
quantile of the absolute training residuals, re-estimated at every scoring)."""
import numpy as np
import pytest

from h2odl_mpi.data.frame import Frame
from h2odl_mpi.kernel import NetConfig, Network, Rows
from h2odl_mpi.params import validate
from h2odl_mpi.training.scoring import weighted_quantile
from h2odl_mpi.training.trainer import train


def _data(path, n=500):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(n, 2))
    y = 3 * x[:, 0] - x[:, 1] + rng.standard_t(2, size=n)  # heavy tails: outliers
    with open(path, "w") as f:
        f.write("a,b,y\n")
        f.writelines(f"{a:.5f},{b:.5f},{t:.5f}\n" for (a, b), t in zip(x, y))
    return str(path)


def _run(path, alpha):
    return train(validate({"train": path, "response": "y", "distribution": "huber", "huber_alpha": alpha,
                           "hidden": [6], "epochs": 3, "seed": 1, "threads": 1, "quiet_mode": True,
                           "score_interval": 0, "train_samples_per_iteration": 100,
                           "overwrite_with_best_model": False, "variable_importances": False}), None)


def test_huber_alpha_sets_the_delta_and_changes_the_model(tmp_path):
    path = _data(tmp_path / "h.csv")
    low, high = _run(path, 0.3), _run(path, 0.95)
    assert not np.array_equal(low.model, high.model)
    d_low, d_high = low.network.config.huber_delta, high.network.config.huber_delta
    assert 0 < d_low < d_high  # a higher quantile of the same kind of residuals
    # the delta is the alpha-quantile of |y - prediction| of the last scoring (the final
    # model: the run scores at its end) on the scored rows (all 500 here), standardised
    for run, alpha in ((low, 0.3), (high, 0.95)):
        assert run.history[-1]["iteration"] == run["iterations"]
        rows = run.info.rows(Frame.read(path))
        pred = run.network.predict(run.model, rows, "output", threads=1)[:, 0].astype(np.float64)
        want = weighted_quantile(np.abs(rows.y.astype(np.float64) - pred), np.ones(rows.n_rows), alpha)
        assert run.network.config.huber_delta == pytest.approx(want, rel=1e-6)


def test_weighted_quantile_is_the_inverted_distribution_function():
    v = np.array([5.0, 1.0, 3.0, 2.0, 4.0])
    w = np.ones(5)
    assert weighted_quantile(v, w, 0.2) == 1.0 and weighted_quantile(v, w, 0.5) == 3.0
    assert weighted_quantile(v, w, 1.0) == 5.0 and weighted_quantile(v, w, 0.0) == 1.0
    assert weighted_quantile(v, np.array([0, 0, 0, 0, 1.0]), 0.5) == 4.0  # all weight on 4
    assert np.isnan(weighted_quantile(v, np.zeros(5), 0.5))


def test_the_kernel_uses_the_delta_it_is_given():
    net = Network(NetConfig(units=[2, 3, 1], output="linear", loss="Huber"))
    x = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    rows = Rows.dense(x, y=10 * x[:, 0])
    a, b = net.new_model(3), net.new_model(3)
    net.train(a, rows, seed=1, threads=1)
    net.set_huber_delta(0.05)
    net.train(b, rows, seed=1, threads=1)
    assert not np.array_equal(a, b)
