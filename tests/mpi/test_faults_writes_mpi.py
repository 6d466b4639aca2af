"""Faults while writing, at 2 ranks (issue 12, classes 1, 2, 6): a full disk under the
model or the checkpoints, a checkpoint directory owned by a live run, an output that is
the training file.  Each job is a nested mpirun from rank 0 (tests/mpi/nested.py); every
rank must end, with one line naming the file and the cause, the model kept, the lock gone
and no process left.  Full disks are small tmpfs mounts (skipped, with the reason, unless
the tests run as root and may mount)."""
import json
import os
import re
import socket
import subprocess
import time

import pytest
from mpi4py import MPI

from h2odl_mpi.training import checkpoint as ckpt
from h2odl_mpi.atomic import _process_start
from h2odl_mpi.model.model_io import load_model
from nested import finish, launch, on_rank0, shared_tmp, two_class_csv

comm = MPI.COMM_WORLD


@pytest.fixture
def tmp(tmp_path_factory):
    return shared_tmp(tmp_path_factory, "fw")


def _data(tmp, n=300):
    """A small two-class CSV written by rank 0."""
    return two_class_csv(tmp, n, seed=2)


def _args(path, *extra, hidden="4", epochs="1"):
    """train arguments for a short run on `path`."""
    return ["train", "--train", path, "--response", "y", "--hidden", hidden, "--epochs", epochs, "--threads", "1",
            "--train_samples_per_iteration", "60", "--quiet_mode", "true", *extra]


def _mount(d, size):
    """Rank 0 mounts a tmpfs at d; every rank skips when it cannot (the same decision)."""
    why = None
    if comm.rank == 0:
        os.makedirs(d, exist_ok=True)
        if os.geteuid() != 0:
            why = "mounting a tmpfs for a full disk needs root"
        else:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", d], capture_output=True,
                               text=True)
            why = f"cannot mount a tmpfs here: {r.stderr.strip()}" if r.returncode else None
    why = comm.bcast(why, root=0)
    if why:
        pytest.skip(why)
    return d


def _umount(d):
    """Rank 0 unmounts the tmpfs at d."""
    if comm.rank == 0:
        subprocess.run(["umount", "-l", d], capture_output=True)


def _job(tmp, args, timeout=120):
    """A 2-rank job (rescued models into tmp/tmp): (status, stderr); no process left after."""
    os.makedirs(f"{tmp}/tmp", exist_ok=True)
    old = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = f"{tmp}/tmp"
    try:
        rc, _, err = finish(launch(2, args), timeout)
    finally:
        os.environ.pop("TMPDIR") if old is None else os.environ.__setitem__("TMPDIR", old)
    t0 = time.time()
    while True:  # ranks ended by MPI_Abort may take a moment to go
        left = {p: _cmdline(p) for p in filter(str.isdigit, os.listdir("/proc")) if int(p) != os.getpid()}
        left = {p: c for p, c in left.items() if tmp in c}
        if not left or time.time() - t0 > 20:
            break
        time.sleep(0.2)
    assert not left, f"processes left: {left}"
    return rc, err


def _cmdline(pid):
    """The command line of process `pid` ('' once it is gone)."""
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
    except OSError:
        return ""


def _one_error(err, *needles):
    """The single error line of stderr, holding every needle; no traceback, no crash."""
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err and "Segmentation" not in err, err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.mark.mpi(min_size=2)
def test_model_out_on_a_full_disk_ends_every_rank_and_keeps_the_model(tmp):
    """Rank 0 cannot write the model: the job ends, the model is in $TMPDIR."""
    path = _data(tmp)
    full = _mount(f"{tmp}/full", "200k")
    try:
        def body():
            rc, err = _job(tmp, _args(path, "--model_out", f"{full}/m.h5", hidden="100,100,100"))
            assert rc != 0, err
            line = _one_error(err, f"{full}/m.h5: cannot write: No space left on device", "written to")
            assert os.listdir(full) == []
            kept = re.search(r"written to (\S+) instead", line).group(1)
            assert kept.startswith(f"{tmp}/tmp/") and load_model(kept)[4]["state"]["n_ranks"] == 2
        on_rank0(body)
    finally:
        _umount(full)


@pytest.mark.mpi(min_size=2)
def test_checkpoint_dir_filling_up_ends_every_rank_and_frees_the_lock(tmp):
    """A checkpoint that does not fit ends the job; the lock goes before MPI_Abort."""
    path = _data(tmp)
    ck = _mount(f"{tmp}/ck", "200k")
    try:
        def body():
            rc, err = _job(tmp, _args(path, "--checkpoint_dir", ck, "--checkpoint_interval", "1it",
                                      "--checkpoint_keep", "0", hidden="8", epochs="30"))
            assert rc != 0, err
            line = _one_error(err, "cannot write: No space left on device", "written to")
            names = os.listdir(ck)
            assert names and ckpt.LOCK_NAME not in names and not [n for n in names if ".tmp" in n]
            for n in names:
                load_model(os.path.join(ck, n))
            load_model(re.search(r"written to (\S+) instead", line).group(1))
        on_rank0(body)
    finally:
        _umount(ck)


@pytest.mark.mpi(min_size=2)
def test_a_live_owner_refuses_the_job_on_every_rank(tmp):
    """A checkpoint directory locked by a live process: every rank exits 2."""
    path = _data(tmp)

    def body():
        d = f"{tmp}/ck"
        os.makedirs(d)
        lock = os.path.join(d, ckpt.LOCK_NAME)
        with open(lock, "w") as f:  # this (live) process owns it
            json.dump({"host": socket.gethostname(), "pid": os.getpid(), "pid_start": _process_start(os.getpid())}, f)
        rc, err = _job(tmp, _args(path, "--resume", d))
        assert rc == 2, err
        _one_error(err, f"rank 0: checkpoint_dir {d} is in use by another run: pid {os.getpid()} on host")
        assert os.listdir(d) == [ckpt.LOCK_NAME]
    on_rank0(body)


@pytest.mark.mpi(min_size=2)
def test_an_output_that_is_the_training_file_is_refused_on_every_rank(tmp):
    """--model_out equal to --train: every rank exits 2, the file unchanged."""
    path = _data(tmp)

    def body():
        before = open(path, "rb").read()
        rc, err = _job(tmp, _args(path, "--model_out", path))
        assert rc == 2, err
        _one_error(err, f"model_out {path} is the same file as train {path}: an output may not overwrite an input")
        assert open(path, "rb").read() == before
    on_rank0(body)
