"""Time to a tuned model, ensembles: a small grid, then the top-5 ensemble of its leaderboard
against the best single model, on test data neither the search nor the ensemble saw.

MNIST (the bundled pair, response C785): the training file is split once (seed 42, a fifth
for validation); an 8-model grid (hidden [128] or [200, 200], l1 0 or 1e-5,
input_dropout_ratio 0 or 0.2; --epochs each) is trained in-process (grid_search, comm=None)
with the validation fifth as its validation data, so the leaderboard (AUTO: validation
logloss) picks the best model and the ensemble's fitted weights see only validation rows.
Compared on the test file: the classification error of the leaderboard's best model, of the
top-5 ensemble with equal weights and with fitted (NNLS) weights.  Airlines (IsDepDelayed,
benchmarks/airlines_auc.py's split and leak columns): the same with test AUC, the training
three quarters split again (seed 43, a fifth for validation); grid hidden [50, 50] or
[200, 200], l1 0 or 1e-5, input_dropout_ratio 0 or 0.1.  The best single model on the test
data (which no search can know) is reported too, for scale.

    .venv/bin/python benchmarks/ensemble.py [--epochs 2] [--threads 2] [--seeds 1234,7] [--only mnist|airlines]

Each seed is a whole run (the models' seed; the splits stay).
Results: benchmarks/results/ensemble.json.
"""
import argparse
import gzip
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
MNIST = ROOT / "h2odl_mpi" / "datasets" / "mnist"
RESULTS = ROOT / "benchmarks" / "results"
TOP = 5


def _split_lines(lines, seed, fraction):
    hold = np.random.default_rng(seed).random(len(lines)) < fraction
    return [x for x, h in zip(lines, hold) if not h], [x for x, h in zip(lines, hold) if h]


def mnist_files(tmp):
    lines = gzip.open(MNIST / "train.csv.gz", "rt").read().splitlines()
    train, valid = _split_lines(lines, 42, 0.2)
    paths = {"train": f"{tmp}/mnist_train.csv", "valid": f"{tmp}/mnist_valid.csv", "test": str(MNIST / "test.csv.gz")}
    for name, rows in (("train", train), ("valid", valid)):
        Path(paths[name]).write_text("\n".join(rows) + "\n")
    return paths


def airlines_files(tmp):
    from airlines_auc import split
    paths = split(tmp)  # train (three quarters) and test, seed 42
    lines = Path(paths["train"]).read_text(encoding="latin-1").splitlines()
    train, valid = _split_lines(lines[1:], 43, 0.2)
    out = {"train": f"{tmp}/air_train.csv", "valid": f"{tmp}/air_valid.csv", "test": paths["test"]}
    for name, rows in (("train", train), ("valid", valid)):
        Path(out[name]).write_text(lines[0] + "\n" + "\n".join(rows) + "\n", encoding="latin-1")
    return out


def case(name, tmp, paths, fixed, hyper, metric, epochs, threads, seed):
    """The grid, the ensembles, every model's test metric."""
    from h2odl_mpi.workflows.ensemble import build_ensemble
    from h2odl_mpi.evaluation.evaluate import evaluate_file
    from h2odl_mpi.workflows.search import grid_search
    fixed = dict(fixed, train=paths["train"], validation=paths["valid"], epochs=epochs, threads=threads,
                 seed=seed, stopping_rounds=0, variable_importances=False, score_validation_samples=0,
                 quiet_mode=True)
    sd = f"{tmp}/{name}_search_{seed}"
    t0 = time.perf_counter()
    board = grid_search(fixed, hyper, {"strategy": "Cartesian"}, sd)
    grid_s = time.perf_counter() - t0

    def test_metric(path):
        perf = evaluate_file(path, paths["test"], say=lambda s: None, threads=threads)
        return perf.classification_error() if metric == "test_error" else perf.auc()

    models = []
    for row in board:
        models.append({"model_id": row["model_id"], **{k: row[k] for k in hyper},
                       "validation_" + row["sort_metric"].split("_", 1)[1]: row["sort_value"],
                       metric: test_metric(row["model_path"])})
    ensembles = {}
    for weights in ("equal", "fitted"):
        t0 = time.perf_counter()
        out = f"{tmp}/{name}_{seed}_top{TOP}_{weights}.h5"
        rec = build_ensemble(sd, TOP, out, weights=weights, threads=threads, say=None)
        ensembles[weights] = {"members": rec["members"], "weights": rec["weights"],
                              "validation": {k: rec["metrics"]["validation"].get(k)
                                             for k in ("logloss", "classification_error", "auc")},
                              metric: test_metric(out), "build_s": time.perf_counter() - t0}
    best = models[0]
    better = (lambda a, b: a < b) if metric == "test_error" else (lambda a, b: a > b)
    oracle = (min if metric == "test_error" else max)(m[metric] for m in models)
    return {"data": name, "seed": seed, "metric": metric, "grid_models": len(models), "epochs": epochs,
            "grid_s": grid_s,
            "best_single": {"model_id": best["model_id"], metric: best[metric]},
            "best_single_on_test_oracle": oracle,
            "ensembles": ensembles,
            "target_met": {w: bool(better(e[metric], best[metric])) for w, e in ensembles.items()},
            "models": models}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=float, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=("mnist", "airlines"), default=None)
    ap.add_argument("--seeds", default="1234,7", help="comma-separated model seeds, one run each")
    args = ap.parse_args(argv)
    from airlines_auc import LEAKS, RESPONSE
    results = []
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "mnist"):
            paths = mnist_files(tmp)
            for seed in seeds:
                results.append(case("mnist", tmp, paths, {"response": "C785"},
                                    {"hidden": [[128], [200, 200]], "l1": [0.0, 1e-5],
                                     "input_dropout_ratio": [0.0, 0.2]},
                                    "test_error", args.epochs, args.threads, seed))
        if args.only in (None, "airlines"):
            paths = airlines_files(tmp)
            for seed in seeds:
                results.append(case("airlines", tmp, paths, {"response": RESPONSE, "ignored_columns": LEAKS},
                                    {"hidden": [[50, 50], [200, 200]], "l1": [0.0, 1e-5],
                                     "input_dropout_ratio": [0.0, 0.1]},
                                    "test_auc", args.epochs, args.threads, seed))
    for r in results:
        m = r["metric"]
        print(f"{r['data']} (seed {r['seed']}): {r['grid_models']} models, {r['epochs']:g} epochs, grid {r['grid_s']:.0f} s; {m}: "
              f"best single ({r['best_single']['model_id']}) {r['best_single'][m]:.4f}, "
              f"top-{TOP} equal {r['ensembles']['equal'][m]:.4f}, fitted {r['ensembles']['fitted'][m]:.4f} "
              f"(weights {', '.join(f'{w:.3f}' for w in r['ensembles']['fitted']['weights'])}); "
              f"best on test of all {r['grid_models']}: {r['best_single_on_test_oracle']:.4f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": platform.machine(),
           "threads": args.threads, "top": TOP, "results": results}
    if args.only and (RESULTS / "ensemble.json").exists():  # keep the other data set's result
        old = json.loads((RESULTS / "ensemble.json").read_text())
        out["results"] = [r for r in old.get("results", []) if r["data"] != args.only] + results
    (RESULTS / "ensemble.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
