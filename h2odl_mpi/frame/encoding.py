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


@dataclass(frozen=True, eq=False)
class Chunk:
    """One encoded chunk: the descriptor fields plus the typed buffers they describe."""
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
        return DESCRIPTOR_DTYPE.itemsize + sum(b.nbytes for b in self.buffers.values())

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


def encode(values):
    """Encode one column's values (float64, NaN = NA) as the smallest exact Chunk."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    return encode_block(values.reshape(-1, 1))[0]


def encode_block(block):
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
