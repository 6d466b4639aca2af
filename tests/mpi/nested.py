"""Helpers for MPI tests that start their own jobs: a nested mpirun from rank 0, and a
rank-0-only body whose failure fails the test on every rank instead of leaving the
other ranks waiting in the next collective."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from mpi4py import MPI

comm = MPI.COMM_WORLD


def launch(n, args, script=None):
    """`mpirun -n n python -m h2odl_mpi <args>` (or `python script <args>`) in its own
    session, without the outer job's PMI/MPI/HYDRA variables; stdout/stderr piped."""
    mpirun = os.path.join(os.path.dirname(sys.executable), "mpirun")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI", "MPI", "HYDRA"))}
    target = [script] if script else ["-m", "h2odl_mpi"]
    return subprocess.Popen([mpirun, "-n", str(n), sys.executable] + target + list(args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def finish(proc, timeout, what="nested mpirun"):
    """(returncode, stdout, stderr); the whole process group is killed on a timeout."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{what} did not finish within {timeout} s")
    return proc.returncode, out, err


def shared_tmp(tmp_path_factory, name):
    """A temporary directory that rank 0 makes, its path on every rank."""
    return comm.bcast(str(tmp_path_factory.mktemp(name)) if comm.rank == 0 else None, root=0)


def two_class_csv(tmp, n, seed):
    """`tmp`/d.csv, written by rank 0 (every rank waits for it): columns a, b, c (normal,
    from `seed`) and y = a > b; its path."""
    path = f"{tmp}/d.csv"
    if comm.rank == 0:
        x = np.random.default_rng(seed).normal(size=(n, 3))
        with open(path, "w") as f:
            f.write("a,b,c,y\n")
            f.writelines(f"{a:.5f},{b:.5f},{c:.5f},{int(a - b > 0)}\n" for a, b, c in x)
    comm.Barrier()
    return path


def on_rank0(body):
    """Run body() on rank 0 only; every rank fails with rank 0's message if it failed."""
    message = None
    if comm.rank == 0:
        try:
            body()
        except BaseException as e:  # noqa: BLE001 - sent to the other ranks, then re-raised
            message = f"{type(e).__name__}: {e}"
            comm.bcast(message, root=0)
            raise
    message = comm.bcast(message, root=0)
    if message is not None:
        pytest.fail(f"rank 0 failed: {message}")
