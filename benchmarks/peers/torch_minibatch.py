"""PyTorch CPU mini-batch training as the peer: test error against training time.

What a PyTorch user would write for the bundled MNIST pair: an MLP (default 784-200-200-10 with
ReLU; the inputs are the training set's non-constant columns, so 758 of the 784 pixels), Adam
(lr 1e-3), mini-batches of 128 rows from a fresh random permutation every epoch, softmax cross
entropy, `torch.set_num_threads(2)`. The preprocessing is H2O's (the same function as
torch_hogwild.py): constant columns dropped (ignore_const_cols), every column standardised with
the training set's mean and standard deviation (ddof=1; the test set with the training
statistics). Weights: PyTorch's default initialisation (`--init glorot`: Glorot-uniform, H2O's
UniformAdaptive, biases zero).

What is measured, per run
- after every epoch (or `--evals-per-epoch` times per epoch), the classification error and
  logloss on the whole test set, with the CUMULATIVE TRAINING TIME up to that point: the wall
  time of the training loop (the permutation, the batches' forward, backward and Adam steps),
  EXCLUDING the test evaluations, data loading and model building. One untimed forward and
  backward pass (no optimizer step) warms the operators up before the clock starts.
- time_to_threshold_s: the cumulative training time at the first evaluation whose test error
  is at or below `--threshold` (default 0.10); None when no evaluation got there.

`--repeats N` runs N times (seeds seed, seed+1, ...) in one process and reports the medians:
of the time to the threshold (a run that never got there counts as infinitely slow; the
median is None when half or more never got there), of the final test error, and the median
curve (per evaluation point: the median time and the median error over the runs).

    python -m benchmarks.peers.torch_minibatch --epochs 10 --repeats 5 --json
    python -m benchmarks.peers.torch_minibatch --hidden 200,200 --batch-size 128 --threads 2 \
        --threshold 0.10 --epochs 5 --repeats 1
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

from benchmarks.peers.membw import CpuMonitor, emit, machine_info, wait_for_quiet
from benchmarks.peers.torch_hogwild import evaluate, load_mnist


def _log(msg: str) -> None:
    print(f"[torch_minibatch] {msg}", file=sys.stderr, flush=True)


def median_time(values):
    """Median of times where None means 'never got there' (infinitely slow); None when the
    median itself is such a run."""
    if not values:
        return None
    m = statistics.median([math.inf if v is None else float(v) for v in values])
    return None if math.isinf(m) else m


def median_or_none(values):
    vals = [float(v) for v in values if v is not None]
    return statistics.median(vals) if vals else None


def build_model(n_in: int, hidden, n_out: int, activation: str, init: str, seed: int):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    act = {"rectifier": nn.ReLU, "relu": nn.ReLU, "tanh": nn.Tanh}[activation.lower()]
    layers, prev = [], n_in
    for h in hidden:
        layers += [nn.Linear(prev, h), act()]
        prev = h
    layers.append(nn.Linear(prev, n_out))  # logits; the softmax is inside the cross entropy
    model = nn.Sequential(*layers)
    if init == "glorot":
        with torch.no_grad():
            for m in model:
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)
    return model


def train_once(data, hidden, activation, epochs, batch_size, lr, init, seed, threshold,
               evals_per_epoch=1, stop_at_threshold=False) -> dict:
    """One run: the curve of (epochs, cumulative training seconds, test error)."""
    import torch
    import torch.nn.functional as F

    xtr, ytr, xte, yte, info = data
    model = build_model(info["n_inputs"], hidden, info["n_classes"], activation, init, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    n = xtr.shape[0]
    n_batches = (n + batch_size - 1) // batch_size
    # evaluation points: after these batches of each epoch (the last one ends the epoch)
    marks = sorted({max(1, round(n_batches * (k + 1) / evals_per_epoch)) for k in range(evals_per_epoch)})

    # warm-up, untimed: one forward and backward, no step
    F.cross_entropy(model(xtr[:batch_size]), ytr[:batch_size]).backward()
    optimizer.zero_grad(set_to_none=True)

    curve, train_s, eval_s, rows = [], 0.0, 0.0, 0
    reached = None
    for epoch in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        for b in range(n_batches):
            idx = perm[b * batch_size:(b + 1) * batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            loss.backward()
            optimizer.step()
            rows += len(idx)
            if (b + 1) in marks:
                train_s += time.perf_counter() - t0
                te = time.perf_counter()
                m = evaluate(model, xte, yte, batch=5000)
                eval_s += time.perf_counter() - te
                point = {"epochs": rows / n, "train_s": train_s, "test_error": m["classification_error"],
                         "test_logloss": m["logloss"]}
                curve.append(point)
                if reached is None and m["classification_error"] <= threshold:
                    reached = point
                t0 = time.perf_counter()
        if stop_at_threshold and reached is not None:
            break
    return {
        "seed": seed,
        "curve": curve,
        "time_to_threshold_s": reached["train_s"] if reached else None,
        "epochs_to_threshold": reached["epochs"] if reached else None,
        "final_test_error": curve[-1]["test_error"],
        "final_train_s": curve[-1]["train_s"],
        "epochs_done": rows / n,
        "samples_per_s": rows / train_s if train_s > 0 else None,
        "eval_s_total": eval_s,
    }


def median_curve(runs):
    """Per evaluation point (the same points in every run): the median time and error."""
    k = min(len(r["curve"]) for r in runs)
    out = []
    for i in range(k):
        pts = [r["curve"][i] for r in runs]
        out.append({"epochs": statistics.median(p["epochs"] for p in pts),
                    "train_s": statistics.median(p["train_s"] for p in pts),
                    "test_error": statistics.median(p["test_error"] for p in pts)})
    return out


def run(hidden=(200, 200), activation="Rectifier", epochs=10, batch_size=128, lr=1e-3, threads=2,
        init="default", seed=1234, repeats=1, threshold=0.10, evals_per_epoch=1,
        stop_at_threshold=False, quiet_wait_s=0.0) -> dict:
    import torch

    torch.set_num_threads(threads)
    t_load = time.perf_counter()
    xtr, ytr, xte, yte, info = load_mnist()
    data = (torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte), torch.from_numpy(yte), info)
    load_s = time.perf_counter() - t_load
    runs = []
    for r in range(repeats):
        quiet = wait_for_quiet(max_wait_s=quiet_wait_s, log=_log) if quiet_wait_s > 0 else {"quiet": None}
        _log(f"run {r + 1}/{repeats}: {info['n_inputs']}-{'-'.join(map(str, hidden))}-{info['n_classes']} "
             f"{activation}, Adam lr={lr}, batch {batch_size}, {threads} threads, {epochs} epochs")
        with CpuMonitor() as mon:
            res = train_once(data, list(hidden), activation, epochs, batch_size, lr, init, seed + r,
                             threshold, evals_per_epoch, stop_at_threshold)
        res["quiet_before"] = quiet
        res["contention"] = mon.report()
        tt = res["time_to_threshold_s"]
        _log(f"  final test error {res['final_test_error']:.4f} after {res['final_train_s']:.2f} s; "
             f"to {threshold:.1%}: " + (f"{tt:.2f} s" if tt is not None else "not reached"))
        runs.append(res)
    return {
        "peer": "torch-minibatch",
        "torch_version": torch.__version__,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": {
            "hidden": list(hidden), "activation": activation, "layers": [info["n_inputs"], *hidden, info["n_classes"]],
            "optimizer": {"name": "Adam", "lr": lr}, "batch_size": batch_size, "threads": threads,
            "init": "PyTorch default (kaiming-uniform)" if init == "default" else "xavier_uniform weights, zero biases",
            "loss": "softmax cross entropy (F.cross_entropy on logits)",
            "shuffle": "torch.randperm every epoch", "epochs": epochs, "evals_per_epoch": evals_per_epoch,
            "stop_at_threshold": stop_at_threshold,
            "standardize": "training mean/sd (ddof=1), constant columns dropped (as H2O)",
            "time": "cumulative training-loop wall time, test evaluations excluded",
            "seed": seed, "repeats": repeats, "threshold": threshold,
        },
        "data": info,
        "load_s": load_s,
        "runs": runs,
        "median": {
            "time_to_threshold_s": median_time([r["time_to_threshold_s"] for r in runs]),
            "epochs_to_threshold": median_time([r["epochs_to_threshold"] for r in runs]),
            "reached": sum(r["time_to_threshold_s"] is not None for r in runs),
            "final_test_error": median_or_none([r["final_test_error"] for r in runs]),
            "final_train_s": median_or_none([r["final_train_s"] for r in runs]),
            "samples_per_s": median_or_none([r["samples_per_s"] for r in runs]),
            "curve": median_curve(runs),
        },
        "machine": machine_info(),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description="PyTorch CPU mini-batch (Adam) peer on the MNIST pair: "
                                             "test error against training time")
    ap.add_argument("--hidden", default="200,200")
    ap.add_argument("--activation", default="Rectifier", help="Rectifier (ReLU) or Tanh")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--init", choices=["default", "glorot"], default="default")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--repeats", type=int, default=1, help="runs (seeds seed, seed+1, ...); medians reported")
    ap.add_argument("--threshold", type=float, default=0.10, help="test error for the time to accuracy")
    ap.add_argument("--evals-per-epoch", type=int, default=1, help="test evaluations per epoch")
    ap.add_argument("--stop-at-threshold", action="store_true", help="end a run after the epoch that reached it")
    ap.add_argument("--quiet-wait", type=float, default=0.0,
                    help="before each run wait up to this many seconds for a quiet machine (0: do not wait)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    ap.add_argument("--out", help="also write the JSON result to this file")
    args = ap.parse_args(argv)
    if args.epochs < 1 or args.repeats < 1 or args.batch_size < 1 or args.evals_per_epoch < 1:
        ap.error("--epochs, --repeats, --batch-size and --evals-per-epoch must be at least 1")
    res = run(hidden=[int(h) for h in args.hidden.split(",") if h.strip()], activation=args.activation,
              epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, threads=args.threads,
              init=args.init, seed=args.seed, repeats=args.repeats, threshold=args.threshold,
              evals_per_epoch=args.evals_per_epoch, stop_at_threshold=args.stop_at_threshold,
              quiet_wait_s=args.quiet_wait)
    if not emit(res, args):
        m = res["median"]
        tt = m["time_to_threshold_s"]
        print(f"{'-'.join(map(str, res['settings']['layers']))} Adam batch {args.batch_size}, {args.threads} threads, "
              f"median of {args.repeats}: final test error {m['final_test_error']:.4f} after "
              f"{m['final_train_s']:.2f} s; to {args.threshold:.1%}: "
              + (f"{tt:.2f} s" if tt is not None else f"not reached ({m['reached']}/{args.repeats} runs did)"))


if __name__ == "__main__":
    main()
