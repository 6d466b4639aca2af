"""The column store as the C kernel reads it: FRAME rows (csrc/frame_rows.c).

`FrameInput` describes one source column of the kernel's inputs: which input units it fills
and how a decoded value becomes them (numeric, one-hot, binary, hashed or label code; the
transforms are documented with h2o_frame_col in csrc/h2odl.h).  `FrameSource` builds the C
tables (h2o_frame_col[] and the chunk records over the columns' buffers, read in place) once
and hands out per-call scratch (`to_c`).  `frame_rows(inputs, n_rows, n_cols, ...)` gives a
`kernel.Rows` of kind frame over them, which the kernel trains and scores from without ever
expanding the store.  Every buffer is checked against its chunk's descriptor here, so C only
reads inside them.
"""
from dataclasses import dataclass

import numpy as np

from h2odl_mpi._kernel import ffi, lib
from h2odl_mpi.data.frame import DESCRIPTOR_DTYPE
from h2odl_mpi.data.frame.chunk import UINT_BY_WIDTH
from h2odl_mpi.kernel import Rows

FRAME_KINDS = {"numeric": lib.H2O_FCOL_NUMERIC, "onehot": lib.H2O_FCOL_ONEHOT,
               "binary": lib.H2O_FCOL_BINARY, "hashed": lib.H2O_FCOL_HASHED,
               "label": lib.H2O_FCOL_LABEL}


@dataclass
class FrameInput:
    """One source column of a FRAME row source (C: h2o_frame_col; transform per kind in
    csrc/h2odl.h).  `column` is an h2odl_mpi.data.frame Column (its chunks are read in place);
    level_map maps the frame's codes to training levels (-1: unseen), None when equal."""
    column: object
    kind: str                 # numeric | onehot | binary | hashed | label
    input: int
    width: int
    sub: float = 0.0
    mul: float = 1.0
    na_fill: float = 0.0
    n_levels: int = 0
    first_level: int = 0
    level_map: np.ndarray = None
    bit_sub: np.ndarray = None
    bit_mul: np.ndarray = None
    cat_offset: int = 0
    hash_seed: int = 0


# the descriptor's fields that Chunk.descriptor() fills (the rest stay zero)
_DESCRIPTOR_FIELDS = ("encoding", "value_encoding", "value_width", "index_width", "scale", "has_na",
                      "n_rows", "nnz", "base", "value", "fill")
_RANK_ROWS = lib.H2O_FRAME_RANK_ROWS    # rows per MASKED prefix count (csrc/h2odl.h: 64)
# value dtypes by chunk encoding (INT, FLOAT32, FLOAT64) and width in bytes
_VALUE_DTYPES = {2: UINT_BY_WIDTH, 3: {4: np.float32}, 4: {8: np.float64}}


def _chunk_dtype():
    """numpy twin of h2o_frame_chunk: the 40-byte descriptor and four buffer pointers."""
    return np.dtype([("d", DESCRIPTOR_DTYPE), ("data", "<u8"), ("index", "<u8"),
                     ("bitmap", "<u8"), ("rank", "<u8")], align=True)


def _masked_rank(bitmap, n_rows):
    """Set bits of a presence bitmap (uint8) before each _RANK_ROWS-row word, as the uint32
    prefix counts of h2o_frame_chunk.rank (ceil(n_rows / _RANK_ROWS) of them)."""
    counts = np.concatenate([[0], np.cumsum(np.bitwise_count(bitmap), dtype=np.int64)])
    starts = np.minimum(np.arange(0, n_rows, _RANK_ROWS) // 8, bitmap.size)
    return np.ascontiguousarray(counts[starts], dtype=np.uint32)


def _check_chunk(name, i, c):
    """Buffers of one chunk hold what its descriptor says (so C reads inside them)."""
    def need(buf, dtype, count, what):
        if buf is None or buf.dtype != np.dtype(dtype) or not buf.flags.c_contiguous or buf.size < count:
            raise ValueError(f"column {name!r} chunk {i}: {what} buffer does not match its descriptor")

    def values(enc, count):
        if enc == 0:
            return
        dtype = _VALUE_DTYPES.get(int(enc), {}).get(int(c.value_width))
        if dtype is None:
            raise ValueError(f"column {name!r} chunk {i}: bad value encoding {enc}/{c.value_width}")
        need(c.data, dtype, count, "data")

    enc, n = int(c.encoding), int(c.n_rows)
    if not 0 <= int(c.scale) <= 10:
        raise ValueError(f"column {name!r} chunk {i}: scale {c.scale} outside 0..10")
    if enc == 1:
        need(c.data, np.uint8, (n + 7) >> 3, "data")
        if c.has_na:
            need(c.bitmap, np.uint8, (n + 7) >> 3, "bitmap")
    elif enc in (2, 3, 4):
        values(enc, n)
    elif enc == 5:
        if int(c.index_width) not in (2, 4):
            raise ValueError(f"column {name!r} chunk {i}: index width {c.index_width}")
        need(c.index, np.uint16 if c.index_width == 2 else np.uint32, int(c.nnz), "index")
        values(int(c.value_encoding), int(c.nnz))
    elif enc == 6:
        need(c.bitmap, np.uint8, (n + 7) >> 3, "bitmap")
        values(int(c.value_encoding), max(1, int(c.nnz)))   # C reads value min(k, nnz-1)
    elif enc != 0:
        raise ValueError(f"column {name!r} chunk {i}: unknown encoding {enc}")


class FrameSource:
    """The C description (h2o_frame_col[]) of FrameInputs, built once; keeps every numpy
    buffer it points into alive (the frame's chunks, descriptor tables, pointer tables).
    block_rows: rows each kernel thread decodes at a time (its block scratch is
    block_rows * n_slots floats and ints)."""

    BLOCK_ROWS = 32

    def __init__(self, inputs, n_rows, n_cols, block_rows=None):
        self.inputs = list(inputs)
        self.n_rows, self.n_cols = int(n_rows), int(n_cols)
        self.block_rows = int(block_rows or self.BLOCK_ROWS)
        if not 1 <= self.block_rows <= lib.H2O_FRAME_BLOCK_MAX:
            raise ValueError(f"block_rows must be in [1, {lib.H2O_FRAME_BLOCK_MAX}]")
        self.n_slots, self.hashed_slot = 0, None
        self._keep = []
        self.cols = ffi.new("h2o_frame_col[]", max(1, len(self.inputs)))
        dtype = _chunk_dtype()
        if dtype.itemsize != ffi.sizeof("h2o_frame_chunk"):
            raise RuntimeError("h2o_frame_chunk and its numpy dtype differ in size")
        # Columns cut at the same rows share one offsets array and one chunk table whose
        # records are chunk-major, so a row's decode walks adjacent records.
        groups = {}
        for j, spec in enumerate(self.inputs):
            col = spec.column
            if col.n_rows != self.n_rows or (col.n_chunks < 1 and self.n_rows > 0):
                raise ValueError(f"column {col.name!r} has {col.n_rows} rows in {col.n_chunks} "
                                 f"chunks, the frame {self.n_rows}")
            key = np.ascontiguousarray(col.row_offsets, dtype=np.int64).tobytes()
            groups.setdefault(key, []).append(j)
        for key, members in groups.items():
            offsets = np.frombuffer(key, dtype=np.int64).copy()
            n_chunks = offsets.size - 1
            table = np.zeros((max(1, n_chunks), len(members)), dtype=dtype)  # 0 rows: unread
            self._keep += [offsets, table]
            for pos, j in enumerate(members):
                self._fill_chunks(table[:, pos], self.inputs[j].column)
            for pos, j in enumerate(members):
                c = self.cols[j]
                c.row_offsets = ffi.cast("int64_t *", offsets.ctypes.data)
                c.n_chunks = n_chunks
                c.chunks = ffi.cast("h2o_frame_chunk *", table.ctypes.data + pos * dtype.itemsize)
                c.chunk_stride = len(members)
        for j, spec in enumerate(self.inputs):
            self._fill(self.cols[j], spec)
            if spec.kind == "hashed" and self.hashed_slot is None:
                self.hashed_slot = self.n_slots
            self.cols[j].slot = self.n_slots
            self.n_slots += spec.width if spec.kind == "binary" else 1
        if self.hashed_slot is None:
            self.hashed_slot = self.n_slots

    def _ptr(self, ctype, arr):
        self._keep.append(arr)
        return ffi.cast(ctype, arr.ctypes.data)

    def _fill_chunks(self, records, col):
        """The records of one column's chunks, a field at a time (a record at a time costs
        a large part of the start-up on wide frames)."""
        chunks = col.chunks
        if not chunks:  # (a rank holding no rows: its one record stays zero, unread)
            return
        for i, chunk in enumerate(chunks):
            _check_chunk(col.name, i, chunk)
        d = records["d"]
        for field in _DESCRIPTOR_FIELDS:
            cast = float if field in ("value", "fill") else int
            d[field] = [cast(getattr(chunk, field)) for chunk in chunks]
        for name in ("data", "index", "bitmap"):
            bufs = [getattr(chunk, name) for chunk in chunks]
            self._keep += [b for b in bufs if b is not None]
            records[name] = [0 if b is None else b.ctypes.data for b in bufs]
        for i, chunk in enumerate(chunks):
            if int(chunk.encoding) == 6:
                rank = _masked_rank(chunk.bitmap, int(chunk.n_rows))
                self._keep.append(rank)
                records["rank"][i] = rank.ctypes.data

    def _fill(self, c, spec):
        col = spec.column
        if spec.kind not in FRAME_KINDS:
            raise ValueError(f"FrameInput kind must be one of {sorted(FRAME_KINDS)}, got {spec.kind!r}")
        if not (0 <= spec.input and spec.width >= 1 and spec.input + spec.width <= self.n_cols):
            raise ValueError(f"column {col.name!r}: inputs [{spec.input}, {spec.input + spec.width}) "
                             f"outside the {self.n_cols} inputs")
        c.kind = FRAME_KINDS[spec.kind]
        c.input, c.width = int(spec.input), int(spec.width)
        categorical = spec.kind in ("onehot", "binary", "hashed", "label")
        if categorical:
            levels = int(spec.n_levels)
            if spec.kind in ("onehot", "hashed") and spec.first_level not in (0, 1):
                raise ValueError("first_level must be 0 or 1")
            if spec.kind == "onehot" and spec.width != levels + 1 - spec.first_level:
                raise ValueError(f"column {col.name!r}: one-hot width {spec.width} for {levels} levels")
            if spec.kind == "binary" and spec.width != max(1, levels).bit_length():
                raise ValueError(f"column {col.name!r}: binary width {spec.width} for {levels} levels")
            c.n_levels, c.first_level = levels, int(spec.first_level)
            if spec.level_map is not None:
                m = np.ascontiguousarray(spec.level_map, dtype=np.int32)
                if m.size and (m.min() < -1 or m.max() >= levels):
                    raise ValueError(f"column {col.name!r}: level_map outside [-1, {levels})")
                c.level_map, c.n_map = self._ptr("int32_t *", m), m.size
        c.cat_offset = int(spec.cat_offset)
        c.hash_seed = int(spec.hash_seed) & 0xFFFFFFFF
        c.sub, c.mul, c.na_fill = float(spec.sub), float(spec.mul), float(spec.na_fill)
        if spec.kind == "binary":
            bs = np.ascontiguousarray(spec.bit_sub, dtype=np.float64)
            bm = np.ascontiguousarray(spec.bit_mul, dtype=np.float64)
            if bs.size != spec.width or bm.size != spec.width:
                raise ValueError(f"column {col.name!r}: bit_sub/bit_mul need {spec.width} values")
            c.bit_sub, c.bit_mul = self._ptr("double *", bs), self._ptr("double *", bm)

    def scratch_bytes(self, threads=1):
        """Bytes of per-call scratch for `threads` threads (chunk hints, decoded blocks)."""
        return threads * (4 * len(self.inputs) + 8 * self.block_rows * self.n_slots)

    def to_c(self, keep, threads=1):
        """An h2o_frame with fresh per-thread scratch (chunk cache, decoded block) for
        `threads` threads."""
        threads = max(1, int(threads))
        f = ffi.new("h2o_frame *")
        hint = np.zeros(threads * max(1, len(self.inputs)), dtype=np.int32)
        block = max(1, threads * self.block_rows * self.n_slots)
        val = np.zeros(block, dtype=np.float32)
        unit = np.full(block, -1, dtype=np.int32)
        keep += [f, hint, val, unit, self]
        f.n_cols = len(self.inputs)
        f.cols = self.cols
        f.n_slots, f.hashed_slot = self.n_slots, self.hashed_slot
        f.threads, f.block_rows = threads, self.block_rows
        f.hint = ffi.cast("int32_t *", hint.ctypes.data)
        f.block_val = ffi.cast("float *", val.ctypes.data)
        f.block_unit = ffi.cast("int32_t *", unit.ctypes.data)
        return f

    @property
    def nbytes(self):
        """Bytes of the C-side tables this source added (the chunks themselves excluded)."""
        own = [a for a in self._keep if isinstance(a, np.ndarray)]
        chunk_ids = {id(b) for spec in self.inputs for ch in spec.column.chunks
                     for b in (ch.data, ch.index, ch.bitmap) if b is not None}
        return sum(a.nbytes for a in own if id(a) not in chunk_ids)



def _check_order(inputs):
    """FrameInputs in ascending `input` order without overlap, hashed ones last, sharing
    one region (the order the C decoder emits a row's units in)."""
    end = 0
    hashed = None
    for spec in inputs:
        if spec.kind == "hashed":
            if hashed is None:
                hashed = (spec.input, spec.width)
                if spec.input < end:
                    raise ValueError("FrameInputs overlap")
                end = spec.input + spec.width
            elif hashed != (spec.input, spec.width):
                raise ValueError("hashed FrameInputs must share one region")
            continue
        if hashed is not None or spec.input < end:
            raise ValueError("FrameInputs must come in ascending input order without "
                             "overlap, hashed ones last")
        end = spec.input + spec.width


def frame_rows(inputs, n_rows, n_cols, y=None, weight=None, offset=None):
    """kernel.Rows of kind frame: n_rows local rows of a column store, n_cols input units
    filled by `inputs` (FrameInput, ascending `input`, non-overlapping except hashed ones);
    y, weight, offset as for kernel.Rows.dense."""
    inputs = list(inputs)
    _check_order(inputs)
    return Rows.from_source(FrameSource(inputs, n_rows, n_cols), y=y, weight=weight, offset=offset)
