"""The model summary: H2O's "Status of Neuron Layers" table of a trained network.

One row a layer, as H2O's DeepLearningModel shows it (DeepLearningModelInfo.createSummaryTable):

    layer   1-based; layer 1 is the input layer
    units   the layer's units
    type    H2O's neuron class: Input, Tanh, TanhDropout, Rectifier, RectifierDropout,
            Maxout, MaxoutDropout, ExpRectifier, ExpRectifierDropout, Softmax, Linear (an
            autoencoder's output layer has the hidden activation, without dropout)
    dropout the layer's dropout ratio in percent (input and hidden layers; none for the output)
    l1, l2  the regularisation (not for the input layer)
    mean_rate, rate_rms
            ADADELTA: the mean and the standard deviation (H2O's "RMS") over the layer's
            weights of the per-weight rate sqrt(E[dx^2] + epsilon) / sqrt(E[g^2] + epsilon);
            manual rate: the layer's annealed rate rate * rate_decay^l / (1 + rate_annealing
            * samples), l = 0 for the first weight layer (H2O's table leaves rate_decay out; the
            same at its default 1), and rate_rms 0
    momentum 0 with ADADELTA, else the momentum after `samples` training samples
    mean_weight, weight_rms, mean_bias, bias_rms
            mean and standard deviation of the layer's incoming weights and of its biases

Cells that H2O leaves empty are None.  `table()` gives the rows (JSON-ready dicts, what the
summary JSON and the model file hold), `text()` the table as H2O prints it.
"""
import math

import numpy as np

COLUMNS = ("layer", "units", "type", "dropout", "l1", "l2", "mean_rate", "rate_rms", "momentum",
           "mean_weight", "weight_rms", "mean_bias", "bias_rms")
HEADERS = ("Layer", "Units", "Type", "Dropout", "L1", "L2", "Mean Rate", "Rate RMS", "Momentum",
           "Mean Weight", "Weight RMS", "Mean Bias", "Bias RMS")
TITLE = "Status of Neuron Layers"


def neuron_types(config, activation=None):
    """H2O's neuron class of every layer.  `activation`: the parameter as given (e.g.
    RectifierWithDropout); by default from the configuration (dropout when a ratio is set)."""
    base = config.activation
    dropout = activation.endswith("WithDropout") if activation else any(r > 0 for r in config.hidden_dropout_ratios)
    hidden = base + ("Dropout" if dropout else "")
    out = {"softmax": "Softmax", "linear": "Linear", "autoencoder": base}[config.output]
    return ["Input"] + [hidden] * (len(config.units) - 2) + [out]


def momentum(config, samples):
    """H2O's momentum(n): momentum_start ramping linearly to momentum_stable over momentum_ramp samples."""
    m = config.momentum_start
    if config.momentum_ramp > 0:
        if samples >= config.momentum_ramp:
            m = config.momentum_stable
        else:
            m += (config.momentum_stable - config.momentum_start) * samples / config.momentum_ramp
    return float(m)


CHUNK = 1 << 20  # values at a time: the statistics of a large layer need no copy of it


def _chunks(a):
    """float64 pieces of the flat array a (views of float32 weights, converted piece by piece)."""
    flat = np.asarray(a).reshape(-1)
    for start in range(0, flat.size, CHUNK):
        yield flat[start:start + CHUNK].astype(np.float64)


def _mean_sd(pieces):
    """Mean and standard deviation (H2O's "RMS": sqrt of the mean squared deviation) of the
    values that `pieces()` yields in float64 pieces, in two passes."""
    n, total = 0, 0.0
    for x in pieces():
        n, total = n + x.size, total + float(x.sum())
    if not n:
        return 0.0, 0.0
    mean = total / n
    sq = sum(float(np.square(x - mean).sum()) for x in pieces())
    return mean, math.sqrt(sq / n)


def adadelta_rates(network, model, layer):
    """The per-weight ADADELTA rates of weight layer `layer`, in float64 pieces (a generator):
    sqrt(E[dx^2] + epsilon) / sqrt(E[g^2] + epsilon)."""
    eps = float(np.float32(network.config.epsilon))
    for dx2, g2 in zip(_chunks(network.view(model, "ada_dx2_weights", layer)),
                       _chunks(network.view(model, "ada_g2_weights", layer))):
        yield np.sqrt(dx2 + eps) / np.sqrt(g2 + eps)


def _rates(network, model, layer, samples):
    """(mean_rate, rate_rms, momentum) of weight layer `layer`."""
    c = network.config
    if c.adaptive_rate:
        return (*_mean_sd(lambda: adadelta_rates(network, model, layer)), 0.0)
    rate = c.rate * c.rate_decay ** layer / (1.0 + c.rate_annealing * samples)
    return float(rate), 0.0, momentum(c, samples)


def table(network, model, params=None, samples=0):
    """The layer table's rows (dicts keyed by COLUMNS) of `model` (the network's buffer)
    after `samples` training samples; `params`: the run's parameters (for the activation's
    name), optional."""
    c = network.config
    types = neuron_types(c, (params or {}).get("activation"))
    rows = [dict(zip(COLUMNS, (1, network.units[0], types[0], 100.0 * float(c.input_dropout_ratio))
                     + (None,) * (len(COLUMNS) - 4)))]
    hd = list(c.hidden_dropout_ratios) or [0.0] * (network.n_layers - 1)
    for layer in range(network.n_layers):
        dropout = 100.0 * float(hd[layer]) if layer < network.n_layers - 1 else None
        mean_rate, rate_rms, mom = _rates(network, model, layer, samples)
        w, b = network.view(model, "weights", layer), network.view(model, "biases", layer)
        mw, sw = _mean_sd(lambda: _chunks(w))
        mb, sb = _mean_sd(lambda: _chunks(b))
        rows.append(dict(zip(COLUMNS, (layer + 2, network.units[layer + 1], types[layer + 1], dropout,
                                       float(c.l1), float(c.l2), mean_rate, rate_rms, mom, mw, sw, mb, sb))))
    return rows


def title(info=None, samples=0, network=None):
    """H2O's caption of the table: what is predicted (from the data description `info`),
    the loss and size (from `network`, when given), the training samples."""
    parts = []
    if info is not None:
        parts.append("auto-encoder" if info.autoencoder else
                     f"predicting {info.response}, {info.n_classes}-class classification" if info.classification
                     else f"predicting {info.response}, regression")
    if network is not None:
        c = network.config
        parts.append(f"{'CrossEntropy' if c.output == 'softmax' else c.loss} loss")
        parts.append(f"{network.n_params:,} weights/biases")
    parts.append(f"{int(samples):,} training samples")
    return f"{TITLE}: " + ", ".join(parts) + ", mini-batch size 1"


def cell(key, v):
    if v is None:
        return ""
    if key == "dropout":
        return f"{v:.2f} %"
    if isinstance(v, float):
        return f"{v:.6f}"
    return str(v)


def text(rows, caption=None):
    """The table as H2O prints it: a caption line, then aligned columns."""
    cells = [list(HEADERS)] + [[cell(k, r.get(k)) for k in COLUMNS] for r in rows]
    widths = [max(len(line[j]) for line in cells) for j in range(len(COLUMNS))]
    lines = [caption] if caption else []
    lines += ["  ".join(s.rjust(w) for s, w in zip(line, widths)).rstrip() for line in cells]
    return "\n".join(lines)


def to_pandas(rows):
    """The rows as a pandas DataFrame with H2O's column headers (empty cells NaN)."""
    import pandas as pd
    return pd.DataFrame([[r.get(k) for k in COLUMNS] for r in rows], columns=list(HEADERS))
