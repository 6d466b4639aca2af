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
    assert calls[1].startswith(f"qsub -v H2ODL_ARGS_FILE={ck}.args,H2ODL_CHECKPOINT_DIR={ck},H2ODL_REQUEUES=1 "
                               f"{tmp_path / 'train.pbs'}")


# ---- the `jobscript` subcommand ------------------------------------------------------------

def _cli_argv(settings, form="-", **extra):
    """jobscript's command line for render() keywords, the flags with - or _ between words."""
    argv = ["jobscript"]
    for key, value in dict(settings, **extra).items():
        argv += [f"--{key.replace('_', form)}", str(value)]
    return argv


@pytest.mark.parametrize("form", ["_", "-"])
@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_committed_scripts_are_what_the_subcommand_prints(name, form, capsys):
    from h2odl_mpi.cli import main
    assert main(_cli_argv(COMMITTED[name], form) + ["--"] + ARGS) == 0
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
    assert text == render(train_args=ARGS, partition="workq", account="proj42", script_name=str(out),
                          **COMMITTED["pbs/train.pbs"])
    assert f"JOB_SCRIPT={out}  #" in text  # the requeue submits the file written, wherever qsub runs
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
    (["--ranks-per-node", "-1"], "--ranks_per_node"),
    (["--ranks_per_node", "x"], "--ranks_per_node"),
    (["--threads", "0"], "--threads"),
    (["--time", "1:00"], "--time"),
    (["--time", "01:61:00"], "--time"),
    (["--time", "00:06:00"], "--time"),
    (["--scheduler", "lsf"], "--scheduler"),
    (["--launcher", "aprun"], "--launcher"),
    (["--job-name", "a b"], "--job_name"),
    (["--job_name", "a.b"], "--job_name"),
    (["--mem", "64X"], "--mem: mem must be a size like 64G"),
    (["--mem=-1G"], "--mem"),
    (["--mem", "1.5G"], "--mem"),
    (["--scheduler", "pbs", "--mem", "0"], "--mem: mem 0 (all of a node's memory) is Slurm's"),
    (["--activate", "my env"], "--activate"),
    (["--activate=-x/bin/activate"], "--activate"),
    (["--python", "python3;x"], "--python"),
    (["--max_requeues", "-1"], "--max_requeues: expected a count"),
    (["--max-requeues", "many"], "--max_requeues: expected a count"),
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
    (["--search", "--ranks-per-model", "0", "--", "--config", "g.toml"], "--ranks_per_model"),
    (["--search", "--ranks_per_model", "0", "--", "--config", "g.toml"], "--ranks_per_model"),
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


# ---- both flag forms; --mem, --activate, --python, --max_requeues ----------------------------

PAIRS = [("ranks_per_node", "3"), ("job_name", "x-1"), ("max_requeues", "4"), ("ranks_per_model", "3")]


def test_every_flag_takes_the_underscore_and_the_hyphen_form(capsys):
    import argparse
    from h2odl_mpi.jobscript import add_arguments
    helptext = add_arguments(argparse.ArgumentParser()).format_help()
    outputs = []
    for form in ("_", "-"):
        argv = ["jobscript", "--scheduler", "slurm", "--search", "--nodes", "2"]
        for key, value in PAIRS:
            argv += [f"--{key.replace('_', form)}", value]
            assert f"--{key} " in helptext and f"--{key.replace('_', '-')} " in helptext
            # help: H2O's underscore form first
            assert helptext.index(f"--{key} ") < helptext.index(f"--{key.replace('_', '-')} ")
        assert main(argv + ["--"] + SEARCH_ARGS) == 0, capsys.readouterr().err
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] == render("slurm", nodes=2, ranks_per_node=3, job_name="x-1", max_requeues=4,
                                              search=True, ranks_per_model=3, train_args=SEARCH_ARGS)
    assert "#SBATCH --ntasks-per-node=3" in outputs[0] and "MAX_REQUEUES=${H2ODL_MAX_REQUEUES:-4}" in outputs[0]


@pytest.mark.parametrize("mem, slurm, pbs", [("64G", "64G", "64gb"), ("500M", "500M", "500mb"), ("4096", "4096", "4096mb"),
                                             ("1t", "1T", "1tb"), ("64GB", "64G", "64gb"), ("512k", "512K", "512kb"),
                                             ("0", "0", None)])
def test_mem_is_a_directive_per_node(mem, slurm, pbs, capsys):
    text = render("slurm", mem=mem, train_args=ARGS)
    assert f"\n#SBATCH --mem={slurm}\n" in text
    assert SLURM_DIRECTIVE.match(f"#SBATCH --mem={slurm}")
    assert main(["jobscript", "--scheduler", "slurm", "--mem", mem, "--", *ARGS]) == 0 and capsys.readouterr().out == text
    if pbs is None:  # PBS has no "all of the node's memory"
        with pytest.raises(ValueError, match="Slurm's"):
            render("pbs", mem=mem)
    else:
        assert "\n#PBS -l select=2:ncpus=8:mpiprocs=4:ompthreads=2:mem=%s\n" % pbs in \
            render("pbs", nodes=2, ranks_per_node=4, threads=2, mem=mem, train_args=ARGS)


def test_defaults_of_the_new_options_in_the_script():
    for scheduler in ("slurm", "pbs"):
        text = render(scheduler, train_args=ARGS)
        assert "--mem" not in text and ":mem=" not in text  # the scheduler's default memory
        for line in ("ACTIVATE=${H2ODL_ACTIVATE:-}", "PYTHON=${H2ODL_PYTHON:-python3}",
                     "MAX_REQUEUES=${H2ODL_MAX_REQUEUES:-20}"):
            assert f"\n{line}\n" in text
        text = render(scheduler, activate="/opt/envs/h2o", python="/opt/py/bin/python3.11", max_requeues=0,
                      train_args=ARGS)
        for line in ("ACTIVATE=${H2ODL_ACTIVATE:-/opt/envs/h2o}", "PYTHON=${H2ODL_PYTHON:-/opt/py/bin/python3.11}",
                     "MAX_REQUEUES=${H2ODL_MAX_REQUEUES:-0}"):
            assert f"\n{line}\n" in text
        # the environment is activated in the site set-up part, before anything runs
        assert text.index("# ---- site set-up") < text.index("source ") < text.index("set -uo pipefail")


def _marker_env(tmp_path, exit_code=0, **env):
    """Stand-in srun/mpirun/scontrol/qsub logging their arguments and the marker an activate
    file exported (and VIRTUAL_ENV); a run's environment as the batch system starts it."""
    log = tmp_path / "calls.log"
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for name in ("srun", "mpirun", "scontrol", "qsub"):
        p = bindir / name
        code = exit_code if name in ("srun", "mpirun") else 0
        p.write_text(f'#!/bin/bash\necho "{name} $* | marker=${{H2ODL_TEST_MARKER:-unset}} '
                     f'venv=${{VIRTUAL_ENV:-unset}}" >> "{log}"\nexit {code}\n')
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("OMP_", "H2ODL_", "SLURM_", "PBS_", "VIRTUAL_ENV"))}
    full = dict(base, PATH=f"{bindir}:{os.environ['PATH']}", SLURM_JOB_ID="9", SLURM_NTASKS="2",
                SLURM_CPUS_PER_TASK="2", PBS_JOBID="9.pbs", PBS_O_WORKDIR=str(tmp_path),
                H2ODL_CHECKPOINT_DIR=str(tmp_path / "ck"))
    full.update(env)
    return full, log


def _bash(script, env, tmp_path, *args):
    return subprocess.run(["bash", str(script), *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=30)


def _activate_file(path, marker):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'export H2ODL_TEST_MARKER="{marker}:$#"\n')  # $#: the arguments it was sourced with


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
def test_the_activate_directory_or_file_is_sourced_before_the_launch(tmp_path, scheduler):
    _activate_file(tmp_path / "envs" / "h2o" / "bin" / "activate", "venv")
    _activate_file(tmp_path / "site.sh", "file")
    _activate_file(tmp_path / "bin" / "site.sh", "from-PATH")  # a file of that name in PATH is not it
    for activate, marker in (("envs/h2o", "venv"), (str(tmp_path / "envs" / "h2o"), "venv"), ("site.sh", "file"),
                             ("envs/h2o/bin/activate", "venv")):
        script = tmp_path / "job.sh"
        script.write_text(render(scheduler, activate=activate, train_args=ARGS))
        env, log = _marker_env(tmp_path)
        log.unlink(missing_ok=True)
        r = _bash(script, env, tmp_path, "--train", "d.csv", "--epochs", "2")
        assert r.returncode == 0, r.stderr
        launch = log.read_text().splitlines()[0]
        # sourced without the script's arguments, which still reach train
        assert launch.endswith(f"--train d.csv --epochs 2 | marker={marker}:0 venv=unset"), (activate, launch)
    # H2ODL_ACTIVATE at submission overrides it
    env, log = _marker_env(tmp_path, H2ODL_ACTIVATE="site.sh")
    log.unlink()
    assert _bash(script, env, tmp_path).returncode == 0
    assert "marker=file:0" in log.read_text()


def test_a_real_virtualenv_activates_under_the_script(tmp_path):
    venv = Path(sys.prefix)
    if not (venv / "bin" / "activate").is_file():
        pytest.skip("this Python is not in a virtualenv with bin/activate")
    script = tmp_path / "job.sh"
    script.write_text(render("slurm", activate=str(venv), train_args=ARGS))
    env, log = _marker_env(tmp_path)
    r = _bash(script, env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert log.read_text().splitlines()[0].endswith(f"venv={venv}")


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
@pytest.mark.parametrize("activate", ["no/such/venv", "/no/such/file.sh", "emptydir"])
def test_a_missing_activate_path_stops_the_job_before_the_launch(tmp_path, scheduler, activate):
    (tmp_path / "emptydir").mkdir()  # a directory without bin/activate
    script = tmp_path / "job.sh"
    script.write_text(render(scheduler, activate=activate, train_args=ARGS))
    env, log = _marker_env(tmp_path, H2ODL_CHECKPOINT_DIR=str(tmp_path / "ck"))
    r = _bash(script, env, tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "cannot activate the Python environment (--activate, H2ODL_ACTIVATE)" in lines[0]
    assert activate in lines[0] and "nothing started" in lines[0]
    assert not log.exists() and not (tmp_path / "ck").exists()  # nothing launched, no directory made


def test_python_option_and_its_override(tmp_path):
    script = tmp_path / "job.sh"
    script.write_text(render("slurm", python="/opt/py/bin/python3.11", train_args=ARGS))
    for env_python, expected in ((None, "/opt/py/bin/python3.11"), ("python3.12", "python3.12")):
        env, log = _marker_env(tmp_path, **({"H2ODL_PYTHON": env_python} if env_python else {}))
        log.unlink(missing_ok=True)
        assert _bash(script, env, tmp_path).returncode == 0
        assert f"--cpu-bind=cores {expected} -m h2odl_mpi train --resume" in log.read_text()


def _limit_line(r):
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


@pytest.mark.parametrize("count, bound, requeued", [("20", None, False), ("19", None, True), ("0", 0, False),
                                                    ("3", 5, True), ("5", 5, False), ("07", 8, True)])
def test_slurm_stops_requeueing_past_the_bound(tmp_path, count, bound, requeued):
    from h2odl_mpi.jobscript import REQUEUE_LIMIT_EXIT
    script = tmp_path / "job.sbatch"
    script.write_text(render("slurm", train_args=ARGS, **({} if bound is None else {"max_requeues": bound})))
    env, log = _marker_env(tmp_path, REQUEUE_EXIT, SLURM_RESTART_COUNT=count)
    r = _bash(script, env, tmp_path)
    calls = log.read_text().splitlines()
    assert calls[0].startswith("srun ")  # the part runs in any case: only the requeue is bounded
    if requeued:
        assert r.returncode == REQUEUE_EXIT and calls[1].startswith("scontrol requeue 9"), r.stderr
        assert f"(requeue {int(count) + 1} of at most {20 if bound is None else bound})" in r.stdout
    else:
        assert r.returncode == REQUEUE_LIMIT_EXIT != REQUEUE_EXIT and r.returncode != 0
        assert len(calls) == 1  # no scontrol requeue
        line = _limit_line(r)
        assert f"not requeued: requeued {count} times already" in line
        assert f"--max_requeues allows ({20 if bound is None else bound};" in line
        assert "submit the script again with the same arguments (--resume continues from there)" in line
        assert str(tmp_path / "ck") in line


def test_h2odl_max_requeues_at_submission_overrides_the_bound(tmp_path):
    from h2odl_mpi.jobscript import REQUEUE_LIMIT_EXIT
    script = tmp_path / "job.sbatch"
    script.write_text(render("slurm", train_args=ARGS))
    env, log = _marker_env(tmp_path, REQUEUE_EXIT, SLURM_RESTART_COUNT="2", H2ODL_MAX_REQUEUES="2")
    r = _bash(script, env, tmp_path)
    assert r.returncode == REQUEUE_LIMIT_EXIT and "--max_requeues allows (2;" in _limit_line(r)


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
def test_a_job_that_always_asks_for_a_requeue_stops_after_the_bound(tmp_path, scheduler):
    """The chain of requeues as the batch system runs it: Slurm counts them in
    SLURM_RESTART_COUNT, the PBS requeue passes its count on through qsub -v."""
    from h2odl_mpi.jobscript import REQUEUE_LIMIT_EXIT
    script = tmp_path / "job.sh"
    script.write_text(render(scheduler, max_requeues=3, train_args=ARGS))
    requeued_env, statuses, launches = {}, [], 0
    for part in range(10):
        env, log = _marker_env(tmp_path, REQUEUE_EXIT, **requeued_env)
        log.unlink(missing_ok=True)
        r = _bash(script, env, tmp_path)
        statuses.append(r.returncode)
        calls = log.read_text().splitlines()
        launches += sum(c.startswith(("srun ", "mpirun ")) for c in calls)
        if r.returncode != REQUEUE_EXIT:
            break
        if scheduler == "slurm":
            assert calls[-1] == "scontrol requeue 9 | marker=unset venv=unset"
            requeued_env = {"SLURM_RESTART_COUNT": str(part + 1)}
        else:  # the requeued job's environment: the qsub -v list
            variables = calls[-1].split(" -v ", 1)[1].split(" ", 1)[0]
            requeued_env = dict(v.split("=", 1) for v in variables.split(","))
            assert requeued_env["H2ODL_REQUEUES"] == str(part + 1)
    assert statuses == [REQUEUE_EXIT] * 3 + [REQUEUE_LIMIT_EXIT] and launches == 4
    assert "not requeued: requeued 3 times already" in _limit_line(r)


def test_the_pbs_requeue_passes_on_the_settings_given_at_submission(tmp_path):
    script = tmp_path / "train.pbs"
    script.write_text(render("pbs", train_args=ARGS))
    _activate_file(tmp_path / "site.sh", "file")
    env, log = _marker_env(tmp_path, REQUEUE_EXIT, H2ODL_ACTIVATE="site.sh", H2ODL_MAX_REQUEUES="7",
                           H2ODL_PYTHON="python3.12", H2ODL_REQUEUES="2")
    r = _bash(script, env, tmp_path)
    assert r.returncode == REQUEUE_EXIT, r.stderr
    variables = log.read_text().splitlines()[1].split(" -v ", 1)[1].split(" ", 1)[0]
    ck = tmp_path / "ck"
    assert variables.split(",") == [f"H2ODL_ARGS_FILE={ck}.args", f"H2ODL_CHECKPOINT_DIR={ck}", "H2ODL_REQUEUES=3",
                                    "H2ODL_ACTIVATE=site.sh", "H2ODL_PYTHON=python3.12", "H2ODL_MAX_REQUEUES=7"]
    # a value with a comma cannot pass: not requeued, one line
    env, log = _marker_env(tmp_path, REQUEUE_EXIT, H2ODL_PYTHON="py,thon")
    log.unlink()
    r = _bash(script, env, tmp_path)
    assert r.returncode == 2 and "a comma cannot pass through qsub -v: not requeued" in _limit_line(r)
    assert not any(c.startswith("qsub") for c in log.read_text().splitlines())


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
@pytest.mark.parametrize("variable, value", [("H2ODL_MAX_REQUEUES", "many"), ("H2ODL_MAX_REQUEUES", "-1"),
                                             ("COUNT", "x"), ("COUNT", "1.5")])
def test_counts_that_are_not_counts_stop_the_job_before_the_launch(tmp_path, scheduler, variable, value):
    if variable == "COUNT":
        variable = "SLURM_RESTART_COUNT" if scheduler == "slurm" else "H2ODL_REQUEUES"
    script = tmp_path / "job.sh"
    script.write_text(render(scheduler, train_args=ARGS))
    env, log = _marker_env(tmp_path, REQUEUE_EXIT, **{variable: value})
    r = _bash(script, env, tmp_path)
    assert r.returncode == 2 and f"{variable}={value}: expected a count" in _limit_line(r)
    assert not log.exists()


def test_activate_under_home_is_expanded_when_the_shell_did_not(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["jobscript", "--scheduler", "slurm", "--activate=~/venvs/h2o", "--", *ARGS]) == 0
    assert f"\nACTIVATE=${{H2ODL_ACTIVATE:-{tmp_path}/venvs/h2o}}\n" in capsys.readouterr().out
    with pytest.raises(ValueError, match="plain path"):
        render("slurm", activate="~/venvs/h2o")  # the script would take ~ literally: render refuses it


@pytest.mark.parametrize("args, code, needle", [
    (["--nthreads", "4"], 0, None),                       # accepted, changes nothing here
    (["--diagnostics=true"], 0, None),
    (["--sparsity_beta", "0.1"], 2, "error: --sparsity_beta: not supported in this version ("),
    (["--hiden", "3"], 2, "did you mean --hidden?"),
])
def test_train_arguments_of_a_job_are_h2o_parameters_or_refused_at_once(args, code, needle, capsys):
    assert main(["jobscript", "--scheduler", "slurm", "--", "--train", "d.csv", *args]) == code
    err = capsys.readouterr().err
    assert (needle in err and err.count("\n") == 1) if needle else err == ""
