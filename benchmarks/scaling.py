"""Scaling of the distributed trainer: ranks against threads, and a projection to 1024 ranks.

1. Throughput on this machine's 2 cores, TSPI auto-tuned (-2), MNIST pair, 758-200-200-10:
   2 ranks x 1 thread against 1 rank x 2 threads (samples/s and the measured communication
   share against target_ratio_comm_to_comp, with H2O's default scoring; then the test error
   after each epoch from a second run that scores after every iteration).
2. Allreduce (the trainer's own collectives.weighted_mean) timed at 2, 3 and 4 ranks for message sizes
   from 4 KiB to 32 MiB; a latency-bandwidth fit t = a * ceil(log2 P) + b * 2 (P-1)/P * bytes.
3. A PROJECTION (not a measurement) of parallel efficiency at 64 and 1024 ranks on a
   100 Gb/s network: the fitted latency term, the link's bandwidth in place of the measured
   shared-memory one, the model's buffer size, and the kernel's measured time per row.
Writes benchmarks/results/scaling.json, scaling.csv and scaling.png (if matplotlib is there).

    .venv/bin/python benchmarks/scaling.py
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PY = sys.executable
MPIRUN = str(Path(PY).parent / "mpirun")
DATA = ROOT / "h2odl_mpi" / "datasets" / "mnist"
LINK_BYTES_PER_S = 100e9 / 8  # 100 Gb/s
SIZES = [4 << 10, 64 << 10, 1 << 20, 4 << 20, 16 << 20, 32 << 20]


def allreduce_probe(out_path, reps=15):
    """Run inside mpirun: time the model average (collectives.weighted_mean) for each message
    size (median of reps)."""
    from mpi4py import MPI
    sys.path.insert(0, str(ROOT))
    from h2odl_mpi.collectives import weighted_mean
    comm = MPI.COMM_WORLD
    rows = []
    for nbytes in SIZES:
        buf = np.ones(nbytes // 4, dtype=np.float32)
        times = []
        for _ in range(reps):
            comm.Barrier()
            t = time.perf_counter()
            weighted_mean(comm, buf)
            times.append(time.perf_counter() - t)
        worst = comm.allreduce(float(np.median(times)), op=MPI.MAX)
        rows.append({"ranks": comm.size, "bytes": nbytes, "seconds": worst})
    if comm.rank == 0:
        json.dump(rows, open(out_path, "w"))


def fit_latency_bandwidth(rows):
    """Least squares for t = a * ceil(log2 P) + b * 2 (P-1)/P * bytes, in relative error
    (each measurement divided by itself) so the small messages that set the latency count
    as much as the large ones that set the bandwidth."""
    A = np.array([[math.ceil(math.log2(r["ranks"])), 2 * (r["ranks"] - 1) / r["ranks"] * r["bytes"]] for r in rows])
    t = np.array([r["seconds"] for r in rows])
    (a, b), *_ = np.linalg.lstsq(A / t[:, None], np.ones_like(t), rcond=None)
    return max(a, 1e-7), max(b, 1e-13)


def train_run(ranks, threads, epochs, tmp, every_iteration):
    """One training run.  every_iteration: score after every iteration (for the test error
    at each epoch; scoring then perturbs the timing), else H2O's default scoring."""
    summary = Path(tmp) / f"s_{ranks}x{threads}_{every_iteration}.json"
    history = Path(tmp) / f"h_{ranks}x{threads}_{every_iteration}.csv"
    scoring = ["--score_interval", "0", "--score_duty_cycle", "1"] if every_iteration else []
    cmd = [MPIRUN, "-n", str(ranks), PY, "-m", "h2odl_mpi", "train",
           "--train", str(DATA / "train.csv.gz"), "--validation", str(DATA / "test.csv.gz"),
           "--response", "C785", "--hidden", "200,200", "--epochs", str(epochs), "--seed", "7",
           "--threads", str(threads), "--train_samples_per_iteration", "-2",
           *scoring, "--score_training_samples", "1000",
           "--overwrite_with_best_model", "false", "--stopping_rounds", "0", "--quiet_mode", "true",
           "--summary_json", str(summary), "--scoring_history", str(history)]
    subprocess.run(cmd, cwd=ROOT, check=True, timeout=1800)
    s = json.load(open(summary))
    import csv
    hist = list(csv.DictReader(open(history)))
    per_epoch = {}
    for e in range(1, int(epochs) + 1):  # the first scoring at or past each whole epoch
        row = next((h for h in hist if float(h["epochs"]) >= e - 1e-9), None)
        if row:
            per_epoch[e] = float(row["validation_classification_error"])
    return {"ranks": ranks, "threads": threads, "samples_per_s": s["samples_per_s"],
            "comm_fraction": s["comm_fraction"], "wait_fraction": s.get("wait_fraction", 0.0),
            "iterations": s["iterations"],
            "tspi_median": float(np.median(s["train_samples_per_iteration"])),
            "test_error_per_epoch": per_epoch,
            "test_error_final": s["metrics"]["validation"]["classification_error"]}


def kernel_row_time(threads=1):
    sys.path.insert(0, str(ROOT))
    from h2odl_mpi.kernel import NetConfig, Network, Rows
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 758)).astype(np.float32)
    y = rng.integers(0, 10, 4000).astype(np.float32)
    net = Network(NetConfig(units=[758, 200, 200, 10]))
    model = net.new_model(1)
    rows = Rows.dense(x, y)
    net.train(model, rows, np.arange(500), threads=threads)
    t = time.perf_counter()
    net.train(model, rows, threads=threads)
    return (time.perf_counter() - t) / len(x), net.n_total * 4


def project(a, b_measured, model_bytes, t_row, target=0.05):
    """Projected allreduce time and efficiencies for P ranks on a 100 Gb/s link."""
    out = []
    b = 1.0 / LINK_BYTES_PER_S
    rows_per_rank = None
    for P in [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]:
        t_comm = a * math.ceil(math.log2(P)) + b * 2 * (P - 1) / P * model_bytes
        if rows_per_rank is None:  # fixed work per rank: what the tuner picks at 2 ranks
            rows_per_rank = t_comm * (1 - target) / (target * t_row)
        t_comp = rows_per_rank * t_row
        tuned_rows = t_comm * (1 - target) / (target * t_row)
        out.append({"ranks": P, "t_allreduce_s": t_comm,
                    "efficiency_fixed_rows_per_rank": t_comp / (t_comp + t_comm),
                    "rows_per_rank_fixed": rows_per_rank,
                    "tuned_rows_per_rank_for_target": tuned_rows,
                    "efficiency_tuned": 1 - target})
    return out


def plot(measured, fit, proj, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    a, b = fit
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for P in sorted({r["ranks"] for r in measured}):
        pts = [r for r in measured if r["ranks"] == P]
        xs = [r["bytes"] for r in pts]
        ax1.loglog(xs, [r["seconds"] for r in pts], "o", label=f"measured, {P} ranks")
        ax1.loglog(xs, [a * math.ceil(math.log2(P)) + b * 2 * (P - 1) / P * s for s in xs], "-", alpha=0.6)
    ax1.set_xlabel("model buffer (bytes)")
    ax1.set_ylabel("model average time (s)")
    ax1.set_title("Allreduce on this machine and the fit")
    ax1.legend(fontsize=8)
    ranks = [p["ranks"] for p in proj]
    ax2.semilogx(ranks, [p["efficiency_fixed_rows_per_rank"] for p in proj], "o-",
                 label="fixed rows per rank (tuned at 2 ranks)")
    ax2.semilogx(ranks, [p["efficiency_tuned"] for p in proj], "s--", label="TSPI re-tuned (-2)")
    ax2.set_ylim(0, 1.02)
    ax2.set_xlabel("ranks")
    ax2.set_ylabel("parallel efficiency")
    ax2.set_title("PROJECTION: 100 Gb/s network, 758-200-200-10")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--allreduce-probe", help=argparse.SUPPRESS)
    ap.add_argument("--epochs", type=float, default=3)
    args = ap.parse_args(argv)
    if args.allreduce_probe:
        return allreduce_probe(args.allreduce_probe)
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for ranks, threads in ((1, 2), (2, 1)):
            timed = train_run(ranks, threads, args.epochs, tmp, every_iteration=False)
            timed["test_error_per_epoch"] = train_run(ranks, threads, args.epochs, tmp,
                                                      every_iteration=True)["test_error_per_epoch"]
            runs.append(timed)
        measured = []
        for P in (2, 3, 4):
            out = Path(tmp) / f"ar{P}.json"
            subprocess.run([MPIRUN, "-n", str(P), PY, __file__, "--allreduce-probe", str(out)],
                           cwd=ROOT, check=True, timeout=600)
            measured += json.load(open(out))
    a, b = fit_latency_bandwidth(measured)
    t_row, model_bytes = kernel_row_time()
    proj = project(a, b, model_bytes, t_row)
    one, two = runs
    ratio = two["samples_per_s"] / one["samples_per_s"]
    result = {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "load_avg": os.getloadavg(), "runs": runs,
              "ranks_vs_threads_ratio": ratio, "allreduce_measured": measured,
              "fit": {"latency_s_per_log2_step": a, "seconds_per_byte": b,
                      "bandwidth_GB_per_s": 1e-9 / b},
              "projection_100Gbps": proj, "model_bytes": model_bytes, "kernel_s_per_row": t_row}
    json.dump(result, open(RESULTS / "scaling.json", "w"), indent=2)
    have_png = plot(measured, (a, b), proj, RESULTS / "scaling.png")
    print(f"1 rank x 2 threads: {one['samples_per_s']:,.0f} samples/s, comm {100 * one['comm_fraction']:.1f}%")
    print(f"2 ranks x 1 thread: {two['samples_per_s']:,.0f} samples/s, comm {100 * two['comm_fraction']:.1f}% "
          f"(target 5%), waiting for slower ranks {100 * two['wait_fraction']:.1f}%, ratio {ratio:.2f}x")
    print("test error per epoch, 1 rank:", one["test_error_per_epoch"], " 2 ranks:", two["test_error_per_epoch"])
    print(f"allreduce fit: latency {a * 1e6:.1f} us per log2 step, {1e-9 / b:.1f} GB/s (shared memory)")
    print(f"PROJECTION on 100 Gb/s, model {model_bytes / 1e6:.2f} MB, kernel {t_row * 1e6:.0f} us/row:")
    for p in proj:
        if p["ranks"] in (2, 64, 1024):
            print(f"  {p['ranks']:5d} ranks: allreduce {p['t_allreduce_s'] * 1e3:.2f} ms, efficiency at fixed "
                  f"rows/rank {p['efficiency_fixed_rows_per_rank']:.2f}; TSPI -2 needs "
                  f"{p['tuned_rows_per_rank_for_target']:,.0f} rows/rank/iteration for 95%")
    if have_png:
        print(f"plot: {RESULTS / 'scaling.png'}")


if __name__ == "__main__":
    main()
