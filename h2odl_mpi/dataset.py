"""Tables to network inputs: reading a CSV file and H2O's numeric preprocessing.

`read_table` parses a (gzip/bz2) CSV with pyarrow: header detected as H2O does (a first line
that is all numbers is data, and columns are then named C1..Cn).  `DataInfo` is the data
description computed once from the training table and saved with the model: which columns
are inputs (constant ones dropped), their means and standard deviations, the response's
kind and domain, and the transform applied identically at training and scoring time.
"""
from dataclasses import dataclass, field
import os

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from h2odl_mpi.errors import UserError

NA_STRINGS = ["", "NA", "NaN", "nan", "?", "N/A", "null", "NULL"]


def _first_line(path):
    import bz2
    import gzip
    opener = gzip.open if path.endswith(".gz") else bz2.open if path.endswith(".bz2") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", errors="replace") as f:
            return f.readline()
    except (OSError, EOFError) as e:
        raise UserError(f"{path}: cannot read: {e}") from None


def _is_number(tok):
    try:
        float(tok)
        return True
    except ValueError:
        return tok.strip().strip('"') in NA_STRINGS and False


def read_table(path):
    """Read a CSV file into a dict of column name -> numpy array (float64 or str objects)."""
    if not os.path.exists(path):
        raise UserError(f"{path}: no such file")
    first = _first_line(path)
    if not first.strip():
        raise UserError(f"{path}: the file is empty")
    sep = max([",", "\t", ";", "|"], key=first.count)
    tokens = [t.strip().strip('"') for t in first.rstrip("\r\n").split(sep)]
    has_header = not all(_is_number(t) for t in tokens)
    names = None if has_header else [f"C{i + 1}" for i in range(len(tokens))]
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, autogenerate_column_names=False),
            parse_options=pacsv.ParseOptions(delimiter=sep),
            convert_options=pacsv.ConvertOptions(null_values=NA_STRINGS, strings_can_be_null=True))
    except (pa.ArrowInvalid, OSError, EOFError) as e:
        raise UserError(f"{path}: cannot parse as CSV: {e}") from None
    if table.num_rows == 0:
        raise UserError(f"{path}: no data rows")
    cols = {}
    for name, col in zip(table.column_names, table.columns):
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_null(col.type):
            cols[name] = col.to_numpy(zero_copy_only=False).astype(np.float64)
        elif pa.types.is_boolean(col.type):
            cols[name] = np.where(col.is_null().to_numpy(zero_copy_only=False), np.nan,
                                  col.fill_null(False).to_numpy(zero_copy_only=False).astype(np.float64))
        else:
            cols[name] = np.asarray(col.cast(pa.string()).to_pylist(), dtype=object)
    return cols


def _is_numeric(arr):
    return arr.dtype != object


@dataclass
class DataInfo:
    """What the model knows about its inputs and response (saved with the model)."""
    input_names: list
    means: np.ndarray
    sds: np.ndarray          # 1 where no scaling applies
    response: str = None
    classification: bool = False
    domain: list = field(default_factory=list)   # class labels (strings) for classification
    response_mean: float = 0.0
    response_sd: float = 1.0
    autoencoder: bool = False

    @property
    def kind(self):
        return "autoencoder" if self.autoencoder else "classification" if self.classification else "regression"

    @property
    def n_classes(self):
        return len(self.domain) if self.classification else 1

    @classmethod
    def fit(cls, cols, params, classification=None):
        """Compute the description from the training columns and the validated params."""
        response = params.get("response")
        autoencoder = params.get("autoencoder", False)
        if not autoencoder and response not in cols:
            raise UserError(f"response column {response!r} is not in the training data "
                            f"(columns: {', '.join(list(cols)[:10])}{' ...' if len(cols) > 10 else ''})")
        ignored = set(params.get("ignored_columns") or [])
        for name in ignored:
            if name not in cols:
                raise UserError(f"ignored_columns: no column named {name!r}")
        inputs, means, sds = [], [], []
        for name, arr in cols.items():
            if name == response or name in ignored:
                continue
            if not _is_numeric(arr):
                raise UserError(f"column {name!r} is not numeric; categorical inputs arrive with "
                                "the column store (not supported by this reader)")
            finite = arr[np.isfinite(arr)]
            if params.get("ignore_const_cols", True) and (finite.size == 0 or finite.min() == finite.max()):
                continue
            mu = float(finite.mean()) if finite.size else 0.0
            sd = float(finite.std(ddof=1)) if finite.size > 1 else 1.0
            if autoencoder and params.get("standardize", True):
                lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
                mu, sd = (lo + hi) / 2.0, (hi - lo) if hi > lo else 1.0  # normalise to [-0.5, 0.5]
            elif not params.get("standardize", True):
                mu, sd = 0.0, 1.0
            inputs.append(name)
            means.append(mu)
            sds.append(sd if sd > 0 else 1.0)
        if not inputs:
            raise UserError("no input columns left (all constant or ignored)")
        info = cls(input_names=inputs, means=np.array(means), sds=np.array(sds),
                   response=None if autoencoder else response, autoencoder=autoencoder)
        if not autoencoder:
            y = cols[response]
            info.classification = _is_classification(y) if classification is None else classification
            if info.classification:
                info.domain = _domain(y)
                if len(info.domain) < 2:
                    raise UserError(f"response {response!r} has fewer than 2 classes")
            else:
                if not _is_numeric(y):
                    raise UserError(f"response {response!r} is not numeric: cannot do regression")
                finite = y[np.isfinite(y)]
                if params.get("distribution", "AUTO") in ("AUTO", "gaussian", "laplace", "huber", "quantile"):
                    info.response_mean = float(finite.mean())
                    sd = float(finite.std(ddof=1)) if finite.size > 1 else 1.0
                    info.response_sd = sd if sd > 0 else 1.0
        return info

    def transform(self, cols, source="data"):
        """Input matrix (float32, standardised, NA imputed to the mean) and response vector."""
        missing = [n for n in self.input_names if n not in cols]
        if missing:
            raise UserError(f"{source}: missing column(s) {', '.join(missing)}")
        n = len(next(iter(cols.values())))
        x = np.empty((n, len(self.input_names)), dtype=np.float32)
        for j, name in enumerate(self.input_names):
            arr = cols[name]
            if not _is_numeric(arr):
                raise UserError(f"{source}: column {name!r} is not numeric")
            v = (arr - self.means[j]) / self.sds[j]
            v[~np.isfinite(v)] = 0.0  # MeanImputation: the mean is 0 after the transform
            x[:, j] = v
        y = None
        if not self.autoencoder and self.response in cols:
            y = self.encode_response(cols[self.response])
        return x, y

    def encode_response(self, raw):
        if self.classification:
            labels = _labels(raw)
            index = {d: i for i, d in enumerate(self.domain)}
            return np.array([index.get(v, np.nan) if v is not None else np.nan for v in labels],
                            dtype=np.float32)
        return ((raw - self.response_mean) / self.response_sd).astype(np.float32)

    def decode_response(self, value):
        return value * self.response_sd + self.response_mean


def _labels(arr):
    if _is_numeric(arr):
        return [None if not np.isfinite(v) else (str(int(v)) if v == int(v) else repr(float(v))) for v in arr]
    return [None if v is None else str(v) for v in arr]


def _domain(arr):
    labels = {v for v in _labels(arr) if v is not None}
    if _is_numeric(arr):
        return sorted(labels, key=float)
    return sorted(labels)


def _is_classification(y):
    """Auto rule: a non-numeric response, or integer values with 2..255 distinct levels."""
    if not _is_numeric(y):
        return True
    finite = y[np.isfinite(y)]
    if finite.size == 0 or np.any(finite != np.round(finite)):
        return False
    return 2 <= np.unique(finite).size <= 255
