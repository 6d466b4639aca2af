"""Batch job scripts for Slurm and PBS that submit, survive the wall time and resume.

`render(...)` writes a ready script: scheduler directives (nodes, ranks per node, threads
per rank, wall time, memory per node, partition/queue, account), the site set-up (a commented
place for the site's MPI and Python modules, then the Python environment to activate: a
virtualenv directory or a file to source, checked before anything starts), OMP_NUM_THREADS
from the allocation (threads bound to cores under srun, which gives each rank cores of its
own; not under mpirun), the launch line (srun or mpirun) running `python -m h2odl_mpi train
--resume DIR --checkpoint_dir DIR ...` with DIR one directory per experiment (the job name and
a digest of the arguments), a signal before the wall time that the trainer answers by
checkpointing and exiting with REQUEUE_EXIT, and the requeue (Slurm: scontrol requeue; PBS:
qsub of the same script with the arguments saved beside DIR) when it does, at most
max_requeues times (Slurm counts them in SLURM_RESTART_COUNT, the PBS requeue passes
H2ODL_REQUEUES on): past that the script says so and exits REQUEUE_LIMIT_EXIT.
The run-time settings can be overridden at submission through H2ODL_* variables
(H2ODL_ACTIVATE, H2ODL_PYTHON, H2ODL_LAUNCHER, H2ODL_NTASKS, H2ODL_THREADS,
H2ODL_MAX_REQUEUES, H2ODL_CHECKPOINT_DIR, H2ODL_TRAIN_ARGS; the PBS requeue passes those
given on to the requeued job), the directives through sbatch's or qsub's own options.
With --search the job runs `grid` instead (h2odl_mpi.workflows.search): many models on groups of
ranks, its search directory where a train job keeps its checkpoints, continued by the same
command after a requeue.  The scripts in jobscripts/ are this module's output.

`python -m h2odl_mpi jobscript --scheduler slurm --nodes 4 ... -- <train arguments>` prints
one (`run`/`add_arguments` below; no MPI needed, so it runs on a login node).  Every flag
has H2O's underscore form and a hyphenated one (--ranks_per_node, --ranks-per-node):

    python -m h2odl_mpi jobscript --scheduler slurm --nodes 4 --ranks_per_node 8
        --threads 16 --time 12:00:00 --mem 64G --partition batch --activate .venv
        -o train.sbatch -- --config run.toml
"""
import os
import re
import shlex
import sys

from h2odl_mpi.atomic import replacing
from h2odl_mpi.errors import REQUEUE_EXIT_CODE as REQUEUE_EXIT  # "checkpoint written, requeue me"
from h2odl_mpi.errors import UserError

SIGNAL_LEAD_S = 300
MAX_REQUEUES = 20      # the default bound on requeues (--max_requeues)
REQUEUE_LIMIT_EXIT = 3  # the script's status when the trainer asks for one more requeue past it

_BODY = r'''
# ---- site set-up: load the site's MPI and Python here (mpi4py built against that MPI;
# see README "Running on a cluster"), e.g.:
#   module load gcc openmpi python
# then the Python environment (--activate; H2ODL_ACTIVATE at submission): a virtualenv
# directory, whose bin/activate is sourced, or a file to source
ACTIVATE=${H2ODL_ACTIVATE:-__ACTIVATE__}
if [ -n "$ACTIVATE" ]; then
  ACTIVATE_FILE=$ACTIVATE
  [ -d "$ACTIVATE" ] && ACTIVATE_FILE=$ACTIVATE/bin/activate
  if [ ! -f "$ACTIVATE_FILE" ]; then
    echo "h2odl_mpi job $JOB_ID: cannot activate the Python environment (--activate, H2ODL_ACTIVATE): no file $ACTIVATE_FILE (working directory $PWD); nothing started" >&2
    exit 2
  fi
  case "$ACTIVATE_FILE" in /*) ;; *) ACTIVATE_FILE=./$ACTIVATE_FILE ;; esac  # never looked up in PATH
  SCRIPT_ARGS=("$@"); set --                 # sourced without the script's arguments
  source "$ACTIVATE_FILE"
  set -- "${SCRIPT_ARGS[@]}"
fi
set -uo pipefail
PYTHON=${H2ODL_PYTHON:-__PYTHON__}
LAUNCHER=${H2ODL_LAUNCHER:-__LAUNCHER__}          # srun | mpirun
REQUEUE_EXIT=__REQUEUE__
# requeues so far (__REQUEUES_VAR__) and the most the job may have (--max_requeues;
# H2ODL_MAX_REQUEUES at submission): a job that always asks for one more stops there
REQUEUES=${__REQUEUES_VAR__:-0}
MAX_REQUEUES=${H2ODL_MAX_REQUEUES:-__MAX_REQUEUES__}
case "$MAX_REQUEUES" in ''|*[!0-9]*)
  echo "h2odl_mpi job $JOB_ID: H2ODL_MAX_REQUEUES=$MAX_REQUEUES: expected a count (0, 1, 2, ...); not started" >&2; exit 2 ;; esac
case "$REQUEUES" in ''|*[!0-9]*)
  echo "h2odl_mpi job $JOB_ID: __REQUEUES_VAR__=$REQUEUES: expected a count (0, 1, 2, ...); not started" >&2; exit 2 ;; esac

# ---- training arguments: the script's own arguments, else those a requeued job saved
# (H2ODL_ARGS_FILE), else H2ODL_TRAIN_ARGS (any may be just `--config run.toml`, a TOML file
# of train parameters; flags given with it win)
if [ "$#" -gt 0 ]; then TRAIN_ARGS=("$@")
elif [ -n "${H2ODL_ARGS_FILE:-}" ]; then mapfile -d '' -t TRAIN_ARGS < "$H2ODL_ARGS_FILE"
else read -r -a TRAIN_ARGS <<< "${H2ODL_TRAIN_ARGS:-__TRAIN_ARGS__}"; fi

# ---- one checkpoint directory per experiment: the job name and a digest of the arguments,
# so that a requeue resumes it and other arguments start afresh (H2ODL_CHECKPOINT_DIR: this one)
DIGEST=$(printf '%s\0' "${TRAIN_ARGS[@]}" | cksum | cut -d' ' -f1)
CKPT_DIR=${H2ODL_CHECKPOINT_DIR:-$PWD/checkpoints/__JOBNAME__-$DIGEST}
ARGS_FILE="$CKPT_DIR.args"                   # the arguments, for the requeued job
mkdir -p "$CKPT_DIR" && printf '%s\0' "${TRAIN_ARGS[@]}" > "$ARGS_FILE" || exit 2

# ---- ranks x threads from the allocation; srun binds each rank's threads to cores of its
# own, mpirun binds no rank to cores of its own (OpenMP binding would then put every rank's
# threads on the same cores), so binding stays off there
NTASKS=${H2ODL_NTASKS:-__NTASKS_EXPR__}
export OMP_NUM_THREADS=${H2ODL_THREADS:-__THREADS_EXPR__}
case "$LAUNCHER" in
  srun)   LAUNCH=(srun --ntasks="$NTASKS" --cpus-per-task="$OMP_NUM_THREADS" --cpu-bind=cores)
          export OMP_PROC_BIND=${OMP_PROC_BIND:-close} OMP_PLACES=${OMP_PLACES:-cores} ;;
  mpirun) LAUNCH=(mpirun -n "$NTASKS")
          export OMP_PROC_BIND=false; unset OMP_PLACES ;;
  *)      echo "unknown launcher $LAUNCHER" >&2; exit 2 ;;
esac

__LAUNCH_LINES__ &
child=$!
# the scheduler's warning signal goes to the launcher, which passes it to every rank; the
# ranks stop together at the end of their current rows, checkpoint and exit REQUEUE_EXIT
forward() { kill -USR1 "$child" 2>/dev/null; }
trap forward USR1 TERM
rc=0
while true; do
  wait "$child"; rc=$?
  kill -0 "$child" 2>/dev/null || break      # a trapped signal interrupted wait: wait again
done
wait "$child"; rc=$?                         # the launcher's status even if it ended during a trap
if [ "$rc" -eq "$REQUEUE_EXIT" ]; then
  if ! [ "$REQUEUES" -lt "$MAX_REQUEUES" ] 2>/dev/null; then
    echo "h2odl_mpi job $JOB_ID: not requeued: requeued $REQUEUES times already, the most --max_requeues allows ($MAX_REQUEUES; a wall time too short, or a run that always exits $REQUEUE_EXIT?); the checkpoint is in $CKPT_DIR: to continue, submit the script again with the same arguments (--resume continues from there)" >&2
    exit __LIMIT_EXIT__
  fi
  echo "checkpoint written; requeueing job $JOB_ID (requeue $((10#$REQUEUES + 1)) of at most $MAX_REQUEUES)"
  __REQUEUE_CMD__
fi
exit "$rc"
'''


# PBS: the same script submitted again with this part's arguments, checkpoint directory, the
# requeue count and the settings given at submission (qsub -v splits its list at commas, so a
# value with one cannot pass)
_PBS_REQUEUE = '''H2ODL_ARGS_FILE=$ARGS_FILE H2ODL_CHECKPOINT_DIR=$CKPT_DIR H2ODL_REQUEUES=$((10#$REQUEUES + 1)) NEXT=
  for v in H2ODL_ARGS_FILE H2ODL_CHECKPOINT_DIR H2ODL_REQUEUES H2ODL_ACTIVATE H2ODL_PYTHON H2ODL_LAUNCHER \\
           H2ODL_NTASKS H2ODL_THREADS H2ODL_MAX_REQUEUES H2ODL_JOB_SCRIPT; do
    [ -n "${!v:-}" ] || continue
    case "${!v}" in *,*) echo "$v=${!v}: a comma cannot pass through qsub -v: not requeued" >&2; exit 2 ;; esac
    NEXT+="${NEXT:+,}$v=${!v}"
  done
  qsub -v "$NEXT" "${H2ODL_JOB_SCRIPT:-$JOB_SCRIPT}"'''
_TRAIN_LAUNCH = '''echo "h2odl_mpi job $JOB_ID: $NTASKS ranks x $OMP_NUM_THREADS threads, checkpoints in $CKPT_DIR"
# --resume continues from the newest valid checkpoint in CKPT_DIR (fresh if there is none)
"${LAUNCH[@]}" "$PYTHON" -m h2odl_mpi train --resume "$CKPT_DIR" --checkpoint_dir "$CKPT_DIR" \\
    "${TRAIN_ARGS[@]}"'''
_SEARCH_LAUNCH = '''echo "h2odl_mpi job $JOB_ID: $NTASKS ranks x $OMP_NUM_THREADS threads, search in $CKPT_DIR"
# the same command continues the search in CKPT_DIR: finished models stay, interrupted ones resume
"${LAUNCH[@]}" "$PYTHON" -m h2odl_mpi grid --search_dir "$CKPT_DIR" --ranks_per_model %d \\
    "${TRAIN_ARGS[@]}"'''

# What a string may hold to be written into the script as it is (a directive or shell code):
# shlex's characters that never need quoting, ASCII only.  Anything else is refused, except
# the script's own file name, which is quoted (shlex.quote) into a variable.
_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
_JOB_NAME = re.compile(r"[A-Za-z0-9_-]+")
# wall times: HH:MM:SS, or Slurm's days forms D-HH:MM:SS, D-HH:MM and D-HH
_TIME = re.compile(r"(?:([0-9]+)-)?([0-9]+):([0-5][0-9]):([0-5][0-9])|([0-9]+)-([0-9]+)(?::([0-5][0-9]))?")
TIME_FORMS = "HH:MM:SS or D-HH:MM:SS (also D-HH:MM, D-HH)"


def wall_seconds(time):
    """The seconds of a wall time in one of TIME_FORMS, or None for anything else."""
    m = _TIME.fullmatch(time) if isinstance(time, str) else None
    if m is None:
        return None
    if m.group(2) is not None:
        days, hours, minutes, seconds = (int(g or 0) for g in m.group(1, 2, 3, 4))
    else:
        days, hours, minutes, seconds = int(m.group(5)), int(m.group(6)), int(m.group(7) or 0), 0
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _hms(seconds):
    """HH:MM:SS of `seconds` (PBS's walltime takes no days)."""
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


# memory per node: a count and a unit K, M, G or T (a B after it allowed), no unit meaning
# megabytes (Slurm's default); 0 is Slurm's "all of the node's memory"
_MEM = re.compile(r"([0-9]+)(?:([KMGTkmgt])[Bb]?)?")
MEM_FORMS = "a size like 64G, 500M or 1T (no unit: megabytes), or 0 for all of a node's memory (Slurm)"


def mem_directive(scheduler, mem):
    """`mem` as the scheduler writes it: Slurm's --mem value (64G) or PBS's mem (64gb).
    ValueError for anything not in MEM_FORMS, and for 0 under PBS (which has no such form)."""
    m = _MEM.fullmatch(mem) if isinstance(mem, str) else None
    if m is None:
        raise ValueError(f"mem must be {MEM_FORMS}, got {mem!r}")
    size, unit = int(m.group(1)), (m.group(2) or "").upper()
    if scheduler == "slurm":
        return f"{size}{unit}"
    if size == 0:
        raise ValueError("mem 0 (all of a node's memory) is Slurm's: PBS needs a size, e.g. 64G")
    return f"{size}{(unit or 'M').lower()}b"


def _q(args):
    return " ".join(shlex.quote(a) for a in args)


def _check_path(name, v):
    """ValueError unless v is a plain word usable as a path or command (no leading -)."""
    if not isinstance(v, str) or not _PLAIN.fullmatch(v) or v.startswith("-"):
        raise ValueError(f"{name} {v!r} is not a plain path (letters, digits and _@%+=:,./-, "
                         "not starting with -): nothing that would need quoting in the script")


def _check_strings(time, partition, account, job_name, launcher, train_args):
    """ValueError naming the setting for any string that would need quoting in the script."""
    if wall_seconds(time) is None:
        raise ValueError(f"time must be {TIME_FORMS}, got {time!r}")
    if not isinstance(job_name, str) or not _JOB_NAME.fullmatch(job_name):
        raise ValueError(f"job name must be letters, digits, - and _, got {job_name!r}")
    for name, v in (("partition", partition), ("account", account)):
        if v is not None and (not isinstance(v, str) or not _PLAIN.fullmatch(v)):
            raise ValueError(f"{name} {v!r} is not a plain name (letters, digits and _@%+=:,./-)")
    if launcher not in (None, "srun", "mpirun"):
        raise ValueError(f"launcher must be srun or mpirun, got {launcher!r}")
    for a in train_args:
        # the default of H2ODL_TRAIN_ARGS is split on blanks by `read -a`: quotes would not survive
        if not isinstance(a, str) or not _PLAIN.fullmatch(a):
            raise ValueError(f"train argument {a!r} would need quoting in the script (blanks, quotes or "
                             "shell characters): put it in a --config file instead")


def render(scheduler, nodes=1, ranks_per_node=1, threads=1, time="01:00:00", partition=None,
           account=None, job_name="h2odl", train_args=(), launcher=None, script_name="train.pbs",
           search=False, ranks_per_model=1, mem=None, activate=None, python=None,
           max_requeues=MAX_REQUEUES):
    """The job script text for `scheduler` ('slurm' or 'pbs').  script_name (PBS): the file
    the requeue submits again, an absolute path or one relative to the submission directory.
    search: the job runs `grid` (train_args then start with --config GRID_FILE) with
    `ranks_per_model`, its search directory where a train job keeps its checkpoints.
    mem: memory per node (MEM_FORMS; None: the scheduler's default).  activate: a virtualenv
    directory (its bin/activate is sourced) or a file to source, before anything starts; the
    script stops with one line if it is not there.  python: the interpreter (default python3).
    max_requeues: the most requeues the job may have; one more and it stops, exiting
    REQUEUE_LIMIT_EXIT."""
    if scheduler not in ("slurm", "pbs"):
        raise ValueError(f"scheduler must be slurm or pbs, got {scheduler!r}")
    for name, v in (("nodes", nodes), ("ranks_per_node", ranks_per_node), ("threads", threads),
                    ("ranks_per_model", ranks_per_model)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not isinstance(max_requeues, int) or isinstance(max_requeues, bool) or max_requeues < 0:
        raise ValueError(f"max_requeues must be a count (0, 1, 2, ...), got {max_requeues!r}")
    _check_strings(time, partition, account, job_name, launcher, train_args)
    for name, v in (("activate", activate), ("python", python)):
        if v is not None:
            _check_path(name, v)
    mem = None if mem is None else mem_directive(scheduler, mem)
    if search and (nodes * ranks_per_node) % ranks_per_model:
        raise ValueError(f"ranks_per_model {ranks_per_model} must divide the job's ranks, "
                         f"{nodes} x {ranks_per_node} = {nodes * ranks_per_node}")
    seconds = wall_seconds(time)
    if scheduler == "slurm" and seconds <= SIGNAL_LEAD_S + 60:
        # Slurm may send --signal up to 60 s early: the job would be signalled as it starts,
        # before the ranks can checkpoint (a rank still starting up dies of the signal)
        raise ValueError(f"time must be longer than {SIGNAL_LEAD_S + 60} s for Slurm (the checkpoint "
                         f"signal comes {SIGNAL_LEAD_S} s before the end), got {time}")
    if scheduler == "slurm":
        head = ["#!/bin/bash", f"#SBATCH --job-name={job_name}", f"#SBATCH --nodes={nodes}",
                f"#SBATCH --ntasks-per-node={ranks_per_node}", f"#SBATCH --cpus-per-task={threads}",
                f"#SBATCH --time={time}", f"#SBATCH --signal=B:USR1@{SIGNAL_LEAD_S}",
                "#SBATCH --requeue", "#SBATCH --open-mode=append", f"#SBATCH --output={job_name}-%j.out"]
        if mem is not None:
            head.append(f"#SBATCH --mem={mem}")
        if partition:
            head.append(f"#SBATCH --partition={partition}")
        if account:
            head.append(f"#SBATCH --account={account}")
        head.append('JOB_ID=${SLURM_JOB_ID:-local}')
        subs = {"__LAUNCHER__": launcher or "srun",
                "__NTASKS_EXPR__": "${SLURM_NTASKS:-%d}" % (nodes * ranks_per_node),
                "__THREADS_EXPR__": "${SLURM_CPUS_PER_TASK:-%d}" % threads,
                "__REQUEUE_CMD__": 'scontrol requeue "$JOB_ID"', "__REQUEUES_VAR__": "SLURM_RESTART_COUNT"}
    else:
        ncpus = ranks_per_node * threads
        select = f"{nodes}:ncpus={ncpus}:mpiprocs={ranks_per_node}:ompthreads={threads}"
        head = ["#!/bin/bash", f"#PBS -N {job_name}",
                f"#PBS -l select={select}" + (f":mem={mem}" if mem is not None else ""),
                f"#PBS -l walltime={_hms(seconds)}", "#PBS -r y", "#PBS -j oe"]
        if partition:
            head.append(f"#PBS -q {partition}")
        if account:
            head.append(f"#PBS -A {account}")
        head += ["# PBS has no early signal: it sends SIGTERM at the wall time and SIGKILL the",
                 "# queue's kill_delay seconds later (often 10).  The ranks stop within about 2 s",
                 "# and rank 0 then writes the checkpoint: check that kill_delay covers both.",
                 'JOB_ID=${PBS_JOBID:-local}', 'cd "${PBS_O_WORKDIR:-$PWD}"',
                 ("JOB_SCRIPT=" + ("" if str(script_name).startswith("/") else '"${PBS_O_WORKDIR:-$PWD}"/')
                  + f"{shlex.quote(str(script_name))}  # the file the requeue submits again")]
        subs = {"__LAUNCHER__": launcher or "mpirun",
                "__NTASKS_EXPR__": "$( [ -n \"${PBS_NODEFILE:-}\" ] && wc -l < \"$PBS_NODEFILE\" || echo %d )"
                                   % (nodes * ranks_per_node),
                "__THREADS_EXPR__": "${OMP_NUM_THREADS:-%d}" % threads,  # PBS Pro sets it from ompthreads
                "__REQUEUE_CMD__": _PBS_REQUEUE, "__REQUEUES_VAR__": "H2ODL_REQUEUES"}
    subs["__LAUNCH_LINES__"] = _SEARCH_LAUNCH % ranks_per_model if search else _TRAIN_LAUNCH
    subs.update({"__JOBNAME__": job_name, "__REQUEUE__": str(REQUEUE_EXIT), "__ACTIVATE__": activate or "",
                 "__PYTHON__": python or "python3", "__MAX_REQUEUES__": str(max_requeues),
                 "__LIMIT_EXIT__": str(REQUEUE_LIMIT_EXIT),
                 "__TRAIN_ARGS__": _q(train_args).replace("\\", "\\\\")})
    # one pass: a value (a path, the arguments) is never searched for another placeholder
    body = re.sub("|".join(map(re.escape, subs)), lambda m: subs[m.group(0)], _BODY)
    return "\n".join(head) + "\n" + body


# ---- the `jobscript` subcommand --------------------------------------------------------

# the options, for error messages: render() keyword -> command-line option
_OPTION = {"ranks_per_model": "--ranks_per_model", "scheduler": "--scheduler", "nodes": "--nodes",
           "ranks_per_node": "--ranks_per_node", "threads": "--threads", "time": "--time",
           "job name": "--job_name", "partition": "--partition", "account": "--account",
           "launcher": "--launcher", "mem": "--mem", "activate": "--activate", "python": "--python",
           "max_requeues": "--max_requeues", "train argument": ""}  # the message names the argument
# set by the script itself from CKPT_DIR (H2ODL_CHECKPOINT_DIR)
_SET_BY_SCRIPT = ("resume", "checkpoint_dir")


def add_arguments(parser):
    """Add the jobscript options to an argparse parser.  The train arguments are what follows
    `--` on the command line (cli.main puts them in `train_args`)."""
    parser.usage = ("python -m h2odl_mpi jobscript --scheduler slurm|pbs [options] "
                    "[-- <train arguments>]")
    parser.description = ("Print a Slurm or PBS job script that runs `train` on the allocation, "
                          "checkpoints before the wall time and requeues itself until done.")
    parser.epilog = ("Everything after `--` is baked into the script as its default train arguments "
                     "(e.g. `-- --config run.toml`); arguments after the script's name at submission "
                     "(sbatch SCRIPT ARGS) or H2ODL_TRAIN_ARGS replace them.")
    def option(name, **kw):  # H2O's underscore form first, then the hyphenated one
        names = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        parser.add_argument(*names, dest=name, **kw)

    option("scheduler", metavar="slurm|pbs", help="the batch system (required)")
    option("nodes", default="1", metavar="N", help="nodes (default 1)")
    option("ranks_per_node", default="1", metavar="R", help="MPI ranks per node (default 1)")
    option("threads", default="1", metavar="T", help="kernel threads per rank (OMP_NUM_THREADS; default 1)")
    option("time", default="01:00:00", metavar="HH:MM:SS", help=f"wall time, {TIME_FORMS} (default 01:00:00)")
    option("mem", default=None, metavar="SIZE",
           help="memory per node: 64G, 500M, 1T (no unit: megabytes), or 0 for all of it (Slurm only); "
                "Slurm's --mem, PBS's mem in the select statement (default: the scheduler's)")
    option("partition", default=None, metavar="P", help="partition (Slurm) or queue (PBS)")
    option("queue", default=None, metavar="Q", help="the same as --partition")
    option("account", default=None, metavar="A", help="account / project to charge")
    option("job_name", default="h2odl", metavar="NAME",
           help="job name (letters, digits, - and _; default h2odl); also names "
                "the checkpoint directory ./checkpoints/NAME-<digest of the arguments>")
    option("activate", default=None, metavar="PATH",
           help="the Python environment: a virtualenv directory (its bin/activate is sourced) or a "
                "file to source, absolute or relative to the submission directory; the job stops "
                "with one line before it starts anything if it is not there (H2ODL_ACTIVATE at "
                "submission overrides it; default: none, the site set-up lines)")
    option("python", default=None, metavar="PYTHON",
           help="the Python interpreter the ranks run, a command or a path (default python3; "
                "H2ODL_PYTHON at submission overrides it)")
    option("launcher", default=None, metavar="srun|mpirun",
           help="how ranks start (default: srun for Slurm, mpirun for PBS; H2ODL_LAUNCHER overrides it)")
    option("max_requeues", default=str(MAX_REQUEUES), metavar="N",
           help=f"requeue the job at most N times (default {MAX_REQUEUES}); past that it stops with one "
                f"line and status {REQUEUE_LIMIT_EXIT}, and submitting it again continues from its "
                "checkpoint (H2ODL_MAX_REQUEUES at submission overrides it)")
    option("search", action="store_true",
           help="a search job: runs `grid` with the arguments after `--` (which must give "
                "--config GRID_FILE), its search directory ./checkpoints/NAME-<digest of the arguments>")
    option("ranks_per_model", default="1", metavar="R",
           help="with --search: ranks that train each model together (default 1)")
    parser.add_argument("-o", "--output", default=None, metavar="FILE",
                        help="write the script to FILE (executable) instead of printing it; a PBS "
                             "requeue submits FILE again")
    parser.set_defaults(train_args=[])
    return parser


def _positive(option, text, least=1):
    try:
        v = int(str(text).strip())
    except ValueError:
        v = least - 1
    if v < least:
        what = "a positive integer" if least == 1 else "a count (0, 1, 2, ...)"
        raise UserError(f"{option}: expected {what}, got {text!r}")
    return v


def _check_train_args(args, search=False):
    """Flags among the train arguments must be train flags (a typo would fail only on the
    cluster, after the queue wait); --resume and --checkpoint_dir are the script's, and a
    search job's --search_dir and --ranks_per_model too; a search job needs --config."""
    from h2odl_mpi import params as P
    known = P.known_names() | {"config"}
    if search and not any(a == "--config" or a.startswith("--config=") for a in args):
        raise UserError("--search: give the grid file after `--`: -- --config grid.toml")
    for i, a in enumerate(args):
        if not a.startswith("--") or a == "--":
            continue
        name = a[2:].split("=", 1)[0].replace("-", "_")
        if name in P.H2O_ONLY:  # an H2O parameter this version lacks: refused now if it would be then
            value = a.split("=", 1)[1] if "=" in a else (args[i + 1] if i + 1 < len(args) else None)
            P.check_implemented(name, None if value is None else P.parse_value(name, value), "--")
        if search and name in ("search_dir", "ranks_per_model"):
            raise UserError(f"train argument {a}: a search job sets --search_dir (to $H2ODL_CHECKPOINT_DIR, "
                            "default ./checkpoints/<job name>-<digest of the arguments>) and --ranks_per_model itself")
        if name in _SET_BY_SCRIPT:
            raise UserError(f"train argument {a}: the script sets --resume and --checkpoint_dir "
                            "itself (to $H2ODL_CHECKPOINT_DIR, default ./checkpoints/<job name>-<digest of the arguments>)")
        if name not in known:
            near = P.closest(name, extra=("config",))
            hint = f" (did you mean --{near}?)" if near else ""
            raise UserError(f"train argument {a}: not a train option{hint}")


def _write_atomically(path, text):
    """Write text to path whole (a temporary file renamed over it), executable."""
    if os.path.exists(path) and not os.path.isfile(path):  # a directory or device: never renamed over
        raise UserError(f"-o {path}: is not a regular file")
    umask = os.umask(0)
    os.umask(umask)
    try:
        with replacing(path, mode=0o777 & ~umask | 0o100) as tmp, open(tmp, "w") as f:
            f.write(text)
    except OSError as e:
        raise UserError(f"-o {path}: cannot write: {e.strerror or e}") from None


def run(args):
    """The jobscript subcommand: check the settings, print the script or write args.output.
    Returns the exit status (0); bad settings raise UserError naming the option."""
    scheduler = (args.scheduler or "").strip().lower()
    if scheduler not in ("slurm", "pbs"):
        got = f", got {args.scheduler!r}" if args.scheduler else ""
        raise UserError(f"--scheduler: expected slurm or pbs{got}")
    if args.partition and args.queue and args.partition != args.queue:
        raise UserError(f"--partition {args.partition} and --queue {args.queue}: give one (they are "
                        "the same setting)")
    if args.launcher not in (None, "srun", "mpirun"):
        raise UserError(f"--launcher: expected srun or mpirun, got {args.launcher!r}")
    if wall_seconds(args.time) is None:
        raise UserError(f"--time: expected {TIME_FORMS} (e.g. 04:00:00 or 1-12:00:00), got {args.time!r}")
    for option, v in (("--account", args.account), ("--partition", args.partition or args.queue)):
        if v is not None and not _PLAIN.fullmatch(v):
            raise UserError(f"{option}: {v!r} is not a plain name (letters, digits and _@%+=:,./-)")
    activate = None if args.activate is None else os.path.expanduser(args.activate)  # --activate=~/venv
    _check_train_args(args.train_args, search=args.search)
    kw = dict(search=bool(args.search), ranks_per_model=_positive("--ranks_per_model", args.ranks_per_model),
              scheduler=scheduler, nodes=_positive("--nodes", args.nodes),
              ranks_per_node=_positive("--ranks_per_node", args.ranks_per_node),
              threads=_positive("--threads", args.threads), time=args.time,
              partition=args.partition or args.queue, account=args.account, job_name=args.job_name,
              train_args=list(args.train_args), launcher=args.launcher, mem=args.mem, activate=activate,
              python=args.python, max_requeues=_positive("--max_requeues", args.max_requeues, least=0))
    if args.output and scheduler == "pbs":
        kw["script_name"] = os.path.abspath(args.output)  # what the requeue submits again
    try:
        text = render(**kw)
    except ValueError as e:
        message = str(e)
        option = next((o for k, o in _OPTION.items() if message.startswith(k)), "jobscript")
        raise UserError(f"{option}: {message}" if option else message) from None
    if args.output:
        _write_atomically(args.output, text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
