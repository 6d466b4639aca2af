"""Makes the H2O-3 Deep Learning MOJOs that tests/test_mojo.py imports (run once; the outputs
are kept as test data, so the tests never train with H2O-3).

Needs the `h2o` package of release 3.46.0.11 (the last whose open-source client exports
MOJOs) and Java.  Run from the repository root:
    .venv/bin/python tests/data/mojo/make_h2o_mojos.py
Writes, beside this script: train.csv and score.csv (small synthetic data: numbers with
missing values, a categorical column with missing values; score.csv also has a level that
train.csv lacks), and for each model kind h2o_<kind>.zip (the MOJO) and h2o_<kind>_pred.csv
(H2O-3's own predictions of score.csv).
"""
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def make_data(n, seed, unseen=False):
    """Columns x1, x2 (numbers, some NA), c1 (levels a..d, some NA; 'zz' unseen when asked),
    and the responses yb (2 classes), ym (3 classes), yr (a number)."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(2.0, 3.0, n)
    x2 = rng.uniform(-1, 5, n)
    c1 = rng.choice(list("abcd"), n).astype(object)
    effect = {"a": 0.0, "b": 1.0, "c": -1.0, "d": 0.5, "zz": 0.0}
    if unseen:
        c1[rng.random(n) < 0.1] = "zz"
    score = 0.6 * x1 - 0.8 * x2 + np.array([effect[c] for c in c1]) + rng.normal(0, 0.5, n)
    yb = np.where(score > np.median(score), "yes", "no")
    ym = np.array(["lo", "mid", "hi"])[np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))]
    yr = 3.0 * score + 10.0
    x1[rng.random(n) < 0.08] = np.nan
    x2[rng.random(n) < 0.08] = np.nan
    c1[rng.random(n) < 0.08] = None
    return dict(x1=x1, x2=x2, c1=c1, yb=yb, ym=ym, yr=yr)


def write_csv(path, cols):
    names = list(cols)
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        for i in range(len(cols[names[0]])):
            cells = []
            for k in names:
                v = cols[k][i]
                cells.append("" if v is None or (isinstance(v, float) and np.isnan(v)) else
                             (f"{v:.6g}" if isinstance(v, float) else str(v)))
            f.write(",".join(cells) + "\n")


def main():
    import h2o
    from h2o.estimators import H2ODeepLearningEstimator
    train_csv, score_csv = os.path.join(HERE, "train.csv"), os.path.join(HERE, "score.csv")
    write_csv(train_csv, make_data(300, 1))
    write_csv(score_csv, make_data(60, 2, unseen=True))
    h2o.init(nthreads=1, max_mem_size="1G")
    types = {"c1": "enum", "yb": "enum", "ym": "enum", "yr": "real"}
    train = h2o.import_file(train_csv, col_types=types)
    score = h2o.import_file(score_csv, col_types=types)
    kinds = {
        "binomial": dict(y="yb", activation="Tanh", hidden=[5]),
        "multinomial": dict(y="ym", activation="RectifierWithDropout", hidden=[6, 4],
                            hidden_dropout_ratios=[0.2, 0.1]),
        "regression": dict(y="yr", activation="Rectifier", hidden=[5], use_all_factor_levels=False),
        "autoencoder": dict(y=None, activation="Tanh", hidden=[3], autoencoder=True),
    }
    for kind, spec in kinds.items():
        spec = dict(spec)
        y = spec.pop("y")
        model = H2ODeepLearningEstimator(epochs=5, seed=1234, reproducible=True, **spec)
        model.train(x=["x1", "x2", "c1"], y=y, training_frame=train)
        path = model.download_mojo(path=HERE)
        os.replace(path, os.path.join(HERE, f"h2o_{kind}.zip"))
        pred = model.predict(score).as_data_frame(use_pandas=True)
        pred.to_csv(os.path.join(HERE, f"h2o_{kind}_pred.csv"), index=False, float_format="%.10g")
    h2o.cluster().shutdown()


if __name__ == "__main__":
    main()
