"""The few module functions of h2o-py that its Deep Learning examples use, over the column store.

    from h2odl_mpi import h2o
    from h2odl_mpi import DeepLearningEstimator as H2ODeepLearningEstimator
    h2o.init()
    train = h2o.import_file("train.csv.gz")
    train["C785"] = train["C785"].asfactor()
    model = H2ODeepLearningEstimator(hidden=[32, 32], epochs=1)
    model.train(x=train.names[0:784], y="C785", training_frame=train)
    h2o.save_model(model, path="models", force=True)

`init(comm=None)` starts nothing (there is no cluster to start); with an mpi4py communicator
later `import_file` calls read on it (every rank calls them; each keeps its share of the
rows), and estimators trained on such frames run on it.  `H2OFrame` wraps a Frame: names,
nrow, ncol, describe(), head(), frame[column], frame[column].asfactor() and assigning it
back, as_data_frame().
"""
import os

import numpy as np

from h2odl_mpi.errors import EstimatorError, UserError
from h2odl_mpi.data.frame import Frame

_state = {"comm": None}


def init(comm=None, **_ignored):
    """h2o.init(): nothing to start; `comm` is the communicator later frames are read on."""
    _state["comm"] = comm


# h2o-py's import_file / upload_file parameters this store has no use for: refused by name
# (h2o-py's defaults pass), never silently dropped
_REFUSED = {
    "pattern": (None, "name the files with a glob in path instead (path='data/part_*.csv')"),
    "skipped_columns": (None, "read every column and leave some out of training with x= or ignored_columns"),
    "custom_non_data_line_markers": (None, "lines starting with markers are not skipped by this reader"),
    "partition_by": (None, "partitioned directories are not read"),
    "escapechar": (None, "fields are quoted with quotechar, with \"\" for a quote; no escape character"),
}


def import_file(path=None, destination_frame=None, parse=True, header=0, sep=None, col_names=None,
                col_types=None, na_strings=None, pattern=None, skipped_columns=None, force_col_types=False,
                custom_non_data_line_markers=None, partition_by=None, quotechar=None, escapechar=None):
    """h2o.import_file: a file (directory, glob, list) read into the column store (CSV,
    SVMLight or Parquet; gzip, bz2, zip), on init's communicator.  header: 1 yes, -1 no,
    0 detect (h2o-py's values).  col_names: the columns' names (one per column);
    col_types: a list of types (one per column, None: detect) or {column: type}, with
    "numeric" / "real" / "int" / "float" / "double" (text in such a column is NA, as in
    H2O-3) or "enum" / "factor" / "categorical"; na_strings: strings that are missing
    besides the defaults, a list (every column), a list of lists (one per column) or
    {column: strings} (column names are col_names' when given, as in h2o-py).
    quotechar: '"' (the default) or "'".  force_col_types has nothing to force here
    (every number is a double).  The other h2o-py parameters, when given, are refused."""
    if path is None:
        raise EstimatorError("import_file: path is required")
    if not parse:
        raise EstimatorError("import_file: parse=False is not supported (there are no raw, unparsed frames "
                             "here); import with parse=True")
    given = {"pattern": pattern, "skipped_columns": skipped_columns, "partition_by": partition_by,
             "custom_non_data_line_markers": custom_non_data_line_markers, "escapechar": escapechar}
    for name, value in given.items():
        if value not in (_REFUSED[name][0], "", [], ()):
            raise EstimatorError(f"import_file: {name} is not supported: {_REFUSED[name][1]}")
    if header not in (-1, 0, 1):
        raise EstimatorError(f"import_file: header must be -1 (no header), 0 (detect) or 1 (header), got {header!r}")
    if quotechar not in (None, '"', "'"):
        raise EstimatorError(f"import_file: quotechar must be '\"', \"'\" or None, got {quotechar!r}")
    options = {"na_strings": _by_position(na_strings, col_names, "na_strings"),
               "col_types": _by_position(col_types, col_names, "col_types")}
    if sep is not None or header in (1, -1):
        options.update(sep=sep, header={1: True, -1: False}.get(header))
    if quotechar is not None:
        options["quote_char"] = quotechar
    try:
        frame = Frame.read(path, comm=_state["comm"], **options)
    except EstimatorError:
        raise
    except UserError as e:
        raise EstimatorError(str(e)) from None
    if col_names is not None:
        frame = _renamed(frame, col_names)
    return H2OFrame(frame, destination_frame)


def upload_file(path, destination_frame=None, header=0, sep=None, col_names=None, col_types=None,
                na_strings=None, skipped_columns=None, force_col_types=False, quotechar=None,
                escapechar=None):
    """h2o.upload_file: as import_file (the files are read where the ranks run; nothing is
    uploaded)."""
    return import_file(path, destination_frame, True, header, sep, col_names, col_types, na_strings,
                       skipped_columns=skipped_columns, force_col_types=force_col_types,
                       quotechar=quotechar, escapechar=escapechar)


def _by_position(spec, col_names, what):
    """A {column: value} na_strings / col_types over col_names (h2o-py applies col_names
    first) as a list by position; other forms as they are."""
    if not isinstance(spec, dict) or col_names is None:
        return spec
    unknown = [k for k in spec if k not in col_names]
    if unknown:
        raise EstimatorError(f"import_file: {what}: no column {unknown[0]!r} in col_names {list(col_names)}")
    if what == "na_strings":
        return [spec.get(name) if not isinstance(spec.get(name), str) else [spec[name]] for name in col_names]
    return [spec.get(name) for name in col_names]


def _renamed(frame, col_names):
    """`frame` with its columns named `col_names` (one per column, distinct)."""
    from h2odl_mpi.data.frame.column import Column
    names = [str(n) for n in col_names]
    if len(names) != frame.n_columns:
        raise EstimatorError(f"import_file: col_names has {len(names)} names for {frame.n_columns} columns "
                             f"({frame.source})")
    if len(set(names)) != len(names):
        raise EstimatorError(f"import_file: col_names repeats {next(n for n in names if names.count(n) > 1)!r}")
    columns = [Column(n, c.kind, c.chunks, c.domain) for n, c in zip(names, frame.columns)]
    out = Frame(columns, frame.comm, frame.replicated)
    out.source, out.ingest = frame.source, frame.ingest
    return out


class H2OFrame:
    """An H2O frame: a column store Frame with h2o-py's accessors."""

    def __init__(self, python_obj=None, destination_frame=None, header=0, separator=",", column_names=None,
                 column_types=None, na_strings=None, skipped_columns=None):
        """h2o-py's constructor for a Frame, a pandas DataFrame or a dict of columns.
        column_names, column_types and na_strings as import_file's col_names, col_types and
        na_strings, on the values in memory (an NA string that is a number matches the equal
        numbers of a numeric column); header and separator have no text to apply to."""
        options = column_names is not None or column_types is not None or na_strings is not None
        if skipped_columns:
            raise EstimatorError("H2OFrame: skipped_columns is not supported (select the columns instead)")
        if isinstance(python_obj, Frame):
            if options:
                raise EstimatorError("H2OFrame: column_names, column_types and na_strings apply to data being "
                                     "read; give them to h2o.import_file")
            self.frame = python_obj
        elif type(python_obj).__module__.startswith("pandas") and not options:
            self.frame = Frame.from_pandas(python_obj, _state["comm"], replicate=True)
        elif isinstance(python_obj, dict) or type(python_obj).__module__.startswith("pandas"):
            data = {str(k): np.asarray(v) for k, v in _columns_of(python_obj).items()}
            if options:
                data = _with_options(data, column_names, column_types, na_strings)
            self.frame = Frame.from_arrays(data, _state["comm"], replicate=True)
        else:
            raise UserError(f"H2OFrame: expected a Frame, a pandas DataFrame or a dict of columns, "
                            f"got {type(python_obj).__name__}")
        self.frame_id = destination_frame or self.frame.source or "frame"

    @property
    def names(self):
        return list(self.frame.names)

    columns = names

    @property
    def nrow(self):
        return self.frame.n_rows

    @property
    def ncol(self):
        return self.frame.n_columns

    @property
    def shape(self):
        return self.frame.shape

    dim = shape

    def __len__(self):
        return self.frame.n_rows

    @property
    def types(self):
        """{column: "real" or "enum"} (h2o-py's types)."""
        return {n: "enum" if t == "categorical" else "real" for n, t in zip(self.frame.names, self.frame.types)}

    def describe(self):
        """Print H2O's frame summary (collective; rank 0 prints)."""
        from h2odl_mpi.collectives import rank_and_size
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

    def head(self, rows=10, cols=200):
        """The first rows as a pandas DataFrame (collective)."""
        return self.frame.head(rows).iloc[:, :cols]

    def as_data_frame(self, use_pandas=True):
        """Every row as a pandas DataFrame, levels as text (collective; for small frames)."""
        return self.frame.head(self.frame.n_rows)

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            key = self.frame.names[key]
        if isinstance(key, str):
            self.frame.column(key)  # (KeyError naming the columns)
            return ColumnRef(self, key)
        names = [self.frame.names[k] if isinstance(k, (int, np.integer)) else k for k in key]
        return H2OFrame(Frame([self.frame.column(n) for n in names], self.frame.comm, self.frame.replicated))

    def __setitem__(self, key, value):
        if not isinstance(value, ColumnRef) or value.source is not self or value.name != key:
            raise UserError(f"{key}: only frame[{key!r}] = frame[{key!r}].asfactor() is supported")
        if value.factor and self.frame.column(key).kind != "categorical":
            self.frame = _with_factor(self.frame, key)

    def __repr__(self):
        return f"H2OFrame({self.frame_id}: {self.nrow:,} rows x {self.ncol} columns)"


def _columns_of(python_obj):
    """{name: values} of a dict or a pandas DataFrame (numbers as float64, other values as
    objects, NA as None), as Frame.from_pandas reads them."""
    if isinstance(python_obj, dict):
        return python_obj
    import pandas as pd
    out = {}
    for name in python_obj.columns:
        s = python_obj[name]
        if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
            out[name] = s.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            out[name] = np.array([None if pd.isna(v) else str(v) for v in s], dtype=object)
    return out


def _with_options(data, column_names, column_types, na_strings):
    """`data` ({name: array}) renamed, with NA strings made NA and column types forced:
    text made numeric is NA where it is not a number (as H2O-3, with a warning), numbers
    made categorical are levels by their text ("3" for 3.0)."""
    import warnings
    from h2odl_mpi.data.frame.column import CATEGORICAL, NUMERIC
    from h2odl_mpi.data.frame.parse_options import check_col_types, check_na_strings, resolve
    from h2odl_mpi.data.response import number_label
    if column_names is not None:
        if len(column_names) != len(data) or len(set(column_names)) != len(column_names):
            raise EstimatorError(f"H2OFrame: column_names must name the {len(data)} columns once each, "
                                 f"got {list(column_names)}")
        data = dict(zip(map(str, column_names), data.values()))
    try:
        column_na, forced = resolve(list(data), check_na_strings(na_strings),
                                    check_col_types(column_types, "column_types"))
    except UserError as e:
        raise EstimatorError(f"H2OFrame: {e}") from None
    out = {}
    for (name, values), na, kind in zip(data.items(), column_na, forced):
        if values.dtype.kind in "OUS":
            text = [None if v is None or (isinstance(v, float) and np.isnan(v)) or str(v) in na else str(v)
                    for v in values.tolist()]
            if kind == NUMERIC:
                numbers = [_number(t) for t in text]
                bad = [t for t, x in zip(text, numbers) if t is not None and np.isnan(x)]
                if bad:
                    warnings.warn(f"H2OFrame: column {name!r}: {len(bad)} value(s) that are not numbers "
                                  f"(e.g. {bad[0]!r}) are NA, as column_types makes it numeric (as H2O-3 does)")
                out[name] = np.array(numbers, dtype=np.float64)
            else:
                out[name] = np.array(text, dtype=object)
            continue
        numbers = values.astype(np.float64)
        drop = [x for x in map(_number, na) if not np.isnan(x)]
        if drop:
            numbers = np.where(np.isin(numbers, drop), np.nan, numbers)
        out[name] = (np.array([None if np.isnan(x) else number_label(x) for x in numbers], dtype=object)
                     if kind == CATEGORICAL else numbers)
    return out


def _number(text):
    try:
        return float(text) if text is not None and "_" not in text else np.nan
    except ValueError:
        return np.nan


class ColumnRef:
    """frame[column]: what asfactor() and assigning back need."""

    def __init__(self, source, name, factor=False):
        self.source, self.name, self.factor = source, name, factor

    def asfactor(self):
        return ColumnRef(self.source, self.name, True)

    def isfactor(self):
        return self.factor or self.source.frame.column(self.name).kind == "categorical"

    def levels(self):
        return [list(self.source.frame.domain(self.name) or [])]


def _with_factor(frame, name):
    """`frame` with numeric column `name` made categorical, its numbers as level labels
    (3.0 -> "3"), as h2o's asfactor() (collective)."""
    from h2odl_mpi.data.frame.readers import columns_from_arrays
    from h2odl_mpi.data.response import number_label
    values = frame.decode(name)
    labels = np.array([None if np.isnan(v) else number_label(v) for v in values], dtype=object)
    new = columns_from_arrays({name: labels}, frame.comm, frame.replicated)[0]
    out = Frame([new if c.name == name else c for c in frame.columns], frame.comm, frame.replicated)
    out.source = frame.source
    return out


def save_model(model, path="", force=False, filename=None):
    """h2o.save_model: the model file in directory `path` (default the current one) named
    `filename` or the model's id; refuses to overwrite unless force.  Returns its path."""
    target = os.path.join(path or os.getcwd(), filename or model.model_id_)
    if os.path.exists(target) and not force:
        raise UserError(f"{target}: exists (give force=True to overwrite)")
    if path:
        os.makedirs(path, exist_ok=True)
    return model.save(target)


def load_model(path, comm=None):
    """h2o.load_model: the estimator of a model file."""
    from h2odl_mpi.api.estimator import load_model as load
    return load(path, comm if comm is not None else _state["comm"])
