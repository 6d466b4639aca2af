"""Accumulate a rank's rows into encoded chunks, block by block, as the readers deliver them.

A block is encoded as soon as it arrives, so a rank never holds more than one block of
uncompressed values.  Numeric columns are encoded in slabs of columns (vectorised statistics
over many columns at once); categorical columns are mapped to rank-local level codes, in
order of first appearance, and encoded like integers.  The local codes are replaced by
global ones once the ranks agree on the domains (see assemble.py).  An undecided column
(only NA so far) arrives as text; the first block holding a value decides its kind: numeric
if every value is a number, else categorical.  Until then its chunks are all-NA constants,
valid for either kind, which is what lets `adopt` change such a column's kind in place.
"""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from h2odl_mpi.errors import UserError
from h2odl_mpi.frame.column import CATEGORICAL, NUMERIC, UNDECIDED
from h2odl_mpi.frame.encoding import Chunk, Encoding, encode, encode_block

SLAB_VALUES = 1 << 16     # values per slab of numeric columns encoded together


def level_text(raw):
    """A level's text: UTF-8, or Latin-1 for bytes that are not UTF-8 (never fails)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


class ChunkBuilder:
    """Per-column chunk lists and local categorical levels for one rank."""

    def __init__(self, names, kinds, max_levels=None):
        self.names = list(names)
        self.kinds = list(kinds)
        self.max_levels = max_levels
        self.chunks = [[] for _ in self.names]
        self.levels = [[] for _ in self.kinds]
        self._level_codes = [{} for _ in self.kinds]
        self.n_rows = 0

    # ------------------------------------------------------------------- dense (CSV, Parquet)
    def add_table(self, table):
        """Append a pyarrow Table whose columns match `names`: numeric columns as float64,
        categorical ones as dictionary or string arrays."""
        n = table.num_rows
        if n == 0:
            return
        columns = {j: table.column(j) for j in range(len(self.kinds))}
        for j, kind in enumerate(self.kinds):
            if kind == UNDECIDED:
                columns[j] = self._decide(j, columns[j])
        numeric = [j for j, k in enumerate(self.kinds) if k == NUMERIC]
        slab = max(1, SLAB_VALUES // n)
        for s in range(0, len(numeric), slab):
            group = numeric[s:s + slab]
            block = np.empty((n, len(group)), dtype=np.float64, order="F")
            for i, j in enumerate(group):
                block[:, i] = columns[j].to_numpy(zero_copy_only=False)
            for j, chunk in zip(group, encode_block(block)):
                self.chunks[j].append(chunk)
        for j, kind in enumerate(self.kinds):
            if kind == CATEGORICAL:
                self.chunks[j].append(encode(self._local_codes(j, columns[j])))
            elif kind == UNDECIDED:
                self.chunks[j].append(Chunk(Encoding.CONST, n, value=np.nan))
        self.n_rows += n

    def _decide(self, j, column):
        """Kind of an undecided column from a block of its text; the column, converted."""
        if column.null_count == len(column):
            return column
        try:
            values = pa.chunked_array(
                [pc.take(pc.cast(pc.utf8_trim_whitespace(pc.cast(a.dictionary, pa.string())),
                                  pa.float64()), a.indices)
                 for a in column.chunks], type=pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            self.kinds[j] = CATEGORICAL
            return column
        self.kinds[j] = NUMERIC
        return values

    def adopt(self, j, kind):
        """Make column j `kind` in place if it holds only NA so far; False if it cannot."""
        if self.kinds[j] == kind:
            return True
        if all(c.encoding == Encoding.CONST and np.isnan(c.value) for c in self.chunks[j]):
            self.kinds[j] = kind
            return True
        return False

    def _local_codes(self, j, chunked):
        codes = np.empty(len(chunked), dtype=np.float64)
        position = 0
        index, levels = self._level_codes[j], self.levels[j]
        for array in chunked.chunks:
            if not pa.types.is_dictionary(array.type):
                array = array.dictionary_encode()
            mapping = np.empty(len(array.dictionary) + 1, dtype=np.float64)
            for i, level in enumerate(array.dictionary.to_pylist()):
                if isinstance(level, bytes):
                    level = level_text(level)
                code = index.get(level)
                if code is None:
                    code = index[level] = len(levels)
                    levels.append(level)
                mapping[i] = code
            mapping[-1] = np.nan                       # position -1: NA
            positions = array.indices.fill_null(-1).to_numpy(zero_copy_only=False)
            codes[position:position + len(array)] = mapping[positions]
            position += len(array)
        if self.max_levels is not None and len(levels) > self.max_levels:
            raise UserError(f"column {self.names[j]!r} has more than {self.max_levels} "
                            f"categorical levels (raise max_levels to read it)")
        return codes

    # --------------------------------------------------------------------- sparse (SVMLight)
    def add_columns(self, n, columns):
        """Append `n` rows given as {column index: float64 values}; absent columns are 0.0.

        New column indices may appear at any time; earlier rows of such a column are 0.0.
        """
        for j in sorted(columns):
            self._ensure_column(j)
        for j, values in columns.items():
            self.chunks[j].append(encode(values))
        for j in range(len(self.chunks)):
            if j not in columns:
                self.chunks[j].append(Chunk(Encoding.CONST, n, value=0.0))
        self.n_rows += n

    def _ensure_column(self, j):
        while len(self.chunks) <= j:
            self.names.append(None)
            self.kinds.append(NUMERIC)
            self.levels.append(None)
            self._level_codes.append(None)
            self.chunks.append([Chunk(Encoding.CONST, self.n_rows, value=0.0)] if self.n_rows else [])

    def pad_columns(self, width):
        """Add all-zero columns up to `width` columns (sparse input seen on other ranks)."""
        if width > len(self.chunks):
            self._ensure_column(width - 1)
