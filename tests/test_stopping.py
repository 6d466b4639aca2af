"""H2O's early stopping rule on constructed metric sequences: the event at which it fires,
never before 2k events, the tolerance boundary, metric direction, stopping_rounds=0."""
import math

import numpy as np
import pytest

from h2odl_mpi.evaluation.stopping import EarlyStopping, best_is_better, direction, resolve_metric


def first_stop(values, k, metric="logloss", tol=0.0, key="logloss", **kw):
    """0-based index of the scoring event at which `add` first says stop, or None."""
    es = EarlyStopping(stopping_rounds=k, stopping_metric=metric, stopping_tolerance=tol, **kw)
    for i, v in enumerate(values):
        if es.add({key: v}):
            return i
    return None


def reference_first_stop(values, k, more_is_better, tol):
    """Independent statement of the rule (no sign/zero corner cases in the inputs used)."""
    v = np.asarray(values, dtype=float)
    for n in range(2 * k, len(v) + 1):
        w = v[n - 2 * k:n]
        avgs = np.array([w[i:i + k].mean() for i in range(k + 1)])
        ref, recent = avgs[0], avgs[1:]
        if more_is_better:
            if recent.max() / ref <= 1 + tol:
                return n - 1
        elif recent.min() / ref >= 1 - tol:
            return n - 1
    return None


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_stops_2k_after_plateau_starts(k):
    plateau_start = 7
    values = [1.0 * 0.8 ** i for i in range(plateau_start)] + [0.8 ** plateau_start] * 30
    # the first window whose reference average lies entirely on the plateau
    expected = plateau_start + 2 * k - 1
    assert first_stop(values, k) == expected
    assert first_stop(values, k) == reference_first_stop(values, k, False, 0.0)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_never_before_2k_events(k):
    values = [0.5] * 40  # no improvement at all: stops as soon as it may
    assert first_stop(values, k) == 2 * k - 1
    es = EarlyStopping(stopping_rounds=k, stopping_metric="logloss")
    assert [es.add({"logloss": v}) for v in values[:2 * k - 1]] == [False] * (2 * k - 1)


def test_stopping_rounds_zero_never_stops():
    assert first_stop([0.5] * 50, 0) is None
    assert first_stop([0.0] * 50, 0, metric="misclassification", key="classification_error") is None


@pytest.mark.parametrize("metric,key,more", [("logloss", "logloss", False), ("AUC", "auc", True)])
def test_tolerance_boundary(metric, key, more):
    # k = 2, events [a, a, b, b]: reference a, recent averages (a+b)/2 and b
    a, b = (0.8, 0.88) if more else (1.0, 0.9)
    rel = abs(b / a - 1.0)  # the relative improvement achieved
    values = [a, a, b, b]
    assert first_stop(values, 2, metric, tol=rel + 1e-9, key=key) == 3
    assert first_stop(values, 2, metric, tol=rel - 1e-9, key=key) is None


def test_direction_matters():
    rising = [0.6 + 0.01 * i for i in range(20)]
    # AUC rising by more than the tolerance never stops; the same numbers as logloss are
    # getting worse, so logloss stops as soon as allowed
    assert first_stop(rising, 3, "AUC", key="auc") is None
    assert first_stop(rising, 3, "logloss", key="logloss") == 5
    falling = rising[::-1]
    assert first_stop(falling, 3, "AUC", key="auc") == 5
    assert first_stop(falling, 3, "logloss", key="logloss") is None


def test_auc_plateau():
    k = 2
    values = [0.6, 0.7, 0.75, 0.78, 0.79, 0.795] + [0.795] * 10
    assert first_stop(values, k, "AUC", key="auc") == reference_first_stop(values, k, True, 0.0)
    assert first_stop(values, k, "AUC", tol=0.01, key="auc") == reference_first_stop(values, k, True, 0.01)
    assert first_stop(values, k, "AUC", tol=0.01, key="auc") < first_stop(values, k, "AUC", key="auc")


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("more", [False, True])
def test_random_sequences_match_reference(seed, more):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 5))
    tol = float(rng.choice([0.0, 1e-3, 1e-2]))
    steps = rng.normal(0.01, 0.02, size=60)
    values = 1.0 + np.cumsum(steps if more else -steps) * 0.1  # positive, noisy trend
    assert values.min() > 0
    metric, key = ("AUC", "auc") if more else ("MSE", "mse")
    assert first_stop(values, k, metric, tol, key=key) == reference_first_stop(values, k, more, tol)


def test_lower_bound_zero_stops():
    # misclassification reached 0: H2O stops as soon as the reference average is 0
    values = [0.2, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert first_stop(values, 2, "misclassification", key="classification_error") == 5
    # deviance is not bounded below by 0: 0/0 is NaN, which never stops
    assert first_stop(values, 2, "deviance", key="mean_residual_deviance",
                      classification=False) is None


def test_nan_and_sign_change_do_not_stop():
    vals = [0.5, 0.5, float("nan")] + [0.5] * 6
    # windows containing the NaN never stop; the first clean 2k-window does
    assert first_stop(vals, 2) == 2 + 2 * 2
    # deviance averages that change sign: not stopped
    assert first_stop([1.0, -1.0, 1.0, -1.0, 1.0, -1.0], 1, "deviance",
                      key="mean_residual_deviance", classification=False) is None
    # a missing key is NaN: never stops
    assert first_stop([0.5] * 10, 2, key="not_there") is None


def test_auto_resolution_and_values():
    assert EarlyStopping(classification=True).metric_name == "logloss"
    assert EarlyStopping(classification=False).metric_name == "deviance"
    assert EarlyStopping(classification=False, autoencoder=True).metric_name == "MSE"
    es = EarlyStopping(stopping_metric="aucpr")
    assert es.metric_name == "AUCPR" and es.value({"aucpr": 0.7}) == 0.7
    assert EarlyStopping(classification=False).value({"mean_residual_deviance": 2.5}) == 2.5
    assert EarlyStopping(stopping_metric="misclassification").value({"classification_error": 0.1}) == 0.1
    assert math.isnan(EarlyStopping().value({}))
    with pytest.raises(ValueError):
        EarlyStopping(stopping_metric="AUC", classification=False)
    with pytest.raises(ValueError):
        EarlyStopping(stopping_metric="nonsense")
    assert resolve_metric("rmse") == "RMSE"


def test_best_is_better():
    assert direction("AUC") == 1 and direction("logloss") == -1
    assert best_is_better(0.9, 0.8, "AUC") and not best_is_better(0.8, 0.9, "AUC")
    assert best_is_better(0.1, 0.2, "logloss") and not best_is_better(0.2, 0.1, "logloss")
    assert not best_is_better(0.2, 0.2, "MSE")  # strict
    assert best_is_better(0.5, None, "MSE") and best_is_better(0.5, float("nan"), "AUC")
    assert not best_is_better(float("nan"), 0.5, "MSE")
    es = EarlyStopping(stopping_metric="AUC")
    assert es.is_better({"auc": 0.9}, {"auc": 0.8}) and es.is_better({"auc": 0.5}, None)
