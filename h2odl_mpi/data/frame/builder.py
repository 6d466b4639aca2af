"""Accumulate a rank's rows into encoded chunks, block by block, as the readers deliver them.

A block is encoded as soon as it arrives, so a rank never holds more than one block of
uncompressed values.  Its columns are copied, a slab of columns at a time, into one (k, n)
float64 array (categorical columns as rank-local level codes), which `encode_rows` encodes
with vectorised statistics over all k columns; each Arrow column is released as soon as it
has been copied, so the parsed block and its float64 copy are never both held whole.
Categorical columns get rank-local level codes in order of first appearance, found with
Arrow's hash kernels (no Python work per value or per known level); the local codes are
replaced by global ones once the ranks agree on the domains (see assemble.py).  An undecided
column (only NA so far) arrives as text; the first block holding a value decides its kind:
numeric if every value is a number, else categorical.  Until then its chunks are all-NA
constants, valid for either kind, which is what lets `adopt` change such a column's kind in
place.
"""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from h2odl_mpi.errors import UserError
from h2odl_mpi.data.frame.column import CATEGORICAL, NUMERIC, UNDECIDED
from h2odl_mpi.data.frame.encoding import Chunk, Encoding, encode, encode_rows

SLAB_VALUES = 1 << 17     # values per slab of columns encoded together (1 MiB of float64)
WIDE_COLUMNS = 256


def level_text(raw):
    """A level's text: UTF-8, or Latin-1 for bytes that are not UTF-8 (never fails)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _level_texts(binary):
    """The levels of an Arrow binary array as text (level_text of each)."""
    try:
        return pc.cast(binary, pa.string()).to_pylist()   # all valid UTF-8: one kernel
    except pa.ArrowInvalid:
        return [level_text(level) for level in binary.to_pylist()]


def slab_columns(n_rows, n_columns, slab_values=SLAB_VALUES):
    """Columns per slab for blocks of `n_rows` rows.  Wide blocks (many columns, few rows)
    take slabs twice as large: the encoder's fixed cost per slab is then paid half as often,
    and their compressed size leaves room for the larger temporaries."""
    if n_columns >= WIDE_COLUMNS:
        slab_values *= 2
    return max(1, min(n_columns, slab_values // max(n_rows, 1)))


def copy_float64(chunked, out):
    """Copy a float64 (chunked) Arrow array into `out`, NaN where it is null: read from the
    chunks' buffers (Arrow's to_numpy imports pandas, a large part of the start-up)."""
    at = 0
    for chunk in getattr(chunked, "chunks", [chunked]):
        n = len(chunk)
        if n == 0:
            continue
        if chunk.type != pa.float64():   # (not what the parsers give: Arrow's own conversion)
            out[at:at + n] = chunk.to_numpy(zero_copy_only=False)
        else:
            validity, data = chunk.buffers()[:2]
            part = out[at:at + n]
            part[:] = np.frombuffer(data, dtype=np.float64, count=n, offset=8 * chunk.offset)
            if chunk.null_count:
                bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
                part[bits[chunk.offset:chunk.offset + n] == 0] = np.nan
        at += n


class ChunkBuilder:
    """Per-column chunk lists and local categorical levels for one rank."""

    def __init__(self, names, kinds, max_levels=None):
        self.names = list(names)
        self.kinds = list(kinds)
        self.max_levels = max_levels
        self.chunks = [[] for _ in self.names]
        self.levels = [[] for _ in self.kinds]
        self._known = [None for _ in self.kinds]   # levels seen so far, as an Arrow binary array
        self._valued = [False for _ in self.kinds]  # a value seen (not NA): the kind is kept
        self.n_rows = 0
        self.blocks = 0                            # blocks added, and the largest one's rows
        self.block_rows = []                       # each block's rows, in the order added
        self.max_block_rows = 0

    # ------------------------------------------------------------------- dense (CSV, Parquet)
    def add_table(self, table):
        """Append a pyarrow Table whose columns match `names`: numeric columns as float64,
        categorical ones as dictionary or string arrays.  The table's buffers are released
        column by column while it is encoded (the caller must hold no other reference)."""
        n = table.num_rows
        if n == 0:
            return
        columns = list(table.columns)
        del table
        for j, kind in enumerate(self.kinds):
            if kind == UNDECIDED:
                columns[j] = self._decide(j, columns[j])
        encoded = [j for j, k in enumerate(self.kinds) if k in (NUMERIC, CATEGORICAL)]
        per_slab = slab_columns(n, len(encoded))
        slab = np.empty((min(per_slab, len(encoded)), n), dtype=np.float64)
        for s in range(0, len(encoded), per_slab):
            group = encoded[s:s + per_slab]
            values = slab[:len(group)]
            for i, j in enumerate(group):
                if columns[j].null_count < n:      # (a NaN literal too: "NAN" is text elsewhere)
                    self._valued[j] = True
                if self.kinds[j] == NUMERIC:
                    copy_float64(columns[j], values[i])
                else:
                    self._local_codes(j, columns[j], values[i])
                columns[j] = None                  # release the parsed column
            for j, chunk in zip(group, encode_rows(values)):
                self.chunks[j].append(chunk)
        del slab
        for j, kind in enumerate(self.kinds):
            if kind == UNDECIDED:
                self.chunks[j].append(Chunk(Encoding.CONST, n, value=np.nan))
        self.n_rows += n
        self.blocks += 1
        self.block_rows.append(n)
        self.max_block_rows = max(self.max_block_rows, n)

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
        """Make column j `kind` in place if it holds only NA so far; False if it cannot (a
        NaN that was a value, such as "NAN" or "NaN " read as a number, is a level once the
        column is categorical: the column must be read again)."""
        if self.kinds[j] == kind:
            return True
        if not self._valued[j] and all(c.encoding == Encoding.CONST and np.isnan(c.value) for c in self.chunks[j]):
            self.kinds[j] = kind
            return True
        return False

    def _local_codes(self, j, chunked, out):
        """Write column j's rank-local level codes (NaN for NA) into `out`.

        Each Arrow chunk's dictionary is looked up in the levels seen so far (hash kernel);
        levels not seen yet get the next codes, in dictionary (first appearance) order.  An
        entry no row uses (a Parquet dictionary may hold some) is no level."""
        position = 0
        levels = self.levels[j]
        for array in chunked.chunks:
            if not pa.types.is_dictionary(array.type):
                array = array.dictionary_encode()
            dictionary = array.dictionary
            if not pa.types.is_binary(dictionary.type):
                dictionary = pc.cast(dictionary, pa.binary())
            known = self._known[j]
            if known is None:
                found = np.full(len(dictionary), -1, dtype=np.int64)
            else:
                found = pc.index_in(dictionary, value_set=known).to_numpy(zero_copy_only=False)
                found = np.where(np.isnan(found), -1, found).astype(np.int64) \
                    if found.dtype.kind == "f" else found.astype(np.int64)
            unused = found < 0   # (entries no row uses, as a Parquet dictionary may hold: no levels)
            unused[pc.unique(array.indices).drop_null().to_numpy(zero_copy_only=False)] = False
            new = np.flatnonzero((found < 0) & ~unused)
            if new.size:
                found[new] = len(levels) + np.arange(new.size)
                fresh = dictionary.take(pa.array(new))
                levels.extend(_level_texts(fresh))
                self._known[j] = fresh if known is None else pa.concat_arrays([known, fresh])
            codes = pc.take(pa.array(found.astype(np.float64)), array.indices)
            out[position:position + len(array)] = codes.to_numpy(zero_copy_only=False)
            position += len(array)
        if self.max_levels is not None and len(levels) > self.max_levels:
            raise UserError(f"column {self.names[j]!r} has more than {self.max_levels} "
                            f"categorical levels (raise max_levels to read it)")

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
        self.blocks += 1
        self.block_rows.append(n)
        self.max_block_rows = max(self.max_block_rows, n)

    def _ensure_column(self, j):
        while len(self.chunks) <= j:
            self.names.append(None)
            self.kinds.append(NUMERIC)
            self.levels.append(None)
            self._known.append(None)
            self._valued.append(True)
            self.chunks.append([Chunk(Encoding.CONST, self.n_rows, value=0.0)] if self.n_rows else [])

    def pad_columns(self, width):
        """Add all-zero columns up to `width` columns (sparse input seen on other ranks)."""
        if width > len(self.chunks):
            self._ensure_column(width - 1)
