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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default="1,2,4,8,16")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--nets", default="small")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--out", default="thread_scaling")
    args = ap.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    threads = [t for t in map(int, args.threads.split(",")) if t <= cores]
    data = load_mnist()
    out = {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu": cpu_name(), "cores": cores,
           "isa": ffi.string(lib.h2o_isa()).decode(), "epochs": args.epochs, "runs": []}
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
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(out, indent=2) + "\n")
    (RESULTS / f"{args.out}.md").write_text(head + "\n\n" + "\n".join(lines) + "\n")
    print(head)


if __name__ == "__main__":
    main()
