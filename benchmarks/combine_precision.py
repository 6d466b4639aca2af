"""Bytes per combine against accuracy: combine_precision float32 against bfloat16 (not a timed test).

The MNIST pair (784-200-200-10 Rectifier, ADADELTA), every other setting H2O's default and
this program's (the auto-tuned rows per iteration, BlockMomentum), 1 thread a rank, N ranks
oversubscribed on whatever cores there are (speed is then meaningless, the statistics are
not), scored on the 10,000 test rows after every iteration (score_each_iteration).  For each
precision and seed: the epochs to reach 12% and 11% test error (linear interpolation in the
scoring history), the error after the last epoch, and the bytes each rank sends per combine
(Reduce_scatter + Allgatherv of float32 values, or Alltoallv + Allgatherv of bfloat16 ones:
2 (N - 1) / N values each way, 4 or 2 bytes a value).  One rank's run, the same seeds, is the
reference.

    .venv/bin/python benchmarks/combine_precision.py [--ranks 8] [--seeds 1 2 3] [--epochs 4]

Writes benchmarks/results/combine_precision.json and .md.
"""
import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT / "h2odl_mpi" / "datasets" / "mnist"
BIN = Path(sys.executable).parent
TARGETS = (0.12, 0.11)


def run(ranks, seed, precision, epochs, work):
    """One training run: its summary and its scoring history (a list of dicts)."""
    summary = Path(work) / f"s_{ranks}_{seed}_{precision}.json"
    history = Path(work) / f"h_{ranks}_{seed}_{precision}.csv"
    cmd = [str(BIN / "mpirun"), "-n", str(ranks), sys.executable, "-m", "h2odl_mpi", "train",
           "--train", str(DATA / "train.csv.gz"), "--validation", str(DATA / "test.csv.gz"), "--response", "C785",
           "--hidden", "200,200", "--epochs", str(epochs), "--threads", "1", "--seed", str(seed),
           "--score_each_iteration", "true", "--score_training_samples", "1000", "--quiet_mode", "true",
           "--combine_precision", precision, "--summary_json", str(summary), "--scoring_history", str(history)]
    subprocess.run(cmd, check=True, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"))
    with open(history, newline="") as f:
        rows = [{k: float(v) if v not in ("", None) else None for k, v in r.items()} for r in csv.DictReader(f)]
    return json.loads(summary.read_text()), rows


def epochs_to(history, target):
    """Epochs at which the validation error first reaches `target` (interpolated), or None."""
    prev = (0.0, 1.0)
    for row in history:
        e, err = row["epochs"], row.get("validation_classification_error")
        if err is None:
            continue
        if err <= target:
            (e0, r0) = prev
            return e0 + (e - e0) * (r0 - target) / (r0 - err) if r0 != err else e
        prev = (e, err)
    return None


def bytes_per_combine(summary, ranks, precision):
    """What each rank sends in one combine: 2 (N - 1) / N of the buffer's values."""
    return int(2 * (ranks - 1) / ranks * buffer_values(summary) * (4 if precision == "float32" else 2))


def buffer_values(summary):
    """Weights, biases and ADADELTA's two accumulators a weight or bias: 3 values each."""
    units = summary["network"]
    params = sum(a * b + b for a, b in zip(units[:-1], units[1:]))
    return 3 * params


def measure(args, work):
    rows = []
    for seed in args.seeds:
        for ranks, precision in [(1, "float32")] + [(args.ranks, p) for p in ("float32", "bfloat16")]:
            s, h = run(ranks, seed, precision, args.epochs, work)
            rows.append({"ranks": ranks, "seed": seed, "precision": precision,
                         "epochs_to": {str(t): epochs_to(h, t) for t in TARGETS},
                         "final_error": h[-1].get("validation_classification_error"),
                         "bytes_per_combine": bytes_per_combine(s, ranks, precision) if ranks > 1 else 0,
                         "iterations": s["iterations"]})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows, ranks):
    def mean(xs):
        xs = [x for x in xs if x is not None]
        return statistics.mean(xs) if xs else float("nan")
    lines = ["| ranks | precision | epochs to 12% (per seed) | epochs to 11% (mean) | error after the last epoch "
             "(mean, %) | bytes a rank sends per combine |", "|---|---|---|---|---|---|"]
    for r, p in [(1, "float32"), (ranks, "float32"), (ranks, "bfloat16")]:
        sel = [x for x in rows if x["ranks"] == r and x["precision"] == p]
        e12 = [x["epochs_to"]["0.12"] for x in sel]
        lines.append(f"| {r} | {p} | {' / '.join('-' if e is None else f'{e:.2f}' for e in e12)} "
                     f"| {mean(x['epochs_to']['0.11'] for x in sel):.2f} | {100 * mean(x['final_error'] for x in sel):.2f} "
                     f"| {sel[0]['bytes_per_combine']:,} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ranks", type=int, default=8)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--epochs", type=float, default=4.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        rows = measure(args, work)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "combine_precision.json").write_text(json.dumps(rows, indent=1))
    text = table(rows, args.ranks)
    (RESULTS / "combine_precision.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
