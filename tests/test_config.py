"""`train --config run.toml`: parameters from a TOML file, flags over the file, and errors that
name the file, the key (with the closest known name) or the line; one real training run."""
import json
import subprocess
import sys

import numpy as np
import pytest

from h2odl_mpi import config
from h2odl_mpi.cli import _train_params, build_parser, main
from h2odl_mpi.errors import UserError


def _toml(tmp_path, text, name="run.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _params(*argv):
    return _train_params(build_parser().parse_args(["train", *map(str, argv)]))


def test_file_values_are_used(tmp_path):
    cfg = _toml(tmp_path, 'train = "d.csv"\nresponse = "label"\nhidden = [8, 4]\nepochs = 3\n'
                          'rate = 1\nseed = 11\nactivation = "Tanh"\ncheckpoint_interval = "100it"\n')
    p = _params("--config", cfg)
    assert p["train"] == "d.csv" and p["response"] == "label"
    assert p["hidden"] == [8, 4] and p["epochs"] == 3.0 and isinstance(p["epochs"], float)
    assert p["rate"] == 1.0 and p["seed"] == 11 and p["activation"] == "Tanh"
    assert p["checkpoint_interval"] == "100it"
    assert p["l1"] == 0.0 and p["adaptive_rate"] is True  # not in the file: H2O's defaults


def test_flags_override_the_file(tmp_path):
    cfg = _toml(tmp_path, 'train = "d.csv"\nresponse = "label"\nhidden = [8, 4]\nepochs = 3\n'
                          'adaptive_rate = false\n')
    p = _params("--config", cfg, "--epochs", "7", "--hidden", "5", "--train", "other.csv")
    assert p["epochs"] == 7.0 and p["hidden"] == [5] and p["train"] == "other.csv"
    assert p["response"] == "label" and p["adaptive_rate"] is False  # the rest from the file


@pytest.mark.parametrize("text", ['hidden = [16, 8]\n', 'hidden = "16,8"\n', 'hidden = "16, 8"\n',
                                  'hidden = [16.0, 8]\n'])
def test_hidden_as_array_or_string(tmp_path, text):
    cfg = _toml(tmp_path, 'train = "d.csv"\nresponse = "y"\n' + text)
    p = _params("--config", cfg)
    assert p["hidden"] == [16, 8] and all(type(h) is int for h in p["hidden"])


@pytest.mark.parametrize("text, expected", [
    ("adaptive_rate = false\nfast_mode = true\n", (False, True)),
    ('adaptive_rate = "false"\nfast_mode = "yes"\n', (False, True)),
    ("adaptive_rate = true\nfast_mode = false\n", (True, False)),
])
def test_booleans(tmp_path, text, expected):
    cfg = _toml(tmp_path, 'train = "d.csv"\nresponse = "y"\n' + text)
    p = _params("--config", cfg)
    assert (p["adaptive_rate"], p["fast_mode"]) == expected


def test_other_lists_and_strings(tmp_path):
    cfg = _toml(tmp_path, 'train = "d.csv"\nresponse = "y"\nignored_columns = ["a", "b"]\n'
                          'activation = "TanhWithDropout"\nhidden = [3, 3]\n'
                          'hidden_dropout_ratios = [0, 0.25]\n')
    p = _params("--config", cfg)
    assert p["ignored_columns"] == ["a", "b"] and p["hidden_dropout_ratios"] == [0.0, 0.25]


def test_unknown_key_names_key_file_and_closest_name(tmp_path):
    cfg = _toml(tmp_path, 'train = "d.csv"\nepohcs = 3\n')
    with pytest.raises(UserError) as e:
        config.load(str(cfg))
    msg = str(e.value)
    assert "'epohcs'" in msg and str(cfg) in msg and "did you mean epochs?" in msg


def test_unknown_key_without_a_close_name(tmp_path):
    cfg = _toml(tmp_path, 'zzzzzz = 3\n')
    with pytest.raises(UserError, match=r"unknown parameter 'zzzzzz'$"):
        config.load(str(cfg))


@pytest.mark.parametrize("text, needles", [
    ("epochs = true\n", ["epochs must be a number", "True"]),
    ('epochs = "lots"\n', ["epochs", "'lots'", "float"]),
    ("seed = 1.5\n", ["seed must be an integer", "1.5"]),
    ("adaptive_rate = 1\n", ["adaptive_rate must be a boolean"]),
    ("hidden = [4, true]\n", ["hidden must be an array of integers"]),
    ('hidden = "4,x"\n', ["hidden", "'4,x'"]),
    ("train = false\n", ["train must be a string"]),
    ("ignored_columns = [1, 2]\n", ["ignored_columns must be an array of strings"]),
])
def test_wrong_type_names_key_file_and_type(tmp_path, text, needles):
    cfg = _toml(tmp_path, text)
    with pytest.raises(UserError) as e:
        config.load(str(cfg))
    msg = str(e.value)
    assert msg.startswith(f"{cfg}: ")
    for n in needles:
        assert n in msg, msg


def test_syntax_error_names_file_and_line(tmp_path):
    cfg = _toml(tmp_path, 'train = "d.csv"\nepochs = 3\nhidden = [4 4]\n')
    with pytest.raises(UserError) as e:
        config.load(str(cfg))
    assert str(cfg) in str(e.value) and "line 3" in str(e.value)


def test_sections_missing_file_and_unsupported_keys(tmp_path):
    with pytest.raises(UserError, match=r"\[model\] is a table"):
        config.load(str(_toml(tmp_path, 'epochs = 1\n[model]\nhidden = [4]\n')))
    with pytest.raises(UserError, match="is a table"):
        config.load(str(_toml(tmp_path, 'model.hidden = [4]\n')))
    missing = tmp_path / "nope.toml"
    with pytest.raises(UserError, match=f"{missing}: no such config file"):
        config.load(str(missing))
    with pytest.raises(UserError, match=r"run.toml: max_hit_ratio_k: not supported in this version \(.+\)$"):
        config.load(str(_toml(tmp_path, 'max_hit_ratio_k = 3\n')))
    assert config.load(str(_toml(tmp_path, 'max_hit_ratio_k = 0\n'))) == {"max_hit_ratio_k": 0}  # H2O's default


def test_h2o_parameters_that_change_nothing_are_taken_and_noted(tmp_path):
    from h2odl_mpi import params as P
    from h2odl_mpi.cli import _train_raw
    cfg = _toml(tmp_path, 'train = "d.csv"\nresponse = "y"\nnthreads = 8\ndiagnostics = false\n'
                          'average_activation = 0\n')
    raw = _train_raw(build_parser().parse_args(["train", "--config", str(cfg), "--force-load-balance", "true"]))
    assert raw["nthreads"] == 8 and raw["diagnostics"] is False and raw["force_load_balance"] is True
    assert [n.split(" changes")[0] for n in P.notes(raw, flags=True)] == ["note: --nthreads 8",
                                                                         "note: --diagnostics false"]
    p = _params("--config", cfg)
    assert not {"nthreads", "diagnostics", "average_activation", "force_load_balance"} & set(p)
    with pytest.raises(UserError, match=r"run.toml: nthreads: cannot read 'many' as int$"):
        config.load(str(_toml(tmp_path, 'nthreads = "many"\n')))
    with pytest.raises(UserError, match=r"run.toml: nthreads must be an integer, got 1.5$"):
        config.load(str(_toml(tmp_path, 'nthreads = 1.5\n')))


def test_train_missing_from_flags_and_file(tmp_path):
    cfg = _toml(tmp_path, 'epochs = 1\n')
    with pytest.raises(UserError, match=r"--train is required \(or train in "):
        _params("--config", cfg)


def test_cli_error_is_one_line_with_status_2(tmp_path):
    cfg = _toml(tmp_path, 'train = "d.csv"\nresponse = "y"\nhiden = [4]\n')
    r = subprocess.run([sys.executable, "-m", "h2odl_mpi", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {cfg}: unknown parameter 'hiden' (did you mean hidden?)"


def _tiny_csv(path, n=200):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 3))
    with open(path, "w") as f:
        f.write("a,b,c,label\n")
        for row in x:
            f.write(",".join(f"{v:.4f}" for v in row) + f",{'yes' if row[0] > 0 else 'no'}\n")
    return path


def test_train_run_with_config_and_a_flag_over_it(tmp_path, capsys):
    data = _tiny_csv(tmp_path / "tiny.csv")
    summary = tmp_path / "summary.json"
    cfg = _toml(tmp_path, f'train = "{data}"\nresponse = "label"\nhidden = [4]\nepochs = 1\n'
                          f'seed = 1\nquiet_mode = true\nsummary_json = "{summary}"\n'
                          'train_samples_per_iteration = 100\n')
    # no subcommand word: train is meant; --seed and --train_samples_per_iteration beat the file
    assert main(["--config", str(cfg), "--seed", "7", "--train_samples_per_iteration", "50"]) == 0
    s = json.loads(summary.read_text())
    assert s["epochs"] == 1.0 and s["training_samples"] == 200
    assert s["network"] == [3, 4, 2]
    assert s["seed"] == 7 and s["train_samples_per_iteration_param"] == 50 and s["iterations"] == 4
    assert capsys.readouterr().out == ""  # quiet_mode from the file
