"""Refusals before creation: a command that is refused (a bad parameter, bad data, a missing
input, an output it cannot write, outputs that conflict) exits with status 2 and one
`error:` line, and leaves the file system as it found it: no new file or directory, no
lock, no temporary file, no partial output, no file changed.

Each case runs the command in-process (h2odl_mpi.cli.main) in a directory holding the
inputs the commands need (a small CSV, one without the response, a model file, a finished
search), with relative paths, and compares the tree under it (every name; each file's size
and modification time) before and after.  The temporary directory is inside that tree too,
so that nothing goes there unseen.  The grid cases include the issue's: a space of 10^12
combinations without max_models, refused before the search directory exists, and the
corrected command then runs in the same directory."""
import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from h2odl_mpi.cli import main
from h2odl_mpi.errors import UserError
from h2odl_mpi.workflows.search import grid_search

QUICK = ["--hidden", "2", "--epochs", "1", "--threads", "1", "--quiet_mode", "true"]
TRAIN = ["train", "--train", "d.csv", "--response", "y", *QUICK]
# a train run's every output, each in a directory that does not exist yet
OUTPUTS = ["--model_out", "out/m.h5", "--summary_json", "out/s.json", "--scoring_history", "hist/h.csv",
           "--checkpoint_dir", "ck/a"]
GRID_HEAD = 'train = "d.csv"\nresponse = "y"\nepochs = 1\nthreads = 1\nhidden = [2]\nseed = 3\n'


def _csv(path, n=40, seed=0, label=True):
    x = np.random.default_rng(seed).normal(size=(n, 2))
    with open(path, "w") as f:
        f.write("a,b,y\n" if label else "a,b\n")
        f.writelines(f"{a:.4f},{b:.4f}" + (f",{int(a + b > 0)}\n" if label else "\n") for a, b in x)


def _grid_file(path, hyper="l1 = [0.0]\n", criteria="", head=GRID_HEAD):
    with open(path, "w") as f:
        f.write(head + "[hyper_params]\n" + hyper + ("[search_criteria]\n" + criteria if criteria else ""))


def _huge_space():
    """Four parameters of 1,000 values each: 10^12 combinations."""
    return "".join(f"{name} = [{', '.join(repr(f(i)) for i in range(1000))}]\n" for name, f in
                   (("l1", lambda i: i * 1e-6), ("l2", lambda i: i * 1e-6), ("max_w2", lambda i: 1.0 + i),
                    ("input_dropout_ratio", lambda i: i / 2000)))


def tree(root):
    """{relative path: ("dir",) or (size, mtime_ns)} of everything under root."""
    out = {}
    for d, dirs, files in os.walk(root):
        for name in dirs:
            out[os.path.relpath(os.path.join(d, name), root)] = ("dir",)
        for name in files:
            st = os.lstat(os.path.join(d, name))
            out[os.path.relpath(os.path.join(d, name), root)] = (st.st_size, st.st_mtime_ns)
    return out


def _changes(before, after):
    return {"new": sorted(set(after) - set(before)), "gone": sorted(set(before) - set(after)),
            "changed": sorted(k for k in set(before) & set(after) if before[k] != after[k])}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The inputs: d.csv (a, b -> y), x.csv (no y), m.h5 (a model of d.csv), s/ (a finished
    search of two models), g.toml (its grid file), f (a regular file), tmp/ ($TMPDIR)."""
    root = tmp_path_factory.mktemp("refusals")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        _csv("d.csv")
        _csv("x.csv", label=False)
        with open("f", "w") as fh:
            fh.write("a regular file\n")
        os.mkdir("tmp")
        _grid_file("g.toml", "l1 = [0.0, 0.001]\n")
        assert main([*TRAIN, "--model_out", "m.h5"]) == 0
        assert main(["grid", "--config", "g.toml", "--search_dir", "s"]) == 0
        grids = {"huge.toml": dict(hyper=_huge_space()),
                 "sort.toml": dict(criteria='sort_by = "nonsense"\n'),
                 "stopmetric.toml": dict(criteria='stopping_rounds = 1\nstopping_metric = "nonsense"\n'),
                 "nodata.toml": dict(head=GRID_HEAD.replace("d.csv", "missing.csv")),
                 "noresponse.toml": dict(head=GRID_HEAD.replace('"y"', '"nope"')),
                 "allbad.toml": dict(head=GRID_HEAD + 'activation = "Tanh"\nhidden_dropout_ratios = [0.2]\n'),
                 "other.toml": dict(hyper="l1 = [0.5]\n"),
                 "badvalid.toml": dict(head=GRID_HEAD + 'validation = "x.csv"\n')}
        for name, kw in grids.items():
            _grid_file(name, **kw)
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture
def world(inputs, tmp_path):
    """A copy of the inputs of its own for each case (a run that should have been refused
    and was not changes no other case's)."""
    shutil.copytree(inputs, tmp_path / "w", symlinks=True)
    return tmp_path / "w"


def _refused(world, monkeypatch, capsys, argv, *needles):
    """Run argv in `world`: status 2, one error line holding the needles, nothing changed."""
    monkeypatch.chdir(world)
    monkeypatch.setattr(tempfile, "tempdir", str(world / "tmp"))
    before = tree(world)
    capsys.readouterr()
    status = main(list(argv))
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert status == 2 and len(lines) == 1 and "Traceback" not in err, (status, err)
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert _changes(before, tree(world)) == {"new": [], "gone": [], "changed": []}, lines[0]
    return lines[0]


TRAIN_CASES = {
    "bad_parameter": ([*TRAIN, *OUTPUTS, "--epochs", "-1"], "epochs"),
    "bad_choice": ([*TRAIN, *OUTPUTS, "--activation", "Nonsense"], "activation"),
    "response_not_in_data": ([*TRAIN, *OUTPUTS, "--response", "nope"], "nope"),
    "data_file_missing": ([*TRAIN, *OUTPUTS, "--train", "missing.csv"], "missing.csv"),
    "validation_without_response": ([*TRAIN, *OUTPUTS, "--validation", "x.csv"], "x.csv"),
    "config_missing": ([*TRAIN, *OUTPUTS, "--config", "missing.toml"], "missing.toml"),
    "checkpoint_model_missing": ([*TRAIN, *OUTPUTS, "--checkpoint", "nope.h5"], "nope.h5"),
    "checkpoint_not_a_model": ([*TRAIN, *OUTPUTS, "--checkpoint", "d.csv"], "d.csv"),
    "output_under_a_file": ([*TRAIN, *OUTPUTS, "--model_out", "f/m.h5"], "f"),
    "checkpoint_dir_under_a_file": ([*TRAIN, *OUTPUTS, "--checkpoint_dir", "f/ck"], "checkpoint_dir"),
    "output_is_a_directory": ([*TRAIN, *OUTPUTS, "--model_out", "tmp"], "directory"),
    "outputs_conflict": ([*TRAIN, *OUTPUTS, "--summary_json", "out/m.h5"], "same file"),
    "output_is_the_data": ([*TRAIN, *OUTPUTS, "--scoring_history", "d.csv"], "d.csv"),
    "cross_validation_fold_column_missing": (
        [*TRAIN, *OUTPUTS, "--fold_column", "nope", "--keep_cross_validation_predictions", "true",
         "--keep_cross_validation_models", "true"], "nope"),
    "cross_validation_bad_data": (
        [*TRAIN, *OUTPUTS, "--nfolds", "2", "--keep_cross_validation_predictions", "true", "--train", "x.csv"],
        "'y'"),
    "cross_validation_outputs_conflict": (
        [*TRAIN, *OUTPUTS, "--nfolds", "2", "--keep_cross_validation_predictions", "true", "--summary_json",
         "out/m_cv_holdout_predictions.csv"], "same file"),
}


@pytest.mark.parametrize("case", TRAIN_CASES)
def test_a_refused_train_run_leaves_nothing(world, monkeypatch, capsys, case):
    argv, needle = TRAIN_CASES[case]
    _refused(world, monkeypatch, capsys, argv, needle)


GRID_CASES = {
    "space_of_10_to_the_12_without_max_models": (["huge.toml"], "max_models"),
    "sort_by_not_a_metric": (["sort.toml"], "sort_by"),
    "stopping_metric_not_a_metric": (["stopmetric.toml"], "stopping_metric"),
    "data_file_missing": (["nodata.toml"], "missing.csv"),
    "response_not_in_data": (["noresponse.toml"], "nope"),
    "validation_without_response": (["badvalid.toml"], "x.csv"),
    "every_model_refused_by_train": (["allbad.toml"], "hidden_dropout_ratios"),
    "a_train_flag_refused": (["g.toml", "--epochs", "-1"], "epochs"),
    "ranks_per_model": (["g.toml", "--ranks_per_model", "2"], "ranks_per_model"),
    "search_dir_under_a_file": (["g.toml", "--search_dir", "f/s"], "f/s"),
    "search_dir_is_a_file": (["g.toml", "--search_dir", "f"], "f"),
    "search_dir_is_the_data": (["g.toml", "--search_dir", "d.csv"], "d.csv"),
    "output_set_in_the_grid_file": (["g.toml", "--model_out", "out/m.h5"], "model_out"),
    "grid_file_missing": (["missing.toml"], "missing.toml"),
    "search_dir_holds_another_search": (["other.toml", "--search_dir", "s"], "holds another search"),
}


@pytest.mark.parametrize("case", GRID_CASES)
def test_a_refused_grid_run_leaves_nothing(world, monkeypatch, capsys, case):
    (config, *extra), needle = GRID_CASES[case]
    argv = ["grid", "--config", config, "--search_dir", "new_search", *extra]
    _refused(world, monkeypatch, capsys, argv, needle)


def test_the_corrected_grid_command_then_runs_in_the_same_directory(tmp_path, monkeypatch, capsys):
    """The issue: refused for its 10^12 combinations, then the same command with a smaller
    space continues as a new search there (no `holds another search`)."""
    monkeypatch.chdir(tmp_path)
    _csv("d.csv")
    _grid_file("grid.toml", _huge_space())
    argv = ["grid", "--config", "grid.toml", "--search_dir", "s"]
    assert main(argv) == 2
    assert "max_models" in capsys.readouterr().err and not os.path.exists("s")
    _grid_file("grid.toml", "l1 = [0.0, 0.001]\n")
    assert main(argv) == 0, capsys.readouterr().err
    board = json.loads((tmp_path / "s" / "leaderboard.json").read_text())
    assert sorted(r["model_id"] for r in board) == ["model_1", "model_2"]
    assert not (tmp_path / "s" / "search.lock").exists()


def test_grid_search_refuses_a_huge_space_before_creating_anything(tmp_path):
    fixed = {"train": str(_csv_at(tmp_path)), "response": "y", "hidden": [2], "epochs": 1, "threads": 1}
    hyper = {"l1": [i * 1e-6 for i in range(1000)], "l2": [i * 1e-6 for i in range(1000)],
             "max_w2": [1.0 + i for i in range(1000)], "input_dropout_ratio": [i / 2000 for i in range(1000)]}
    before = tree(tmp_path)
    with pytest.raises(UserError, match="max_models"):
        grid_search(fixed, hyper, {}, str(tmp_path / "s"))
    assert tree(tmp_path) == before
    with pytest.raises(UserError, match="sort_by"):
        grid_search(fixed, {"l1": [0.0]}, {"sort_by": "nonsense"}, str(tmp_path / "s"))
    assert tree(tmp_path) == before
    board = grid_search(fixed, {"l1": [0.0]}, {}, str(tmp_path / "s"))
    assert [r["status"] for r in board] == ["done"]
    with pytest.raises(UserError, match="holds another search"):  # a search that trained: kept
        grid_search(fixed, {"l1": [0.5]}, {}, str(tmp_path / "s"))
    assert not (tmp_path / "s" / "search.lock").exists()  # (the refused call holds no lock)
    assert [r["status"] for r in grid_search(fixed, {"l1": [0.0]}, {}, str(tmp_path / "s"))] == ["done"]


def test_a_search_json_of_a_search_that_never_started_blocks_nothing(tmp_path, monkeypatch, capsys):
    """What an earlier version left after refusing: search.json, empty claims/ ... and a lock
    of a process that is gone; the corrected command runs there."""
    monkeypatch.chdir(tmp_path)
    _csv("d.csv")
    sd = tmp_path / "s"
    for sub in ("claims", "results", "models", "rungs", "promoted"):
        (sd / sub).mkdir(parents=True)
    (sd / "search.json").write_text(json.dumps({"identity": {"hyper_params.l1": [0.5, 0.25]}, "seed": 1,
                                                "groups": 1, "created": 0.0}))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (sd / "search.lock").write_text(json.dumps({"host": socket.gethostname(), "pid": gone.pid}))
    _grid_file("grid.toml", "l1 = [0.0]\n")
    assert main(["grid", "--config", "grid.toml", "--search_dir", "s"]) == 0, capsys.readouterr().err
    assert json.loads((sd / "search.json").read_text())["identity"]["hyper_params.l1"] == [0.0]
    assert not (sd / "search.lock").exists() and (sd / "results" / "0.json").exists()


def _csv_at(tmp_path):
    _csv(tmp_path / "d.csv")
    return tmp_path / "d.csv"


PREDICT = ["predict", "--model", "m.h5", "--data", "d.csv", "--threads", "1"]
SCORING_CASES = {
    "predict_model_missing": (["predict", "--model", "nope.h5", "--data", "d.csv", "--out", "p.csv"], "nope.h5"),
    "predict_data_missing": ([*PREDICT, "--data", "missing.csv", "--out", "p.csv"], "missing.csv"),
    "predict_out_in_a_missing_directory": ([*PREDICT, "--out", "out/p.csv"], "out/p.csv"),
    "predict_out_under_a_file": ([*PREDICT, "--out", "f/p.csv"], "f/p.csv"),
    "predict_out_is_a_directory": ([*PREDICT, "--out", "tmp"], "directory"),
    "predict_out_is_the_data": ([*PREDICT, "--out", "d.csv"], "d.csv"),
    "predict_out_is_the_model": ([*PREDICT, "--out", "m.h5"], "m.h5"),
    "predict_kind_refused": ([*PREDICT, "--out", "p.csv", "--anomaly"], "--anomaly"),
    "predict_model_is_not_one": ([*PREDICT, "--model", "d.csv", "--out", "p.csv"], "d.csv"),
    "evaluate_data_without_response": (["evaluate", "--model", "m.h5", "--data", "x.csv", "--json", "e.json",
                                        "--threads", "1"], "x.csv"),
    "evaluate_json_in_a_missing_directory": (["evaluate", "--model", "m.h5", "--data", "d.csv", "--json",
                                              "out/e.json", "--threads", "1"], "out/e.json"),
    "evaluate_json_is_the_model": (["evaluate", "--model", "m.h5", "--data", "d.csv", "--json", "m.h5",
                                    "--threads", "1"], "m.h5"),
    "evaluate_model_missing": (["evaluate", "--model", "nope.h5", "--data", "d.csv", "--json", "e.json"],
                               "nope.h5"),
    "evaluate_bad_threads": (["evaluate", "--model", "m.h5", "--data", "d.csv", "--json", "e.json",
                              "--threads", "-3"], "--threads"),
    "report_model_missing": (["report", "--model", "nope.h5", "-o", "r.html"], "nope.h5"),
    "report_out_in_a_missing_directory": (["report", "--model", "m.h5", "-o", "out/r.html"], "out/r.html"),
    "report_out_is_the_model": (["report", "--model", "m.h5", "-o", "m.h5"], "m.h5"),
    "report_model_is_not_one": (["report", "--model", "d.csv", "-o", "r.html"], "d.csv"),
    "describe_data_missing": (["describe", "--data", "missing.csv"], "missing.csv"),
    "describe_a_directory_without_data": (["describe", "--data", "tmp"], "tmp"),
}


@pytest.mark.parametrize("case", SCORING_CASES)
def test_a_refused_predict_evaluate_report_or_describe_leaves_nothing(world, monkeypatch, capsys, case):
    argv, needle = SCORING_CASES[case]
    _refused(world, monkeypatch, capsys, argv, needle)


ENSEMBLE = ["ensemble", "--search", "s", "--top", "2", "--threads", "1"]
ENSEMBLE_CASES = {
    "top_above_the_finished_models": ([*ENSEMBLE, "--top", "9", "--model_out", "e.h5"], "--top 9"),
    "top_zero": ([*ENSEMBLE, "--top", "0", "--model_out", "e.h5"], "--top"),
    "search_missing": ([*ENSEMBLE, "--search", "nope", "--model_out", "e.h5"], "nope"),
    "model_out_in_a_missing_directory": ([*ENSEMBLE, "--model_out", "out/e.h5"], "out/e.h5"),
    "model_out_is_a_member": ([*ENSEMBLE, "--model_out", "s/models/model_1/model.h5"], "model_1"),
    "model_out_is_the_leaderboard": ([*ENSEMBLE, "--model_out", "s/leaderboard.json"], "leaderboard"),
    "fitted_without_data": ([*ENSEMBLE, "--weights", "fitted", "--model_out", "e.h5"], "fitted"),
    "fitted_on_data_without_response": ([*ENSEMBLE, "--weights", "fitted", "--data", "x.csv",
                                         "--model_out", "e.h5"], "x.csv"),
    "fitted_on_missing_data": ([*ENSEMBLE, "--weights", "fitted", "--data", "missing.csv",
                                "--model_out", "e.h5"], "missing.csv"),
}


@pytest.mark.parametrize("case", ENSEMBLE_CASES)
def test_a_refused_ensemble_leaves_the_search_and_outputs_as_they_were(world, monkeypatch, capsys, case):
    argv, needle = ENSEMBLE_CASES[case]
    _refused(world, monkeypatch, capsys, argv, needle)


def test_an_ensemble_is_written_all_or_none(world, monkeypatch, capsys):
    """The disk fails on the last of its files (leaderboard.csv): the ensemble file,
    ensembles.json and leaderboard.json are not left half done; then it is built."""
    from h2odl_mpi.workflows import ensemble
    from h2odl_mpi.workflows.search import leaderboard
    real = ensemble.write_bytes

    def full_disk(path, data, *args, **kwargs):
        if "leaderboard.csv" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data, *args, **kwargs)
    for module in (ensemble, leaderboard):
        monkeypatch.setattr(module, "write_bytes", full_disk)
    _refused(world, monkeypatch, capsys, [*ENSEMBLE, "--model_out", "e.h5"], "leaderboard.csv", "No space left")
    for module in (ensemble, leaderboard):
        monkeypatch.setattr(module, "write_bytes", real)
    assert main([*ENSEMBLE, "--model_out", "e.h5"]) == 0
    assert os.path.isfile(world / "e.h5") and "ensemble_top2" in (world / "s" / "leaderboard.csv").read_text()


def test_an_ensemble_whose_search_files_cannot_be_rewritten_is_refused(world, monkeypatch, capsys):
    (world / "s" / "leaderboard.csv").unlink()
    (world / "s" / "leaderboard.csv").mkdir()
    _refused(world, monkeypatch, capsys, [*ENSEMBLE, "--model_out", "e.h5"], "leaderboard.csv", "directory")


JOB = ["jobscript", "--scheduler", "slurm", "--nodes", "1", "--ranks_per_node", "2"]
JOBSCRIPT_CASES = {
    "out_in_a_missing_directory": ([*JOB, "-o", "out/job.sh", "--", "--train", "d.csv"], "out/job.sh"),
    "out_is_a_directory": ([*JOB, "-o", "tmp", "--", "--train", "d.csv"], "tmp"),
    "bad_time": ([*JOB, "--time", "soon", "-o", "job.sh", "--", "--train", "d.csv"], "--time"),
    "bad_train_argument": ([*JOB, "-o", "job.sh", "--", "--hiden", "3"], "--hiden"),
    "bad_scheduler": (["jobscript", "--scheduler", "lsf", "-o", "job.sh", "--", "--train", "d.csv"], "--scheduler"),
}


@pytest.mark.parametrize("case", JOBSCRIPT_CASES)
def test_a_refused_jobscript_writes_no_script(world, monkeypatch, capsys, case):
    argv, needle = JOBSCRIPT_CASES[case]
    _refused(world, monkeypatch, capsys, argv, needle)
