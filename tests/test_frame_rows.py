"""FRAME rows: the kernel reading straight from the compressed column store.

The C decoder against the numpy transform for every chunk encoding (CONST, BITS with NA,
INT of 1/2/4 bytes, decimals, FLOAT32/64, SPARSE and MASKED with 0 and NA backgrounds,
several chunks per column); training from the store is bit-identical to training from the
same rows expanded into a dense float32 matrix (threads=1: numeric, categorical one-hot,
Binary, hashed, autoencoder, momentum, dropout), and so are predict and the one-row
gradient; weights and offsets reach the kernel; several threads and every ISA variant work.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from h2odl_mpi._kernel import ffi, lib
from h2odl_mpi.data.frame import Frame
from h2odl_mpi.kernel import NetConfig, Network, Rows
from h2odl_mpi.data.encodings import np_hash
from h2odl_mpi.data.preprocess import Preprocess
from isa_variants import cpu_runs

HERE = Path(__file__).parent


def encodings_frame(n=3000, chunk_rows=700, seed=0):
    """Columns built so that their chunks take every encoding (checked below)."""
    rng = np.random.default_rng(seed)
    spikes = np.where(rng.random(n) < 0.03, rng.integers(1, 200, n), 0).astype(float)
    dense_mask = np.where(rng.random(n) < 0.4, rng.integers(1, 9, n), 0).astype(float)
    na_bg = np.full(n, np.nan)
    na_bg[rng.random(n) < 0.05] = 2.5
    bits = rng.integers(0, 2, n).astype(float)
    bits[rng.random(n) < 0.1] = np.nan
    data = {
        "const": np.full(n, 3.0), "bits": bits,
        "int8": rng.integers(-50, 50, n).astype(float),
        "int16": rng.integers(0, 30000, n).astype(float),
        "int32": rng.integers(0, 2 ** 30, n).astype(float),
        "dec": np.round(rng.uniform(0, 10, n), 2),
        "f32": rng.normal(size=n).astype(np.float32).astype(float),
        "f64": rng.normal(size=n),
        "sparse0": spikes, "masked0": dense_mask, "sparse_na": na_bg,
        "int_na": np.where(rng.random(n) < 0.2, np.nan, rng.integers(0, 100, n).astype(float)),
        "cat": np.array([None if u < 0.1 else f"L{int(u * 7)}" for u in rng.random(n)], dtype=object),
        "y": rng.normal(size=n),
    }
    data["const"][:1] = 3.0
    return Frame.from_arrays(data, chunk_rows=chunk_rows), data


def test_every_encoding_decodes_like_python():
    frame, data = encodings_frame()
    labels = set()
    for c in frame.columns:
        labels |= {lbl.split(":")[0] if ":" in lbl else lbl for lbl in c.encoding_counts()}
        assert c.n_chunks > 1
    assert {"const", "bits", "int8", "int16", "int32", "f32", "f64", "sparse", "masked"} <= labels, labels
    assert any(lbl.startswith("dec") for lbl in labels)
    pre = Preprocess.fit(frame, dict(response="y", ignore_const_cols=False))
    rows = pre.rows(frame)
    x = rows.expand()
    np.testing.assert_array_equal(x, pre.expand(frame))
    for col in pre.columns:
        if col.kind != "numeric":
            continue
        v = frame.decode(col.name)
        want = np.where(np.isnan(v), np.float32(col.na_fill), ((v - col.sub) * col.mul).astype(np.float32))
        np.testing.assert_array_equal(x[:, col.input], want, err_msg=col.name)
    # random rows, in any order and repeated, decode the same (chunk lookup, SPARSE search,
    # MASKED prefix counts)
    order = np.random.default_rng(1).integers(0, frame.n_rows, 2000)
    np.testing.assert_array_equal(rows.expand(order), x[order])


def train_both(pre, frame, cfg, n=1500, seed=11, order_seed=2):
    rows = pre.rows(frame)
    dense = Rows.dense(pre.expand(frame), y=rows.y, weight=rows.weight, offset=rows.offset)
    net = Network(cfg)
    model = net.new_model(seed=seed)
    order = np.random.default_rng(order_seed).choice(rows.n_rows, size=min(n, rows.n_rows), replace=False)
    a, b = model.copy(), model.copy()
    sa = net.train(a, rows, order, samples_before=17, seed=seed, threads=1)
    sb = net.train(b, dense, order, samples_before=17, seed=seed, threads=1)
    return net, rows, dense, a, b, sa, sb


def assert_identical(net, rows, dense, a, b, sa, sb):
    assert sa == sb
    assert np.array_equal(a, b)
    assert not np.array_equal(a, net.new_model(seed=11)), "the model did not train"
    what = "recon" if net.config.output == "autoencoder" else "output"
    np.testing.assert_array_equal(net.predict(a, rows, what=what, threads=1),
                                  net.predict(a, dense, what=what, threads=1))
    if net.config.output != "autoencoder":
        np.testing.assert_array_equal(net.predict(a, rows, what="loss"), net.predict(a, dense, what="loss"))
    usable = rows.usable_rows()
    for r in usable[:3]:
        np.testing.assert_array_equal(net.gradient(a, rows, int(r)), net.gradient(a, dense, int(r)))


@pytest.fixture(scope="module")
def cal(data_dir):
    return Frame.read(str(data_dir / "cal_housing" / "cal_housing.csv"))


@pytest.fixture(scope="module")
def air(data_dir):
    return Frame.read(str(data_dir / "airlines" / "allyears2k_headers.csv.gz"))


AIR = dict(response="IsDepDelayed", ignored_columns=["IsArrDelayed", "ArrDelay", "DepDelay"])


def test_identical_dense_numeric_regression(cal):
    pre = Preprocess.fit(cal, dict(response="medianHouseValue"))
    cfg = NetConfig(units=[pre.n_inputs, 16, 8, 1], output="linear", activation="Tanh",
                    input_dropout_ratio=0.2, hidden_dropout_ratios=[0.1, 0.0])
    assert_identical(*train_both(pre, cal, cfg))


def test_identical_numeric_momentum_and_autoencoder(cal):
    pre = Preprocess.fit(cal, dict(response="medianHouseValue"))
    cfg = NetConfig(units=[pre.n_inputs, 12, 1], output="linear", adaptive_rate=False,
                    momentum_start=0.5, momentum_stable=0.9, momentum_ramp=500, l1=1e-4,
                    l2=1e-4, max_w2=5.0, fast_mode=False)
    assert_identical(*train_both(pre, cal, cfg))
    ae = Preprocess.fit(cal, dict(autoencoder=True))
    cfg = NetConfig(units=[ae.n_inputs, 5, ae.n_inputs], output="autoencoder", activation="Tanh",
                    input_dropout_ratio=0.1)
    assert_identical(*train_both(ae, cal, cfg))


@pytest.mark.parametrize("encoding", ["AUTO", "Binary", "LabelEncoder", "SortByResponse"])
def test_identical_categorical(air, encoding):
    pre = Preprocess.fit(air, dict(AIR, categorical_encoding=encoding, use_all_factor_levels=encoding != "SortByResponse"))
    cfg = NetConfig(units=[pre.n_inputs, 24, 12, 2], activation="Rectifier",
                    input_dropout_ratio=0.1, hidden_dropout_ratios=[0.2, 0.1])
    assert_identical(*train_both(pre, air, cfg))


def test_identical_hashed_categoricals(air):
    pre = Preprocess.fit(air, dict(AIR, max_categorical_features=97, seed=1234))
    hashed = [c for c in pre.columns if c.kind == "hashed"]
    assert len(hashed) == 5 and pre.n_inputs == len(pre.columns) - 5 + 97
    rows = pre.rows(air)
    x = rows.expand(np.arange(2000))
    np.testing.assert_array_equal(x, pre.expand(air, np.arange(2000)))
    region = x[:, hashed[0].input:]
    assert np.all(region.sum(axis=1) == 5)        # one active unit per column (NA included)
    assert (region > 1).any()                     # collisions add up
    assert lib.h2o_hash(12345, 99) == int(np_hash(12345, 99))
    cfg = NetConfig(units=[pre.n_inputs, 16, 2])
    assert_identical(*train_both(pre, air, cfg))


def test_weights_and_offsets_reach_the_kernel():
    rng = np.random.default_rng(4)
    n = 800
    data = {"a": rng.normal(size=n), "b": rng.integers(0, 5, n).astype(float),
            "w": np.where(rng.random(n) < 0.25, 0.0, rng.uniform(0.5, 2, n)),
            "off": rng.normal(size=n), "y": rng.normal(size=n)}
    frame = Frame.from_arrays(data)
    pre = Preprocess.fit(frame, dict(response="y", weights_column="w", offset_column="off"))
    cfg = NetConfig(units=[pre.n_inputs, 6, 1], output="linear")
    net, rows, dense, a, b, sa, sb = train_both(pre, frame, cfg, n=n)
    assert_identical(net, rows, dense, a, b, sa, sb)
    assert sa.skipped == int((data["w"] == 0).sum()) and sa.trained == n - sa.skipped
    # the offset is added to the output (link space, identity here)
    no_offset = Rows.dense(dense.x)
    diff = net.predict(a, rows)[:, 0] - net.predict(a, no_offset)[:, 0]
    np.testing.assert_allclose(diff, data["off"].astype(np.float32), rtol=1e-5, atol=1e-5)


def test_threads_and_refusals(air):
    pre = Preprocess.fit(air, AIR)
    rows = pre.rows(air)
    net = Network(NetConfig(units=[pre.n_inputs, 8, 2]))
    model = net.new_model(seed=1)
    p1 = net.predict(model, rows, threads=1)
    np.testing.assert_array_equal(net.predict(model, rows, threads=2), p1)
    np.testing.assert_array_equal(net.predict(model, rows, threads=3), p1)
    m = model.copy()
    st = net.train(m, rows, np.random.default_rng(0).integers(0, rows.n_rows, 3000), seed=3, threads=2)
    assert st.trained + st.skipped == 3000 and np.all(np.isfinite(m))
    # the C side refuses a frame whose scratch serves fewer threads than asked for
    keep = []
    stats = ffi.new("h2o_train_stats *")
    order = np.arange(10, dtype=np.int64)
    rc = lib.h2o_train(net._c, ffi.cast("float *", m.ctypes.data), net._workspace(2)[0], 2,
                       rows.to_c(keep, threads=1), ffi.cast("int64_t *", order.ctypes.data), 10,
                       0, 1, stats)
    assert rc == lib.H2O_EARG
    with pytest.raises(ValueError, match="rows must be in"):
        rows.expand([rows.n_rows])




@pytest.mark.parametrize("isa", ["baseline", "avx2"])
def test_other_isa_variants(isa):
    if os.environ.get("H2ODL_ISA"):
        pytest.skip("already running under H2ODL_ISA")
    if not cpu_runs(isa):
        pytest.skip(f"this CPU cannot run the {isa} variant")
    env = dict(os.environ, H2ODL_ISA=isa)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(Path(__file__)),
                        "-k", "every_encoding or dense_numeric or weights"],
                       env=env, capture_output=True, text=True, timeout=300, cwd=HERE)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "3 passed" in r.stdout


def test_a_frame_without_rows_scores_to_nothing():
    """A rank whose shard holds no rows (more ranks than rows) makes FRAME rows with no chunk
    in any column: they score to an empty result, not an error."""
    import numpy as np
    from h2odl_mpi.data.frame import Frame
    from h2odl_mpi.data.preprocess import Preprocess
    from h2odl_mpi.kernel import NetConfig, Network, Rows
    full = Frame.from_arrays({"a": np.arange(10.0), "y": np.arange(10.0) % 2}, chunk_rows=4)
    pre = Preprocess.fit(full, {"response": "y"})
    rows = pre.rows(Frame.from_arrays({"a": np.zeros(0), "y": np.zeros(0)}))
    net = Network(NetConfig(units=[pre.n_inputs, 3, 1], output="linear"))
    assert net.predict(net.new_model(seed=1), Rows.from_source(rows.frame)).shape == (0, 1)
