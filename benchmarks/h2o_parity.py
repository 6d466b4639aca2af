"""Accuracy parity with H2O-3: the same data, the same parameters, several seeds, in one run.

For three data sets, h2odl_mpi and H2O-3 (the `h2o` package's bundled jar, a private local JVM)
each train H2O's default network (hidden 200,200 Rectifier, ADADELTA adaptive rate, every other
parameter at H2O's default) for the same epochs and seeds, with 2 threads each (`threads=2` here,
`nthreads=2` for H2O-3), and both score the same held-out test file afterwards:

| set | task | train / test | epochs | measured on the test file |
|---|---|---|---|---|
| mnist | 10 classes, response C785 | bundled train.csv.gz / test.csv.gz (10,000 rows each) | 2 | classification error, logloss |
| cal_housing | regression on medianHouseValue (US dollars) | the rows split once (seed 42): a random 3/4 train, 1/4 test | 10 | RMSE (dollars), r2 |
| airlines | binary IsDepDelayed, categoricals | airlines_auc.py's split (seed 42, 25 % test), its leak columns ignored | 2 | AUC, logloss |

Both systems train without a validation frame (so overwrite_with_best_model, early stopping and
the scoring schedule run on the training data on both sides, at H2O's defaults) and the test
metrics come from each one's model_performance(test) after training.  The split files are written
once to a temporary folder that both read.  Our models are all trained first, then one H2O-3 JVM
trains its models, so the two never share the CPUs.

The target (the issue's): our test classification error, RMSE and AUC are each no worse than
H2O-3's by more than H2O-3's own run-to-run spread (max - min over its seeds), comparing the
means over the seeds.  logloss and r2 are reported with the same comparison for information.

Writes benchmarks/results/h2o_parity.json and .md (with the CPU model and date) and prints the
Markdown table.

    .venv/bin/python benchmarks/h2o_parity.py [--seeds 1,2,3] [--epochs-scale 1] [--sets mnist,cal_housing,airlines]
"""
import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.airlines_auc import LEAKS, split as airlines_split  # noqa: E402

DATA = ROOT / "h2odl_mpi" / "datasets"
RESULTS = ROOT / "benchmarks" / "results"
THREADS = 2
NETWORK = {"hidden": [200, 200], "activation": "Rectifier", "adaptive_rate": True}
# metric: True when higher is better; the target metrics are the first of each set
SETS = {
    "mnist": {"response": "C785", "epochs": 2.0, "ignored": [],
              "metrics": [("classification_error", False), ("logloss", False)]},
    "cal_housing": {"response": "medianHouseValue", "epochs": 10.0, "ignored": [],
                    "metrics": [("rmse", False), ("r2", True)]},
    "airlines": {"response": "IsDepDelayed", "epochs": 2.0, "ignored": LEAKS,
                 "metrics": [("auc", True), ("logloss", False)]},
}
TARGET_METRIC = {name: s["metrics"][0][0] for name, s in SETS.items()}


def _log(msg):
    print(f"[h2o_parity] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- the data
def cal_housing_split(tmp, seed=42):
    """The California housing rows split once: a random quarter (seed 42) is the test file."""
    lines = (DATA / "cal_housing" / "cal_housing.csv").read_text().splitlines()
    header, rows = lines[0], [r for r in lines[1:] if r.strip()]
    perm = np.random.default_rng(seed).permutation(len(rows))
    n_test = len(rows) // 4
    parts = {"test": np.sort(perm[:n_test]), "train": np.sort(perm[n_test:])}
    paths = {}
    for name, idx in parts.items():
        p = Path(tmp) / f"cal_housing_{name}.csv"
        p.write_text(header + "\n" + "\n".join(rows[i] for i in idx) + "\n")
        paths[name] = str(p)
    return paths


def data_files(tmp):
    return {
        "mnist": {"train": str(DATA / "mnist" / "train.csv.gz"), "test": str(DATA / "mnist" / "test.csv.gz")},
        "cal_housing": cal_housing_split(tmp),
        "airlines": airlines_split(tmp),
    }


def _num(x):
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


# ----------------------------------------------------------------------------- h2odl_mpi
def ours(name, paths, epochs, seed):
    from h2odl_mpi.data.frame import Frame
    from h2odl_mpi.params import validate
    from h2odl_mpi.evaluation.performance import model_performance
    from h2odl_mpi.training.trainer import train
    s = SETS[name]
    p = validate({"train": paths["train"], "response": s["response"], "ignored_columns": list(s["ignored"]),
                  **NETWORK, "epochs": epochs, "seed": seed, "threads": THREADS, "quiet_mode": True})
    t = time.perf_counter()
    run = train(p, None)
    wall = time.perf_counter() - t
    perf = model_performance(run.network, run.model, run.info, Frame.read(paths["test"], comm=None),
                             None, threads=THREADS, params=run.params)
    test = {m: _num(getattr(perf, m)()) for m, _ in s["metrics"]}
    _log(f"ours  {name} seed {seed}: " + " ".join(f"{k} {v:.5g}" for k, v in test.items())
         + f" (epochs {run['epochs']:.3f}, {wall:.1f} s)")
    return {"seed": seed, "test": test, "epochs_done": run["epochs"], "training_samples": run["training_samples"],
            "stop_reason": run["stop_reason"], "train_wall_s": wall}


# ----------------------------------------------------------------------------- H2O-3
def h2o_frames(name, paths):
    import h2o
    s = SETS[name]
    kw = {"header": -1} if name == "mnist" else {}
    frames = {}
    for part in ("train", "test"):
        f = h2o.import_file(paths[part], destination_frame=f"{name}_{part}", **kw)
        if name != "cal_housing":
            f[s["response"]] = f[s["response"]].asfactor()
        frames[part] = f
    return frames


def h2o_run(name, frames, epochs, seed, keep_params=False):
    import h2o
    from h2o.estimators import H2ODeepLearningEstimator
    s = SETS[name]
    train, test = frames["train"], frames["test"]
    x = [c for c in train.columns if c not in list(s["ignored"]) + [s["response"]]]
    m = H2ODeepLearningEstimator(**NETWORK, epochs=epochs, seed=seed)
    t = time.perf_counter()
    m.train(x=x, y=s["response"], training_frame=train)
    wall = time.perf_counter() - t
    perf = m.model_performance(test)
    test_m = {}
    for metric, _ in s["metrics"]:
        if metric == "classification_error":  # the confusion matrix's total error (argmax class)
            test_m[metric] = _num(perf._metric_json["cm"]["table"].cell_values[-1][-2])
        else:
            test_m[metric] = _num(getattr(perf, metric)())
    hist = m.scoring_history()
    last = hist.iloc[-1] if hist is not None and len(hist) else {}
    out = {"seed": seed, "test": test_m, "epochs_done": _num(last.get("epochs")),
           "training_samples": _num(last.get("samples")), "train_wall_s": wall,
           "input_units": int(m._model_json["output"]["model_summary"]["units"][0])}
    if keep_params:
        out["actual_params"] = {k: v for k, v in m.actual_params.items()
                                if isinstance(v, (int, float, str, bool, list, type(None)))
                                and k not in ("ignored_columns",)}
    _log(f"H2O-3 {name} seed {seed}: " + " ".join(f"{k} {v:.5g}" for k, v in test_m.items())
         + f" (epochs {out['epochs_done']}, {wall:.1f} s)")
    h2o.remove(m)
    return out


def h2o_all(sets, files, epochs, seeds):
    from benchmarks.peers.h2o_peer import H2OCluster, _quiet_warnings, _stdout_to_stderr
    res = {}
    with H2OCluster(nthreads=THREADS) as cluster:
        version = cluster.version
        for name in sets:
            with _stdout_to_stderr(), _quiet_warnings():
                frames = h2o_frames(name, files[name])
                res[name] = [h2o_run(name, frames, epochs[name], seed, keep_params=(i == 0))
                             for i, seed in enumerate(seeds)]
    return res, version


# ----------------------------------------------------------------------------- the comparison
def stats(runs, metric):
    v = [r["test"][metric] for r in runs if r["test"].get(metric) is not None]
    if not v:
        return None
    return {"mean": float(np.mean(v)), "min": float(min(v)), "max": float(max(v)),
            "spread": float(max(v) - min(v)), "values": v}


def compare(name, ours_runs, h2o_runs):
    rows = []
    for metric, higher in SETS[name]["metrics"]:
        a, b = stats(ours_runs, metric), stats(h2o_runs, metric) if h2o_runs else None
        row = {"metric": metric, "higher_is_better": higher, "target": metric == TARGET_METRIC[name],
               "ours": a, "h2o": b}
        if a and b:
            worse_by = (b["mean"] - a["mean"]) if higher else (a["mean"] - b["mean"])
            row["ours_worse_by"] = worse_by  # negative: ours is better
            row["h2o_spread"] = b["spread"]
            row["within_spread"] = bool(worse_by <= b["spread"])
            row["miss_by"] = max(0.0, worse_by - b["spread"])
        rows.append(row)
    return rows


def _fmt(metric, x):
    if x is None:
        return "-"
    if metric == "rmse":
        return f"{x:,.0f}"
    if metric == "classification_error":
        return f"{100 * x:.2f}%"
    return f"{x:.4f}"


def _cell(metric, st):
    if not st:
        return "-"
    return f"{_fmt(metric, st['mean'])} ({_fmt(metric, st['min'])} - {_fmt(metric, st['max'])})"


def markdown(result):
    m = result["machine"]
    lines = [f"# H2O-3 parity: test metrics, mean (min - max) over seeds {result['seeds']}", "",
             f"{result['date_utc']}; CPU: {m.get('cpu_model')} ({m.get('nproc')} cores usable); "
             f"h2odl_mpi threads={THREADS} vs H2O-3 {result.get('h2o_version') or '-'} nthreads={THREADS}; "
             f"hidden 200,200 Rectifier, adaptive rate, H2O's defaults otherwise; "
             f"epochs: " + ", ".join(f"{k} {v:g}" for k, v in result["epochs"].items()) + ".", "",
             "| set | metric | h2odl_mpi | H2O-3 | ours worse by | H2O-3 spread | within spread |",
             "|---|---|---|---|---|---|---|"]
    for name, rows in result["comparison"].items():
        for r in rows:
            wb = r.get("ours_worse_by")
            within = r.get("within_spread")
            flag = "-" if within is None else ("yes" if within else f"**no** (by {_fmt(r['metric'], r['miss_by'])})")
            metric = r["metric"] + (" (target)" if r["target"] else "")
            lines.append(f"| {name} | {metric} | {_cell(r['metric'], r['ours'])} | {_cell(r['metric'], r['h2o'])} | "
                         f"{'-' if wb is None else _fmt(r['metric'], wb)} | "
                         f"{'-' if r.get('h2o_spread') is None else _fmt(r['metric'], r['h2o_spread'])} | {flag} |")
    t = result.get("target_met")
    lines += ["", "Target: our test classification error, RMSE and AUC each no worse than H2O-3's (means over "
              "the seeds) by more than H2O-3's own max - min over its seeds: "
              + ("not measured" if t is None else "**met**" if t else "**missed**") + ".",
              "'ours worse by' is negative where ours is better. Splits: cal_housing a random quarter "
              "(seed 42) as test; airlines airlines_auc.py's (seed 42, 25 % test, leak columns ignored); "
              "MNIST the bundled test file.", ""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="1,2,3", help="comma separated seeds (default 1,2,3)")
    ap.add_argument("--epochs-scale", type=float, default=1.0,
                    help="multiply every set's epochs (mnist 2, cal_housing 10, airlines 2) by this")
    ap.add_argument("--sets", default=",".join(SETS), help="comma separated subset of " + ",".join(SETS))
    ap.add_argument("--no-h2o", action="store_true", help="train only h2odl_mpi")
    ap.add_argument("--out", default=str(RESULTS / "h2o_parity"),
                    help="output path without suffix (.json and .md are written)")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    bad = [s for s in sets if s not in SETS]
    if bad:
        ap.error(f"unknown set(s) {bad}; known: {list(SETS)}")
    epochs = {n: SETS[n]["epochs"] * args.epochs_scale for n in sets}
    from benchmarks.peers.membw import machine_info
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="h2o_parity_") as tmp:
        files = data_files(tmp)
        ours_res = {n: [ours(n, files[n], epochs[n], seed) for seed in seeds] for n in sets}
        h2o_res, version = ({}, None) if args.no_h2o else h2o_all(sets, files, epochs, seeds)
    comparison = {n: compare(n, ours_res[n], h2o_res.get(n)) for n in sets}
    targets = [r["within_spread"] for rows in comparison.values() for r in rows
               if r["target"] and "within_spread" in r]
    result = {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(),
        "h2o_version": version,
        "threads": THREADS,
        "network": NETWORK,
        "seeds": seeds,
        "epochs_scale": args.epochs_scale,
        "epochs": epochs,
        "splits": {"mnist": "bundled train.csv.gz / test.csv.gz",
                   "cal_housing": "seed 42 permutation, first quarter test",
                   "airlines": "airlines_auc.split: seed 42, 25% test; ignored: leak columns"},
        "ignored_columns": {n: list(SETS[n]["ignored"]) for n in sets},
        "target": "test classification error, RMSE and AUC each no worse than H2O-3's (means) by more "
                  "than H2O-3's max - min over its seeds",
        "target_met": (all(targets) if targets and len(targets) == len(sets) else None),
        "comparison": comparison,
        "runs": {n: {"h2odl_mpi": ours_res[n], "h2o": h2o_res.get(n)} for n in sets},
        "total_wall_s": time.perf_counter() - t0,
    }
    md = markdown(result)
    print(md)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    out.with_suffix(".md").write_text(md)


if __name__ == "__main__":
    main()
