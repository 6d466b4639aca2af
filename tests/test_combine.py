"""The combining rules on one rank: no rule changes a single-rank run, and the parameters
that select them are checked."""
import numpy as np
import pytest

from h2odl_mpi.errors import UserError
from h2odl_mpi.params import validate
from h2odl_mpi.training.trainer import train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("c") / "d.csv"
    rng = np.random.default_rng(1)
    path.write_text("a,b,y\n" + "".join(f"{a:.4f},{b:.4f},{int(a > b)}\n" for a, b in rng.normal(size=(300, 2))))
    return str(path)


def test_one_rank_is_the_same_whatever_the_rule(data):
    from mpi4py import MPI
    p = dict(train=data, response="y", hidden=[4], epochs=2, seed=2, threads=1, quiet_mode=True,
             train_samples_per_iteration=50, variable_importances=False)
    plain = train(validate(dict(p, combining_rule="Average")), None).model
    for rule in ("BlockMomentum", "ElasticAveraging"):
        for comm in (None, MPI.COMM_SELF):
            run = train(validate(dict(p, combining_rule=rule, block_momentum=0.9)), comm)
            assert np.array_equal(run.model, plain), (rule, comm)


def test_the_rule_parameters():
    assert validate({})["combining_rule"] == "BlockMomentum"  # AUTO
    assert validate({"elastic_averaging": True})["combining_rule"] == "ElasticAveraging"  # H2O's switch
    with pytest.raises(UserError, match="exclude each other"):
        validate({"elastic_averaging": True, "combining_rule": "Average"})
    for bad in (1.0, -0.5, 2.0):
        with pytest.raises(UserError, match="block_momentum"):
            validate({"block_momentum": bad})
    with pytest.raises(UserError, match="combining_rule"):
        validate({"combining_rule": "Gossip"})


def test_combine_precision_bfloat16_log8_is_accepted_and_checked():
    p = validate(dict(train="x.csv", response="y", combine_precision="bfloat16_log8"))
    assert p["combine_precision"] == "bfloat16_log8"
    with pytest.raises(UserError, match="combine_precision"):
        validate(dict(train="x.csv", response="y", combine_precision="fp8"))
    with pytest.raises(UserError, match="bfloat16_log8 needs ADADELTA"):
        validate(dict(train="x.csv", response="y", combine_precision="bfloat16_log8", adaptive_rate=False))


def test_block_momentums_cap_on_rows_between_combines():
    """At least 3 x ranks combines an epoch, and the ranks combines over which the momentum
    builds up span at most WINDOW_ROWS rows; never below a row a rank; none for one rank."""
    from h2odl_mpi.training.combine import BlockMomentum
    bm = BlockMomentum()
    assert bm.rows_cap(10_000, 1) is None
    assert bm.rows_cap(10_000, 8) == 10_000 / 24                    # (MNIST: 3 N an epoch)
    assert bm.rows_cap(200_000, 16) == 200_000 / 48
    assert bm.rows_cap(1_000_000, 8) == 100_000 / 8                 # (the window: 10 N an epoch)
    assert bm.rows_cap(1_000_000, 8) * 8 == bm.WINDOW_ROWS
    assert bm.rows_cap(1_000_000, 1024) == 1024                     # (a row a rank at least)
