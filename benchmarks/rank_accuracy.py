"""Accuracy against ranks, with the defaults and with fixed rows between combines (not a timed test).

1, 2, 4, 8 and 16 ranks of 1 thread each, oversubscribed on whatever cores there are (speed is
then meaningless, the statistics are not), with the data replicated and sharded, over a few
seeds, in two settings:

  fixed     rows between combines fixed for a rank count at the most BlockMomentum asks for
            (about 3 x ranks combines an epoch), for each combining rule (Average,
            BlockMomentum, ElasticAveraging); the test error is taken after 0.5, 1, 1.5, 2, 3
            and 4 epochs (each a resume of the last checkpoint: the same bits as a straight run);
  defaults  everything H2O's and this program's default (train_samples_per_iteration -2,
            auto-tuned; combining_rule AUTO; combine_precision float32), one straight run to
            4 epochs scored on the test file after every iteration.

One rank does the same whatever the setting, rule or layout: it runs once a seed, as the
fixed setting's resumes, and is everyone's reference.  The epochs needed to reach each target
test error are read off by linear interpolation.

Data (--data): "mnist", the bundled MNIST pair (10,000 rows, 784-200-200-10 Rectifier, ADADELTA;
targets 12% and 11%); or "teacher", benchmarks/teacher_data.py's set with a known teacher
network (default 1,000,000 training and 100,000 test rows, made in --data-dir when missing;
50-64-64-10 Rectifier; targets: one rank's mean test error after 1 and after 2 epochs, so that
the ratio of epochs is to "as good as one rank at 1 (2) epochs").  --targets overrides either.

Per configuration it reports the bytes a rank sends per combine (2 (N - 1) / N of the model
buffer, which holds the weights, the biases and the optimizer state, 4 bytes a value in
float32 and 2 in bfloat16; the flat layout, as on one node), the combines an epoch, and from
the run summary two fractions of the training time (rank means): comm_fraction, the time inside
the combine (the collective and the rule's arithmetic), and wait_fraction, the time waiting at
the barrier before it for slower ranks (load imbalance).  Oversubscribed, both measure the
machine's scheduling more than the network.

Finally a PROJECTION, labelled as such, of the wall time to the last target at 64 and 1,024
ranks (benchmarks/rank_projection.py: measured epochs and compute per row, a published OSU
figure for the network).  With --data mnist and no --quick, airlines (AUC) and California
housing (RMSE) at 1 and 8 ranks in the fixed setting as well.

    .venv/bin/python benchmarks/rank_accuracy.py [--data mnist|teacher] [--rows N]
        [--modes fixed defaults] [--ranks 1 2 4 8 16] [--seeds 1 2 3]
        [--rules BlockMomentum Average ElasticAveraging] [--network hdr200|edr100] [--quick]
        [--precision float32|bfloat16|bfloat16_log8] [--stem NAME]
    .venv/bin/python benchmarks/rank_accuracy.py --from-json benchmarks/results/rank_accuracy_teacher.json

Writes benchmarks/results/rank_accuracy[_teacher][_quick].json, .md and (with matplotlib) .png.
"""
import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT / "h2odl_mpi" / "datasets"
MARKS = [0.5, 1, 1.5, 2, 3, 4]
sys.path.insert(0, str(ROOT / "benchmarks"))
import rank_projection  # noqa: E402
import teacher_data  # noqa: E402

# what every run sets, to be measured: quiet, no early stop, the whole test file scored
MEASURED = dict(threads=1, quiet_mode=True, overwrite_with_best_model=False, classification_stop=-1,
                regression_stop=-1, stopping_rounds=0, score_training_samples=1000,
                score_validation_samples=0, variable_importances=False)


# ------------------------------------------------------------------------ data sets
def mnist_set(args):
    params = dict(train=str(DATA / "mnist" / "train.csv.gz"), validation=str(DATA / "mnist" / "test.csv.gz"),
                  response="C785", hidden=[200, 200])
    return {"name": "mnist", "params": params, "n_rows": 10_000, "targets": args.targets or [0.12, 0.11]}


def teacher_set(args):
    meta = teacher_data.ensure(args.data_dir, args.rows, args.test_rows)
    params = dict(train=str(args.data_dir / "train.csv.gz"), validation=str(args.data_dir / "test.csv.gz"),
                  response=teacher_data.RESPONSE, hidden=[64, 64])
    return {"name": "teacher", "params": params, "n_rows": args.rows, "targets": args.targets,
            "floor": meta["teacher_test_error"], "bayes_error": meta["bayes_error"]}


# ------------------------------------------------------------------------ under mpirun
def worker(cfg):
    """One configuration under mpirun; rank 0 writes {"points", "stats"} to cfg["out"]."""
    from mpi4py import MPI
    sys.path.insert(0, str(ROOT))
    from h2odl_mpi.training.trainer import read_frames
    comm = MPI.COMM_WORLD
    p = dict(cfg["params"], **MEASURED)
    frames = read_frames(p, comm)  # once, for every resume
    if cfg["straight"]:
        out = run_straight(p, cfg["marks"][-1], comm, frames)
    else:
        out = run_marks(p, cfg["marks"], comm, frames)
    if comm.rank == 0:
        Path(cfg["out"]).write_text(json.dumps(out))


def run_marks(p, marks, comm, frames):
    """Trains to each mark in turn, each a resume of the last checkpoint."""
    from h2odl_mpi.params import validate
    from h2odl_mpi.training.trainer import train
    ck = comm.bcast(tempfile.mkdtemp() if comm.rank == 0 else None)
    p = dict(p, score_interval=1e9, checkpoint_dir=ck, checkpoint_interval="0")
    points, runs = [], []
    for epochs in marks:
        run = train(validate(dict(p, epochs=epochs, resume=ck)), comm, data=frames)
        points.append({"epochs": epochs, "error": run.metrics["validation"].get("classification_error")})
        runs.append(run)
    if comm.rank == 0:
        shutil.rmtree(ck, ignore_errors=True)
    return {"points": points, "stats": run_stats(runs), "final": final_metrics(runs[-1])}


def run_straight(p, epochs, comm, frames):
    """One run to `epochs`, the test file scored after every iteration."""
    from h2odl_mpi.params import validate
    from h2odl_mpi.training.trainer import train
    run = train(validate(dict(p, epochs=epochs, score_each_iteration=True)), comm, data=frames)
    points = [{"epochs": h["epochs"], "error": h.get("validation_classification_error")} for h in run.history]
    return {"points": points, "stats": run_stats([run]), "final": final_metrics(run)}


def run_stats(runs):
    """The summaries' times and sizes over the runs of one configuration (resumes add up)."""
    last, total = runs[-1], sum(r["training_time_s"] for r in runs)
    tspi = [t for r in runs for t in r["train_samples_per_iteration"]]
    return {"training_time_s": total, "samples": last["training_samples"], "epochs": last["epochs"],
            "iterations": last["iterations"], "n_values": int(last.model.size),
            "precision": last.params["combine_precision"], "rule": last["combining_rule"],
            "layout": last["combine_layout"], "tspi_median": statistics.median(tspi) if tspi else None,
            "comm_fraction": sum(r["comm_fraction"] * r["training_time_s"] for r in runs) / total if total else 0.0,
            "wait_fraction": sum(r["wait_fraction"] * r["training_time_s"] for r in runs) / total if total else 0.0}


def final_metrics(run):
    v = run.metrics["validation"]
    return {k: v.get(k) for k in ("classification_error", "auc", "rmse")}


def launch(ranks, cfg, tmp):
    cfg = dict(cfg, out=str(Path(tmp) / "out.json"))
    mpirun = Path(sys.executable).parent / "mpirun"
    cmd = [str(mpirun), "-n", str(ranks), sys.executable, str(Path(__file__).resolve()), "--worker",
           json.dumps(cfg)]
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=3 * 3600)
    if r.returncode != 0:
        raise RuntimeError(f"{ranks} ranks failed: {r.stderr[-2000:]}")
    return json.loads(Path(cfg["out"]).read_text()), time.time() - t


# ------------------------------------------------------------------------ the sweeps
def configurations(args):
    """(mode, rule, replicated, ranks) to run a seed with, one rank once."""
    out = [("one rank", None, True, 1)] if 1 in args.ranks else []
    for mode in args.modes:
        for rule in (args.rules if mode == "fixed" else [None]):
            out += [(mode, rule, rep, n) for rep in (True, False) for n in args.ranks if n > 1]
    return out


def params_for(dset, mode, rule, replicated, ranks, seed, precision="float32"):
    p = dict(dset["params"], seed=seed, replicate_training_data=replicated, combine_precision=precision)
    if mode != "defaults":
        p.update(combining_rule=rule or "BlockMomentum",
                 train_samples_per_iteration=rank_projection.fixed_rows(dset["n_rows"], ranks))
    return p


def sweep(args, dset, tmp):
    rows = []
    for seed in args.seeds:
        for mode, rule, replicated, ranks in configurations(args):
            cfg = {"params": params_for(dset, mode, rule, replicated, ranks, seed, args.precision), "marks": args.marks,
                   "straight": mode == "defaults"}
            out, wall = launch(ranks, cfg, tmp)
            rows.append({"mode": mode, "rule": rule, "replicated": replicated, "ranks": ranks, "seed": seed,
                         "wall_s": wall, **out})
            print(f"{label(rows[-1]):28s} {'replicated' if replicated else 'sharded':10s} {ranks:3d} ranks "
                  f"seed {seed}: " + " ".join(f"{p['epochs']:.2f}:{100 * p['error']:.2f}" for p in out["points"][-6:]),
                  flush=True)
    return rows


def label(r):
    return r["mode"] if r["mode"] in ("one rank", "defaults") else f"fixed, {r['rule']}"


def other_sets(args, tmp):
    """Airlines AUC and California housing RMSE at 1 and 8 ranks, per rule (fixed setting)."""
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
                params = dict(s, seed=1, combining_rule=rule, combine_precision=args.precision,
                              train_samples_per_iteration=rank_projection.fixed_rows(n, ranks))
                out, _ = launch(ranks, {"params": params, "marks": [epochs], "straight": False}, tmp)
                rows.append({"set": name, "rule": rule, "ranks": ranks, "epochs": epochs, **out["final"]})
                print(f"{name} {rule} {ranks} ranks: {out['final']}", flush=True)
    return rows


# ------------------------------------------------------------------------ summaries
def epochs_to(target, points):
    """Epochs at which the test error first reaches `target` (linear between points)."""
    prev = (0.0, 1.0)
    for p in points:
        if p["error"] is not None and p["error"] <= target:
            (e0, r0), (e1, r1) = prev, (p["epochs"], p["error"])
            return e1 if r0 == r1 else e0 + (r0 - target) * (e1 - e0) / (r0 - r1)
        if p["error"] is not None:
            prev = (p["epochs"], p["error"])
    return None


def error_at(epochs, points):
    """The test error at `epochs`, linear between the scored points (None past the last)."""
    prev = None
    for p in points:
        if p["error"] is None:
            continue
        if p["epochs"] >= epochs - 1e-9:
            if prev is None or p["epochs"] - prev["epochs"] < 1e-12:
                return p["error"]
            w = (epochs - prev["epochs"]) / (p["epochs"] - prev["epochs"])
            return prev["error"] + w * (p["error"] - prev["error"])
        prev = p
    return None


def mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def resolve_targets(dset, rows):
    """The data set's targets, or one rank's mean error after 1 and 2 epochs."""
    if dset["targets"]:
        return sorted(dset["targets"], reverse=True)
    one = [r for r in rows if r["ranks"] == 1]
    return [mean(error_at(e, r["points"]) for r in one) for e in (1, 2)] if one else []


def groups(rows):
    """{(label, replicated, ranks): [rows of the seeds]}, the one-rank runs under both layouts."""
    out = {}
    for r in rows:
        for rep in ((True, False) if r["ranks"] == 1 else (r["replicated"],)):
            out.setdefault((label(r), rep, r["ranks"]), []).append(r)
    return out


def summarize(rows, targets):
    """One dict per configuration: means over the seeds, and ratios to one rank."""
    one = [r for r in rows if r["ranks"] == 1]
    one_to = [mean(epochs_to(t, r["points"]) for r in one) for t in targets]
    out = []
    for (name, rep, ranks), sel in groups(rows).items():
        to = [mean(epochs_to(t, r["points"]) for r in sel) for t in targets]
        s = [r["stats"] for r in sel]
        out.append({"label": name, "replicated": rep, "ranks": ranks, "seeds": len(sel),
                    "error": {e: mean(error_at(e, r["points"]) for r in sel) for e in (1, 2, MARKS[-1])},
                    "epochs_to": to, "ratio": [t / o if t and o else None for t, o in zip(to, one_to)],
                    "bytes_per_combine": rank_projection.bytes_per_combine(s[0]["n_values"], ranks, s[0]["precision"]),
                    "combines_per_epoch": mean(x["iterations"] / x["epochs"] for x in s) if ranks > 1 else None,
                    "comm_fraction": mean(x["comm_fraction"] for x in s),
                    "wait_fraction": mean(x["wait_fraction"] for x in s)})
    return out


# ------------------------------------------------------------------------ projection
def projection_inputs(rows, mode, target, n_rows):
    """What the projection takes from the measurement: None where the target was not reached."""
    one = [r for r in rows if r["ranks"] == 1]
    many_sel = [r for r in rows if r["mode"] == mode and r["replicated"] and r["ranks"] > 1
                and (mode != "fixed" or r["rule"] == "BlockMomentum")]
    if not one or not many_sel:
        return None
    top = max(r["ranks"] for r in many_sel)
    many = [r for r in many_sel if r["ranks"] == top]
    e1, em = mean(epochs_to(target, r["points"]) for r in one), mean(epochs_to(target, r["points"]) for r in many)
    if e1 is None or em is None:
        return None
    st = many[0]["stats"]
    return {"t_row_s": mean(r["stats"]["training_time_s"] / r["stats"]["samples"] for r in one),
            "n_rows": n_rows, "model_bytes": rank_projection.buffer_bytes(st["n_values"], st["precision"]),
            "epochs_one_rank": e1, "epochs_many": em, "many_ranks": top, "target": target, "epochs": MARKS[-1]}


def projections(rows, targets, dset, net):
    out = []
    for mode in ("fixed", "defaults"):
        inputs = projection_inputs(rows, mode, targets[-1], dset["n_rows"]) if targets else None
        if inputs:
            out.append(rank_projection.project(inputs, net, mode))
    return out


# ------------------------------------------------------------------------ report
def pct(v, digits=2):
    return "-" if v is None else f"{100 * v:.{digits}f}"


def num(v, fmt=".2f"):
    return "-" if v is None else format(v, fmt)


def error_table(summary, ranks, targets):
    lines = [f"Test error (%) after 1 / 2 / {MARKS[-1]} epochs, mean of the seeds (epochs to "
             + ", ".join(pct(t) + "%" for t in targets) + "):", "",
             "| setting | data | " + " | ".join(f"{n} ranks" for n in ranks) + " |", "|---|---|" + "---|" * len(ranks)]
    for name in dict.fromkeys(s["label"] for s in summary if s["ranks"] > 1):
        for rep in (True, False):
            cells = []
            for n in ranks:
                sel = [s for s in summary if s["ranks"] == n and s["replicated"] == rep
                       and (s["label"] == name or n == 1)]
                cells.append("" if not sel else " / ".join(pct(sel[0]["error"][e]) for e in (1, 2, MARKS[-1]))
                             + " (" + ", ".join(num(t) for t in sel[0]["epochs_to"]) + ")")
            lines.append(f"| {name} | {'replicated' if rep else 'sharded'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cost_table(summary, targets):
    lines = ["| setting | data | ranks | epochs to target / one rank's (" + ", ".join(pct(t) + "%" for t in targets)
             + ") | combines an epoch | bytes a rank sends per combine | comm_fraction (in the combine) "
             "| wait_fraction (at the barrier) |", "|---|---|---|---|---|---|---|---|"]
    for s in sorted(summary, key=lambda s: (s["label"], not s["replicated"], s["ranks"])):
        if s["ranks"] == 1 and not s["replicated"]:
            continue
        lines.append(f"| {s['label']} | {'replicated' if s['replicated'] else 'sharded'} | {s['ranks']} "
                     f"| {' / '.join(num(x) for x in s['ratio'])} | {num(s['combines_per_epoch'], '.1f')} "
                     f"| {s['bytes_per_combine']:,} | {pct(s['comm_fraction'], 1)}% | {pct(s['wait_fraction'], 1)}% |")
    return "\n".join(lines)


def others_table(others, rules):
    lines = ["| data | rule | 1 rank | 8 ranks |", "|---|---|---|---|"]
    for name, key in (("airlines", "auc"), ("cal_housing", "rmse")):
        for rule in rules:
            v = {r["ranks"]: r[key] for r in others if r["set"] == name and r["rule"] == rule}
            lines.append(f"| {name} ({key.upper()}) | {rule} | {v.get(1, float('nan')):.4g} | {v.get(8, float('nan')):.4g} |")
    return "\n".join(lines)


def report(args, dset, summary, targets, others, projs):
    md = [f"Data: {dset['name']} ({dset['n_rows']:,} training rows"
          + (f"; the teacher's own test error, the floor, {pct(dset['floor'])}%, Bayes error {pct(dset['bayes_error'])}%"
             if "floor" in dset else "") + f"), seeds {args.seeds}, ranks of 1 thread oversubscribed.",
          "Targets: " + ", ".join(pct(t) + "%" for t in targets)
          + ("" if dset["targets"] else " (one rank's mean test error after 1 and 2 epochs)") + ".", "",
          error_table(summary, args.ranks, targets), "", cost_table(summary, targets), "",
          "Bytes: 2 (N - 1) / N of the model buffer (weights, biases, optimizer state), flat layout. "
          "Combines an epoch: iterations / epochs (fixed: each resume at a mark adds a partial iteration). "
          "comm_fraction and wait_fraction are rank means from the run summary; with the ranks "
          "oversubscribed they measure the machine's scheduling more than the network.", ""]
    if others:
        md += [others_table(others, args.rules), ""]
    for p in projs:
        md += rank_projection.text(p) + [""]
    if not projs:
        md.append("No projection: the last target was not reached at the largest rank count (or one rank).")
    return "\n".join(md) + "\n"


def plot(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing: .venv/bin/pip install -r benchmarks/requirements.txt (no plot)")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in rows:
        if r["seed"] == rows[0]["seed"] and r["replicated"]:
            ax.plot([p["epochs"] for p in r["points"]], [100 * p["error"] for p in r["points"]],
                    alpha=0.7, label=f"{label(r)} {r['ranks']}")
    ax.set_xlabel("epochs")
    ax.set_ylabel("test error (%)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def parse():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--data", choices=["mnist", "teacher"], default="mnist")
    ap.add_argument("--rows", type=int, help="teacher: training rows (default 1,000,000; 200,000 with --quick)")
    ap.add_argument("--test-rows", type=int, help="teacher: test rows (default a tenth of --rows)")
    ap.add_argument("--data-dir", type=Path, help="teacher: where its files are (made when missing)")
    ap.add_argument("--modes", nargs="+", choices=["fixed", "defaults"], default=["fixed", "defaults"])
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--rules", nargs="+", default=["BlockMomentum", "Average", "ElasticAveraging"])
    ap.add_argument("--targets", type=float, nargs="+", help="test errors to reach (fractions)")
    ap.add_argument("--precision", choices=rank_projection.PRECISIONS, default="float32",
                    help="combine_precision of every run (what a combine sends)")
    ap.add_argument("--stem", help="the results' name under benchmarks/results (default: from --data, --quick, "
                                   "--precision)")
    ap.add_argument("--network", choices=sorted(rank_projection.INTERCONNECTS), default="hdr200")
    ap.add_argument("--quick", action="store_true", help="1, 2 and 4 ranks, one seed, no other data sets")
    ap.add_argument("--no-other-sets", action="store_true", help="only the main sweep")
    ap.add_argument("--from-json", type=Path, help="no training: the report of an earlier run's JSON again")
    args = ap.parse_args()
    if args.quick:
        args.ranks, args.seeds, args.no_other_sets = [1, 2, 4], [1], True
    args.rows = args.rows or (200_000 if args.quick else 1_000_000)
    args.test_rows = args.test_rows or max(10_000, args.rows // 10)
    args.data_dir = args.data_dir or teacher_data.default_dir() / f"rows{args.rows}"
    args.marks = MARKS
    return args


def main():
    args = parse()
    if args.worker:
        return worker(json.loads(args.worker))
    if args.from_json:
        return rereport(args)
    dset = (teacher_set if args.data == "teacher" else mnist_set)(args)
    stem = args.stem or ("rank_accuracy" + ("" if args.data == "mnist" else f"_{args.data}") +
                         ("_quick" if args.quick else "") +
                         ("" if args.precision == "float32" else f"_{args.precision}"))
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = sweep(args, dset, tmp)
        (RESULTS / f"{stem}.json").write_text(json.dumps({"runs": rows}, indent=1))  # kept if what follows fails
        others = [] if args.no_other_sets or args.data != "mnist" else other_sets(args, tmp)
    finish(args, {k: v for k, v in dset.items() if k != "params"}, rows, others, RESULTS / stem)


def rereport(args):
    """The report of an earlier run's JSON again (after a change to the report), no training."""
    d = json.loads(args.from_json.read_text())
    rows = d["runs"]
    args.ranks = sorted({r["ranks"] for r in rows})
    args.seeds = sorted({r["seed"] for r in rows})
    args.rules = list(dict.fromkeys(r["rule"] for r in d["other_sets"])) or args.rules
    finish(args, d["data"], rows, d["other_sets"], args.from_json.with_suffix(""))


def finish(args, dset, rows, others, stem):
    """Summary, projection and report of the runs: stem.json, .md and .png."""
    targets = resolve_targets(dset, rows)
    summary = summarize(rows, targets)
    projs = projections(rows, targets, dset, rank_projection.INTERCONNECTS[args.network])
    Path(f"{stem}.json").write_text(json.dumps(
        {"data": dset, "targets": targets, "runs": rows, "summary": summary, "other_sets": others,
         "projection": projs}, indent=1, default=str))
    text = report(args, dset, summary, targets, others, projs)
    Path(f"{stem}.md").write_text(text)
    plot(rows, Path(f"{stem}.png"))
    print(text)


if __name__ == "__main__":
    main()
