"""Bad inputs on several ranks: an Inf in one rank's share of the data, a network too large
for one rank's node, SIGINT to mpirun.  Every rank ends with the same one-line error (or the
documented status), the row named is the file's, and no rank waits for another."""
import signal
import time

import numpy as np
import pytest
from mpi4py import MPI

from h2odl_mpi.training import checkpoint as ckpt
from h2odl_mpi.training import model_setup, trainer
from h2odl_mpi.errors import UserError
from h2odl_mpi.params import validate
from nested import finish, launch, on_rank0

comm = MPI.COMM_WORLD
N = 300


@pytest.fixture
def tmp(tmp_path_factory):
    return comm.bcast(str(tmp_path_factory.mktemp("t")) if comm.rank == 0 else None, root=0)


def _data(tmp, name="d.csv", n=N, bad_row=None, text="inf"):
    """a, b, y; row `bad_row` (0-based among data rows) has `text` in column b."""
    path = f"{tmp}/{name}"
    if comm.rank == 0:
        rng = np.random.default_rng(1)
        with open(path, "w") as f:
            f.write("a,b,y\n")
            for i, (a, b) in enumerate(rng.normal(size=(n, 2))):
                f.write(f"{a:.5f},{text if i == bad_row else f'{b:.5f}'},{a + b:.5f}\n")
    comm.Barrier()
    return path


def _params(path, **kw):
    return validate(dict({"train": path, "response": "y", "hidden": [4], "epochs": 1, "seed": 3,
                          "threads": 1, "quiet_mode": True}, **kw))


def _error_everywhere(run, same=True):
    """run() raises a UserError on every rank (the same message when `same`); returns
    rank 0's."""
    message = None
    try:
        run()
    except UserError as e:
        message = str(e)
    everyone = comm.allgather(message)
    assert None not in everyone, everyone
    assert not same or everyone == [everyone[0]] * comm.size, everyone
    return everyone[0]


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("where", ["validation", "distributed training"])
def test_inf_in_the_last_ranks_share_names_the_files_row(tmp, where):
    bad = N - 10  # in the last rank's byte range
    if where == "validation":
        good, valid = _data(tmp), _data(tmp, "v.csv", bad_row=bad)
        p = _params(good, validation=valid)
    else:
        valid = _data(tmp, "t.csv", bad_row=bad, text="-1e308")
        p = _params(valid, replicate_training_data=False)
    message = _error_everywhere(lambda: trainer.train(p, comm))
    assert f"{valid}: column 'b', data row {bad + 1}" in message, message


@pytest.mark.mpi(min_size=2)
def test_a_network_too_large_for_one_ranks_node_stops_every_rank(tmp, monkeypatch):
    path = _data(tmp)
    if comm.rank == comm.size - 1:  # this rank's node has (almost) no memory left
        monkeypatch.setattr(model_setup, "memory_available", lambda: 1000)
    message = _error_everywhere(lambda: trainer.train(_params(path, hidden=[50]), comm), same=False)
    assert message.startswith(f"rank {comm.size - 1}: hidden [50]") and "memory available" in message


@pytest.mark.mpi(min_size=2)
def test_sigint_to_mpirun_checkpoints_and_requeues(tmp):
    path = _data(tmp, n=2000)

    def body():
        d = f"{tmp}/ck"
        proc = launch(2, ["train", "--train", path, "--response", "y", "--hidden", "32,32", "--epochs", "100000",
                          "--train_samples_per_iteration", "200", "--threads", "1", "--seed", "1",
                          "--quiet_mode", "true", "--checkpoint_dir", d, "--checkpoint_interval", "5it"])
        t0 = time.time()
        while not ckpt.list_checkpoints(d) and time.time() - t0 < 60 and proc.poll() is None:
            time.sleep(0.05)
        assert ckpt.list_checkpoints(d), "no checkpoint written: " + str(proc.poll())
        proc.send_signal(signal.SIGINT)
        rc, _, err = finish(proc, 20, "the job after SIGINT")
        assert rc == ckpt.REQUEUE_EXIT_CODE and "requeue" in err, err
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    on_rank0(body)
