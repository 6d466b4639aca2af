"""H2O's metric tables, computed exactly over MPI ranks: the binomial thresholds table, the
maximum criteria, the gains/lift table, the multinomial AUC tables, the hit ratios and the
confusion matrix as H2O prints them.

How the ranks combine: each rank sums its rows into sufficient statistics (the weight of
each distinct (score, class) pair), which are gathered to rank 0 of `comm`, merged, turned
into tables there and sent to every rank as JSON (collectives.bcast_obj); every rank gets
the same tables.  They hold a row per distinct score at most (fewer with tied scores).

Binomial (the rule is H2O's: positive iff score >= threshold; thresholds descending):
- thresholds_and_metric_scores: H2O's columns (threshold, f1, f2, f0point5, accuracy,
  precision, recall, specificity, absolute_mcc, min_per_class_accuracy,
  mean_per_class_accuracy, tns, fns, fps, tps, tnr, fnr, fpr, tpr, idx).  H2O bins the
  scores into at most 400 histogram bins whose thresholds are bin centres; here every row
  is an exact distinct score with its exact counts: all of them when there are at most
  `max_bins` (400) distinct scores, else `max_bins` of them spaced evenly in cumulative
  weight plus every score where a criterion is largest.  The formulas are AUC2's
  ThresholdCriterion; F-scores as (1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp) (the same
  value as metrics.max_f1_threshold's F1; 0 where tp = 0, as scikit-learn, where H2O's
  0/0 gives NaN).  The negatives below a threshold are summed from the lowest score up
  (exact zeros at the lowest score, also with weights).
- max_criteria_and_metric_scores: per criterion the largest value over ALL distinct
  scores (not only the rows shown), its threshold (the highest on ties) and its table row.
- gains_lift_table: H2O's 16 groups (GainsLift.java): the score quantiles at 0.99, 0.98,
  0.97, 0.96, 0.95, 0.9, ..., 0.1, 0 (duplicates dropped), as numpy's linear interpolation
  (H2O's INTERPOLATE) for unweighted rows, the weighted inverted distribution function with
  weights; a row falls into the first group whose lower threshold it reaches.  Columns
  group, cumulative_data_fraction, lower_threshold, lift, cumulative_lift, response_rate,
  score, cumulative_response_rate, cumulative_score, capture_rate, cumulative_capture_rate,
  gain, cumulative_gain, kolmogorov_smirnov; weighted counts are not rounded (H2O: longs).
Multinomial (MultinomialAUC.java, exact instead of binned): per class one-vs-rest AUC and
AUCPR, their macro and weighted (by the class's weight) means, per pair of classes the mean
of the two one-vs-one AUCs (class a's score on the rows of a and b, then b's), their macro
and weighted (by the pair's share of rows) means; not computed above 50 classes (H2O's
MAX_AUC_CLASSES).  AUC and AUCPR are metrics.auc and metrics.average_precision.
"""
import math

import numpy as np

from h2odl_mpi.evaluation import metrics
from h2odl_mpi.collectives import bcast_obj, gather_to_root, rank_and_size

MAX_BINS = 400
MAX_AUC_CLASSES = 50
CRITERIA = ("f1", "f2", "f0point5", "accuracy", "precision", "recall", "specificity", "absolute_mcc",
            "min_per_class_accuracy", "mean_per_class_accuracy", "tns", "fns", "fps", "tps", "tnr",
            "fnr", "fpr", "tpr")
COUNT_CRITERIA = ("tns", "fns", "fps", "tps")
GAINS_PROBS = (0.99, 0.98, 0.97, 0.96, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0)
GAINS_COLUMNS = ("group", "cumulative_data_fraction", "lower_threshold", "lift", "cumulative_lift",
                 "response_rate", "score", "cumulative_response_rate", "cumulative_score", "capture_rate",
                 "cumulative_capture_rate", "gain", "cumulative_gain", "kolmogorov_smirnov")
MULTINOMIAL_AUC_TYPES = ("MACRO_OVR", "WEIGHTED_OVR", "MACRO_OVO", "WEIGHTED_OVO")


# ------------------------------------------------------------------------------- tables

class Table:
    """A titled table (H2O's TwoDimTable): `col_header`, `cell_values` (rows of values);
    table["col"] is a column's values; as_dict() / Table.from_dict() round-trip as JSON."""

    def __init__(self, title, columns, rows, description=""):
        self.title, self.description = title, description
        self.col_header = list(columns)
        self.cell_values = [list(r) for r in rows]

    def __getitem__(self, name):
        j = self.col_header.index(name)
        return [r[j] for r in self.cell_values]

    def __len__(self):
        return len(self.cell_values)

    def as_dict(self):
        return {"title": self.title, "description": self.description, "columns": self.col_header,
                "data": self.cell_values}

    @classmethod
    def from_dict(cls, d):
        return None if d is None else cls(d["title"], d["columns"], d["data"], d.get("description", ""))

    def as_data_frame(self):
        import pandas as pd
        return pd.DataFrame(self.cell_values, columns=self.col_header)

    def __str__(self):
        head = f"{self.title}: {self.description}" if self.description else f"{self.title}:"
        cells = [self.col_header] + [[_cell(v) for v in r] for r in self.cell_values]
        widths = [max(len(str(row[j])) for row in cells) for j in range(len(self.col_header))]
        lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return head + "\n" + "\n".join(lines)

    __repr__ = __str__

    def show(self):
        print(self)


def _cell(v):
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    return "" if v is None else str(v)


class ConfusionMatrix:
    """H2O's confusion matrix: rows actual classes, columns predicted ones, an Error and a
    Rate column and a Total row.  `to_list()` is the K x K matrix."""

    def __init__(self, cm, domain, header="Confusion Matrix (Act/Pred)"):
        self.cm = np.asarray(cm, dtype=np.float64)
        self.domain = [str(d) for d in domain]
        self.header = header

    def to_list(self):
        return _counts(self.cm).tolist()

    @property
    def table(self):
        cm = self.cm
        rows = []
        for name, row, hit in [(d, cm[i], cm[i, i]) for i, d in enumerate(self.domain)] + \
                [("Total", cm.sum(0), np.trace(cm))]:
            total = cm.sum() if name == "Total" else row.sum()
            wrong = total - hit
            rows.append([name] + [_counts(v) for v in row] +
                        [float(wrong / total) if total > 0 else float("nan"),
                         f"{_counts(wrong):,} / {_counts(total):,}"])
        return Table(self.header, [""] + self.domain + ["Error", "Rate"], rows)

    def __str__(self):
        return str(self.table)

    __repr__ = __str__

    def show(self):
        print(self)


def _counts(v):
    """Integral weights as ints (numpy arrays keep their shape), others as floats."""
    a = np.asarray(v, dtype=np.float64)
    if np.all(np.isfinite(a)) and np.all(a == np.round(a)):
        return a.astype(np.int64) if a.ndim else int(a)
    return a if a.ndim else float(a)


# ------------------------------------------------------------------------ the collective

def _on_root(comm, local, compute):
    """Gather every rank's (n, k) statistics to rank 0, run compute(all rows) there and
    send its JSON-able result to every rank; a failure there raises on every rank."""
    full = gather_to_root(comm, local)
    result = None
    if rank_and_size(comm)[0] == 0:
        try:
            result = {"ok": compute(full)}
        except Exception as e:  # noqa: BLE001 - never leave the other ranks in the broadcast
            result = {"error": f"{type(e).__name__}: {e}"}
    result = bcast_obj(comm, result)
    if "error" in result:
        raise RuntimeError(f"metric tables: {result['error']}")
    return result["ok"]


def _grouped(score, cls, w):
    """(m, 3) rows [score, class, summed weight], one per distinct (score, class)."""
    if len(score) == 0:
        return np.zeros((0, 3))
    order = np.lexsort((cls, score))
    s, c, ww = score[order], cls[order], w[order]
    start = np.flatnonzero(np.concatenate([[True], (s[1:] != s[:-1]) | (c[1:] != c[:-1])]))
    return np.column_stack([s[start], c[start], np.add.reduceat(ww, start)])


# -------------------------------------------------------------------------------- binomial

def binomial_tables(score, y, weights=None, comm=None, max_bins=MAX_BINS):
    """Collective: {"thresholds_and_metric_scores", "max_criteria_and_metric_scores",
    "gains_lift_table"} as Table.as_dict() dicts (None without rows) for this rank's rows:
    p1 scores, 0/1 labels (no missing ones), weights (None: 1)."""
    score = np.asarray(score, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    w = np.ones(len(score)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    local = _grouped(score, (y == 1).astype(np.float64), w)
    return _on_root(comm, local, lambda full: _binomial_from(full, max_bins))


def _binomial_from(full, max_bins):
    s, pos, neg = _desc_counts(full)
    if len(s) == 0:
        return {"thresholds_and_metric_scores": None, "max_criteria_and_metric_scores": None,
                "gains_lift_table": None}
    crit = criteria(np.cumsum(pos), np.cumsum(neg), _after(pos), _after(neg))
    best = {name: _argmax(crit[name]) for name in CRITERIA}
    shown = _shown_rows(pos + neg, [i for i in best.values() if i >= 0], max_bins)
    at = {int(i): k for k, i in enumerate(shown)}
    rows = [[float(s[i])] + [_value(name, crit[name][i]) for name in CRITERIA] + [k]
            for k, i in enumerate(shown)]
    thresholds = Table("Metrics for Thresholds", ("threshold",) + CRITERIA + ("idx",), rows,
                       "Binomial metrics as a function of classification thresholds")
    maxima = Table("Maximum Metrics", ("metric", "threshold", "value", "idx"),
                   [[f"max {name}", float(s[i]) if i >= 0 else float("nan"),
                     _value(name, crit[name][i]) if i >= 0 else float("nan"), at.get(i, -1)]
                    for name, i in best.items()], "Maximum metrics at their respective thresholds")
    gains = gains_lift(s, pos, neg)
    return {"thresholds_and_metric_scores": thresholds.as_dict(),
            "max_criteria_and_metric_scores": maxima.as_dict(),
            "gains_lift_table": gains.as_dict() if gains is not None else None}


def _desc_counts(full):
    """Distinct scores (descending) with their positive and negative weight."""
    s, c, w = full[:, 0], full[:, 1], full[:, 2]
    pos_w, neg_w = np.where(c == 1, w, 0.0), np.where(c == 1, 0.0, w)
    order = np.argsort(-s, kind="mergesort")
    s, pos_w, neg_w = s[order], pos_w[order], neg_w[order]
    if len(s) == 0:
        return s, pos_w, neg_w
    start = np.flatnonzero(np.concatenate([[True], s[1:] != s[:-1]]))
    return s[start], np.add.reduceat(pos_w, start), np.add.reduceat(neg_w, start)


def _after(w):
    """The weight of the rows below each distinct score (summed from the lowest up, so
    that it is exactly 0 at the lowest one)."""
    return np.concatenate([np.cumsum(w[::-1])[::-1][1:], [0.0]])


def criteria(tp, fp, fn, tn):
    """AUC2's ThresholdCriterion values for the (arrays of) true and false positives and
    negatives: {name: array}."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {"f1": 2 * tp / (2 * tp + fp + fn), "f2": 5 * tp / (5 * tp + 4 * fn + fp),
               "f0point5": 1.25 * tp / (1.25 * tp + 0.25 * fn + fp),
               "accuracy": (tn + tp) / (tp + fn + tn + fp), "precision": tp / (tp + fp),
               "recall": tp / (tp + fn),
               "specificity": tn / (tn + fp)}
        num = tp * tn - fp * fn
        mcc = np.abs(num) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        out["absolute_mcc"] = np.minimum(np.where(num == 0, 0.0, mcc), 1.0)
        out["min_per_class_accuracy"] = np.minimum(tp / (tp + fn), tn / (tn + fp))
        out["mean_per_class_accuracy"] = 0.5 * (tp / (tp + fn) + tn / (tn + fp))
        out.update(tns=tn, fns=fn, fps=fp, tps=tp, tnr=tn / (fp + tn), fnr=fn / (fn + tp),
                   fpr=fp / (fp + tn), tpr=tp / (tp + fn))
    return out


def _argmax(v):
    """First index of the largest non-NaN value (H2O's max_criterion_idx), -1 if none."""
    ok = ~np.isnan(v)
    if not ok.any():
        return -1
    return int(np.argmax(np.where(ok, v, -np.inf)))


def _value(name, v):
    return _counts(v) if name in COUNT_CRITERIA else float(v)


def _shown_rows(weight, must, max_bins):
    """Indices (ascending = descending threshold) of the rows the thresholds table shows."""
    n = len(weight)
    if n <= max_bins:
        return list(range(n))
    cum = np.cumsum(weight)
    if cum[-1] > 0:
        picks = np.searchsorted(cum, cum[-1] * np.arange(1, max_bins + 1) / max_bins)
    else:
        picks = np.linspace(0, n - 1, max_bins).round().astype(np.int64)
    return sorted(set(np.minimum(picks, n - 1).tolist()) | set(must))


def gains_lift(s, pos, neg, probs=GAINS_PROBS):
    """H2O's gains/lift Table from distinct scores s (descending) with their positive and
    negative weight; None without weight or positives (H2O gives none then either)."""
    wt = pos + neg
    N, E = wt.sum(), pos.sum()
    if not (N > 0 and E > 0):
        return None
    q = weighted_quantiles(s[::-1], wt[::-1], probs)
    th = np.unique(q)[::-1]                                  # descending, distinct
    group = np.searchsorted(-th, -s, side="left")            # first t with s >= th[t]
    n_i, e_i = np.bincount(group, wt, len(th)), np.bincount(group, pos, len(th))
    sc_i = np.bincount(group, wt * s, len(th))
    cn, ce, cs = np.cumsum(n_i), np.cumsum(e_i), np.cumsum(sc_i)
    P = E / N
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(n_i > 0, e_i / n_i, 0.0)
        score = np.where(n_i > 0, sc_i / n_i, 0.0)
        lift, cum_lift = rate / P, ce / cn / P
        non_event = (cn - ce) / (N - E) if N - E > 0 else np.zeros(len(th))
        cols = [np.arange(1, len(th) + 1), cn / N, th, lift, cum_lift, rate, score, ce / cn, cs / cn,
                e_i / E, ce / E, 100 * (lift - 1), 100 * (cum_lift - 1), ce / E - non_event]
    rows = [[int(cols[0][i])] + [float(c[i]) for c in cols[1:]] for i in range(len(th))]
    return Table("Gains/Lift Table", GAINS_COLUMNS, rows,
                 f"Avg response rate: {100 * P:.2f} %, avg score: {100 * (s * wt).sum() / N:.2f} %")


def weighted_quantiles(v, w, probs):
    """Quantiles of values v (ascending, distinct) with weights w: with integral weights
    (row counts) numpy's linear interpolation on the rows, else the smallest value whose
    cumulative weight reaches p of the total."""
    cum = np.cumsum(w)
    if np.all(w == np.round(w)):
        pos = np.asarray(probs, dtype=np.float64) * (cum[-1] - 1)
        lo, hi = np.floor(pos), np.ceil(pos)

        def at(k):  # the k-th (0-based) row's value in ascending order
            return v[np.minimum(np.searchsorted(cum, k, side="right"), len(v) - 1)]
        a, b = at(lo), at(hi)
        return a + (pos - lo) * (b - a)
    return v[np.minimum(np.searchsorted(cum, np.asarray(probs) * cum[-1]), len(v) - 1)]


# ----------------------------------------------------------------------------- multinomial

def multinomial_auc_tables(prob, y, domain, weights=None, comm=None):
    """Collective: {"multinomial_auc_table", "multinomial_aucpr_table"} (Table.as_dict()
    dicts, None above MAX_AUC_CLASSES classes or without rows) of this rank's (n, K)
    probabilities and class indices (no missing ones)."""
    prob = np.asarray(prob, dtype=np.float64)
    K = prob.shape[1]
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if K > MAX_AUC_CLASSES:
        return {"multinomial_auc_table": None, "multinomial_aucpr_table": None}
    parts = [np.zeros((0, 4))]
    for k in range(K):  # per class column: the weight of each distinct (score, true class)
        g = _grouped(prob[:, k], y, w)
        parts.append(np.column_stack([np.full(len(g), float(k)), g]))
    local = np.concatenate(parts)
    return _on_root(comm, local, lambda full: _multinomial_from(full, K, [str(d) for d in domain]))


def _multinomial_from(full, K, domain):
    if len(full) == 0:
        return {"multinomial_auc_table": None, "multinomial_aucpr_table": None}
    cols = [full[full[:, 0] == k, 1:] for k in range(K)]      # per class column: score, class, w
    support = np.array([cols[0][cols[0][:, 1] == k, 2].sum() for k in range(K)])
    out = {}
    for key, fn, name in (("multinomial_auc_table", metrics.auc, "AUC"),
                          ("multinomial_aucpr_table", metrics.average_precision, "auc_pr")):
        ovr = [fn(c[:, 0], c[:, 1] == k, c[:, 2]) for k, c in enumerate(cols)]
        pairs = [(a, b, 0.5 * (_ovo(fn, cols[a], a, b) + _ovo(fn, cols[b], b, a)))
                 for a in range(K - 1) for b in range(a + 1, K)]
        pair_w = np.array([support[a] + support[b] for a, b, _ in pairs]) / support.sum()
        rows = [[f"{domain[k]} vs Rest", domain[k], "", float(v)] for k, v in enumerate(ovr)]
        rows += [["Macro OVR", "", "", float(np.mean(ovr))],
                 ["Weighted OVR", "", "", _wmean(ovr, support)]]
        rows += [[f"{domain[a]} vs {domain[b]}", domain[a], domain[b], float(v)] for a, b, v in pairs]
        rows += [["Macro OVO", "", "", float(np.mean([v for *_, v in pairs])) if pairs else float("nan")],
                 ["Weighted OVO", "", "", _wmean([v for *_, v in pairs], pair_w)]]
        out[key] = Table(f"Multinomial {name} values", ("type", "first_class_domain",
                                                        "second_class_domain", name.lower()), rows).as_dict()
    return out


def _ovo(fn, col, a, b):
    """Class a's score on the rows of classes a and b, positive = a."""
    keep = (col[:, 1] == a) | (col[:, 1] == b)
    return fn(col[keep, 0], col[keep, 1] == a, col[keep, 2])


def _wmean(values, weights):
    weights = np.asarray(weights, dtype=np.float64)
    if len(values) == 0 or not weights.sum() > 0:
        return float("nan")
    return float((np.asarray(values) * weights).sum() / weights.sum())


def multinomial_auc_value(table, auc_type):
    """The AUC (or AUCPR) of a multinomial table dict for H2O's auc_type (MACRO_OVR, ...)."""
    if table is None or auc_type not in MULTINOMIAL_AUC_TYPES:
        return float("nan")
    label = {"MACRO_OVR": "Macro OVR", "WEIGHTED_OVR": "Weighted OVR", "MACRO_OVO": "Macro OVO",
             "WEIGHTED_OVO": "Weighted OVO"}[auc_type]
    return next(float(r[3]) for r in table["data"] if r[0] == label)


def hit_ratio_table(hit_ratios):
    """H2O's Top-K Hit Ratios table from metrics' hit_ratios list."""
    return Table(f"Top-{len(hit_ratios)} Hit Ratios", ("k", "hit_ratio"),
                 [[k + 1, float(v)] for k, v in enumerate(hit_ratios)]).as_dict()
