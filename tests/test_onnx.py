"""`export --onnx`: ONNX Runtime (requirements-interop.txt) scores the graph from the raw
columns (numbers with NaN for missing, categoricals as strings, "" missing, a level the
training data lacked) as `predict` does, for a binomial, a multinomial, a regression and an
autoencoder model.  Tolerances: class probabilities within 1e-5 (measured: at most 2.4e-7),
values, reconstructions and reconstruction errors within 1e-5 relative (measured: at most
2.1e-7 relative).
"""
import sys

import numpy as np
import pytest

from h2odl_mpi.cli import main
from test_mojo import KINDS, SCORE, TRAIN, ours, read_columns, train_and_export

TOL = 1e-5


@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory):
    """kind -> (model file, its ONNX graph)."""
    return train_and_export(tmp_path_factory.mktemp("onnx"), 6, "--onnx", "onnx")


def run_graph(path):
    """ONNX Runtime on SCORE's raw columns: {output name: array}."""
    import onnx
    import onnxruntime as ort
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    cols = read_columns(SCORE)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {}
    for i in session.get_inputs():
        v = cols[i.name]
        feed[i.name] = (v.astype(object) if i.type == "tensor(string)" else v.astype(np.float32)).reshape(-1, 1)
    assert any(i.type == "tensor(string)" for i in session.get_inputs())
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))


@pytest.mark.parametrize("kind", list(KINDS))
def test_onnx_runtime_scores_as_predict(onnx_models, kind, tmp_path):
    h5, graph = onnx_models[kind]
    got = run_graph(graph)
    want = ours(h5, SCORE, tmp_path / "p.csv")
    if kind in ("binomial", "multinomial"):
        probs = np.column_stack([want[c] for c in want if c != "predict"])
        assert np.abs(got["probabilities"] - probs).max() <= TOL
        assert list(got["label"]) == list(want["predict"])
    elif kind == "regression":
        assert np.abs(got["predict"][:, 0] - want["predict"]).max() <= TOL * np.abs(want["predict"]).max()
    else:
        recon = np.column_stack(list(want.values()))
        assert np.abs(got["reconstruction"] - recon).max() <= TOL * max(1.0, np.abs(recon).max())
        assert main(["predict", "--model", str(h5), "--data", SCORE, "--out", str(tmp_path / "a.csv"),
                     "--anomaly"]) == 0
        mse = read_columns(tmp_path / "a.csv")["Reconstruction.MSE"]
        assert np.abs(got["reconstruction_error"][:, 0] - mse).max() <= TOL * max(1e-3, mse.max())


def test_export_without_onnx_says_how_to_install_it(onnx_models, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)   # (import onnx then raises ImportError)
    out = tmp_path / "m.onnx"
    assert main(["export", "--model", str(onnx_models["binomial"][0]), "--onnx", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install" in err and "onnx" in err
    assert not out.exists()
