"""H2O-3 MOJOs out and in, checked by the real runtime: h2o-genmodel's PredictCsv (the jar of
the `h2o` package, requirements-interop.txt) scores an exported MOJO as `predict` does, for a
binomial, a multinomial, a regression and an autoencoder model, on rows with missing
numbers, missing levels and a level the training data lacks; MOJOs made by H2O-3 itself
(tests/data/mojo, made by make_h2o_mojos.py there) score here as H2O-3 scored them, and
training continues from one.

Tolerances (float32 arithmetic here, double in genmodel): class probabilities within 1e-5
(measured: at most 2.1e-7), regression values and reconstructions within 1e-5 relative
(measured: at most 1.6e-7 relative); the same for H2O-3's MOJOs against H2O-3's predictions.
"""
import csv
import importlib.util
import json
import math
import os
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from h2odl_mpi.cli import main
from h2odl_mpi.model.model_io import load_model
from h2odl_mpi.model.mojo_format import parse_ini

DATA = Path(__file__).parent / "data" / "mojo"
TRAIN, SCORE = str(DATA / "train.csv"), str(DATA / "score.csv")
PROB_TOL = 1e-5
REL_TOL = 1e-5
KINDS = {   # kind: train flags (the three responses yb, ym, yr; x1, x2, c1 the inputs)
    "binomial": ["--response", "yb", "--ignored_columns", "ym,yr", "--activation", "Tanh", "--hidden", "5"],
    "multinomial": ["--response", "ym", "--ignored_columns", "yb,yr", "--activation", "MaxoutWithDropout",
                    "--hidden", "6,4", "--hidden_dropout_ratios", "0.2,0.1"],
    "regression": ["--response", "yr", "--ignored_columns", "yb,ym", "--activation", "RectifierWithDropout",
                   "--hidden", "5", "--use_all_factor_levels", "false"],
    "autoencoder": ["--autoencoder", "true", "--ignored_columns", "yb,ym,yr", "--activation", "Tanh",
                    "--hidden", "3"],
}


def genmodel_jar():
    """h2o-genmodel: the jar the `h2o` package ships (a missing package is a failure)."""
    spec = importlib.util.find_spec("h2o")
    assert spec is not None, "the h2o package is not installed: pip install -r requirements-interop.txt"
    jar = Path(spec.origin).parent / "backend" / "bin" / "h2o.jar"
    assert jar.is_file(), jar
    return str(jar)


def predict_csv(mojo, data, out):
    """genmodel's PredictCsv: {column: values}, numbers as floats."""
    subprocess.run(["java", "-cp", genmodel_jar(), "hex.genmodel.tools.PredictCsv", "--mojo", str(mojo),
                    "--input", str(data), "--output", str(out), "--decimal"], check=True, capture_output=True)
    return read_columns(out)


def read_columns(path):
    rows = list(csv.reader(open(path)))
    cols = {}
    for j, name in enumerate(rows[0]):
        values = [r[j] for r in rows[1:]]
        try:
            cols[name] = np.array([float(v) if v != "" else math.nan for v in values])
        except ValueError:
            cols[name] = np.array(values, dtype=object)
    return cols


def ours(model, data, out):
    assert main(["predict", "--model", str(model), "--data", str(data), "--out", str(out)]) == 0
    return read_columns(out)


def train_and_export(d, seed, option, suffix):
    """kind -> (model file, its export by `option` (--mojo, --onnx)): each kind trained on
    TRAIN into directory d."""
    out = {}
    for kind, flags in KINDS.items():
        h5, exported = d / f"{kind}.h5", d / f"{kind}.{suffix}"
        assert main(["train", "--train", TRAIN, *flags, "--epochs", "3", "--seed", str(seed), "--reproducible", "true",
                     "--quiet_mode", "true", "--model_out", str(h5)]) == 0
        assert main(["export", "--model", str(h5), option, str(exported)]) == 0
        out[kind] = (h5, exported)
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """kind -> (model file, its exported MOJO)."""
    return train_and_export(tmp_path_factory.mktemp("mojo"), 5, "--mojo", "zip")


def test_score_rows_hold_what_the_checks_need():
    cols = read_columns(SCORE)
    assert np.isnan(cols["x1"]).any() and np.isnan(cols["x2"]).any()
    assert "" in set(cols["c1"]) and "zz" in set(cols["c1"])
    assert "zz" not in set(read_columns(TRAIN)["c1"])


def assert_same_classes(g, o, domain, threshold=None):
    pg = np.column_stack([g[c] for c in domain])
    po = np.column_stack([o[f"p{c}"] for c in domain])
    assert np.abs(pg - po).max() <= PROB_TOL
    near = np.abs(po[:, -1] - threshold) < PROB_TOL if threshold is not None else np.zeros(len(po), bool)
    assert all(a == b for a, b, n in zip(g["predict"], o["predict"], near) if not n)


@pytest.mark.parametrize("kind", list(KINDS))
def test_genmodel_scores_the_exported_mojo_as_predict(models, kind, tmp_path):
    h5, zp = models[kind]
    g = predict_csv(zp, SCORE, tmp_path / "g.csv")
    o = ours(h5, SCORE, tmp_path / "o.csv")
    _network, _model, info, _params, attrs = load_model(h5)
    if kind in ("binomial", "multinomial"):
        ini = parse_ini(zipfile.ZipFile(zp).read("model.ini").decode())[0]
        threshold = float(ini["default_threshold"]) if kind == "binomial" else None
        assert_same_classes(g, o, info.domain, threshold)
    elif kind == "regression":
        assert np.abs(g["predict"] - o["predict"]).max() <= REL_TOL * np.abs(o["predict"]).max()
    else:
        check_reconstruction(g, o, info, h5, tmp_path)


def check_reconstruction(g, o, info, h5, tmp_path):
    """Equal on rows without a missing number; on the others as predict on those rows with
    each missing number replaced by the centre of its normalisation (what the MOJO fills)."""
    assert set(g) == set(o)
    x = read_columns(SCORE)
    missing = np.isnan(x["x1"]) | np.isnan(x["x2"])
    for name in g:
        scale = max(1.0, np.abs(o[name]).max())
        assert np.abs(g[name] - o[name])[~missing].max() <= REL_TOL * scale, name
    centre = {c.name: c.sub for c in info.columns if c.kind == "numeric"}
    rows = list(csv.reader(open(SCORE)))
    for r in rows[1:]:
        for j, name in enumerate(rows[0]):
            if name in centre and r[j] == "":
                r[j] = repr(centre[name])
    filled = tmp_path / "filled.csv"
    csv.writer(open(filled, "w", newline="")).writerows(rows)
    f = ours(h5, filled, tmp_path / "f.csv")
    for name in g:
        scale = max(1.0, np.abs(f[name]).max())
        assert np.abs(g[name] - f[name]).max() <= REL_TOL * scale, name
        assert not np.allclose(o[name][missing], f[name][missing]) or name.startswith("reconstr_c1")


@pytest.mark.parametrize("kind", list(KINDS))
def test_an_exported_mojo_reads_back_as_the_same_model(models, kind, tmp_path):
    h5, zp = models[kind]
    a, b = ours(h5, SCORE, tmp_path / "a.csv"), ours(zp, SCORE, tmp_path / "b.csv")
    assert list(a) == list(b)
    x = read_columns(SCORE)
    rows = ~(np.isnan(x["x1"]) | np.isnan(x["x2"])) if kind == "autoencoder" else slice(None)  # (see above)
    for name in a:
        if a[name].dtype == object:
            assert list(a[name]) == list(b[name])
        else:
            assert np.abs(a[name] - b[name])[rows].max() <= 1e-5 * max(1.0, np.abs(a[name]).max()), name


def test_what_a_mojo_cannot_express_is_refused_and_nothing_written(tmp_path, capsys):
    h5, zp = tmp_path / "bin.h5", tmp_path / "bin.zip"
    assert main(["train", "--train", TRAIN, *KINDS["binomial"], "--categorical_encoding", "Binary",
                 "--epochs", "1", "--quiet_mode", "true", "--model_out", str(h5)]) == 0
    capsys.readouterr()
    assert main(["export", "--model", str(h5), "--mojo", str(zp)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "categorical_encoding=Binary" in err and "'c1'" in err
    assert not zp.exists() and os.listdir(tmp_path) == ["bin.h5"]
    assert main(["export", "--model", str(h5)]) == 2
    assert "--mojo" in capsys.readouterr().err


# ----------------------------------------------------------------- MOJOs made by H2O-3

H2O_KINDS = ("binomial", "multinomial", "regression", "autoencoder")


@pytest.mark.parametrize("kind", H2O_KINDS)
def test_an_h2o_mojo_scores_here_as_h2o_scored_it(kind, tmp_path):
    h = read_columns(DATA / f"h2o_{kind}_pred.csv")
    o = ours(DATA / f"h2o_{kind}.zip", SCORE, tmp_path / "o.csv")
    if kind in ("binomial", "multinomial"):
        domain = [c for c in h if c != "predict"]
        assert_same_classes(h, o, domain)
    elif kind == "regression":
        assert np.abs(h["predict"] - o["predict"]).max() <= REL_TOL * np.abs(h["predict"]).max()
    else:
        assert set(h) == set(o)
        for name in h:
            assert np.abs(h[name] - o[name]).max() <= REL_TOL * max(1.0, np.abs(h[name]).max()), name


def test_evaluate_an_h2o_mojo(tmp_path):
    out = tmp_path / "perf.json"
    assert main(["evaluate", "--model", str(DATA / "h2o_binomial.zip"), "--data", SCORE, "--json", str(out)]) == 0
    perf = json.loads(out.read_text())
    h, y = read_columns(DATA / "h2o_binomial_pred.csv"), read_columns(SCORE)["yb"]
    p_true = np.where(y == "yes", h["yes"], h["no"])
    logloss = float(np.mean(-np.log(p_true)))
    found = [v for k, v in flatten(perf) if k.lower() == "logloss"]
    assert found and all(math.isclose(v, logloss, rel_tol=1e-5) for v in found)


def flatten(d, prefix=""):
    for k, v in (d.items() if isinstance(d, dict) else ()):
        if isinstance(v, dict):
            yield from flatten(v, k)
        else:
            yield k, v


def test_training_continues_from_an_h2o_mojo(tmp_path, capsys):
    mojo, h5 = DATA / "h2o_binomial.zip", tmp_path / "more.h5"
    assert main(["train", "--train", TRAIN, "--response", "yb", "--ignored_columns", "ym,yr", "--hidden", "5",
                 "--activation", "Tanh", "--epochs", "1", "--seed", "3", "--checkpoint", str(mojo),
                 "--model_out", str(h5)]) == 0
    first = capsys.readouterr().out.splitlines()[:3]
    assert any("H2O-3 MOJO" in line and "optimizer state" in line and "starts fresh" in line for line in first)
    net0, m0, _i, _p, _a = load_model(str(mojo))
    net1, m1, _i, _p, attrs = load_model(str(h5))
    w0, w1 = net0.view(m0, "weights", 0), net1.view(m1, "weights", 0)
    assert w0.shape == w1.shape and 0 < np.abs(w0 - w1).max() < 1.0   # trained on from it, not afresh
    assert attrs["epochs"] == pytest.approx(1.0)


def test_the_estimator_loads_an_h2o_mojo_and_downloads_its_own(tmp_path):
    from h2odl_mpi import h2o
    est = h2o.load_model(str(DATA / "h2o_binomial.zip"))
    pred = est.predict(SCORE)
    h = read_columns(DATA / "h2o_binomial_pred.csv")
    assert np.abs(np.asarray(pred.iloc[:, -1], float) - h["yes"]).max() <= PROB_TOL
    assert list(pred["predict"]) == list(h["predict"])
    path = est.download_mojo(str(tmp_path))
    assert path == str(tmp_path / "h2o_binomial.zip")
    again = h2o.load_model(path).predict(SCORE)
    assert np.abs(np.asarray(again.iloc[:, -1], float) - h["yes"]).max() <= PROB_TOL
    with pytest.raises(Exception, match="exists"):
        est.save_mojo(str(tmp_path), filename="h2o_binomial.zip")


def test_report_of_an_h2o_mojo(tmp_path):
    out = tmp_path / "r.html"
    assert main(["report", "--model", str(DATA / "h2o_multinomial.zip"), "-o", str(out)]) == 0
    page = out.read_text()
    assert "ym" in page and "RectifierWithDropout" in page


# ----------------------------------------------------------------- H2O-3 itself loads an export

def free_port_pair():
    """A port p with p and p + 1 free (H2O-3 listens on both)."""
    import socket
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise AssertionError("no two free neighbouring ports")


def test_h2o_loads_an_exported_mojo_and_agrees_with_evaluate(models, tmp_path):
    """One H2O-3 server (its own port, started and shut down here: about 20 s on 2 cores):
    upload_mojo of the exported binomial and regression MOJOs, model_performance on the
    scoring rows against `evaluate`."""
    import h2o
    h2o.init(ip="127.0.0.1", port=free_port_pair(), nthreads=1, max_mem_size="1G", ice_root=str(tmp_path),
             verbose=False)
    try:
        frame = h2o.import_file(SCORE, col_types={"c1": "enum", "yb": "enum", "ym": "enum", "yr": "real"})
        for kind, metrics in (("binomial", ("auc", "logloss", "rmse")), ("regression", ("rmse", "mae"))):
            h5, zp = models[kind]
            perf = h2o.upload_mojo(str(zp)).model_performance(frame)
            out = tmp_path / f"{kind}.json"
            assert main(["evaluate", "--model", str(h5), "--data", SCORE, "--json", str(out)]) == 0
            ours_perf = json.loads(out.read_text())
            for name in metrics:
                assert math.isclose(getattr(perf, name)(), ours_perf[name], rel_tol=1e-5), (kind, name)
    finally:
        h2o.cluster().shutdown()


def _rewritten(src, dst, edit):
    """A copy of MOJO `src` at `dst` with model.ini passed through edit(text)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "model.ini":
                data = edit(data.decode()).encode()
            zout.writestr(item, data)
    return str(dst)


def test_a_mojo_whose_sizes_lie_is_refused_before_the_network_is_made(tmp_path, capsys):
    import re
    src = DATA / "h2o_regression.zip"
    huge = _rewritten(src, tmp_path / "huge.zip", lambda t: re.sub(
        r"neural_network_sizes = \[(\d+), *(\d+)", r"neural_network_sizes = [\1, 4000000000", t))
    code = main(["predict", "--model", huge, "--data", SCORE, "--out", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "huge.zip: " in err[0] and "weight_layer0 holds" in err[0], err
    assert not (tmp_path / "p.csv").exists()
    cut = _rewritten(src, tmp_path / "cut.zip", lambda t: re.sub(r"(bias_layer0 = \[)[^,\]]*,", r"\1", t))
    code = main(["predict", "--model", cut, "--data", SCORE, "--out", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cut.zip: " in err[0], err


@pytest.mark.parametrize("kind", ["regression", "multinomial"])
def test_every_sampled_byte_of_an_h2o_mojo_loads_the_same_model_or_is_refused(kind):
    """A changed byte of a MOJO (XOR 0xFF at 1,500 offsets: the first 1,000 and a stride over
    the rest) loads the same network and weights (a byte of a member the reader does not
    use) or is refused in one line: never another exception, never a different model."""
    from h2odl_mpi.errors import UserError
    data = (DATA / f"h2o_{kind}.zip").read_bytes()
    ref = load_model("m.zip", data)
    offsets = sorted(set(range(min(1000, len(data)))) | set(range(1000, len(data), max(1, (len(data) - 1000) // 500))))
    outcomes = {}
    for off in offsets:
        damaged = bytearray(data)
        damaged[off] ^= 0xFF
        try:
            got = load_model("m.zip", bytes(damaged))
        except UserError as e:
            assert str(e).startswith("m.zip: ") and "\n" not in str(e)
            outcomes["refused"] = outcomes.get("refused", 0) + 1
            continue
        assert got[0].units == ref[0].units and np.array_equal(got[1], ref[1]), off
        outcomes["same"] = outcomes.get("same", 0) + 1
    assert outcomes.get("refused", 0) > 100, outcomes
