"""Python side of the C kernel boundary (csrc/h2odl.h), bound with cffi.

`Network` describes one architecture; it owns nothing but its layout and a reusable
per-thread workspace.  The model itself is one contiguous float32 numpy array (weights,
biases, optimizer state) that the trainer averages in place across ranks and the
checkpoint writes without copies.  Every argument is validated here, with an error that
names it, before C sees it; every C call's return code goes through `_check`, the one place
that turns a code into a `KernelError`.

`NetConfig` is the training math (H2O's parameter names; the choices of parameters that are
not the kernel's, such as `WEIGHT_DISTRIBUTIONS`, live in h2odl_mpi.params).  `Rows` holds the
rows the kernel reads: a dense float32 matrix, CSR arrays, or (kind frame) any row source
with `to_c(keep, threads)`, in practice the compressed column store itself as described by
h2odl_mpi/data/frame/c_view.py (`FrameInput`, `FrameSource`, `frame_rows`) and decoded per row in
C (csrc/frame_rows.c); `preprocess.Preprocess.rows(frame)` builds those, and the store is
never expanded.  This module does not import h2odl_mpi.data.frame.
"""
from dataclasses import dataclass, field
import math
import os

import numpy as np

from h2odl_mpi._kernel import ffi, lib
from h2odl_mpi.params import MAX_UNITS, WEIGHT_DISTRIBUTIONS
from h2odl_mpi.sizes import memory_available, size_text

ACTIVATIONS = {"Tanh": lib.H2O_TANH, "Rectifier": lib.H2O_RECTIFIER,
               "Maxout": lib.H2O_MAXOUT, "ExpRectifier": lib.H2O_EXPRECTIFIER}
OUTPUTS = {"softmax": lib.H2O_OUT_SOFTMAX, "linear": lib.H2O_OUT_LINEAR,
           "autoencoder": lib.H2O_OUT_AUTOENCODER}
LOSSES = {"Quadratic": lib.H2O_LOSS_QUADRATIC, "Absolute": lib.H2O_LOSS_ABSOLUTE,
          "Huber": lib.H2O_LOSS_HUBER, "Quantile": lib.H2O_LOSS_QUANTILE,
          "poisson": lib.H2O_LOSS_POISSON, "gamma": lib.H2O_LOSS_GAMMA,
          "tweedie": lib.H2O_LOSS_TWEEDIE, "bernoulli": lib.H2O_LOSS_BERNOULLI}
PREDICTIONS = {"output": lib.H2O_PRED_OUTPUT, "recon": lib.H2O_PRED_RECON,
               "hidden": lib.H2O_PRED_HIDDEN, "loss": lib.H2O_PRED_LOSS}
MAX_LAYERS = lib.H2O_MAX_LAYERS
MAX_MINI_BATCH = lib.H2O_MAX_MINI_BATCH   # mini_batch_size, at most
# a fresh model's hidden biases (H2O-3's DeepLearningModelInfo.initializeMembers):
# activation -> (first hidden layer, deeper hidden layers); the others and the output start at 0
HIDDEN_BIAS_START = {"Rectifier": (0.5, 1.0), "Maxout": (0.5, 1.0)}
assert len(ACTIVATIONS) == lib.H2O_N_ACTIVATIONS and len(OUTPUTS) == lib.H2O_N_OUTPUTS
assert len(LOSSES) == lib.H2O_N_LOSSES


class KernelError(RuntimeError):
    """The kernel refused its arguments or met a non-finite value."""


_RC_TEXT = {lib.H2O_EARG: "refused its arguments", lib.H2O_ENONFINITE: "met a non-finite value"}


def _check(rc, what, allow=(), hint=None):
    """The one check of a kernel return code (as LightGBM's _safe_call): None for H2O_OK;
    a code in `allow` is returned for the caller to report otherwise (h2o_train's
    H2O_ENONFINITE is TrainStats.nonfinite); any other code raises KernelError naming the
    function `what` (and `hint` when it refused its arguments)."""
    if rc == lib.H2O_OK:
        return None
    if rc in allow:
        return rc
    text = _RC_TEXT.get(rc, f"returned the unknown code {rc}")
    if hint and rc == lib.H2O_EARG:
        text += f" ({hint})"
    raise KernelError(f"{what} {text}")


@dataclass
class NetConfig:
    """Architecture and training math of one network (names follow H2O's parameters).

    units: [inputs, hidden..., outputs]; activation: base name (Tanh, Rectifier, Maxout,
    ExpRectifier); output: softmax | linear | autoencoder; loss: for linear outputs.
    """
    units: list
    activation: str = "Rectifier"
    output: str = "softmax"
    loss: str = "Quadratic"
    input_dropout_ratio: float = 0.0
    hidden_dropout_ratios: list = field(default_factory=list)
    adaptive_rate: bool = True
    rho: float = 0.99
    epsilon: float = 1e-8
    rate: float = 0.005
    rate_annealing: float = 1e-6
    rate_decay: float = 1.0
    momentum_start: float = 0.0
    momentum_ramp: float = 1e6
    momentum_stable: float = 0.0
    nesterov_accelerated_gradient: bool = True
    l1: float = 0.0
    l2: float = 0.0
    max_w2: float = math.inf
    huber_delta: float = 1.0
    quantile_alpha: float = 0.5
    tweedie_power: float = 1.5
    fast_mode: bool = True
    mini_batch_size: int = 1      # rows a thread trains per update (h2odl.h, MINI-BATCHES)

    def validate(self):
        units = list(self.units)
        if not (2 <= len(units) <= MAX_LAYERS + 1):
            raise ValueError(f"units: need between 2 and {MAX_LAYERS + 1} layers, got {len(units)}")
        for i, u in enumerate(units):
            if int(u) != u or u < 1:
                raise ValueError(f"units[{i}] must be a positive integer, got {u!r}")
            if u > MAX_UNITS:
                raise ValueError(f"units[{i}] = {int(u):,}: a layer may have at most {MAX_UNITS:,} units "
                                 "(the kernel counts them in a C int)")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {sorted(OUTPUTS)}, got {self.output!r}")
        if self.output == "linear":
            if self.loss not in LOSSES:
                raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {self.loss!r}")
            if units[-1] != 1:
                raise ValueError("a linear output has exactly one unit")
        if self.output == "autoencoder" and units[-1] != units[0]:
            raise ValueError("an autoencoder's output layer has as many units as inputs")
        n_hidden = len(units) - 2
        hd = list(self.hidden_dropout_ratios) or [0.0] * n_hidden
        if len(hd) != n_hidden:
            raise ValueError(f"hidden_dropout_ratios needs {n_hidden} values (one per hidden layer), got {len(hd)}")
        for name, v in [("input_dropout_ratio", self.input_dropout_ratio)] + \
                [(f"hidden_dropout_ratios[{i}]", r) for i, r in enumerate(hd)]:
            if not (0.0 <= v < 1.0):
                raise ValueError(f"{name} must be in [0, 1), got {v}")
        checks = [("rho", self.rho, 0.0, 1.0, True), ("epsilon", self.epsilon, 0.0, math.inf, True),
                  ("rate", self.rate, 0.0, math.inf, True), ("rate_annealing", self.rate_annealing, 0.0, math.inf, False),
                  ("rate_decay", self.rate_decay, 0.0, math.inf, True), ("momentum_start", self.momentum_start, 0.0, 1.0, False),
                  ("momentum_stable", self.momentum_stable, 0.0, 1.0, False), ("momentum_ramp", self.momentum_ramp, 0.0, math.inf, False),
                  ("l1", self.l1, 0.0, math.inf, False), ("l2", self.l2, 0.0, math.inf, False),
                  ("huber_delta", self.huber_delta, 0.0, math.inf, True), ("quantile_alpha", self.quantile_alpha, 0.0, 1.0, False)]
        for name, v, lo, hi, open_lo in checks:
            if not (math.isfinite(v) and (v > lo if open_lo else v >= lo) and v <= hi):
                raise ValueError(f"{name} out of range: {v}")
        b = self.mini_batch_size
        if isinstance(b, bool) or int(b) != b or not (1 <= b <= MAX_MINI_BATCH):
            raise ValueError(f"mini_batch_size must be an integer in [1, {MAX_MINI_BATCH}], got {b!r}")
        if not (self.max_w2 > 0):
            raise ValueError(f"max_w2 must be > 0, got {self.max_w2}")
        if not (1.0 < self.tweedie_power < 2.0) and self.loss == "tweedie" and self.output == "linear":
            raise ValueError(f"tweedie_power must be in (1, 2), got {self.tweedie_power}")
        return hd

    def to_c(self):
        """A filled `h2o_config` (validated)."""
        hd = self.validate()
        c = ffi.new("h2o_config *")
        c.n_layers = len(self.units) - 1
        for i, u in enumerate(self.units):
            c.units[i] = int(u)
        c.activation = ACTIVATIONS[self.activation]
        c.output = OUTPUTS[self.output]
        c.loss = LOSSES.get(self.loss, lib.H2O_LOSS_QUADRATIC)
        c.input_dropout = self.input_dropout_ratio
        for i, r in enumerate(hd):
            c.hidden_dropout[i] = r
        c.adaptive_rate = int(bool(self.adaptive_rate))
        c.rho, c.epsilon = self.rho, self.epsilon
        c.rate, c.rate_annealing, c.rate_decay = self.rate, self.rate_annealing, self.rate_decay
        c.momentum_start, c.momentum_ramp, c.momentum_stable = (
            self.momentum_start, self.momentum_ramp, self.momentum_stable)
        c.nesterov = int(bool(self.nesterov_accelerated_gradient))
        c.l1, c.l2, c.max_w2 = self.l1, self.l2, self.max_w2
        c.huber_delta, c.quantile_alpha, c.tweedie_power = (
            self.huber_delta, self.quantile_alpha, self.tweedie_power)
        c.fast_mode = int(bool(self.fast_mode))
        c.mini_batch_size = int(self.mini_batch_size)
        return c



@dataclass
class Rows:
    """Rows for the kernel: dense float32 (n, n_cols), CSR or a FRAME source; targets,
    weights, offsets.

    y holds class indices (softmax) or targets (linear), NaN marking a missing target;
    it is None for autoencoders.  Arrays are converted to the kernel's dtypes once here.
    """
    n_rows: int
    n_cols: int
    x: np.ndarray = None
    indptr: np.ndarray = None
    indices: np.ndarray = None
    values: np.ndarray = None
    y: np.ndarray = None
    weight: np.ndarray = None
    offset: np.ndarray = None
    frame: object = None      # a FRAME source (h2odl_mpi.data.frame.c_view.FrameSource)

    @property
    def kind(self):
        return "dense" if self.x is not None else "frame" if self.frame is not None else "csr"

    @classmethod
    def dense(cls, x, y=None, weight=None, offset=None):
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"x must be a 2-d matrix, got shape {x.shape}")
        r = cls(n_rows=x.shape[0], n_cols=x.shape[1], x=x)
        r._set_columns(y, weight, offset)
        return r

    @classmethod
    def csr(cls, indptr, indices, values, n_cols, y=None, weight=None, offset=None):
        indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        indices = np.ascontiguousarray(indices, dtype=np.int32)
        values = np.ascontiguousarray(values, dtype=np.float32)
        n = len(indptr) - 1
        if n < 0 or indptr[0] != 0 or np.any(np.diff(indptr) < 0) or indptr[-1] != len(indices):
            raise ValueError("indptr must start at 0, not decrease, and end at len(indices)")
        if len(values) != len(indices):
            raise ValueError("indices and values differ in length")
        if len(indices) and (indices.min() < 0 or indices.max() >= n_cols):
            raise ValueError(f"CSR column indices must be in [0, {n_cols})")
        r = cls(n_rows=n, n_cols=int(n_cols), indptr=indptr, indices=indices, values=values)
        r._set_columns(y, weight, offset)
        return r

    @classmethod
    def from_source(cls, source, y=None, weight=None, offset=None):
        """FRAME rows read through `source` (source.n_rows rows of source.n_cols inputs;
        source.to_c(keep, threads) gives the h2o_frame): h2odl_mpi.data.frame.c_view.frame_rows
        builds these over the column store."""
        r = cls(n_rows=int(source.n_rows), n_cols=int(source.n_cols), frame=source)
        r._set_columns(y, weight, offset)
        return r

    def usable_rows(self):
        """Indices of the rows training would use (target present, weight not 0)."""
        keep = np.ones(self.n_rows, dtype=bool)
        if self.y is not None:
            keep &= ~np.isnan(self.y)
        if self.weight is not None:
            keep &= self.weight != 0
        return np.flatnonzero(keep)

    def expand(self, rows=None, threads=1):
        """The inputs the kernel sees for `rows` (default all) as a dense float32 matrix,
        written by C (h2o_rows_expand): for FRAME rows, the decoded, transformed row, decoded
        on `threads` threads."""
        rows = np.arange(self.n_rows, dtype=np.int64) if rows is None else \
            np.ascontiguousarray(rows, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= self.n_rows):
            raise ValueError(f"rows must be in [0, {self.n_rows})")
        out = np.empty((rows.size, self.n_cols), dtype=np.float32)
        keep = []
        _check(lib.h2o_rows_expand(self.to_c(keep, max(1, int(threads))), ffi.cast("int64_t *", rows.ctypes.data),
                                   rows.size, ffi.cast("float *", out.ctypes.data)),
               "h2o_rows_expand")
        return out

    def _set_columns(self, y, weight, offset):
        for name, v in (("y", y), ("weight", weight), ("offset", offset)):
            if v is not None:
                v = np.ascontiguousarray(v, dtype=np.float32).reshape(-1)
                if len(v) != self.n_rows:
                    raise ValueError(f"{name} has {len(v)} values for {self.n_rows} rows")
                if name == "weight" and (not np.all(np.isfinite(v)) or np.any(v < 0)):
                    raise ValueError("weight must be finite and non-negative")
            setattr(self, name, v)

    def to_c(self, keep, threads=1):
        """A `h2o_rows` pointing into these arrays; `keep` collects the cffi buffers.
        threads: how many kernel threads will read it (FRAME rows: a chunk cache each)."""
        d = ffi.new("h2o_rows *")
        keep.append(d)
        d.kind = {"dense": lib.H2O_ROWS_DENSE, "csr": lib.H2O_ROWS_CSR,
                  "frame": lib.H2O_ROWS_FRAME}[self.kind]
        if self.frame is not None:
            d.frame = self.frame.to_c(keep, threads)
        d.n_rows, d.n_cols = self.n_rows, self.n_cols
        for name, ctype in (("x", "float *"), ("indptr", "int64_t *"), ("indices", "int32_t *"),
                            ("values", "float *"), ("y", "float *"), ("weight", "float *"),
                            ("offset", "float *")):
            arr = getattr(self, name)
            setattr(d, name, ffi.NULL if arr is None else ffi.cast(ctype, arr.ctypes.data))
        return d


@dataclass
class TrainStats:
    trained: int
    skipped: int
    loss_sum: float
    nonfinite: bool


def _stats(rc, what, stats):
    """TrainStats of a training call (its H2O_ENONFINITE is TrainStats.nonfinite)."""
    _check(rc, what, allow=(lib.H2O_ENONFINITE,))
    return TrainStats(int(stats.trained), int(stats.skipped), float(stats.loss_sum), bool(stats.nonfinite))


def available_cores():
    """Cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def exit_alarm(seconds, line, status):
    """`seconds` from now (0: cancel), unless the process has ended, write `line` to stderr
    and end the process with `status` (csrc/exit_alarm.c: a C signal handler, so it acts
    also where no Python code runs, as inside MPI_Finalize after Python has ended)."""
    data = line.encode("utf-8", "replace")
    if not (isinstance(seconds, int) and seconds >= 0):
        raise ValueError(f"seconds must be an integer >= 0, not {seconds!r}")
    if not 0 <= status <= 255 or len(data) >= lib.H2O_EXIT_LINE_MAX or b"\0" in data:
        raise ValueError(f"an exit line of at most {lib.H2O_EXIT_LINE_MAX - 1} bytes and a status "
                         "0..255 are needed")
    _check(lib.h2o_exit_alarm(seconds, data, int(status)), "h2o_exit_alarm")


def buffer_floats(config):
    """(n_params, n_total) of `config`'s model buffer, counted here as h2o_layout_of counts
    them, before anything is built or allocated (Python integers: no overflow).  ValueError
    naming the layer when one has more rows than the kernel's C int holds (Maxout: 2 a unit)."""
    config.validate()
    units, n_layers = [int(u) for u in config.units], len(config.units) - 1
    n_params = 0
    for l in range(n_layers):
        maxout = config.activation == "Maxout" and (l < n_layers - 1 or config.output == "autoencoder")
        rows = units[l + 1] * (2 if maxout else 1)
        if rows > MAX_UNITS:
            raise ValueError(f"units[{l + 1}] = {units[l + 1]:,}: a Maxout layer may have at most "
                             f"{MAX_UNITS // 2:,} units (2 rows each, counted in a C int)")
        n_params += units[l] * rows + rows
    momenta = np.float32(config.momentum_start) != 0 or np.float32(config.momentum_stable) != 0
    state = 2 if config.adaptive_rate else 1 if momenta else 0   # ADADELTA: 2 arrays; momentum: 1
    return n_params, n_params * (1 + state)


def replica_bytes(config, threads):
    """Bytes of the replicas train_replicas keeps for `threads` threads: a model buffer each."""
    return 4 * threads * buffer_floats(config)[1]


class Network:
    """One architecture: layout of the model buffer, initialisation, train, predict."""

    def __init__(self, config: NetConfig):
        self.config = config
        _, n_total = buffer_floats(config)
        avail = memory_available()
        if avail is not None and 4 * n_total > avail:
            raise ValueError(f"the network {[int(u) for u in config.units]} needs a model buffer of "
                             f"{n_total:,} floats ({size_text(4 * n_total)}), more than the "
                             f"{size_text(avail)} of memory available")
        self._c = config.to_c()
        self._layout = ffi.new("h2o_layout *")
        try:
            _check(lib.h2o_layout_of(self._c, self._layout), "h2o_layout_of")
        except KernelError as e:
            raise ValueError(f"the kernel refused the network configuration {config}") from e
        self.units = [int(u) for u in config.units]
        self.n_layers = len(self.units) - 1
        self.rows = [int(self._layout.rows[l]) for l in range(self.n_layers)]
        self.n_params = int(self._layout.n_params)
        self.n_total = int(self._layout.n_total)
        self._ws = np.zeros(0, dtype=np.float32)
        self._reps = np.zeros((0, self.n_total), dtype=np.float32)   # (train_replicas)

    def set_huber_delta(self, delta):
        """Use Huber loss threshold `delta` (finite, > 0) from the next train, predict or
        gradient call on (self.config.huber_delta and the C config both change)."""
        delta = float(delta)
        if not (math.isfinite(delta) and delta > 0):
            raise ValueError(f"huber_delta must be finite and > 0, got {delta}")
        self.config.huber_delta = delta
        self._c.huber_delta = delta

    # ---- layout ---------------------------------------------------------------------
    def segments(self):
        """(name, layer, offset, shape) of every array in the model buffer, in order."""
        lay, out = self._layout, []
        for l in range(self.n_layers):
            shape_w, shape_b = (self.rows[l], self.units[l]), (self.rows[l],)
            out += [("weights", l, lay.w[l], shape_w), ("biases", l, lay.b[l], shape_b)]
        for l in range(self.n_layers):
            shape_w, shape_b = (self.rows[l], self.units[l]), (self.rows[l],)
            for name, off, shape in (("ada_dx2_weights", lay.ada_dx_w[l], shape_w),
                                     ("ada_g2_weights", lay.ada_g_w[l], shape_w),
                                     ("ada_dx2_biases", lay.ada_dx_b[l], shape_b),
                                     ("ada_g2_biases", lay.ada_g_b[l], shape_b),
                                     ("momentum_weights", lay.mom_w[l], shape_w),
                                     ("momentum_biases", lay.mom_b[l], shape_b)):
                if off >= 0:
                    out.append((name, l, int(off), shape))
        return out

    def view(self, model, name, layer):
        """A view of one array (e.g. 'weights', 1) of the model buffer; weights are
        output-major: shape (outputs, inputs), row j holding unit j's incoming weights."""
        for n, l, off, shape in self.segments():
            if n == name and l == layer:
                size = int(np.prod(shape))
                return model[off:off + size].reshape(shape)
        raise KeyError(f"no array {name!r} for layer {layer}")

    def new_model(self, seed=0, distribution="UniformAdaptive", scale=1.0):
        """A fresh model buffer: weights drawn from `seed`, optimizer state zero, and the
        biases H2O-3 starts from (DeepLearningModelInfo.initializeMembers): the hidden
        layers of Rectifier and Maxout networks (the ...WithDropout ones are the same
        kernel activation) at 0.5 in the first hidden layer and 1.0 in deeper ones, every
        Maxout channel alike; Tanh and ExpRectifier hidden layers and the output layer
        (an autoencoder's too) at 0."""
        if distribution not in WEIGHT_DISTRIBUTIONS:
            raise ValueError(f"initial_weight_distribution must be one of {WEIGHT_DISTRIBUTIONS}, got {distribution!r}")
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"initial_weight_scale must be > 0, got {scale}")
        model = np.zeros(self.n_total, dtype=np.float32)
        classification = self.config.output == "softmax"
        for l in range(self.n_layers):
            rng = np.random.default_rng([int(seed) & 0xFFFFFFFFFFFFFFFF, 0xBAD5EED, l])
            w = self.view(model, "weights", l)
            if distribution == "UniformAdaptive":
                lim = math.sqrt(6.0 / (self.units[l] + self.units[l + 1]))
                if classification and l == self.n_layers - 1:
                    lim *= 4.0
                w[...] = rng.uniform(-lim, lim, size=w.shape)
            elif distribution == "Uniform":
                w[...] = rng.uniform(-scale, scale, size=w.shape)
            else:
                w[...] = rng.normal(0.0, scale, size=w.shape)
        if self.config.activation in HIDDEN_BIAS_START:
            for l in range(self.n_layers - 1):
                self.view(model, "biases", l)[...] = HIDDEN_BIAS_START[self.config.activation][min(l, 1)]
        return model

    def _check_model(self, model):
        if not (isinstance(model, np.ndarray) and model.dtype == np.float32 and model.ndim == 1
                and model.size == self.n_total and model.flags.c_contiguous):
            raise ValueError(f"model must be a contiguous float32 vector of {self.n_total} values")

    def _workspace(self, threads, per_thread=None, shared=0):
        """The reusable scratch: `shared` floats, then `per_thread` floats for each of
        `threads` threads (default: h2o_train's workspace_per_thread), grown when short;
        returns (pointer, its length in floats)."""
        per_thread = int(self._layout.workspace_per_thread) if per_thread is None else per_thread
        need = shared + threads * per_thread
        if self._ws.size < need:
            avail = memory_available()
            if avail is not None and 4 * need > avail:
                raise ValueError(f"the kernel's scratch for {threads} threads ({size_text(4 * need)}: "
                                 f"mini_batch_size = {self.config.mini_batch_size} rows of every layer "
                                 f"a thread, or a block of scored rows) is more than the "
                                 f"{size_text(avail)} of memory available")
            self._ws = np.zeros(need, dtype=np.float32)
        return ffi.cast("float *", self._ws.ctypes.data), int(self._ws.size)

    def _check_rows(self, rows, need_y):
        if not isinstance(rows, Rows):
            raise TypeError("rows must be a kernel.Rows")
        if rows.n_cols != self.units[0]:
            raise ValueError(f"rows have {rows.n_cols} columns, the network {self.units[0]} inputs")
        if need_y and self.config.output != "autoencoder":
            if rows.y is None:
                raise ValueError("rows need targets y")
            if self.config.output == "softmax":
                y = rows.y[~np.isnan(rows.y)]
                if len(y) and (y.min() < 0 or y.max() >= self.units[-1] or np.any(y != np.floor(y))):
                    raise ValueError(f"class indices must be integers in [0, {self.units[-1]})")

    @staticmethod
    def _threads(threads):
        threads = available_cores() if threads is None else int(threads)
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        return threads

    # ---- entry points ---------------------------------------------------------------
    def train(self, model, rows, order=None, samples_before=0, seed=0, threads=None):
        """Train rows[order] once each (Hogwild! on `threads` threads) updating `model` in place."""
        threads, order, c_args = self._train_args(model, rows, order, samples_before, seed, threads)
        keep, stats = [], ffi.new("h2o_train_stats *")
        rc = lib.h2o_train(self._c, ffi.cast("float *", model.ctypes.data), self._workspace(threads)[0],
                           threads, rows.to_c(keep, threads), *c_args, stats)
        return _stats(rc, "h2o_train", stats)

    def train_replicas(self, model, rows, order=None, samples_before=0, seed=0, threads=None,
                       replicas=None):
        """Train rows[order] once each on `threads` threads, each its own replica of `model`,
        then write their mean into `model` (h2odl.h, REPLICAS).  replicas: a C-contiguous
        float32 (threads, n_total) array that receives the trained replicas, or None for the
        network's own buffer (threads x the model buffer, kept for the next call)."""
        threads, order, c_args = self._train_args(model, rows, order, samples_before, seed, threads)
        replicas = self._replicas(threads) if replicas is None else replicas
        if not (isinstance(replicas, np.ndarray) and replicas.dtype == np.float32 and replicas.flags.c_contiguous
                and replicas.shape == (threads, self.n_total)):
            raise ValueError(f"replicas must be a contiguous float32 array of shape ({threads}, {self.n_total})")
        if np.shares_memory(model, replicas):
            raise ValueError("replicas must not overlap the model")
        keep, stats = [], ffi.new("h2o_train_stats *")
        rc = lib.h2o_train_replicas(self._c, ffi.cast("float *", model.ctypes.data),
                                    ffi.cast("float *", replicas.ctypes.data), self._workspace(threads)[0],
                                    threads, rows.to_c(keep, threads), *c_args, stats)
        return _stats(rc, "h2o_train_replicas", stats)

    def _train_args(self, model, rows, order, samples_before, seed, threads):
        """Validated (threads, order, the C arguments order, n, samples_before, seed) of a
        training call."""
        self._check_model(model)
        self._check_rows(rows, need_y=True)
        threads = self._threads(threads)
        order = np.arange(rows.n_rows, dtype=np.int64) if order is None else \
            np.ascontiguousarray(order, dtype=np.int64)
        if order.ndim != 1 or (order.size and (order.min() < 0 or order.max() >= rows.n_rows)):
            raise ValueError(f"order must hold row indices in [0, {rows.n_rows})")
        if samples_before < 0:
            raise ValueError("samples_before must be >= 0")
        return threads, order, (ffi.cast("int64_t *", order.ctypes.data), order.size, int(samples_before),
                                int(seed) & 0xFFFFFFFFFFFFFFFF)

    def _replicas(self, threads):
        """The network's replica buffer for `threads` threads (replica_bytes), grown when short."""
        if self._reps.shape[0] < threads:
            need, avail = replica_bytes(self.config, threads), memory_available()
            if avail is not None and need > avail:
                raise ValueError(f"the replicas of {threads} threads ({threads} x the model buffer, "
                                 f"{size_text(need)}) are more than the {size_text(avail)} of memory available")
            self._reps = np.zeros((threads, self.n_total), dtype=np.float32)
        return self._reps[:threads]

    def predict(self, model, rows, what="output", layer=None, threads=None):
        """Forward-only scoring with the full network, in blocks of rows as matrix products
        (h2odl.h, SCORING); returns float32 (n_rows, width)."""
        self._check_model(model)
        if what not in PREDICTIONS:
            raise ValueError(f"what must be one of {sorted(PREDICTIONS)}, got {what!r}")
        self._check_rows(rows, need_y=(what == "loss"))
        threads = self._threads(threads)
        if what == "output":
            width = 1 if self.config.output == "linear" else self.units[-1]
        elif what == "hidden":
            if layer is None or not (0 <= layer < self.n_layers - 1):
                raise ValueError(f"layer must be a hidden layer index in [0, {self.n_layers - 1})")
            width = self.units[layer + 1]
        else:
            if what == "recon" and self.config.output != "autoencoder":
                raise ValueError("reconstruction error needs an autoencoder")
            width = 1
        out = np.empty((rows.n_rows, width), dtype=np.float32)
        keep = []
        lay = self._layout
        ws, ws_floats = self._workspace(threads, int(lay.score_per_thread), int(lay.score_shared))
        rc = lib.h2o_predict(self._c, ffi.cast("float *", model.ctypes.data), ws, ws_floats,
                             threads, rows.to_c(keep, threads), PREDICTIONS[what],
                             -1 if layer is None else int(layer), ffi.cast("float *", out.ctypes.data))
        _check(rc, "h2o_predict")
        return out

    def gradient(self, model, rows, row):
        """-dLoss/dparams of one row (no dropout, no regularisation), n_params floats."""
        self._check_model(model)
        self._check_rows(rows, need_y=True)
        if not (0 <= row < rows.n_rows):
            raise ValueError(f"row must be in [0, {rows.n_rows})")
        grad = np.zeros(self.n_params, dtype=np.float32)
        keep = []
        rc = lib.h2o_gradient(self._c, ffi.cast("float *", model.ctypes.data), self._workspace(1)[0],
                              rows.to_c(keep), int(row), ffi.cast("float *", grad.ctypes.data))
        _check(rc, "h2o_gradient", allow=(lib.H2O_ENONFINITE,), hint="missing target?")
        return grad
