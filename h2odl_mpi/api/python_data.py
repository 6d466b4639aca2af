"""Python data as the columns of a frame, as h2o-py's H2OFrame constructor takes it: a list
of rows (a flat list is one column), a dict of columns, a pandas DataFrame or a numpy array,
with h2o-py's column_names, column_types and na_strings applied to the values in memory.

`columns_of_python` gives {name: array}: numbers as float64 (NaN is NA), anything else as
text (an object array, None is NA), which Frame.from_arrays stores as numeric and
categorical columns.
"""
import numpy as np

from h2odl_mpi.errors import EstimatorError, UserError


def columns_of_python(python_obj, header=0):
    """{name: array} of a list of rows, a dict of columns, a pandas DataFrame or a numpy
    array; header=1: the first row of a list holds the names (else C1, C2, ...)."""
    if isinstance(python_obj, dict) or type(python_obj).__module__.startswith("pandas"):
        data = columns_of(python_obj)
        return {str(k): typed(v) for k, v in data.items()}
    if isinstance(python_obj, np.ndarray):
        if python_obj.ndim > 2:
            raise EstimatorError(f"H2OFrame: a numpy array of 1 or 2 dimensions, got {python_obj.ndim}")
        python_obj = python_obj.tolist()
    if not isinstance(python_obj, (list, tuple)):
        raise EstimatorError(f"H2OFrame: expected a list of rows, a dict of columns, a pandas DataFrame or a "
                             f"numpy array, got {type(python_obj).__name__}")
    rows = [list(r) if isinstance(r, (list, tuple)) else [r] for r in python_obj]
    if any(isinstance(r, (list, tuple)) for r in python_obj) and not all(isinstance(r, (list, tuple)) for r in python_obj):
        raise EstimatorError("H2OFrame: mix of rows (lists) and single values; give a list of rows or a flat list")
    names = [str(n) for n in rows.pop(0)] if header == 1 and rows else None
    width = max((len(r) for r in rows), default=len(names or []))
    names = names or [f"C{j + 1}" for j in range(width)]
    if len(names) != width:
        raise EstimatorError(f"H2OFrame: the header names {len(names)} columns, the rows hold {width}")
    return {name: typed([r[j] if j < len(r) else None for r in rows]) for j, name in enumerate(names)}


def typed(values):
    """A column's values as float64 when they are all numbers (or NA), else as text."""
    values = values.tolist() if isinstance(values, np.ndarray) and values.dtype.kind not in "biuf" else values
    if isinstance(values, np.ndarray):
        return values.astype(np.float64)
    values = list(values)
    missing = [v is None or (isinstance(v, float) and np.isnan(v)) for v in values]
    if all(m or (isinstance(v, (int, float, np.number, bool, np.bool_))) for v, m in zip(values, missing)):
        return np.array([np.nan if m else float(v) for v, m in zip(values, missing)], dtype=np.float64)
    return np.array([None if m else str(v) for v, m in zip(values, missing)], dtype=object)


def columns_of(python_obj):
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

def with_options(data, column_names, column_types, na_strings):
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
                numbers = [number(t) for t in text]
                bad = [t for t, x in zip(text, numbers) if t is not None and np.isnan(x)]
                if bad:
                    warnings.warn(f"H2OFrame: column {name!r}: {len(bad)} value(s) that are not numbers "
                                  f"(e.g. {bad[0]!r}) are NA, as column_types makes it numeric (as H2O-3 does)")
                out[name] = np.array(numbers, dtype=np.float64)
            else:
                out[name] = np.array(text, dtype=object)
            continue
        numbers = values.astype(np.float64)
        drop = [x for x in map(number, na) if not np.isnan(x)]
        if drop:
            numbers = np.where(np.isin(numbers, drop), np.nan, numbers)
        out[name] = (np.array([None if np.isnan(x) else number_label(x) for x in numbers], dtype=object)
                     if kind == CATEGORICAL else numbers)
    return out

def number(text):
    try:
        return float(text) if text is not None and "_" not in text else np.nan
    except ValueError:
        return np.nan
