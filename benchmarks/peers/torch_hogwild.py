"""PyTorch CPU as the peer: PyTorch's own Hogwild! example pattern, one row at a time.

The pattern of pytorch/examples mnist_hogwild: one model, `model.share_memory()`, P processes from
torch.multiprocessing (fork), each with `torch.set_num_threads(1)` and its own optimizer over the
shared parameters, all updating the same weights without locks. Here each process trains ONE ROW
AT A TIME (batch size 1) on its own share of the rows (the epoch's shuffled rows dealt out round
robin), like H2O's Hogwild!.

The network mirrors H2O Deep Learning on the bundled MNIST pair: inputs are the training set's
non-constant columns (H2O's ignore_const_cols), each standardised with the training set's mean and
standard deviation (H2O's standardize; sample sd, ddof=1; the test set uses the training
statistics); hidden layers of ReLU or Tanh; a softmax output with cross entropy; weights
Glorot-uniform (H2O's UniformAdaptive), biases zero; Adadelta(lr=1, rho=0.99, eps=1e-8) as H2O's
ADADELTA. Each process keeps its own Adadelta accumulators (as the example keeps its own optimizer);
H2O shares them with the weights. Data are float32 tensors in shared memory, made before the fork.

What is measured
- samples_per_s = rows processed by all processes / wall time of the training phase only: from
  the moment all processes pass a start barrier (data loaded, model built) to the last process's
  end of training. Process start-up, data loading and the test evaluation are excluded.
- test classification error and logloss of the shared model after training (forward pass over the
  whole test set in the parent).
`--max-rows N` trains only N rows per epoch (for big nets); `--max-seconds` stops every process
after that many seconds of training (recorded as truncated).

    python -m benchmarks.peers.torch_hogwild --hidden 200,200 --epochs 1 --processes 2 --json
    python -m benchmarks.peers.torch_hogwild --hidden 2500,2000,1500,1000,500 --activation Tanh \
        --max-rows 400 --json
"""
from __future__ import annotations

import argparse
import gzip
import os
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.peers.membw import CpuMonitor, emit, machine_info, wait_for_quiet

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MNIST_DIR = PROJECT_ROOT / "h2odl_mpi" / "datasets" / "mnist"


def _log(msg: str) -> None:
    print(f"[torch_hogwild] {msg}", file=sys.stderr, flush=True)


def load_csv(path: Path) -> np.ndarray:
    """The headerless numeric CSV (gzip) as float64; pandas if present (fast), else numpy."""
    try:
        import pandas as pd

        return pd.read_csv(path, header=None).to_numpy(dtype=np.float64)
    except ImportError:
        with gzip.open(path, "rt") as f:
            return np.loadtxt(f, delimiter=",", dtype=np.float64)


def load_mnist(response_col: int = 784):
    """(x_train, y_train, x_test, y_test, info): constant columns dropped, standardised as H2O."""
    tr = load_csv(MNIST_DIR / "train.csv.gz")
    te = load_csv(MNIST_DIR / "test.csv.gz")
    ytr = tr[:, response_col].astype(np.int64)
    yte = te[:, response_col].astype(np.int64)
    xtr = np.delete(tr, response_col, axis=1)
    xte = np.delete(te, response_col, axis=1)
    mean = xtr.mean(axis=0)
    sd = xtr.std(axis=0, ddof=1)
    keep = sd > 0
    xtr = ((xtr[:, keep] - mean[keep]) / sd[keep]).astype(np.float32)
    xte = ((xte[:, keep] - mean[keep]) / sd[keep]).astype(np.float32)
    n_classes = int(max(ytr.max(), yte.max())) + 1
    info = {"n_inputs": int(keep.sum()), "dropped_constant_columns": int((~keep).sum()),
            "train_rows": int(len(ytr)), "test_rows": int(len(yte)), "n_classes": n_classes}
    return xtr, ytr, xte, yte, info


def build_model(n_in: int, hidden, n_out: int, activation: str, seed: int):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    act = {"rectifier": nn.ReLU, "relu": nn.ReLU, "tanh": nn.Tanh}[activation.lower()]
    layers, prev = [], n_in
    for h in hidden:
        layers += [nn.Linear(prev, h), act()]
        prev = h
    layers.append(nn.Linear(prev, n_out))  # logits; softmax inside the cross entropy
    model = nn.Sequential(*layers)
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)  # Glorot uniform = H2O's UniformAdaptive
                nn.init.zeros_(m.bias)
    return model


def _worker(rank, model, x, y, rows_per_epoch, epochs, processes, seed, opt_kwargs, max_seconds,
            barrier, results):
    """One Hogwild! process: its own optimizer, one row at a time, on its share of each epoch."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    optimizer = torch.optim.Adadelta(model.parameters(), **opt_kwargs)
    n = x.shape[0]
    # the epoch's shuffled rows (same permutation in every process), dealt out round robin
    shares = []
    for e in range(epochs):
        perm = np.random.default_rng(seed + 1000 * e).permutation(n)[:rows_per_epoch]
        shares.append(torch.from_numpy(perm[rank::processes].copy()))
    # warm-up: nothing is trained before the barrier, but the first call of each op is slow;
    # do one forward/backward without a step so that allocation and dispatch are warm
    out = model(x[0:1])
    F.cross_entropy(out, y[0:1]).backward()
    optimizer.zero_grad(set_to_none=True)
    barrier.wait()
    t0 = time.perf_counter()
    deadline = t0 + max_seconds if max_seconds else None
    done = 0
    truncated = False
    for e in range(epochs):
        for i in shares[e].tolist():
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[i:i + 1]), y[i:i + 1])
            loss.backward()
            optimizer.step()
            done += 1
            if deadline is not None and (done & 15) == 0 and time.perf_counter() > deadline:
                truncated = True
                break
        if truncated:
            break
    t1 = time.perf_counter()
    results.put({"rank": rank, "rows": done, "t_start": t0, "t_end": t1, "truncated": truncated})


def evaluate(model, x, y, batch: int = 2000) -> dict:
    import torch
    import torch.nn.functional as F

    model.eval()
    errors, nll = 0, 0.0
    with torch.no_grad():
        for s in range(0, x.shape[0], batch):
            logits = model(x[s:s + batch])
            nll += F.cross_entropy(logits, y[s:s + batch], reduction="sum").item()
            errors += (logits.argmax(dim=1) != y[s:s + batch]).sum().item()
    model.train()
    return {"rows": int(x.shape[0]), "classification_error": errors / x.shape[0],
            "logloss": nll / x.shape[0], "errors": int(errors)}


def run(hidden=(200, 200), activation: str = "Rectifier", epochs: int = 1, processes: int = 2,
        max_rows: int | None = None, max_seconds: float = 240.0, seed: int = 1234,
        rho: float = 0.99, eps: float = 1e-8, foreach: bool | None = None,
        quiet_wait_s: float = 60.0) -> dict:
    import torch
    import torch.multiprocessing as mp

    torch.set_num_threads(1)  # before anything runs an op, so no thread pool exists at fork
    t_load = time.perf_counter()
    xtr, ytr, xte, yte, info = load_mnist()
    x = torch.from_numpy(xtr).share_memory_()
    y = torch.from_numpy(ytr).share_memory_()
    load_s = time.perf_counter() - t_load
    model = build_model(info["n_inputs"], hidden, info["n_classes"], activation, seed)
    model.share_memory()
    n_params = sum(p.numel() for p in model.parameters())
    rows_per_epoch = min(max_rows, info["train_rows"]) if max_rows else info["train_rows"]
    opt_kwargs = {"lr": 1.0, "rho": rho, "eps": eps, "weight_decay": 0.0}
    if foreach is not None:
        opt_kwargs["foreach"] = foreach

    quiet = wait_for_quiet(max_wait_s=quiet_wait_s, log=_log)
    _log(f"training {info['n_inputs']}-{'-'.join(map(str, hidden))}-{info['n_classes']} {activation} "
         f"on {processes} processes, {rows_per_epoch} rows x {epochs} epochs")
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker,
                         args=(r, model, x, y, rows_per_epoch, epochs, processes, seed, opt_kwargs,
                               max_seconds, barrier, results))
             for r in range(processes)]
    t_spawn = time.perf_counter()
    with CpuMonitor() as mon:
        for p in procs:
            p.start()
        per_proc = []
        timeout = (max_seconds or 3600) + 120
        try:
            for _ in procs:
                per_proc.append(results.get(timeout=timeout))
        finally:
            for p in procs:
                p.join(timeout=30)
                if p.is_alive():
                    p.terminate()
                    p.join(timeout=10)
    parent_wall = time.perf_counter() - t_spawn
    bad = [p.exitcode for p in procs if p.exitcode != 0]
    if bad or len(per_proc) != processes:
        raise RuntimeError(f"worker(s) failed: exit codes {[p.exitcode for p in procs]}")
    per_proc.sort(key=lambda r: r["rank"])
    rows = sum(r["rows"] for r in per_proc)
    t0 = min(r["t_start"] for r in per_proc)
    t1 = max(r["t_end"] for r in per_proc)
    train_s = t1 - t0

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    t_eval = time.perf_counter()
    test = evaluate(model, torch.from_numpy(xte), torch.from_numpy(yte))
    eval_s = time.perf_counter() - t_eval
    res = {
        "peer": "torch-hogwild",
        "torch_version": torch.__version__,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": {
            "pattern": "pytorch/examples mnist_hogwild: model.share_memory(), torch.multiprocessing "
                       "(fork), one optimizer per process, lock-free updates",
            "processes": processes,
            "threads_per_process": 1,
            "batch_size": 1,
            "hidden": list(hidden),
            "activation": activation,
            "loss": "softmax cross entropy (F.cross_entropy on logits)",
            "optimizer": {"name": "Adadelta", **opt_kwargs, "state": "per process"},
            "init": "xavier_uniform weights, zero biases",
            "standardize": "mean 0, sd 1 (ddof=1) per column over the training set; constant columns dropped",
            "epochs": epochs,
            "rows_per_epoch": rows_per_epoch,
            "max_rows": max_rows,
            "max_seconds": max_seconds,
            "seed": seed,
            "row_assignment": "per epoch: shuffled rows dealt round robin to the processes",
        },
        "data": info,
        "layers": [info["n_inputs"], *hidden, info["n_classes"]],
        "n_params": n_params,
        "training_samples": rows,
        "epochs_done": rows / info["train_rows"],
        "train_s": train_s,
        "samples_per_s": rows / train_s,
        "per_process": [{"rank": r["rank"], "rows": r["rows"], "train_s": r["t_end"] - r["t_start"],
                         "samples_per_s": r["rows"] / (r["t_end"] - r["t_start"]),
                         "truncated": r["truncated"]} for r in per_proc],
        "truncated": any(r["truncated"] for r in per_proc) or rows_per_epoch < info["train_rows"],
        "parent_wall_s_incl_start": parent_wall,
        "load_s": load_s,
        "test": test,
        "test_eval_s": eval_s,
        "quiet_before": quiet,
        "contention": mon.report(),
        "machine": machine_info(),
    }
    _log(f"  {rows} rows in {train_s:.2f} s: {res['samples_per_s']:.1f} samples/s; "
         f"test error {test['classification_error']:.4f}")
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description="PyTorch CPU Hogwild! peer (batch size 1) on the MNIST pair")
    ap.add_argument("--hidden", default="200,200")
    ap.add_argument("--activation", default="Rectifier", help="Rectifier (ReLU) or Tanh")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--max-rows", type=int, help="train only this many rows per epoch")
    ap.add_argument("--max-seconds", type=float, default=240.0,
                    help="stop each process after this many seconds of training (0: no limit)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--foreach", choices=["default", "true", "false"], default="default",
                    help="Adadelta's foreach implementation (default: PyTorch's choice)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    ap.add_argument("--out", help="also write the JSON result to this file")
    args = ap.parse_args(argv)
    foreach = None if args.foreach == "default" else args.foreach == "true"
    res = run(hidden=[int(h) for h in args.hidden.split(",") if h.strip()],
              activation=args.activation, epochs=args.epochs, processes=args.processes,
              max_rows=args.max_rows, max_seconds=args.max_seconds, seed=args.seed,
              foreach=foreach)
    if not emit(res, args):
        print(f"{'-'.join(map(str, res['layers']))} {args.activation}, {args.processes} processes: "
              f"{res['samples_per_s']:.1f} samples/s, test error {res['test']['classification_error']:.4f}")


if __name__ == "__main__":
    main()
