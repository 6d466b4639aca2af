"""The rules that combine the ranks' models (h2odl_mpi/training/combine.py), under mpirun: each does
what its formula says for a combine (checked with numpy on the gathered inputs), every rank
holds the same bits after every combine, and a run stopped at a checkpoint and resumed gives
the same bits as a straight run, for every rule."""
import numpy as np
import pytest
from mpi4py import MPI

from h2odl_mpi.training.combine import BlockMomentum, ElasticAverage, ModelAverage
from h2odl_mpi.params import validate
from h2odl_mpi.training.trainer import train

comm = MPI.COMM_WORLD
N_PARAMS, N_STATE = 37, 11


def _rank_models(step):
    """This rank's model after training (weights and biases, then optimizer state) and its rows."""
    rng = np.random.default_rng([step, comm.rank])
    return rng.normal(size=N_PARAMS + N_STATE).astype(np.float32), int(rng.integers(1, 50))


def _mean(models, rows):
    return sum(np.float64(r) * m.astype(np.float64) for m, r in zip(models, rows)) / sum(rows)


RULES = {"average": ModelAverage, "block_momentum": lambda: BlockMomentum(-1.0, 1.0, True),
         "block_momentum_plain": lambda: BlockMomentum(0.6, 0.8, False),
         "elastic": lambda: ElasticAverage(0.7, 0.05)}


def _fake_nodes():
    """Two ranks a node (ranks 0-1, 2-3, ...): node-aware from 3 ranks on."""
    return comm.rank // 2


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("layout", ["flat", "nodes"])
@pytest.mark.parametrize("rule", sorted(RULES))
def test_each_rule_follows_its_formula_and_every_rank_agrees(rule, layout):
    combiner = RULES[rule]()
    if layout == "nodes":
        combiner.node_color = _fake_nodes()
    start = np.random.default_rng(99).normal(size=N_PARAMS + N_STATE).astype(np.float32)
    model = start.copy()
    combiner.start(comm, model, N_PARAMS)
    w, d = start[:N_PARAMS].astype(np.float64), np.zeros(N_PARAMS)  # the reference's state
    for step in range(4):
        mine, rows = _rank_models(step)
        if step > 0 and comm.rank == 0:
            rows = 0  # a rank that trained nothing weighs nothing
        models, counts = comm.allgather(mine), comm.allgather(rows)
        s = np.array(model[:N_PARAMS], dtype=np.float64)  # where the ranks trained from
        model[:] = mine
        combiner.combine(comm, model, rows, sum(counts))
        a = _mean(models, counts)
        want_state = a[N_PARAMS:]
        if rule == "average":
            want, current = a[:N_PARAMS], a[:N_PARAMS]
        elif rule.startswith("block_momentum"):
            m = 1 - 1 / comm.size if combiner.momentum_param < 0 else combiner.momentum_param
            d = m * d + combiner.rate * (a[:N_PARAMS] - s)
            w = w + d
            want, current = (w + m * d if combiner.nesterov else w), w
        else:
            w = 0.7 * a[:N_PARAMS] + 0.3 * w
            want, current = a[:N_PARAMS] - 0.05 * (a[:N_PARAMS] - w), w
        np.testing.assert_allclose(model[:N_PARAMS], want, rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(model[N_PARAMS:], want_state, rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(combiner.current(model)[:N_PARAMS], current, rtol=2e-5, atol=2e-5)
        for other in comm.allgather(model):  # bit-identical on every rank
            assert np.array_equal(other, model)
        for name, arr in combiner.state(model).items():
            assert all(np.array_equal(arr, o) for o in comm.allgather(arr)), name
    assert combiner.layout == ("flat" if layout == "flat" or comm.size < 3 else
                               f"node-aware over {(comm.size + 1) // 2} nodes (up to 2 ranks each)")
    combiner.finish()
    assert combiner.nodes is None


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("weighted", [False, True])
def test_the_node_aware_mean_is_the_flat_mean_on_every_rank(weighted):
    from h2odl_mpi.collectives import node_groups, weighted_mean
    groups = node_groups(comm, _fake_nodes())
    assert (groups is None) == (comm.size < 3)  # (2 ranks: one node of 2, or 2 nodes of 1: flat)
    assert node_groups(comm) is None  # every rank of this test on one machine: flat
    rng = np.random.default_rng([5, comm.rank])
    mine = rng.normal(size=1001).astype(np.float32)
    w = float(comm.rank + 1) if weighted else 1.0
    total = sum(float(r + 1) for r in range(comm.size)) if weighted else None
    models = comm.allgather(mine)
    want = sum((float(r + 1) if weighted else 1.0) * m.astype(np.float64) for r, m in enumerate(models))
    want /= total if weighted else comm.size
    flat, hier = mine.copy(), mine.copy()
    weighted_mean(comm, flat, w, total)
    weighted_mean(comm, hier, w, total, nodes=groups)
    np.testing.assert_allclose(hier, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(hier, flat, rtol=1e-5, atol=1e-6)  # (the order of the sums differs)
    for other in comm.allgather(hier):
        assert np.array_equal(other, hier)
    if groups is not None:
        assert groups.n_nodes == (comm.size + 1) // 2 and groups.widest == 2
        assert (groups.leaders is not None) == (comm.rank % 2 == 0)
        groups.free()


@pytest.fixture
def data(tmp_path_factory):
    path = None
    if comm.rank == 0:
        path = str(tmp_path_factory.mktemp("cb") / "d.csv")
        rng = np.random.default_rng(6)
        x = rng.normal(size=(600, 3))
        with open(path, "w") as f:
            f.write("a,b,c,y\n")
            f.writelines(f"{a:.5f},{b:.5f},{c:.5f},{int(a - c > 0)}\n" for a, b, c in x)
    return comm.bcast(path, root=0)


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("weighted", [False, True])
def test_the_bfloat16_mean_is_its_numpy_reference_bit_for_bit(weighted):
    from h2odl_mpi.collectives import from_bfloat16, to_bfloat16, weighted_mean_bf16
    origin = np.random.default_rng(11).normal(size=1003).astype(np.float32)
    mine = origin + np.random.default_rng([12, comm.rank]).normal(scale=1e-3, size=origin.size).astype(np.float32)
    weights = [float(r + 1) if weighted else 1.0 for r in range(comm.size)]
    total = sum(weights)
    models = comm.allgather(mine)
    # the reference: each rank's weighted change rounded to bfloat16, summed in rank order in
    # float32, scaled, rounded again, added to the origin
    acc = np.zeros(origin.size, dtype=np.float32)
    for w, m in zip(weights, models):
        change = m - origin
        if w != 1.0:
            change *= np.float32(w)
        acc += from_bfloat16(to_bfloat16(change))
    acc *= np.float32(1.0 / total)
    want = origin + from_bfloat16(to_bfloat16(acc))
    got = mine.copy()
    weighted_mean_bf16(comm, got, origin, weights[comm.rank], total)
    assert np.array_equal(got, want)
    exact = origin + sum(np.float64(w) * (m.astype(np.float64) - origin) for w, m in zip(weights, models)) / total
    assert np.abs(got - exact).max() <= 2e-3 * 2.0 ** -7 * 4  # (within bfloat16's 8 bits of a change)
    for other in comm.allgather(got):
        assert np.array_equal(other, got)


@pytest.mark.mpi(min_size=2)
def test_a_run_combining_node_aware_reports_it_and_its_ranks_agree(data):
    from h2odl_mpi.training.combine import BlockMomentum
    p = validate(dict(train=data, response="y", hidden=[6], threads=1, seed=3, quiet_mode=True, epochs=1,
                      train_samples_per_iteration=120, stopping_rounds=0))
    combiner = BlockMomentum()
    combiner.node_color = _fake_nodes()
    run = train(p, comm, combiner=combiner)
    assert run["combine_layout"] == ("flat" if comm.size < 3 else
                                     f"node-aware over {(comm.size + 1) // 2} nodes (up to 2 ranks each)")
    assert combiner.nodes is None  # freed when the run ended
    assert all(np.array_equal(run.model, o) for o in comm.allgather(run.model))
    assert train(p, comm)["combine_layout"] == "flat"  # one machine: MPI's node is every rank


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("weighted", [False, True])
def test_the_log8_mean_is_its_numpy_reference_bit_for_bit(weighted):
    from h2odl_mpi.collectives import from_log8, to_log8, weighted_mean_log8
    n = 1003
    spread = np.geomspace(1e-9, 1.0, n)  # values over nine decades, as ADADELTA's accumulators
    mine = (np.random.default_rng([22, comm.rank]).uniform(0.5, 1.5, n) * spread).astype(np.float32)
    mine[::97] = 0.0
    weights = [float(r + 1) if weighted else 1.0 for r in range(comm.size)]
    total = sum(weights)
    models = comm.allgather(mine)
    # the reference: the buffer cut into one nearly equal piece a rank; each rank's weighted
    # values in each piece coded against their largest, summed in rank order in float32,
    # scaled by 1/total, coded again against the piece's largest
    counts = [n // comm.size + (1 if r < n % comm.size else 0) for r in range(comm.size)]
    starts = np.concatenate([[0], np.cumsum(counts)])

    def coded(x):
        top = np.float32(x.max()) if x.size and x.max() > 0 else np.float32(1.0)
        return from_log8(to_log8(x, top), top)

    want = np.empty(n, dtype=np.float32)
    for a, b in zip(starts[:-1], starts[1:]):
        acc = np.zeros(b - a, dtype=np.float32)
        for w, m in zip(weights, models):
            acc += coded(m[a:b] * np.float32(w) if w != 1.0 else m[a:b])
        acc *= np.float32(1.0 / total)
        want[a:b] = coded(acc)
    got = mine.copy()
    weighted_mean_log8(comm, got, weights[comm.rank], total)
    assert np.array_equal(got, want)
    exact = sum(np.float64(w) * m.astype(np.float64) for w, m in zip(weights, models)) / total
    assert not np.array_equal(got, exact.astype(np.float32))   # (it does round)
    assert (got >= 0).all() and (np.abs(got - exact) <= 0.1 * exact).all()   # within 2 x 4.4% and the sum's
    for other in comm.allgather(got):
        assert np.array_equal(other, got)


@pytest.mark.mpi(min_size=2)
def test_bfloat16_log8_sends_the_weights_as_bfloat16_and_the_state_as_log8():
    """combine_precision bfloat16_log8: the weights and biases combine as the bfloat16 mean
    does, the optimizer state as the log8 mean does."""
    from h2odl_mpi.collectives import weighted_mean_bf16, weighted_mean_log8
    rng = np.random.default_rng(31)
    start = np.concatenate([rng.normal(size=N_PARAMS), rng.uniform(0.0, 1e-3, N_STATE)]).astype(np.float32)
    c = ModelAverage()
    c.precision = "bfloat16_log8"
    model = start.copy()
    c.start(comm, model, N_PARAMS)
    mine = start + np.random.default_rng([32, comm.rank]).uniform(0, 1e-3, size=start.size).astype(np.float32)
    rows = comm.rank + 3
    rows_all = sum(r + 3 for r in range(comm.size))
    want_w = mine[:N_PARAMS].copy()
    weighted_mean_bf16(comm, want_w, start[:N_PARAMS], float(rows), float(rows_all))
    want_s = mine[N_PARAMS:].copy()
    weighted_mean_log8(comm, want_s, float(rows), float(rows_all))
    model[:] = mine
    c.combine(comm, model, rows, rows_all)
    assert np.array_equal(model[:N_PARAMS], want_w) and np.array_equal(model[N_PARAMS:], want_s)
    for other in comm.allgather(model):
        assert np.array_equal(other, model)


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("rule,precision", [("Average", "float32"), ("BlockMomentum", "float32"),
                                            ("ElasticAveraging", "float32"), ("Average", "bfloat16"),
                                            ("BlockMomentum", "bfloat16"), ("BlockMomentum", "bfloat16_log8")])
def test_checkpoint_and_resume_give_the_bits_of_a_straight_run(data, tmp_path_factory, rule, precision):
    tmp = comm.bcast(str(tmp_path_factory.mktemp("r")) if comm.rank == 0 else None, root=0)
    p = dict(train=data, response="y", hidden=[6], threads=1, seed=3, quiet_mode=True, combining_rule=rule,
             combine_precision=precision,
             train_samples_per_iteration=120, overwrite_with_best_model=False, stopping_rounds=0,
             classification_stop=-1.0, variable_importances=False, checkpoint_interval="0")
    straight = train(validate(dict(p, epochs=2, checkpoint_dir=f"{tmp}/a")), comm)
    train(validate(dict(p, epochs=1, checkpoint_dir=f"{tmp}/b")), comm)
    resumed = train(validate(dict(p, epochs=2, resume=f"{tmp}/b")), comm)
    assert resumed["continued_from"] is not None and resumed["iterations"] == straight["iterations"]
    assert np.array_equal(resumed.model, straight.model)
    assert resumed.state["combining_rule"] == rule
    for name, arr in straight.state["combiner_arrays"].items():
        assert np.array_equal(arr, resumed.state["combiner_arrays"][name])
