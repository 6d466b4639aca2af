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


def _fp8_reference(value):
    """The E4M3 value nearest to `value` (|value| <= 448), by brute force over every code,
    with its formula written out: 2^-6 * m/8 for exponent 0, else 2^(e-7) * (1 + m/8)."""
    table = [(-1.0) ** s * (2.0 ** -6 * m / 8 if e == 0 else 2.0 ** (e - 7) * (1 + m / 8))
             for s in (0, 1) for e in range(16) for m in range(8) if not (e == 15 and m == 7)]
    return min(table, key=lambda v: (abs(v - value), abs(v)))


def test_fp8_codes_round_to_the_nearest_e4m3_value():
    from h2odl_mpi.collectives import FP8_MAX, from_fp8, to_fp8
    codes = np.arange(256, dtype=np.uint8)
    values = from_fp8(codes)
    finite = ~np.isnan(values)
    assert np.isnan(values[[0x7F, 0xFF]]).all() and finite.sum() == 254
    assert np.array_equal(to_fp8(values[finite]), codes[finite])       # every value is its own code
    assert np.nanmax(values) == FP8_MAX and values[1] == 2.0 ** -9        # the largest; the smallest subnormal
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.uniform(-448, 448, 300), rng.normal(scale=0.01, size=300),
                        [0.0, -0.0, 2.0 ** -10, 3 * 2.0 ** -10, 447.9, -448.0]]).astype(np.float32)
    got = from_fp8(to_fp8(x))
    want = np.array([_fp8_reference(float(v)) for v in x], dtype=np.float32)
    assert np.array_equal(np.abs(got), np.abs(want))
    big = np.abs(x) >= 2.0 ** -6
    assert (np.abs(got - x)[big] <= np.abs(x[big]) / 16).all()       # 4 significant bits
    assert (to_fp8(np.array([np.nan, np.inf, -np.inf], dtype=np.float32)) == 0x7F).all()
    assert np.array_equal(from_fp8(to_fp8(np.array([448.01, 1e30, -500.0], dtype=np.float32))), [448, 448, -448])


def test_combine_precision_bfloat16_fp8_is_accepted_and_checked():
    p = validate(dict(train="x.csv", response="y", combine_precision="bfloat16_fp8"))
    assert p["combine_precision"] == "bfloat16_fp8"
    with pytest.raises(UserError, match="combine_precision"):
        validate(dict(train="x.csv", response="y", combine_precision="fp8"))
