"""The command line: `python -m h2odl_mpi [train|grid|ensemble|predict|evaluate|describe|jobscript|report] ...`.

Every H2O parameter is a flag with H2O's name (`--input_dropout_ratio 0.2`, dashes accepted
too, booleans as true/false); `--config run.toml` reads them from a TOML file
(h2odl_mpi.config), and flags given on the command line override it.  With no subcommand,
`train` is meant.  `jobscript` prints a Slurm/PBS script (h2odl_mpi.jobscript) without
starting MPI.  Errors in the input or the parameters print one line naming the culprit and
exit with status 2 on every rank; an unexpected failure on one rank aborts the whole MPI
job instead of leaving the other ranks waiting in a collective.  A training run stopped by
SIGTERM, SIGUSR1 or SIGINT (with --checkpoint_dir or --resume) writes a checkpoint and exits
with status 85 (checkpoint.REQUEUE_EXIT_CODE): "requeue me, then rerun with --resume DIR";
SIGINT without a checkpoint directory ends the run with one line and status 130.
"""
import argparse
import sys
import traceback

from h2odl_mpi import params as P
from h2odl_mpi.training.checkpoint import REQUEUE_EXIT_CODE, StopFlag, TrainingInterrupted
from h2odl_mpi.collectives import parallel, rank_and_size
from h2odl_mpi.errors import UserError, abort, agree

SUBCOMMANDS = ("train", "predict", "describe", "jobscript", "grid", "evaluate", "report", "ensemble")
INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C


def _add_param_flags(parser):
    aliases = {v: k for k, v in P.ALIASES.items()}
    for name, (typ, default, _check, help_) in P.SPEC.items():
        flags = [f"--{name}"]
        if "_" in name:
            flags.append(f"--{name.replace('_', '-')}")
        if name in aliases:  # H2O-3's name too: --training_frame, --response_column, ...
            flags += [f"--{aliases[name]}", f"--{aliases[name].replace('_', '-')}"]
        shown = "" if default is None else f" (default {default})"
        parser.add_argument(*flags, dest=name, default=None, metavar=typ.__name__.upper(),
                            help=f"{help_}{shown}")
    for name in P.NOT_YET:
        parser.add_argument(f"--{name}", dest=name, default=None, help=argparse.SUPPRESS)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m h2odl_mpi", allow_abbrev=False,
                                     description="H2O Deep Learning on MPI ranks with a Hogwild! C kernel")
    sub = parser.add_subparsers(dest="command")
    t = sub.add_parser("train", allow_abbrev=False, help="train a model (H2O parameter names)")
    t.add_argument("--config", default=None, metavar="FILE",
                   help="TOML file of train parameters under their H2O names; flags given here "
                        "override it")
    _add_param_flags(t)
    pr = sub.add_parser("predict", allow_abbrev=False, help="score a data file with a saved model")
    pr.add_argument("--model", required=True, help="model file (HDF5) written by train --model_out")
    pr.add_argument("--data", required=True, help="data file to score")
    pr.add_argument("--out", required=True, help="predictions CSV to write")
    pr.add_argument("--threads", type=int, default=0,
                    help=f"kernel threads (0: all cores; at most {P.THREADS_PER_CORE} x the cores)")
    group = pr.add_mutually_exclusive_group()
    group.add_argument("--anomaly", action="store_true", help="per-row reconstruction error")
    group.add_argument("--deepfeatures", type=int, metavar="K", default=None,
                       help="activations of hidden layer K (0-based)")
    group.add_argument("--reconstruction", action="store_true",
                       help="an autoencoder's reconstruction in the inputs' units (reconstr_<input>)")
    pr.add_argument("--per_feature", "--per-feature", dest="per_feature", action="store_true",
                    help="with --anomaly: each input's squared reconstruction error (reconstr_<input>.SE)")
    from h2odl_mpi.evaluation import evaluate
    evaluate.add_arguments(sub.add_parser("evaluate", allow_abbrev=False,
                                          help="a saved model's metrics on a labelled data file"))
    _add_grid_parser(sub)
    from h2odl_mpi.workflows import ensemble
    ensemble.add_arguments(sub.add_parser("ensemble", allow_abbrev=False,
                                          help="one model file averaging a search's best models"))
    from h2odl_mpi.data.frame import describe
    d = sub.add_parser("describe", allow_abbrev=False, help="summarise a data file (column store)")
    describe.add_arguments(d)
    from h2odl_mpi.evaluation import report
    report.add_arguments(sub.add_parser("report", allow_abbrev=False,
                                        help="a model file as one self-contained HTML page (needs matplotlib)"))
    from h2odl_mpi import jobscript
    j = sub.add_parser("jobscript", allow_abbrev=False, help="print a Slurm or PBS job script for train")
    jobscript.add_arguments(j)
    return parser


def _add_grid_parser(sub):
    g = sub.add_parser("grid", allow_abbrev=False,
                       help="train many models: H2O's grid or random search on groups of ranks")
    g.add_argument("--config", required=True, metavar="FILE",
                   help="TOML grid file: train parameters, [hyper_params] and [search_criteria]; "
                        "train flags given here override its fixed parameters")
    g.add_argument("--search_dir", "--search-dir", dest="search_dir", required=True, metavar="DIR",
                   help="the search's directory: models, leaderboard, best_model.h5; rerunning the same "
                        "command continues the search there")
    g.add_argument("--ranks_per_model", "--ranks-per-model", dest="ranks_per_model", type=int, default=1,
                   metavar="R", help="ranks that train each model together (must divide the ranks; default 1)")
    _add_param_flags(g)


def _grid_inputs(ns):
    """(fixed parameters, hyper_params, search_criteria): the grid file's, flags over it."""
    from h2odl_mpi.workflows.search import grid_file
    fixed, hyper, criteria = grid_file.load(ns.config)
    fixed.update(_flags_given(ns))
    return fixed, hyper, criteria


def _flags_given(ns):
    """{name: value} of the train flags given (parsed; one H2O does not implement here yet
    is refused, as params.validate refuses it)."""
    out = {}
    for name in list(P.SPEC) + list(P.NOT_YET):
        v = getattr(ns, name, None)
        if v is not None:
            P.check_implemented(name, v)
            out[name] = P.parse_value(name, v) if name in P.SPEC else v
    return out


def _train_params(ns):
    """Validated train parameters: the flags given (not None), over the --config file's."""
    raw = {}
    if getattr(ns, "config", None):
        from h2odl_mpi import config
        raw.update(config.load(ns.config))
    raw.update(_flags_given(ns))
    for name in ("train",):
        if not raw.get(name):
            where = f" (or {name} in {ns.config})" if getattr(ns, "config", None) else ""
            raise UserError(f"--{name} is required{where}")
    return P.validate(raw)


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


class _Job:
    """What the error handlers of main() need: the communicator, once MPI has started."""
    comm = None


def _train(ns, job):
    error, params, stop = None, None, None
    try:
        params = _train_params(ns)
    except UserError as e:  # e.g. a config file one rank cannot read: fail on every rank
        error = e
    if params is not None and params.get("checkpoint_dir"):
        # the batch system's signal counts from here on, also while MPI starts (whose own
        # SIGUSR1 handler train() replaces again)
        stop = StopFlag().install()
    job.comm = _comm()
    agree(job.comm, error, own_first=True)
    from h2odl_mpi.workflows.cross_validation import train_or_cross_validate
    run = train_or_cross_validate(params, job.comm, stop=stop, config_file=getattr(ns, "config", None))
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
        from h2odl_mpi.workflows.search import grid_search
        grid_search(*inputs, ns.search_dir, ns.ranks_per_model, job.comm, stop=stop)
    finally:
        stop.restore()
    return 0


def _predict(ns, job):
    from h2odl_mpi.evaluation.predict import predict_file
    job.comm = _comm()
    agree(job.comm, _error_of(P.check_threads, "--threads", ns.threads), own_first=True)
    predict_file(ns.model, ns.data, ns.out, job.comm, threads=ns.threads or None, anomaly=ns.anomaly,
                 deepfeatures=ns.deepfeatures, per_feature=ns.per_feature, reconstruction=ns.reconstruction)
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
            "report": _alone("evaluation.report"), "jobscript": _alone("jobscript")}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS + ("-h", "--help"):
        argv = ["train"] + argv
    after_dashes = []
    if argv[0] == "jobscript" and "--" in argv:  # jobscript ... -- <train arguments>
        cut = argv.index("--")
        argv, after_dashes = argv[:cut], argv[cut + 1:]
    job = _Job()
    try:
        ns = build_parser().parse_args(argv)
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
