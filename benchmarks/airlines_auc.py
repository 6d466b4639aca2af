"""Airlines, IsDepDelayed, H2O's default network, 10 epochs: test AUC on a held-out quarter,
h2odl_mpi against H2O-3 with the same parameters and the same split, in one run.

The rows are split once (seed 42: three quarters train, one quarter test) into two CSV
files that both systems read.  Columns known only after departure (delays, actual times,
taxi times, cancellation and diversion) are left out on both sides.

    .venv/bin/python benchmarks/airlines_auc.py [--epochs 10]
"""
import argparse
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT / "h2odl_mpi" / "datasets" / "airlines" / "allyears2k_headers.csv.gz"
RESULTS = ROOT / "benchmarks" / "results"
RESPONSE = "IsDepDelayed"
LEAKS = ["ArrTime", "DepTime", "ActualElapsedTime", "AirTime", "ArrDelay", "DepDelay", "TaxiIn",
         "TaxiOut", "Cancelled", "CancellationCode", "Diverted", "CarrierDelay", "WeatherDelay",
         "NASDelay", "SecurityDelay", "LateAircraftDelay", "IsArrDelayed"]


def split(tmp, seed=42):
    lines = gzip.open(DATA, "rt", encoding="latin-1").read().splitlines()
    header, rows = lines[0], lines[1:]
    test = np.random.default_rng(seed).random(len(rows)) < 0.25
    paths = {}
    for name, mask in (("train", ~test), ("test", test)):
        p = Path(tmp) / f"airlines_{name}.csv"
        p.write_text(header + "\n" + "\n".join(r for r, m in zip(rows, mask) if m) + "\n",
                     encoding="latin-1")
        paths[name] = str(p)
    return paths


def ours(paths, epochs, seed):
    from h2odl_mpi.params import validate
    from h2odl_mpi.training.trainer import train
    p = validate({"train": paths["train"], "validation": paths["test"], "response": RESPONSE,
                  "ignored_columns": LEAKS, "epochs": epochs, "seed": seed, "quiet_mode": True,
                  "score_validation_samples": 0})
    t = time.perf_counter()
    s = train(p, None)
    return {"system": "h2odl_mpi", "test_auc": s["metrics"]["validation"]["auc"],
            "test_logloss": s["metrics"]["validation"]["logloss"],
            "samples_per_s": s["samples_per_s"], "wall_s": time.perf_counter() - t}


def h2o_peer(paths, epochs, seed):
    import h2o
    from h2o.estimators import H2ODeepLearningEstimator
    from benchmarks.peers.h2o_peer import H2OCluster
    with H2OCluster(nthreads=2):
        train = h2o.import_file(paths["train"])
        test = h2o.import_file(paths["test"])
        for f in (train, test):
            f[RESPONSE] = f[RESPONSE].asfactor()
        x = [c for c in train.columns if c not in LEAKS + [RESPONSE]]
        m = H2ODeepLearningEstimator(epochs=epochs, seed=seed)
        t = time.perf_counter()
        m.train(x=x, y=RESPONSE, training_frame=train)
        wall = time.perf_counter() - t
        perf = m.model_performance(test)
        return {"system": "H2O-3", "test_auc": perf.auc(), "test_logloss": perf.logloss(),
                "wall_s": wall}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=float, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-h2o", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        paths = split(tmp)
        rows = [ours(paths, args.epochs, args.seed)]
        if not args.no_h2o:
            rows.append(h2o_peer(paths, args.epochs, args.seed))
    for r in rows:
        print(f"{r['system']:10s} test AUC {r['test_auc']:.4f}  logloss {r['test_logloss']:.4f}  "
              f"train wall {r['wall_s']:.1f}s")
    RESULTS.mkdir(parents=True, exist_ok=True)
    json.dump({"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "epochs": args.epochs,
               "split": "seed 42, 25% test", "ignored": LEAKS, "results": rows},
              open(RESULTS / "airlines_auc.json", "w"), indent=2)


if __name__ == "__main__":
    main()
