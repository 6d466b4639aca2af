"""Cross-validation against H2O-3's (benchmarks/search.py calls `cv_part`): airlines
(IsDepDelayed, the columns known only after departure left out), H2O's default network,
`epochs` each, the same Modulo folds on both sides, in one run: each system's
cross-validation AUC, logloss and classification error, and the wall time of the whole
cross-validation (the fold models and the main model; H2O-3's from its client, data already
parsed; ours from train_or_cross_validate(), data read included).

    .venv/bin/python benchmarks/search.py --skip-grid [--folds 5] [--no-h2o]
"""
import gzip
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT / "h2odl_mpi" / "datasets" / "airlines" / "allyears2k_headers.csv.gz"
RESPONSE = "IsDepDelayed"
LEAKS = ["ArrTime", "DepTime", "ActualElapsedTime", "AirTime", "ArrDelay", "DepDelay", "TaxiIn",
         "TaxiOut", "Cancelled", "CancellationCode", "Diverted", "CarrierDelay", "WeatherDelay",
         "NASDelay", "SecurityDelay", "LateAircraftDelay", "IsArrDelayed"]
EPOCHS = 2.0
SEED = 1
METRICS = ("auc", "logloss", "classification_error")


def ours(path, folds):
    from h2odl_mpi.params import validate
    from h2odl_mpi.workflows.cross_validation import train_or_cross_validate
    p = validate({"train": path, "response": RESPONSE, "ignored_columns": LEAKS, "epochs": EPOCHS, "seed": SEED,
                  "nfolds": folds, "fold_assignment": "Modulo", "quiet_mode": True, "threads": 2})
    t = time.perf_counter()
    run = train_or_cross_validate(p, None)
    wall = time.perf_counter() - t
    cv = run.metrics["cross_validation"]
    return {"system": "h2odl_mpi", "wall_s": wall, **{m: cv[m] for m in METRICS}}


def h2o3(path, folds):
    import h2o
    from h2o.estimators import H2ODeepLearningEstimator
    from benchmarks.peers.h2o_peer import H2OCluster
    with H2OCluster(nthreads=2):
        frame = h2o.import_file(path)
        frame[RESPONSE] = frame[RESPONSE].asfactor()
        x = [c for c in frame.columns if c not in LEAKS + [RESPONSE]]
        m = H2ODeepLearningEstimator(epochs=EPOCHS, seed=SEED, nfolds=folds, fold_assignment="Modulo")
        t = time.perf_counter()
        m.train(x=x, y=RESPONSE, training_frame=frame)
        wall = time.perf_counter() - t
        cv = m.model_performance(xval=True)
        err = cv.confusion_matrix().table.as_data_frame().iloc[-1]["Error"]
        return {"system": "H2O-3", "wall_s": wall, "auc": cv.auc(), "logloss": cv.logloss(),
                "classification_error": float(err)}


def cv_part(folds, with_h2o=True):
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "airlines.csv")
        Path(path).write_bytes(gzip.open(DATA).read())
        rows = [ours(path, folds)]
        if with_h2o:
            try:
                rows.append(h2o3(path, folds))
            except ImportError:
                print("H2O-3 skipped: pip install -r benchmarks/requirements.txt (h2o, with a Java runtime)")
    for r in rows:
        print(f"{r['system']:10s} {folds}-fold CV (Modulo): AUC {r['auc']:.4f}  logloss {r['logloss']:.4f}  "
              f"error {r['classification_error']:.4f}  wall {r['wall_s']:.1f} s")
    out = {"folds": folds, "fold_assignment": "Modulo", "epochs": EPOCHS, "results": rows}
    if len(rows) == 2:
        out["wall_ratio_h2o_over_ours"] = rows[1]["wall_s"] / rows[0]["wall_s"]
    return out
