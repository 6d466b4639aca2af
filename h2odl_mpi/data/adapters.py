"""Data held in memory, as the column store: a path (a list, directory or glob of files), a
Frame, an h2o.H2OFrame (its Frame), a pandas DataFrame or a numpy array becomes a Frame, each
rank keeping its share of the rows (all of them when replicated).  What the estimators and
h2o-py's module take for data; errors are EstimatorErrors naming the argument."""
import os

import numpy as np

from h2odl_mpi.collectives import rank_and_size
from h2odl_mpi.data.frame import Frame
from h2odl_mpi.errors import EstimatorError, UserError

FRAME_METHODS = "path, Frame, h2o.H2OFrame, pandas DataFrame or numpy array"


def is_frame(data):
    """Whether `data` is a frame in H2O's sense (a path, a Frame, an h2o.H2OFrame), whose
    columns are named, as opposed to scikit-learn's arrays."""
    return (isinstance(data, (str, os.PathLike, Frame)) or isinstance(getattr(data, "frame", None), Frame)
            or (isinstance(data, (list, tuple)) and bool(data) and all(isinstance(d, (str, os.PathLike)) for d in data)))


def comm_of(comm, data):
    """The communicator to train on: `comm`, else that of a Frame given (h2o.init(comm))."""
    if comm is not None:
        return comm
    frame = data if isinstance(data, Frame) else getattr(data, "frame", None)
    return frame.comm if isinstance(frame, Frame) else None


def is_pandas(data):
    """Whether `data` is a pandas DataFrame (without importing pandas)."""
    return type(data).__module__.startswith("pandas") and hasattr(data, "columns")


def to_frame(data, comm=None, replicate=False, what="training_frame"):
    """A column store Frame of `data` (a path, Frame, h2o.H2OFrame, pandas DataFrame or 2-D
    numpy array, columns C1..Cp) over `comm`: every rank passes the same data and keeps its
    share of the rows (all of them with `replicate`).  Collective."""
    if isinstance(data, Frame):
        return data
    if isinstance(getattr(data, "frame", None), Frame):
        return data.frame
    if isinstance(data, (str, os.PathLike)) or (isinstance(data, (list, tuple)) and is_frame(data)):
        try:
            return Frame.read([os.fspath(d) for d in data] if isinstance(data, (list, tuple)) else os.fspath(data),
                              comm=comm, replicate=replicate)
        except UserError as e:
            raise EstimatorError(f"{what}: {e}") from None
    if is_pandas(data):
        return Frame.from_pandas(data.iloc[my_rows(len(data), comm, replicate)], comm, replicate)
    a = np.asarray(data)
    if a.ndim != 2:
        raise EstimatorError(f"{what}: expected a {FRAME_METHODS}, got {type(data).__name__} of shape {a.shape}")
    return frame_of_arrays(a, [f"C{j + 1}" for j in range(a.shape[1])], None, None, comm, replicate)


def my_rows(n, comm, replicate):
    """This rank's slice of n rows: all of them when replicated, else its contiguous share."""
    rank, size = rank_and_size(comm)
    if replicate or size == 1:
        return slice(0, n)
    bounds = np.linspace(0, n, size + 1).astype(np.int64)
    return slice(int(bounds[rank]), int(bounds[rank + 1]))


def frame_of_arrays(X, names, y=None, response=None, comm=None, replicate=False):
    """A Frame of X (a 2-D numeric array with columns `names`, or a pandas DataFrame) and
    the response y (numbers, or labels as text) as column `response`: this rank's share of
    the rows.  Collective."""
    mine = my_rows(len(X), comm, replicate)
    if is_pandas(X):
        df = X.iloc[mine].copy()
        df.columns = list(names)
        if y is not None:
            df[response] = response_values(np.asarray(y)[mine])
        return Frame.from_pandas(df, comm, replicate)
    data = {n: np.asarray(X[mine, j], dtype=np.float64) for j, n in enumerate(names)}
    if y is not None:
        data[response] = response_values(np.asarray(y)[mine])
    return Frame.from_arrays(data, comm, replicate)


def response_values(y):
    """The response as a Frame column: numbers (float64), or labels as text (categorical)."""
    if y.dtype.kind in "biuf":
        return y.astype(np.float64)
    return np.array([None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in y],
                    dtype=object)


def response_name(names):
    """A name for the response column that none of `names` takes."""
    name = "response"
    while name in names:
        name += "_"
    return name


def column_name(frame, col, what):
    """A column of `frame` named or numbered (0-based, as h2o-py) by `col`."""
    if isinstance(col, (int, np.integer)) and not isinstance(col, bool):
        if not -frame.n_columns <= col < frame.n_columns:
            raise EstimatorError(f"{what}: column index {col} is out of range (the frame has {frame.n_columns})")
        return frame.names[col]
    if col not in frame.names:
        raise EstimatorError(f"{what}: no column {col!r} in the frame (columns: {', '.join(frame.names[:10])}"
                             f"{' ...' if frame.n_columns > 10 else ''})")
    return col
