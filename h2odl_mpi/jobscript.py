"""Batch job scripts for Slurm and PBS that submit, survive the wall time and resume.

`render(...)` writes a ready script: scheduler directives (nodes, ranks per node, threads
per rank, wall time, partition/queue, account), a commented place for the site's MPI and
Python modules, OMP_NUM_THREADS from the allocation with CPU binding, the launch line (srun
or mpirun) running `python -m h2odl_mpi train --resume DIR --checkpoint_dir DIR ...`, a
signal before the wall time that the trainer answers by checkpointing and exiting with
REQUEUE_EXIT, and the requeue (Slurm: scontrol requeue; PBS: qsub of the same script) when
it does.  Every setting can also be overridden at submission through H2ODL_* variables.
The scripts in jobscripts/ are this module's output.
"""
import shlex

REQUEUE_EXIT = 85  # the trainer's "checkpoint written, requeue me" exit status
SIGNAL_LEAD_S = 300

_BODY = r'''
# ---- site set-up: load the site's MPI and Python here (mpi4py built against that MPI;
# see README "Running on a cluster"), e.g.:
#   module load gcc openmpi python
#   source "$HOME/h2odl_mpi/.venv/bin/activate"
set -uo pipefail
PYTHON=${H2ODL_PYTHON:-python3}
LAUNCHER=${H2ODL_LAUNCHER:-__LAUNCHER__}          # srun | mpirun
CKPT_DIR=${H2ODL_CHECKPOINT_DIR:-$PWD/checkpoints/__JOBNAME__}
REQUEUE_EXIT=__REQUEUE__
mkdir -p "$CKPT_DIR"

# ---- ranks x threads from the allocation, cores bound per rank
NTASKS=${H2ODL_NTASKS:-__NTASKS_EXPR__}
export OMP_NUM_THREADS=${H2ODL_THREADS:-__THREADS_EXPR__}
export OMP_PROC_BIND=${OMP_PROC_BIND:-close}
export OMP_PLACES=${OMP_PLACES:-cores}

# ---- training arguments: the script's own arguments, else H2ODL_TRAIN_ARGS
if [ "$#" -gt 0 ]; then TRAIN_ARGS=("$@"); else read -r -a TRAIN_ARGS <<< "${H2ODL_TRAIN_ARGS:-__TRAIN_ARGS__}"; fi

case "$LAUNCHER" in
  srun)   LAUNCH=(srun --ntasks="$NTASKS" --cpus-per-task="$OMP_NUM_THREADS" --cpu-bind=cores) ;;
  mpirun) LAUNCH=(mpirun -n "$NTASKS") ;;
  *)      echo "unknown launcher $LAUNCHER" >&2; exit 2 ;;
esac

echo "h2odl_mpi job $JOB_ID: $NTASKS ranks x $OMP_NUM_THREADS threads, checkpoints in $CKPT_DIR"
# --resume continues from the newest valid checkpoint in CKPT_DIR (fresh if there is none)
"${LAUNCH[@]}" "$PYTHON" -m h2odl_mpi train --resume "$CKPT_DIR" --checkpoint_dir "$CKPT_DIR" \
    "${TRAIN_ARGS[@]}" &
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
if [ "$rc" -eq "$REQUEUE_EXIT" ]; then
  echo "checkpoint written; requeueing job $JOB_ID"
  __REQUEUE_CMD__
fi
exit "$rc"
'''


def _q(args):
    return " ".join(shlex.quote(a) for a in args)


def render(scheduler, nodes=1, ranks_per_node=1, threads=1, time="01:00:00", partition=None,
           account=None, job_name="h2odl", train_args=(), launcher=None, script_name="train.pbs"):
    """The job script text for `scheduler` ('slurm' or 'pbs').  script_name (PBS): the file
    the script is saved as in the submission directory, which the requeue submits again."""
    if scheduler not in ("slurm", "pbs"):
        raise ValueError(f"scheduler must be slurm or pbs, got {scheduler!r}")
    for name, v in (("nodes", nodes), ("ranks_per_node", ranks_per_node), ("threads", threads)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    parts = time.split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or int(parts[1]) > 59 or int(parts[2]) > 59:
        raise ValueError(f"time must be HH:MM:SS, got {time!r}")
    if not job_name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"job name must be letters, digits, - and _, got {job_name!r}")
    if scheduler == "slurm":
        head = ["#!/bin/bash", f"#SBATCH --job-name={job_name}", f"#SBATCH --nodes={nodes}",
                f"#SBATCH --ntasks-per-node={ranks_per_node}", f"#SBATCH --cpus-per-task={threads}",
                f"#SBATCH --time={time}", f"#SBATCH --signal=B:USR1@{SIGNAL_LEAD_S}",
                "#SBATCH --requeue", "#SBATCH --open-mode=append", f"#SBATCH --output={job_name}-%j.out"]
        if partition:
            head.append(f"#SBATCH --partition={partition}")
        if account:
            head.append(f"#SBATCH --account={account}")
        head.append('JOB_ID=${SLURM_JOB_ID:-local}')
        subs = {"__LAUNCHER__": launcher or "srun",
                "__NTASKS_EXPR__": "${SLURM_NTASKS:-%d}" % (nodes * ranks_per_node),
                "__THREADS_EXPR__": "${SLURM_CPUS_PER_TASK:-%d}" % threads,
                "__REQUEUE_CMD__": 'scontrol requeue "$JOB_ID"'}
    else:
        ncpus = ranks_per_node * threads
        head = ["#!/bin/bash", f"#PBS -N {job_name}",
                f"#PBS -l select={nodes}:ncpus={ncpus}:mpiprocs={ranks_per_node}:ompthreads={threads}",
                f"#PBS -l walltime={time}", "#PBS -r y", "#PBS -j oe",
                # PBS sends SIGTERM at the wall time and SIGKILL kill_delay seconds later:
                # ask the site for kill_delay >= the time a checkpoint takes
                ]
        if partition:
            head.append(f"#PBS -q {partition}")
        if account:
            head.append(f"#PBS -A {account}")
        head += ['JOB_ID=${PBS_JOBID:-local}', 'cd "${PBS_O_WORKDIR:-$PWD}"']
        subs = {"__LAUNCHER__": launcher or "mpirun",
                "__NTASKS_EXPR__": "$( [ -n \"${PBS_NODEFILE:-}\" ] && wc -l < \"$PBS_NODEFILE\" || echo %d )"
                                   % (nodes * ranks_per_node),
                "__THREADS_EXPR__": "${OMP_NUM_THREADS:-%d}" % threads,  # PBS Pro sets it from ompthreads
                "__REQUEUE_CMD__": 'qsub "${H2ODL_JOB_SCRIPT:-${PBS_O_WORKDIR:-$PWD}/%s}"' % script_name}
    subs.update({"__JOBNAME__": job_name, "__REQUEUE__": str(REQUEUE_EXIT),
                 "__TRAIN_ARGS__": _q(train_args).replace("\\", "\\\\")})
    body = _BODY
    for k, v in subs.items():
        body = body.replace(k, v)
    return "\n".join(head) + "\n" + body
