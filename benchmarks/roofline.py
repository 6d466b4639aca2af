"""Roofline of the h2odl_mpi kernel, with every roof measured on this machine by this script.

Roofs.  Compute: the peak float32 rate of independent FMA chains (a C microbenchmark compiled at
run time with cffi, explicit vectors as wide as the instruction set's registers, 24 chains for
AVX-512 and 12 for narrower registers) for the instruction set the kernel runs (`h2o_isa()`:
the widest variant of csrc/dispatch.c the CPU has, or the one H2ODL_ISA names), the same
without FMA contraction (separate multiply and add: how the kernel is compiled, see
"kernel FMA instructions" in the output), and, labelled separately, for -march=native.
Bandwidth: float32 read and read+write ("rmw": three arrays updated in place, like the update
sweep over W and ADADELTA's two accumulators) at L1, L2, L3 and DRAM footprints chosen from the
cache sizes in /sys/devices/system/cpu/cpu0/cache (benchmarks/peers/membw.py --levels, compiled
for the kernel's instruction set).  Each for 1 thread and for all cores, threads pinned.

Counts.  Per training row, what the kernel does (csrc/net.c, csrc/layers.c) given its zero
skipping, for dense rows in fast mode (H2O's default) with l1 = l2 = 0, max_w2 = inf, no
dropout (flops_and_bytes_per_row below documents each term):
  forward   each weight layer: net = W a + b, over the non-zero inputs only when fewer than a
            quarter of the inputs are non-zero (the gather path), else over all of them
  backward  for each updated row (unit with g != 0: active Rectifier units, every Tanh unit,
            every output): e_prev += g_j W[j, :] (fused with the update sweep), f'(a)
  update    that row's weights and optimizer state: over the non-zero inputs (gather path) or
            over all inputs (dense path: inputs with a_i = 0 are masked, not skipped); its bias
bytes: weights read by the forward pass, weights + state read and written by the update (the
traffic to where the model lives), and the activation/error vectors (L1-resident; reported
apart).  The sparsity comes from real MNIST rows (bundled h2odl_mpi/datasets/mnist, 758
non-constant inputs, standardised as H2O does) and the Rectifier units active on them (the
kernel's predict of each hidden layer), at the start and the end of the timed window.

Result, per network and thread count: achieved samples/s (a short timed training, as
kernel_throughput.py), GFLOP/s and GB/s, the level the model footprint (weights + biases +
optimizer state) fits in, the binding roof min(peak, AI x bandwidth of that level; bandwidth =
the read/rmw mix of the row's traffic) and the fraction of it reached.  Beside it, a second roof
from the bandwidth measured at the model's own footprint with every thread sweeping all of it
(Hogwild! threads share one model; a level's bandwidth comes from private slices at a fixed
footprint, and an L3 the OS reports at the whole chip's size can be far slower at half of it
than at the model's few MiB).  With a kernel that takes
`mini_batch_size` (h2odl_mpi.params.SPEC), B = 8 and 32 are measured too; otherwise the model's
roofs for them are printed as projections.

    .venv/bin/python benchmarks/roofline.py                 # all three networks
    .venv/bin/python benchmarks/roofline.py --quick         # smoke run: few rows, short trials
    .venv/bin/python benchmarks/roofline.py --nets small --threads 1

Writes benchmarks/results/roofline.json, .csv and .png (--quick: roofline_quick.*).  The plot
needs matplotlib (benchmarks/requirements.txt); without it the plot is skipped with a note.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import gzip
import inspect
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"

# ============================================================================ counting model
# Nothing below this line up to "roofs" imports the kernel: the counts are plain Python.

OPTIMIZERS = ("adadelta", "nesterov", "momentum", "sgd")
# optimizer state arrays beside W (and beside b): ADADELTA Edx2 and Eg2; momentum V; none
STATE_ARRAYS = {"adadelta": 2, "nesterov": 1, "momentum": 1, "sgd": 0}
# flops per updated weight, as layers.c computes them (no -ffast-math: nothing is folded):
GRAD_FLOPS = 1       # g_j * a_i
REG_FLOPS = 4        # - l1 * sgn(w) - l2 * w: two multiplies and two subtracts, done at l1 = l2 = 0 too
OPT_FLOPS = {
    # Eg2 = rho Eg2 + (1-rho) gr gr: 4; r = A * rsqrt(A B), A = Edx2 + eps, B = Eg2 + eps, the
    # rsqrt one multiply and two Newton steps of 4: 13; Edx2 = rho Edx2 + (1-rho) r r gr gr: 6;
    # w += r gr: 2; the row's sum of gr^2 for the bias rule: 2
    "adadelta": 27,
    "nesterov": 4,   # V = m V + gr: 2; w += rate V: 2
    "momentum": 4,   # d = rate gr: 1; w += d + m V: 3
    "sgd": 2,        # w += rate gr
}
# flops per updated row (its bias): gb = g - l1 sgn(b) - l2 b: 4; q = sum gr^2 / fan-in: 1; then
# ADADELTA: Eg2_b 4, rate 13, Edx2_b 6, b += r gb 2; Nesterov: V 2, b 2; momentum: d 1, b 3;
# sgd: b 2
BIAS_FLOPS = {"adadelta": 30, "nesterov": 9, "momentum": 9, "sgd": 7}
# forward, per hidden unit: the activation f(net), counted as 1 flop whatever libm spends on
# tanh (Maxout: one compare), and the dropout scale a *= s, done with s = 1 too: 2.
# Backward f'(a) per active unit: Tanh e (1 - a a): 3; Rectifier and Maxout: a copy;
# ExpRectifier: up to 2 (e (a + 1) where a < 0).
ACT_FLOPS = 2
BACKPROP_FLOPS = {"Tanh": 3, "Rectifier": 0, "Maxout": 0, "ExpRectifier": 2}
# softmax output, per class: subtract the max, exp, sum, scale: 4; gradient w (t - y): 2;
# per row: 1 / sum and -log y_t: 2
SOFTMAX_FLOPS_PER_CLASS = 6
SOFTMAX_FLOPS_PER_ROW = 2
F32 = 4


def optimizer_of(adaptive_rate: bool, momentum: bool = True, nesterov: bool = True) -> str:
    """The kernel's update rule: ADADELTA, or a manual rate with Nesterov / plain momentum, or
    plain SGD when both momenta are 0 (csrc/net.c backward_update's opt)."""
    if adaptive_rate:
        return "adadelta"
    if momentum:
        return "nesterov" if nesterov else "momentum"
    return "sgd"


def gather_path(n_nonzero: float, n_inputs: int) -> bool:
    """layers.c use_sparse_path: visit only the non-zero inputs when fewer than a quarter."""
    return 4 * n_nonzero < n_inputs


def layer_counts(units, activation: str, optimizer: str, input_nnz: float, active,
                 mini_batch_size: int = 1, union_active=None, union_input_nnz=None,
                 csr: bool = False) -> dict:
    """Flops and bytes of ONE training row, per weight layer and in total, from counts.

    units: [inputs, hidden..., outputs] (softmax output); input_nnz: the row's non-zero inputs;
    active: per hidden layer, how many of its units have a != 0 (may be fractional: an
    average).  mini_batch_size B > 1 models B rows sharing one update: forward and backward stay
    per row (the backward then reads W on its own: 4 B per weight of each updated row, no longer
    fused with the update), the gradient g_j a_i is accumulated per row (2 flops per weight,
    kept with the rows' vectors, not in a buffer of W's size), and the update sweep (weights +
    state read and written, its optimizer flops, biases) runs once per B rows over the rows
    updated by any of them: union_active (per hidden layer; default: the independent-rows
    estimate U (1 - (1 - f)^B)) and, on the gather path, union_input_nnz inputs.  The activation
    and error vectors are counted as for B = 1.  csr: CSR rows (the first layer's update always
    takes the gather path).  Returns a dict: totals (flops, flops_forward, flops_backward,
    flops_update, bytes = bytes_read + bytes_rmw, bytes_vectors, ai) and "layers"."""
    units = [int(u) for u in units]
    L = len(units) - 1
    if L < 1:
        raise ValueError("units needs inputs and outputs")
    if activation not in BACKPROP_FLOPS:
        raise ValueError(f"activation must be one of {sorted(BACKPROP_FLOPS)}, got {activation!r}")
    if optimizer not in OPT_FLOPS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    B = int(mini_batch_size)
    if B < 1:
        raise ValueError(f"mini_batch_size must be >= 1, got {mini_batch_size}")
    active = [float(a) for a in active]
    if len(active) != L - 1:
        raise ValueError(f"active needs one count per hidden layer ({L - 1}), got {len(active)}")
    for a, u in zip(active, units[1:-1]):
        if not 0 <= a <= u:
            raise ValueError(f"active count {a} outside [0, {u}]")
    if not 0 <= input_nnz <= units[0]:
        raise ValueError(f"input_nnz {input_nnz} outside [0, {units[0]}]")
    if B > 1:
        if union_active is None:
            union_active = [u * (1.0 - (1.0 - a / u) ** B) if u else 0.0
                            for a, u in zip(active, units[1:-1])]
        union_active = [max(float(x), a) for x, a in zip(union_active, active)]
        if union_input_nnz is None:
            f = input_nnz / units[0]
            union_input_nnz = units[0] * (1.0 - (1.0 - f) ** B)
        union_input_nnz = max(float(union_input_nnz), float(input_nnz))
    S = STATE_ARRAYS[optimizer]
    per_weight_upd = REG_FLOPS + OPT_FLOPS[optimizer]
    layers = []
    for l in range(L):
        U = units[l]
        hidden = l < L - 1
        ch = 2 if (hidden and activation == "Maxout") else 1
        R = units[l + 1] * ch
        n_in = float(input_nnz) if l == 0 else active[l - 1]
        n_upd = active[l] if hidden else float(units[l + 1])
        sparse = gather_path(n_in, U)
        sparse_upd = sparse or (l == 0 and csr)
        Lf = n_in if sparse else U
        Lu = n_in if sparse_upd else U
        # ---- forward
        f_fwd = 2.0 * R * Lf + R  # dot products and bias adds
        if hidden:
            f_fwd += ACT_FLOPS * units[l + 1]
        else:
            f_fwd += SOFTMAX_FLOPS_PER_CLASS * R + SOFTMAX_FLOPS_PER_ROW
        b_read = F32 * (R * Lf + R)
        # ---- backward: the error to the previous layer and f'(a) of its active units
        f_bwd = 0.0
        if l > 0:
            f_bwd = 2.0 * n_upd * Lu + BACKPROP_FLOPS[activation] * n_in
        # ---- update
        if B == 1:
            f_upd = n_upd * Lu * (GRAD_FLOPS + per_weight_upd) + n_upd * BIAS_FLOPS[optimizer]
            b_rmw = 2 * F32 * (1 + S) * n_upd * (Lu + 1)
            b_bwd_read = 0.0
            n_upd_sweep, Lu_sweep = n_upd, Lu
        else:
            n_upd_sweep = union_active[l] if hidden else float(units[l + 1])
            in_sweep = union_input_nnz if l == 0 else union_active[l - 1]
            Lu_sweep = in_sweep if (gather_path(in_sweep, U) or (l == 0 and csr)) else U
            f_upd = (2.0 * n_upd * Lu + n_upd  # per row: accumulate g_j a_i and g_j
                     + (n_upd_sweep * Lu_sweep * per_weight_upd
                        + n_upd_sweep * BIAS_FLOPS[optimizer]) / B)
            b_rmw = 2 * F32 * (1 + S) * n_upd_sweep * (Lu_sweep + 1) / B
            b_bwd_read = F32 * n_upd * Lu if l > 0 else 0.0
        # ---- vectors (activations, errors, index lists; L1-resident)
        v = (F32 * U * math.ceil(R / 4) if not sparse else 2 * F32 * R * n_in)  # a, (idx) re-read
        v += 2 * F32 * R + F32 * units[l + 1]          # net written and read, activations written
        if sparse_upd:
            v += n_upd * (2 * F32 * n_in + (2 * F32 * n_in if l > 0 else 0))  # idx, a; e_prev rw
        else:
            v += n_upd * (F32 * U + (3 * F32 * U if l > 0 else 0))  # a; e_prev rw, W re-read
        if l > 0:
            v += F32 * U + 3 * F32 * U                 # e_prev cleared; f'(a): a, e read, g written
        footprint = F32 * (U * R + R) * (1 + S)
        layers.append({
            "layer": l, "inputs": U, "rows": R, "input_nonzero": n_in, "rows_updated": n_upd,
            "path": "gather" if sparse else "dense", "update_path": "gather" if sparse_upd else "dense",
            "rows_updated_per_sweep": n_upd_sweep, "sweep_length": Lu_sweep,
            "flops_forward": f_fwd, "flops_backward": f_bwd, "flops_update": f_upd,
            "flops": f_fwd + f_bwd + f_upd,
            "bytes_read": b_read + b_bwd_read, "bytes_rmw": b_rmw,
            "bytes": b_read + b_bwd_read + b_rmw, "bytes_vectors": v,
            "footprint_bytes": footprint,
        })
    tot = {k: sum(x[k] for x in layers) for k in
           ("flops", "flops_forward", "flops_backward", "flops_update", "bytes_read", "bytes_rmw",
            "bytes", "bytes_vectors", "footprint_bytes")}
    tot["ai"] = tot["flops"] / tot["bytes"] if tot["bytes"] else math.inf
    return {"units": units, "activation": activation, "optimizer": optimizer,
            "mini_batch_size": B, "input_nnz": float(input_nnz), "active": active,
            **tot, "layers": layers}


def flops_and_bytes_per_row(hidden, activation: str = "Rectifier", adaptive_rate: bool = True,
                            input_nnz=None, active_fraction=1.0, mini_batch_size: int = 1, *,
                            n_inputs: int = 758, n_outputs: int = 10, momentum: bool = True,
                            nesterov: bool = True, union_active_fraction=None,
                            union_input_nnz=None, csr: bool = False) -> dict:
    """Flops and bytes of one training row of the network n_inputs-hidden...-n_outputs (softmax).

    input_nnz: non-zero inputs of the row (default n_inputs: standardised MNIST is dense);
    active_fraction: fraction of each hidden layer's units with a != 0 (a number for all, or one
    per hidden layer; Tanh: 1); adaptive_rate: ADADELTA, else a manual rate with momentum
    (Nesterov unless nesterov=False; none when momentum=False); mini_batch_size: B rows share one
    update (see layer_counts); union_active_fraction: per hidden layer, the fraction of units
    active in at least one of the B rows.  Returns layer_counts' dict (totals and "layers")."""
    hidden = [int(h) for h in hidden]
    units = [int(n_inputs)] + hidden + [int(n_outputs)]
    fr = list(active_fraction) if isinstance(active_fraction, (list, tuple, np.ndarray)) \
        else [float(active_fraction)] * len(hidden)
    if len(fr) != len(hidden):
        raise ValueError(f"active_fraction needs {len(hidden)} values, got {len(fr)}")
    for f in fr:
        if not 0.0 <= f <= 1.0:
            raise ValueError(f"active fractions must be in [0, 1], got {f}")
    active = [f * h for f, h in zip(fr, hidden)]
    union = None
    if union_active_fraction is not None:
        uf = list(union_active_fraction) if isinstance(union_active_fraction, (list, tuple, np.ndarray)) \
            else [float(union_active_fraction)] * len(hidden)
        union = [f * h for f, h in zip(uf, hidden)]
    return layer_counts(units, activation, optimizer_of(adaptive_rate, momentum, nesterov),
                        units[0] if input_nnz is None else input_nnz, active, mini_batch_size,
                        union, union_input_nnz, csr)


def model_footprint_bytes(units, activation: str = "Rectifier", adaptive_rate: bool = True,
                          momentum: bool = True) -> int:
    """Bytes of the model buffer: weights, biases and optimizer state (h2o_layout_of's n_total)."""
    S = STATE_ARRAYS[optimizer_of(adaptive_rate, momentum)]
    n = 0
    for l in range(len(units) - 1):
        ch = 2 if (activation == "Maxout" and l < len(units) - 2) else 1
        R = int(units[l + 1]) * ch
        n += int(units[l]) * R + R
    return F32 * n * (1 + S)


def mean_counts(counts: list) -> dict:
    """The mean of layer_counts dicts (per-row counts -> the expected row), layers included."""
    def avg(dicts):
        out = {}
        for k, v in dicts[0].items():
            if isinstance(v, (int, np.integer)) and all(d[k] == v for d in dicts):
                out[k] = int(v)  # shapes, B, layer numbers
            elif isinstance(v, (int, float, np.number)) and not isinstance(v, bool):
                out[k] = float(np.mean([d[k] for d in dicts]))
            elif k == "layers":
                out[k] = [avg([d["layers"][i] for d in dicts]) for i in range(len(v))]
            elif k == "active":
                out[k] = [float(np.mean([d[k][i] for d in dicts])) for i in range(len(v))]
            elif k in ("path", "update_path"):
                vals = [d[k] for d in dicts]
                out[k] = vals[0] if len(set(vals)) == 1 else \
                    f"gather {vals.count('gather') / len(vals):.0%}"
            else:
                out[k] = v
        return out
    res = avg(counts)
    res["ai"] = res["flops"] / res["bytes"] if res["bytes"] else math.inf
    return res


def counts_from_activity(units, activation: str, optimizer: str, input_nonzero, active,
                         mini_batch_size: int = 1, seed: int = 0) -> dict:
    """Mean per-row counts over sampled rows: input_nonzero (n_rows, inputs) bool, active: one
    (n_rows, units) bool matrix per hidden layer.  B > 1: the rows in random groups of B, the
    update sweep over each group's union of active units (and non-zero inputs)."""
    n = input_nonzero.shape[0]
    nnz = input_nonzero.sum(1)
    act = [a.sum(1) for a in active]
    B = int(mini_batch_size)
    out = []
    if B == 1:
        for r in range(n):
            out.append(layer_counts(units, activation, optimizer, nnz[r], [a[r] for a in act]))
        return mean_counts(out)
    order = np.random.default_rng(seed).permutation(n)
    for g in range(0, n - B + 1, B):
        rows = order[g:g + B]
        u_act = [a[rows].any(0).sum() for a in active]
        u_nnz = input_nonzero[rows].any(0).sum()
        for r in rows:
            out.append(layer_counts(units, activation, optimizer, nnz[r], [a[r] for a in act], B,
                                    u_act, u_nnz))
    if not out:
        raise ValueError(f"need at least {B} sampled rows for mini_batch_size {B}")
    return mean_counts(out)


def fits_in(footprint: float, levels: dict) -> str:
    """The smallest cache level (per core for L1/L2, one instance for L3) holding `footprint`
    bytes, else DRAM."""
    for lvl in ("L1", "L2", "L3"):
        if lvl in levels and footprint <= levels[lvl]["bytes"]:
            return lvl
    return "DRAM"


def memory_roof(counts: dict, bw: dict, level: str, threads: int) -> float | None:
    """Effective bandwidth (GB/s) of `level` for this row's traffic: its read bytes at the read
    bandwidth and its read+write bytes at the rmw bandwidth, bw[kind][level][threads]."""
    try:
        r = bw["read"][level][threads]
        w = bw["rmw"][level][threads]
    except KeyError:
        return None
    t = counts["bytes_read"] / r + counts["bytes_rmw"] / w
    return counts["bytes"] / t if t > 0 else None


def roof(counts: dict, peak_gflops: float | None, bw_gbs: float | None) -> dict:
    """min(peak, AI x bandwidth) in GFLOP/s and the bound it comes from."""
    mem = counts["ai"] * bw_gbs if bw_gbs else None
    cands = [(v, k) for v, k in ((peak_gflops, "compute"), (mem, "memory")) if v]
    if not cands:
        return {"roof_gflops": None, "bound": None}
    v, k = min(cands)
    return {"roof_gflops": v, "bound": k, "compute_roof_gflops": peak_gflops,
            "memory_roof_gflops": mem}


# ============================================================================ roofs
_PEAK_SOURCE = r"""
#if defined(__AVX512F__)
#define VB 64
#define NCH 24
#elif defined(__AVX__)
#define VB 32
#define NCH 12
#else
#define VB 16
#define NCH 12
#endif
typedef float vf __attribute__((vector_size(VB)));
int peak_lanes(void) { return VB / 4; }
int peak_chains(void) { return NCH; }
#define D(i) vf x##i = m * (0.5f + 0.01f * i);
#define S(i) x##i = x##i * m + c;
#define A(i) + x##i
#if NCH == 24
#define REP(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) \
               X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23)
#else
#define REP(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#endif
/* NCH independent chains x = x * m + c (one FMA each with contraction, else a multiply and an
 * add): 2 flops per lane per chain per iteration; x converges to 1, never denormal */
float peak_fma(long iters) {
    vf m, c;
    for (int k = 0; k < VB / 4; ++k) { m[k] = 0.99999f; c[k] = 1e-5f; }
    REP(D)
    for (long it = 0; it < iters; ++it) {
        REP(S)
        __asm__ volatile("" ::: "memory");
    }
    vf s = m * 0.f REP(A);
    float t = 0.f;
    for (int k = 0; k < VB / 4; ++k) t += s[k];
    return t;
}
"""
_PEAK_CDEF = "int peak_lanes(void); int peak_chains(void); float peak_fma(long iters);"
PEAK_ITERS_PER_REP = 4096


def kernel_isa() -> str:
    from h2odl_mpi._kernel import ffi, lib
    return ffi.string(lib.h2o_isa()).decode()


def measure_peak(isa: str, threads_list, contract: bool = True, trials: int = 5,
                 min_trial_s: float = 0.1) -> dict:
    """Peak float32 GFLOP/s of independent FMA chains compiled for `isa` (membw.ISA_FLAGS), on
    each thread count, threads pinned.  contract=False: separate multiply and add."""
    from benchmarks.peers import membw

    flags = ["-O2", "-std=gnu99", "-ffp-contract=" + ("fast" if contract else "off")] + \
        membw.ISA_FLAGS[isa]
    tag = f"{isa}_{'fma' if contract else 'muladd'}"
    ffi, lib, tmp = membw.build_cffi(f"_h2odl_peak_{tag}", _PEAK_SOURCE, _PEAK_CDEF, flags)
    lanes, chains = int(lib.peak_lanes()), int(lib.peak_chains())
    out = {"isa": isa, "contraction": contract, "compile_flags": flags, "lanes": lanes,
           "chains": chains, "gflops": {}, "runs": []}
    for t in threads_list:
        with membw.CpuMonitor() as mon:
            reps, times = membw.parallel_timing(
                lambda _t, r: lib.peak_fma(r * PEAK_ITERS_PER_REP), t, trials, min_trial_s,
                max_reps=1 << 22, pin=True)
        flops = 2.0 * lanes * chains * PEAK_ITERS_PER_REP * reps * t
        best = min(times)
        out["gflops"][t] = flops / best / 1e9
        out["runs"].append({"threads": t, "reps": reps, "best_s": best,
                            "median_s": float(np.median(times)),
                            "gflops_best": flops / best / 1e9,
                            "gflops_median": flops / float(np.median(times)) / 1e9,
                            "contention": mon.report()})
    del tmp
    return out


def kernel_fma_instructions() -> dict | None:
    """Counts of packed float32 FMA and multiply instructions in the kernel's shared library
    (objdump), or None without objdump.  Zero FMAs: the build's -std=c11 turns floating-point
    contraction off, so the kernel multiplies and adds separately."""
    exe = shutil.which("objdump")
    try:
        import h2odl_mpi._kernel as k
        path = k.__file__
    except ImportError:
        return None
    if not exe or not path:
        return None
    try:
        text = subprocess.run([exe, "-d", "--no-show-raw-insn", path], capture_output=True,
                              text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"fma_ps": len(re.findall(r"\tvfn?m(?:add|sub)\d+ps", text)),
            "mul_ps": len(re.findall(r"\tv?mulps", text)),
            "add_ps": len(re.findall(r"\tv?addps", text))}


def footprint_bandwidth(kernels, footprint: int, threads_list, trials: int,
                        min_trial_s: float) -> dict:
    """read and rmw bandwidth at a model's own footprint, shared like Hogwild!: every thread
    sweeps the whole footprint (read: one array of it; rmw: three arrays of a third each),
    from its own starting point.  {"read": {threads: GB/s}, "rmw": {...}, "runs": [...]}."""
    from benchmarks.peers import membw
    out = {"read": {}, "rmw": {}, "runs": []}
    for t in threads_list:
        for kind, arrays in (("read", 1), ("rmw", 3)):
            n = max(64, int(footprint) // (4 * arrays))
            with membw.CpuMonitor() as mon:
                r = membw.measure(kernels, kind, n, t, trials, min_trial_s, max_reps=1 << 26,
                                  pin=True, shared=True)
            r["contention"] = mon.report()
            out[kind][t] = r["gb_per_s_best"]
            out["runs"].append(r)
    return out


# ============================================================================ the kernel
# name: hidden, activation, rows trained before timing, rows timed (full, quick)
NETS = {
    "small": dict(hidden=[200, 200], activation="Rectifier", pretrain=(10000, 500), rows=(10000, 600)),
    "wide": dict(hidden=[1024, 1024], activation="Rectifier", pretrain=(2000, 100), rows=(2000, 80)),
    "large": dict(hidden=[2500, 2000, 1500, 1000, 500], activation="Tanh", pretrain=(60, 4),
                  rows=(200, 8)),
}


def load_mnist(standardize: bool = True):
    """The bundled MNIST training rows, constant columns dropped (H2O's ignore_const_cols),
    standardised as H2O does unless standardize=False (raw pixels: ~25% non-zero)."""
    d = ROOT / "h2odl_mpi" / "datasets" / "mnist"
    tr = np.loadtxt(gzip.open(d / "train.csv.gz"), delimiter=",", dtype=np.float32)
    x, y = tr[:, :-1], tr[:, -1]
    keep = x.min(0) != x.max(0)
    x = x[:, keep]
    if standardize:
        x = (x - x.mean(0)) / x.std(0, ddof=1)
    return np.ascontiguousarray(x, dtype=np.float32), y


def mini_batch_support() -> tuple:
    """(how, note): how the kernel takes mini_batch_size ("config" / "train") or None."""
    from h2odl_mpi import params
    from h2odl_mpi.kernel import NetConfig, Network
    if "mini_batch_size" not in params.SPEC:
        return None, "h2odl_mpi.params.SPEC has no mini_batch_size: B = 8, 32 are model projections"
    if "mini_batch_size" in {f.name for f in dataclasses.fields(NetConfig)}:
        return "config", "NetConfig(mini_batch_size=B)"
    if "mini_batch_size" in inspect.signature(Network.train).parameters:
        return "train", "Network.train(..., mini_batch_size=B)"
    return None, ("params.SPEC has mini_batch_size but neither NetConfig nor Network.train takes "
                  "it: B = 8, 32 are model projections")


def activity(net, model, x_sample, threads) -> tuple:
    """(input non-zero (n, inputs) bool, [per hidden layer (n, units) bool a != 0])."""
    from h2odl_mpi.kernel import Rows
    rows = Rows.dense(x_sample)
    act = [net.predict(model, rows, "hidden", layer=l, threads=threads) != 0
           for l in range(net.n_layers - 1)]
    return x_sample != 0, act


def measure_kernel(name, spec, x, y, threads_list, quick, sample_rows, batches, mb_how, seed=1,
                   log=print):
    """Timed training of one network at each thread count (and mini-batch size the kernel
    takes): samples/s, and the activity at the start and the end of each timed window."""
    from benchmarks.peers.membw import CpuMonitor
    from h2odl_mpi.kernel import NetConfig, Network, Rows

    q = 1 if quick else 0
    n_pre, n_rows = spec["pretrain"][q], spec["rows"][q]
    rng = np.random.default_rng(seed)
    sample = x[rng.choice(len(x), size=min(sample_rows, len(x)), replace=False)]
    rows = Rows.dense(x, y)
    runs = []
    for B in batches:
        cfg_kw = {"mini_batch_size": B} if (B > 1 and mb_how == "config") else {}
        train_kw = {"mini_batch_size": B} if (B > 1 and mb_how == "train") else {}
        cfg = NetConfig(units=[x.shape[1]] + spec["hidden"] + [10], activation=spec["activation"],
                        **cfg_kw)
        net = Network(cfg)
        model0 = net.new_model(seed)
        if n_pre:  # bring the model to a trained state (the activity of a training run)
            log(f"  {name}: {n_pre} rows before timing")
            net.train(model0, rows, rng.permutation(len(x))[:n_pre], seed=seed, **train_kw)
        for threads in threads_list:
            model = model0.copy()
            before = activity(net, model, sample, threads)
            order = rng.permutation(len(x))[:n_rows] if n_rows <= len(x) else \
                rng.integers(0, len(x), n_rows)
            log(f"  {name}: B={B} threads={threads} timing {n_rows} rows")
            with CpuMonitor() as mon:
                t0 = time.perf_counter()
                st = net.train(model, rows, order, samples_before=n_pre, seed=seed,
                               threads=threads, **train_kw)
                dt = time.perf_counter() - t0
            after = activity(net, model, sample, threads)
            runs.append({"threads": threads, "mini_batch_size": B, "rows": int(st.trained),
                         "seconds": dt, "samples_per_s": st.trained / dt,
                         "contention": mon.report(), "before": before, "after": after,
                         "units": net.units, "n_total": net.n_total})
    return runs


# ============================================================================ the run
def _fmt(v, spec=",.1f"):
    return "" if v is None else format(v, spec)


def run(args) -> dict:
    from benchmarks.peers import membw

    log = (lambda m: print(m, file=sys.stderr, flush=True))
    from h2odl_mpi.kernel import available_cores
    quick = args.quick
    n_all = available_cores()
    threads_list = sorted({int(t) for t in args.threads.split(",")}) if args.threads else \
        sorted({1, n_all})
    names = [n for n in args.nets.split(",") if n]
    for n in names:
        if n not in NETS:
            raise SystemExit(f"unknown network {n!r}; choose from {', '.join(NETS)}")
    isa = kernel_isa()
    machine = membw.machine_info()
    levels = membw.cache_levels()
    log(f"roofline: {machine['cpu_model']}, {n_all} cores, kernel ISA {isa}, caches "
        + ", ".join(f"{k} {v['size']}" for k, v in levels.items()))
    quiet = membw.wait_for_quiet(max_wait_s=5.0 if quick else 60.0, log=log)

    # ---- compute roofs
    trials, min_s = (2, 0.02) if quick else (5, 0.1)
    peaks = {}
    for key, pisa, contract in (("kernel_fma", isa, True), ("kernel_muladd", isa, False),
                                ("native_fma", "native", True)):
        log(f"roofline: peak {key} ({pisa})")
        try:
            peaks[key] = measure_peak(pisa, threads_list, contract, trials, min_s)
        except Exception as exc:  # no compiler: say so, keep going
            peaks[key] = {"isa": pisa, "error": f"{exc.__class__.__name__}: {exc}", "gflops": {}}
            log(f"roofline: peak {key} unavailable: {exc}")
    # ---- bandwidth roofs (the kernel's instruction set)
    log("roofline: bandwidth per level (membw --levels)")
    bw_isa = isa if isa in membw.ISA_FLAGS else None
    kernels = membw._Kernels(isa=bw_isa)
    bw_trials, bw_min_s = (3, 0.02) if quick else (7, 0.05)
    bw = membw.run_levels(threads=tuple(threads_list), isa=bw_isa, trials=bw_trials,
                          min_trial_s=bw_min_s, dram_min_mib=64 if quick else 256,
                          quiet_wait_s=0, kernels=kernels, log=log)
    bwt = bw["gb_per_s"]

    # ---- the kernel
    how, mb_note = mini_batch_support()
    batches_measured = [1, 8, 32] if how else [1]
    log("roofline: loading MNIST")
    x, y = load_mnist(standardize=not args.raw_inputs)
    sample_rows = args.sample_rows or (64 if quick else 500)
    nets = []
    rows_out = []
    for name in names:
        spec = NETS[name]
        log(f"roofline: network {name}")
        runs = measure_kernel(name, spec, x, y, threads_list, quick, sample_rows,
                              batches_measured, how, log=log)
        units = runs[0]["units"]
        footprint = runs[0]["n_total"] * 4  # the kernel's own layout
        if footprint != model_footprint_bytes(units, spec["activation"]):
            log(f"roofline: NOTE the kernel's model buffer ({footprint:,} B) is not the counted "
                f"weights + biases + ADADELTA state ({model_footprint_bytes(units, spec['activation']):,} B)")
        level = fits_in(footprint, levels)
        opt = optimizer_of(True)
        log(f"roofline: {name}: bandwidth at its own footprint ({footprint / 2**20:.1f} MiB, "
            "shared by the threads)")
        bw_own = footprint_bandwidth(kernels, footprint, threads_list, bw_trials, bw_min_s)
        own = {"read": {"own": bw_own["read"]}, "rmw": {"own": bw_own["rmw"]}}
        net_out = {"net": name, "units": units, "activation": spec["activation"],
                   "optimizer": opt, "footprint_bytes": footprint, "level": level,
                   "bandwidth_own_footprint": bw_own, "runs": []}
        counts_b1 = None
        for r in runs:
            B = r["mini_batch_size"]
            nz = np.concatenate([r["before"][0], r["after"][0]])
            act = [np.concatenate([a, b]) for a, b in zip(r["before"][1], r["after"][1])]
            c = counts_from_activity(units, spec["activation"], opt, nz, act, B)
            if B == 1 and counts_b1 is None:
                counts_b1 = c
                net_out["activity"] = {
                    "input_nonzero_fraction": float(nz.mean()),
                    "active_fraction": [float(a.mean()) for a in act],
                    "active_fraction_start": [float(a.mean()) for a in r["before"][1]],
                    "active_fraction_end": [float(a.mean()) for a in r["after"][1]],
                    "sample_rows": int(nz.shape[0] // 2)}
                net_out["counts_b1"] = c
            T = r["threads"]
            row = result_row(name, units, spec["activation"], T, B, c, level, footprint,
                             peaks, bwt, own, r["samples_per_s"])
            row.update({"rows_timed": r["rows"], "seconds": r["seconds"],
                        "foreign_fraction": r["contention"].get("foreign_fraction")})
            net_out["runs"].append(row)
            rows_out.append(row)
        # projections for B the kernel does not take: the model's roofs, nothing measured
        if not how:
            nz = np.concatenate([runs[0]["before"][0], runs[0]["after"][0]])
            act = [np.concatenate([a, b]) for a, b in zip(runs[0]["before"][1], runs[0]["after"][1])]
            for B in (8, 32):
                c = counts_from_activity(units, spec["activation"], opt, nz, act, B)
                for T in threads_list:
                    row = result_row(name, units, spec["activation"], T, B, c, level, footprint,
                                     peaks, bwt, own, None)
                    net_out["runs"].append(row)
                    rows_out.append(row)
        nets.append(net_out)

    return {
        "benchmark": "roofline",
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "quick": quick,
        "machine": {"cpu_model": machine["cpu_model"], "cores": n_all,
                    "cpu_count": machine["cpu_count"], "simd_flags": machine["simd_flags"],
                    "hypervisor": machine["hypervisor"], "caches": levels,
                    "loadavg_1_5_15": machine["loadavg_1_5_15"]},
        "kernel": {"isa": isa, "H2ODL_ISA": os.environ.get("H2ODL_ISA"),
                   "H2ODL_NATIVE": os.environ.get("H2ODL_NATIVE"),
                   "instructions": kernel_fma_instructions(),
                   "mini_batch_size": {"supported": bool(how), "how": how, "note": mb_note}},
        "data": {"rows": int(len(x)), "inputs": int(x.shape[1]),
                 "standardized": not args.raw_inputs},
        "threads": threads_list,
        "quiet_before": quiet,
        "peaks": peaks,
        "bandwidth": bw,
        "networks": nets,
        "rows": rows_out,
        "model_notes": [
            "flops: only the work the kernel does: gather path (non-zero inputs only) when fewer "
            "than 1/4 of a layer's inputs are non-zero, else every input (the dense update sweep "
            "masks a_i = 0, it does not skip it); only rows with g != 0 are updated",
            "flops per updated weight: 1 (g a) + 4 (l1/l2 terms, done at 0 too) + ADADELTA 27 "
            "(+ 2 for the error to the previous layer); tanh/exp counted as 1",
            "bytes: weights read by the forward pass + weights and optimizer state read and "
            "written by the update (4 B each; on the gather path 4 B per touched weight, not "
            "the whole cache line); activation vectors apart (L1-resident)",
            "B > 1: forward/backward per row, update traffic once per B rows over the union of "
            "the rows' active units (measured on the sample); backward then reads W on its own",
            "all-core level roofs come from private slices; Hogwild! threads share one model "
            "(the own-footprint roof measures that: rmw lines move between the cores)",
        ],
    }


def result_row(name, units, activation, T, B, c, level, footprint, peaks, bwt, own, sps) -> dict:
    """One table row: counts, the binding roof (level the footprint fits in) and the roof at
    the model's own footprint swept by T threads together (`own`: {"read"/"rmw": {"own": {T}}}),
    and, when sps (samples/s) was measured, what was reached."""
    peak = peaks.get("kernel_fma", {}).get("gflops", {}).get(T)
    bw_eff = memory_roof(c, bwt, level, T)
    rf = roof(c, peak, bw_eff)
    bw_own = memory_roof(c, own, "own", T) if own else None
    rf_own = roof(c, peak, bw_own)
    row = {"net": name, "layers": "-".join(map(str, units)), "activation": activation,
           "threads": T, "mini_batch_size": B, "measured": sps is not None,
           "flops_per_row": c["flops"], "bytes_per_row": c["bytes"],
           "bytes_read_per_row": c["bytes_read"], "bytes_rmw_per_row": c["bytes_rmw"],
           "bytes_vectors_per_row": c["bytes_vectors"], "ai_flop_per_byte": c["ai"],
           "footprint_bytes": footprint, "level": level, "bandwidth_gbs": bw_eff,
           "peak_gflops": peak,
           "peak_muladd_gflops": peaks.get("kernel_muladd", {}).get("gflops", {}).get(T),
           **rf, "bandwidth_own_gbs": bw_own, "roof_own_gflops": rf_own["roof_gflops"],
           "bound_own": rf_own["bound"]}
    row["roof_samples_per_s"] = rf["roof_gflops"] * 1e9 / c["flops"] if rf["roof_gflops"] else None
    l1 = bwt.get("read", {}).get("L1", {}).get(T)  # the activation vectors' own bound, apart
    row["l1_vector_roof_samples_per_s"] = l1 * 1e9 / c["bytes_vectors"] if l1 and c["bytes_vectors"] else None
    row["bound_label"] = (level if rf["bound"] == "memory" else rf["bound"]) if rf["bound"] else None
    if sps is not None:
        row["samples_per_s"] = sps
        row["achieved_gflops"] = sps * c["flops"] / 1e9
        row["achieved_gbs"] = sps * c["bytes"] / 1e9
        row["fraction_of_roof"] = row["achieved_gflops"] / rf["roof_gflops"] if rf["roof_gflops"] else None
        row["fraction_of_roof_own"] = (row["achieved_gflops"] / rf_own["roof_gflops"]
                                       if rf_own["roof_gflops"] else None)
    return row


# ============================================================================ report
def report(res: dict) -> str:
    m, k = res["machine"], res["kernel"]
    lines = []
    caches = ", ".join(f"{lvl} {v['size']}" + (f" (shared by {v['shared_cpus']} CPUs)"
                                               if (v.get("shared_cpus") or 1) > 1 else "")
                       + (f" [{v['source']}]" if v.get("source", "sysfs") != "sysfs" else "")
                       for lvl, v in m["caches"].items()) or "unknown (no /sys cache folder)"
    ins = k["instructions"]
    lines.append(f"CPU: {m['cpu_model']}; {m['cores']} cores usable ({m['cpu_count']} CPUs); "
                 f"caches {caches}")
    lines.append(f"kernel ISA: {k['isa']} (H2ODL_ISA={k['H2ODL_ISA'] or 'unset'})"
                 + (f"; kernel library: {ins['fma_ps']} packed FMA, {ins['mul_ps']} packed "
                    f"multiply instructions" if ins else ""))
    lines.append(f"data: {res['data']['rows']} MNIST rows x {res['data']['inputs']} inputs"
                 f"{'' if res['data']['standardized'] else ' (raw, not standardised)'}"
                 + ("   [QUICK smoke run: short trials, few rows]" if res["quick"] else ""))
    T = res["threads"]
    lines.append("")
    lines.append("Compute roofs, float32 GFLOP/s (best of trials): " + " / ".join(f"{t} thread(s)" for t in T))
    for key, label in (("kernel_fma", "FMA chains, kernel ISA"),
                       ("kernel_muladd", "mul+add (no contraction), kernel ISA"),
                       ("native_fma", "FMA chains, -march=native")):
        p = res["peaks"].get(key, {})
        vals = " / ".join(_fmt(p.get("gflops", {}).get(t)) for t in T) if not p.get("error") else p["error"]
        lines.append(f"  {label:38s} [{p.get('isa')}, {p.get('lanes', '?')} lanes]: {vals}")
    bw = res["bandwidth"]["gb_per_s"]
    lines.append(f"Bandwidth roofs, GB/s (float32, {res['bandwidth']['settings']['isa']} "
                 f"{res['bandwidth']['settings']['vector_bytes']}-byte vectors; rmw = read + written):")
    hdr = "| level | footprint | " + " | ".join(f"read {t}T | rmw {t}T" for t in T) + " |"
    lines += [hdr, "|" + "---|" * (2 + 2 * len(T))]
    fps = {}
    for r in res["bandwidth"]["results"]:
        fps.setdefault(r["regime"], {})[r["threads"]] = r["footprint_bytes"]
    for lvl in ("L1", "L2", "L3", "DRAM"):
        if lvl not in bw.get("read", {}):
            continue
        fp = " / ".join(f"{fps[lvl][t] / 2**20:.2f}" for t in T if t in fps.get(lvl, {}))
        cells = " | ".join(f"{_fmt(bw['read'][lvl].get(t))} | {_fmt(bw['rmw'][lvl].get(t))}" for t in T)
        lines.append(f"| {lvl} | {fp} MiB | {cells} |")

    lines.append("")
    lines.append("Per training row (B = 1; mean over the sampled rows at the start and end of the "
                 "timed window):")
    lines.append("| network | layer | inputs x rows | path | non-zero in | rows updated | "
                 "MFLOP fwd | bwd | upd | MB read | MB rmw | KB vectors | footprint MB | fits in |")
    lines.append("|" + "---|" * 14)
    for n in res["networks"]:
        c = n["counts_b1"]
        for ly in c["layers"]:
            lines.append(
                f"| {n['net']} | {ly['layer']} | {ly['inputs']}x{ly['rows']} | {ly['path']} | "
                f"{ly['input_nonzero']:.0f} | {ly['rows_updated']:.0f} | "
                f"{ly['flops_forward'] / 1e6:.3f} | {ly['flops_backward'] / 1e6:.3f} | "
                f"{ly['flops_update'] / 1e6:.3f} | {ly['bytes_read'] / 1e6:.3f} | "
                f"{ly['bytes_rmw'] / 1e6:.3f} | {ly['bytes_vectors'] / 1e3:.1f} | "
                f"{ly['footprint_bytes'] / 1e6:.2f} | {fits_in(ly['footprint_bytes'], m['caches'])} |")
        a = n["activity"]
        lines.append(f"| {n['net']} | all | | | inputs non-zero {a['input_nonzero_fraction']:.1%} | "
                     f"active {', '.join(f'{f:.0%}' for f in a['active_fraction'])} | "
                     f"{c['flops_forward'] / 1e6:.2f} | {c['flops_backward'] / 1e6:.2f} | "
                     f"{c['flops_update'] / 1e6:.2f} | {c['bytes_read'] / 1e6:.2f} | "
                     f"{c['bytes_rmw'] / 1e6:.2f} | {c['bytes_vectors'] / 1e3:.1f} | "
                     f"{n['footprint_bytes'] / 1e6:.2f} | {n['level']} |")

    lines.append("")
    lines.append("Roofline (binding roof = min(peak FMA of the kernel ISA, AI x bandwidth of the "
                 "level the model fits in)):")
    lines.append("| network | threads | B | samples/s | MFLOP/row | MB/row | AI flop/B | "
                 "GFLOP/s | GB/s | fits | bound | roof GFLOP/s | roof samples/s | fraction | "
                 "own-footprint GB/s | its roof GFLOP/s | fraction |")
    lines.append("|" + "---|" * 17)
    for r in res["rows"]:
        meas = r["measured"]
        lines.append(
            f"| {r['net']} {r['layers']} {r['activation']} | {r['threads']} | {r['mini_batch_size']} | "
            f"{_fmt(r.get('samples_per_s'), ',.0f') if meas else 'model only'} | "
            f"{r['flops_per_row'] / 1e6:.2f} | {r['bytes_per_row'] / 1e6:.2f} | "
            f"{r['ai_flop_per_byte']:.2f} | {_fmt(r.get('achieved_gflops'))} | "
            f"{_fmt(r.get('achieved_gbs'))} | {r['level']} | {r['bound_label'] or ''} | "
            f"{_fmt(r['roof_gflops'])} | {_fmt(r['roof_samples_per_s'], ',.0f')} | "
            f"{_fmt(r.get('fraction_of_roof'), '.2f')} | {_fmt(r.get('bandwidth_own_gbs'))} | "
            f"{_fmt(r.get('roof_own_gflops'))} | {_fmt(r.get('fraction_of_roof_own'), '.2f')} |")
    ff = [r.get("foreign_fraction") for r in res["rows"] if r.get("foreign_fraction") is not None]
    fr = [x.get("contention", {}).get("foreign_fraction") for x in _roof_runs(res)]
    fr = [x for x in fr if x is not None]
    if ff or fr:
        lines.append("other processes' CPU share (near 0 = clean): "
                     + (f"up to {max(ff):.0%} during the kernel's timed runs" if ff else "")
                     + (f", up to {max(fr):.0%} during the roof measurements" if fr else ""))
    over = [r for r in res["rows"] if (r.get("fraction_of_roof") or 0) > 1]
    if over:
        lines.append(f"{len(over)} fraction(s) above 1: a roof measured while other work slowed "
                     "it (see the CPU shares above); rerun on a quiet machine")
    lines.append("own-footprint: read/rmw bandwidth measured at the model's footprint, every "
                 "thread sweeping all of it (shared, as Hogwild! threads share one model)")
    lines.append(f"mini_batch_size: {k['mini_batch_size']['note']}")
    return "\n".join(lines)


def _roof_runs(res: dict) -> list:
    """Every roof measurement of a result (they carry their contention report)."""
    runs = list(res["bandwidth"]["results"])
    for p in res["peaks"].values():
        runs += p.get("runs", [])
    for n in res["networks"]:
        runs += n.get("bandwidth_own_footprint", {}).get("runs", [])
    return runs


def write_outputs(res: dict, text: str, prefix: Path) -> list:
    prefix.parent.mkdir(parents=True, exist_ok=True)
    written = []
    res = dict(res, table=text)
    with open(f"{prefix}.json", "w") as f:
        json.dump(res, f, indent=2, default=_json_default)
    written.append(f"{prefix}.json")
    keys = ["net", "layers", "activation", "threads", "mini_batch_size", "measured",
            "samples_per_s", "flops_per_row", "bytes_per_row", "bytes_read_per_row",
            "bytes_rmw_per_row", "bytes_vectors_per_row", "ai_flop_per_byte", "achieved_gflops",
            "achieved_gbs", "footprint_bytes", "level", "bandwidth_gbs", "peak_gflops",
            "peak_muladd_gflops", "compute_roof_gflops", "memory_roof_gflops", "roof_gflops",
            "bound_label", "roof_samples_per_s", "fraction_of_roof", "bandwidth_own_gbs",
            "roof_own_gflops", "bound_own", "fraction_of_roof_own", "l1_vector_roof_samples_per_s",
            "rows_timed", "seconds",
            "foreign_fraction"]
    with open(f"{prefix}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(res["rows"])
    written.append(f"{prefix}.csv")
    png = plot(res, Path(f"{prefix}.png"))
    if png:
        written.append(png)
    return written


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def plot(res: dict, path: Path) -> str | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("roofline: matplotlib not installed: no plot (pip install -r benchmarks/requirements.txt)")
        return None
    T = res["threads"]
    fig, ax = plt.subplots(figsize=(10, 7))
    ais = np.logspace(math.log10(0.05), math.log10(50), 200)
    colors = {"L1": "tab:green", "L2": "tab:olive", "L3": "tab:orange", "DRAM": "tab:red"}
    styles = {T[0]: ":", T[-1]: "-"}
    bw = res["bandwidth"]["gb_per_s"]
    for t in T:
        peak = res["peaks"].get("kernel_fma", {}).get("gflops", {}).get(t) or math.inf
        for lvl, col in colors.items():
            v = bw.get("read", {}).get(lvl, {}).get(t)
            if v:  # a bandwidth roof, capped by the compute roof of as many threads
                ax.plot(ais, np.minimum(ais * v, peak), styles.get(t, "--"), color=col, lw=1.2,
                        label=f"{lvl} read {v:,.0f} GB/s ({t}T)")
        for key, col in (("kernel_fma", "black"), ("kernel_muladd", "gray"), ("native_fma", "tab:blue")):
            v = res["peaks"].get(key, {}).get("gflops", {}).get(t)
            if v:
                ax.axhline(v, ls=styles.get(t, "--"), color=col, lw=1.0,
                           label=f"{key.replace('_', ' ')} {v:,.0f} GFLOP/s ({t}T)")
    net_colors = {"small": "tab:purple", "wide": "tab:brown", "large": "tab:cyan"}
    b_markers = {1: "o", 8: "s", 32: "^"}
    for r in res["rows"]:
        col = net_colors.get(r["net"], "k")
        mk = b_markers.get(r["mini_batch_size"], "D")
        filled = r["threads"] == T[-1]
        if r["measured"]:
            ax.plot(r["ai_flop_per_byte"], r["achieved_gflops"], mk, ms=9, color=col,
                    mfc=col if filled else "white", mew=1.5,
                    label=f"{r['net']} {r['threads']}T B={r['mini_batch_size']}: "
                          f"{r['achieved_gflops']:.1f} GFLOP/s, "
                          f"{_fmt(r.get('fraction_of_roof'), '.0%')} of its roof")
        if r["roof_gflops"] and (r["measured"] or filled):  # where its roof is (x: B > 1 projected)
            ax.plot(r["ai_flop_per_byte"], r["roof_gflops"], "_" if r["measured"] else "x",
                    ms=14 if r["measured"] else 7, mew=2, color=col)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (flop per byte of weight + optimizer-state traffic)\n"
                  "markers: measured (hollow 1 thread, filled all cores); bar: its binding roof; "
                  "x: the model's roof for B = 8, 32 (all cores)", fontsize=9)
    ax.set_ylabel("GFLOP/s (float32)")
    m = res["machine"]
    ax.set_title(f"h2odl_mpi kernel roofline: {m['cpu_model']}, {m['cores']} cores, "
                 f"kernel ISA {res['kernel']['isa']}" + (" (quick)" if res["quick"] else ""),
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6.5, loc="lower right", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nets", default=",".join(NETS), help="comma list of " + ", ".join(NETS))
    ap.add_argument("--threads", default=None,
                    help="thread counts, comma separated (default: 1 and all cores)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: short trials, few rows, small DRAM footprint; writes "
                         "roofline_quick.*")
    ap.add_argument("--sample-rows", type=int, default=None,
                    help="MNIST rows whose activity is measured (default 500, quick 64)")
    ap.add_argument("--raw-inputs", action="store_true",
                    help="train on raw pixels (not standardised: sparse rows, gather path)")
    ap.add_argument("--out", default=None,
                    help="output prefix (default benchmarks/results/roofline[_quick])")
    args = ap.parse_args(argv)
    res = run(args)
    text = report(res)
    print(text)
    prefix = Path(args.out) if args.out else RESULTS / ("roofline_quick" if args.quick else "roofline")
    for p in write_outputs(res, text, prefix):
        try:
            shown = Path(p).resolve().relative_to(ROOT)
        except ValueError:
            shown = p
        print(f"wrote {shown}")


if __name__ == "__main__":
    main()
