"""Start-up: the time before the first training row, against the time reading the data.

    .venv/bin/python benchmarks/startup.py                   # 5 runs
    .venv/bin/python benchmarks/startup.py --against ../old   # before/after: another checkout

Runs `python -m h2odl_mpi train` on the bundled MNIST pair (response C785, hidden 200,200,
H2O's defaults) for a few rows only (or `--epochs`: with more than one, the rows a run reads
every iteration are decoded first, docs/training.md), in a fresh process each time, and
reads the summary's startup_s: data_load (reading both files into the column store) and to_first_row (from the
session's start to the first training row); setup = to_first_row - data_load (the target:
at most 0.1 s); imports and MPI's start come before the session and are not in it.  Median
and slowest of the runs; with --against DIR, the same command in a checkout DIR of another
commit, a run of each in turn.  The machine's load is printed: the runs share the cores.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "h2odl_mpi" / "datasets" / "mnist"
ARGS = ["--train", str(MNIST / "train.csv.gz"), "--validation", str(MNIST / "test.csv.gz"),
        "--response", "C785", "--hidden", "200,200"]


def one_run(root, out_dir, epochs=0.001):
    summary = Path(out_dir) / "s.json"
    env = dict(os.environ, PYTHONPATH=str(root))
    subprocess.run([sys.executable, "-m", "h2odl_mpi", "train", *ARGS, "--epochs", str(epochs),
                    "--summary-json", str(summary)],
                   cwd=root, env=env, check=True, capture_output=True, text=True)
    s = json.loads(summary.read_text())["startup_s"]
    return dict(data_load=s["data_load"], to_first_row=s["to_first_row"],
                setup=s["to_first_row"] - s["data_load"])


def table(name, runs):
    for key in ("data_load", "to_first_row", "setup"):
        values = [r[key] for r in runs]
        print(f"{name:<8} {key:<13} median {statistics.median(values):7.3f} s   slowest {max(values):7.3f} s")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--against", help="a checkout of another commit, its kernel built: measured too")
    ap.add_argument("--epochs", type=float, default=0.001,
                    help="epochs of each run (more than 1: the rows read every iteration are decoded first)")
    args = ap.parse_args(argv)
    mine, theirs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            if args.against:
                theirs.append(one_run(Path(args.against).resolve(), tmp, args.epochs))
            mine.append(one_run(ROOT, tmp, args.epochs))
    print(f"start-up of `train` on the MNIST pair, {args.runs} runs each; load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")
    if theirs:
        table("against", theirs)
    table("this", mine)


if __name__ == "__main__":
    main()
