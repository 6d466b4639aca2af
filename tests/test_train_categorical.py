"""Categorical data end to end through the command line: airlines (IsDepDelayed, with its
categorical columns and NA values) trains from the compressed store and predicts."""
import csv

import numpy as np

from h2odl_mpi.cli import main
from h2odl_mpi.model.model_io import load_model


def test_airlines_trains_and_predicts(tmp_path, data_dir):
    data = str(data_dir / "airlines" / "allyears2k_headers.csv.gz")
    model, pred, summary = tmp_path / "air.h5", tmp_path / "p.csv", tmp_path / "s.json"
    assert main(["train", "--train", data, "--response", "IsDepDelayed",
                 "--ignored_columns", "ArrDelay,DepDelay,IsArrDelayed", "--hidden", "20",
                 "--epochs", "1", "--seed", "5", "--threads", "2", "--quiet_mode", "true",
                 "--model_out", str(model), "--summary_json", str(summary)]) == 0
    import json
    s = json.loads(summary.read_text())
    assert s["network"][0] > 1000  # one-hot units of Origin, Dest, TailNum, ... plus numerics
    assert s["metrics"]["training"]["auc"] > 0.6
    _, _, info, _, _ = load_model(str(model))
    assert info.classification and info.domain == ["NO", "YES"]
    assert main(["predict", "--model", str(model), "--data", data, "--out", str(pred)]) == 0
    rows = list(csv.reader(open(pred)))
    assert rows[0] == ["predict", "pNO", "pYES"] and len(rows) == 43979
    p = np.array([[float(v) for v in r[1:]] for r in rows[1:1000]])
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)


def test_balance_classes_resamples_the_minority(tmp_path):
    rng = np.random.default_rng(0)
    n = 2000
    x = rng.normal(size=(n, 2))
    y = np.where(rng.random(n) < 0.05, "rare", "common")  # 5% minority
    path = tmp_path / "imb.csv"
    with open(path, "w") as f:
        f.write("a,b,label\n")
        f.writelines(f"{a:.4f},{b:.4f},{t}\n" for (a, b), t in zip(x, y))
    from h2odl_mpi.params import validate
    from h2odl_mpi.training.trainer import train
    base = {"train": str(path), "response": "label", "hidden": [4], "epochs": 1, "seed": 1,
            "quiet_mode": True, "threads": 1}
    plain = train(validate(base), None)
    bal = train(validate(dict(base, balance_classes=True)), None)
    # the balanced epoch is larger than the data (minority oversampled up to parity) ...
    assert bal["training_samples"] > 1.5 * plain["training_samples"]
    # ... and probabilities are corrected back to the priors, so metrics stay comparable
    assert abs(bal["metrics"]["training"]["logloss"] - plain["metrics"]["training"]["logloss"]) < 0.3
    assert main(["train", "--train", str(path), "--response", "label", "--balance_classes", "true",
                 "--class_sampling_factors", "1,1,1", "--quiet_mode", "true"]) == 2  # wrong count
