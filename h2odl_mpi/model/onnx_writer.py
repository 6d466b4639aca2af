"""`export --onnx`: a model as one ONNX graph that ONNX Runtime scores from the raw columns.

The graph's inputs are the model's source columns by name, each of shape [N, 1]: numbers
as float (NaN: missing), categoricals as strings (a level the model never saw, or "", is
missing).  Inside the graph, as predict does it (docs/preprocessing.md): a number becomes
`(v - sub) * mul`, a missing one the imputed value; a categorical its one-hot units (ONNX-ML
LabelEncoder from the level to its unit, missing and unseen levels to the column's
missing-level unit, then OneHot); the units are concatenated in the model's input order;
then the network (MatMul + Add per layer, the activation, hidden outputs scaled by 1 - the
dropout ratio as when scoring); then the output:
- classification: `probabilities` [N, classes] (corrected to the training priors after
  balance_classes) and `label` [N] (strings; two classes at the model's threshold);
- regression: `predict` [N, 1] in the response's units (exp for the log-link
  distributions);
- autoencoder: `reconstruction_error` [N, 1] (the mean squared error over the units, as
  `predict --anomaly`) and `reconstruction` [N, units] in the inputs' units.
Built with the `onnx` package (passed in: an optional dependency) and checked by
onnx.checker.  Encodings other than one-hot, and offsets, are refused (UserError).
"""
import numpy as np

from h2odl_mpi.errors import UserError

OPSET = 17
ML_OPSET = 3
_LOG_LINK = ("poisson", "gamma", "tweedie")


class _Graph:
    """Nodes and constants of the graph being built, named uniquely."""

    def __init__(self, onnx):
        self.onnx, self.h = onnx, onnx.helper
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, value, dtype=np.float32, base="c"):
        name = self.name(base)
        self.inits.append(self.onnx.numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type, inputs, domain="", base=None, **attrs):
        out = self.name(base or op_type.lower())
        self.nodes.append(self.h.make_node(op_type, list(inputs), [out], domain=domain, **attrs))
        return out


def onnx_bytes(onnx, network, model, info, threshold, path="model.onnx"):
    """The serialized ONNX model of a loaded model (checked by onnx.checker)."""
    _check(info, path)
    g = _Graph(onnx)
    inputs, units = [], []
    for col in sorted(info.columns, key=lambda c: c.input):
        kind = onnx.TensorProto.STRING if col.categorical else onnx.TensorProto.FLOAT
        inputs.append(onnx.helper.make_tensor_value_info(col.name, kind, [None, 1]))
        units.append(_onehot(g, col) if col.categorical else _numeric(g, col))
    x = g.op("Concat", units, axis=1, base="inputs") if len(units) > 1 else units[0]
    out = _network(g, network, model, x)
    outputs = _outputs(g, onnx, network, info, x, out, threshold)
    graph = onnx.helper.make_graph(g.nodes, "h2odl_mpi_deep_learning", inputs, outputs, g.inits)
    proto = onnx.helper.make_model(graph, producer_name="h2odl_mpi",
                                   opset_imports=[onnx.helper.make_opsetid("", OPSET),
                                                  onnx.helper.make_opsetid("ai.onnx.ml", ML_OPSET)])
    proto.ir_version = min(proto.ir_version, 9)
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def _check(info, path):
    where = f"{path}: not written: "
    for col in info.columns:
        if col.kind not in ("numeric", "onehot"):
            raise UserError(f"{where}column {col.name!r} has input kind {col.kind!r} (categorical_encoding or "
                            "max_categorical_features), which the ONNX export does not implement: one-hot only")
    if info.offset_column:
        raise UserError(f"{where}offset_column={info.offset_column!r} is not implemented in the ONNX export")


def _numeric(g, col):
    """(v - sub) * mul, a missing value the imputed one: [N, 1] float."""
    v = col.name
    t = g.op("Mul", [g.op("Sub", [v, g.const([[col.sub]])]), g.const([[col.mul]])])
    return g.op("Where", [g.op("IsNaN", [v]), g.const([[col.na_fill]]), t], base=f"x_{col.name}")


def _onehot(g, col):
    """The column's one-hot units [N, width]: the level's unit, missing and unseen the last."""
    n = len(col.levels)
    flat = g.op("Reshape", [col.name, g.const([-1], np.int64)])
    index = g.op("LabelEncoder", [flat], domain="ai.onnx.ml", keys_strings=list(col.levels),
                 values_int64s=list(range(n)), default_int64=n)
    hot = g.op("OneHot", [index, g.const(n + 1, np.int64), g.const([0.0, 1.0])], axis=-1)
    if col.first_level:
        hot = g.op("Slice", [hot, g.const([col.first_level], np.int64), g.const([n + 1], np.int64),
                             g.const([1], np.int64)])
    return hot


def _network(g, network, model, x):
    """The layers: the last one's output before its activation, or after it for an
    autoencoder (whose output layer has the hidden activation, no dropout)."""
    cfg = network.config
    ratios = list(cfg.hidden_dropout_ratios or [])
    for layer in range(network.n_layers):
        w = network.view(model, "weights", layer).astype(np.float32)
        b = network.view(model, "biases", layer).astype(np.float32)
        z = g.op("Add", [g.op("MatMul", [x, g.const(w.T)]), g.const(b)])
        last = layer == network.n_layers - 1
        if last and cfg.output != "autoencoder":
            return z
        x = _activation(g, cfg.activation, z, w.shape[0])
        if not last and layer < len(ratios) and ratios[layer] > 0:
            x = g.op("Mul", [x, g.const(1.0 - ratios[layer])])
    return x


def _activation(g, name, z, rows):
    if name == "Tanh":
        return g.op("Tanh", [z])
    if name == "Rectifier":
        return g.op("Relu", [z])
    if name == "ExpRectifier":
        return g.op("Elu", [z], alpha=1.0)
    if name == "Maxout":   # unit u's channels are rows 2u and 2u + 1
        pairs = g.op("Reshape", [z, g.const([-1, rows // 2, 2], np.int64)])
        return g.op("ReduceMax", [pairs], axes=[2], keepdims=0)
    raise UserError(f"activation {name} is not implemented in the ONNX export")


def _outputs(g, onnx, network, info, x, out, threshold):
    """The graph's outputs (and the nodes that make them)."""
    f, s = onnx.TensorProto.FLOAT, onnx.TensorProto.STRING
    mk = onnx.helper.make_tensor_value_info
    if info.autoencoder:
        sub, mul = np.zeros(info.n_inputs), np.ones(info.n_inputs)
        for col in info.columns:
            if col.kind == "numeric":
                sub[col.input], mul[col.input] = col.sub, col.mul
        d = g.op("Sub", [out, x])
        g.nodes.append(g.h.make_node("ReduceMean", [g.op("Mul", [d, d])], ["reconstruction_error"], axes=[1],
                                     keepdims=1))
        g.nodes.append(g.h.make_node("Add", [g.op("Div", [out, g.const(mul)]), g.const(sub)], ["reconstruction"]))
        return [mk("reconstruction_error", f, [None, 1]), mk("reconstruction", f, [None, info.n_inputs])]
    if not info.classification:
        y = g.op("Exp", [out]) if network.config.loss in _LOG_LINK else out
        g.nodes.append(g.h.make_node("Add", [g.op("Mul", [y, g.const([[info.response_sd]])]),
                                             g.const([[info.response_mean]])], ["predict"]))
        return [mk("predict", f, [None, 1])]
    p = g.op("Softmax", [out], axis=1)
    if info.prior_class_dist is not None and info.model_class_dist is not None:   # balance_classes
        ratio = np.where(info.model_class_dist > 0, info.prior_class_dist / np.where(
            info.model_class_dist > 0, info.model_class_dist, 1.0), 0.0)
        q = g.op("Mul", [p, g.const(ratio)])
        p = g.op("Div", [q, g.op("ReduceSum", [q, g.const([1], np.int64)], keepdims=1)])
    g.nodes.append(g.h.make_node("Identity", [p], ["probabilities"]))
    if info.n_classes == 2:   # class 1 when p1 >= threshold
        p1 = g.op("Gather", [p, g.const(1, np.int64)], axis=1)
        index = g.op("Cast", [g.op("GreaterOrEqual", [p1, g.const(threshold)])], to=onnx.TensorProto.INT64)
    else:
        index = g.op("ArgMax", [p], axis=1, keepdims=0)
    labels = g.const(np.array(list(info.domain), dtype=object), dtype=object)
    g.nodes.append(g.h.make_node("Gather", [labels, index], ["label"], axis=0))
    return [mk("probabilities", f, [None, info.n_classes]), mk("label", s, [None])]
