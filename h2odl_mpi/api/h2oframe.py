"""h2o-py's H2OFrame over the column store: construction, structure, selection, assignment.

A H2OFrame wraps a column store Frame (`.frame`).  Every rank of the frame's communicator
runs the same calls; each works on its own rows (a distributed frame) or on all of them (a
replicated one), and nothing is gathered but what h2o-py hands back to Python
(`as_data_frame`, `getrow`, a single value `frame[i, j]`, printing).  Selections and derived
columns are new Frames whose columns are encoded in the store's compressed chunks.

    fr = h2o.import_file("data.csv")
    fr["y"] = fr["y"].asfactor(); fr[4] = fr[4].asfactor()
    big = fr[fr["x"] > 3]; fr["ratio"] = fr["a"] / fr["b"]; fr["x"][fr["x"] < 0] = 0
    train, test = fr.split_frame([0.8], seed=1)

Rows are named by their global index (rank 0's rows, then rank 1's, ...): row slices, `drop`
of rows, `runif` and `split_frame` depend on it and not on the number of ranks.  The
element-wise operators, math functions and reductions are in frame_ops (mixed in); what
h2o-py has and this frame has not raises H2OValueError naming it.
"""
import numpy as np

from h2odl_mpi.api import registry
from h2odl_mpi.api.frame_ops import FrameOps, h2o_type
from h2odl_mpi.api.python_data import columns_of_python, with_options
from h2odl_mpi.collectives import allgather_obj, rank_and_size
from h2odl_mpi.data.adapters import my_rows
from h2odl_mpi.data.frame import Frame
from h2odl_mpi.data.frame import derive
from h2odl_mpi.data.frame.column import CATEGORICAL
from h2odl_mpi.errors import EstimatorError, H2OValueError

STATE = {"comm": None}   # h2o.init's communicator: frames made from Python data are spread over it


class H2OFrame(FrameOps):
    """An H2O frame: a column store Frame with h2o-py's methods."""

    def __init__(self, python_obj=None, destination_frame=None, header=0, separator=",", column_names=None,
                 column_types=None, na_strings=None, skipped_columns=None):
        """h2o-py's constructor: a Frame, a list of rows (a flat list is one column), a dict
        of columns, a pandas DataFrame or a numpy array (columns C1, C2, ...).  Every rank
        passes the same data and keeps its share of the rows (on h2o.init's communicator).
        column_names, column_types and na_strings as import_file's col_names, col_types and
        na_strings, on the values in memory; header=1 takes the first row of a list as the
        names."""
        if skipped_columns:
            raise EstimatorError("H2OFrame: skipped_columns is not supported (select the columns instead)")
        if isinstance(python_obj, Frame):
            if column_names is not None or column_types is not None or na_strings is not None:
                raise EstimatorError("H2OFrame: column_names, column_types and na_strings apply to data being "
                                     "read; give them to h2o.import_file")
            self.frame = python_obj
        else:
            data = columns_of_python(python_obj, header)
            if column_names is not None or column_types is not None or na_strings is not None:
                data = with_options(data, column_names, column_types, na_strings)
            comm = STATE["comm"]
            n = len(next(iter(data.values()))) if data else 0
            mine = my_rows(n, comm, False)
            self.frame = Frame.from_arrays({k: v[mine] for k, v in data.items()}, comm)
        self.frame_id = destination_frame or self.frame.source or f"py_{id(self.frame):x}"
        in_order = (self.frame.ingest or {}).get("file_order", True)
        self.ids = None if in_order else self.frame.file_rows()   # see row_ids
        if destination_frame is not None or not isinstance(python_obj, Frame):
            registry.keep_frame(self)

    @staticmethod
    def from_python(python_obj, destination_frame=None, header=0, separator=",", column_names=None,
                    column_types=None, na_strings=None, skipped_columns=None):
        """h2o-py's H2OFrame.from_python: the constructor's frame of Python data."""
        return H2OFrame(python_obj, destination_frame, header, separator, column_names, column_types, na_strings,
                        skipped_columns)

    def fresh(self, frame):
        """A new H2OFrame of `frame` (the result of an operation on this one)."""
        out = H2OFrame(frame)
        out.frame_id = f"py_{id(frame):x}"
        return out

    def with_columns(self, columns, keep=None):
        """A new H2OFrame of `columns`: this frame's rows on the same ranks, or those of them
        `keep` picks (a mask or local positions)."""
        f = self.frame
        frame = Frame(columns, f.comm, f.replicated)
        frame.source = f.source
        out = self.fresh(frame)
        out.ids = self.ids if keep is None else self.row_ids()[keep]
        return out

    def row_ids(self):
        """Each local row's index in the data it came from (the file's row order, whatever
        the number of ranks): what runif and split_frame hash.  None in `ids` stands for the
        frame's own global positions (a frame read in file order, or made from Python data);
        a frame of some rows of another keeps their ids."""
        if self.ids is None:
            return self.frame.first_row + np.arange(self.frame.n_local_rows, dtype=np.int64)
        return self.ids

    # ---- structure -------------------------------------------------------------------
    @property
    def names(self):
        return list(self.frame.names)

    @names.setter
    def names(self, value):
        self.set_names(value)

    columns = col_names = names

    @property
    def nrow(self):
        return self.frame.n_rows

    nrows = nrow

    @property
    def ncol(self):
        return self.frame.n_columns

    ncols = ncol

    @property
    def shape(self):
        return self.frame.shape

    @property
    def dim(self):
        return [self.nrow, self.ncol]

    def __len__(self):
        return self.frame.n_rows

    @property
    def types(self):
        """{column: "real" or "enum"} (h2o-py's types)."""
        return {c.name: h2o_type(c) for c in self.frame.columns}

    @property
    def dtypes(self):
        return [self.types[n] for n in self.names]

    def set_names(self, names):
        """Rename every column (a list of one name a column); returns self, as h2o-py."""
        names = list(names)
        if len(names) != self.ncol or not all(isinstance(n, str) for n in names):
            raise H2OValueError(f"set_names: expected {self.ncol} names (strings), got {names!r}")
        if len(set(names)) != len(names):
            raise H2OValueError(f"set_names: the name {next(n for n in names if names.count(n) > 1)!r} repeats")
        self.frame = self.with_columns([derive.renamed(c, n) for c, n in zip(self.frame.columns, names)]).frame
        return self

    def set_name(self, col=None, name=None):
        """Rename one column (by index or name); returns self."""
        names = self.names
        names[self.column_index(col, "set_name")] = name
        return self.set_names(names)

    def column_index(self, col, what):
        """The 0-based index of column `col` (a name or an index, negative from the end)."""
        if isinstance(col, (int, np.integer)) and not isinstance(col, bool):
            if not -self.ncol <= col < self.ncol:
                raise H2OValueError(f"{what}: column index {col} is out of range (the frame has {self.ncol} columns)")
            return int(col) % self.ncol
        if isinstance(col, str):
            if col not in self.frame.names:
                raise H2OValueError(f"{what}: no column {col!r} in the frame (columns: {', '.join(self.names[:10])}"
                                    f"{' ...' if self.ncol > 10 else ''})")
            return self.frame.names.index(col)
        raise H2OValueError(f"{what}: a column is named by a string or an int, got {type(col).__name__}")

    def column_indices(self, cols, what):
        """Indices of a column selector: a name, an index, a list of them or a slice."""
        if isinstance(cols, slice):
            return list(range(self.ncol))[cols]
        if isinstance(cols, (list, tuple)):
            return [self.column_index(c, what) for c in cols]
        return [self.column_index(cols, what)]

    # ---- selection -------------------------------------------------------------------
    def __getitem__(self, item):
        """h2o-py's selection: columns by name, index, list or slice; rows by a one-column
        boolean frame; frame[rows, cols] with rows a slice, an index, a list of ascending
        indices or a boolean frame (a single value for frame[int, column])."""
        if isinstance(item, tuple):
            if len(item) != 2:
                raise H2OValueError(f"frame[...]: expected frame[rows, columns], got {len(item)} selectors")
            rows, cols = item
            if isinstance(rows, (int, np.integer)) and isinstance(cols, (int, np.integer, str)) \
                    and not isinstance(rows, bool):
                return self.value_at(int(rows), cols)
            return self.select_columns(cols).select_rows(rows)
        if isinstance(item, H2OFrame):
            return self.select_rows(item)
        if isinstance(item, (bool, np.bool_)):
            raise H2OValueError(f"frame[{item}]: a row filter is a boolean column (frame[frame['x'] == 1]), "
                                f"not a Python bool")
        return self.select_columns(item)

    def select_columns(self, cols):
        if isinstance(cols, slice) and cols == slice(None):
            return self
        columns = self.frame.columns
        return self.with_columns([columns[j] for j in self.column_indices(cols, "frame[...]")])

    def select_rows(self, rows):
        """The rows picked by a boolean frame, a slice, an index or a list of indices."""
        if isinstance(rows, slice) and rows == slice(None):
            return self
        if isinstance(rows, H2OFrame):
            keep = self.mask_of(rows, "row filter")
        else:
            keep = self.local_rows(self.global_positions(rows, "frame[rows, ...]"))
        return self.with_columns([derive.taken(c, keep) for c in self.frame.columns], keep)

    def mask_of(self, condition, what):
        """This rank's rows where a one-column frame holds a nonzero, non-NA value."""
        if condition.ncol != 1:
            raise H2OValueError(f"{what}: the condition must be one column, it has {condition.ncol}")
        self.check_aligned(condition, what)
        column = condition.frame.columns[0]
        if column.kind == CATEGORICAL:
            raise H2OValueError(f"{what}: column {column.name!r} is categorical; a condition is a boolean column "
                                f"(frame['x'] == 'level')")
        values = column.decode()
        return ~np.isnan(values) & (values != 0)

    def check_aligned(self, other, what):
        """H2OValueError unless `other` holds the same rows on the same ranks as this frame."""
        a, b = self.frame, other.frame
        if a.replicated != b.replicated or a.rank_rows != b.rank_rows or a.comm is not b.comm:
            raise H2OValueError(f"{what}: the frames' rows differ ({b.n_rows:,} rows against {a.n_rows:,}, or "
                                f"spread differently over the ranks); combine frames derived from the same one")

    def global_positions(self, rows, what):
        """Global row indices of a slice, an index or a list of ascending indices."""
        n = self.nrow
        if isinstance(rows, slice):
            return np.arange(n)[rows]
        if isinstance(rows, (int, np.integer)) and not isinstance(rows, bool):
            rows = [int(rows)]
        if isinstance(rows, (list, tuple, np.ndarray)) and all(isinstance(r, (int, np.integer)) for r in rows):
            index = np.array(rows, dtype=np.int64)
            if index.size and (index.min() < 0 or index.max() >= n):
                raise H2OValueError(f"{what}: row index {int(index[(index < 0) | (index >= n)][0])} is out of range "
                                    f"(the frame has {n:,} rows)")
            if np.any(np.diff(index) <= 0):
                raise H2OValueError(f"{what}: row indices must be ascending and distinct (rows keep their order)")
            return index
        raise H2OValueError(f"{what}: rows are selected by a boolean column, a slice, an int or a list of ints, "
                            f"got {type(rows).__name__}")

    def local_rows(self, positions):
        """This rank's local row numbers of the global `positions` (ascending)."""
        f = self.frame
        lo, hi = np.searchsorted(positions, [f.first_row, f.first_row + f.n_local_rows])
        return positions[lo:hi] - f.first_row

    def value_at(self, row, col):
        """frame[row, col]: one value (a number, or a level's text; None for NA)."""
        if not -self.nrow <= row < self.nrow:
            raise H2OValueError(f"frame[{row}, ...]: row {row} is out of range (the frame has {self.nrow:,} rows)")
        column = self.frame.columns[self.column_index(col, "frame[row, col]")]
        local = self.local_rows(np.array([row % self.nrow]))
        mine = [float(column.decode(int(local[0]), int(local[0]) + 1)[0])] if local.size else []
        values = [v for part in allgather_obj(self.frame.data_comm, mine) for v in part]
        return cell(column, values[0])

    def getrow(self):
        """The values of a one-row frame as a list (h2o-py's getrow)."""
        if self.nrow != 1:
            raise H2OValueError("This method can only be applied to single-row frames")
        return [self.value_at(0, j) for j in range(self.ncol)]

    def head(self, rows=10, cols=200):
        """The first `rows` rows and `cols` columns, a new H2OFrame."""
        return self[:min(self.nrow, rows), :min(self.ncol, cols)]

    def tail(self, rows=10, cols=200):
        """The last `rows` rows and first `cols` columns, a new H2OFrame."""
        start = self.nrow - min(self.nrow, rows)
        return self[start:self.nrow, :min(self.ncol, cols)]

    def as_data_frame(self, use_pandas=True, header=True, use_multi_thread=False):
        """Every row, gathered on every rank (h2o-py's as_data_frame): a pandas DataFrame
        (levels as text; integer columns without NA as integers, as h2o-py reads them), or
        with use_pandas=False a list of rows of text, the names first when header."""
        import pandas as pd
        f = self.frame
        parts = allgather_obj(f.data_comm, {c.name: c.decode() for c in f.columns}) if f.columns else []
        data = {}
        for c in f.columns:
            values = np.concatenate([np.asarray(p[c.name], dtype=np.float64) for p in parts])
            data[c.name] = pandas_values(c, values)
        df = pd.DataFrame(data, columns=f.names)
        if use_pandas:
            return df
        rows = [["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in r]
                for r in df.astype(object).itertuples(index=False)]
        return ([list(f.names)] if header else []) + rows

    def __repr__(self):
        return f"H2OFrame({self.frame_id}: {self.nrow:,} rows x {self.ncol} columns)"

    def __str__(self):
        head = self.head().as_data_frame()
        return f"{head.to_string()}\n\n[{self.nrow:,} rows x {self.ncol} columns]"

    def show(self):
        """Print the first rows (rank 0 prints; collective)."""
        text = str(self)
        if rank_and_size(self.frame.comm)[0] == 0:
            print(text)

    def describe(self):
        """Print H2O's frame summary (collective; rank 0 prints)."""
        from h2odl_mpi.data.frame.describe import format_table
        f = self.frame
        report = {"data": self.frame_id, "rows": f.n_rows, "n_columns": f.n_columns,
                  "ranks": rank_and_size(f.comm)[1], "replicated": f.replicated,
                  "compressed_bytes": f.compressed_bytes, "float64_bytes": 8 * f.n_rows * f.n_columns,
                  "ingest_seconds": 0.0, "columns": [s.to_dict() for s in f.summary()]}
        for column in report["columns"]:
            column["levels"], column["level_counts"] = column["levels"][:5], column["level_counts"][:5]
        if rank_and_size(f.comm)[0] == 0:
            print(format_table(report))

    # ---- assignment and columns ----------------------------------------------------------
    def __setitem__(self, item, value):
        """h2o-py's assignment: frame[col] = value (a new column is appended), frame[rows,
        col] = value, frame[mask] = value (every column at the mask's rows).  value: a
        number, a level's text, None (NA) or a frame of one column (or as many as assigned)."""
        rows = None
        if isinstance(item, tuple):
            rows, item = item
        elif isinstance(item, H2OFrame):
            rows, item = item, slice(None)
        if isinstance(rows, slice) and rows == slice(None):
            rows = None
        targets = [item] if isinstance(item, str) and item not in self.frame.names else \
            self.column_indices(item, "frame[...] =")
        if isinstance(value, H2OFrame):
            self.check_aligned(value, "frame[...] = value")
            if value.ncol not in (1, len(targets)):
                raise H2OValueError(f"frame[...] = value: {value.ncol} columns assigned to {len(targets)}")
        if rows is None:
            mask = None
        elif isinstance(rows, H2OFrame):
            mask = self.mask_of(rows, "frame[mask] = value")
        else:
            mask = np.zeros(self.frame.n_local_rows, dtype=bool)
            mask[self.local_rows(self.global_positions(rows, "frame[rows, col] ="))] = True
        columns = self.frame.columns
        for k, target in enumerate(targets):
            source = value.frame.columns[k if value.ncol > 1 else 0] if isinstance(value, H2OFrame) else value
            if isinstance(target, str):  # a new column
                columns.append(assigned(None, target, source, mask, self.frame.n_local_rows))
            else:
                columns[target] = assigned(columns[target], columns[target].name, source, mask,
                                           self.frame.n_local_rows)
        self.frame = self.with_columns(columns).frame

    def cbind(self, data):
        """The columns of this frame and of `data` (a frame, a number or a list of them),
        a new frame; repeated names get h2o's suffix 0, 1, ..."""
        columns = list(self.frame.columns)
        for other in (data if isinstance(data, list) else [data]):
            if isinstance(other, H2OFrame):
                if other.nrow != self.nrow:
                    raise H2OValueError(f"Cannot bind a dataframe with {other.nrow} rows to a data frame with "
                                        f"{self.nrow} rows: the number of rows should match")
                self.check_aligned(other, "cbind")
                columns += other.frame.columns
            elif isinstance(other, (int, float, np.number)) and not isinstance(other, bool):
                columns.append(derive.numeric_column("C1", np.full(self.frame.n_local_rows, float(other))))
            else:
                raise H2OValueError(f"cbind: expected an H2OFrame or a number, got {type(other).__name__}")
        return self.with_columns(unique_names(columns))

    def drop(self, index, axis=1):
        """A new frame without the columns (axis=1: names or indices) or rows (axis=0: a
        list of row indices) given; this frame is unchanged."""
        if axis == 0:
            if not isinstance(index, list) or not all(isinstance(i, (int, np.integer)) for i in index):
                raise H2OValueError("drop: rows (axis=0) are dropped by a list of int row indices")
            gone = self.global_positions(sorted(set(index)), "drop")
            keep = np.setdiff1d(np.arange(self.nrow), gone)
            return self.select_rows(keep.tolist() if keep.size else slice(0, 0))
        if axis != 1:
            raise H2OValueError(f"drop: axis must be 0 (rows) or 1 (columns), got {axis!r}")
        gone = set(self.column_indices(index if isinstance(index, list) else [index], "drop"))
        return self.with_columns([c for j, c in enumerate(self.frame.columns) if j not in gone])

    def pop(self, i):
        """Remove column `i` (a name or an index) from this frame; returns it as a frame."""
        j = self.column_index(i, "pop")
        popped = self.select_columns([j])
        self.frame = self.drop(j).frame
        return popped

    def __getattr__(self, name):
        from h2odl_mpi.api.frame_ops import H2O_PY_METHODS
        if name in H2O_PY_METHODS:
            raise H2OValueError(f"H2OFrame.{name} is not supported by h2odl_mpi (README: \"From Python, as "
                                f"h2o-py\" lists what is)")
        raise AttributeError(f"'H2OFrame' object has no attribute {name!r}")


def cell(column, value):
    """A decoded value as h2o-py gives it: a level's text, a number, None for NA."""
    if np.isnan(value):
        return None
    if column.kind == CATEGORICAL:
        return column.domain[int(value)]
    return float(value)


def pandas_values(column, values):
    """A column's gathered values for pandas: levels as text (None for NA); integer
    columns without NA as int64, as h2o-py's CSV transfer reads them."""
    if column.kind == CATEGORICAL:
        domain = np.asarray(column.domain, dtype=object)
        codes = np.nan_to_num(values, nan=-1).astype(np.int64)
        return np.where(codes >= 0, domain[np.maximum(codes, 0)] if domain.size else None, None)
    finite = values[np.isfinite(values)]
    if finite.size == values.size and np.all(finite == np.round(finite)) and np.all(np.abs(finite) < 2 ** 53):
        return values.astype(np.int64)
    return values


def assigned(column, name, value, mask, n_rows):
    """Column `name`: `value` (a number, text, None, or a Column) where `mask` holds (every
    row when mask is None), `column`'s values elsewhere (a new column: NA elsewhere)."""
    if isinstance(value, np.bool_):
        value = bool(value)
    if value is None:
        value = float("nan")
    if mask is None and hasattr(value, "chunks"):
        return derive.renamed(value, name)
    categorical = (column is not None and column.kind == CATEGORICAL) or \
        (column is None and (isinstance(value, str) or getattr(value, "kind", None) == CATEGORICAL))
    old = column.decode() if column is not None else np.full(n_rows, np.nan)
    domain = list(column.domain) if column is not None and categorical else []
    if hasattr(value, "chunks"):
        new = value.decode()
        if (value.kind == CATEGORICAL) != categorical:
            raise H2OValueError(f"frame[...] = value: column {name!r} is {'categorical' if categorical else 'numeric'},"
                                f" the value's column {value.name!r} is not; convert it with asfactor()/asnumeric()")
        if categorical:
            new = relabelled(new, value.domain, domain, name)
    elif isinstance(value, str):
        if not categorical:
            raise H2OValueError(f"frame[...] = {value!r}: column {name!r} is numeric; text goes into a categorical "
                                f"column")
        if value not in domain:
            domain.append(value)
        new = np.full(n_rows, float(domain.index(value)))
    elif isinstance(value, (int, float, np.number)):
        if categorical and not np.isnan(value):
            raise H2OValueError(f"frame[...] = {value!r}: column {name!r} is categorical; assign a level's text")
        new = np.full(n_rows, float(value))
    else:
        raise H2OValueError(f"frame[...] = value: expected a number, a string, None or an H2OFrame, "
                            f"got {type(value).__name__}")
    values = new if mask is None else np.where(mask, new, old)
    return derive.coded_column(name, values, domain) if categorical else derive.numeric_column(name, values)


def relabelled(codes, source_domain, domain, name):
    """Level codes of `source_domain` as codes of `domain`, extended by levels it lacks."""
    for level in source_domain:
        if level not in domain:
            domain.append(level)
    where = np.array([domain.index(level) for level in source_domain], dtype=np.float64)
    out = np.full(codes.shape, np.nan)
    known = ~np.isnan(codes)
    out[known] = where[codes[known].astype(np.int64)] if where.size else np.nan
    return out


def unique_names(columns):
    """`columns` with repeated names made distinct as H2O does (a suffix 0, 1, ...)."""
    seen, out = set(), []
    for c in columns:
        name, k = c.name, 0
        while name in seen:
            name, k = f"{c.name}{k}", k + 1
        seen.add(name)
        out.append(c if name == c.name else derive.renamed(c, name))
    return out

