"""`export --mojo`: a model written as an H2O-3 Deep Learning MOJO, in the format H2O-3 3.46
writes (hex.deeplearning.DeepLearningMojoWriter over hex.ModelMojoWriter, mojo_version
1.10), so that H2O's h2o-genmodel scores it (PredictCsv, EasyPredictModelWrapper) and H2O-3
loads it back (h2o.upload_mojo).

What maps how (docs/mojo.md): the one-hot columns and the numeric columns become the MOJO's
`cats` and `nums` with their levels as domains; a number's standardisation becomes
`norm_sub` / `norm_mul` (norm_sub is the column's mean, so that the MOJO's zero for a
missing number is this program's mean imputation; where that moves the inputs, the first
layer's biases take the difference); the response's standardisation `norm_resp_sub` /
`norm_resp_mul`; the first layer's weights are reordered to the MOJO's input order (one-hot
blocks first).  What the format cannot express is refused (`MojoRefusal`, one line naming
it) before anything is written.
"""
import io
import random
import time
import zipfile

import numpy as np

from h2odl_mpi.atomic import write_bytes
from h2odl_mpi.errors import UserError
from h2odl_mpi.model.mojo_format import (H2O_VERSION, MOJO_VERSION, cat_offsets, ini_value, input_permutation,
                                         maxout_to_mojo, mojo_columns)

_NOT_IN_MOJO = {"binary": "categorical_encoding=Binary", "label": "categorical_encoding=LabelEncoder",
                "hashed": "max_categorical_features (hashed one-hot units)"}


def write_mojo(path, network, model, info, params, threshold=0.5):
    """Write the model as a MOJO zip at `path` (atomically); UserError naming what the MOJO
    cannot express, nothing written.  `threshold`: the two-class labelling threshold (H2O's
    default_threshold).  Returns the notes to print (what differs by design)."""
    check_expressible(network, info, params, path)
    ini, domains, notes = model_ini(network, model, info, params, threshold)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("model.ini", ini)
        for name, levels in domains:
            z.writestr(f"domains/{name}", "".join(f"{lvl}\n" for lvl in levels))
    write_bytes(path, buffer.getvalue())
    return notes


def check_expressible(network, info, params, path):
    """UserError naming the first thing a Deep Learning MOJO cannot express."""
    where = f"{path}: not written: "
    for col in info.columns:
        if col.kind in _NOT_IN_MOJO:
            raise UserError(f"{where}{_NOT_IN_MOJO[col.kind]} (column {col.name!r}) is not expressible in a MOJO "
                            "(H2O's Deep Learning MOJO takes one-hot categoricals only)")
        for lvl in (col.levels or ()):
            if any(ch in lvl for ch in "\n\r\\"):
                raise UserError(f"{where}level {lvl!r} of column {col.name!r} holds a line break or a backslash, "
                                "which a MOJO's domain file cannot hold")
    if info.offset_column:
        raise UserError(f"{where}offset_column={info.offset_column!r} is not expressible in a MOJO "
                        "(H2O's Deep Learning MOJO ignores offsets)")


def mojo_distribution(info, params):
    """The distribution model.ini names (H2O writes it resolved: AUTO is never written)."""
    if info.classification:
        return "bernoulli" if info.n_classes == 2 else "multinomial"
    dist = params.get("distribution", "AUTO")
    return "gaussian" if dist == "AUTO" else dist


def mojo_activation(network):
    """H2O's activation name: the base one, ...WithDropout when hidden dropout is on."""
    cfg = network.config
    dropout = any(r > 0 for r in (cfg.hidden_dropout_ratios or ()))
    return cfg.activation + ("WithDropout" if dropout else "")


def numeric_norms(info):
    """(norm_sub, norm_mul, shift) of the numeric columns in MOJO order.  The MOJO imputes a
    missing number as 0 after `(v - norm_sub) * norm_mul`; here it becomes `na_fill` (the
    transformed mean), so norm_sub is the mean and the MOJO's inputs are this program's less
    `shift` (= na_fill, 0 when standardising with the mean)."""
    _cats, nums = mojo_columns(info)
    mul = [c.mul for c in nums]
    sub = [c.sub + c.na_fill / c.mul for c in nums]
    shift = [c.na_fill for c in nums]
    if info.autoencoder:   # the reconstruction is unscaled with norm_sub: keep this program's centre
        sub, shift = [c.sub for c in nums], [0.0] * len(nums)
    return sub, mul, np.array(shift, dtype=np.float64)


def mojo_layers(network, model, info):
    """[(weights as genmodel's flat float32 order, biases as float64)] per layer, the first
    layer's inputs (and an autoencoder's outputs) in the MOJO's order."""
    perm = input_permutation(info)
    _sub, _mul, shift = numeric_norms(info)
    n_cat_units = len(perm) - len(shift)
    out = []
    for layer in range(network.n_layers):
        w = network.view(model, "weights", layer).astype(np.float32)
        b = network.view(model, "biases", layer).astype(np.float64)
        if layer == 0:
            w = w[:, perm]
            b = b + w[:, n_cat_units:].astype(np.float64) @ shift   # (v - mean) * mul = x - shift
        if layer == network.n_layers - 1 and info.autoencoder:
            w, b = w[perm, :], b[perm]
        maxout = network.config.activation == "Maxout" and layer < network.n_layers - 1
        out.append((maxout_to_mojo(w) if maxout else w.reshape(-1), b))
    return out


def model_ini(network, model, info, params, threshold):
    """(model.ini text, [(domain file name, levels)], notes)."""
    cats, nums = mojo_columns(info)
    columns = [c.name for c in cats] + [c.name for c in nums]
    domains = [(i, c.levels) for i, c in enumerate(cats)]
    supervised = not info.autoencoder
    if supervised:
        columns.append(info.response)
        if info.classification:
            domains.append((len(columns) - 1, list(info.domain)))
    kv = _info_keys(info, params, threshold, len(cats) + len(nums), len(columns), len(domains))
    kv += _model_keys(network, model, info, params)
    lines = ["[info]"] + [f"{k} = {ini_value(v)}" for k, v in kv]
    lines += ["", "[columns]"] + columns + ["", "[domains]"]
    files = []
    for n, (index, levels) in enumerate(domains):
        files.append((f"d{n:03d}.txt", levels))
        lines.append(f"{index}: {len(levels)} d{n:03d}.txt")
    notes = []
    if info.autoencoder:
        moved = [c.name for c in nums if c.na_fill != 0.0]
        if moved:
            notes.append("note: the MOJO fills a missing number in " + ", ".join(map(repr, moved)) + " with the "
                         "centre of the column's normalisation, (min + max) / 2, where this program fills the "
                         "mean (an autoencoder's MOJO cannot express both; docs/mojo.md)")
    return "\n".join(lines) + "\n", files, notes


def _info_keys(info, params, threshold, n_features, n_columns, n_domains):
    """ModelMojoWriter's common [info] keys."""
    category = ("AutoEncoder" if info.autoencoder else
                ("Binomial" if info.n_classes == 2 else "Multinomial") if info.classification else "Regression")
    balanced = info.class_rates is not None
    prior = info.prior_class_dist if info.classification and info.prior_class_dist is not None else None
    return [("h2o_version", H2O_VERSION), ("mojo_version", MOJO_VERSION),
            ("license", "Apache License Version 2.0"), ("algo", "deeplearning"),
            ("algorithm", "Deep Learning"), ("endianness", "LITTLE_ENDIAN"), ("category", category),
            ("uuid", random.getrandbits(63) - (1 << 62)), ("supervised", not info.autoencoder),
            ("n_features", n_features), ("n_classes", info.n_classes if info.classification else 1),
            ("n_columns", n_columns), ("n_domains", n_domains), ("balance_classes", balanced),
            ("default_threshold", float(threshold)),
            ("prior_class_distrib", None if prior is None else [float(x) for x in prior]),
            ("model_class_distrib", [float(x) for x in info.model_class_dist] if balanced else None),
            ("timestamp", time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())),
            ("escape_domain_values", True)]


def _model_keys(network, model, info, params):
    """DeepLearningMojoWriter.writeModelData's keys, in its order."""
    cats, nums = mojo_columns(info)
    sub, mul, _shift = numeric_norms(info)
    regression = not info.classification and not info.autoencoder
    resp_scaled = regression and (info.response_sd != 1.0 or info.response_mean != 0.0)
    mean_imputation = params.get("missing_values_handling", "MeanImputation") == "MeanImputation"
    kv = [("mini_batch_size", int(network.config.mini_batch_size)), ("nums", len(nums)), ("cats", len(cats)),
          ("cat_offsets", cat_offsets(cats)), ("norm_mul", mul), ("norm_sub", sub),
          ("norm_resp_mul", [1.0 / info.response_sd] if resp_scaled else None),
          ("norm_resp_sub", [info.response_mean] if resp_scaled else None),
          ("use_all_factor_levels", all(c.first_level == 0 for c in cats) if cats else
           bool(params.get("use_all_factor_levels", True))),
          ("activation", mojo_activation(network)), ("distribution", mojo_distribution(info, params)),
          ("mean_imputation", mean_imputation)]
    if mean_imputation and cats:  # H2O writes each block's missing-level unit
        kv.append(("cat_modes", [len(c.levels) - c.first_level for c in cats]))
    kv.append(("neural_network_sizes", [int(u) for u in network.units]))
    for layer, (w, b) in enumerate(mojo_layers(network, model, info)):
        kv.append((f"weight_layer{layer}", _FloatList(w)))
        kv.append((f"bias_layer{layer}", [float(x) for x in b]))
    ratios = list(network.config.hidden_dropout_ratios or [0.0] * (network.n_layers - 1))
    kv.append(("hidden_dropout_ratios", [float(r) for r in ratios] + [0.0]))
    kv += [("_genmodel_encoding", "AUTO"), ("_orig_projection_array", None)]
    return kv


class _FloatList(list):
    """float32 weights, written as the exact decimal of each float32 (genmodel parses a
    double and rounds it to float: the same float32 comes back)."""

    def __init__(self, values):
        super().__init__(float(x) for x in np.asarray(values, dtype=np.float32))
