"""The time of one combine for each combine_precision: what the codec costs against the
bytes it saves (not a timed test).

    .venv/bin/mpirun -n 2 .venv/bin/python benchmarks/combine_cost.py [--weights 194210] [--reps 21]

Under mpirun: every rank holds a buffer of a model's weights and biases (--weights, default
the MNIST pair's 758-200-200-10 network) and ADADELTA's two accumulators for each, and
combines it (ModelAverage.combine) --reps times for each precision, after a barrier each
time, as the OSU benchmarks time a collective; rank 0 prints the median and the slowest
(the slowest rank's time each repetition), and the bytes a rank sends.  float32 is a
Reduce_scatter and an Allgatherv; bfloat16 and bfloat16_log8 code and decode before and
after their Alltoallv and Allgatherv (h2odl_mpi/collectives.py: numpy, and the log8 code in C,
csrc/codec.c).
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import rank_projection  # noqa: E402
from h2odl_mpi.training.combine import ModelAverage  # noqa: E402

PRECISIONS = rank_projection.PRECISIONS


def main(argv=None):
    from mpi4py import MPI
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", type=int, default=194_210, help="weights and biases of the model")
    ap.add_argument("--reps", type=int, default=21)
    args = ap.parse_args(argv)
    comm = MPI.COMM_WORLD
    rng = np.random.default_rng(comm.rank)
    n = args.weights
    buf = np.concatenate([rng.normal(0, 0.05, n), rng.uniform(0, 1e-3, 2 * n)]).astype(np.float32)
    if comm.rank == 0:
        print(f"{comm.size} ranks, {n:,} weights and biases (a buffer of {3 * n:,} float32 values)")
    for precision in PRECISIONS:
        c = ModelAverage()
        c.precision = precision
        model = buf.copy()
        c.start(comm, model, n)
        times = []
        for _ in range(args.reps + 1):   # the first is a warm-up
            model[:] = buf
            comm.Barrier()
            t = time.perf_counter()
            c.combine(comm, model, 1, comm.size)
            slowest = np.array([time.perf_counter() - t])
            comm.Allreduce(MPI.IN_PLACE, slowest, op=MPI.MAX)   # (numbers as a buffer: nothing pickled)
            times.append(float(slowest[0]))
        if comm.rank == 0:
            times = times[1:]
            print(f"{precision:14s} median {1e3 * statistics.median(times):7.2f} ms   slowest "
                  f"{1e3 * max(times):7.2f} ms   {rank_projection.bytes_per_combine(3 * n, comm.size, precision):>12,} bytes a rank sends")


if __name__ == "__main__":
    main()
