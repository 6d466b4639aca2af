"""initial_weights= and initial_biases= as h2o-py passes them: one H2OFrame (or array) per
weight matrix / bias vector, shaped as model.weights(i) and model.biases(i) give them (a row
per unit of the next layer).  They are gathered (small) and handed to training as float
arrays, which model_setup copies into the starting model; the command line, where they would
be H2O frame ids, refuses them."""
import numpy as np

from h2odl_mpi.errors import H2OValueError

NAMES = ("initial_weights", "initial_biases")


def matrix(value, name, i):
    """One matrix as a float64 2-D array (an H2OFrame's values, gathered)."""
    if hasattr(value, "as_data_frame"):
        if any(t == "enum" for t in value.types.values()):
            raise H2OValueError(f"{name}[{i}]: the frame has a categorical column; weights are numbers")
        value = value.as_data_frame().to_numpy(dtype=np.float64)
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise H2OValueError(f"{name}[{i}]: expected an H2OFrame or a numeric array, got {type(value).__name__}") from None
    a = a.reshape(-1, 1) if a.ndim == 1 else a
    if a.ndim != 2 or not np.all(np.isfinite(a)):
        raise H2OValueError(f"{name}[{i}]: expected a 2-D table of finite numbers, got shape {a.shape}")
    return a


def take(raw):
    """{name: [arrays]} of the initial values in `raw` (an estimator's settings), which are
    left as None there for the parameters' validation."""
    out = {}
    for name in NAMES:
        values = raw.get(name)
        raw[name] = None
        if values is None or (isinstance(values, (list, tuple)) and not values):
            continue
        if not isinstance(values, (list, tuple)):
            raise H2OValueError(f"{name}: a list of H2OFrames, one per layer, got {type(values).__name__}")
        out[name] = [matrix(v, name, i) for i, v in enumerate(values)]
    return out
