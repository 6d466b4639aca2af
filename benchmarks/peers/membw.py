"""This machine's memory bandwidth, STREAM-style, for 1 and 2 threads; and the machine description.

Kernels (float64 arrays, as in STREAM):
    copy:  a[i] = b[i]              counted bytes per element: 16 (read b, write a)
    triad: a[i] = b[i] + s * c[i]   counted bytes per element: 24 (read b and c, write a)
Bandwidth = counted bytes / seconds, in GB/s (1e9 bytes), best of N trials. As in STREAM, the
extra read caused by write-allocate (the cache line of `a` is read before it is written) is NOT
counted, so the hardware moves up to 4/3 (triad) or 3/2 (copy) of the counted bytes.

Each thread runs the kernel on its own contiguous slice of the arrays. The kernels are a tiny C
helper compiled at run time with cffi (API mode, into a temporary folder; -O3 without
-march=native unless --native); cffi releases the GIL during the call, so two Python threads run the C loops on two
cores at once. If no C compiler is usable, numpy (which also releases the GIL) is the fallback and
the result says so.

The DRAM measurement uses arrays far larger than the last-level cache (default 1 GiB each; this
machine's L3 is reported as 300 MiB, shared by the host); optional smaller footprints show the
bandwidth of data that stays in L2 or L3 (the regime of a small network's weights).

    python -m benchmarks.peers.membw --json
    python -m benchmarks.peers.membw --array-mib 1024 --cache-sizes --json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

_C_SOURCE = r"""
#include <stddef.h>
void bw_copy(double *restrict a, const double *restrict b, size_t n, int reps) {
    for (int r = 0; r < reps; ++r) {
        for (size_t i = 0; i < n; ++i) a[i] = b[i];
        __asm__ volatile("" ::: "memory");
    }
}
void bw_triad(double *restrict a, const double *restrict b, const double *restrict c,
              double s, size_t n, int reps) {
    for (int r = 0; r < reps; ++r) {
        for (size_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
        __asm__ volatile("" ::: "memory");
    }
}
"""
_C_CDEF = """
void bw_copy(double *a, const double *b, size_t n, int reps);
void bw_triad(double *a, const double *b, const double *c, double s, size_t n, int reps);
"""

COUNTED_BYTES_PER_ELEMENT = {"copy": 16, "triad": 24}


# ----------------------------------------------------------------------------- machine description
def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def cache_info() -> list[dict]:
    """Caches of cpu0 from /sys (level, type, size, which CPUs share it)."""
    out = []
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    if base.is_dir():
        for d in sorted(base.glob("index*")):
            out.append({
                "level": _read(str(d / "level")),
                "type": _read(str(d / "type")),
                "size": _read(str(d / "size")),
                "shared_cpu_list": _read(str(d / "shared_cpu_list")),
            })
    return out


def lscpu_caches() -> dict:
    """The cache lines of `lscpu` (totals over instances), if lscpu exists."""
    exe = shutil.which("lscpu")
    if not exe:
        return {}
    try:
        text = subprocess.run([exe], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    res = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            if "cache" in k.lower():
                res[k.strip()] = v.strip()
    return res


def machine_info() -> dict:
    """What every peer result records about the machine it ran on."""
    model = None
    flags = ""
    cpuinfo = _read("/proc/cpuinfo") or ""
    for line in cpuinfo.splitlines():
        if line.startswith("model name") and model is None:
            model = line.split(":", 1)[1].strip()
        if line.startswith("flags") and not flags:
            flags = line.split(":", 1)[1]
    mem_kib = None
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags.split()]
    return {
        "nproc": affinity if affinity is not None else os.cpu_count(),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "simd_flags": simd,
        "hypervisor": "hypervisor" in flags.split(),
        "mem_total_gib": round(mem_kib / 2**20, 1) if mem_kib else None,
        "caches_cpu0": cache_info(),
        "lscpu_caches": lscpu_caches(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


# ----------------------------------------------------------------------------- CPU contention
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def system_busy_cpu_s() -> float | None:
    """CPU seconds spent busy by all CPUs since boot (/proc/stat: everything but idle, iowait)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    v = [int(x) for x in fields]
    busy = sum(v) - v[3] - (v[4] if len(v) > 4 else 0)
    if len(v) > 9:  # guest time is already inside user/nice
        busy -= v[8] + v[9]
    return busy / _CLK_TCK


def process_cpu_s(pid: int | str = "self", children: bool = True) -> float:
    """utime+stime (+ reaped children's) of a process, in seconds; 0 if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    f = text[text.rindex(")") + 2:].split()
    ticks = int(f[11]) + int(f[12]) + ((int(f[13]) + int(f[14])) if children else 0)
    return ticks / _CLK_TCK


class CpuMonitor:
    """How much CPU others used while we measured.

    foreign_cpu_s = (busy CPU seconds of the whole machine) - (CPU seconds of our own processes:
    this process, its reaped children, and any extra pids given, e.g. the H2O JVM).
    foreign_fraction = foreign_cpu_s / (wall * nproc). Near 0 means the numbers are clean.
    """

    def __init__(self, extra_pids=()):
        self.extra_pids = list(extra_pids)

    def _own(self):
        return process_cpu_s("self") + sum(process_cpu_s(p) for p in self.extra_pids)

    def __enter__(self):
        self.t0 = time.perf_counter()
        self.busy0 = system_busy_cpu_s()
        self.own0 = self._own()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        busy1 = system_busy_cpu_s()
        own1 = self._own()
        self.own_cpu_s = own1 - self.own0
        if self.busy0 is None or busy1 is None:
            self.foreign_cpu_s = None
        else:
            self.foreign_cpu_s = max(0.0, (busy1 - self.busy0) - self.own_cpu_s)
        return False

    def report(self) -> dict:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        frac = (self.foreign_cpu_s / (self.wall * n)) if self.foreign_cpu_s is not None else None
        return {"wall_s": round(self.wall, 3), "own_cpu_s": round(self.own_cpu_s, 2),
                "foreign_cpu_s": None if self.foreign_cpu_s is None else round(self.foreign_cpu_s, 2),
                "foreign_fraction": None if frac is None else round(frac, 4)}


def wait_for_quiet(max_wait_s: float = 120.0, busy_below: float = 0.1, window_s: float = 2.0,
                   log=None) -> dict:
    """Wait (at most max_wait_s) until the machine's busy fraction over window_s is below busy_below.

    Returns what was seen; never fails (a benchmark that could not get a quiet machine says so in
    its contention report instead).
    """
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    t_end = time.time() + max_wait_s
    waited = 0.0
    next_log = 0.0
    while True:
        b0 = system_busy_cpu_s()
        time.sleep(window_s)
        b1 = system_busy_cpu_s()
        if b0 is None or b1 is None:
            return {"quiet": None, "waited_s": waited}
        frac = (b1 - b0) / (window_s * n)
        waited += window_s
        if frac < busy_below:
            return {"quiet": True, "busy_fraction": round(frac, 3), "waited_s": round(waited, 1)}
        if time.time() > t_end:
            return {"quiet": False, "busy_fraction": round(frac, 3), "waited_s": round(waited, 1)}
        if log and waited >= next_log:
            log(f"machine busy ({frac:.0%} of {n} CPUs); waiting for quiet "
                f"(up to {max_wait_s:.0f} s)")
            next_log = waited + 30.0


# ----------------------------------------------------------------------------- kernels
class _Kernels:
    """copy/triad over one slice: C through cffi if it builds, else numpy."""

    def __init__(self, use_c: bool = True, native: bool = False):
        self.native = native
        self.impl = "numpy"
        self.compile_flags = None
        self._tmp = None
        if use_c:
            try:
                self._build_c()
            except Exception as exc:  # no compiler, no cffi: fall back, and say so
                print(f"membw: C helper unavailable ({exc.__class__.__name__}: {exc}); using numpy",
                      file=sys.stderr)

    def _build_c(self):
        import cffi

        ffi = cffi.FFI()
        ffi.cdef(_C_CDEF)
        # explicit loops (no memcpy substitution); -march=native only on request
        flags = ["-O3", "-std=c99", "-fno-tree-loop-distribute-patterns"]
        if self.native:
            flags.append("-march=native")
        ffi.set_source("_h2odl_membw", _C_SOURCE, extra_compile_args=flags)
        self._tmp = tempfile.TemporaryDirectory(prefix="h2odl_membw_")
        # the build's chatter goes to stderr so that --json output stays clean
        saved = os.dup(1)
        try:
            os.dup2(2, 1)
            lib_path = ffi.compile(tmpdir=self._tmp.name, verbose=False)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        import importlib.util

        spec = importlib.util.spec_from_file_location("_h2odl_membw", lib_path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        self.ffi, self.lib = mod.ffi, mod.lib
        self.impl = "c-cffi"
        self.compile_flags = flags

    def _ptr(self, arr):
        return self.ffi.cast("double *", self.ffi.from_buffer(arr))

    def run(self, kind, a, b, c, reps):
        if self.impl == "c-cffi":
            if kind == "copy":
                self.lib.bw_copy(self._ptr(a), self._ptr(b), a.size, reps)
            else:
                self.lib.bw_triad(self._ptr(a), self._ptr(b), self._ptr(c), 3.0, a.size, reps)
        else:
            for _ in range(reps):
                if kind == "copy":
                    np.copyto(a, b)
                else:
                    np.multiply(c, 3.0, out=a)
                    np.add(a, b, out=a)  # numpy triad reads/writes a twice: slower than counted


def measure(kernels: _Kernels, kind: str, n_elements: int, threads: int, trials: int,
            min_trial_s: float = 0.05) -> dict:
    """Best-of-`trials` bandwidth of `kind` over arrays of n_elements float64, on `threads` threads."""
    a = np.empty(n_elements, dtype=np.float64)
    b = np.empty(n_elements, dtype=np.float64)
    c = np.empty(n_elements, dtype=np.float64)
    bounds = np.linspace(0, n_elements, threads + 1).astype(np.int64)
    slices = [slice(int(bounds[t]), int(bounds[t + 1])) for t in range(threads)]

    # first touch by the thread that will use the slice
    def touch(s):
        a[s] = 1.0
        b[s] = 2.0
        c[s] = 0.5

    ths = [threading.Thread(target=touch, args=(s,)) for s in slices]
    [t.start() for t in ths]
    [t.join() for t in ths]

    reps_box = [1]
    start = threading.Barrier(threads + 1)
    done = threading.Barrier(threads + 1)
    stop = [False]

    def worker(s):
        av, bv, cv = a[s], b[s], c[s]
        while True:
            start.wait()
            if stop[0]:
                return
            kernels.run(kind, av, bv, cv, reps_box[0])
            done.wait()

    ths = [threading.Thread(target=worker, args=(s,), daemon=True) for s in slices]
    [t.start() for t in ths]

    def one_trial(reps):
        reps_box[0] = reps
        start.wait()
        t0 = time.perf_counter()
        done.wait()
        return time.perf_counter() - t0

    # calibrate the inner repetitions so that one trial lasts at least min_trial_s
    reps = 1
    one_trial(reps)  # warm-up (page faults, frequency)
    while True:
        dt = one_trial(reps)
        if dt >= min_trial_s or reps >= 1 << 14:
            break
        reps = min(1 << 14, max(reps * 2, int(reps * min_trial_s / max(dt, 1e-9) * 1.2)))
    times = [one_trial(reps) for _ in range(trials)]
    stop[0] = True
    start.wait()
    [t.join() for t in ths]

    counted = COUNTED_BYTES_PER_ELEMENT[kind] * n_elements * reps
    best = min(times)
    return {
        "kernel": kind,
        "threads": threads,
        "array_bytes": int(n_elements * 8),
        "footprint_bytes": int(n_elements * 8 * (2 if kind == "copy" else 3)),
        "inner_reps": reps,
        "trials": trials,
        "best_s": best,
        "median_s": float(np.median(times)),
        "gb_per_s_best": counted / best / 1e9,
        "gb_per_s_median": counted / float(np.median(times)) / 1e9,
    }


def run(array_mib: int = 1024, threads=(1, 2), trials: int = 7, cache_sizes: bool = False,
        use_c: bool = True, native: bool = False, quiet_wait_s: float = 60.0) -> dict:
    """Measure copy and triad bandwidth; returns a dict (see module doc)."""
    kernels = _Kernels(use_c=use_c, native=native)
    results = []
    n_dram = array_mib * 2**20 // 8
    t_start = time.time()
    quiet = wait_for_quiet(max_wait_s=quiet_wait_s, log=lambda m: print("membw: " + m, file=sys.stderr))
    for kind in ("copy", "triad"):
        for t in threads:
            print(f"membw: dram {kind} threads={t}", file=sys.stderr, flush=True)
            with CpuMonitor() as mon:
                r = measure(kernels, kind, n_dram, t, trials)
            r["regime"] = "dram"
            r["contention"] = mon.report()
            results.append(r)
    if cache_sizes:
        # total footprint per thread: ~1 MiB (inside the 2 MiB L2), ~24 MiB (inside L3)
        for regime, per_thread_footprint in (("l2", 1 << 20), ("l3", 24 << 20)):
            for kind in ("copy", "triad"):
                arrays = 2 if kind == "copy" else 3
                for t in threads:
                    n = per_thread_footprint * t // (8 * arrays)
                    print(f"membw: {regime} {kind} threads={t}", file=sys.stderr, flush=True)
                    with CpuMonitor() as mon:
                        r = measure(kernels, kind, n, t, trials, min_trial_s=0.02)
                    r["regime"] = regime
                    r["contention"] = mon.report()
                    results.append(r)
    dram = {f"{r['kernel']}_{r['threads']}t": round(r["gb_per_s_best"], 2)
            for r in results if r["regime"] == "dram"}
    return {
        "peer": "membw",
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(),
        "settings": {
            "impl": kernels.impl,
            "compile_flags": kernels.compile_flags,
            "dtype": "float64",
            "array_mib_dram": array_mib,
            "threads": list(threads),
            "trials": trials,
            "statistic": "best of trials",
            "bytes_counted": "STREAM convention: copy 16 B/element, triad 24 B/element; "
                             "write-allocate reads not counted",
            "gb": "1e9 bytes",
        },
        "quiet_before": quiet,
        "dram_gb_per_s_best": dram,
        "results": results,
        "elapsed_s": round(time.time() - t_start, 1),
    }


def emit(res, args):
    """The peers' common output: the JSON result into --out, and on stdout with --json.
    True when it was printed (else the caller prints its one-line summary)."""
    text = json.dumps(res, indent=2, default=str)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if args.json:
        print(text)
    return bool(args.json)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--array-mib", type=int, default=1024,
                    help="size of EACH array in MiB for the DRAM measurement (default 1024)")
    ap.add_argument("--threads", default="1,2", help="thread counts, comma separated")
    ap.add_argument("--trials", type=int, default=7)
    ap.add_argument("--cache-sizes", action="store_true",
                    help="also measure L2- and L3-resident footprints")
    ap.add_argument("--numpy", action="store_true", help="use numpy kernels instead of the C helper")
    ap.add_argument("--native", action="store_true", help="compile the C helper with -march=native")
    ap.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    ap.add_argument("--out", help="also write the JSON result to this file")
    args = ap.parse_args(argv)
    res = run(array_mib=args.array_mib, threads=tuple(int(x) for x in args.threads.split(",")),
              trials=args.trials, cache_sizes=args.cache_sizes, use_c=not args.numpy,
              native=args.native)
    if not emit(res, args):
        print(f"{res['machine']['cpu_model']}, nproc={res['machine']['nproc']}, impl={res['settings']['impl']}")
        for r in res["results"]:
            print(f"{r['regime']:5s} {r['kernel']:6s} threads={r['threads']} "
                  f"footprint={r['footprint_bytes'] / 2**20:9.1f} MiB  best {r['gb_per_s_best']:7.2f} GB/s"
                  f"  median {r['gb_per_s_median']:7.2f} GB/s")


if __name__ == "__main__":
    main()
