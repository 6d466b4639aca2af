"""H2O Deep Learning parameters: names, defaults and validation, in one place.

Every parameter keeps H2O-3's name and default so an H2O user's parameter list carries over.
`validate(params)` checks types and ranges, puts H2O-3's (Java) spelling of a named choice in
place of any spelling H2O accepts (h2o-py's "rectifier_with_dropout", "mean_imputation",
"mse": CHOICE_SPELLINGS), and fills derived defaults (dropout ratios for the ...WithDropout
activations, the loss for a distribution, the seed); its errors name the parameter.  The
command line, config files and the Python API all go through it.  h2o_parameters says for
every H2O-3 Deep Learning parameter what this version does with it; one SPEC lacks is
accepted when its value changes nothing here, else refused with the reason (check_implemented).
"""
import difflib
import math
import os
import re

from h2odl_mpi._kernel import lib
from h2odl_mpi.errors import UserError
from h2odl_mpi.h2o_parameters import (ANY, DIFFERENT, H2O_NAMES, H2O_ONLY, H2O_OTHER_NAMES,  # noqa: F401
                                      H2O_PARAMETERS, MAPPED, MAX_HIDDEN_LAYERS, MEANINGLESS, NOT_SUPPORTED,
                                      NOT_YET, SUPPORTED)

INF = math.inf

ACTIVATIONS = ("Tanh", "TanhWithDropout", "Rectifier", "RectifierWithDropout", "Maxout",
               "MaxoutWithDropout", "ExpRectifier", "ExpRectifierWithDropout")
LOSSES = ("Automatic", "CrossEntropy", "Quadratic", "Absolute", "Huber", "Quantile")
DISTRIBUTIONS = ("AUTO", "bernoulli", "multinomial", "gaussian", "poisson", "gamma", "tweedie",
                 "laplace", "quantile", "huber")
WEIGHT_DISTRIBUTIONS = ("UniformAdaptive", "Uniform", "Normal")
CATEGORICAL_ENCODINGS = ("AUTO", "OneHotInternal", "Binary", "LabelEncoder", "SortByResponse")
MISSING_VALUES_HANDLING = ("MeanImputation", "Skip")
# distribution -> the kernel's loss for a linear output (the others: Quadratic, or the loss parameter)
LOSS_OF_DISTRIBUTION = {"poisson": "poisson", "gamma": "gamma", "tweedie": "tweedie", "bernoulli": "bernoulli",
                        "laplace": "Absolute", "huber": "Huber", "quantile": "Quantile"}
MAX_UNITS = 2 ** 31 - 1     # units of a layer: a C int in the kernel's h2o_config
MAX_MINI_BATCH = lib.H2O_MAX_MINI_BATCH  # mini_batch_size, at most (the kernel's limit)
THREADS_PER_CORE = 4        # threads: at most this many per core this process may use
ALLOW_INF = ("max_w2",)     # float parameters for which Inf means something (H2O's default)
COMBINING_RULES = ("AUTO", "Average", "BlockMomentum", "ElasticAveraging")
FOLD_ASSIGNMENTS = ("AUTO", "Random", "Modulo", "Stratified")
STOPPING_METRICS = ("AUTO", "deviance", "logloss", "MSE", "RMSE", "MAE", "RMSLE", "AUC", "AUCPR",
                    "misclassification", "mean_per_class_error")

# name: (type, default, check, help).  check: a tuple of choices, or (lo, hi, lo_open, hi_open).
SPEC = {
    "train": (str, None, None, "training data file (H2O's training_frame)"),
    "validation": (str, None, None, "validation data file (H2O's validation_frame)"),
    "response": (str, None, None, "response column name (H2O's response_column)"),
    "na_strings": (list, None, None, "values read as missing in the train and validation files, besides empty "
                                     "fields, blanks, NA, NaN, nan, N/A and ?; comma separated (H2O-3's parse "
                                     "option na_strings, of h2o.import_file)"),
    "ignored_columns": (list, [], None, "columns to leave out, comma separated"),
    "hidden": (list, [200, 200], None, "hidden layer sizes, comma separated"),
    "epochs": (float, 10.0, (0.0, INF, False, False), "passes over the training data (0: the initial, untrained network, scored)"),
    "activation": (str, "Rectifier", ACTIVATIONS, "hidden activation"),
    "input_dropout_ratio": (float, 0.0, (0.0, 1.0, False, True), "input dropout"),
    "hidden_dropout_ratios": (list, None, None, "per hidden layer dropout (WithDropout activations; default 0.5)"),
    "adaptive_rate": (bool, True, None, "ADADELTA"),
    "rho": (float, 0.99, (0.0, 1.0, True, False), "ADADELTA decay"),
    "epsilon": (float, 1e-8, (0.0, INF, True, False), "ADADELTA smoothing"),
    "rate": (float, 0.005, (0.0, INF, True, False), "manual learning rate"),
    "rate_annealing": (float, 1e-6, (0.0, INF, False, False), "rate / (1 + rate_annealing * samples)"),
    "rate_decay": (float, 1.0, (0.0, INF, True, False), "per-layer rate factor"),
    "momentum_start": (float, 0.0, (0.0, 1.0, False, True), "initial momentum"),
    "momentum_ramp": (float, 1e6, (0.0, INF, False, False), "samples to ramp momentum"),
    "momentum_stable": (float, 0.0, (0.0, 1.0, False, True), "final momentum"),
    "nesterov_accelerated_gradient": (bool, True, None, "Nesterov momentum"),
    "l1": (float, 0.0, (0.0, INF, False, False), "L1 regularisation"),
    "l2": (float, 0.0, (0.0, INF, False, False), "L2 regularisation"),
    "max_w2": (float, INF, (0.0, INF, True, False), "max sum of squared incoming weights"),
    "initial_weight_distribution": (str, "UniformAdaptive", WEIGHT_DISTRIBUTIONS, "initial weights"),
    "initial_weight_scale": (float, 1.0, (0.0, INF, True, False), "scale of Uniform/Normal init"),
    "loss": (str, "Automatic", LOSSES, "loss function"),
    "distribution": (str, "AUTO", DISTRIBUTIONS, "response distribution"),
    "tweedie_power": (float, 1.5, (1.0, 2.0, True, True), "tweedie power"),
    "quantile_alpha": (float, 0.5, (0.0, 1.0, False, False), "quantile"),
    "huber_alpha": (float, 0.9, (0.0, 1.0, False, False), "Huber: quantile of |residual| used as delta"),
    "seed": (int, -1, None, "random seed (-1: time-based)"),
    "reproducible": (bool, False, None, "one thread, bit-reproducible for a seed"),
    "train_samples_per_iteration": (int, -2, None, "rows per iteration: 0 epoch, -1 all local rows, -2 auto"),
    "target_ratio_comm_to_comp": (float, 0.05, (0.0, INF, False, False), "auto-tuning target"),
    "score_interval": (float, 5.0, (0.0, INF, False, False), "seconds between scorings"),
    "score_training_samples": (int, 10000, (0, INF, False, False), "rows scored on training data (0 = all)"),
    "score_validation_samples": (int, 0, (0, INF, False, False), "rows scored on validation data (0 = all)"),
    "score_validation_sampling": (str, "Uniform", ("Uniform", "Stratified"), "how validation rows are sampled for scoring"),
    "score_duty_cycle": (float, 0.1, (0.0, 1.0, False, False), "max fraction of time spent scoring"),
    "stopping_rounds": (int, 5, (0, INF, False, False), "early stopping: moving-average window (0 disables)"),
    "stopping_metric": (str, "AUTO", STOPPING_METRICS, "early stopping metric"),
    "stopping_tolerance": (float, 0.0, (0.0, INF, False, False), "early stopping: relative improvement needed"),
    "max_runtime_secs": (float, 0.0, (0.0, INF, False, False), "stop after this many seconds (0: no limit)"),
    "classification_stop": (float, 0.0, (-1.0, 1.0, False, False), "stop when training error <= this (-1 disables)"),
    "regression_stop": (float, 1e-6, (-1.0, INF, False, False), "stop when training MSE <= this (-1 disables)"),
    "standardize": (bool, True, None, "standardise numeric inputs"),
    "sparse": (bool, False, None, "sparse data: numeric inputs are divided by their standard deviation but "
                                  "not centred, so zeros stay zero and the kernel skips them (H2O's DESCALE)"),
    "categorical_encoding": (str, "AUTO", CATEGORICAL_ENCODINGS, "categorical inputs to network inputs"),
    "use_all_factor_levels": (bool, True, None, "one input per level (false: drop the first)"),
    "max_categorical_features": (int, 2 ** 31 - 1, (1, INF, False, False), "hash categorical inputs into this many units"),
    "missing_values_handling": (str, "MeanImputation", MISSING_VALUES_HANDLING, "NA inputs"),
    "weights_column": (str, None, None, "observation weights column"),
    "balance_classes": (bool, False, None, "over/under-sample classes to balance them"),
    "class_sampling_factors": (list, None, None, "per-class sampling factors (balance_classes), comma separated"),
    "max_after_balance_size": (float, 5.0, (0.0, INF, True, False), "balanced data size, relative to the training rows"),
    "offset_column": (str, None, None, "offset column (regression, link space)"),
    "ignore_const_cols": (bool, True, None, "drop constant columns"),
    "fast_mode": (bool, True, None, "H2O's fast back-propagation approximation"),
    "mini_batch_size": (int, 1, (1, MAX_MINI_BATCH, False, False),
                        "rows a kernel thread trains per update of the weights (H2O-3 fixes it at 1)"),
    "shuffle_training_data": (bool, False, None, "shuffle rows each iteration"),
    "replicate_training_data": (bool, True, None, "every rank holds all training rows"),
    "combining_rule": (str, "AUTO", COMBINING_RULES, "how the ranks' models are combined after each iteration "
                                                    "(AUTO: BlockMomentum; Average: H2O's model averaging)"),
    "block_momentum": (float, -1.0, None, "BlockMomentum: the block momentum in [0, 1) (-1: 1 - 1/ranks)"),
    "block_learning_rate": (float, 1.0, (0.0, INF, True, False), "BlockMomentum: the block learning rate"),
    "block_nesterov": (bool, True, None, "BlockMomentum: ranks train from the Nesterov look-ahead"),
    "combine_precision": (str, "float32", ("float32", "bfloat16", "bfloat16_log8"),
                          "how the ranks' changes travel when combined (bfloat16: 1/2 the bytes, bfloat16_log8: 1/3)"),
    "elastic_averaging": (bool, False, None, "H2O's elastic averaging (combining_rule ElasticAveraging)"),
    "elastic_averaging_moving_rate": (float, 0.9, (0.0, 1.0, True, False),
                                      "ElasticAveraging: weight of the ranks' mean in the consensus model"),
    "elastic_averaging_regularization": (float, 1e-3, (0.0, 1.0, False, False),
                                         "ElasticAveraging: pull of the ranks' model toward the consensus"),
    "autoencoder": (bool, False, None, "train an autoencoder"),
    "overwrite_with_best_model": (bool, True, None, "keep the best scored model"),
    "quiet_mode": (bool, False, None, "no progress lines"),
    "threads": (int, 0, (0, INF, False, False), "kernel threads per rank (0: the cores this process may use)"),
    "thread_scheme": (str, "auto", ("auto", "hogwild", "replicas"), "how a rank's threads train: hogwild (one shared "
                      "model, H2O's), replicas (a model each, averaged after every kernel call), auto (replicas on 2 or more threads)"),
    "model_out": (str, None, None, "write the final model to this HDF5 file"),
    "summary_json": (str, None, None, "write a run summary (JSON) to this file"),
    "scoring_history": (str, None, None, "write the scoring history (CSV) to this file"),
    "checkpoint": (str, None, None, "continue training the model in this file (epochs: the total)"),
    "resume": (str, None, None, "continue from the newest valid checkpoint in this directory, "
                                "or start fresh when there is none (implies checkpoint_dir)"),
    "checkpoint_dir": (str, None, None, "write checkpoints here; SIGTERM/SIGUSR1 then checkpoint "
                                        "and exit with status 85 (requeue)"),
    "checkpoint_interval": (str, "600", None, "seconds between checkpoints, or iterations as e.g. 100it (0: "
                                              "only at a signal and at the end)"),
    "checkpoint_keep": (int, 3, (0, INF, False, False), "checkpoints kept in checkpoint_dir (0: all)"),
    "stall_timeout": (float, 300.0, (0.0, INF, False, True), "seconds a rank may wait for one that stopped "
                      "answering: then a checkpoint, a line naming it, exit status 85 (0: off)"),
    "pretrained_autoencoder": (str, None, None, "start from the input and hidden layers of this autoencoder "
                                                "model file (same inputs and hidden layers)"),
    "variable_importances": (bool, True, None, "compute the inputs' importances (Gedeon) at the end"),
    "export_weights_and_biases": (bool, False, None, "also write each layer's weights and biases as CSV "
                                                     "into the directory <model_out>.weights"),
    # N-fold cross-validation (h2odl_mpi/workflows/cross_validation.py, h2odl_mpi/data/folds.py)
    "nfolds": (int, 0, None, "cross-validation folds: 0 (none) or at least 2"),
    "fold_column": (str, None, None, "column naming each row's cross-validation fold (levels, or integers "
                                     "0..N-1 or 1..N); never an input"),
    "fold_assignment": (str, "AUTO", FOLD_ASSIGNMENTS, "how nfolds assigns rows to folds (AUTO: Random)"),
    "keep_cross_validation_models": (bool, True, None, "write each fold's model as <model_out stem>_cv_<k>.h5 "
                                                       "(with model_out)"),
    "keep_cross_validation_predictions": (bool, False, None, "write the holdout predictions as <model_out "
                                                             "stem>_cv_holdout_predictions.csv"),
    "keep_cross_validation_fold_assignment": (bool, False, None, "write each row's fold as <model_out "
                                                                 "stem>_cv_fold_assignment.csv"),
}

# H2O's values of a parameter that this version does not implement: refused with the reason
REFUSED_CHOICES = {
    "categorical_encoding": {
        "Eigen": "its projection of each column's one-hot matrix onto the leading eigenvector is "
                 "not implemented",
        "OneHotExplicit": "use OneHotInternal (the same units, built without copying the frame)",
        "Enum": "use AUTO",
        "EnumLimited": "use AUTO with max_categorical_features",
    },
    "distribution": {
        "modified_huber": "the modified Huber loss is not implemented; use bernoulli",
        "quasibinomial": "H2O-3's Deep Learning refuses it too",
        "custom": "custom distributions are functions uploaded to an H2O cluster",
    },
    "loss": {"ModifiedHuber": "the modified Huber loss is not implemented; use CrossEntropy"},
}

# H2O-3's names for parameters that have a shorter one here: accepted as the same parameter
ALIASES = {"training_frame": "train", "validation_frame": "validation", "response_column": "response"}

# train --help's groups, in order, as H2O's documentation groups the parameters: every SPEC
# parameter and every accepted H2O parameter that does something (DIFFERENT) is in one
GROUPS = tuple((title, tuple(names.split())) for title, names in (
    ("data", "train validation response ignored_columns weights_column offset_column na_strings ignore_const_cols "
             "standardize sparse categorical_encoding use_all_factor_levels max_categorical_features "
             "missing_values_handling balance_classes class_sampling_factors max_after_balance_size"),
    ("network", "hidden activation initial_weight_distribution initial_weight_scale autoencoder "
                "pretrained_autoencoder"),
    ("training and epochs", "epochs seed reproducible threads thread_scheme mini_batch_size fast_mode shuffle_training_data"),
    ("adaptive learning rate and learning rate", "adaptive_rate rho epsilon rate rate_annealing rate_decay "
                                                 "momentum_start momentum_ramp momentum_stable "
                                                 "nesterov_accelerated_gradient"),
    ("regularization", "input_dropout_ratio hidden_dropout_ratios l1 l2 max_w2"),
    ("distribution and loss", "distribution loss tweedie_power quantile_alpha huber_alpha"),
    ("stopping and scoring", "stopping_rounds stopping_metric stopping_tolerance max_runtime_secs "
                             "classification_stop regression_stop overwrite_with_best_model score_interval "
                             "score_duty_cycle score_each_iteration score_training_samples score_validation_samples "
                             "score_validation_sampling variable_importances quiet_mode"),
    ("cross-validation", "nfolds fold_column fold_assignment keep_cross_validation_models "
                         "keep_cross_validation_predictions keep_cross_validation_fold_assignment"),
    ("checkpoints and outputs", "model_out summary_json scoring_history export_weights_and_biases checkpoint resume "
                                "checkpoint_dir checkpoint_interval checkpoint_keep stall_timeout"),
    ("distributed training and combining", "replicate_training_data train_samples_per_iteration "
                                           "target_ratio_comm_to_comp combining_rule block_momentum "
                                           "block_learning_rate block_nesterov combine_precision elastic_averaging "
                                           "elastic_averaging_moving_rate elastic_averaging_regularization"),
))


def choice_key(text):
    """How H2O-3 matches a choice (water.util.EnumUtils.valueOf): case and every character but
    letters and digits ignored, so h2o-py's spellings ("rectifier_with_dropout",
    "mean_imputation", "one_hot_internal", "mse", "cross_entropy", "uniform_adaptive", "auto")
    name the same choice as H2O-3's Java ones ("RectifierWithDropout", ...)."""
    return re.sub(r"[^0-9A-Z]", "", str(text).upper())


# The one table of spellings: for every parameter with named choices (SPEC), choice_key of
# each choice (those REFUSED_CHOICES refuses too) -> the canonical H2O-3 (Java) spelling that
# validate() puts in its place, so every spelling works from the CLI, a config file and Python.
CHOICE_SPELLINGS = {name: {choice_key(c): c for c in (*spec[2], *REFUSED_CHOICES.get(name, ()))}
                    for name, spec in SPEC.items()
                    if isinstance(spec[2], tuple) and spec[2] and isinstance(spec[2][0], str)}
assert all(len(t) == len(SPEC[n][2]) + len(REFUSED_CHOICES.get(n, ())) for n, t in CHOICE_SPELLINGS.items())


def closest(name, extra=()):
    """The known parameter name nearest to a misspelt `name` (or one of `extra`), or None."""
    name = name.replace("-", "_")
    found = difflib.get_close_matches(name, sorted((known_names() | set(extra)) - {name}), n=1)
    return found[0] if found else None


def known_names():
    """Every parameter name train takes: SPEC's, ALIASES' and the H2O parameters SPEC lacks."""
    return set(SPEC) | set(ALIASES) | set(H2O_ONLY)


def canonical(name):
    """The parameter's name here for an H2O-3 name (training_frame -> train)."""
    return ALIASES.get(name, name)


def type_of(name):
    """A parameter's type: SPEC's, or the H2O table's for an H2O parameter SPEC lacks."""
    return SPEC[name][0] if name in SPEC else H2O_ONLY[name][2][0]


def defaults():
    """A dict of every parameter at H2O's default."""
    return {k: (list(v[1]) if isinstance(v[1], list) else v[1]) for k, v in SPEC.items()}


def parse_bool(name, text):
    t = str(text).strip().lower()
    if t in ("true", "1", "yes", "t"):
        return True
    if t in ("false", "0", "no", "f"):
        return False
    raise UserError(f"--{name}: expected true or false, got {text!r}")


def parse_value(name, text):
    """Parse a command-line string for parameter `name` into its type."""
    typ = type_of(name)
    try:
        if typ is bool:
            return parse_bool(name, text)
        if typ is int:
            return int(float(text)) if float(text) == int(float(text)) else _bad_int(name, text)
        if typ is float:
            return float(text)
        if typ is list:
            items = [s.strip() for s in str(text).split(",") if s.strip()]  # (names may hold blanks)
            if name == "hidden":
                return [int(s) for s in items]
            if name in ("hidden_dropout_ratios", "class_sampling_factors"):
                return [float(s) for s in items]
            return items
        return str(text)
    except (ValueError, OverflowError):  # (int(float("inf")) overflows)
        raise UserError(f"--{name}: cannot read {text!r} as {typ.__name__}") from None


def parse_interval(text):
    """("seconds", s) or ("iterations", n) from "600", "2.5", "100it"; ("off", 0) for "0"."""
    t = str(text).strip().lower()
    try:
        if t.endswith("it"):
            n = int(t[:-2])
            if n < 0:
                raise ValueError
            return ("iterations", n) if n else ("off", 0)
        s = float(t)
        if not s >= 0:
            raise ValueError
        return ("seconds", s) if s else ("off", 0)
    except ValueError:
        raise UserError(f"checkpoint_interval: expected seconds (e.g. 600) or iterations "
                        f"(e.g. 100it), got {text!r}") from None


def _bad_int(name, text):
    raise UserError(f"--{name}: expected an integer, got {text!r}")


def cores_available():
    """Cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def check_threads(name, threads):
    """A thread count: 0 (automatic) up to THREADS_PER_CORE x the cores this process may use
    (more only oversubscribes the cores, and tens of thousands make OpenMP fail)."""
    limit = THREADS_PER_CORE * cores_available()
    if not 0 <= threads <= limit:
        raise UserError(f"{name} = {threads}: expected 0 (all cores) up to {limit} ({THREADS_PER_CORE} x the "
                        f"{limit // THREADS_PER_CORE} cores this process may use)")
    return threads


def _check_finite(name, value):
    """NaN is refused for every float parameter, Inf for all but ALLOW_INF."""
    if isinstance(value, float) and (math.isnan(value) or (math.isinf(value) and name not in ALLOW_INF)):
        raise UserError(f"{name} = {value}: expected a finite number")


def check_range(name, value, check):
    """UserError naming parameter `name` unless `value` lies in its SPEC range `check`."""
    if isinstance(check, tuple) and len(check) == 4 and not isinstance(check[0], str):
        lo, hi, lo_open, hi_open = check
        ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
        if not ok or (isinstance(value, float) and math.isnan(value)):
            lb, rb = "(" if lo_open else "[", ")" if hi_open else "]"
            raise UserError(f"{name} = {value} is out of range {lb}{lo}, {hi}{rb}")
    elif isinstance(check, tuple) and value in REFUSED_CHOICES.get(name, {}):
        raise UserError(f"{name}={value!r} is not supported: {REFUSED_CHOICES[name][value]}")
    elif isinstance(check, tuple) and value not in check:
        raise UserError(f"{name} = {value!r} is not one of {', '.join(check)}")


def _check_cross_validation(p):
    """H2O-3's checks of the cross-validation parameters (ModelBuilder.init, DeepLearning's
    validate), and this version's: the files it keeps go next to model_out."""
    n, column, how = p["nfolds"], p["fold_column"], p["fold_assignment"]
    if n < 0 or n == 1:
        raise UserError(f"nfolds = {n}: must be 0 (no cross-validation) or at least 2")
    if column and n:
        raise UserError("nfolds and fold_column exclude each other: the fold column names the folds")
    if how != "AUTO" and (column or not n):
        raise UserError(f"fold_assignment = {how}: " + ("not allowed with fold_column (the column assigns the folds)"
                                                        if column else "only for cross-validation (give nfolds >= 2)"))
    for key in ("keep_cross_validation_predictions", "keep_cross_validation_fold_assignment"):
        if p[key] and not (n or column):
            raise UserError(f"{key}: only for cross-validation (give nfolds >= 2 or fold_column)")
        if p[key] and not p["model_out"]:
            raise UserError(f"{key} writes next to the model: give model_out too")
    if not (n or column):
        return
    name = "fold_column" if column else "nfolds"
    if p["autoencoder"]:
        raise UserError(f"{name}: cross-validation is not supported for an autoencoder (as in H2O-3)")
    if p["checkpoint"]:
        raise UserError(f"{name}: cross-validation cannot continue a checkpoint (every fold model would start "
                        "from it); train without checkpoint")
    for key in ("response", "weights_column", "offset_column"):
        if column and column == p[key]:
            raise UserError(f"fold_column: column {column!r} is the {key}; give the folds a column of their own")


def _resolve_combining_rule(p):
    """AUTO is BlockMomentum; H2O's elastic_averaging=true is ElasticAveraging."""
    if p["elastic_averaging"]:
        if p["combining_rule"] not in ("AUTO", "ElasticAveraging"):
            raise UserError(f"elastic_averaging = true and combining_rule = {p['combining_rule']} exclude each other")
        p["combining_rule"] = "ElasticAveraging"
    elif p["combining_rule"] == "AUTO":
        p["combining_rule"] = "BlockMomentum"
    bm = p["block_momentum"]
    if not (bm == -1.0 or 0.0 <= bm < 1.0):
        raise UserError(f"block_momentum = {bm} must be -1 (1 - 1/ranks) or in [0, 1)")
    if p["combine_precision"] == "bfloat16_log8" and not p["adaptive_rate"]:
        raise UserError("combine_precision = bfloat16_log8 needs ADADELTA (adaptive_rate = true); with momenta use bfloat16")


def _check_sizes(p):
    """Hidden layers (count, units), sampling factors and threads within their limits."""
    if any(h < 1 for h in p["hidden"]):
        raise UserError(f"hidden must list positive layer sizes (or none: [], no hidden layer), got {p['hidden']}")
    if len(p["hidden"]) > MAX_HIDDEN_LAYERS:
        raise UserError(f"hidden: at most {MAX_HIDDEN_LAYERS} hidden layers, got {len(p['hidden'])}")
    if max(p["hidden"], default=0) > MAX_UNITS:
        raise UserError(f"hidden: a layer of {max(p['hidden']):,} units is more than the kernel's "
                        f"limit of {MAX_UNITS:,}")
    for f in p["class_sampling_factors"] or ():
        if not (math.isfinite(f) and f > 0):
            raise UserError(f"class_sampling_factors value {f} must be a finite number > 0")
    check_threads("threads", p["threads"])


def _of_type(label, typ, value):
    """`value` of an H2O parameter SPEC lacks as its type (None: not given), or a UserError."""
    ok = value is None or (isinstance(value, typ) and not (typ is int and isinstance(value, bool)))
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if typ is int and isinstance(value, float) and value.is_integer():
        value, ok = int(value), True
    if not ok:
        raise UserError(f"{label} must be of type {typ.__name__}, got {value!r}")
    _check_finite(label, value)
    return value


def _same(a, b):
    """Whether two values of a parameter are the same (named choices as H2O matches them)."""
    if isinstance(a, str) and isinstance(b, str):
        return choice_key(a) == choice_key(b) if a and b else a == b
    return a == b and type(a) is type(b)


def check_implemented(name, value, prefix=""):
    """`value` of H2O parameter `name`, which SPEC lacks (H2O_ONLY), as its type when it
    changes nothing here (its inert values; score_each_iteration: MAPPED); else a UserError
    naming it (after `prefix`: "--", a file) with the reason."""
    _status, note, (typ, _default, inert) = H2O_ONLY[name]
    value = _of_type(prefix + name, typ, value)
    if inert is not ANY and value is not None and not any(_same(value, v) for v in inert):
        raise UserError(f"{prefix}{name}: not supported in this version ({note})")
    return value


def notes(params, flags=False):
    """A line for each H2O parameter SPEC lacks that `params` gives a value other than H2O's
    default: what it does here (score_each_iteration) or that it changes nothing (as flags:
    --name value, else name = value)."""
    out = []
    for name, value in params.items():
        if name in H2O_ONLY and value is not None and not _same(value, H2O_ONLY[name][2][1]):
            status, note = H2O_ONLY[name][:2]
            shown = str(value).lower() if isinstance(value, bool) else str(value)
            given = f"--{name} {shown}" if flags else f"{name} = {shown}"
            out.append(f"note: {given}: {note}" if status == DIFFERENT else
                       f"note: {given} changes nothing here ({note})")
    return out


def validate(params):
    """Check every parameter and fill the derived ones; returns a new dict (of SPEC's
    parameters: an H2O parameter SPEC lacks is checked, then left out)."""
    p, mapped = defaults(), {}
    for k, v in params.items():
        if k in ALIASES:
            if params.get(ALIASES[k]) not in (None, v):
                raise UserError(f"{k} and {ALIASES[k]} are the same parameter: give one")
            k = ALIASES[k]
        if k in H2O_ONLY:  # accepted with a value that changes nothing here, or refused
            if check_implemented(k, v) is True and k in MAPPED:
                mapped.update(MAPPED[k])
            continue
        if k not in SPEC:
            near = closest(k)
            raise UserError(f"unknown parameter {k!r}" + (f" (did you mean {near}?)" if near else ""))
        p[k] = v
    p.update(mapped)  # (score_each_iteration: what it means, whatever score_interval says)
    for name, (typ, _default, check, _help) in SPEC.items():
        v = p[name]
        if v is None:
            continue
        if name in CHOICE_SPELLINGS and isinstance(v, str):  # h2o-py's spelling -> H2O-3's
            v = p[name] = CHOICE_SPELLINGS[name].get(choice_key(v), v)
        if typ is float and isinstance(v, int) and not isinstance(v, bool):
            v = p[name] = float(v)
        if typ is int and isinstance(v, float) and v == int(v):
            v = p[name] = int(v)
        if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
            raise UserError(f"{name} must be of type {typ.__name__}, got {v!r}")
        _check_finite(name, v)
        if check is not None:
            check_range(name, v, check)
    _check_sizes(p)
    if p["class_sampling_factors"] is not None and not p["balance_classes"]:
        raise UserError("class_sampling_factors requires balance_classes = true (as in H2O-3)")
    n_hidden = len(p["hidden"])
    dropout = p["activation"].endswith("WithDropout")
    if p["hidden_dropout_ratios"] is None:
        p["hidden_dropout_ratios"] = [0.5 if dropout else 0.0] * n_hidden
    else:
        hd = p["hidden_dropout_ratios"]
        if not dropout and any(r != 0 for r in hd):
            raise UserError("hidden_dropout_ratios needs an activation ...WithDropout "
                            f"(activation is {p['activation']})")
        if len(hd) != n_hidden:
            raise UserError(f"hidden_dropout_ratios has {len(hd)} values for {n_hidden} hidden layers")
        for r in hd:
            if not 0.0 <= r < 1.0:
                raise UserError(f"hidden_dropout_ratios value {r} is out of range [0, 1)")
    if p["train_samples_per_iteration"] < -2:
        raise UserError("train_samples_per_iteration must be -2, -1, 0 or a positive row count, "
                        f"got {p['train_samples_per_iteration']}")
    if not p["autoencoder"] and p["train"] is not None and not p["response"]:
        raise UserError("response is required (the response column name) unless autoencoder is true")
    if p["reproducible"]:  # (one thread on one model: the bits of a seed)
        p["threads"], p["thread_scheme"] = 1, "hogwild"
    parse_interval(p["checkpoint_interval"])
    if p["checkpoint"] and p["resume"]:
        raise UserError("checkpoint and resume exclude each other (resume picks the checkpoint)")
    if p["pretrained_autoencoder"]:
        if p["autoencoder"]:
            raise UserError("pretrained_autoencoder initialises a supervised model: autoencoder must be false")
        if p["checkpoint"]:
            raise UserError("pretrained_autoencoder and checkpoint exclude each other (a checkpoint "
                            "already holds trained weights)")
    if p["export_weights_and_biases"] and not p["model_out"]:
        raise UserError("export_weights_and_biases writes next to the model: give model_out too")
    _check_cross_validation(p)
    _resolve_combining_rule(p)
    if p["resume"] and not p["checkpoint_dir"]:
        p["checkpoint_dir"] = p["resume"]
    return p
