"""A classification data set with a known teacher network, for the rank benchmarks (not a test).

Each row is INPUTS standard normal inputs (written with 3 decimals) and a class: the argmax of
a fixed random teacher network's logits (INPUTS-32-32-10, tanh hidden layers, weights drawn
from the seed), replaced with probability `noise` by a class drawn uniformly.  The teacher's
label is then still the most likely class of every row, so the Bayes error is known:
noise x (K - 1) / K (4.5% at the default 5% noise and 10 classes); the teacher's own error on
the test file (the floor no model can beat, up to sampling) is measured and written too.
The output layer's biases are set so that the classes are about equally frequent.

Deterministic from (seed, rows, test rows, noise): rows are made and written in chunks of CHUNK
rows, each from its own random stream (the test file's apart from the training file's), so
memory stays bounded.  Files appear whole or not at all (written to a temporary name, then renamed).

    .venv/bin/python benchmarks/teacher_data.py [--out DIR] [--rows 1000000]
        [--test-rows 100000] [--seed 1] [--noise 0.05]

Writes DIR/train.csv.gz, DIR/test.csv.gz (header x01..x50,y; y the class 0..9) and
DIR/teacher.json (the settings and the floor).  DIR defaults to a folder in the system's
temporary directory; never write it into the package's datasets.
"""
import argparse
import gzip
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

INPUTS = 50
HIDDEN = (32, 32)
CLASSES = 10
CHUNK = 50_000
DECIMALS = 3
GAIN = 0.8          # pre-activation scale of the hidden layers: tanh partly non-linear (a student
                    # 50-64-64-10 reaches about 15% test error after 400,000 rows, the floor 4.5%)
RESPONSE = "y"
TRAIN, TEST, WEIGHTS, CALIBRATION = 1, 2, 3, 4  # the random streams, with the seed


def default_dir():
    """Where the files go when no folder is named: outside the project."""
    return Path(tempfile.gettempdir()) / "h2odl_mpi_teacher"


def columns():
    return [f"x{i + 1:02d}" for i in range(INPUTS)] + [RESPONSE]


def teacher(seed):
    """The teacher's layers, [(W, b), ...] in float64, from the seed alone."""
    rng = np.random.default_rng([seed, WEIGHTS])
    sizes = (INPUTS,) + HIDDEN + (CLASSES,)
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        w = rng.standard_normal((fan_in, fan_out)) * (GAIN / np.sqrt(fan_in))
        b = rng.standard_normal(fan_out) * 0.5
        layers.append((w, b))
    balance(layers, inputs(np.random.default_rng([seed, CALIBRATION]), 20_000))
    return layers


def balance(layers, x, rounds=20):
    """Shifts the output biases (in place) until the classes are about equally frequent on x."""
    w, b = layers[-1]
    h = hidden(layers, x) @ w
    for _ in range(rounds):
        counts = np.bincount(np.argmax(h + b, axis=1), minlength=CLASSES)
        b -= 0.5 * np.log(np.maximum(counts, 1) * CLASSES / len(x))


def inputs(rng, n):
    """n rows of inputs, rounded as the file holds them."""
    return np.round(rng.standard_normal((n, INPUTS)), DECIMALS)


def hidden(layers, x):
    """The last hidden layer's values."""
    for w, b in layers[:-1]:
        x = np.tanh(x @ w + b)
    return x


def logits(layers, x):
    w, b = layers[-1]
    return hidden(layers, x) @ w + b


def chunk(layers, seed, stream, index, n, noise):
    """Rows `index * CHUNK` on of a stream: (inputs, teacher's class, noisy class)."""
    rng = np.random.default_rng([seed, stream, index])
    x = inputs(rng, n)
    clean = np.argmax(logits(layers, x), axis=1)
    flip = rng.random(n) < noise
    noisy = np.where(flip, rng.integers(0, CLASSES, n), clean)
    return x, clean, noisy


def csv_text(x, y):
    """The rows as CSV text (no header)."""
    fmt = ",".join([f"%.{DECIMALS}f"] * INPUTS) + ",%d"
    table = np.concatenate([x, y[:, None]], axis=1)
    return "\n".join(fmt % tuple(row) for row in table.tolist()) + "\n"


def write(path, layers, seed, stream, rows, noise):
    """Writes `rows` rows of a stream to a gzip CSV; returns the teacher's error on them."""
    wrong = 0
    tmp = Path(f"{path}.tmp{os.getpid()}")
    try:
        with gzip.open(tmp, "wt", compresslevel=1, newline="") as f:
            f.write(",".join(columns()) + "\n")
            for index, start in enumerate(range(0, rows, CHUNK)):
                x, clean, noisy = chunk(layers, seed, stream, index, min(CHUNK, rows - start), noise)
                wrong += int(np.count_nonzero(clean != noisy))
                f.write(csv_text(x, noisy))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return wrong / rows


def settings(rows, test_rows, seed, noise):
    return {"rows": rows, "test_rows": test_rows, "seed": seed, "noise": noise, "inputs": INPUTS,
            "hidden": list(HIDDEN), "classes": CLASSES, "decimals": DECIMALS, "chunk": CHUNK}


def generate(out, rows=1_000_000, test_rows=100_000, seed=1, noise=0.05):
    """Writes the files into `out`; returns what teacher.json holds."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    layers = teacher(seed)
    t = time.time()
    train_error = write(out / "train.csv.gz", layers, seed, TRAIN, rows, noise)
    test_error = write(out / "test.csv.gz", layers, seed, TEST, test_rows, noise)
    meta = dict(settings(rows, test_rows, seed, noise), bayes_error=noise * (CLASSES - 1) / CLASSES,
                teacher_train_error=train_error, teacher_test_error=test_error,
                seconds=round(time.time() - t, 1))
    (out / "teacher.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def ensure(out, rows, test_rows, seed=1, noise=0.05):
    """The files in `out` for these settings, made when missing or made with others."""
    meta_path = Path(out) / "teacher.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if all(meta.get(k) == v for k, v in settings(rows, test_rows, seed, noise).items()):
            return meta
    return generate(out, rows, test_rows, seed, noise)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=default_dir(), help="folder for the files")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--test-rows", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--noise", type=float, default=0.05, help="probability that a label is drawn at random")
    args = ap.parse_args()
    if args.rows < 1 or args.test_rows < 1 or not 0 <= args.noise <= 1:
        ap.error("--rows and --test-rows must be positive, --noise in [0, 1]")
    meta = generate(args.out, args.rows, args.test_rows, args.seed, args.noise)
    print(f"{args.out}: {args.rows:,} training and {args.test_rows:,} test rows in {meta['seconds']}s; "
          f"Bayes error {100 * meta['bayes_error']:.2f}%, the teacher's test error (the floor) "
          f"{100 * meta['teacher_test_error']:.2f}%")


if __name__ == "__main__":
    main()
