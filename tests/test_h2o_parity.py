"""Results that follow H2O-3 (h2o-algos hex/deeplearning, h2o-core hex), each against the value
H2O's own formula gives:

- a fresh model's biases (DeepLearningModelInfo.initializeMembers);
- the output layer's error: -2 x the distribution's negHalfGradient (Neurons.Linear,
  Neurons.autoEncoderGradient, hex/DistributionFactory), seen through one manual-rate step;
- overwrite_with_best_model keeps the lowest Model.loss() (the stopping metric);
- scoring is due by DeepLearningModel.doScoring's duty-cycle rule;
- H2O's refusals: an offset for classification, class_sampling_factors without
  balance_classes, an autoencoder stopped by anything but MSE;
- every h2o-py spelling of a named choice (water.util.EnumUtils.valueOf's loose match).
"""
import math

import numpy as np
import pytest

from h2odl_mpi import cli, config, params as P
from h2odl_mpi.training import scoring, trainer
from h2odl_mpi.errors import UserError
from h2odl_mpi.kernel import NetConfig, Network, Rows
from h2odl_mpi.training.model_setup import net_config, starting_model
from h2odl_mpi.params import validate
from h2odl_mpi.training.scoring import BestModel, scoring_due


# ---- 1. initial biases -----------------------------------------------------------------------

def _fresh_biases(activation, hidden=(7, 5, 4), autoencoder=False, n_in=6, n_out=3):
    p = validate({"activation": activation, "hidden": list(hidden), "autoencoder": autoencoder})
    out = n_in if autoencoder else n_out
    cfg = NetConfig(units=[n_in, *hidden, out], activation=p["activation"].replace("WithDropout", ""),
                    output="autoencoder" if autoencoder else "softmax",
                    hidden_dropout_ratios=p["hidden_dropout_ratios"])
    net = Network(cfg)
    model = starting_model(p, None, net, None, 17, None)
    return [net.view(model, "biases", l).copy() for l in range(net.n_layers)], net


@pytest.mark.parametrize("activation", ["Rectifier", "RectifierWithDropout", "Maxout", "MaxoutWithDropout"])
def test_rectifier_and_maxout_hidden_biases_start_at_half_then_one(activation):
    """H2O: biases[i] = i == 0 ? 0.5 : 1 for every hidden layer i (each Maxout channel), and
    the output layer's biases 0."""
    biases, net = _fresh_biases(activation)
    channels = 2 if activation.startswith("Maxout") else 1
    want = [np.full(7 * channels, 0.5), np.full(5 * channels, 1.0), np.full(4 * channels, 1.0), np.zeros(3)]
    for l, (got, w) in enumerate(zip(biases, want)):
        np.testing.assert_array_equal(got, w.astype(np.float32), err_msg=f"layer {l}")


@pytest.mark.parametrize("activation", ["Tanh", "TanhWithDropout", "ExpRectifier", "ExpRectifierWithDropout"])
def test_other_activations_start_every_bias_at_zero(activation):
    biases, _ = _fresh_biases(activation)
    for got in biases:
        assert not got.any()


def test_an_autoencoders_output_biases_start_at_zero():
    biases, _ = _fresh_biases("Rectifier", hidden=(4,), autoencoder=True)
    np.testing.assert_array_equal(biases[0], np.full(4, 0.5, np.float32))
    np.testing.assert_array_equal(biases[1], np.zeros(6, np.float32))


# ---- 2. the output layer's error: -2 x negHalfGradient ---------------------------------------

def _neg_half(loss, t, f, delta=0.6, alpha=0.3, power=1.4):
    """hex/DistributionFactory's negHalfGradient(y = t, f) of the distribution H2O uses for
    each loss (DeepLearningModel: Quadratic gaussian, Absolute laplace, Huber huber, Quantile
    quantile); f is the output in link space."""
    if loss == "Quadratic":
        return t - f
    if loss == "Absolute":
        return -0.5 if f > t else 0.5
    if loss == "Huber":
        return t - f if abs(t - f) <= delta else (-delta if f >= t else delta)
    if loss == "Quantile":
        return 0.5 * alpha if t > f else 0.5 * (alpha - 1)
    if loss == "poisson":
        return t - math.exp(f)
    if loss == "gamma":
        return t * math.exp(-f) - 1
    if loss == "tweedie":
        return t * math.exp(f * (1 - power)) - math.exp(f * (2 - power))
    if loss == "bernoulli":
        return t - 1 / (1 + math.exp(-f))
    raise ValueError(loss)


MANUAL = dict(adaptive_rate=False, rate=0.01, rate_annealing=0.0, rate_decay=1.0, momentum_start=0.0,
              momentum_stable=0.0, huber_delta=0.6, quantile_alpha=0.3, tweedie_power=1.4)


def _one_step(cfg, x, y):
    net = Network(cfg)
    before = net.new_model(seed=5)
    after = before.copy()
    stats = net.train(after, Rows.dense(x[None, :], None if y is None else np.array([y], np.float32)),
                      threads=1)
    assert stats.trained == 1
    return net, before, after


@pytest.mark.parametrize("loss,t", [("Quadratic", 1.3), ("Absolute", -0.8), ("Huber", 0.2), ("Huber", 3.0),
                                    ("Quantile", 1.5), ("Quantile", -1.5), ("poisson", 2.0),
                                    ("gamma", 1.7), ("tweedie", 0.9), ("bernoulli", 1.0)])
def test_one_manual_rate_regression_step_is_h2os(loss, t):
    """H2O's output error is g = -2 negHalfGradient(t, f) (Neurons.Linear) and the update
    W -= rate (g a + l1 sign(W) + l2 W), b -= rate g (Neurons.bprop / update_bias)."""
    l2 = 0.1
    cfg = NetConfig(units=[3, 4, 1], activation="Tanh", output="linear", loss=loss, l2=l2, **MANUAL)
    x = np.array([0.4, -1.1, 0.7], np.float32)
    net, before, after = _one_step(cfg, x, t)
    W0, b0, W1, b1 = (net.view(before, n, l).astype(np.float64) for l in (0, 1) for n in ("weights", "biases"))
    h = np.tanh(W0 @ x + b0)
    f = float((W1 @ h)[0] + b1[0])
    g = -2.0 * _neg_half(loss, t, f)
    rate = MANUAL["rate"]
    want_W1 = W1 - rate * (g * h + l2 * W1)
    want_b1 = b1 - rate * (g + l2 * b1)
    np.testing.assert_allclose(net.view(after, "weights", 1), want_W1, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(net.view(after, "biases", 1), want_b1, rtol=1e-5, atol=1e-7)


def test_one_manual_rate_autoencoder_step_has_h2os_factor_2():
    """Autoencoder (Tanh output): e = -2 negHalfGradient(x, y) = 2 (y - x) per output
    (Neurons.autoEncoderGradient), then g = e (1 - y^2), b -= rate g.  The factor 2 is H2O's;
    the output activation's derivative is kept on purpose (H2O-3's bpropOutputLayer takes
    g = e: README, differences)."""
    cfg = NetConfig(units=[3, 2, 3], activation="Tanh", output="autoencoder", **MANUAL)
    x = np.array([0.4, -0.3, 0.2], np.float32)
    net, before, after = _one_step(cfg, x, None)
    W0, b0, W1, b1 = (net.view(before, n, l).astype(np.float64) for l in (0, 1) for n in ("weights", "biases"))
    y = np.tanh(W1 @ np.tanh(W0 @ x + b0) + b1)
    g = 2.0 * (y - x) * (1 - y * y)
    np.testing.assert_allclose(net.view(after, "biases", 1), b1 - MANUAL["rate"] * g, rtol=1e-5, atol=1e-8)


def test_the_row_loss_is_the_one_the_error_is_the_gradient_of():
    """predict(what='loss') of a Quadratic output is (t - y)^2 (H2O's gaussian deviance), whose
    -d/dy is the error above."""
    cfg = NetConfig(units=[3, 4, 1], activation="Tanh", output="linear", loss="Quadratic")
    net = Network(cfg)
    model = net.new_model(seed=2)
    x = np.array([[0.4, -1.1, 0.7]], np.float32)
    y = float(net.predict(model, Rows.dense(x), threads=1)[0, 0])
    loss = float(net.predict(model, Rows.dense(x, np.array([1.5], np.float32)), "loss", threads=1)[0, 0])
    assert loss == pytest.approx((1.5 - y) ** 2, rel=1e-5)


# ---- 3. overwrite_with_best_model by the stopping metric -------------------------------------

A = {"classification_error": 0.10, "logloss": 0.50, "mse": 0.20, "rmse": 0.447, "auc": 0.80,
     "mean_residual_deviance": 3.0}
B = {"classification_error": 0.20, "logloss": 0.40, "mse": 0.10, "rmse": 0.316, "auc": 0.90,
     "mean_residual_deviance": 2.0}


def _kept(kind, metric, offers=(("a", A), ("b", B))):
    best = BestModel(kind, True, metric)
    for name, m in offers:
        best.offer(np.array([ord(name)], np.float32), m)
    return chr(int(best.model[0])), best


@pytest.mark.parametrize("kind,metric,want", [
    ("classification", "AUTO", "b"),                 # logloss, though the error is higher
    ("classification", "logloss", "b"),
    ("classification", "misclassification", "a"),
    ("classification", "AUC", "b"),                   # 1 - AUC
    ("classification", "RMSE", "b"),                  # Model.loss() has no RMSE: AUTO's logloss
    ("regression", "AUTO", "b"),                      # deviance
    ("autoencoder", "AUTO", "b"),                     # MSE
])
def test_the_kept_model_is_the_best_by_h2os_model_loss(kind, metric, want):
    got, best = _kept(kind, metric)
    assert got == want
    assert best.metric == scoring.best_model_metric(kind, metric)


def test_a_later_model_must_be_strictly_better_and_nan_never_wins():
    assert _kept("classification", "AUTO", (("a", A), ("b", dict(B, logloss=0.5))))[0] == "a"
    got, best = _kept("classification", "AUTO", (("a", A), ("b", dict(B, logloss=math.nan))))
    assert got == "a"
    assert best.beats(B) is False and best.beats(dict(B, logloss=0.6)) is True


def test_the_trainer_keeps_the_best_by_its_stopping_metric(tmp_path, monkeypatch):
    path = tmp_path / "d.csv"
    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    path.write_text("x,y\n" + "".join(f"{v:.4f},{'ab'[int(v + 0.3 * e > 0)]}\n"
                                      for v, e in zip(x, rng.normal(size=300))))
    made = []

    class Spy(BestModel):
        def __init__(self, *args):
            super().__init__(*args)
            made.append(self)
    monkeypatch.setattr(trainer, "BestModel", Spy)
    base = {"train": str(path), "response": "y", "hidden": [3], "epochs": 2, "seed": 1, "threads": 1,
            "quiet_mode": True, "variable_importances": False, "train_samples_per_iteration": 100,
            "score_interval": 0, "score_duty_cycle": 1.0, "classification_stop": -1.0}
    for metric, want in (("AUTO", "logloss"), ("misclassification", "misclassification")):
        run = trainer.train(validate(dict(base, stopping_metric=metric)), None)
        assert made[-1].metric == want
        key = "logloss" if want == "logloss" else "classification_error"
        assert made[-1].value == min(np.float32(h[f"training_{key}"]) for h in run.history)


# ---- 4. score_duty_cycle --------------------------------------------------------------------

@pytest.mark.parametrize("now,start,end,interval,duty,want", [
    (100.0, 90.0, 91.0, 5.0, 0.1, False),    # 1 s of scoring / 10 s since it began: not < 0.1
    (100.5, 90.0, 91.0, 5.0, 0.1, True),     # 1 / 10.5 < 0.1
    (94.0, 90.0, 90.01, 5.0, 0.1, False),    # within score_interval of the last start
    (95.0, 90.0, 90.01, 5.0, 0.1, False),    # exactly score_interval: H2O needs more
    (95.001, 90.0, 90.01, 5.0, 0.1, True),
    (200.0, 90.0, 90.01, 5.0, 0.0, False),   # duty cycle 0: only the first and the last
    (100.0, 99.0, 99.5, 0.0, 1.0, True),     # 0.5 / 1 < 1
])
def test_scoring_is_due_by_h2os_duty_cycle_rule(now, start, end, interval, duty, want):
    """DeepLearningModel.doScoring: since = now - last start; due when since > score_interval
    and (last end - last start) / since < score_duty_cycle."""
    assert scoring_due(now, start, end, interval, duty) is want


def test_the_rule_reads_the_last_scoring_not_the_total():
    """A long first scoring does not hold later cheap ones back (total scoring time / run
    time would), and a long last scoring holds the next one back however cheap the earlier
    ones were."""
    t0 = 0.0  # run start; scorings so far: [0, 30] (30 s) and [100, 100.1]
    assert scoring_due(now=110.0, last_start=100.0, last_end=100.1, score_interval=5, score_duty_cycle=0.1)
    assert 30.1 > 0.1 * (110.0 - t0)  # the total-time rule would have refused
    # cheap scorings before, then [100, 104]: 4 s of the 10 s since it began
    assert not scoring_due(now=110.0, last_start=100.0, last_end=104.0, score_interval=5, score_duty_cycle=0.1)


def test_the_trainer_decides_on_the_last_scorings_times(tmp_path, monkeypatch):
    path = tmp_path / "d.csv"
    rng = np.random.default_rng(1)
    path.write_text("x,y\n" + "".join(f"{v:.4f},{2 * v:.4f}\n" for v in rng.normal(size=400)))
    calls = []

    def spy(now, start, end, interval, duty):
        calls.append((now, start, end, interval, duty))
        return scoring_due(now, start, end, interval, duty)
    monkeypatch.setattr(trainer, "scoring_due", spy)
    trainer.train(validate({"train": str(path), "response": "y", "hidden": [3], "epochs": 3, "seed": 1,
                            "threads": 1, "quiet_mode": True, "variable_importances": False,
                            "train_samples_per_iteration": 50, "score_interval": 0.0,
                            "score_duty_cycle": 0.3, "regression_stop": -1.0, "stopping_rounds": 0}), None)
    assert calls
    for now, start, end, interval, duty in calls:
        assert start <= end <= now and (interval, duty) == (0.0, 0.3)
    assert calls[-1][1] > calls[0][1]  # scorings after the first one moved the start


# ---- 5. refusals ----------------------------------------------------------------------------

def _classification_csv(path, n=200):
    rng = np.random.default_rng(3)
    x, o = rng.normal(size=n), rng.normal(size=n)
    path.write_text("x,o,y\n" + "".join(f"{a:.4f},{b:.4f},{'ab'[int(a > 0)]}\n" for a, b in zip(x, o)))
    return str(path)


def test_an_offset_column_is_refused_for_classification(tmp_path):
    p = validate({"train": _classification_csv(tmp_path / "c.csv"), "response": "y", "offset_column": "o",
                  "hidden": [3], "epochs": 1, "threads": 1, "quiet_mode": True})
    with pytest.raises(UserError, match="^offset_column = o: an offset is only supported for regression"):
        trainer.train(p, None)


def test_class_sampling_factors_need_balance_classes():
    with pytest.raises(UserError, match="^class_sampling_factors requires balance_classes"):
        validate({"class_sampling_factors": [1.0, 2.0]})
    assert validate({"class_sampling_factors": [1.0, 2.0], "balance_classes": True})["class_sampling_factors"] \
        == [1.0, 2.0]


@pytest.mark.parametrize("metric", ["deviance", "RMSE", "MAE"])
def test_an_autoencoder_stops_by_mse_only(metric):
    class Info:
        autoencoder, classification, response, n_classes = True, False, None, 0
    with pytest.raises(UserError, match=f"^stopping_metric = {metric}: an autoencoder"):
        net_config(validate({"autoencoder": True, "stopping_metric": metric}), Info())


# ---- 6. h2o-py's spellings --------------------------------------------------------------------

# h2o-py's H2ODeepLearningEstimator enums (h2o-py/h2o/estimators/deeplearning.py) -> H2O-3's Java
# names; exp_rectifier(_with_dropout) is H2O-3's ExpRectifier, spelled as h2o-py spells the others
H2O_PY = {
    "activation": {"tanh": "Tanh", "tanh_with_dropout": "TanhWithDropout", "rectifier": "Rectifier",
                   "rectifier_with_dropout": "RectifierWithDropout", "maxout": "Maxout",
                   "maxout_with_dropout": "MaxoutWithDropout", "exp_rectifier": "ExpRectifier",
                   "exp_rectifier_with_dropout": "ExpRectifierWithDropout"},
    "initial_weight_distribution": {"uniform_adaptive": "UniformAdaptive", "uniform": "Uniform",
                                    "normal": "Normal"},
    "loss": {"automatic": "Automatic", "cross_entropy": "CrossEntropy", "quadratic": "Quadratic",
             "huber": "Huber", "absolute": "Absolute", "quantile": "Quantile"},
    "distribution": {"auto": "AUTO", "bernoulli": "bernoulli", "multinomial": "multinomial",
                     "gaussian": "gaussian", "poisson": "poisson", "gamma": "gamma", "tweedie": "tweedie",
                     "laplace": "laplace", "quantile": "quantile", "huber": "huber"},
    "stopping_metric": {"auto": "AUTO", "deviance": "deviance", "logloss": "logloss", "mse": "MSE",
                        "rmse": "RMSE", "mae": "MAE", "rmsle": "RMSLE", "auc": "AUC", "aucpr": "AUCPR",
                        "misclassification": "misclassification",
                        "mean_per_class_error": "mean_per_class_error"},
    "score_validation_sampling": {"uniform": "Uniform", "stratified": "Stratified"},
    "missing_values_handling": {"mean_imputation": "MeanImputation", "skip": "Skip"},
    "categorical_encoding": {"auto": "AUTO", "one_hot_internal": "OneHotInternal", "binary": "Binary",
                             "label_encoder": "LabelEncoder", "sort_by_response": "SortByResponse"},
}
CASES = [(name, py, java) for name, table in H2O_PY.items() for py, java in table.items()]


@pytest.mark.parametrize("name,py,java", CASES, ids=[f"{n}={p}" for n, p, _ in CASES])
def test_every_h2o_py_spelling_is_the_java_one(name, py, java):
    got = validate({name: py})
    assert got[name] == java
    assert got == validate({name: java})
    assert validate({name: py.upper()})[name] == java  # H2O matches case-insensitively


def test_h2o_py_spellings_work_from_the_command_line_and_a_config_file(tmp_path):
    given = {"activation": "rectifier_with_dropout", "missing_values_handling": "mean_imputation",
             "stopping_metric": "mse", "categorical_encoding": "one_hot_internal", "loss": "quadratic",
             "initial_weight_distribution": "uniform_adaptive", "distribution": "gaussian"}
    want = validate({"train": "d.csv", "response": "y",
                     **{k: H2O_PY[k][v] for k, v in given.items()}})
    argv = ["train", "--train", "d.csv", "--response", "y"] + [a for k, v in given.items() for a in (f"--{k}", v)]
    assert cli._train_params(cli.build_parser().parse_args(argv)) == want
    toml = tmp_path / "run.toml"
    toml.write_text('train = "d.csv"\nresponse = "y"\n' + "".join(f'{k} = "{v}"\n' for k, v in given.items()))
    assert validate(config.load(str(toml))) == want


@pytest.mark.parametrize("name,py,match", [
    ("categorical_encoding", "eigen", "categorical_encoding='Eigen' is not supported"),
    ("categorical_encoding", "one_hot_explicit", "categorical_encoding='OneHotExplicit' is not supported"),
    ("categorical_encoding", "enum_limited", "categorical_encoding='EnumLimited' is not supported"),
    ("stopping_metric", "lift_top_group", "stopping_metric = 'lift_top_group' is not one of"),
    ("activation", "sigmoid", "activation = 'sigmoid' is not one of"),
])
def test_h2o_py_spellings_of_unsupported_choices_are_refused_by_name(name, py, match):
    with pytest.raises(UserError, match=match):
        validate({name: py})


def test_the_spelling_table_covers_every_named_choice():
    for name, spec in P.SPEC.items():
        if isinstance(spec[2], tuple) and spec[2] and isinstance(spec[2][0], str):
            assert set(P.CHOICE_SPELLINGS[name].values()) >= set(spec[2])
