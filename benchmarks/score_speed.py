"""Scoring speed: rows/s of the kernel's forward pass over the 10,000 MNIST test rows with an
inputs-200-200-10 Rectifier network, next to the same forward pass as numpy float32 matrix
products (the peer, measured in the same run).

    .venv/bin/python benchmarks/score_speed.py                  # threads 1 and 2, 7 runs each
    .venv/bin/python benchmarks/score_speed.py --reps 9 --threads 1 2
    .venv/bin/python benchmarks/score_speed.py --against ../old   # before/after: another checkout

The training file fits the preprocessing (response C785, H2O defaults: standardise, drop
constant columns); the test file is read into the column store and scored (a) straight from
the store (FRAME rows, as scoring during training and `predict` read it) and (b) from the same
rows expanded once into a dense float32 matrix.  Each run scores every row once
(Network.predict, what="output"); the table gives the median and the slowest run per mode
and thread count, in rows/s.  --against DIR measures the same in a checkout DIR of another
commit (its own built kernel) in the same invocation, a run of each in turn (the machine's
load falls on both alike), and gives the ratios.  Results: benchmarks/results/score_speed.csv.
"""
import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MNIST = ROOT / "h2odl_mpi" / "datasets" / "mnist"


def numpy_forward(net, model, x):
    """The scoring network as float32 numpy matrix products (Rectifier hidden layers,
    softmax output): the peer."""
    a = x
    for l in range(net.n_layers):
        a = a @ net.view(model, "weights", l).T + net.view(model, "biases", l)
        if l < net.n_layers - 1:
            np.maximum(a, 0, out=a)
    a = np.exp(a - a.max(axis=1, keepdims=True))
    return a / a.sum(axis=1, keepdims=True)


try:
    from threadpoolctl import threadpool_limits

    def blas_threads(n):
        return threadpool_limits(limits=n, user_api="blas")
    BLAS_NOTE = "its BLAS limited to the row's thread count (threadpoolctl)"
except ImportError:   # the peer then runs on its BLAS's own thread count
    import contextlib

    def blas_threads(n):
        return contextlib.nullcontext()
    BLAS_NOTE = "threadpoolctl missing: its BLAS's own thread count in every row"


def timed(fn, reps):
    """[(wall seconds, CPU seconds of the process: every thread's)] of reps calls."""
    fn()   # warm-up
    times = []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    return times


def setup(root, hidden):
    """(run, about): run(threads_list, reps) -> [(mode, threads, times)], scoring with the
    package under root."""
    sys.path.insert(0, str(root))
    from h2odl_mpi._kernel import ffi, lib
    from h2odl_mpi.data.frame import Frame
    from h2odl_mpi.data.preprocess import Preprocess
    from h2odl_mpi.kernel import NetConfig, Network, Rows
    train = Frame.read(str(MNIST / "train.csv.gz"))
    pre = Preprocess.fit(train, dict(response="C785"))
    test = Frame.read(str(MNIST / "test.csv.gz"))
    store = pre.rows(test)
    dense = Rows.dense(pre.expand(test), y=store.y)
    net = Network(NetConfig(units=[pre.n_inputs, *hidden, pre.n_classes], activation="Rectifier"))
    model = net.new_model(seed=7)
    agree = np.abs(net.predict(model, dense, threads=1) - numpy_forward(net, model, dense.x)).max()

    def run(threads_list, reps):
        results = []
        for threads in threads_list:
            for mode, rows in (("frame", store), ("dense", dense)):
                times = timed(lambda: net.predict(model, rows, threads=threads), reps)
                results.append((mode, threads, times))
            with blas_threads(threads):
                times = timed(lambda: numpy_forward(net, model, dense.x), reps)
            results.append(("numpy", threads, times))
        return results

    about = dict(rows=int(store.n_rows), layers="-".join(map(str, net.units)),
                 isa=ffi.string(lib.h2o_isa()).decode(), max_abs_vs_numpy=float(agree))
    return run, about


def measure(args, hidden):
    """({(mode, threads): times} of this checkout, the same of --against (or {}), about):
    with --against, one run of each in turn, the other checkout's first."""
    run, about = setup(args.root, hidden)
    mine, theirs = {}, {}
    cmd = [sys.executable, __file__, "--root", str(args.against), "--json", "--reps", "1",
           "--hidden", args.hidden, "--threads", *map(str, args.threads)]
    for rep in range(args.reps if args.against else 1):
        if args.against:
            got = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            for m, t, times in got["results"]:
                theirs.setdefault((m, t), []).extend(times)
        for m, t, times in run(args.threads, 1 if args.against else args.reps):
            mine.setdefault((m, t), []).extend(times)
    return mine, theirs, about


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--hidden", default="200,200")
    ap.add_argument("--against", help="a checkout of another commit, its kernel built: measured too")
    ap.add_argument("--root", default=str(ROOT), help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(RESULTS / "score_speed.csv"))
    args = ap.parse_args(argv)
    hidden = [int(h) for h in args.hidden.split(",")]
    if args.json:   # the --against child: one measurement on stdout
        run, about = setup(args.root, hidden)
        print(json.dumps(dict(results=run(args.threads, args.reps), about=about)))
        return
    mine, before, about = measure(args, hidden)
    n = about["rows"]
    print(f"scoring {n:,} MNIST test rows, network {about['layers']} Rectifier, kernel variant "
          f"{about['isa']}, {args.reps} runs each; max |kernel - numpy| = {about['max_abs_vs_numpy']:.2e}")
    print(f"(numpy: {BLAS_NOTE}; rows/s of wall time: median and slowest run; cpu: rows per "
          f"CPU-second of the process, all its threads, median: the share of a loaded machine's "
          f"cores a run got does not enter it)")
    head = f"{'mode':<7} {'threads':>7} {'median':>10} {'slowest':>10} {'cpu':>10}"
    if before:
        head += f" {'against: median':>16} {'slowest':>10} {'cpu':>10} {'x median':>9} {'x cpu':>7}"
    print(head)
    rows_out = []
    for (mode, threads), times in mine.items():
        wall = [t for t, _ in times]
        med, worst = n / statistics.median(wall), n / max(wall)
        cpu = n / statistics.median([c for _, c in times])
        line = f"{mode:<7} {threads:>7} {med:>10,.0f} {worst:>10,.0f} {cpu:>10,.0f}"
        row = dict(mode=mode, threads=threads, isa=about["isa"], layers=about["layers"], rows=n,
                   reps=args.reps, median_rows_per_s=round(med), slowest_rows_per_s=round(worst),
                   cpu_rows_per_s=round(cpu), all_times=";".join(f"{t:.4f}" for t in wall))
        old = before.get((mode, threads))
        if old:
            owall = [t for t, _ in old]
            omed, oworst = n / statistics.median(owall), n / max(owall)
            ocpu = n / statistics.median([c for _, c in old])
            line += (f" {omed:>16,.0f} {oworst:>10,.0f} {ocpu:>10,.0f} {med / omed:>9.2f}"
                     f" {cpu / ocpu:>7.2f}")
            row.update(against_median_rows_per_s=round(omed), against_slowest_rows_per_s=round(oworst),
                       against_cpu_rows_per_s=round(ocpu))
        print(line)
        rows_out.append(row)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for r in rows_out for k in r))
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows_out)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
