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


def test_log8_codes_round_to_the_nearest_logarithm():
    """Code c (1..254) is top * 2^((c - 254) / 8), 0 is 0, 255 NaN; a value's code is the
    nearest in the logarithm (brute force over every code)."""
    from h2odl_mpi.collectives import from_log8, to_log8
    top = np.float32(3.7)
    codes = np.arange(256, dtype=np.uint8)
    values = from_log8(codes, top)
    assert values[0] == 0 and np.isnan(values[255]) and values[254] == top
    want = [float(top) * 2.0 ** ((c - 254) / 8) for c in range(1, 255)]
    np.testing.assert_allclose(values[1:255], want, rtol=1e-6)
    assert np.array_equal(to_log8(values[:255], top), codes[:255])    # every value is its own code
    rng = np.random.default_rng(5)
    x = np.concatenate([float(top) * 10.0 ** rng.uniform(-9, 0, 500), [0.0, float(top)]]).astype(np.float32)
    got = from_log8(to_log8(x, top), top)
    logs = np.log2(values[1:255].astype(np.float64))
    nearest = values[1:255][np.argmin(np.abs(np.log2(x[x > 0].astype(np.float64))[:, None] - logs), axis=1)]
    assert np.array_equal(got[x > 0], nearest) and got[x == 0] == 0
    assert (np.abs(got[x > 0] / x[x > 0] - 1) <= 2 ** (1 / 16) - 1 + 1e-6).all()      # 4.4% at most
    assert (to_log8(np.array([np.nan, np.inf, -1.0], dtype=np.float32), top) == 255).all()
    assert to_log8(np.array([1e-30], dtype=np.float32), top)[0] == 0                 # below code 1: 0
    assert (to_log8(np.array([0.0, 1.0], dtype=np.float32), np.float32(np.nan)) == 255).all()


def test_combine_precision_bfloat16_log8_is_accepted_and_checked():
    p = validate(dict(train="x.csv", response="y", combine_precision="bfloat16_log8"))
    assert p["combine_precision"] == "bfloat16_log8"
    with pytest.raises(UserError, match="combine_precision"):
        validate(dict(train="x.csv", response="y", combine_precision="fp8"))
    with pytest.raises(UserError, match="bfloat16_log8 needs ADADELTA"):
        validate(dict(train="x.csv", response="y", combine_precision="bfloat16_log8", adaptive_rate=False))
