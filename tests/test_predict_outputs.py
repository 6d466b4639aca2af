"""predict's outputs as H2O gives them: an autoencoder's reconstruction back in the inputs'
units, each input's squared reconstruction error, and two-class labels at the model's
max-F1 threshold (the final model's validation metrics' when it has them)."""
import csv

import numpy as np
import pytest

from h2odl_mpi.cli import main
from h2odl_mpi.data.frame import Frame
from h2odl_mpi.kernel import Rows
from h2odl_mpi.model.model_io import load_model, save_model
from h2odl_mpi.evaluation.predict import default_threshold, predict_frame, unscale_reconstruction
from h2odl_mpi.data.preprocess import Preprocess
from test_performance import write_data


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("pred") / "d.csv", n=120, seed=4)


@pytest.fixture(scope="module")
def autoencoder(data):
    path = data.replace("d.csv", "ae.h5")
    assert main(["train", "--train", data, "--autoencoder", "true", "--ignored_columns", "k,yn",
                 "--hidden", "5", "--epochs", "2", "--seed", "2", "--reproducible", "true",
                 "--quiet_mode", "true", "--model_out", path]) == 0
    return path


def read(path):
    rows = list(csv.reader(open(path)))
    return rows[0], rows[1:]


def numbers(rows):
    return np.array([[float(v) for v in r] for r in rows])


def network_outputs(model_path, data):
    """(info, transformed inputs x, the network's output for x), computed here in numpy."""
    network, model, info, _, _ = load_model(model_path)
    x = info.expand(Frame.read(data))
    return info, x, network.predict(model, Rows.dense(x), "output", threads=1).astype(np.float64)


def test_reconstruction_is_in_the_inputs_units(autoencoder, data, tmp_path):
    info, x, out = network_outputs(autoencoder, data)
    expect = out.copy()
    for col in info.columns:
        if col.kind == "numeric":  # (v - sub) * mul -> v
            expect[:, col.input] = out[:, col.input] / col.mul + col.sub
    assert main(["predict", "--model", autoencoder, "--data", data, "--out", str(tmp_path / "p.csv")]) == 0
    assert main(["predict", "--model", autoencoder, "--data", data, "--out", str(tmp_path / "r.csv"),
                 "--reconstruction"]) == 0
    header, rows = read(tmp_path / "p.csv")
    assert (tmp_path / "p.csv").read_bytes() == (tmp_path / "r.csv").read_bytes()
    assert header[:3] == ["reconstr_a", "reconstr_b", "reconstr_c"] and "reconstr_g.u" in header
    assert header == [f"reconstr_{n}" for n in info.input_names]
    np.testing.assert_allclose(numbers(rows), expect, rtol=1e-12, atol=1e-12)
    # a perfect reconstruction would give the data back: the numeric columns as in the file
    raw = np.loadtxt(data, delimiter=",", skiprows=1, usecols=(0, 1, 2))
    np.testing.assert_allclose(unscale_reconstruction(info, x)[:, :3], raw, rtol=1e-6, atol=1e-6)


def test_per_feature_errors_and_their_mean(autoencoder, data, tmp_path):
    info, x, out = network_outputs(autoencoder, data)
    se, mse = tmp_path / "se.csv", tmp_path / "mse.csv"
    assert main(["predict", "--model", autoencoder, "--data", data, "--out", str(se), "--anomaly",
                 "--per_feature"]) == 0
    assert main(["predict", "--model", autoencoder, "--data", data, "--out", str(mse), "--anomaly"]) == 0
    header, rows = read(se)
    assert header == [f"reconstr_{n}.SE" for n in info.input_names]
    errors = numbers(rows)
    np.testing.assert_allclose(errors, (out - x.astype(np.float64)) ** 2, rtol=1e-12, atol=1e-15)
    header, rows = read(mse)
    assert header == ["Reconstruction.MSE"]
    np.testing.assert_allclose(errors.mean(1), numbers(rows)[:, 0], rtol=1e-5)


def test_unscaling_inverts_every_numeric_encoding(data):
    for encoding in ("Binary", "LabelEncoder"):
        frame = Frame.read(data)
        info = Preprocess.fit(frame, {"autoencoder": True, "categorical_encoding": encoding,
                                      "ignored_columns": ["k", "yn"]})
        back = unscale_reconstruction(info, info.expand(frame))
        codes = frame.decode("g")
        g = next(c for c in info.columns if c.name == "g")
        if encoding == "LabelEncoder":
            np.testing.assert_allclose(back[:, g.input], codes, atol=1e-6)
        else:  # bit b of level + 1
            bits = ((codes.astype(int)[:, None] + 1) >> np.arange(g.width)) & 1
            np.testing.assert_allclose(back[:, g.input:g.input + g.width], bits, atol=1e-6)


def test_autoencoder_outputs_need_an_autoencoder(data, tmp_path, capfd):
    model = str(tmp_path / "b.h5")
    assert main(["train", "--train", data, "--response", "yn", "--ignored_columns", "k,r", "--hidden", "4",
                 "--epochs", "1", "--quiet_mode", "true", "--model_out", model]) == 0
    for flags, needle in ((["--reconstruction"], "--reconstruction needs an autoencoder model"),
                          (["--anomaly"], "--anomaly needs an autoencoder model"),
                          (["--per_feature"], "--per_feature: only with anomaly")):
        capfd.readouterr()
        out = str(tmp_path / "p.csv")
        assert main(["predict", "--model", model, "--data", data, "--out", out] + flags) == 2
        err = capfd.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "p.csv").exists()


def test_two_classes_are_labelled_at_the_models_max_f1_threshold(data, tmp_path):
    trained = str(tmp_path / "b.h5")
    assert main(["train", "--train", data, "--response", "yn", "--ignored_columns", "k,r", "--hidden", "6",
                 "--epochs", "2", "--seed", "3", "--reproducible", "true", "--quiet_mode", "true",
                 "--model_out", trained]) == 0
    network, model, info, params, attrs = load_model(trained)
    p1 = predict_frame(network, model, info, Frame.read(data))[1][:, 2].astype(np.float64)
    t = float(np.sort(p1[p1 < 0.5])[len(p1[p1 < 0.5]) // 3])  # rows in [t, 0.5): labelled 1 here, 0 by argmax
    # a model file whose final validation metrics put the max-F1 threshold at t (training's elsewhere)
    history = [{"iteration": 1.0, "training_threshold": 0.97, "training_logloss": 0.4,
                "validation_threshold": t, "validation_logloss": 0.5}]
    constructed = str(tmp_path / "t.h5")
    save_model(constructed, network, model, info, params,
               {k: attrs[k] for k in ("epochs", "training_samples", "iterations")}, history)
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", constructed, "--data", data, "--out", str(out)]) == 0
    header, rows = read(out)
    labels = np.array([r[0] for r in rows])
    np.testing.assert_array_equal(labels, np.where(p1 >= t, "yes", "no"))
    assert ((p1 >= t) & (p1 < 0.5)).sum() > 0  # where max-F1 labelling and argmax differ
    # the trained model's own file: its final training metrics' threshold
    assert main(["predict", "--model", trained, "--data", data, "--out", str(out)]) == 0
    t0 = default_threshold(attrs["history"], params)
    assert t0 in [r["training_threshold"] for r in attrs["history"]] and t0 != 0.5
    np.testing.assert_array_equal(np.array([r[0] for r in read(out)[1]]), np.where(p1 >= t0, "yes", "no"))


def test_default_threshold_follows_the_final_model():
    rows = [{"training_logloss": 0.3, "training_threshold": 0.2},
            {"training_logloss": 0.5, "training_threshold": 0.7}]
    assert default_threshold(rows, {"overwrite_with_best_model": False}) == 0.7   # the last model
    assert default_threshold(rows, {"overwrite_with_best_model": True}) == 0.2    # the best one
    assert default_threshold(rows, {"overwrite_with_best_model": True,
                                    "stopping_metric": "misclassification"}) == 0.7  # no error: last
    with_valid = [dict(r, validation_logloss=v, validation_threshold=t)
                  for r, v, t in zip(rows, (0.6, 0.4), (0.35, 0.45))]
    assert default_threshold(with_valid, {}) == 0.45  # validation picks and gives the threshold
    assert default_threshold([], {}) == 0.5 and default_threshold(None, None) == 0.5
    assert default_threshold([{"training_threshold": float("nan")}], {}) == 0.5
