"""Variable importances (Gedeon 1997, as H2O computes them): the vectorised version against
the triple loop written from the definition, and what a trained model reports."""
import h5py
import numpy as np
import pytest

from h2odl_mpi.model.importance import gedeon, table
from h2odl_mpi.kernel import NetConfig, Network
from h2odl_mpi.model.model_io import load_model
from h2odl_mpi.params import validate
from h2odl_mpi.training.trainer import train


def loops(w1, w2):
    """The definition, one product at a time (w1: hidden x inputs, w2: next x hidden)."""
    n_in, n_hid, n_out = w1.shape[1], w1.shape[0], w2.shape[0]
    sum_wj = [sum(abs(w1[j, i]) for i in range(n_in)) for j in range(n_hid)]
    sum_wk = [sum(abs(w2[k, j]) for j in range(n_hid)) for k in range(n_out)]
    q = [[sum(abs(w1[j, i]) / sum_wj[j] * abs(w2[k, j]) / sum_wk[k] for j in range(n_hid))
          for k in range(n_out)] for i in range(n_in)]
    for k in range(n_out):
        col = sum(q[i][k] for i in range(n_in))
        for i in range(n_in):
            q[i][k] /= col
    vi = [sum(row) for row in q]
    return np.array(vi) / max(vi)


@pytest.mark.parametrize("activation, hidden", [("Tanh", [5, 4]), ("Rectifier", [6]), ("Maxout", [4, 3])])
def test_gedeon_matches_the_definition(activation, hidden):
    net = Network(NetConfig(units=[7] + hidden + [3], activation=activation, output="softmax",
                            loss="Quadratic"))
    model = net.new_model(3)
    w1 = net.view(model, "weights", 0).astype(np.float64)
    w2 = net.view(model, "weights", 1).astype(np.float64)
    if activation == "Maxout":  # channels of a unit count together
        w1 = np.abs(w1).reshape(hidden[0], 2, 7).sum(axis=1)
        w2 = np.abs(w2).reshape(hidden[1], 2, hidden[0]).sum(axis=1)
    got = gedeon(net, model)
    np.testing.assert_allclose(got, loops(w1, w2), rtol=1e-12)
    assert got.max() == 1.0 and got.shape == (7,)


def test_table_is_sorted_and_normalised():
    rows = table(["a", "b", "c"], [0.5, 1.0, 0.25])
    assert [r["variable"] for r in rows] == ["b", "a", "c"]
    assert [r["scaled_importance"] for r in rows] == [1.0, 0.5, 0.25]
    assert abs(sum(r["percentage"] for r in rows) - 1.0) < 1e-12


def test_the_informative_column_ranks_first(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 5))
    path = tmp_path / "d.csv"
    with open(path, "w") as f:
        f.write("n1,n2,signal,n3,n4,y\n")
        f.writelines(",".join(f"{v:.4f}" for v in row) + f",{'up' if row[2] > 0 else 'down'}\n" for row in x)
    model = tmp_path / "m.h5"
    s = train(validate({"train": str(path), "response": "y", "hidden": [16, 16], "epochs": 5, "seed": 1,
                        "l1": 1e-4, "quiet_mode": True, "model_out": str(model)}))
    vi = s["variable_importances"]
    assert vi[0]["variable"] == "signal" and vi[0]["scaled_importance"] == 1.0
    assert vi[1]["scaled_importance"] < 0.8
    assert load_model(str(model))[4]["variable_importances"] == vi
    with h5py.File(model, "r") as f:
        assert f["variable_importances/variable"][0] == b"signal"
    s = train(validate({"train": str(path), "response": "y", "hidden": [4], "epochs": 1, "seed": 1,
                        "quiet_mode": True, "variable_importances": False}))
    assert s["variable_importances"] is None
