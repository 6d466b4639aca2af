"""The h2o-py / scikit-learn estimators (h2odl_mpi/api/estimator.py): scikit-learn's own
estimator checks, the data kinds, parameters, files, the model's tables."""
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from h2odl_mpi import (AutoEncoderEstimator, DeepLearningClassifier, DeepLearningEstimator,
                       DeepLearningRegressor, load_model)
from h2odl_mpi.model import importance, model_io, model_summary
from h2odl_mpi.errors import UserError
from h2odl_mpi.api.estimator import EstimatorError
from h2odl_mpi.data.frame import Frame

# small and reproducible: the tests' settings, not H2O's defaults
FAST = dict(hidden=(16,), epochs=20, seed=1, reproducible=True, quiet_mode=True)


# Every check scikit-learn's check_estimator runs for each estimator (legacy checks included):
# 54 for the classifier, 51 for the regressor, 41 for DeepLearningEstimator (H2O decides the
# kind: scikit-learn's generic checks) and 46 for the autoencoder (a transformer).  The one
# check scikit-learn itself skips is check_array_api_input (SCIPY_ARRAY_API unset; the
# kernel takes numpy arrays).  NaN inputs are allowed (the allow_nan tag: H2O imputes
# means), so check_estimators_nan_inf is not among them.
@parametrize_with_checks([DeepLearningClassifier(**FAST), DeepLearningRegressor(**FAST),
                          DeepLearningEstimator(**FAST), AutoEncoderEstimator(**FAST)])
def test_sklearn_check(estimator, check):
    check(estimator)


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)
    return X, y


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_path_frame_numpy_pandas_train_the_same_model(tmp_path):
    X, y = _data()
    names = [f"C{j + 1}" for j in range(X.shape[1])]
    path = tmp_path / "d.csv"
    with open(path, "w") as f:
        f.write(",".join(names + ["response"]) + "\n")
        for row, label in zip(X, y):
            f.write(",".join(repr(float(v)) for v in row) + f",{label}\n")
    df = pd.DataFrame(X, columns=names)
    models = {
        "path": DeepLearningEstimator(**FAST).train(y="response", training_frame=str(path)),
        "Frame": DeepLearningEstimator(**FAST).train(y="response", training_frame=Frame.read(str(path))),
        "numpy": DeepLearningEstimator(**FAST).fit(X, y),
        "pandas": DeepLearningEstimator(**FAST).fit(df, y),
    }
    ref = models["path"]
    assert ref.info_.classification and list(ref.classes_) == [0, 1]
    for kind, m in models.items():
        assert np.array_equal(m.model_, ref.model_), kind
        np.testing.assert_array_equal(m.predict_proba(X), ref.predict_proba(X))
    assert ref.predict(str(path)).columns.tolist() == ["predict", "p0", "p1"]  # h2o-py's frame


def test_get_params_set_params_round_trip():
    m = DeepLearningClassifier(hidden=[32, 16], activation="tanh_with_dropout", epochs=3)
    p = m.get_params()
    assert p["hidden"] == [32, 16] and p["activation"] == "tanh_with_dropout" and p["rho"] == 0.99
    assert p["training_frame"] is None and p["response_column"] is None and p["model_id"] is None
    assert DeepLearningClassifier().get_params()["hidden"] == (200, 200)  # H2O's default
    assert clone(m).get_params() == p
    m.set_params(hidden=(8,), l1=1e-5, input_dropout_ratio=0.2)
    p2 = m.get_params()
    assert p2["hidden"] == (8,) and p2["l1"] == 1e-5 and p2["input_dropout_ratio"] == 0.2
    assert DeepLearningClassifier(**p2).get_params() == p2
    with pytest.raises(ValueError):
        m.set_params(hiden=(8,))
    with pytest.raises(EstimatorError, match="did you mean hidden"):
        DeepLearningClassifier(hiden=(8,))


def test_a_bad_parameter_is_one_user_error_naming_it():
    X, y = _data()
    with pytest.raises(EstimatorError, match="activation") as e:
        DeepLearningClassifier(**{**FAST, "activation": "Sigmoid"}).fit(X, y)
    assert isinstance(e.value, UserError) and isinstance(e.value, ValueError)
    assert "\n" not in str(e.value)
    with pytest.raises(EstimatorError, match="epochs"):
        DeepLearningRegressor(**{**FAST, "epochs": -1}).fit(X, y)


def test_save_load_and_pickle_predict_the_same(tmp_path):
    X, y = _data()
    labels = np.array(["no", "yes"])[y]
    m = DeepLearningClassifier(**FAST).fit(X, labels)
    path = m.save(tmp_path / "m.h5")
    for back in (DeepLearningClassifier.load(path), load_model(path), DeepLearningEstimator.load(path),
                 pickle.loads(pickle.dumps(m))):
        assert np.array_equal(back.model_, m.model_)
        np.testing.assert_array_equal(back.predict_proba(X), m.predict_proba(X))
        np.testing.assert_array_equal(back.predict(X), m.predict(X))
        assert list(back.classes_) == ["no", "yes"] and back.get_params()["hidden"] == (16,)
    network, model, _info, params, attrs = model_io.load_model(str(path))  # the one model file
    assert np.array_equal(model, m.model_) and params["hidden"] == [16]
    assert attrs["model_summary"] == m.model_summary_rows()
    with pytest.raises(EstimatorError, match="cannot be loaded as a DeepLearningRegressor"):
        DeepLearningRegressor.load(path)
    with pytest.raises(EstimatorError, match="is a directory"):
        m.save(tmp_path)


def test_autoencoder_save_load(tmp_path, data_dir):
    ecg = str(data_dir / "ecg" / "ecg_discord_train.csv")
    m = AutoEncoderEstimator(**{**FAST, "hidden": (5,)}).train(training_frame=ecg)
    back = load_model(m.save(tmp_path / "ae.h5"))
    assert isinstance(back, AutoEncoderEstimator)
    pd.testing.assert_frame_equal(back.anomaly(ecg), m.anomaly(ecg))
    assert m.anomaly(ecg).columns.tolist() == ["Reconstruction.MSE"]
    assert m.deepfeatures(ecg, 0).shape == (20, 5)


def _numpy_summary(network, model, samples, adaptive):
    """The layer table's numbers computed here from the model's arrays."""
    rows, c = [], network.config
    for layer in range(network.n_layers):
        w = network.view(model, "weights", layer).astype(np.float64)
        b = network.view(model, "biases", layer).astype(np.float64)
        if adaptive:
            eps = float(np.float32(c.epsilon))
            rate = np.sqrt(network.view(model, "ada_dx2_weights", layer).astype(np.float64) + eps) / \
                np.sqrt(network.view(model, "ada_g2_weights", layer).astype(np.float64) + eps)
            mean_rate, rate_rms = rate.mean(), rate.std()
        else:
            mean_rate, rate_rms = c.rate * c.rate_decay ** layer / (1 + c.rate_annealing * samples), 0.0
        rows.append([mean_rate, rate_rms, w.mean(), w.std(), b.mean(), b.std()])
    return np.array(rows)


@pytest.mark.parametrize("adaptive", [True, False])
def test_summary_is_h2o_layer_table_of_the_weights(adaptive, monkeypatch):
    monkeypatch.setattr(model_summary, "CHUNK", 7)  # the statistics go piece by piece
    X, y = _data()
    extra = {} if adaptive else dict(adaptive_rate=False, rate=0.01, rate_annealing=1e-3, rate_decay=0.5,
                                     momentum_start=0.5, momentum_ramp=1000, momentum_stable=0.9)
    m = DeepLearningClassifier(**{**FAST, "hidden": (6, 5), "activation": "RectifierWithDropout",
                                  "input_dropout_ratio": 0.1, "l1": 1e-4, **extra}).fit(X, y)
    s = m.summary()
    assert s.columns.tolist() == ["Layer", "Units", "Type", "Dropout", "L1", "L2", "Mean Rate", "Rate RMS",
                                  "Momentum", "Mean Weight", "Weight RMS", "Mean Bias", "Bias RMS"]
    assert s["Layer"].tolist() == [1, 2, 3, 4] and s["Units"].tolist() == [4, 6, 5, 2]
    assert s["Type"].tolist() == ["Input", "RectifierDropout", "RectifierDropout", "Softmax"]
    assert s["Dropout"].tolist()[:3] == [10.0, 50.0, 50.0] and pd.isna(s["Dropout"][3])
    assert s["L1"].tolist()[1:] == [1e-4] * 3 and pd.isna(s["L1"][0])
    samples = m.summary_["training_samples"]
    assert samples == 20 * len(X)
    expect = _numpy_summary(m.network_, m.model_, samples, adaptive)
    got = s[["Mean Rate", "Rate RMS", "Mean Weight", "Weight RMS", "Mean Bias", "Bias RMS"]].to_numpy()[1:]
    np.testing.assert_allclose(got.astype(np.float64), expect, rtol=1e-9, atol=1e-12)
    momentum = 0.0 if adaptive else 0.9  # ramped to momentum_stable after 1000 samples
    assert s["Momentum"].tolist()[1:] == [momentum] * 3


def test_varimp_is_importance_py(data_dir):
    m = DeepLearningEstimator(**FAST).train(
        y="medianHouseValue", training_frame=str(data_dir / "cal_housing" / "cal_housing.csv"))
    expect = importance.table(m.info_.input_names, importance.gedeon(m.network_, m.model_))
    got = m.varimp()
    assert got == [(r["variable"], r["relative_importance"], r["scaled_importance"], r["percentage"])
                   for r in expect]
    df = m.varimp(use_pandas=True)
    assert df.columns.tolist() == ["variable", "relative_importance", "scaled_importance", "percentage"]
    assert df["variable"].tolist() == [r["variable"] for r in expect] and len(df) == 8
    assert not m.info_.classification and m.r2() == m.summary_["metrics"]["training"]["r2"]


def test_model_performance_and_scoring_history(data_dir):
    air = str(data_dir / "airlines" / "allyears2k_headers.csv.gz")
    m = DeepLearningEstimator(**{**FAST, "epochs": 2}).train(
        x=["Origin", "Dest", "Distance", "DayOfWeek"], y="IsDepDelayed", training_frame=air, validation_frame=air)
    perf = m.model_performance(air)
    assert 0.5 < perf.auc() < 1 and perf.logloss() > 0
    assert m.model_performance(valid=True).logloss() == m.logloss(valid=True)
    assert m.model_performance(train=True).auc() == m.auc()
    h = m.scoring_history()
    assert len(h) == len(m.scoring_history_) >= 1 and {"epochs", "training_logloss", "validation_auc"} <= set(h)
    pred = m.predict(air)
    assert pred.columns.tolist() == ["predict", "pNO", "pYES"] and len(pred) == 43978
    with pytest.raises(EstimatorError, match="anomaly"):
        m.anomaly(air)


def test_pandas_text_columns_are_categorical_and_arrays_validate():
    X, y = _data(200)
    df = pd.DataFrame(X[:, :3], columns=["a", "b", "c"]).assign(kind=np.where(X[:, 3] > 0, "hi", "lo"))
    m = DeepLearningRegressor(**FAST).fit(df[:150], X[:150, 0] * 2, X_valid=df[150:], y_valid=X[150:, 0] * 2)
    assert m.info_.input_names == ["a", "b", "c", "kind.hi", "kind.lo", "kind.missing(NA)"]
    assert list(m.feature_names_in_) == ["a", "b", "c", "kind"] and m.n_features_in_ == 4
    assert m.summary_["metrics"]["validation"]["nobs"] == 50 and m.r2(valid=True) > 0.5
    assert m.predict(df).shape == (200,) and not hasattr(m, "classes_")
    c = DeepLearningClassifier(**FAST).fit(X, y.astype(float))  # numbers as classes (multinomial)
    assert c.params_["distribution"] == "multinomial" and list(c.classes_) == [0.0, 1.0]


def test_mini_batch_size_reaches_the_kernel():
    X, y = _data()
    one, four = (DeepLearningClassifier(**dict(FAST, epochs=2, mini_batch_size=b)).fit(X, y) for b in (1, 4))
    assert four.get_params()["mini_batch_size"] == 4 and four.params_["mini_batch_size"] == 4
    assert four.network_.config.mini_batch_size == 4 and one.network_.config.mini_batch_size == 1
    assert not np.array_equal(one.model_, four.model_)
