"""Feeding overhead: training straight from the compressed column store vs from a
pre-expanded float32 matrix, and the memory training from the store needs.

    .venv/bin/python benchmarks/feeding.py                 # MNIST pair, 2 threads
    .venv/bin/python benchmarks/feeding.py --reps 5 --threads 2 --airlines
    .venv/bin/python benchmarks/feeding.py --mini_batch_size 32 --threads 1 --out benchmarks/results/feeding_b32.csv

The MNIST training file is read into the store (Frame.read), described by
Preprocess.fit (response C785, H2O defaults: standardise, drop constant columns), and the
same network (inputs-200-200-10 Rectifier, ADADELTA, H2O defaults) is trained on the same
epoch (rows in ascending order, as the trainer passes them by default:
shuffle_training_data=False, H2O's default; and again shuffled) from (a) FRAME rows, decoded in C per block of rows, and (b) the same rows
expanded once into a dense float32 matrix.  Runs alternate, every run starts from the same
model; the time per mode is the median.  Overhead = (t_frame - t_dense) / t_dense
(target: <= 10%).  Also checked: one thread gives bit-identical models from both sources.

Memory while training from the store: the store's compressed bytes, the model buffer, the
C tables built over the chunks, the per-thread scratch (workspace + decoded block), and the
measured Python-heap peak (tracemalloc) and resident-set growth while training, next to the
size a dense float32 copy would have.  Results: benchmarks/results/feeding.csv.
"""
import argparse
import csv
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from h2odl_mpi._kernel import lib  # noqa: E402
from h2odl_mpi.data.frame import Frame  # noqa: E402
from h2odl_mpi.kernel import NetConfig, Network, Rows  # noqa: E402
from h2odl_mpi.data.preprocess import Preprocess  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT / "h2odl_mpi" / "datasets"


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def measure(name, path, params, hidden, threads, reps, rows_per_run, shuffled, seed=7, mini_batch_size=1):
    frame = Frame.read(str(path))
    pre = Preprocess.fit(frame, params)
    store = pre.rows(frame)
    dense_x = pre.expand(frame)
    dense = Rows.dense(dense_x, y=store.y, weight=store.weight, offset=store.offset)
    usable = store.usable_rows()
    order = np.random.default_rng(seed).permutation(usable)[:rows_per_run]
    if not shuffled:     # the trainer's default order (shuffle_training_data=False, as H2O)
        order = np.sort(order)
    n_out = pre.n_classes if pre.classification else 1
    cfg = NetConfig(units=[pre.n_inputs, *hidden, n_out], activation="Rectifier",
                    output="softmax" if pre.classification else "linear", mini_batch_size=mini_batch_size)
    net = Network(cfg)
    model0 = net.new_model(seed=seed)

    # bit-identity at one thread (a short run)
    few = order[: min(2000, order.size)]
    a, b = model0.copy(), model0.copy()
    net.train(a, store, few, seed=seed, threads=1)
    net.train(b, dense, few, seed=seed, threads=1)
    identical = bool(np.array_equal(a, b))

    times = {"frame": [], "dense": []}
    net.train(model0.copy(), store, order[:200], seed=seed, threads=threads)   # warm-up
    net.train(model0.copy(), dense, order[:200], seed=seed, threads=threads)
    for _ in range(reps):
        for mode, rows in (("frame", store), ("dense", dense)):
            m = model0.copy()
            t0 = time.perf_counter()
            net.train(m, rows, order, seed=seed, threads=threads)
            times[mode].append(time.perf_counter() - t0)
    t_frame, t_dense = statistics.median(times["frame"]), statistics.median(times["dense"])

    # memory while training from the store (a fresh Rows: its C tables are counted)
    del dense, dense_x
    rss0 = rss_bytes()
    tracemalloc.start()
    store2 = pre.rows(frame)
    m = model0.copy()
    net.train(m, store2, order, seed=seed, threads=threads)
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_growth = max(0, rss_bytes() - rss0)
    workspace = threads * net._layout.workspace_per_thread * 4
    row = dict(
        dataset=name, order="shuffled" if shuffled else "sorted", threads=threads, mini_batch_size=mini_batch_size,
        isa=_isa(),
        layers="-".join(map(str, net.units)), rows_per_run=int(order.size), reps=reps,
        block_rows=store.frame.block_rows,
        t_frame_s=round(t_frame, 4), t_dense_s=round(t_dense, 4),
        frame_rows_per_s=round(order.size / t_frame, 1), dense_rows_per_s=round(order.size / t_dense, 1),
        overhead=round((t_frame - t_dense) / t_dense, 4), target_overhead=0.10,
        bit_identical_1_thread=identical,
        store_bytes=frame.compressed_bytes, model_bytes=model0.nbytes,
        frame_tables_bytes=store2.frame.nbytes, scratch_bytes=store2.frame.scratch_bytes(threads),
        workspace_bytes=workspace, row_arrays_bytes=sum(v.nbytes for v in (store2.y, store2.weight, store2.offset)
                                                         if v is not None),
        dense_copy_bytes=frame.n_rows * pre.n_inputs * 4,
        py_peak_while_training_bytes=py_peak, rss_growth_while_training_bytes=rss_growth,
        all_frame_times=";".join(f"{t:.3f}" for t in times["frame"]),
        all_dense_times=";".join(f"{t:.3f}" for t in times["dense"]))
    return row


def _isa():
    from h2odl_mpi._kernel import ffi
    return ffi.string(lib.h2o_isa()).decode()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--mini_batch_size", type=int, default=1, help="the kernel's mini-batch (1: H2O's)")
    ap.add_argument("--rows", type=int, default=10000, help="rows trained per run")
    ap.add_argument("--airlines", action="store_true", help="also the airlines file (categorical)")
    ap.add_argument("--no-shuffled", action="store_true",
                    help="only the trainer's default ascending row order, not a shuffled one")
    ap.add_argument("--out", default=str(RESULTS / "feeding.csv"))
    args = ap.parse_args(argv)
    runs = [("mnist", DATA / "mnist" / "train.csv.gz", dict(response="C785"), [200, 200])]
    if args.airlines:
        runs.append(("airlines", DATA / "airlines" / "allyears2k_headers.csv.gz",
                     dict(response="IsDepDelayed", ignored_columns=["IsArrDelayed", "ArrDelay", "DepDelay"]),
                     [200, 200]))
    rows = []
    for (name, path, params, hidden), shuffled in [(r, s) for r in runs
                                                    for s in ((False,) if args.no_shuffled else (False, True))]:
        row = measure(name, path, params, hidden, args.threads, args.reps, args.rows, shuffled,
                      mini_batch_size=args.mini_batch_size)
        rows.append(row)
        mib = 1 / 2 ** 20
        print(f"{name} ({row['order']} rows): {row['layers']} Rectifier, {args.threads} threads, "
              f"mini_batch_size {args.mini_batch_size}, {row['rows_per_run']} rows/run, "
              f"block {row['block_rows']} rows, isa {row['isa']}")
        print(f"  store {row['t_frame_s']:.3f} s ({row['frame_rows_per_s']:.0f} rows/s), "
              f"dense {row['t_dense_s']:.3f} s ({row['dense_rows_per_s']:.0f} rows/s): "
              f"feeding overhead {100 * row['overhead']:.1f}% (target <= 10%); "
              f"bit-identical at 1 thread: {row['bit_identical_1_thread']}")
        print(f"  memory: store {row['store_bytes'] * mib:.2f} MiB + model {row['model_bytes'] * mib:.2f} MiB "
              f"+ C tables {row['frame_tables_bytes'] * mib:.2f} MiB + per-call scratch "
              f"{row['scratch_bytes'] * mib:.2f} MiB + workspace {row['workspace_bytes'] * mib:.2f} MiB "
              f"+ y/weight/offset {row['row_arrays_bytes'] * mib:.2f} MiB; "
              f"Python-heap peak while training {row['py_peak_while_training_bytes'] * mib:.2f} MiB, "
              f"RSS growth {row['rss_growth_while_training_bytes'] * mib:.2f} MiB "
              f"(a dense float32 copy: {row['dense_copy_bytes'] * mib:.2f} MiB)")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
