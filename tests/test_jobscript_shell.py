"""The job-script generator never lets a string it was given run as shell code: shell
metacharacters fed to every option are refused (one line, status 2, no file), and what it
accepts (its own file name, the arguments and variables given at submission) travels as
data.  Each script is run under bash with stand-in scheduler commands that record their
arguments; a file called PWNED would be the proof that something executed."""
import os
import stat
import subprocess
from pathlib import Path

import pytest

from h2odl_mpi.cli import main
from h2odl_mpi.jobscript import REQUEUE_EXIT, render

PAYLOADS = ["$(touch PWNED)", "`touch PWNED`", "x;touch PWNED", "x\ntouch PWNED", "x'$(touch PWNED)'",
            'x"$(touch PWNED)"', "a b", "x|touch PWNED", "x&&touch PWNED", "${IFS}touch${IFS}PWNED",
            "x>PWNED", "x}$(touch PWNED)", "x\\$(touch PWNED)", "-x$(touch PWNED)"]
OPTIONS = ["--scheduler", "--nodes", "--ranks_per_node", "--ranks-per-node", "--threads", "--time", "--partition",
           "--queue", "--account", "--job_name", "--job-name", "--launcher", "--ranks_per_model", "--ranks-per-model",
           "--mem", "--activate", "--python", "--max_requeues", "--max-requeues"]


def _pwned(root):
    return [str(p) for p in Path(root).rglob("*PWNED*") if p.name == "PWNED"]


def _standins(bindir, log):
    """srun/mpirun exit REQUEUE_EXIT (a checkpoint was written); scontrol/qsub record their
    arguments one a line."""
    bindir.mkdir(exist_ok=True)
    for name in ("srun", "mpirun", "scontrol", "qsub"):
        code = REQUEUE_EXIT if name in ("srun", "mpirun") else 0
        p = bindir / name
        p.write_text(f'#!/bin/bash\n{{ echo "== {name}"; printf "%s\\n" "$@"; }} >> "{log}"\nexit {code}\n')
        p.chmod(p.stat().st_mode | stat.S_IEXEC)


def _requeued(tmp_path, script, ckpt=None, given=""):
    """What the stand-in qsub records when the PBS script requeues `script`: this part's
    saved arguments, checkpoint directory, requeue count and the settings given at
    submission (`given`: ",H2ODL_...=...") (qsub -v), then the script."""
    ckpt = ckpt or tmp_path / "ck"
    return f"-v\nH2ODL_ARGS_FILE={ckpt}.args,H2ODL_CHECKPOINT_DIR={ckpt},H2ODL_REQUEUES=1{given}\n{script}\n"


def _run_script(script, tmp_path, *args, **env):
    """The script under bash, as the batch system would start it, in tmp_path."""
    log = tmp_path / "calls.log"
    log.unlink(missing_ok=True)
    _standins(tmp_path / "bin", log)
    full = dict(os.environ, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}", SLURM_JOB_ID="42",
                PBS_JOBID="43.pbs", PBS_O_WORKDIR=str(tmp_path), H2ODL_CHECKPOINT_DIR=str(tmp_path / "ck"))
    full.update(env)
    r = subprocess.run(["bash", str(script)] + list(args), env=full, cwd=tmp_path, capture_output=True,
                       text=True, timeout=30)
    return r, log.read_text() if log.exists() else ""


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
@pytest.mark.parametrize("option", OPTIONS)
def test_shell_characters_in_any_option_are_refused(tmp_path, capsys, monkeypatch, scheduler, option):
    monkeypatch.chdir(tmp_path)
    for payload in PAYLOADS:
        argv = ["jobscript", "--scheduler", scheduler, option, payload, "-o", "job.sh"]
        if option == "--scheduler":
            argv = ["jobscript", option, payload, "-o", "job.sh"]
        try:
            code = main(argv)
        except SystemExit as e:  # argparse: a value that looks like an option ("-x...")
            code = e.code
            assert code == 2 and not (tmp_path / "job.sh").exists() and not _pwned(tmp_path)
            capsys.readouterr()
            continue
        err = capsys.readouterr().err
        if code == 0:  # accepted: then it must be harmless
            r, _ = _run_script(tmp_path / "job.sh", tmp_path)
            assert not _pwned(tmp_path), (option, payload, r.stderr)
            continue
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (option, payload, err)
        assert not (tmp_path / "job.sh").exists() and not _pwned(tmp_path), (option, payload)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_shell_characters_in_train_arguments_are_refused(tmp_path, capsys, payload):
    for tail in (["--train", payload], [payload], [f"--train={payload}"]):
        code = main(["jobscript", "--scheduler", "slurm", "-o", str(tmp_path / "j.sh"), "--"] + tail)
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1, (tail, err)
        assert not (tmp_path / "j.sh").exists()


@pytest.mark.parametrize("keyword, value", [("partition", "a;b"), ("account", "$(x)"), ("job_name", "a\nb"),
                                            ("launcher", "srun;x"), ("time", "01:00:00;x"), ("nodes", "2"),
                                            ("mem", "64G;x"), ("mem", "$(x)"), ("mem", 64), ("activate", "$(x)"),
                                            ("activate", "-x"), ("activate", "a b"), ("activate", "~/venv"),
                                            ("python", "py thon"), ("python", "-c"), ("python", "`x`"),
                                            ("max_requeues", -1), ("max_requeues", "3"), ("max_requeues", True),
                                            ("nodes", True), ("train_args", ["--train", "`x`"])])
def test_render_itself_refuses_what_it_cannot_write_plainly(keyword, value):
    with pytest.raises(ValueError):
        render("slurm", **dict({"time": "02:00:00"}, **{keyword: value}))


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_scripts_own_name_is_data_when_it_requeues_itself(tmp_path, capsys, scheduler, payload):
    name = f"job{payload}.sh"
    if "/" in name:
        pytest.skip("not a file name")
    assert main(["jobscript", "--scheduler", scheduler, "--time", "02:00:00", "-o", str(tmp_path / name),
                 "--", "--train", "d.csv", "--response", "y"]) == 0, capsys.readouterr().err
    r, calls = _run_script(tmp_path / name, tmp_path)
    assert r.returncode == REQUEUE_EXIT, r.stderr
    assert not _pwned(tmp_path), (payload, r.stderr)
    if scheduler == "pbs":  # the requeue submitted exactly this file again
        assert calls.split("== qsub\n", 1)[1] == _requeued(tmp_path, tmp_path / name)
    else:
        assert calls.split("== scontrol\n", 1)[1] == "requeue\n42\n"


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
def test_arguments_and_variables_given_at_submission_are_data(tmp_path, scheduler):
    script = tmp_path / "job.sh"
    script.write_text(render(scheduler, time="02:00:00", train_args=["--train", "d.csv"]))
    evil = "$(touch PWNED);`touch PWNED`"
    r, calls = _run_script(script, tmp_path, "--train", evil, H2ODL_CHECKPOINT_DIR=str(tmp_path / evil))
    assert r.returncode == REQUEUE_EXIT and not _pwned(tmp_path), r.stderr
    assert f"--resume\n{tmp_path / evil}\n" in calls and f"--train\n{evil}\n" in calls
    r, calls = _run_script(script, tmp_path, H2ODL_TRAIN_ARGS=f"--train {evil}", H2ODL_JOB_SCRIPT=evil,
                           H2ODL_NTASKS="2", H2ODL_THREADS="1")
    assert r.returncode == REQUEUE_EXIT and not _pwned(tmp_path), r.stderr
    assert "--train\n" + "\n".join(evil.split()) + "\n" in calls  # split on blanks (read -a), never run
    if scheduler == "pbs":  # the settings given at submission go on to the requeued job, as data
        assert calls.split("== qsub\n", 1)[1] == _requeued(
            tmp_path, evil, given=f",H2ODL_NTASKS=2,H2ODL_THREADS=1,H2ODL_JOB_SCRIPT={evil}")


def test_output_onto_a_device_or_directory_is_refused(tmp_path, capsys):
    for out, needle in (("/dev/null", "is not a regular file"), (str(tmp_path), "is not a regular file")):
        assert main(["jobscript", "--scheduler", "slurm", "-o", out]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0] == f"error: -o {out}: {needle}", err
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and os.listdir(tmp_path) == []


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
def test_environment_python_and_requeue_counts_given_at_submission_are_data(tmp_path, scheduler):
    """H2ODL_ACTIVATE and H2ODL_PYTHON are paths, used quoted; the requeue counts are checked
    to be digits before any arithmetic (bash's arithmetic would run `a[$(cmd)]`)."""
    script = tmp_path / "job.sh"
    script.write_text(render(scheduler, time="02:00:00", train_args=["--train", "d.csv"]))
    evil = "$(touch PWNED);`touch PWNED`"
    venv = tmp_path / evil / "bin"
    venv.mkdir(parents=True)
    (venv / "activate").write_text("export H2ODL_SOURCED=yes\n")
    r, calls = _run_script(script, tmp_path, H2ODL_ACTIVATE=evil, H2ODL_PYTHON=evil)
    assert r.returncode == REQUEUE_EXIT and not _pwned(tmp_path), r.stderr
    assert f"\n{evil}\n-m\nh2odl_mpi\ntrain\n" in calls  # the interpreter, one word
    r, calls = _run_script(script, tmp_path, H2ODL_ACTIVATE=evil + "x")  # not there: one line, nothing run
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and calls == "" and not _pwned(tmp_path)
    count = "SLURM_RESTART_COUNT" if scheduler == "slurm" else "H2ODL_REQUEUES"
    for variable in (count, "H2ODL_MAX_REQUEUES"):
        for value in ("a[$(touch PWNED)]", "x[`touch PWNED`]", "1$(touch PWNED)", "PWNED"):
            r, calls = _run_script(script, tmp_path, **{variable: value})
            assert r.returncode == 2 and calls == "" and not _pwned(tmp_path), (variable, value, r.stderr)
            assert len(r.stderr.strip().splitlines()) == 1
