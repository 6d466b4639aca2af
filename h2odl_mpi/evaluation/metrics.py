"""Model metrics as H2O-3 reports them, combined exactly across MPI ranks.

Every function takes this rank's rows and an optional mpi4py communicator (``comm=None`` or a
1-rank communicator means serial).  All ranks of ``comm`` must call the function (collective),
ranks with no rows included; every rank returns the same dict.

How the ranks combine (no pickled objects, only numpy buffers):
- Sums (weights, squared errors, logloss, the weighted confusion matrix, hit counts, deviance,
  ...) form one fixed-size float64 vector per rank.  The vectors are ``Allgather``-ed and added in
  rank order on every rank, so every rank gets bit-identical results whatever reduction
  algorithm the MPI library picks (an ``Allreduce`` does not promise that); the vector is tiny.
  The response variance for R2 is combined with Chan's pairwise formula (per-rank weight, mean
  and sum of squared deviations), which is as accurate as a two-pass serial computation.
- Exact AUC / AUCPR / the max-F1 threshold need all (score, label, weight) triples: they are
  ``Gatherv``-ed to rank 0 of ``comm`` (one float64 buffer, counts from a small ``Allgather``),
  computed there, and the three numbers are ``Bcast``.

Definitions (rows with a missing response are left out, as H2O does; ``nobs`` counts rows,
everything else is weighted by ``weights``):
- logloss: weighted mean of -log(max(p_actual, 1e-15)) (H2O clips at 1e-15).
- mse / rmse (classification): weighted mean of (1 - p_actual)^2, H2O's multinomial and binomial
  MSE (for 2 classes this is the Brier score).
- confusion_matrix: K x K, rows = actual, columns = predicted, weighted counts (ints without
  weights).  Prediction is the argmax of the probabilities (first class on ties), except for 2
  classes with ``binomial_threshold="max_f1"`` (the default, as H2O): class 1 when p1 >= t, t the
  score that maximises F1 = 2TP / (2TP + FP + FN) over all distinct scores (the highest such
  score on ties).  ``binomial_threshold="argmax"`` gives class 1 when p1 > p0.  Without both
  classes present, max_f1 falls back to argmax.  The threshold used is reported as ``threshold``.
  classification_error = 1 - trace / total, mean_per_class_error = mean over the classes present
  among the actuals of (1 - diagonal / row total) (scikit-learn's 1 - balanced accuracy).
- hit_ratios (more than 2 classes): entry k-1 = weighted fraction of rows whose actual class is
  among the k most probable, k = 1..min(max_hit_ratio_k, K); the actual class's rank is the count
  of classes with a strictly higher probability (ties count in the row's favour).
- auc (2 classes): exact area under the weighted ROC curve, tied scores get half credit
  (= scikit-learn's roc_auc_score).  H2O approximates it with a 400-bin histogram.
- aucpr (2 classes): average precision, sum_n (R_n - R_{n-1}) P_n over distinct score thresholds
  (= scikit-learn's average_precision_score).  H2O's AUCPR is a trapezoid over its 400 bins,
  which interpolates linearly in PR space (optimistic); the step sum is the unbiased choice.
- Without both classes present, auc and aucpr are NaN.
- Regression: mse, rmse, mae; rmsle = sqrt(mean (log1p(pred) - log1p(y))^2), NaN if any pred
  or y < -1 (H2O); r2 = 1 - mse / var(y), var with the weighted population denominator over all
  ranks (scikit-learn's r2_score; H2O divides by the sample variance, n - 1); mean residual
  deviance per distribution as H2O's Distribution.deviance: gaussian (y-f)^2, poisson
  2(y log(y/f) - y + f) (2f at y = 0), gamma 2(-log(y/f) + (y-f)/f), tweedie
  2(y^(2-p)/((1-p)(2-p)) - y f^(1-p)/(1-p) + f^(2-p)/(2-p)), laplace |y-f|, quantile pinball
  (alpha (y-f) if y > f else (1-alpha)(f-y)), huber ((y-f)^2 if |y-f| <= delta else
  2 delta (|y-f| - delta)).
- Autoencoder: mse = mean over rows of the per-row reconstruction MSE.

If no rows have a response on any rank, the functions return {} (as before).
"""
import math

import numpy as np

from h2odl_mpi.collectives import (agreed_sum, bcast_array, gather_rows, gather_to_root,
                                   sum_in_rank_order)

_P_MIN = 1e-15  # H2O's clip for logloss


# ---------------------------------------------------------------------------------------------
# exact ranking metrics on the full (score, label, weight) set
# ---------------------------------------------------------------------------------------------

def _grouped_desc(score, y, w):
    """Weighted positives and negatives per distinct score, highest score first."""
    order = np.argsort(-score, kind="mergesort")
    s = score[order]
    pos = np.where(y[order] == 1, w[order], 0.0)
    neg = np.where(y[order] == 1, 0.0, w[order])
    if len(s) == 0:
        return s, pos, neg
    start = np.flatnonzero(np.concatenate([[True], s[1:] != s[:-1]]))
    return s[start], np.add.reduceat(pos, start), np.add.reduceat(neg, start)


def auc(score, y, w=None):
    """Exact area under the weighted ROC curve; tied scores count half (= sklearn)."""
    score = np.asarray(score, dtype=np.float64)
    y = np.asarray(y)
    w = np.ones(len(score)) if w is None else np.asarray(w, dtype=np.float64)
    _, pos, neg = _grouped_desc(score, y, w)
    P, N = pos.sum(), neg.sum()
    if not (P > 0 and N > 0):
        return float("nan")
    # descending thresholds: positives at this score beat all negatives with lower scores
    neg_below = N - np.cumsum(neg)
    return float(((neg_below + 0.5 * neg) * pos).sum() / (P * N))


def _cumulative_counts(score, y, w):
    """Distinct scores (descending) with the cumulative weighted true and false positives
    of `positive iff score >= t`, and the total positive weight; None with one class only."""
    score = np.asarray(score, dtype=np.float64)
    y = np.asarray(y)
    w = np.ones(len(score)) if w is None else np.asarray(w, dtype=np.float64)
    s, pos, neg = _grouped_desc(score, y, w)
    P = pos.sum()
    if not (P > 0 and neg.sum() > 0):
        return None
    return s, pos, np.cumsum(pos), np.cumsum(neg), P


def average_precision(score, y, w=None):
    """sum_n (R_n - R_{n-1}) P_n over distinct thresholds (= sklearn average_precision_score)."""
    c = _cumulative_counts(score, y, w)
    if c is None:
        return float("nan")
    _, pos, tp, fp, P = c
    denom = tp + fp
    precision = np.divide(tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float((pos / P * precision).sum())


def max_f1_threshold(score, y, w=None):
    """Score t maximising F1 of the rule `positive iff score >= t` (highest t on ties), or NaN."""
    c = _cumulative_counts(score, y, w)
    if c is None:
        return float("nan")
    s, _, tp, fp, P = c
    f1 = 2 * tp / (2 * tp + fp + (P - tp))
    return float(s[int(np.argmax(f1))])  # argmax: first = highest score among equal F1


# ---------------------------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------------------------

def _prep(y, weights, n):
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(y) != n:
        raise ValueError(f"{n} predictions but {len(y)} responses")
    ok = ~np.isnan(y)
    if weights is None:
        w = np.ones(int(ok.sum()))
    else:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if len(w) != n:
            raise ValueError(f"{n} predictions but {len(w)} weights")
        w = w[ok]
    return ok, y[ok], w


def classification_metrics(prob, y, weights=None, comm=None, max_hit_ratio_k=10,
                           binomial_threshold="max_f1"):
    """prob: (n, K) class probabilities of this rank's rows; y: class indices (NaN = missing).

    Collective over `comm`: every rank calls it (with a (0, K) array if it has no rows) and gets
    the same dict.  See the module docstring for the definitions."""
    if binomial_threshold not in ("max_f1", "argmax"):
        raise ValueError(f"binomial_threshold must be 'max_f1' or 'argmax', not {binomial_threshold!r}")
    prob = np.asarray(prob, dtype=np.float64)
    if prob.ndim != 2:
        raise ValueError("prob must be a 2-D (rows, classes) array")
    K = prob.shape[1]
    ok, yv, w = _prep(y, weights, prob.shape[0])
    prob = prob[ok]
    yi = yv.astype(np.int64)
    n = len(yi)
    # every rank must agree on K (a mismatch raises on every rank, never a hang)
    ks = gather_rows(comm, np.array([K, n], dtype=np.float64))
    if np.any(ks[:, 0] != K):
        raise ValueError(f"ranks disagree on the number of classes: {sorted(set(ks[:, 0].astype(int)))}")
    hk = min(int(max_hit_ratio_k), K) if K > 2 else 0
    binom = _binomial_exact(comm, prob, yi, w) if K == 2 else np.full(3, np.nan)
    pred, threshold = _predicted_classes(prob, binom, binomial_threshold)
    tot = agreed_sum(comm, _class_sums(prob, yi, w, pred, hk))
    if tot[2] > 0:
        raise ValueError(f"class index outside 0..{K - 1} in the response")
    if tot[1] == 0:
        return {}
    return _class_metrics(tot, K, hk, weights is None, binom, threshold)


def _binomial_exact(comm, prob, yi, w):
    """2 classes: exact AUC, AUCPR and the max-F1 threshold, computed on rank 0 from every
    rank's (score, label, weight) and sent to all."""
    binom = np.full(3, np.nan)
    full = gather_to_root(comm, np.column_stack([prob[:, 1], yi, w]) if len(yi) else np.zeros((0, 3)))
    if full is not None:
        try:
            s, lab, ww = full[:, 0], full[:, 1], full[:, 2]
            binom[:] = (auc(s, lab, ww), average_precision(s, lab, ww), max_f1_threshold(s, lab, ww))
        except Exception:  # noqa: BLE001 - never leave the other ranks in Bcast
            binom[:] = np.nan
    return bcast_array(comm, binom)


def _predicted_classes(prob, binom, binomial_threshold):
    """(predicted class per row, the threshold used: NaN for more than 2 classes)."""
    K, n = prob.shape[1], prob.shape[0]
    if K == 2 and binomial_threshold == "max_f1" and not math.isnan(binom[2]):
        return (prob[:, 1] >= binom[2]).astype(np.int64), float(binom[2])
    pred = prob.argmax(1) if n else np.zeros(0, dtype=np.int64)
    return pred, 0.5 if K == 2 else float("nan")


def _class_sums(prob, yi, w, pred, hk):
    """This rank's sufficient statistics, one fixed-size vector:
    [wsum, nobs, bad, sum w*logloss, sum w*(1-p)^2, CM (K*K), hits by rank (hk)]."""
    K, n = prob.shape[1], len(yi)
    stats = np.zeros(5 + K * K + hk)
    if not n:
        return stats
    bad = int(yi.min() < 0 or yi.max() >= K)
    p_true = prob[np.arange(n), np.clip(yi, 0, K - 1)]
    e = 1.0 - p_true
    stats[:5] = (w.sum(), n, bad, (w * -np.log(np.maximum(p_true, _P_MIN))).sum(), (w * e * e).sum())
    if not bad:
        cm = np.zeros(K * K)
        np.add.at(cm, yi * K + pred, w)
        stats[5:5 + K * K] = cm
        if hk:
            rank_of_true = (prob > p_true[:, None]).sum(1)
            hits = np.zeros(hk)
            inside = rank_of_true < hk
            np.add.at(hits, rank_of_true[inside], w[inside])
            stats[5 + K * K:] = hits
    return stats


def _class_metrics(tot, K, hk, unweighted, binom, threshold):
    """The metrics dict from the summed statistics."""
    wsum = tot[0]
    cm = tot[5:5 + K * K].reshape(K, K)
    mse = tot[4] / wsum
    row = cm.sum(1)
    present = row > 0
    per_class_err = 1.0 - np.diag(cm)[present] / row[present]
    out = {
        "classification_error": float(1.0 - np.trace(cm) / wsum),
        "logloss": float(tot[3] / wsum),
        "mse": float(mse),
        "rmse": float(math.sqrt(mse)),
        "mean_per_class_error": float(per_class_err.mean()),
        "confusion_matrix": (cm.astype(np.int64).tolist() if unweighted else cm.tolist()),
        "nobs": int(tot[1]),
    }
    if K == 2:
        out["auc"] = float(binom[0])
        out["aucpr"] = float(binom[1])
        out["threshold"] = threshold
    if hk:
        out["hit_ratios"] = (np.cumsum(tot[5 + K * K:]) / wsum).tolist()
    return out


# ---------------------------------------------------------------------------------------------
# regression
# ---------------------------------------------------------------------------------------------

def _deviance(y, f, distribution, tweedie_power, quantile_alpha, huber_delta):
    d = distribution.lower()
    r = y - f
    if d in ("gaussian", "auto"):
        return r * r
    if d == "laplace":
        return np.abs(r)
    if d == "poisson":
        with np.errstate(divide="ignore", invalid="ignore"):
            ylog = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / f), 0.0)
        return 2.0 * (ylog - y + f)
    if d == "gamma":
        with np.errstate(divide="ignore", invalid="ignore"):
            return 2.0 * (-np.log(y / f) + (y - f) / f)
    if d == "tweedie":
        p = float(tweedie_power)
        if p in (1.0, 2.0):  # the limits are poisson and gamma
            return _deviance(y, f, "poisson" if p == 1.0 else "gamma", p, quantile_alpha, huber_delta)
        with np.errstate(divide="ignore", invalid="ignore"):
            return 2.0 * (np.power(y, 2 - p) / ((1 - p) * (2 - p))
                          - y * np.power(f, 1 - p) / (1 - p) + np.power(f, 2 - p) / (2 - p))
    if d == "quantile":
        a = float(quantile_alpha)
        return np.where(y > f, a * r, (1 - a) * -r)
    if d == "huber":
        if huber_delta is None:
            raise ValueError("distribution 'huber' needs huber_delta")
        dl = float(huber_delta)
        ar = np.abs(r)
        return np.where(ar <= dl, r * r, 2.0 * dl * (ar - dl))
    raise ValueError(f"unknown distribution {distribution!r}")


def regression_metrics(pred, y, weights=None, comm=None, distribution="gaussian",
                       tweedie_power=1.5, quantile_alpha=0.5, huber_delta=None):
    """pred, y in the response's own units (NaN y = missing).  Collective over `comm`."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    ok, yv, w = _prep(y, weights, len(pred))
    f = pred[ok]
    n = len(yv)
    dev = _deviance(yv, f, distribution, tweedie_power, quantile_alpha, huber_delta) if n else np.zeros(0)
    # [wsum, nobs, sum w r^2, sum w |r|, sum w sqlogerr, n(<-1), sum w dev, mean_y, M2_y]
    stats = np.zeros(9)
    if n:
        r = yv - f
        wsum = w.sum()
        stats[0] = wsum
        stats[1] = n
        stats[2] = (w * r * r).sum()
        stats[3] = (w * np.abs(r)).sum()
        badlog = (f < -1) | (yv < -1)
        stats[5] = badlog.sum()
        if not stats[5]:
            with np.errstate(divide="ignore", invalid="ignore"):
                le = np.log1p(f) - np.log1p(yv)
            stats[4] = (w * le * le).sum()
        stats[6] = (w * dev).sum()
        if wsum > 0:
            mu = (w * yv).sum() / wsum
            stats[7] = mu
            stats[8] = (w * (yv - mu) ** 2).sum()
    rows = gather_rows(comm, stats)
    tot = sum_in_rank_order(rows)
    if tot[1] == 0:
        return {}
    # Chan et al.: combine (weight, mean, M2) pairwise in rank order
    W, mu, m2 = 0.0, 0.0, 0.0
    for rw in rows:
        wb = rw[0]
        if wb <= 0:
            continue
        delta = rw[7] - mu
        Wn = W + wb
        mu += delta * wb / Wn
        m2 += rw[8] + delta * delta * W * wb / Wn
        W = Wn
    wsum = tot[0]
    mse = tot[2] / wsum
    var = m2 / wsum if wsum > 0 else float("nan")
    return {
        "mse": float(mse),
        "rmse": float(math.sqrt(mse)),
        "mae": float(tot[3] / wsum),
        "rmsle": float("nan") if tot[5] > 0 else float(math.sqrt(tot[4] / wsum)),
        "r2": float(1.0 - mse / var) if var > 0 else float("nan"),
        "mean_residual_deviance": float(tot[6] / wsum),
        "nobs": int(tot[1]),
    }


# ---------------------------------------------------------------------------------------------
# autoencoder
# ---------------------------------------------------------------------------------------------

def autoencoder_metrics(recon_mse, comm=None):
    """recon_mse: per-row reconstruction MSE of this rank's rows.  Collective over `comm`."""
    e = np.asarray(recon_mse, dtype=np.float64).reshape(-1)
    tot = agreed_sum(comm, np.array([e.sum(), len(e)], dtype=np.float64))
    if tot[1] == 0:
        return {"mse": float("nan"), "rmse": float("nan"), "nobs": 0}
    m = tot[0] / tot[1]
    return {"mse": float(m), "rmse": float(math.sqrt(m)), "nobs": int(tot[1])}


def scalar_metrics(m):
    """The scalar entries of a metrics dict (for progress lines, CSV history, ...)."""
    return {k: v for k, v in m.items() if isinstance(v, (int, float))}
