"""Chunk encodings: every representation round-trips bit for bit, NA included, over any row
range; the encoder picks the small representations where they apply; descriptors match the
C layout documented in docs/column_store.md."""
import numpy as np
import pytest

from h2odl_mpi.data.frame.column import Column, NUMERIC, compact_chunks
from h2odl_mpi.data.frame.encoding import DESCRIPTOR_DTYPE, Encoding, encode, encode_block

RNG = np.random.default_rng(1234)
N = 3001  # not a multiple of 8: exercises the bit-packed tails


def same_bits(a, b):
    """Equal as float64 bit patterns, except that every NaN (NA) equals every NaN."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return False
    keep = ~np.isnan(a)
    return np.array_equal(a[keep].view(np.uint64), b[keep].view(np.uint64))


def with_na(values, every=5):
    values = np.array(values, dtype=np.float64)
    values[::every] = np.nan
    return values


def sparse(values, density):
    out = np.zeros(len(values))
    hit = RNG.random(len(values)) < density
    out[hit] = np.asarray(values)[hit]
    return out


CASES = {
    "constant": (np.full(N, 7.25), "const"),
    "all NA": (np.full(N, np.nan), "const"),
    "constant -0.0": (np.full(N, -0.0), "const"),
    "booleans": (RNG.integers(0, 2, N).astype(float), "bits"),
    "booleans with NA": (with_na(RNG.integers(0, 2, N)), "bits"),
    "int8 offsets": (RNG.integers(-1000, -745, N).astype(float), "int8"),
    "int8 full range, no NA": (np.r_[0.0, 255.0, RNG.integers(0, 256, N - 2)], "int8"),
    "int16 because of NA sentinel": (with_na(np.r_[0.0, 255.0, RNG.integers(0, 256, N - 2)]), None),
    "int16 offsets": (RNG.integers(-30000, 30000, N).astype(float), "int16"),
    "int32 offsets": (RNG.integers(-2**31, 2**31 - 2, N).astype(float), "int32"),
    "int32 with NA": (with_na(RNG.integers(0, 2**32 - 2, N)), "masked:int32"),  # NA: background
    "int beyond 32 bits": (RNG.integers(-2**52, 2**52, N).astype(float), None),
    "decimals 2 digits": (np.round(RNG.uniform(-50, 50, N), 2) + 0.0, "dec16"),
    "decimals 4 digits with NA": (with_na(np.round(RNG.uniform(0, 15, N), 4) + 0.0), "masked:dec32"),
    "float32-exact": (RNG.normal(size=N).astype(np.float32).astype(float), "f32"),
    "float64": (RNG.normal(size=N), "f64"),
    "float64 with NA": (with_na(RNG.normal(size=N), 3), "masked:f64"),
    "float64 with few NA": (with_na(RNG.normal(size=N), 50), "f64"),
    "very sparse ints": (sparse(RNG.integers(1, 100, N), 0.01), "sparse:int8"),
    "sparse doubles": (sparse(RNG.normal(size=N), 0.02), "sparse:f64"),
    "sparse ones": (sparse(np.ones(N), 0.01), None),
    "masked pixels": (sparse(RNG.integers(1, 256, N), 0.3), "masked:int8"),
    "mostly NA": (np.where(RNG.random(N) < 0.97, np.nan, RNG.normal(size=N)), None),
    "zeros and NA": (np.where(RNG.random(N) < 0.5, np.nan, 0.0), None),
    "zero and minus zero": (np.where(RNG.random(N) < 0.5, 0.0, -0.0), None),
    "extremes": (np.array([np.iinfo(np.int64).max, np.iinfo(np.int64).min, 2.0**53, -2.0**53,
                           5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
                           -1.7976931348623157e308, np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-300,
                           np.float32(3.4028235e38), 0.1, 1 / 3]), None),
    "infinities and NA": (np.array([np.inf, -np.inf, np.nan, 1.0, 2.0] * 50), None),
    "int extremes of 32 bits": (np.array([-2.0**31, 2.0**31 - 1, 0.0, np.nan] * 10), None),
    "largest exact integers": (np.array([2.0**53 - 1, -(2.0**53 - 1), 0.0] * 10), None),
    "one row": (np.array([3.5]), "const"),
    "two rows NA and value": (np.array([np.nan, 1e300]), None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_round_trip_is_exact_over_every_range(name):
    values, expected_label = CASES[name]
    chunk = encode(values)
    assert chunk.n_rows == len(values)
    assert same_bits(chunk.decode(), values), chunk.label
    n = len(values)
    for start, stop in [(0, n), (1, n), (0, n - 1), (n // 3, 2 * n // 3), (5, 13), (n - 1, n),
                        (7, 7)]:
        if 0 <= start <= stop <= n:
            assert same_bits(chunk.decode(start, stop), values[start:stop]), (chunk.label, start, stop)
    if expected_label is not None:
        assert chunk.label == expected_label


@pytest.mark.parametrize("name", list(CASES))
def test_bounds_from_the_descriptor_enclose_the_values(name):
    """Chunk.bounds: (lo, hi) around every non-NA value from the descriptor alone, (inf,
    -inf) for all NA; None exactly where values are stored as floats."""
    values, _ = CASES[name]
    chunk = encode(values)
    floats = (Encoding.FLOAT32, Encoding.FLOAT64)
    stored_as_floats = chunk.encoding in floats or (
        chunk.encoding in (Encoding.SPARSE, Encoding.MASKED) and chunk.value_encoding in floats and chunk.nnz)
    b = chunk.bounds()
    assert (b is None) == bool(stored_as_floats), chunk.label
    if b is not None:
        present = values[~np.isnan(values)]
        if present.size:
            assert b[0] <= present.min() and present.max() <= b[1], (chunk.label, b)
        else:
            assert b == (np.inf, -np.inf)


def test_column_bounds_combine_the_chunks_or_say_none():
    ints = [CASES["int8 offsets"][0][:100], CASES["masked pixels"][0][:300]]
    column = Column("x", NUMERIC, [encode(p) for p in ints])
    lo, hi = column.bounds()
    assert lo <= np.concatenate(ints).min() and np.concatenate(ints).max() <= hi
    assert Column("y", NUMERIC, [encode(ints[0]), encode(CASES["float64"][0][:57])]).bounds() is None


def test_the_finite_check_skips_columns_their_encoding_bounds():
    """finite.refuse without summaries does not decode a column whose chunk encodings bound
    its values within what the network takes, and still finds a value that overflows once
    standardised in an integer column, and an Inf in a float one."""
    from h2odl_mpi.data.frame import Frame
    from h2odl_mpi.data.frame.finite import Use, refuse
    from h2odl_mpi.errors import UserError
    frame = Frame.from_arrays({"px": np.arange(300.0) % 256, "f": RNG.normal(size=300)})
    frame.source = "d.csv"
    decoded = []

    def values(name):
        return lambda: decoded.append(name) or frame.column(name).decode()
    refuse(frame, [Use("px", "input", values("px"), 100.0, 0.01), Use("f", "input", values("f"))])
    assert decoded == ["f"]                     # the integer column was not decoded
    with pytest.raises(UserError, match="'px'.*too large"):
        refuse(frame, [Use("px", "input", values("px"), 0.0, 1e37)])   # 255e37 overflows float32
    inf = Frame.from_arrays({"g": np.r_[RNG.normal(size=20), np.inf]})
    with pytest.raises(UserError, match="'g'.*not a finite number"):
        refuse(inf, [Use("g", "input", inf.column("g").decode)])


@pytest.mark.parametrize("name", list(CASES))
def test_encoding_is_no_larger_than_float64(name):
    values, _ = CASES[name]
    chunk = encode(values)
    assert chunk.nbytes <= DESCRIPTOR_DTYPE.itemsize + 8 * len(values)


def test_nan_payloads_are_all_na():
    payloads = np.array([0x7FF8000000000001, 0xFFF8000000000000, 0x7FF0000000000001],
                        dtype=np.uint64).view(np.float64)
    values = np.r_[payloads, [1.0, 2.0]]
    decoded = encode(values).decode()
    assert np.isnan(decoded[:3]).all()
    assert same_bits(decoded[3:], [1.0, 2.0])


def test_minus_zero_is_never_turned_into_zero():
    values = np.zeros(1000)
    values[RNG.integers(0, 1000, 10)] = -0.0
    decoded = encode(values).decode()
    assert np.array_equal(np.signbit(decoded), np.signbit(values))


def test_sparse_picks_index_list_when_very_sparse_and_bitmap_when_denser():
    very = sparse(RNG.integers(1, 50, 20000), 0.005)
    denser = sparse(RNG.integers(1, 50, 20000), 0.2)
    assert encode(very).encoding == Encoding.SPARSE
    assert encode(denser).encoding == Encoding.MASKED
    assert encode(very).nnz == np.count_nonzero(very)


def test_na_background_sparse():
    values = np.full(20000, np.nan)
    values[RNG.integers(0, 20000, 50)] = 4.0
    chunk = encode(values)
    assert chunk.encoding == Encoding.SPARSE and np.isnan(chunk.fill)
    assert same_bits(chunk.decode(), values)


def test_block_encoding_matches_column_encoding():
    block = np.column_stack([CASES[k][0][:200] for k in CASES if len(CASES[k][0]) >= 200])
    chunks = encode_block(block)
    for j, chunk in enumerate(chunks):
        single = encode(block[:, j])
        assert chunk.label == single.label
        assert same_bits(chunk.decode(), block[:, j])


def test_descriptor_layout_is_the_documented_c_struct():
    assert DESCRIPTOR_DTYPE.itemsize == 40
    offsets = {name: DESCRIPTOR_DTYPE.fields[name][1] for name in DESCRIPTOR_DTYPE.names}
    assert offsets == {"encoding": 0, "value_encoding": 1, "value_width": 2, "index_width": 3,
                       "scale": 4, "has_na": 5, "reserved": 6, "n_rows": 8, "nnz": 12,
                       "base": 16, "value": 24, "fill": 32}


def test_descriptor_and_buffers_describe_the_chunk():
    values = np.round(RNG.uniform(0, 10, 500), 1) + 0.0
    values[3] = np.nan
    chunk = encode(values)
    record = chunk.descriptor()
    assert record["encoding"] == Encoding.INT and record["scale"] == 1
    assert record["n_rows"] == 500 and record["has_na"] == 1
    data = chunk.buffers["data"]
    assert data.dtype == np.uint8 and data.flags.c_contiguous
    # Decode as a C decoder would, from the descriptor and the buffer only.
    manual = (record["base"] + data.astype(np.float64)) / 10.0 ** record["scale"]
    manual[data == 0xFF] = np.nan
    assert same_bits(manual, values)


def test_column_decode_spans_chunks():
    parts = [CASES["int8 offsets"][0][:100], CASES["float64"][0][:57], CASES["masked pixels"][0][:300]]
    column = Column("x", NUMERIC, [encode(p) for p in parts])
    whole = np.concatenate(parts)
    assert column.n_rows == len(whole)
    assert same_bits(column.decode(), whole)
    assert same_bits(column.decode(90, 170), whole[90:170])
    assert same_bits(column.decode(157, 158), whole[157:158])
    table = column.descriptor_table()
    assert table.dtype == DESCRIPTOR_DTYPE and list(table["n_rows"]) == [100, 57, 300]
    assert list(column.row_offsets) == [0, 100, 157, 457]
    with pytest.raises(IndexError):
        column.decode(0, len(whole) + 1)


def test_compaction_merges_small_chunks_exactly():
    values = with_na(RNG.integers(0, 500, 5000), 7)
    small = [encode(values[i:i + 100]) for i in range(0, 5000, 100)]
    merged = compact_chunks(small, target_rows=2048, small_rows=1024)
    assert [c.n_rows for c in merged] == [2000, 2000, 1000]
    assert same_bits(np.concatenate([c.decode() for c in merged]), values)
    assert sum(c.nbytes for c in merged) < sum(c.nbytes for c in small)


def _same_chunk(a, b):
    """Equal descriptors (NaN values compare equal) and byte-identical typed buffers."""
    da, db = a.descriptor(), b.descriptor()
    for field in DESCRIPTOR_DTYPE.names:
        x, y = da[field], db[field]
        if field in ("value", "fill"):
            if not (np.isnan(x) and np.isnan(y)) and np.float64(x).view(np.uint64) != np.float64(y).view(np.uint64):
                return False
        elif x != y:
            return False
    for name in ("data", "index", "bitmap"):
        x, y = getattr(a, name), getattr(b, name)
        if (x is None) != (y is None):
            return False
        if x is not None and (x.dtype != y.dtype or x.tobytes() != y.tobytes()
                              or not x.flags.c_contiguous):
            return False
    return True


def _random_column(rng, n):
    kind = rng.integers(0, 12)
    values = [lambda: rng.integers(-5, 5, n).astype(float),
              lambda: rng.integers(0, 2, n).astype(float),
              lambda: np.round(rng.uniform(-100, 100, n), int(rng.integers(0, 6))),
              lambda: rng.normal(size=n),
              lambda: rng.normal(size=n).astype(np.float32).astype(float),
              lambda: rng.integers(-2**40, 2**40, n).astype(float),
              lambda: np.full(n, rng.choice([0.0, -0.0, 1.0, np.inf, np.nan, 3.25])),
              lambda: rng.integers(1000, 1200, n).astype(float),
              lambda: rng.choice([0.0, -0.0, 1.0, 2.5, np.inf, -np.inf, np.nan, 1e300, 5e-324], n),
              lambda: rng.integers(0, 256, n).astype(float),
              lambda: rng.integers(-2**31, 2**31, n).astype(float),
              lambda: rng.choice([0.1, 0.2, 0.3, 1 / 3], n)][kind]()
    if rng.random() < 0.4:
        values = np.where(rng.random(n) < rng.choice([0.01, 0.3, 0.9, 0.99]), 0.0, values)
    if rng.random() < 0.3:
        values = np.where(rng.random(n) < rng.choice([0.01, 0.3, 0.9, 1.0]), np.nan, values)
    if rng.random() < 0.05:
        values[rng.integers(0, n)] = -0.0
    return values


def test_vectorised_encoder_makes_the_reference_choice():
    """encode_block (all columns at once) gives exactly the chunk of the one-column
    specification, reference_encode: same descriptor, same bytes."""
    from h2odl_mpi.data.frame.encoding import reference_encode
    rng = np.random.default_rng(7)
    for trial in range(120):
        n = int(rng.choice([1, 2, 7, 33, 100, 1000, 3001]))
        block = np.column_stack([_random_column(rng, n) for _ in range(int(rng.integers(1, 10)))])
        for j, chunk in enumerate(encode_block(block)):
            reference = reference_encode(block[:, j])
            assert _same_chunk(chunk, reference), (trial, j, chunk.label, reference.label)
    for name, (values, _) in CASES.items():
        assert _same_chunk(encode(values), reference_encode(values)), name
