"""The data description (H2O's DataInfo): how a Frame's columns become network inputs.

`Preprocess.fit(frame, params)` is computed once, collectively, from the GLOBAL column
summaries of the training Frame and saved with the model (`to_hdf5` / `from_hdf5`; as
bytes, `to_bytes` / `from_bytes`, e.g. to send it between ranks).  It fixes the input
layout, the numeric transform, the categorical encoding, the response (its kind, classes,
scaling), the weight and offset columns and class balancing; `rows(frame)` then gives
`kernel.Rows` of kind FRAME that the C kernel decodes straight from the compressed chunks,
row by row, with exactly this transform (the store is never expanded).  `expand(frame)` is
the same transform in numpy (a dense float32 matrix): the reference the tests hold the C
decoder to, bit for bit.  docs/preprocessing.md is the user's reference.

This module holds the description and its fit, step by step; the parts live in
  encodings.py      InputColumn and the input kinds: the table of categorical encodings
                    (ENCODINGS), numeric inputs, hashing, the layout
  response.py       the response: classification or regression, classes, targets
  class_balance.py  balance_classes: sampling rates, probability correction
  input_sources.py  a frame's columns for the inputs (by name, kinds converted)

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
import io
import json

import numpy as np

from h2odl_mpi.data import class_balance
from h2odl_mpi.data.encodings import (ARRAY_FIELDS, ENCODINGS, KINDS, META_FIELDS, NUMERIC_KIND,
                                 FitOptions, InputColumn, layout)
from h2odl_mpi.errors import UserError
from h2odl_mpi.data.frame.c_view import frame_rows
from h2odl_mpi.collectives import allreduce
from h2odl_mpi.data.frame.column import CATEGORICAL, NUMERIC
from h2odl_mpi.data.frame.finite import Use, refuse
from h2odl_mpi.data.frame.summary import level_counts
from h2odl_mpi.data.input_sources import input_sources, numeric_values
from h2odl_mpi.params import defaults as parameter_defaults
from h2odl_mpi.data.response import fit_response, targets

FORMAT = "h2odl_mpi-preprocess-1"
_CLASS_ARRAYS = ("class_rates", "prior_class_dist", "model_class_dist")


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
        params.defaults(); the values are assumed checked by params.validate).
        classification: True / False forces the response's kind, None applies the rule
        (categorical response, a bernoulli or multinomial distribution, or integer values
        with 2..255 levels).  Collective over the frame's ranks (global summaries); every
        rank gets the same description."""
        p = _with_defaults(params)
        if classification is None:
            classification = params.get("classification")
        comm = _data_comm(frame)
        kinds = dict(zip(frame.names, frame.types))
        response, ignored, special = _check_columns(frame.names, kinds, p)
        summaries = {s.name: s for s in frame.summary()}
        wsum = summaries.get(p["weights_column"])
        if wsum is not None and wsum.min is not None and wsum.min < 0:
            raise UserError(f"weights_column: column {p['weights_column']!r} has negative weights")

        info = dict(response=response, autoencoder=bool(p["autoencoder"]),
                    weights_column=p["weights_column"], offset_column=p["offset_column"],
                    skip_missing=(p["missing_values_handling"] == "Skip"))
        if response is not None:
            info.update(fit_response(frame, response, kinds[response], summaries[response],
                                     classification, p, comm))

        candidates = [n for n in frame.names if n != response and n not in ignored and n not in special]
        options = _fit_options(p)
        columns, dropped = _fit_columns(frame, candidates, kinds, summaries, p, options,
                                        cls([], 1, **info), comm)
        columns, n_inputs = layout(columns, p["max_categorical_features"], p["seed"])
        if not columns:
            raise UserError("no input columns left (all constant or ignored)")
        pre = cls(columns, n_inputs, settings=_settings(p, options),
                  dropped={**{n: "ignored" for n in ignored}, **dropped}, **info)
        pre.check_finite(frame, summaries)
        pre._fit_rows(frame, p, comm)
        return pre

    def check_finite(self, frame, summaries=None, response=True):
        """Refuse Inf, -Inf and numbers that overflow the network's float32 once transformed
        in the numeric columns this description takes from `frame` (inputs, the response
        when `response`, weights, offset), naming the file, column and row (frame.finite).
        summaries: the frame's, to scan only columns whose extremes are bad.  Collective."""
        uses = [Use(col.name, "input", src.decode, col.sub, col.mul)
                for col, src, _ in input_sources(self.columns, frame) if col.kind == NUMERIC_KIND.kind]
        names = dict(zip(frame.names, frame.types))
        if response and not self.autoencoder and names.get(self.response) == NUMERIC:
            sub, mul = (0.0, 0.0) if self.classification else (self.response_mean, 1.0 / self.response_sd)
            uses.append(Use(self.response, "response", frame.column(self.response).decode, sub, mul))
        for role, mul in (("weights_column", 0.0), ("offset_column", 1.0)):
            name = getattr(self, role)
            if name is not None and names.get(name) == NUMERIC:
                uses.append(Use(name, role, frame.column(name).decode, 0.0, mul))
        refuse(frame, uses, summaries=summaries)

    def check_data(self, frame, vframe, fitted=True):
        """The trainer's check of its frames before the first row is trained: the training
        frame's values when this description was not fitted on it (a checkpoint's), the
        validation frame's always.  Collective."""
        if not fitted:
            self.check_finite(frame)
        if vframe is not None:
            self.check_finite(vframe)

    def _fit_rows(self, frame, p, comm):
        """The usable training rows and class balance: they need the row-level targets and
        weights (collective), not the kernel's rows (rows() builds those once, later)."""
        what = "training frame"
        y = None if self.autoencoder else np.ascontiguousarray(self.response_values(frame), dtype=np.float32)
        weight = self._row_weights(frame, input_sources(self.columns, frame, what), True, what)
        usable = np.ones(frame.n_local_rows, dtype=bool)
        if y is not None:
            usable &= ~np.isnan(y)
        if weight is not None:
            usable &= weight != 0
        self.n_usable_rows = int(allreduce(comm, np.array([np.count_nonzero(usable)], dtype=np.int64))[0])
        if self.n_usable_rows == 0:
            why = " (missing_values_handling=Skip drops every row with an NA input)" if self.skip_missing else ""
            raise UserError(f"no training rows left{why}")
        if p["balance_classes"] or p["class_sampling_factors"] is not None:
            if not self.classification:
                raise UserError("balance_classes: only for classification (the response is numeric)")
            self.class_rates, self.prior_class_dist, self.model_class_dist = class_balance.fit_rates(
                y, weight, self.domain, p["class_sampling_factors"],
                p["max_after_balance_size"], frame.n_rows, comm)

    # ------------------------------------------------------------------------ rows
    def rows(self, frame, training=True):
        """kernel.Rows (kind FRAME) of this rank's rows of `frame`, decoded in C.

        training=True: the response must be present (targets y; NaN where missing or an
        unseen class, which the kernel skips), the weights column gives row weights (NA ->
        0), with missing_values_handling=Skip rows with an NA input get weight 0, and the
        offset column gives offsets.  training=False (scoring): the response, weights and
        offset are used when present (the offset column must be, if the model has one);
        NA inputs are mean-imputed (H2O scores so even after Skip).  Not collective."""
        what = "training frame" if training else "frame"
        sources = input_sources(self.columns, frame, what)
        inputs = [KINDS[col.kind].frame_input(col, src, lmap) for col, src, lmap in sources]
        y = None
        if not self.autoencoder:
            if self.response in frame.names:
                y = self.response_values(frame)
            elif training:
                raise UserError(f"{what}: no response column {self.response!r}")
        weight = self._row_weights(frame, sources, training, what)
        offset = None
        if self.offset_column is not None:
            if self.offset_column not in frame.names:
                raise UserError(f"{what}: no offset column {self.offset_column!r} (the model "
                                "was trained with it)")
            offset = numeric_values(frame, self.offset_column, what)
            offset = np.where(np.isnan(offset), 0.0, offset).astype(np.float32)
        return frame_rows(inputs, frame.n_local_rows, self.n_inputs, y=y, weight=weight, offset=offset)

    def _row_weights(self, frame, sources, training, what):
        """float32 row weights (None: all 1): the weights column (NA -> 0), and 0 for rows
        with an NA input when training with missing_values_handling=Skip."""
        weight = None
        if self.weights_column is not None and self.weights_column in frame.names:
            weight = numeric_values(frame, self.weights_column, what)
            weight = np.where(np.isnan(weight), 0.0, weight).astype(np.float32)
            if np.any(weight < 0):
                raise UserError(f"{what}: weights_column {self.weights_column!r} has negative weights")
        elif self.weights_column is not None and training:
            raise UserError(f"{what}: no weights column {self.weights_column!r}")
        if training and self.skip_missing:
            n = frame.n_local_rows
            na = np.zeros(n, dtype=bool)
            for _, src, _ in sources:
                na |= np.isnan(src.decode())
            if na.any():
                weight = np.ones(n, dtype=np.float32) if weight is None else weight.copy()
                weight[na] = 0.0
        return weight

    def expand(self, frame, rows=None):
        """The inputs of this rank's rows of `frame` (or of local rows `rows`) as a dense
        float32 matrix, computed in numpy with the C decoder's arithmetic (its reference;
        bit-identical).  For tests and small frames: it is the dense copy FRAME rows avoid."""
        select = None if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
        n = frame.n_local_rows if select is None else select.size
        x = np.zeros((n, self.n_inputs), dtype=np.float32)
        rows = np.arange(n)
        for col, src, lmap in input_sources(self.columns, frame):
            v = src.decode() if select is None else src.decode()[select]
            KINDS[col.kind].expand(col, v, lmap, x, rows)
        return x

    # -------------------------------------------------------------------- response
    def response_values(self, frame):
        """Targets of this rank's rows: class index (NaN: NA or a class the model does not
        know) or the (standardised) regression target, float32."""
        return targets(self, frame)

    def decode_response(self, value):
        """A regression output back in the response's units (errors are reported there)."""
        return np.asarray(value) * self.response_sd + self.response_mean

    # -------------------------------------------------------------- class balance
    def sampling_rates(self, y):
        """Per-row expected repetitions under balance_classes (class_rates[y]; 0 for a
        missing target); all ones without balancing."""
        return class_balance.sampling_rates(self.class_rates, y)

    def balanced_order(self, y, rng):
        """H2O's stratified resampling of local rows (class_balance.balanced_order): row
        indices in ascending order, the rows of one balanced epoch."""
        return class_balance.balanced_order(self.class_rates, y, rng)

    def correct_probabilities(self, probs):
        """Class probabilities of a model trained on balanced classes, corrected back to the
        training data's priors (H2O's GenModel.correctProbabilities), a new array."""
        balanced = self.class_rates is not None
        return class_balance.correct_probabilities(self.prior_class_dist if balanced else None,
                                                   self.model_class_dist, probs)

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
                    columns=[_column_meta(c) for c in self.columns])
        group.attrs["meta"] = json.dumps(meta, default=_json_default, sort_keys=True)
        group.attrs["response_mean"] = self.response_mean
        group.attrs["response_sd"] = self.response_sd
        for name in ("sub", "mul", "na_fill"):
            group.create_dataset(name, data=np.array([getattr(c, name) for c in self.columns], np.float64))
        for name in ARRAY_FIELDS:         # per-unit lists of the kinds that have them
            values = [v for c in self.columns if name in KINDS[c.kind].array_fields
                      for v in getattr(c, name)]
            group.create_dataset(name, data=np.array(values, np.float64))
        levels = [lvl for c in self.columns if c.categorical for lvl in c.levels]
        group.create_dataset("levels", data=np.array(levels, dtype=object), dtype=text)
        group.create_dataset("domain", data=np.array(self.domain, dtype=object), dtype=text)
        for name in _CLASS_ARRAYS:
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
        arrays = {name: group[name][...] for name in ARRAY_FIELDS}
        columns, lpos, apos = [], 0, dict.fromkeys(ARRAY_FIELDS, 0)
        for j, m in enumerate(meta["columns"]):
            if m["kind"] not in KINDS:
                raise UserError(f"{group.name}: column {m['name']!r} has an unknown input kind {m['kind']!r}")
            col = InputColumn(m["name"], m["kind"], m["input"], m["width"], float(subs[j]),
                              float(muls[j]), float(fills[j]),
                              stats={k: _json_float(v) for k, v in m["stats"].items()},
                              **{f: m[f] for f in META_FIELDS if f in m})
            if m["n_levels"] >= 0:
                col.levels = levels[lpos:lpos + m["n_levels"]]
                lpos += m["n_levels"]
            for name in KINDS[col.kind].array_fields:
                setattr(col, name, [float(v) for v in arrays[name][apos[name]:apos[name] + col.width]])
                apos[name] += col.width
            columns.append(col)
        extra = {name: group[name][...] for name in _CLASS_ARRAYS if name in group}
        return cls(columns, meta["n_inputs"], response=meta["response"],
                   classification=meta["classification"], domain=strings("domain"),
                   response_mean=float(group.attrs["response_mean"]),
                   response_sd=float(group.attrs["response_sd"]),
                   response_numeric=meta["response_numeric"], autoencoder=meta["autoencoder"],
                   weights_column=meta["weights_column"], offset_column=meta["offset_column"],
                   skip_missing=meta["skip_missing"], settings=meta["settings"],
                   dropped=meta["dropped"], n_usable_rows=meta["n_usable_rows"], **extra)

    def to_bytes(self):
        """The description as bytes: an in-memory HDF5 file whose root holds exactly what
        to_hdf5 writes (plain data, nothing pickled), e.g. to send it between ranks."""
        import h5py
        buffer = io.BytesIO()
        with h5py.File(buffer, "w") as f:
            self.to_hdf5(f)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data):
        """The description `to_bytes` gave."""
        import h5py
        with h5py.File(io.BytesIO(bytes(data)), "r") as f:
            return cls.from_hdf5(f)


# ---------------------------------------------------------------------- fit steps

def check_validation_columns(params, vframe):
    """The columns scoring the validation frame needs (the response, the offset column), found
    as soon as it is read, before any training.  The same on every rank (column names are)."""
    if vframe is None:
        return
    for key in ("response", "offset_column"):
        name = params.get(key) if not (key == "response" and params.get("autoencoder")) else None
        if name and name not in vframe.names:
            raise UserError(f"{params.get('validation') or 'validation frame'}: no column {name!r} "
                            f"({key}), which scoring the validation data needs")


def _with_defaults(params):
    """`params` with params.defaults() for the keys it lacks or sets to None."""
    p = parameter_defaults()
    p.update({k: v for k, v in params.items() if v is not None})
    return p


def _data_comm(frame):
    return None if frame.replicated else frame.comm


def _check_columns(names, kinds, p):
    """(response, ignored columns, {weights/offset column: parameter}) after checking that
    the columns the parameters name exist and suit their role."""
    autoencoder = bool(p["autoencoder"])
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
    return response, ignored, special


def _fit_options(p):
    autoencoder = bool(p["autoencoder"])
    return FitOptions(standardize=bool(p["standardize"]), autoencoder=autoencoder,
                      sparse=bool(p.get("sparse")),
                      use_all_factor_levels=bool(p["use_all_factor_levels"]) or autoencoder)


def _fit_columns(frame, candidates, kinds, summaries, p, options, target, comm):
    """The InputColumns of the `candidates` (frame order; units not placed yet) and
    {column: "constant"} for those ignore_const_cols drops.  target: a Preprocess holding
    only the response (SortByResponse needs it).  Collective."""
    encoding = ENCODINGS[p["categorical_encoding"]]
    categorical = [n for n in candidates if kinds[n] == CATEGORICAL]
    by_index = level_counts([frame.column(n) for n in categorical], comm)
    counts = {n: by_index[j].astype(np.float64) for j, n in enumerate(categorical)}
    prepared = encoding.prepare(frame, categorical, target, comm) if categorical else {}
    columns, dropped = [], {}
    for name in candidates:
        s = summaries[name]
        if kinds[name] == NUMERIC:
            if p["ignore_const_cols"] and (s.na_count == s.rows or s.min == s.max):
                dropped[name] = "constant"
            else:
                columns.append(NUMERIC_KIND.fit(name, s, options))
            continue
        if p["ignore_const_cols"] and np.count_nonzero(counts[name]) <= 1:
            dropped[name] = "constant"
            continue
        columns.append(encoding.fit(name, list(frame.domain(name)), counts[name], s, options,
                                    prepared.get(name)))
    return columns, dropped


def _settings(p, options):
    """The fit's parameters as saved with the description."""
    return dict(standardize=options.standardize, sparse=options.sparse,
                categorical_encoding=p["categorical_encoding"],
                use_all_factor_levels=options.use_all_factor_levels,
                max_categorical_features=int(p["max_categorical_features"]),
                missing_values_handling=p["missing_values_handling"],
                ignore_const_cols=bool(p["ignore_const_cols"]), distribution=p["distribution"],
                balance_classes=bool(p["balance_classes"]),
                max_after_balance_size=float(p["max_after_balance_size"]),
                class_sampling_factors=p["class_sampling_factors"])


# ------------------------------------------------------------------------ helpers

def _column_meta(col):
    """A column's JSON record in to_hdf5's meta (every kind's META_FIELDS, as format 1)."""
    return dict(name=col.name, kind=col.kind, input=col.input, width=col.width,
                n_levels=len(col.levels) if col.categorical else -1, stats=col.stats,
                **{f: getattr(col, f) for f in META_FIELDS})


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
