"""The data description (H2O's DataInfo): how a Frame's columns become network inputs.

`Preprocess.fit(frame, params)` is computed once, collectively, from the GLOBAL column
summaries of the training Frame and saved with the model (`to_hdf5` / `from_hdf5`).  It
fixes the input layout, the numeric transform, the categorical encoding, the response (its
kind, classes, scaling), the weight and offset columns and class balancing; `rows(frame)`
then gives `kernel.Rows` of kind FRAME that the C kernel decodes straight from the
compressed chunks, row by row, with exactly this transform (the store is never expanded).
`expand(frame)` is the same transform in numpy (a dense float32 matrix): the reference the
tests hold the C decoder to, bit for bit.  docs/preprocessing.md is the user's reference.

Layout (as the issue asks: numeric columns first, then the expanded categoricals):
  1. every numeric-valued input in frame column order: numeric columns, LabelEncoder
     columns (one unit) and Binary columns (bit_length(levels) units, bit b of level + 1,
     NA = 0), all standardised like numbers;
  2. then one-hot blocks (AUTO / OneHotInternal / SortByResponse) in frame column order:
     one unit per level (the first level dropped when use_all_factor_levels is false) and a
     last unit for NA or unseen levels; or, when these would exceed
     max_categorical_features, one shared region of that many units into which each active
     one-hot unit is hashed (H2O's hashing trick).
"""
from dataclasses import dataclass, field
import json
import math

import numpy as np

from h2odl_mpi.errors import UserError
from h2odl_mpi.frame.collective import allgather, allreduce
from h2odl_mpi.frame.column import CATEGORICAL, NUMERIC, Column
from h2odl_mpi.frame.encoding import encode
from h2odl_mpi.kernel import FrameInput, Rows

FORMAT = "h2odl_mpi-preprocess-1"
MAX_CATEGORICAL_FEATURES = 2 ** 31 - 1
MISSING_VALUES_HANDLING = ("MeanImputation", "Skip")
CATEGORICAL_ENCODINGS = ("AUTO", "OneHotInternal", "Binary", "LabelEncoder", "SortByResponse")
REFUSED_ENCODINGS = {
    "Eigen": "its projection of each column's one-hot matrix onto the leading eigenvector is "
             "not implemented",
    "OneHotExplicit": "use OneHotInternal (the same units, built without copying the frame)",
    "Enum": "use AUTO",
    "EnumLimited": "use AUTO with max_categorical_features",
}
IDENTITY_LINK = ("AUTO", "gaussian", "laplace", "huber", "quantile")
REGRESSION_DISTRIBUTIONS = ("gaussian", "poisson", "gamma", "tweedie", "laplace", "quantile", "huber")
MAX_AUTO_CLASSES = 255

DEFAULTS = dict(response=None, ignored_columns=(), autoencoder=False, standardize=True,
                missing_values_handling="MeanImputation", ignore_const_cols=True,
                categorical_encoding="AUTO", use_all_factor_levels=True,
                max_categorical_features=MAX_CATEGORICAL_FEATURES, weights_column=None,
                offset_column=None, balance_classes=False, class_sampling_factors=None,
                max_after_balance_size=5.0, distribution="AUTO", sparse=False, seed=0)


@dataclass
class InputColumn:
    """One source column and the input units it feeds (saved with the model)."""
    name: str
    kind: str                 # numeric | label | binary | onehot | hashed
    input: int                # first unit
    width: int                # units (hashed: the shared region's size)
    sub: float = 0.0          # numeric / label: x = (v - sub) * mul
    mul: float = 1.0
    na_fill: float = 0.0      # the transformed value of NA (mean imputation)
    levels: list = None       # categorical kinds: training levels, in code order
    first_level: int = 0      # onehot / hashed: 1 when use_all_factor_levels is off
    bit_sub: list = None      # binary: per bit
    bit_mul: list = None
    cat_offset: int = 0       # hashed: first unit of this column before hashing
    hash_seed: int = 0
    stats: dict = field(default_factory=dict)   # mean, sd, min, max, na_count (as summarised)

    @property
    def categorical(self):
        return self.levels is not None

    def unit_names(self):
        if self.kind in ("numeric", "label"):
            return [self.name]
        if self.kind == "binary":
            return [f"{self.name}:{b}" for b in range(self.width)]
        if self.kind == "onehot":
            return [f"{self.name}.{lvl}" for lvl in self.levels[self.first_level:]] + \
                [f"{self.name}.missing(NA)"]
        return []


def _param(params, name):
    value = params.get(name, DEFAULTS[name])
    return DEFAULTS[name] if value is None and DEFAULTS[name] is not None else value


def _data_comm(frame):
    return None if frame.replicated else frame.comm


def _number_label(v):
    """The text of a number as a class or level label: '3' for 3.0, repr otherwise."""
    return str(int(v)) if float(v).is_integer() and abs(v) < 2 ** 63 else repr(float(v))


def _standardizer(stats, standardize, autoencoder, sparse):
    """(sub, mul, na_fill) of a numeric-valued input from its global summary."""
    mean, sd, lo, hi = (stats.get(k) for k in ("mean", "sd", "min", "max"))
    finite = mean is not None and math.isfinite(mean)
    sub, mul = 0.0, 1.0
    if standardize and finite:
        if autoencoder:           # normalise to [-0.5, 0.5]
            sub = (lo + hi) / 2.0
            mul = 1.0 / (hi - lo) if hi > lo else 1.0
        else:
            sub = 0.0 if sparse else mean
            mul = 1.0 / sd if sd is not None and math.isfinite(sd) and sd > 0 else 1.0
    na_fill = (mean - sub) * mul if finite else 0.0
    return float(sub), float(mul), float(na_fill)


def _level_stats(counts):
    """mean, sd, min, max, present of the integer codes 0..k-1 occurring counts[c] times."""
    codes = np.arange(counts.size, dtype=np.float64)
    n = float(counts.sum())
    if n == 0:
        return dict(mean=float("nan"), sd=float("nan"), min=float("nan"), max=float("nan"))
    mean = float((codes * counts).sum() / n)
    sd = math.sqrt(float((counts * (codes - mean) ** 2).sum()) / (n - 1)) if n > 1 else float("nan")
    present = np.flatnonzero(counts)
    return dict(mean=mean, sd=sd, min=float(present[0]), max=float(present[-1]))


def np_hash(key, seed):
    """numpy twin of h2o_hash (csrc/frame_rows.c) for uint32 keys."""
    m = np.uint64(0xFFFFFFFF)
    h = ((np.asarray(key, dtype=np.uint64) * np.uint64(0x9E3779B1)) & m) ^ np.uint64(seed & 0xFFFFFFFF)
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & m
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & m
    h ^= h >> np.uint64(16)
    return h


class Preprocess:
    """The data description: layout, transforms, response, weights, balancing."""

    def __init__(self, columns, n_inputs, response=None, classification=False, domain=(),
                 response_mean=0.0, response_sd=1.0, response_numeric=False, autoencoder=False,
                 weights_column=None, offset_column=None, skip_missing=False, settings=None,
                 dropped=None, class_rates=None, prior_class_dist=None, model_class_dist=None,
                 n_usable_rows=None):
        self.columns = list(columns)
        self.n_inputs = int(n_inputs)
        self.response = response
        self.classification = bool(classification)
        self.domain = list(domain)
        self.response_mean = float(response_mean)
        self.response_sd = float(response_sd)
        self.response_numeric = bool(response_numeric)   # classes from a numeric column
        self.autoencoder = bool(autoencoder)
        self.weights_column = weights_column
        self.offset_column = offset_column
        self.skip_missing = bool(skip_missing)
        self.settings = dict(settings or {})
        self.dropped = dict(dropped or {})               # column -> why it is not an input
        self.class_rates = None if class_rates is None else np.asarray(class_rates, np.float64)
        self.prior_class_dist = None if prior_class_dist is None else np.asarray(prior_class_dist, np.float64)
        self.model_class_dist = None if model_class_dist is None else np.asarray(model_class_dist, np.float64)
        self.n_usable_rows = n_usable_rows

    # ------------------------------------------------------------------ description
    @property
    def kind(self):
        return "autoencoder" if self.autoencoder else "classification" if self.classification else "regression"

    @property
    def n_classes(self):
        return len(self.domain) if self.classification else 1

    @property
    def input_names(self):
        """Name of every input unit, in layout order."""
        names = [None] * self.n_inputs
        for col in self.columns:
            for k, name in enumerate(col.unit_names()):
                names[col.input + k] = name
        for k in range(self.n_inputs):
            if names[k] is None:
                names[k] = f"hashed_categorical.{k}"
        return names

    @property
    def source_columns(self):
        """Frame columns the inputs are computed from (what a scoring frame must have)."""
        return [c.name for c in self.columns]

    def __repr__(self):
        kinds = {}
        for c in self.columns:
            kinds[c.kind] = kinds.get(c.kind, 0) + 1
        return (f"Preprocess({len(self.columns)} columns {kinds} -> {self.n_inputs} inputs, "
                f"response={self.response!r}, "
                f"{'classification ' + str(self.n_classes) if self.classification else 'regression'})")

    # ------------------------------------------------------------------------- fit
    @classmethod
    def fit(cls, frame, params, classification=None):
        """The description of training `frame` for `params` (H2O names; missing ones take
        H2O's defaults, see DEFAULTS).  classification: True / False forces the response's
        kind, None applies the rule (categorical response, a bernoulli or multinomial
        distribution, or integer values with 2..255 levels).  Collective over the frame's
        ranks (global summaries); every rank gets the same description."""
        p = {k: _param(params, k) for k in DEFAULTS}
        if classification is None:
            classification = params.get("classification")
        autoencoder = bool(p["autoencoder"])
        comm = _data_comm(frame)
        names = frame.names
        kinds = dict(zip(names, frame.types))

        # ---- parameters -------------------------------------------------------------
        enc = p["categorical_encoding"]
        if enc in REFUSED_ENCODINGS:
            raise UserError(f"categorical_encoding={enc!r} is not supported: "
                            f"{REFUSED_ENCODINGS[enc]}")
        if enc not in CATEGORICAL_ENCODINGS:
            raise UserError(f"categorical_encoding must be one of {', '.join(CATEGORICAL_ENCODINGS)}, "
                            f"got {enc!r}")
        mvh = p["missing_values_handling"]
        if mvh not in MISSING_VALUES_HANDLING:
            raise UserError(f"missing_values_handling must be MeanImputation or Skip, got {mvh!r}")
        mcf = p["max_categorical_features"]
        if not (isinstance(mcf, (int, np.integer)) and mcf >= 1):
            raise UserError(f"max_categorical_features must be an integer >= 1, got {mcf!r}")
        if not (p["max_after_balance_size"] > 0):
            raise UserError(f"max_after_balance_size must be > 0, got {p['max_after_balance_size']}")
        use_all = bool(p["use_all_factor_levels"]) or autoencoder
        response = None if autoencoder else p["response"]
        ignored = list(p["ignored_columns"] or [])
        for name in ignored:
            if name not in kinds:
                raise UserError(f"ignored_columns: no column named {name!r}")
        if not autoencoder:
            if response is None:
                raise UserError("response: no response column given")
            if response not in kinds:
                raise UserError(f"response column {response!r} is not in the training data "
                                f"(columns: {', '.join(names[:10])}{' ...' if len(names) > 10 else ''})")
        special = {}
        for key in ("weights_column", "offset_column"):
            name = p[key]
            if name is None:
                continue
            if name not in kinds:
                raise UserError(f"{key}: no column named {name!r}")
            if kinds[name] != NUMERIC:
                raise UserError(f"{key}: column {name!r} is categorical, it must be numeric")
            if name == response:
                raise UserError(f"{key}: column {name!r} is the response")
            special[name] = key
        if p["offset_column"] is not None and autoencoder:
            raise UserError("offset_column: not supported for autoencoders")

        summaries = {s.name: s for s in frame.summary()}
        wsum = summaries.get(p["weights_column"])
        if wsum is not None and wsum.min is not None and wsum.min < 0:
            raise UserError(f"weights_column: column {p['weights_column']!r} has negative weights")

        # ---- response ---------------------------------------------------------------
        info = dict(response=response, autoencoder=autoencoder,
                    weights_column=p["weights_column"], offset_column=p["offset_column"],
                    skip_missing=(mvh == "Skip"))
        if not autoencoder:
            info.update(cls._fit_response(frame, response, kinds[response], summaries[response],
                                          classification, p, comm))

        # ---- inputs -----------------------------------------------------------------
        candidates = [n for n in names if n != response and n not in ignored and n not in special]
        dropped = {n: "ignored" for n in ignored}
        cat_inputs = [n for n in candidates if kinds[n] == CATEGORICAL]
        counts, na_counts = _level_counts(frame, cat_inputs, comm)
        numeric_cols, onehot_cols = [], []
        standardize, sparse = bool(p["standardize"]), bool(p["sparse"])
        sort_means = {}
        if enc == "SortByResponse" and cat_inputs:
            sort_means = cls._level_response_means(frame, cat_inputs, response, info, comm)
        for name in candidates:
            s = summaries[name]
            if kinds[name] == NUMERIC:
                stats = dict(mean=s.mean, sd=s.sd, min=s.min, max=s.max, na_count=s.na_count)
                if p["ignore_const_cols"] and (s.na_count == s.rows or s.min == s.max):
                    dropped[name] = "constant"
                    continue
                sub, mul, fill = _standardizer(stats, standardize, autoencoder, sparse)
                numeric_cols.append(InputColumn(name, "numeric", 0, 1, sub, mul, fill, stats=stats))
                continue
            levels = list(frame.domain(name))
            c = counts[name]
            if p["ignore_const_cols"] and np.count_nonzero(c) <= 1:
                dropped[name] = "constant"
                continue
            if enc == "SortByResponse":
                means = sort_means[name]
                order = sorted(range(len(levels)),
                               key=lambda i: (math.isnan(means[i]), means[i] if not math.isnan(means[i]) else 0.0, i))
                levels = [levels[i] for i in order]
                c = c[order]
            stats = dict(na_count=int(na_counts[name]), cardinality=len(levels))
            if enc == "LabelEncoder":
                stats.update(_level_stats(c))
                sub, mul, fill = _standardizer(stats, standardize, autoencoder, sparse)
                numeric_cols.append(InputColumn(name, "label", 0, 1, sub, mul, fill, levels=levels,
                                                stats=stats))
            elif enc == "Binary":
                width = max(1, len(levels)).bit_length()
                n = float(s.rows)
                codes = np.arange(len(levels)) + 1
                bsub, bmul = [], []
                for b in range(width):
                    ones = float(c[((codes >> b) & 1) == 1].sum())
                    mean = ones / n if n else float("nan")
                    sd = math.sqrt((ones * (1 - mean) ** 2 + (n - ones) * mean ** 2) / (n - 1)) \
                        if n > 1 else float("nan")
                    bstats = dict(mean=mean, sd=sd, min=0.0 if ones < n else 1.0,
                                  max=1.0 if ones > 0 else 0.0)
                    sub, mul, _ = _standardizer(bstats, standardize, autoencoder, sparse)
                    bsub.append(sub)
                    bmul.append(mul)
                numeric_cols.append(InputColumn(name, "binary", 0, width, levels=levels,
                                                bit_sub=bsub, bit_mul=bmul, stats=stats))
            else:
                first = 0 if use_all else 1
                onehot_cols.append(InputColumn(name, "onehot", 0, len(levels) + 1 - first,
                                               levels=levels, first_level=first, stats=stats))
        unit = 0
        for col in numeric_cols:
            col.input = unit
            unit += col.width
        cat_units = sum(c.width for c in onehot_cols)
        if cat_units > mcf:
            offset = 0
            for col in onehot_cols:
                col.kind, col.cat_offset, col.hash_seed = "hashed", offset, int(p["seed"]) & 0xFFFFFFFF
                offset += col.width
                col.input, col.width = unit, int(mcf)
            unit += int(mcf)
        else:
            for col in onehot_cols:
                col.input = unit
                unit += col.width
        columns = numeric_cols + onehot_cols
        if not columns:
            raise UserError("no input columns left (all constant or ignored)")

        settings = dict(standardize=standardize, sparse=sparse, categorical_encoding=enc,
                        use_all_factor_levels=use_all, max_categorical_features=int(mcf),
                        missing_values_handling=mvh, ignore_const_cols=bool(p["ignore_const_cols"]),
                        distribution=p["distribution"], balance_classes=bool(p["balance_classes"]),
                        max_after_balance_size=float(p["max_after_balance_size"]),
                        class_sampling_factors=p["class_sampling_factors"])
        pre = cls(columns, unit, settings=settings, dropped=dropped, **info)

        # ---- rows: Skip, class balance (need the row-level arrays; collective) --------
        local = pre.rows(frame, training=True)
        usable = local.usable_rows() if not autoencoder else \
            (np.flatnonzero(local.weight != 0) if local.weight is not None else np.arange(local.n_rows))
        pre.n_usable_rows = int(allreduce(comm, np.array([usable.size], dtype=np.int64))[0])
        if pre.n_usable_rows == 0:
            why = " (missing_values_handling=Skip drops every row with an NA input)" if pre.skip_missing else ""
            raise UserError(f"no training rows left{why}")
        if p["balance_classes"] or p["class_sampling_factors"] is not None:
            if not pre.classification:
                raise UserError("balance_classes: only for classification (the response is numeric)")
            pre._fit_balance(local, p, frame.n_rows, comm)
        return pre

    @classmethod
    def _fit_response(cls, frame, response, kind, summary, classification, p, comm):
        dist = p["distribution"]
        if classification is None:
            if dist in ("bernoulli", "multinomial"):
                classification = True
            elif dist in REGRESSION_DISTRIBUTIONS:
                classification = False
            elif kind == CATEGORICAL:
                classification = True
            else:
                values = _distinct_numbers(frame, response, comm, MAX_AUTO_CLASSES + 1)
                classification = (values is not None and bool(np.all(values == np.round(values)))
                                  and 2 <= values.size <= MAX_AUTO_CLASSES)
        out = dict(classification=bool(classification))
        if classification:
            if kind == CATEGORICAL:
                domain, numeric = list(frame.domain(response)), False
            else:
                values = _distinct_numbers(frame, response, comm, 1_000_001)
                if values is None:
                    raise UserError(f"response {response!r} has more than 1,000,000 distinct "
                                    "values: not a classification response")
                domain, numeric = [_number_label(v) for v in values], True
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

    @classmethod
    def _level_response_means(cls, frame, cat_inputs, response, info, comm):
        """SortByResponse: each level's mean response (regression or 2 classes)."""
        if response is None:
            raise UserError("categorical_encoding=SortByResponse needs a response (not an autoencoder)")
        if info["classification"] and len(info["domain"]) != 2:
            raise UserError("categorical_encoding=SortByResponse: only for regression or two "
                            "classes (the response has "
                            f"{len(info['domain'])})")
        tmp = cls([], 1, **{k: v for k, v in info.items()})
        y = tmp.response_values(frame).astype(np.float64)
        if not info["classification"]:
            y = y * tmp.response_sd + tmp.response_mean
        has_y = ~np.isnan(y)
        sizes = [len(frame.domain(n)) for n in cat_inputs]
        sums, cnts = np.zeros(sum(sizes)), np.zeros(sum(sizes))
        start = 0
        for name, size in zip(cat_inputs, sizes):
            codes = frame.decode(name)
            ok = has_y & ~np.isnan(codes)
            ci = codes[ok].astype(np.int64)
            sums[start:start + size] += np.bincount(ci, weights=y[ok], minlength=size)
            cnts[start:start + size] += np.bincount(ci, minlength=size)
            start += size
        sums, cnts = allreduce(comm, sums), allreduce(comm, cnts)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(cnts > 0, sums / np.maximum(cnts, 1), np.nan)
        out, start = {}, 0
        for name, size in zip(cat_inputs, sizes):
            out[name] = means[start:start + size]
            start += size
        return out

    def _fit_balance(self, local, p, n_rows, comm):
        """H2O's stratified sampling rates (MRUtils.sampleFrameStratified)."""
        k = self.n_classes
        y = local.y
        ok = ~np.isnan(y)
        w = local.weight[ok] if local.weight is not None else None
        counts = allreduce(comm, np.bincount(y[ok].astype(np.int64), weights=w, minlength=k)
                           .astype(np.float64))
        factors = p["class_sampling_factors"]
        if factors is not None:
            factors = np.asarray(factors, dtype=np.float64).reshape(-1)
            if factors.size != k or not np.all(np.isfinite(factors)) or np.any(factors <= 0):
                raise UserError(f"class_sampling_factors: need {k} positive numbers (one per "
                                f"class, in the order {self.domain}), got {list(factors)}")
            rates = factors.copy()
        else:
            with np.errstate(divide="ignore"):
                rates = np.where(counts > 0, (n_rows / k) / np.maximum(counts, 1e-300), 0.0)
            present = rates[counts > 0]
            if present.size:
                rates /= present.min()           # the majority class keeps rate 1
        max_rows = max(k, int(p["max_after_balance_size"] * n_rows))
        expected = float((rates * counts).sum())
        if expected > 0:
            actual = min(max_rows, round(expected))
            if actual != expected:
                rates *= actual / expected
        total = counts.sum()
        self.class_rates = rates
        self.prior_class_dist = counts / total if total > 0 else np.full(k, 1.0 / k)
        model = rates * counts
        self.model_class_dist = model / model.sum() if model.sum() > 0 else self.prior_class_dist.copy()

    # ------------------------------------------------------------------------ rows
    def _sources(self, frame, what="frame"):
        """(InputColumn, Column, level_map) per input column for `frame`: columns looked
        up by name (any order, extra ones ignored), kinds converted where the frame's
        differs from training, categorical codes mapped to training levels."""
        missing = [c.name for c in self.columns if c.name not in frame.names]
        if missing:
            raise UserError(f"{what}: missing column(s) {', '.join(repr(m) for m in missing)} "
                            "that the model uses as inputs")
        out = []
        for col in self.columns:
            source = frame.column(col.name)
            level_map = None
            if col.categorical:
                if source.kind == NUMERIC:
                    source = _numbers_as_levels(source, col.levels)
                elif list(source.domain) != list(col.levels):
                    index = {lvl: i for i, lvl in enumerate(col.levels)}
                    level_map = np.array([index.get(lvl, -1) for lvl in source.domain], dtype=np.int32)
            elif source.kind == CATEGORICAL:
                source = _levels_as_numbers(source)
            out.append((col, source, level_map))
        return out

    def rows(self, frame, training=True):
        """kernel.Rows (kind FRAME) of this rank's rows of `frame`, decoded in C.

        training=True: the response must be present (targets y; NaN where missing or an
        unseen class, which the kernel skips), the weights column gives row weights (NA ->
        0), with missing_values_handling=Skip rows with an NA input get weight 0, and the
        offset column gives offsets.  training=False (scoring): the response, weights and
        offset are used when present (the offset column must be, if the model has one);
        NA inputs are mean-imputed (H2O scores so even after Skip).  Not collective."""
        what = "training frame" if training else "frame"
        sources = self._sources(frame, what)
        inputs = [FrameInput(column=src, kind="numeric" if col.kind == "numeric" else col.kind,
                             input=col.input, width=col.width, sub=col.sub, mul=col.mul,
                             na_fill=col.na_fill,
                             n_levels=len(col.levels) if col.categorical else 0,
                             first_level=col.first_level, level_map=lmap,
                             bit_sub=col.bit_sub, bit_mul=col.bit_mul, cat_offset=col.cat_offset,
                             hash_seed=col.hash_seed)
                  for col, src, lmap in sources]
        n = frame.n_local_rows
        y = None
        if not self.autoencoder:
            if self.response in frame.names:
                y = self.response_values(frame)
            elif training:
                raise UserError(f"{what}: no response column {self.response!r}")
        weight = None
        if self.weights_column is not None and self.weights_column in frame.names:
            weight = _numeric(frame, self.weights_column, what)
            weight = np.where(np.isnan(weight), 0.0, weight).astype(np.float32)
            if np.any(weight < 0):
                raise UserError(f"{what}: weights_column {self.weights_column!r} has negative weights")
        elif self.weights_column is not None and training:
            raise UserError(f"{what}: no weights column {self.weights_column!r}")
        if training and self.skip_missing:
            na = np.zeros(n, dtype=bool)
            for col, src, _ in sources:
                na |= np.isnan(src.decode())
            if na.any():
                weight = np.ones(n, dtype=np.float32) if weight is None else weight.copy()
                weight[na] = 0.0
        offset = None
        if self.offset_column is not None:
            if self.offset_column not in frame.names:
                raise UserError(f"{what}: no offset column {self.offset_column!r} (the model "
                                "was trained with it)")
            offset = _numeric(frame, self.offset_column, what)
            offset = np.where(np.isnan(offset), 0.0, offset).astype(np.float32)
        return Rows.from_inputs(inputs, n, self.n_inputs, y=y, weight=weight, offset=offset)

    def expand(self, frame, rows=None):
        """The inputs of this rank's rows of `frame` (or of local rows `rows`) as a dense
        float32 matrix, computed in numpy with the C decoder's arithmetic (its reference;
        bit-identical).  For tests and small frames: it is the dense copy FRAME rows avoid."""
        select = None if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
        n = frame.n_local_rows if select is None else select.size
        x = np.zeros((n, self.n_inputs), dtype=np.float32)
        rows = np.arange(n)
        for col, src, lmap in self._sources(frame):
            v = src.decode() if select is None else src.decode()[select]
            if col.kind == "numeric":
                with np.errstate(invalid="ignore"):
                    t = ((v - col.sub) * col.mul).astype(np.float32)
                x[:, col.input] = np.where(np.isnan(v), np.float32(col.na_fill), t)
                continue
            level = _levels_of(v, lmap, len(col.levels))
            if col.kind == "label":
                t = ((level.astype(np.float64) - col.sub) * col.mul).astype(np.float32)
                x[:, col.input] = np.where(level < 0, np.float32(col.na_fill), t)
            elif col.kind == "binary":
                code = np.where(level < 0, 0, level + 1)
                for b in range(col.width):
                    bit = ((code >> b) & 1).astype(np.float64)
                    x[:, col.input + b] = ((bit - col.bit_sub[b]) * col.bit_mul[b]).astype(np.float32)
            else:
                unit = np.where(level < 0, len(col.levels) - col.first_level,
                                level - col.first_level)
                on = unit >= 0
                if col.kind == "onehot":
                    x[rows[on], col.input + unit[on]] = 1.0
                else:
                    slot = np_hash(col.cat_offset + unit[on], col.hash_seed) % np.uint64(col.width)
                    np.add.at(x, (rows[on], col.input + slot.astype(np.int64)), np.float32(1.0))
        return x

    # -------------------------------------------------------------------- response
    def response_values(self, frame):
        """Targets of this rank's rows: class index (NaN: NA or a class the model does not
        know) or the (standardised) regression target, float32."""
        src = frame.column(self.response)
        v = src.decode()
        if not self.classification:
            if src.kind == CATEGORICAL:
                raise UserError(f"response {self.response!r} is categorical in this frame, "
                                "the model is a regression")
            return ((v - self.response_mean) / self.response_sd).astype(np.float32)
        index = {lvl: i for i, lvl in enumerate(self.domain)}
        if src.kind == CATEGORICAL:
            table = np.array([index.get(lvl, -1) for lvl in src.domain] + [-1], dtype=np.float64)
            codes = np.where(np.isnan(v), len(src.domain), v).astype(np.int64)
            y = table[codes]
        else:
            finite = ~np.isnan(v)
            uniq, inverse = np.unique(v[finite], return_inverse=True)
            table = np.array([index.get(_number_label(u), -1) for u in uniq] + [-1], dtype=np.float64)
            y = np.full(v.size, -1.0)
            y[finite] = table[inverse]
        y[y < 0] = np.nan
        return y.astype(np.float32)

    def decode_response(self, value):
        """A regression output back in the response's units (errors are reported there)."""
        return np.asarray(value) * self.response_sd + self.response_mean

    # -------------------------------------------------------------- class balance
    def sampling_rates(self, y):
        """Per-row expected repetitions under balance_classes (class_rates[y]; 0 for a
        missing target); all ones without balancing."""
        y = np.asarray(y)
        if self.class_rates is None:
            return np.where(np.isnan(y), 0.0, 1.0)
        ok = ~np.isnan(y)
        rates = np.zeros(y.size)
        rates[ok] = self.class_rates[y[ok].astype(np.int64)]
        return rates

    def balanced_order(self, y, rng):
        """H2O's stratified resampling of local rows: row r appears floor(rate) times plus
        once more with probability frac(rate), rate = class_rates[y[r]].  Row indices in
        ascending order (the trainer shuffles); the rows of one balanced epoch."""
        rates = self.sampling_rates(y)
        reps = np.floor(rates).astype(np.int64)
        reps += rng.random(rates.size) < (rates - reps)
        return np.repeat(np.arange(rates.size, dtype=np.int64), reps)

    def correct_probabilities(self, probs):
        """Class probabilities of a model trained on balanced classes, corrected back to the
        training data's priors (H2O's GenModel.correctProbabilities), a new array."""
        probs = np.array(probs, dtype=np.float64, copy=True)
        if self.class_rates is None:
            return probs
        prior, model = self.prior_class_dist, self.model_class_dist
        ratio = np.where((prior != 0) & (model != 0), prior / np.where(model != 0, model, 1), 1.0)
        probs *= ratio
        total = probs.sum(axis=-1, keepdims=True)
        return np.where(total > 0, probs / np.where(total > 0, total, 1), probs)

    # --------------------------------------------------------------------- HDF5
    def to_hdf5(self, group):
        """Write into an h5py group: attrs (scalars, JSON for the per-column structure) and
        datasets (floats, levels); nothing pickled."""
        import h5py
        text = h5py.string_dtype()
        group.attrs["format"] = FORMAT
        meta = dict(n_inputs=self.n_inputs, response=self.response,
                    classification=self.classification, response_numeric=self.response_numeric,
                    autoencoder=self.autoencoder, weights_column=self.weights_column,
                    offset_column=self.offset_column, skip_missing=self.skip_missing,
                    settings=self.settings, dropped=self.dropped, n_usable_rows=self.n_usable_rows,
                    columns=[dict(name=c.name, kind=c.kind, input=c.input, width=c.width,
                                  n_levels=len(c.levels) if c.categorical else -1,
                                  first_level=c.first_level, cat_offset=c.cat_offset,
                                  hash_seed=c.hash_seed, stats=c.stats) for c in self.columns])
        group.attrs["meta"] = json.dumps(meta, default=_json_default, sort_keys=True)
        group.attrs["response_mean"] = self.response_mean
        group.attrs["response_sd"] = self.response_sd
        group.create_dataset("sub", data=np.array([c.sub for c in self.columns], np.float64))
        group.create_dataset("mul", data=np.array([c.mul for c in self.columns], np.float64))
        group.create_dataset("na_fill", data=np.array([c.na_fill for c in self.columns], np.float64))
        bits = [c for c in self.columns if c.kind == "binary"]
        group.create_dataset("bit_sub", data=np.array([v for c in bits for v in c.bit_sub], np.float64))
        group.create_dataset("bit_mul", data=np.array([v for c in bits for v in c.bit_mul], np.float64))
        levels = [lvl for c in self.columns if c.categorical for lvl in c.levels]
        group.create_dataset("levels", data=np.array(levels, dtype=object), dtype=text)
        group.create_dataset("domain", data=np.array(self.domain, dtype=object), dtype=text)
        for name in ("class_rates", "prior_class_dist", "model_class_dist"):
            value = getattr(self, name)
            if value is not None:
                group.create_dataset(name, data=value)

    @classmethod
    def from_hdf5(cls, group):
        """The description written by to_hdf5 (UserError if the group is not one)."""
        if group.attrs.get("format") != FORMAT:
            raise UserError(f"{group.name}: not a preprocessing description ({FORMAT})")
        meta = json.loads(group.attrs["meta"])

        def strings(name):
            return [s.decode() if isinstance(s, bytes) else str(s) for s in group[name][...]]

        levels, subs, muls, fills = strings("levels"), group["sub"][...], group["mul"][...], group["na_fill"][...]
        bit_sub, bit_mul = group["bit_sub"][...], group["bit_mul"][...]
        columns, lpos, bpos = [], 0, 0
        for j, m in enumerate(meta["columns"]):
            col = InputColumn(m["name"], m["kind"], m["input"], m["width"], float(subs[j]),
                              float(muls[j]), float(fills[j]), first_level=m["first_level"],
                              cat_offset=m["cat_offset"], hash_seed=m["hash_seed"],
                              stats={k: _json_float(v) for k, v in m["stats"].items()})
            if m["n_levels"] >= 0:
                col.levels = levels[lpos:lpos + m["n_levels"]]
                lpos += m["n_levels"]
            if col.kind == "binary":
                col.bit_sub = [float(v) for v in bit_sub[bpos:bpos + col.width]]
                col.bit_mul = [float(v) for v in bit_mul[bpos:bpos + col.width]]
                bpos += col.width
            columns.append(col)
        extra = {name: group[name][...] for name in ("class_rates", "prior_class_dist",
                                                     "model_class_dist") if name in group}
        return cls(columns, meta["n_inputs"], response=meta["response"],
                   classification=meta["classification"], domain=strings("domain"),
                   response_mean=float(group.attrs["response_mean"]),
                   response_sd=float(group.attrs["response_sd"]),
                   response_numeric=meta["response_numeric"], autoencoder=meta["autoencoder"],
                   weights_column=meta["weights_column"], offset_column=meta["offset_column"],
                   skip_missing=meta["skip_missing"], settings=meta["settings"],
                   dropped=meta["dropped"], n_usable_rows=meta["n_usable_rows"], **extra)


# ------------------------------------------------------------------------- helpers

def _json_default(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"cannot store {type(v).__name__}")


def _json_float(v):
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


def _numeric(frame, name, what):
    col = frame.column(name)
    if col.kind != NUMERIC:
        raise UserError(f"{what}: column {name!r} must be numeric")
    return col.decode()


def _levels_of(v, level_map, n_levels):
    """Training level of decoded categorical values (-1: NA or unseen), as C's fr_level."""
    lim = level_map.size if level_map is not None else n_levels
    ok = (v >= 0) & (v < lim)            # NaN compares false
    code = np.where(ok, v, 0).astype(np.int64)
    level = level_map[code] if level_map is not None else code
    return np.where(ok, level, -1).astype(np.int64)


def _level_counts(frame, names, comm):
    """Global rows per level and NA rows of categorical columns (collective)."""
    sizes = [len(frame.domain(n)) for n in names]
    flat = np.zeros(sum(sizes) + len(names), dtype=np.int64)
    start = 0
    for j, (name, size) in enumerate(zip(names, sizes)):
        col = frame.column(name)
        for i in range(col.n_chunks):
            codes = col.chunk(i).decode()
            na = np.isnan(codes)
            flat[start:start + size] += np.bincount(codes[~na].astype(np.int64), minlength=size)[:size]
            flat[sum(sizes) + j] += int(na.sum())
        start += size
    flat = allreduce(comm, flat)
    counts, na_counts, start = {}, {}, 0
    for j, (name, size) in enumerate(zip(names, sizes)):
        counts[name] = flat[start:start + size].astype(np.float64)
        na_counts[name] = int(flat[sum(sizes) + j])
        start += size
    return counts, na_counts


def _distinct_numbers(frame, name, comm, cap):
    """Sorted distinct non-NA values of a numeric column over all ranks, or None when
    there are at least `cap` of them (collective)."""
    values = frame.decode(name)
    mine = np.unique(values[~np.isnan(values)])
    mine = None if mine.size >= cap else mine
    parts = allgather(comm, mine)
    if any(p is None for p in parts):
        return None
    merged = np.unique(np.concatenate(parts)) if parts else np.empty(0)
    return None if merged.size >= cap else merged


def _rechunk(column, kind, values_of, domain=None):
    """A column with the same chunk boundaries, each chunk's values mapped and re-encoded."""
    chunks = [encode(values_of(column.chunk(i).decode())) for i in range(column.n_chunks)]
    return Column(column.name, kind, chunks, domain=domain)


def _numbers_as_levels(column, levels):
    """A numeric scoring column for a categorical input: numbers matched to the training
    levels by their text ('3' for 3.0); others become NA (the missing level)."""
    index = {lvl: i for i, lvl in enumerate(levels)}

    def convert(v):
        out = np.full(v.size, np.nan)
        finite = ~np.isnan(v)
        uniq, inverse = np.unique(v[finite], return_inverse=True)
        table = np.array([index.get(_number_label(u), np.nan) for u in uniq] + [np.nan])
        out[finite] = table[inverse] if uniq.size else out[finite]
        return out
    return _rechunk(column, CATEGORICAL, convert, domain=levels)


def _levels_as_numbers(column):
    """A categorical scoring column for a numeric input: levels parsed as numbers, text
    that is not a number becomes NA (mean-imputed)."""
    def parse(text):
        try:
            return float(text)
        except ValueError:
            return np.nan
    table = np.array([parse(lvl) for lvl in column.domain] + [np.nan], dtype=np.float64)

    def convert(v):
        codes = np.where(np.isnan(v), len(column.domain), v).astype(np.int64)
        return table[codes]
    return _rechunk(column, NUMERIC, convert)
