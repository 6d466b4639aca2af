"""Grid search on groups of ranks (under mpirun -n 2 and -n 3): every combination trained
exactly once whatever the ranks per model, with the metrics of the model trained alone on
as many ranks; a search of 2 groups stopped by SIGTERM to mpirun and continued."""
import json
import os
import signal
import time

import pytest
from mpi4py import MPI

from h2odl_mpi.params import validate
from h2odl_mpi.workflows.search import grid_search
from h2odl_mpi.training.trainer import train
from nested import finish, launch, on_rank0
from search_data import binary_csv

comm = MPI.COMM_WORLD
HYPER = {"hidden": [[4], [6, 3]], "l1": [0.0, 1e-3]}


@pytest.fixture
def tmp(tmp_path_factory):
    return comm.bcast(str(tmp_path_factory.mktemp("grid")) if comm.rank == 0 else None, root=0)


def _data(tmp, n=400):
    path = f"{tmp}/d.csv"
    if comm.rank == 0:
        binary_csv(path, n)
    comm.Barrier()
    return path


def _fixed(path):
    return {"train": path, "response": "y", "epochs": 2, "seed": 9, "threads": 1, "reproducible": True,
            "train_samples_per_iteration": 100, "variable_importances": False, "stopping_rounds": 0,
            "score_interval": 0.0}


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("ranks_per_model", ["one", "all"])
def test_every_combination_once_with_the_metrics_of_a_model_trained_alone(tmp, ranks_per_model):
    path = _data(tmp)
    r = 1 if ranks_per_model == "one" else comm.size
    board = grid_search(_fixed(path), HYPER, {"strategy": "Cartesian"}, f"{tmp}/s", ranks_per_model=r, comm=comm)
    assert board == comm.bcast(board, root=0)
    assert sorted(x["model_id"] for x in board) == [f"model_{i}" for i in range(1, 5)]
    assert all(x["status"] == "done" for x in board)
    groups = {json.load(open(f"{tmp}/s/results/{k}.json"))["group"] for k in range(4)}
    assert groups <= set(range(comm.size // r))
    alone_comm = comm if r == comm.size else None
    for x in board:
        alone = train(validate(dict(_fixed(path), hidden=x["hidden"], l1=x["l1"], quiet_mode=True)), alone_comm)
        assert x["metrics"]["training"] == alone.metrics["training"], x["model_id"]


@pytest.mark.mpi(min_size=2)
def test_sigterm_to_mpirun_stops_every_group_and_the_same_command_continues(tmp):
    path = _data(tmp, n=2000)

    def body():
        grid = f"{tmp}/grid.toml"
        with open(grid, "w") as f:
            f.write(f'train = "{path}"\nresponse = "y"\nepochs = 200\nseed = 3\nthreads = 1\nhidden = [32, 32]\n'
                    'variable_importances = false\nstopping_rounds = 0\ncheckpoint_interval = "0"\n'
                    '[hyper_params]\nl1 = [0.0, 1e-5, 1e-4, 1e-3]\n')
        sd = f"{tmp}/sd"
        args = ["grid", "--config", grid, "--search_dir", sd]
        proc = launch(2, args)
        t0 = time.time()
        while len(os.listdir(f"{sd}/claims") if os.path.isdir(f"{sd}/claims") else []) < 2:
            assert proc.poll() is None and time.time() - t0 < 60, "the search ended before two models started"
            time.sleep(0.05)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        rc, _, err = finish(proc, 60, "the search after SIGTERM")
        assert rc == 85, err
        rc, out, err = finish(launch(2, args), 300, "the continued search")
        assert rc == 0, err
        board = json.load(open(f"{sd}/leaderboard.json"))
        assert sorted(x["model_id"] for x in board) == [f"model_{i}" for i in range(1, 5)]
        assert all(x["status"] == "done" for x in board)
        continued = [json.load(open(f"{sd}/results/{k}.json"))["continued_from"] for k in range(4)]
        assert sum(c is not None for c in continued) >= 1, continued
    on_rank0(body)


def _tree(root):
    """{path: size and modification time, or "dir"} of everything under root."""
    out = {}
    for d, dirs, files in os.walk(root):
        out.update({os.path.join(d, n): "dir" for n in dirs})
        out.update({os.path.join(d, n): (os.stat(os.path.join(d, n)).st_size, os.stat(os.path.join(d, n)).st_mtime_ns)
                    for n in files})
    return out


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("mistake", ["space", "data", "sort_by", "parameters"])
def test_a_refused_search_leaves_nothing_and_the_corrected_one_then_runs_there(tmp, mistake):
    """Refused on every rank before the search directory exists (issue "Refusals before
    creation": a space of 10^12 combinations without max_models, missing data, a sort_by
    that is no metric, fixed parameters train refuses for every model); then the corrected
    search runs in the same directory."""
    from h2odl_mpi.errors import UserError
    path = _data(tmp)
    fixed, hyper, criteria = _fixed(path), {"l1": [0.0, 1e-3]}, {}
    if mistake == "space":
        hyper = {name: [i * 1e-6 for i in range(1000)] for name in ("l1", "l2", "max_w2", "input_dropout_ratio")}
    elif mistake == "data":
        fixed["train"] = f"{tmp}/missing.csv"
    elif mistake == "sort_by":
        criteria = {"sort_by": "nonsense"}
    else:
        fixed.update(activation="Tanh", hidden_dropout_ratios=[0.2])
    before = _tree(tmp) if comm.rank == 0 else None
    message = {"space": "set max_models", "data": "missing.csv", "sort_by": "sort_by",
               "parameters": "hidden_dropout_ratios"}[mistake]
    with pytest.raises(UserError, match=message):
        grid_search(fixed, hyper, criteria, f"{tmp}/s", comm=comm)
    comm.Barrier()
    left = comm.bcast(_tree(tmp) != before if comm.rank == 0 else None, root=0)  # (every rank fails alike)
    assert not left, "the refused search left files behind"
    board = grid_search(_fixed(path), {"l1": [0.0, 1e-3]}, {}, f"{tmp}/s", comm=comm)
    assert sorted(x["status"] for x in board) == ["done", "done"]
