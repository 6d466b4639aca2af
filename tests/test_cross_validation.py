"""N-fold cross-validation on one process: fold assignment against numpy references, the
cross-validation metrics and summary table against metrics.py (and scikit-learn) on the
written holdout predictions, the fold model's holdout hook, the main model, the files, and
every refusal as one line naming its parameter."""
import csv
import json

import numpy as np
import pytest
from sklearn.metrics import log_loss, mean_squared_error, roc_auc_score

from h2odl_mpi.data import folds as F
from h2odl_mpi.evaluation import metrics
from h2odl_mpi.cli import main
from h2odl_mpi.workflows.cross_validation import summary_table, train_or_cross_validate
from h2odl_mpi.errors import UserError
from h2odl_mpi.data.frame import Frame
from h2odl_mpi.model.model_io import load_model
from h2odl_mpi.params import validate
from h2odl_mpi.training.trainer import train


def _csv(path, n=120, seed=0, regression=False, fold=None):
    """a, b, c, [f,] y: y a class (no/yes) of a + b, or a number."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    with open(path, "w") as fh:
        fh.write("a,b,c," + ("f," if fold is not None else "") + "y\n")
        for i, (a, b, c) in enumerate(x):
            y = f"{2 * a - b + 0.1 * rng.normal():.5f}" if regression else ("yes" if a + b > 0 else "no")
            fh.write(f"{a:.5f},{b:.5f},{c:.5f}," + (f"{fold[i]}," if fold is not None else "") + f"{y}\n")
    return str(path)


def _params(path, **kw):
    return validate(dict({"train": path, "response": "y", "hidden": [5], "epochs": 3, "seed": 7, "threads": 1,
                          "quiet_mode": True, "train_samples_per_iteration": 40, "variable_importances": False,
                          "score_interval": 1e6}, **kw))


def _read_csv(path):
    with open(path) as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


# ------------------------------------------------------------------------ fold assignment
def test_modulo_folds_are_the_row_index_modulo_nfolds():
    frame = Frame.from_arrays({"x": np.arange(23.0), "y": np.arange(23.0) % 2}, replicate=True)
    got = F.assign({"nfolds": 4, "fold_assignment": "Modulo", "seed": 1}, frame, None)
    assert got.fold.tolist() == (np.arange(23) % 4).tolist()
    assert got.sizes == np.bincount(np.arange(23) % 4).tolist() and got.how == "Modulo"


def test_random_folds_are_a_function_of_seed_and_global_index():
    index = np.arange(5000)
    whole = F.random_folds(index, 5, seed=11)
    parts = np.concatenate([F.random_folds(index[a:b], 5, seed=11) for a, b in ((0, 1234), (1234, 1235), (1235, 5000))])
    assert np.array_equal(whole, parts)  # any split of the rows over ranks: the same folds
    assert whole.min() == 0 and whole.max() == 4
    assert np.all(np.abs(np.bincount(whole) - 1000) < 120)  # about uniform
    assert not np.array_equal(whole, F.random_folds(index, 5, seed=12))


def test_stratified_folds_keep_every_class_within_one_row():
    rng = np.random.default_rng(3)
    labels = rng.choice([-1, 0, 1, 2], size=997, p=[0.05, 0.6, 0.3, 0.05])  # -1: missing response
    fold = F.stratified_folds(labels, 4, seed=5)
    for c in np.unique(labels):
        per_fold = np.bincount(fold[labels == c], minlength=4)
        assert per_fold.max() - per_fold.min() <= 1, (c, per_fold)
    assert np.ptp(np.bincount(fold, minlength=4)) <= 1
    assert np.array_equal(fold, F.stratified_folds(labels, 4, seed=5))
    assert not np.array_equal(fold, F.stratified_folds(labels, 4, seed=6))


def test_fold_column_levels_and_integers_name_the_folds(tmp_path):
    levels = np.array(["x", "z", "x", "z", "z"] * 10, dtype=object)
    frame = Frame.from_arrays({"f": levels, "g": np.tile([1.0, 2, 3, 2, 1], 10), "y": np.arange(50.0)},
                              replicate=True)
    got = F.assign({"fold_column": "f"}, frame, None)
    assert got.n_folds == 2 and got.fold.tolist() == [0 if v == "x" else 1 for v in levels]
    got = F.assign({"fold_column": "g"}, frame, None)
    assert got.n_folds == 3 and got.fold.tolist() == (np.tile([1, 2, 3, 2, 1], 10) - 1).tolist()


def test_a_fold_model_leaves_its_fold_out_of_training_and_scores_it():
    n = 90
    rng = np.random.default_rng(2)
    frame = Frame.from_arrays({"a": rng.normal(size=n), "y": np.where(rng.normal(size=n) > 0, "p", "q")},
                              replicate=True)
    folds = F.assign({"nfolds": 3, "fold_assignment": "Modulo"}, frame, None)
    hold = F.holdout(folds, 1, frame, None)
    p = validate({"train": "in-memory", "response": "y", "hidden": [3], "epochs": 2, "seed": 1, "threads": 1,
                  "quiet_mode": True, "score_training_samples": 0, "variable_importances": False,
                  "train_samples_per_iteration": 30})
    run = train(p, data=(frame, frame), holdout=hold)
    assert run.metrics["training"]["nobs"] == 60 and run.metrics["validation"]["nobs"] == 30
    assert run["training_samples"] == 120 and run["epochs"] == 2.0  # an epoch: the 60 rows outside the fold


# --------------------------------------------------------------- metrics and summary table
def test_summary_table_is_mean_and_sample_sd_over_the_folds():
    folds = [{"auc": 0.7, "mse": 0.2, "nobs": 10}, {"auc": 0.9, "mse": 0.1, "nobs": 12},
             {"auc": float("nan"), "mse": 0.3, "nobs": 9}]
    table = summary_table(folds)
    assert list(table) == ["auc", "mse"]  # sorted; row counts are no metric of H2O's table
    assert table["mse"]["mean"] == pytest.approx(np.mean([0.2, 0.1, 0.3]), rel=1e-15)
    assert table["mse"]["sd"] == pytest.approx(np.std([0.2, 0.1, 0.3], ddof=1), rel=1e-15)
    assert table["auc"]["mean"] == pytest.approx(0.8)  # (the NaN fold left out)
    assert table["auc"]["sd"] == pytest.approx(np.std([0.7, 0.9], ddof=1))
    assert [table["mse"][f"cv_{k}_valid"] for k in (1, 2, 3)] == [0.2, 0.1, 0.3]
    assert np.isnan(table["auc"]["cv_3_valid"])


@pytest.mark.filterwarnings("ignore:The y_prob values do not sum to one")
def test_classification_cv_metrics_are_those_of_the_holdout_predictions(tmp_path):
    data = _csv(tmp_path / "c.csv", n=150)
    out = str(tmp_path / "m.h5")
    run = train_or_cross_validate(_params(data, nfolds=3, model_out=out, keep_cross_validation_predictions=True,
                        keep_cross_validation_fold_assignment=True, summary_json=str(tmp_path / "s.json")))
    header, rows = _read_csv(tmp_path / "m_cv_holdout_predictions.csv")
    assert header == ["predict", "pno", "pyes"] and len(rows) == 150
    prob = np.array([[float(v) for v in r[1:]] for r in rows])
    _, yrows = _read_csv(data)
    y = np.array([1.0 if r[-1] == "yes" else 0.0 for r in yrows])
    fold = np.array([int(r[0]) for r in _read_csv(tmp_path / "m_cv_fold_assignment.csv")[1]])
    assert fold.tolist() == F.random_folds(np.arange(150), 3, 7).tolist()
    cv = run.metrics["cross_validation"]
    ref = metrics.classification_metrics(prob, y)
    for k in ("logloss", "mse", "auc", "aucpr", "classification_error", "mean_per_class_error"):
        assert cv[k] == pytest.approx(ref[k], rel=1e-12), k
    assert cv["nobs"] == 150 and cv["auc"] == pytest.approx(roc_auc_score(y, prob[:, 1]), rel=1e-12)
    assert cv["logloss"] == pytest.approx(log_loss(y, prob), rel=1e-6)  # (sklearn renormalises float32 rows)
    table = run["cross_validation_metrics_summary"]
    for k in range(3):
        own = metrics.classification_metrics(prob[fold == k], y[fold == k])
        for name in ("logloss", "auc", "classification_error"):
            assert table[name][f"cv_{k + 1}_valid"] == pytest.approx(own[name], rel=1e-12)
    for name, row in table.items():
        values = [row[f"cv_{k}_valid"] for k in (1, 2, 3)]
        assert row["mean"] == pytest.approx(np.mean(values), rel=1e-12, abs=1e-15)
        assert row["sd"] == pytest.approx(np.std(values, ddof=1), rel=1e-9, abs=1e-15)
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["metrics"]["cross_validation"]["auc"] == cv["auc"]
    assert saved["cross_validation_metrics_summary"] == json.loads(json.dumps(table))


def test_regression_cv_metrics_are_those_of_the_holdout_predictions(tmp_path):
    data = _csv(tmp_path / "r.csv", n=100, regression=True)
    out = str(tmp_path / "m.h5")
    run = train_or_cross_validate(_params(data, nfolds=4, fold_assignment="Modulo", model_out=out,
                        keep_cross_validation_predictions=True))
    _, rows = _read_csv(tmp_path / "m_cv_holdout_predictions.csv")
    pred = np.array([float(r[0]) for r in rows])
    info = load_model(out)[2]  # the targets as the model holds them (standardised in float32)
    y = info.decode_response(info.response_values(Frame.read(data)).astype(np.float64))
    cv, ref = run.metrics["cross_validation"], metrics.regression_metrics(pred, y)
    for k in ("mse", "rmse", "mae", "r2", "mean_residual_deviance"):
        assert cv[k] == pytest.approx(ref[k], rel=1e-12), k
    assert cv["mse"] == pytest.approx(mean_squared_error(y, pred), rel=1e-12)
    y_file = np.array([float(r[-1]) for r in _read_csv(data)[1]])
    assert cv["mse"] == pytest.approx(mean_squared_error(y_file, pred), rel=1e-5)
    fold = np.arange(100) % 4
    for k in range(4):
        assert run["cross_validation_metrics_summary"]["rmse"][f"cv_{k + 1}_valid"] == pytest.approx(
            np.sqrt(np.mean((pred[fold == k] - y[fold == k]) ** 2)), rel=1e-12)


# ------------------------------------------------------------------ main model and files
def test_main_model_fold_models_and_files(tmp_path):
    fold = np.repeat(["u", "v", "w"], 30)
    data = _csv(tmp_path / "f.csv", n=90, fold=fold)
    out = str(tmp_path / "m.h5")
    run = train_or_cross_validate(_params(data, fold_column="f", model_out=out, stopping_rounds=3))
    assert [m["holdout_rows"] for m in run["cross_validation_models"]] == [30, 30, 30]
    assert "f" not in run.info.input_names  # the fold column is never an input
    epochs = np.mean([m["epochs"] for m in run["cross_validation_models"]])
    assert run.params["epochs"] == pytest.approx(epochs) and run.params["stopping_rounds"] == 0
    assert run.params["overwrite_with_best_model"] is False  # H2O's main model after its fold models
    _net, _model, _info, params, attrs = load_model(out)
    assert attrs["cross_validation"]["metrics"]["logloss"] == run.metrics["cross_validation"]["logloss"]
    table = json.loads(json.dumps(run["cross_validation_metrics_summary"]))
    assert attrs["cross_validation"]["metrics_summary"] == table
    assert params["fold_column"] == "f"
    for k in (1, 2, 3):
        _net, _model, info, fparams, fattrs = load_model(str(tmp_path / f"m_cv_{k}.h5"))
        assert fparams["fold_column"] is None and fparams["nfolds"] == 0 and "cross_validation" not in fattrs
        assert "f" not in info.input_names


def test_the_cli_prints_the_fold_lines_and_the_table(tmp_path, capsys):
    data = _csv(tmp_path / "c.csv", n=60)
    assert main(["train", "--train", data, "--response", "y", "--hidden", "3", "--epochs", "1", "--nfolds", "2",
                 "--threads", "1", "--seed", "3", "--variable_importances", "false"]) == 0
    text = capsys.readouterr().out
    assert "cross-validation model 1/2" in text and "cross-validation model 2/2" in text
    assert "Cross-Validation Metrics Summary:" in text and "cv_2_valid" in text
    assert "cross-validation metrics: " in text


# ------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize("extra, needle", [
    ({"nfolds": 1}, "nfolds = 1: must be 0"),
    ({"nfolds": -3}, "nfolds = -3: must be 0"),
    ({"nfolds": 3, "fold_column": "f"}, "nfolds and fold_column exclude each other"),
    ({"fold_assignment": "Modulo"}, "fold_assignment = Modulo: only for cross-validation"),
    ({"fold_column": "f", "fold_assignment": "Random"}, "fold_assignment = Random: not allowed with fold_column"),
    ({"nfolds": 2, "fold_assignment": "Sideways"}, "fold_assignment = 'Sideways' is not one of"),
    ({"nfolds": 3, "keep_cross_validation_predictions": True}, "keep_cross_validation_predictions writes next"),
    ({"keep_cross_validation_fold_assignment": True, "model_out": "m.h5"},
     "keep_cross_validation_fold_assignment: only for cross-validation"),
    ({"nfolds": 2, "autoencoder": True}, "nfolds: cross-validation is not supported for an autoencoder"),
    ({"nfolds": 2, "checkpoint": "m.h5"}, "nfolds: cross-validation cannot continue a checkpoint"),
    ({"fold_column": "y"}, "fold_column: column 'y' is the response"),
])
def test_bad_cross_validation_parameters_are_refused(extra, needle):
    with pytest.raises(UserError) as e:
        validate(dict({"train": "d.csv", "response": "y"}, **extra))
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("fold, extra, needle", [
    (None, {"fold_column": "nope"}, "fold_column: no column named 'nope'"),
    (["1", "2", "", "1"] * 15, {"fold_column": "f"}, "fold_column 'f': 15 row(s) have no value"),
    (["1", "3", "4"] * 20, {"fold_column": "f"}, "integer folds must be 0..N-1 or 1..N without gaps"),
    (["2", "3"] * 30, {"fold_column": "f"}, "integer folds must be 0..N-1 or 1..N"),
    (["k"] * 60, {"fold_column": "f"}, "fold_column 'f' is constant"),
    (["1.5", "2"] * 30, {"fold_column": "f"}, "holds non-integer values"),
    (None, {"nfolds": 61}, "nfolds = 61 is more than the 60 training rows"),
    (None, {"nfolds": 40}, "has no rows (60 rows, fold_assignment Random)"),
    (None, {"nfolds": 3, "fold_assignment": "Stratified", "response": "a"}, "Stratified: only for classification"),
    (None, {"nfolds": 3, "model_out": "OUT/m.h5", "summary_json": "OUT/m_cv_2.h5"},
     "keep_cross_validation_models and summary_json are the same file"),
    (["0", "1"] * 30, {"fold_column": "f", "model_out": "OUT/m.h5", "scoring_history": "OUT/m_cv_2.h5"},
     "keep_cross_validation_models and scoring_history are the same file"),
])
def test_bad_data_for_cross_validation_is_refused(tmp_path, fold, extra, needle):
    data = _csv(tmp_path / "d.csv", n=60, fold=fold)
    extra = {k: v.replace("OUT", str(tmp_path)) if isinstance(v, str) else v for k, v in extra.items()}
    with pytest.raises(UserError) as e:
        train_or_cross_validate(_params(data, **extra))
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert not list(tmp_path.glob("m*"))  # refused before anything was written


def test_the_cli_refuses_in_one_line(tmp_path, capsys):
    data = _csv(tmp_path / "d.csv", n=30)
    assert main(["train", "--train", data, "--response", "y", "--nfolds", "2", "--fold_column", "c"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: nfolds and fold_column exclude each other") and err.count("\n") == 1


def test_train_trains_one_model_and_leaves_cross_validation_to_the_workflow(tmp_path):
    data = _csv(tmp_path / "d.csv", n=60)
    with pytest.raises(UserError, match="train_or_cross_validate") as e:
        train(_params(data, nfolds=3))
    assert "\n" not in str(e.value)
    run = train_or_cross_validate(_params(data))  # without nfolds: one model, as train() gives it
    assert "cross_validation" not in run.metrics and np.array_equal(run.model, train(_params(data)).model)
