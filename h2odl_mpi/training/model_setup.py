"""The network of a run and its starting model: the kernel's NetConfig from the parameters
and the data description, the run's seed, and the first model buffer (fresh weights from the
seed, an autoencoder's layers with pretrained_autoencoder, or a checkpoint's model), the same
on every rank."""
import socket
import time

from h2odl_mpi.training.checkpoint import load_everywhere
from h2odl_mpi.collectives import bcast_array, bcast_obj, node_size
from h2odl_mpi.errors import UserError, agree
from h2odl_mpi.kernel import NetConfig, buffer_floats
from h2odl_mpi.params import LOSS_OF_DISTRIBUTION
from h2odl_mpi.sizes import memory_available, size_text
from h2odl_mpi.evaluation.stopping import METRICS, resolve_metric

# model buffers a rank holds while training: its own, the combining rule's copy, the best model
MODEL_COPIES = 3

# parameters passed to the kernel under the same name
_SAME_NAME = ("input_dropout_ratio", "adaptive_rate", "rho", "epsilon", "rate", "rate_annealing",
              "rate_decay", "momentum_start", "momentum_ramp", "momentum_stable",
              "nesterov_accelerated_gradient", "l1", "l2", "max_w2", "quantile_alpha", "tweedie_power",
              "fast_mode", "mini_batch_size")


def net_config(params, info, comm=None, replicas=0):
    """The kernel's NetConfig for validated params and a data description, refused (on every
    rank of `comm`) when its model buffers (MODEL_COPIES, and `replicas` more: the threads'
    own with thread_scheme replicas) cannot fit in memory.  Collective."""
    check_stopping_metric(params, info)
    check_offset(params, info)
    config = _config(params, info)
    check_size(params, config, comm, replicas)
    return config


def check_stopping_metric(params, info):
    """H2O's refusal of a classification metric for a regression or an autoencoder (and,
    here, of AUC / AUCPR with more than 2 classes, which are not computed then)."""
    given = params["stopping_metric"]
    name = resolve_metric(given, info.classification, info.autoencoder)
    if info.autoencoder and name != "MSE":  # H2O-3: DeepLearningParameters.validate
        raise UserError(f"stopping_metric = {given}: an autoencoder is scored by its reconstruction MSE, "
                        "use AUTO or MSE")
    if METRICS[name][3] and (info.autoencoder or not info.classification):
        what = "an autoencoder" if info.autoencoder else f"a regression (response {info.response!r} is numeric)"
        raise UserError(f"stopping_metric = {given} is for classification, this is {what}: use deviance, "
                        "MSE, RMSE, MAE or RMSLE")
    if name in ("AUC", "AUCPR") and info.classification and info.n_classes != 2:
        raise UserError(f"stopping_metric = {given} needs 2 classes, response {info.response!r} has "
                        f"{info.n_classes}: use logloss, misclassification or mean_per_class_error")


def check_offset(params, info):
    """H2O-3's refusal of an offset column for classification (DeepLearningParameters.validate:
    the offset is in the link space of a regression)."""
    if params.get("offset_column") is not None and info.classification:
        raise UserError(f"offset_column = {params['offset_column']}: an offset is only supported for "
                        f"regression, and response {info.response!r} makes this a classification")


def check_size(params, config, comm, replicas=0):
    """Refuse a network whose model buffers (weights, biases, optimizer state; MODEL_COPIES
    of them a rank, and `replicas` more: one a thread with thread_scheme replicas) do not fit
    in the memory available to the ranks of one node: counted from the units before
    anything is allocated; the same error on every rank."""
    local = node_size(comm)  # (collective: this node's ranks share its memory)
    error = None
    try:
        n_params, n_total = buffer_floats(config)
        copies = MODEL_COPIES + replicas
        need, avail = 4 * n_total * copies * local, memory_available()
        if avail is not None and need > avail:
            ranks = f" for each of {local} ranks on this node" if local > 1 else ""
            reps = f", {replicas} of them the threads' replicas" if replicas else ""
            error = UserError(
                f"hidden {params['hidden']}: the network {list(config.units)} (inputs, hidden, outputs) has "
                f"{n_params:,} weights and biases; with the optimizer state and {copies} copies while "
                f"training{reps} it needs {size_text(need // local)}{ranks}, more than the {size_text(avail)} "
                f"of memory available on {socket.gethostname()}")
    except ValueError as e:
        error = UserError(f"hidden {params['hidden']}: {e}")
    agree(comm, error, own_first=True)


def _config(params, info):
    units = [info.n_inputs] + list(params["hidden"])
    dist, loss = params["distribution"], params["loss"]
    if info.autoencoder:
        output, kloss = "autoencoder", "Quadratic"
        units.append(units[0])
    elif info.classification:
        if loss not in ("Automatic", "CrossEntropy"):
            raise UserError(f"loss {loss} with a categorical response is not supported: use CrossEntropy")
        output, kloss = "softmax", "Quadratic"
        units.append(info.n_classes)
    else:
        if loss == "CrossEntropy":
            raise UserError("loss CrossEntropy needs a categorical response")
        output = "linear"
        units.append(1)
        kloss = LOSS_OF_DISTRIBUTION.get(dist, "Quadratic" if loss == "Automatic" else loss)
    return NetConfig(units=units, activation=params["activation"].replace("WithDropout", ""), output=output,
                     loss=kloss, hidden_dropout_ratios=list(params["hidden_dropout_ratios"]),
                     **{k: params[k] for k in _SAME_NAME})


def run_seed(params, comm, restored):
    """The seed of the run: the checkpoint's, else the parameter, else (-1) from the clock;
    rank 0's on every rank."""
    if restored:
        return int(restored["state"]["seed"])
    seed = params["seed"]
    if seed == -1:
        seed = int(time.time() * 1e6) & 0x7FFFFFFF
    return int(bcast_obj(comm, seed))


def starting_model(params, comm, network, info, seed, restored):
    """The model buffer training starts from, identical on every rank."""
    if restored:
        if params.get("initial_weights") or params.get("initial_biases"):
            raise UserError("initial_weights and initial_biases start a new model: not with a checkpoint")
        model = restored["model"]
        if model.size != network.n_total:
            raise UserError(f"{restored['path']}: model buffer has {model.size} values, the network "
                            f"needs {network.n_total}")
        if network.config.loss == "Huber":  # where the Huber delta had got to
            network.set_huber_delta(restored["network"].config.huber_delta)
        return model  # (read on every rank already)
    model = network.new_model(seed, params["initial_weight_distribution"], params["initial_weight_scale"])
    if params.get("pretrained_autoencoder"):
        copy_pretrained(params, comm, network, model, info)
    copy_initial(params, network, model)
    return bcast_array(comm, model)


def copy_initial(params, network, model):
    """initial_weights / initial_biases (the Python API's float arrays, one per layer, rows
    the next layer's units): copied into the fresh model; then described by their shapes in
    the parameters (what the model file keeps)."""
    import numpy as np
    for name, what in (("initial_weights", "weights"), ("initial_biases", "biases")):
        values = params.get(name)
        if not values:
            continue
        if params.get("pretrained_autoencoder"):
            raise UserError(f"{name} and pretrained_autoencoder both set the starting weights: give one")
        if len(values) != network.n_layers:
            raise UserError(f"{name}: {len(values)} given, the network has {network.n_layers} layers of {what} "
                            f"(one per hidden layer and the output)")
        for layer, value in enumerate(values):
            target = network.view(model, what, layer)
            value = np.asarray(value, dtype=np.float64)
            if value.size != target.size or value.shape[0] != target.shape[0]:
                raise UserError(f"{name}[{layer}]: shape {value.shape[0]} x {value.shape[1]}, the network's "
                                f"{what} there are {target.shape[0]} x {target.size // max(target.shape[0], 1)}")
            target[...] = value.reshape(target.shape)
        params[name] = [f"{v.shape[0]}x{v.shape[1]}" for v in values]


def copy_pretrained(params, comm, network, model, info):
    """pretrained_autoencoder: copy the input and hidden layers' weights and biases of an
    autoencoder model file into `model` (as H2O does; the output layer keeps its fresh
    weights).  The inputs and hidden layers must match."""
    path = params["pretrained_autoencoder"]
    ae_net, ae_model, ae_info, ae_params, _ = load_everywhere(path, comm)
    problems = _pretrained_mismatch(params, info, ae_info, ae_params)
    if problems:
        raise UserError(f"pretrained_autoencoder {path}: cannot initialise this model: " + "; ".join(problems))
    for layer in range(len(params["hidden"])):
        for name in ("weights", "biases"):
            network.view(model, name, layer)[...] = ae_net.view(ae_model, name, layer)


def _pretrained_mismatch(params, info, ae_info, ae_params):
    problems = []
    if not ae_info.autoencoder:
        problems.append("it is not an autoencoder")
    if list(ae_params.get("hidden", [])) != list(params["hidden"]):
        problems.append(f"hidden: autoencoder {ae_params.get('hidden')}, now {params['hidden']}")
    if ae_params.get("activation") != params["activation"]:
        problems.append(f"activation: autoencoder {ae_params.get('activation')}, now {params['activation']}")
    if list(ae_info.input_names) != list(info.input_names):
        a, b = set(ae_info.input_names), set(info.input_names)
        problems.append(f"inputs: {len(ae_info.input_names)} in the autoencoder, {len(info.input_names)} now"
                        + (f"; only in the autoencoder: {sorted(a - b)[:5]}" if a - b else "")
                        + (f"; only now: {sorted(b - a)[:5]}" if b - a else ""))
    return problems


# H2O-3's refusal of a checkpoint continued on data with other categories (DeepLearning's
# checkpoint restart, "Categorical factor levels ... must be the same ...")
CHECKPOINT_LEVELS = "Categorical factor levels of the training data must be the same as for the checkpointed model"


def check_checkpoint_levels(info, frame):
    """UserError, H2O-3's message, when the training data of a continued model hold a
    response class or a predictor level the checkpointed model does not know (its rows
    would otherwise be dropped or scored as an unseen level).  Collective over the frame."""
    import numpy as np
    from h2odl_mpi.collectives import allgather_values
    from h2odl_mpi.data.response import number_label
    wanted = [(c.name, c.levels) for c in info.columns if c.categorical]
    if info.classification and info.response:
        wanted.append((info.response, info.domain))
    new = []
    for name, levels in wanted:
        if name not in frame.names:
            continue
        values = frame.decode(name)
        present = np.unique(allgather_values(frame.data_comm, np.unique(values[~np.isnan(values)])))
        domain = frame.domain(name)
        labels = [domain[int(v)] for v in present] if domain is not None else [number_label(v) for v in present]
        known = set(map(str, levels))
        unseen = [label for label in labels if label not in known]
        if unseen:
            new.append(f"{name!r}: {', '.join(map(repr, unseen[:5]))}{' ...' if len(unseen) > 5 else ''}")
    if new:
        raise UserError(f"{CHECKPOINT_LEVELS} (levels the checkpointed model has not seen: {'; '.join(new)})")
