"""Faults while writing and bad output/config paths, through the command line in a
subprocess (issue 12, classes 1, 2, 6, 7): a full or read-only disk, a library error while
writing, a checkpoint directory owned by another run (live, stale, on another host, a
requeued Slurm job), pruning around damaged and foreign checkpoints, outputs that are
inputs, and config files that are devices, FIFOs or huge.  Each test checks the one-line
message, the exit status, the files left behind and that no process of the run remains.
Full and read-only disks are small tmpfs mounts (skipped, with the reason, unless the tests
run as root and may mount)."""
import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

from h2odl_mpi.training import checkpoint as ckpt
from h2odl_mpi.training.checkpoint_files import lineage_of
from h2odl_mpi.atomic import _process_start
from h2odl_mpi.model.model_io import load_model
from h2odl_mpi.params import validate
from h2odl_mpi.training.trainer import train

LOCK = ckpt.LOCK_NAME


# ------------------------------------------------------------------------------ helpers
def _csv(path, n=200, seed=0):
    """A small binary-classification CSV (a,b,c,d -> y)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    with open(path, "w") as f:
        f.write("a,b,c,d,y\n")
        f.writelines(",".join(f"{v:.5f}" for v in r) + f",{int(r[0] + r[1] > 0)}\n" for r in x)
    return str(path)


def _args(data, *extra, hidden="4", epochs="1"):
    """train arguments for a short run on `data`."""
    return ["train", "--train", data, "--response", "y", "--hidden", hidden, "--epochs", epochs,
            "--train_samples_per_iteration", "50", "--threads", "1", "--quiet_mode", "true", *extra]


def _run(tmp_path, args, script=None, env=None, timeout=120, running=()):
    """The CLI (or a wrapper script around it) in a subprocess: (status, stdout, stderr).
    Rescued models go to tmp_path/tmp ($TMPDIR); `running`: pids meant to outlive it."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    full_env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"), **(env or {}))
    cmd = [sys.executable] + ([str(script)] if script else ["-m", "h2odl_mpi"]) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)
    assert not set(_leftovers(str(tmp_path))) - {str(p) for p in running}, "a process of the run remains"
    return r.returncode, r.stdout, r.stderr


def _leftovers(marker):
    """Processes (other than this one) whose command line holds `marker`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
        except OSError:
            continue
        if marker in cmd and int(pid) != os.getpid():
            found.append(pid)
    return found


def _one_error(err, *needles):
    """The single 'error: ' line of stderr, which holds every needle; no traceback, no crash."""
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err and "Segmentation" not in err, err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def _wrapper(tmp_path, patch):
    """A script that applies `patch` (Python source) and then runs the CLI."""
    script = tmp_path / "wrapper.py"
    script.write_text("import sys\n" + patch + "\nfrom h2odl_mpi.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    return script


@contextlib.contextmanager
def _tmpfs(path, size="200k", ro=False):
    """A small tmpfs at `path` (read-only if asked); the test is skipped if it cannot be mounted."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for a full or read-only disk needs root")
    os.makedirs(path, exist_ok=True)
    opts = f"size={size}" + (",ro" if ro else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield str(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _no_tmp_files(*dirs):
    """No temporary file (of a write or a lock) is left in `dirs`."""
    for d in dirs:
        left = [n for n in os.listdir(d) if ".tmp" in n or ".new" in n or ".stale" in n]
        assert not left, left


def _rescued(line):
    """The fallback path an error line names."""
    m = re.search(r"written to (\S+) instead", line)
    assert m, line
    return m.group(1)


def _digest(path):
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


# ------------------------------------------------- class 1: writes on full/failing disks
def test_model_out_on_a_full_disk_is_kept_elsewhere(tmp_path):
    """HDF5 used to crash (SIGSEGV) writing this network onto a full disk."""
    data = _csv(tmp_path / "d.csv")
    with _tmpfs(tmp_path / "full") as full:
        rc, _, err = _run(tmp_path, _args(data, "--model_out", f"{full}/m.h5", hidden="100,100,100"))
        assert rc == 2, err
        line = _one_error(err, f"{full}/m.h5: cannot write: No space left on device", "free)")
        assert os.listdir(full) == []  # nothing half-written
    kept = _rescued(line)
    assert kept.startswith(str(tmp_path / "tmp")) and load_model(kept)[0].units[1:4] == [100, 100, 100]


def test_a_write_failing_after_the_space_check_is_one_line(tmp_path):
    """The free-space check passes (disabled here) and the write itself fails."""
    data = _csv(tmp_path / "d.csv")
    script = _wrapper(tmp_path, "import h2odl_mpi.atomic as a\na.SPACE_MARGIN = -(1 << 50)")
    with _tmpfs(tmp_path / "full", size="100k") as full:
        rc, _, err = _run(tmp_path, _args(data, "--model_out", f"{full}/m.h5", hidden="100,100"), script=script)
        assert rc == 2, err
        line = _one_error(err, f"{full}/m.h5: cannot write: No space left on device")
        assert os.listdir(full) == []
    assert load_model(_rescued(line))[3]["hidden"] == [100, 100]


def test_checkpoint_dir_filling_up_mid_run(tmp_path):
    """Checkpoints fill the disk: the run ends, the older checkpoints whole, the model kept."""
    data = _csv(tmp_path / "d.csv")
    with _tmpfs(tmp_path / "ck", size="200k") as ck:
        rc, _, err = _run(tmp_path, _args(data, "--checkpoint_dir", ck, "--checkpoint_interval", "1it",
                                          "--checkpoint_keep", "0", hidden="8", epochs="20"))
        assert rc == 2, err
        line = _one_error(err, "cannot write: No space left on device", "written to")
        failed = re.search(r"(ckpt_\d+\.h5): cannot write", line).group(1)
        names = sorted(os.listdir(ck))
        assert names and failed not in names and LOCK not in names  # the lock went with the run
        for n in names:
            load_model(os.path.join(ck, n))  # every checkpoint left is whole
        _no_tmp_files(ck)
    kept = _rescued(line)
    assert load_model(kept)[4]["state"]["iteration"] == int(failed[5:14])


def test_a_disk_turning_read_only_before_the_final_write(tmp_path):
    """The output disk is remounted read-only after the checks: the model goes to $TMPDIR."""
    data = _csv(tmp_path / "d.csv")
    out = tmp_path / "ro"
    script = _wrapper(tmp_path, f"""
import subprocess
from h2odl_mpi.training import outputs
_orig = outputs.write_results
def write_results(*a, **k):
    subprocess.run(["mount", "-o", "remount,ro", {str(out)!r}], check=True)
    return _orig(*a, **k)
outputs.write_results = write_results
""")
    with _tmpfs(out, size="1m") as ro:
        rc, _, err = _run(tmp_path, _args(data, "--model_out", f"{ro}/m.h5", "--summary_json", f"{ro}/s.json"),
                          script=script)
        assert rc == 2, err
        line = _one_error(err, f"{ro}/m.h5: cannot write: Read-only file system")
        assert os.listdir(ro) == []
    assert load_model(_rescued(line))[3]["hidden"] == [4]


def test_a_model_out_that_fails_names_the_final_checkpoint_holding_it(tmp_path):
    """With a checkpoint directory elsewhere, the end's checkpoint is the model: it is named."""
    data, ck = _csv(tmp_path / "d.csv"), str(tmp_path / "ck")
    with _tmpfs(tmp_path / "full", size="100k") as full:
        rc, _, err = _run(tmp_path, _args(data, "--model_out", f"{full}/m.h5", "--checkpoint_dir", ck,
                                          hidden="100,100"))
        assert rc == 2, err
        line = _one_error(err, f"{full}/m.h5: cannot write: No space left on device")
        assert os.listdir(full) == [] and os.listdir(tmp_path / "tmp") == []
    final = ckpt.newest_valid(ck, warn=False)
    assert line.endswith(f"; the trained model is in the checkpoint {final}") and sorted(os.listdir(ck)) == [
        os.path.basename(final)]


def test_a_read_only_output_directory_is_refused_before_reading(tmp_path):
    """Each output on a read-only mount is refused before the (missing) data is read."""
    with _tmpfs(tmp_path / "ro", ro=True) as ro:
        for flag in ("--model_out", "--summary_json", "--scoring_history", "--checkpoint_dir"):
            target = f"{ro}/out" if flag == "--checkpoint_dir" else f"{ro}/out.x"
            rc, _, err = _run(tmp_path, _args(str(tmp_path / "missing.csv"), flag, target))
            assert rc == 2, err
            _one_error(err, f"{flag[2:]}: cannot write into {ro}", "Read-only file system")
        assert os.listdir(ro) == []


def test_a_library_error_while_writing_is_one_line_and_the_model_kept(tmp_path):
    """Whatever the library raises (here HDF5's multi-line RuntimeError) is one line."""
    data = _csv(tmp_path / "d.csv")
    script = _wrapper(tmp_path, """
from h2odl_mpi.model import model_io
_orig, _calls = model_io.model_image, []
def model_image(*a, **k):
    _calls.append(1)
    if len(_calls) == 1:
        raise RuntimeError("Can't close file (file write failed: time = now\\n, errno = 28)")
    return _orig(*a, **k)
model_io.model_image = model_image
""")
    rc, _, err = _run(tmp_path, _args(data, "--model_out", str(tmp_path / "m.h5")), script=script)
    assert rc == 2, err
    line = _one_error(err, "m.h5: cannot write: RuntimeError: Can't close file (file write failed: time = now , errno")
    kept = _rescued(line)
    assert kept == str(tmp_path / f"m.rescued-{kept.split('-')[-1]}") and load_model(kept)
    assert not (tmp_path / "m.h5").exists()
    _no_tmp_files(tmp_path)


def test_summary_on_a_full_disk_names_the_file(tmp_path):
    """A small file (the scoring history) on a full disk: one line naming it."""
    data = _csv(tmp_path / "d.csv")
    with _tmpfs(tmp_path / "full", size="64k") as full:
        fd = os.open(f"{full}/filler", os.O_WRONLY | os.O_CREAT)
        with contextlib.suppress(OSError):  # fill it to the last byte
            while os.write(fd, b"\0" * 4096):
                pass
        os.close(fd)
        rc, _, err = _run(tmp_path, _args(data, "--model_out", str(tmp_path / "m.h5"),
                                          "--scoring_history", f"{full}/h.csv"))
        assert rc == 2, err
        _one_error(err, f"{full}/h.csv: cannot write: No space left on device")
        assert os.listdir(full) == ["filler"]
    assert load_model(str(tmp_path / "m.h5"))  # written before


def test_export_weights_is_whole_or_absent(tmp_path, monkeypatch):
    """A failure in the middle of the CSV files leaves the earlier directory as it was."""
    from h2odl_mpi.model import model_io
    s = train(validate({"train": _csv(tmp_path / "d.csv"), "response": "y", "hidden": [3], "epochs": 1,
                        "quiet_mode": True}))
    where = str(tmp_path / "m.h5.weights")
    model_io.export_weights_and_biases(where, s.network, s.model, s.info)
    before = {n: _digest(os.path.join(where, n)) for n in os.listdir(where)}
    real, calls = model_io.write_bytes, []

    def fail_third(path, data, mode=None):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(path, data, mode)
    monkeypatch.setattr(model_io, "write_bytes", fail_third)
    with pytest.raises(OSError):
        model_io.export_weights_and_biases(where, s.network, 2 * s.model, s.info)
    assert {n: _digest(os.path.join(where, n)) for n in os.listdir(where)} == before  # the old one, whole
    assert sorted(os.listdir(tmp_path)) == ["d.csv", "m.h5.weights"]


# ------------------------------------------------- class 2: the checkpoint directory's owner
def _lock(d, **owner):
    """A lock file in `d` with this host and process as the owner, fields replaced by `owner`."""
    me = {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": _process_start(os.getpid()),
          "since": "2020-01-01 00:00:00"}
    me.update(owner)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, LOCK), "w") as f:
        json.dump(me, f)
    return os.path.join(d, LOCK)


def _dead_pid():
    """The pid of a process that has ended."""
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


@pytest.mark.parametrize("owner, env, taken", [
    ({}, {}, None),                                                           # this live process
    ({"host": "elsewhere"}, {}, None),                                        # another host, fresh
    ({"pid": "dead"}, {}, "is no longer running"),                            # dead pid, this host
    ({"pid_start": -1}, {}, "is no longer running"),                          # pid reused since
    ({"host": "elsewhere", "age": 7200}, {}, "not refreshed for"),            # no heartbeat for 2 h
    ({"host": "elsewhere", "slurm_job_id": "77", "slurm_restart_count": "0"},
     {"SLURM_JOB_ID": "77", "SLURM_RESTART_COUNT": "1"}, "was requeued since"),  # a requeued job
])
def test_a_lock_is_refused_while_its_owner_lives_and_taken_over_after(tmp_path, owner, env, taken):
    """A live owner refuses the run (lock untouched); a gone one's lock is taken over and freed."""
    data = _csv(tmp_path / "d.csv")
    d = str(tmp_path / "ck")
    age = owner.pop("age", 0)
    if owner.get("pid") == "dead":
        owner["pid"] = _dead_pid()
    lock = _lock(d, **owner)
    os.utime(lock, (time.time() - age, time.time() - age))
    before = _digest(lock)
    rc, _, err = _run(tmp_path, _args(data, "--checkpoint_dir", d), env=env)
    if taken is None:
        assert rc == 2, err
        _one_error(err, f"checkpoint_dir {d} is in use by another run: pid {owner.get('pid', os.getpid())} on host "
                        f"{owner.get('host', socket.gethostname())}", f"lock file {lock}")
        assert os.listdir(d) == [LOCK] and _digest(lock) == before
    else:
        assert rc == 0, err
        assert "warning: checkpoint_dir" in err and "took over the stale lock" in err and taken in err
        assert LOCK not in os.listdir(d) and ckpt.newest_valid(d)  # released at the end


def test_a_second_real_run_is_refused_and_a_killed_ones_lock_taken_over(tmp_path):
    """Two real runs on one directory: the second is refused; after SIGKILL a third takes over."""
    data = _csv(tmp_path / "d.csv", n=2000)
    d = str(tmp_path / "ck")
    first = subprocess.Popen([sys.executable, "-m", "h2odl_mpi"] + _args(
        data, "--checkpoint_dir", d, "--checkpoint_interval", "0", hidden="32,32", epochs="100000"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        t0 = time.time()
        while not os.path.exists(os.path.join(d, LOCK)) and time.time() - t0 < 60 and first.poll() is None:
            time.sleep(0.05)
        assert os.path.exists(os.path.join(d, LOCK)), first.communicate()[1]
        rc, _, err = _run(tmp_path, _args(data, "--resume", d), running=[first.pid])
        assert rc == 2, err
        _one_error(err, f"checkpoint_dir {d} is in use by another run: pid {first.pid} on host")
        assert first.poll() is None  # the owner trains on, untouched
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate()
    assert os.path.exists(os.path.join(d, LOCK))  # a killed run cannot remove it
    rc, _, err = _run(tmp_path, _args(data, "--resume", d))
    assert rc == 0, err
    assert f"took over the stale lock of pid {first.pid}" in err and not os.path.exists(os.path.join(d, LOCK))


def _garbage_checkpoints(d, iterations):
    """Damaged checkpoint files (an HDF5 signature, then garbage) of these iterations."""
    os.makedirs(d, exist_ok=True)
    for i in iterations:
        with open(ckpt.checkpoint_path(d, i), "wb") as f:
            f.write(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)  # an HDF5 signature, then nothing valid


def test_resume_over_damaged_checkpoints_keeps_its_own(tmp_path):
    """The damaged files have higher iterations than the new run's; they are neither
    counted as kept nor deleted, and the run's newest checkpoints stay."""
    data = _csv(tmp_path / "d.csv")
    d = str(tmp_path / "ck")
    _garbage_checkpoints(d, (50, 51, 52))
    rc, _, err = _run(tmp_path, _args(data, "--resume", d, "--checkpoint_interval", "1it",
                                        "--checkpoint_keep", "2", epochs="2"))
    assert rc == 0, err
    assert err.count("skipping damaged checkpoint") == 3
    assert sorted(os.listdir(d)) == [f"ckpt_{i:09d}.h5" for i in (7, 8, 50, 51, 52)]
    assert ckpt.newest_valid(d, warn=False) == ckpt.checkpoint_path(d, 8)


def _p(data, **kw):
    """Validated parameters of a short in-process run checkpointing every iteration."""
    p = {"train": data, "response": "y", "hidden": [4], "epochs": 1, "seed": 3, "quiet_mode": True,
         "train_samples_per_iteration": 50, "threads": 1, "checkpoint_interval": "1it", "checkpoint_keep": 2}
    p.update(kw)
    return validate(p)


def test_pruning_spares_other_runs_and_follows_its_requeued_parts(tmp_path):
    """Pruning removes its lineage's old files only; a fresh run over checkpoints is refused."""
    data = _csv(tmp_path / "d.csv")
    d, other = str(tmp_path / "ck"), str(tmp_path / "other")
    train(_p(data, checkpoint_dir=other, checkpoint_keep=0))           # another run's checkpoints
    _garbage_checkpoints(d, (0,))                                      # a damaged one, no lineage
    train(_p(data, resume=d))                                          # the first part: 1..4, keeps 3, 4
    assert sorted(os.listdir(d)) == [f"ckpt_{i:09d}.h5" for i in (0, 3, 4)]
    os.replace(ckpt.checkpoint_path(other, 1), ckpt.checkpoint_path(d, 1))  # a valid one of another run
    foreign = _digest(ckpt.checkpoint_path(d, 1))
    train(_p(data, resume=d, epochs=2))                                # requeued: continues 4, writes 5..8
    assert sorted(os.listdir(d)) == [f"ckpt_{i:09d}.h5" for i in (0, 1, 7, 8)]
    assert _digest(ckpt.checkpoint_path(d, 1)) == foreign
    lineages = {lineage_of(ckpt.checkpoint_path(d, i)) for i in (1, 7, 8)}
    assert len(lineages) == 2 and None not in lineages
    before = {n: _digest(os.path.join(d, n)) for n in os.listdir(d)}
    rc, _, err = _run(tmp_path, _args(data, "--checkpoint_dir", d))    # a fresh run would overwrite them
    assert rc == 2, err
    _one_error(err, f"checkpoint_dir {d} already holds checkpoints (ckpt_000000008.h5, ckpt_000000007.h5, "
                    f"ckpt_000000001.h5 ...) that this run would overwrite: continue them with --resume {d}")
    assert {n: _digest(os.path.join(d, n)) for n in os.listdir(d)} == before


# ------------------------------------------------------ class 6: outputs that are inputs
def _inputs(tmp_path):
    """Input files of every kind (never read: the refusal comes first)."""
    paths = {"train": _csv(tmp_path / "d.csv"), "validation": _csv(tmp_path / "v.csv", seed=1)}
    for name in ("model.h5", "ae.h5"):
        (tmp_path / name).write_bytes(b"not read")
    (tmp_path / "run.toml").write_text(f'train = "{paths["train"]}"\nresponse = "y"\n')
    (tmp_path / "data").mkdir()
    _csv(tmp_path / "data" / "part1.csv")
    os.symlink(paths["train"], tmp_path / "link.csv")
    os.link(tmp_path / "model.h5", tmp_path / "hard.h5")
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "ckpt_000000003.h5").write_bytes(b"not read")
    return paths


_T, _V = "{t}/d.csv", "{t}/v.csv"
SAME = [  # (arguments after train, the message's words)
    (["--train", _T, "--model_out", _T], "model_out {t}/d.csv is the same file as train {t}/d.csv"),
    (["--train", _T, "--validation", _V, "--summary_json", _V], "summary_json {t}/v.csv is the same file as validation"),
    (["--train", _T, "--scoring_history", "{t}/link.csv"], "scoring_history {t}/link.csv is the same file as train"),
    (["--train", _T, "--checkpoint", "{t}/model.h5", "--model_out", "{t}/hard.h5"],
     "model_out {t}/hard.h5 is the same file as checkpoint {t}/model.h5"),
    (["--train", _T, "--pretrained_autoencoder", "{t}/ae.h5", "--model_out", "{t}/./ae.h5"],
     "is the same file as pretrained_autoencoder {t}/ae.h5"),
    (["--config", "{t}/run.toml", "--summary_json", "{t}/run.toml"], "summary_json {t}/run.toml is the same file as config"),
    (["--train", _T, "--model_out", "{t}/o.h5", "--summary_json", "{t}/o.h5"],
     "summary_json and model_out are the same file ({t}/o.h5)"),
    (["--train", "{t}/data", "--model_out", "{t}/data/m.h5"], "lies in the train directory {t}/data, whose files are read"),
    (["--train", "{t}/data/*.csv", "--summary_json", "{t}/data/s.csv"], "matches the train pattern {t}/data/*.csv"),
    (["--train", _T, "--model_out", "{t}/data"], "model_out {t}/data is a directory"),
    (["--train", _T, "--checkpoint_dir", "{t}/ck", "--model_out", "{t}/ck/ckpt_000000009.h5"],
     "is a checkpoint file name in checkpoint_dir {t}/ck"),
    (["--train", _T, "--checkpoint", "{t}/ck/ckpt_000000003.h5", "--checkpoint_dir", "{t}/ck"],
     "checkpoint {t}/ck/ckpt_000000003.h5 is one of the checkpoint files that checkpoint_dir {t}/ck writes"),
    (["--train", "{t}/data", "--checkpoint_dir", "{t}/data"], "checkpoint_dir {t}/data is the same as train"),
]


@pytest.mark.parametrize("args, needle", SAME, ids=[f"same{i}" for i in range(len(SAME))])
def test_an_output_that_is_an_input_is_refused_before_reading(tmp_path, args, needle):
    """Refused with the message, status 2, and not one file written or changed."""
    _inputs(tmp_path)
    before = {p: _digest(p) for p in map(str, tmp_path.rglob("*")) if os.path.isfile(p)}
    argv = ["train", "--response", "y", "--hidden", "3", "--epochs", "1", "--quiet_mode", "true"]
    rc, _, err = _run(tmp_path, argv + [a.format(t=tmp_path) for a in args])
    assert rc == 2, err
    _one_error(err, needle.format(t=tmp_path), *(["an output may not overwrite an input"] if "same file as" in needle
                                                 else []))
    after = {p: _digest(p) for p in map(str, tmp_path.rglob("*")) if os.path.isfile(p)}
    assert after == before  # nothing written, nothing replaced


# --------------------------------------------------- class 7: what --config may read
def test_config_reads_only_bounded_regular_files(tmp_path):
    """Devices, FIFOs, huge files and directories are refused at once, naming the file."""
    os.mkfifo(tmp_path / "fifo")                    # no writer: opening it would block
    with open(tmp_path / "huge.toml", "wb") as f:   # 2 MiB, sparse
        f.truncate(2 << 20)
    os.symlink("/dev/zero", tmp_path / "zero.toml")
    cases = [("/dev/zero", "is a character device, not a regular config file"),
             (str(tmp_path / "zero.toml"), "is a character device"),
             (str(tmp_path / "fifo"), "is a FIFO (named pipe), not a regular config file"),
             (str(tmp_path / "huge.toml"), "a config file may hold at most 1048576 bytes (1 MiB); this one has 2097152"),
             (str(tmp_path), "is a directory, not a config file")]
    for path, needle in cases:
        t0 = time.time()
        rc, _, err = _run(tmp_path, ["train", "--config", path], timeout=60)
        assert rc == 2 and time.time() - t0 < 30, err
        _one_error(err, f"{path}: {needle}")


def test_a_config_file_growing_past_the_limit_while_read(tmp_path, monkeypatch):
    """The size is checked on what is read, not only on what stat said."""
    from h2odl_mpi import config
    from h2odl_mpi.errors import UserError
    path = tmp_path / "run.toml"
    path.write_text("# " + "x" * 100 + "\n")
    monkeypatch.setattr(config, "MAX_BYTES", 50)
    monkeypatch.setattr(config, "_check_regular", lambda p, st: None)  # as if it grew after the check
    with pytest.raises(UserError, match=r"run\.toml: a config file may hold at most 50 bytes"):
        config.load(str(path))


def test_an_output_that_is_a_device_is_refused_and_left_alone(tmp_path):
    """--model_out /dev/null (or any device, FIFO): refused before anything is read; the
    atomic write would otherwise rename a regular file over the device."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for out in ("/dev/null", str(fifo)):
        r = subprocess.run([sys.executable, "-m", "h2odl_mpi", "train", "--train", str(tmp_path / "none.csv"),
                            "--response", "y", "--model_out", out], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "is not a regular file" in r.stderr and "Traceback" not in r.stderr
    assert not os.path.isfile("/dev/null") and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_write_removes_what_a_killed_writer_of_the_same_file_left(tmp_path):
    """A job killed while writing its model leaves <model>.tmp<pid>; the resumed run, once it
    has written the model whole, removes it (the writer is gone), and never a live writer's."""
    import subprocess
    from h2odl_mpi.atomic import write_bytes
    target = tmp_path / "m.h5"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        left = tmp_path / f"m.h5.tmp{dead.pid}"
        busy = tmp_path / f"m.h5.tmp{live.pid}"
        other = tmp_path / f"other.h5.tmp{dead.pid}"
        for p in (left, busy, other):
            p.write_bytes(b"half a model")
        write_bytes(str(target), b"the model")
        assert target.read_bytes() == b"the model"
        assert not left.exists() and busy.exists() and other.exists()
    finally:
        live.kill()
        live.wait()
