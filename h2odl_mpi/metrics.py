"""Model metrics as H2O reports them, computed from predictions.

Classification: classification error, logloss, MSE and RMSE of (1 - p(actual class)),
AUC for two classes.  Regression: MSE, RMSE, MAE, R2, mean residual deviance (Gaussian).
Autoencoder: mean reconstruction MSE.  Rows with a missing response are left out, as H2O does.
"""
import numpy as np


def classification_metrics(prob, y, weights=None):
    """prob: (n, K) class probabilities; y: class indices (NaN = missing)."""
    ok = ~np.isnan(y)
    prob, y = prob[ok].astype(np.float64), y[ok].astype(np.int64)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)[ok]
    if len(y) == 0:
        return {}
    wsum = w.sum()
    p_true = prob[np.arange(len(y)), y]
    err = 1.0 - p_true
    mse = float((w * err * err).sum() / wsum)
    out = {
        "classification_error": float((w * (prob.argmax(1) != y)).sum() / wsum),
        "logloss": float((w * -np.log(np.clip(p_true, 1e-15, 1.0))).sum() / wsum),
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "nobs": int(len(y)),
    }
    if prob.shape[1] == 2:
        out["auc"] = auc(prob[:, 1], y, w)
    return out


def auc(score, y, w=None):
    """Area under the ROC curve (ties counted half), weighted."""
    w = np.ones(len(y)) if w is None else w
    order = np.argsort(score, kind="mergesort")
    s, yy, ww = score[order], y[order], w[order]
    pos_w = ww * (yy == 1)
    neg_w = ww * (yy == 0)
    P, N = pos_w.sum(), neg_w.sum()
    if P == 0 or N == 0:
        return float("nan")
    # group ties: for each distinct score, negatives below + half the tied negatives
    uniq, start = np.unique(s, return_index=True)
    neg_groups = np.add.reduceat(neg_w, start)
    pos_groups = np.add.reduceat(pos_w, start)
    neg_below = np.concatenate([[0.0], np.cumsum(neg_groups)[:-1]])
    return float(((neg_below + 0.5 * neg_groups) * pos_groups).sum() / (P * N))


def regression_metrics(pred, y, weights=None):
    """pred, y in the response's own units."""
    ok = np.isfinite(y)
    pred, y = pred[ok].astype(np.float64), y[ok].astype(np.float64)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)[ok]
    if len(y) == 0:
        return {}
    wsum = w.sum()
    r = y - pred
    mse = float((w * r * r).sum() / wsum)
    ybar = (w * y).sum() / wsum
    var = float((w * (y - ybar) ** 2).sum() / wsum)
    return {
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": float((w * np.abs(r)).sum() / wsum),
        "r2": float(1.0 - mse / var) if var > 0 else float("nan"),
        "mean_residual_deviance": mse,
        "nobs": int(len(y)),
    }


def autoencoder_metrics(recon_mse):
    m = float(np.mean(recon_mse)) if len(recon_mse) else float("nan")
    return {"mse": m, "rmse": float(np.sqrt(m)), "nobs": int(len(recon_mse))}
