"""h2o-py's module functions (h2o.upload_file, create_frame, get_model, ls, remove, save_model /
load_model, h2o.grid) and the model object's h2o-py side (model_id as a key that checkpoint=
and pretrained_autoencoder= resolve, predict / deepfeatures / anomaly as H2OFrames, params'
effective values, weights / biases, _model_json, H2OResponseError for a refused build)."""
import numpy as np
import pytest

from h2odl_mpi import AutoEncoderEstimator, DeepLearningEstimator, h2o
from h2odl_mpi.errors import EstimatorError, H2OResponseError, H2OValueError

FAST = dict(hidden=[6], epochs=2, seed=3, reproducible=True, quiet_mode=True)


def rows(n=240, classes=("no", "yes")):
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        a, b = rng.normal(size=2)
        k = int(a + b > 0) if len(classes) == 2 else int(np.digitize(a + b, [-0.5, 0.5]))
        out.append([float(a), float(b), ["u", "v", "w"][i % 3], classes[k]])
    return out


@pytest.fixture
def frame():
    return h2o.H2OFrame(rows(), column_names=["a", "b", "c", "y"])


def test_create_frame_as_h2o_py_describes_it():
    f = h2o.create_frame(rows=3000, cols=10, seed=5, seed_for_column_types=7, has_response=True,
                         missing_fraction=0.1, real_range=10, integer_range=4, factors=6)
    kinds = list(f.types.values())
    # h2o-py's split of 10 columns: real 0.5, categorical 0.2, integer 0.2, binary 0.1
    assert f.shape == (3000, 11) and f.names[0] == "response" and f.types["response"] == "enum"
    assert kinds[1:].count("enum") == 2 and f["response"].nlevels() == [2]
    df = f.as_data_frame()
    values = df.drop(columns="response")
    numeric = values.select_dtypes("number")
    assert numeric.abs().max().max() <= 10 and 0.07 < values.isna().mean().mean() < 0.13
    assert df["response"].isna().sum() == 0                       # the response has no NA
    integral = [c for c in numeric if np.all(numeric[c].dropna() == np.round(numeric[c].dropna()))]
    assert len(integral) == 3 and all(numeric[c].abs().max() <= 4 for c in integral[:2] + integral[2:])
    again = h2o.create_frame(rows=3000, cols=10, seed=5, seed_for_column_types=7, has_response=True,
                             missing_fraction=0.1, real_range=10, integer_range=4, factors=6)
    assert again.as_data_frame().equals(df)
    with pytest.raises(H2OValueError, match="time and string columns are not supported"):
        h2o.create_frame(rows=10, cols=4, string_fraction=0.5)


def test_model_key_get_model_ls_remove_and_files(frame, tmp_path):
    m = DeepLearningEstimator(**FAST).train(y="y", training_frame=frame)
    assert m.model_id.startswith("DeepLearning_model_python_") and h2o.get_model(m.model_id) is m
    assert m.model_id in h2o.ls()["key"].tolist()
    path = h2o.save_model(m, path=str(tmp_path))
    back = h2o.load_model(path)
    assert back.model_id == m.model_id and np.array_equal(back.model_, m.model_)
    h2o.remove(m.model_id)
    assert m.model_id not in h2o.ls()["key"].tolist()
    with pytest.raises(EstimatorError, match="get_model: no model"):
        h2o.get_model(m.model_id)
    with pytest.raises(EstimatorError, match="checkpoint: no model 'DeepLearning_model_nope'"):
        DeepLearningEstimator(**FAST, checkpoint="DeepLearning_model_nope").train(y="y", training_frame=frame)


def test_checkpoint_and_pretrained_autoencoder_by_key(frame):
    m = DeepLearningEstimator(**FAST).train(y="y", training_frame=frame)
    more = DeepLearningEstimator(**{**FAST, "epochs": 4}, checkpoint=m.model_id).train(y="y", training_frame=frame)
    assert more.summary_["continued_from"] == m.model_id and more.params["checkpoint"]["actual"] == m.model_id
    assert more.summary_["training_samples"] == 2 * m.summary_["training_samples"]
    ae = AutoEncoderEstimator(**FAST).train(x=["a", "b", "c"], training_frame=frame)
    sup = DeepLearningEstimator(**FAST, pretrained_autoencoder=ae.model_id).train(x=["a", "b", "c"], y="y",
                                                                                   training_frame=frame)
    assert sup.params["pretrained_autoencoder"]["actual"] == ae.model_id
    # H2O-3 refuses to continue on data with a class or a level the checkpoint has not seen
    extra = h2o.H2OFrame(rows() + [[0.0, 0.0, "new", "no"]], column_names=["a", "b", "c", "y"])
    with pytest.raises(H2OResponseError, match="Categorical factor levels of the training data must be the same "
                                               "as for the checkpointed model .*'c': 'new'"):
        DeepLearningEstimator(**FAST, checkpoint=m.model_id).train(y="y", training_frame=extra)


def test_scores_are_h2oframes_aligned_with_the_test_frame(frame):
    m = DeepLearningEstimator(**FAST).train(y="y", training_frame=frame)
    pred = m.predict(frame)
    assert isinstance(pred, h2o.H2OFrame) and pred.names == ["predict", "pno", "pyes"] and pred.nrow == 240
    assert pred.types["predict"] == "enum" and pred["predict"].levels() == [["no", "yes"]]
    accuracy = (pred["predict"] == frame["y"]).mean()[0]
    assert accuracy == pytest.approx(1 - m.model_performance(frame).classification_error(), abs=1e-12)
    same = m.predict(frame.frame)                     # a Frame: the pandas table, the same values
    np.testing.assert_allclose(pred["pyes"].as_data_frame().iloc[:, 0], same["pyes"].astype(float))
    feats = m.deepfeatures(frame, 0)
    assert isinstance(feats, h2o.H2OFrame) and feats.names == [f"DF.L1.C{j}" for j in range(1, 7)]
    ae = AutoEncoderEstimator(**FAST).train(x=["a", "b"], training_frame=frame)
    err = ae.anomaly(frame)
    assert err.names == ["Reconstruction.MSE"] and err.nrow == 240 and err.min() >= 0


def test_params_weights_biases_and_model_json(frame):
    two = DeepLearningEstimator(**FAST).train(y="y", training_frame=frame)
    three = DeepLearningEstimator(**FAST).train(
        y="y", training_frame=h2o.H2OFrame(rows(classes=("lo", "mid", "hi")), column_names=["a", "b", "c", "y"]))
    reg = DeepLearningEstimator(**FAST).train(y="a", training_frame=frame)
    assert [m.params["distribution"]["actual"] for m in (two, three, reg)] == ["bernoulli", "multinomial", "gaussian"]
    assert two.params["distribution"]["input"] == "AUTO"
    assert two.params["categorical_encoding"]["actual"] == "OneHotInternal"
    assert two.actual_params["hidden"] == [6] and two.parms["epochs"]["actual_value"] == 2
    w0, b0, w1 = two.weights(0), two.biases(0), two.weights(1)
    units = two.network_.view(two.model_, "weights", 0).shape     # (6 hidden units, inputs)
    assert w0.shape == units and b0.shape == (6, 1) and w1.shape == (2, 6)
    np.testing.assert_array_equal(w1.as_data_frame().to_numpy(),
                                  two.network_.view(two.model_, "weights", 1).astype(np.float64))
    with pytest.raises(EstimatorError, match=r"weights\(2\): the network has weight layers 0..1"):
        two.weights(2)
    j = two._model_json
    assert j["model_id"]["name"] == two.model_id and j["algo"] == "deeplearning"
    out = j["output"]
    assert out["model_category"] == "Binomial" and out["domains"][-1] == ["no", "yes"] and out["names"][-1] == "y"
    assert out["training_metrics"]["logloss"] == two.logloss()
    assert out["scoring_history"].as_data_frame().shape[0] == len(two.scoring_history())
    assert out["variable_importances"].col_header[0] == "variable"
    assert {p["name"]: p["actual_value"] for p in j["parameters"]}["distribution"] == "bernoulli"


def test_a_refused_build_raises_h2o_py_s_error(frame):
    with pytest.raises(H2OResponseError, match="hidden"):
        DeepLearningEstimator(hidden=[-3]).train(y="y", training_frame=frame)
    assert issubclass(H2OResponseError, EstimatorError) and issubclass(H2OValueError, ValueError)
    assert h2o.grid.H2OGridSearch is not None


def test_h2o_3_parameters_hidden_none_epochs_zero_initial_values(frame):
    from h2odl_mpi.training.model_setup import run_seed, starting_model
    flat = DeepLearningEstimator(hidden=[], epochs=3, seed=2, adaptive_rate=False, rate=0.05,
                                 quiet_mode=True).train(y="y", training_frame=frame)
    assert flat.network_.n_layers == 1 and flat.weights(0).shape == (2, flat.info_.n_inputs)
    assert flat.model_performance(frame).auc() > 0.9                  # a logistic model of a linear boundary
    with pytest.raises(EstimatorError, match="the model has no hidden layer"):
        flat.deepfeatures(frame, 0)
    untrained = DeepLearningEstimator(hidden=[5], epochs=0, seed=2, quiet_mode=True).train(y="y", training_frame=frame)
    seed = run_seed(untrained.params_, None, None)
    fresh = starting_model(untrained.params_, None, untrained.network_, untrained.info_, seed, None)
    assert untrained.summary_["training_samples"] == 0 and np.array_equal(untrained.model_, fresh)
    assert untrained.logloss() == pytest.approx(untrained.model_performance(frame).logloss())  # scored once
    trained = DeepLearningEstimator(**FAST).train(y="y", training_frame=frame)
    copied = DeepLearningEstimator(hidden=[6], epochs=0, seed=9, quiet_mode=True,
                                   initial_weights=[trained.weights(0), trained.weights(1)],
                                   initial_biases=[trained.biases(0), trained.biases(1)]).train(y="y", training_frame=frame)
    for i in range(2):
        np.testing.assert_array_equal(copied.weights(i).as_data_frame(), trained.weights(i).as_data_frame())
        np.testing.assert_array_equal(copied.biases(i).as_data_frame(), trained.biases(i).as_data_frame())
    assert copied.params["initial_weights"]["actual"] == [f"6x{trained.info_.n_inputs}", "2x6"]
    with pytest.raises(H2OResponseError, match=r"initial_weights\[0\]: shape 6 x \d+, the network's weights there"):
        DeepLearningEstimator(hidden=[3], initial_weights=[trained.weights(0), trained.weights(1)]).train(
            y="y", training_frame=frame)
    with pytest.raises(H2OResponseError, match="initial_biases: 1 given, the network has 2 layers"):
        DeepLearningEstimator(hidden=[6], initial_biases=[trained.biases(0)]).train(y="y", training_frame=frame)
    ok = DeepLearningEstimator(**FAST, single_node_mode=True, force_load_balance=False,
                               score_each_iteration=True).train(y="y", training_frame=frame)
    assert len(ok.scoring_history()) >= 2                                 # every iteration scored


def test_grid_search_as_h2o_py(frame, capsys):
    three = h2o.H2OFrame(rows(classes=("lo", "mid", "hi")), column_names=["a", "b", "c", "y"])
    grid = h2o.grid.H2OGridSearch(DeepLearningEstimator(**FAST), grid_id="g3",
                                  hyper_params={"stopping_metric": ["AUC", "logloss"], "hidden": [[3], [5]]})
    grid.train(y="y", training_frame=three, verbose=True)
    # H2O-3 keeps the models that trained and lists the failed ones (AUC needs 2 classes)
    assert sorted(grid.model_ids) == ["g3_model_3", "g3_model_4"]
    assert grid.failed_params == [{"stopping_metric": "AUC", "hidden": [3]}, {"stopping_metric": "AUC", "hidden": [5]}]
    assert "needs 2 classes" in grid.failure_details[0] and "g3: model 3 g3_model_3" in capsys.readouterr().out
    losses = [m.logloss() for m in grid.get_grid("logloss", decreasing=False).models]
    assert losses == sorted(losses) and grid.get_grid("logloss", decreasing=True).models[0].logloss() == max(losses)
    assert grid.get_hyperparams_dict("g3_model_4") == {"stopping_metric": "logloss", "hidden": [5]}
    table = grid.sorted_metric_table()
    assert list(table.columns) == ["stopping_metric", "hidden", "model_ids", "logloss"] and len(table) == 2
    random = h2o.grid.H2OGridSearch(DeepLearningEstimator(**FAST), {"l1": [0, 1e-4, 1e-3], "hidden": [[3], [4]]},
                                    search_criteria={"strategy": "RandomDiscrete", "max_models": 2, "seed": 5})
    assert len(random.train(y="y", training_frame=frame).models) == 2
    with pytest.raises(EstimatorError, match="Evolutionary and Halving: the grid command"):
        h2o.grid.H2OGridSearch(DeepLearningEstimator(**FAST), {"l1": [0]},
                               search_criteria={"strategy": "Evolutionary"}).train(y="y", training_frame=frame)
    with pytest.raises(EstimatorError, match="max_runtime_secs is not supported in a Python grid"):
        h2o.grid.H2OGridSearch(DeepLearningEstimator(**FAST), {"l1": [0]},
                               search_criteria={"max_runtime_secs": 10}).train(y="y", training_frame=frame)
