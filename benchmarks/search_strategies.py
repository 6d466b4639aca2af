"""Time to a tuned model (benchmarks/search.py calls `strategies_part`): RandomDiscrete,
Evolutionary and Halving on the same search space and seeds, on the MNIST pair, each a
`mpirun -n GROUPS python -m h2odl_mpi grid` with one rank (one thread) per group.

The space, after the tuning guide's part 2: hidden layouts, activation, input dropout, l1,
and ADADELTA's rho and epsilon (1,728 combinations), every model 1 epoch (Halving: rungs of
0.25, 0.5 and 1 epoch, eta 2).  The threshold is the validation (test) error that random
search reaches in about 1 of 20 models: the 5th percentile of all RandomDiscrete models'
errors, pooled over the repeats.  For each run: the models finished (culled ones included)
until the first one under the threshold, in finishing order, and the wall time to it from
the command's start.  Ranks beyond the machine's cores are oversubscribed: then wall times
say what each strategy costs in all, the model counts are what the target is about.

    .venv/bin/python benchmarks/search.py --skip-grid --skip-cv --strategies [--repeats 3]
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "h2odl_mpi" / "datasets" / "mnist"
SPACE = """[hyper_params]
hidden = [[32], [64], [128], [32, 32], [64, 64], [128, 128]]
activation = ["Rectifier", "Tanh", "RectifierWithDropout"]
input_dropout_ratio = [0.0, 0.1, 0.2, 0.3]
l1 = [0.0, 1e-5, 1e-4, 1e-3]
rho = [0.9, 0.95, 0.99]
epsilon = [1e-8, 1e-6]
"""
FIXED = """train = "{train}"
validation = "{test}"
response = "C785"
epochs = 1
threads = 1
reproducible = true
stopping_rounds = 0
classification_stop = -1
variable_importances = false
score_training_samples = 1000
"""
CRITERIA = {
    "RandomDiscrete": 'strategy = "RandomDiscrete"\n',
    "Evolutionary": 'strategy = "Evolutionary"\npopulation = 8\n',
    "Halving": 'strategy = "Halving"\nmin_epochs = 0.25\nreduction_factor = 2\n',
}


def run(tmp, strategy, seed, groups, max_models):
    grid = Path(tmp) / f"{strategy}_{seed}.toml"
    grid.write_text(FIXED.format(train=MNIST / "train.csv.gz", test=MNIST / "test.csv.gz") + SPACE +
                    f"[search_criteria]\n{CRITERIA[strategy]}max_models = {max_models}\nseed = {seed}\n"
                    'sort_by = "misclassification"\n')
    sd = Path(tmp) / f"sd_{strategy}_{seed}"
    cmd = [str(Path(sys.executable).parent / "mpirun"), "-n", str(groups), sys.executable, "-m", "h2odl_mpi",
           "grid", "--config", str(grid), "--search_dir", str(sd)]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    if r.returncode != 0:
        raise SystemExit(f"{strategy} seed {seed} failed:\n{r.stderr[-2000:]}")
    recs = [json.loads(p.read_text()) for p in (sd / "results").glob("*.json")]
    recs.sort(key=lambda x: x["finished"])
    return [{"error": ((x.get("metrics") or {}).get("validation") or {}).get("classification_error"),
             "status": x["status"], "at_s": x["finished"] - t0} for x in recs]


def to_threshold(models, threshold):
    """(models finished until the first under the threshold, seconds to it), or (None, None)."""
    for n, m in enumerate(models, 1):
        if m["error"] is not None and m["status"] == "done" and m["error"] <= threshold:
            return n, m["at_s"]
    return None, None


def strategies_part(repeats=3, groups=4, max_models=30):
    out = {"groups": groups, "max_models": max_models, "repeats": repeats, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for strategy in CRITERIA:
            out["runs"][strategy] = [run(tmp, strategy, seed, groups, max_models) for seed in range(1, repeats + 1)]
            print(f"{strategy}: {sum(len(r) for r in out['runs'][strategy])} models in {repeats} runs", flush=True)
    pooled = [m["error"] for r in out["runs"]["RandomDiscrete"] for m in r if m["error"] is not None]
    threshold = float(np.percentile(pooled, 5))
    out["threshold"] = threshold
    summary = {}
    for strategy, runs in out["runs"].items():
        hits = [to_threshold(r, threshold) for r in runs]
        n = [h[0] for h in hits]
        summary[strategy] = {"models_to_threshold": n, "seconds_to_threshold": [h[1] for h in hits],
                             "median_models": _median(n), "reached": sum(v is not None for v in n)}
        print(f"{strategy:15s} models to {100 * threshold:.2f}% validation error: {n} (median {_median(n)}); "
              f"seconds: {[None if s is None else round(s, 1) for s in summary[strategy]['seconds_to_threshold']]}")
    out["summary"] = summary
    return out


def _median(values):
    """The median, a run that never reached the threshold counting as larger than any."""
    big = [v if v is not None else float("inf") for v in values]
    m = float(np.median(big))
    return None if m == float("inf") else m
