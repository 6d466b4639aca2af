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
