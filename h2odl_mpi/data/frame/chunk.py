"""The chunk format: encoding ids, the C descriptor, `Chunk` and its decoder.

A chunk holds `n_rows` consecutive values of one column.  The encoder (encoding.py) picks,
for every column of a block of rows, the smallest of the representations below that
reproduces each float64 value bit for bit (NA is NaN; every NaN is NA, as in H2O);
`Chunk.decode` turns a row range back into float64.  A chunk is a fixed 40-byte descriptor (`DESCRIPTOR_DTYPE`, a C
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

MAX_SCALE = 10          # largest decimal scale (10**scale is exact in float64)
EXACT_INT = 2.0 ** 53  # |integer| below this converts to float64 exactly


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
UINT_BY_WIDTH = {1: np.uint8, 2: np.uint16, 4: np.uint32}   # INT values, SPARSE row indices
POW10 = [10.0 ** s for s in range(MAX_SCALE + 1)]


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

    def bounds(self):
        """(lo, hi) enclosing every non-NA value, read from the descriptor alone: (inf, -inf)
        when every row is NA; None where only decoding can tell (FLOAT32 and FLOAT64 values)."""
        if self.encoding == Encoding.BITS:
            return (0.0, 1.0)
        if self.encoding not in (Encoding.SPARSE, Encoding.MASKED):
            return _plan_bounds(self._value_plan())
        stored = _plan_bounds(self._value_plan()) if self.nnz else (np.inf, -np.inf)
        if stored is None:
            return None
        fill = (np.inf, -np.inf) if np.isnan(self.fill) or self.nnz == self.n_rows else (self.fill, self.fill)
        return (min(stored[0], fill[0]), max(stored[1], fill[1]))

    def _value_plan(self):
        own = self.encoding if self.encoding not in (Encoding.SPARSE, Encoding.MASKED) \
            else self.value_encoding
        return ValuePlan(own, self.value_width, self.base, self.scale, self.has_na, self.value)


def _value_label(encoding, width, scale):
    if encoding == Encoding.INT:
        return f"{'dec' if scale else 'int'}{8 * width}"
    return {Encoding.CONST: "const", Encoding.FLOAT32: "f32", Encoding.FLOAT64: "f64"}[encoding]


# ----------------------------------------------------------------------------------- decode

def _plan_bounds(plan):
    """(lo, hi) of the values a plan can hold (its widest offsets for INT), or None."""
    if plan.encoding == Encoding.CONST:
        return (np.inf, -np.inf) if np.isnan(plan.value) else (plan.value, plan.value)
    if plan.encoding != Encoding.INT:
        return None
    top = float(plan.base + (1 << (8 * plan.width)) - 1)
    return (plan.base / POW10[plan.scale], top / POW10[plan.scale])


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
        values /= POW10[plan.scale]  # correctly rounded, as the parser rounded the text
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
