"""The response of a data description: classification or regression, its classes, the
scaling of a regression target, and each row's target.

`fit_response` decides it from the training frame's global summaries (collective); `targets`
gives a frame's targets for a fitted description.  docs/preprocessing.md ("Response").
"""
import math

import numpy as np

from h2odl_mpi.errors import UserError
from h2odl_mpi.collectives import allgather_obj
from h2odl_mpi.data.frame.column import CATEGORICAL

IDENTITY_LINK = ("AUTO", "gaussian", "laplace", "huber", "quantile")
REGRESSION_DISTRIBUTIONS = ("gaussian", "poisson", "gamma", "tweedie", "laplace", "quantile", "huber")
MAX_AUTO_CLASSES = 255
# H2O refuses a response with more levels than Model.Parameters.MAX_SUPPORTED_LEVELS: 1000 in
# H2O-3's earlier releases (1 << 20 in later ones).  Here 1000: scoring keeps a K x K confusion
# matrix per scoring event (gathered over the ranks, written to the summary), which at 1 << 20
# classes alone would be 8 TiB.
MAX_CLASSES = 1000


def number_label(v):
    """The text of a number as a class or level label: '3' for 3.0, repr otherwise."""
    return str(int(v)) if float(v).is_integer() and abs(v) < 2 ** 63 else repr(float(v))


def distinct_numbers(frame, name, comm, cap):
    """Sorted distinct non-NA values of a numeric column over all ranks, or None when
    there are at least `cap` of them (collective)."""
    values = frame.decode(name)
    mine = _distinct(values[~np.isnan(values)])
    mine = None if mine.size >= cap else mine
    parts = allgather_obj(comm, mine)
    if any(p is None for p in parts):
        return None
    merged = _distinct(np.concatenate(parts)) if parts else np.empty(0)
    return None if merged.size >= cap else merged


def _distinct(values):
    """np.unique of NaN-free numbers, without its NaN handling (which imports numpy.ma, a
    part of the start-up)."""
    v = np.sort(values)
    return v[np.concatenate(([True], v[1:] != v[:-1]))] if v.size else v


def _is_classification(frame, response, kind, distribution, comm):
    """H2O's rule: a bernoulli or multinomial distribution, a categorical response, or
    (AUTO) integer values with 2..MAX_AUTO_CLASSES distinct ones."""
    if distribution in ("bernoulli", "multinomial"):
        return True
    if distribution in REGRESSION_DISTRIBUTIONS:
        return False
    if kind == CATEGORICAL:
        return True
    values = distinct_numbers(frame, response, comm, MAX_AUTO_CLASSES + 1)
    return (values is not None and bool(np.all(values == np.round(values)))
            and 2 <= values.size <= MAX_AUTO_CLASSES)


def fit_response(frame, response, kind, summary, classification, p, comm):
    """The response's part of a description (Preprocess keyword arguments): classification,
    and domain / response_numeric, or response_mean / response_sd.  classification: True /
    False forces the kind, None applies H2O's rule.  Collective."""
    dist = p["distribution"]
    if classification is None:
        classification = _is_classification(frame, response, kind, dist, comm)
    out = dict(classification=bool(classification))
    if classification:
        if kind == CATEGORICAL:
            domain, numeric = list(frame.domain(response)), False
        else:
            values = distinct_numbers(frame, response, comm, MAX_CLASSES + 1)
            domain, numeric = (None if values is None else [number_label(v) for v in values]), True
        if domain is None or len(domain) > MAX_CLASSES:
            many = f"more than {MAX_CLASSES:,}" if domain is None else f"{len(domain):,}"
            raise UserError(f"response {response!r} has {many} distinct values: too many classes "
                            f"(at most {MAX_CLASSES:,}, as H2O) for a classification with "
                            f"distribution={dist}" + ("; for a numeric response use a regression "
                                                      "distribution such as gaussian" if numeric else ""))
        if len(domain) < 2:
            raise UserError(f"response {response!r} has fewer than 2 classes")
        if dist == "bernoulli" and len(domain) != 2:
            raise UserError(f"distribution=bernoulli needs 2 classes, response {response!r} "
                            f"has {len(domain)}")
        out.update(domain=domain, response_numeric=numeric)
    else:
        if kind == CATEGORICAL:
            raise UserError(f"response {response!r} is categorical: cannot do regression "
                            f"(distribution={dist})")
        if p["standardize"] and dist in IDENTITY_LINK and summary.na_count < summary.rows:
            sd = summary.sd
            out.update(response_mean=float(summary.mean),
                       response_sd=float(sd) if sd is not None and math.isfinite(sd) and sd > 0 else 1.0)
    return out


def targets(pre, frame):
    """Targets of this rank's rows of `frame` for description `pre`: class index (NaN: NA
    or a class the model does not know) or the (standardised) regression target, float32."""
    src = frame.column(pre.response)
    v = src.decode()
    if not pre.classification:
        if src.kind == CATEGORICAL:
            raise UserError(f"response {pre.response!r} is categorical in this frame, "
                            "the model is a regression")
        return ((v - pre.response_mean) / pre.response_sd).astype(np.float32)
    index = {lvl: i for i, lvl in enumerate(pre.domain)}
    if src.kind == CATEGORICAL:
        table = np.array([index.get(lvl, -1) for lvl in src.domain] + [-1], dtype=np.float64)
        codes = np.where(np.isnan(v), len(src.domain), v).astype(np.int64)
        y = table[codes]
    else:
        finite = ~np.isnan(v)
        uniq, inverse = np.unique(v[finite], return_inverse=True)
        table = np.array([index.get(number_label(u), -1) for u in uniq] + [-1], dtype=np.float64)
        y = np.full(v.size, -1.0)
        y[finite] = table[inverse]
    y[y < 0] = np.nan
    return y.astype(np.float32)
