"""The Slurm job script end to end on this machine: real mpirun with 2 ranks training MNIST,
fake Slurm variables and a stand-in scontrol.  SIGUSR1 to the batch shell (what
`--signal=B:USR1@300` does) must reach every rank through the script and mpirun; the ranks
checkpoint and exit 85, the script requeues the job; the rerun, as the requeued job, continues
from the checkpoint to the asked-for total epochs without requeueing again."""
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import h2odl_mpi
from h2odl_mpi.training.checkpoint import newest_valid
from h2odl_mpi.model.model_io import load_model
from h2odl_mpi.jobscript import REQUEUE_EXIT, render

MNIST = Path(h2odl_mpi.__file__).parent / "datasets" / "mnist" / "train.csv.gz"
MNIST_ROWS = 10_000
EPOCHS = 6
TSPI = 2_000  # 30 iterations in all, a checkpoint after each: the signal lands mid-run
TIMEOUT_S = 120


def _mpirun_dir():
    here = Path(sys.executable).parent
    if (here / "mpirun").exists():
        return here
    found = shutil.which("mpirun")
    return Path(found).parent if found else None


def _env(tmp_path, bindir, mpidir, ckdir):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PMI", "MPI", "HYDRA", "OMPI_", "PMIX_", "SLURM_", "PBS_", "H2ODL_"))}
    env.update(PATH=f"{bindir}{os.pathsep}{mpidir}{os.pathsep}{os.environ.get('PATH', '')}",
               SLURM_JOB_ID="4242", H2ODL_LAUNCHER="mpirun", H2ODL_NTASKS="2", H2ODL_THREADS="1",
               H2ODL_PYTHON=sys.executable, H2ODL_CHECKPOINT_DIR=str(ckdir), PYTHONUNBUFFERED="1")
    return env


class _Job:
    """The script under bash in its own session; output to files; killed as a group."""

    def __init__(self, script, env, cwd, name):
        self.out, self.err = cwd / f"{name}.out", cwd / f"{name}.err"
        with open(self.out, "w") as o, open(self.err, "w") as e:
            self.proc = subprocess.Popen(["bash", str(script)], env=env, cwd=cwd, stdout=o, stderr=e,
                                         start_new_session=True)

    def wait(self, deadline):
        try:
            return self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"job script still running after {TIMEOUT_S} s:\n{self.text()}")

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def text(self):
        return f"--- stdout\n{self.out.read_text()}\n--- stderr\n{self.err.read_text()}"


def test_usr1_checkpoints_requeues_and_the_rerun_finishes(tmp_path):
    mpidir = _mpirun_dir()
    if mpidir is None:
        pytest.skip("no mpirun next to this Python or on PATH")
    bindir, ckdir, log = tmp_path / "bin", tmp_path / "ck", tmp_path / "scontrol.log"
    bindir.mkdir()
    scontrol = bindir / "scontrol"
    scontrol.write_text(f'#!/bin/bash\necho "$*" >> "{log}"\n')
    scontrol.chmod(scontrol.stat().st_mode | stat.S_IEXEC)
    summary = tmp_path / "summary.json"
    args = ["--train", str(MNIST), "--response", "C785", "--hidden", "32", "--epochs", str(EPOCHS),
            "--train_samples_per_iteration", str(TSPI), "--checkpoint_interval", "1it",
            "--seed", "5", "--quiet_mode", "false", "--summary_json", str(summary)]
    script = tmp_path / "train.sbatch"
    venv = Path(sys.prefix) if (Path(sys.prefix) / "bin" / "activate").is_file() else None  # --activate
    script.write_text(render("slurm", nodes=1, ranks_per_node=2, threads=1, time="00:10:00",
                             job_name="e2e", train_args=args, activate=venv and str(venv)))
    env = _env(tmp_path, bindir, mpidir, ckdir)
    deadline = time.monotonic() + TIMEOUT_S

    # ---- the first job: signalled once its first checkpoint is there -------------------------
    first = _Job(script, env, tmp_path, "first")
    try:
        while not list(ckdir.glob("ckpt_*.h5")):
            if first.proc.poll() is not None:
                pytest.fail(f"the job ended (status {first.proc.returncode}) before its first "
                            f"checkpoint:\n{first.text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no checkpoint after {TIMEOUT_S} s:\n{first.text()}")
            time.sleep(0.02)
        os.kill(first.proc.pid, signal.SIGUSR1)  # the batch shell only, as Slurm's B: does
        rc = first.wait(deadline)
    finally:
        first.kill()
    out1 = first.text()
    assert rc == REQUEUE_EXIT, f"the job finished before the signal reached the ranks?\n{out1}"
    assert log.read_text().splitlines() == ["requeue 4242"], out1
    assert "checkpoint written; requeueing job 4242 (requeue 1 of at most 20)" in out1
    assert re.search(r"signal received: stopped at iteration \d+", out1), out1
    assert f"stopped by signal {int(signal.SIGUSR1)}" in out1  # the ranks saw SIGUSR1 itself
    assert not summary.exists()
    ckpt = newest_valid(str(ckdir), warn=False)
    assert ckpt is not None
    stopped_at = int(re.search(r"ckpt_(\d+)\.h5$", ckpt).group(1))
    assert 1 <= stopped_at < EPOCHS * MNIST_ROWS // TSPI
    # the ranks stop within a block of rows: an iteration cut short leaves its rest to one
    # more iteration after the restart
    done = load_model(ckpt)[4]["state"]["samples"]
    assert 0 < done < EPOCHS * MNIST_ROWS
    extra = int(done % TSPI != 0)

    # ---- the requeued job: same script, continues to the total epochs ------------------------
    second = _Job(script, dict(env, SLURM_RESTART_COUNT="1"), tmp_path, "second")  # as Slurm requeues it
    try:
        rc = second.wait(deadline)
    finally:
        second.kill()
    out2 = second.text()
    assert rc == 0, out2
    assert f"continuing {ckpt} at iteration {stopped_at}," in out2
    s = json.loads(summary.read_text())
    assert s["training_samples"] == EPOCHS * MNIST_ROWS and s["epochs"] == EPOCHS
    assert s["iterations"] == EPOCHS * MNIST_ROWS // TSPI + extra and s["n_ranks"] == 2
    assert s["metrics"]["training"]["classification_error"] < 0.2
    assert log.read_text().splitlines() == ["requeue 4242"]  # not requeued again
    final = newest_valid(str(ckdir), warn=False)
    assert final.endswith(f"ckpt_{s['iterations']:09d}.h5")
