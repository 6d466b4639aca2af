"""Hogwild! threads on one model, one row at a time against mini-batches: training samples/s
of the kernel for each thread count and mini_batch_size, and the test error each reaches
after the same epochs, on the bundled MNIST pair (758 non-constant inputs, standardised).

Thread counts above the cores of the machine are skipped.  Each configuration trains
`--epochs` epochs from the same initial model (shuffled rows, the kernel's own threads);
samples/s counts training calls only; the test error is the model's after them.  Speed-ups
are against 1 thread with the same mini_batch_size, in the same run.

    .venv/bin/python benchmarks/thread_scaling.py [--threads 1,2,4,8,16] [--batches 1,32]
        [--nets small,wide] [--epochs 1]
Results: benchmarks/results/thread_scaling.json (and .md).

--schemes hogwild,replicas compares the thread schemes (--thread_scheme) instead: every
scheme at every thread count, `--runs` times, interleaved (run 1 of each, then run 2, ...),
each run `--epochs` epochs through the trainer's own block loop (hogwild.Blocks: replicas
are averaged after every kernel call, as in a run); per scheme and thread count the median
and slowest samples/s, the ratio of the slowest to one thread's slowest (same scheme), the
median test error, and the load average before and after:

    .venv/bin/python benchmarks/thread_scaling.py --schemes hogwild,replicas --threads 1,2 --runs 7
Results: benchmarks/results/thread_schemes.json (and .md).
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.kernel_throughput import load_mnist  # noqa: E402
from benchmarks.search import cpu_name  # noqa: E402
from h2odl_mpi._kernel import ffi, lib  # noqa: E402
from h2odl_mpi.kernel import NetConfig, Network, Rows  # noqa: E402
from h2odl_mpi.training.hogwild import Blocks  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
NETS = {"small": [200, 200], "wide": [1024, 1024]}


def run_one(data, hidden, threads, batch, epochs, seed=1):
    x, y, xt, yt = data
    net = Network(NetConfig(units=[x.shape[1]] + hidden + [10], mini_batch_size=batch))
    rows = Rows.dense(x, y)
    net.train(net.new_model(seed), rows, np.arange(256), threads=threads)  # warm up
    model = net.new_model(seed)
    rng = np.random.default_rng(seed)
    done, seconds = 0, 0.0
    for _ in range(int(np.ceil(epochs))):
        order = rng.permutation(len(x))[:int(min(1.0, epochs - done / len(x)) * len(x))]
        t0 = time.perf_counter()
        net.train(model, rows, order, samples_before=done, seed=seed + done, threads=threads)
        seconds += time.perf_counter() - t0
        done += len(order)
    err = float((net.predict(model, Rows.dense(xt, yt), threads=threads).argmax(1) != yt).mean())
    return {"threads": threads, "mini_batch_size": batch, "rows": done, "seconds": seconds,
            "samples_per_s": done / seconds, "test_error": err}


class _NoSignal:
    signum = 0


def run_scheme(data, hidden, threads, batch, epochs, scheme, seed=1):
    """`epochs` epochs (reshuffled each) through hogwild.Blocks with `scheme`, as a run trains."""
    x, y, xt, yt = data
    net = Network(NetConfig(units=[x.shape[1]] + hidden + [10], mini_batch_size=batch))
    rows = Rows.dense(x, y)
    Blocks(net, threads, _NoSignal(), scheme=scheme).train(net.new_model(seed), rows, np.arange(256), 0, seed)
    model, blocks = net.new_model(seed), Blocks(net, threads, _NoSignal(), scheme=scheme)
    rng = np.random.default_rng(seed)
    done, seconds, epoch = 0, 0.0, 0
    while done < epochs * len(x):
        order = rng.permutation(len(x))[:int(min(len(x), epochs * len(x) - done))]
        t0 = time.perf_counter()
        blocks.train(model, rows, order, done, seed + epoch)
        seconds += time.perf_counter() - t0
        done, epoch = done + len(order), epoch + 1
    err = float((net.predict(model, Rows.dense(xt, yt), threads=threads).argmax(1) != yt).mean())
    return {"scheme": scheme, "threads": threads, "mini_batch_size": batch, "rows": done, "seconds": seconds,
            "samples_per_s": done / seconds, "test_error": err}


def compare_schemes(args, data, threads, out):
    """Every scheme at every thread count, args.runs times, interleaved: the table's lines."""
    schemes, hidden, batch = args.schemes.split(","), NETS[args.nets.split(",")[0]], int(args.batches.split(",")[0])
    for k in range(args.runs):
        for scheme in schemes:
            for t in threads:
                r = dict(run_scheme(data, hidden, t, batch, args.epochs, scheme), run=k)
                out["runs"].append(r)
                print(f"run {k} {scheme} {t} thread(s): {r['samples_per_s']:,.0f}/s, test error "
                      f"{100 * r['test_error']:.2f}%", flush=True)
    lines = ["| scheme | threads | median samples/s | slowest | slowest vs 1 thread's slowest | median test error |",
             "|---|---|---|---|---|---|"]
    for scheme in schemes:
        one = None
        for t in threads:
            rs = [r for r in out["runs"] if r["scheme"] == scheme and r["threads"] == t]
            sps = [r["samples_per_s"] for r in rs]
            one = one or min(sps)
            row = {"scheme": scheme, "threads": t, "median": float(np.median(sps)), "slowest": min(sps),
                   "ratio_slowest": min(sps) / one, "median_test_error": float(np.median([r["test_error"] for r in rs]))}
            out.setdefault("summary", []).append(row)
            lines.append(f"| {scheme} | {t} | {row['median']:,.0f} | {row['slowest']:,.0f} | {row['ratio_slowest']:.2f}x | "
                         f"{100 * row['median_test_error']:.2f}% |")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default="1,2,4,8,16")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--nets", default="small")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--out", default=None, help="results' name (default thread_scaling, or thread_schemes)")
    ap.add_argument("--schemes", default=None, help="compare these thread schemes, e.g. hogwild,replicas")
    ap.add_argument("--runs", type=int, default=7, help="--schemes: runs of each scheme and thread count")
    args = ap.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    threads = [t for t in map(int, args.threads.split(",")) if t <= cores]
    data = load_mnist()
    out = {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu": cpu_name(), "cores": cores,
           "isa": ffi.string(lib.h2o_isa()).decode(), "epochs": args.epochs, "runs": [],
           "load_average_before": [round(v, 2) for v in os.getloadavg()]}
    if args.schemes:
        lines = compare_schemes(args, data, threads, out)
        out["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
        head = (f"{out['cpu']}, {cores} cores, kernel {out['isa']}, {args.epochs} epoch(s) a run, {args.runs} runs "
                f"interleaved, load average (1, 5, 15 min) {out['load_average_before']} before, "
                f"{out['load_average_after']} after")
        return _write(args.out or "thread_schemes", out, head, lines)
    lines = ["| network | B | threads | samples/s | vs 1 thread | test error |", "|---|---|---|---|---|---|"]
    for name in args.nets.split(","):
        for batch in map(int, args.batches.split(",")):
            base = None
            for t in threads:
                r = dict(run_one(data, NETS[name], t, batch, args.epochs), net=name)
                base = base or r["samples_per_s"]
                r["speedup"] = r["samples_per_s"] / base
                out["runs"].append(r)
                lines.append(f"| 758-{'-'.join(map(str, NETS[name]))}-10 | {batch} | {t} | {r['samples_per_s']:,.0f} | "
                             f"{r['speedup']:.2f}x | {100 * r['test_error']:.2f}% |")
                print(lines[-1], flush=True)
    head = f"{out['cpu']}, {cores} cores, kernel {out['isa']}, {args.epochs} epoch(s) each"
    _write(args.out or "thread_scaling", out, head, lines)


def _write(name, out, head, lines):
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(head + "\n\n" + "\n".join(lines) + "\n")
    print(head + "\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
