"""Time to accuracy on one node: h2odl_mpi against PyTorch CPU mini-batch Adam.

    .venv/bin/pip install torch==2.13.0 matplotlib==3.11.2   # the peer and the plot
    nice -n 10 .venv/bin/python benchmarks/time_to_accuracy.py             # 5 runs each
    .venv/bin/python benchmarks/time_to_accuracy.py --runs 3 --workloads mnist-200

Both systems train on the bundled MNIST pair (h2odl_mpi/datasets/mnist/, response C785,
constant columns dropped, inputs standardised with the training set's statistics: H2O's
preprocessing on both sides), 2 threads, and score the 10,000 test rows once per epoch; the
clock counts training AND that scoring, never reading the data or building the model:
  h2odl_mpi  `python -m h2odl_mpi train` with score_each_iteration, an iteration = an epoch
             (train_samples_per_iteration 0), stopping_rounds 0; the time of a scoring is
             its scoring history's duration_s less the summary's startup_s.to_first_row
             (its scorings also score H2O's 10,000-row training sample: counted too);
  PyTorch    an MLP of the same layers (ReLU, softmax cross entropy, default init), Adam
             (lr 1e-3), batches of 128 from a fresh permutation each epoch,
             torch.set_num_threads(2); after each epoch the whole test set is evaluated,
             and the cumulative time of epochs and evaluations is recorded.
Time to accuracy: the time of the first scoring at or below the workload's test error; a run
that never gets there counts as infinitely slow (the median is None when half or more never
do).  Each workload runs every system --runs times (default 5), interleaved (run k of each
system in turn), and reports the median and the slowest.

Workloads: mnist-200 (758-200-200-10 Rectifier, 10% test error) and mnist-1024 (the tuning
guide's 1024,1024 network, 10% test error: what PyTorch reaches in 4 to 7 epochs on the bundled
10,000 training rows; the tuning guide's 6% needs its 60,000).  h2odl_mpi settings:
`h2o-defaults` (H2O's parameters: mini_batch_size 1), `mini-batch` (mini_batch_size 32,
rho 0.95, epsilon 1e-6), `mini-batch-lean` (the same, scoring 1,000 training rows, not H2O's
10,000: PyTorch's evaluation is of the test set only) and `mini-batch-rho0.9-lean` (the same
with rho 0.9); `--settings` picks some of them.  Results: benchmarks/results/time_to_accuracy.{csv,json,png} (the
plot: test error against time, every run of every system).  The machine's CPU and its load
average before and after are printed and stored: other jobs on the cores slow both sides.
"""
import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
MNIST = ROOT / "h2odl_mpi" / "datasets" / "mnist"
TORCH_INSTALL = ".venv/bin/pip install torch==2.13.0   (the CPU build; see benchmarks/requirements.txt)"

WORKLOADS = {
    "mnist-200": dict(hidden=(200, 200), threshold=0.10, epochs=8, torch_epochs=12),
    "mnist-1024": dict(hidden=(1024, 1024), threshold=0.10, epochs=6, torch_epochs=8),
}
OURS = {
    "h2o-defaults": [],
    "mini-batch": ["--mini_batch_size", "32", "--rho", "0.95", "--epsilon", "1e-6"],
    # and scoring 1,000 training rows, not H2O's 10,000 (the tuning guide's advice): PyTorch
    # evaluates the test set only
    "mini-batch-lean": ["--mini_batch_size", "32", "--rho", "0.95", "--epsilon", "1e-6",
                        "--score_training_samples", "1000"],
    # the same with rho 0.9: a shorter memory of the squared updates
    "mini-batch-rho0.9-lean": ["--mini_batch_size", "32", "--rho", "0.9", "--epsilon", "1e-6",
                               "--score_training_samples", "1000"],
}
THREADS = 2


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def run_ours(extra, wl, seed, tmp):
    """One h2odl_mpi run: its curve [(seconds, test error)] from the first training row."""
    summary, history = Path(tmp) / "s.json", Path(tmp) / "h.csv"
    cmd = [sys.executable, "-m", "h2odl_mpi", "train", "--train", str(MNIST / "train.csv.gz"),
           "--validation", str(MNIST / "test.csv.gz"), "--response", "C785",
           "--hidden", ",".join(map(str, wl["hidden"])), "--epochs", str(wl["epochs"]),
           "--threads", str(THREADS), "--seed", str(seed), "--score_each_iteration", "true",
           "--train_samples_per_iteration", "0", "--stopping_rounds", "0",
           "--summary-json", str(summary), "--scoring_history", str(history), *extra]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
    start = json.loads(summary.read_text())["startup_s"]["to_first_row"]
    with open(history) as f:
        rows = list(csv.DictReader(f))
    return [(float(r["duration_s"]) - start, float(r["validation_classification_error"]))
            for r in rows if r.get("validation_classification_error") not in (None, "")]


def torch_data():
    """The MNIST pair as torch tensors, preprocessed as H2O does (benchmarks/peers)."""
    import torch
    from benchmarks.peers.torch_hogwild import load_mnist
    xtr, ytr, xte, yte, info = load_mnist()
    return (torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte),
            torch.from_numpy(yte), info)


def run_torch(data, wl, seed):
    """One PyTorch run: its curve [(seconds, test error)], epochs and evaluations timed."""
    import torch
    import torch.nn.functional as F
    from benchmarks.peers.torch_hogwild import evaluate
    from benchmarks.peers.torch_minibatch import build_model
    torch.set_num_threads(THREADS)
    xtr, ytr, xte, yte, info = data
    model = build_model(info["n_inputs"], wl["hidden"], info["n_classes"], "relu", "default", seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    F.cross_entropy(model(xtr[:128]), ytr[:128]).backward()   # warm-up, untimed
    opt.zero_grad(set_to_none=True)
    n, curve, clock = xtr.shape[0], [], 0.0
    for _ in range(wl["torch_epochs"]):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, 128):
            idx = perm[s:s + 128]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
        err = evaluate(model, xte, yte, batch=5000)["classification_error"]
        clock += time.perf_counter() - t0
        curve.append((clock, err))
        if err <= wl["threshold"]:
            break
    return curve


def reached(curve, threshold):
    """(seconds, epochs) of the first scoring at or below threshold, or (None, None)."""
    for k, (t, err) in enumerate(curve):
        if err <= threshold:
            return t, k + 1
    return None, None


def median_time(values):
    m = statistics.median([math.inf if v is None else v for v in values])
    return None if math.isinf(m) else m


def slowest(values):
    return None if any(v is None for v in values) else max(values)


def fmt(v, unit="s"):
    return "never" if v is None else f"{v:.2f} {unit}".strip()


def plot(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no plot: pip install matplotlib==3.11.2, see requirements-report.txt)")
        return
    names = sorted({r["workload"] for r in results})
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4.5), squeeze=False)
    colours = {}
    for ax, name in zip(axes[0], names):
        for r in (r for r in results if r["workload"] == name):
            c = colours.setdefault(r["system"], f"C{len(colours)}")
            t, e = zip(*r["curve"]) if r["curve"] else ((), ())
            ax.plot(t, e, "-o", ms=3, color=c, alpha=0.6,
                    label=r["system"] if r["run"] == 0 else None)
        ax.axhline(WORKLOADS[name]["threshold"], color="grey", ls="--", lw=1)
        ax.set(title=f"{name}: test error against time", xlabel="seconds (training + scoring)",
               ylabel="test classification error", ylim=(0, 0.3))
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"written {path}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    ap.add_argument("--settings", nargs="+", default=list(OURS), choices=list(OURS),
                    help="h2odl_mpi's settings to run (default: all)")
    ap.add_argument("--out", default=str(RESULTS / "time_to_accuracy"))
    args = ap.parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.exit(f"time_to_accuracy: PyTorch is missing; install it with\n  {TORCH_INSTALL}")
    load_before = os.getloadavg()
    data = torch_data()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.workloads:
            wl = WORKLOADS[name]
            for run in range(args.runs):
                for system, extra in [(f"h2odl_mpi {k}", OURS[k]) for k in args.settings] + [("pytorch adam-128", None)]:
                    curve = run_torch(data, wl, seed=run) if extra is None else run_ours(extra, wl, run, tmp)
                    results.append(dict(workload=name, system=system, run=run, curve=curve))
                    print(f"  {name} {system} run {run}: {fmt(reached(curve, wl['threshold'])[0])}",
                          flush=True)
    load_after = os.getloadavg()
    print(f"\ntime to accuracy, {cpu_name()}, {os.cpu_count()} CPUs, {THREADS} threads each; "
          f"{args.runs} runs per system; load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(f"{'workload':<11} {'system':<24} {'reached':>7} {'epochs':>6} {'median':>9} {'slowest':>9} {'per epoch':>9}")
    table = []
    for name in args.workloads:
        thr = WORKLOADS[name]["threshold"]
        for system in dict.fromkeys(r["system"] for r in results if r["workload"] == name):
            runs = [r for r in results if r["workload"] == name and r["system"] == system]
            hits = [reached(r["curve"], thr) for r in runs]
            times, epochs = [h[0] for h in hits], [h[1] for h in hits if h[1] is not None]
            per_epoch = statistics.median(r["curve"][0][0] if len(r["curve"]) < 2 else
                                          (r["curve"][-1][0] - r["curve"][0][0]) / (len(r["curve"]) - 1)
                                          for r in runs if r["curve"])
            row = dict(workload=name, threshold=thr, system=system, runs=len(runs),
                       reached=sum(t is not None for t in times),
                       epochs_median=statistics.median(epochs) if epochs else None,
                       time_median_s=median_time(times), time_slowest_s=slowest(times),
                       per_epoch_s=per_epoch)
            table.append(row)
            print(f"{name:<11} {system:<24} {row['reached']:>3}/{len(runs):<3} "
                  f"{'-' if row['epochs_median'] is None else row['epochs_median']:>6} "
                  f"{fmt(row['time_median_s']):>9} {fmt(row['time_slowest_s']):>9} {per_epoch:>8.2f}s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{out}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)
    meta = dict(cpu=cpu_name(), cpus=os.cpu_count(), threads=THREADS, runs=args.runs,
                load_before=load_before, load_after=load_after, workloads=WORKLOADS)
    Path(f"{out}.json").write_text(json.dumps(dict(machine=meta, table=table, runs=results), indent=1))
    print(f"written {out}.csv, {out}.json")
    plot(results, f"{out}.png")


if __name__ == "__main__":
    main()
