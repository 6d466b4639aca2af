"""Every H2O-3 Deep Learning parameter is accepted or refused by name (params.H2O_PARAMETERS):
on the command line (train, grid), in a config file and in params.validate; a misspelt flag
on any command is one line with the closest flag; every flag takes hyphens and underscores;
the help is grouped, lists the choices and ends with two examples; docs/parameters.md is the
table the code generates."""
import csv
import json

import numpy as np
import pytest

from h2odl_mpi import cli, config
from h2odl_mpi import params as P
from h2odl_mpi.errors import UserError

# a value other than H2O's default for every H2O-3 parameter (and the flags it needs besides)
SAMPLES = {
    "model_id": ["m1"], "validation_frame": ["v.csv"], "nfolds": ["3"],
    "keep_cross_validation_models": ["false"],
    "keep_cross_validation_predictions": ["true", "--nfolds", "2", "--model_out", "m.h5"],
    "keep_cross_validation_fold_assignment": ["true", "--nfolds", "2", "--model_out", "m.h5"],
    "fold_assignment": ["Modulo", "--nfolds", "2"], "fold_column": ["f"], "ignored_columns": ["a,b"],
    "ignore_const_cols": ["false"], "score_each_iteration": ["true"], "weights_column": ["w"],
    "offset_column": ["o"], "balance_classes": ["true"], "class_sampling_factors": ["1,2", "--balance_classes", "true"],
    "max_after_balance_size": ["2"], "max_confusion_matrix_size": ["5"], "checkpoint": ["old.h5"],
    "pretrained_autoencoder": ["ae.h5"], "overwrite_with_best_model": ["false"], "use_all_factor_levels": ["false"],
    "standardize": ["false"], "activation": ["tanh"], "hidden": ["8,8"], "epochs": ["2"],
    "train_samples_per_iteration": ["100"], "target_ratio_comm_to_comp": ["0.1"], "seed": ["7"],
    "adaptive_rate": ["false"], "rho": ["0.95"], "epsilon": ["1e-6"], "rate": ["0.01"], "rate_annealing": ["1e-5"],
    "rate_decay": ["0.9"], "momentum_start": ["0.5"], "momentum_ramp": ["1000"], "momentum_stable": ["0.9"],
    "nesterov_accelerated_gradient": ["false"], "input_dropout_ratio": ["0.1"],
    "hidden_dropout_ratios": ["0.2,0.2", "--activation", "RectifierWithDropout"], "l1": ["1e-5"], "l2": ["1e-5"],
    "max_w2": ["10"], "initial_weight_distribution": ["normal"], "initial_weight_scale": ["0.5"],
    "initial_weights": ["w1,w2"], "initial_biases": ["b1,b2"], "loss": ["quadratic"], "distribution": ["gaussian"],
    "quantile_alpha": ["0.3"], "tweedie_power": ["1.2"], "huber_alpha": ["0.5"], "score_interval": ["1"],
    "score_training_samples": ["100"], "score_validation_samples": ["100"], "score_duty_cycle": ["0.5"],
    "classification_stop": ["-1"], "regression_stop": ["-1"], "stopping_rounds": ["0"],
    "stopping_metric": ["logloss"], "stopping_tolerance": ["0.01"], "max_runtime_secs": ["60"],
    "score_validation_sampling": ["stratified"], "diagnostics": ["false"], "fast_mode": ["false"],
    "force_load_balance": ["false"], "variable_importances": ["false"], "replicate_training_data": ["false"],
    "single_node_mode": ["true"], "shuffle_training_data": ["true"], "missing_values_handling": ["skip"],
    "quiet_mode": ["true"], "autoencoder": ["true"], "sparse": ["true"], "col_major": ["true"],
    "average_activation": ["0.1"], "sparsity_beta": ["0.1"], "max_categorical_features": ["100"],
    "reproducible": ["true"], "export_weights_and_biases": ["true", "--model_out", "m.h5"], "mini_batch_size": ["4"],
    "categorical_encoding": ["binary"], "elastic_averaging": ["true"], "elastic_averaging_moving_rate": ["0.5"],
    "elastic_averaging_regularization": ["0.01"], "export_checkpoints_dir": ["exports"], "auc_type": ["macro_ovr"],
    "custom_metric_func": ["python:metric.py"], "gainslift_bins": ["20"], "nthreads": ["4"],
    "max_hit_ratio_k": ["3"],
}
ALL_NAMES = P.H2O_NAMES + P.H2O_OTHER_NAMES
# those the table refuses at a value that means something (the samples all do)
REFUSED = [n for n, (_s, _note, how) in P.H2O_PARAMETERS.items() if how is not None and how[2] is not P.ANY]


def _refusal(name):
    return f"--{name}: not supported in this version ({P.H2O_PARAMETERS[name][1]})"


# ------------------------------------------------------------------------------ the table
def test_the_table_covers_every_h2o_parameter_once_and_agrees_with_spec():
    assert len(P.H2O_NAMES) == len(set(P.H2O_NAMES)) == 91
    assert set(P.H2O_PARAMETERS) == set(ALL_NAMES) == set(SAMPLES) | {"training_frame", "response_column"}
    statuses = (P.SUPPORTED, P.DIFFERENT, P.MEANINGLESS, P.NOT_SUPPORTED)
    for name, (status, note, how) in P.H2O_PARAMETERS.items():
        assert status in statuses, name
        assert (how is None) == (P.canonical(name) in P.SPEC), name  # SPEC's, or the table says what
        assert status == P.SUPPORTED or note, name                   # every other status says why
        if how is not None:
            typ, default, inert = how
            assert name not in P.SPEC and typ in (bool, int, float, str, list)
            assert inert is P.ANY or default in inert, name          # H2O's default is always accepted
            assert status != P.NOT_SUPPORTED or inert is not P.ANY, name
    assert set(P.NOT_YET) == {n for n, e in P.H2O_PARAMETERS.items() if e[0] == P.NOT_SUPPORTED}


def test_every_spec_parameter_and_acting_h2o_parameter_is_in_one_help_group():
    grouped = [n for _title, names in P.GROUPS for n in names]
    assert len(grouped) == len(set(grouped))
    assert set(P.SPEC) <= set(grouped)
    assert set(grouped) - set(P.SPEC) == {n for n, e in P.H2O_ONLY.items() if e[0] == P.DIFFERENT}


# -------------------------------------------------------- train/grid flags, one line each
@pytest.mark.parametrize("name", ALL_NAMES)
def test_train_takes_or_refuses_every_h2o_parameter_in_one_line(tmp_path, capsys, name):
    missing = str(tmp_path / "missing.csv")
    given = {"training_frame": ["--training_frame", missing, "--response", "y"],
             "response_column": ["--train", missing, "--response_column", "y"]}
    given = given[name] if name in given else ["--train", missing, "--response", "y", f"--{name}", *SAMPLES[name]]
    assert cli.main(["train", *given]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "usage:" not in err and "Traceback" not in err, err
    if name in REFUSED:
        assert errors[0] == f"error: {_refusal(name)}"
    else:  # accepted: training goes on to read the (missing) file
        assert errors[0] == f"error: {missing}: no such file or directory", err
    if name in P.H2O_ONLY and name not in REFUSED:  # what it does here, said once
        assert err.count(f"note: --{name} {SAMPLES[name][0]}") == 1, err


@pytest.mark.parametrize("name", REFUSED)
def test_a_refused_parameter_is_accepted_at_a_value_that_changes_nothing(name):
    typ, default, inert = P.H2O_ONLY[name][2]
    for value in inert:
        ns = cli.parse_args(["train", "--train", "d.csv", "--response", "y"]
                            + ([] if value is None else [f"--{name}", cli._shown(value)]))
        assert name not in P.validate(cli._train_raw(ns))  # checked, then left out


def test_the_grid_command_refuses_and_takes_them_as_train_does(tmp_path, capsys):
    grid = tmp_path / "g.toml"
    grid.write_text('train = "d.csv"\nresponse = "y"\n[hyper_params]\nl1 = [0.0, 1e-4]\n')
    base = ["grid", "--config", str(grid), "--search_dir", str(tmp_path / "s")]
    assert cli.main(base + ["--sparsity_beta", "0.2"]) == 2
    assert capsys.readouterr().err == f"error: {_refusal('sparsity_beta')}\n"
    fixed, _hyper, _criteria = cli._grid_inputs(cli.parse_args(base + ["--nthreads", "8", "--diagnostics", "false"]))
    assert fixed["nthreads"] == 8 and fixed["diagnostics"] is False
    assert sorted(P.notes(fixed, flags=True)) == [
        f"note: --diagnostics false changes nothing here ({P.H2O_ONLY['diagnostics'][1]})",
        f"note: --nthreads 8 changes nothing here ({P.H2O_ONLY['nthreads'][1]})"]
    assert "nthreads" not in P.validate(fixed) and not (tmp_path / "s").exists()


# ---------------------------------------------------- the config file and the Python API
@pytest.mark.parametrize("name", sorted(P.H2O_ONLY))
def test_config_file_and_validate_treat_them_as_the_flags_do(tmp_path, name):
    raw = P.parse_value(name, SAMPLES[name][0])
    text = (json.dumps(raw) if not isinstance(raw, bool) else str(raw).lower())
    path = tmp_path / "run.toml"
    path.write_text(f'train = "d.csv"\nresponse = "y"\n{name} = {text}\n')
    if name in REFUSED:
        with pytest.raises(UserError) as e:
            config.load(str(path))
        assert str(e.value) == f"{path}: {_refusal(name)[2:]}"
        with pytest.raises(UserError) as e:
            P.validate({"train": "d.csv", "response": "y", name: raw})
        assert str(e.value) == _refusal(name)[2:]
    else:
        given = config.load(str(path))
        assert given[name] == raw
        assert name not in P.validate(given) and P.notes(given)[0].startswith(f"note: {name} = ")


def test_python_api_checks_the_type_of_an_h2o_parameter_it_does_not_use():
    with pytest.raises(UserError, match=r"^nthreads must be of type int, got 'four'$"):
        P.validate({"nthreads": "four"})
    with pytest.raises(UserError, match=r"^diagnostics must be of type bool, got 1$"):
        P.validate({"diagnostics": 1})
    assert P.validate({"auc_type": "none", "gainslift_bins": -1.0}) == P.validate({})  # inert, any spelling


def test_score_each_iteration_maps_to_scoring_every_iteration_and_wins_over_the_interval():
    p = P.validate({"score_each_iteration": True, "score_interval": 30.0})
    assert p["score_interval"] == 0.0 and p["score_duty_cycle"] == 1.0 and "score_each_iteration" not in p
    assert P.validate({"score_each_iteration": False, "score_interval": 30.0})["score_interval"] == 30.0


def test_score_each_iteration_really_scores_every_iteration(tmp_path):
    data = tmp_path / "d.csv"
    rng = np.random.default_rng(1)
    data.write_text("a,b,c,label\n" + "".join(",".join(f"{v:.4f}" for v in row) + f",{'yes' if row[0] > 0 else 'no'}\n"
                                              for row in rng.normal(size=(400, 3))))
    rows = {}
    for each in ("false", "true"):
        summary, history = tmp_path / f"s_{each}.json", tmp_path / f"h_{each}.csv"
        assert cli.main(["train", "--train", str(data), "--response", "label", "--hidden", "4", "--epochs", "2",
                         "--threads", "1", "--train_samples_per_iteration", "50", "--quiet_mode", "true",
                         "--stopping_rounds", "0", "--seed", "1", "--summary_json", str(summary),
                         "--scoring_history", str(history), "--score_each_iteration", each]) == 0
        iterations = json.loads(summary.read_text())["iterations"]
        rows[each] = [int(r["iteration"]) for r in csv.DictReader(open(history))]
    assert iterations == 16
    assert rows["true"] == list(range(1, 17))  # every iteration scored
    assert len(rows["false"]) < 16             # (H2O's default: every 5 s, the first and the last)


@pytest.mark.parametrize("name, value, reason", [
    ("distribution", "modified_huber", "the modified Huber loss is not implemented"),
    ("distribution", "custom", "custom distributions are functions uploaded to an H2O cluster"),
    ("loss", "modified_huber", "the modified Huber loss is not implemented"),
])
def test_h2o_choices_not_implemented_are_refused_with_the_reason(name, value, reason):
    with pytest.raises(UserError, match=f"{name}=.* is not supported: {reason}"):
        P.validate({name: value})


# ------------------------------------------------------------------ misspellings, every command
COMMAND_ARGS = {
    "train": [], "grid": ["--config", "g.toml", "--search_dir", "s"], "predict": ["--model", "m.h5"],
    "evaluate": ["--model", "m.h5"], "describe": [], "ensemble": ["--search", "s"], "report": ["-o", "r.html"],
    "jobscript": ["--scheduler", "slurm"],
}


@pytest.mark.parametrize("command, typo, meant", [
    ("train", "--hiden", "--hidden"), ("train", "--input-dropout-ration", "--input-dropout-ratio"),
    ("grid", "--hiden", "--hidden"), ("grid", "--search_dri", "--search_dir"),
    ("predict", "--modle", "--model"), ("predict", "--per-featur", "--per-feature"),
    ("evaluate", "--dta", "--data"), ("evaluate", "--auc_tpye", "--auc_type"),
    ("describe", "--levles", "--levels"), ("ensemble", "--model_uot", "--model_out"),
    ("ensemble", "--tpo", "--top"), ("report", "--mdoel", "--model"),
    ("jobscript", "--ranks-per-nod", "--ranks-per-node"), ("jobscript", "--ranks_per_nod", "--ranks_per_node"),
])
def test_a_misspelt_flag_is_one_line_with_the_closest_flag_of_the_command(capsys, command, typo, meant):
    assert cli.main([command, *COMMAND_ARGS[command], typo, "3"]) == 2
    assert capsys.readouterr().err == f"error: unrecognized argument {typo} (did you mean {meant}?)\n"


@pytest.mark.parametrize("command", list(COMMAND_ARGS))
def test_an_unknown_flag_with_no_close_one_and_with_a_value_attached(capsys, command):
    assert cli.main([command, "--zzzzzzzz=3"]) == 2
    assert capsys.readouterr().err == "error: unrecognized argument --zzzzzzzz\n"


def test_a_known_h2o_name_gets_its_refusal_not_a_suggestion(capsys):
    assert cli.main(["train", "--train", "d.csv", "--response", "y", "--average_activation", "0.5"]) == 2
    assert capsys.readouterr().err == f"error: {_refusal('average_activation')}\n"  # (not: did you mean activation)
    assert cli.main(["train", "--train", "d.csv", "--response", "y", "--average-activation", "0.5"]) == 2
    assert capsys.readouterr().err == f"error: {_refusal('average_activation')}\n"


def test_a_stray_word_or_a_misspelt_command_is_one_line(capsys):
    assert cli.main(["tarin", "--train", "d.csv"]) == 2
    assert capsys.readouterr().err == "error: unexpected argument 'tarin' (did you mean the command train?)\n"
    assert cli.main(["predict", "--model", "m.h5", "extra"]) == 2
    assert capsys.readouterr().err == "error: unexpected argument 'extra'\n"
    assert cli.main(["predict", "--model", "m.h5"]) == 2  # argparse's own mistakes: one line too
    assert capsys.readouterr().err == "error: the following arguments are required: --data, --out\n"


# --------------------------------------------------------------- hyphens and underscores
def _long_flags(parser):
    return {s: a.dest for a in parser._actions for s in a.option_strings if s.startswith("--") and s != "--help"}


@pytest.mark.parametrize("command", list(COMMAND_ARGS))
def test_every_flag_of_every_command_takes_hyphens_and_underscores(command):
    parser = cli.build_parser().commands[command]
    flags = _long_flags(parser)
    assert flags
    for flag, dest in flags.items():
        for spelling in (flag.replace("_", "-"), "--" + flag[2:].replace("-", "_")):
            respelt = cli.respell(parser, [spelling])
            assert flags[respelt[0]] == dest, (flag, spelling)


def test_a_flag_registered_in_one_spelling_takes_the_other_too():
    parser = cli._Parser(prog="x", allow_abbrev=False)
    parser.add_argument("--ranks-per-node")
    parser.add_argument("--job_name")
    parser.add_argument("-o")
    args = ["--ranks_per_node", "2", "--job-name=a", "-ofile", "--", "--not-a_flag"]
    assert cli.respell(parser, args) == ["--ranks-per-node", "2", "--job_name=a", "-o", "file", "--", "--not-a_flag"]
    parsed = parser.parse_args(cli.respell(parser, args[:4]))
    assert vars(parsed) == {"ranks_per_node": "2", "job_name": "a", "o": "file"}
    with pytest.raises(UserError) as e:
        cli.respell(parser, ["--ranks_per_nodes", "2"])
    assert str(e.value) == "unrecognized argument --ranks_per_nodes (did you mean --ranks_per_node?)"


def test_both_spellings_parse_to_the_same_values():
    pairs = [(["jobscript", "--scheduler", "slurm", "--ranks_per_node", "4", "--job_name", "x"],
              ["jobscript", "--scheduler", "slurm", "--ranks-per-node", "4", "--job-name", "x"]),
             (["predict", "--model", "m", "--data", "d", "--out", "o", "--per_feature", "--anomaly"],
              ["predict", "--model", "m", "--data", "d", "--out", "o", "--per-feature", "--anomaly"]),
             (["ensemble", "--search", "s", "--top", "2", "--model_out", "e.h5"],
              ["ensemble", "--search", "s", "--top", "2", "--model-out=e.h5"]),
             (["train", "--train", "d", "--input_dropout_ratio", "0.2", "--training_frame", "d"],
              ["train", "--train", "d", "--input-dropout-ratio", "0.2", "--training-frame", "d"])]
    for a, b in pairs:
        assert vars(cli.parse_args(a)) == vars(cli.parse_args(b))


# ------------------------------------------------------------------------------------ help
@pytest.mark.parametrize("command", list(COMMAND_ARGS))
def test_every_command_help_ends_with_two_examples(command):
    text = cli.build_parser().commands[command].format_help()
    tail = text[text.index("examples:\n"):].splitlines()[1:]
    assert len(tail) == 2 and all(line.split()[:4] in (["python", "-m", "h2odl_mpi", command],
                                                       ["mpirun", "-n", line.split()[2], "python"]) for line in tail)
    assert all(command in line for line in tail) and text.endswith("\n")
    respelt = [cli.respell(cli.build_parser().commands[command], line.split(command, 1)[1].split())
               for line in tail]  # the examples use the command's own flags
    assert all(respelt)


def test_train_help_is_grouped_lists_every_choice_and_every_h2o_parameter():
    text = cli.build_parser().commands["train"].format_help()
    titles = [title for title, _ in P.GROUPS]
    positions = [text.index(f"\n{title}:\n") for title in titles]
    assert positions == sorted(positions)  # the groups, in P.GROUPS' order
    flat = " ".join(text.split())
    for name, (_typ, _default, check, _help) in P.SPEC.items():
        if isinstance(check, tuple) and check and isinstance(check[0], str):
            assert f"one of {', '.join(check)}" in flat, name
    for name in P.H2O_PARAMETERS:
        assert f"--{P.canonical(name)} " in text, name
    assert "H2O-3 parameters not supported in this version" in text and text.count("\n") < 400


# --------------------------------------------------------------------------- the docs table
def test_docs_parameters_md_is_what_the_code_generates():
    with open(cli.DOC_PATH, encoding="utf-8") as f:
        committed = f.read()
    assert committed == cli.parameters_markdown(), ("docs/parameters.md is stale: regenerate it with "
                                                   "python -c 'from h2odl_mpi import cli; cli.write_parameters_doc()'")


def test_the_docs_table_has_a_row_per_parameter_with_its_status():
    text = cli.parameters_markdown()
    for name, (status, note, _how) in P.H2O_PARAMETERS.items():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{name}` |"))
        assert f"| {status} |" in row and note in row
    counts = {s: sum(1 for n in P.H2O_NAMES if P.H2O_PARAMETERS[n][0] == s) for s in
              (P.SUPPORTED, P.DIFFERENT, P.MEANINGLESS, P.NOT_SUPPORTED)}
    assert "; ".join(f"{c} {s}" for s, c in counts.items()) in text and sum(counts.values()) == 91
