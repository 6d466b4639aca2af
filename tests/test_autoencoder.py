"""The booklet's ECG autoencoder (section 7.2): the 3 anomalous heartbeats at the end of
the test file get the 3 largest reconstruction errors."""
import numpy as np

from h2odl_mpi.cli import main


def test_ecg_anomalies_rank_highest(tmp_path, data_dir):
    model, out = tmp_path / "ae.h5", tmp_path / "anomaly.csv"
    assert main(["train", "--train", str(data_dir / "ecg" / "ecg_discord_train.csv"),
                 "--autoencoder", "true", "--activation", "Tanh", "--hidden", "50,20,50",
                 "--l1", "1e-4", "--epochs", "100", "--seed", "7", "--quiet_mode", "true",
                 "--model_out", str(model)]) == 0
    assert main(["predict", "--model", str(model), "--data", str(data_dir / "ecg" / "ecg_discord_test.csv"),
                 "--out", str(out), "--anomaly"]) == 0
    err = np.loadtxt(out, skiprows=1)
    assert len(err) == 23
    assert sorted(np.argsort(err)[-3:]) == [20, 21, 22]
    assert err[20:].min() > 10 * np.median(err[:20])


def test_deepfeatures_have_the_layer_width(tmp_path, data_dir):
    model, out = tmp_path / "ae.h5", tmp_path / "df.csv"
    assert main(["train", "--train", str(data_dir / "ecg" / "ecg_discord_train.csv"),
                 "--autoencoder", "true", "--activation", "Tanh", "--hidden", "8,3,8",
                 "--epochs", "5", "--seed", "1", "--quiet_mode", "true", "--model_out", str(model)]) == 0
    assert main(["predict", "--model", str(model), "--data", str(data_dir / "ecg" / "ecg_discord_test.csv"),
                 "--out", str(out), "--deepfeatures", "1"]) == 0
    lines = open(out).read().splitlines()
    assert lines[0].split(",") == ["DF.L2.C1", "DF.L2.C2", "DF.L2.C3"]
    vals = np.loadtxt(out, skiprows=1, delimiter=",")
    assert vals.shape == (23, 3) and np.all(np.abs(vals) <= 1.0)  # Tanh range
