"""Slurm and PBS job scripts: syntax, directives, and the script body run locally with fake
scheduler variables and stand-in srun/scontrol/mpirun/qsub that record their arguments."""
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from h2odl_mpi.cli import main
from h2odl_mpi.jobscript import REQUEUE_EXIT, render

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--train", "train.csv.gz", "--validation", "test.csv.gz", "--response", "C785", "--hidden",
        "200,200", "--epochs", "10", "--model_out", "model.h5", "--checkpoint_interval", "600"]
COMMITTED = {
    "slurm/train.sbatch": dict(scheduler="slurm", nodes=2, ranks_per_node=4, threads=8, time="04:00:00"),
    "pbs/train.pbs": dict(scheduler="pbs", nodes=2, ranks_per_node=4, threads=8, time="04:00:00"),
    "slurm/hybrid.sbatch": dict(scheduler="slurm", nodes=16, ranks_per_node=8, threads=16,
                                time="12:00:00", job_name="h2odl-hybrid"),
}
SLURM_DIRECTIVE = re.compile(r"^#SBATCH --[a-z-]+(=\S+)?$")
PBS_DIRECTIVE = re.compile(r"^#PBS -[A-Za-z] \S+$")


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_committed_scripts_are_the_generators_output(name):
    assert (ROOT / "jobscripts" / name).read_text() == render(train_args=ARGS, **COMMITTED[name])


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
def test_syntax_and_directives(tmp_path, scheduler):
    text = render(scheduler, nodes=3, ranks_per_node=2, threads=5, time="10:30:00",
                  partition="batch", account="proj42", train_args=ARGS)
    path = tmp_path / "job.sh"
    path.write_text(text)
    subprocess.run(["bash", "-n", str(path)], check=True)
    directives = [l for l in text.splitlines() if l.startswith("#SBATCH") or l.startswith("#PBS")]
    pattern = SLURM_DIRECTIVE if scheduler == "slurm" else PBS_DIRECTIVE
    bad = [l for l in directives if not pattern.match(l)]
    assert not bad and len(directives) >= 6
    if scheduler == "slurm":
        for d in ("--nodes=3", "--ntasks-per-node=2", "--cpus-per-task=5", "--time=10:30:00",
                  "--partition=batch", "--account=proj42", "--signal=B:USR1@300", "--requeue"):
            assert f"#SBATCH {d}" in directives
    else:
        assert "#PBS -l select=3:ncpus=10:mpiprocs=2:ompthreads=5" in directives
        assert "#PBS -l walltime=10:30:00" in directives and "#PBS -q batch" in directives


@pytest.mark.parametrize("bad", [dict(nodes=0), dict(time="1:00"), dict(time="01:61:00"),
                                 dict(scheduler="lsf"), dict(job_name="a b")])
def test_bad_settings_are_refused(bad):
    kw = dict(scheduler="slurm", nodes=1, ranks_per_node=1, threads=1, time="01:00:00")
    kw.update(bad)
    with pytest.raises(ValueError):
        render(**kw)


def _standins(bindir, log, names, exit_code):
    bindir.mkdir()
    for name in names:
        p = bindir / name
        code = exit_code if name in ("srun", "mpirun") else 0
        p.write_text(f'#!/bin/bash\necho "{name} $* | OMP_NUM_THREADS=$OMP_NUM_THREADS" >> "{log}"\nexit {code}\n')
        p.chmod(p.stat().st_mode | stat.S_IEXEC)


@pytest.mark.parametrize("exit_code", [REQUEUE_EXIT, 0])
def test_slurm_body_launches_and_requeues(tmp_path, exit_code):
    log = tmp_path / "calls.log"
    _standins(tmp_path / "bin", log, ["srun", "scontrol"], exit_code)
    script = tmp_path / "job.sbatch"
    script.write_text(render("slurm", nodes=2, ranks_per_node=2, threads=3, train_args=ARGS))
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}", SLURM_NTASKS="4",
               SLURM_CPUS_PER_TASK="3", SLURM_JOB_ID="4242", H2ODL_CHECKPOINT_DIR=str(tmp_path / "ck"))
    env.pop("OMP_NUM_THREADS", None)
    r = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == exit_code, r.stderr
    calls = log.read_text().splitlines()
    launch = calls[0]
    assert launch.startswith("srun --ntasks=4 --cpus-per-task=3 --cpu-bind=cores ")
    assert f"-m h2odl_mpi train --resume {tmp_path / 'ck'} --checkpoint_dir {tmp_path / 'ck'} --train train.csv.gz" in launch
    assert launch.endswith("| OMP_NUM_THREADS=3")
    if exit_code == REQUEUE_EXIT:
        assert calls[1].startswith("scontrol requeue 4242")
    else:
        assert len(calls) == 1


def test_pbs_body_counts_ranks_from_the_nodefile_and_resubmits(tmp_path):
    log = tmp_path / "calls.log"
    _standins(tmp_path / "bin", log, ["mpirun", "qsub"], REQUEUE_EXIT)
    nodefile = tmp_path / "nodes"
    nodefile.write_text("n1\nn1\nn2\n")
    script = tmp_path / "train.pbs"
    script.write_text(render("pbs", nodes=2, ranks_per_node=2, threads=4, train_args=ARGS))
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}", PBS_NODEFILE=str(nodefile),
               PBS_JOBID="77.pbs", PBS_O_WORKDIR=str(tmp_path), OMP_NUM_THREADS="4",
               H2ODL_CHECKPOINT_DIR=str(tmp_path / "ck"))
    r = subprocess.run(["bash", str(script), "--train", "other.csv", "--epochs", "3"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == REQUEUE_EXIT, r.stderr
    calls = log.read_text().splitlines()
    assert calls[0].startswith("mpirun -n 3 ")
    assert calls[0].endswith(f"--checkpoint_dir {tmp_path / 'ck'} --train other.csv --epochs 3 | OMP_NUM_THREADS=4")
    ck = tmp_path / "ck"
    assert calls[1].startswith(f"qsub -v H2ODL_ARGS_FILE={ck}.args,H2ODL_CHECKPOINT_DIR={ck} {tmp_path / 'train.pbs'}")


# ---- the `jobscript` subcommand ------------------------------------------------------------

def _cli_argv(settings, **extra):
    argv = ["jobscript"]
    for key, value in dict(settings, **extra).items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return argv


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_committed_scripts_are_what_the_subcommand_prints(name, capsys):
    from h2odl_mpi.cli import main
    assert main(_cli_argv(COMMITTED[name]) + ["--"] + ARGS) == 0
    out = capsys.readouterr().out
    assert out == (ROOT / "jobscripts" / name).read_text()


def test_subcommand_writes_an_executable_file_without_mpi(tmp_path):
    out = tmp_path / "train.pbs"
    argv = _cli_argv(COMMITTED["pbs/train.pbs"], queue="workq", account="proj42") + ["-o", str(out), "--"] + ARGS
    code = ("import sys\nfrom h2odl_mpi.cli import main\nrc = main(sys.argv[1:])\n"
            "assert 'mpi4py' not in sys.modules, 'jobscript imported mpi4py'\nsys.exit(rc)\n")
    r = subprocess.run([sys.executable, "-c", code] + argv, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr.strip() == f"wrote {out}"
    text = out.read_text()
    assert text == render(train_args=ARGS, partition="workq", account="proj42", **COMMITTED["pbs/train.pbs"])
    assert "#PBS -q workq" in text and "#PBS -A proj42" in text
    assert os.stat(out).st_mode & stat.S_IXUSR
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.pbs"]  # no temporary file left
    subprocess.run(["bash", "-n", str(out)], check=True)


def test_subcommand_partition_queue_launcher_and_train_args(capsys):
    from h2odl_mpi.cli import main
    assert main(["jobscript", "--scheduler", "slurm", "--queue", "gpu", "--launcher", "mpirun",
                 "--job-name", "mnist-1", "--", "--config", "run.toml", "--epochs", "20"]) == 0
    text = capsys.readouterr().out
    assert "#SBATCH --partition=gpu" in text and "#SBATCH --job-name=mnist-1" in text
    assert "LAUNCHER=${H2ODL_LAUNCHER:-mpirun}" in text
    assert '"${H2ODL_TRAIN_ARGS:---config run.toml --epochs 20}"' in text
    assert main(["jobscript", "--scheduler", "pbs"]) == 0  # defaults: 1 node, 1 rank, 1 thread, 1 hour
    text = capsys.readouterr().out
    assert "#PBS -l select=1:ncpus=1:mpiprocs=1:ompthreads=1" in text and "#PBS -l walltime=01:00:00" in text


@pytest.mark.parametrize("argv, needle", [
    (["--nodes", "0"], "--nodes"),
    (["--nodes", "two"], "--nodes"),
    (["--ranks-per-node", "-1"], "--ranks-per-node"),
    (["--threads", "0"], "--threads"),
    (["--time", "1:00"], "--time"),
    (["--time", "01:61:00"], "--time"),
    (["--time", "00:06:00"], "--time"),
    (["--scheduler", "lsf"], "--scheduler"),
    (["--launcher", "aprun"], "--launcher"),
    (["--job-name", "a b"], "--job-name"),
    (["--partition", "a", "--queue", "b"], "--queue"),
    (["--", "--epochz", "3"], "--epochz"),
    (["--", "--resume", "ck"], "--resume"),
    (["--", "--train", "my data.csv"], "'my data.csv'"),
])
def test_subcommand_bad_values_are_one_line_with_status_2(argv, needle):
    if "--scheduler" not in argv:
        argv = ["--scheduler", "slurm"] + argv
    r = subprocess.run([sys.executable, "-m", "h2odl_mpi", "jobscript"] + argv,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.stderr


def test_render_refuses_train_args_the_script_cannot_carry():
    with pytest.raises(ValueError, match="quoting"):
        render("slurm", train_args=["--train", "a'b.csv"])


# ---- search jobs (`grid` on groups of ranks) -------------------------------------------------

SEARCH = dict(scheduler="slurm", nodes=4, ranks_per_node=8, threads=4, time="12:00:00", job_name="h2odl-search",
              search=True, ranks_per_model=4)
SEARCH_ARGS = ["--config", "grid.toml", "--epochs", "10"]


def test_committed_search_script_is_the_generators_output():
    assert (ROOT / "jobscripts" / "slurm" / "search.sbatch").read_text() == render(train_args=SEARCH_ARGS, **SEARCH)


@pytest.mark.parametrize("exit_code", [REQUEUE_EXIT, 0])
def test_search_body_runs_grid_in_its_directory_and_requeues(tmp_path, exit_code):
    log = tmp_path / "calls.log"
    _standins(tmp_path / "bin", log, ["srun", "scontrol"], exit_code)
    script = tmp_path / "job.sbatch"
    script.write_text(render("slurm", nodes=2, ranks_per_node=2, threads=1, train_args=SEARCH_ARGS,
                             search=True, ranks_per_model=2))
    subprocess.run(["bash", "-n", str(script)], check=True)
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}", SLURM_NTASKS="4",
               SLURM_CPUS_PER_TASK="1", SLURM_JOB_ID="99", H2ODL_CHECKPOINT_DIR=str(tmp_path / "sd"))
    r = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == exit_code, r.stderr
    calls = log.read_text().splitlines()
    assert (f"-m h2odl_mpi grid --search_dir {tmp_path / 'sd'} --ranks_per_model 2 --config grid.toml --epochs 10"
            in calls[0])
    assert (len(calls) == 2 and calls[1].startswith("scontrol requeue 99")) if exit_code else len(calls) == 1


@pytest.mark.parametrize("argv, message", [
    (["--search", "--", "--epochs", "3"], "give the grid file"),
    (["--search", "--", "--config", "g.toml", "--search_dir", "x"], "sets --search_dir"),
    (["--search", "--ranks-per-node", "3", "--ranks-per-model", "2", "--", "--config", "g.toml"], "must divide"),
    (["--search", "--ranks-per-model", "0", "--", "--config", "g.toml"], "--ranks-per-model"),
])
def test_search_job_settings_are_refused(argv, message, capsys):
    from h2odl_mpi.cli import main
    assert main(["jobscript", "--scheduler", "slurm"] + argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


# ---- a cluster user's first week: experiments apart, requeues with their arguments, binding
def _launch_env(tmp_path, log, exit_code, **env):
    """PATH with stand-ins that log their arguments and the OpenMP binding they were given."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for name in ("srun", "mpirun", "qsub", "scontrol"):
        p = bindir / name
        code = exit_code if name in ("srun", "mpirun") else 0
        p.write_text(f'#!/bin/bash\necho "{name} $* | bind=${{OMP_PROC_BIND:-unset}} places=${{OMP_PLACES:-unset}}"'
                     f' >> "{log}"\nexit {code}\n')
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "H2ODL_"))}
    return dict(base, PATH=f"{bindir}:{os.environ['PATH']}", SLURM_JOB_ID="9", SLURM_NTASKS="2",
                SLURM_CPUS_PER_TASK="2", PBS_JOBID="9.pbs", PBS_O_WORKDIR=str(tmp_path), **env)


def _checkpoint_dir_of(launch):
    return launch.split(" --resume ", 1)[1].split(" ", 1)[0]


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
def test_each_experiment_has_its_own_checkpoint_directory(tmp_path, scheduler):
    script = tmp_path / "job.sh"
    script.write_text(render(scheduler, time="01:00:00", train_args=ARGS))
    log = tmp_path / "calls.log"
    dirs = []
    for args in (ARGS, ARGS[:-2] + ["--input_dropout_ratio", "0.1"], ARGS):
        log.unlink(missing_ok=True)
        r = subprocess.run(["bash", str(script)] + args, env=_launch_env(tmp_path, log, 0), cwd=tmp_path,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        dirs.append(_checkpoint_dir_of(log.read_text().splitlines()[0]))
    assert dirs[0] == dirs[2] != dirs[1]  # the same arguments resume, others start afresh
    assert all(d.startswith(str(tmp_path / "checkpoints" / "h2odl-")) for d in dirs)


def test_a_requeued_pbs_job_trains_with_the_arguments_it_was_given(tmp_path):
    script = tmp_path / "train.pbs"
    script.write_text(render("pbs", time="01:00:00", train_args=ARGS))
    log = tmp_path / "calls.log"
    given = ["--train", "mine.csv", "--response", "y", "--hidden", "32,16", "--epochs", "3"]
    r = subprocess.run(["bash", str(script)] + given, env=_launch_env(tmp_path, log, REQUEUE_EXIT), cwd=tmp_path,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == REQUEUE_EXIT, r.stderr
    first, qsub = log.read_text().splitlines()[:2]
    variables = qsub.split(" -v ", 1)[1].split(" ", 1)[0]
    requeued_env = dict(v.split("=", 1) for v in variables.split(","))
    log.unlink()
    r = subprocess.run(["bash", str(script)], env=_launch_env(tmp_path, log, 0, **requeued_env), cwd=tmp_path,
                       capture_output=True, text=True, timeout=30)  # as qsub starts it: no arguments
    assert r.returncode == 0, r.stderr
    second = log.read_text().splitlines()[0]
    assert second == first and " ".join(given) in second and "32,16" in second


@pytest.mark.parametrize("launcher, bind, places", [("srun", "close", "cores"), ("mpirun", "false", "unset")])
def test_threads_are_bound_only_where_each_rank_has_cores_of_its_own(tmp_path, launcher, bind, places):
    script = tmp_path / "job.sh"
    script.write_text(render("slurm", time="01:00:00", launcher=launcher, train_args=ARGS))
    log = tmp_path / "calls.log"
    env = _launch_env(tmp_path, log, 0, OMP_PLACES="cores")  # a site default under mpirun stays off too
    r = subprocess.run(["bash", str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    launch = log.read_text().splitlines()[0]
    assert launch.startswith(launcher) and launch.endswith(f"| bind={bind} places={places}")


@pytest.mark.parametrize("time, seconds, walltime", [("1-00:00:00", 86400, "24:00:00"), ("2-06", 194400, "54:00:00"),
                                                     ("1-12:30", 131400, "36:30:00"), ("04:00:00", 14400, "04:00:00")])
def test_slurm_days_forms_of_the_wall_time(time, seconds, walltime, capsys):
    from h2odl_mpi.jobscript import wall_seconds
    assert wall_seconds(time) == seconds
    assert f"#SBATCH --time={time}\n" in render("slurm", time=time, train_args=ARGS)
    assert f"#PBS -l walltime={walltime}\n" in render("pbs", time=time, train_args=ARGS)  # PBS: no days
    assert main(["jobscript", "--scheduler", "slurm", "--time", time, "--", "--train", "d.csv"]) == 0
    assert f"--time={time}" in capsys.readouterr().out


@pytest.mark.parametrize("time", ["1:00", "1-", "x-1:00:00", "1-2:3", "1d", "01:60:00"])
def test_other_wall_times_are_refused_with_the_forms(time, capsys):
    assert main(["jobscript", "--scheduler", "slurm", "--time", time, "--", "--train", "d.csv"]) == 2
    err = capsys.readouterr().err
    assert "--time: expected HH:MM:SS or D-HH:MM:SS" in err and len(err.strip().splitlines()) == 1
