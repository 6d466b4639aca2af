"""H2O's model_performance: a model's metrics on a labelled Frame, combined exactly over MPI
ranks, with h2o-py's ModelMetrics accessors and H2O's printout.

`model_performance(network, model, info, frame, comm)` is collective: each rank scores its
own rows of the frame (a replicated frame: a contiguous run of them each) and the metrics
are combined exactly (metrics.py: sums in rank order on every rank; the exact AUC and
max-F1 threshold and the tables of metric_tables.py from every rank's sufficient
statistics, on rank 0, then sent to all), so every rank gets the same ModelPerformance.
The scalar metrics are the training summary's (metrics.py's definitions and names); the
binomial confusion matrix, classification_error and mean_per_class_error are at the
data's own max-F1 threshold, as H2O's.

What each kind holds (H2O's ModelMetrics*):
- Binomial: mse, rmse, logloss, auc, aucpr, gini, r2 (1 - mse / var(y), y 0/1),
  mean_per_class_error, classification_error, confusion_matrix, threshold, nobs; the
  thresholds table, the maximum criteria table, the gains/lift table.
- Multinomial: mse, rmse, logloss, mean_per_class_error, classification_error, the
  confusion matrix, hit ratios (top k, max_hit_ratio_k), the multinomial AUC and AUCPR
  tables; auc()/aucpr() are the table's value for `auc_type` (MACRO_OVR, WEIGHTED_OVR,
  MACRO_OVO, WEIGHTED_OVO; AUTO means MACRO_OVR here, where H2O-3 computes none; NONE
  computes no table).
- Regression: mse, rmse, mae, rmsle, mean_residual_deviance (the model's distribution),
  r2, nobs; of the response as read (float64; training scores the kernel's float32 target).
- AutoEncoder: mse, rmse (of the per-row reconstruction MSE), nobs.
Accessors of metrics a kind does not have return None.  The threshold-dependent accessors
of h2o-py's binomial metrics (F1(), accuracy(), precision(), ..., error(), metric()) return
[[threshold, value], ...]: at the threshold that maximises the metric by default, else at
the thresholds table's rows closest to the given ones; they are two-class only (a UserError
otherwise, as h2o-py has them on binomial metrics only).  mean_per_class_error() and
classification_error() are the scalars of the max-F1 confusion matrix (h2o-py's
thresholded binomial form: metric("mean_per_class_accuracy", thresholds)).
"""
import json
import math

import numpy as np

from h2odl_mpi.evaluation import metrics
from h2odl_mpi.errors import UserError
from h2odl_mpi.evaluation.metric_tables import (CRITERIA, MULTINOMIAL_AUC_TYPES, ConfusionMatrix, Table,
                                     binomial_tables, hit_ratio_table, multinomial_auc_tables,
                                     multinomial_auc_value)
from h2odl_mpi.evaluation.predict import refuse_nan
from h2odl_mpi.evaluation.row_blocks import local_part, score_rows
from h2odl_mpi.threads import rank_threads

AUC_TYPES = ("AUTO", "NONE") + MULTINOMIAL_AUC_TYPES
TABLES = ("thresholds_and_metric_scores", "max_criteria_and_metric_scores", "gains_lift_table",
          "hit_ratio_table", "multinomial_auc_table", "multinomial_aucpr_table")
ALIASES = {"fallout": "fpr", "missrate": "fnr", "sensitivity": "tpr"}
_META = ("model_category", "domain", "multinomial_auc_type", "gini")


def model_performance(network, model, info, frame, comm=None, threads=None, params=None,
                      auc_type="AUTO", max_hit_ratio_k=10):
    """The model's metrics on labelled `frame` (collective over `comm`, by default the
    frame's): a ModelPerformance, the same on every rank.  params: the model's parameters
    (for the regression deviance's distribution; by default the data description's).
    A missing response column, data the model cannot take and NaN predictions are
    UserErrors naming the file, column or row.  An ensemble file is scored the same way:
    pass what predict.load_for_scoring (or ensemble_model.load_ensemble) gives for it."""
    if auc_type not in AUC_TYPES:
        raise UserError(f"auc_type: must be one of {', '.join(AUC_TYPES)}, not {auc_type!r}")
    comm = frame.comm if comm is None else comm
    source = frame.source or "frame"
    if not info.autoencoder and info.response not in frame.names:
        raise UserError(f"{source}: no response column {info.response!r}: model_performance needs the labels")
    info.check_finite(frame, response=True)
    rows = info.rows(frame, training=False)
    pick, first = local_part(frame, comm)
    what = "recon" if info.autoencoder else "output"
    out = score_rows(network, model, rows, what, rank_threads(threads, comm), pick)
    refuse_nan(comm, out, first, source)
    if info.autoencoder:
        return ModelPerformance("AutoEncoder", metrics.autoencoder_metrics(out[:, 0], comm=comm))
    y, w = (None if a is None else a if pick is None else a[pick] for a in (rows.y, rows.weight))
    if info.classification:
        return _classification(info, out, y.astype(np.float64), w, comm, auc_type, max_hit_ratio_k)
    y = frame.decode(info.response)  # the response as read (float64), not the kernel's float32 target
    return _regression(network, info, out, y if pick is None else y[pick], w, comm, params)


def _classification(info, out, y, w, comm, auc_type, max_hit_ratio_k):
    prob = info.correct_probabilities(out)  # back to the data's priors (balance_classes)
    m = metrics.classification_metrics(prob, y, w, comm=comm, max_hit_ratio_k=max_hit_ratio_k)
    ok = ~np.isnan(y)
    wk = None if w is None else w[ok]
    if prob.shape[1] == 2:
        tables = binomial_tables(prob[ok, 1], y[ok], wk, comm=comm)
        r2 = metrics.regression_metrics(prob[:, 1], y, w, comm=comm).get("r2")
        if m:
            m["r2"] = r2
        return ModelPerformance("Binomial", m, tables, info.domain)
    tables = {} if auc_type == "NONE" else multinomial_auc_tables(prob[ok], y[ok], info.domain, wk, comm)
    return ModelPerformance("Multinomial", m, tables, info.domain, auc_type)


def _regression(network, info, out, y, w, comm, params):
    cfg = network.config
    dist = (params or {}).get("distribution") or info.settings.get("distribution", "AUTO")
    dist = "gaussian" if dist in ("AUTO", "bernoulli", "multinomial") else dist
    m = metrics.regression_metrics(info.decode_response(out[:, 0]), y, w, comm=comm,
                                   distribution=dist, tweedie_power=cfg.tweedie_power,
                                   quantile_alpha=cfg.quantile_alpha,
                                   huber_delta=cfg.huber_delta * info.response_sd)
    return ModelPerformance("Regression", m)


class ModelPerformance:
    """A model's metrics on one data set (h2o-py's ModelMetrics names; see the module)."""

    def __init__(self, model_category, metric_values, tables=None, domain=None, auc_type="AUTO"):
        self.model_category = model_category
        self.domain = list(domain or [])
        self.auc_type = auc_type
        self._m = dict(metric_values or {})
        self._tables = {k: Table.from_dict(v) for k, v in (tables or {}).items() if v is not None}
        if "hit_ratios" in self._m and "hit_ratio_table" not in self._tables:
            self._tables["hit_ratio_table"] = Table.from_dict(hit_ratio_table(self._m["hit_ratios"]))

    # ---- scalars ------------------------------------------------------------------
    def _get(self, key):
        return self._m.get(key)

    def mse(self):
        return self._get("mse")

    def rmse(self):
        return self._get("rmse")

    def mae(self):
        return self._get("mae")

    def rmsle(self):
        return self._get("rmsle")

    def r2(self):
        return self._get("r2")

    def mean_residual_deviance(self):
        return self._get("mean_residual_deviance")

    def logloss(self):
        return self._get("logloss")

    def mean_per_class_error(self):
        return self._get("mean_per_class_error")

    def classification_error(self):
        return self._get("classification_error")

    def nobs(self):
        return self._get("nobs")

    def auc(self):
        if self.model_category == "Multinomial":
            return self._multinomial("multinomial_auc_table")
        return self._get("auc")

    def aucpr(self):
        if self.model_category == "Multinomial":
            return self._multinomial("multinomial_aucpr_table")
        return self._get("aucpr")

    pr_auc = aucpr

    def gini(self):
        a = self.auc() if self.model_category == "Binomial" else None
        return None if a is None else 2 * a - 1

    def _multinomial(self, key):
        if key not in self._tables:
            return None
        kind = "MACRO_OVR" if self.auc_type == "AUTO" else self.auc_type
        return multinomial_auc_value(self._tables[key].as_dict(), kind)

    # ---- tables -------------------------------------------------------------------
    def thresholds_and_metric_scores(self):
        return self._tables.get("thresholds_and_metric_scores")

    def max_criteria_and_metric_scores(self):
        return self._tables.get("max_criteria_and_metric_scores")

    def gains_lift(self):
        return self._tables.get("gains_lift_table")

    def hit_ratio_table(self):
        return self._tables.get("hit_ratio_table")

    def multinomial_auc_table(self):
        return self._tables.get("multinomial_auc_table")

    def multinomial_aucpr_table(self):
        return self._tables.get("multinomial_aucpr_table")

    def confusion_matrix(self, metrics=None, thresholds=None):
        """H2O's confusion matrix.  By default the metrics' own (as_dict()'s): the
        multinomial one, or two classes' at the data's max-F1 threshold (the larger
        probability when the data hold one class only).  Binomial with `metrics` and/or
        `thresholds` (h2o-py's): at the threshold maximising each of `metrics` and at the
        thresholds table's rows closest to `thresholds`; one ConfusionMatrix, or a list."""
        if metrics is None and thresholds is None:
            return self._own_confusion_matrix()
        table = self.thresholds_and_metric_scores()
        if table is None:
            return None
        names = [metrics] if isinstance(metrics, str) else list(metrics or [])
        wanted = [(t, None) for t in _as_list(thresholds)] + \
            [(self.find_threshold_by_max_metric(_criterion(n)), n) for n in names]
        cms = []
        for t, name in wanted:
            row = table.cell_values[self.find_idx_by_threshold(t)]
            tns, fns, fps, tps = (row[1 + CRITERIA.index(c)] for c in ("tns", "fns", "fps", "tps"))
            at = f"for max {name} @ threshold = {row[0]}" if name else f"@ threshold = {row[0]}"
            cms.append(ConfusionMatrix([[tns, fps], [fns, tps]], self.domain,
                                       f"Confusion Matrix (Act/Pred) {at}"))
        return cms[0] if len(cms) == 1 else cms

    def _own_confusion_matrix(self):
        if "confusion_matrix" not in self._m:
            return None
        if self.model_category == "Multinomial":
            header = "Confusion Matrix: Row labels: Actual class; Column labels: Predicted class"
        else:
            t = self._m.get("threshold")
            maxima = self.max_criteria_and_metric_scores()
            by_f1 = maxima is None or t == self.find_threshold_by_max_metric("f1")
            header = f"Confusion Matrix (Act/Pred) {'for max f1 ' if by_f1 else ''}@ threshold = {t}"
        return ConfusionMatrix(self._m["confusion_matrix"], self.domain, header)

    # ---- h2o-py's binomial metrics at thresholds ------------------------------------
    def metric(self, metric, thresholds=None):
        """[[threshold, value], ...] of criterion `metric` (a CRITERIA name or h2o-py's
        alias): at its maximising threshold (None), every table row ("all"), or the rows
        closest to the given thresholds."""
        table = self.thresholds_and_metric_scores()
        if table is None:
            raise UserError(f"{metric}: a two-class metric of a threshold; these metrics are "
                            f"{self.model_category}'s")
        name = _criterion(metric)
        column = table[name]
        if isinstance(thresholds, str) and thresholds == "all":
            return [[t, v] for t, v in zip(table["threshold"], column)]
        ts = [self.find_threshold_by_max_metric(name)] if thresholds is None else _as_list(thresholds)
        return [[t, column[self.find_idx_by_threshold(t)]] for t in ts]

    def find_threshold_by_max_metric(self, metric):
        name = _criterion(metric)
        for row in self.max_criteria_and_metric_scores().cell_values:
            if row[0] == f"max {name}":
                return row[1]
        raise UserError(f"{metric}: no such criterion")

    def find_idx_by_threshold(self, threshold):
        """The thresholds table's row of `threshold`, or the closest one (h2o-py's rule)."""
        ts = np.array(self.thresholds_and_metric_scores()["threshold"], dtype=np.float64)
        t = float(threshold)
        if not math.isfinite(t) or len(ts) == 0:
            raise UserError(f"threshold: {threshold!r} is not a number between 0 and 1")
        return int(np.argmin(np.abs(ts - t)))

    def F1(self, thresholds=None):
        return self.metric("f1", thresholds)

    def F2(self, thresholds=None):
        return self.metric("f2", thresholds)

    def F0point5(self, thresholds=None):
        return self.metric("f0point5", thresholds)

    def accuracy(self, thresholds=None):
        return self.metric("accuracy", thresholds)

    def error(self, thresholds=None):
        return [[t, 1 - v] for t, v in self.metric("accuracy", thresholds)]

    def precision(self, thresholds=None):
        return self.metric("precision", thresholds)

    def recall(self, thresholds=None):
        return self.metric("recall", thresholds)

    def specificity(self, thresholds=None):
        return self.metric("specificity", thresholds)

    def mcc(self, thresholds=None):
        return self.metric("absolute_mcc", thresholds)

    def tpr(self, thresholds=None):
        return self.metric("tpr", thresholds)

    def fpr(self, thresholds=None):
        return self.metric("fpr", thresholds)

    def tnr(self, thresholds=None):
        return self.metric("tnr", thresholds)

    def fnr(self, thresholds=None):
        return self.metric("fnr", thresholds)

    def max_per_class_error(self, thresholds=None):
        return [[t, 1 - v] for t, v in self.metric("min_per_class_accuracy", thresholds)]

    # ---- as data and as text --------------------------------------------------------
    def as_dict(self):
        """The metrics under the summary JSON's names, the tables as Table.as_dict() dicts."""
        d = {"model_category": self.model_category, **self._m}
        if self.domain:
            d["domain"] = self.domain
        if self.model_category == "Binomial" and self.auc() is not None:
            d["gini"] = self.gini()
        if self.model_category == "Multinomial" and self._tables.get("multinomial_auc_table"):
            d.update(auc=self.auc(), aucpr=self.aucpr(), multinomial_auc_type=self.auc_type)
        d.update({k: t.as_dict() for k, t in self._tables.items()})
        return d

    @classmethod
    def from_dict(cls, d):
        """The ModelPerformance of as_dict()'s dict (e.g. read back from evaluate's JSON)."""
        values = {k: v for k, v in d.items() if k not in TABLES and k not in _META and
                  not (d.get("model_category") == "Multinomial" and k in ("auc", "aucpr"))}
        return cls(d["model_category"], values, {k: d.get(k) for k in TABLES}, d.get("domain"),
                   d.get("multinomial_auc_type", "AUTO"))

    def to_json(self):
        """as_dict() as JSON text; non-finite numbers become null (strict JSON)."""
        return json.dumps(_json_safe(self.as_dict()), indent=2, allow_nan=False)

    def text(self, on="test"):
        """H2O's printout of the metrics (ModelMetrics*.show())."""
        lines = [f"ModelMetrics{self.model_category}: deeplearning", f"** Reported on {on} data. **", ""]
        lines += [f"{label}: {value}" for label, value in self._scalar_lines() if value is not None]
        for part in self._table_parts():
            lines += ["", str(part)]
        return "\n".join(lines)

    def _scalar_lines(self):
        kind = self.model_category
        rows = [("MSE", self.mse()), ("RMSE", self.rmse())]
        if kind == "Regression":
            rows += [("MAE", self.mae()), ("RMSLE", self.rmsle()),
                     ("Mean Residual Deviance", self.mean_residual_deviance()), ("R^2", self.r2())]
        if kind in ("Binomial", "Multinomial"):
            rows += [("LogLoss", self.logloss()), ("Mean Per-Class Error", self.mean_per_class_error())]
            rows += [("AUC", self.auc()), ("AUCPR", self.aucpr())]
        if kind == "Binomial":
            rows += [("Gini", self.gini())]
        return rows

    def _table_parts(self):
        if self.model_category not in ("Binomial", "Multinomial"):
            return []
        parts = [self.confusion_matrix()]
        keys = ("max_criteria_and_metric_scores", "gains_lift_table") if self.model_category == "Binomial" \
            else ("hit_ratio_table", "multinomial_auc_table", "multinomial_aucpr_table")
        return [p for p in parts + [self._tables.get(k) for k in keys] if p is not None]

    def show(self, on="test"):
        print(self.text(on))

    def __str__(self):
        return self.text()

    def __repr__(self):
        return self.text()


def _criterion(name):
    name = str(name).lower()
    name = ALIASES.get(name, name)
    if name not in CRITERIA:
        raise UserError(f"metric {name!r}: must be one of {', '.join(CRITERIA + tuple(ALIASES))}")
    return name


def _as_list(thresholds):
    if thresholds is None:
        return []
    return list(thresholds) if isinstance(thresholds, (list, tuple, np.ndarray)) else [thresholds]


def _json_safe(v):
    """`v` with NaN and infinities as None, numpy numbers as Python numbers."""
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    return v
