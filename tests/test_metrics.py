"""Serial metrics against scikit-learn on the same predictions (with and without weights,
with missing responses), plus edge cases: one class present, tied scores, empty input."""
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from h2odl_mpi.evaluation.metrics import (auc, average_precision, autoencoder_metrics, classification_metrics,
                               max_f1_threshold, regression_metrics, scalar_metrics)

REL = 1e-10


def close(a, b, rel=REL):
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-13)


def make_cls(n, K, seed, nan_frac=0.1, weighted=True):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, K)) * 1.5
    y = rng.integers(0, K, size=n).astype(np.float64)
    logits[np.arange(n), y.astype(int)] += 1.0  # some signal
    prob = np.exp(logits)
    prob /= prob.sum(1, keepdims=True)
    y[rng.random(n) < nan_frac] = np.nan
    w = rng.uniform(0.1, 3.0, size=n) if weighted else None
    return prob, y, w


def _kept(prob, y, w):
    ok = ~np.isnan(y)
    return prob[ok], y[ok].astype(int), (None if w is None else w[ok])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")  # top-k with k = K
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("K", [3, 7, 12])
def test_multinomial_equals_sklearn(K, weighted):
    prob, y, w = make_cls(800, K, seed=K + 10 * weighted, weighted=weighted)
    m = classification_metrics(prob, y, w)
    p, yy, ww = _kept(prob, y, w)
    labels = list(range(K))
    pred = p.argmax(1)
    assert m["nobs"] == len(yy) < len(y)
    assert close(m["logloss"], skm.log_loss(yy, p, sample_weight=ww, labels=labels))
    assert close(m["classification_error"], 1 - skm.accuracy_score(yy, pred, sample_weight=ww))
    p_true = p[np.arange(len(yy)), yy]
    assert close(m["mse"], skm.mean_squared_error(np.ones(len(yy)), p_true, sample_weight=ww))
    assert close(m["rmse"], math.sqrt(m["mse"]))
    assert close(m["mean_per_class_error"],
                 1 - skm.balanced_accuracy_score(yy, pred, sample_weight=ww))
    cm = skm.confusion_matrix(yy, pred, labels=labels, sample_weight=ww)
    np.testing.assert_allclose(np.array(m["confusion_matrix"], dtype=float), cm, rtol=1e-12)
    if not weighted:
        assert all(isinstance(v, int) for row in m["confusion_matrix"] for v in row)
    kmax = min(10, K)
    assert len(m["hit_ratios"]) == kmax
    for k in range(1, kmax + 1):
        ref = skm.top_k_accuracy_score(yy, p, k=k, labels=labels, sample_weight=ww)
        assert close(m["hit_ratios"][k - 1], ref), k
    assert "auc" not in m


def test_hit_ratio_k_limit():
    prob, y, w = make_cls(300, 12, seed=3)
    assert len(classification_metrics(prob, y, w, max_hit_ratio_k=4)["hit_ratios"]) == 4
    assert classification_metrics(prob, y, w)["hit_ratios"][-1] < 1.0  # k=10 < 12 classes


@pytest.mark.parametrize("weighted", [False, True])
def test_binomial_equals_sklearn(weighted):
    prob, y, w = make_cls(1000, 2, seed=5, weighted=weighted)
    p, yy, ww = _kept(prob, y, w)
    s = p[:, 1]
    for mode in ("argmax", "max_f1"):
        m = classification_metrics(prob, y, w, binomial_threshold=mode)
        assert close(m["auc"], skm.roc_auc_score(yy, s, sample_weight=ww))
        assert close(m["aucpr"], skm.average_precision_score(yy, s, sample_weight=ww))
        assert close(m["logloss"], skm.log_loss(yy, p, sample_weight=ww))
        assert close(m["mse"], skm.brier_score_loss(yy, s, sample_weight=ww))
        if mode == "argmax":
            pred = p.argmax(1)
            assert m["threshold"] == 0.5
        else:
            prec, rec, thr = skm.precision_recall_curve(yy, s, sample_weight=ww)
            f1 = 2 * prec[:-1] * rec[:-1] / (prec[:-1] + rec[:-1])
            t = thr[np.argmax(f1)]
            assert m["threshold"] == t
            pred = (s >= t).astype(int)
            # H2O's point: the threshold maximises F1, so it is at least argmax's F1
            assert skm.f1_score(yy, pred, sample_weight=ww) >= \
                skm.f1_score(yy, p.argmax(1), sample_weight=ww) - 1e-12
        assert close(m["classification_error"], 1 - skm.accuracy_score(yy, pred, sample_weight=ww))
        assert close(m["mean_per_class_error"],
                     1 - skm.balanced_accuracy_score(yy, pred, sample_weight=ww))
        np.testing.assert_allclose(np.array(m["confusion_matrix"], float),
                                   skm.confusion_matrix(yy, pred, sample_weight=ww), rtol=1e-12)
        assert "hit_ratios" not in m


def test_auc_ties_and_coarse_scores():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = rng.integers(0, 4, 500) / 4.0  # few distinct scores: many ties
    w = rng.uniform(0.5, 2, 500)
    assert close(auc(s, y, w), skm.roc_auc_score(y, s, sample_weight=w))
    assert close(average_precision(s, y, w), skm.average_precision_score(y, s, sample_weight=w))
    # all scores equal: AUC 0.5, AP = the (weighted) positive rate
    same = np.full(500, 0.3)
    assert close(auc(same, y), 0.5)
    assert close(auc(same, y), skm.roc_auc_score(y, same))
    assert close(average_precision(same, y, w), skm.average_precision_score(y, same, sample_weight=w))
    assert close(average_precision(same, y, w), (w * y).sum() / w.sum())
    # max-F1 with all scores equal: the only threshold predicts everything positive
    assert max_f1_threshold(same, y) == 0.3
    # perfect and reversed rankings
    assert auc(y + 0.1 * rng.random(500), y) == 1.0
    assert auc(-y + 0.1 * rng.random(500), y) == 0.0


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_single_class_present():
    prob, y, _ = make_cls(200, 2, seed=9, nan_frac=0.0)
    y[:] = 1.0
    for mode in ("argmax", "max_f1"):
        m = classification_metrics(prob, y, binomial_threshold=mode)
        assert math.isnan(m["auc"]) and math.isnan(m["aucpr"])
        assert m["threshold"] == 0.5  # max_f1 falls back to argmax
        pred = prob.argmax(1)
        assert close(m["classification_error"], float((pred != 1).mean()))
        # only class 1 is present, so the mean per class error is that class's error
        assert close(m["mean_per_class_error"], m["classification_error"])
        assert close(m["logloss"], float(-np.log(prob[:, 1]).mean()))
    prob3, y3, _ = make_cls(200, 3, seed=9, nan_frac=0.0)
    y3[:] = 2.0
    m3 = classification_metrics(prob3, y3)
    assert close(m3["mean_per_class_error"], 1 - skm.balanced_accuracy_score(y3.astype(int), prob3.argmax(1)))


def test_empty_and_all_missing():
    assert classification_metrics(np.zeros((0, 3)), np.zeros(0)) == {}
    prob, y, _ = make_cls(10, 3, seed=1)
    y[:] = np.nan
    assert classification_metrics(prob, y) == {}
    assert regression_metrics(np.zeros(5), np.full(5, np.nan)) == {}
    assert autoencoder_metrics(np.zeros(0))["nobs"] == 0


def test_bad_class_index_rejected():
    with pytest.raises(ValueError):
        classification_metrics(np.full((4, 3), 1 / 3), np.array([0, 1, 2, 3.0]))


def test_logloss_clips_like_h2o():
    prob = np.array([[1.0, 0.0], [0.5, 0.5]])
    m = classification_metrics(prob, np.array([1.0, 0.0]), binomial_threshold="argmax")
    assert close(m["logloss"], (-math.log(1e-15) - math.log(0.5)) / 2)


# ---------------------------------------------------------------------------------------------

def make_reg(n, seed, positive=False, weighted=True, nan_frac=0.1):
    rng = np.random.default_rng(seed)
    if positive:
        y = rng.gamma(2.0, 1.5, size=n)
        f = y * rng.uniform(0.6, 1.5, size=n) + 0.05
    else:
        y = rng.normal(3.0, 2.0, size=n)
        f = y + rng.normal(0, 0.7, size=n)
    y[rng.random(n) < nan_frac] = np.nan
    w = rng.uniform(0.1, 3.0, size=n) if weighted else None
    return f, y, w


def _kept_reg(f, y, w):
    ok = ~np.isnan(y)
    return f[ok], y[ok], (None if w is None else w[ok])


@pytest.mark.parametrize("weighted", [False, True])
def test_regression_equals_sklearn(weighted):
    f, y, w = make_reg(700, seed=2 + weighted, positive=True, weighted=weighted)
    ff, yy, ww = _kept_reg(f, y, w)
    m = regression_metrics(f, y, w)
    assert m["nobs"] == len(yy)
    assert close(m["mse"], skm.mean_squared_error(yy, ff, sample_weight=ww))
    assert close(m["rmse"], math.sqrt(m["mse"]))
    assert close(m["mae"], skm.mean_absolute_error(yy, ff, sample_weight=ww))
    assert close(m["rmsle"], math.sqrt(skm.mean_squared_log_error(yy, ff, sample_weight=ww)))
    assert close(m["r2"], skm.r2_score(yy, ff, sample_weight=ww))
    assert close(m["mean_residual_deviance"], m["mse"])  # gaussian
    dev = {
        "poisson": skm.mean_poisson_deviance(yy, ff, sample_weight=ww),
        "gamma": skm.mean_gamma_deviance(yy, ff, sample_weight=ww),
        "laplace": skm.mean_absolute_error(yy, ff, sample_weight=ww),
    }
    for dist, ref in dev.items():
        assert close(regression_metrics(f, y, w, distribution=dist)["mean_residual_deviance"], ref), dist
    for p in (1.0, 1.2, 1.5, 1.9, 2.0, 3.0):
        got = regression_metrics(f, y, w, distribution="tweedie", tweedie_power=p)
        assert close(got["mean_residual_deviance"],
                     skm.mean_tweedie_deviance(yy, ff, sample_weight=ww, power=p)), p
    for a in (0.1, 0.5, 0.9):
        got = regression_metrics(f, y, w, distribution="quantile", quantile_alpha=a)
        assert close(got["mean_residual_deviance"], skm.mean_pinball_loss(yy, ff, alpha=a, sample_weight=ww)), a


def test_poisson_and_tweedie_with_zero_responses():
    f, y, w = make_reg(300, seed=4, positive=True, nan_frac=0.0)
    y[::5] = 0.0
    for dist, ref in (("poisson", skm.mean_poisson_deviance(y, f, sample_weight=w)),
                      ("tweedie", skm.mean_tweedie_deviance(y, f, sample_weight=w, power=1.5))):
        assert close(regression_metrics(f, y, w, distribution=dist)["mean_residual_deviance"], ref)


def test_huber_deviance():
    f, y, w = make_reg(400, seed=6)
    ff, yy, ww = _kept_reg(f, y, w)
    delta = 0.8
    r = np.abs(yy - ff)
    ref = np.average(np.where(r <= delta, r * r, 2 * delta * (r - delta)), weights=ww)
    got = regression_metrics(f, y, w, distribution="huber", huber_delta=delta)["mean_residual_deviance"]
    assert close(got, ref)
    assert (r > delta).any() and (r <= delta).any()  # both branches used
    with pytest.raises(ValueError):
        regression_metrics(f, y, w, distribution="huber")


def test_rmsle_nan_below_minus_one():
    f, y, w = make_reg(100, seed=7, nan_frac=0.0)  # normal(3, 2): some values < -1
    assert (np.minimum(f, y) < -1).any()
    assert math.isnan(regression_metrics(f, y, w)["rmsle"])
    # but not if the offending rows have a missing response
    y2 = y.copy()
    y2[np.minimum(f, y) < -1] = np.nan
    ok = ~np.isnan(y2)
    assert close(regression_metrics(f, y2, w)["rmsle"],
                 math.sqrt(skm.mean_squared_log_error(y2[ok], f[ok], sample_weight=w[ok])))


def test_r2_constant_response_is_nan():
    assert math.isnan(regression_metrics(np.arange(4.0), np.ones(4))["r2"])


def test_autoencoder():
    e = np.random.default_rng(0).gamma(1.0, 0.1, size=321)
    m = autoencoder_metrics(e)
    assert close(m["mse"], float(np.mean(e))) and close(m["rmse"], math.sqrt(np.mean(e)))
    assert m["nobs"] == 321


def test_old_call_signatures_and_keys():
    prob, y, _ = make_cls(100, 2, seed=1)
    m = classification_metrics(prob, y)
    for k in ("classification_error", "logloss", "mse", "rmse", "auc", "nobs"):
        assert k in m
    f, y, _ = make_reg(100, seed=1)
    m = regression_metrics(f, y)
    for k in ("mse", "rmse", "mae", "r2", "mean_residual_deviance", "nobs"):
        assert k in m
    s = scalar_metrics(classification_metrics(*make_cls(50, 4, seed=2)[:2]))
    assert "confusion_matrix" not in s and "hit_ratios" not in s and "logloss" in s
