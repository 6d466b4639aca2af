"""This machine's memory bandwidth, STREAM-style, for 1 and 2 threads; and the machine description.

Kernels (copy and triad on float64 arrays, as in STREAM; read and rmw on float32, the kernel's
type, as the h2odl_mpi kernel streams its weights):
    copy:  a[i] = b[i]              counted bytes per element: 16 (read b, write a)
    triad: a[i] = b[i] + s * c[i]   counted bytes per element: 24 (read b and c, write a)
    read:  s += a[i]                counted bytes per element: 4  (the forward pass reading W)
    rmw:   a[i] = a[i] * s + t, the same for b and c, in place
                                    counted bytes per element: 24 (read and write 3 arrays: the
                                    update sweep over W and ADADELTA's two accumulators)
Bandwidth = counted bytes / seconds, in GB/s (1e9 bytes), best of N trials. As in STREAM, the
extra read caused by write-allocate (the cache line of `a` is read before it is written) is NOT
counted, so the hardware moves up to 4/3 (triad) or 3/2 (copy) of the counted bytes; rmw writes
lines it has just read, so it has no such extra.

Each thread runs the kernel on its own contiguous, 64-byte aligned slice of the arrays. The
kernels are a tiny C helper compiled at run time with cffi (API mode, into a temporary folder;
-O3 without -march=native unless --native, or for the instruction set named by --isa: read and
rmw use explicit vectors as wide as that instruction set's registers); cffi releases the GIL
during the call, so Python threads run the C loops on several cores at once. If no C compiler is
usable, numpy (which also releases the GIL) is the fallback and the result says so.

The DRAM measurement uses arrays far larger than the last-level cache (default 1 GiB each);
optional smaller footprints show the bandwidth of data that stays in L2 or L3 (the regime of a
small network's weights). --levels measures read and rmw at footprints chosen from the cache
sizes the OS reports (/sys/devices/system/cpu/cpu0/cache): half of L1d and half of L2 per
thread (private caches), half of L3 in all, and DRAM at 4 x L3 (at least 256 MiB), each thread
pinned to its own CPU (benchmarks/roofline.py uses these as its bandwidth roofs).

    python -m benchmarks.peers.membw --json
    python -m benchmarks.peers.membw --array-mib 1024 --cache-sizes --json
    python -m benchmarks.peers.membw --levels --isa avx512 --threads 1,2
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
#include <string.h>
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

/* float32 read and read-modify-write, explicit vectors as wide as the target's registers */
#if defined(__AVX512F__)
#define VB 64
#elif defined(__AVX__)
#define VB 32
#else
#define VB 16
#endif
#define VL (VB / 4)
typedef float vf __attribute__((vector_size(VB)));
static inline vf ldv(const float *p) { vf v; memcpy(&v, p, VB); return v; }
static inline void stv(float *p, vf v) { memcpy(p, &v, VB); }
int bw_vector_bytes(void) { return VB; }

/* sum of a[0..n): 8 independent vector accumulators (enough for two loads a cycle) */
float bw_read(const float *a, size_t n, int reps) {
    vf s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, s4 = {0}, s5 = {0}, s6 = {0}, s7 = {0};
    float tail = 0.f;
    for (int r = 0; r < reps; ++r) {
        size_t i = 0;
        for (; i + 8 * VL <= n; i += 8 * VL) {
            s0 += ldv(a + i);          s1 += ldv(a + i + VL);
            s2 += ldv(a + i + 2 * VL); s3 += ldv(a + i + 3 * VL);
            s4 += ldv(a + i + 4 * VL); s5 += ldv(a + i + 5 * VL);
            s6 += ldv(a + i + 6 * VL); s7 += ldv(a + i + 7 * VL);
        }
        for (; i < n; ++i) tail += a[i];
        __asm__ volatile("" ::: "memory");
    }
    vf s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
    float t = tail;
    for (int k = 0; k < VL; ++k) t += s[k];
    return t;
}

/* a, b, c updated in place (read and written), as the update sweep does W and its state */
void bw_rmw(float *a, float *b, float *c, size_t n, int reps) {
    vf s, t;
    for (int k = 0; k < VL; ++k) { s[k] = 0.999f; t[k] = 0.001f; }
    for (int r = 0; r < reps; ++r) {
        size_t i = 0;
        for (; i + VL <= n; i += VL) {
            stv(a + i, ldv(a + i) * s + t);
            stv(b + i, ldv(b + i) * s + t);
            stv(c + i, ldv(c + i) * s + t);
        }
        for (; i < n; ++i) {
            a[i] = a[i] * 0.999f + 0.001f;
            b[i] = b[i] * 0.999f + 0.001f;
            c[i] = c[i] * 0.999f + 0.001f;
        }
        __asm__ volatile("" ::: "memory");
    }
}
"""
_C_CDEF = """
void bw_copy(double *a, const double *b, size_t n, int reps);
void bw_triad(double *a, const double *b, const double *c, double s, size_t n, int reps);
int bw_vector_bytes(void);
float bw_read(const float *a, size_t n, int reps);
void bw_rmw(float *a, float *b, float *c, size_t n, int reps);
"""

# kind: (dtype, arrays, counted bytes per element index)
KINDS = {
    "copy": (np.float64, 2, 16),
    "triad": (np.float64, 3, 24),
    "read": (np.float32, 1, 4),
    "rmw": (np.float32, 3, 24),
}
COUNTED_BYTES_PER_ELEMENT = {k: v[2] for k, v in KINDS.items()}

# compiler flags per instruction set: "default" is membw's own (no -march), the others match the
# variants of the h2odl_mpi kernel (csrc/kernel_avx2.c, kernel_avx512.c) or the host (native)
ISA_FLAGS = {
    "default": [],
    "baseline": [],
    "avx2": ["-mavx2", "-mfma", "-mbmi", "-mbmi2", "-mlzcnt", "-mmovbe", "-mf16c"],
    "avx512": ["-mavx2", "-mfma", "-mbmi", "-mbmi2", "-mlzcnt", "-mmovbe", "-mf16c", "-mavx512f",
               "-mavx512bw", "-mavx512cd", "-mavx512dq", "-mavx512vl"],
    "native": ["-march=native"],
}


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


def _size_bytes(text: str | None) -> int | None:
    """'32K', '1024K', '32 MiB', '2M' -> bytes (sysfs writes K)."""
    if not text:
        return None
    t = text.strip().upper().replace("IB", "").replace(" ", "")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(t[-1:], 1)
    digits = t[:-1] if t[-1:] in "KMG" else t
    try:
        return int(float(digits) * mult)
    except ValueError:
        return None


def _cpu_list_len(text: str | None) -> int | None:
    """'0-3,8' -> 5"""
    if not text:
        return None
    n = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        n += (int(hi) - int(lo) + 1) if hi else 1
    return n


def cache_levels() -> dict:
    """The data caches of cpu0 by level, from /sys: {"L1": {"bytes", "size", "shared_cpus",
    "source"}, "L2": ..., "L3": ...} (instruction caches left out).  Where /sys has no cache
    folder (some sandboxes), glibc's `getconf LEVELn_..._SIZE` (cpuid: the whole chip's L3,
    sharing unknown) fills in; levels neither reports are absent."""
    out = {}
    for c in cache_info():
        if c.get("type") == "Instruction" or not c.get("level"):
            continue
        size = _size_bytes(c.get("size"))
        if size:
            out[f"L{c['level']}"] = {"bytes": size, "size": c.get("size"),
                                     "shared_cpus": _cpu_list_len(c.get("shared_cpu_list")),
                                     "source": "sysfs"}
    exe = shutil.which("getconf")
    if out or not exe:
        return out
    for lvl, name in (("L1", "LEVEL1_DCACHE_SIZE"), ("L2", "LEVEL2_CACHE_SIZE"),
                      ("L3", "LEVEL3_CACHE_SIZE")):
        try:
            text = subprocess.run([exe, name], capture_output=True, text=True, timeout=10).stdout
            size = int(text.strip())
        except (OSError, subprocess.SubprocessError, ValueError):
            continue
        if size > 0:
            out[lvl] = {"bytes": size, "size": f"{size // 1024}K", "shared_cpus": None,
                        "source": "getconf"}
    return out


def level_footprints(levels: dict, threads: int, dram_min_bytes: int = 256 << 20) -> dict:
    """Total bytes to stream, per memory level, for a measurement on `threads` threads: half of
    L1d and half of L2 per thread (private caches: each thread its own slice), half of L3 in all
    (shared; but at least twice the threads' L2, so it is not served by L2), and DRAM at 4 x L3 or
    dram_min_bytes, whichever is larger (capped at 2 GiB).  Levels whose size the OS does not
    report are left out, except DRAM."""
    fp = {}
    for lvl in ("L1", "L2"):
        if lvl in levels:
            fp[lvl] = levels[lvl]["bytes"] // 2 * threads
    last = max((v["bytes"] for v in levels.values()), default=0)
    if "L3" in levels:
        shared = levels["L3"].get("shared_cpus") or threads
        l3 = levels["L3"]["bytes"] * -(-threads // shared)  # the L3 instances the threads span
        l2 = levels.get("L2", {}).get("bytes", 0)
        if 2 * l2 * threads < l3:  # else the threads' L2 hold as much as L3: no L3-only regime
            fp["L3"] = max(l3 // 2, 2 * l2 * threads)
        last = max(last, l3)
    fp["DRAM"] = min(max(4 * last, dram_min_bytes), 2 << 30)
    return fp


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
def build_cffi(name: str, source: str, cdef: str, flags: list):
    """Compile `source` with cffi (API mode) into a temporary folder and load it.
    Returns (ffi, lib, tmpdir); keep tmpdir alive as long as lib is used.  The compiler's
    chatter goes to stderr, so that --json output stays clean."""
    import importlib.util

    import cffi

    ffi = cffi.FFI()
    ffi.cdef(cdef)
    ffi.set_source(name, source, extra_compile_args=list(flags))
    tmp = tempfile.TemporaryDirectory(prefix=f"{name}_")
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        lib_path = ffi.compile(tmpdir=tmp.name, verbose=False)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    spec = importlib.util.spec_from_file_location(name, lib_path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.ffi, mod.lib, tmp


class _Kernels:
    """copy/triad/read/rmw over one slice: C through cffi if it builds, else numpy.
    isa: a key of ISA_FLAGS (default: membw's own flags, or "native" when native=True)."""

    def __init__(self, use_c: bool = True, native: bool = False, isa: str | None = None):
        self.isa = isa or ("native" if native else "default")
        if self.isa not in ISA_FLAGS:
            raise ValueError(f"isa must be one of {sorted(ISA_FLAGS)}, got {self.isa!r}")
        self.native = self.isa == "native"
        self.impl = "numpy"
        self.compile_flags = None
        self.vector_bytes = None
        self._tmp = None
        if use_c:
            try:
                self._build_c()
            except Exception as exc:  # no compiler, no cffi: fall back, and say so
                print(f"membw: C helper unavailable ({exc.__class__.__name__}: {exc}); using numpy",
                      file=sys.stderr)

    def _build_c(self):
        # explicit loops (no memcpy substitution); -march=native only on request
        flags = ["-O3", "-std=gnu99", "-fno-tree-loop-distribute-patterns"] + ISA_FLAGS[self.isa]
        self.ffi, self.lib, self._tmp = build_cffi(
            f"_h2odl_membw_{self.isa}", _C_SOURCE, _C_CDEF, flags)
        self.impl = "c-cffi"
        self.compile_flags = flags
        self.vector_bytes = int(self.lib.bw_vector_bytes())

    def _ptr(self, arr):
        ctype = "double *" if arr.dtype == np.float64 else "float *"
        return self.ffi.cast(ctype, self.ffi.from_buffer(arr))

    def run(self, kind, arrays, reps):
        """Run `kind` reps times over `arrays` (KINDS[kind] arrays of equal length)."""
        if self.impl == "c-cffi":
            p = [self._ptr(x) for x in arrays]
            n = arrays[0].size
            if kind == "copy":
                self.lib.bw_copy(p[0], p[1], n, reps)
            elif kind == "triad":
                self.lib.bw_triad(p[0], p[1], p[2], 3.0, n, reps)
            elif kind == "read":
                self.lib.bw_read(p[0], n, reps)
            else:
                self.lib.bw_rmw(p[0], p[1], p[2], n, reps)
            return
        for _ in range(reps):  # numpy: slower than counted where it makes two passes
            if kind == "copy":
                np.copyto(arrays[0], arrays[1])
            elif kind == "triad":
                a, b, c = arrays
                np.multiply(c, 3.0, out=a)
                np.add(a, b, out=a)
            elif kind == "read":
                arrays[0].sum()
            else:
                for x in arrays:
                    np.multiply(x, np.float32(0.999), out=x)
                    np.add(x, np.float32(0.001), out=x)


def aligned_empty(n: int, dtype, align: int = 64) -> np.ndarray:
    """An uninitialised 1-d array of n elements whose data starts on an `align`-byte boundary."""
    dtype = np.dtype(dtype)
    raw = np.empty(n * dtype.itemsize + align, dtype=np.uint8)
    off = (-raw.ctypes.data) % align
    return raw[off:off + n * dtype.itemsize].view(dtype)


def thread_cpus(threads: int) -> list:
    """The CPUs to pin `threads` threads to: this process's CPUs in order, cycled."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return [cpus[t % len(cpus)] for t in range(threads)] if cpus else []


def parallel_timing(work, threads: int, trials: int, min_trial_s: float = 0.05,
                    max_reps: int = 1 << 14, pin: bool = False, setup=None) -> tuple:
    """Time `work(t, reps)` run by `threads` Python threads at once (each call must release the
    GIL: a cffi call does).  The inner repetitions are calibrated so that one trial lasts at
    least min_trial_s (at most max_reps), after one warm-up.  setup(t), if given, runs first in
    thread t (first touch of its data).  pin: each thread pinned to its own CPU.
    Returns (reps, [seconds of each trial])."""
    cpus = thread_cpus(threads) if pin else []
    reps_box = [1]
    start = threading.Barrier(threads + 1)
    done = threading.Barrier(threads + 1)
    stop = [False]

    def worker(t):
        if cpus:
            try:
                os.sched_setaffinity(0, {cpus[t]})  # Linux: the calling thread only
            except OSError:
                pass
        if setup is not None:
            setup(t)
        while True:
            start.wait()
            if stop[0]:
                return
            work(t, reps_box[0])
            done.wait()

    ths = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(threads)]
    [t.start() for t in ths]

    def one_trial(reps):
        # the clock starts before the release and stops after the last thread is done: a main
        # thread that runs late (a busy machine) makes a trial look longer, never shorter
        reps_box[0] = reps
        t0 = time.perf_counter()
        start.wait()
        done.wait()
        return time.perf_counter() - t0

    try:
        reps = 1
        one_trial(reps)  # warm-up (page faults, frequency)
        while True:
            dt = one_trial(reps)
            if dt >= min_trial_s or reps >= max_reps:
                break
            reps = min(max_reps, max(reps * 2, int(reps * min_trial_s / max(dt, 1e-9) * 1.2)))
        times = [one_trial(reps) for _ in range(trials)]
    finally:
        stop[0] = True
        start.wait()
        [t.join() for t in ths]
    return reps, times


def measure(kernels: _Kernels, kind: str, n_elements: int, threads: int, trials: int,
            min_trial_s: float = 0.05, max_reps: int = 1 << 14, pin: bool = False,
            shared: bool = False) -> dict:
    """Best-of-`trials` bandwidth of `kind` over KINDS[kind] arrays of n_elements each (float64
    for copy/triad, float32 for read/rmw), on `threads` threads, each on its own 64-byte aligned
    slice (first touched by the thread that uses it).  shared=True: every thread sweeps ALL of
    the arrays, thread t starting at t/threads of them and wrapping around (as Hogwild! threads
    sweep one shared model: rmw lines move between the cores); counted bytes are per thread."""
    dtype, n_arrays, counted_per_element = KINDS[kind]
    arrays = [aligned_empty(n_elements, dtype) for _ in range(n_arrays)]
    per_line = 64 // np.dtype(dtype).itemsize
    bounds = [min(n_elements, int(round(n_elements * t / threads / per_line)) * per_line)
              for t in range(threads)] + [n_elements]
    init = {"copy": (1.0, 2.0), "triad": (1.0, 2.0, 0.5), "read": (1.0,), "rmw": (1.0, 1.0, 1.0)}
    if shared:
        for x, v in zip(arrays, init[kind]):
            x[...] = v
        parts = [[[x[bounds[t]:] for x in arrays], [x[:bounds[t]] for x in arrays]]
                 for t in range(threads)]
        parts = [[p for p in pt if p[0].size] for pt in parts]

        def touch(t):
            pass

        def work(t, r):
            for p in parts[t]:
                kernels.run(kind, p, r)
    else:
        views = [[x[bounds[t]:bounds[t + 1]] for x in arrays] for t in range(threads)]

        def touch(t):
            for x, v in zip(views[t], init[kind]):
                x[...] = v

        def work(t, r):
            kernels.run(kind, views[t], r)

    reps, times = parallel_timing(work, threads, trials, min_trial_s, max_reps, pin=pin,
                                  setup=touch)
    counted = counted_per_element * n_elements * reps * (threads if shared else 1)
    best = min(times)
    return {
        "kernel": kind,
        "threads": threads,
        "dtype": np.dtype(dtype).name,
        "array_bytes": int(n_elements * np.dtype(dtype).itemsize),
        "footprint_bytes": int(n_elements * np.dtype(dtype).itemsize * n_arrays),
        "inner_reps": reps,
        "trials": trials,
        "pinned": bool(pin),
        "shared": bool(shared),
        "best_s": best,
        "median_s": float(np.median(times)),
        "gb_per_s_best": counted / best / 1e9,
        "gb_per_s_median": counted / float(np.median(times)) / 1e9,
    }


def run(array_mib: int = 1024, threads=(1, 2), trials: int = 7, cache_sizes: bool = False,
        use_c: bool = True, native: bool = False, quiet_wait_s: float = 60.0,
        isa: str | None = None) -> dict:
    """Measure copy and triad bandwidth; returns a dict (see module doc)."""
    kernels = _Kernels(use_c=use_c, native=native, isa=isa)
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
            "isa": kernels.isa,
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


def run_levels(threads=(1, 2), kinds=("read", "rmw"), isa: str | None = None, trials: int = 7,
               min_trial_s: float = 0.05, dram_min_mib: int = 256, use_c: bool = True,
               quiet_wait_s: float = 60.0, pin: bool = True, kernels: _Kernels | None = None,
               log=None) -> dict:
    """float32 read and rmw bandwidth of each memory level (footprints from level_footprints:
    the cache sizes in /sys), on each thread count, threads pinned to their own CPUs.
    Returns {"levels": cache_levels(), "results": [...], "gb_per_s": {kind: {level: {threads:
    best GB/s}}}, "settings": ...}."""
    log = log or (lambda m: print("membw: " + m, file=sys.stderr, flush=True))
    kernels = kernels or _Kernels(use_c=use_c, isa=isa)
    levels = cache_levels()
    t_start = time.time()
    quiet = wait_for_quiet(max_wait_s=quiet_wait_s, log=log) if quiet_wait_s > 0 else None
    results = []
    table = {k: {} for k in kinds}
    for t in threads:
        for level, total in level_footprints(levels, t, dram_min_mib << 20).items():
            for kind in kinds:
                _, n_arrays, _ = KINDS[kind]
                n = max(64 * t, total // (4 * n_arrays))
                log(f"{level} {kind} threads={t} footprint={total / 2**20:.2f} MiB")
                with CpuMonitor() as mon:
                    r = measure(kernels, kind, n, t, trials, min_trial_s=min_trial_s,
                                max_reps=1 << 26, pin=pin)
                r["regime"] = level
                r["contention"] = mon.report()
                results.append(r)
                table[kind].setdefault(level, {})[t] = round(r["gb_per_s_best"], 2)
    return {
        "levels": levels,
        "results": results,
        "gb_per_s": table,
        "quiet_before": quiet,
        "settings": {"impl": kernels.impl, "isa": kernels.isa, "compile_flags": kernels.compile_flags,
                     "vector_bytes": kernels.vector_bytes, "dtype": "float32",
                     "threads": list(threads), "trials": trials, "min_trial_s": min_trial_s,
                     "pinned": pin, "statistic": "best of trials", "gb": "1e9 bytes",
                     "footprints": "L1, L2: half the cache per thread; L3: half of it (of the "
                                   "instances the threads span); DRAM: 4 x L3, at least "
                                   f"{dram_min_mib} MiB",
                     "bytes_counted": "read 4 B/element; rmw 24 B/element (3 arrays read and "
                                      "written in place)"},
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
    ap.add_argument("--levels", action="store_true",
                    help="instead: float32 read and rmw at L1, L2, L3 and DRAM footprints chosen "
                         "from the cache sizes in /sys (threads pinned)")
    ap.add_argument("--isa", choices=sorted(ISA_FLAGS), default=None,
                    help="compile the C helper for this instruction set (default: no -march)")
    ap.add_argument("--dram-min-mib", type=int, default=256,
                    help="--levels: smallest DRAM footprint in MiB (default 256)")
    ap.add_argument("--numpy", action="store_true", help="use numpy kernels instead of the C helper")
    ap.add_argument("--native", action="store_true", help="compile the C helper with -march=native")
    ap.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    ap.add_argument("--out", help="also write the JSON result to this file")
    args = ap.parse_args(argv)
    threads = tuple(int(x) for x in args.threads.split(","))
    isa = args.isa or ("native" if args.native else None)
    if args.levels:
        res = run_levels(threads=threads, isa=isa, trials=args.trials,
                         dram_min_mib=args.dram_min_mib, use_c=not args.numpy)
        res = {"peer": "membw", "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "machine": machine_info(), **res}
        if not emit(res, args):
            st = res["settings"]
            print(f"{res['machine']['cpu_model']}, nproc={res['machine']['nproc']}, "
                  f"impl={st['impl']}, isa={st['isa']}, vector {st['vector_bytes']} B")
            for r in res["results"]:
                print(f"{r['regime']:5s} {r['kernel']:5s} threads={r['threads']} "
                      f"footprint={r['footprint_bytes'] / 2**20:9.2f} MiB  best {r['gb_per_s_best']:8.2f} GB/s"
                      f"  median {r['gb_per_s_median']:8.2f} GB/s")
        return
    res = run(array_mib=args.array_mib, threads=threads, trials=args.trials,
              cache_sizes=args.cache_sizes, use_c=not args.numpy, isa=isa)
    if not emit(res, args):
        print(f"{res['machine']['cpu_model']}, nproc={res['machine']['nproc']}, impl={res['settings']['impl']}")
        for r in res["results"]:
            print(f"{r['regime']:5s} {r['kernel']:6s} threads={r['threads']} "
                  f"footprint={r['footprint_bytes'] / 2**20:9.1f} MiB  best {r['gb_per_s_best']:7.2f} GB/s"
                  f"  median {r['gb_per_s_median']:7.2f} GB/s")


if __name__ == "__main__":
    main()
