"""Class balancing (balance_classes, class_sampling_factors, max_after_balance_size).

`fit_rates` computes H2O's stratified sampling rates per class (MRUtils.
sampleFrameStratified) and the class distributions before and after; the trainer picks rows
with `sampling_rates` / `balanced_order`, and `correct_probabilities` brings scored
probabilities back to the training priors (GenModel.correctProbabilities).
docs/preprocessing.md ("balance_classes").
"""
import numpy as np

from h2odl_mpi.errors import UserError
from h2odl_mpi.collectives import allreduce


def fit_rates(y, weight, domain, factors, max_after_balance_size, n_rows, comm):
    """(class_rates, prior_class_dist, model_class_dist) from this rank's targets `y` (class
    indices, NaN: none) and row weights (None: all 1) over `n_rows` global rows (collective)."""
    k = len(domain)
    ok = ~np.isnan(y)
    w = weight[ok] if weight is not None else None
    counts = allreduce(comm, np.bincount(y[ok].astype(np.int64), weights=w, minlength=k)
                       .astype(np.float64))
    if factors is not None:
        factors = np.asarray(factors, dtype=np.float64).reshape(-1)
        if factors.size != k or not np.all(np.isfinite(factors)) or np.any(factors <= 0):
            raise UserError(f"class_sampling_factors: need {k} positive numbers (one per "
                            f"class, in the order {domain}), got {list(factors)}")
        rates = factors.copy()
    else:
        with np.errstate(divide="ignore"):
            rates = np.where(counts > 0, (n_rows / k) / np.maximum(counts, 1e-300), 0.0)
        present = rates[counts > 0]
        if present.size:
            rates /= present.min()           # the majority class keeps rate 1
    max_rows = max(k, int(max_after_balance_size * n_rows))
    expected = float((rates * counts).sum())
    if expected > 0:
        actual = min(max_rows, round(expected))
        if actual != expected:
            rates *= actual / expected
    total = counts.sum()
    prior = counts / total if total > 0 else np.full(k, 1.0 / k)
    model = rates * counts
    model = model / model.sum() if model.sum() > 0 else prior.copy()
    return rates, prior, model


def sampling_rates(class_rates, y):
    """Per-row expected repetitions (class_rates[y]; 0 for a missing target); all ones
    without balancing (class_rates None)."""
    y = np.asarray(y)
    if class_rates is None:
        return np.where(np.isnan(y), 0.0, 1.0)
    ok = ~np.isnan(y)
    rates = np.zeros(y.size)
    rates[ok] = class_rates[y[ok].astype(np.int64)]
    return rates


def balanced_order(class_rates, y, rng):
    """H2O's stratified resampling of local rows: row r appears floor(rate) times plus
    once more with probability frac(rate), rate = class_rates[y[r]].  Row indices in
    ascending order (the trainer shuffles); the rows of one balanced epoch."""
    rates = sampling_rates(class_rates, y)
    reps = np.floor(rates).astype(np.int64)
    reps += rng.random(rates.size) < (rates - reps)
    return np.repeat(np.arange(rates.size, dtype=np.int64), reps)


def correct_probabilities(prior, model, probs):
    """Class probabilities of a model trained on balanced classes (class distribution
    `model`), corrected back to the training data's `prior`, a new array; a copy when
    either is None (no balancing)."""
    probs = np.array(probs, dtype=np.float64, copy=True)
    if prior is None or model is None:
        return probs
    ratio = np.where((prior != 0) & (model != 0), prior / np.where(model != 0, model, 1), 1.0)
    probs *= ratio
    total = probs.sum(axis=-1, keepdims=True)
    return np.where(total > 0, probs / np.where(total > 0, total, 1), probs)
