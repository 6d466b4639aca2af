"""The grid file: train parameters (as `train --config` reads them) plus two tables.

    train = "train.csv.gz"          # fixed parameters: every model gets them
    response = "C785"
    [hyper_params]                  # a list of values per parameter
    hidden = [[64], [200, 200]]
    l1 = [0.0, 1e-5]                # Evolutionary also takes a range: {min = 0.0, max = 1e-4},
                                    #   {min = 1e-6, max = 1e-2, log = true}, {min = 1, max = 9}
    [search_criteria]               # H2O's names, and this version's (see CRITERIA)
    strategy = "RandomDiscrete"     # or Cartesian (the default), Evolutionary, Halving
    max_models = 8
    seed = 1

`load(path)` returns (fixed, hyper_params, criteria); `check_hyper`, `check_criteria` and
`check_search` (the two together: ranges only with Evolutionary) do the same checks for the
Python API.  Errors name the file and the key.
"""
import math

from h2odl_mpi import config
from h2odl_mpi import params as P
from h2odl_mpi.errors import UserError
from h2odl_mpi.workflows.search.hyperspace import Range, has_ranges

STRATEGIES = ("Cartesian", "RandomDiscrete", "Evolutionary", "Halving")
# parameters that say where data and outputs are: one value for the whole search
NOT_HYPER = ("train", "validation", "replicate_training_data", "model_out", "summary_json",
             "scoring_history", "checkpoint", "resume", "checkpoint_dir", "checkpoint_interval",
             "checkpoint_keep", "export_weights_and_biases", "quiet_mode", "threads", "na_strings",
             "stall_timeout", "thread_scheme")
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
    # Evolutionary (search.evolution)
    "population": (int, 0, 0),             # random models first (0: max(4, 2 x groups, 2 x islands))
    "mutation_rate": (float, 0.2, 0.0),    # per gene, at most 1
    "tournament_size": (int, 3, 1),
    "islands": (int, 1, 1),
    "migration_interval": (int, 5, 1),     # an island's models between two migrations
    # successive halving (search.halving): strategy Halving, or early_culling with any strategy
    "early_culling": (bool, False, None),
    "min_epochs": (float, 0.0, 0.0),       # rung 0's epochs
    "reduction_factor": (int, 3, 2),       # eta: the best 1/eta of a rung go on
}
EVOLUTION_CRITERIA = ("population", "mutation_rate", "tournament_size", "islands", "migration_interval")
HALVING_CRITERIA = ("min_epochs", "reduction_factor")


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
    hyper, criteria = check_search(hyper, criteria, path)
    check_idle(fixed, hyper, path)
    return fixed, hyper, criteria


def check_search(hyper, criteria, where=None):
    """(hyper_params, criteria) checked together: ranges are for Evolutionary only."""
    hyper = check_hyper(hyper, where or "hyper_params")
    criteria = check_criteria(criteria, where or "search_criteria")
    if criteria["strategy"] != "Evolutionary" and has_ranges(hyper):
        name = next(k for k, v in hyper.items() if isinstance(v, Range))
        raise UserError(f"{where or 'hyper_params'}: hyper_params.{name} is a range {{min, max}}: strategy "
                        f"{criteria['strategy']} takes lists of values only; use strategy Evolutionary, or list "
                        "the values")
    return hyper, criteria


# parameters that act only with a manual learning rate (adaptive_rate false), and only with
# ADADELTA (adaptive_rate true), as H2O ignores them otherwise
MANUAL_RATE_ONLY = ("rate", "rate_annealing", "rate_decay", "momentum_start", "momentum_ramp", "momentum_stable",
                    "nesterov_accelerated_gradient")
ADAPTIVE_RATE_ONLY = ("rho", "epsilon")


def check_idle(fixed, hyper, where="hyper_params"):
    """UserError for a hyper-parameter that changes no model of the search: a manual-rate
    parameter while every model has adaptive_rate true, or rho/epsilon while none has."""
    adaptive = hyper.get("adaptive_rate", [fixed.get("adaptive_rate", P.SPEC["adaptive_rate"][1])])
    if isinstance(adaptive, Range):
        return
    for name in MANUAL_RATE_ONLY:
        if name in hyper and all(bool(a) for a in adaptive):
            raise UserError(f"{where}: hyper_params.{name} changes nothing while adaptive_rate is true (ADADELTA, "
                            "H2O's default) for every model: search rho and epsilon instead, or set adaptive_rate "
                            "= false")
    for name in ADAPTIVE_RATE_ONLY:
        if name in hyper and not any(bool(a) for a in adaptive):
            raise UserError(f"{where}: hyper_params.{name} changes nothing while adaptive_rate is false for every "
                            "model: search rate and momentum instead, or set adaptive_rate = true")


def check_hyper(hyper, where="hyper_params"):
    """{canonical name: [values of its type]}; each name a train parameter that may vary."""
    out = {}
    for key, values in hyper.items():
        name = P.canonical(key)
        key = config.shown(key)   # (as messages show it: one line)
        if name in P.H2O_ONLY:
            raise UserError(f"{where}: hyper_params.{key}: an H2O parameter this version does not implement "
                            f"({P.H2O_ONLY[name][0]}): searching it would change no model")
        if name in NOT_HYPER:
            raise UserError(f"{where}: hyper_params.{key}: says where data or outputs are, or how the "
                            "search runs; give it once, outside [hyper_params]")
        if name in out:
            raise UserError(f"{where}: hyper_params: {key} and {name} are the same parameter: give one")
        if isinstance(values, Range):  # (the Python API, already checked)
            values = values.as_table()
        if isinstance(values, dict):
            out[name] = _range(where, key, name, values)
            continue
        if not isinstance(values, list) or not values:
            raise UserError(f"{where}: hyper_params.{key} must be a non-empty list of values")
        out[name] = [config.value_of(f"{where}: hyper_params", name, v) for v in values]
        if len({repr(v) for v in out[name]}) != len(out[name]):
            raise UserError(f"{where}: hyper_params.{key} lists a value twice")
    return out


def _range(where, key, name, table):
    """hyper_params.<key> = {min = a, max = b[, log = true]}: a Range of a number parameter."""
    typ = P.SPEC[name][0] if name in P.SPEC else None
    if typ not in (int, float):
        why = "not a train parameter" if typ is None else "not a number parameter"
        raise UserError(f"{where}: hyper_params.{key}: a range {{min, max}} is only for a number parameter "
                        f"({key} is {why}); give a list of values")
    unknown = sorted(set(table) - {"min", "max", "log"})
    if unknown or "min" not in table or "max" not in table:
        raise UserError(f"{where}: hyper_params.{key}: a range is {{min = ..., max = ...[, log = true]}}"
                        + (f"; unknown key {unknown[0]!r}" if unknown else "; min and max are required"))
    log = table.get("log", False)
    if not isinstance(log, bool):
        raise UserError(f"{where}: hyper_params.{key}: log must be true or false, got {log!r}")
    lo, hi = (_bound(where, key, name, typ, table[b], b) for b in ("min", "max"))
    if not lo < hi:
        raise UserError(f"{where}: hyper_params.{key}: min ({lo!r}) must be below max ({hi!r})")
    if log and lo <= 0:
        raise UserError(f"{where}: hyper_params.{key}: log = true needs min > 0, got {lo!r}")
    return Range(lo, hi, log, typ is int)


def _bound(where, key, name, typ, value, which):
    """One end of a range, of the parameter's type and inside the parameter's own bounds."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and \
        (typ is float or float(value).is_integer())
    if not ok:
        kind = "an integer" if typ is int else "a finite number"
        raise UserError(f"{where}: hyper_params.{key}: {which} must be {kind}, got {value!r}")
    value = typ(value)
    check = P.SPEC[name][2]
    try:
        if check is not None:
            P.check_range(name, value, check)  # (the parameter's own bounds, as validate says them)
    except UserError as e:
        raise UserError(f"{where}: hyper_params.{key}: {which}: {e}") from None
    return value


def check_criteria(criteria, where="search_criteria"):
    """The search criteria, each checked and defaulted (H2O's names), and checked together:
    the criteria of one strategy are refused with another."""
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
    _check_together(out, {k for k in criteria if out[k] != CRITERIA[k][1]}, where)  # (set, not defaults)
    return out


def _check_together(out, given, where):
    strategy, culling = out["strategy"], out["strategy"] == "Halving" or out["early_culling"]
    for key in EVOLUTION_CRITERIA:
        if key in given and strategy != "Evolutionary":
            raise UserError(f"{where}: {key} is a criterion of strategy Evolutionary, not {strategy}")
    for key in HALVING_CRITERIA:
        if key in given and not culling:
            raise UserError(f"{where}: {key} is a criterion of strategy Halving or early_culling = true")
    if out["mutation_rate"] > 1:
        raise UserError(f"{where}: mutation_rate must be a probability in [0, 1], got {out['mutation_rate']!r}")
    if strategy == "Evolutionary" and out["max_models"] <= 0:
        raise UserError(f"{where}: max_models is required with strategy Evolutionary (the number of models "
                        "to train: random ones, then bred ones)")
    if strategy == "Evolutionary" and 0 < out["population"] < 2 * out["islands"]:
        raise UserError(f"{where}: population ({out['population']}) must be at least 2 x islands "
                        f"({out['islands']}): every island starts with two random models")
    if culling and out["min_epochs"] <= 0:
        raise UserError(f"{where}: min_epochs is required with "
                        f"{'strategy Halving' if strategy == 'Halving' else 'early_culling = true'} "
                        "(the epochs of rung 0, > 0)")
    out["early_culling"] = culling


def _criterion(where, key, value):
    typ, _default, lo = CRITERIA[key]
    if typ is bool:
        if not isinstance(value, bool):
            raise UserError(f"{where}: {key} must be true or false, got {value!r}")
        return value
    ok = (isinstance(value, str) if typ is str else
          not isinstance(value, bool) and isinstance(value, (int, float)) and
          (typ is float or float(value).is_integer()))
    if not ok:
        kind = "a string" if typ is str else "an integer" if typ is int else "a number"
        raise UserError(f"{where}: {key} must be {kind}, got {value!r}")
    if typ is str:
        return value
    value = typ(value)
    if not math.isfinite(value) or (lo is not None and value < lo):
        raise UserError(f"{where}: {key} must be a finite number >= {lo}, got {value!r}")
    return value
