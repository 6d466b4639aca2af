"""How many kernel threads a rank runs: --threads, else the environment's (OMP_NUM_THREADS,
the batch system's cpus per task), else this process's cores shared among the node's ranks;
and how they share the model (--thread_scheme: hogwild or replicas)."""
import os

from h2odl_mpi.collectives import node_size
from h2odl_mpi.kernel import available_cores
from h2odl_mpi.params import check_threads


def threads_per_rank(params, comm):
    """--threads, else OMP_NUM_THREADS, else the batch system's cpus-per-task, else the
    cores this process may use divided among the ranks on this node."""
    if params.get("threads"):
        return int(params["threads"])
    for var in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK", "PBS_NUM_PPN", "NCPUS"):
        v = os.environ.get(var, "")
        if v.isdigit() and int(v) > 0:
            return check_threads(var, int(v))  # within the limit of --threads, naming the variable
    return max(1, available_cores() // node_size(comm))


def rank_threads(threads, comm=None):
    """The kernel threads of this rank: `threads`, else (None or 0) OMP_NUM_THREADS, the
    batch system's, or the node's cores divided among its ranks (threads_per_rank;
    collective over `comm`)."""
    return int(threads) if threads else threads_per_rank({}, comm)


# what --thread_scheme auto runs on 2 or more threads (docs/training.md, "Threads in a
# rank": measured with benchmarks/thread_scaling.py); one thread runs hogwild (the same bits,
# no replica's memory)
AUTO_SCHEME = "replicas"


def thread_scheme(params, threads):
    """The scheme a rank's `threads` threads run: "hogwild" (every thread updates the one
    model, as H2O) or "replicas" (each its own copy, averaged after every kernel call); auto
    is AUTO_SCHEME on 2 or more threads, hogwild on one.  (validate() makes reproducible runs
    hogwild on one thread.)"""
    scheme = params.get("thread_scheme") or "auto"
    if scheme != "auto":
        return scheme
    return AUTO_SCHEME if threads > 1 else "hogwild"
