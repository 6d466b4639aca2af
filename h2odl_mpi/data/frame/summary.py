"""Global per-column summaries (H2O's frame summary), combined over ranks with Allreduce.

Counts, NA counts, zero counts, minimum, maximum, level counts and byte sizes are exact.
The mean is the global sum over the global count; the standard deviation is the sample sd
(n - 1 in the denominator, as H2O) from a second pass over the data around the global mean,
so it does not suffer from the cancellation of a one-pass sum of squares; the values pass 1
decoded are kept for pass 2 up to KEPT_BYTES (the same values: the same bits).  Sums are added
in a different order with a different number of ranks, so mean and sd may differ in the
last bits between runs on different rank counts.
"""
import math
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from h2odl_mpi.collectives import allgather_obj, allreduce
from h2odl_mpi.data.frame.column import CATEGORICAL

SHOWN_LEVELS = 10
# the decoded values pass 1 keeps for pass 2, at most (beyond them pass 2 decodes again)
KEPT_BYTES = 64 << 20


@dataclass
class ColumnSummary:
    """One column's global summary; `type` is H2O's: 'int', 'real' or 'enum'."""
    name: str
    type: str
    rows: int
    na_count: int
    mean: float = None
    sd: float = None
    min: float = None
    max: float = None
    zero_count: int = None
    cardinality: int = None
    levels: list = field(default_factory=list)        # first levels of the domain
    level_counts: list = field(default_factory=list)  # rows holding each of them
    encodings: dict = field(default_factory=dict)     # chunk label -> number of chunks
    compressed_bytes: int = 0
    float64_bytes: int = 0

    def to_dict(self):
        """A JSON-ready dict (NaN as None, infinities as the strings 'inf' / '-inf')."""
        return {k: _json_number(v) for k, v in asdict(self).items()}


def _json_number(value):
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value


def summarize(columns, comm):
    """ColumnSummary of each column over all ranks of `comm` (None: this rank only)."""
    k = len(columns)
    # Pass 1: counts, sums, extremes.  Layout per column: rows, na, zeros, non-integral.
    counts = np.zeros((k, 4), dtype=np.int64)
    sums = np.zeros(k, dtype=np.float64)
    lows = np.full(k, np.inf)
    highs = np.full(k, -np.inf)
    kept, kept_bytes = {}, 0   # (column, chunk) -> its present values, for pass 2
    for j, col in enumerate(columns):
        counts[j, 0] = col.n_rows
        for chunk_index in range(col.n_chunks):
            values = col.chunk(chunk_index).decode()
            present = values[~np.isnan(values)]
            if col.kind != CATEGORICAL and kept_bytes + present.nbytes <= KEPT_BYTES:
                kept[j, chunk_index] = present
                kept_bytes += present.nbytes
            counts[j, 1] += values.size - present.size
            counts[j, 2] += np.count_nonzero(present == 0)
            if present.size:
                with np.errstate(over="ignore", invalid="ignore"):  # huge values: refused later (finite.py)
                    sums[j] += present.sum()
                lows[j] = min(lows[j], present.min())
                highs[j] = max(highs[j], present.max())
                with np.errstate(invalid="ignore"):
                    counts[j, 3] += np.count_nonzero(np.rint(present) != present)
    counts = allreduce(comm, counts, "sum")
    sums = allreduce(comm, sums, "sum")
    lows = allreduce(comm, lows, "min")
    highs = allreduce(comm, highs, "max")
    present_counts = counts[:, 0] - counts[:, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(present_counts > 0, sums / np.maximum(present_counts, 1), np.nan)

    # Pass 2: squared deviations from the global mean.
    squares = np.zeros(k, dtype=np.float64)
    for j, col in enumerate(columns):
        if col.kind == CATEGORICAL or not np.isfinite(means[j]):
            continue
        for chunk_index in range(col.n_chunks):
            present = kept.get((j, chunk_index))
            if present is None:
                values = col.chunk(chunk_index).decode()
                present = values[~np.isnan(values)]
            deviations = present - means[j]
            with np.errstate(over="ignore", invalid="ignore"):
                squares[j] += np.dot(deviations, deviations)
    squares = allreduce(comm, squares, "sum")

    counts_by_column = level_counts(columns, comm)
    encodings = allgather_obj(comm, [dict(col.encoding_counts()) for col in columns])
    nbytes = allreduce(comm, np.array([col.nbytes for col in columns], dtype=np.int64), "sum")

    summaries = []
    for j, col in enumerate(columns):
        rows, na = int(counts[j, 0]), int(counts[j, 1])
        merged = Counter()
        for rank_encodings in encodings:
            merged.update(rank_encodings[j])
        s = ColumnSummary(col.name, "enum" if col.kind == CATEGORICAL else
                          ("int" if counts[j, 3] == 0 else "real"), rows, na,
                          encodings=dict(sorted(merged.items())), compressed_bytes=int(nbytes[j]),
                          float64_bytes=8 * rows)
        if col.kind == CATEGORICAL:
            s.cardinality = len(col.domain)
            s.levels = list(col.domain[:SHOWN_LEVELS])
            s.level_counts = [int(c) for c in counts_by_column[j][:SHOWN_LEVELS]]
        else:
            n = rows - na
            s.mean = float(means[j])
            s.sd = float(math.sqrt(squares[j] / (n - 1))) if n > 1 else float("nan")
            s.min = float(lows[j]) if n else float("nan")
            s.max = float(highs[j]) if n else float("nan")
            s.zero_count = int(counts[j, 2])
        summaries.append(s)
    return summaries


def level_counts(columns, comm):
    """{column index: rows per level (int64)} for the categorical ones of `columns`, summed
    over the ranks of `comm` (collective; None: this rank only).  The summary's level counts
    and the data description's (preprocess) both come from here."""
    categorical = [j for j, c in enumerate(columns) if c.kind == CATEGORICAL]
    sizes = [len(columns[j].domain) for j in categorical]
    flat = np.zeros(sum(sizes), dtype=np.int64)
    offset = 0
    for j, size in zip(categorical, sizes):
        col = columns[j]
        for chunk_index in range(col.n_chunks):
            codes = col.chunk(chunk_index).decode()
            codes = codes[~np.isnan(codes)].astype(np.int64)
            flat[offset:offset + size] += np.bincount(codes, minlength=size)
        offset += size
    flat = allreduce(comm, flat, "sum")
    result, offset = {}, 0
    for j, size in zip(categorical, sizes):
        result[j] = flat[offset:offset + size]
        offset += size
    return result
