"""H2O-3 Deep Learning as the peer: training samples/s and test error on the bundled MNIST pair.

A local one-node H2O-3 cluster (the JVM bundled with the `h2o` package, `nthreads=2` by default,
bound to the loopback interface on a free port, assertions off) trains H2ODeepLearningEstimator on
h2odl_mpi/datasets/mnist/train.csv.gz (response C785 as a factor; H2O drops the constant pixel
columns itself, ignore_const_cols=true) and scores the model on test.csv.gz.

What is measured
- samples_per_s: H2O's own training speed from the last row of the model's scoring history
  ("training_speed"), i.e. H2O's `processed samples / (training time - scoring time - setup
  time)`. Cluster start, parsing, and H2O's own scoring are all excluded.
- h2o_duration_s: H2O's `duration` of that row (training + scoring + setup, in the JVM);
  implied_train_s = samples / samples_per_s; scoring_and_setup_s = the difference.
- train_wall_s: client wall time of `model.train(...)` (includes job start, polling, final
  scoring); samples_per_s_wall = samples / train_wall_s.
- test: classification error, logloss, MSE from `model.model_performance(test)` (not timed as
  training).
H2O finishes its last iteration past the requested epochs (the samples per iteration are
auto-tuned), so `epochs_done` / `training_samples` are what was actually trained.

Scoring is made cheap and is recorded in `params`: no validation frame during training,
score_training_samples=1000, score_duty_cycle=0 and score_interval=1e6 (so H2O scores only once,
at the end), overwrite_with_best_model=false (the model is the one after the last epoch),
stopping_rounds=0. Every other parameter is H2O's default unless given.

    python -m benchmarks.peers.h2o_peer --hidden 200,200 --activation Rectifier --epochs 2 --json
    python -m benchmarks.peers.h2o_peer --preset all --json --out peers_h2o.json  # one JVM
    python -m benchmarks.peers.h2o_peer --hidden 64 --param l1=1e-5 --param input_dropout_ratio=0.2

From Python (several configs in one JVM):

    from benchmarks.peers.h2o_peer import H2OCluster, train_and_score
    with H2OCluster(nthreads=2) as cluster:
        a = train_and_score(cluster, {"hidden": [200, 200], "activation": "Rectifier", "epochs": 2})
        b = train_and_score(cluster, {"hidden": [1024, 1024], "epochs": 0.2})
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.peers.membw import CpuMonitor, emit, machine_info, wait_for_quiet

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MNIST_DIR = PROJECT_ROOT / "h2odl_mpi" / "datasets" / "mnist"
RESPONSE = "C785"

# Cheap scoring, fixed for every benchmark run (and recorded with the results).
SCORING_DEFAULTS = {
    "score_training_samples": 1000,
    "score_validation_samples": 0,  # no validation frame is passed during training anyway
    "score_interval": 1e6,
    "score_duty_cycle": 0.0,
    "score_each_iteration": False,
    "overwrite_with_best_model": False,
    "stopping_rounds": 0,
    "variable_importances": False,
    "quiet_mode": True,
}
BASE_DEFAULTS = {
    "hidden": [200, 200],
    "activation": "Rectifier",
    "epochs": 2.0,
    "adaptive_rate": True,
    "seed": 1234,
    "max_runtime_secs": 270.0,  # a bound: a run that hits it reports truncated=true
}

# The configurations the kernel benchmark compares against (issue 2, "Speed").
PRESETS = {
    "a": {"hidden": [200, 200], "activation": "Rectifier", "epochs": 2.0},
    "b": {"hidden": [1024, 1024], "activation": "Rectifier", "epochs": 0.2},
    "c": {"hidden": [2500, 2000, 1500, 1000, 500], "activation": "Tanh", "epochs": 0.03},
}
# H2O scores the big Tanh net at ~200 rows/s: score it on the first 2,000 test rows only.
PRESET_TEST_ROWS = {"a": None, "b": None, "c": 2000}


def _log(msg: str) -> None:
    print(f"[h2o_peer] {msg}", file=sys.stderr, flush=True)


def _free_port_pair(host: str = "127.0.0.1", lo: int = 54400, hi: int = 60000) -> int:
    """An even port p such that p and p+1 (H2O uses both) are free on `host` right now."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind((host, 0))
            p = s.getsockname()[1]
        if not lo <= p < hi:
            p = lo + (p % (hi - lo))
        p -= p % 2
        ok = True
        for q in (p, p + 1):
            with socket.socket() as s:
                try:
                    s.bind((host, q))
                except OSError:
                    ok = False
                    break
        if ok:
            return p
    raise RuntimeError("no free port pair on the loopback interface")


@contextlib.contextmanager
def _stdout_to_stderr():
    """h2o prints to stdout; keep stdout for --json."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


class H2OCluster:
    """A private local H2O-3 cluster (one JVM) with the MNIST pair parsed once.

    Starts a fresh JVM on a free loopback port (never attaches to someone else's cluster), in
    temporary ice_root/log folders that are removed at close(). close() shuts the cluster down and
    makes sure the JVM process is gone. Use as a context manager.
    """

    def __init__(self, nthreads: int = 2, max_mem_size: str = "6G", enable_assertions: bool = False,
                 startup_timeout_s: float = 90.0):
        self.nthreads = nthreads
        self.max_mem_size = max_mem_size
        self.enable_assertions = enable_assertions
        self.startup_timeout_s = startup_timeout_s
        self.tmpdir = None
        self.port = None
        self._proc = None
        self._frames = None
        self.version = None
        self.start_s = None
        self.parse_s = None

    # -- life cycle
    def start(self) -> "H2OCluster":
        os.environ.setdefault("DO_NOT_TRACK", "1")
        import h2o

        self.tmpdir = tempfile.mkdtemp(prefix="h2odl_h2o_peer_")
        self.port = _free_port_pair()
        t0 = time.perf_counter()
        _log(f"starting H2O-3 JVM on 127.0.0.1:{self.port} nthreads={self.nthreads} "
             f"max_mem_size={self.max_mem_size} enable_assertions={self.enable_assertions}")
        old = signal.signal(signal.SIGALRM, self._timeout_handler)
        signal.alarm(int(self.startup_timeout_s))
        try:
            with _stdout_to_stderr():
                h2o.init(ip="127.0.0.1", port=self.port, nthreads=self.nthreads,
                         max_mem_size=self.max_mem_size, enable_assertions=self.enable_assertions,
                         ice_root=self.tmpdir, log_dir=self.tmpdir, log_level="WARN",
                         bind_to_localhost=True, strict_version_check=False, ignore_config=True,
                         verbose=False, telemetry=False, as_port=True)
                h2o.no_progress()
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
        conn = h2o.connection()
        server = getattr(conn, "local_server", None)
        self._proc = getattr(server, "_process", None) if server is not None else None
        if self._proc is None:
            self.close()
            raise RuntimeError("h2o.init attached to an existing cluster instead of starting one")
        self.version = h2o.cluster().version
        self.start_s = time.perf_counter() - t0
        _log(f"H2O-3 {self.version} up in {self.start_s:.1f} s (pid {self._proc.pid})")
        return self

    @staticmethod
    def _timeout_handler(signum, frame):
        raise TimeoutError("H2O-3 did not start in time")

    def close(self) -> None:
        import h2o

        try:
            if h2o.connection() is not None and h2o.connection().connected:
                with _stdout_to_stderr():
                    h2o.cluster().shutdown(prompt=False)
        except Exception as exc:  # the JVM may already be gone
            _log(f"cluster shutdown: {exc.__class__.__name__}: {exc}")
        proc = self._proc
        if proc is not None:
            try:
                proc.wait(timeout=15)
            except Exception:
                _log(f"JVM pid {proc.pid} still running after shutdown; terminating it")
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except Exception:
                    proc.kill()
                    proc.wait(timeout=10)
        self._proc = None
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
        return False

    @property
    def pid(self):
        return self._proc.pid if self._proc is not None else None

    # -- data
    def frames(self):
        """(train, test) H2OFrames of the MNIST pair, parsed once per cluster."""
        if self._frames is None:
            import h2o

            t0 = time.perf_counter()
            with _stdout_to_stderr():
                train = h2o.import_file(str(MNIST_DIR / "train.csv.gz"), header=-1,
                                        destination_frame="mnist_train")
                test = h2o.import_file(str(MNIST_DIR / "test.csv.gz"), header=-1,
                                       destination_frame="mnist_test")
                train[RESPONSE] = train[RESPONSE].asfactor()
                test[RESPONSE] = test[RESPONSE].asfactor()
            self.parse_s = time.perf_counter() - t0
            self._frames = (train, test)
        return self._frames


# ----------------------------------------------------------------------------- parsing helpers
_DUR_UNITS = {"ms": 1e-3, "sec": 1.0, "min": 60.0, "hour": 3600.0, "hours": 3600.0,
              "day": 86400.0, "days": 86400.0}


def parse_duration(text) -> float | None:
    """H2O's pretty durations ('59.449 sec', ' 1 min  2.345 sec', '1:02:03.4') in seconds."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return float(text)
    total, found = 0.0, False
    for num, unit in re.findall(r"([0-9]+(?:\.[0-9]+)?)\s*(ms|sec|min|hours?|days?)", str(text)):
        total += float(num) * _DUR_UNITS[unit]
        found = True
    return total if found else None


def parse_speed(text) -> float | None:
    """'377 obs/sec' -> 377.0."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return float(text)
    m = re.search(r"([0-9][0-9,]*(?:\.[0-9]+)?)", str(text))
    return float(m.group(1).replace(",", "")) if m else None


def _num(x):
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return None if f != f else f


# ----------------------------------------------------------------------------- the measurement
def build_params(params: dict | None = None) -> dict:
    """BASE_DEFAULTS, then SCORING_DEFAULTS, then the caller's H2O parameters (these win)."""
    p = dict(BASE_DEFAULTS)
    p.update(SCORING_DEFAULTS)
    p.update(params or {})
    p["hidden"] = [int(h) for h in p["hidden"]]
    return p


def train_and_score(cluster: H2OCluster, params: dict | None = None,
                    quiet_wait_s: float = 60.0, test_rows: int | None = None,
                    validation: bool = False) -> dict:
    """Train one H2ODeepLearningEstimator on the MNIST train frame, score on the test frame.

    test_rows: score only the first test_rows rows of the test frame (scoring a big net on all
    10,000 rows takes H2O longer than the training runs here); None = all.
    quiet_wait_s: wait up to this long for a quiet machine first (0 or less: do not wait).
    validation: pass the (whole) test frame as validation_frame while training, so that H2O
    scores it during training (the tuning guide's validation_frame=test_hex).
    """
    import h2o
    from h2o.estimators import H2ODeepLearningEstimator

    p = build_params(params)
    train, test = cluster.frames()
    x = [c for c in train.columns if c != RESPONSE]
    quiet = (wait_for_quiet(max_wait_s=quiet_wait_s, log=_log) if quiet_wait_s > 0
             else {"quiet": None, "waited_s": 0.0})
    load_before = [round(v, 2) for v in os.getloadavg()]
    _log(f"training hidden={p['hidden']} activation={p['activation']} epochs={p['epochs']}")
    model = H2ODeepLearningEstimator(**p)
    t0 = time.perf_counter()
    with CpuMonitor(extra_pids=[cluster.pid]) as mon, _stdout_to_stderr(), _quiet_warnings():
        model.train(x=x, y=RESPONSE, training_frame=train,
                    **({"validation_frame": test} if validation else {}))
    train_wall = time.perf_counter() - t0

    hist = model.scoring_history()
    out = model._model_json["output"]
    summary = out.get("model_summary")
    if hist is None or summary is None or len(hist) < 2:
        # e.g. max_runtime_secs ran out before the first iteration ended: nothing to report
        with _stdout_to_stderr():
            h2o.remove(model)
        raise RuntimeError(f"H2O returned no scored model for {p['hidden']} {p['activation']} "
                           f"after {train_wall:.0f} s (max_runtime_secs={p.get('max_runtime_secs')})")
    last = hist.iloc[-1]
    samples = _num(last.get("samples", last.get("training_samples")))
    speed = parse_speed(last.get("training_speed"))
    duration = parse_duration(last.get("duration"))
    epochs_done = _num(last.get("epochs"))
    iterations = int(last.get("iterations"))
    scoring_events = int(sum(1 for v in hist["samples"] if _num(v)))  # row 0 is the empty start
    units = [int(u) for u in summary["units"]]
    n_weights = sum(units[i] * units[i + 1] for i in range(len(units) - 1))
    n_biases = sum(units[1:])

    test_frame = test if not test_rows or test_rows >= test.nrows else test[0:int(test_rows), :]
    t1 = time.perf_counter()
    with _stdout_to_stderr():
        perf = model.model_performance(test_frame)
    test_score_s = time.perf_counter() - t1
    mj = perf._metric_json
    top1 = mj["hit_ratio_table"].cell_values[0][1]
    cm_total = mj["cm"]["table"].cell_values[-1]
    test_error = float(cm_total[-2])
    train_error = _num(last.get("training_classification_error"))
    implied_train_s = samples / speed if speed else None

    result = {
        "peer": "h2o-3",
        "h2o_version": cluster.version,
        "nthreads": cluster.nthreads,
        "jvm": {"max_mem_size": cluster.max_mem_size, "enable_assertions": cluster.enable_assertions},
        "params": p,
        "layers": units,
        "n_inputs": units[0],
        "n_weights_and_biases": n_weights + n_biases,
        "training_rows": int(train.nrows),
        "epochs_requested": p["epochs"],
        "epochs_done": epochs_done,
        "training_samples": samples,
        "iterations": iterations,
        "scoring_events": scoring_events,
        "samples_per_s": speed,
        "h2o_duration_s": duration,
        "implied_train_s": implied_train_s,
        "scoring_and_setup_s": (duration - implied_train_s) if (duration and implied_train_s) else None,
        "h2o_run_time_s": out.get("run_time", 0) / 1000.0,
        "train_wall_s": train_wall,
        "samples_per_s_wall": samples / train_wall if samples else None,
        "truncated": bool(epochs_done is not None and epochs_done < 0.999 * p["epochs"]),
        "training_classification_error_sampled": train_error,
        "validation_during_training": bool(validation),
        "test": {
            "rows": int(test_frame.nrows),
            "classification_error": test_error,
            "classification_error_from_hit_ratio": 1.0 - float(top1),
            "logloss": _num(perf.logloss()),
            "mse": _num(perf.mse()),
            "errors": cm_total[-1],
        },
        "test_scoring_wall_s": test_score_s,
        "cluster_start_s": cluster.start_s,
        "parse_s": cluster.parse_s,
        "quiet_before": quiet,
        "contention_during_training": mon.report(),
        "loadavg_before": load_before,
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with _stdout_to_stderr():
        h2o.remove(model)
    _log(f"  {units} epochs_done={epochs_done:.4f} samples={samples:.0f} "
         f"samples/s={speed} (wall {result['samples_per_s_wall']:.1f}) test_error={test_error:.4f}")
    return result


@contextlib.contextmanager
def _quiet_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Dropping bad and constant columns")
        yield


def run(configs: list[dict], nthreads: int = 2, max_mem_size: str = "6G",
        enable_assertions: bool = False, test_rows=None) -> dict:
    """Run several configurations in one JVM; returns {'machine', 'cluster', 'runs': [...]}.

    test_rows: None (all), an int for every config, or a list with one entry per config.
    """
    runs = []
    if not isinstance(test_rows, (list, tuple)):
        test_rows = [test_rows] * len(configs)
    with H2OCluster(nthreads=nthreads, max_mem_size=max_mem_size,
                    enable_assertions=enable_assertions) as cluster:
        for cfg, tr in zip(configs, test_rows):
            runs.append(train_and_score(cluster, cfg, test_rows=tr))
        cluster_info = {"h2o_version": cluster.version, "nthreads": nthreads,
                        "max_mem_size": max_mem_size, "enable_assertions": enable_assertions,
                        "start_s": cluster.start_s, "parse_s": cluster.parse_s}
    return {"peer": "h2o-3", "machine": machine_info(), "cluster": cluster_info, "runs": runs}


# ----------------------------------------------------------------------------- CLI
def _parse_value(v: str):
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        if v.lower() in ("true", "false"):
            return v.lower() == "true"
        return v


def main(argv=None):
    ap = argparse.ArgumentParser(description="H2O-3 Deep Learning peer on the MNIST pair")
    ap.add_argument("--preset", help="comma list of preset configs to run in one JVM: "
                    + ", ".join(f"{k}={v}" for k, v in PRESETS.items()) + "; or 'all'")
    ap.add_argument("--hidden", help="hidden layer sizes, e.g. 200,200")
    ap.add_argument("--activation", help="Rectifier, Tanh, Maxout, ... (H2O names)")
    ap.add_argument("--epochs", type=float)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--adaptive-rate", dest="adaptive_rate", type=_parse_value)
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="any H2O Deep Learning parameter (JSON value), repeatable")
    ap.add_argument("--nthreads", type=int, default=2)
    ap.add_argument("--max-mem-size", default="6G")
    ap.add_argument("--enable-assertions", action="store_true",
                    help="run the JVM with -ea (h2o.init's own default; slower)")
    ap.add_argument("--test-rows", type=int,
                    help="score only the first N test rows (default: all; preset c: "
                         f"{PRESET_TEST_ROWS['c']})")
    ap.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    ap.add_argument("--out", help="also write the JSON result to this file")
    args = ap.parse_args(argv)

    overrides = {}
    if args.hidden:
        overrides["hidden"] = [int(h) for h in args.hidden.split(",") if h.strip()]
    for name in ("activation", "epochs", "seed", "adaptive_rate"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    for kv in args.param:
        if "=" not in kv:
            ap.error(f"--param wants NAME=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        overrides[k.strip().replace("-", "_")] = _parse_value(v.strip())

    if args.preset:
        names = list(PRESETS) if args.preset == "all" else [s.strip() for s in args.preset.split(",")]
        unknown = [n for n in names if n not in PRESETS]
        if unknown:
            ap.error(f"unknown preset(s) {unknown}; known: {list(PRESETS)}")
        configs = [{**PRESETS[n], **overrides} for n in names]
        test_rows = [args.test_rows or PRESET_TEST_ROWS.get(n) for n in names]
    else:
        configs = [overrides]
        test_rows = [args.test_rows]

    res = run(configs, nthreads=args.nthreads, max_mem_size=args.max_mem_size,
              enable_assertions=args.enable_assertions, test_rows=test_rows)
    if not args.preset:  # single config: the run itself, with machine and cluster beside it
        res = {**res["runs"][0], "machine": res["machine"], "cluster": res["cluster"]}
    if not emit(res, args):
        for r in (res["runs"] if "runs" in res else [res]):
            print(f"{'-'.join(map(str, r['layers']))} {r['params']['activation']} "
                  f"epochs {r['epochs_done']:.4f}: {r['samples_per_s']} samples/s "
                  f"(wall {r['samples_per_s_wall']:.1f}), test error {r['test']['classification_error']:.4f}")


if __name__ == "__main__":
    main()
