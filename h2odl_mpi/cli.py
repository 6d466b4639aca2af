"""The command line: `python -m h2odl_mpi [train|grid|ensemble|predict|evaluate|describe|jobscript|report|export] ...`.

Every H2O parameter is a flag with H2O's name (`--input_dropout_ratio 0.2`, booleans as
true/false); `--config run.toml` reads them from a TOML file (h2odl_mpi.config), and flags
given on the command line override it.  An H2O-3 parameter this version lacks
(params.H2O_PARAMETERS) is accepted when its value changes nothing here (rank 0 notes it),
else refused: `error: --name: not supported in this version (why)`.  `train --help` groups
the flags (params.GROUPS) and lists the choices; every command's help ends with two examples
(EXAMPLES).  On every command --a_b and --a-b are the same flag (respell), an unknown flag is
`error: unrecognized argument --hiden (did you mean --hidden?)` and argparse's own mistakes
are one line too (exit status 2).  docs/parameters.md is parameters_markdown().  With no
subcommand, `train` is meant.  `jobscript` prints a Slurm/PBS script (h2odl_mpi.jobscript) without
starting MPI.  Errors in the input or the parameters print one line naming the culprit and
exit with status 2 on every rank; an unexpected failure on one rank aborts the whole MPI
job instead of leaving the other ranks waiting in a collective.  A training run stopped by
SIGTERM, SIGUSR1 or SIGINT (with --checkpoint_dir or --resume) writes a checkpoint and exits
with status 85 (checkpoint.REQUEUE_EXIT_CODE): "requeue me, then rerun with --resume DIR";
SIGINT without a checkpoint directory ends the run with one line and status 130.
"""
import argparse
import collections
import difflib
import os
import re
import sys
import traceback

from h2odl_mpi import params as P
from h2odl_mpi.training.checkpoint import REQUEUE_EXIT_CODE, StopFlag, TrainingInterrupted
from h2odl_mpi.collectives import parallel, rank_and_size
from h2odl_mpi.ending import end_together
from h2odl_mpi.errors import UserError, abort, agree

SUBCOMMANDS = ("train", "predict", "describe", "jobscript", "grid", "evaluate", "report", "ensemble", "export")
INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C
PROG = "python -m h2odl_mpi"
# two examples a command, the end of its --help
EXAMPLES = {
    "train": (f"{PROG} train --train train.csv --validation valid.csv --response label --hidden 64,64 --epochs 5 "
              "--model_out model.h5",
              f"mpirun -n 4 {PROG} train --config run.toml --checkpoint_dir ckpt --model_out model.h5"),
    "grid": (f"mpirun -n 8 {PROG} grid --config grid.toml --search_dir search --ranks_per_model 2",
             f"{PROG} grid --config grid.toml --search_dir search --epochs 2 --threads 4"),
    "predict": (f"{PROG} predict --model model.h5 --data test.csv --out predictions.csv",
                f"{PROG} predict --model autoencoder.h5 --data test.csv --out errors.csv --anomaly --per_feature"),
    "evaluate": (f"{PROG} evaluate --model model.h5 --data test.csv",
                 f"mpirun -n 4 {PROG} evaluate --model model.h5 --data test.csv --json perf.json "
                 "--auc_type WEIGHTED_OVR"),
    "describe": (f"{PROG} describe --data train.csv",
                 f"{PROG} describe --data 'parts/*.parquet' --json"),
    "ensemble": (f"{PROG} ensemble --search search --top 5 --model_out ensemble.h5",
                 f"mpirun -n 4 {PROG} ensemble --search search --top 3 --weights fitted --data valid.csv "
                 "--model_out ensemble.h5"),
    "report": (f"{PROG} report --model model.h5 -o model.html",
               f"{PROG} report --model ensemble.h5 --out ensemble.html"),
    "export": (f"{PROG} export --model model.h5 --mojo model.zip",
               f"{PROG} export --model model.h5 --mojo model.zip --onnx model.onnx"),
    "jobscript": (f"{PROG} jobscript --scheduler slurm --nodes 4 --ranks_per_node 8 --time 04:00:00 -- "
                  "--train train.csv --response label --model_out model.h5",
                  f"{PROG} jobscript --scheduler pbs --search -o search.pbs -- --config grid.toml"),
}
TRAIN_DESCRIPTION = ("Train one model.  The flags are H2O-3's Deep Learning parameters, under their names and "
                     "with their defaults; every flag takes hyphens too (--input-dropout-ratio); booleans are true "
                     "or false; a named choice may be spelt as H2O-3 or h2o-py spells it (RectifierWithDropout, "
                     "rectifier_with_dropout).  docs/parameters.md says what this version does with each H2O-3 "
                     "parameter.")


class _Parser(argparse.ArgumentParser):
    """argparse's parser whose mistakes are one line (`error: ...`, exit status 2 from main)
    rather than the usage and the message."""

    def error(self, message):
        raise UserError(message)


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's help, but the examples paragraph (the epilog's end) is left as written."""

    def _fill_text(self, text, width, indent):
        return "\n\n".join(part if part.startswith("examples:") else super(_HelpFormatter, self)._fill_text(
            part, width, indent) for part in text.split("\n\n"))


def _examples(command):
    return "examples:\n" + "".join(f"  {line}\n" for line in EXAMPLES[command])


def _add_command(sub, name, help_, **kw):
    return sub.add_parser(name, allow_abbrev=False, help=help_, epilog=_examples(name),
                          formatter_class=_HelpFormatter, **kw)


def _shown(value):
    """A default as the flag takes it (true, 200,200)."""
    if isinstance(value, bool):
        return str(value).lower()
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _param_help(name):
    """A train flag's help: what it is, its choices (H2O's refused ones named), its default."""
    typ, default, check, help_ = P.SPEC[name] if name in P.SPEC else (*P.H2O_ONLY[name][2][:2], None,
                                                                        P.H2O_ONLY[name][1])
    if isinstance(check, tuple) and check and isinstance(check[0], str):
        help_ += f"; one of {', '.join(check)}"
        if name in P.REFUSED_CHOICES:
            help_ += f" (H2O-3's {', '.join(P.REFUSED_CHOICES[name])}: not supported)"
    return help_ + ("" if default in (None, []) else f" (default {_shown(default)})")


def _metavar(name):
    check = P.SPEC[name][2] if name in P.SPEC else None
    if isinstance(check, tuple) and check and isinstance(check[0], str):
        return "CHOICE"
    return P.type_of(name).__name__.upper()


def _add_flag(group, name, help_):
    """--name (with H2O-3's name for it, if another), and the hyphenated forms, hidden."""
    aliases = [h2o for h2o, here in P.ALIASES.items() if here == name]
    group.add_argument(*[f"--{n}" for n in [name] + aliases], dest=name, default=None, metavar=_metavar(name),
                       help=help_)
    hyphens = [f"--{n.replace('_', '-')}" for n in [name] + aliases if "_" in n]
    if hyphens:
        group.add_argument(*hyphens, dest=name, default=None, help=argparse.SUPPRESS)


def _add_param_flags(parser):
    """Every train parameter as a flag, in P.GROUPS' groups; then the H2O-3 parameters this
    version accepts but that change nothing here, and those it does not support."""
    done = set()
    for title, names in P.GROUPS:
        group = parser.add_argument_group(title)
        for name in names:
            if name in P.SPEC or name in P.H2O_ONLY:
                _add_flag(group, name, _param_help(name))
                done.add(name)
    other = [n for n in P.SPEC if n not in done]
    if other:  # (a parameter no group names yet)
        group = parser.add_argument_group("other")
        for name in other:
            _add_flag(group, name, _param_help(name))
    for status, title in ((P.MEANINGLESS, "H2O-3 parameters accepted, but changing nothing here"),
                          (P.NOT_SUPPORTED, "H2O-3 parameters not supported in this version (H2O's default "
                                            "accepted)")):
        group = parser.add_argument_group(title)
        for name, (s, note, (_typ, default, inert)) in P.H2O_ONLY.items():
            if s == status and name not in done:
                also = [] if inert is P.ANY else [_shown(v) for v in inert if v not in (None, [], "", default)]
                shown = "" if default is None else f"; H2O's default {_shown(default)}"
                _add_flag(group, name, f"{note}{shown}" + (f", also {', '.join(also)}" if also else ""))


def build_parser():
    parser = _Parser(prog=PROG, allow_abbrev=False, formatter_class=_HelpFormatter,
                     description="H2O Deep Learning on MPI ranks with a Hogwild! C kernel",
                     epilog=_examples("train") + f"  {PROG} <command> --help   (the flags of a command)\n")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    t = _add_command(sub, "train", "train a model (H2O parameter names)", usage=f"{PROG} train [--config FILE] "
                     "[--PARAMETER VALUE ...]", description=TRAIN_DESCRIPTION)
    t.add_argument("--config", default=None, metavar="FILE",
                   help="TOML file of train parameters under their H2O names; flags given here "
                        "override it")
    _add_param_flags(t)
    pr = _add_command(sub, "predict", "score a data file with a saved model")
    pr.add_argument("--model", required=True, help="model file (HDF5) written by train --model_out")
    pr.add_argument("--data", required=True, help="data file to score")
    pr.add_argument("--out", required=True, help="predictions CSV to write")
    pr.add_argument("--threads", type=int, default=0,
                    help=f"kernel threads (0: all cores; at most {P.THREADS_PER_CORE} x the cores)")
    from h2odl_mpi.data.frame.parse_options import na_strings_flag
    pr.add_argument("--na_strings", "--na-strings", dest="na_strings", default=None, type=na_strings_flag,
                    metavar="LIST", help="values read as missing in --data, besides empty fields, blanks, NA, "
                                         "NaN, nan, N/A and ?; comma separated (H2O-3's parse option "
                                         "na_strings; give the model's train --na_strings)")
    group = pr.add_mutually_exclusive_group()
    group.add_argument("--anomaly", action="store_true", help="per-row reconstruction error")
    group.add_argument("--deepfeatures", type=int, metavar="K", default=None,
                       help="activations of hidden layer K (0-based)")
    group.add_argument("--reconstruction", action="store_true",
                       help="an autoencoder's reconstruction in the inputs' units (reconstr_<input>)")
    pr.add_argument("--per_feature", "--per-feature", dest="per_feature", action="store_true",
                    help="with --anomaly: each input's squared reconstruction error (reconstr_<input>.SE)")
    from h2odl_mpi.evaluation import evaluate
    evaluate.add_arguments(_add_command(sub, "evaluate", "a saved model's metrics on a labelled data file"))
    _add_grid_parser(sub)
    from h2odl_mpi.workflows import ensemble
    ensemble.add_arguments(_add_command(sub, "ensemble", "one model file averaging a search's best models"))
    from h2odl_mpi.data.frame import describe
    describe.add_arguments(_add_command(sub, "describe", "summarise a data file (column store)"))
    from h2odl_mpi.evaluation import report
    report.add_arguments(_add_command(sub, "report", "a model file as one self-contained HTML page "
                                                     "(needs matplotlib)"))
    from h2odl_mpi.evaluation import export
    export.add_arguments(_add_command(sub, "export", "a model file as an H2O-3 MOJO or an ONNX graph"))
    from h2odl_mpi import jobscript
    j = _add_command(sub, "jobscript", "print a Slurm or PBS job script for train")
    jobscript.add_arguments(j)
    if j.epilog != _examples("jobscript"):  # (its own words, then the examples)
        j.epilog = f"{j.epilog}\n\n{_examples('jobscript')}"
    parser.commands = dict(sub.choices)
    return parser


def _add_grid_parser(sub):
    g = _add_command(sub, "grid", "train many models: H2O's grid or random search on groups of ranks",
                     usage=f"{PROG} grid --config FILE --search_dir DIR [--ranks_per_model R] "
                           "[--PARAMETER VALUE ...]",
                     description="Train many models: H2O's grid or random search (or Evolutionary, Halving) "
                                 "on groups of ranks.  The train flags below (as train takes them) override the "
                                 "grid file's fixed parameters.")
    g.add_argument("--config", required=True, metavar="FILE",
                   help="TOML grid file: train parameters, [hyper_params] and [search_criteria]; "
                        "train flags given here override its fixed parameters")
    g.add_argument("--search_dir", "--search-dir", dest="search_dir", required=True, metavar="DIR",
                   help="the search's directory: models, leaderboard, best_model.h5; rerunning the same "
                        "command continues the search there")
    g.add_argument("--ranks_per_model", "--ranks-per-model", dest="ranks_per_model", type=int, default=1,
                   metavar="R", help="ranks that train each model together (must divide the ranks; default 1)")
    _add_param_flags(g)


# ---- docs/parameters.md ------------------------------------------------------------------
DOC_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "parameters.md")


def _doc_row(name):
    """A table row: the H2O-3 name, what this version does with it, the flag, default and note."""
    status, note, how = P.H2O_PARAMETERS[name]
    here, accepted = P.canonical(name), []
    if how is None:
        default, shown = P.SPEC[here][1], "default"
    else:
        default, inert, shown = how[1], how[2], "H2O's default"
        if inert is not P.ANY:
            accepted = [f"`{_shown(v)}`" for v in inert if v not in (None, [], "")]
    text = f"`--{here}`" + ("" if default in (None, []) else f" ({shown} `{_shown(default)}`)")
    text += f": {note}" if note else ""
    text += f"; accepted: {', '.join(accepted)}" if accepted else ""
    return f"| `{name}` | {status} | {text} |"


def parameters_markdown():
    """docs/parameters.md: every H2O-3 Deep Learning parameter and what this version does
    with it, from params.H2O_PARAMETERS (tests/test_h2o_parameters.py checks the file)."""
    counts = collections.Counter(P.H2O_PARAMETERS[n][0] for n in P.H2O_NAMES)
    statuses = (P.SUPPORTED, P.DIFFERENT, P.MEANINGLESS, P.NOT_SUPPORTED)
    head = ["| H2O-3 parameter | here | flag, default and note |", "| --- | --- | --- |"]
    return "\n".join([
        "# H2O-3 Deep Learning parameters", "",
        "<!-- Generated from h2odl_mpi/params.py (H2O_PARAMETERS) by h2odl_mpi.cli.parameters_markdown();",
        "     tests/test_h2o_parameters.py checks it.  Regenerate with",
        "     .venv/bin/python -c 'from h2odl_mpi import cli; cli.write_parameters_doc()' -->", "",
        f"Every parameter of H2O-3 3.46's Deep Learning ({len(P.H2O_NAMES)}, in h2o-py's order) and what "
        "`train` and `grid` (flags and config files) and `params.validate` do with it: "
        + "; ".join(f"{counts[s]} {s}" for s in statuses) + ".", "",
        f"- **{P.SUPPORTED}**: the same parameter, name and default (`--name`, or `--name-with-hyphens`).",
        f"- **{P.DIFFERENT}**: the note says how it differs from H2O-3.",
        f"- **{P.MEANINGLESS}**: accepted with any value H2O-3 accepts, as it changes nothing here; a value "
        "other than H2O's default gets a one-line note saying why (and what to use instead).",
        f"- **{P.NOT_SUPPORTED}**: refused with one line, `error: --name: not supported in this version (why)` "
        "(exit status 2), but for H2O's default and the values listed as accepted, which change nothing here.",
        "", "A choice H2O-3 has and this version refuses is refused with its reason too "
        "(`categorical_encoding=Eigen`, ...).  `train --help` lists this version's own flags as well "
        "(`--threads`, `--model_out`, `--checkpoint_dir`, `--combining_rule`, ...).", "",
        *head, *(_doc_row(n) for n in P.H2O_NAMES), "",
        "## Other H2O names", "",
        "Not parameters of H2O-3 3.46's Deep Learning, but passed with them.", "",
        *head, *(_doc_row(n) for n in P.H2O_OTHER_NAMES), ""])


def write_parameters_doc(path=DOC_PATH):
    """Write docs/parameters.md (parameters_markdown())."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(parameters_markdown())


# ---- the arguments, before argparse reads them ------------------------------------------
_NUMBER = re.compile(r"-(\d|\.\d)")  # a negative number is a value, not a flag


def _spellings(flag):
    """A long flag's other spellings: --a_b and --a-b (and a mix of the two) are one flag."""
    if not flag.startswith("--"):
        return []
    body = flag[2:]
    return [f"--{body.replace('-', '_')}", f"--{body.replace('_', '-')}"]


def _unknown_flag(flag, known):
    """The UserError for a flag `known` (a command's option strings) lacks, with the closest one."""
    candidates = sorted({s for k in known if k.startswith("--") for s in [k] + _spellings(k)})
    near = difflib.get_close_matches(flag, candidates, n=1)
    return UserError(f"unrecognized argument {flag}" + (f" (did you mean {near[0]}?)" if near else ""))


def _values_taken(action, args, i):
    """How many of args[i:] the option `action` takes as its values."""
    nargs = action.nargs
    if nargs is None:
        return 1
    if isinstance(nargs, int):
        return nargs
    if nargs == "?":
        return int(i < len(args) and not args[i].startswith("-"))
    n = 0
    while i + n < len(args) and not args[i + n].startswith("-"):
        n += 1
    return n


def respell(parser, args):
    """A command's arguments with each flag as its parser (`parser`) knows it: --a-b for
    --a_b and the other way round.  An unknown flag, or a word where the command takes none,
    is a UserError naming it (with the command's closest flag)."""
    known = parser._option_string_actions
    positionals = any(not a.option_strings for a in parser._actions)
    out, i = [], 0
    while i < len(args):
        a = args[i]
        i += 1
        if a == "--":
            return out + args[i - 1:]
        if not a.startswith("-") or a == "-" or _NUMBER.match(a):
            if not positionals:
                near = difflib.get_close_matches(a, SUBCOMMANDS, n=1) if not out and a.isalpha() else []
                raise UserError(f"unexpected argument {a!r}" + (f" (did you mean the command {near[0]}?)"
                                                                if near else ""))
            out.append(a)
            continue
        flag, eq, value = a.partition("=")
        attached = None
        if not a.startswith("--") and a[:2] in known and len(a) > 2 and not eq:  # -oFILE
            flag, attached = a[:2], a[2:]
        if flag not in known:
            respelt = next((s for s in _spellings(flag) if s in known), None)
            if respelt is None:
                raise _unknown_flag(flag, known)
            flag = respelt
        if eq or attached is not None:
            out += [f"{flag}={value}"] if eq else [flag, attached]
            continue
        n = _values_taken(known[flag], args, i)  # its values follow it
        out += [flag] + args[i:i + n]
        i += n
    return out


def parse_args(argv):
    """The namespace of `argv` (a command first); every mistake a one-line UserError."""
    parser = build_parser()
    if argv and argv[0] in parser.commands:
        argv = [argv[0]] + respell(parser.commands[argv[0]], argv[1:])
    ns, extra = parser.parse_known_args(argv)
    if extra:
        raise UserError(f"unrecognized argument {extra[0]}")
    return ns


def _grid_inputs(ns):
    """(fixed parameters, hyper_params, search_criteria): the grid file's, flags over it."""
    from h2odl_mpi.workflows.search import grid_file
    fixed, hyper, criteria = grid_file.load(ns.config)
    fixed.update(_flags_given(ns))
    return fixed, hyper, criteria


def _flags_given(ns):
    """{name: value} of the train flags given, parsed; an H2O parameter SPEC lacks is
    refused (`error: --name: not supported in this version (why)`) unless its value changes
    nothing here, as params.validate refuses it."""
    out = {}
    for name in list(P.SPEC) + list(P.H2O_ONLY):
        v = getattr(ns, name, None)
        if v is not None:
            v = P.parse_value(name, v)
            out[name] = P.check_implemented(name, v, "--") if name in P.H2O_ONLY else v
    return out


def _train_params(ns):
    """Validated train parameters: the flags given (not None), over the --config file's."""
    return P.validate(_train_raw(ns))


def _train_raw(ns):
    """The train parameters given: the flags (not None) over the --config file's."""
    raw = {}
    if getattr(ns, "config", None):
        from h2odl_mpi import config
        raw.update(config.load(ns.config))
    raw.update(_flags_given(ns))
    for name in ("train",):
        if not raw.get(name):
            where = f" (or {name} in {ns.config})" if getattr(ns, "config", None) else ""
            raise UserError(f"--{name} is required{where}")
    return raw


def _say_notes(comm, given):
    """Rank 0 says what the H2O parameters given that change nothing here do (params.notes)."""
    if rank_and_size(comm)[0] == 0:
        for line in P.notes(given, flags=True):
            print(line, file=sys.stderr, flush=True)


def _error_of(check, *args):
    """The UserError `check(*args)` raises, or None (for errors.agree)."""
    try:
        check(*args)
    except UserError as e:
        return e
    return None


def _interrupted(comm, command):
    """SIGINT (Ctrl-C) where nothing catches it: one line, status 130 (128 + SIGINT) on every
    rank; in an MPI job the whole job ends, as the other ranks may be in a collective."""
    if rank_and_size(comm)[0] == 0:
        how = (": stopped without a checkpoint (give --checkpoint_dir to stop with one)"
               if command == "train" else "")
        print(f"h2odl_mpi: interrupted (SIGINT){how}", file=sys.stderr, flush=True)
    if parallel(comm):
        abort(comm, INTERRUPTED_EXIT_CODE)
    return INTERRUPTED_EXIT_CODE


def _comm():
    from mpi4py import MPI
    return MPI.COMM_WORLD


class Job:
    """What the error handlers of main() need: the communicator, once MPI has started; and
    `exit_deadline`: seconds this process may take to end once the command is done (the
    stall timeout of a multi-rank train or grid; None: no limit), with `peers`, every rank's
    pid and host from the last agreement: see h2odl_mpi.ending."""
    comm = None
    exit_deadline = None
    peers = None


def _train(ns, job):
    error, params, stop, raw = None, None, None, {}
    try:
        raw = _train_raw(ns)
        params = P.validate(raw)
    except UserError as e:  # e.g. a config file one rank cannot read: fail on every rank
        error = e
    if params is not None and params.get("checkpoint_dir"):
        # the batch system's signal counts from here on, also while MPI starts (whose own
        # SIGUSR1 handler train() replaces again)
        stop = StopFlag().install()
    job.comm = _comm()
    agree(job.comm, error, own_first=True)
    _say_notes(job.comm, raw)
    from h2odl_mpi.training.watchdog import watching
    from h2odl_mpi.workflows.cross_validation import train_or_cross_validate
    with watching(params, job.comm, what="the last checkpoint stands"):  # folds, final writes
        run = train_or_cross_validate(params, job.comm, stop=stop, config_file=getattr(ns, "config", None))
        end_together(job)
    job.exit_deadline = params.get("stall_timeout") if parallel(job.comm) else None
    if rank_and_size(job.comm)[0] == 0 and not params.get("model_out"):
        print(_unsaved(params, run.state), file=sys.stderr, flush=True)
    return 0


def _unsaved(params, state):
    """Where the model of a run without model_out is: its final checkpoint, or nowhere."""
    if params.get("checkpoint_dir"):
        from h2odl_mpi.training.checkpoint_files import checkpoint_path
        where = checkpoint_path(params["checkpoint_dir"], state["iteration"])
        return (f"note: no model_out given: the model is the final checkpoint {where} (a model file: "
                "predict --model takes it); give --model_out FILE to write it elsewhere")
    return "note: no model_out given: the model was not saved (give --model_out FILE)"


def _grid(ns, job):
    """The grid file is read (or its error kept) before MPI starts, as train's config is."""
    error, inputs = None, None
    try:
        inputs = _grid_inputs(ns)
    except UserError as e:
        error = e
    stop = StopFlag().install()  # (models always checkpoint: signals count from here on)
    try:
        job.comm = _comm()
        agree(job.comm, error, own_first=True)
        _say_notes(job.comm, inputs[0])
        from h2odl_mpi.training.watchdog import watching
        from h2odl_mpi.workflows.search import grid_search
        with watching(inputs[0], job.comm):  # the search's own collectives between models
            grid_search(*inputs, ns.search_dir, ns.ranks_per_model, job.comm, stop=stop)
            end_together(job)
        job.exit_deadline = float(inputs[0].get("stall_timeout", P.SPEC["stall_timeout"][1]) or 0) \
            if parallel(job.comm) else None
    finally:
        stop.restore()
    return 0


def _predict(ns, job):
    from h2odl_mpi.evaluation.predict import predict_file
    job.comm = _comm()
    agree(job.comm, _error_of(P.check_threads, "--threads", ns.threads), own_first=True)
    predict_file(ns.model, ns.data, ns.out, job.comm, threads=ns.threads or None, anomaly=ns.anomaly,
                 deepfeatures=ns.deepfeatures, per_feature=ns.per_feature, reconstruction=ns.reconstruction,
                 na_strings=ns.na_strings)
    return 0


def _describe(ns, job):
    from h2odl_mpi.data.frame import describe
    job.comm = _comm()
    return describe.run(ns)


def _on_ranks(module):
    """A subcommand whose module's run(ns, comm) runs on every rank, --threads checked first
    (a count refused on one rank is refused on every rank)."""
    def run(ns, job):
        import importlib
        job.comm = _comm()
        agree(job.comm, _error_of(P.check_threads, "--threads", ns.threads), own_first=True)
        return importlib.import_module(f"h2odl_mpi.{module}").run(ns, job.comm)
    return run


def _alone(module):
    """A subcommand that runs without MPI (a login node, one process reading a file)."""
    def run(ns, job):
        import importlib
        return importlib.import_module(f"h2odl_mpi.{module}").run(ns)
    return run


COMMANDS = {"train": _train, "grid": _grid, "predict": _predict, "evaluate": _on_ranks("evaluation.evaluate"),
            "ensemble": _on_ranks("workflows.ensemble"), "describe": _describe,
            "report": _alone("evaluation.report"), "export": _alone("evaluation.export"), "jobscript": _alone("jobscript")}


def main(argv=None, job=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS + ("-h", "--help"):
        argv = ["train"] + argv
    after_dashes = []
    if argv[0] == "jobscript" and "--" in argv:  # jobscript ... -- <train arguments>
        cut = argv.index("--")
        argv, after_dashes = argv[:cut], argv[cut + 1:]
    job = job if job is not None else Job()
    try:
        ns = parse_args(argv)
        if ns.command == "jobscript":
            ns.train_args = after_dashes
        return COMMANDS[ns.command](ns, job)
    except TrainingInterrupted as e:
        if rank_and_size(job.comm)[0] == 0:
            print(f"h2odl_mpi: {e}", file=sys.stderr, flush=True)
        return REQUEUE_EXIT_CODE
    except UserError as e:
        if rank_and_size(job.comm)[0] == 0:
            print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:  # SIGINT without a checkpoint directory (with one: TrainingInterrupted)
        return _interrupted(job.comm, argv[0])
    except SystemExit:
        raise
    except BaseException:  # noqa: BLE001 - a failure on one rank must end every rank
        traceback.print_exc()
        sys.stderr.flush()
        if parallel(job.comm):
            abort(job.comm, 1)
        return 1
