"""Frame: the user-facing table of a rank's encoded columns, distributed or replicated.

A distributed frame (replicate=False) holds a disjoint part of the rows on each rank; the
global row order is rank 0's rows, then rank 1's, and so on (file order, except for a
single compressed file read by several ranks, where each rank holds every size-th block).
A replicated frame holds every row on every rank.  Methods marked *collective* must be
called by every rank of the communicator, in the same order.
"""
import numpy as np

from h2odl_mpi.data.frame import readers
from h2odl_mpi.collectives import allgather_obj, allreduce, rank_and_size
from h2odl_mpi.data.frame.column import CATEGORICAL
from h2odl_mpi.data.frame.summary import summarize
from h2odl_mpi.splitmix import GOLDEN, splitmix64



class Frame:
    """Columns of encoded chunks; this rank's rows of a distributed or replicated table."""

    def __init__(self, columns, comm=None, replicated=False):
        """Wrap this rank's Columns (collective: agrees on the global row count and size)."""
        self.ingest = getattr(columns, "ingest", None)   # this rank's read: blocks, sizes
        self._columns = list(columns)
        self._by_name = {c.name: c for c in self._columns}
        self.comm = comm
        self.replicated = bool(replicated)
        self._data_comm = None if replicated else comm
        rows = {c.n_rows for c in self._columns}
        if len(rows) > 1:
            raise ValueError(f"columns hold different numbers of rows: {sorted(rows)}")
        self.n_local_rows = rows.pop() if rows else 0
        self.local_compressed_bytes = sum(c.nbytes for c in self._columns)
        per_rank = allgather_obj(self._data_comm, (self.n_local_rows, self.local_compressed_bytes))
        self.rank_rows = [r for r, _ in per_rank]
        self.n_rows = sum(self.rank_rows)
        self.compressed_bytes = sum(b for _, b in per_rank)
        rank, _ = rank_and_size(self._data_comm)
        self.first_row = sum(self.rank_rows[:rank])
        self.source = None          # the path it was read from (set by the readers), for messages
        self._summary = None

    # ---------------------------------------------------------------------- constructors
    @classmethod
    def read(cls, path, comm=None, replicate=False, format=None, **options):
        """Read CSV, SVMLight or Parquet, chosen by `format` or detected (collective).

        `path`: a file, directory, glob, zip archive or list of them; gzip/bz2 are
        recognised by their magic bytes.  `replicate`: every rank holds every row; else
        each rank reads and holds only its share.  Options are those of from_csv,
        from_svmlight or from_parquet; every format takes H2O-3's `na_strings` and
        `col_types` (parse_options.py).
        """
        columns = readers.read_columns(path, comm, replicate, format, **options)
        return cls(columns, comm, replicate)._from(path)

    @classmethod
    def from_csv(cls, path, comm=None, replicate=False, sep=None, header=None,
                 na_strings=None, col_types=None, default_na_strings=readers.NA_STRINGS,
                 quote_char='"', quoted_newlines=False,
                 chunk_rows=readers.DEFAULT_CHUNK_ROWS, max_levels=readers.DEFAULT_MAX_LEVELS,
                 block_bytes=None, use_threads=None, memory_pool=None):
        """Read CSV text (collective).

        sep: one character, or None to detect.  header: True/False, or None to detect.
        na_strings: H2O-3's, more values read as NA: a list (every column), a list of
        lists (one per column) or {column: strings}.  col_types: H2O-3's, a list of types
        (one per column, None: detect) or {column: type}; "numeric" (text in it is NA, as
        in H2O-3) or "enum".  default_na_strings: the values NA without being named (an
        empty field among them; blanks around fields follow H2O-3).  quoted_newlines:
        quoted values may contain newlines (the input is then streamed, not byte-split).
        chunk_rows: rows per chunk at most.  max_levels: the most categorical levels a
        column may have.  block_bytes: text parsed at a time (default: about 2**20
        values).  use_threads: let pyarrow use threads (default: only with one rank).
        """
        inputs = readers.resolve(path, comm)
        columns = readers.read_csv(inputs, comm, replicate, sep=sep, header=header,
                                   na_strings=na_strings, col_types=col_types,
                                   default_na_strings=default_na_strings, quote_char=quote_char,
                                   quoted_newlines=quoted_newlines, block_bytes=block_bytes,
                                   chunk_rows=chunk_rows, max_levels=max_levels,
                                   use_threads=use_threads, memory_pool=memory_pool)
        return cls(columns, comm, replicate)._from(path)

    @classmethod
    def from_svmlight(cls, path, comm=None, replicate=False, chunk_rows=readers.DEFAULT_CHUNK_ROWS,
                      na_strings=None, col_types=None):
        """Read SVMLight text: column 'target', then C<i> per feature index i (collective).
        Numbers only: na_strings match nothing, col_types is refused."""
        inputs = readers.resolve(path, comm)
        return cls(readers.read_svmlight(inputs, comm, replicate, chunk_rows=chunk_rows,
                                         na_strings=na_strings, col_types=col_types),
                   comm, replicate)._from(path)

    @classmethod
    def from_parquet(cls, path, comm=None, replicate=False, chunk_rows=readers.DEFAULT_CHUNK_ROWS,
                     max_levels=readers.DEFAULT_MAX_LEVELS, na_strings=None, col_types=None):
        """Read Parquet files, sharing row groups among ranks (collective); na_strings apply
        to text columns, col_types turn numbers into levels or text into numbers."""
        inputs = readers.resolve(path, comm)
        return cls(readers.read_parquet(inputs, comm, replicate, chunk_rows=chunk_rows,
                                        max_levels=max_levels, na_strings=na_strings,
                                        col_types=col_types), comm, replicate)._from(path)

    @classmethod
    def from_arrays(cls, data, comm=None, replicate=False, chunk_rows=readers.DEFAULT_CHUNK_ROWS):
        """Frame from {name: array}: this rank's rows; str/object arrays are categorical
        (None is NA), numbers numeric (NaN is NA).  Collective."""
        columns = readers.columns_from_arrays(data, comm, replicate, chunk_rows)
        return cls(columns, comm, replicate)

    @classmethod
    def from_pandas(cls, df, comm=None, replicate=False, chunk_rows=readers.DEFAULT_CHUNK_ROWS):
        """Frame from a pandas DataFrame of this rank's rows: numeric and boolean columns
        numeric (NA: NaN), any other column categorical, its values as text (NA: None).
        Collective."""
        import pandas as pd
        data = {}
        for name in df.columns:
            s = df[name]
            if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
                data[str(name)] = s.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                data[str(name)] = np.array([None if pd.isna(v) else str(v) for v in s], dtype=object)
        return cls.from_arrays(data, comm, replicate, chunk_rows)

    def _from(self, path):
        """Remember the path(s) read, which messages name."""
        self.source = ", ".join(map(str, path)) if isinstance(path, (list, tuple)) else str(path)
        return self

    # ------------------------------------------------------------------------- structure
    @property
    def names(self):
        """Column names, in order."""
        return [c.name for c in self._columns]

    @property
    def types(self):
        """Column kinds, in order: 'numeric' or 'categorical'."""
        return [c.kind for c in self._columns]

    @property
    def columns(self):
        """The Column objects (chunks, domain, decode), in order."""
        return list(self._columns)

    @property
    def data_comm(self):
        """The communicator the rows are spread over (None when replicated or without MPI)."""
        return self._data_comm

    @property
    def n_columns(self):
        return len(self._columns)

    @property
    def shape(self):
        """(global rows, columns)."""
        return self.n_rows, self.n_columns

    def column(self, name):
        """The Column called `name` (KeyError if none)."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no column {name!r}; columns are {self.names}") from None

    def domain(self, name):
        """Levels of a categorical column (code i is domain[i]); None for numeric columns."""
        return self.column(name).domain

    def decode(self, name, row_start=0, row_stop=None):
        """Local rows [row_start, row_stop) of one column as float64 (NaN: NA; codes for
        categorical columns)."""
        return self.column(name).decode(row_start, row_stop)

    # ------------------------------------------------------------------------ collective
    def summary(self):
        """Per-column ColumnSummary over all rows (collective; cached)."""
        if self._summary is None:
            self._summary = summarize(self._columns, self._data_comm)
        return self._summary

    def to_numpy(self, local=False):
        """Rows x columns float64 array (categorical as codes).  All global rows, gathered
        on every rank (collective; for small frames), or this rank's rows with local=True."""
        mine = np.column_stack([c.decode() for c in self._columns]) if self._columns \
            else np.empty((self.n_local_rows, 0))
        if local or self._data_comm is None:
            return mine
        return np.concatenate(allgather_obj(self._data_comm, mine), axis=0)

    def file_rows(self):
        """The inputs' row number of each of this rank's rows (int64), whatever the number
        of ranks: first_row + its local position, except where the ranks parsed every
        size-th block of one stream (one compressed file on several ranks), where it is
        worked out from every rank's blocks' rows (collective then, as every rank reads)."""
        ingest = self.ingest or {}
        mine = np.arange(self.n_local_rows, dtype=np.int64)
        if self._data_comm is None or ingest.get("file_order", True):
            return self.first_row + mine
        per_rank = allgather_obj(self._data_comm, [int(n) for n in ingest.get("block_rows", [])])
        if [sum(b) for b in per_rank] != self.rank_rows:
            raise ValueError("file_rows: the blocks' rows do not add up to the ranks' rows")
        size, rank = len(per_rank), rank_and_size(self._data_comm)[0]
        order = [(k * size + r, r, k) for r, blocks in enumerate(per_rank) for k in range(len(blocks))]
        offset, out = 0, []
        for _, r, k in sorted(order):
            n = per_rank[r][k]
            if r == rank:
                out.append(np.arange(offset, offset + n, dtype=np.int64))
            offset += n
        return np.concatenate(out) if out else mine

    def head(self, n=10):
        """The first n global rows as a pandas DataFrame, levels as text (collective)."""
        import pandas as pd
        take = max(0, min(self.n_local_rows, n - self.first_row))
        mine = {c.name: c.decode(0, take) for c in self._columns}
        parts = allgather_obj(self._data_comm, mine)
        data = {}
        for c in self._columns:
            values = np.concatenate([p[c.name] for p in parts]) if parts else np.empty(0)
            if c.kind == CATEGORICAL:
                domain = np.asarray(c.domain, dtype=object)
                codes = np.nan_to_num(values, nan=-1).astype(np.int64)
                data[c.name] = pd.Series(np.where(codes >= 0, domain[np.maximum(codes, 0)]
                                                  if len(domain) else None, None), dtype=object)
            else:
                data[c.name] = values
        return pd.DataFrame(data)

    def content_hash(self):
        """An order-insensitive 64-bit hash of all global rows (collective).

        Each row's values (NaN canonical, categorical codes included) are mixed in column
        order into one 64-bit word; the words are summed modulo 2**64 over rows and ranks.
        Equal frames give equal hashes however their rows are spread over ranks.
        """
        canonical_nan = np.uint64(0x7FF8000000000000)
        total = np.zeros(1, dtype=np.uint64)
        step = 1 << 16
        for start in range(0, self.n_local_rows, step):
            stop = min(start + step, self.n_local_rows)
            row_hash = np.zeros(stop - start, dtype=np.uint64)
            for j, c in enumerate(self._columns):
                values = c.decode(start, stop)
                bits = np.where(np.isnan(values), canonical_nan, values.view(np.uint64))
                row_hash = splitmix64(row_hash * GOLDEN + bits + np.uint64(j + 1))
            np.add(total, row_hash.sum(dtype=np.uint64, keepdims=True), out=total)
        return int(allreduce(self._data_comm, total, "sum")[0])

    def __repr__(self):
        mode = "replicated" if self.replicated else "distributed"
        _, size = rank_and_size(self.comm)
        return (f"Frame({self.n_rows} rows x {self.n_columns} columns, {mode} over {size} "
                f"rank(s), {self.n_local_rows} local rows, {self.compressed_bytes} bytes)")
