"""Many models at once: a 16-model grid from the tuning guide's part 2 on the MNIST pair,
trained on 4 ranks as 4 groups of 1 rank (each model on one rank, four at a time) against
1 group of 4 ranks (each model data-parallel on all four, one after another), in one run;
and 5-fold cross-validation of the default network on airlines against H2O-3's with the
same Modulo folds.

The grid (2 x 2 x 2 x 2): hidden [64,128,128] or [200,200]; Rectifier or
RectifierWithDropout; input_dropout_ratio 0 or 0.2; l1 0 or 1e-5 (part 2's dimensions, at
`--epochs` each).  Each arrangement is a `mpirun -n 4 python -m h2odl_mpi grid` with one
thread per rank; its wall time is the command's, data reading and start-up included.  On a
machine with fewer than 4 cores the ranks are oversubscribed: the wall-time ratio then says
how much work the arrangement costs in all (communication, waiting, start-up), not how
fast 4 cores would be.

    .venv/bin/python benchmarks/search.py [--epochs 1] [--ranks 4] [--no-h2o] [--skip-grid]
        [--skip-cv] [--strategies [--repeats 3]]     (strategies: benchmarks/search_strategies.py)
Results: benchmarks/results/search.json.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MNIST = ROOT / "h2odl_mpi" / "datasets" / "mnist"
RESULTS = ROOT / "benchmarks" / "results"

GRID = """train = "{train}"
validation = "{test}"
response = "C785"
epochs = {epochs}
threads = 1
seed = 1234
stopping_rounds = 0
variable_importances = false
score_validation_samples = 0
[hyper_params]
hidden = [[64, 128, 128], [200, 200]]
activation = ["Rectifier", "RectifierWithDropout"]
input_dropout_ratio = [0.0, 0.2]
l1 = [0.0, 1e-5]
[search_criteria]
strategy = "Cartesian"
sort_by = "misclassification"
"""


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_grid(tmp, ranks, ranks_per_model, epochs):
    """One arrangement: its wall time and its leaderboard."""
    grid = Path(tmp) / "grid.toml"
    grid.write_text(GRID.format(train=MNIST / "train.csv.gz", test=MNIST / "test.csv.gz", epochs=epochs))
    sd = Path(tmp) / f"search_r{ranks_per_model}"
    mpirun = Path(sys.executable).parent / "mpirun"
    cmd = [str(mpirun), "-n", str(ranks), sys.executable, "-m", "h2odl_mpi", "grid", "--config", str(grid),
           "--search_dir", str(sd), "--ranks_per_model", str(ranks_per_model)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"grid with --ranks_per_model {ranks_per_model} failed:\n{r.stderr[-2000:]}")
    board = json.loads((sd / "leaderboard.json").read_text())
    errors = [b["metrics"]["validation"]["classification_error"] for b in board]
    return {"ranks": ranks, "ranks_per_model": ranks_per_model, "groups": ranks // ranks_per_model,
            "models": len(board), "wall_s": wall, "best_test_error": min(errors),
            "median_test_error": sorted(errors)[len(errors) // 2],
            "model_training_s_sum": sum(b["training_time_s"] for b in board),
            "best": {k: board[0][k] for k in ("hidden", "activation", "input_dropout_ratio", "l1")}}


def grid_part(args):
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_grid(tmp, args.ranks, r, args.epochs) for r in (1, args.ranks)]
    one, all_ = rows
    for r in rows:
        print(f"{r['groups']} group(s) of {r['ranks_per_model']} rank(s): {r['models']} models in "
              f"{r['wall_s']:.1f} s; best test error {r['best_test_error']:.4f}, median {r['median_test_error']:.4f}")
    print(f"groups of 1 rank against 1 group of {args.ranks}: {all_['wall_s'] / one['wall_s']:.2f}x sooner")
    return {"arrangements": rows, "speedup_groups": all_["wall_s"] / one["wall_s"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--ranks", type=int, default=4)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--no-h2o", action="store_true", help="skip H2O-3's cross-validation")
    ap.add_argument("--skip-grid", action="store_true")
    ap.add_argument("--skip-cv", action="store_true")
    ap.add_argument("--strategies", action="store_true",
                    help="also RandomDiscrete against Evolutionary and Halving (benchmarks/search_strategies.py)")
    ap.add_argument("--repeats", type=int, default=3, help="with --strategies: runs of each strategy")
    args = ap.parse_args(argv)
    out = {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu": cpu_name(),
           "cores": os.cpu_count(), "epochs": args.epochs}
    if not args.skip_grid:
        out["grid"] = grid_part(args)
    if not args.skip_cv:
        from benchmarks.search_cv import cv_part
        out["cross_validation"] = cv_part(args.folds, not args.no_h2o)
    if args.strategies:
        from benchmarks.search_strategies import strategies_part
        out["strategies"] = strategies_part(args.repeats, args.ranks)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "search.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    old.update(out)
    path.write_text(json.dumps(old, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
