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

from h2odl_mpi.errors import UserError
from h2odl_mpi.data.frame import Frame

_state = {"comm": None}


def init(comm=None, **_ignored):
    """h2o.init(): nothing to start; `comm` is the communicator later frames are read on."""
    _state["comm"] = comm


def import_file(path, destination_frame=None, header=0, sep=None, **_ignored):
    """h2o.import_file: a file (directory, glob, list) read into the column store (CSV,
    SVMLight or Parquet; gzip, bz2, zip), on init's communicator.  header: 1 yes, -1 no,
    0 detect (h2o-py's values)."""
    options = {}
    if sep is not None or header in (1, -1):
        options = {"sep": sep, "header": {1: True, -1: False}.get(header)}
    frame = Frame.read(path, comm=_state["comm"], **options)
    return H2OFrame(frame, destination_frame)


class H2OFrame:
    """An H2O frame: a column store Frame with h2o-py's accessors."""

    def __init__(self, python_obj=None, destination_frame=None):
        if isinstance(python_obj, Frame):
            self.frame = python_obj
        elif type(python_obj).__module__.startswith("pandas"):
            self.frame = Frame.from_pandas(python_obj, _state["comm"], replicate=True)
        elif isinstance(python_obj, dict):
            self.frame = Frame.from_arrays({k: np.asarray(v) for k, v in python_obj.items()},
                                           _state["comm"], replicate=True)
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
