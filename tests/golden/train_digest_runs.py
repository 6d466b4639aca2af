"""Fixed-seed, one-thread training runs whose model bytes tests/test_train_digest.py compares
with stored digests: a change that should not touch the math (a refactoring) must leave
every bit alone.  Run as a script it prints each run's digest (to refresh the stored ones
after an intended change of the math, which the commit must say).

The data is made here (no files): numeric columns with NAs, a small and a large
categorical column, a regression and a classification response."""
import hashlib
import json
import os
import sys

import numpy as np

RUNS = {
    "classify_onehot": dict(response="cls", hidden=[7, 5], epochs=2),
    "classify_binary_tanh": dict(response="cls", hidden=[6], epochs=1.5, activation="TanhWithDropout",
                                 categorical_encoding="Binary", input_dropout_ratio=0.1),
    "classify_label_maxout": dict(response="cls", hidden=[4, 4], epochs=1, activation="Maxout",
                                  categorical_encoding="LabelEncoder", adaptive_rate=False,
                                  momentum_start=0.5, momentum_stable=0.9, l1=1e-5, l2=1e-4),
    "classify_hashed_exprect": dict(response="cls", hidden=[5], epochs=1, activation="ExpRectifier",
                                    max_categorical_features=8, max_w2=10.0),
    "regress_sortbyresponse": dict(response="num", hidden=[6], epochs=2, categorical_encoding="SortByResponse",
                                   ignored_columns=["cls"]),
    "regress_onehot_poisson": dict(response="count", hidden=[5], epochs=1, categorical_encoding="OneHotInternal", use_all_factor_levels=False,
                                  distribution="poisson", ignored_columns=["cls", "num"]),
    "autoencoder": dict(autoencoder=True, hidden=[3], epochs=2, ignored_columns=["cls", "num", "count"]),
}


def write_data(path, n=600, seed=7):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.uniform(-2, 3, size=n)
    small = rng.choice(["red", "green", "blue"], size=n)
    big = np.array([f"k{v}" for v in rng.integers(0, 40, size=n)])
    logit = 1.5 * a - b + (small == "red") - 0.5
    cls = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    num = 2 * a + b ** 2 + (small == "blue") * 3 + rng.normal(scale=0.3, size=n)
    count = rng.poisson(np.exp(0.3 * a + 0.2 * b))
    with open(path, "w") as f:
        f.write("a,b,small,big,cls,num,count\n")
        for i in range(n):
            av = "" if i % 37 == 5 else f"{a[i]:.5f}"
            sv = "" if i % 53 == 7 else small[i]
            f.write(f"{av},{b[i]:.5f},{sv},{big[i]},{cls[i]},{num[i]:.5f},{count[i]}\n")


def digest(name, path):
    from h2odl_mpi.params import validate
    from h2odl_mpi.training.trainer import train
    p = dict(RUNS[name], train=path, seed=11, threads=1, quiet_mode=True, score_interval=0,
             variable_importances=False)
    run = train(validate(p), None)
    model = run.model
    return hashlib.sha256(np.ascontiguousarray(model).tobytes()).hexdigest()[:16]


if __name__ == "__main__":
    os.environ.setdefault("H2ODL_ISA", "baseline")
    path = sys.argv[1]
    write_data(path)
    print(json.dumps({name: digest(name, path) for name in RUNS}, indent=1, sort_keys=True))
