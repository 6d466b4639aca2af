"""Checkpoints across rank counts and the requeue path under mpirun.  The jobs under test
are nested mpirun launches from rank 0 (tests/mpi/nested.py); a failure there fails the
test on every rank."""
import json
import signal
import time

import numpy as np
import pytest
from mpi4py import MPI

from h2odl_mpi.training import checkpoint as ckpt
from h2odl_mpi.training import trainer
from h2odl_mpi.model.model_io import load_model
from h2odl_mpi.params import validate
from nested import finish, launch, on_rank0
from process_cpu import wait_for_cpu

comm = MPI.COMM_WORLD
N = 600


@pytest.fixture
def tmp(tmp_path_factory):
    return comm.bcast(str(tmp_path_factory.mktemp("ck")) if comm.rank == 0 else None, root=0)


def _data(tmp, n=N):
    path = f"{tmp}/d.csv"
    if comm.rank == 0:
        rng = np.random.default_rng(4)
        x = rng.normal(size=(n, 3))
        with open(path, "w") as f:
            f.write("a,b,c,y\n")
            f.writelines(f"{a:.5f},{b:.5f},{c:.5f},{int(a + b > 0)}\n" for a, b, c in x)
    comm.Barrier()
    return path


def _common(path):
    return ["train", "--train", path, "--response", "y", "--hidden", "8", "--threads", "1", "--seed", "5",
            "--train_samples_per_iteration", "120", "--quiet_mode", "true",
            "--stopping_rounds", "0", "--classification_stop", "-1"]


@pytest.mark.mpi(min_size=2)
def test_model_from_two_ranks_continues_on_one_and_three(tmp):
    path = _data(tmp)

    def body():
        first, summ0 = f"{tmp}/two.h5", f"{tmp}/two.json"
        rc, _, err = finish(launch(2, _common(path) + ["--epochs", "1", "--model_out", first,
                                                       "--summary_json", summ0]), 120)
        assert rc == 0, err
        before = json.load(open(summ0))["metrics"]["training"]["logloss"]
        _, _, _, _, attrs = load_model(first)
        assert attrs["state"]["n_ranks"] == 2 and len(attrs["state"]["rng_states"]) == 2
        for n in (1, 3):
            out, summ = f"{tmp}/on{n}.h5", f"{tmp}/on{n}.json"
            rc, _, err = finish(launch(n, _common(path) + ["--epochs", "3", "--checkpoint", first,
                                                           "--model_out", out, "--summary_json", summ]), 120)
            assert rc == 0, err
            s = json.load(open(summ))
            assert s["n_ranks"] == n and s["training_samples"] == 3 * N and s["continued_from"] == first
            assert s["iterations"] == 15  # 5 iterations of 120 rows before, 10 after
            assert s["metrics"]["training"]["logloss"] < before  # it went on learning
            _, buf, _, _, attrs = load_model(out)
            assert attrs["state"]["n_ranks"] == n and np.all(np.isfinite(buf))
            assert len(attrs["history"]) > 1 and attrs["history"][0]["iteration"] == 1
    on_rank0(body)


@pytest.mark.mpi(min_size=2)
def test_in_process_resume_on_a_smaller_communicator(tmp):
    """A checkpoint written by this job's ranks continues on one rank fewer."""
    path = _data(tmp)
    p = dict(train=path, response="y", hidden=[8], threads=1, seed=5, train_samples_per_iteration=120,
             quiet_mode=True, stopping_rounds=0, classification_stop=-1.0)
    first = trainer.train(validate(dict(p, epochs=1, checkpoint_dir=f"{tmp}/d", checkpoint_interval="0")), comm)
    sub = comm.Split(0 if comm.rank < comm.size - 1 else MPI.UNDEFINED, comm.rank)
    ok = True
    if sub != MPI.COMM_NULL:
        s = trainer.train(validate(dict(p, epochs=2, resume=f"{tmp}/d")), sub)
        ok = s["training_samples"] == 2 * N and s["n_ranks"] == comm.size - 1 and \
            s["startup_s"]["restore"] >= 0 and not np.array_equal(s.model, first.model)
        sub.Free()
    assert comm.allreduce(int(not ok)) == 0


@pytest.mark.mpi(min_size=2)
def test_sigterm_to_mpirun_requeues_and_resume_finishes(tmp):
    path = _data(tmp, n=2000)

    def body():
        d = f"{tmp}/ck"
        args = _common(path) + ["--hidden", "32,32", "--checkpoint_dir", d, "--checkpoint_interval", "5it"]
        proc = launch(2, args + ["--epochs", "100000"])
        t0 = time.time()
        while not ckpt.list_checkpoints(d) and time.time() - t0 < 60 and proc.poll() is None:
            time.sleep(0.05)
        assert ckpt.list_checkpoints(d), "no checkpoint written: " + str(proc.poll())
        t_sig = time.time()
        proc.send_signal(signal.SIGTERM)
        rc, _, err = finish(proc, 10, "the job after SIGTERM")
        assert rc == ckpt.REQUEUE_EXIT_CODE, err
        assert time.time() - t_sig < 10 and "requeue" in err
        done = load_model(ckpt.newest_valid(d))[4]["state"]["samples"]
        assert done > 0
        summ = f"{tmp}/s.json"
        rc, out, err = finish(launch(2, args + ["--epochs", str(done / 2000 + 0.5), "--resume", d,
                                                "--summary_json", summ]), 120)
        assert rc == 0, err
        s = json.load(open(summ))
        assert s["training_samples"] == done + 1000
        assert s["stop_reason"] == "epochs reached"
    on_rank0(body)


@pytest.mark.mpi(min_size=2)
def test_signal_inside_a_long_iteration_stops_within_a_block(tmp):
    """With one iteration of millions of rows, a signal is answered within about a block
    (about 2 s of rows), not at the end of the iteration."""
    path = _data(tmp, n=2000)

    def body():
        d = f"{tmp}/long"
        args = _common(path) + ["--hidden", "64,64", "--checkpoint_dir", d, "--epochs", "10000",
                                "--train_samples_per_iteration", "20000000", "--quiet_mode", "false"]
        proc = launch(2, args)
        line = proc.stdout.readline()  # the start line: training begins right after it
        assert "rank(s)" in line, line + proc.stderr.read()
        wait_for_cpu(proc.pid, 6.0)  # row indices drawn, then both ranks training, however loaded
        t_sig = time.time()
        proc.send_signal(signal.SIGUSR1)
        rc, _, err = finish(proc, 20, "the job after SIGUSR1")
        took = time.time() - t_sig
        assert rc == ckpt.REQUEUE_EXIT_CODE, err
        state = load_model(ckpt.newest_valid(d))[4]["state"]
        assert state["iteration"] == 1 and 0 < state["samples"] < 20_000_000
        assert took < 10, took
    on_rank0(body)
