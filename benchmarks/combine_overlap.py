"""Combining behind compute (combine_overlap true) against combining in line (false): the
training time and the test error of the same runs (not a timed test).

    .venv/bin/python benchmarks/combine_overlap.py [--ranks 2] [--threads 1] [--reps 5] [--epochs 2]

Each repetition runs `mpirun -n RANKS python -m h2odl_mpi train` on the bundled MNIST pair
(758-200-200-10 Rectifier, ADADELTA) twice, once with each setting, in alternating order so that
a slow spell of a shared machine falls on both; everything else is default (rows between
combines auto-tuned, BlockMomentum).  From each run's summary: training_time_s (compute, the
combine's exposed part and the wait at the barrier; not reading, start-up or scoring),
comm_fraction (the exposed part of the combine), combine_behind_fraction (the combines' own
time on their thread, behind compute), the iterations, and the final test error.  Reported:
the median and the slowest of each, and the ratio of overlapped to in-line time for both.

Where the ranks and their kernel threads fill every core, the combine's thread has no core of
its own and takes its time from compute: the win needs a network slower than the cores'
memory, or a core left free.  Writes benchmarks/results/combine_overlap.json and .md.
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT / "h2odl_mpi" / "datasets" / "mnist"
SETTINGS = ("false", "true")


def run_once(args, overlap, tmp):
    summary = Path(tmp) / f"summary_{overlap}.json"
    cmd = [str(Path(sys.executable).parent / "mpirun"), "-n", str(args.ranks), sys.executable, "-m", "h2odl_mpi",
           "train", "--train", str(DATA / "train.csv.gz"), "--validation", str(DATA / "test.csv.gz"),
           "--response", "C785", "--hidden", "200,200", "--epochs", str(args.epochs), "--threads", str(args.threads),
           "--seed", str(args.seed), "--combine_overlap", overlap, "--summary_json", str(summary), "--quiet_mode",
           "true"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=3600)
    if r.returncode != 0:
        raise RuntimeError(f"combine_overlap {overlap}: exit {r.returncode}: {r.stderr[-2000:]}")
    s = json.loads(summary.read_text())
    return {"overlap": overlap, "training_time_s": s["training_time_s"], "comm_fraction": s["comm_fraction"],
            "behind_fraction": s["combine_behind_fraction"], "wait_fraction": s["wait_fraction"],
            "iterations": s["iterations"], "test_error": s["metrics"]["validation"]["classification_error"]}


def table(runs):
    lines = ["| combine_overlap | training s, median (slowest) | comm_fraction | behind_fraction | iterations | "
             "test error, median |", "|---|---|---|---|---|---|"]
    for o in SETTINGS:
        rs = [r for r in runs if r["overlap"] == o]
        t = [r["training_time_s"] for r in rs]
        med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
        lines.append(f"| {o} | {statistics.median(t):.2f} ({max(t):.2f}) | {100 * med('comm_fraction'):.1f}% | "
                     f"{100 * med('behind_fraction'):.1f}% | {med('iterations'):.0f} | "
                     f"{100 * med('test_error'):.2f}% |")
    return lines


def ratios(runs):
    t = {o: [r["training_time_s"] for r in runs if r["overlap"] == o] for o in SETTINGS}
    return statistics.median(t["true"]) / statistics.median(t["false"]), max(t["true"]) / max(t["false"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="kernel threads per rank")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cpu", default="", help="the machine's CPU, for the report")
    args = ap.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for o in (SETTINGS if rep % 2 == 0 else SETTINGS[::-1]):
                runs.append(dict(run_once(args, o, tmp), rep=rep))
                r = runs[-1]
                print(f"rep {rep} combine_overlap {o}: {r['training_time_s']:.2f} s, comm {100 * r['comm_fraction']:.1f}%, "
                      f"behind {100 * r['behind_fraction']:.1f}%, test error {100 * r['test_error']:.2f}%", flush=True)
    median, slowest = ratios(runs)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "combine_overlap.json").write_text(json.dumps({"args": vars(args), "runs": runs}, indent=1))
    head = [f"# combine_overlap: {args.ranks} ranks x {args.threads} thread(s), MNIST pair, {args.epochs:g} epochs, "
            f"{args.reps} repetitions", "", f"CPU: {args.cpu or 'not given'}.  Command: `.venv/bin/python "
            f"benchmarks/combine_overlap.py --ranks {args.ranks} --threads {args.threads} --reps {args.reps} "
            f"--epochs {args.epochs:g}`", ""]
    tail = ["", f"Training time, overlapped / in line: {median:.3f} (medians), {slowest:.3f} (slowest runs)."]
    (RESULTS / "combine_overlap.md").write_text("\n".join(head + table(runs) + tail) + "\n")
    print("\n".join(table(runs) + tail))


if __name__ == "__main__":
    main()
