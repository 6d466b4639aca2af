"""Lossless chunk encodings of one column's values, as H2O's compressed chunks.

A chunk holds `n_rows` consecutive values of one column.  `encode_block` picks, for every
column of a block of rows, the smallest of the representations below that reproduces each
float64 value bit for bit (NA is NaN; every NaN is NA, as in H2O); `Chunk.decode` turns a row
range back into float64.  A chunk is a fixed 40-byte descriptor (`DESCRIPTOR_DTYPE`, a C
struct) plus up to three typed, contiguous numpy buffers (`data`, `index`, `bitmap`), so a C
decoder can read it without Python.  docs/column_store.md is the reference for that decoder.

Encodings (the `encoding` field):
  CONST    every row is `value` (NaN: all NA).  No buffers.
  BITS     `data`: row bits, little-endian bit order; `bitmap` (when has_na): NA bits.
  INT      `data`: unsigned offsets of 1, 2 or 4 bytes; row = (base + offset) / 10**scale;
           with has_na the all-ones offset is NA.  Integers have scale 0, decimals with few
           digits a scale of 1..MAX_SCALE.
  FLOAT32  `data`: float32, used only where widening gives back the exact float64.
  FLOAT64  `data`: float64.
  SPARSE   rows not listed in `index` (uint16/uint32 row numbers, ascending) hold `fill`
           (0.0 or NA); the `nnz` listed rows hold values encoded by `value_encoding`.
  MASKED   rows whose bit is set in `bitmap` hold the stored values in row order, the others
           hold `fill`: a presence bitmap instead of a row index (H2O has no such chunk; it
           beats SPARSE when more than 1 row in 16 is stored, e.g. image pixels).
Stored values of SPARSE/MASKED chunks use CONST (all equal to `value`), INT, FLOAT32 or
FLOAT64 with the same meaning as for a dense chunk.
"""
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

SPARSE_SAVING = 0.125  # fraction of the dense size a SPARSE/MASKED chunk must save
MAX_SCALE = 10          # largest decimal scale tried (10**scale is exact in float64)
_EXACT_INT = 2.0 ** 53  # |integer| below this converts to float64 exactly
_SIGN_BIT = np.uint64(1 << 63)


class Encoding(IntEnum):
    """Encoding id stored in a chunk descriptor (also used for SPARSE/MASKED values)."""
    CONST = 0
    BITS = 1
    INT = 2
    FLOAT32 = 3
    FLOAT64 = 4
    SPARSE = 5
    MASKED = 6


# The C view of a descriptor: struct h2odl_chunk { uint8 encoding, value_encoding,
# value_width, index_width; int8 scale; uint8 has_na; uint16 reserved; uint32 n_rows, nnz;
# int64 base; double value, fill; }  (40 bytes, natural alignment).
DESCRIPTOR_DTYPE = np.dtype([
    ("encoding", "u1"), ("value_encoding", "u1"), ("value_width", "u1"), ("index_width", "u1"),
    ("scale", "i1"), ("has_na", "u1"), ("reserved", "<u2"),
    ("n_rows", "<u4"), ("nnz", "<u4"),
    ("base", "<i8"), ("value", "<f8"), ("fill", "<f8"),
], align=True)

_DESCRIPTOR_BYTES = DESCRIPTOR_DTYPE.itemsize
_UINT_BY_WIDTH = {1: np.uint8, 2: np.uint16, 4: np.uint32}
_POW10 = [10.0 ** s for s in range(MAX_SCALE + 1)]


@dataclass(frozen=True)
class ValuePlan:
    """How a run of stored values is represented (a dense chunk or SPARSE/MASKED values)."""
    encoding: Encoding
    width: int = 0          # bytes per stored value (0 for CONST)
    base: int = 0
    scale: int = 0
    has_na: bool = False
    value: float = 0.0      # CONST value

    def nbytes(self, count):
        return count * self.width


@dataclass(eq=False, slots=True)
class Chunk:
    """One encoded chunk: the descriptor fields plus the typed buffers they describe.

    Treat it as immutable (it is not frozen only because a frozen dataclass takes several
    times longer to build, and the encoder builds one per column per block)."""
    encoding: Encoding
    n_rows: int
    value_encoding: Encoding = Encoding.CONST
    value_width: int = 0
    index_width: int = 0
    scale: int = 0
    has_na: bool = False
    nnz: int = 0
    base: int = 0
    value: float = 0.0
    fill: float = 0.0
    data: np.ndarray = None
    index: np.ndarray = None
    bitmap: np.ndarray = None

    @property
    def buffers(self):
        """The buffers present, by name (the order a C decoder expects: data, index, bitmap)."""
        return {name: buf for name, buf in
                (("data", self.data), ("index", self.index), ("bitmap", self.bitmap))
                if buf is not None}

    @property
    def nbytes(self):
        """Bytes held: the buffers plus the descriptor."""
        total = _DESCRIPTOR_BYTES
        for buffer in (self.data, self.index, self.bitmap):
            if buffer is not None:
                total += buffer.nbytes
        return total

    @property
    def label(self):
        """Short name of the representation, e.g. 'int8', 'dec16', 'sparse:int8', 'f32'."""
        if self.encoding == Encoding.SPARSE or self.encoding == Encoding.MASKED:
            return f"{self.encoding.name.lower()}:{_value_label(self.value_encoding, self.value_width, self.scale)}"
        if self.encoding == Encoding.BITS:
            return "bits"
        return _value_label(self.encoding, self.value_width, self.scale)

    def descriptor(self):
        """This chunk's descriptor as one DESCRIPTOR_DTYPE record."""
        record = np.zeros((), dtype=DESCRIPTOR_DTYPE)
        for field in ("encoding", "value_encoding", "value_width", "index_width", "scale",
                      "has_na", "n_rows", "nnz", "base", "value", "fill"):
            record[field] = int(getattr(self, field)) if field not in ("value", "fill") \
                else getattr(self, field)
        return record

    def decode(self, start=0, stop=None, out=None):
        """Rows [start, stop) of this chunk as float64 (NaN for NA), into `out` if given."""
        stop = self.n_rows if stop is None else stop
        if not 0 <= start <= stop <= self.n_rows:
            raise IndexError(f"rows [{start}, {stop}) outside a chunk of {self.n_rows} rows")
        if out is None:
            out = np.empty(stop - start, dtype=np.float64)
        enc = self.encoding
        if enc == Encoding.SPARSE:
            out.fill(self.fill)
            lo, hi = np.searchsorted(self.index, [start, stop])
            if hi > lo:
                rows = self.index[lo:hi].astype(np.intp) - start
                out[rows] = _decode_values(self._value_plan(), self.data, lo, hi)
        elif enc == Encoding.MASKED:
            present = _unpack_bits(self.bitmap, start, stop)
            first = _count_bits(self.bitmap, start)
            count = int(np.count_nonzero(present))
            out.fill(self.fill)
            if count:
                out[present] = _decode_values(self._value_plan(), self.data, first, first + count)
        elif enc == Encoding.BITS:
            out[:] = _unpack_bits(self.data, start, stop)
            if self.has_na:
                out[_unpack_bits(self.bitmap, start, stop)] = np.nan
        else:
            out[:] = _decode_values(self._value_plan(), self.data, start, stop)
        return out

    def _value_plan(self):
        own = self.encoding if self.encoding not in (Encoding.SPARSE, Encoding.MASKED) \
            else self.value_encoding
        return ValuePlan(own, self.value_width, self.base, self.scale, self.has_na, self.value)


def _value_label(encoding, width, scale):
    if encoding == Encoding.INT:
        return f"{'dec' if scale else 'int'}{8 * width}"
    return {Encoding.CONST: "const", Encoding.FLOAT32: "f32", Encoding.FLOAT64: "f64"}[encoding]


# ----------------------------------------------------------------------------------- decode

def _decode_values(plan, data, start, stop):
    enc = plan.encoding
    if enc == Encoding.CONST:
        return np.full(stop - start, plan.value)
    if enc == Encoding.FLOAT64:
        return data[start:stop]
    if enc == Encoding.FLOAT32:
        return data[start:stop].astype(np.float64)
    offsets = data[start:stop]
    values = offsets.astype(np.float64)
    if plan.base:
        values += plan.base          # exact: every |base + offset| < 2**53
    if plan.scale:
        values /= _POW10[plan.scale]  # correctly rounded, as the parser rounded the text
    if plan.has_na:
        values[offsets == np.iinfo(offsets.dtype).max] = np.nan
    return values


def _unpack_bits(packed, start, stop):
    byte0, byte1 = start >> 3, (stop + 7) >> 3
    bits = np.unpackbits(packed[byte0:byte1], bitorder="little")
    shift = start - (byte0 << 3)
    return bits[shift:shift + stop - start].view(np.bool_)


def _count_bits(packed, stop):
    full = stop >> 3
    count = int(np.bitwise_count(packed[:full]).sum(dtype=np.int64)) if full else 0
    if stop & 7:
        count += int(np.unpackbits(packed[full:full + 1], bitorder="little")[:stop & 7].sum())
    return count


def _pack_bits(mask):
    return np.packbits(mask, bitorder="little")


# ----------------------------------------------------------------------------------- encode
#
# The encoder works on many columns at once: a slab of k columns x n rows, held as k rows
# of a C-contiguous (k, n) float64 array (one column's values contiguous).  Every fact that
# decides an encoding is computed for all columns with a few 2-D numpy passes, the choice
# itself is made with array arithmetic over the k columns, and values are packed per group
# of columns sharing a representation; Python runs once per chunk only to build the Chunk.
# The choice is exactly that of `reference_encode` below (the one-column specification, kept
# for the tests): the same facts, computed differently, fed to the same rules.

_INT64_MIN = np.iinfo(np.int64).min
_POW10_ARRAY = np.array(_POW10)
_ENCODINGS = tuple(Encoding)
_PROBE_ROWS = 32
_CONST, _BITS, _INT, _F32, _F64 = (int(e) for e in (Encoding.CONST, Encoding.BITS, Encoding.INT,
                                                    Encoding.FLOAT32, Encoding.FLOAT64))
_DENSE, _ZERO_FILL, _NA_FILL = 0, 1, 2          # where a column's values go
_SPARSE_FORM, _MASKED_FORM = 1, 2


def encode(values):
    """Encode one column's values (float64, NaN = NA) as the smallest exact Chunk."""
    values = np.asarray(values, dtype=np.float64).reshape(1, -1)
    return encode_rows(values)[0]


def encode_block(block):
    """Encode each column of a 2-D float64 block (rows x columns); returns one Chunk each."""
    block = np.asarray(block, dtype=np.float64)
    return encode_rows(block.T)


def encode_rows(values):
    """Encode each row of a (k, n) float64 array (row j: the n values of column j).

    Returns k Chunks of n rows.  Temporaries are a few times the array's size: callers pass
    slabs of some hundred thousand values.
    """
    values = np.ascontiguousarray(values, dtype=np.float64)
    k, n = values.shape
    if k == 0:
        return []
    if n == 0:
        return [Chunk(Encoding.CONST, 0, value=np.nan) for _ in range(k)]
    with np.errstate(invalid="ignore", over="ignore"):
        return _encode_rows(values)


def _rows_of(values, rows):
    """values[rows] without a copy when rows are all rows."""
    return values if rows.size == values.shape[0] else values[rows]


_PIECE_VALUES = 1 << 15   # values tested at a time (bounds the temporaries of a check)


def _all_along_rows(values, mask, test, na):
    """For each row where `mask` holds: test(x) holds for every non-NA x (False elsewhere).

    The rows are tested a piece of about _PIECE_VALUES values at a time, in place (no copy
    of the slab), so the temporaries stay small whatever the slab's size."""
    k, n = values.shape
    rows = np.flatnonzero(mask)
    out = np.zeros(k, dtype=bool)
    if not rows.size:
        return out
    with_na = na[rows].any()
    step = max(1, _PIECE_VALUES // n)
    if step >= k:
        pieces = [(rows, values[rows] if rows.size < k else values)]
    else:
        pieces = [(rows[i:i + step], None) for i in range(0, rows.size, step)]
    for part, sub in pieces:
        if sub is None:
            first, last = int(part[0]), int(part[-1]) + 1
            sub = values[first:last] if last - first == part.size else values[part]
        ok = test(sub)
        if with_na:
            ok |= np.isnan(sub)
        out[part] = ok.all(axis=1)
    return out


def _is_integral(x):
    return np.rint(x) == x


def _is_float32(x):
    return x.astype(np.float32).astype(np.float64) == x


def _decimal_scales(values, rows, na, lo, hi):
    """Smallest s <= MAX_SCALE with rint(x * 10**s) / 10**s == x for every non-NA x of each
    row, and |rint(x * 10**s)| < 2**53; 0 where there is none (as _decimal_scale)."""
    m = rows.size
    probe = values[rows, :_PROBE_ROWS]
    probe_na = np.isnan(probe)
    passes = np.zeros((MAX_SCALE + 2, m), dtype=bool)   # passes[s]: the probe scales at s
    p10 = _POW10_ARRAY[1:, None, None]                  # every scale at once
    scaled = np.rint(probe * p10)
    passes[1:MAX_SCALE + 1] = (((np.abs(scaled) < _EXACT_INT) & (scaled / p10 == probe))
                               | probe_na).all(axis=2)
    del scaled
    result = np.zeros(m, dtype=np.int64)
    first = np.ones(m, dtype=np.int64)                  # smallest scale still possible
    steps = np.arange(MAX_SCALE + 2)[:, None]
    pending = np.arange(m)
    while pending.size:
        open_ = passes[:, pending] & (steps >= first[pending])
        has = open_.any(axis=0)
        pending = pending[has]
        if not pending.size:
            break
        scale = open_[:, has].argmax(axis=0)
        still = []
        for s in np.unique(scale):
            group = pending[scale == s]
            sub = values[rows[group]]
            scaled = np.rint(sub * _POW10[s])
            ok = scaled / _POW10[s] == sub
            if na[rows[group]].any():
                ok |= np.isnan(sub)
            ok = ok.all(axis=1)
            result[group[ok]] = s
            first[group[~ok]] = s + 1
            still.append(group[~ok])
        pending = np.concatenate(still)
    p10 = _POW10_ARRAY[result]
    big = np.maximum(np.abs(np.rint(lo[rows] * p10)), np.abs(np.rint(hi[rows] * p10))) >= _EXACT_INT
    result[big] = 0
    return result


def _int_widths(lo, hi, has_na):
    """Bytes of the INT offsets from lo for values up to hi (0: none fits), as _int_plan."""
    reserve = has_na.astype(np.float64)
    span = hi - lo
    width = np.where(span <= 255 - reserve, 1,
                     np.where(span <= 65535 - reserve, 2,
                              np.where(span <= 4294967295 - reserve, 4, 0)))
    width[~(np.maximum(np.abs(lo), np.abs(hi)) < _EXACT_INT)] = 0
    return width


@dataclass
class _Plans:
    """Per-column value plans (ValuePlan fields as arrays), as _plan_values decides them."""
    encoding: np.ndarray
    width: np.ndarray
    base: np.ndarray     # float64 holding integers
    scale: np.ndarray
    has_na: np.ndarray
    value: np.ndarray


def _plans(count, na, lo, hi, zeros, neg_zero, integral, scale, f32):
    numeric = ~neg_zero & np.isfinite(lo) & np.isfinite(hi)
    decimal = numeric & ~integral & (scale > 0)
    p10 = _POW10_ARRAY[scale]
    slo = np.where(decimal, np.rint(lo * p10), lo)
    shi = np.where(decimal, np.rint(hi * p10), hi)
    has_na = na > 0
    width = _int_widths(slo, shi, has_na)
    width[~(numeric & (integral | decimal))] = 0
    use_int = (width > 0) & (integral | (width < 4))
    use_f32 = ~use_int & f32
    use_int |= ~use_f32 & decimal & (width == 4)
    encoding = np.where(use_int, _INT, np.where(use_f32, _F32, _F64))
    width = np.where(use_int, width, np.where(use_f32, 4, 8))
    base = np.where(use_int, slo, 0.0)
    scale = np.where(use_int & decimal, scale, 0)
    value = np.zeros(count.size)
    all_na = (count == 0) | (na == count)
    constant = ~all_na & (na == 0) & (lo == hi) & ~(neg_zero & (zeros > 0))
    const = all_na | constant
    encoding[const] = _CONST
    width[const] = 0
    base[const] = 0.0
    scale[const] = 0
    has_na = has_na & ~const
    value[all_na] = np.nan
    value[constant] = lo[constant]
    return _Plans(encoding, width, base, scale, has_na, value)


def _segments(starts, counts):
    """Indices of the concatenated ranges [starts[i], starts[i] + counts[i])."""
    total = int(counts.sum())
    shift = starts - (np.cumsum(counts) - counts)
    return np.arange(total, dtype=np.int64) + np.repeat(shift, counts)


class _Stored:
    """The rows of some columns that a mask selects, concatenated column after column.

    `mask` is (k, n) over all k columns of the slab; rows of columns not in `rows` are False.
    `flat` holds the selected positions in the slab's flat (k * n) index space; column j's
    values are values[starts[j]:starts[j] + counts[j]].
    """

    def __init__(self, slab, mask):
        n = slab.shape[1]
        self.packed = np.packbits(mask, axis=1, bitorder="little")
        self.counts = np.bitwise_count(self.packed).sum(axis=1, dtype=np.int64)
        self.flat = np.flatnonzero(mask)
        self.values = slab.reshape(-1).take(self.flat)
        self.starts = np.cumsum(self.counts) - self.counts
        self.n = n


def _int_offsets(values, counts, plans):
    """uint32 offsets (NA: the width's all-ones value) of values laid out by `counts`, for
    columns whose plan is INT; other columns' entries are meaningless."""
    base = np.repeat(plans.base, counts)
    if plans.scale.any():
        offsets = values * np.repeat(_POW10_ARRAY[plans.scale], counts)
        np.rint(offsets, out=offsets)
        offsets -= base
    else:
        offsets = values - base
    na = np.isnan(values)
    if na.any():
        sentinel = np.repeat((1 << (8 * plans.width.astype(np.int64))) - 1, counts)
        offsets[na] = sentinel[na]
    return offsets.astype(np.uint32)


_UINT_DTYPES = {1: np.uint8, 2: np.uint16, 4: np.uint32}


def _encode_rows(values):
    k, n = values.shape
    bits = values.view(np.int64)
    lo = values.min(axis=1)                      # NaN where a column holds NaN
    hi = values.max(axis=1)
    na = np.zeros(k, dtype=np.int64)
    if np.isnan(lo).any():                      # some column holds NA: count them all at once
        holes = np.packbits(np.isnan(values), axis=1)
        na = np.bitwise_count(holes).sum(axis=1, dtype=np.int64)
        del holes
        lo = np.fmin.reduce(values, axis=1)     # extremes ignoring NaN
        hi = np.fmax.reduce(values, axis=1)
    zeros = np.zeros(k, dtype=np.int64)
    neg_zero = np.zeros(k, dtype=bool)
    nonzero = None
    straddle = (lo <= 0) & (hi >= 0)              # only these can hold +0.0 or -0.0
    if straddle.any():
        nonzero = bits != 0                        # -0.0 and NaN are not zeros
        zeros = n - np.bitwise_count(np.packbits(nonzero, axis=1)).sum(axis=1, dtype=np.int64)
        neg_zero = bits.min(axis=1) == _INT64_MIN  # -0.0 is the smallest int64 pattern
    all_na = na == n
    constant = ~all_na & (na == 0) & (lo == hi) & ~(neg_zero & (zeros > 0))
    todo = ~all_na & ~constant
    finite = np.isfinite(lo) & np.isfinite(hi)
    numeric = todo & finite & ~neg_zero

    integral = np.zeros(k, dtype=bool)
    candidates = numeric & (np.rint(lo) == lo) & (np.rint(hi) == hi)
    if candidates.any():
        integral = _all_along_rows(values, candidates, _is_integral, na)
    scale = np.zeros(k, dtype=np.int64)
    decimal = numeric & ~integral
    if decimal.any():
        rows = np.flatnonzero(decimal)
        scale[rows] = _decimal_scales(values, rows, na, lo, hi)

    # float32 exactness, only where the dense plan asks for it (every other plan below asks
    # for it only where the dense one does: their spans are no wider).
    p10 = _POW10_ARRAY[scale]
    is_dec = decimal & (scale > 0)
    width = _int_widths(np.where(is_dec, np.rint(lo * p10), lo),
                        np.where(is_dec, np.rint(hi * p10), hi), na > 0)
    width[~(integral | is_dec)] = 0
    need_f32 = todo & (~numeric | (integral & (width == 0))
                       | (~integral & ((width == 0) | (width == 4))))
    f32 = np.zeros(k, dtype=bool)
    if need_f32.any():
        f32 = _all_along_rows(values, need_f32, _is_float32, na)

    count = np.full(k, n, dtype=np.int64)
    dense = _plans(count, na, lo, hi, zeros, neg_zero, integral, scale, f32)
    best = dense.width * n
    bits_ok = todo & integral & ~neg_zero & (lo >= 0) & (hi <= 1)
    bits_size = ((n + 7) >> 3) * np.where(na > 0, 2, 1)
    use_bits = bits_ok & (bits_size < best)
    best = np.where(use_bits, bits_size, best) * 7 // 8
    place = np.full(k, _DENSE)
    form = np.zeros(k, dtype=np.int64)
    bitmap_size = (n + 7) >> 3
    index_width = 2 if n <= 1 << 16 else 4

    # Background 0.0: the stored rows are those whose bits are not zero (NA included).
    # (A background absent from the chunk stores every row in the dense plan: never smaller.)
    stored0 = count - zeros
    consider = todo & (zeros > 0) & (stored0 + np.minimum(bitmap_size, stored0 * index_width) < best)
    zero_fill = zero_plans = None
    if consider.any():
        zero_fill = _Stored(values, nonzero & consider[:, None])
        lo0, hi0 = lo.copy(), hi.copy()
        some = zero_fill.counts > 0
        if some.any():
            starts = zero_fill.starts[some]
            lo0[some] = np.fmin.reduceat(zero_fill.values, starts)
            hi0[some] = np.fmax.reduceat(zero_fill.values, starts)
        zero_plans = _plans(stored0, na, lo0, hi0, np.zeros(k, np.int64), neg_zero,
                            integral | (na == stored0), scale, f32)
        _compete(consider, stored0, zero_plans, best, place, form, _ZERO_FILL, bitmap_size,
                 index_width)

    # Background NA: the stored rows are the non-NA ones.
    stored1 = count - na
    consider = todo & (na > 0) & (stored1 + np.minimum(bitmap_size, stored1 * index_width) < best)
    na_plans = None
    if consider.any():
        na_plans = _plans(stored1, np.zeros(k, np.int64), lo, hi, zeros, neg_zero, integral,
                          scale, f32)
        _compete(consider, stored1, na_plans, best, place, form, _NA_FILL, bitmap_size,
                 index_width)

    chunks = [None] * k
    _build_constants(chunks, values, all_na | constant, n)
    _build_dense(chunks, values, todo & (place == _DENSE) & ~use_bits, dense, na, n)
    _build_bits(chunks, values, todo & (place == _DENSE) & use_bits, na, n)
    if zero_fill is not None and (place == _ZERO_FILL).any():
        _build_sparse(chunks, place == _ZERO_FILL, zero_fill, zero_plans, form, 0.0, n,
                      index_width)
    if na_plans is not None and (place == _NA_FILL).any():
        chosen = place == _NA_FILL
        stored = _Stored(values, ~np.isnan(values) & chosen[:, None])
        _build_sparse(chunks, chosen, stored, na_plans, form, np.nan, n, index_width)
    return chunks


def _compete(consider, stored, plans, best, place, form, fill, bitmap_size, index_width):
    """Let the SPARSE and MASKED forms of one background win where they are smaller."""
    values_size = plans.width * stored
    for form_id, overhead in ((_SPARSE_FORM, stored * index_width), (_MASKED_FORM, bitmap_size)):
        size = overhead + values_size
        win = consider & (size < best)
        best[win] = size[win]
        place[win] = fill
        form[win] = form_id


def _build_constants(chunks, values, mask, n):
    for j in np.flatnonzero(mask).tolist():
        chunks[j] = Chunk(Encoding.CONST, n, value=float(values[j, 0]))


def _build_dense(chunks, values, mask, plans, na, n):
    rows = np.flatnonzero(mask)
    if not rows.size:
        return
    columns = zip(rows.tolist(), plans.encoding[rows].tolist(), plans.width[rows].tolist(),
                  plans.scale[rows].tolist(), plans.has_na[rows].tolist(),
                  plans.base[rows].tolist())
    for j, e, width, scale, has_na, base in columns:
        row = values[j]
        if e == _INT:            # one column at a time: temporaries of one row only
            offsets = row * _POW10[scale] if scale else row.copy()
            if scale:
                np.rint(offsets, out=offsets)
            offsets -= base
            if has_na:
                offsets[np.isnan(offsets)] = (1 << (8 * width)) - 1
            data = offsets.astype(_UINT_DTYPES[width])
        elif e == _F32:
            data = row.astype(np.float32)
        else:
            data = row.copy()
        encoding = _ENCODINGS[e]
        chunks[j] = Chunk(encoding, n, encoding, width, 0, scale, has_na, 0, int(base), 0.0,
                          0.0, data)


def _build_bits(chunks, values, mask, na, n):
    rows = np.flatnonzero(mask)
    if not rows.size:
        return
    sub = values[rows]
    ones = np.packbits(sub == 1.0, axis=1, bitorder="little")
    holes = np.packbits(np.isnan(sub), axis=1, bitorder="little") if na[rows].any() else None
    for i, j in enumerate(rows.tolist()):
        has_na = bool(na[j])
        chunks[j] = Chunk(Encoding.BITS, n, has_na=has_na, data=ones[i].copy(),
                          bitmap=holes[i].copy() if has_na else None)


def _build_sparse(chunks, chosen, stored, plans, form, fill, n, index_width):
    """SPARSE/MASKED chunks of the `chosen` columns from their stored rows."""
    rows = np.flatnonzero(chosen)
    offsets = None
    if (plans.encoding[rows] == _INT).any():
        offsets = _int_offsets(stored.values, stored.counts, plans)
    index_dtype = _UINT_BY_WIDTH[index_width]
    columns = zip(rows.tolist(), stored.starts[rows].tolist(), stored.counts[rows].tolist(),
                  plans.encoding[rows].tolist(), plans.width[rows].tolist(),
                  plans.scale[rows].tolist(), plans.has_na[rows].tolist(),
                  plans.base[rows].tolist(), plans.value[rows].tolist(), form[rows].tolist())
    for j, a, count, e, width, scale, has_na, base, value, form_id in columns:
        b = a + count
        if e == _INT:
            data = offsets[a:b].astype(_UINT_DTYPES[width])
        elif e == _F32:
            data = stored.values[a:b].astype(np.float32)
        elif e == _F64:
            data = stored.values[a:b].copy()
        else:
            data = None
        if form_id == _SPARSE_FORM:
            index = (stored.flat[a:b] - j * n).astype(index_dtype)
            chunks[j] = Chunk(Encoding.SPARSE, n, _ENCODINGS[e], width, index_width, scale,
                              has_na, count, int(base), value, fill, data, index)
        else:
            chunks[j] = Chunk(Encoding.MASKED, n, _ENCODINGS[e], width, 0, scale, has_na,
                              count, int(base), value, fill, data, None, stored.packed[j].copy())


# ------------------------------------------------------------------------ reference encoder
#
# The one-column encoder below is the specification of the choice `encode_rows` makes: it
# computes the same facts one column at a time.  tests/test_frame_encoding.py checks that
# both give the same chunks; the reader never calls it.

@dataclass
class _Stats:
    """Facts about a run of values that decide its encoding."""
    n: int
    na: int
    zeros: int          # exact +0.0
    lo: float           # min / max of non-NA values (NaN if all NA)
    hi: float
    integral: bool      # every non-NA value is a finite integer
    neg_zero: bool      # some value is -0.0

    @property
    def constant(self):
        return self.na == 0 and self.lo == self.hi and not (self.neg_zero and self.zeros)


def reference_encode(values):
    """Encode one column's values one column at a time (the specification of encode)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    with np.errstate(over="ignore", invalid="ignore"):
        return _reference_encode_block(values.reshape(-1, 1))[0]


def _reference_encode_block(block):
    """Encode each column of a 2-D float64 block (rows x columns); returns one Chunk each.

    Every statistic that decides an encoding (NA, zero and -0.0 counts, extremes with and
    without zeros, integrality) is computed for all columns at once, so a wide block costs
    a few numpy passes plus a few buffer copies per column.  Temporaries are about twice
    the block's size: callers pass slabs of a few hundred thousand values.
    """
    block = np.asfortranarray(block, dtype=np.float64)
    n, k = block.shape
    if k == 0:
        return []
    if n == 0:
        return [Chunk(Encoding.CONST, 0, value=np.nan) for _ in range(k)]
    na = np.isnan(block)
    bits = block.view(np.uint64)
    nonzero = bits != 0
    na_count = na.sum(axis=0)
    zero_count = n - np.count_nonzero(nonzero, axis=0)
    neg_zero = (bits == _SIGN_BIT).any(axis=0)
    with np.errstate(invalid="ignore"):
        lo = np.fmin.reduce(block, axis=0)
        hi = np.fmax.reduce(block, axis=0)
        integral = ((np.rint(block) == block) | na).all(axis=0) & np.isfinite(lo) & np.isfinite(hi)
        scratch = np.where(nonzero, block, np.nan)
        nonzero_lo = np.fmin.reduce(scratch, axis=0)
        nonzero_hi = np.fmax.reduce(scratch, axis=0)
    del scratch
    chunks = []
    for j in range(k):
        stats = _Stats(n, int(na_count[j]), int(zero_count[j]), float(lo[j]), float(hi[j]),
                       bool(integral[j]), bool(neg_zero[j]))
        chunks.append(_encode_column(block[:, j], stats, na[:, j], nonzero[:, j],
                                     float(nonzero_lo[j]), float(nonzero_hi[j])))
    return chunks


class _Lazy:
    """Values extracted from a column only if an exactness check needs them."""

    def __init__(self, values, keep=None):
        self._values, self._keep, self._cached = values, keep, None

    def __call__(self):
        if self._cached is None:
            self._cached = self._values if self._keep is None else self._values[self._keep]
        return self._cached


def _encode_column(values, stats, na, nonzero, nonzero_lo, nonzero_hi):
    n = stats.n
    if stats.na == n:
        return Chunk(Encoding.CONST, n, value=np.nan)
    if stats.constant:
        return Chunk(Encoding.CONST, n, value=float(values[0]))

    dense = _plan_values(stats, _Lazy(values))
    best_size, best = dense.nbytes(n), ("dense", dense, None)
    if stats.integral and not stats.neg_zero and stats.lo >= 0 and stats.hi <= 1:
        bits_size = ((n + 7) >> 3) * (2 if stats.na else 1)
        if bits_size < best_size:
            best_size, best = bits_size, ("bits", None, None)

    # Sparse forms store the rows that differ from a background: 0.0 or NA.  They decode
    # slower, so they must save at least SPARSE_SAVING of the dense size.
    best_size = int(best_size * (1 - SPARSE_SAVING))
    bitmap_size = (n + 7) >> 3
    index_width = 2 if n <= 1 << 16 else 4
    candidates = (
        (0.0, nonzero, _Stats(n - stats.zeros, stats.na, 0, nonzero_lo, nonzero_hi,
                              stats.integral or stats.na == n - stats.zeros, stats.neg_zero)),
        (np.nan, None, _Stats(n - stats.na, 0, stats.zeros, stats.lo, stats.hi, stats.integral,
                              stats.neg_zero)))
    for fill, keep, stored in candidates:
        # A lower bound (one byte per stored value) before looking at any value.
        if stored.n + min(bitmap_size, stored.n * index_width) >= best_size:
            continue
        keep = ~na if keep is None else keep
        lazy = _Lazy(values, keep)
        plan = _plan_values(stored, lazy)
        for form, overhead in (("sparse", stored.n * index_width), ("masked", bitmap_size)):
            size = overhead + plan.nbytes(stored.n)
            if size < best_size:
                best_size, best = size, (form, plan, (fill, keep, lazy))

    form, plan, detail = best
    if form == "dense":
        return Chunk(plan.encoding, n, value_encoding=plan.encoding, value_width=plan.width,
                     scale=plan.scale, has_na=plan.has_na, base=plan.base, value=plan.value,
                     data=_pack_values(values, plan, na))
    if form == "bits":
        return Chunk(Encoding.BITS, n, has_na=bool(stats.na), data=_pack_bits(values == 1.0),
                     bitmap=_pack_bits(na) if stats.na else None)
    fill, keep, lazy = detail
    stored_values = lazy()
    common = dict(value_encoding=plan.encoding, value_width=plan.width, scale=plan.scale,
                  has_na=plan.has_na, nnz=int(stored_values.size), base=plan.base,
                  value=plan.value, fill=fill, data=_pack_values(stored_values, plan))
    if form == "sparse":
        index = np.flatnonzero(keep).astype(_UINT_BY_WIDTH[index_width])
        return Chunk(Encoding.SPARSE, n, index_width=index_width, index=index, **common)
    return Chunk(Encoding.MASKED, n, bitmap=_pack_bits(keep), **common)


def _plan_values(stats, values):
    """Smallest dense representation (CONST, INT, FLOAT32, FLOAT64) of some values.

    `values()` returns them; it is called only when the statistics cannot decide.
    """
    if stats.n == 0 or stats.na == stats.n:
        return ValuePlan(Encoding.CONST, value=np.nan)
    if stats.constant:
        return ValuePlan(Encoding.CONST, value=float(values()[0]))
    has_na = stats.na > 0
    if not stats.neg_zero and np.isfinite(stats.lo) and np.isfinite(stats.hi):
        if stats.integral:
            plan = _int_plan(stats.lo, stats.hi, 0, has_na)
            if plan is not None:
                return plan
        else:
            scale, lo, hi = _decimal_scale(values(), stats.na)
            plan = _int_plan(lo, hi, scale, has_na) if scale else None
            if plan is not None and plan.width < 4:
                return plan
            if _float32_exact(values()):   # as small as a 4-byte decimal, cheaper to decode
                return ValuePlan(Encoding.FLOAT32, 4, has_na=has_na)
            if plan is not None:
                return plan
            return ValuePlan(Encoding.FLOAT64, 8, has_na=has_na)
    if _float32_exact(values()):
        return ValuePlan(Encoding.FLOAT32, 4, has_na=has_na)
    return ValuePlan(Encoding.FLOAT64, 8, has_na=has_na)


def _int_plan(lo, hi, scale, has_na):
    if max(abs(lo), abs(hi)) >= _EXACT_INT:
        return None
    span = int(hi) - int(lo)
    for width in (1, 2, 4):
        limit = (1 << (8 * width)) - 1 - (1 if has_na else 0)   # reserve all-ones for NA
        if span <= limit:
            return ValuePlan(Encoding.INT, width, base=int(lo), scale=scale, has_na=has_na)
    return None


def _decimal_scale(values, na_count):
    """Smallest scale s with every value == rint(value * 10**s) / 10**s exactly.

    Returns (s, min, max) of the scaled integers, or (0, 0, 0) when no s <= MAX_SCALE works.
    A short prefix is tried first so that true floating-point data is rejected cheaply.
    """
    finite = values[~np.isnan(values)] if na_count else values
    probe = finite[:32]
    for scale in range(1, MAX_SCALE + 1):
        if not _scales_exactly(probe, scale):
            continue
        scaled = np.rint(finite * _POW10[scale])
        if np.array_equal(scaled / _POW10[scale], finite):
            lo, hi = float(scaled.min()), float(scaled.max())
            if max(abs(lo), abs(hi)) < _EXACT_INT:
                return scale, lo, hi
            return 0, 0.0, 0.0
    return 0, 0.0, 0.0


def _scales_exactly(values, scale):
    scaled = np.rint(values * _POW10[scale])
    return bool(np.all(np.abs(scaled) < _EXACT_INT)) and np.array_equal(scaled / _POW10[scale], values)


def _float32_exact(values):
    with np.errstate(over="ignore", invalid="ignore"):
        narrowed = values.astype(np.float32)
    return np.array_equal(narrowed.astype(np.float64), values, equal_nan=True)


def _pack_values(values, plan, na=None):
    if plan.encoding == Encoding.CONST:
        return None
    if plan.encoding == Encoding.FLOAT64:
        return np.ascontiguousarray(values, dtype=np.float64).copy()
    if plan.encoding == Encoding.FLOAT32:
        return values.astype(np.float32)
    dtype = _UINT_BY_WIDTH[plan.width]
    if plan.has_na and na is None:
        na = np.isnan(values)
    scaled = np.rint(values * _POW10[plan.scale]) if plan.scale else values
    with np.errstate(invalid="ignore"):
        offsets = scaled - plan.base
    if plan.has_na:
        offsets[na] = np.iinfo(dtype).max
    return offsets.astype(dtype)
