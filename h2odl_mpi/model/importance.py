"""Variable importances of a trained network, as H2O reports them for Deep Learning.

Gedeon (1997), "Data mining of inputs: analysing magnitude and functional measures", from
the first two weight layers: with W1 (hidden units j x inputs i) and W2 (next layer's units
k x j),

    Q[i, k] = sum_j  |W1[j, i]| / sum_i' |W1[j, i']|  *  |W2[k, j]| / sum_j' |W2[k, j']|

each column Q[:, k] is normalised to sum 1, an input's importance is its row sum over k,
and the importances are scaled so that the largest is 1 (H2O's relative importance).  For
Maxout a unit's two channels count together (the sum of their absolute weights).  One value
per network input: a categorical column's levels each have their own.  A network without a
hidden layer (hidden=[]) has W1 only: W2 is then the identity (each output's own inputs).
"""
import numpy as np


def gedeon(network, model):
    """Relative importance of every network input (float64, max 1)."""
    w1 = np.abs(network.view(model, "weights", 0).astype(np.float64))
    if network.n_layers == 1:
        w2 = np.eye(w1.shape[0])
        return _relative(w1, w2)
    w2 = np.abs(network.view(model, "weights", 1).astype(np.float64))
    hidden = w2.shape[1]
    if w1.shape[0] != hidden:  # Maxout: rows are (unit, channel)
        w1 = w1.reshape(hidden, -1, w1.shape[1]).sum(axis=1)
    if w2.shape[0] != network.units[2]:  # Maxout in the second hidden layer
        w2 = w2.reshape(network.units[2], -1, hidden).sum(axis=1)
    return _relative(w1, w2)


def _relative(w1, w2):
    """Gedeon's importances of |W1| (j x i) and |W2| (k x j), the largest 1."""
    a = w1 / _nonzero(w1.sum(axis=1))[:, None]          # (j, i)
    b = w2 / _nonzero(w2.sum(axis=1))[:, None]          # (k, j)
    q = a.T @ b.T                                       # (i, k)
    q /= _nonzero(q.sum(axis=0))[None, :]
    vi = q.sum(axis=1)
    top = vi.max() if vi.size else 0.0
    return vi / top if top > 0 else vi


def table(names, relative):
    """H2O's variable importance table, most important first: variable, relative_importance,
    scaled_importance (relative / max) and percentage (relative / sum)."""
    relative = np.asarray(relative, dtype=np.float64)
    top, total = (relative.max(), relative.sum()) if relative.size else (0.0, 0.0)
    order = np.argsort(-relative, kind="stable")
    return [{"variable": names[i], "relative_importance": float(relative[i]),
             "scaled_importance": float(relative[i] / top) if top > 0 else 0.0,
             "percentage": float(relative[i] / total) if total > 0 else 0.0} for i in order]


def _nonzero(v):
    return np.where(v > 0, v, 1.0)
