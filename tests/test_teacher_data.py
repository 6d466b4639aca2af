"""The teacher-network data generator of the rank benchmarks (benchmarks/teacher_data.py):
deterministic from its seed, the columns and rows asked for, and every label the argmax of the
teacher's logits (a forward pass written out here in plain numpy, on the values as the file
holds them) except the noisy ones, whose share is the floor teacher.json states."""
import gzip
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import teacher_data  # noqa: E402


def read(path):
    """(header, inputs, labels) of a generated gzip CSV."""
    with gzip.open(path, "rt") as f:
        header = f.readline().strip().split(",")
        table = np.loadtxt(f, delimiter=",", ndmin=2)
    return header, table[:, :-1], table[:, -1].astype(int)


def teacher_classes(seed, x):
    """The teacher's class of each row: tanh hidden layers, argmax of the output layer."""
    layers = teacher_data.teacher(seed)
    h = x
    for w, b in layers[:-1]:
        h = np.tanh(h @ w + b)
    w, b = layers[-1]
    return np.argmax(h @ w + b, axis=1)


def test_the_files_have_the_rows_and_columns_asked_for(tmp_path):
    meta = teacher_data.generate(tmp_path, rows=300, test_rows=120, seed=3)
    header, x, y = read(tmp_path / "train.csv.gz")
    assert header == [f"x{i:02d}" for i in range(1, 51)] + ["y"]
    assert x.shape == (300, 50) and y.shape == (300,)
    assert read(tmp_path / "test.csv.gz")[1].shape == (120, 50)
    assert set(np.unique(y)) <= set(range(10)) and len(np.unique(y)) > 5
    assert json.loads((tmp_path / "teacher.json").read_text()) == meta
    assert meta["bayes_error"] == 0.05 * 9 / 10


def test_the_same_seed_gives_the_same_rows_and_another_seed_others(tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        teacher_data.generate(tmp_path / name, rows=200, test_rows=50, seed=seed)
    a, b, c = (read(tmp_path / n / "train.csv.gz") for n in "abc")
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])
    assert not np.array_equal(a[1], c[1])


def test_without_noise_every_label_is_the_teachers_class(tmp_path):
    meta = teacher_data.generate(tmp_path, rows=400, test_rows=300, seed=5, noise=0.0)
    for name in ("train.csv.gz", "test.csv.gz"):
        _, x, y = read(tmp_path / name)
        assert np.array_equal(y, teacher_classes(5, x))
    assert meta["teacher_test_error"] == 0.0


def test_the_stated_floor_is_the_share_of_labels_the_teacher_gets_wrong(tmp_path):
    meta = teacher_data.generate(tmp_path, rows=100, test_rows=2000, seed=7, noise=0.2)
    _, x, y = read(tmp_path / "test.csv.gz")
    wrong = np.mean(y != teacher_classes(7, x))
    assert wrong == meta["teacher_test_error"]
    assert abs(wrong - 0.2 * 0.9) < 0.04  # 4.6 binomial standard deviations at 2,000 rows


def test_ensure_keeps_matching_files_and_remakes_others(tmp_path):
    teacher_data.ensure(tmp_path, rows=100, test_rows=50, seed=1)
    first = (tmp_path / "train.csv.gz").stat().st_mtime_ns
    teacher_data.ensure(tmp_path, rows=100, test_rows=50, seed=1)
    assert (tmp_path / "train.csv.gz").stat().st_mtime_ns == first
    teacher_data.ensure(tmp_path, rows=150, test_rows=50, seed=1)
    assert read(tmp_path / "train.csv.gz")[1].shape == (150, 50)
