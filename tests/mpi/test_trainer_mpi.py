"""The distributed trainer under mpirun (pytest-mpi): model averaging and a whole run."""
import json

import numpy as np
import pytest
from mpi4py import MPI

from h2odl_mpi.cli import main
from h2odl_mpi.collectives import weighted_mean

comm = MPI.COMM_WORLD


@pytest.mark.mpi(min_size=2)
def test_average_is_bit_identical_and_the_mean():
    rng = np.random.default_rng(100 + comm.rank)
    mine = rng.normal(size=10_001).astype(np.float32)
    everyone = np.array(comm.allgather(mine))
    model = mine.copy()
    weighted_mean(comm, model)
    ref = everyone.astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(model, ref, rtol=2e-6, atol=2e-7)
    first = comm.bcast(model if comm.rank == 0 else None, root=0)
    assert np.array_equal(first, model)  # bit-identical on every rank


@pytest.mark.mpi(min_size=2)
def test_cli_run_on_all_ranks(tmp_path_factory):
    tmp = comm.bcast(str(tmp_path_factory.mktemp("run")) if comm.rank == 0 else None, root=0)
    rng = np.random.default_rng(0)
    if comm.rank == 0:
        x = rng.normal(size=(400, 3))
        y = x @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=400)
        with open(f"{tmp}/r.csv", "w") as f:
            f.write("a,b,c,y\n")
            f.writelines(f"{a:.6f},{b:.6f},{c:.6f},{t:.6f}\n" for (a, b, c), t in zip(x, y))
    comm.Barrier()
    rc = main(["train", "--train", f"{tmp}/r.csv", "--response", "y", "--hidden", "16",
               "--epochs", "20", "--seed", "1", "--threads", "1", "--quiet_mode", "true",
               "--summary_json", f"{tmp}/s.json", "--train_samples_per_iteration", "200"])
    assert rc == 0
    comm.Barrier()
    s = json.load(open(f"{tmp}/s.json"))
    assert s["n_ranks"] == comm.size and s["threads_per_rank"] == 1
    assert s["training_samples"] == 8000 and s["iterations"] == 40
    assert set(s["train_samples_per_iteration"]) == {200}
    assert s["metrics"]["training"]["r2"] > 0.9


@pytest.mark.mpi(min_size=2)
def test_weighted_average_and_a_rank_without_rows():
    rng = np.random.default_rng(7 + comm.rank)
    mine = rng.normal(size=1003).astype(np.float32)
    weight = 0.0 if comm.rank == 1 else float(comm.rank + 1)  # rank 1 trained no rows
    weights = np.array(comm.allgather(weight))
    everyone = np.array(comm.allgather(mine)).astype(np.float64)
    model = mine.copy()
    weighted_mean(comm, model, weight=weight, total=float(weights.sum()))
    ref = (weights[:, None] * everyone).sum(axis=0) / weights.sum()
    np.testing.assert_allclose(model, ref, rtol=1e-5, atol=1e-6)
    assert np.array_equal(comm.bcast(model if comm.rank == 0 else None, root=0), model)


def test_row_shares_add_up_and_follow_local_rows():
    from h2odl_mpi.training.iteration_rows import row_shares
    assert row_shares(10, [5, 5, 5]).tolist() == [4, 3, 3]
    assert row_shares(9, [100, 0, 50]).tolist() == [6, 0, 3]
    assert row_shares(7, [0, 0]).tolist() == [0, 0]
    for tspi in (1, 17, 1000):
        assert row_shares(tspi, [3, 1, 4, 1, 5]).sum() == tspi


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("replicate, n_max", [(True, 0), (True, 150), (False, 0)])
def test_scoring_counts_every_row_once_whether_replicated_or_not(tmp_path_factory, replicate, n_max):
    from h2odl_mpi.params import validate
    from h2odl_mpi.training.trainer import train
    tmp = comm.bcast(str(tmp_path_factory.mktemp("rep")) if comm.rank == 0 else None, root=0)
    if comm.rank == 0:
        x = np.random.default_rng(3).normal(size=(301, 3))
        with open(f"{tmp}/d.csv", "w") as f:
            f.write("a,b,c,y\n")
            f.writelines(f"{a:.5f},{b:.5f},{c:.5f},{int(a > b)}\n" for a, b, c in x)
    comm.Barrier()
    run = train(validate({"train": f"{tmp}/d.csv", "response": "y", "hidden": [4], "epochs": 1, "seed": 2,
                          "threads": 1, "quiet_mode": True, "replicate_training_data": replicate,
                          "score_training_samples": n_max, "variable_importances": False}), comm)
    assert run.metrics["training"]["nobs"] == (n_max or 301)
