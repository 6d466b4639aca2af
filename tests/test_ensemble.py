"""Ensembles of a search's best models (h2odl_mpi.workflows.ensemble) on one rank: copies of one model
predict as that model bit for bit; NNLS recovers known weights; fitted ensembles predict the
weighted mean of their members; the file is a model for predict and evaluate; members that
do not go together are refused in one line; the ensemble's row joins the leaderboard and
stays there when the search is continued; cross-validation holdouts fit the weights."""
import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from h2odl_mpi.workflows import ensemble as E
from h2odl_mpi.errors import UserError
from h2odl_mpi.evaluation.evaluate import evaluate_file
from h2odl_mpi.data.frame import Frame
from h2odl_mpi.model.model_io import load_model
from h2odl_mpi.evaluation.predict import load_for_scoring, predict_file, predict_frame
from h2odl_mpi.workflows.search import grid_search

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# hyper-parameters that do not change the weights: four copies of one model
COPIES = {"variable_importances": [False, True], "max_w2": [3.4028235e38, 1e30]}
SHAPES = {"hidden": [[4], [6], [5, 3]], "l1": [0.0, 1e-3]}


def _csv(path, n, seed, kind):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    if kind == "multinomial":
        y = [str(int(a + b > 0) + int(c > 0.5)) for a, b, c in x]
    elif kind == "binomial":
        y = [str(int(a + b + 0.5 * rng.normal() > 0)) for a, b, _c in x]
    else:
        y = [f"{2 * a - b + 0.3 * c * c + 0.1 * rng.normal():.5f}" for a, b, c in x]
    with open(path, "w") as f:
        f.write("a,b,c,y\n")
        f.writelines(f"{a:.5f},{b:.5f},{c:.5f},{t}\n" for (a, b, c), t in zip(x, y))
    return str(path)


def _fixed(train, valid=None, **kw):
    p = {"train": train, "response": "y", "epochs": 2, "seed": 9, "threads": 1, "reproducible": True,
         "train_samples_per_iteration": 100, "stopping_rounds": 0, "score_interval": 0.0, "hidden": [5],
         "variable_importances": False}
    if valid:
        p["validation"] = valid
    p.update(kw)
    return p


def _search(tmp, kind, hyper, name="s", **kw):
    train = _csv(tmp / f"{kind}_t.csv", 400, 4, kind)
    valid = _csv(tmp / f"{kind}_v.csv", 200, 5, kind)
    sd = str(tmp / name)
    board = grid_search(_fixed(train, valid, **kw), hyper, {}, sd)
    return sd, train, valid, board


# ---- copies of one model ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["multinomial", "binomial", "regression"])
def test_k_copies_of_one_model_predict_as_that_model_bit_for_bit(tmp_path, kind):
    sd, _train, valid, board = _search(tmp_path, kind, COPIES)
    models = [load_model(r["model_path"])[1] for r in board]
    assert all(np.array_equal(models[0], m) for m in models)  # (the premise: four equal models)
    predict_file(board[0]["model_path"], valid, str(tmp_path / "one.csv"))
    alone = evaluate_file(board[0]["model_path"], valid, say=lambda s: None).to_json()
    for weights in ("equal", "fitted"):
        out = str(tmp_path / f"e_{weights}.h5")
        rec = E.build_ensemble(sd, 3, out, weights=weights, say=None)
        assert rec["members"] == [r["model_id"] for r in board[:3]]
        assert np.isclose(sum(rec["weights"]), 1.0) and min(rec["weights"]) >= 0
        predict_file(out, valid, str(tmp_path / "ens.csv"))
        assert (tmp_path / "ens.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
        assert evaluate_file(out, valid, say=lambda s: None).to_json() == alone  # (NaN as null)


# ---- the weights -----------------------------------------------------------------------------

@pytest.mark.parametrize("use_scipy", [True, False])
def test_nnls_recovers_known_weights(use_scipy):
    rng = np.random.default_rng(1)
    truth = np.array([0.5, 0.0, 0.3, 0.2, 0.0])
    outs = [rng.normal(size=(500, 1)) for _ in truth]
    y = sum(a * o[:, 0] for a, o in zip(truth, outs))
    gram, c = E.normal_equations(outs, y, None, classification=False)
    got = E.fit_weights(gram, c, use_scipy=use_scipy)
    assert np.allclose(got, truth, atol=1e-9), got
    # a member's copy: the weight is shared between the two, in sum the same
    outs2 = outs + [outs[0]]
    gram, c = E.normal_equations(outs2, y, None, classification=False)
    got = E.fit_weights(gram, c, use_scipy=use_scipy)
    assert np.isclose(got[0] + got[-1], 0.5, atol=1e-8) and np.allclose(got[1:5], truth[1:], atol=1e-8)


def test_nnls_scipy_and_numpy_agree_where_weights_hit_zero():
    rng = np.random.default_rng(2)
    for _ in range(20):
        k = int(rng.integers(2, 7))
        outs = [rng.normal(size=(200, 1)) for _ in range(k)]
        y = rng.normal(size=200) - 0.5 * outs[0][:, 0]
        gram, c = E.normal_equations(outs, y, rng.random(200), classification=False)
        a, b = E.nnls_weights(gram, c, use_scipy=True), E.nnls_weights(gram, c, use_scipy=False)
        assert np.allclose(a, b, atol=1e-9) and np.all(a >= 0)
        grad = c - gram @ b  # KKT: no improving direction
        assert np.all(grad <= 1e-8 * np.abs(c).max()) and np.allclose(grad[b > 0], 0, atol=1e-8 * np.abs(c).max())


def test_classification_normal_equations_are_the_stacked_per_class_problem():
    rng = np.random.default_rng(3)
    outs = [rng.dirichlet(np.ones(3), size=50) for _ in range(3)]
    y, w = rng.integers(0, 3, size=50).astype(float), rng.random(50)
    gram, c = E.normal_equations(outs, y, w, classification=True)
    a = np.column_stack([o.reshape(-1) for o in outs]) * np.repeat(np.sqrt(w), 3)[:, None]
    t = np.eye(3)[y.astype(int)].reshape(-1) * np.repeat(np.sqrt(w), 3)
    assert np.allclose(gram, a.T @ a) and np.allclose(c, a.T @ t)


def test_fitted_ensemble_predicts_the_weighted_mean_of_its_members(tmp_path):
    sd, _train, valid, board = _search(tmp_path, "multinomial", SHAPES)
    out = str(tmp_path / "e.h5")
    rec = E.build_ensemble(sd, 4, out, weights="fitted", say=None)
    assert rec["fitted_on"] == valid and len(rec["weights"]) == 4
    w = np.array(rec["weights"])
    assert np.isclose(w.sum(), 1.0) and np.all(w >= 0) and np.count_nonzero(w) >= 2
    frame = Frame.read(valid)
    network, model, info, _p, _a = load_for_scoring(out)
    _h, got = predict_frame(network, model, info, frame)
    want = 0.0
    for weight, mid in zip(w, rec["members"]):
        path = next(r["model_path"] for r in board if r["model_id"] == mid)
        n, m, i, _p, _a = load_model(path)
        want = want + weight * predict_frame(n, m, i, frame)[1][:, 1:].astype(float)
    assert np.allclose(got[:, 1:].astype(float), want, rtol=0, atol=1e-12)
    # fitted on the validation data: no worse there than equal weights (the Brier score it minimises)
    equal = E.build_ensemble(sd, 4, str(tmp_path / "q.h5"), say=None)
    assert rec["metrics"]["validation"]["mse"] <= equal["metrics"]["validation"]["mse"] + 1e-12


def test_regression_ensemble_on_data_given(tmp_path):
    sd, train, valid, board = _search(tmp_path, "regression", SHAPES)
    other = _csv(tmp_path / "other.csv", 300, 6, "regression")
    rec = E.build_ensemble(sd, 3, str(tmp_path / "e.h5"), weights="fitted", data=other, say=None)
    assert rec["fitted_on"] == other and rec["metrics"]["validation"]["nobs"] == 200
    perf = evaluate_file(str(tmp_path / "e.h5"), valid, say=lambda s: None)
    assert np.isclose(perf.rmse(), rec["metrics"]["validation"]["rmse"], rtol=1e-12)


# ---- the file --------------------------------------------------------------------------------

def test_the_file_is_plain_hdf5_with_the_members_and_weights(tmp_path):
    sd, _train, valid, board = _search(tmp_path, "binomial", SHAPES)
    out = tmp_path / "e.h5"
    rec = E.build_ensemble(sd, 2, str(out), weights="fitted", say=None)
    with h5py.File(out, "r") as f:
        assert f.attrs["format"] == E.FORMAT and f.attrs["ensemble"] == "weighted_mean"
        assert list(f["ensemble/weights"][()]) == rec["weights"]
        assert [v.decode() for v in f["ensemble/model_ids"][()]] == rec["members"]
        member = f["ensemble/members/member_0"][()].tobytes()
    first = next(r["model_path"] for r in board if r["model_id"] == rec["members"][0])
    with open(first, "rb") as fh:
        assert member == fh.read()
    # a flipped byte is found
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "bad.h5").write_bytes(bytes(data))
    with pytest.raises(UserError, match="bad.h5"):
        load_for_scoring(str(tmp_path / "bad.h5"))
    with pytest.raises(UserError, match="an ensemble gives its members' averaged predictions only"):
        predict_file(str(out), valid, str(tmp_path / "p.csv"), anomaly=True)


# ---- refusals --------------------------------------------------------------------------------

def test_members_with_another_response_or_classes_are_refused_in_one_line(tmp_path):
    sd, _t, valid, board = _search(tmp_path, "multinomial", {"hidden": [[4], [6]]})
    _sd2, _t2, _v2, other = _search(tmp_path, "binomial", {"hidden": [[4]]}, name="s2")
    rows = json.loads(open(os.path.join(sd, "leaderboard.json")).read())
    alien = dict(other[0], model_id="model_9", rank=2)
    (tmp_path / "s" / "leaderboard.json").write_text(json.dumps([rows[0], alien, rows[1]]))
    out = tmp_path / "e.h5"
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, "-m", "h2odl_mpi", "ensemble", "--search", sd, "--top", "2",
                        "--model_out", str(out)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "model_9 cannot join an ensemble with model_1" in r.stderr and "classes 0,1" in r.stderr
    assert not out.exists()
    assert not os.path.exists(os.path.join(sd, "search.lock"))  # (released)


def test_autoencoders_and_bad_requests_are_refused(tmp_path):
    train = _csv(tmp_path / "t.csv", 200, 4, "binomial")
    sd = str(tmp_path / "ae")
    grid_search(_fixed(train, autoencoder=True, response=None, ignored_columns=["y"]), {"hidden": [[2], [3]]}, {}, sd)
    with pytest.raises(UserError, match="model_1 is an autoencoder"):
        E.build_ensemble(sd, 2, str(tmp_path / "e.h5"), say=None)
    sd, _t, valid, board = _search(tmp_path, "binomial", {"hidden": [[4], [6]]}, name="s")
    with pytest.raises(UserError, match=r"--top 3: the leaderboard of .* has 2 finished model\(s\)"):
        E.build_ensemble(sd, 3, str(tmp_path / "e.h5"), say=None)
    with pytest.raises(UserError, match="--model_out .*model.h5: is the model_1 model file"):
        E.build_ensemble(sd, 2, board[0]["model_path"], say=None)
    with pytest.raises(UserError, match="--model_out .*: no such directory"):
        E.build_ensemble(sd, 2, str(tmp_path / "nowhere" / "e.h5"), say=None)
    with pytest.raises(UserError, match="--weights: must be one of equal, fitted"):
        E.build_ensemble(sd, 2, str(tmp_path / "e.h5"), weights="stacked", say=None)
    nov = str(tmp_path / "nov")
    grid_search(_fixed(train), {"hidden": [[4], [6]]}, {}, nov)
    with pytest.raises(UserError, match="--weights fitted: no data to fit on"):
        E.build_ensemble(nov, 2, str(tmp_path / "e.h5"), weights="fitted", say=None)
    rec = E.build_ensemble(nov, 2, str(tmp_path / "e.h5"), say=None)  # equal: scored on the training data
    assert list(rec["metrics"]) == ["training"] and rec["metrics"]["training"]["nobs"] == 200
    assert not (tmp_path / "nowhere").exists()


# ---- the leaderboard -------------------------------------------------------------------------

def test_the_ensemble_row_joins_the_leaderboard_and_the_search_keeps_it(tmp_path):
    sd, train, valid, board = _search(tmp_path, "multinomial", SHAPES)
    best = open(os.path.join(sd, "best_model.h5"), "rb").read()
    rec = E.build_ensemble(sd, 3, str(tmp_path / "e.h5"), weights="fitted", say=None)
    rows = json.loads(open(os.path.join(sd, "leaderboard.json")).read())
    assert len(rows) == len(board) + 1 and [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    row = next(r for r in rows if r["model_id"] == "ensemble_top3")
    assert row["status"] == "done" and row["members"] == rec["members"] and row["weights"] == rec["weights"]
    assert row["sort_metric"] == "validation_logloss" and row["sort_value"] == rec["metrics"]["validation"]["logloss"]
    values = [r["sort_value"] for r in rows]
    assert values == sorted(values)
    text = open(os.path.join(sd, "leaderboard.csv")).read().splitlines()
    assert text[0].endswith(",members,weights") and any(line.split(",")[1] == "ensemble_top3" for line in text)
    assert open(os.path.join(sd, "best_model.h5"), "rb").read() == best  # the best single model
    # the search continued (nothing left to train) rewrites the board from its records: the row stays
    again = grid_search(_fixed(train, valid), SHAPES, {}, sd)
    assert [r["model_id"] for r in again] == [r["model_id"] for r in rows]
    # built again: replaced, not added
    E.build_ensemble(sd, 3, str(tmp_path / "e.h5"), say=None)
    rows = json.loads(open(os.path.join(sd, "leaderboard.json")).read())
    assert [r["model_id"] for r in rows].count("ensemble_top3") == 1
    assert next(r for r in rows if r["model_id"] == "ensemble_top3")["weights"] == [1 / 3] * 3


def test_cross_validation_holdout_predictions_fit_the_weights(tmp_path):
    sd, _train, _valid, board = _search(tmp_path, "binomial", {"hidden": [[4], [6], [3]]}, nfolds=2,
                                        fold_assignment="Modulo", keep_cross_validation_predictions=True)
    rec = E.build_ensemble(sd, 3, str(tmp_path / "e.h5"), weights="fitted", say=None)
    assert rec["fitted_on"] == "cross-validation holdout predictions"
    assert set(rec["metrics"]) == {"validation", "cross_validation"}
    holdouts = []
    for mid in rec["members"]:
        path = os.path.join(sd, "models", mid, "model_cv_holdout_predictions.csv")
        holdouts.append(np.loadtxt(path, delimiter=",", skiprows=1, usecols=(1, 2)))
    y = np.loadtxt(tmp_path / "binomial_t.csv", delimiter=",", skiprows=1, usecols=3)
    p = sum(w * h for w, h in zip(rec["weights"], holdouts))[:, 1]
    logloss = -np.mean(np.log(np.clip(np.where(y == 1, p, 1 - p), 1e-15, None)))
    assert np.isclose(rec["metrics"]["cross_validation"]["logloss"], logloss, rtol=1e-9)
    rows = json.loads(open(os.path.join(sd, "leaderboard.json")).read())
    assert next(r for r in rows if r["model_id"] == "ensemble_top3")["sort_metric"] == "cross_validation_logloss"


def test_a_running_search_is_not_raced(tmp_path):
    sd, _t, _v, _board = _search(tmp_path, "binomial", {"hidden": [[4], [6]]})
    from h2odl_mpi.atomic import LockFile
    lock = LockFile(os.path.join(sd, "search.lock")).acquire()
    try:
        with pytest.raises(UserError, match="is in use by a running search"):
            E.build_ensemble(sd, 2, str(tmp_path / "e.h5"), say=None)
    finally:
        lock.release()
    shutil.rmtree(os.path.join(sd, "models", "model_2"))
    with pytest.raises(UserError, match="model_2: its model file is not there"):
        E.build_ensemble(sd, 2, str(tmp_path / "e.h5"), say=None)
