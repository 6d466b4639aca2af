"""An H2O-3 Deep Learning MOJO read as a model of this program: `load_mojo` gives what
model_io.load_model gives for a model file, (network, model buffer, Preprocess, parameters,
attrs), so that predict, evaluate, report, the estimator's load and `train --checkpoint`
take a MOJO made by H2O-3 (or by `export --mojo`).

Scoring follows h2o-genmodel (hex.genmodel.algos.deeplearning.DeeplearningMojoModel): a
categorical column's missing, unseen or out-of-range level goes to the last unit of its
one-hot block; a number is `(v - norm_sub) * norm_mul`, missing: 0; the response unscaled
with norm_resp_mul / norm_resp_sub, then the distribution's inverse link (the kernel's:
exp for poisson, gamma and tweedie).  A block without a missing-level unit of its own (an
older layout) gets one here whose weights are its last unit's, which is what genmodel
does.  The MOJO holds no optimizer state: the buffer's ADADELTA averages and momentum are
zero, a fresh start.  What this program cannot score as genmodel does (another algorithm,
a distribution or an activation the kernel lacks) is a UserError naming it.
"""
import io
import zipfile
import zlib

import numpy as np

from h2odl_mpi import params as P
from h2odl_mpi.data.encodings import InputColumn
from h2odl_mpi.data.preprocess import Preprocess
from h2odl_mpi.errors import UserError
from h2odl_mpi.kernel import NetConfig, Network
from h2odl_mpi.model.mojo_format import maxout_from_mojo, parse_ini, parse_value
from h2odl_mpi.sizes import memory_available, size_text

FORMAT = "h2o-mojo"     # attrs["format"] of a model read from a MOJO
# the parameters a MOJO states, which train --checkpoint compares (the rest it does not hold)
FIXED_PARAMETERS = ("hidden", "activation", "response", "autoencoder", "use_all_factor_levels")
_SCORED = ("bernoulli", "multinomial", "gaussian", "poisson", "gamma", "tweedie", "laplace", "quantile", "huber")


def load_mojo(path, data):
    """load_model's (network, model, info, params, attrs) of the MOJO bytes `data`."""
    try:
        with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
            _check_sizes(z, path)
            ini = z.read("model.ini").decode("utf-8")
            info, columns, domain_files = parse_ini(ini)
            domains = {i: _domain(z, name, count, path) for i, (count, name) in domain_files.items()}
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, KeyError, ValueError,
            UnicodeDecodeError, OSError) as e:  # (zipfile's ways to say a damaged, encrypted or foreign zip)
        raise UserError(f"{path}: not a readable MOJO (a zip with model.ini): {type(e).__name__}: {e}") from None
    kv = {k: parse_value(v) for k, v in info.items()}
    where = f"{path}: "
    if kv.get("algo") != "deeplearning":
        raise UserError(f"{where}an H2O-3 MOJO of algorithm {kv.get('algo')!r}: only Deep Learning MOJOs are read")
    try:
        return _model(kv, columns, domains, path)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise UserError(f"{where}a damaged or unexpected Deep Learning MOJO: {type(e).__name__}: {e}") from None


def _check_sizes(z, path):
    """Refuse, before anything is unpacked, a member whose unpacked size (which zipfile
    holds it to) does not fit in a quarter of the memory this process may take."""
    room = memory_available()
    for member in z.infolist():
        if room is not None and member.file_size > room // 4:
            raise UserError(f"{path}: {member.filename} unpacks to {size_text(member.file_size)}, more than a "
                            f"quarter of the {size_text(room)} of memory available")


def _check_layer_sizes(kv, units, maxout, path):
    """The weights model.ini holds must be what neural_network_sizes says, before the
    network's buffer (sized from those sizes) is allocated."""
    for layer in range(len(units) - 1):
        channels = 2 if maxout and layer < len(units) - 2 else 1
        want = channels * units[layer] * units[layer + 1]
        have = len(kv.get(f"weight_layer{layer}") or [])
        if have != want:
            raise UserError(f"{path}: weight_layer{layer} holds {have:,} values; neural_network_sizes {units} "
                            f"needs {want:,}")


def _domain(z, name, count, path):
    levels = z.read(f"domains/{name}").decode("utf-8").split("\n")[:count]
    if len(levels) != count:
        raise UserError(f"{path}: domains/{name} holds {len(levels)} levels, model.ini says {count}")
    return levels


def _model(kv, columns, domains, path):
    category = kv["category"]
    autoencoder = category == "AutoEncoder"
    if category not in ("Binomial", "Multinomial", "Regression", "AutoEncoder"):
        raise UserError(f"{path}: a Deep Learning MOJO of category {category!r} is not read")
    dist = kv["distribution"]
    if not autoencoder and dist not in _SCORED:
        raise UserError(f"{path}: distribution={dist} is not implemented here")
    act = kv["activation"]
    if act not in P.ACTIVATIONS:
        raise UserError(f"{path}: activation={act} is not implemented here")
    units = [int(u) for u in kv["neural_network_sizes"]]
    n_cats, n_nums = int(kv["cats"]), int(kv["nums"])
    offsets = [int(o) for o in (kv.get("cat_offsets") or [0])]
    info, perm = _description(kv, columns, domains, n_cats, n_nums, offsets, autoencoder, path)
    if info.n_inputs != len(perm) or units[0] != offsets[-1] + n_nums:
        raise UserError(f"{path}: neural_network_sizes {units} do not fit {n_cats} categorical and {n_nums} "
                        "numeric columns")
    _check_layer_sizes(kv, units, act == "Maxout" or act == "MaxoutWithDropout", path)
    ratios = [float(r) for r in (kv.get("hidden_dropout_ratios") or [])][:len(units) - 2]
    if not act.endswith("WithDropout"):
        ratios = [0.0] * (len(units) - 2)
    output = "autoencoder" if autoencoder else "softmax" if info.classification else "linear"
    config = NetConfig(units=units, activation=act.replace("WithDropout", ""), output=output,
                       loss=P.LOSS_OF_DISTRIBUTION.get(dist, "Quadratic") if output == "linear" else "Quadratic",
                       hidden_dropout_ratios=ratios, mini_batch_size=int(kv.get("mini_batch_size") or 1))
    network = Network(config)
    model = np.zeros(network.n_total, dtype=np.float32)
    _fill_layers(network, model, kv, perm, autoencoder, path)
    params = _parameters(kv, info, units, act, ratios, dist)
    threshold = float(kv.get("default_threshold") or 0.5)
    attrs = {"format": FORMAT, "software_version": f"H2O-3 {kv.get('h2o_version')}", "epochs": 0.0,
             "training_samples": 0, "iterations": 0, "history": [], "mojo_threshold": threshold,
             "fixed_parameters": list(FIXED_PARAMETERS)}
    return network, model, info, params, attrs


def _description(kv, columns, domains, n_cats, n_nums, offsets, autoencoder, path):
    """(Preprocess, perm): perm[j] is the MOJO input unit that feeds this program's unit j."""
    mul = kv.get("norm_mul") or []
    sub = kv.get("norm_sub") or []
    use_all = bool(kv.get("use_all_factor_levels", True))
    first = 0 if use_all else 1
    cols, perm = [], []
    for k in range(n_nums):
        s, m = (float(sub[k]), float(mul[k])) if mul else (0.0, 1.0)
        cols.append(InputColumn(columns[n_cats + k], "numeric", k, 1, s, m, 0.0, stats={"mean": s}))
        perm.append(offsets[-1] + k)
    unit = n_nums
    for i in range(n_cats):
        levels = domains.get(i)
        if levels is None:
            raise UserError(f"{path}: categorical column {columns[i]!r} has no domain")
        width, block = len(levels) + 1 - first, offsets[i + 1] - offsets[i]
        cols.append(InputColumn(columns[i], "onehot", unit, width, levels=list(levels), first_level=first,
                                stats={"na_count": 0, "cardinality": len(levels)}))
        # genmodel: level c -> unit min(c - first, block - 1); missing or unseen -> block - 1
        perm += [offsets[i] + min(j, block - 1) for j in range(width - 1)] + [offsets[i] + block - 1]
        unit += width
    n_inputs = unit
    supervised = not autoencoder
    response = columns[-1] if supervised else None
    resp_index = len(columns) - 1
    classification = supervised and resp_index in domains
    kw = {}
    if classification:
        kw["domain"] = domains[resp_index]
        if kv.get("balance_classes"):
            prior = np.asarray(kv["prior_class_distrib"], np.float64)
            model_dist = np.asarray(kv["model_class_distrib"], np.float64)
            rates = np.where(prior > 0, model_dist / np.where(prior > 0, prior, 1.0), 0.0)
            kw.update(class_rates=rates / rates.max(), prior_class_dist=prior, model_class_dist=model_dist)
    elif supervised and kv.get("norm_resp_mul"):
        kw.update(response_mean=float(kv["norm_resp_sub"][0]), response_sd=1.0 / float(kv["norm_resp_mul"][0]))
    settings = dict(standardize=bool(mul), sparse=False, categorical_encoding="AUTO", use_all_factor_levels=use_all,
                    max_categorical_features=2 ** 31 - 1,
                    missing_values_handling="MeanImputation" if kv.get("mean_imputation", True) else "Skip",
                    ignore_const_cols=True, distribution=kv["distribution"], balance_classes=bool(
                        kv.get("balance_classes")), max_after_balance_size=5.0, class_sampling_factors=None)
    info = Preprocess(cols, n_inputs, response=response, classification=classification, autoencoder=autoencoder,
                      settings=settings, **kw)
    return info, np.array(perm, dtype=np.int64)


def _fill_layers(network, model, kv, perm, autoencoder, path):
    """Each layer's weights and biases into the model buffer, the first layer's inputs (and
    an autoencoder's outputs) in this program's order."""
    maxout = network.config.activation == "Maxout"
    for layer in range(network.n_layers):
        w, b = network.view(model, "weights", layer), network.view(model, "biases", layer)
        flat = np.asarray(kv[f"weight_layer{layer}"], dtype=np.float64)
        bias = np.asarray(kv[f"bias_layer{layer}"], dtype=np.float64)
        n_in, n_out = network.units[layer], network.units[layer + 1]
        hidden = layer < network.n_layers - 1
        if maxout and hidden:
            if bias.size != 2 * n_out:
                raise UserError(f"{path}: a Maxout layer with {bias.size // max(n_out, 1)} channels; the kernel has 2")
            mw = maxout_from_mojo(flat, n_out, n_in)
        else:
            mw = flat.reshape(n_out, n_in)
        if bias.size != w.shape[0] or mw.shape != (w.shape[0], n_in):
            raise UserError(f"{path}: weight_layer{layer} / bias_layer{layer} do not fit the layer sizes")
        if layer == 0:
            mw = mw[:, perm]
        if autoencoder and not hidden:
            mw, bias = mw[perm, :], bias[perm]
        w[...] = mw.astype(np.float32)
        b[...] = bias.astype(np.float32)
    if not np.all(np.isfinite(model)):
        raise UserError(f"{path}: the MOJO's weights are not all finite")


def _parameters(kv, info, units, act, ratios, dist):
    """The run's parameters as far as the MOJO states them, H2O's defaults for the rest."""
    params = P.defaults()
    resolved = ("bernoulli" if info.n_classes == 2 else "multinomial") if info.classification else "gaussian"
    params.update(hidden=units[1:-1], activation=act, hidden_dropout_ratios=ratios,
                  response=info.response, autoencoder=info.autoencoder,
                  use_all_factor_levels=info.settings["use_all_factor_levels"],
                  standardize=info.settings["standardize"],
                  missing_values_handling=info.settings["missing_values_handling"],
                  distribution="AUTO" if dist == resolved or info.autoencoder else dist,
                  balance_classes=info.settings["balance_classes"],
                  mini_batch_size=int(kv.get("mini_batch_size") or 1))
    return params
