"""Bad inputs and faults, one process: non-finite and overflowing values, sizes that cannot
fit, parameters that cannot work, predict's outputs, SIGINT.  Each ends with one line naming
the culprit (no traceback), the status it documents, and nothing half-written."""
import json
import os
import resource
import shutil
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest

from h2odl_mpi.training import checkpoint as ckpt
from h2odl_mpi.cli import main
from h2odl_mpi.errors import UserError
from h2odl_mpi.data.frame import Frame
from h2odl_mpi.kernel import NetConfig, Network, buffer_floats
from h2odl_mpi.params import THREADS_PER_CORE, cores_available, validate
from h2odl_mpi.data.preprocess import Preprocess
from process_cpu import wait_for_cpu

N = 200
BASE = ["--hidden", "4", "--epochs", "1", "--seed", "1", "--quiet_mode", "true", "--threads", "1"]


def _csv(path, n=N, cells=None, seed=0):
    """x1, x2, w (weights), o (offset), y (numeric), c (2 levels); cells {(row, col): text}
    replace values (row 0-based among the data rows)."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    table = {"x1": x1, "x2": x2, "w": rng.uniform(0.5, 1.5, n), "o": rng.normal(size=n) * 0.1,
             "y": x1 + 0.5 * x2 + 0.1 * rng.normal(size=n), "c": np.where(x1 > 0, "a", "b")}
    names = list(table)
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        for i in range(n):
            f.write(",".join((cells or {}).get((i, k), str(table[k][i])) for k in names) + "\n")
    return str(path)


def _error(code, capfd, *needles):
    """The run ended with status 2 and one line `error: ...` holding every needle."""
    err = capfd.readouterr().err
    assert code == 2, err
    lines = [l for l in err.splitlines() if l.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _train(data, *extra):
    return main(["train", "--train", data, "--response", "y", "--ignored_columns", "c"] + BASE + list(extra))


# ---- 3: non-finite and overflowing values ----------------------------------------------------

@pytest.mark.parametrize("text", ["Inf", "inf", "-Inf", "+inf", "Infinity", "-infinity"])
def test_inf_in_an_input_is_refused_naming_file_column_and_row(tmp_path, capfd, text):
    data = _csv(tmp_path / "d.csv", cells={(17, "x2"): text})
    out = tmp_path / "m.h5"
    _error(_train(data, "--model_out", str(out)), capfd, "d.csv", "column 'x2'", "data row 18", "not a finite")
    assert not out.exists()


@pytest.mark.parametrize("cells, extra, needle", [
    ({(17, "x1"): "1e308"}, [], "standardising the column overflows"),             # its sd overflows
    ({(17, "x1"): "1e308", (40, "x1"): "1e308"}, [], "too large"),                 # its mean overflows
    ({(17, "x1"): "1e39"}, ["--standardize", "false"], "too large for the network's 32-bit floats"),
    ({(17, "x1"): "-1.7e308"}, [], "too large"),
])
def test_values_that_overflow_are_refused_naming_the_row(tmp_path, capfd, cells, extra, needle):
    data = _csv(tmp_path / "d.csv", cells=cells)
    _error(_train(data, *extra), capfd, "d.csv", "column 'x1'", "data row 18", needle)


@pytest.mark.parametrize("column, extra, role", [
    ("y", [], "(response)"),
    ("w", ["--weights_column", "w"], "(weights_column)"),
    ("o", ["--offset_column", "o"], "(offset_column)"),
])
def test_inf_in_the_response_weights_or_offset_is_refused(tmp_path, capfd, column, extra, role):
    data = _csv(tmp_path / "d.csv", cells={(5, column): "inf"})
    _error(_train(data, *extra), capfd, f"column '{column}' {role}", "data row 6")


def test_inf_in_the_validation_file_is_refused_before_training(tmp_path, capfd):
    train, valid = _csv(tmp_path / "t.csv"), _csv(tmp_path / "v.csv", n=50, cells={(9, "x1"): "-inf"})
    _error(_train(train, "--validation", valid), capfd, "v.csv", "column 'x1'", "data row 10")


def test_an_inf_in_an_ignored_column_does_not_matter(tmp_path, capfd):
    data = _csv(tmp_path / "d.csv", cells={(3, "x2"): "inf"})
    assert _train(data, "--ignored_columns", "c,x2") == 0, capfd.readouterr().err


def test_continuing_a_checkpoint_on_data_with_inf_is_refused(tmp_path, capfd):
    model = tmp_path / "m.h5"
    assert _train(_csv(tmp_path / "d.csv"), "--model_out", str(model)) == 0
    bad = _csv(tmp_path / "bad.csv", cells={(0, "x1"): "inf"})
    capfd.readouterr()
    _error(_train(bad, "--checkpoint", str(model), "--epochs", "2"), capfd, "bad.csv", "data row 1")


def test_a_diverging_run_without_a_good_model_writes_nothing_and_fails(tmp_path, capfd):
    data, out, summary = _csv(tmp_path / "d.csv"), tmp_path / "m.h5", tmp_path / "s.json"
    code = _train(data, "--adaptive_rate", "false", "--rate", "1e4", "--model_out", str(out),
                  "--summary_json", str(summary))
    _error(code, capfd, "diverged at iteration 1", "no good model", "nothing written")
    assert not out.exists() and not summary.exists()


def test_a_diverging_run_keeps_the_best_model_scored_before(tmp_path, capfd):
    data, out, summary = _csv(tmp_path / "d.csv"), tmp_path / "m.h5", tmp_path / "s.json"
    code = main(["train", "--train", data, "--response", "y", "--ignored_columns", "c", "--hidden", "16",
                 "--epochs", "20", "--seed", "1", "--reproducible", "true", "--train_samples_per_iteration",
                 "50", "--score_interval", "0", "--adaptive_rate", "false", "--rate", "1.5", "--rate_annealing",
                 "0", "--momentum_start", "0.99", "--momentum_stable", "0.99", "--stopping_rounds", "0",
                 "--model_out", str(out), "--summary_json", str(summary)])
    captured = capfd.readouterr()
    assert code == 0, captured.err
    assert "keeping the best model scored before it" in captured.out + captured.err
    assert json.loads(summary.read_text())["nonfinite_stop"] is True
    from h2odl_mpi.model.model_io import load_model
    assert np.all(np.isfinite(load_model(str(out))[1]))


# ---- 4: limits checked before anything is allocated -------------------------------------------

def test_too_many_classes_are_refused(tmp_path, capfd):
    rng = np.random.default_rng(2)
    path = tmp_path / "cont.csv"
    path.write_text("x,y\n" + "".join(f"{a},{b}\n" for a, b in rng.normal(size=(1500, 2))))
    code = main(["train", "--train", str(path), "--response", "y", "--distribution", "multinomial"] + BASE)
    _error(code, capfd, "response 'y'", "more than 1,000 distinct values", "gaussian")


@pytest.mark.parametrize("levels, ok", [(1000, True), (1001, False)])
def test_the_class_limit_is_1000_levels(levels, ok):
    n = 1001
    frame = Frame.from_arrays({"x": np.arange(n, dtype=float),
                               "y": np.array([f"L{i % levels}" for i in range(n)], dtype=object)})
    if ok:
        assert Preprocess.fit(frame, {"response": "y"}).n_classes == 1000
    else:
        with pytest.raises(UserError, match="1,001 distinct values: too many classes"):
            Preprocess.fit(frame, {"response": "y"})


def _limited(cmd, tmp_path, gib=4):
    """Run `cmd` with its address space limited: an allocation of the sizes refused here
    would be a MemoryError (a traceback), not the one-line refusal."""
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (gib << 30, gib << 30))
    return subprocess.run([sys.executable, "-m", "h2odl_mpi"] + cmd, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, preexec_fn=limit)


def _one_line(r, *needles):
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.startswith("error: ")]
    assert len(lines) == 1, r.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("hidden, needles", [
    ("1000000,1000000", ["hidden [1000000, 1000000]", "TB", "memory available"]),
    ("3000000000", ["hidden", "3,000,000,000", "2,147,483,647"]),
])
def test_networks_that_cannot_fit_are_refused_naming_hidden(tmp_path, hidden, needles):
    data = _csv(tmp_path / "d.csv")
    r = _limited(["train", "--train", data, "--response", "y", "--hidden", hidden, "--epochs", "1",
                  "--model_out", "m.h5"], tmp_path)
    _one_line(r, *needles)
    assert not (tmp_path / "m.h5").exists()


def _model(tmp_path):
    path = tmp_path / "m.h5"
    assert _train(_csv(tmp_path / "d.csv"), "--model_out", str(path)) == 0
    return path


def _rewrite(path, edit):
    """Edit a model file in place, then make its checksums match again (a file that lies
    consistently, as a hostile one would)."""
    from h2odl_mpi.model.model_io import crc32_of, content_crc
    with h5py.File(path, "r+") as f:
        edit(f)
        for name, obj in f["network"].items():
            for ds in obj.values() if isinstance(obj, h5py.Group) else [obj]:
                if isinstance(ds, h5py.Dataset) and "crc32" in ds.attrs:
                    ds.attrs["crc32"] = crc32_of(ds[()])
        f.attrs["content_crc32"] = content_crc(f)
    from h2odl_mpi.model.model_io import reseal
    reseal(path)  # (the whole file's seal, too)


@pytest.mark.parametrize("units", [2_000_000_000, 3_000_000_000])
def test_a_model_file_claiming_huge_layers_is_refused_naming_it(tmp_path, units):
    path = _model(tmp_path)

    def claim(f):
        cfg = json.loads(f["network"].attrs["config"])
        cfg["units"][1] = units
        f["network"].attrs["config"] = json.dumps(cfg)
    _rewrite(path, claim)
    r = _limited(["predict", "--model", str(path), "--data", str(tmp_path / "d.csv"), "--out", "p.csv"],
                 tmp_path)
    _one_line(r, str(path))  # (the layer's size, or the values the file holds against it)
    assert not (tmp_path / "p.csv").exists()
    r = _limited(["train", "--train", str(tmp_path / "d.csv"), "--response", "y", "--checkpoint", str(path),
                  "--epochs", "3", "--ignored_columns", "c"], tmp_path)
    _one_line(r, str(path))


@pytest.mark.parametrize("kw", [dict(units=[3, 5, 4], activation="Maxout"),
                                dict(units=[3, 5, 3], activation="Maxout", output="autoencoder"),
                                dict(units=[3, 7, 2, 1], output="linear", adaptive_rate=False),
                                dict(units=[3, 7, 1], output="linear", adaptive_rate=False, momentum_start=0.5)])
def test_buffer_floats_counts_as_the_kernel(kw):
    net = Network(NetConfig(**kw))
    assert buffer_floats(net.config) == (net.n_params, net.n_total)


# ---- 8: one line, before training, instead of a traceback --------------------------------------

def test_a_validation_file_without_the_response_is_refused_before_the_data_is_prepared(
        tmp_path, capfd, monkeypatch):
    train = _csv(tmp_path / "t.csv")
    valid = tmp_path / "v.csv"
    valid.write_text("\n".join(",".join(l.split(",")[:2]) for l in open(train).read().splitlines()))

    def fit(*args, **kwargs):
        raise AssertionError("the data description was fitted: the check came too late")
    monkeypatch.setattr(Preprocess, "fit", fit)
    _error(_train(train, "--validation", str(valid)), capfd, "v.csv", "no column 'y'")


@pytest.mark.parametrize("flag, value, needle", [
    ("--epochs", "inf", "epochs = inf: expected a finite number"),
    ("--epochs", "nan", "epochs = nan"),
    ("--rate", "inf", "rate = inf"),
    ("--l2=-inf", None, "l2 = -inf"),
    ("--seed", "inf", "--seed"),
    ("--score_interval", "inf", "score_interval = inf"),
    ("--class_sampling_factors", "1,nan", "class_sampling_factors"),
    ("--threads", "100000", "threads = 100000"),
    ("--threads", "-3", "threads"),
])
def test_parameters_that_cannot_work_are_one_line(tmp_path, capfd, flag, value, needle):
    _error(_train(_csv(tmp_path / "d.csv"), *[a for a in (flag, value) if a is not None]), capfd, needle)


def test_max_w2_keeps_its_infinite_default_and_threads_its_bound():
    assert validate({"max_w2": float("inf")})["max_w2"] == float("inf")
    limit = THREADS_PER_CORE * cores_available()
    assert validate({"threads": limit})["threads"] == limit
    with pytest.raises(UserError, match=f"threads = {limit + 1}"):
        validate({"threads": limit + 1})


@pytest.mark.parametrize("metric", ["AUC", "AUCPR", "logloss", "misclassification", "mean_per_class_error"])
def test_a_classification_stopping_metric_on_a_regression_is_refused(tmp_path, capfd, metric):
    code = _train(_csv(tmp_path / "d.csv"), "--stopping_metric", metric)
    _error(code, capfd, f"stopping_metric = {metric} is for classification", "regression")


def test_auc_with_more_than_two_classes_is_refused(tmp_path, capfd):
    path = tmp_path / "k.csv"
    path.write_text("x,k\n" + "".join(f"{i % 7},{'abc'[i % 3]}\n" for i in range(60)))
    code = main(["train", "--train", str(path), "--response", "k", "--stopping_metric", "AUC"] + BASE)
    _error(code, capfd, "AUC needs 2 classes", "has 3")


# ---- predict: thread counts, outputs, non-finite values ---------------------------------------

@pytest.mark.parametrize("threads", ["-1", "100000"])
def test_predict_refuses_bad_thread_counts(tmp_path, capfd, threads):
    model = _model(tmp_path)
    capfd.readouterr()
    code = main(["predict", "--model", str(model), "--data", str(tmp_path / "d.csv"), "--out",
                 str(tmp_path / "p.csv"), "--threads", threads])
    _error(code, capfd, f"--threads = {threads}")
    assert not (tmp_path / "p.csv").exists()


def test_predict_outputs_that_cannot_be_written(tmp_path, capfd):
    model = _model(tmp_path)
    data = str(tmp_path / "d.csv")
    (tmp_path / "adir").mkdir()
    for out, needle in ((tmp_path / "adir", "is a directory"), (tmp_path / "no" / "p.csv", "no such directory"),
                        (data, "is the --data file"), (model, "is the --model file"),
                        ("/dev/null", "not a regular file")):
        capfd.readouterr()
        _error(main(["predict", "--model", str(model), "--data", data, "--out", str(out)]), capfd,
               f"--out {out}", needle)
    assert os.path.getsize(data) > 0 and os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
    assert main(["predict", "--model", str(model), "--data", data, "--out", str(tmp_path / "p.csv")]) == 0


@pytest.fixture
def tmpfs(tmp_path):
    """A 256 kB tmpfs (root only), unmounted afterwards."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root to mount a tmpfs")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)])


def test_predict_to_a_full_or_read_only_disk_is_one_line_and_leaves_nothing(tmp_path, tmpfs, capfd):
    model = _model(tmp_path)
    filler = tmpfs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:  # fill the disk up
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    os.close(fd)
    capfd.readouterr()
    out = tmpfs / "p.csv"
    code = main(["predict", "--model", str(model), "--data", str(tmp_path / "d.csv"), "--out", str(out)])
    _error(code, capfd, f"--out {out}", "No space left")
    assert sorted(os.listdir(tmpfs)) == ["filler"]
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    code = main(["predict", "--model", str(model), "--data", str(tmp_path / "d.csv"), "--out", str(out)])
    _error(code, capfd, f"--out {out}", "read-only file system")
    assert sorted(os.listdir(tmpfs)) == ["filler"]


def test_predict_refuses_inf_in_the_data_and_a_model_of_nans(tmp_path, capfd):
    model = _model(tmp_path)
    bad = _csv(tmp_path / "bad.csv", cells={(4, "x1"): "-inf"})
    capfd.readouterr()
    out = tmp_path / "p.csv"
    _error(main(["predict", "--model", str(model), "--data", bad, "--out", str(out)]), capfd,
           "bad.csv", "column 'x1'", "data row 5")
    _rewrite(model, lambda f: f["network/layer_0/weights"].__setitem__((0, 0), np.nan))
    _error(main(["predict", "--model", str(model), "--data", str(tmp_path / "d.csv"), "--out", str(out)]),
           capfd, str(model), "not all finite")
    assert not out.exists()


def test_a_nan_prediction_is_refused_naming_the_row(tmp_path, capfd):
    model = _model(tmp_path)
    out = tmp_path / "p.csv"

    def huge(f):  # finite weights whose products overflow: inf - inf in the output layer
        f["network/layer_0/weights"][...] = np.float32(3e38)
        w = f["network/layer_1/weights"]
        w[...] = np.where(np.arange(w.shape[1]) % 2 == 0, 3e38, -3e38).astype(np.float32)
    _rewrite(model, huge)
    capfd.readouterr()
    _error(main(["predict", "--model", str(model), "--data", str(tmp_path / "d.csv"), "--out", str(out)]),
           capfd, "is NaN", "data row")
    assert not out.exists()


# ---- SIGINT -----------------------------------------------------------------------------------

def _sigint_run(tmp_path, *extra):
    data = _csv(tmp_path / "d.csv", n=2000)
    cmd = [sys.executable, "-m", "h2odl_mpi", "train", "--train", data, "--response", "y", "--ignored_columns",
           "c", "--hidden", "32,32", "--epochs", "100000", "--train_samples_per_iteration", "200",
           "--threads", "1", "--seed", "1"] + list(extra)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert "rank(s)" in proc.stdout.readline()
    wait_for_cpu(proc.pid, 1.0)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("no exit within 30 s of SIGINT")
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    return proc.returncode, err


def test_sigint_with_a_checkpoint_directory_checkpoints_and_exits_85(tmp_path):
    d = tmp_path / "ck"
    code, err = _sigint_run(tmp_path, "--checkpoint_dir", str(d), "--checkpoint_interval", "0")
    assert code == ckpt.REQUEUE_EXIT_CODE and "requeue" in err, err
    assert ckpt.newest_valid(str(d)) is not None


def test_sigint_without_a_checkpoint_directory_exits_130_with_one_line(tmp_path):
    code, err = _sigint_run(tmp_path, "--model_out", str(tmp_path / "m.h5"))
    assert code == 130, err
    assert [l for l in err.splitlines() if l.strip()] == [l for l in err.splitlines() if "interrupted (SIGINT)" in l]
    assert not (tmp_path / "m.h5").exists()


def test_a_huge_thread_count_from_the_environment_is_refused(tmp_path):
    """OMP_NUM_THREADS (or the batch system's cpus-per-task) is held to --threads' limit."""
    path = tmp_path / "d.csv"
    path.write_text("x,y\n" + "".join(f"{i % 7},{i % 2}\n" for i in range(100)))
    env = dict(os.environ, OMP_NUM_THREADS="100000")
    r = subprocess.run([sys.executable, "-m", "h2odl_mpi", "train", "--train", str(path), "--response", "y",
                        "--hidden", "3", "--epochs", "1"], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and "OMP_NUM_THREADS = 100000" in r.stderr and "Traceback" not in r.stderr
