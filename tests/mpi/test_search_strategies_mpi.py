"""Evolutionary and Halving searches on groups of ranks (under mpirun -n 2 and -n 3): every
planned model claimed and recorded exactly once; Evolutionary proposes the same models in
the same order in two runs of as many groups (whichever group ends first); a Halving
survivor trained in rungs on a group of several ranks has the bits of the model trained at
once on as many ranks."""
import json
import os

import numpy as np
import pytest
from mpi4py import MPI

from h2odl_mpi.model.model_io import load_model
from h2odl_mpi.params import validate
from h2odl_mpi.workflows.search import grid_search, halving
from h2odl_mpi.workflows.search.evolution import Evolution
from h2odl_mpi.workflows.search.grid_file import check_search
from h2odl_mpi.training.trainer import train
from search_data import binary_csv

comm = MPI.COMM_WORLD
HYPER = {"hidden": [[3], [5], [4, 3]], "l1": [0.0, 1e-4, 1e-3, 1e-2]}
RANGES = {"epochs": [1, 40], "l1": {"min": 1e-6, "max": 1e-2, "log": True}, "rate": {"min": 0.001, "max": 0.05}}
N = 8


@pytest.fixture
def tmp(tmp_path_factory):
    return comm.bcast(str(tmp_path_factory.mktemp("strategies")) if comm.rank == 0 else None, root=0)


def _data(tmp, n=400):
    path = f"{tmp}/d.csv"
    if comm.rank == 0:
        binary_csv(path, n)
    comm.Barrier()
    return path


def _fixed(path):
    return {"train": path, "response": "y", "epochs": 3, "seed": 9, "threads": 1, "reproducible": True,
            "train_samples_per_iteration": 100, "variable_importances": False, "stopping_rounds": 0,
            "overwrite_with_best_model": False, "score_interval": 0.0, "adaptive_rate": False,
            "classification_stop": -1.0}  # (no stop at a scoring point, which the clock picks)


def _recorded_once(sd, board):
    """Every planned model has one record and one claim; the leaderboard lists each once."""
    assert board == comm.bcast(board, root=0)
    assert sorted(x["model_id"] for x in board) == [f"model_{i}" for i in range(1, N + 1)]
    assert sorted(os.listdir(f"{sd}/results")) == sorted(f"{k}.json" for k in range(N))
    claims = os.listdir(f"{sd}/claims")
    assert sorted(int(c) for c in claims if c.isdigit()) == list(range(N))
    return [json.load(open(f"{sd}/results/{k}.json")) for k in range(N)]


def _slow_model_number_groups(hyper, crit):
    """A seed whose random models are all of 1 epoch but model number `groups`, of 40: the
    group that claims the first bred model (population >= 2 x groups) has to wait for it."""
    population = max(4, 2 * comm.size)
    for seed in range(10_000):
        rule = Evolution(hyper, dict(crit, seed=seed), seed=seed, groups=comm.size)
        if [rule.draw(j)["epochs"] for j in range(population)] == [40 if j == comm.size else 1
                                                                     for j in range(population)]:
            return seed
    raise AssertionError("no such seed")


@pytest.mark.mpi(min_size=2)
def test_evolutionary_records_every_model_once_and_proposes_the_same_models_again(tmp):
    path = _data(tmp)
    hyper, crit = check_search(RANGES, {"strategy": "Evolutionary", "max_models": N, "mutation_rate": 0.5})
    crit["seed"] = seed = _slow_model_number_groups(hyper, crit)
    runs = []
    for name in ("a", "b"):
        board = grid_search(_fixed(path), RANGES, crit, f"{tmp}/{name}", ranks_per_model=1, comm=comm)
        recs = _recorded_once(f"{tmp}/{name}", board)
        assert all(r["status"] == "done" for r in recs)
        # the first bred model is bred from the slow one (model number `groups`), so its group had
        # to wait for that record whatever the timing (how long it waited is the clock's)
        first_bred = max(4, 2 * comm.size)
        assert comm.size in Evolution(hyper, crit, seed=seed, groups=comm.size).needs(first_bred)
        assert all(r["waited_s"] >= 0 for r in recs)
        runs.append([(r["params"], r["parents"]) for r in recs])
        # each model is what the rule makes of the records of models 0 .. k - groups, all of them
        rule = Evolution(hyper, crit, seed=seed, groups=comm.size)
        by_index = {r["index"]: r for r in recs}
        for r in recs:
            want = rule.propose(r["index"], {j: by_index[j] for j in rule.needs(r["index"])})
            assert (r["params"], r["parents"]) == (want["params"], want["parents"]), r["model_id"]
    assert runs[0] == runs[1]
    assert {r["group"] for r in recs} <= set(range(comm.size))
    assert sum(bool(r["parents"]) for r in recs) == N - max(4, 2 * comm.size)


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("ranks_per_model", ["one", "all"])
def test_halving_records_every_model_once_and_keeps_the_best_fraction(tmp, ranks_per_model):
    path = _data(tmp)
    r = 1 if ranks_per_model == "one" else comm.size
    crit = {"strategy": "Halving", "max_models": N, "seed": 5, "min_epochs": 1, "reduction_factor": 3}
    sd = f"{tmp}/s"
    board = grid_search(_fixed(path), HYPER, crit, sd, ranks_per_model=r, comm=comm)
    recs = _recorded_once(sd, board)
    done = {x["index"] for x in recs if x["status"] == "done"}
    assert {x["status"] for x in recs} <= {"done", "culled"} and done
    rung0 = {k: (0, json.load(open(f"{sd}/rungs/{k}.0.json"))["metrics"]["training"]["logloss"]) for k in range(N)}
    assert set(halving.kept(rung0, 3)) <= done  # the best third of rung 0 went on
    assert sorted(c for c in os.listdir(f"{sd}/claims") if ".r" in c) == sorted(f"{k}.r1" for k in done)
    if r > 1:  # a survivor of a group of all ranks: the bits of the model trained at once on them
        best = next(x for x in recs if x["index"] in done)
        alone = train(validate(dict(_fixed(path), **best["params"], quiet_mode=True)), comm)
        assert np.array_equal(load_model(f"{sd}/{best['model_path']}")[1], alone.model)
