"""The stall watchdog across ranks: the ping every rank's watchdog thread answers while its
main thread works or waits, a train() that leaves no watchdog behind, and a nested job
whose rank 0 is frozen (SIGSTOP): rank 1 leads, writes the checkpoint, breaks rank 0's
lock, the job exits 85, and the resumed run finishes."""
import json
import os
import signal
import threading
import time

import numpy as np
import pytest
from mpi4py import MPI

from h2odl_mpi import collectives
from h2odl_mpi.model.model_io import load_model
from h2odl_mpi.params import validate
from h2odl_mpi.training import checkpoint as ckpt
from h2odl_mpi.training.trainer import train
from h2odl_mpi.training.watchdog import ROWS, Watchdog
from nested import finish, launch, on_rank0, shared_tmp, two_class_csv

comm = MPI.COMM_WORLD


@pytest.fixture
def tmp(tmp_path_factory):
    return shared_tmp(tmp_path_factory, "stall")


def _data(tmp, n=1000):
    """A small two-class CSV written by rank 0."""
    return two_class_csv(tmp, n, seed=3)


@pytest.mark.mpi(min_size=2)
def test_every_rank_answers_a_ping_while_its_main_thread_works_or_waits():
    dog = Watchdog.start({"stall_timeout": 600.0}, comm)  # (no episode of its own in this test)
    assert dog is not None and dog.thread.is_alive()
    assert [t["world"] for t in dog.table] == list(range(comm.size))
    others = list(range(1, comm.size))
    if comm.rank == 0:
        got = dog._round(others)  # the others' main threads are in a plain (unwatched) barrier
    else:
        dog.at(7, ROWS)
    comm.Barrier()
    ok = comm.rank != 0 or (sorted(got) == others and all(
        a.rank == r and a.iteration == 7 and a.phase == ROWS and a.waiting_ms < 0 for r, a in got.items()))
    buf = np.ones(1, dtype=np.int64)
    if comm.rank == 0:
        time.sleep(0.5)  # the others wait in a watched collective meanwhile
        got = dog._round(others)
        ok = ok and all(a.waiting_ms >= 300 for a in got.values())
    collectives.sum_in_place(comm, buf)
    ok = ok and buf[0] == comm.size and dog.wait_since is None
    dog.stop()
    assert collectives.watch_collectives(None) is None  # (stop put back what was there)
    assert comm.allreduce(int(not ok)) == 0


@pytest.mark.mpi(min_size=2)
def test_train_leaves_no_watchdog_behind(tmp):
    path = _data(tmp, n=300)
    p = validate({"train": path, "response": "y", "hidden": [4], "epochs": 1, "threads": 1, "quiet_mode": True,
                  "stall_timeout": 30, "checkpoint_dir": f"{tmp}/ck", "train_samples_per_iteration": 100})
    run = train(p, comm)
    names = [t.name for t in threading.enumerate()]
    assert run["training_samples"] == 300 and "h2odl_mpi-stall-watchdog" not in names
    assert collectives.watch_collectives(None) is None
    if comm.rank == 0:
        assert not os.path.exists(f"{tmp}/ck/{ckpt.RANKS_NAME}") and not os.path.exists(f"{tmp}/ck/{ckpt.LOCK_NAME}")


def _ranks_below(pid, n, limit=30):
    """{rank: pid} of the n MPI processes below launcher `pid` (their PMI_RANK)."""
    t = time.time()
    while time.time() - t < limit:
        kids = {}
        for p in filter(str.isdigit, os.listdir("/proc")):
            try:
                kids.setdefault(int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1]), []).append(int(p))
            except OSError:
                pass
        found, todo = {}, [pid]
        while todo:
            for c in kids.get(todo.pop(), []):
                todo.append(c)
                try:
                    env = open(f"/proc/{c}/environ", "rb").read().split(b"\0")
                    cmd = open(f"/proc/{c}/cmdline", "rb").read()
                except OSError:
                    continue
                rank = [e for e in env if e.startswith(b"PMI_RANK=")]
                if rank and b"hydra_pmi_proxy" not in cmd:
                    found[int(rank[0].split(b"=")[1])] = c
        if len(found) == n:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{n} ranks not found below pid {pid}")


@pytest.mark.mpi(min_size=2)
def test_a_frozen_rank_0_is_named_by_rank_1_which_saves_the_model(tmp):
    path = _data(tmp)

    def body():
        d = f"{tmp}/ck"
        args = ["train", "--train", path, "--response", "y", "--hidden", "16", "--threads", "1", "--seed", "4",
                "--train_samples_per_iteration", "100", "--stopping_rounds", "0", "--classification_stop", "-1",
                "--quiet_mode", "true", "--checkpoint_dir", d, "--checkpoint_interval", "20it", "--stall_timeout", "2"]
        proc = launch(2, args + ["--epochs", "300"])
        pids = _ranks_below(proc.pid, 2)
        t0 = time.time()
        while not ckpt.list_checkpoints(d) and time.time() - t0 < 60 and proc.poll() is None:
            time.sleep(0.05)  # (until training is under way, however loaded the machine is)
        assert proc.poll() is None and ckpt.list_checkpoints(d)
        t_stop = time.time()
        os.kill(pids[0], signal.SIGSTOP)
        rc, _, err = finish(proc, 2 + 30, "the job with a frozen rank 0")
        took = time.time() - t_stop
        assert rc == ckpt.REQUEUE_EXIT_CODE, err
        line = next(ln for ln in err.splitlines() if ln.startswith("h2odl_mpi: stall: "))
        assert line.startswith(f"h2odl_mpi: stall: rank 0 (pid {pids[0]} on ")
        # rank 1 writes the last combined model, or names it when rank 0's periodic checkpoint
        # of that iteration is already there (rank 0 froze just after writing it)
        assert "rank 1: checkpoint " in line or "rank 1: the checkpoint of iteration " in line, line
        assert took < 2 + 20, took
        assert os.path.exists(f"{d}/{ckpt.RANKS_NAME}") and f"rank 0: pid {pids[0]} " in open(
            f"{d}/{ckpt.RANKS_NAME}").read()
        assert not os.path.exists(f"{d}/{ckpt.LOCK_NAME}")  # rank 0's lock, broken by rank 1
        newest = ckpt.newest_valid(d)
        assert newest in line  # the last combined model, no older
        state = load_model(newest)[4]["state"]
        assert state["iteration"] > 0 and state["rng_states"] == []
        summ = f"{tmp}/s.json"
        rc, _, err = finish(launch(2, args + ["--epochs", str(state["samples"] / 1000 + 0.3), "--resume", d,
                                              "--summary_json", summ]), 120)
        assert rc == 0, err
        s = json.load(open(summ))
        assert s["training_samples"] == state["samples"] + 300 and s["stop_reason"] == "epochs reached"
    on_rank0(body)


@pytest.mark.mpi(min_size=2)
def test_a_block_watched_around_train_hands_over_and_back(tmp):
    """watching() (for a search's or a cross-validation's own collectives): train() inside
    it watches with its own watchdog, then the block's is told of collectives again."""
    from h2odl_mpi.training.watchdog import watching
    path = _data(tmp, n=300)
    p = validate({"train": path, "response": "y", "hidden": [4], "epochs": 1, "threads": 1, "quiet_mode": True,
                  "stall_timeout": 30, "train_samples_per_iteration": 100})
    with watching(p, comm) as outer:
        assert outer is not None and collectives.watch_collectives(outer) is outer
        run = train(p, comm)
        assert collectives.watch_collectives(outer) is outer  # (train() put the block's back)
        outer.waiting("x")
        outer.done()
        ok = run["training_samples"] == 300 and outer.wait_since is None and outer.thread.is_alive()
    assert collectives.watch_collectives(None) is None and outer.thread is None
    assert comm.allreduce(int(not ok)) == 0
