"""A short fuzz run of every reader, and the replay of every failing input ever found.

The targets (fuzz/csv_target.py, fuzz/text_targets.py, fuzz/binary_targets.py; their
docstrings state each property) are CSV, CSV bytes, SVMLight, SVMLight bytes, the TOML
config, grid files, Parquet tables, damaged Parquet files, damaged model / checkpoint /
ensemble files and the column store's chunk encodings.  Each property: the input reads as
the reference reader reads it, or is refused with one UserError naming the file; never
another exception.  Here each target runs a few dozen hypothesis examples, derandomized (the
same inputs on every run, so CI is deterministic); fuzz/run.py runs them for long, under a
memory bound and a hang watchdog, and writes what fails into fuzz/corpus/<target>/, which
test_corpus_case_holds replays (each case a regression test of a defect since fixed).
"""
import glob
import json
import os
import shutil
import sys
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "fuzz"))

import run as fuzz_run  # noqa: E402

TARGETS = fuzz_run.all_targets()
CORPUS = sorted(p for p in glob.glob(os.path.join(ROOT, "fuzz", "corpus", "*", "*.json"))
                if os.path.basename(os.path.dirname(p)) in TARGETS)


def short(examples):
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    report_multiple_bugs=False, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.large_base_example])


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_short_fuzz_run(name, tmp_path):
    target = TARGETS[name]

    @short(target.examples)
    @given(target.strategy)
    def run(case):
        folder = tempfile.mkdtemp(dir=tmp_path)
        try:
            target.check(case, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    run()


@pytest.mark.parametrize("path", CORPUS, ids=[os.path.relpath(p, os.path.join(ROOT, "fuzz", "corpus"))
                                              for p in CORPUS])
def test_corpus_case_holds(path, tmp_path):
    with open(path) as f:
        entry = json.load(f)
    TARGETS[entry["target"]].check(entry["case"], str(tmp_path))


def test_every_target_has_a_short_run_and_the_corpus_names_known_targets():
    assert set(TARGETS) == {"csv", "csv_bytes", "svmlight", "svmlight_bytes", "config", "grid", "parquet",
                            "parquet_bytes", "model_bytes", "chunks"}
    folders = {os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "fuzz", "corpus", "*"))}
    assert folders <= set(TARGETS) | {"model_offsets"}
