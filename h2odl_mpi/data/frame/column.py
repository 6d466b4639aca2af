"""A column of a rank's frame: its name, kind, categorical domain and encoded chunks.

Rows of a column are the concatenation of its chunks.  `decode` gives any row range as
float64 (NaN for NA; categorical columns give level codes into `domain`).  For a C decoder,
`descriptor_table()` gives every chunk's 40-byte descriptor in one structured array and
`row_offsets` where each chunk starts; the buffers are `chunk(i).buffers`.
"""
from collections import Counter

import numpy as np

from h2odl_mpi.data.frame.encoding import DESCRIPTOR_DTYPE, Chunk, Encoding, encode, encode_rows

SLAB_VALUES = 1 << 17    # values decoded at a time when merging chunks of many columns
NUMERIC = "numeric"
CATEGORICAL = "categorical"
UNDECIDED = "undecided"   # while ingesting: only NA seen so far, either kind fits


class Column:
    """One column's local rows, held as a list of encoded chunks."""

    def __init__(self, name, kind, chunks, domain=None):
        if kind not in (NUMERIC, CATEGORICAL):
            raise ValueError(f"column kind must be {NUMERIC!r} or {CATEGORICAL!r}, not {kind!r}")
        self.name = name
        self.kind = kind
        self.domain = list(domain) if domain is not None else ([] if kind == CATEGORICAL else None)
        self.chunks = list(chunks)
        self.row_offsets = np.zeros(len(self.chunks) + 1, dtype=np.int64)
        np.cumsum([c.n_rows for c in self.chunks], out=self.row_offsets[1:])

    @property
    def n_rows(self):
        """Rows held on this rank."""
        return int(self.row_offsets[-1])

    @property
    def n_chunks(self):
        return len(self.chunks)

    @property
    def nbytes(self):
        """Compressed bytes of this rank's chunks (buffers plus descriptors)."""
        return sum(c.nbytes for c in self.chunks)

    def chunk(self, i):
        """The i-th chunk (descriptor fields and buffers); its rows start at row_offsets[i]."""
        return self.chunks[i]

    def descriptor_table(self):
        """All chunk descriptors as one contiguous DESCRIPTOR_DTYPE array (C struct layout)."""
        table = np.zeros(len(self.chunks), dtype=DESCRIPTOR_DTYPE)
        for i, c in enumerate(self.chunks):
            table[i] = c.descriptor()
        return table

    def bounds(self):
        """(lo, hi) enclosing this rank's non-NA values, from the chunk descriptors alone
        (Chunk.bounds); None where a chunk's values can only be known by decoding it."""
        lo, hi = np.inf, -np.inf
        for c in self.chunks:
            b = c.bounds()
            if b is None:
                return None
            lo, hi = min(lo, b[0]), max(hi, b[1])
        return (lo, hi)

    def encoding_counts(self):
        """Number of local chunks per representation label ('int8', 'masked:int8', ...)."""
        return Counter(c.label for c in self.chunks)

    def decode(self, row_start=0, row_stop=None):
        """Local rows [row_start, row_stop) as float64; NaN is NA."""
        row_stop = self.n_rows if row_stop is None else row_stop
        if not 0 <= row_start <= row_stop <= self.n_rows:
            raise IndexError(f"rows [{row_start}, {row_stop}) outside column {self.name!r} "
                             f"of {self.n_rows} local rows")
        out = np.empty(row_stop - row_start, dtype=np.float64)
        first = int(np.searchsorted(self.row_offsets, row_start, side="right")) - 1
        i = max(first, 0)
        while i < len(self.chunks) and self.row_offsets[i] < row_stop:
            lo = max(row_start, int(self.row_offsets[i]))
            hi = min(row_stop, int(self.row_offsets[i + 1]))
            if hi > lo:
                base = int(self.row_offsets[i])
                self.chunks[i].decode(lo - base, hi - base, out=out[lo - row_start:hi - row_start])
            i += 1
        return out

    def __repr__(self):
        return (f"Column({self.name!r}, {self.kind}, rows={self.n_rows}, "
                f"chunks={self.n_chunks}, bytes={self.nbytes})")


def _groups(row_counts, target_rows, small_rows):
    """Runs of consecutive chunk indices to merge: chunks under `small_rows` rows join
    their small neighbours up to `target_rows` rows; bigger chunks stay alone."""
    groups, current, rows, current_small = [], [], 0, False
    for i, count in enumerate(row_counts):
        small = count < small_rows
        joins = small and current and current_small and rows + count <= target_rows
        if current and not joins:
            groups.append(current)
            current, rows = [], 0
        if not current:
            current_small = small
        current.append(i)
        rows += count
    if current:
        groups.append(current)
    return groups


def compact_columns(chunk_lists, target_rows, small_rows=None, transforms=None):
    """compact_chunks for many columns; columns cut into the same chunk rows (all columns of
    a CSV or Parquet read) are merged together, a slab of columns at a time, so the
    encoder's statistics are vectorised over columns.  `transforms[j]`, if given, maps
    column j's decoded values (local to global categorical codes) and forces all of its
    chunks to be re-encoded."""
    transforms = transforms or [None] * len(chunk_lists)
    by_layout = {}
    for j, chunks in enumerate(chunk_lists):
        by_layout.setdefault(tuple(c.n_rows for c in chunks), []).append(j)
    result = [None] * len(chunk_lists)
    for layout, members in by_layout.items():
        for j in members:
            result[j] = []
        for group in _groups(layout, target_rows, small_rows or max(1, target_rows // 64)):
            rows = sum(layout[i] for i in group)
            if len(group) == 1 or rows == 0:
                redo = [j for j in members if transforms[j] is not None] if rows else []
                for j in members:
                    if transforms[j] is None or not rows:
                        result[j].extend(chunk_lists[j][i] for i in group)
            else:
                redo = members
            slab = max(1, SLAB_VALUES // max(rows, 1))
            for s in range(0, len(redo), slab):
                columns = redo[s:s + slab]
                block = np.empty((len(columns), rows), dtype=np.float64)
                for position, j in enumerate(columns):
                    row = 0
                    for i in group:
                        chunk = chunk_lists[j][i]
                        chunk.decode(out=block[position, row:row + chunk.n_rows])
                        row += chunk.n_rows
                    if transforms[j] is not None:
                        block[position] = transforms[j](block[position])
                for j, chunk in zip(columns, encode_rows(block)):
                    result[j].append(chunk)
    return result


def compact_chunks(chunks, target_rows, transform=None, small_rows=None):
    """Merge runs of consecutive small chunks (under `small_rows` rows, default
    target_rows / 64) into chunks of at most `target_rows` rows.

    `transform`, if given, maps decoded values (e.g. local to global categorical codes) and
    forces every chunk to be re-encoded.  Works one merged chunk at a time, so the extra
    memory is one chunk's float64 values.
    """
    merged = []
    small_rows = small_rows or max(1, target_rows // 64)

    def flush(group):
        if not group:
            return
        if len(group) == 1 and transform is None:
            merged.append(group[0])
            return
        if transform is None and _same_constant(group):
            merged.append(Chunk(Encoding.CONST, sum(c.n_rows for c in group), value=group[0].value))
            return
        values = np.concatenate([c.decode() for c in group])
        merged.append(encode(transform(values) if transform is not None else values))

    for group in _groups([c.n_rows for c in chunks], target_rows, small_rows):
        flush([chunks[i] for i in group])
    return merged


def _same_constant(chunks):
    first = np.float64(chunks[0].value).view(np.uint64)
    return all(c.encoding == Encoding.CONST and np.float64(c.value).view(np.uint64) == first
               for c in chunks)
