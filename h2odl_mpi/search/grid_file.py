"""The grid file: train parameters (as `train --config` reads them) plus two tables.

    train = "train.csv.gz"          # fixed parameters: every model gets them
    response = "C785"
    [hyper_params]                  # a list of values per parameter
    hidden = [[64], [200, 200]]
    l1 = [0.0, 1e-5]
    [search_criteria]               # H2O's names
    strategy = "RandomDiscrete"     # or Cartesian (the default)
    max_models = 8
    seed = 1

`load(path)` returns (fixed, hyper_params, criteria); `check_hyper` and `check_criteria`
do the same checks for the Python API.  Errors name the file and the key.
"""
import math

from h2odl_mpi import config
from h2odl_mpi import params as P
from h2odl_mpi.errors import UserError

STRATEGIES = ("Cartesian", "RandomDiscrete")
# parameters that say where data and outputs are: one value for the whole search
NOT_HYPER = ("train", "validation", "replicate_training_data", "model_out", "summary_json",
             "scoring_history", "checkpoint", "resume", "checkpoint_dir", "checkpoint_interval",
             "checkpoint_keep", "export_weights_and_biases", "quiet_mode", "threads")
# name: (type, default, lower bound)
CRITERIA = {
    "strategy": (str, "Cartesian", None),
    "max_models": (int, 0, 0),
    "max_runtime_secs": (float, 0.0, 0.0),
    "seed": (int, -1, None),
    "stopping_rounds": (int, 0, 0),
    "stopping_metric": (str, "AUTO", None),
    "stopping_tolerance": (float, 0.001, 0.0),
    "sort_by": (str, "AUTO", None),
}


def load(path):
    """(fixed train parameters, {name: [values]}, search criteria) from grid file `path`."""
    doc = dict(config.read_toml(path))
    hyper = doc.pop("hyper_params", None)
    criteria = doc.pop("search_criteria", {})
    if not isinstance(hyper, dict) or not hyper:
        raise UserError(f"{path}: a [hyper_params] table with at least one parameter is required")
    if not isinstance(criteria, dict):
        raise UserError(f"{path}: search_criteria must be a table ([search_criteria])")
    fixed = config.parameters(path, doc)
    return fixed, check_hyper(hyper, path), check_criteria(criteria, path)


def check_hyper(hyper, where="hyper_params"):
    """{canonical name: [values of its type]}; each name a train parameter that may vary."""
    out = {}
    for key, values in hyper.items():
        name = P.canonical(key)
        if name in NOT_HYPER:
            raise UserError(f"{where}: hyper_params.{key}: says where data or outputs are, or how the "
                            "search runs; give it once, outside [hyper_params]")
        if name in out:
            raise UserError(f"{where}: hyper_params: {key} and {name} are the same parameter: give one")
        if not isinstance(values, list) or not values:
            raise UserError(f"{where}: hyper_params.{key} must be a non-empty list of values")
        out[name] = [config.value_of(f"{where}: hyper_params", name, v) for v in values]
        if len({repr(v) for v in out[name]}) != len(out[name]):
            raise UserError(f"{where}: hyper_params.{key} lists a value twice")
    return out


def check_criteria(criteria, where="search_criteria"):
    """The search criteria, each checked and defaulted (H2O's names)."""
    out = {k: d for k, (_t, d, _lo) in CRITERIA.items()}
    for key, value in criteria.items():
        if key not in CRITERIA:
            near = [k for k in CRITERIA if k.split("_")[0] in key]
            hint = f" (did you mean {near[0]}?)" if near else f"; one of {', '.join(CRITERIA)}"
            raise UserError(f"{where}: unknown search criterion {key!r}{hint}")
        out[key] = _criterion(where, key, value)
    strategy = {s.lower(): s for s in STRATEGIES}.get(str(out["strategy"]).lower())
    if strategy is None:
        raise UserError(f"{where}: strategy must be one of {', '.join(STRATEGIES)}, got {out['strategy']!r}")
    out["strategy"] = strategy
    return out


def _criterion(where, key, value):
    typ, _default, lo = CRITERIA[key]
    ok = (isinstance(value, str) if typ is str else
          not isinstance(value, bool) and isinstance(value, (int, float)) and
          (typ is float or float(value).is_integer()))
    if not ok:
        raise UserError(f"{where}: {key} must be {'a string' if typ is str else 'a number'}, got {value!r}")
    if typ is str:
        return value
    value = typ(value)
    if not math.isfinite(value) or (lo is not None and value < lo):
        raise UserError(f"{where}: {key} must be a finite number >= {lo}, got {value!r}")
    return value
