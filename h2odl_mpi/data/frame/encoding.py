"""Lossless chunk encodings of one column's values, as H2O's compressed chunks.

Where things are: the chunk format, `Chunk` and its decoder in chunk.py (the list of
encodings is there); the batch encoder that callers use, `encode` / `encode_block` /
`encode_rows`, in batch_encoder.py.  Both are re-exported here, the names the rest of the
package imports.  docs/column_store.md is the reference.

This module itself holds `reference_encode`, the one-column encoder: the specification of
the choice `encode_rows` makes, kept as the specification tests/test_frame_encoding.py
checks the batch encoder against (same descriptor, same bytes); the reader never calls it.
"""
from dataclasses import dataclass

import numpy as np

from h2odl_mpi.data.frame.batch_encoder import encode, encode_block, encode_rows
from h2odl_mpi.data.frame.chunk import (EXACT_INT, POW10, DESCRIPTOR_DTYPE, MAX_SCALE,
                                   UINT_BY_WIDTH, Chunk, Encoding, ValuePlan)

__all__ = ["DESCRIPTOR_DTYPE", "MAX_SCALE", "SPARSE_SAVING", "Chunk", "Encoding", "ValuePlan",
           "encode", "encode_block", "encode_rows", "reference_encode"]

SPARSE_SAVING = 0.125  # fraction of the dense size a SPARSE/MASKED chunk must save
_SIGN_BIT = np.uint64(1 << 63)


# ------------------------------------------------------------------------ reference encoder
#
# The one-column encoder below is the specification of the choice `encode_rows` makes: it
# computes the same facts one column at a time.  It is kept only as the specification
# tests/test_frame_encoding.py (test_vectorised_encoder_makes_the_reference_choice) checks
# the batch encoder against, chunk for chunk; the reader never calls it.

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
    block = np.asfortranarray(np.where(na, np.nan, block))   # NaN is NA whatever its bits: one NaN
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
        index = np.flatnonzero(keep).astype(UINT_BY_WIDTH[index_width])
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
    if max(abs(lo), abs(hi)) >= EXACT_INT:
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
        scaled = np.rint(finite * POW10[scale])
        if np.array_equal(scaled / POW10[scale], finite):
            lo, hi = float(scaled.min()), float(scaled.max())
            if max(abs(lo), abs(hi)) < EXACT_INT:
                return scale, lo, hi
            return 0, 0.0, 0.0
    return 0, 0.0, 0.0


def _scales_exactly(values, scale):
    scaled = np.rint(values * POW10[scale])
    return bool(np.all(np.abs(scaled) < EXACT_INT)) and np.array_equal(scaled / POW10[scale], values)


def _float32_exact(values):
    with np.errstate(over="ignore", invalid="ignore"):
        narrowed = values.astype(np.float32)
    return np.array_equal(narrowed.astype(np.float64), values, equal_nan=True)


def _pack_bits(mask):
    return np.packbits(mask, bitorder="little")


def _pack_values(values, plan, na=None):
    if plan.encoding == Encoding.CONST:
        return None
    if plan.encoding == Encoding.FLOAT64:
        return np.ascontiguousarray(values, dtype=np.float64).copy()
    if plan.encoding == Encoding.FLOAT32:
        return values.astype(np.float32)
    dtype = UINT_BY_WIDTH[plan.width]
    if plan.has_na and na is None:
        na = np.isnan(values)
    scaled = np.rint(values * POW10[plan.scale]) if plan.scale else values
    with np.errstate(invalid="ignore"):
        offsets = scaled - plan.base
    if plan.has_na:
        offsets[na] = np.iinfo(dtype).max
    return offsets.astype(dtype)
