"""`python -m h2odl_mpi report MODEL.h5 -o report.html` (h2odl_mpi/evaluation/report.py), and the
model summary (layer table) in the summary JSON and the model file."""
import base64
import html
import io
import json
import re
import struct
import sys

import numpy as np
import pytest

from h2odl_mpi.model import model_io, model_summary
from h2odl_mpi.cli import main
from h2odl_mpi.evaluation.report import DPI, FIGSIZE

WIDTH, HEIGHT = int(FIGSIZE[0] * DPI), int(FIGSIZE[1] * DPI)


def _train(tmp_path, data_dir, *extra):
    out = {"model": tmp_path / "m.h5", "summary": tmp_path / "s.json"}
    mnist = data_dir / "mnist" / "test.csv.gz"
    assert main(["train", "--train", str(mnist), "--validation", str(mnist), "--response", "C785",
                 "--hidden", "8,6", "--epochs", "0.5", "--seed", "3", "--reproducible", "true",
                 "--score_interval", "0", "--quiet_mode", "true", "--activation", "TanhWithDropout",
                 "--model_out", str(out["model"]), "--summary_json", str(out["summary"]), *extra]) == 0
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
    return _train(tmp_path_factory.mktemp("report"), data_dir)


def _png_size(data):
    """(width, height) of PNG bytes: PIL when installed, else the IHDR chunk."""
    try:
        from PIL import Image
    except ImportError:
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
        return struct.unpack(">II", data[16:24])
    with Image.open(io.BytesIO(data)) as im:
        im.load()  # decodes every pixel
        return im.size


def _images(page):
    return [base64.b64decode(d) for d in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_report_page(tmp_path, trained):
    out = tmp_path / "report.html"
    assert main(["report", str(trained["model"]), "-o", str(out)]) == 0
    page = out.read_text()
    assert "http://" not in page and "https://" not in page  # self-contained
    images = _images(page)
    # history against epochs and against time, the confusion matrix, the variable importances
    assert len(images) == 4
    for data in images:
        assert _png_size(data) == (WIDTH, HEIGHT)
    text = html.unescape(page)
    _network, _model, _info, params, attrs = model_io.load_model(str(trained["model"]))
    for name, value in params.items():  # every parameter, by name
        assert f"<td>{name}</td>" in text, name
    assert "<td>hidden</td><td>[8, 6]</td>" in text
    for header in model_summary.HEADERS:
        assert f"<th>{header}</th>" in text
    for row in attrs["model_summary"]:  # every layer
        assert f"<td>{row['layer']}</td><td>{row['units']}</td><td>{row['type']}</td>" in text
    assert "TanhDropout" in text and "Softmax" in text
    assert "Confusion matrix (validation data)" in text and "Variable importances" in text
    m = attrs["metrics"]  # a multinomial model's metrics: no AUC, the hit ratios
    for key, label in (("logloss", "LogLoss"), ("mean_per_class_error", "Mean Per-Class Error"), ("rmse", "RMSE")):
        assert _row(label, [_g(m["training"][key]), _g(m["validation"][key])]) in text, key
    assert "<td>AUC</td>" not in text and "ROC and precision-recall" not in text
    assert _row(3, [_g(m["training"]["hit_ratios"][2]), _g(m["validation"]["hit_ratios"][2])]) in text


def test_report_of_a_regression_has_no_confusion_matrix(tmp_path, data_dir, capsys):
    model, out = tmp_path / "r.h5", tmp_path / "r.html"
    assert main(["train", "--train", str(data_dir / "cal_housing" / "cal_housing.csv"), "--response",
                 "medianHouseValue", "--hidden", "4", "--epochs", "0.2", "--model_out", str(model)]) == 0
    printed = capsys.readouterr().out  # the end of training prints the layer table, as H2O its model
    assert "Status of Neuron Layers: predicting medianHouseValue, regression" in printed
    assert re.search(r"Layer +Units +Type +Dropout .* Bias RMS\n +1 +8 +Input +0.00 %\n +2 +4 +Rectifier .*\n"
                     r" +3 +1 +Linear ", printed)
    assert main(["report", str(model), "-o", str(out)]) == 0
    page = out.read_text()
    assert "Confusion matrix" not in page and "rmse against epochs" in page
    assert [_png_size(d) for d in _images(page)] == [(WIDTH, HEIGHT)] * 3


def test_report_refuses_bad_outputs_and_says_how_to_get_matplotlib(tmp_path, trained, capsys, monkeypatch):
    model = str(trained["model"])
    before = open(model, "rb").read()
    for bad, why in ((model, "is the model file"), (str(tmp_path), "is a directory"),
                     (str(tmp_path / "missing" / "r.html"), "no such directory")):
        assert main(["report", model, "-o", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and why in err and "--out" in err, err
    assert open(model, "rb").read() == before
    assert main(["report", str(tmp_path / "nope.h5"), "-o", str(tmp_path / "r.html")]) == 2
    assert "nope.h5" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    assert main(["report", model, "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "matplotlib" in err and "pip install" in err
    assert not (tmp_path / "r.html").exists()


def test_model_summary_in_summary_json_and_model_file(trained):
    network, model, _info, params, attrs = model_io.load_model(str(trained["model"]))
    rows = json.loads(trained["summary"].read_text())["model_summary"]
    assert rows == attrs["model_summary"]
    assert [r["type"] for r in rows] == ["Input", "TanhDropout", "TanhDropout", "Softmax"]
    assert [r["units"] for r in rows] == network.units
    assert [tuple(r) for r in rows] == [model_summary.COLUMNS] * 4
    assert rows == json.loads(json.dumps(model_summary.table(network, model, params, attrs["training_samples"])))
    w = network.view(model, "weights", 1).astype(np.float64)
    assert rows[2]["mean_weight"] == pytest.approx(w.mean(), rel=1e-12)
    assert rows[2]["weight_rms"] == pytest.approx(w.std(), rel=1e-12)


# ---- the numbers: metrics, cross-validation summary, curves, ensembles, the seed --------------

LONG = "a_rather_long_input_column_name_that_would_not_fit_beside_the_bars_at_all"


def _csv(path, n, seed, kind="binomial"):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    if kind == "binomial":
        y = [str(int(a + b + 0.5 * rng.normal() > 0)) for a, b, _c in x]
    else:
        y = [f"{2 * a - b + 0.3 * c * c + 0.1 * rng.normal():.5f}" for a, b, c in x]
    with open(path, "w") as f:
        f.write(f"a,{LONG},c,y\n")
        f.writelines(f"{a:.5f},{b:.5f},{c:.5f},{t}\n" for (a, b, c), t in zip(x, y))
    return str(path)


@pytest.fixture(scope="module")
def binomial(tmp_path_factory):
    """A cross-validated binomial model with validation data: metrics on all three data sets."""
    tmp = tmp_path_factory.mktemp("binomial")
    train, valid = _csv(tmp / "t.csv", 300, 4), _csv(tmp / "v.csv", 150, 5)
    model = tmp / "b.h5"
    assert main(["train", "--train", train, "--validation", valid, "--response", "y", "--hidden", "5",
                 "--epochs", "1", "--seed", "11", "--threads", "1", "--nfolds", "3", "--score_interval", "0",
                 "--quiet_mode", "true", "--model_out", str(model)]) == 0
    out = tmp / "b.html"
    assert main(["report", "--model", str(model), "-o", str(out)]) == 0
    return {"model": model, "page": out.read_text(), "dir": tmp, "train": train, "valid": valid}


def _row(label, values):
    return f"<tr><td>{label}</td>" + "".join(f"<td>{v}</td>" for v in values) + "</tr>"


def _g(v):
    return f"{v:.6g}"


def test_report_metrics_table_per_data_set(binomial):
    page, attrs = html.unescape(binomial["page"]), model_io.load_model(str(binomial["model"]))[4]
    m = attrs["metrics"]
    sets = ("training", "validation", "cross_validation")
    assert all(m.get(s) for s in sets)  # (the premise: metrics of all three)
    assert "<tr><th>metric</th><th>Training</th><th>Validation</th><th>Cross-Validation</th></tr>" in page
    for key, label in (("mse", "MSE"), ("rmse", "RMSE"), ("logloss", "LogLoss"),
                       ("mean_per_class_error", "Mean Per-Class Error"),
                       ("classification_error", "Classification Error"), ("auc", "AUC"), ("aucpr", "AUCPR"),
                       ("threshold", "max-F1 threshold")):
        assert _row(label, [_g(m[s][key]) for s in sets]) in page, key
    assert _row("Gini", [_g(2 * m[s]["auc"] - 1) for s in sets]) in page
    assert _row("rows scored (nobs)", [m[s]["nobs"] for s in sets]) in page
    assert "<td>MAE</td>" not in page and "<td>R^2</td>" not in page  # (regression's)


def test_autoencoder_metrics_rows():
    from types import SimpleNamespace
    from h2odl_mpi.evaluation.report import metric_rows
    info = SimpleNamespace(autoencoder=True, classification=False, n_classes=0)
    header, rows = metric_rows({"training": {"mse": 0.125, "rmse": 0.35355, "nobs": 40}, "validation": {}}, info)
    assert header == ["metric", "Training"]
    assert rows == [["MSE", "0.125"], ["RMSE", "0.35355"], ["rows scored (nobs)", "40"]]


def test_report_cross_validation_metrics_summary(binomial):
    page, attrs = html.unescape(binomial["page"]), model_io.load_model(str(binomial["model"]))[4]
    summary = attrs["cross_validation"]["metrics_summary"]
    assert set(summary) >= {"auc", "logloss", "mse"}
    assert "<h2>Cross-Validation Metrics Summary</h2>" in page
    cols = ["mean", "sd", "cv_1_valid", "cv_2_valid", "cv_3_valid"]
    assert "<tr><th></th>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>" in page
    for metric, stats in summary.items():
        assert _row(metric, [_g(stats[c]) for c in cols]) in page, metric
    for fold in attrs["cross_validation"]["models"]:  # the fold models: holdout rows
        assert f"<tr><td>{fold['fold']}</td><td>{fold['holdout_rows']}</td>" in page


def _resaved(path, network, model, info, params, attrs, metrics):
    """The model file re-written with other final metrics."""
    progress = {k: attrs[k] for k in ("epochs", "training_samples", "iterations")}
    model_io.save_model(str(path), network, model, info, params, progress, attrs["history"], state=attrs["state"],
                        importances=attrs["variable_importances"], cross_validation=attrs["cross_validation"],
                        metrics=metrics)
    return path


def test_a_trained_binomial_model_keeps_its_curves_as_evaluate_computes_them(binomial):
    """train keeps H2O's thresholds table with the final metrics: on the validation data it is
    the table evaluate computes for the model on that file, and the page draws the curves."""
    from h2odl_mpi.data.frame import Frame
    from h2odl_mpi.evaluation.performance import model_performance
    page = binomial["page"]
    assert 'alt="ROC curve"' in page and 'alt="precision-recall curve"' in page and "Not drawn" not in page
    network, model, info, params, attrs = model_io.load_model(str(binomial["model"]))
    kept = attrs["metrics"]["validation"]["thresholds_and_metric_scores"]
    perf = model_performance(network, model, info, Frame.read(binomial["valid"]), threads=1)
    want = json.loads(json.dumps(perf.as_dict()["thresholds_and_metric_scores"], default=float))
    assert json.dumps(kept, sort_keys=True) == json.dumps(want, sort_keys=True) and len(kept["data"]) > 10
    assert attrs["metrics"]["training"]["thresholds_and_metric_scores"]["data"]  # (a sample of at most 10,000 rows)


def test_report_of_a_model_without_thresholds_table_draws_no_curves(tmp_path, binomial):
    network, model, info, params, attrs = model_io.load_model(str(binomial["model"]))
    metrics = {k: {n: v for n, v in m.items() if n != "thresholds_and_metric_scores"}
               for k, m in attrs["metrics"].items()}
    path = _resaved(tmp_path / "no_table.h5", network, model, info, params, attrs, metrics)
    out = tmp_path / "r.html"
    assert main(["report", "--model", str(path), "-o", str(out)]) == 0
    page = out.read_text()
    assert "ROC and precision-recall curves" in page and "Not drawn" in page
    assert "thresholds_and_metric_scores" in page
    assert 'alt="ROC curve"' not in page and 'alt="precision-recall curve"' not in page
    assert len(_images(page)) == 4  # history x 2, confusion matrix, variable importances


def test_report_draws_roc_and_pr_curves_from_thresholds_tables(tmp_path, binomial):
    """A model file whose metrics carry H2O's thresholds table (as evaluate's JSON has it):
    the curves are drawn from the table's points."""
    from h2odl_mpi.evaluation import report, report_plots
    from h2odl_mpi.evaluation.metric_tables import binomial_tables
    network, model, info, params, attrs = model_io.load_model(str(binomial["model"]))
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 60)
    score = np.clip(0.3 * y + rng.uniform(0, 0.7, 60), 0, 1)
    metrics = {k: {n: v for n, v in m.items() if n != "thresholds_and_metric_scores"}
               for k, m in attrs["metrics"].items()}
    metrics["validation"]["thresholds_and_metric_scores"] = \
        binomial_tables(score, y)["thresholds_and_metric_scores"]
    path = _resaved(tmp_path / "with_table.h5", network, model, info, params, attrs, metrics)
    out = tmp_path / "r.html"
    assert main(["report", "--model", str(path), "-o", str(out)]) == 0
    page = out.read_text()
    assert 'alt="ROC curve"' in page and 'alt="precision-recall curve"' in page
    assert "No thresholds table in the file for: Training, Cross-Validation" in page
    assert len(_images(page)) == 6
    table = metrics["validation"]["thresholds_and_metric_scores"]
    col = {c: [r[table["columns"].index(c)] for r in table["data"]] for c in ("fpr", "tpr", "precision", "recall")}
    curves = report.curve_data(metrics)
    assert list(curves) == ["Validation"] and curves["Validation"]["tpr"] == col["tpr"]
    figs = report_plots.curve_figures(report_plots.pyplot(), curves)
    roc = figs[0][0].axes[0].lines[0]
    assert list(roc.get_xdata()) == [0.0] + col["fpr"] and list(roc.get_ydata()) == [0.0] + col["tpr"]
    pr = figs[1][0].axes[0].lines[0]
    assert list(pr.get_xdata()) == col["recall"] and list(pr.get_ydata()) == col["precision"]


def test_report_of_an_ensemble_shows_members_weights_and_metrics(tmp_path, binomial, capsys):
    from h2odl_mpi.workflows import ensemble as E
    from h2odl_mpi.workflows.search import grid_search
    fixed = {"train": binomial["train"], "validation": binomial["valid"], "response": "y", "epochs": 1,
             "seed": 9, "threads": 1, "reproducible": True, "stopping_rounds": 0, "score_interval": 0.0,
             "variable_importances": False}
    sd = str(tmp_path / "search")
    grid_search(fixed, {"hidden": [[3], [6]]}, {}, sd)
    ens = str(tmp_path / "e.h5")
    rec = E.build_ensemble(sd, 2, ens, weights="fitted", say=None)
    out = tmp_path / "e.html"
    assert main(["report", "--model", ens, "-o", str(out)]) == 0
    page = html.unescape(out.read_text())
    assert "<h2>Members and weights</h2>" in page and "Ensemble of 2 models" in page
    for i, (mid, w) in enumerate(zip(rec["members"], rec["weights"])):
        assert f"<tr><td>{i + 1}</td><td>{mid}</td><td>{_g(w)}</td>" in page, mid
    m = rec["metrics"]["validation"]
    assert "<tr><th>metric</th><th>Validation</th></tr>" in page
    for key, label in (("logloss", "LogLoss"), ("auc", "AUC"), ("mse", "MSE"), ("classification_error",
                                                                                "Classification Error")):
        assert _row(label, [_g(m[key])]) in page, key
    assert "Confusion matrix (validation data)" in page
    capsys.readouterr()
    (tmp_path / "bad.h5").write_bytes(open(ens, "rb").read()[:5000])  # truncated: one line, nothing written
    assert main(["report", "--model", str(tmp_path / "bad.h5"), "-o", str(tmp_path / "bad.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.h5" in err
    assert not (tmp_path / "bad.html").exists()


def test_report_shows_the_seed_the_run_used(tmp_path, data_dir):
    from h2odl_mpi.evaluation.report import seed_used
    model, out = tmp_path / "r.h5", tmp_path / "r.html"
    assert main(["train", "--train", _csv(tmp_path / "t.csv", 200, 3, "regression"), "--response", "y",
                 "--hidden", "3", "--epochs", "0.5", "--threads", "1", "--quiet_mode", "true",
                 "--model_out", str(model)]) == 0  # seed -1: drawn from the clock
    _n, _m, _i, params, attrs = model_io.load_model(str(model))
    used = attrs["state"]["seed"]
    assert params["seed"] == -1 and used != -1
    assert main(["report", str(model), "-o", str(out)]) == 0
    page = html.unescape(out.read_text())
    assert f"<tr><td>seed</td><td>{used} (drawn from the clock" in page
    assert f"<tr><td>seed</td><td>-1 as given; the run used {used}: drawn from the clock" in page
    m = attrs["metrics"]["training"]  # the regression metrics, while at it
    for key, label in (("mse", "MSE"), ("rmse", "RMSE"), ("mae", "MAE"), ("rmsle", "RMSLE"), ("r2", "R^2"),
                       ("mean_residual_deviance", "Mean Residual Deviance")):
        assert _row(label, [_g(m[key])]) in page, key
    assert "<td>AUC</td>" not in page and "Confusion matrix" not in page and "ROC and precision-recall" not in page
    assert seed_used({"seed": 5}, {"seed": 5})[0] == 5
    assert seed_used({"seed": -1}, None) == (-1, "the seed parameter as given; the model file holds no training "
                                                 "state to tell the seed used")
    got = seed_used({"seed": 4, "checkpoint": "c.h5"}, {"seed": 77})
    assert got[0] == 77 and "checkpoint the run continued, c.h5" in got[1]


def test_report_takes_its_model_as_a_flag(tmp_path, trained, capsys):
    model, out = str(trained["model"]), tmp_path / "r.html"
    assert main(["report", "--model", model, "--out", str(out)]) == 0
    by_flag = out.read_text()
    out.unlink()
    assert main(["report", "-o", str(out), model]) == 0  # the positional form, still
    assert out.read_text() == by_flag
    out.unlink()
    capsys.readouterr()
    for argv, why in ((["report", model, "--model", model, "-o", str(out)], "twice"),
                      (["report", "-o", str(out)], "--model FILE")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and why in err and "--model" in err, err
        assert not out.exists()
    (tmp_path / "text.h5").write_text("not a model\n")
    assert main(["report", "--model", str(tmp_path / "text.h5"), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "text.h5" in err and not out.exists()


# ---- readable figures ---------------------------------------------------------------------

def test_confusion_matrix_counts_contrast_with_their_cells():
    from h2odl_mpi.evaluation.report_plots import confusion_figure, contrast_ratio, pyplot, text_colour
    plt = pyplot()
    blues = plt.get_cmap("Blues")
    assert text_colour(blues(1.0)) == "white" and text_colour(blues(0.0)) == "black"
    assert contrast_ratio(blues(1.0), (0, 0, 0)) < 3  # what black on the dark cells was
    for k in range(256):
        shade = blues(k / 255)
        rgb = {"white": (1, 1, 1), "black": (0, 0, 0)}[text_colour(shade)]
        assert contrast_ratio(shade, rgb) >= 4.5, k  # WCAG AA everywhere
    fig = confusion_figure(plt, [[90, 3], [12, 80]], ["no", "yes"], "validation")
    colours = {t.get_text(): t.get_color() for t in fig.axes[0].texts}
    plt.close(fig)
    assert colours == {"90": "white", "3": "black", "12": "black", "80": "white"}


def test_long_variable_names_are_shortened_and_fit(binomial):
    from h2odl_mpi.evaluation.report_plots import (LABEL_LIMIT, pyplot, short_labels, shorten,
                                                   varimp_figure)
    assert shorten("short") == "short"
    s = shorten(LONG)
    assert len(s) == LABEL_LIMIT and "\u2026" in s and s.startswith(LONG[:10]) and s.endswith(LONG[-10:])
    twins = [LONG + "_1", LONG.replace("name", "NAME") + "_1"]  # differ in the middle only
    labels = short_labels(twins)
    assert len(set(labels)) == 2 and all(len(x) <= LABEL_LIMIT for x in labels)
    plt = pyplot()
    rows = [{"variable": f"{LONG}_{i}", "scaled_importance": 1 - i / 20} for i in range(20)]
    fig = varimp_figure(plt, rows)
    assert type(fig.get_layout_engine()).__name__ == "ConstrainedLayoutEngine"
    fig.canvas.draw()
    ticks = fig.axes[0].get_yticklabels()
    assert len(ticks) == 20
    for t in ticks:  # every label whole inside the figure
        box = t.get_window_extent()
        assert len(t.get_text()) <= LABEL_LIMIT and box.x0 >= 0 and box.x1 <= WIDTH, t.get_text()
    assert tuple(int(v) for v in fig.canvas.get_width_height()) == (WIDTH, HEIGHT)
    plt.close(fig)
    assert f"<td>{LONG}</td>" in binomial["page"]  # the table keeps the full name
