"""The batch encoder: the smallest exact chunk of each of many columns at once.

The encoder works on many columns at once: a slab of k columns x n rows, held as k rows
of a C-contiguous (k, n) float64 array (one column's values contiguous).  Every fact that
decides an encoding is computed for all columns with a few 2-D numpy passes, the choice
itself is made with array arithmetic over the k columns, and values are packed per group
of columns sharing a representation; Python runs once per chunk only to build the Chunk.
The choice is exactly that of `reference_encode` in encoding.py (the one-column
specification, kept for the tests): the same facts, computed differently, fed to the same
rules.  Callers import `encode`, `encode_block` and `encode_rows` from encoding.py.
"""
from dataclasses import dataclass

import numpy as np

from h2odl_mpi.data.frame.chunk import (EXACT_INT, POW10, MAX_SCALE, UINT_BY_WIDTH, Chunk,
                                   Encoding)

_INT64_MIN = np.iinfo(np.int64).min
_NAN_BITS = np.float64(np.nan).view(np.int64)
_POW10_ARRAY = np.array(POW10)
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
    passes[1:MAX_SCALE + 1] = (((np.abs(scaled) < EXACT_INT) & (scaled / p10 == probe))
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
            scaled = np.rint(sub * POW10[s])
            ok = scaled / POW10[s] == sub
            if na[rows[group]].any():
                ok |= np.isnan(sub)
            ok = ok.all(axis=1)
            result[group[ok]] = s
            first[group[~ok]] = s + 1
            still.append(group[~ok])
        pending = np.concatenate(still)
    p10 = _POW10_ARRAY[result]
    big = np.maximum(np.abs(np.rint(lo[rows] * p10)), np.abs(np.rint(hi[rows] * p10))) >= EXACT_INT
    result[big] = 0
    return result


def _int_widths(lo, hi, has_na):
    """Bytes of the INT offsets from lo for values up to hi (0: none fits), as _int_plan."""
    reserve = has_na.astype(np.float64)
    span = hi - lo
    width = np.where(span <= 255 - reserve, 1,
                     np.where(span <= 65535 - reserve, 2,
                              np.where(span <= 4294967295 - reserve, 4, 0)))
    width[~(np.maximum(np.abs(lo), np.abs(hi)) < EXACT_INT)] = 0
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


@dataclass
class _Facts:
    """What decides the encoding of each column of a slab (arrays over its k columns)."""
    na: np.ndarray          # NA count
    lo: np.ndarray          # extremes of the non-NA values
    hi: np.ndarray
    zeros: np.ndarray       # exact +0.0 count
    neg_zero: np.ndarray    # some value is -0.0
    nonzero: np.ndarray     # (k, n): bits not zero (None when no column can hold a zero)
    fixed: np.ndarray       # all NA or constant: a CONST chunk
    todo: np.ndarray        # the others
    integral: np.ndarray    # every non-NA value a finite integer
    scale: np.ndarray       # decimal scale (0: none)
    f32: np.ndarray         # float32 holds every value exactly (where a plan needs to know)
    values: np.ndarray      # the values, every NaN the canonical one


def _facts(values):
    k, n = values.shape
    bits = values.view(np.int64)
    lo = values.min(axis=1)                      # NaN where a column holds NaN
    hi = values.max(axis=1)
    na = np.zeros(k, dtype=np.int64)
    if np.isnan(lo).any():                      # some column holds NA: count them all at once
        holes = np.isnan(values)
        na = np.bitwise_count(np.packbits(holes, axis=1)).sum(axis=1, dtype=np.int64)
        if (bits[holes] != _NAN_BITS).any():
            # NaN is NA whatever its bits: one NaN for all (a signalling NaN would also make
            # fmin/fmax give NaN, IEEE's minNum, and with it every statistic)
            values = np.where(holes, np.nan, values)
            bits = values.view(np.int64)
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
    return _Facts(na, lo, hi, zeros, neg_zero, nonzero, all_na | constant, todo, integral,
                  scale, f32, values)


def _encode_rows(values):
    k, n = values.shape
    f = _facts(values)
    values = f.values
    count = np.full(k, n, dtype=np.int64)
    dense = _plans(count, f.na, f.lo, f.hi, f.zeros, f.neg_zero, f.integral, f.scale, f.f32)
    best = dense.width * n
    bits_ok = f.todo & f.integral & ~f.neg_zero & (f.lo >= 0) & (f.hi <= 1)
    bits_size = ((n + 7) >> 3) * np.where(f.na > 0, 2, 1)
    use_bits = bits_ok & (bits_size < best)
    best = np.where(use_bits, bits_size, best) * 7 // 8   # must save SPARSE_SAVING (1/8)
    place = np.full(k, _DENSE)
    form = np.zeros(k, dtype=np.int64)
    bitmap_size = (n + 7) >> 3
    index_width = 2 if n <= 1 << 16 else 4

    # Background 0.0: the stored rows are those whose bits are not zero (NA included).
    # (A background absent from the chunk stores every row in the dense plan: never smaller.)
    stored0 = count - f.zeros
    consider = f.todo & (f.zeros > 0) & (stored0 + np.minimum(bitmap_size, stored0 * index_width) < best)
    zero_fill = zero_plans = None
    if consider.any():
        zero_fill, zero_plans = _zero_background(values, f, consider, stored0)
        _compete(consider, stored0, zero_plans, best, place, form, _ZERO_FILL, bitmap_size,
                 index_width)

    # Background NA: the stored rows are the non-NA ones.
    stored1 = count - f.na
    consider = f.todo & (f.na > 0) & (stored1 + np.minimum(bitmap_size, stored1 * index_width) < best)
    na_plans = None
    if consider.any():
        na_plans = _plans(stored1, np.zeros(k, np.int64), f.lo, f.hi, f.zeros, f.neg_zero,
                          f.integral, f.scale, f.f32)
        _compete(consider, stored1, na_plans, best, place, form, _NA_FILL, bitmap_size,
                 index_width)

    chunks = [None] * k
    _build_constants(chunks, values, f.fixed, n)
    _build_dense(chunks, values, f.todo & (place == _DENSE) & ~use_bits, dense, f.na, n)
    _build_bits(chunks, values, f.todo & (place == _DENSE) & use_bits, f.na, n)
    if zero_fill is not None and (place == _ZERO_FILL).any():
        _build_sparse(chunks, place == _ZERO_FILL, zero_fill, zero_plans, form, 0.0, n,
                      index_width)
    if na_plans is not None and (place == _NA_FILL).any():
        chosen = place == _NA_FILL
        stored = _Stored(values, ~np.isnan(values) & chosen[:, None])
        _build_sparse(chunks, chosen, stored, na_plans, form, np.nan, n, index_width)
    return chunks


def _zero_background(values, f, consider, stored):
    """The non-zero rows of the `consider` columns and their plans (background 0.0)."""
    zero_fill = _Stored(values, f.nonzero & consider[:, None])
    lo0, hi0 = f.lo.copy(), f.hi.copy()
    some = zero_fill.counts > 0
    if some.any():
        starts = zero_fill.starts[some]
        lo0[some] = np.fmin.reduceat(zero_fill.values, starts)
        hi0[some] = np.fmax.reduceat(zero_fill.values, starts)
    plans = _plans(stored, f.na, lo0, hi0, np.zeros(f.na.size, np.int64), f.neg_zero,
                   f.integral | (f.na == stored), f.scale, f.f32)
    return zero_fill, plans


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
        value = float(values[j, 0])   # (all NA: the canonical NaN, whatever NaN came in)
        chunks[j] = Chunk(Encoding.CONST, n, value=np.nan if value != value else value)


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
            offsets = row * POW10[scale] if scale else row.copy()
            if scale:
                np.rint(offsets, out=offsets)
            offsets -= base
            if has_na:
                offsets[np.isnan(offsets)] = (1 << (8 * width)) - 1
            data = offsets.astype(UINT_BY_WIDTH[width])
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
    index_dtype = UINT_BY_WIDTH[index_width]
    columns = zip(rows.tolist(), stored.starts[rows].tolist(), stored.counts[rows].tolist(),
                  plans.encoding[rows].tolist(), plans.width[rows].tolist(),
                  plans.scale[rows].tolist(), plans.has_na[rows].tolist(),
                  plans.base[rows].tolist(), plans.value[rows].tolist(), form[rows].tolist())
    for j, a, count, e, width, scale, has_na, base, value, form_id in columns:
        b = a + count
        if e == _INT:
            data = offsets[a:b].astype(UINT_BY_WIDTH[width])
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

