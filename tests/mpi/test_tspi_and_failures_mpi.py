"""train_samples_per_iteration modes across ranks, and failures that must not hang."""
import numpy as np
import pytest
from mpi4py import MPI

from h2odl_mpi.training import trainer
from h2odl_mpi.errors import UserError
from h2odl_mpi.params import validate
from nested import finish, launch, on_rank0

comm = MPI.COMM_WORLD
N = 300


def _data(tmp):
    if comm.rank == 0:
        rng = np.random.default_rng(1)
        x = rng.normal(size=(N, 3))
        with open(f"{tmp}/d.csv", "w") as f:
            f.write("a,b,c,y\n")
            f.writelines(f"{a:.5f},{b:.5f},{c:.5f},{int(a > 0)}\n" for a, b, c in x)
    comm.Barrier()
    return f"{tmp}/d.csv"


@pytest.fixture
def tmp(tmp_path_factory):
    return comm.bcast(str(tmp_path_factory.mktemp("t")) if comm.rank == 0 else None, root=0)


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("tspi, epochs, per_iter", [
    (0, 2, [N, N]),                        # an epoch per iteration
    (-1, 2, None),                         # every rank all its local rows
    (100, 1, [100, 100, 100]),             # N rows in all per iteration
    (7, 0.05, [7, 7, 1]),                  # the last iteration stops at the epochs asked
])
def test_rows_per_iteration(tmp, tspi, epochs, per_iter):
    path = _data(tmp)
    p = validate({"train": path, "response": "y", "hidden": [4], "epochs": epochs,
                  "train_samples_per_iteration": tspi, "seed": 3, "threads": 1, "quiet_mode": True})
    s = trainer.train(p, comm)
    size = comm.size
    if per_iter is None:  # -1: size * local rows per iteration (replicated data)
        per_iter = [size * N] * int(np.ceil(epochs * N / (size * N)))
        per_iter[-1] = int(np.ceil(epochs * N)) - size * N * (len(per_iter) - 1)
    assert s["train_samples_per_iteration"] == per_iter
    mine = s["local_rows_per_iteration"]
    everyone = np.array(comm.allgather(mine))
    assert everyone.sum(axis=0).tolist() == per_iter
    assert everyone.max(axis=0).tolist() == [-(-t // size) for t in per_iter]  # shares differ by <= 1


@pytest.mark.mpi(min_size=2)
def test_a_bad_file_on_one_rank_stops_every_rank(tmp, monkeypatch):
    path = _data(tmp)
    from h2odl_mpi.data.frame import readers
    if comm.rank == 1:  # this rank's share of the file fails to parse
        def broken(block, *args, **kwargs):
            raise UserError(f"{path}: line 17: cannot parse")
        monkeypatch.setattr(readers, "parse_csv_block", broken)
    p = validate({"train": path, "response": "y", "hidden": [4], "epochs": 1, "quiet_mode": True})
    with pytest.raises(UserError, match="rank 1: .*line 17"):
        trainer.train(p, comm)


CRASH = r"""
import sys
from mpi4py import MPI
from h2odl_mpi.training import combine
from h2odl_mpi.cli import main
real = combine.ModelAverage.combine
def crash(self, comm, model, *args, **kwargs):
    if comm.rank == 1:
        raise RuntimeError("simulated node failure on rank 1")
    return real(self, comm, model, *args, **kwargs)
combine.ModelAverage.combine = crash
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.mpi(min_size=2)
def test_an_unexpected_failure_takes_the_job_down(tmp):
    path = _data(tmp)

    def body():
        script = f"{tmp}/crash.py"
        open(script, "w").write(CRASH)
        proc = launch(2, ["train", "--train", path, "--response", "y", "--hidden", "4", "--epochs", "50",
                          "--train_samples_per_iteration", "10", "--quiet_mode", "true"], script=script)
        rc, out, err = finish(proc, 60, "the job after one rank failed")
        assert rc != 0
        assert "simulated node failure on rank 1" in err + out
    on_rank0(body)


DISK_FULL = r"""
import sys
from mpi4py import MPI
from h2odl_mpi.training import outputs
from h2odl_mpi.cli import main
def disk_full(path, *args, **kwargs):
    raise OSError(28, "No space left on device")
outputs.save_model = disk_full
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.mpi(min_size=2)
def test_a_failed_checkpoint_write_on_rank_0_ends_the_job(tmp):
    """Rank 0 cannot write its checkpoint while the others train on: the job ends with the
    message, not a traceback, and nobody is left waiting."""
    path = _data(tmp)

    def body():
        script = f"{tmp}/full.py"
        open(script, "w").write(DISK_FULL)
        proc = launch(2, ["train", "--train", path, "--response", "y", "--hidden", "4", "--epochs", "50",
                          "--train_samples_per_iteration", "10", "--quiet_mode", "true",
                          "--checkpoint_dir", f"{tmp}/ck", "--checkpoint_interval", "3it"], script=script)
        rc, out, err = finish(proc, 60, "the job after a failed checkpoint write")
        assert rc != 0
        assert "error: " in err and "ckpt_000000003.h5: cannot write: No space left on device" in err
        assert "Traceback" not in err
    on_rank0(body)


@pytest.mark.mpi(min_size=2)
def test_bad_parameters_on_one_rank_end_every_rank(tmp, monkeypatch, capfd):
    """A --config file that one rank cannot read: every rank exits 2, none waits; rank 0
    names the rank and the file."""
    from h2odl_mpi import config
    from h2odl_mpi.cli import main
    path = _data(tmp)
    toml = f"{tmp}/run.toml"
    if comm.rank == 0:
        open(toml, "w").write(f'train = "{path}"\nresponse = "y"\nhidden = [3]\nepochs = 1\n')
    comm.Barrier()
    if comm.rank == 1:
        def unreadable(p):
            raise UserError(f"{p}: cannot read config file: Permission denied")
        monkeypatch.setattr(config, "load", unreadable)
    rc = main(["train", "--config", toml, "--quiet_mode", "true"])
    err = capfd.readouterr().err
    assert comm.allgather(rc) == [2] * comm.size
    if comm.rank == 0:
        assert f"error: rank 1: {toml}: cannot read config file" in err
