"""H2O-3's early stopping rule (hex.ScoreKeeper.stopEarly), on metrics dicts from metrics.py.

The rule, for k = stopping_rounds over the scoring history (oldest first):
- k = 0 disables it.  H2O's history starts with an entry from before training (an empty row, or
  the null model of an autoencoder) which stopEarly skips: it needs len(history) - 1 >= 2k.
  `EarlyStopping` keeps that placeholder itself, so the rule can first fire at the 2k-th real
  scoring event, and only the last 2k events are ever used.
- k + 1 simple moving averages of window k over the last 2k events: the reference
  a0 = mean(events[-2k:-k]) and a1..ak, ai = mean(events[-2k+i : -k+i]).
- Any average NaN -> do not stop.
- Metric bounded below by 0 (logloss, MSE, RMSE, MAE, RMSLE, AUC, AUCPR, misclassification,
  mean_per_class_error) with a0 == 0 -> stop (converged to the bound).
- The averages change sign (sign(max) != sign(min)) -> do not stop; the extreme point
  (min of a1..ak when less is better, max when more is better) has another sign than a0 -> do
  not stop.
- Less is better: stop when min(a1..ak) / a0 >= 1 - stopping_tolerance; more is better (AUC,
  AUCPR, lift_top_group): stop when max(a1..ak) / a0 <= 1 + stopping_tolerance.  So training
  stops unless the best recent average improved on the reference by more than the relative
  tolerance.
AUTO resolves to logloss (classification), deviance (regression), MSE (autoencoder), as H2O's
ScoringInfo does.  Metric names are matched case-insensitively.

Also the loss that overwrite_with_best_model minimises (H2O-3's Model.loss(): best_model_metric,
h2o_loss), which training keeps the best model by and predict picks the default threshold by.
"""
import math

import numpy as np

# name -> (key in the metrics dict, direction: -1 less is better / +1 more is better,
#          bounded below by 0, classification only)
METRICS = {
    "deviance": ("mean_residual_deviance", -1, False, False),
    "logloss": ("logloss", -1, True, True),
    "MSE": ("mse", -1, True, False),
    "RMSE": ("rmse", -1, True, False),
    "MAE": ("mae", -1, True, False),
    "RMSLE": ("rmsle", -1, True, False),
    "AUC": ("auc", +1, True, True),
    "AUCPR": ("aucpr", +1, True, True),
    "lift_top_group": ("lift_top_group", +1, False, True),
    "misclassification": ("classification_error", -1, True, True),
    "mean_per_class_error": ("mean_per_class_error", -1, True, True),
}
_BY_LOWER = {k.lower(): k for k in METRICS}


def resolve_metric(metric, classification=True, autoencoder=False):
    """Canonical metric name; AUTO -> logloss / deviance / MSE."""
    m = str(metric)
    if m.lower() == "auto":
        return "MSE" if autoencoder else ("logloss" if classification else "deviance")
    try:
        return _BY_LOWER[m.lower()]
    except KeyError:
        raise ValueError(f"unknown stopping_metric {metric!r}; one of AUTO, "
                         + ", ".join(METRICS)) from None


def direction(metric):
    """-1 if smaller values are better, +1 if larger are better (metric resolved, not AUTO)."""
    return METRICS[resolve_metric(metric)][1]


def metric_value(metrics_dict, metric):
    """The metric's value in a metrics dict (NaN when missing)."""
    v = (metrics_dict or {}).get(METRICS[resolve_metric(metric)][0])
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def best_is_better(new, old, metric):
    """True when value `new` strictly beats `old` for `metric` (NaN never wins; any number beats
    None/NaN as `old`)."""
    if new is None or math.isnan(new):
        return False
    if old is None or math.isnan(old):
        return True
    return new < old if direction(metric) < 0 else new > old


def _sign(x):
    return (x > 0) - (x < 0)


def stop_early(values, k, metric, tolerance):
    """H2O's ScoreKeeper.stopEarly on a list of metric values, oldest first, whose first entry
    is H2O's pre-training placeholder (it is never used).  `metric` is a resolved name."""
    if k <= 0:
        return False
    n = len(values)
    if n - 1 < 2 * k:
        return False
    _, dirn, lower_bound_0, _ = METRICS[resolve_metric(metric)]
    avgs = []
    for i in range(k + 1):
        start = n - 2 * k + i
        s = 0.0
        for j in range(k):
            s += values[start + j]
        avgs.append(s / k)
        if math.isnan(avgs[-1]):
            return False
    ref, recent = avgs[0], avgs[1:]
    if lower_bound_0 and ref == 0.0:
        return True
    extreme = min(recent) if dirn < 0 else max(recent)
    if _sign(max(avgs)) != _sign(min(avgs)):
        return False
    if _sign(extreme) != _sign(ref):
        return False
    with_ratio = extreme / ref if ref != 0 else float("nan")
    if math.isnan(with_ratio):
        return False
    if dirn < 0:
        return with_ratio >= 1 - tolerance
    return with_ratio <= 1 + tolerance


class EarlyStopping:
    """Feed it the metrics dict of each scoring event; `add` says when to stop."""

    def __init__(self, stopping_rounds=5, stopping_metric="AUTO", stopping_tolerance=0.0,
                 classification=True, autoencoder=False):
        if stopping_rounds < 0:
            raise ValueError("stopping_rounds must be >= 0")
        if stopping_tolerance < 0:
            raise ValueError("stopping_tolerance must be >= 0")
        self.k = int(stopping_rounds)
        self.tolerance = float(stopping_tolerance)
        self.metric_name = resolve_metric(stopping_metric, classification, autoencoder)
        if METRICS[self.metric_name][3] and (not classification or autoencoder):
            raise ValueError(f"stopping_metric {self.metric_name} is for classification only")
        self.direction = METRICS[self.metric_name][1]
        self.values = []  # one per scoring event, oldest first
        self.stopped = False

    def value(self, metrics_dict):
        return metric_value(metrics_dict, self.metric_name)

    def add(self, metrics_dict):
        """Record a scoring event; True when training should stop now."""
        self.values.append(self.value(metrics_dict))
        # H2O's history has a leading pre-training entry that stopEarly skips
        self.stopped = stop_early([float("nan")] + self.values, self.k, self.metric_name,
                                  self.tolerance)
        return self.stopped

    def is_better(self, new_metrics, old_metrics):
        """Does metrics dict `new_metrics` strictly beat `old_metrics` (None = nothing yet)?"""
        old = None if old_metrics is None else self.value(old_metrics)
        return best_is_better(self.value(new_metrics), old, self.metric_name)


# overwrite_with_best_model keeps the model with the lowest H2O-3 Model.loss(): the
# stopping_metric's value, 1 - AUC and 1 - AUCPR for those two, and for AUTO logloss
# (classification), MSE (autoencoder) or deviance (regression).  Model.loss() has no case
# for RMSE: it takes AUTO's metric then, and so does this table.
# stopping_metric -> (key in the metrics dict, True: 1 - value)
_LOSS_OF_METRIC = {"logloss": ("logloss", False), "deviance": ("mean_residual_deviance", False),
                   "MSE": ("mse", False), "MAE": ("mae", False), "RMSLE": ("rmsle", False),
                   "misclassification": ("classification_error", False), "AUC": ("auc", True),
                   "AUCPR": ("aucpr", True), "mean_per_class_error": ("mean_per_class_error", False)}
_LOSS_AUTO = {"classification": "logloss", "regression": "deviance", "autoencoder": "MSE"}


def best_model_metric(kind, stopping_metric="AUTO"):
    """The metric overwrite_with_best_model minimises for a model of `kind`
    (classification, regression, autoencoder), as H2O-3's Model.loss() picks it."""
    name = "AUTO" if str(stopping_metric).lower() == "auto" else resolve_metric(stopping_metric)
    return name if name in _LOSS_OF_METRIC else _LOSS_AUTO[kind]


def h2o_loss(m, metric):
    """H2O-3's Model.loss() of metrics dict `m` for a metric of best_model_metric: lower is
    better, a float32 as H2O compares it; NaN when the metric is missing."""
    key, complement = _LOSS_OF_METRIC[metric]
    v = (m or {}).get(key)
    try:
        v = float(v)
    except (TypeError, ValueError):
        return math.nan
    return float(np.float32(1.0 - v if complement else v))
