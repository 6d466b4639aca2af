"""AddressSanitizer + UndefinedBehaviorSanitizer run of the C kernel's tests (make test-sanitize).

    python tests/sanitize/run.py build [--out DIR] [--csrc DIR]
        compile the cffi extension with the sanitizers into DIR/obj/ (default DIR:
        build/sanitize; never h2odl_mpi/_kernel*.so, which others import)
    python tests/sanitize/run.py test [--out DIR] [pytest args...]
        copy the package to DIR/pkg/ with that extension and run the kernel's tests on it

The extension is csrc/build_ffi.py's own `ffibuilder` (same header, sources, include dirs,
portable flags, OpenMP), with its optimisation level swapped for SANITIZE_FLAGS; --csrc
builds a scratch copy of csrc/ instead (to check that a planted defect fails the run).
Python itself is not instrumented, so libasan (then libubsan) is LD_PRELOADed (ASan's runtime
must be the first library loaded) and leak detection is off (CPython's own allocations are
not ours).  Every pytest of the run, the tests' own included, loads sanitize_check.py (a
plugin: it refuses to run unless the sanitized extension and both runtimes are loaded), and
every Python process sitecustomize.py (it sends UBSan's reports to files; see there).

A run fails on a non-zero pytest status (halt_on_error and -fno-sanitize-recover=all make
any report end the process that meets it with an error, in the tests' own subprocesses
too), on any report the sanitizers wrote under DIR/logs/ (log_path: a report in a
subprocess whose output a test captured is still seen, and printed), and on
"ERROR: AddressSanitizer" or "runtime error:" anywhere in pytest's output.
"""
import argparse
import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# -fno-wrapv undoes the -fwrapv of Python's own CFLAGS (which come first), so that UBSan
# sees signed overflow; -fno-sanitize-recover=all makes every UBSan check fatal, as ASan's are
SANITIZE_FLAGS = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
                  "-fno-sanitize-recover=all", "-fno-wrapv"]
SANITIZE_LINK = ["-fsanitize=address,undefined"]
ASAN_OPTIONS = ["detect_leaks=0", "halt_on_error=1", "verify_asan_link_order=0",
                "detect_stack_use_after_return=1"]
UBSAN_OPTIONS = ["halt_on_error=1", "print_stacktrace=1"]

# The kernel's tests, whole: every row kind, activation, loss, optimizer, mini-batch size,
# thread count, thread scheme and ISA variant they cover (the ISA tests rerun parts of the first two, and
# test_frame_rows.py itself, in a subprocess per variant, on the same sanitized extension),
# less DESELECT
TESTS = ["tests/test_kernel_math.py", "tests/test_kernel_minibatch.py", "tests/sanitize/row_path_check.py",
         "tests/test_kernel_behaviour.py", "tests/test_frame_rows.py", "tests/test_kernel_isa.py",
         "tests/test_kernel_scoring.py", "tests/test_kernel_replicas.py", "tests/test_decoded_rows.py",
         "tests/test_codec.py"]
DESELECT = [
    # its bit-for-bit digests are those of the vectorised build: see row_path_check.py
    "tests/test_kernel_minibatch.py::test_mini_batch_size_1_is_the_one_row_path_bit_for_bit",
    # + test_kernel_isa.py::test_variant_matches_reference[<the variant this CPU picks>]:
    # it reruns, in a subprocess, tests the first two files have just run on that variant
]


def _load_build_ffi(csrc):
    spec = importlib.util.spec_from_file_location("h2odl_build_ffi", os.path.join(csrc, "build_ffi.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _parallel_compile(jobs):
    """Compile the extension's C files `jobs` at a time (distutils runs them one by one, and
    each kernel_*.c holds the whole kernel).  The compiler's own compile() still decides what
    to build and how; only its per-file _compile() calls are collected, then run concurrently."""
    from concurrent.futures import ThreadPoolExecutor
    import cffi._shimmed_dist_utils  # noqa: F401  (setuptools' distutils, as cffi uses)
    from distutils.ccompiler import new_compiler

    cls = type(new_compiler())  # the class build_ext instantiates (UnixCCompiler here)
    orig = cls.compile

    def compile(self, *args, **kwargs):
        calls = []
        real = self._compile
        self._compile = lambda *a: calls.append(a)
        try:
            objects = orig(self, *args, **kwargs)
        finally:
            del self._compile
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            list(pool.map(lambda a: real(*a), calls))
        return objects

    cls.compile = compile


def build(out, csrc):
    t0 = time.time()
    obj = os.path.join(out, "obj")  # cffi's tmpdir: the generated _kernel.c, objects, the .so
    ffi = _load_build_ffi(csrc).ffibuilder
    # build_ffi.py's one set_source (cffi keeps it as _assigned_source): the same module
    # name, sources and include dirs (made absolute: cffi compiles from its tmpdir) and
    # flags, with the optimisation level (and -march=native) swapped for the sanitizers'
    name, source, ext, kwds = ffi._assigned_source
    kwds = dict(kwds)
    kwds["sources"] = [os.path.abspath(s) for s in kwds["sources"]]
    kwds["include_dirs"] = [os.path.abspath(d) for d in kwds.get("include_dirs", [])]
    cflags = [a for a in kwds.get("extra_compile_args", []) if not a.startswith("-O") and a != "-march=native"]
    kwds["extra_compile_args"] = cflags + SANITIZE_FLAGS
    kwds["extra_link_args"] = list(kwds.get("extra_link_args", [])) + SANITIZE_LINK
    if "-fopenmp" not in kwds["extra_compile_args"] or "-fopenmp" not in kwds["extra_link_args"]:
        sys.exit("sanitize: build_ffi.py no longer builds with -fopenmp; update tests/sanitize/run.py")
    ffi._assigned_source = (name, source, ext, kwds)
    _parallel_compile(min(os.cpu_count() or 1, 8))
    shutil.rmtree(obj, ignore_errors=True)
    os.makedirs(obj)
    so = ffi.compile(tmpdir=obj, verbose=False)
    print(f"sanitize: built {os.path.relpath(so, ROOT)} from {os.path.relpath(csrc, ROOT)}/ in "
          f"{time.time() - t0:.1f} s: gcc {' '.join(kwds['extra_compile_args'])}", flush=True)


def _runtime(name):
    """The path of gcc's sanitizer runtime `name` (libasan.so, libubsan.so)."""
    cc = (sysconfig.get_config_var("CC") or "gcc").split()[0]
    path = subprocess.run([cc, f"-print-file-name={name}"], capture_output=True, text=True,
                          check=True).stdout.strip()
    if not os.path.isabs(path) or not os.path.exists(path):
        sys.exit(f"sanitize: {cc} has no {name} ({path!r})")
    return os.path.realpath(path)


def _stage(out):
    """out/pkg/h2odl_mpi: the working tree's package (copied afresh each run: others edit
    it) with the sanitized extension instead of the normal one.  Returns the .so's path."""
    sos = glob.glob(os.path.join(out, "obj", "h2odl_mpi", "_kernel*.so"))
    if len(sos) != 1:
        sys.exit(f"sanitize: expected one built extension under {out}/obj, found {sos}: run the build first")
    pkg = os.path.join(out, "pkg")
    shutil.rmtree(pkg, ignore_errors=True)
    dst = os.path.join(pkg, "h2odl_mpi")
    shutil.copytree(os.path.join(ROOT, "h2odl_mpi"), dst,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "_kernel*.so", "_kernel.c"))
    shutil.copy2(sos[0], dst)
    return pkg, os.path.join(dst, os.path.basename(sos[0]))


def test(out, pytest_args):
    t0 = time.time()
    pkg, so = _stage(out)
    logs = os.path.join(out, "logs")
    shutil.rmtree(logs, ignore_errors=True)
    os.makedirs(logs)
    asan, ubsan = _runtime("libasan.so"), _runtime("libubsan.so")
    env = {k: v for k, v in os.environ.items() if k not in ("H2ODL_ISA", "PYTEST_ADDOPTS", "PYTHONSTARTUP")}
    env.update(
        # libasan first of all libraries (the interpreter is not instrumented); libubsan
        # too, so that sitecustomize.py's handle on it is the one the extension uses
        LD_PRELOAD=f"{asan} {ubsan}",
        ASAN_OPTIONS=":".join(ASAN_OPTIONS + [f"log_path={logs}/asan"]),
        UBSAN_OPTIONS=":".join(UBSAN_OPTIONS + [f"log_path={logs}/ubsan"]),
        H2ODL_SANITIZE_UBSAN_LIB=ubsan,         # for sitecustomize.py: UBSan's log_path
        H2ODL_SANITIZE_UBSAN_LOG=f"{logs}/ubsan",
        # pkg first: its h2odl_mpi is the copy with the sanitized .so.  The tests run from
        # pkg, so the repository root (whose h2odl_mpi has the normal .so) is not on the
        # path.  HERE: sanitize_check.py and sitecustomize.py, in every process of the run
        PYTHONPATH=os.pathsep.join([pkg, HERE]),
        # every pytest (the ISA tests start more) loads sanitize_check.py, which refuses to
        # run unless this .so and libasan are the ones loaded, and names them in its header
        PYTEST_ADDOPTS="-p sanitize_check",
        H2ODL_SANITIZED_KERNEL=so,
        PYTHONDONTWRITEBYTECODE="1",
    )
    py = sys.executable
    probe = subprocess.run([py, "-c", "import h2odl_mpi._kernel as k; "
                            "print(k.__file__, k.ffi.string(k.lib.h2o_isa()).decode())"],
                           cwd=pkg, env=env, capture_output=True, text=True)
    words = probe.stdout.split()
    print(f"sanitize: h2odl_mpi._kernel.__file__ = {words[0] if words else '?'}", flush=True)
    if probe.returncode != 0 or len(words) != 2 or os.path.realpath(words[0]) != os.path.realpath(so):
        print(probe.stderr[-3000:])
        sys.exit("sanitize: FAILED: the tests would not import the sanitized extension")
    deselect = DESELECT + [f"tests/test_kernel_isa.py::test_variant_matches_reference[{words[1]}]"]
    cmd = [py, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", ROOT,
           "-c", os.path.join(ROOT, "pyproject.toml"), "--durations=5"]
    cmd += [os.path.join(ROOT, t) for t in TESTS]
    cmd += [a for d in deselect for a in ("--deselect", d)]  # node ids: relative to the rootdir
    print(f"sanitize: pytest {' '.join(TESTS)} {' '.join('--deselect ' + d for d in deselect)} "
          f"{' '.join(pytest_args)}", flush=True)
    r = subprocess.run(cmd + pytest_args, cwd=pkg, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    print(r.stdout, end="")
    failed = [f"pytest exit status {r.returncode}"] if r.returncode != 0 else []
    failed += [f"{text!r} in the output" for text in ("ERROR: AddressSanitizer", "runtime error:")
               if text in r.stdout]
    # (libubsan creates its log file, empty, in every process once the path is set)
    reports = sorted(p for p in glob.glob(os.path.join(logs, "*")) if os.path.getsize(p) > 0)
    for rep in reports:
        print(f"--- sanitizer report {os.path.relpath(rep, ROOT)}:")
        lines = open(rep, errors="replace").read().splitlines()
        print("\n".join(lines[:120] + ([f"... ({len(lines) - 120} more lines)"] if len(lines) > 120 else [])))
    if reports:
        failed.append(f"{len(reports)} sanitizer report(s) in {os.path.relpath(logs, ROOT)}/")
    print(f"sanitize: {'FAILED: ' + '; '.join(failed) if failed else 'clean'} ({time.time() - t0:.1f} s)")
    return 1 if failed else 0


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["build", "test"])
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "sanitize"),
                    help="build and run directory (default build/sanitize)")
    ap.add_argument("--csrc", default=os.path.join(ROOT, "csrc"),
                    help="build: the C sources with their build_ffi.py (default csrc/)")
    args, rest = ap.parse_known_args(argv)
    out = os.path.abspath(args.out)
    if args.what == "build":
        if rest:
            ap.error(f"unknown arguments {rest}")
        build(out, os.path.abspath(args.csrc))
        return 0
    return test(out, rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
