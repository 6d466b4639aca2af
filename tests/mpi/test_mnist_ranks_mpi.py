"""1 rank and 2 ranks reach comparable test error on the bundled MNIST pair; the trainer
runs on whatever communicator it is given (here COMM_WORLD and one-rank sub-communicators)."""
import pytest
from mpi4py import MPI

from h2odl_mpi.params import validate
from h2odl_mpi.training.trainer import train

comm = MPI.COMM_WORLD


def _params(data_dir):
    return validate({"train": str(data_dir / "mnist" / "train.csv.gz"),
                     "validation": str(data_dir / "mnist" / "test.csv.gz"), "response": "C785",
                     "hidden": [64, 64], "epochs": 3, "seed": 42, "threads": 1, "quiet_mode": True,
                     "score_training_samples": 1000, "train_samples_per_iteration": 2000})


@pytest.mark.mpi(min_size=2)
def test_one_and_two_ranks_reach_comparable_error(data_dir):
    pair = comm.Split(0 if comm.rank < 2 else MPI.UNDEFINED)  # collective: every rank calls it
    two = train(_params(data_dir), pair) if comm.rank < 2 else None
    solo_comm = comm.Split(color=comm.rank)  # every rank trains alone as well
    one = train(_params(data_dir), solo_comm)
    if comm.rank < 2:
        assert two["n_ranks"] == 2 and one["n_ranks"] == 1
        e2 = two["metrics"]["validation"]["classification_error"]
        e1 = one["metrics"]["validation"]["classification_error"]
        assert e1 < 0.2 and e2 < 0.2
        print("test error 1 rank", e1, "2 ranks", e2)
        assert abs(e2 - e1) < 0.025, (e1, e2)  # averaging costs some progress per epoch
