"""The trainer as a value on any communicator (under mpirun): a combining rule swapped in
through the one interface, and runs on sub-communicators, repeated in one process, that
match runs made alone."""
import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
from mpi4py import MPI

from h2odl_mpi.training.combine import ModelAverage
from h2odl_mpi.params import validate
from h2odl_mpi.training.trainer import train

comm = MPI.COMM_WORLD


@pytest.fixture
def data(tmp_path_factory):
    path = None
    if comm.rank == 0:
        path = str(tmp_path_factory.mktemp("v") / "d.csv")
        rng = np.random.default_rng(4)
        x = rng.normal(size=(400, 3))
        with open(path, "w") as f:
            f.write("a,b,c,y\n")
            f.writelines(f"{a:.5f},{b:.5f},{c:.5f},{int(a + b > 0)}\n" for a, b, c in x)
    return comm.bcast(path, root=0)


def _params(path, **kw):
    return validate(dict({"train": path, "response": "y", "hidden": [5], "epochs": 2, "seed": 9,
                          "threads": 1, "quiet_mode": True, "train_samples_per_iteration": 120,
                          "variable_importances": False}, **kw))


class KeepOwn(ModelAverage):
    """A combining rule that leaves every rank's model alone, counting its calls."""

    name = "KeepOwn"

    def __init__(self):
        self.calls = []

    def combine(self, comm, model, rows_mine, rows_all):
        self.calls.append((rows_mine, rows_all))


@pytest.mark.mpi(min_size=2)
def test_a_combining_rule_swapped_in_is_used(data):
    own = KeepOwn()
    run = train(_params(data), comm, combiner=own)
    assert len(own.calls) == run["iterations"] > 1
    assert all(total == sum(comm.allgather(mine)) for mine, total in own.calls)
    models = comm.allgather(run.model)
    assert not np.array_equal(models[0], models[1])  # nobody averaged
    averaged = comm.allgather(train(_params(data, combining_rule="Average"), comm).model)
    assert all(np.array_equal(averaged[0], m) for m in averaged)


def _digest(model):
    return hashlib.sha256(model.tobytes()).hexdigest()


ALONE = """
import hashlib, json, sys
from h2odl_mpi.params import validate
from h2odl_mpi.training.trainer import train
run = train(validate(json.loads(sys.argv[1])), None)
print(hashlib.sha256(run.model.tobytes()).hexdigest())
"""


@pytest.mark.mpi(min_size=2)
def test_runs_on_sub_communicators_repeat_and_match_runs_made_alone(data):
    halves = comm.Split(comm.rank % 2, comm.rank)
    try:
        p_world, p_half = _params(data), _params(data, hidden=[4, 3], seed=5 + comm.rank % 2)
        first = train(p_world, comm)
        half = train(p_half, halves)
        again = train(p_world, comm)  # nothing left behind by the runs before
        assert np.array_equal(first.model, again.model)
        assert first.history == [] or len(first.history) == len(again.history)
        assert half["n_ranks"] == halves.Get_size()
        if halves.Get_size() == 1:  # a 1-rank group: the same bits as a process of its own
            alone = subprocess.run([sys.executable, "-c", ALONE, json.dumps(p_half)], capture_output=True,
                                   text=True, timeout=120)
            assert alone.returncode == 0, alone.stderr[-2000:]
            assert alone.stdout.strip() == _digest(half.model)
        digests = comm.allgather((comm.rank % 2, _digest(half.model)))
        for color in (0, 1):  # within a group every rank holds the same model
            assert len({d for c, d in digests if c == color}) == 1
    finally:
        halves.Free()
