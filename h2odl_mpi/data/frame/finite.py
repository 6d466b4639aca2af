"""Values the network cannot take: Inf, -Inf, and numbers that overflow the kernel's 32-bit
floats once transformed (standardised, or as they are).  A value like that trains a model of
NaNs, so it is refused where a column becomes network inputs, naming the file, the column
and the row (docs/preprocessing.md, "Non-finite values").

A `Use` is one numeric column as the network sees it: x = (v - sub) * mul, rounded to
float32; mul = 0 says that only finiteness matters (class labels, weights).  `refuse` finds
the first column with a bad value and in it the first Inf, else the largest value that
overflows, and raises the same UserError on every rank (collective over the frame's ranks;
the row is the frame's global row, 1-based, the header not counted).
"""
from dataclasses import dataclass
import math

import numpy as np

from h2odl_mpi.collectives import allgather_obj, rank_and_size
from h2odl_mpi.errors import UserError

F32_MAX = float(np.finfo(np.float32).max)


@dataclass
class Use:
    """A numeric column as the network takes it: x = (v - sub) * mul (mul 0: finite only)."""
    name: str
    role: str             # "input", "response", "weights_column", "offset_column"
    values: object        # callable: this rank's values of the column, float64 (NaN: NA)
    sub: float = 0.0
    mul: float = 1.0

    def bad(self, v):
        """Mask of the values that are not NA and that the network cannot take."""
        with np.errstate(all="ignore"):
            x = (v - self.sub) * self.mul if self.mul else np.zeros_like(v)
            return ~np.isnan(v) & ~(np.isfinite(v) & (np.abs(x) <= F32_MAX))

    def fits(self, lo, hi):
        """Whether the column's global minimum and maximum are fine (x is linear in v, so
        they bound every value's x)."""
        if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
            return True  # all NA
        return not self.bad(np.array([lo, hi], dtype=np.float64)).any()


def refuse(frame, uses, summaries=None):
    """UserError (the same on every rank) for a value of `uses` the network cannot take,
    naming the frame's file, the column and the row.  `summaries` ({name:
    ColumnSummary}, global): only columns whose minimum or maximum is bad are scanned;
    without them, a rank does not scan a column whose chunk encodings bound its values
    within what the network takes.  Collective over the frame's ranks."""
    if summaries is not None:
        uses = [u for u in uses if not u.fits(summaries[u.name].min, summaries[u.name].max)]
        if not uses:
            return
    comm = None if frame.replicated else frame.comm
    rank, _ = rank_and_size(comm)
    mine = None
    for j, use in enumerate(uses):
        if summaries is None and _fine_by_encoding(frame, use):
            continue
        mine = _culprit(use, use.values(), j, rank)
        if mine is not None:
            break
    found = [hit for hit in allgather_obj(comm, mine) if hit is not None]
    if not found:
        if summaries is not None:  # the summary's extremes overflowed, no single value did
            raise UserError(f"{_where(frame, uses[0], None)}: its values are too large to be "
                            "standardised (their mean or sd overflows)")
        return
    j, kind, _, r, i, value = min(found)
    row = sum(frame.rank_rows[:r]) + i + 1 if _rows_in_order(frame) else None
    raise UserError(_message(frame, uses[j], row, value))


def _fine_by_encoding(frame, use):
    """Whether this rank's values of `use` are fine without decoding them: every chunk's
    encoding bounds its values (integers, bits, constants: Column.bounds) and the bounds
    fit.  Local: each rank skips only its own scan, the culprits are still gathered."""
    try:
        bounds = frame.column(use.name).bounds()
    except KeyError:
        return False
    if bounds is None:
        return False
    lo, hi = bounds
    return lo > hi or use.fits(lo, hi)   # (lo > hi: every value NA)


def _culprit(use, v, j, rank):
    """This rank's culprit in column `use` (values v), ordered so that min() over the ranks
    picks the global one: (j, 0, 0, rank, row, value) for the first Inf, else (j, 1, -|v|,
    rank, row, value) for the largest value that overflows (when the column's mean or sd
    overflowed, every row does: the largest is the cause)."""
    bad = use.bad(v)
    if not bad.any():
        return None
    inf = bad & np.isinf(v)
    if inf.any():
        i = int(np.argmax(inf))
        return (j, 0, 0.0, rank, i, float(v[i]))
    i = int(np.argmax(np.where(bad, np.abs(v), -1.0)))
    return (j, 1, -abs(float(v[i])), rank, i, float(v[i]))


def _rows_in_order(frame):
    """Whether global row numbers are file order (not with a compressed file that several
    ranks read block by block in turn)."""
    _, size = rank_and_size(None if frame.replicated else frame.comm)
    return size == 1 or bool((frame.ingest or {}).get("file_order", True))


def _where(frame, use, row):
    text = f"{getattr(frame, 'source', None) or 'data'}: column {use.name!r}"
    if use.role != "input":
        text += f" ({use.role})"
    return text + (f", data row {row:,}" if row is not None else "")


def _message(frame, use, row, value):
    where = _where(frame, use, row)
    if not math.isfinite(value):
        return (f"{where}: {value} is not a finite number: the network cannot take it (write NA for a "
                "missing value)")
    how = ": standardising the column overflows" if (use.sub, use.mul) != (0.0, 1.0) else " for"
    return f"{where}: {value:.6g} is too large{how} the network's 32-bit floats (at most {F32_MAX:.4g})"
