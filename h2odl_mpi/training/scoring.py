"""Scoring during training: metrics on the training and validation data (or fixed samples
of them), the best model kept for overwrite_with_best_model, the Huber delta re-estimated
from the training residuals, and the stop rules that read the metrics.

Every function here is collective over the run's communicator: each rank scores its own
rows and the metrics are combined exactly, so every rank holds the same numbers and takes
the same decisions.
"""
import math

import numpy as np

from h2odl_mpi.evaluation import metric_tables, metrics
from h2odl_mpi.collectives import allgather_counts, allgather_values, rank_and_size
from h2odl_mpi.training.iteration_rows import row_shares
from h2odl_mpi.kernel import Rows
from h2odl_mpi.evaluation.stopping import EarlyStopping, best_model_metric, h2o_loss


def sample_rows(n, k, seed, classes=None):
    """k of n row indices without replacement, sorted; with `classes` (class index per row,
    NaN = missing) each class keeps its share of the rows (H2O's Stratified sampling)."""
    rng = np.random.default_rng(seed)
    if classes is None:
        return np.sort(rng.choice(n, k, replace=False))
    labels = np.where(np.isnan(classes), -1, classes).astype(np.int64)
    values, counts = np.unique(labels, return_counts=True)
    want = row_shares(k, counts)
    picks = [rng.choice(np.flatnonzero(labels == v), int(w), replace=False) for v, w in zip(values, want)]
    return np.sort(np.concatenate(picks))


def weighted_quantile(values, weights, q):
    """The smallest value whose cumulative weight reaches q of the total (the inverted
    empirical distribution function); NaN without weight."""
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    if cum.size == 0 or cum[-1] <= 0:
        return math.nan
    return float(values[order][min(np.searchsorted(cum, q * cum[-1]), cum.size - 1)])


class Scorer:
    """Metrics of a model on a data set, or on a fixed sample of its rows, as H2O reports
    them.  Each rank scores its own rows (its share of the sample, which keeps every rank's
    share of the usable rows; of a replicated frame, every size-th usable row from its rank
    on, so no row counts twice) and the metrics are combined exactly over `comm`, so every
    rank holds the same numbers.  A sample is decoded once into sparse rows; all of a frame's
    rows, once into dense rows (on `threads` threads) where `budget`
    (decoded_rows.DecodeBudget) allows."""

    def __init__(self, frame, rows, info, params, n_max, seed, comm=None, stratified=False, budget=None,
                 threads=1):
        rank, size = rank_and_size(comm)
        usable = rows.usable_rows()
        replicated = getattr(frame, "replicated", False) and size > 1
        if replicated:  # every rank holds every row: each scores its own part
            usable = usable[rank::size]
        counts = allgather_counts(comm, len(usable))
        if replicated and not (n_max and sum(counts) > n_max):
            rows = _sparse_sample(info, frame, rows, usable)
        elif n_max and sum(counts) > n_max:
            k = int(row_shares(n_max, counts)[rank])
            classes = rows.y[usable] if stratified and info.classification else None
            pick = usable[sample_rows(len(usable), k, seed + rank, classes)]
            rows = _sparse_sample(info, frame, rows, pick)
        self.rows = budget.decoded(rows, threads) if budget is not None else rows
        self.info, self.params, self.comm = info, params, comm

    def score(self, network, model, threads):
        info, comm, rows = self.info, self.comm, self.rows
        if info.autoencoder:
            recon = network.predict(model, rows, "recon", threads=threads)[:, 0]
            return metrics.autoencoder_metrics(recon, comm=comm)
        out = network.predict(model, rows, "output", threads=threads)
        if info.classification:
            out = info.correct_probabilities(out)  # back to the data's class priors (balancing)
            return metrics.classification_metrics(out, rows.y, rows.weight, comm=comm)
        p = self.params
        dist = p["distribution"] if p["distribution"] not in ("AUTO", "bernoulli") else "gaussian"
        return metrics.regression_metrics(
            info.decode_response(out[:, 0].astype(np.float64)),
            info.decode_response(rows.y.astype(np.float64)), rows.weight, comm=comm,
            distribution=dist, tweedie_power=p["tweedie_power"], quantile_alpha=p["quantile_alpha"],
            huber_delta=network.config.huber_delta * info.response_sd)

    def binomial_tables(self, network, model, threads):
        """H2O's thresholds table, maximum criteria and gains/lift of a two-class model on
        these rows (collective; metric_tables.binomial_tables, exact over the ranks): the
        final model's, which the model file keeps beside its metrics."""
        rows = self.rows
        prob = self.info.correct_probabilities(network.predict(model, rows, "output", threads=threads))
        keep = ~np.isnan(rows.y)
        w = None if rows.weight is None else rows.weight[keep]
        return metric_tables.binomial_tables(prob[keep, 1], rows.y[keep], w, comm=self.comm)

    def estimate_huber_delta(self, network, model, threads, alpha):
        """distribution huber (H2O's rule): the delta becomes the huber_alpha quantile of
        the absolute residuals |y - prediction| (weighted) on these rows, over all ranks;
        set on `network` in the kernel's standardised units.  Kept when it is not positive
        (a perfect fit) or not finite."""
        rows = self.rows
        keep = ~np.isnan(rows.y)
        out = network.predict(model, rows, "output", threads=threads)[:, 0]
        resid = np.abs(rows.y[keep].astype(np.float64) - out[keep].astype(np.float64))
        w = np.ones(resid.size) if rows.weight is None else rows.weight[keep].astype(np.float64)
        delta = weighted_quantile(allgather_values(self.comm, resid), allgather_values(self.comm, w), alpha)
        if math.isfinite(delta) and delta > 0:
            network.set_huber_delta(delta)
        return network.config.huber_delta


def _sparse_sample(info, frame, rows, pick, block=512):
    """Rows `pick` of a FRAME `rows` decoded into CSR rows (memory ~ their non-zeros)."""
    indptr, indices, values = [np.zeros(1, dtype=np.int64)], [], []
    for start in range(0, len(pick), block):
        x = info.expand(frame, pick[start:start + block])
        r, c = np.nonzero(x)
        indices.append(c.astype(np.int32))
        values.append(x[r, c])
        indptr.append(indptr[-1][-1] + np.cumsum(np.bincount(r, minlength=x.shape[0])))
    sub = lambda a: None if a is None else a[pick]  # noqa: E731
    return Rows.csr(np.concatenate(indptr), np.concatenate(indices) if indices else np.zeros(0, np.int32),
                    np.concatenate(values) if values else np.zeros(0, np.float32), info.n_inputs,
                    sub(rows.y), sub(rows.weight), sub(rows.offset))


class BestModel:
    """overwrite_with_best_model: a copy of the best scored model so far, by H2O-3's
    Model.loss() (best_model_metric): a model replaces the kept one when its loss is
    strictly lower (DeepLearningModel.doScoring); a NaN loss never wins."""

    def __init__(self, kind, enabled, stopping_metric="AUTO"):
        self.metric = best_model_metric(kind, stopping_metric)
        self.enabled = enabled
        self.model, self.value = None, None

    def value_of(self, m):
        return h2o_loss(m, self.metric)

    def offer(self, model, m):
        """Keep a copy of `model` if its metrics `m` are the best so far."""
        current = self.value_of(m)
        if self.enabled and not math.isnan(current) and (self.value is None or current < self.value):
            self.value, self.model = current, model.copy()

    def beats(self, m):
        """Whether the kept model is better than one with metrics `m` (H2O-3's end of
        training: the best model replaces the last one when best.loss() < last.loss())."""
        current = self.value_of(m)
        return self.model is not None and (math.isnan(current) or self.value < current)


def scoring_due(now, last_start, last_end, score_interval, score_duty_cycle):
    """H2O-3's rule for scoring during training (DeepLearningModel.doScoring), times in
    seconds on one clock: more than score_interval since the last scoring began, and that
    scoring's duration below score_duty_cycle of the time since it began.  (The first
    iteration and the last one are always scored; the trainer decides those.)"""
    since = now - last_start
    return since > score_interval and (last_end - last_start) / since < score_duty_cycle


class StopRules:
    """classification_stop, regression_stop and H2O's early stopping (stopping_rounds),
    read after each scoring event."""

    def __init__(self, params, info):
        self.params, self.info = params, info
        self.early = EarlyStopping(params["stopping_rounds"], params["stopping_metric"],
                                   params["stopping_tolerance"], classification=info.classification,
                                   autoencoder=info.autoencoder)

    def reason(self, train_m, valid_m):
        """Why training should stop after this scoring event, or None."""
        p, info = self.params, self.info
        if not info.autoencoder and train_m:
            if info.classification and p["classification_stop"] >= 0 and \
                    train_m["classification_error"] <= p["classification_stop"]:
                return f"training classification error {train_m['classification_error']:.4g} <= classification_stop"
            if not info.classification and p["regression_stop"] >= 0 and train_m["mse"] <= p["regression_stop"]:
                return f"training MSE {train_m['mse']:.4g} <= regression_stop"
        if self.early.add(valid_m or train_m):
            return (f"{self.early.metric_name} did not improve by stopping_tolerance="
                    f"{p['stopping_tolerance']} over the last {p['stopping_rounds']} scoring events")
        return None
