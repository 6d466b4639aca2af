"""Rows decoded once (h2odl_mpi.training.decoded_rows): the dense rows the C decoder writes
score and train to the FRAME rows' bits (numbers standardised, a categorical column's
one-hot units, missing values, input dropout); the budget keeps rows as FRAME rows past it
and counts what it keeps; a training run with its rows decoded gives the bits of one
without, and says in its summary how much it decoded."""
import json
import sys

import h5py
import numpy as np
import pytest

from h2odl_mpi.data.frame import Frame
from h2odl_mpi.data.preprocess import Preprocess
from h2odl_mpi.kernel import NetConfig, Network, Rows
from h2odl_mpi.training import decoded_rows
from h2odl_mpi.training.decoded_rows import DecodeBudget


def mixed_rows(autoencoder=False, n=130):
    rng = np.random.default_rng(7)
    data = {f"c{i}": np.where(rng.random(n) < 0.3, 0.0, rng.normal(2.0, 3.0, n)) for i in range(6)}
    data["c0"][[4, 9]] = np.nan
    data["cat"] = np.array([None if k % 11 == 0 else f"L{k % 4}" for k in range(n)], dtype=object)
    y = rng.integers(0, 3, n).astype(np.float64)
    if not autoencoder:
        data["y"] = y
    frame = Frame.from_arrays(data, chunk_rows=40)
    params = dict(autoencoder=True, standardize=True) if autoencoder else dict(response="y", standardize=True)
    rows = Preprocess.fit(frame, params).rows(frame)
    return Rows.from_source(rows.frame, y=None if autoencoder else y.astype(np.float32))


@pytest.mark.parametrize("activation,output", [("Rectifier", "softmax"), ("Tanh", "autoencoder")])
def test_decoded_rows_score_to_the_frame_rows_bits(activation, output):
    rows = mixed_rows(autoencoder=output == "autoencoder")
    n, n_in = rows.n_rows, rows.n_cols
    cfg = NetConfig(units=[n_in, 16, 3 if output == "softmax" else n_in], activation=activation,
                    output=output, loss="Quadratic")
    net = Network(cfg)
    buf = net.new_model(seed=5)
    budget = DecodeBudget(nbytes=4 * n * n_in)
    dense = budget.decoded(rows)
    assert rows.kind == "frame" and dense.kind == "dense" and dense.n_rows == n
    assert budget.used == 4 * n * n_in and budget.left == 0
    assert budget.decoded(dense) is dense
    for what in (["output", "loss"] if output == "softmax" else ["output", "recon"]):
        np.testing.assert_array_equal(net.predict(buf, dense, what=what), net.predict(buf, rows, what=what),
                                      err_msg=what)


def test_decoded_rows_train_to_the_frame_rows_bits():
    """The kernel trains (Hogwild! on one thread, mini-batches of 4, input dropout drawing
    for every input) to the same bits on FRAME rows and on the decoded rows."""
    rows = mixed_rows()
    cfg = NetConfig(units=[rows.n_cols, 16, 3], activation="Rectifier", output="softmax", loss="Quadratic",
                    input_dropout_ratio=0.2, mini_batch_size=4)
    net = Network(cfg)
    dense = DecodeBudget(nbytes=1 << 30).decoded(rows)
    order = np.random.default_rng(3).permutation(rows.n_rows)
    a, b = net.new_model(seed=5), net.new_model(seed=5)
    net.train(a, rows, order, threads=1, seed=9)
    net.train(b, dense, order, threads=1, seed=9)
    assert not np.array_equal(a, net.new_model(seed=5))
    np.testing.assert_array_equal(a, b)


def test_past_the_budget_rows_stay_frame_rows():
    rows = mixed_rows()
    budget = DecodeBudget(nbytes=4 * rows.n_rows * rows.n_cols - 1)
    assert budget.decoded(rows) is rows and budget.used == 0


def test_the_default_budget_shares_memory_among_the_nodes_ranks(monkeypatch):
    monkeypatch.setattr(decoded_rows, "memory_available", lambda: 64 << 20)
    monkeypatch.delenv("OMPI_COMM_WORLD_LOCAL_SIZE", raising=False)
    monkeypatch.delenv("SLURM_NTASKS_PER_NODE", raising=False)
    monkeypatch.setenv("MPI_LOCALNRANKS", "4")
    assert DecodeBudget().left == (64 << 20) // (decoded_rows.MEMORY_SHARE * 4)
    monkeypatch.delenv("MPI_LOCALNRANKS")
    assert DecodeBudget().left == (64 << 20) // decoded_rows.MEMORY_SHARE
    monkeypatch.setattr(decoded_rows, "memory_available", lambda: None)
    assert DecodeBudget().left == 0


def test_a_run_with_its_rows_decoded_gives_the_bits_of_one_without(tmp_path, monkeypatch):
    """The same training run (validation frame, scored every iteration) with no budget for
    decoded rows and with one: the same model and metrics; the summary counts the bytes.
    A run of one epoch decodes nothing."""
    from h2odl_mpi.training import trainer
    csv = tmp_path / "d.csv"
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 5))
    lines = ["a,b,c,d,e,cat,y"] + [",".join(f"{v:.4f}" for v in r) + f",k{i % 3},{'yes' if r[0] + r[1] > 0 else 'no'}"
                                   for i, r in enumerate(x)]
    csv.write_text("\n".join(lines) + "\n")
    runs = {}
    for name, budget in (("frame", 0), ("decoded", None)):
        if budget == 0:
            monkeypatch.setattr(decoded_rows, "memory_available", lambda: 0)
        else:
            monkeypatch.undo()
        model, summary = tmp_path / f"{name}.h5", tmp_path / f"{name}.json"
        from h2odl_mpi import cli
        assert cli.main(["train", "--train", str(csv), "--validation", str(csv), "--response", "y",
                         "--hidden", "8", "--epochs", "3", "--threads", "1", "--seed", "4",
                         "--score_each_iteration", "true", "--train_samples_per_iteration", "100",
                         "--model_out", str(model), "--summary-json", str(summary), "--quiet_mode", "true"]) == 0
        runs[name] = (model, json.loads(summary.read_text()))
    assert runs["frame"][1]["decoded_rows_bytes"] == 0
    # training and validation rows: 300 each of 9 inputs (5 numbers; 3 levels and a missing unit)
    assert runs["decoded"][1]["decoded_rows_bytes"] == 2 * 300 * 9 * 4
    one_epoch = tmp_path / "one.json"
    assert cli.main(["train", "--train", str(csv), "--validation", str(csv), "--response", "y", "--hidden", "8",
                     "--epochs", "1", "--threads", "1", "--summary-json", str(one_epoch), "--quiet_mode", "true"]) == 0
    assert json.loads(one_epoch.read_text())["decoded_rows_bytes"] == 0   # each row read once: not decoded
    assert runs["frame"][1]["metrics"] == runs["decoded"][1]["metrics"]
    with h5py.File(runs["frame"][0]) as a, h5py.File(runs["decoded"][0]) as b:
        names = []
        a["network"].visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        assert any("weight" in n for n in names)
        for n in names:
            np.testing.assert_array_equal(a["network"][n][()], b["network"][n][()], err_msg=n)


def test_rows_decode_to_the_same_bits_on_any_number_of_threads():
    """h2o_rows_expand decodes FRAME rows in blocks on the frame's threads: any thread count
    and any row order give one thread's rows."""
    rows = mixed_rows(n=517)
    one = rows.expand()
    assert one.shape == (517, rows.n_cols) and np.count_nonzero(one) > 0
    for threads in (2, 3, 8):
        np.testing.assert_array_equal(rows.expand(threads=threads), one)
    pick = np.random.default_rng(2).permutation(517)[:200]
    np.testing.assert_array_equal(rows.expand(pick, threads=3), one[pick])
