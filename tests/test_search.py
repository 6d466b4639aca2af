"""Grid and random search (h2odl_mpi.workflows.search) on one rank: the plan, the grid file, the
leaderboard, and searches run end to end: every model once, as trained alone, failures
listed, the limits, and a search stopped by SIGTERM and continued."""
import json
import os
import signal
import subprocess
import sys
import time

import h5py
import pytest

from h2odl_mpi.errors import UserError
from h2odl_mpi.params import validate
from h2odl_mpi.workflows.search import grid_file, grid_search, hyperspace, leaderboard
from h2odl_mpi.training.trainer import train
from search_data import binary_csv as _csv

HYPER = {"hidden": [[4], [6, 3]], "l1": [0.0, 1e-3]}


@pytest.fixture
def data(tmp_path):
    return _csv(tmp_path / "d.csv")


def _fixed(path, **kw):
    return dict({"train": path, "response": "y", "epochs": 2, "seed": 9, "threads": 1, "reproducible": True,
                 "train_samples_per_iteration": 100, "variable_importances": False, "stopping_rounds": 0,
                 "score_interval": 0.0}, **kw)


def _criteria(**kw):
    return grid_file.check_criteria(kw)


# ---- the plan --------------------------------------------------------------------------------

def test_combinations_vary_the_last_parameter_fastest():
    hyper = {"a": [1, 2], "b": ["x", "y", "z"]}
    got = [hyperspace.combination(hyper, i) for i in range(6)]
    assert got == [{"a": a, "b": b} for a in (1, 2) for b in ("x", "y", "z")]


def test_cartesian_plans_every_combination_and_max_models_cuts_it():
    hyper = {"a": [1, 2, 3], "b": [4, 5]}
    assert hyperspace.plan(hyper, _criteria()) == list(range(6))
    assert hyperspace.plan(hyper, _criteria(max_models=4)) == [0, 1, 2, 3]


def test_random_discrete_is_a_seeded_sample_without_repeats():
    hyper = {"a": list(range(10)), "b": list(range(7))}
    one = hyperspace.plan(hyper, _criteria(strategy="RandomDiscrete", seed=3))
    assert sorted(one) == list(range(70)) and one != list(range(70))
    assert one == hyperspace.plan(hyper, _criteria(strategy="RandomDiscrete", seed=3))
    assert one != hyperspace.plan(hyper, _criteria(strategy="RandomDiscrete", seed=4))
    assert hyperspace.plan(hyper, _criteria(strategy="randomdiscrete", seed=3, max_models=5)) == one[:5]


def test_a_huge_space_needs_max_models():
    hyper = {f"p{i}": list(range(10)) for i in range(7)}
    with pytest.raises(UserError, match="set max_models"):
        hyperspace.plan(hyper, _criteria())
    got = hyperspace.plan(hyper, _criteria(strategy="RandomDiscrete", seed=1, max_models=50))
    assert len(set(got)) == 50 and max(got) < 10 ** 7


# ---- the grid file ---------------------------------------------------------------------------

def test_the_grid_file_of_the_readme(tmp_path):
    p = tmp_path / "grid.toml"
    p.write_text('train = "train.csv.gz"\nresponse = "C785"\nepochs = 2\n[hyper_params]\n'
                 'hidden = [[64], [200, 200]]\nl1 = [0.0, 1e-5]\n[search_criteria]\n'
                 'strategy = "RandomDiscrete"\nmax_models = 8\nseed = 1\n')
    fixed, hyper, criteria = grid_file.load(str(p))
    assert fixed == {"train": "train.csv.gz", "response": "C785", "epochs": 2}
    assert hyper == {"hidden": [[64], [200, 200]], "l1": [0.0, 1e-5]}
    assert criteria["strategy"] == "RandomDiscrete" and criteria["max_models"] == 8 and criteria["seed"] == 1


@pytest.mark.parametrize("fixed, hyper, refused", [
    ("", "rate = [0.001, 0.01]", "hyper_params.rate changes nothing while adaptive_rate is true"),
    ("adaptive_rate = true\n", "momentum_start = [0.0, 0.5]", "hyper_params.momentum_start changes nothing"),
    ("adaptive_rate = false\n", "rho = [0.9, 0.99]", "hyper_params.rho changes nothing while adaptive_rate is false"),
    ("adaptive_rate = false\n", "rate = [0.001, 0.01]", None),
    ("", "rho = [0.9, 0.99]", None),
    ("", "adaptive_rate = [true, false]\nrate = [0.001, 0.01]", None),  # rate acts in the manual half
])
def test_a_hyper_parameter_that_changes_no_model_is_refused(tmp_path, fixed, hyper, refused):
    p = tmp_path / "grid.toml"
    p.write_text(f'train = "d.csv"\nresponse = "y"\n{fixed}[hyper_params]\n{hyper}\n')
    if refused is None:
        assert grid_file.load(str(p))[1]
        return
    with pytest.raises(UserError, match=refused) as e:
        grid_file.load(str(p))
    assert str(p) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("body, message", [
    ('epochs = 1\n', "[hyper_params] table"),
    ('[hyper_params]\ntrain = ["a.csv", "b.csv"]\n', "give it once"),
    ('[hyper_params]\nl1 = 0.1\n', "non-empty list"),
    ('[hyper_params]\nl1 = [0.1, 0.1]\n', "lists a value twice"),
    ('[hyper_params]\nhiden = [[3]]\n', "did you mean hidden"),
    ('[hyper_params]\nsparsity_beta = [0.0, 0.1]\n', "hyper_params.sparsity_beta: an H2O parameter this version"),
    ('[hyper_params]\ndiagnostics = [true, false]\n', "searching it would change no model"),
    ('[hyper_params]\nl1 = ["x"]\n', "l1"),
    ('[hyper_params]\nl1 = [0.1]\n[search_criteria]\nstrategy = "Bayes"\n', "strategy must be one of"),
    ('[hyper_params]\nl1 = [0.1]\n[search_criteria]\nmax_model = 3\n', "did you mean max_models"),
    ('[hyper_params]\nl1 = [0.1]\n[search_criteria]\nmax_models = -1\n', "max_models must be"),
])
def test_grid_file_mistakes_name_the_file_and_key(tmp_path, body, message):
    p = tmp_path / "g.toml"
    p.write_text('train = "t.csv"\nresponse = "y"\n' + body)
    with pytest.raises(UserError) as e:
        grid_file.load(str(p))
    assert str(p) in str(e.value) and message in str(e.value)


# ---- the leaderboard -------------------------------------------------------------------------

def _rec(i, status="done", **metrics):
    return {"index": i, "model_id": f"model_{i + 1}", "status": status, "params": {"l1": i}, "kind": "classification",
            "metrics": {"training": {"logloss": 9.0, "auc": 0.1}, "validation": metrics}, "model_path": f"m{i}.h5"}


def test_ranking_uses_validation_metrics_direction_and_puts_failures_last():
    recs = [_rec(0, logloss=0.5, auc=0.7), _rec(1, "failed"), _rec(2, logloss=0.3, auc=0.6),
            _rec(3, logloss=float("nan"), auc=0.9)]
    board, key = leaderboard.ranked(recs, "AUTO")
    assert key == "logloss" and [r["index"] for r in board] == [2, 0, 3, 1]
    board, key = leaderboard.ranked(recs, "auc")
    assert key == "auc" and [r["index"] for r in board] == [3, 0, 2, 1]
    with pytest.raises(UserError, match="sort_by 'speed' is not a metric"):
        leaderboard.ranked(recs, "speed")


def test_leaderboard_csv_has_a_column_per_metric(tmp_path):
    board = leaderboard.rows([_rec(0, logloss=0.5, auc=0.7), _rec(1, "failed")], "logloss", str(tmp_path), ["l1"])
    lines = leaderboard.csv_text(board, ["l1"]).splitlines()
    head = lines[0].split(",")
    assert head[:4] == ["rank", "model_id", "status", "l1"] and "validation_logloss" in head
    assert lines[1].split(",")[head.index("validation_logloss")] == "0.5"
    assert len(lines) == 3 and lines[2].split(",")[2] == "failed"


# ---- searches --------------------------------------------------------------------------------

def test_cartesian_search_trains_each_model_once_as_trained_alone(tmp_path, data):
    board = grid_search(_fixed(data), HYPER, {"strategy": "Cartesian"}, str(tmp_path / "s"))
    assert sorted(r["model_id"] for r in board) == [f"model_{i}" for i in range(1, 5)]
    assert all(r["status"] == "done" for r in board)
    for r in board:
        alone = train(validate(dict(_fixed(data), hidden=r["hidden"], l1=r["l1"], quiet_mode=True)))
        assert r["metrics"]["training"]["logloss"] == alone.metrics["training"]["logloss"]
    values = [r["sort_value"] for r in board]
    assert values == sorted(values) and board[0]["sort_metric"] == "training_logloss"
    on_disk = json.loads((tmp_path / "s" / "leaderboard.json").read_text())
    assert [r["model_id"] for r in on_disk] == [r["model_id"] for r in board]
    with open(board[0]["model_path"], "rb") as a, open(tmp_path / "s" / "best_model.h5", "rb") as b:
        assert a.read() == b.read()
    with h5py.File(tmp_path / "s" / "best_model.h5") as f:
        assert "network" in f
    again = grid_search(_fixed(data), HYPER, {"strategy": "Cartesian"}, str(tmp_path / "s"))
    assert again == board  # everything finished: nothing is trained again


def test_a_model_with_invalid_parameters_is_listed_with_its_error(tmp_path, data):
    hyper = {"activation": ["Tanh", "TanhWithDropout"], "hidden": [[4]]}
    board = grid_search(_fixed(data, hidden_dropout_ratios=[0.2]), hyper, {}, str(tmp_path / "s"))
    failed = [r for r in board if r["status"] == "failed"]
    assert [r["activation"] for r in failed] == ["Tanh"] and "hidden_dropout_ratios" in failed[0]["error"]
    assert board[0]["status"] == "done" and board[-1] is failed[0]
    assert "failed" in (tmp_path / "s" / "leaderboard.csv").read_text()


def test_max_models_and_random_order(tmp_path, data):
    crit = {"strategy": "RandomDiscrete", "max_models": 3, "seed": 5}
    board = grid_search(_fixed(data), HYPER, crit, str(tmp_path / "s"))
    plan = hyperspace.plan(HYPER, _criteria(**crit))
    want = sorted(json.dumps(hyperspace.combination(HYPER, i)) for i in plan)
    assert sorted(json.dumps({"hidden": r["hidden"], "l1": r["l1"]}) for r in board) == want


def test_max_runtime_secs_stops_the_search(tmp_path, data):
    hyper = {"l1": [0.0, 1e-4, 1e-3, 1e-2, 0.1, 0.2]}
    board = grid_search(_fixed(data, epochs=50, train_samples_per_iteration=50), hyper,
                        {"max_runtime_secs": 0.5}, str(tmp_path / "s"))
    assert 1 <= len(board) < 6 and all(r["status"] == "done" for r in board)


def test_search_stopping_rounds_stop_when_the_best_stops_improving(tmp_path, data):
    hyper = {"l1": [0.0, 1e-4, 1e-3, 1e-2]}
    crit = {"stopping_rounds": 1, "stopping_tolerance": 1.0}  # no model can improve by 100 %
    assert len(grid_search(_fixed(data), hyper, crit, str(tmp_path / "s"))) == 2
    assert len(grid_search(_fixed(data), hyper, {}, str(tmp_path / "t"))) == 4


def test_a_directory_of_another_search_is_refused(tmp_path, data):
    grid_search(_fixed(data), {"l1": [0.0]}, {}, str(tmp_path / "s"))
    with pytest.raises(UserError, match=r"holds another search \(differs in: hyper_params.l1\)"):
        grid_search(_fixed(data), {"l1": [0.0, 0.1]}, {}, str(tmp_path / "s"))
    with pytest.raises(UserError, match="model_out is set by the search"):
        grid_search(_fixed(data, model_out="m.h5"), {"l1": [0.0]}, {}, str(tmp_path / "t"))
    with pytest.raises(UserError, match="must divide the number of ranks, 1"):
        grid_search(_fixed(data), {"l1": [0.0]}, {}, str(tmp_path / "u"), ranks_per_model=2)


# ---- the command: stopped by SIGTERM, continued ----------------------------------------------

def _grid_file(tmp_path, data):
    p = tmp_path / "grid.toml"
    p.write_text(f'train = "{data}"\nresponse = "y"\nepochs = 300\nseed = 3\nthreads = 1\nhidden = [32, 32]\n'
                 'variable_importances = false\nstopping_rounds = 0\ncheckpoint_interval = "0"\n'
                 '[hyper_params]\nl1 = [0.0, 1e-5, 1e-4]\n')
    return str(p)


def test_sigterm_checkpoints_the_model_in_training_and_the_same_command_continues(tmp_path):
    data = _csv(tmp_path / "big.csv", n=2000)
    sd = tmp_path / "s"
    cmd = [sys.executable, "-m", "h2odl_mpi", "grid", "--config", _grid_file(tmp_path, data), "--search_dir", str(sd)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (sd / "results" / "0.json").exists() or not (sd / "claims" / "1").exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 85, err
    assert "search stopped by signal" in err and "run the same command to continue" in err
    assert not (sd / "results" / "1.json").exists() and list((sd / "models" / "model_2" / "checkpoints").glob("*.h5"))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    board = json.loads((sd / "leaderboard.json").read_text())
    assert sorted(x["model_id"] for x in board) == ["model_1", "model_2", "model_3"]
    assert "1 finished before" in r.stdout
    second = json.loads((sd / "results" / "1.json").read_text())
    assert second["status"] == "done" and "checkpoints" in second["continued_from"]
    assert not (sd / "models" / "model_2" / "checkpoints").exists()  # a finished model keeps its model file only


def test_a_grid_with_nfolds_sorts_by_cross_validation_metrics(tmp_path, data):
    board = grid_search(_fixed(data, nfolds=2, fold_assignment="Modulo"), {"l1": [0.0, 1e-2]}, {"sort_by": "auc"},
                        str(tmp_path / "s"))
    assert [r["status"] for r in board] == ["done", "done"]
    assert all(r["sort_metric"] == "cross_validation_auc" for r in board)
    cv = [r["metrics"]["cross_validation"]["auc"] for r in board]
    assert cv == sorted(cv, reverse=True) and all(v == r["sort_value"] for v, r in zip(cv, board))
    assert "cross_validation_auc" in (tmp_path / "s" / "leaderboard.csv").read_text().splitlines()[0]


def test_the_grid_command_takes_train_flags_and_refuses_one_not_implemented(tmp_path, data, capsys):
    from h2odl_mpi.cli import main
    grid = tmp_path / "g.toml"
    grid.write_text(f'train = "{data}"\nresponse = "y"\nepochs = 1\nthreads = 1\nseed = 3\n[hyper_params]\nl1 = [0.0]\n')
    assert main(["grid", "--config", str(grid), "--search_dir", str(tmp_path / "s"), "--max_hit_ratio_k", "3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --max_hit_ratio_k: not supported in this version (") and err.count("\n") == 1
    assert not (tmp_path / "s").exists()
    assert main(["grid", "--config", str(grid), "--search_dir", str(tmp_path / "t"), "--hidden", "3",
                 "--quiet_mode", "true"]) == 0
    board = json.loads((tmp_path / "t" / "leaderboard.json").read_text())
    from h2odl_mpi.model.model_io import load_model
    assert load_model(board[0]["model_path"])[0].units[1:-1] == [3]  # the flag over the file's default
