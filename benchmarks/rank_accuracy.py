"""Accuracy against ranks for each rule that combines the ranks' models (not a timed test).

The MNIST pair (758-200-200-10 Rectifier, ADADELTA, 1 thread a rank) at 1, 2, 4, 8 and 16
ranks, oversubscribed on whatever cores there are (speed is then meaningless, the statistics
are not), for each rule (combining_rule Average, BlockMomentum, ElasticAveraging), with the
data replicated and sharded, over a few seeds.  Rows between combines are fixed for a rank
count: the most the BlockMomentum rule asks for (about 1.5 x ranks combines an epoch; every
rule gets the same rows).  Test error is taken after 0.5, 1, 1.5, 2, 3 and 4 epochs (each a
resume of the last checkpoint, which gives the same bits as a straight run), and the epochs
needed to reach 11% are read off by linear interpolation.  Airlines (AUC) and California
housing (RMSE) at 1 and 8 ranks.  Finally a PROJECTION, labelled as such, of the wall time
to 11% at 64 and 1024 ranks on a 100 Gb/s network, from the measured compute time per row
and a ring allreduce model.

    .venv/bin/python benchmarks/rank_accuracy.py [--ranks 1 2 4 8 16] [--seeds 1 2 3]
        [--rules Average BlockMomentum ElasticAveraging] [--quick]

Writes benchmarks/results/rank_accuracy.json, .md and (with matplotlib) .png.
"""
import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT / "h2odl_mpi" / "datasets"
MARKS = [0.5, 1, 1.5, 2, 3, 4]
TARGET = 0.11
MNIST = dict(train=str(DATA / "mnist" / "train.csv.gz"), validation=str(DATA / "mnist" / "test.csv.gz"),
             response="C785", hidden=[200, 200])
COMBINES_PER_EPOCH_PER_RANK = 1.5  # h2odl_mpi.training.combine.BlockMomentum's


def rows_per_iteration(n_rows, ranks):
    """The rows between combines for `ranks` (over all ranks), as the BlockMomentum cap."""
    if ranks == 1:
        return n_rows
    return max(ranks, int(n_rows / (COMBINES_PER_EPOCH_PER_RANK * ranks)))


# ------------------------------------------------------------------------ under mpirun
def worker(cfg):
    """One configuration under mpirun: trains to each mark in turn (resuming), rank 0
    writes the results to cfg["out"]."""
    from mpi4py import MPI
    sys.path.insert(0, str(ROOT))
    from h2odl_mpi.params import validate
    from h2odl_mpi.training.trainer import train
    comm = MPI.COMM_WORLD
    ck = comm.bcast(tempfile.mkdtemp() if comm.rank == 0 else None)
    p = dict(cfg["params"], threads=1, quiet_mode=True, overwrite_with_best_model=False,
             classification_stop=-1, regression_stop=-1, stopping_rounds=0, score_interval=1e9,
             score_training_samples=1000, score_validation_samples=0, variable_importances=False,
             checkpoint_dir=ck, checkpoint_interval="0")
    out = []
    for epochs in cfg["marks"]:
        run = train(validate(dict(p, epochs=epochs, resume=ck)), comm)
        v = run.metrics["validation"]
        out.append({"epochs": epochs, "error": v.get("classification_error"), "auc": v.get("auc"),
                    "rmse": v.get("rmse"), "comm_fraction": run["comm_fraction"],
                    "training_time_s": run["training_time_s"], "samples": run["training_samples"],
                    "iterations": run["iterations"], "n_values": int(run.model.size)})
    if comm.rank == 0:
        Path(cfg["out"]).write_text(json.dumps(out))
        import shutil
        shutil.rmtree(ck, ignore_errors=True)


def launch(ranks, cfg, tmp):
    cfg = dict(cfg, out=str(Path(tmp) / "out.json"))
    mpirun = Path(sys.executable).parent / "mpirun"
    cmd = [str(mpirun), "-n", str(ranks), sys.executable, str(Path(__file__).resolve()), "--worker",
           json.dumps(cfg)]
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        raise RuntimeError(f"{ranks} ranks failed: {r.stderr[-2000:]}")
    return json.loads(Path(cfg["out"]).read_text()), time.time() - t


# ------------------------------------------------------------------------ the sweeps
def epochs_to(target, points):
    """Epochs at which the test error first reaches `target` (linear between marks)."""
    prev = (0.0, 1.0)
    for p in points:
        if p["error"] <= target:
            (e0, r0), (e1, r1) = prev, (p["epochs"], p["error"])
            return e1 if r0 == r1 else e0 + (r0 - target) * (e1 - e0) / (r0 - r1)
        prev = (p["epochs"], p["error"])
    return None


def mnist_sweep(args, tmp):
    rows = []
    for rule in args.rules:
        for replicate in (True, False):
            for ranks in args.ranks:
                for seed in args.seeds:
                    params = dict(MNIST, seed=seed, combining_rule=rule, replicate_training_data=replicate,
                                  train_samples_per_iteration=rows_per_iteration(10_000, ranks))
                    points, wall = launch(ranks, {"params": params, "marks": args.marks}, tmp)
                    rows.append({"rule": rule, "replicated": replicate, "ranks": ranks, "seed": seed,
                                 "points": points, "epochs_to_11": epochs_to(TARGET, points), "wall_s": wall})
                    print(f"{rule:16s} {'replicated' if replicate else 'sharded':10s} {ranks:3d} ranks seed {seed}: "
                          + " ".join(f"{100 * p['error']:.2f}" for p in points), flush=True)
    return rows


def other_sets(args, tmp):
    """Airlines AUC and California housing RMSE at 1 and 8 ranks, per rule."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from airlines_auc import LEAKS, RESPONSE, split
    air = split(tmp)
    sets = {"airlines": dict(train=air["train"], validation=air["test"], response=RESPONSE,
                             ignored_columns=LEAKS, hidden=[200, 200], n=32_960, epochs=2),
            "cal_housing": dict(train=str(DATA / "cal_housing" / "cal_housing.csv"), response="medianHouseValue",
                                hidden=[64, 64], n=20_640, epochs=10)}
    sets["cal_housing"]["validation"] = sets["cal_housing"]["train"]
    rows = []
    for name, s in sets.items():
        s = dict(s)
        n, epochs = s.pop("n"), s.pop("epochs")
        for rule in args.rules:
            for ranks in (1, 8):
                params = dict(s, seed=1, combining_rule=rule, train_samples_per_iteration=rows_per_iteration(n, ranks))
                points, _ = launch(ranks, {"params": params, "marks": [epochs]}, tmp)
                rows.append({"set": name, "rule": rule, "ranks": ranks, "epochs": epochs, **{
                    k: points[-1][k] for k in ("auc", "rmse")}})
                print(f"{name} {rule} {ranks} ranks: auc {points[-1]['auc']} rmse {points[-1]['rmse']}", flush=True)
    return rows


# ------------------------------------------------------------------------ projection
def allreduce_seconds(nbytes, ranks, latency=5e-6, bandwidth=100e9 / 8):
    """Ring allreduce on a 100 Gb/s network: 2 log2(P) latencies + 2 (P-1)/P bytes / bandwidth."""
    return 2 * math.ceil(math.log2(ranks)) * latency + 2 * (ranks - 1) / ranks * nbytes / bandwidth


def projection(rows):
    """Wall time to 11% at 64 and 1024 ranks against one rank: PROJECTED, not measured."""
    one = [r for r in rows if r["rule"] == "BlockMomentum" and r["replicated"] and r["ranks"] == 1]
    many = [r for r in rows if r["rule"] == "BlockMomentum" and r["replicated"] and r["ranks"] == max(
        x["ranks"] for x in rows)]
    if not one or not many:
        return None
    last = one[0]["points"][-1]
    # one rank, one thread, measured: each resumed run reports its own training time
    t_row = sum(p["training_time_s"] for p in one[0]["points"]) / last["samples"]
    nbytes = 4 * last["n_values"]
    e1 = _mean([r["epochs_to_11"] for r in one])
    em = _mean([r["epochs_to_11"] for r in many])
    if e1 is None or em is None:
        return None
    out = {"t_row_s": t_row, "model_bytes": nbytes, "epochs_to_11_one_rank": e1,
           "epochs_to_11_assumed": em, "assumed_from_ranks": many[0]["ranks"], "one_rank_s": e1 * 10_000 * t_row}
    for ranks in (64, 1024):
        tspi = rows_per_iteration(10_000, ranks)
        combines = 10_000 / tspi
        seconds = em * (10_000 * t_row / ranks + combines * allreduce_seconds(nbytes, ranks))
        out[f"ranks_{ranks}_s"] = seconds
        out[f"ranks_{ranks}_fraction_of_one_rank"] = seconds / out["one_rank_s"]
    return out


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


# ------------------------------------------------------------------------ report
def table(rows, ranks):
    lines = ["| rule | data | " + " | ".join(f"{n} ranks" for n in ranks) + " |",
             "|---|---|" + "---|" * len(ranks)]
    for rule in dict.fromkeys(r["rule"] for r in rows):
        for replicated in (True, False):
            cells = []
            for n in ranks:
                sel = [r for r in rows if r["rule"] == rule and r["replicated"] == replicated and r["ranks"] == n]
                if not sel:
                    cells.append("")
                    continue
                errs = [[p["error"] for p in r["points"] if p["epochs"] in (1, 2, 4)] for r in sel]
                mean = [100 * sum(e[i] for e in errs) / len(errs) for i in range(len(errs[0]))]
                e11 = _mean([r["epochs_to_11"] for r in sel])
                cells.append(" / ".join(f"{m:.2f}" for m in mean) + f" ({'-' if e11 is None else f'{e11:.2f}'})")
            lines.append(f"| {rule} | {'replicated' if replicated else 'sharded'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows, ranks, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing: .venv/bin/pip install -r benchmarks/requirements.txt (no plot)")
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for rule in dict.fromkeys(r["rule"] for r in rows):
        for replicated, style in ((True, "-"), (False, "--")):
            xs, ys = [], []
            for n in ranks:
                sel = [r for r in rows if r["rule"] == rule and r["replicated"] == replicated and r["ranks"] == n]
                if sel:
                    xs.append(n)
                    ys.append(100 * sum(r["points"][-1]["error"] for r in sel) / len(sel))
            axes[0].plot(xs, ys, style, marker="o", label=f"{rule}, {'replicated' if replicated else 'sharded'}")
    axes[0].set_xscale("log", base=2)
    axes[0].set_xlabel("ranks (1 thread each)")
    axes[0].set_ylabel(f"test error after {MARKS[-1]} epochs (%)")
    axes[0].legend(fontsize=7)
    for rule in dict.fromkeys(r["rule"] for r in rows):
        sel = [r for r in rows if r["rule"] == rule and r["replicated"] and r["seed"] == rows[0]["seed"]]
        for r in sel:
            axes[1].plot([p["epochs"] for p in r["points"]], [100 * p["error"] for p in r["points"]],
                         alpha=0.7, label=f"{rule} {r['ranks']}")
    axes[1].axhline(100 * TARGET, color="grey", lw=0.5)
    axes[1].set_xlabel("epochs")
    axes[1].set_ylabel("test error (%)")
    axes[1].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--rules", nargs="+", default=["BlockMomentum", "Average", "ElasticAveraging"])
    ap.add_argument("--quick", action="store_true", help="1, 2 and 4 ranks, one seed, no other data sets")
    ap.add_argument("--no-other-sets", action="store_true", help="only the MNIST sweep")
    args = ap.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    if args.quick:
        args.ranks, args.seeds, args.no_other_sets = [1, 2, 4], [1], True
    args.marks = MARKS
    with tempfile.TemporaryDirectory() as tmp:
        rows = mnist_sweep(args, tmp)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "rank_accuracy.json").write_text(json.dumps({"mnist": rows}, indent=1))  # kept if what follows fails
        others = [] if args.no_other_sets else other_sets(args, tmp)
    proj = projection(rows)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "rank_accuracy.json").write_text(json.dumps(
        {"mnist": rows, "other_sets": others, "projection": proj}, indent=1))
    md = [f"Test error (%) after 1 / 2 / 4 epochs, mean of seeds {args.seeds} (epochs to reach 11%):", "",
          table(rows, args.ranks), ""]
    if others:
        md += ["| data | rule | 1 rank | 8 ranks |", "|---|---|---|---|"]
        for name, key in (("airlines", "auc"), ("cal_housing", "rmse")):
            for rule in args.rules:
                v = {r["ranks"]: r[key] for r in others if r["set"] == name and r["rule"] == rule}
                md.append(f"| {name} ({key.upper()}) | {rule} | {v.get(1, float('nan')):.4g} | {v.get(8, float('nan')):.4g} |")
        md.append("")
    if proj:
        md.append("PROJECTION (not measured): wall time to 11% test error, BlockMomentum, 100 Gb/s ring allreduce, "
                  f"epochs to 11% as measured at {proj['assumed_from_ranks']} ranks: 64 ranks "
                  f"{proj['ranks_64_fraction_of_one_rank']:.4f} of one rank's time, 1024 ranks "
                  f"{proj['ranks_1024_fraction_of_one_rank']:.5f}.")
    (RESULTS / "rank_accuracy.md").write_text("\n".join(md) + "\n")
    plot(rows, args.ranks, RESULTS / "rank_accuracy.png")
    print("\n".join(md))


if __name__ == "__main__":
    main()
