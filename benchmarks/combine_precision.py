"""Bytes per combine against accuracy: combine_precision float32, bfloat16 and bfloat16_log8 (not a timed test).

The MNIST pair (784-200-200-10 Rectifier, ADADELTA), every other setting H2O's default and
this program's (the auto-tuned rows per iteration, BlockMomentum), 1 thread a rank, N ranks
oversubscribed on whatever cores there are (speed is then meaningless, the statistics are
not), scored on the 10,000 test rows after every iteration (score_each_iteration), early
stopping off (stopping_rounds 0: every run trains all its epochs).  For each
precision and seed: the epochs to reach 12% and 11% test error (linear interpolation in the
scoring history), the error after the last epoch, and the bytes each rank sends per combine
(Reduce_scatter + Allgatherv of float32 values, or Alltoallv + Allgatherv of bfloat16 ones:
2 (N - 1) / N values each way, 4 or 2 bytes a value; bfloat16_log8: the weights and biases as
bfloat16, ADADELTA's two accumulators as 1-byte logarithms, and 2 (N - 1) float32 scales).
One rank's run, the same seeds, is the reference.

With `--tspi cap` the rows between combines are fixed at BlockMomentum's cap, n / (3 N) rows
over all ranks (what the auto-tuner settles at from 8 ranks on), so that the precisions
differ in nothing else; `--tspi auto` leaves the auto-tuner to choose (then the faster
combine of fewer bytes may also combine more often).

    .venv/bin/python benchmarks/combine_precision.py [--ranks 8] [--seeds 1 2 3] [--epochs 4] [--tspi cap]

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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rank_projection  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT / "h2odl_mpi" / "datasets" / "mnist"
BIN = Path(sys.executable).parent
TARGETS = (0.12, 0.11)
PRECISIONS = rank_projection.PRECISIONS
N_TRAIN = 10000   # the MNIST pair's training rows


def run(ranks, seed, precision, epochs, work, tspi="auto"):
    """One training run: its summary and its scoring history (a list of dicts)."""
    summary = Path(work) / f"s_{ranks}_{seed}_{precision}.json"
    history = Path(work) / f"h_{ranks}_{seed}_{precision}.csv"
    cmd = [str(BIN / "mpirun"), "-n", str(ranks), sys.executable, "-m", "h2odl_mpi", "train",
           "--train", str(DATA / "train.csv.gz"), "--validation", str(DATA / "test.csv.gz"), "--response", "C785",
           "--hidden", "200,200", "--epochs", str(epochs), "--threads", "1", "--seed", str(seed),
           "--score_each_iteration", "true", "--score_training_samples", "1000", "--quiet_mode", "true",
           "--stopping_rounds", "0",   # all the epochs: early stopping on a noisy curve would end runs apart
           "--combine_precision", precision, "--summary_json", str(summary), "--scoring_history", str(history)]
    if tspi == "cap" and ranks > 1:
        cmd += ["--train_samples_per_iteration", str(N_TRAIN // (3 * ranks))]
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
    """What each rank sends in one combine (rank_projection.bytes_per_combine) of the
    buffer of weights, biases and ADADELTA's two accumulators for each."""
    return rank_projection.bytes_per_combine(3 * n_params(summary), ranks, precision)


def n_params(summary):
    """The weights and biases; ADADELTA keeps two accumulators for each (3 values each in
    the buffer)."""
    units = summary["network"]
    return sum(a * b + b for a, b in zip(units[:-1], units[1:]))


def measure(args, work):
    rows = []
    for seed in args.seeds:
        for ranks, precision in [(1, "float32")] + [(args.ranks, p) for p in args.precisions]:
            s, h = run(ranks, seed, precision, args.epochs, work, args.tspi)
            rows.append({"ranks": ranks, "seed": seed, "precision": precision,
                         "epochs_to": {str(t): epochs_to(h, t) for t in TARGETS},
                         "final_error": h[-1].get("validation_classification_error"),
                         "bytes_per_combine": bytes_per_combine(s, ranks, precision) if ranks > 1 else 0,
                         "iterations": s["iterations"], "tspi": args.tspi})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows, ranks, precisions):
    def mean(xs):
        xs = [x for x in xs if x is not None]
        return statistics.mean(xs) if xs else float("nan")
    lines = ["| ranks | precision | epochs to 12% (per seed) | epochs to 11% (mean) | error after the last epoch "
             "(mean, %) | bytes a rank sends per combine |", "|---|---|---|---|---|---|"]
    for r, p in [(1, "float32")] + [(ranks, p) for p in precisions]:
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
    ap.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    ap.add_argument("--tspi", choices=("auto", "cap"), default="auto",
                    help="rows between combines: the auto-tuner's (default) or BlockMomentum's cap")
    ap.add_argument("--out", default="combine_precision", help="results file name under benchmarks/results")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        rows = measure(args, work)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(rows, indent=1))
    text = table(rows, args.ranks, args.precisions)
    (RESULTS / f"{args.out}.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
