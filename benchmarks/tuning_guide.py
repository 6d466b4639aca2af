"""The H2O Deep Learning performance tuning guide, rerun for h2odl_mpi and H2O-3 in one run.

Arno Candel's "Definitive Performance Tuning Guide for H2O Deep Learning" (parts 1 and 2), with
the guide's own parameter lists, on the bundled MNIST pair (h2odl_mpi/datasets/mnist/train.csv.gz
and test.csv.gz, response C785, 10,000 rows each; the guide used 60,000 training rows, so its
epochs trained 6x the rows they train here), for both systems in the same run, one after the
other for every configuration:

part 1, training speed (sections, as the guide's CSV files)
  network_topology             the 15 topologies, EPOCHS = 0.1
  scoring_overhead             1024,1024 with 7 scoring selections
  adaptive_rate                adaptive against manual rate and momentum
  train_samples_per_iteration  -2, 100, 1000, 6000
  activation_function          Rectifier, RectifierWithDropout, Tanh, TanhWithDropout
  large_deep_net               2500,2000,1500,1000,500: the external benchmark's 5 configurations
part 2, "what really matters": test error against training time, the 10 models (EPOCHS = 2)
tta, time to accuracy: h2odl_mpi scoring the test set while it trains (the scoring time counts)
  against PyTorch CPU mini-batch training (benchmarks/peers/torch_minibatch.py: Adam, batch
  128, torch.set_num_threads(2)), both for 784-200-200-10, the median of --repeats runs each,
  interleaved (ours, torch, ours, torch, ...).

What is measured (the guide's definitions)
- training time: the guide's clock, from the first training row to the end of model building,
  scoring during training INCLUDED. h2odl_mpi: the run summary's wall_time_s less
  startup_s.to_first_row (setup before the first row, which includes fitting the preprocessing
  and sampling the scoring rows, is reported apart as setup_s). H2O-3: the model's run_time
  (as the guide's R script reads it; it includes H2O's short setup).
- training speed = training samples / training time (the guide's); train_only_speed: samples
  per second of training alone (h2odl_mpi: summary samples_per_s; H2O-3: its training_speed).
- test error: classification error on the whole test set after training, not timed (the large
  deep net: its first --large-test-rows rows, the same rows for both systems).
- time to accuracy, h2odl_mpi: the run's scoring history (duration_s, validation error on the
  test set) read from its first training row, so the scoring time is included; the first
  scoring whose test error is at or below --threshold gives the time (with
  score_validation_samples > 0, the error of that sample of the test set). PyTorch: the cumulative
  training time (test evaluations excluded) after the first epoch at or below it. Data loading
  and setup are excluded on both sides. A run that never gets there counts as infinitely slow
  in the median (None when the median is such a run).

Every run of both systems: stopping_rounds=0 (epochs are the stopping criterion, as in the
guide's h2o-dev), variable_importances=false, the scoring parameters at H2O's defaults unless
the guide sets them (the H2O-3 peer's cheap-scoring settings are undone), overwrite_with_best_model
at its default (true), all cores (h2odl_mpi threads=0, H2O-3 nthreads = cores). Before every
measured run the script waits up to --quiet-wait seconds for a quiet machine and records how much
CPU other processes took while it ran (foreign_fraction; near 0 is clean).

Epochs: the guide's EPOCHS x --scale, the same for both systems, recorded in every row.
`--scale F` multiplies every section; `--scale SECTION=F` sets one section's own factor (default
1, except large_deep_net: 0.15, i.e. 1,500 rows, one iteration of its train_samples_per_iteration
=1500, where H2O-3 trains at a few rows per second). `--scale 6` trains the rows the guide trained
on 60,000.

Outputs (benchmarks/results/, prefix tuning_guide, tuning_guide_quick with --quick):
  <prefix>_<section>.csv for every section, <prefix>_time_to_accuracy.csv (one row a run) and
  <prefix>_time_to_accuracy_curves.csv (every scoring / evaluation), <prefix>.json (everything,
  with the machine, the settings and the medians), and with matplotlib the plots
  <prefix>_topology.png (training speed per topology, both systems) and <prefix>_part2.png
  (test error against training time: part 2 for both systems, plus the time-to-accuracy curves
  of h2odl_mpi and PyTorch mini-batch). Without matplotlib:
  .venv/bin/pip install matplotlib==3.11.2   (or: .venv/bin/pip install -r benchmarks/requirements.txt)

    .venv/bin/python benchmarks/tuning_guide.py                 # everything (about 2 h on 2 quiet cores)
    .venv/bin/python benchmarks/tuning_guide.py --quick         # smoke test, no H2O-3 (add --h2o)
    .venv/bin/python benchmarks/tuning_guide.py --parts tta --repeats 5 \\
        --ours-param train_samples_per_iteration=2500 --ours-param score_validation_samples=2000
    .venv/bin/python benchmarks/tuning_guide.py --parts 1 --sections network_topology --no-h2o
"""
import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.peers.membw import CpuMonitor, machine_info, wait_for_quiet  # noqa: E402
from benchmarks.peers.torch_minibatch import median_or_none, median_time  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
MNIST_REL = "h2odl_mpi/datasets/mnist"
TRAIN = ROOT / MNIST_REL / "train.csv.gz"
TEST = ROOT / MNIST_REL / "test.csv.gz"
RESPONSE = "C785"
LARGE = [2500, 2000, 1500, 1000, 500]
W2 = [1024, 1024]

# ----------------------------------------------------------------------------- the guide
# Each run: the guide's parameters (H2O names, the same for both systems); "epochs_x" is the
# guide's multiple of EPOCHS (5*EPOCHS in part 2), "validation_frame": True is
# validation_frame=test_hex.
TOPOLOGIES = [[64], [128], [256], [512], [1024],
              [64, 64], [128, 128], [256, 256], [512, 512], [1024, 1024],
              [64, 64, 64], [128, 128, 128], [256, 256, 256], [512, 512, 512], [1024, 1024, 1024]]
_RWD = {"activation": "RectifierWithDropout", "input_dropout_ratio": 0.2, "l1": 1e-5}
SECTIONS = {
    "network_topology": {"part": "1", "epochs": 0.1, "runs": [{"hidden": h} for h in TOPOLOGIES]},
    "scoring_overhead": {"part": "1", "epochs": 0.1, "runs": [
        {"hidden": W2, "validation_frame": True},
        {"hidden": W2, "score_training_samples": 60000, "score_duty_cycle": 1.0, "score_interval": 1.0},
        {"hidden": W2, "score_training_samples": 60000},
        {"hidden": W2, "score_training_samples": 10000},
        {"hidden": W2, "score_training_samples": 1000},
        {"hidden": W2, "score_training_samples": 100},
        {"hidden": W2, "score_training_samples": 100, "score_duty_cycle": 0.0, "score_interval": 10000.0}]},
    "adaptive_rate": {"part": "1", "epochs": 0.1, "runs": [
        {"hidden": W2, "score_training_samples": 100, "adaptive_rate": True},
        {"hidden": W2, "score_training_samples": 100, "adaptive_rate": True, "rho": 0.95, "epsilon": 1e-6},
        {"hidden": W2, "score_training_samples": 100, "adaptive_rate": False},
        {"hidden": W2, "score_training_samples": 100, "adaptive_rate": False, "rate": 1e-3,
         "momentum_start": 0.5, "momentum_ramp": 1e5, "momentum_stable": 0.99}]},
    "train_samples_per_iteration": {"part": "1", "epochs": 0.1, "runs": [
        {"hidden": W2, "score_training_samples": 100, "score_interval": 1.0, "train_samples_per_iteration": t}
        for t in (-2, 100, 1000, 6000)]},
    "activation_function": {"part": "1", "epochs": 0.1, "runs": [
        {"hidden": W2, "score_training_samples": 100, "train_samples_per_iteration": 1000, "activation": a}
        for a in ("Rectifier", "RectifierWithDropout", "Tanh", "TanhWithDropout")]},
    "large_deep_net": {"part": "1", "epochs": 1.0, "runs": [
        {"hidden": LARGE, "activation": "Tanh", "train_samples_per_iteration": 1500, "validation_frame": True},
        {"hidden": LARGE, "activation": "Tanh", "train_samples_per_iteration": 1500,
         "score_training_samples": 100, "score_duty_cycle": 0.0},
        {"hidden": LARGE, "activation": "Tanh", "train_samples_per_iteration": 1500, "adaptive_rate": False,
         "score_training_samples": 100, "score_duty_cycle": 0.0},
        {"hidden": LARGE, "activation": "Rectifier", "train_samples_per_iteration": 1500, "max_w2": 10.0,
         "score_training_samples": 100, "score_duty_cycle": 0.0},
        {"hidden": LARGE, "activation": "RectifierWithDropout", "train_samples_per_iteration": 1500,
         "adaptive_rate": False, "max_w2": 10.0, "score_training_samples": 100, "score_duty_cycle": 0.0}]},
    "what_really_matters": {"part": "2", "epochs": 2.0, "runs": [
        {},
        {"activation": "Tanh"},
        {"hidden": [512, 512]},
        {"epochs_x": 5, "hidden": [64, 128, 128]},
        {"epochs_x": 5, "hidden": [512, 512], **_RWD},
        {"epochs_x": 5, "hidden": [256, 256, 256], **_RWD},
        {"epochs_x": 5, "hidden": [200, 200, 200, 200], "activation": "RectifierWithDropout"},
        {"epochs_x": 5, "hidden": [200, 200], **_RWD},
        {"epochs_x": 5, "hidden": [100, 100, 100], **_RWD},
        {"epochs_x": 5, "hidden": [100, 100, 100, 100], **_RWD}]},
}
PART_OF = {name: s["part"] for name, s in SECTIONS.items()}
SECTION_SCALE = {"large_deep_net": 0.15}  # the default per-section factors (others 1)

# --quick: the first runs of each section (2 topologies), smaller wide nets, fractions of an epoch
QUICK_RUNS = 2
QUICK_HIDDEN = {tuple(W2): [128, 128], tuple(LARGE): [250, 200, 150, 100, 50]}
QUICK_SCALE = {"network_topology": 0.5, "scoring_overhead": 0.5, "adaptive_rate": 0.5,
               "train_samples_per_iteration": 0.5, "activation_function": 0.5, "large_deep_net": 0.15,
               "what_really_matters": 0.1}

# Both systems, every guide run: what the guide's h2o-dev did or what is not part of training.
COMMON = {"stopping_rounds": 0, "variable_importances": False, "quiet_mode": True}
# H2O-3's own defaults for what the H2O-3 peer otherwise sets for cheap scoring.
H2O_DEFAULTS = {"score_training_samples": 10000, "score_validation_samples": 0, "score_interval": 5.0,
                "score_duty_cycle": 0.1, "score_each_iteration": False, "overwrite_with_best_model": True,
                "hidden": [200, 200], "activation": "Rectifier", "adaptive_rate": True}
# The time-to-accuracy run of h2odl_mpi (each replaceable with --ours-param name=value)
TTA_OURS = {"hidden": [200, 200], "activation": "Rectifier", "epochs": 10.0, "score_interval": 1.0,
            "score_duty_cycle": 1.0, "score_training_samples": 1000, "score_validation_samples": 0,
            "stopping_rounds": 0, "variable_importances": False, "quiet_mode": True}
TTA_QUICK_EPOCHS = 2


def log(msg):
    print(f"[tuning_guide] {msg}", file=sys.stderr, flush=True)


def r_value(v):
    """A parameter value as the guide's R script writes it."""
    if isinstance(v, bool):
        return "T" if v else "F"
    if isinstance(v, (list, tuple)):
        return "c(" + ",".join(r_value(x) for x in v) + ")"
    if isinstance(v, float) and v == int(v) and abs(v) < 1e15 and not 0 < abs(v) < 1:
        return str(int(v)) if abs(v) < 1e5 else f"{v:g}"
    return f"{v:g}" if isinstance(v, float) else str(v)


def guide_parameters(cfg, epochs_guide):
    """The run's parameter list as the guide writes it (epochs: the guide's)."""
    out = []
    for k, v in cfg.items():
        if k == "epochs_x":
            continue
        if k == "validation_frame":
            out.append("validation_frame=test_hex")
            continue
        out.append(f"{k}={r_value(v)}")
        if k == "hidden":
            out.append(f"epochs={r_value(epochs_guide)}")
    if "hidden" not in cfg:
        out.insert(0, f"epochs={r_value(epochs_guide)}")
    return " ".join(out)


def training_params(cfg):
    """The guide's parameters as both systems take them (no epochs_x / validation flag)."""
    return {k: (list(v) if isinstance(v, list) else v) for k, v in cfg.items()
            if k not in ("epochs_x", "validation_frame")}


def cpu_title(m):
    return f"{m.get('cpu_model') or 'unknown CPU'}, {m.get('nproc')} cores"


def git_commit():
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return r.stdout.strip() or None
    except Exception:
        return None


def quiet(wait_s):
    return wait_for_quiet(max_wait_s=wait_s, log=log) if wait_s > 0 else {"quiet": None, "waited_s": 0.0}


def short_error(exc):
    """An error for the records: its type and message, no traceback (no local paths)."""
    text = f"{type(exc).__name__}: {exc}"
    return text.replace(str(ROOT) + os.sep, "").replace(str(ROOT), ".")[:500]


# ----------------------------------------------------------------------------- h2odl_mpi
class Ours:
    """h2odl_mpi through its Python API (comm=None: one process), the MNIST frames read once."""

    def __init__(self, threads, seed, quiet_wait):
        from h2odl_mpi.data.frame import Frame

        self.threads, self.seed, self.quiet_wait = threads, seed, quiet_wait
        t0 = time.perf_counter()
        self.train_frame = Frame.read(str(TRAIN))
        self.test_frame = Frame.read(str(TEST))
        self.read_s = time.perf_counter() - t0
        self._heads = {}

    def head(self, n):
        """The first n rows of the test frame (all of them when n is None or too large)."""
        if not n or n >= self.test_frame.n_rows:
            return self.test_frame
        if n not in self._heads:
            from h2odl_mpi.data.frame import Frame

            self._heads[n] = Frame.from_arrays({c: self.test_frame.decode(c, 0, n) for c in self.test_frame.names})
        return self._heads[n]

    def params(self, extra, validation):
        from h2odl_mpi.params import validate

        p = {"train": str(TRAIN), "response": RESPONSE, "seed": self.seed, "threads": self.threads, **COMMON}
        if validation:
            p["validation"] = str(TEST)
        p.update(extra)
        return validate(p)

    def test_error(self, run, frame):
        from h2odl_mpi.evaluation import metrics

        rows = run.info.rows(frame, training=False)
        out = run.network.predict(run.model, rows, "output", threads=run.summary["threads_per_rank"])
        prob = run.info.correct_probabilities(out)
        return metrics.classification_metrics(prob, rows.y, rows.weight)["classification_error"]

    def train(self, params, validation):
        from h2odl_mpi.training.trainer import train

        q = quiet(self.quiet_wait)
        with CpuMonitor() as mon:
            run = train(params, None, data=(self.train_frame, self.test_frame if validation else None))
        return run, q, mon.report()

    def run_guide(self, cfg, epochs, test_rows=None):
        validation = bool(cfg.get("validation_frame"))
        p = self.params({**training_params(cfg), "epochs": epochs}, validation)
        run, q, contention = self.train(p, validation)
        s = run.summary
        setup = s["startup_s"]["to_first_row"] or 0.0
        t = s["wall_time_s"] - setup
        frame = self.head(test_rows)
        t0 = time.perf_counter()
        err = self.test_error(run, frame)
        return {
            "network": "-".join(map(str, s["network"])),
            "training_samples": s["training_samples"], "epochs_done": s["epochs"],
            "training_time_s": t, "training_speed": s["training_samples"] / t if t > 0 else None,
            "train_only_speed": s["samples_per_s"], "scoring_time_s": s["scoring_time_s"], "setup_s": setup,
            "iterations": s["iterations"], "scoring_events": len(run.history),
            "test_error": err, "test_rows": frame.n_rows, "test_scoring_s": time.perf_counter() - t0,
            "threads": s["threads_per_rank"], "foreign_fraction": contention.get("foreign_fraction"),
            "quiet_before": q, "contention": contention, "truncated": False,
        }

    def run_tta(self, overrides, seed, threshold):
        extra = {**TTA_OURS, **overrides, "seed": seed}
        p = self.params(extra, validation=True)
        run, q, contention = self.train(p, True)
        s = run.summary
        setup = s["startup_s"]["to_first_row"] or 0.0
        curve, reached = [], None
        for h in run.history:
            e = h.get("validation_classification_error")
            pt = {"epochs": h["epochs"], "time_s": h["duration_s"] - setup, "duration_s": h["duration_s"],
                  "test_error": e, "samples": h["samples"]}
            curve.append(pt)
            if reached is None and e is not None and e <= threshold:
                reached = pt
        t0 = time.perf_counter()
        final = self.test_error(run, self.test_frame)
        return {
            "seed": seed, "curve": curve,
            "time_to_threshold_s": reached["time_s"] if reached else None,
            "epochs_to_threshold": reached["epochs"] if reached else None,
            "duration_s_at_threshold": reached["duration_s"] if reached else None,
            "final_test_error": final, "final_test_scoring_s": time.perf_counter() - t0,
            "final_time_s": s["wall_time_s"] - setup, "setup_s": setup,
            "training_samples": s["training_samples"], "epochs_done": s["epochs"],
            "train_only_speed": s["samples_per_s"], "scoring_time_s": s["scoring_time_s"],
            "scoring_events": len(run.history), "threads": s["threads_per_rank"],
            "validation_rows_scored": p["score_validation_samples"] or self.test_frame.n_rows,
            "foreign_fraction": contention.get("foreign_fraction"), "quiet_before": q, "contention": contention,
        }


# ----------------------------------------------------------------------------- H2O-3
class H2O:
    """H2O-3 through the H2O-3 peer (benchmarks/peers/h2o_peer.py): one private JVM for the run."""

    def __init__(self, nthreads, mem, seed, quiet_wait, max_runtime):
        self.nthreads, self.mem, self.seed = nthreads, mem, seed
        self.quiet_wait, self.max_runtime = quiet_wait, max_runtime
        self.cluster = None
        self.info = None
        self.failed = None  # why the cluster could not start: every later run fails at once

    def start(self):
        if self.failed:
            raise RuntimeError(f"H2O-3 did not start: {self.failed}")
        if self.cluster is None:
            from benchmarks.peers.h2o_peer import H2OCluster

            self.cluster = H2OCluster(nthreads=self.nthreads, max_mem_size=self.mem)
            try:
                self.cluster.start()
                self.cluster.frames()
            except Exception as exc:
                self.failed = short_error(exc)
                self.close()
                raise
            self.info = {"h2o_version": self.cluster.version, "nthreads": self.nthreads, "max_mem_size": self.mem,
                         "start_s": self.cluster.start_s, "parse_s": self.cluster.parse_s}
        return self.cluster

    def close(self):
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None

    def params(self, cfg, epochs):
        return {**H2O_DEFAULTS, **COMMON, "seed": self.seed, "max_runtime_secs": float(self.max_runtime),
                **training_params(cfg), "epochs": epochs}

    def run_guide(self, cfg, epochs, test_rows=None):
        from benchmarks.peers.h2o_peer import train_and_score

        r = train_and_score(self.start(), self.params(cfg, epochs), quiet_wait_s=self.quiet_wait,
                            test_rows=test_rows, validation=bool(cfg.get("validation_frame")))
        t = r["h2o_run_time_s"]
        samples = r["training_samples"]
        return {
            "network": "-".join(map(str, r["layers"])),
            "training_samples": samples, "epochs_done": r["epochs_done"],
            "training_time_s": t, "training_speed": samples / t if t else None,
            "train_only_speed": r["samples_per_s"], "scoring_time_s": r["scoring_and_setup_s"], "setup_s": None,
            "iterations": r["iterations"], "scoring_events": r["scoring_events"],
            "test_error": r["test"]["classification_error"], "test_rows": r["test"]["rows"],
            "test_scoring_s": r["test_scoring_wall_s"], "threads": self.nthreads,
            "foreign_fraction": (r.get("contention_during_training") or {}).get("foreign_fraction"),
            "quiet_before": r.get("quiet_before"), "contention": r.get("contention_during_training"),
            "truncated": r["truncated"], "h2o_duration_s": r["h2o_duration_s"], "train_wall_s": r["train_wall_s"],
        }


# ----------------------------------------------------------------------------- PyTorch
def run_torch(args, seed, epochs):
    """One PyTorch mini-batch run in its own process (its own OpenMP pool, 2 threads)."""
    cmd = [sys.executable, "-m", "benchmarks.peers.torch_minibatch", "--json", "--repeats", "1",
           "--seed", str(seed), "--epochs", str(epochs), "--threshold", str(args.threshold),
           "--threads", str(args.torch_threads), "--quiet-wait", str(args.quiet_wait)]
    try:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=args.torch_timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.torch_timeout} s"}
    if r.returncode != 0:
        return {"error": (r.stderr or r.stdout)[-800:].replace(str(ROOT), ".")}
    res = json.loads(r.stdout[r.stdout.index("{"):])
    run = res["runs"][0]
    curve = [{"epochs": p["epochs"], "time_s": p["train_s"], "test_error": p["test_error"]} for p in run["curve"]]
    return {"seed": seed, "curve": curve, "time_to_threshold_s": run["time_to_threshold_s"],
            "epochs_to_threshold": run["epochs_to_threshold"], "final_test_error": run["final_test_error"],
            "final_time_s": run["final_train_s"], "train_only_speed": run["samples_per_s"],
            "epochs_done": run["epochs_done"], "foreign_fraction": run["contention"].get("foreign_fraction"),
            "quiet_before": run.get("quiet_before"), "contention": run["contention"],
            "_settings": res["settings"], "_torch_version": res["torch_version"]}


# ----------------------------------------------------------------------------- the parts
def scaled_sections(args):
    """[(name, section, runs, scale)] of the chosen parts and sections."""
    out = []
    for name, sec in SECTIONS.items():
        if sec["part"] not in args.parts or (args.sections and name not in args.sections):
            continue
        runs = [dict(r) for r in sec["runs"]]
        if args.quick:
            runs = runs[:QUICK_RUNS]
            for r in runs:
                if "hidden" in r and tuple(r["hidden"]) in QUICK_HIDDEN:
                    r["hidden"] = QUICK_HIDDEN[tuple(r["hidden"])]
        factor = args.section_scale.get(name, (QUICK_SCALE if args.quick else SECTION_SCALE).get(name, 1.0))
        out.append((name, sec, runs, args.scale * factor))
    return out


def run_section(name, sec, runs, scale, ours, h2o, args):
    rows = []
    test_rows = args.large_test_rows if name == "large_deep_net" else None
    for i, cfg in enumerate(runs, 1):
        epochs_guide = sec["epochs"] * cfg.get("epochs_x", 1)
        epochs = epochs_guide * scale
        base = {"section": name, "part": sec["part"], "index": i, "parameters": guide_parameters(cfg, epochs_guide),
                "hidden": ",".join(map(str, cfg.get("hidden", H2O_DEFAULTS["hidden"]))),
                "epochs_guide": epochs_guide, "scale": scale, "epochs": epochs}
        systems = [("h2odl_mpi", ours)] + ([("H2O-3", h2o)] if h2o is not None else [])
        for system, runner in systems:
            log(f"{name} {i}/{len(runs)} {system}: {base['parameters']} (epochs {epochs:g})")
            try:
                res = runner.run_guide(cfg, epochs, test_rows)
            except Exception as exc:  # one failed run is recorded, the others go on
                traceback.print_exc(file=sys.stderr)
                res = {"error": short_error(exc)}
            row = {**base, "system": system, **res}
            if "error" not in res:
                log(f"  {res['training_samples']:.0f} samples in {res['training_time_s']:.2f} s: "
                    f"{res['training_speed']:.1f} samples/s, test error {res['test_error']:.4f}")
            rows.append(row)
    return rows


def tta(ours, args):
    """Time to accuracy: h2odl_mpi and PyTorch mini-batch, interleaved, median of --repeats."""
    epochs_torch = args.torch_epochs
    overrides = dict(args.ours_params)
    if args.quick and "epochs" not in overrides:
        overrides["epochs"] = float(TTA_QUICK_EPOCHS)
    out = {"threshold": args.threshold, "repeats": args.repeats, "ours": {"runs": []}, "torch": {"runs": []}}
    for r in range(args.repeats):
        seed = args.seed + r
        log(f"time to accuracy {r + 1}/{args.repeats}: h2odl_mpi (seed {seed})")
        try:
            res = ours.run_tta(overrides, seed, args.threshold)
            log(f"  to {args.threshold:.1%}: " + (f"{res['time_to_threshold_s']:.2f} s" if res["time_to_threshold_s"]
                                                   is not None else "not reached")
                + f"; final test error {res['final_test_error']:.4f} after {res['final_time_s']:.2f} s")
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            res = {"seed": seed, "error": short_error(exc)}
        out["ours"]["runs"].append(res)
        if not args.no_torch:
            log(f"time to accuracy {r + 1}/{args.repeats}: PyTorch mini-batch (seed {seed})")
            res = run_torch(args, seed, epochs_torch)
            if "error" in res:
                log(f"  failed: {res['error'][-300:]}")
            else:
                out["torch"]["settings"] = res.pop("_settings")
                out["torch"]["torch_version"] = res.pop("_torch_version")
                log(f"  to {args.threshold:.1%}: " + (f"{res['time_to_threshold_s']:.2f} s"
                                                       if res["time_to_threshold_s"] is not None else "not reached")
                    + f"; final test error {res['final_test_error']:.4f} after {res['final_time_s']:.2f} s")
            out["torch"]["runs"].append(res)
    from h2odl_mpi.params import validate

    p = validate({"train": "train.csv.gz", "validation": "test.csv.gz", "response": RESPONSE,
                  "threads": args.threads, **TTA_OURS, **overrides})
    out["ours"]["settings"] = {k: p[k] for k in sorted({*TTA_OURS, *overrides, "threads",
                                                         "train_samples_per_iteration"}) if k in p}
    out["ours"]["overrides"] = overrides
    out["torch"]["epochs"] = epochs_torch
    for side in ("ours", "torch"):
        ok = [x for x in out[side]["runs"] if "error" not in x]
        out[side]["median"] = {
            "time_to_threshold_s": median_time([x["time_to_threshold_s"] for x in ok]) if ok else None,
            "epochs_to_threshold": median_time([x["epochs_to_threshold"] for x in ok]) if ok else None,
            "reached": sum(x["time_to_threshold_s"] is not None for x in ok), "runs": len(ok),
            "final_test_error": median_or_none([x["final_test_error"] for x in ok]),
            "final_time_s": median_or_none([x["final_time_s"] for x in ok]),
        }
        if side == "ours":
            out[side]["median"]["setup_s"] = median_or_none([x["setup_s"] for x in ok])
    a, b = out["ours"]["median"]["time_to_threshold_s"], out["torch"]["median"]["time_to_threshold_s"]
    out["torch_time_over_ours"] = b / a if a and b else None
    return out


# ----------------------------------------------------------------------------- outputs
SECTION_KEYS = ["section", "part", "index", "system", "parameters", "hidden", "epochs_guide", "scale", "epochs", "network",
                "training_samples", "epochs_done", "training_time_s", "training_speed", "train_only_speed",
                "scoring_time_s", "setup_s", "iterations", "scoring_events", "test_error", "test_rows",
                "threads", "foreign_fraction", "truncated", "error"]
TTA_KEYS = ["system", "repeat", "seed", "threshold", "time_to_threshold_s", "epochs_to_threshold",
            "final_test_error", "final_time_s", "setup_s", "epochs_done", "train_only_speed",
            "scoring_time_s", "scoring_events", "validation_rows_scored", "foreign_fraction", "error"]


def fmt(v, spec):
    return "" if v is None else format(v, spec)


def section_table(name, rows, h2o_on):
    lines = [f"{name} (part {PART_OF[name]}; time: training time in s, scoring included; samples/s: the guide's "
             "training speed; speed ratio: h2odl_mpi / H2O-3)",
             "| # | parameters | epochs | h2odl_mpi s | samples/s | test err |"
             + (" H2O-3 s | samples/s | test err | speed ratio |" if h2o_on else ""),
             "|---|---|---|---|---|---|" + ("---|---|---|---|" if h2o_on else "")]
    for i in sorted({r["index"] for r in rows}):
        o = next((r for r in rows if r["index"] == i and r["system"] == "h2odl_mpi"), {})
        h = next((r for r in rows if r["index"] == i and r["system"] == "H2O-3"), {})
        base = o or h

        def cells(r):
            if "error" in r:
                return ["failed", "", ""]
            if not r:
                return ["", "", ""]
            return [fmt(r["training_time_s"], ".2f"), fmt(r["training_speed"], ",.0f"),
                    fmt(100 * r["test_error"], ".2f") + "%"]
        line = [str(i), base.get("parameters", ""), fmt(base.get("epochs"), "g")] + cells(o)
        if h2o_on:
            ratio = (o["training_speed"] / h["training_speed"]
                     if o.get("training_speed") and h.get("training_speed") else None)
            line += cells(h) + [fmt(ratio, ".1f") + ("x" if ratio else "")]
        lines.append("| " + " | ".join(line) + " |")
    return "\n".join(lines)


def tta_table(t):
    lines = [f"time to {t['threshold']:.1%} test error, median of {t['repeats']} (reached / runs), "
             "final test error, time of the whole run"]
    for side, label in (("ours", "h2odl_mpi (scoring included)"), ("torch", "PyTorch mini-batch (eval excluded)")):
        m = t[side].get("median")
        if not m or not m["runs"]:
            continue
        tt = m["time_to_threshold_s"]
        lines.append(f"  {label}: " + (f"{tt:.2f} s" if tt is not None else "not reached")
                     + f" ({m['reached']}/{m['runs']}), epochs {fmt(m['epochs_to_threshold'], '.2f') or '-'}; "
                     f"final {100 * m['final_test_error']:.2f}% after {m['final_time_s']:.2f} s")
    return "\n".join(lines)


def write_outputs(prefix, summary):
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name, rows in summary["sections"].items():
        with open(RESULTS / f"{prefix}_{name}.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=SECTION_KEYS, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
    t = summary.get("time_to_accuracy")
    if t:
        with open(RESULTS / f"{prefix}_time_to_accuracy.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=TTA_KEYS, extrasaction="ignore")
            w.writeheader()
            for side, label in (("ours", "h2odl_mpi"), ("torch", "PyTorch mini-batch")):
                for i, r in enumerate(t[side]["runs"], 1):
                    w.writerow({**r, "system": label, "repeat": i, "threshold": t["threshold"]})
        with open(RESULTS / f"{prefix}_time_to_accuracy_curves.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["system", "repeat", "seed", "point", "epochs", "time_s", "test_error"])
            for side, label in (("ours", "h2odl_mpi"), ("torch", "PyTorch mini-batch")):
                for i, r in enumerate(t[side]["runs"], 1):
                    for k, p in enumerate(r.get("curve", []), 1):
                        w.writerow([label, i, r.get("seed"), k, p["epochs"], p["time_s"], p["test_error"]])
    with open(RESULTS / f"{prefix}.json", "w") as f:
        json.dump(summary, f, indent=2, default=str)


def plots(prefix, summary):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing, so no plots: .venv/bin/pip install matplotlib==3.11.2 "
              "(or .venv/bin/pip install -r benchmarks/requirements.txt)")
        return []
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}")
    written = []
    title_cpu = cpu_title(summary["machine"])
    colors = {"h2odl_mpi": "tab:blue", "H2O-3": "tab:orange", "torch": "tab:green"}
    topo = summary["sections"].get("network_topology")
    if topo:
        idx = sorted({r["index"] for r in topo})
        labels = {r["index"]: r["hidden"] for r in topo}
        systems = [s for s in ("h2odl_mpi", "H2O-3") if any(r["system"] == s for r in topo)]
        fig, ax = plt.subplots(figsize=(9, 0.45 * len(idx) + 2.5))
        h = 0.8 / len(systems)
        for k, s in enumerate(systems):
            ys, speed, only = [], [], []
            for j, i in enumerate(idx):
                r = next((r for r in topo if r["index"] == i and r["system"] == s and "error" not in r), None)
                if r and r.get("training_speed"):
                    y = j + (k - (len(systems) - 1) / 2) * h
                    ys.append(y)
                    speed.append(r["training_speed"])
                    if r.get("train_only_speed"):
                        only.append((r["train_only_speed"], y))
            ax.barh(ys, speed, height=h, color=colors[s], label=f"{s}: samples / training time (scoring included)")
            if only:
                ax.plot([o[0] for o in only], [o[1] for o in only], "k|", markersize=9,
                        label="the same, training alone (scoring excluded)" if k == 0 else None)
        ax.set_yticks(range(len(idx)))
        ax.set_yticklabels([labels[i] for i in idx])
        ax.invert_yaxis()
        ax.set_xscale("log")
        lows = [r["training_speed"] for r in topo if r.get("training_speed")]
        if lows:
            ax.set_xlim(left=10 ** math.floor(math.log10(min(lows) / 2)))
        ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("training speed (samples/s, more is faster)")
        ax.set_ylabel("hidden layers")
        sc = topo[0]
        ax.set_title(f"Training speed per topology, {sc['epochs']:g} epochs (guide {sc['epochs_guide']:g} x scale "
                     f"{sc['scale']:g}), MNIST 10k\n{title_cpu}", fontsize=10)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12 - 1.2 / (0.45 * len(idx) + 2)),
                  ncol=2, frameon=False)
        ax.grid(axis="x", alpha=0.3, which="both")
        fig.tight_layout()
        path = RESULTS / f"{prefix}_topology.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    part2 = summary["sections"].get("what_really_matters")
    t = summary.get("time_to_accuracy")
    if part2 or t:
        fig, ax = plt.subplots(figsize=(9, 6))
        for s, marker in (("h2odl_mpi", "o"), ("H2O-3", "s")):
            pts = [r for r in (part2 or []) if r["system"] == s and "error" not in r]
            if pts:
                ax.scatter([r["training_time_s"] for r in pts], [100 * r["test_error"] for r in pts],
                           color=colors[s], marker=marker, s=40, zorder=3,
                           label=f"{s}: part 2 models (time incl. scoring)")
                for r in pts:
                    ax.annotate(str(r["index"]), (r["training_time_s"], 100 * r["test_error"]), fontsize=7,
                                xytext=(3, 3), textcoords="offset points", color=colors[s])
        if t:
            for side, label, color in (("ours", "h2odl_mpi time to accuracy (scoring incl.)", colors["h2odl_mpi"]),
                                       ("torch", "PyTorch mini-batch Adam/128 (eval excl.)", colors["torch"])):
                runs = [r for r in t[side]["runs"] if "error" not in r and r.get("curve")]
                for k, r in enumerate(runs):
                    c = [p for p in r["curve"] if p["test_error"] is not None and p["time_s"] > 0]
                    ax.plot([p["time_s"] for p in c], [100 * p["test_error"] for p in c], "-", color=color,
                            alpha=0.4, lw=1, marker=".",
                            label=label + f", {len(runs)} runs" if k == 0 else None)
                m = t[side].get("median", {})
                if m.get("time_to_threshold_s"):
                    ax.plot([m["time_to_threshold_s"]], [100 * t["threshold"]], marker="*", markersize=14,
                            color=color, markeredgecolor="k", zorder=4,
                            label=f"median time to {t['threshold']:.0%}: {m['time_to_threshold_s']:.2f} s")
            ax.axhline(100 * t["threshold"], color="gray", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("training time (s, log scale)")
        ax.set_ylabel("test set error (%)")
        errs = [100 * r["test_error"] for r in (part2 or []) if r.get("test_error") is not None]
        for side in ("ours", "torch"):
            errs += [100 * p["test_error"] for r in (t or {}).get(side, {}).get("runs", [])
                     for p in r.get("curve", []) if p.get("test_error") is not None]
        ax.set_ylim(0, min(max(errs + [100 * (t or {}).get("threshold", 0.1)]) * 1.1 + 1, 100))
        sc = f", part 2 epochs x {part2[0]['scale']:g}" if part2 else ""
        ax.set_title(f"Test error vs training time (lower left is better), MNIST 10k{sc}\n{title_cpu}", fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
        fig.tight_layout()
        path = RESULTS / f"{prefix}_part2.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


# ----------------------------------------------------------------------------- main
def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="sections: " + ", ".join(SECTIONS))
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 2 runs a section (2 topologies), smaller wide nets, fractions of an "
                         "epoch, 1 repeat, no H2O-3 unless --h2o")
    ap.add_argument("--h2o", action="store_true", help="with --quick: run H2O-3 too")
    ap.add_argument("--no-h2o", action="store_true", help="skip H2O-3")
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    ap.add_argument("--parts", default="1,2,tta", help="comma list of 1, 2, tta (default: all)")
    ap.add_argument("--sections", help="only these sections of the chosen parts (comma list)")
    ap.add_argument("--scale", action="append", default=[], metavar="F|SECTION=F",
                    help="epochs factor for both systems: F for every section, SECTION=F for one section's "
                         "own factor (default 1; large_deep_net 0.15); repeatable")
    ap.add_argument("--repeats", type=int, help="time-to-accuracy runs per system (default 5; --quick 1)")
    ap.add_argument("--threshold", type=float, default=0.10, help="test error for the time to accuracy")
    ap.add_argument("--ours-param", action="append", default=[], metavar="NAME=VALUE",
                    help="an h2odl_mpi parameter of the time-to-accuracy run (as on its command line), "
                         "repeatable; defaults: " + " ".join(f"{k}={r_value(v)}" for k, v in TTA_OURS.items()))
    ap.add_argument("--torch-epochs", type=int, help="PyTorch epochs of the time to accuracy (default 10; --quick 2)")
    ap.add_argument("--torch-threads", type=int, default=2)
    ap.add_argument("--torch-timeout", type=float, default=1800.0)
    ap.add_argument("--threads", type=int, default=0, help="h2odl_mpi kernel threads (0: all cores)")
    ap.add_argument("--h2o-nthreads", type=int, help="H2O-3 nthreads (default: the cores this process may use)")
    ap.add_argument("--h2o-mem", default="4G", help="H2O-3 max_mem_size (the guide's 4g)")
    ap.add_argument("--h2o-max-runtime", type=float, default=3600.0,
                    help="H2O-3 max_runtime_secs of each run, a bound (a run that hits it is marked truncated)")
    ap.add_argument("--large-test-rows", type=int, default=2000,
                    help="large_deep_net: test error on the first N test rows (both systems; 0: all)")
    ap.add_argument("--quiet-wait", type=float,
                    help="before each run wait up to this many seconds for a quiet machine (default 30; --quick 0)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out-prefix", help="output file prefix in benchmarks/results (default tuning_guide, "
                                         "--quick: tuning_guide_quick)")
    args = ap.parse_args(argv)

    args.parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    bad = args.parts - {"1", "2", "tta"}
    if bad or not args.parts:
        ap.error(f"--parts: expected a comma list of 1, 2, tta; got {sorted(bad)}")
    args.sections = {s.strip() for s in args.sections.split(",") if s.strip()} if args.sections else None
    if args.sections and args.sections - set(SECTIONS):
        ap.error(f"--sections: unknown {sorted(args.sections - set(SECTIONS))}; known: {', '.join(SECTIONS)}")
    args.section_scale, global_scale = {}, 1.0
    for s in args.scale:
        try:
            if "=" in s:
                k, v = s.split("=", 1)
                if k.strip() not in SECTIONS:
                    ap.error(f"--scale {s}: unknown section {k.strip()!r}; known: {', '.join(SECTIONS)}")
                args.section_scale[k.strip()] = float(v)
            else:
                global_scale = float(s)
        except ValueError:
            ap.error(f"--scale: expected F or SECTION=F, got {s!r}")
    if not (global_scale > 0 and all(v > 0 for v in args.section_scale.values())):
        ap.error("--scale factors must be > 0")
    args.scale = global_scale
    args.repeats = args.repeats if args.repeats is not None else (1 if args.quick else 5)
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    args.torch_epochs = args.torch_epochs or (TTA_QUICK_EPOCHS if args.quick else 10)
    args.quiet_wait = args.quiet_wait if args.quiet_wait is not None else (0.0 if args.quick else 30.0)
    args.use_h2o = not args.no_h2o and (args.h2o or not args.quick)
    if args.h2o_nthreads is None:
        args.h2o_nthreads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    args.out_prefix = args.out_prefix or ("tuning_guide_quick" if args.quick else "tuning_guide")
    if not 0 < args.threshold < 1:
        ap.error("--threshold must be in (0, 1)")

    # --ours-param: parsed and checked now, not after an hour of part 1
    from h2odl_mpi.errors import UserError
    from h2odl_mpi.params import ALIASES, SPEC, closest, parse_value, validate

    args.ours_params = {}
    for kv in args.ours_param:
        if "=" not in kv:
            ap.error(f"--ours-param wants NAME=VALUE, got {kv!r}")
        k, v = (x.strip() for x in kv.split("=", 1))
        k = k.lstrip("-").replace("-", "_")
        k = ALIASES.get(k, k)
        if k not in SPEC:
            near = closest(k)
            ap.error(f"--ours-param: unknown h2odl_mpi parameter {k!r}" + (f" (did you mean {near}?)" if near else ""))
        if k in ("train", "validation", "response", "seed"):
            ap.error(f"--ours-param {k}: set by the benchmark (the MNIST pair, --seed)")
        try:
            args.ours_params[k] = parse_value(k, v)
        except UserError as e:
            ap.error(f"--ours-param: {e}")
    try:
        validate({"train": "train.csv.gz", "validation": "test.csv.gz", "response": RESPONSE,
                  "threads": args.threads, **TTA_OURS, **args.ours_params})
    except UserError as e:
        ap.error(f"--ours-param: {e}")
    return args


def main(argv=None):
    args = parse_args(argv)
    t_start = time.perf_counter()
    from h2odl_mpi._kernel import ffi, lib

    m = machine_info()  # the CPU model from /proc/cpuinfo, the cores this process may use
    sections = scaled_sections(args)
    summary = {
        "benchmark": "H2O Deep Learning performance tuning guide (parts 1 and 2) and time to accuracy",
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "benchmarks/tuning_guide.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "git_commit": git_commit(),
        "quick": args.quick,
        "machine": m,
        "cpu": {"model": m.get("cpu_model"), "cores": m.get("nproc"), "cpu_count": m.get("cpu_count")},
        "data": {"train": f"{MNIST_REL}/train.csv.gz", "test": f"{MNIST_REL}/test.csv.gz", "response": RESPONSE,
                 "rows": 10000, "note": "the guide used 60,000 training rows: its epochs trained 6x these rows"},
        "scale": {"global": args.scale,
                  "per_section": {name: scale for name, _, _, scale in sections},
                  "note": "epochs = the guide's EPOCHS x scale, the same for both systems"},
        "settings": {
            "both": COMMON,
            "h2odl_mpi": {"threads": args.threads, "isa": ffi.string(lib.h2o_isa()).decode(),
                          "api": "h2odl_mpi.training.trainer.train(validate(params), comm=None)",
                          "time": "summary wall_time_s - startup_s.to_first_row (scoring included)"},
            "h2o": ({"defaults": H2O_DEFAULTS, "nthreads": args.h2o_nthreads, "max_mem_size": args.h2o_mem,
                     "max_runtime_secs": args.h2o_max_runtime, "seed": args.seed,
                     "time": "model run_time (scoring included)"} if args.use_h2o else None),
            "large_test_rows": args.large_test_rows,
            "quiet_wait_s": args.quiet_wait,
        },
        "columns": {
            "training_time_s": "the guide's training time: first training row to the end of model building, "
                               "scoring included (h2odl_mpi: wall_time_s - startup_s.to_first_row; H2O-3: run_time)",
            "training_speed": "training_samples / training_time_s (the guide's)",
            "train_only_speed": "samples/s of training alone (h2odl_mpi: summary samples_per_s; H2O-3: training_speed)",
            "scoring_time_s": "h2odl_mpi: scoring during training; H2O-3: duration - samples/training_speed "
                              "(scoring and setup)",
            "setup_s": "h2odl_mpi: train() start to the first training row (not in training_time_s)",
            "test_error": "classification error on the test set after training (not timed); test_rows rows",
            "foreign_fraction": "CPU used by other processes during the run / (wall x cores); near 0 is clean",
        },
        "sections": {},
        "tables": {},
    }
    prefix = args.out_prefix
    ours = Ours(args.threads, args.seed, args.quiet_wait)
    h2o = H2O(args.h2o_nthreads, args.h2o_mem, args.seed, args.quiet_wait, args.h2o_max_runtime) \
        if args.use_h2o and sections else None
    try:
        for name, sec, runs, scale in sections:
            rows = run_section(name, sec, runs, scale, ours, h2o, args)
            summary["sections"][name] = rows
            summary["tables"][name] = section_table(name, rows, h2o is not None)
            print(summary["tables"][name] + "\n", flush=True)
            if h2o is not None and h2o.info:
                summary["settings"]["h2o"]["cluster"] = h2o.info
            write_outputs(prefix, summary)
    finally:
        if h2o is not None:
            h2o.close()
    if "tta" in args.parts:
        t = tta(ours, args)
        summary["time_to_accuracy"] = t
        summary["tables"]["time_to_accuracy"] = tta_table(t)
        print(summary["tables"]["time_to_accuracy"] + "\n", flush=True)
    summary["benchmark_wall_s"] = time.perf_counter() - t_start
    write_outputs(prefix, summary)
    for path in plots(prefix, summary):
        print(f"wrote {path.relative_to(ROOT)}")
    print(f"wrote benchmarks/results/{prefix}.json and {prefix}_*.csv "
          f"({summary['benchmark_wall_s'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
