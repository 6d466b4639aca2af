"""Kernel throughput against its peers, measured in one run on the same data and cores.

For each network it measures the h2odl_mpi kernel (1 and 2 Hogwild! threads, training
samples/s and test error on the bundled MNIST pair), H2O-3 (`pip install h2o`, nthreads=2)
and PyTorch CPU (PyTorch's Hogwild! example pattern: 2 processes sharing the model, one row
at a time), plus the machine's memory bandwidth, and prints a table and writes
benchmarks/results/kernel_throughput.csv and .json.

Memory-traffic bound: the bytes one training row must move at least (the forward pass reads
every weight once; the update reads and writes the weights and both ADADELTA accumulators of
every row of W that learns, i.e. of every active unit) divided into the measured DRAM triad
bandwidth.  Small networks partly live in the caches, so they can beat this DRAM bound.

    .venv/bin/pip install -r benchmarks/requirements.txt     # the peers: h2o, torch
    .venv/bin/python benchmarks/kernel_throughput.py          # all networks, all peers
    .venv/bin/python benchmarks/kernel_throughput.py --no-peers --nets small
"""
import argparse
import csv
import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from h2odl_mpi._kernel import ffi, lib  # noqa: E402
from h2odl_mpi.kernel import NetConfig, Network, Rows  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"

# name: hidden, activation, epochs for the error comparison (None: speed only), rows timed,
#       H2O epochs, torch rows
NETS = {
    "small": dict(hidden=[200, 200], activation="Rectifier", epochs=2, rows=20000,
                  h2o_epochs=2, torch_rows=None),
    "wide": dict(hidden=[1024, 1024], activation="Rectifier", epochs=None, rows=3000,
                 h2o_epochs=0.2, torch_rows=2000),
    "large": dict(hidden=[2500, 2000, 1500, 1000, 500], activation="Tanh", epochs=None, rows=300,
                  h2o_epochs=0.02, torch_rows=200),
}


def load_mnist():
    d = ROOT / "h2odl_mpi" / "datasets" / "mnist"
    tr = np.loadtxt(gzip.open(d / "train.csv.gz"), delimiter=",", dtype=np.float32)
    te = np.loadtxt(gzip.open(d / "test.csv.gz"), delimiter=",", dtype=np.float32)
    x, y, xt, yt = tr[:, :-1], tr[:, -1], te[:, :-1], te[:, -1]
    keep = x.min(0) != x.max(0)  # ignore_const_cols
    mu, sd = x[:, keep].mean(0), x[:, keep].std(0, ddof=1)  # standardize
    return (x[:, keep] - mu) / sd, y, (xt[:, keep] - mu) / sd, yt


def bytes_per_row(net, model, x_sample):
    """Least bytes a training row moves: forward reads all weights; every active unit's row
    of W and its two ADADELTA accumulators are read and written."""
    rows = Rows.dense(x_sample)
    active = []
    for l in range(net.n_layers - 1):
        h = net.predict(model, rows, "hidden", layer=l, threads=1)
        active.append(float((h != 0).mean()))
    active.append(1.0)  # every output unit learns
    total = 0.0
    for l in range(net.n_layers):
        w = net.rows[l] * net.units[l]
        total += 4 * w + 2 * 12 * w * active[l]
    return total, active


def measure_ours(name, spec, data, threads_list, seed=1):
    x, y, xt, yt = data
    cfg = NetConfig(units=[x.shape[1]] + spec["hidden"] + [10], activation=spec["activation"])
    out = []
    for threads in threads_list:
        net = Network(cfg)
        model = net.new_model(seed)
        rows = Rows.dense(x, y)
        n_rows = spec["rows"] if spec["epochs"] is None else int(spec["epochs"] * len(x))
        rng = np.random.default_rng(seed)
        done, t_train = 0, 0.0
        net.train(model, rows, np.arange(min(200, len(x))), threads=threads)  # warm caches
        model = net.new_model(seed)
        while done < n_rows:
            k = min(len(x), n_rows - done)
            order = rng.permutation(len(x))[:k]
            t0 = time.perf_counter()
            net.train(model, rows, order, samples_before=done, seed=seed, threads=threads)
            t_train += time.perf_counter() - t0
            done += k
        err = float((net.predict(model, Rows.dense(xt, yt), threads=threads).argmax(1) != yt).mean())
        bpr, active = bytes_per_row(net, model, x[:500])
        out.append({"net": name, "system": f"h2odl_mpi {threads} thread(s)", "threads": threads,
                    "layers": "-".join(map(str, net.units)), "activation": spec["activation"],
                    "rows": done, "samples_per_s": done / t_train,
                    "test_error": err if spec["epochs"] is not None else None,
                    "epochs": done / len(x), "bytes_per_row": bpr,
                    "active_fraction": active, "isa": ffi.string(lib.h2o_isa()).decode()})
    return out


def run_peer(module, args, timeout):
    cmd = [sys.executable, "-m", f"benchmarks.peers.{module}"] + args + ["--json"]
    try:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout}s"}
    if r.returncode != 0:
        return {"error": (r.stderr or r.stdout)[-500:]}
    text = r.stdout
    return json.loads(text[text.index("{"):])


def _h2o_row(name, spec, res):
    if "error" in res:
        return {"net": name, "system": "H2O-3 nthreads=2", "error": res["error"]}
    r = res["results"][0] if "results" in res else res
    test = r.get("test", {})
    return {"net": name, "system": "H2O-3 nthreads=2", "threads": 2,
            "samples_per_s": r.get("samples_per_s"), "epochs": r.get("epochs_done"),
            "rows": r.get("training_samples"),
            "test_error": test.get("classification_error") if spec["epochs"] is not None else None}


def _torch_row(name, spec, res):
    if "error" in res:
        return {"net": name, "system": "PyTorch Hogwild! 2 processes", "error": res["error"]}
    return {"net": name, "system": "PyTorch Hogwild! 2 processes", "threads": 2,
            "samples_per_s": res.get("samples_per_s"), "rows": res.get("rows_trained"),
            "test_error": (res.get("test") or {}).get("classification_error") if spec["epochs"] is not None else None}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nets", default=",".join(NETS), help="comma list of " + ", ".join(NETS))
    ap.add_argument("--no-peers", action="store_true", help="measure h2odl_mpi only")
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args(argv)
    names = [n for n in args.nets.split(",") if n]
    threads_list = [int(t) for t in args.threads.split(",")]
    data = load_mnist()
    rows = []
    bw = None
    if not args.no_peers:
        bw = run_peer("membw", ["--array-mib", "512", "--trials", "5"], 900)
    for name in names:
        spec = NETS[name]
        ours = measure_ours(name, spec, data, threads_list)
        rows += ours
        if args.no_peers:
            continue
        h2o_args = ["--hidden", ",".join(map(str, spec["hidden"])), "--activation", spec["activation"],
                    "--epochs", str(spec["h2o_epochs"])]
        rows.append(_h2o_row(name, spec, run_peer("h2o_peer", h2o_args, 1800)))
        t_args = ["--hidden", ",".join(map(str, spec["hidden"])), "--activation", spec["activation"],
                  "--processes", "2", "--epochs", str(int(spec["epochs"] or 1))]
        if spec["torch_rows"]:
            t_args += ["--max-rows", str(spec["torch_rows"])]
        rows.append(_torch_row(name, spec, run_peer("torch_hogwild", t_args, 1800)))
    report(rows, bw)


def report(rows, bw):
    RESULTS.mkdir(parents=True, exist_ok=True)
    dram = (bw or {}).get("dram_gb_per_s_best", {})
    by_net = {}
    for r in rows:
        by_net.setdefault(r["net"], []).append(r)
    lines = ["| network | system | samples/s | vs H2O-3 | vs PyTorch | test error | DRAM-bound fraction |",
             "|---|---|---|---|---|---|---|"]
    for net, rs in by_net.items():
        h2o = next((r["samples_per_s"] for r in rs if r["system"].startswith("H2O") and r.get("samples_per_s")), None)
        pt = next((r["samples_per_s"] for r in rs if r["system"].startswith("PyTorch") and r.get("samples_per_s")), None)
        one = next((r["samples_per_s"] for r in rs if r.get("threads") == 1 and r["system"].startswith("h2odl")), None)
        for r in rs:
            sps = r.get("samples_per_s")
            if r.get("error"):
                lines.append(f"| {net} | {r['system']} | failed: {r['error'][:60]} | | | | |")
                continue
            frac = ""
            if r["system"].startswith("h2odl") and dram:
                gbs = dram.get(f"triad_{r['threads']}t")
                if gbs:
                    r["dram_bound_samples_per_s"] = gbs * 1e9 / r["bytes_per_row"]
                    frac = f"{sps / r['dram_bound_samples_per_s']:.2f}"
            if r["system"].startswith("h2odl") and r.get("threads") == 2 and one:
                r["thread_scaling_1_to_2"] = sps / one
            vs_h2o = f"{sps / h2o:.1f}x" if h2o and r["system"].startswith("h2odl") else ""
            vs_pt = f"{sps / pt:.1f}x" if pt and r["system"].startswith("h2odl") else ""
            err = "" if r.get("test_error") is None else f"{100 * r['test_error']:.2f}%"
            lines.append(f"| {net} {r.get('layers', '')} | {r['system']} | {sps:,.0f} | {vs_h2o} | {vs_pt} | {err} | {frac} |")
    scal = [f"{r['net']}: {r['thread_scaling_1_to_2']:.2f}x" for r in rows if "thread_scaling_1_to_2" in r]
    text = "\n".join(lines)
    text += "\n\n1 -> 2 threads: " + ", ".join(scal)
    if dram:
        text += "\nDRAM triad bandwidth (GB/s): " + ", ".join(f"{k} {v}" for k, v in dram.items())
    print(text)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with open(RESULTS / "kernel_throughput.json", "w") as f:
        json.dump({"date_utc": stamp, "rows": rows, "membw": bw, "table": text}, f, indent=2, default=str)
    keys = ["net", "system", "threads", "layers", "activation", "rows", "samples_per_s", "test_error",
            "epochs", "bytes_per_row", "dram_bound_samples_per_s", "thread_scaling_1_to_2", "isa", "error"]
    with open(RESULTS / "kernel_throughput.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    main()
