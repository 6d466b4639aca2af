"""The 8-bit logarithmic code of combine_precision bfloat16_log8 (collectives.to_log8, in C:
csrc/codec.c): the nearest code in the logarithm, checked by brute force over every code, and
bit for bit against a plain numpy reference, edge values included."""
import numpy as np

from h2odl_mpi.collectives import from_log8, to_log8


def numpy_log8(v, top):
    """The reference: rint(8 log2(v / top)) in float64, offset by 254 and clipped to [0, 254];
    255 for NaN, infinities and negative values; against a top that is not a positive finite
    number, 0 for zeros (when top is finite) and 255 for the rest."""
    v = np.asarray(v, dtype=np.float32)
    if not (np.isfinite(top) and top > 0):
        return np.where((v == 0) & bool(np.isfinite(top)), 0, 255).astype(np.uint8)
    with np.errstate(divide="ignore", invalid="ignore"):
        steps = np.rint(8 * np.log2(v.astype(np.float64) / float(top)))
    codes = np.clip(254 + np.nan_to_num(steps, nan=0.0, neginf=-1e9, posinf=1e9), 0, 254).astype(np.uint8)
    return np.where((v >= 0) & np.isfinite(v), codes, np.uint8(255)).astype(np.uint8)


def test_log8_codes_round_to_the_nearest_logarithm():
    """Code c (1..254) is top * 2^((c - 254) / 8), 0 is 0, 255 NaN; a value's code is the
    nearest in the logarithm (brute force over every code)."""
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


def test_the_c_code_is_the_numpy_reference_bit_for_bit():
    rng = np.random.default_rng(9)
    edges = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, -1.0, -1e-30, 1e-45, 1.4e-45, 1e-38, 3.4e38,
                      np.float32(np.finfo(np.float32).max)], dtype=np.float32)
    for top in (np.float32(3.7), np.float32(1e-30), np.float32(1e30), np.float32(1.0)):
        x = np.concatenate([float(top) * 10.0 ** rng.uniform(-12, 0.5, 200_000), edges,
                            float(top) * 2.0 ** ((np.arange(-260, 3) + 0.5) / 8)]).astype(np.float32)
        got, want = to_log8(x, top), numpy_log8(x, top)
        with np.errstate(divide="ignore", invalid="ignore"):
            near = np.abs(np.log2(np.abs(x.astype(np.float64)) / float(top)) * 8 % 1 - 0.5) < 1e-9
        assert np.array_equal(got[~near], want[~near]), top      # (a half step itself may go either way)
        assert (np.abs(got[near].astype(int) - want[near]) <= 1).all()
    for top in (np.float32(0.0), np.float32(-2.0), np.float32(np.nan), np.float32(np.inf)):
        assert np.array_equal(to_log8(edges, top), numpy_log8(edges, top)), top
    assert to_log8(np.zeros(0, dtype=np.float32), np.float32(1.0)).shape == (0,)
    strided = np.arange(10, dtype=np.float32)[::2]                  # (not contiguous: copied)
    assert np.array_equal(to_log8(strided, np.float32(8.0)), numpy_log8(strided, np.float32(8.0)))
