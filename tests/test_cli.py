"""The command line on one process: flags with H2O's names, errors that name the culprit,
the summary JSON, the HDF5 model file and predictions."""
import csv
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from h2odl_mpi.cli import main
from h2odl_mpi.model.model_io import load_model


def _small_csv(path, n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    with open(path, "w") as f:
        f.write("a,b,c,d,label\n")
        for row, t in zip(x, y):
            f.write(",".join(f"{v:.5f}" for v in row) + f",{'yes' if t else 'no'}\n")
    return path


def test_train_writes_summary_and_model(tmp_path, capsys):
    data = _small_csv(tmp_path / "d.csv")
    summary, model = tmp_path / "s.json", tmp_path / "m.h5"
    rc = main(["train", "--train", str(data), "--validation", str(data), "--response", "label",
               "--hidden", "16", "--epochs", "5", "--seed", "3", "--summary-json", str(summary),
               "--model_out", str(model), "--input-dropout-ratio", "0.1", "--l1", "1e-5"])
    assert rc == 0
    s = json.loads(summary.read_text())
    for key in ("training_samples", "training_time_s", "samples_per_s", "epochs", "iterations",
                "n_ranks", "threads_per_rank", "comm_fraction", "train_samples_per_iteration"):
        assert key in s
    assert s["training_samples"] == 1500 and s["n_ranks"] == 1
    val = s["metrics"]["validation"]
    assert val["classification_error"] < 0.1 and 0.9 < val["auc"] <= 1.0
    assert {"logloss", "mse", "rmse"} <= set(val)
    out = capsys.readouterr().out
    assert "samples/s" in out and "epochs" in out
    with h5py.File(model, "r") as f:  # plain HDF5
        assert list(f["network"].attrs["units"]) == [4, 16, 2]
        assert f["network/layer_0/weights"].shape == (16, 4)
        assert [s.decode() for s in f["preprocess/domain"][...]] == ["no", "yes"]
    network, buf, info, params, _ = load_model(str(model))
    assert params["input_dropout_ratio"] == 0.1 and info.classification


def test_predict_matches_model(tmp_path):
    data = _small_csv(tmp_path / "d.csv")
    model, pred = tmp_path / "m.h5", tmp_path / "p.csv"
    assert main(["--train", str(data), "--response", "label", "--hidden", "8", "--epochs", "3",
                 "--model_out", str(model), "--quiet_mode", "true"]) == 0  # no subcommand: train
    assert main(["predict", "--model", str(model), "--data", str(data), "--out", str(pred)]) == 0
    rows = list(csv.reader(open(pred)))
    assert rows[0] == ["predict", "pno", "pyes"] and len(rows) == 301
    p = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
    from h2odl_mpi.evaluation.predict import default_threshold  # H2O labels at the max-F1 threshold
    _, _, _, params, attrs = load_model(str(model))
    t = default_threshold(attrs["history"], params)
    assert t in [r["training_threshold"] for r in attrs["history"]]
    assert all(r[0] == ("yes" if float(r[2]) >= t else "no") for r in rows[1:])


@pytest.mark.parametrize("argv, needle", [
    (["--epochz", "2"], "--epochz"),
    (["--epochs", "-1"], "epochs"),
    (["--activation", "Relu"], "activation"),
    (["--hidden_dropout_ratios", "0.5"], "hidden_dropout_ratios"),
    (["--adaptive_rate", "maybe"], "adaptive_rate"),
    (["--rho", "1.5"], "rho"),
    (["--nfolds", "1"], "nfolds"),
    (["--hiden", "3"], "error: unrecognized argument --hiden (did you mean --hidden?)"),
    (["--input-dropout-ration", "0.1"], "(did you mean --input-dropout-ratio?)"),
    (["--sparsity_beta", "0.1"], "error: --sparsity_beta: not supported in this version ("),
])
def test_bad_parameters_name_themselves(tmp_path, argv, needle):
    data = _small_csv(tmp_path / "d.csv", n=20)
    cmd = [sys.executable, "-m", "h2odl_mpi", "train", "--train", str(data), "--response", "label"] + argv
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.splitlines()) == 1 and "usage:" not in r.stderr, r.stderr  # one line, never the usage


@pytest.mark.parametrize("content, needle", [
    (None, "no such file"),
    ("", "empty"),
    ("a,b,label\n", "no data rows"),
])
def test_bad_files_name_the_file(tmp_path, content, needle):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_text(content)
    r = subprocess.run([sys.executable, "-m", "h2odl_mpi", "train", "--train", str(path),
                        "--response", "label"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and needle in r.stderr and "bad.csv" in r.stderr, r.stderr


def test_missing_response_column_is_named(tmp_path):
    data = _small_csv(tmp_path / "d.csv", n=20)
    r = subprocess.run([sys.executable, "-m", "h2odl_mpi", "--train", str(data), "--response", "nope"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "'nope'" in r.stderr


def test_h2o_frame_and_response_names_are_accepted(tmp_path, capsys):
    data = _small_csv(tmp_path / "d.csv")
    summary = tmp_path / "s.json"
    assert main(["--training_frame", str(data), "--validation-frame", str(data), "--response_column", "label",
                 "--hidden", "4", "--epochs", "1", "--quiet_mode", "true", "--summary_json", str(summary)]) == 0
    s = json.loads(summary.read_text())
    assert s["training_samples"] == 300 and s["metrics"]["validation"]["nobs"] == 300
    from h2odl_mpi.errors import UserError
    from h2odl_mpi.params import validate
    with pytest.raises(UserError, match="training_frame and train are the same parameter"):
        validate({"train": "a.csv", "training_frame": "b.csv", "response": "label"})
    assert validate({"training_frame": "a.csv", "response_column": "y"})["train"] == "a.csv"
    toml = tmp_path / "run.toml"
    toml.write_text(f'training_frame = "{data}"\nresponse_column = "label"\nhidden = [3]\nepochs = 1\n')
    assert main(["--config", str(toml), "--quiet_mode", "true", "--summary_json", str(summary)]) == 0
    assert json.loads(summary.read_text())["network"] == [4, 3, 2]
    assert main(["--training_frame", str(data), "--response_column", "label", "--max_hit_ratio_k", "3"]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("error: --max_hit_ratio_k: not supported in this "
                                                               "version (")


def test_a_misspelt_parameter_in_the_python_api_gets_a_suggestion():
    from h2odl_mpi.errors import UserError
    from h2odl_mpi.params import validate
    with pytest.raises(UserError, match=r"unknown parameter 'hiden' \(did you mean hidden\?\)"):
        validate({"train": "a.csv", "response": "y", "hiden": [3]})
    with pytest.raises(UserError, match=r"unknown parameter 'zzzz'$"):
        validate({"train": "a.csv", "response": "y", "zzzz": 1})
