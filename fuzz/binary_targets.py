"""Fuzz targets of Parquet input, the model / checkpoint / ensemble files and the column
store's chunk encodings.

Target `parquet`: a random table (integers of every width, floats with NaN, infinities and
-0.0, booleans, decimals, strings, dictionaries, dates, timestamps of every unit, times,
durations, nulls everywhere; sometimes a column of a type the store cannot hold) written by
pyarrow in random row groups, read with Frame.read(path) (small batch_rows and chunk_rows
too) must hold what pyarrow reads, converted as parquet_format documents: numbers, booleans
and decimals as float64 (pyarrow's cast), dates and timestamps as milliseconds since the
epoch (computed here exactly: seconds x 1000, microseconds / 1000, ...), times and
durations as their integer count, text as categorical levels, null and NaN as NA.  A column
the store cannot hold is one UserError naming the file.

Target `parquet_bytes`: such a file with bytes changed, inserted or cut: if pyarrow reads
it, the frame holds what pyarrow read (or the file is refused); if pyarrow cannot, one
UserError naming the file.

Target `model_bytes`: a model file, a checkpoint or an ensemble file (fuzz/model_bytes.py
builds them once per process), or an H2O-3 Deep Learning MOJO (tests/data/mojo), with 1 to 4
random changes (bytes set, spans overwritten,
bytes inserted or cut, the file truncated), loaded as the program loads it: the same model,
or one UserError naming the file.

Target `chunks`: random columns (any float64 bit pattern, NaN payloads, -0.0, subnormals,
small and wide integers, decimals, 0/1, float32 values, constants, mostly 0 or mostly NA)
encoded by encoding.encode and decoded back (whole and any row range) equal the input bit
for bit, every NaN as NA; the batch encoder makes the reference encoder's choice (same
descriptor, same buffers); several columns encoded together (encode_rows) and chunks merged
(column.compact_chunks) decode to the same values.
"""
import decimal
import math
import os

import numpy as np
from hypothesis import strategies as st

from fuzz_common import Failure, Target, compare_frame, from_text, refused, same_numbers, to_text, write

MOJO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "data", "mojo",
                    "h2o_multinomial.zip")

# ------------------------------------------------------------------------------ Parquet

_INT_TYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
_TYPES = _INT_TYPES + ["float32", "float64", "float16", "bool", "string", "large_string", "dict_string",
                       "dict_int", "date32", "date64", "ts_s", "ts_ms", "ts_us", "ts_ns", "ts_ms_utc", "time32_s",
                       "time64_ns", "duration_us", "decimal", "binary", "list"]
_TS_PER_MS = {"s": 1e-3, "ms": 1.0, "us": 1e3, "ns": 1e6}


def _pa_type(name):
    import pyarrow as pa
    if name in _INT_TYPES or name in ("float32", "float64", "float16", "bool", "string", "large_string", "binary"):
        return {"bool": pa.bool_(), "float16": pa.float16()}.get(name) or getattr(pa, name)()
    if name == "dict_string":
        return pa.dictionary(pa.int32(), pa.string())
    if name == "dict_int":
        return pa.dictionary(pa.int16(), pa.int64())
    if name.startswith("ts_"):
        unit = name.split("_")[1]
        return pa.timestamp(unit, tz="UTC" if name.endswith("_utc") else None)
    return {"date32": pa.date32(), "date64": pa.date64(), "time32_s": pa.time32("s"), "time64_ns": pa.time64("ns"),
            "duration_us": pa.duration("us"), "decimal": pa.decimal128(20, 4), "list": pa.list_(pa.int32())}[name]


def _values(draw, name, n):
    """n JSON-able values (None: null) of a column type."""
    if name in _INT_TYPES:
        info = np.iinfo(name)
        v = st.one_of(st.integers(int(info.min), int(info.max)), st.sampled_from([int(info.min), int(info.max), 0, 1]))
    elif name in ("float32", "float64", "float16"):
        width = {"float16": 16, "float32": 32, "float64": 64}[name]
        v = st.one_of(st.floats(width=width), st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan]))
    elif name == "bool":
        v = st.booleans()
    elif name in ("string", "large_string", "dict_string"):
        v = st.one_of(st.text(max_size=5), st.sampled_from(["", "NA", "a", "b", "1.5"]))
    elif name == "dict_int":
        v = st.integers(-5, 5)
    elif name == "date32":
        v = st.integers(-100000, 100000)
    elif name == "date64":
        v = st.integers(-10 ** 12, 10 ** 12).map(lambda x: x - x % 86_400_000)
    elif name == "ts_s":   # (Parquet keeps seconds as milliseconds: they must fit)
        v = st.one_of(st.integers(-9 * 10 ** 15, 9 * 10 ** 15), st.integers(-10 ** 10, 10 ** 10))
    elif name.startswith("ts_") or name.startswith("duration"):
        v = st.one_of(st.integers(-(2 ** 62), 2 ** 62), st.integers(-10 ** 10, 10 ** 10),
                      st.integers(1_600_000_000 * 10 ** 9, 1_800_000_000 * 10 ** 9))
    elif name == "time32_s":
        v = st.integers(0, 86399)
    elif name == "time64_ns":
        v = st.integers(0, 86_400 * 10 ** 9 - 1)
    elif name == "decimal":
        v = st.integers(-(10 ** 20) + 1, 10 ** 20 - 1).map(str)
    elif name == "binary":
        v = st.binary(max_size=4).map(to_text)
    else:
        v = st.lists(st.integers(-5, 5), max_size=3)
    return draw(st.lists(st.one_of(st.none(), v) if draw(st.booleans()) else v, min_size=n, max_size=n))


@st.composite
def parquet_cases(draw):
    n = draw(st.integers(0, 30))
    width = draw(st.integers(1, 4))
    exotic = draw(st.integers(0, 9)) == 0
    names = [draw(st.sampled_from(["a", "b", "c", "x y", "é", "a"])) + str(j) for j in range(width)]
    types = [draw(st.sampled_from(_TYPES if exotic else _TYPES[:-2])) for _ in range(width)]
    return {"names": names, "types": types, "columns": [_values(draw, t, n) for t in types],
            "row_group": draw(st.sampled_from([None, 1, 3, 7, 1000])),
            "batch_rows": draw(st.sampled_from([None, 1, 4])), "chunk_rows": draw(st.sampled_from([None, 2, 64])),
            "dictionary": draw(st.booleans())}


def _arrow_column(name, values):
    import pyarrow as pa
    t = _pa_type(name)
    if name == "decimal":
        return pa.array([None if v is None else decimal.Decimal(v).scaleb(-4) for v in values], t)
    if name == "binary":
        return pa.array([None if v is None else from_text(v) for v in values], t)
    if name == "dict_string":   # (with an entry no row uses, as pandas' unused categories)
        encoded = pa.array(values, t.value_type).dictionary_encode()
        dictionary = pa.concat_arrays([encoded.dictionary, pa.array(["never used"], t.value_type)])
        return pa.DictionaryArray.from_arrays(encoded.indices, dictionary).cast(t)
    if name == "dict_int":
        return pa.array(values, t.value_type).dictionary_encode().cast(t)
    if name in ("date32", "date64", "time32_s", "time64_ns") or name.startswith(("ts_", "duration")):
        return pa.array(values, pa.int64() if name not in ("date32", "time32_s") else pa.int32()).cast(t)
    return pa.array(values, t)


def parquet_bytes(case):
    import io
    import pyarrow as pa
    import pyarrow.parquet as pq
    table = pa.table([_arrow_column(t, v) for t, v in zip(case["types"], case["columns"])], names=case["names"])
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=case["row_group"], use_dictionary=case["dictionary"])
    return sink.getvalue()


def expected_parquet(table):
    """[(name, kind, values)] of a pyarrow table by the documented conversions; None when a
    column's type is one the store cannot hold."""
    import pyarrow as pa
    import pyarrow.compute as pc
    out = []
    for name, column in zip(table.column_names, table.columns):
        t = column.type
        value_type = t.value_type if pa.types.is_dictionary(t) else t
        if pa.types.is_string(value_type) or pa.types.is_large_string(value_type):
            raw = column.cast(value_type).cast(pa.large_binary()).to_pylist()   # (damaged text: not UTF-8)
            out.append((name, "categorical", [None if v is None else level_text(v) for v in raw]))
            continue
        if pa.types.is_dictionary(t):
            column = column.cast(value_type)
            t = value_type
        if pa.types.is_timestamp(t) or pa.types.is_date64(t):
            unit = t.unit if pa.types.is_timestamp(t) else "ms"
            raw = column.cast(pa.int64()).to_pylist()
            values = [math.nan if v is None else _exact_ms(v, unit) for v in raw]
        elif pa.types.is_date32(t):
            values = [math.nan if v is None else v * 86_400_000.0 for v in column.cast(pa.int32()).to_pylist()]
        elif pa.types.is_time(t) or pa.types.is_duration(t):
            ints = pa.int32() if pa.types.is_time32(t) else pa.int64()
            values = [math.nan if v is None else float(v) for v in column.cast(ints).to_pylist()]
        elif pa.types.is_boolean(t):
            values = [math.nan if v is None else float(v) for v in column.to_pylist()]
        elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            values = [math.nan if v is None else v for v in pc.cast(column, pa.float64(), safe=False).to_pylist()]
        else:
            return None
        out.append((name, "numeric", np.array(values, dtype=np.float64)))
    return out


def level_text(raw):
    """A level's text as the store keeps it: UTF-8, else Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _exact_ms(v, unit):
    """Milliseconds of an integer count of `unit`, correctly rounded (from the exact ratio)."""
    per_second = {"s": 1, "ms": 1000, "us": 10 ** 6, "ns": 10 ** 9}[unit]
    from fractions import Fraction
    return float(Fraction(v * 1000, per_second))


def check_parquet(case, workdir):
    import pyarrow.parquet as pq
    data = parquet_bytes(case)
    path = write(workdir, "data.parquet", data)
    _compare_parquet(path, pq.read_table(path), case)


def _compare_parquet(path, table, case):
    from h2odl_mpi.data.frame import Frame
    options = {k: case[k] for k in ("batch_rows", "chunk_rows") if case.get(k)}
    frame, error = refused(lambda: Frame.read(path, **options), path)
    expected = expected_parquet(table) if table is not None else None
    if table is None or expected is None:
        if error is None:
            raise Failure("a Parquet file that pyarrow cannot read, or whose column the store cannot hold, was read"
                          if table is None else f"a column of type {table.schema} was read")
        return
    if len(set(table.column_names)) < len(table.column_names):
        return   # (duplicate column names: either outcome)
    if error is not None:
        if case.get("damaged"):
            return
        raise Failure(f"a valid Parquet file was refused: {error}")
    compare_frame(frame, expected, "parquet")


@st.composite
def parquet_byte_cases(draw):
    case = draw(parquet_cases())
    data = bytearray(parquet_bytes(case))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["set", "set", "insert", "cut", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif op == "cut":
            del data[at:at + draw(st.integers(1, 16))]
        else:
            del data[at:]
    return {"data": to_text(data), "batch_rows": case["batch_rows"], "chunk_rows": case["chunk_rows"],
            "damaged": True}


def check_parquet_bytes(case, workdir):
    import pyarrow as pa
    import pyarrow.parquet as pq
    path = write(workdir, "data.parquet", from_text(case["data"]))
    try:
        table = pq.read_table(path)
        table.column_names   # (a name that is not UTF-8 fails here)
        for column in table.columns:   # (indices or offsets out of range: read, yet unusable)
            if pa.types.is_dictionary(column.type) or pa.types.is_string(column.type) \
                    or pa.types.is_large_string(column.type):
                column.validate(full=True)
    except Exception:   # noqa: BLE001 - the reference cannot read it: ours must refuse it
        table = None
    _compare_parquet(path, table, case)


# ------------------------------------------------------------------------------ model files

_FILES = {}


def model_files():
    """The model, checkpoint and ensemble files of fuzz/model_bytes.py, built once."""
    if not _FILES:
        import tempfile
        import model_bytes
        with tempfile.TemporaryDirectory() as tmp:
            _FILES.update(model_bytes.build_files(tmp))
        with open(MOJO, "rb") as f:
            _FILES["mojo"] = f.read()
        for kind, image in list(_FILES.items()):
            _FILES[kind + ":reference"] = model_bytes.fingerprint(kind, model_bytes.load(kind, image, "damaged.h5"))
    return _FILES


@st.composite
def model_byte_cases(draw):
    kind = draw(st.sampled_from(["model", "checkpoint", "ensemble", "mojo"]))
    size = len(model_files()[kind])
    edits = []
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["set", "xor", "span", "insert", "cut", "truncate"]))
        at = draw(st.one_of(st.integers(0, size - 1), st.integers(max(0, size - 64), size - 1),
                            st.integers(0, min(size - 1, 2047))))
        edits.append([op, at, draw(st.integers(0, 255)), draw(st.integers(1, 64))])
    return {"file": kind, "edits": edits}


def damaged_model(case):
    data = bytearray(model_files()[case["file"]])
    for op, at, value, length in case["edits"]:
        at = min(at, max(len(data) - 1, 0))
        if op == "set" and data:
            data[at] = value
        elif op == "xor" and data:
            data[at] ^= value or 0xFF
        elif op == "span":
            data[at:at + length] = bytes((value + i * 37) & 0xFF for i in range(len(data[at:at + length])))
        elif op == "insert":
            data[at:at] = bytes([value]) * (length % 8 + 1)
        elif op == "cut":
            del data[at:at + length]
        else:
            del data[at:]
    return bytes(data)


def check_model_bytes(case, workdir):
    import model_bytes
    files = model_files()
    kind = case["file"]
    image = damaged_model(case)
    if image == files[kind]:
        return
    result, detail = model_bytes.outcome(kind, image, "damaged.h5", files[kind + ":reference"])
    if result not in ("same", "refused"):
        raise Failure(f"{kind} file damaged by {case['edits']}: {result}: {detail}")


# ------------------------------------------------------------------------------ chunks

_SPECIAL = [0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, 5e-324, -5e-324, 2.2250738585072014e-308,
            1.7976931348623157e308, 3.4028234663852886e38, 1.401298464324817e-45, 2.0 ** 53, -(2.0 ** 53),
            2.0 ** 53 - 1, 2.0 ** 31, 2.0 ** 32 - 1, 2.0 ** 32, 255.0, 256.0, 65535.0, 0.1, 0.5]
_NANS = [0x7FF8000000000000, 0xFFF8000000000000, 0x7FF0000000000001, 0x7FF4000000000000, 0xFFFFFFFFFFFFFFFF]


@st.composite
def chunk_cases(draw):
    n = draw(st.one_of(st.integers(0, 70), st.integers(0, 600), st.sampled_from([65535, 65536, 65537])))
    kind = draw(st.sampled_from(["bits", "random", "ints", "wide_ints", "binary", "decimal", "float32", "const",
                                 "zeros", "nas", "special"]))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    p_na = draw(st.sampled_from([0.0, 0.0, 0.01, 0.3, 0.97, 1.0]))
    p_zero = draw(st.sampled_from([0.0, 0.0, 0.9, 0.999]))
    span = draw(st.sampled_from([1, 2, 253, 254, 255, 256, 65534, 65535, 65536, 2 ** 32 - 2, 2 ** 32, 2 ** 40]))
    base = draw(st.one_of(st.integers(-(2 ** 53), 2 ** 53), st.sampled_from([0, -1, 2 ** 53 - span, -(2 ** 53)])))
    scale = draw(st.integers(0, 12))
    cuts = draw(st.lists(st.integers(0, max(n, 0)), max_size=4))
    return {"n": n, "kind": kind, "seed": seed, "p_na": p_na, "p_zero": p_zero, "span": span, "base": base,
            "scale": scale, "cuts": sorted(cuts), "ranges": draw(st.lists(st.tuples(st.integers(0, max(n, 0)),
                                                                                     st.integers(0, max(n, 0))),
                                                                           max_size=3))}


def chunk_values(case):
    rng = np.random.default_rng(case["seed"])
    n, kind = case["n"], case["kind"]
    if kind == "bits":
        v = rng.integers(0, 2, n).astype(np.float64)
    elif kind == "random":
        v = rng.integers(0, 2 ** 64, n, dtype=np.uint64).view(np.float64)
    elif kind == "ints":
        v = (case["base"] % 1000 + rng.integers(0, case["span"], n)).astype(np.float64)
    elif kind == "wide_ints":
        v = np.clip(case["base"] + rng.integers(0, case["span"], n), -(2 ** 53), 2 ** 53).astype(np.float64)
    elif kind == "binary":
        v = rng.choice(np.array([0.0, 1.0, -0.0, 2.0]), n)
    elif kind == "decimal":
        v = (case["base"] % 10 ** 9 + rng.integers(0, case["span"], n)) / 10.0 ** case["scale"]
    elif kind == "float32":
        v = rng.standard_normal(n).astype(np.float32).astype(np.float64) * 2.0 ** rng.integers(-140, 120, n)
    elif kind == "const":
        v = np.full(n, float(rng.choice(_SPECIAL)))
    elif kind == "zeros":
        v = np.zeros(n)
    elif kind == "nas":
        v = np.full(n, np.nan)
    else:
        v = rng.choice(np.array(_SPECIAL), n)
    v = np.asarray(v, dtype=np.float64).copy()
    zero = rng.random(n) < case["p_zero"]
    v[zero] = 0.0
    na = rng.random(n) < case["p_na"]
    v[na] = np.array(_NANS, dtype=np.uint64).view(np.float64)[rng.integers(0, len(_NANS), int(na.sum()))]
    return v


def _same_chunk(a, b):
    if a.descriptor().tobytes() != b.descriptor().tobytes():
        return False
    for name in ("data", "index", "bitmap"):
        x, y = getattr(a, name), getattr(b, name)
        if (x is None) != (y is None) or (x is not None and (x.dtype != y.dtype or x.tobytes() != y.tobytes())):
            return False
    return True


def check_chunks(case, workdir):
    from h2odl_mpi.data.frame.column import Column, compact_chunks
    from h2odl_mpi.data.frame.encoding import encode, encode_rows, reference_encode
    values = chunk_values(case)
    n = len(values)
    chunk = encode(values)
    if chunk.n_rows != n or not same_numbers(chunk.decode(), values):
        raise Failure(f"{chunk.label} chunk of {n} rows does not decode to its values")
    for a, b in case["ranges"]:
        a, b = min(a, b), max(a, b)
        if not same_numbers(chunk.decode(a, b), values[a:b]):
            raise Failure(f"{chunk.label} chunk: rows [{a}, {b}) decode wrongly")
    if n <= 5000 and not _same_chunk(chunk, reference_encode(values)):
        raise Failure(f"the batch encoder chose {chunk.label}, the reference encoder "
                      f"{reference_encode(values).label}")
    others = [values, values[::-1].copy(), np.roll(values, 1)] if n else [values]
    for c, v in zip(encode_rows(np.stack(others)), others):
        if not same_numbers(c.decode(), v):
            raise Failure(f"{c.label} chunk from encode_rows does not decode to its values")
    bounds = [0] + case["cuts"] + [n]
    parts = [encode(values[a:b]) for a, b in zip(bounds, bounds[1:]) if b > a]
    if parts:
        column = Column("x", "numeric", parts)
        if not same_numbers(column.decode(), values):
            raise Failure("a column of several chunks does not decode to its values")
        for a, b in case["ranges"]:
            a, b = min(a, b), max(a, b)
            if not same_numbers(column.decode(a, b), values[a:b]):
                raise Failure(f"a column of several chunks: rows [{a}, {b}) decode wrongly")
        merged = compact_chunks(parts, max(1, n // 2 + 1))
        if not same_numbers(np.concatenate([c.decode() for c in merged]) if merged else np.empty(0), values):
            raise Failure("merged chunks do not decode to their values")


TARGETS = [Target("parquet", parquet_cases(), check_parquet, 50),
           Target("parquet_bytes", parquet_byte_cases(), check_parquet_bytes, 50),
           Target("model_bytes", model_byte_cases(), check_model_bytes, 50),
           Target("chunks", chunk_cases(), check_chunks, 60)]
