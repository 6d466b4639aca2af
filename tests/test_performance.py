"""model_performance on one process: every metric equals scikit-learn's on the same
predictions (binomial, multinomial, regression), the thresholds table's rows equal
scikit-learn's counts at their thresholds (also when only some of the distinct scores are
shown, and with weights), the gains/lift table follows its definition, and `evaluate`
writes what model_performance holds."""
import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from h2odl_mpi.evaluation import metric_tables
from h2odl_mpi.cli import main
from h2odl_mpi.data.frame import Frame
from h2odl_mpi.model.model_io import load_model
from h2odl_mpi.evaluation.performance import ModelPerformance, model_performance
from h2odl_mpi.evaluation.predict import predict_frame

REL = 1e-9


def write_data(path, n=240, seed=1):
    """a, b, c numeric, g categorical, k 3 classes, yn 2 classes, r numeric (> 0)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    k = np.digitize(x[:, 0] + 0.4 * rng.normal(size=n), [-0.5, 0.5])
    yn = x[:, 0] + 0.5 * x[:, 1] + 0.7 * rng.normal(size=n) > 0
    g = np.array(["u", "v", "w"])[rng.integers(0, 3, n)]
    r = 3 * x[:, 0] - x[:, 1] + 10 + rng.normal(size=n)
    with open(path, "w") as f:
        f.write("a,b,c,g,k,yn,r\n")
        for i in range(n):
            f.write(f"{x[i, 0]:.4f},{x[i, 1]:.4f},{x[i, 2]:.4f},{g[i]},{'ABC'[k[i]]},"
                    f"{'yes' if yn[i] else 'no'},{r[i]:.4f}\n")
    return str(path)


def train(data, out, response, ignored, *extra):
    assert main(["train", "--train", data, "--response", response, "--ignored_columns", ignored,
                 "--hidden", "8", "--epochs", "3", "--seed", "1", "--reproducible", "true",
                 "--quiet_mode", "true", "--model_out", out, *extra]) == 0
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("perf")
    data = write_data(tmp / "d.csv")
    return {"data": data, "tmp": tmp,
            "binomial": train(data, str(tmp / "b.h5"), "yn", "k,r"),
            "multinomial": train(data, str(tmp / "m.h5"), "k", "yn,r"),
            "regression": train(data, str(tmp / "r.h5"), "r", "k,yn")}


def scored(model_path, data):
    """(model, frame, ModelPerformance, predictions header, values, labels as codes)."""
    network, model, info, params, _ = load_model(model_path)
    frame = Frame.read(data)
    perf = model_performance(network, model, info, frame, params=params)
    header, values = predict_frame(network, model, info, frame)
    y = frame.decode(info.response)
    return info, perf, header, values, y


def close(a, b, rel=REL):
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


def test_binomial_equals_sklearn(models):
    info, perf, header, values, y = scored(models["binomial"], models["data"])
    prob = values[:, 1:].astype(np.float64)
    p1 = prob[:, 1]
    assert perf.model_category == "Binomial" and perf.nobs() == len(y)
    assert close(perf.auc(), skm.roc_auc_score(y, p1))
    assert close(perf.aucpr(), skm.average_precision_score(y, p1))
    assert close(perf.gini(), 2 * skm.roc_auc_score(y, p1) - 1)
    assert close(perf.logloss(), skm.log_loss(y, prob / prob.sum(1, keepdims=True)), 1e-6)
    # (logloss and rmse take p0 for class 0, scikit-learn 1 - p1: float32 softmax outputs do
    # not add up to 1 exactly)
    assert close(perf.rmse(), math.sqrt(skm.mean_squared_error(y, p1)), 1e-6)
    assert close(perf.r2(), skm.r2_score(y, p1))
    t = perf.as_dict()["threshold"]
    cm = skm.confusion_matrix(y, p1 >= t)
    assert perf.confusion_matrix().to_list() == cm.tolist() == perf.as_dict()["confusion_matrix"]
    assert perf.confusion_matrix(metrics="f1").to_list() == cm.tolist()  # from the thresholds table
    low = perf.confusion_matrix(thresholds=[0.25, t])
    assert low[1].to_list() == cm.tolist() and low[0].to_list() == skm.confusion_matrix(
        y, p1 >= perf.thresholds_and_metric_scores()["threshold"][perf.find_idx_by_threshold(0.25)]).tolist()
    assert close(perf.classification_error(), 1 - skm.accuracy_score(y, p1 >= t))
    assert close(perf.mean_per_class_error(), 1 - skm.balanced_accuracy_score(y, p1 >= t))
    # max F1 over every distinct score (the highest threshold on ties), as scikit-learn counts it
    f1 = [skm.f1_score(y, p1 >= s) for s in np.unique(p1)[::-1]]
    assert close(perf.F1()[0][1], max(f1)) and perf.F1()[0][0] == t == np.unique(p1)[::-1][int(np.argmax(f1))]
    check_threshold_rows(perf.thresholds_and_metric_scores(), p1, y, None)


def check_threshold_rows(table, score, y, w):
    """Every thresholds-table row equals scikit-learn at its threshold."""
    col = {c: j for j, c in enumerate(table.col_header)}
    for row in table.cell_values:
        pred = score >= row[0]
        tn, fp, fn, tp = skm.confusion_matrix(y, pred, sample_weight=w, labels=[0, 1]).ravel()
        expect = {"precision": skm.precision_score(y, pred, sample_weight=w, zero_division=np.nan),
                  "recall": skm.recall_score(y, pred, sample_weight=w),
                  "accuracy": skm.accuracy_score(y, pred, sample_weight=w),
                  "f1": skm.f1_score(y, pred, sample_weight=w),
                  "f2": skm.fbeta_score(y, pred, beta=2, sample_weight=w),
                  "specificity": tn / (tn + fp),
                  "absolute_mcc": abs(skm.matthews_corrcoef(y, pred, sample_weight=w)),
                  "tns": tn, "fps": fp, "fns": fn, "tps": tp, "fpr": fp / (fp + tn)}
        for name, v in expect.items():
            got = row[col[name]]
            assert (math.isnan(v) and math.isnan(got)) or math.isclose(got, v, rel_tol=1e-9, abs_tol=1e-12), \
                (row[0], name, got, v)


def test_thresholds_table_on_a_subset_of_scores_and_with_weights():
    rng = np.random.default_rng(5)
    n = 1500
    y = (rng.random(n) < 0.4).astype(float)
    score = np.clip(0.3 * y + rng.normal(0.35, 0.2, n), 0, 1)
    score[:300] = np.round(score[:300], 2)  # ties
    w = rng.uniform(0.2, 2.0, n)
    tables = metric_tables.binomial_tables(score, y, w, max_bins=50)
    table = metric_tables.Table.from_dict(tables["thresholds_and_metric_scores"])
    distinct = np.unique(score)
    assert 50 <= len(table) < 50 + len(metric_tables.CRITERIA) and len(distinct) > 1000
    check_threshold_rows(table, score, y.astype(int), w)
    # the maxima are over every distinct score, and their rows are in the table
    maxima = metric_tables.Table.from_dict(tables["max_criteria_and_metric_scores"])
    f1 = np.array([skm.f1_score(y, score >= s, sample_weight=w) for s in distinct[::-1]])
    row = maxima.cell_values[0]
    assert row[0] == "max f1" and math.isclose(row[2], f1.max(), rel_tol=1e-9)
    assert row[1] == distinct[::-1][int(np.argmax(f1))] == table.cell_values[row[3]][0]
    # ... and the max-F1 threshold is the one classification_metrics labels with
    from h2odl_mpi.evaluation.metrics import classification_metrics
    m = classification_metrics(np.column_stack([1 - score, score]), y, w)
    assert m["threshold"] == row[1]


def test_gains_lift_follows_its_definition(models):
    _, perf, _, values, y = scored(models["binomial"], models["data"])
    p1 = values[:, 2].astype(np.float64)
    g = perf.gains_lift()
    assert len(g) == 16 and g["group"] == list(range(1, 17))
    q = np.quantile(p1, metric_tables.GAINS_PROBS)
    np.testing.assert_allclose(g["lower_threshold"], np.unique(q)[::-1], rtol=1e-12)
    th = np.array(g["lower_threshold"])
    group = np.array([np.flatnonzero(s >= th)[0] for s in p1])
    for i in range(len(th)):
        inside = group == i
        assert math.isclose(g["response_rate"][i], y[inside].mean())
        assert math.isclose(g["score"][i], p1[inside].mean())
        assert math.isclose(g["cumulative_capture_rate"][i], y[group <= i].sum() / y.sum())
        assert math.isclose(g["lift"][i], y[inside].mean() / y.mean())
        ks = y[group <= i].sum() / y.sum() - (1 - y[group <= i]).sum() / (1 - y).sum()
        assert math.isclose(g["kolmogorov_smirnov"][i], ks, abs_tol=1e-12)
    assert math.isclose(g["cumulative_data_fraction"][-1], 1.0)
    assert math.isclose(g["cumulative_lift"][-1], 1.0)


def test_multinomial_equals_sklearn(models):
    info, perf, header, values, y = scored(models["multinomial"], models["data"])
    prob = values[:, 1:].astype(np.float64)
    assert perf.model_category == "Multinomial" and header[1:] == ["pA", "pB", "pC"]
    assert close(perf.logloss(), skm.log_loss(y, prob / prob.sum(1, keepdims=True)), 1e-6)
    assert perf.confusion_matrix().to_list() == skm.confusion_matrix(y, prob.argmax(1)).tolist()
    assert close(perf.classification_error(), 1 - skm.accuracy_score(y, prob.argmax(1)))
    hits = perf.hit_ratio_table()
    assert hits["k"] == [1, 2, 3]
    assert close(hits["hit_ratio"][1], skm.top_k_accuracy_score(y, prob, k=2))
    table = {r[0]: r[3] for r in perf.multinomial_auc_table().cell_values}
    for k, name in enumerate("ABC"):
        assert close(table[f"{name} vs Rest"], skm.roc_auc_score(y == k, prob[:, k]))
    for label, mc, avg in (("Macro OVR", "ovr", "macro"), ("Weighted OVR", "ovr", "weighted"),
                           ("Macro OVO", "ovo", "macro"), ("Weighted OVO", "ovo", "weighted")):
        assert close(table[label], skm.roc_auc_score(y, prob / prob.sum(1, keepdims=True),
                                                      multi_class=mc, average=avg)), label
    pr = {r[0]: r[3] for r in perf.multinomial_aucpr_table().cell_values}
    assert close(pr["B vs Rest"], skm.average_precision_score(y == 1, prob[:, 1]))
    assert perf.auc() == table["Macro OVR"] and perf.aucpr() == pr["Macro OVR"]
    network, model, info, params, _ = load_model(models["multinomial"])
    other = model_performance(network, model, info, Frame.read(models["data"]), auc_type="WEIGHTED_OVO")
    assert other.auc() == table["Weighted OVO"]


def test_regression_equals_sklearn(models):
    info, perf, header, values, y = scored(models["regression"], models["data"])
    f = values[:, 0]
    assert perf.model_category == "Regression" and header == ["predict"]
    assert close(perf.mse(), skm.mean_squared_error(y, f))
    assert close(perf.rmse(), math.sqrt(skm.mean_squared_error(y, f)))
    assert close(perf.mae(), skm.mean_absolute_error(y, f))
    assert close(perf.r2(), skm.r2_score(y, f))
    assert close(perf.mean_residual_deviance(), skm.mean_squared_error(y, f))  # gaussian
    assert close(perf.rmsle(), math.sqrt(skm.mean_squared_log_error(y, f)))
    assert perf.auc() is None and perf.confusion_matrix() is None


def test_evaluate_writes_model_performance(models, tmp_path, capsys):
    for kind in ("binomial", "multinomial", "regression"):
        out = tmp_path / f"{kind}.json"
        assert main(["evaluate", "--model", models[kind], "--data", models["data"], "--json", str(out),
                     "--threads", "1"]) == 0
        written = json.loads(out.read_text())
        _, perf, *_ = scored(models[kind], models["data"])
        assert written == json.loads(perf.to_json())
        assert ModelPerformance.from_dict(written).as_dict().keys() == perf.as_dict().keys()
        text = capsys.readouterr().out
        assert f"ModelMetrics{perf.model_category}: deeplearning" in text and "RMSE: " in text
        assert ("Confusion Matrix (Act/Pred) for max f1 @ threshold" in text) == (kind == "binomial")
        assert ("Multinomial AUC values" in text) == (kind == "multinomial")
    assert written["model_category"] == "Regression" and "r2" in written and "mae" in written


def test_evaluate_refuses_bad_outputs_and_inputs(models, tmp_path, capfd):
    data = models["data"]
    for argv, needle in ((["--json", data], "is the --data file"),
                         (["--json", str(tmp_path)], "is a directory"),
                         (["--json", str(tmp_path / "no" / "e.json")], "no such directory")):
        capfd.readouterr()
        assert main(["evaluate", "--model", models["binomial"], "--data", data] + argv) == 2
        err = capfd.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0] and "--json" in err[0], err
    nolabel = tmp_path / "x.csv"
    nolabel.write_text("a,b,c,g\n1,2,3,u\n")
    assert main(["evaluate", "--model", models["binomial"], "--data", str(nolabel)]) == 2
    err = capfd.readouterr().err
    assert "no response column 'yn'" in err and str(nolabel) in err
