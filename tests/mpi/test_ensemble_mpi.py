"""Ensembles on several ranks (pytest-mpi; run with 2 and 3 ranks): built collectively from
a search trained on groups of ranks, the same record on every rank and the weights one
process fits; predict writes the bytes one process writes (from a sharded file and from one
.gz file the ranks read block by block in turn, which each rank then scores a run of) and
evaluate gives one process's metrics; copies of one model predict as that model; members
that do not go together are refused on every rank.  Collective calls come before assertions."""
import gzip
import json
import os
import shutil

import numpy as np
import pytest
from mpi4py import MPI

from h2odl_mpi.workflows import ensemble as E
from h2odl_mpi.errors import UserError
from h2odl_mpi.evaluation.evaluate import evaluate_file
from h2odl_mpi.evaluation.predict import predict_file
from h2odl_mpi.workflows.search import grid_search

comm = MPI.COMM_WORLD
SHAPES = {"hidden": [[4], [6], [5, 3]], "l1": [0.0, 1e-3]}
COPIES = {"variable_importances": [False, True], "max_w2": [3.4028235e38, 1e30]}


def _write(path, n, seed, classes=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = (x[:, 0] + x[:, 1] > 0).astype(int) + ((x[:, 2] > 0.5).astype(int) if classes == 3 else 0)
    with open(path, "w") as f:
        f.write("a,b,c,y\n")
        f.writelines(f"{a:.5f},{b:.5f},{c:.5f},{t}\n" for (a, b, c), t in zip(x, y))


def _fixed(train, valid, **kw):
    return dict({"train": train, "validation": valid, "response": "y", "epochs": 2, "seed": 9, "threads": 1,
                 "reproducible": True, "train_samples_per_iteration": 100, "stopping_rounds": 0,
                 "score_interval": 0.0, "hidden": [5], "variable_importances": False}, **kw)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = comm.bcast(str(tmp_path_factory.mktemp("ens")) if comm.rank == 0 else None, root=0)
    p = {"tmp": tmp, "train": f"{tmp}/t.csv", "valid": f"{tmp}/v.csv", "gz": f"{tmp}/v.csv.gz",
         "train2": f"{tmp}/t2.csv"}
    if comm.rank == 0:
        _write(p["train"], 400, 4)
        _write(p["train2"], 400, 4, classes=2)
        _write(p["valid"], 4000, 5)  # > 2 read blocks of 64 KiB: the ranks take the .gz's in turn
        with open(p["valid"], "rb") as src, gzip.open(p["gz"], "wb") as dst:
            shutil.copyfileobj(src, dst)
    comm.Barrier()
    grid_search(_fixed(p["train"], p["gz"]), SHAPES, {}, f"{tmp}/s", ranks_per_model=1, comm=comm)
    if comm.rank == 0:
        shutil.copytree(f"{tmp}/s", f"{tmp}/serial")
    comm.Barrier()
    return p


@pytest.mark.mpi(min_size=2)
def test_built_on_ranks_as_on_one_process_and_scored_alike(setup):
    tmp = setup["tmp"]
    out = f"{tmp}/e.h5"
    rec = E.build_ensemble(f"{tmp}/s", 3, out, weights="fitted", comm=comm, say=None)
    same = comm.bcast(rec, root=0)
    predict_file(out, setup["valid"], f"{tmp}/p_csv.csv", comm)
    predict_file(out, setup["gz"], f"{tmp}/p_gz.csv", comm)
    perf = evaluate_file(out, setup["gz"], comm=comm, say=lambda s: None).as_dict()
    if comm.rank == 0:
        alone = E.build_ensemble(f"{tmp}/serial", 3, f"{tmp}/e1.h5", weights="fitted", say=None)
        predict_file(out, setup["valid"], f"{tmp}/p_1.csv")
        perf1 = evaluate_file(out, setup["valid"], say=lambda s: None).as_dict()
    comm.Barrier()
    assert {k: v for k, v in rec.items() if k not in ("wall_time_s", "finished")} == \
        {k: v for k, v in same.items() if k not in ("wall_time_s", "finished")}
    assert rec["fitted_on"] == setup["gz"] and rec["members"] == ["model_" + str(i) for i in
                                                                   _order(f"{tmp}/s")][:3]
    if comm.rank == 0:
        assert alone["members"] == rec["members"]
        assert np.allclose(alone["weights"], rec["weights"], rtol=1e-9, atol=1e-12)
        one = open(f"{tmp}/p_1.csv", "rb").read()
        assert open(f"{tmp}/p_csv.csv", "rb").read() == one
        assert open(f"{tmp}/p_gz.csv", "rb").read() == one
        for key in ("logloss", "mse", "classification_error", "mean_per_class_error", "nobs"):
            assert np.isclose(perf[key], perf1[key], rtol=1e-12), key
        assert perf["confusion_matrix"] == perf1["confusion_matrix"]
        assert np.isclose(rec["metrics"]["validation"]["logloss"], perf1["logloss"], rtol=1e-12)
        rows = json.load(open(f"{tmp}/s/leaderboard.json"))
        assert [r["model_id"] for r in rows].count("ensemble_top3") == 1


def _order(sd):
    rows = json.load(open(f"{sd}/leaderboard.json"))
    return [int(r["model_id"].split("_")[1]) for r in rows if not r.get("members")]


@pytest.mark.mpi(min_size=2)
def test_copies_of_one_model_predict_as_that_model_on_ranks(setup):
    tmp = setup["tmp"]
    board = grid_search(_fixed(setup["train"], setup["valid"]), COPIES, {}, f"{tmp}/c", ranks_per_model=comm.size,
                        comm=comm)
    E.build_ensemble(f"{tmp}/c", 4, f"{tmp}/c.h5", weights="fitted", comm=comm, say=None)
    predict_file(f"{tmp}/c.h5", setup["gz"], f"{tmp}/pc.csv", comm)
    predict_file(board[0]["model_path"], setup["gz"], f"{tmp}/p0.csv", comm)
    if comm.rank == 0:
        assert open(f"{tmp}/pc.csv", "rb").read() == open(f"{tmp}/p0.csv", "rb").read()


@pytest.mark.mpi(min_size=2)
def test_members_that_do_not_go_together_are_refused_on_every_rank(setup):
    tmp = setup["tmp"]
    grid_search(_fixed(setup["train2"], None), {"hidden": [[4]]}, {}, f"{tmp}/two", comm=comm,
                ranks_per_model=comm.size)
    if comm.rank == 0:
        shutil.copytree(f"{tmp}/serial", f"{tmp}/mixed")
        rows = [r for r in json.load(open(f"{tmp}/mixed/leaderboard.json")) if not r.get("members")]
        alien = dict(json.load(open(f"{tmp}/two/leaderboard.json"))[0], model_id="model_9")
        with open(f"{tmp}/mixed/leaderboard.json", "w") as f:
            json.dump([rows[0], alien] + rows[1:], f)
    comm.Barrier()
    with pytest.raises(UserError) as e:
        E.build_ensemble(f"{tmp}/mixed", 2, f"{tmp}/m.h5", comm=comm, say=None)
    assert "model_9 cannot join an ensemble" in str(e.value) and "\n" not in str(e.value)
    assert not os.path.exists(f"{tmp}/m.h5")
