"""Independent float64 numpy reference of the kernel's math, written from csrc/h2odl.h only.

Nothing here imports the kernel: a config is any object with NetConfig's attribute names,
and the model buffer is unpacked with this module's own reading of the header's layout
(output-major W_l[j * units[l] + i], then the optimizer state).  One row at a time:

  forward(cfg, model, x, ...)        scoring / training (explicit dropout masks) / plain
  row_loss, output_value             the row loss and the response-space prediction
  gradient(cfg, model, x, t, ...)    -dLoss/dparams (analytic backward), flat like the buffer
  train_row(cfg, model, x, t, ...)   one H2O-style update (ADADELTA or manual rate+momentum,
                                     l1, l2, max_w2, fast_mode / shortcut skipping)
  train_block(cfg, model, xs, ts, ...)  one update from a block of rows (mini_batch_size)
  dropout_masks(cfg, x, seed, sample)   the kernel's dropout draws for a training row

Interpretations of points the header leaves open are marked "SPEC:" below.
"""
from dataclasses import dataclass, field

import numpy as np

LOG_LINK_LOSSES = ("poisson", "gamma", "tweedie")


# ---- layout -------------------------------------------------------------------------------

def n_weight_layers(cfg):
    return len(cfg.units) - 1


def is_hidden_activation_layer(cfg, l):
    """Weight layer l's outputs use the hidden activation (hidden layers, autoencoder output)."""
    return l < n_weight_layers(cfg) - 1 or cfg.output == "autoencoder"


def channels(cfg, l):
    """SPEC: the autoencoder output 'has the hidden activation', so a Maxout one has 2 channels."""
    return 2 if cfg.activation == "Maxout" and is_hidden_activation_layer(cfg, l) else 1


def layer_rows(cfg, l):
    return int(cfg.units[l + 1]) * channels(cfg, l)


def has_momenta(cfg):
    return (not cfg.adaptive_rate) and (cfg.momentum_start != 0 or cfg.momentum_stable != 0)


def state_names(cfg):
    if cfg.adaptive_rate:
        return ("Edx2_W", "Eg2_W", "Edx2_b", "Eg2_b")
    if has_momenta(cfg):
        return ("V_W", "V_b")
    return ()


@dataclass(frozen=True)
class Segment:
    name: str       # W, b, Edx2_W, Eg2_W, Edx2_b, Eg2_b, V_W, V_b
    layer: int
    offset: int
    shape: tuple


def layout(cfg):
    """Every array of the model buffer in order: [W_0 b_0 ... W_L-1 b_L-1 | state per layer]."""
    segs, off = [], 0
    L = n_weight_layers(cfg)
    for l in range(L):
        R, U = layer_rows(cfg, l), int(cfg.units[l])
        segs.append(Segment("W", l, off, (R, U)))
        off += R * U
        segs.append(Segment("b", l, off, (R,)))
        off += R
    for l in range(L):
        R, U = layer_rows(cfg, l), int(cfg.units[l])
        for name in state_names(cfg):
            shape = (R, U) if name.endswith("_W") else (R,)
            segs.append(Segment(name, l, off, shape))
            off += int(np.prod(shape))
    return segs


def n_params(cfg):
    return sum(int(np.prod(s.shape)) for s in layout(cfg) if s.name in ("W", "b"))


def n_total(cfg):
    s = layout(cfg)[-1]
    return s.offset + int(np.prod(s.shape))


@dataclass
class Model:
    """The model buffer as float64 arrays keyed by (name, layer)."""
    cfg: object
    arrays: dict = field(default_factory=dict)

    @classmethod
    def from_buffer(cls, cfg, buf):
        buf = np.asarray(buf)
        if buf.size != n_total(cfg):
            raise ValueError(f"buffer has {buf.size} floats, the layout {n_total(cfg)}")
        arrays = {}
        for s in layout(cfg):
            size = int(np.prod(s.shape))
            arrays[(s.name, s.layer)] = buf[s.offset:s.offset + size].astype(np.float64).reshape(s.shape)
        return cls(cfg, arrays)

    def to_buffer(self, dtype=np.float32):
        out = np.zeros(n_total(self.cfg), dtype=dtype)
        for s in layout(self.cfg):
            size = int(np.prod(s.shape))
            out[s.offset:s.offset + size] = self.arrays[(s.name, s.layer)].reshape(-1)
        return out

    def copy(self):
        return Model(self.cfg, {k: v.copy() for k, v in self.arrays.items()})

    def W(self, l):
        return self.arrays[("W", l)]

    def b(self, l):
        return self.arrays[("b", l)]

    def get(self, name, l):
        return self.arrays[(name, l)]


def params_to_flat(cfg, per_layer_w, per_layer_b):
    """Flatten per-layer (W, b) arrays into the n_params prefix of the buffer layout."""
    out = np.zeros(n_params(cfg))
    for s in layout(cfg):
        if s.name == "W":
            out[s.offset:s.offset + per_layer_w[s.layer].size] = per_layer_w[s.layer].reshape(-1)
        elif s.name == "b":
            out[s.offset:s.offset + per_layer_b[s.layer].size] = per_layer_b[s.layer]
    return out


# ---- activations ---------------------------------------------------------------------------

def activate(activation, net):
    """Unscaled activation of a layer from its pre-activations.  Returns (a, winners);
    winners holds Maxout's winning channel per unit (ties go to channel 0), else None."""
    if activation == "Maxout":
        pairs = net.reshape(-1, 2)
        winners = (pairs[:, 1] > pairs[:, 0]).astype(np.int64)
        return pairs[np.arange(len(pairs)), winners], winners
    if activation == "Tanh":
        return np.tanh(net), None
    if activation == "Rectifier":
        return np.maximum(net, 0.0), None
    if activation == "ExpRectifier":
        return np.where(net >= 0, net, np.expm1(np.minimum(net, 0.0))), None
    raise ValueError(f"unknown activation {activation!r}")


def activation_derivative(activation, a_raw):
    """f' written in terms of the unscaled activation, as the header states it."""
    if activation == "Tanh":
        return 1.0 - a_raw ** 2
    if activation == "Rectifier":
        return (a_raw > 0).astype(np.float64)
    if activation == "ExpRectifier":
        return np.where(a_raw > 0, 1.0, a_raw + 1.0)
    if activation == "Maxout":
        return np.ones_like(a_raw)
    raise ValueError(f"unknown activation {activation!r}")


def units_to_rows_gradient(activation, g_units, winners):
    """Spread per-unit g onto the layer's rows (Maxout: the winning channel only)."""
    if activation != "Maxout":
        return g_units
    g = np.zeros(2 * len(g_units))
    g[2 * np.arange(len(g_units)) + winners] = g_units
    return g


# ---- forward -------------------------------------------------------------------------------

@dataclass
class Forward:
    x_target: np.ndarray        # the row's inputs before input dropout
    inputs: list                # inputs[l]: the activation vector feeding weight layer l
    nets: list                  # nets[l]: pre-activations (rows[l]) of weight layer l
    raw: list                   # raw[l]: unscaled activation of a hidden-activation layer
    scale: list                 # scale[l]: dropout mask / (1 - p) / 1 per unit
    winners: list               # winners[l]: Maxout channel per unit or None
    y: np.ndarray               # softmax probabilities, [link value], or the reconstruction


def forward(cfg, model, x, offset=0.0, mode="score", input_keep=None, hidden_keep=None):
    """One row's forward pass.

    mode "score": hidden activations times (1 - p_l), inputs untouched (H2O scoring);
    mode "train": input_keep / hidden_keep masks (default: keep all), no rescaling;
    mode "plain": no dropout of any kind.
    """
    x = np.asarray(x, dtype=np.float64)
    L = n_weight_layers(cfg)
    a = x.copy()
    if mode == "train" and input_keep is not None:
        a = a * input_keep
    hd = list(cfg.hidden_dropout_ratios) or [0.0] * (L - 1)
    inputs, nets, raw, scales, winners = [], [], [], [], []
    y = None
    for l in range(L):
        inputs.append(a)
        net = model.b(l) + model.W(l) @ a
        nets.append(net)
        if l < L - 1 or cfg.output == "autoencoder":
            r, win = activate(cfg.activation, net)
            if l == L - 1:                          # autoencoder output: no dropout
                s = np.ones_like(r)
            elif mode == "score":
                s = np.full_like(r, 1.0 - hd[l])
            elif mode == "train" and hidden_keep is not None:
                s = np.asarray(hidden_keep[l], dtype=np.float64)
            else:
                s = np.ones_like(r)
            raw.append(r)
            scales.append(s)
            winners.append(win)
            a = r * s
            if l == L - 1:
                y = a
        else:
            raw.append(None)
            scales.append(None)
            winners.append(None)
            if cfg.output == "softmax":
                z = np.exp(net - net.max())
                y = z / z.sum()
            else:
                y = np.array([net[0] + offset])
    return Forward(x, inputs, nets, raw, scales, winners, y)


def hidden_output(fwd, layer):
    """Activations of hidden layer `layer` as the network passes them on."""
    return fwd.raw[layer] * fwd.scale[layer]


# ---- losses --------------------------------------------------------------------------------

def linear_neg_gradient(cfg, t, y):
    """-dLoss/dy of a LINEAR output in link space: the header's 2 x neg_half_gradient (H2O's
    -2 x negHalfGradient with the sign turned; laplace's and quantile's half gradients are
    +-1/2 and alpha/2, (alpha-1)/2, so Absolute and Quantile carry no extra factor)."""
    r, loss = t - y, cfg.loss
    if loss == "Quadratic":
        return 2.0 * r
    if loss == "Absolute":
        return -1.0 if y > t else 1.0
    if loss == "Huber":
        d = cfg.huber_delta
        return 2.0 * r if abs(r) <= d else 2.0 * d * np.sign(r)
    if loss == "Quantile":
        q = cfg.quantile_alpha
        return q if t > y else q - 1.0
    if loss == "poisson":
        return 2.0 * (t - np.exp(y))
    if loss == "gamma":
        return 2.0 * (t * np.exp(-y) - 1.0)
    if loss == "tweedie":
        p = cfg.tweedie_power
        return 2.0 * (t * np.exp((1 - p) * y) - np.exp((2 - p) * y))
    if loss == "bernoulli":
        return 2.0 * (t - 1.0 / (1.0 + np.exp(-y)))
    raise ValueError(f"unknown loss {loss!r}")


def linear_loss(cfg, t, y):
    """The loss whose -d/dy is linear_neg_gradient (the header's list)."""
    r, loss = t - y, cfg.loss
    if loss == "Quadratic":
        return r * r
    if loss == "Absolute":
        return abs(r)
    if loss == "Huber":
        d = cfg.huber_delta
        return r * r if abs(r) <= d else d * (2 * abs(r) - d)
    if loss == "Quantile":
        q = cfg.quantile_alpha
        return q * r if r > 0 else (q - 1) * r
    if loss == "poisson":
        return 2 * (np.exp(y) - t * y)
    if loss == "gamma":
        return 2 * (t * np.exp(-y) + y)
    if loss == "tweedie":
        p = cfg.tweedie_power
        return 2 * (np.exp((2 - p) * y) / (2 - p) - t * np.exp((1 - p) * y) / (1 - p))
    if loss == "bernoulli":
        return 2 * (np.logaddexp(0.0, y) - t * y)
    raise ValueError(f"unknown loss {loss!r}")


def row_loss(cfg, fwd, t):
    """The row's (unweighted) loss.  SPEC: the autoencoder loss is sum_k (t_k - y_k)^2
    (the math section; the H2O_PRED_LOSS comment says 'recon MSE')."""
    if cfg.output == "softmax":
        return -np.log(fwd.y[int(t)])
    if cfg.output == "linear":
        return float(linear_loss(cfg, float(t), float(fwd.y[0])))
    return float(np.sum((fwd.x_target - fwd.y) ** 2))


def reconstruction_mse(fwd):
    return float(np.mean((fwd.x_target - fwd.y) ** 2))


def output_value(cfg, fwd):
    """What H2O_PRED_OUTPUT reports: probabilities, the reconstruction, or the linear value
    in response space.  SPEC: the inverse link is implied by the losses' gradients
    (exp for poisson/gamma/tweedie, logistic for bernoulli, identity otherwise)."""
    if cfg.output != "linear":
        return fwd.y.copy()
    y = float(fwd.y[0])
    if cfg.loss in LOG_LINK_LOSSES:
        return np.array([np.exp(y)])
    if cfg.loss == "bernoulli":
        return np.array([1.0 / (1.0 + np.exp(-y))])
    return np.array([y])


# ---- backward ------------------------------------------------------------------------------

def hidden_g(cfg, fwd, l, e_units):
    """g on the rows of hidden-activation layer l from the error e on its units."""
    d = activation_derivative(cfg.activation, fwd.raw[l]) * fwd.scale[l]
    g_units = e_units * d
    g_units = np.where(fwd.raw[l] * fwd.scale[l] == 0, 0.0, g_units)   # zero units pass nothing
    return units_to_rows_gradient(cfg.activation, g_units, fwd.winners[l])


def backward(cfg, model, fwd, t, weight=1.0):
    """g[l] = -dLoss/dnet_l (times the row weight) for every weight layer l, using the
    weights as they are (the weights before the update)."""
    L = n_weight_layers(cfg)
    g = [None] * L
    if cfg.output == "softmax":
        onehot = np.zeros_like(fwd.y)
        onehot[int(t)] = 1.0
        g[L - 1] = weight * (onehot - fwd.y)
    elif cfg.output == "linear":
        g[L - 1] = np.array([weight * linear_neg_gradient(cfg, float(t), float(fwd.y[0]))])
    else:
        g[L - 1] = hidden_g(cfg, fwd, L - 1, weight * 2.0 * (fwd.x_target - fwd.y))
    for l in range(L - 1, 0, -1):
        e_prev = model.W(l).T @ g[l]
        g[l - 1] = hidden_g(cfg, fwd, l - 1, e_prev)
    return g


def gradient(cfg, model, x, t, weight=1.0, offset=0.0, mode="plain"):
    """-dLoss/dparams of one row, flat in the buffer's parameter order."""
    fwd = forward(cfg, model, x, offset=offset, mode=mode)
    g = backward(cfg, model, fwd, t, weight)
    L = n_weight_layers(cfg)
    return params_to_flat(cfg, [np.outer(g[l], fwd.inputs[l]) for l in range(L)], g)


def loss_of_params(cfg, model, flat, x, t, offset=0.0, mode="plain"):
    """The row loss with the parameters replaced by `flat` (for finite differences)."""
    m = model.copy()
    for s in layout(cfg):
        if s.name in ("W", "b"):
            size = int(np.prod(s.shape))
            m.arrays[(s.name, s.layer)] = flat[s.offset:s.offset + size].reshape(s.shape).copy()
    return row_loss(cfg, forward(cfg, m, x, offset=offset, mode=mode), t)


# ---- one-row update ------------------------------------------------------------------------

def momentum_at(cfg, n):
    """SPEC: linear ramp from momentum_start to momentum_stable over momentum_ramp samples,
    momentum_stable from then on (a ramp of 0 is left open by the header: not tested)."""
    if n < cfg.momentum_ramp:
        return cfg.momentum_start + (cfg.momentum_stable - cfg.momentum_start) * n / cfg.momentum_ramp
    return cfg.momentum_stable


def manual_rate(cfg, l, n):
    m = momentum_at(cfg, n) if has_momenta(cfg) else 0.0
    return cfg.rate * cfg.rate_decay ** l / (1.0 + cfg.rate_annealing * n) * (1.0 - m), m


@dataclass
class UpdateInfo:
    loss: float                 # train_row: the row's loss; train_block: sum of weight x loss
    g: list                     # g[l] of the (last) row
    rescaled_rows: int          # rows of W scaled down by max_w2


def train_row(cfg, model, x, t, weight=1.0, offset=0.0, n=0, sparse=False,
              input_keep=None, hidden_keep=None):
    """One row's H2O update of a copy of `model`.  n: samples processed before this row;
    sparse: the row came as CSR (its first layer visits only its non-zero inputs, and the
    ADADELTA bias fan-in is their count); input_keep / hidden_keep: dropout masks (default:
    keep all).  Returns (new_model, UpdateInfo); UpdateInfo.loss is the unweighted loss."""
    fwd = forward(cfg, model, x, offset=offset, mode="train", input_keep=input_keep,
                  hidden_keep=hidden_keep)
    new, info = train_block(cfg, model, [x], [t], [weight], [offset], n=n, sparse=sparse,
                            input_keeps=[input_keep], hidden_keeps=[hidden_keep])
    info.loss = row_loss(cfg, fwd, t)
    return new, info


def train_block(cfg, model, xs, ts, weights=None, offsets=None, n=0, sparse=False,
                input_keeps=None, hidden_keeps=None):
    """One block's update of a copy of `model` (h2odl.h, MINI-BATCHES; one row: train_row):
    every row goes forward and backward on `model`; each weight gets one update from the
    mean over the rows of g_j a_i, the regularisation once; the optimizer (annealing and the
    momentum ramp at n, the samples before the block's first row) once.  fast_mode skips a
    row of W whose g_j is 0 in every row and inputs that are 0 in every row; without it all
    weights learn, except that the 'shortcut' skips rows as fast_mode does, and a CSR first
    layer visits its rows' non-zero inputs only.  The ADADELTA bias q is the mean over the
    rows b of q_b = sum_{i in V_b} (g_bj a_bi - l1 sign W - l2 W)^2 / fan_b, V_b the inputs
    row b alone would update, fan_b its fan-in.  Returns (new_model, UpdateInfo)."""
    k = len(xs)
    weights = [1.0] * k if weights is None else weights
    offsets = [0.0] * k if offsets is None else offsets
    input_keeps = [None] * k if input_keeps is None else input_keeps
    hidden_keeps = [None] * k if hidden_keeps is None else hidden_keeps
    fwds, gs, loss = [], [], 0.0
    for x, t, w, off, ik, hk in zip(xs, ts, weights, offsets, input_keeps, hidden_keeps):
        fwd = forward(cfg, model, x, offset=off, mode="train", input_keep=ik, hidden_keep=hk)
        loss += w * row_loss(cfg, fwd, t)
        fwds.append(fwd)
        gs.append(backward(cfg, model, fwd, t, w))
    new = model.copy()
    L = n_weight_layers(cfg)
    rho, eps, l1, l2 = cfg.rho, cfg.epsilon, cfg.l1, cfg.l2
    rescaled = 0
    shortcut = cfg.fast_mode or (not cfg.adaptive_rate and not has_momenta(cfg)
                                 and l1 == 0 and l2 == 0)
    for l in range(L):
        A = np.array([f.inputs[l] for f in fwds])                  # (k, U) the rows' inputs
        Gr = np.array([g[l] for g in gs])                          # (k, R) their g
        W, b = model.W(l), model.b(l)
        reg_W, reg_b = l1 * np.sign(W) + l2 * W, l1 * np.sign(b) + l2 * b
        # fast_mode skips rows with g_j == 0 and inputs with a_i == 0 (in every row); without
        # it every weight is updated, except rows with g_j == 0 when there is nothing else to
        # apply (H2O's "shortcut"), and a CSR row's first layer visits its non-zero inputs only
        visit_nonzero = cfg.fast_mode or (sparse and l == 0)
        rows_on = (Gr != 0).any(axis=0) if shortcut else np.ones(W.shape[0], bool)
        cols_on = (A != 0).any(axis=0) if visit_nonzero else np.ones(W.shape[1], bool)
        M = rows_on[:, None] & cols_on[None, :]
        G = Gr.T @ A / k - reg_W
        gb = Gr.mean(axis=0) - reg_b
        if cfg.adaptive_rate:
            Edx2, Eg2 = model.get("Edx2_W", l), model.get("Eg2_W", l)
            Eg2_new = rho * Eg2 + (1 - rho) * G * G
            r = np.sqrt((Edx2 + eps) / (Eg2_new + eps))
            Edx2_new = rho * Edx2 + (1 - rho) * r * r * G * G
            new.arrays[("Eg2_W", l)] = np.where(M, Eg2_new, Eg2)
            new.arrays[("Edx2_W", l)] = np.where(M, Edx2_new, Edx2)
            W_new = np.where(M, W + r * G, W)
            # bias: ADADELTA rate from each row's mean grad^2 over the unit's incoming weights
            # that row would update, averaged over the rows
            # SPEC: the sparse fan-in counts the non-zero inputs after input dropout; the
            # Edx2_b update uses the mean grad^2 too (as H2O's computeAdaDeltaRateForBias).
            grad2 = np.zeros(W.shape[0])
            for a_b, g_b in zip(A, Gr):
                V = (a_b != 0) if visit_nonzero else np.ones(a_b.shape, bool)
                fan = max(int(np.count_nonzero(a_b)), 1) if (sparse and l == 0) else int(cfg.units[l])
                G_b = np.outer(g_b, a_b) - reg_W
                grad2 += np.where(V[None, :], G_b * G_b, 0.0).sum(axis=1) / fan
            grad2 /= k
            Edx2b, Eg2b = model.get("Edx2_b", l), model.get("Eg2_b", l)
            Eg2b_new = rho * Eg2b + (1 - rho) * grad2
            rb = np.sqrt((Edx2b + eps) / (Eg2b_new + eps))
            Edx2b_new = rho * Edx2b + (1 - rho) * rb * rb * grad2
            new.arrays[("Eg2_b", l)] = np.where(rows_on, Eg2b_new, Eg2b)
            new.arrays[("Edx2_b", l)] = np.where(rows_on, Edx2b_new, Edx2b)
            b_new = np.where(rows_on, b + rb * gb, b)
        else:
            R, m = manual_rate(cfg, l, n)
            if has_momenta(cfg):
                V, Vb = model.get("V_W", l), model.get("V_b", l)
                if cfg.nesterov_accelerated_gradient:
                    V_new, Vb_new = m * V + G, m * Vb + gb
                    W_new, b_new = W + R * V_new, b + R * Vb_new
                else:
                    V_new, Vb_new = R * G, R * gb
                    W_new, b_new = W + V_new + m * V, b + Vb_new + m * Vb
                new.arrays[("V_W", l)] = np.where(M, V_new, V)
                new.arrays[("V_b", l)] = np.where(rows_on, Vb_new, Vb)
                W_new = np.where(M, W_new, W)
                b_new = np.where(rows_on, b_new, b)
            else:
                W_new = np.where(M, W + R * G, W)
                b_new = np.where(rows_on, b + R * gb, b)
        if np.isfinite(cfg.max_w2):
            sq = (W_new ** 2).sum(axis=1)
            over = rows_on & (sq > cfg.max_w2)
            factor = np.where(over, np.sqrt(cfg.max_w2 / np.where(over, sq, 1.0)), 1.0)
            W_new = W_new * factor[:, None]
            rescaled += int(over.sum())
        new.arrays[("W", l)] = W_new
        new.arrays[("b", l)] = b_new
    return new, UpdateInfo(loss=loss, g=gs[-1], rescaled_rows=rescaled)


# ---- the kernel's dropout stream -----------------------------------------------------------

_M64 = (1 << 64) - 1


def _splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


class KernelRng:
    """csrc/rng.h's stream for (seed, counter, salt): splitmix64 seeds xorshift64*."""

    def __init__(self, seed, counter, salt=0xD20D1):
        s = _splitmix64((seed ^ _splitmix64((counter * 0x2545F4914F6CDD1D + salt) & _M64)) & _M64)
        self.s = s or 0x853C49E6748FEA9B

    def uniform(self):
        """float32 in [0, 1) with 24 random bits."""
        x = self.s
        x ^= x >> 12
        x ^= (x << 25) & _M64
        x ^= x >> 27
        self.s = x
        return np.float32(((x * 0x2545F4914F6CDD1D) & _M64) >> 40) * np.float32(1.0 / 16777216.0)


def dropout_masks(cfg, x, seed, sample):
    """The masks the kernel draws for a training row (h2odl.h: a stream keyed by the seed
    and the row's sample number): one draw per non-zero input, ascending, kept unless below
    input_dropout_ratio; then per hidden layer with a ratio > 0 one draw per unit.  Returns
    (input_keep, hidden_keep) for forward(mode='train')."""
    rng = KernelRng(seed, sample)
    x = np.asarray(x)
    input_keep = np.ones(len(x))
    p_in = np.float32(cfg.input_dropout_ratio)
    if p_in > 0:
        for i in np.flatnonzero(x):
            if rng.uniform() < p_in:
                input_keep[i] = 0.0
    L = n_weight_layers(cfg)
    hd = list(cfg.hidden_dropout_ratios) or [0.0] * (L - 1)
    hidden_keep = []
    for l in range(L - 1):
        p = np.float32(hd[l])
        keep = np.ones(int(cfg.units[l + 1]))
        if p > 0:
            for u in range(len(keep)):
                if rng.uniform() < p:
                    keep[u] = 0.0
        hidden_keep.append(keep)
    return input_keep, hidden_keep


# ---- row formats ---------------------------------------------------------------------------

def dense_to_csr(x):
    """(indptr, indices, values) of a dense matrix, explicit zeros dropped."""
    x = np.asarray(x)
    indptr, indices, values = [0], [], []
    for row in x:
        nz = np.flatnonzero(row)
        indices.extend(nz.tolist())
        values.extend(row[nz].tolist())
        indptr.append(len(indices))
    return (np.array(indptr, np.int64), np.array(indices, np.int32),
            np.array(values, np.float32))
