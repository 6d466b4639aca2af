"""Two Hogwild! threads train the MNIST pair 7xx-200-200-10 to H2O-3's test error."""
import numpy as np

from h2odl_mpi.kernel import NetConfig, Network, Rows

# H2O-3 3.46, same parameters and initialisation (hidden biases 0.5, then 1.0), 2 epochs, on
# a 2-core machine: 10.88 %, 11.88 % and 12.2 % in one set of runs, 11.28 % to 12.89 % over 3
# seeds in benchmarks/h2o_parity.py; two Hogwild! threads are not reproducible (which thread
# overwrites which update depends on the machine's load), so the bar is H2O-3's worst seen,
# 12.89 %, plus half a point for that: 13.05 % was seen once on a loaded 2-core machine
H2O_TEST_ERROR = 0.135


def test_two_threads_reach_h2o_test_error(mnist):
    x, y, xt, yt = mnist
    net = Network(NetConfig(units=[x.shape[1], 200, 200, 10]))
    model = net.new_model(seed=1234)
    rows = Rows.dense(x, y)
    samples = 0
    for epoch in range(2):
        order = np.random.default_rng(epoch).permutation(len(x))
        stats = net.train(model, rows, order, samples_before=samples, seed=epoch + 7, threads=2)
        assert stats.trained == len(x) and not stats.nonfinite
        samples += len(x)
    err = float((net.predict(model, Rows.dense(xt, yt)).argmax(1) != yt).mean())
    assert err <= H2O_TEST_ERROR, err


def test_training_lowers_the_loss(mnist):
    x, y, _, _ = mnist
    net = Network(NetConfig(units=[x.shape[1], 32, 10], activation="Tanh"))
    model = net.new_model(seed=3)
    rows = Rows.dense(x[:2000], y[:2000])
    before = float(net.predict(model, rows, "loss").mean())
    net.train(model, rows, threads=2)
    after = float(net.predict(model, rows, "loss").mean())
    assert after < 0.5 * before, (before, after)
