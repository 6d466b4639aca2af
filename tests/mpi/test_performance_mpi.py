"""model_performance, predict and evaluate on several ranks (pytest-mpi; run with 2 and 3
ranks): the metrics equal scikit-learn's on the gathered predictions and the one-process
metrics (tables exactly), on a distributed and on a replicated frame; distributed predict
writes the same bytes as one process, in the input's order, also from one .gz file that the
ranks read block by block in turn; evaluate's JSON is model_performance's.  Models are
trained once, on rank 0 alone; collective calls come before assertions."""
import gzip
import json
import math
import os
import shutil

import numpy as np
import pytest
from mpi4py import MPI
from sklearn import metrics as skm

from h2odl_mpi.evaluation.evaluate import evaluate_file
from h2odl_mpi.data.frame import Frame
from h2odl_mpi.model.model_io import load_model
from h2odl_mpi.params import validate
from h2odl_mpi.evaluation.performance import model_performance
from h2odl_mpi.evaluation.predict import predict_file, predict_frame
from h2odl_mpi.training.trainer import train

comm = MPI.COMM_WORLD
N = 301  # rows: uneven shares


def _write(path, n=N, seed=7):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    k = np.digitize(x[:, 0] + 0.4 * rng.normal(size=n), [-0.5, 0.5])
    yn = x[:, 0] + 0.5 * x[:, 1] + 0.7 * rng.normal(size=n) > 0
    with open(path, "w") as f:
        f.write("a,b,c,k,yn,r\n")
        for i in range(n):
            f.write(f"{x[i, 0]:.4f},{x[i, 1]:.4f},{x[i, 2]:.4f},{'ABC'[k[i]]},{'yes' if yn[i] else 'no'},"
                    f"{3 * x[i, 0] - x[i, 1] + 10:.4f}\n")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = comm.bcast(str(tmp_path_factory.mktemp("perf")) if comm.rank == 0 else None, root=0)
    paths = {"data": f"{tmp}/d.csv", "gz": f"{tmp}/big.csv.gz", "tmp": tmp}
    if comm.rank == 0:
        _write(paths["data"])
        _write(f"{tmp}/big.csv", n=4000)  # > 2 read blocks of 64 KiB: the ranks take them in turn
        with open(f"{tmp}/big.csv", "rb") as src, gzip.open(paths["gz"], "wb") as dst:
            shutil.copyfileobj(src, dst)
        for kind, extra in (("binomial", {"response": "yn", "ignored_columns": ["k", "r"]}),
                            ("multinomial", {"response": "k", "ignored_columns": ["yn", "r"]}),
                            ("regression", {"response": "r", "ignored_columns": ["k", "yn"]}),
                            ("autoencoder", {"autoencoder": True, "ignored_columns": ["k", "yn"]})):
            paths[kind] = f"{tmp}/{kind}.h5"
            train(validate(dict({"train": paths["data"], "hidden": [6], "epochs": 2, "seed": 1, "reproducible": True,
                                 "quiet_mode": True, "model_out": paths[kind]}, **extra)))
    return comm.bcast(paths if comm.rank == 0 else None, root=0)


def _scores(setup, kind, replicate=False):
    """(distributed ModelPerformance, one-process one, gathered predictions, labels)."""
    network, model, info, params, _ = load_model(setup[kind])
    frame = Frame.read(setup["data"], comm=comm, replicate=replicate)
    dist = model_performance(network, model, info, frame, comm, threads=1, params=params)
    _, values = predict_frame(network, model, info, frame, comm, threads=1, gather="all")
    serial = model_performance(network, model, info, Frame.read(setup["data"]), threads=1, params=params)
    return dist, serial, values, Frame.read(setup["data"]).decode(info.response or "r")


def _same(dist, serial, rel=1e-12):
    """Mismatches: tables exactly, other numbers to `rel`."""
    bad = []
    a, b = dist.as_dict(), serial.as_dict()
    for key in b:
        x, y = a.get(key), b[key]
        if isinstance(y, float):
            if not ((math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=rel, abs_tol=1e-15)):
                bad.append((key, x, y))
        elif x != y:
            bad.append(key)
    return bad + ([("keys", set(a) ^ set(b))] if set(a) != set(b) else [])


def _everywhere(ok):
    return comm.allreduce(int(bool(ok)), op=MPI.MIN) == 1


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("replicate", [False, True])
def test_binomial_across_ranks(setup, replicate):
    dist, serial, values, y = _scores(setup, "binomial", replicate)
    p1 = values[:, 2].astype(np.float64)
    t = dist.as_dict()["threshold"]
    table = dist.thresholds_and_metric_scores()
    rows = [table.cell_values[i] for i in (0, len(table) // 3, len(table) // 2, len(table) - 1)]
    # (logloss and rmse take p0 for class 0, scikit-learn 1 - p1: float32 softmax outputs
    # do not add up to 1 exactly)
    checks = [math.isclose(dist.auc(), skm.roc_auc_score(y, p1), rel_tol=1e-12),
              math.isclose(dist.logloss(), skm.log_loss(y, np.column_stack([1 - p1, p1])), rel_tol=1e-6),
              math.isclose(dist.rmse(), math.sqrt(skm.mean_squared_error(y, p1)), rel_tol=1e-6),
              math.isclose(dist.r2(), skm.r2_score(y, p1), rel_tol=1e-12),
              dist.confusion_matrix().to_list() == skm.confusion_matrix(y, p1 >= t).tolist(),
              dist.nobs() == N]
    for row in rows:  # spot checks of the thresholds table
        pred = p1 >= row[0]
        checks += [math.isclose(row[5], skm.precision_score(y, pred, zero_division=0), abs_tol=1e-12),
                   math.isclose(row[6], skm.recall_score(y, pred), abs_tol=1e-12)]
    same = _same(dist, serial)
    assert _everywhere(all(checks) and not same), (checks, same)


@pytest.mark.mpi(min_size=2)
def test_multinomial_and_regression_across_ranks(setup):
    dist, serial, values, y = _scores(setup, "multinomial")
    prob = values[:, 1:].astype(np.float64)
    prob = prob / prob.sum(1, keepdims=True)
    table = {r[0]: r[3] for r in dist.multinomial_auc_table().cell_values}
    checks = [math.isclose(table[label], skm.roc_auc_score(y, prob, multi_class=mc, average=avg),
                           rel_tol=1e-9)
              for label, mc, avg in (("Macro OVR", "ovr", "macro"), ("Weighted OVR", "ovr", "weighted"),
                                     ("Macro OVO", "ovo", "macro"), ("Weighted OVO", "ovo", "weighted"))]
    checks.append(dist.confusion_matrix().to_list() == skm.confusion_matrix(y, prob.argmax(1)).tolist())
    problems = _same(dist, serial)
    rdist, rserial, rvalues, ry = _scores(setup, "regression")
    f = rvalues[:, 0]
    checks += [math.isclose(rdist.rmse(), math.sqrt(skm.mean_squared_error(ry, f)), rel_tol=1e-12),
               math.isclose(rdist.r2(), skm.r2_score(ry, f), rel_tol=1e-12)]
    problems += _same(rdist, rserial)
    assert _everywhere(all(checks) and not problems), (checks, problems)


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("source", ["data", "gz"])
@pytest.mark.parametrize("kind, flags", [("binomial", {}), ("regression", {}), ("autoencoder", {}),
                                         ("autoencoder", {"anomaly": True, "per_feature": True}),
                                         ("multinomial", {"deepfeatures": 0})])
def test_distributed_predict_writes_the_serial_file(setup, source, kind, flags):
    tmp = setup["tmp"]
    out = f"{tmp}/{kind}-{source}-{len(flags)}-{comm.size}.csv"
    predict_file(setup[kind], setup[source], out, comm, threads=1, **flags)
    same = None
    if comm.rank == 0:
        predict_file(setup[kind], setup[source], out + ".serial", None, threads=1, **flags)
        with open(out, "rb") as a, open(out + ".serial", "rb") as b:
            same = a.read() == b.read()
    assert comm.bcast(same, root=0)


@pytest.mark.mpi(min_size=2)
def test_predict_frame_gathers_in_order(setup):
    network, model, info, _, _ = load_model(setup["regression"])
    frame = Frame.read(setup["data"], comm=comm)
    _, on_root = predict_frame(network, model, info, frame, comm, threads=1)
    _, everywhere = predict_frame(network, model, info, frame, comm, threads=1, gather="all")
    _, mine = predict_frame(network, model, info, frame, comm, threads=1, gather="none")
    parts = comm.allgather(mine)
    _, serial = predict_frame(network, model, info, Frame.read(setup["data"]), threads=1)
    ok = (on_root is None) == (comm.rank != 0) and np.array_equal(everywhere, serial) and \
        np.array_equal(np.concatenate(parts), serial) and (on_root is None or np.array_equal(on_root, serial))
    assert _everywhere(ok)


@pytest.mark.mpi(min_size=2)
def test_evaluate_json_is_model_performance(setup):
    out = f"{setup['tmp']}/e-{comm.size}.json"
    perf = evaluate_file(setup["binomial"], setup["data"], out, comm, threads=1, say=lambda text: None)
    network, model, info, params, _ = load_model(setup["binomial"])
    frame = Frame.read(setup["data"], comm=comm)
    again = model_performance(network, model, info, frame, comm, 1, params=params)
    written = comm.bcast(json.load(open(out)) if comm.rank == 0 else None, root=0)
    assert _everywhere(written == json.loads(perf.to_json()) == json.loads(again.to_json()))


@pytest.mark.mpi(min_size=2)
def test_a_failed_write_on_rank0_ends_every_rank_with_one_error(setup, monkeypatch):
    from h2odl_mpi.evaluation import predict
    from h2odl_mpi.errors import UserError
    out = f"{setup['tmp']}/fail-{comm.size}.csv"
    calls = []

    def failing_second_write(self, data):  # the disk fills up while the others' rows arrive
        calls.append(len(data))
        if len(calls) == 2:
            self._fail(OSError(28, "No space left on device"))
        return original(self, data)
    original = predict._Sink.write
    monkeypatch.setattr(predict._Sink, "write", failing_second_write)
    try:
        predict_file(setup["regression"], setup["data"], out, comm, threads=1)
        message = None
    except UserError as e:
        message = str(e)
    leftovers = [f for f in os.listdir(setup["tmp"]) if f.startswith(f"fail-{comm.size}")]
    everyone = comm.allgather(message)
    assert everyone[0] == f"--out {out}: cannot write: No space left on device", everyone
    assert all(m.endswith(everyone[0]) for m in everyone), everyone
    assert leftovers == []
