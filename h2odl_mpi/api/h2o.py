"""h2o-py's module functions that Deep Learning scripts use, over the column store.

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
rows), and estimators trained on such frames run on it.  `H2OFrame` (api/h2oframe.py) is
h2o-py's frame over a column store Frame; `h2o.grid.H2OGridSearch` is api/grid.py's; the
models and frames this process holds by key (get_model, get_frame, ls, remove) are
api/registry.py's.
"""
import os

from h2odl_mpi.errors import EstimatorError, UserError
from h2odl_mpi.data.frame import Frame

from h2odl_mpi.api import grid, registry  # noqa: F401 (h2o.grid.H2OGridSearch, as h2o-py)
from h2odl_mpi.api.h2oframe import STATE as _state
from h2odl_mpi.api.h2oframe import H2OFrame


def init(comm=None, **_ignored):
    """h2o.init(): nothing to start; `comm` is the communicator later frames are read on
    and frames made from Python data are spread over."""
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
    out = H2OFrame(frame, destination_frame)
    registry.keep_frame(out)
    return out


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
    """h2o.load_model: the estimator of a model file, its model_id the key it was saved
    under (the file's name), held by this process (h2o.get_model)."""
    from h2odl_mpi.api.estimator import load_model as load
    model = load(path, comm if comm is not None else _state["comm"])
    model.model_id = model.model_id_
    return model


def get_model(model_id):
    """h2o.get_model: the model of key `model_id` trained or loaded by this process."""
    return registry.get_model(model_id)


def get_frame(frame_id):
    """h2o.get_frame: the frame of key `frame_id` this process holds."""
    if frame_id not in registry.FRAMES:
        raise EstimatorError(f"get_frame: no frame {frame_id!r} in this process (h2o.ls() lists the keys)")
    return registry.FRAMES[frame_id]


def ls():
    """h2o.ls: the keys of the models and frames this process holds, a pandas DataFrame
    with one column, "key"."""
    import pandas as pd
    return pd.DataFrame({"key": registry.keys()})


def remove(x, cascade=True):
    """h2o.remove: forget a model or frame (the object or its key, or a list of them)."""
    for item in (x if isinstance(x, (list, tuple)) else [x]):
        key = item if isinstance(item, str) else getattr(item, "model_id_", None) or getattr(item, "frame_id", None)
        registry.remove(key)


def remove_all(retained=None):
    """h2o.remove_all: forget every model and frame but those of the keys in `retained`."""
    keep = set(retained or [])
    for key in registry.keys():
        if key not in keep:
            registry.remove(key)


def create_frame(frame_id=None, rows=10000, cols=10, randomize=True, real_fraction=None, categorical_fraction=None,
                 integer_fraction=None, binary_fraction=None, time_fraction=None, string_fraction=None, value=0,
                 real_range=100, factors=100, integer_range=100, binary_ones_fraction=0.02, missing_fraction=0.01,
                 has_response=False, response_factors=2, positive_response=False, seed=None,
                 seed_for_column_types=None):
    """h2o.create_frame: a random frame (api/create_frame.py says how its values are made)."""
    from h2odl_mpi.api.create_frame import create_frame as create
    out = create(_state["comm"], dict(locals()))
    registry.keep_frame(out)
    return out
