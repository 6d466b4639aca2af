"""The long fuzz run: every target of fuzz/*_targets.py with many examples.

    .venv/bin/python fuzz/run.py --seconds 600            # each target about 600 s
    .venv/bin/python fuzz/run.py --examples 5000          # each target 5,000 inputs at least
    .venv/bin/python fuzz/run.py --seconds 60 --targets csv,parquet --workers 2

Options: --seconds S (per target; default 60) or --examples N; --targets (default: all:
csv csv_bytes svmlight svmlight_bytes config grid parquet parquet_bytes model_bytes
chunks); --workers (processes at once, default 2); --hang H (seconds without progress that
count as a hang, default 60); --memory G (GiB of address space per process, default 4:
the memory bound; an input that needs more fails with MemoryError or dies, and either is
reported); --no-coverage.

Each target runs in its own process (fuzz/supervise.py): hypothesis generates cases, each
checked by the target's property, run after run with fresh random seeds until the time or
the count is reached.  A property failure is shrunk by hypothesis to a small case (for at
most SHRINK_GRACE_S past the target's time, then the smallest found so far); a crash
(a signal) or a hang is caught by the parent with the case that caused it.  Every failing
case found is written to fuzz/corpus/<target>/<hash>.json, which tests/test_fuzz_readers.py
replays.  The report gives per target: inputs tried (every call of the property, shrinking
included), failures (distinct messages), crashes, hangs; then, when the coverage package
is installed, the line coverage of the readers over the run (else it says it is not).
Exit status 1 when anything failed.
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, ROOT]

SHRINK_GRACE_S = 120   # shrinking a failure may run this long past a target's time
READERS = ["h2odl_mpi/data/frame/*.py", "h2odl_mpi/model/model_io.py", "h2odl_mpi/evaluation/ensemble_model.py",
           "h2odl_mpi/config.py", "h2odl_mpi/workflows/search/grid_file.py"]


def all_targets():
    import binary_targets
    import csv_target
    import text_targets
    return {t.name: t for t in csv_target.TARGETS + text_targets.TARGETS + binary_targets.TARGETS}


def save_case(name, case, error):
    """Write a failing case to fuzz/corpus/<target>/ (named by its hash); returns the path."""
    text = json.dumps(case, sort_keys=True)
    folder = os.path.join(HERE, "corpus", name)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, hashlib.sha1(text.encode()).hexdigest()[:16] + ".json")
    with open(path, "w") as f:
        json.dump({"target": name, "case": case, "error": relative(error)[:2000]}, f, indent=1, sort_keys=True)
        f.write("\n")
    return path


def relative(error):
    """`error` with the run's scratch directories named <workdir>, not this machine's paths."""
    return re.sub(re.escape(tempfile.gettempdir()) + r"/[^\s'\"]*/", "<workdir>/", error)


def signature(error):
    """A failure's kind: its first line with numbers and paths left out."""
    line = error.strip().splitlines()[0] if error.strip() else error
    return re.sub(r"\d+", "N", re.sub(r"/\S+", "PATH", line))[:160]


def _job(target, deadline, examples, coverage_dir):
    """The child's work: hypothesis runs over `target` until `deadline` or `examples`."""
    def job(log):
        from hypothesis import HealthCheck, Phase, given, settings
        cov = None
        if coverage_dir:
            try:
                import coverage
                cov = coverage.Coverage(data_file=os.path.join(coverage_dir, ".coverage"), data_suffix=True,
                                        include=[os.path.join(ROOT, p) for p in READERS])
                cov.start()
            except ImportError:
                cov = None
        tried = [0]
        workdir = tempfile.mkdtemp(prefix=f"fuzz-{target.name}-")
        current = {}

        def check(case):
            if time.time() > deadline + SHRINK_GRACE_S:
                return   # (past the time: every case passes, so that shrinking ends with what it has)
            tried[0] += 1
            current["case"] = case
            log.start({"target": target.name, "case": case})
            folder = tempfile.mkdtemp(dir=workdir)
            try:
                target.check(case, folder)
            except BaseException as e:
                log.done("fail", f"{type(e).__name__}: {e}")
                raise
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            log.done("ok")

        try:
            while time.time() < deadline and (examples is None or tried[0] < examples):
                batch = 200 if examples is None else max(1, min(200, examples - tried[0]))
                run = settings(max_examples=batch, deadline=None, database=None, derandomize=False,
                               suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
                               phases=[Phase.generate, Phase.shrink])(given(target.strategy)(check))
                try:
                    run()
                except BaseException as e:   # noqa: BLE001 - the shrunk failure: recorded
                    if isinstance(e, KeyboardInterrupt):
                        raise
                    log.note(failure=current.get("case"), error=f"{type(e).__name__}: {e}")
        finally:
            log.note(tried=tried[0])
            shutil.rmtree(workdir, ignore_errors=True)
            if cov is not None:
                cov.stop()
                cov.save()
    return job


def coverage_report(coverage_dir):
    try:
        import coverage
    except ImportError:
        return "line coverage: not measured (the coverage package is not installed)"
    cov = coverage.Coverage(data_file=os.path.join(coverage_dir, ".coverage"))
    cov.combine([coverage_dir])
    out = []
    total_run = total_statements = 0
    for path in sorted(cov.get_data().measured_files()):
        _, statements, _, missing, _ = cov.analysis2(path)
        run = len(statements) - len(missing)
        total_run += run
        total_statements += len(statements)
        out.append(f"  {os.path.relpath(path, ROOT):48s} {run:5d}/{len(statements):5d} "
                   f"{100.0 * run / max(len(statements), 1):5.1f}%")
    out.append(f"  {'all readers':48s} {total_run:5d}/{total_statements:5d} "
               f"{100.0 * total_run / max(total_statements, 1):5.1f}%")
    return "line coverage of the readers over the run (statements run / statements):\n" + "\n".join(out)


def main(argv=None):
    from fuzz_supervise import supervise
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--examples", type=int, default=None)
    ap.add_argument("--targets", default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--hang", type=float, default=60.0)
    ap.add_argument("--memory", type=float, default=4.0)
    ap.add_argument("--no-coverage", action="store_true")
    ns = ap.parse_args(argv)
    targets = all_targets()
    names = ns.targets.split(",") if ns.targets else list(targets)
    seconds = ns.seconds if ns.seconds is not None else (1e9 if ns.examples else 60.0)
    coverage_dir = None if ns.no_coverage else tempfile.mkdtemp(prefix="fuzz-coverage-")
    # the jobs run `workers` at a time: each one's deadline counts from when it can start
    t0 = time.time()
    rounds = [names[i:i + ns.workers] for i in range(0, len(names), ns.workers)]
    jobs = []
    for r, group in enumerate(rounds):
        for name in group:
            jobs.append(_job(targets[name], t0 + (r + 1) * seconds, ns.examples, coverage_dir))
    records, notes = supervise(jobs, ns.workers, ns.hang, int(ns.memory * (1 << 30)), with_notes=True)
    failed = False
    print(f"fuzz run: {len(names)} targets, {seconds:.0f} s each" if ns.examples is None else
          f"fuzz run: {len(names)} targets, {ns.examples} inputs each", f"({time.time() - t0:.0f} s in all)")
    for i, name in enumerate(names):
        mine = [r for r in records if r[0] == i]
        tried = len(mine)
        crashes = [(k, d) for _j, k, o, d in mine if o in ("CRASH", "HANG")]
        failures = {}
        for n in notes:
            if n["job"] == i and "failure" in n and n["failure"] is not None:
                failures.setdefault(signature(n["error"]), (n["failure"], n["error"]))
        for key, detail in crashes:
            failures.setdefault(detail, (key["case"], detail))
        print(f"{name:15s} inputs tried {tried:7d}   failures {len(failures)}   crashes/hangs {len(crashes)}")
        for sig, (case, error) in failures.items():
            failed = True
            path = save_case(name, case, error)
            print(f"    {sig}\n      -> {os.path.relpath(path, ROOT)}")
    if coverage_dir:
        print(coverage_report(coverage_dir))
        shutil.rmtree(coverage_dir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
