"""The roofline benchmark's per-row counts (benchmarks/roofline.py) against hand-computed numbers
for a tiny 8-4-3 network.  No timing: only the counting model.

Hand count, Rectifier, ADADELTA, dense row (8 non-zero inputs), 2 of 4 hidden units active:
  layer 0 (8 -> 4): dense path (4 * 8 >= 8); forward 2*4*8 dot + 4 bias + 4 activations
    (f and the dropout scale: 2 each) = 76;
    update of the 2 active rows: 2 rows * 8 weights * 32 (1 g*a + 4 l1/l2 + 27 ADADELTA)
    + 2 biases * 30 = 572; bytes: forward reads 4*(32 + 4) = 144, update reads and writes
    W, Edx2, Eg2 of 2 rows of 8 weights + bias: 2 * 4 * 3 * 2 * 9 = 432
  layer 1 (4 -> 3): 2 non-zero inputs, dense path (4 * 2 >= 4); forward 2*3*4 + 3 bias
    + softmax 6*3 + 2 = 47; backward e_prev over 3 rows * 4 inputs * 2 = 24 (Rectifier f' is a
    copy: 0); update 3*4*32 + 3*30 = 474; bytes: 4*(12 + 3) = 60 read, 24 * 3 * 5 = 360 rmw
  total 1193 flops, 996 bytes.
"""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.roofline import (  # noqa: E402
    counts_from_activity, fits_in, flops_and_bytes_per_row, gather_path, layer_counts,
    memory_roof, model_footprint_bytes, roof)


def tiny(**kw):
    args = dict(hidden=[4], activation="Rectifier", adaptive_rate=True, input_nnz=8,
                active_fraction=0.5, n_inputs=8, n_outputs=3)
    args.update(kw)
    return flops_and_bytes_per_row(**args)


def test_dense_rectifier_adadelta_by_hand():
    c = tiny()
    l0, l1 = c["layers"]
    assert (l0["path"], l1["path"]) == ("dense", "dense")
    assert (l0["flops_forward"], l0["flops_backward"], l0["flops_update"]) == (76, 0, 572)
    assert (l0["bytes_read"], l0["bytes_rmw"]) == (144, 432)
    assert (l1["flops_forward"], l1["flops_backward"], l1["flops_update"]) == (47, 24, 474)
    assert (l1["bytes_read"], l1["bytes_rmw"]) == (60, 360)
    assert c["flops"] == 1193
    assert (c["flops_forward"], c["flops_backward"], c["flops_update"]) == (123, 24, 1046)
    assert c["bytes"] == 996
    assert c["ai"] == pytest.approx(1193 / 996)


def test_sparse_input_takes_the_gather_path():
    # 1 non-zero input of 8: 4 * 1 < 8, only that input's weights are read and updated
    l0 = tiny(input_nnz=1)["layers"][0]
    assert l0["path"] == "gather"
    assert l0["flops_forward"] == 2 * 4 * 1 + 4 + 2 * 4
    assert l0["flops_update"] == 2 * 1 * 32 + 2 * 30
    assert l0["bytes_read"] == 4 * (4 * 1 + 4)
    assert l0["bytes_rmw"] == 24 * 2 * (1 + 1)
    # the threshold is strict: 2 of 8 inputs (4 * 2 == 8) stays on the dense path
    assert not gather_path(2, 8) and gather_path(1.99, 8)
    assert tiny(input_nnz=2)["layers"][0]["flops_forward"] == 76


def test_tanh_updates_every_unit_and_pays_its_derivative():
    c = tiny(activation="Tanh", active_fraction=1.0)
    l0, l1 = c["layers"]
    assert l0["flops_update"] == 4 * 8 * 32 + 4 * 30
    assert l0["bytes_rmw"] == 24 * 4 * 9
    assert l1["flops_backward"] == 2 * 3 * 4 + 3 * 4  # e_prev, then e (1 - a^2) per unit
    assert c["flops"] == 76 + 1144 + 47 + 36 + 474


def test_momentum_and_sgd_state():
    nes = tiny(adaptive_rate=False)  # Nesterov momentum: one state array, 9 flops a weight
    assert nes["optimizer"] == "nesterov"
    assert nes["layers"][0]["flops_update"] == 2 * 8 * 9 + 2 * 9
    assert nes["layers"][0]["bytes_rmw"] == 2 * 4 * 2 * 2 * 9
    assert nes["layers"][1]["bytes_rmw"] == 16 * 3 * 5
    sgd = tiny(adaptive_rate=False, momentum=False)  # no state: 7 flops a weight
    assert sgd["optimizer"] == "sgd"
    assert sgd["layers"][1]["flops_update"] == 3 * 4 * 7 + 3 * 7
    assert sgd["layers"][1]["bytes_rmw"] == 8 * 3 * 5


def test_mini_batch_pays_the_update_once_per_batch():
    assert tiny(mini_batch_size=1) == tiny()
    c = tiny(mini_batch_size=8, union_active_fraction=1.0)
    l0, l1 = c["layers"]
    # per row: accumulate g*a (2 flops a weight) and g; per batch of 8: the 4 union rows'
    # regulariser + ADADELTA (31 a weight) and biases (30)
    assert l0["flops_update"] == 2 * 2 * 8 + 2 + (4 * 8 * 31 + 4 * 30) / 8
    assert l0["bytes_rmw"] == 24 * 4 * 9 / 8
    assert l0["bytes_read"] == 144  # the forward read stays per row
    # the backward now reads W of its 3 updated rows itself: 4 * 3 * 4 bytes
    assert l1["bytes_read"] == 60 + 48
    assert l1["bytes_rmw"] == 24 * 3 * 5 / 8
    assert c["bytes"] == 405
    assert c["flops"] == pytest.approx(404.75)
    # without a measured union: independent rows, 1 - (1 - 0.5)^8 of the units
    est = tiny(mini_batch_size=8)["layers"][0]["rows_updated_per_sweep"]
    assert est == pytest.approx(4 * (1 - 0.5 ** 8))


def test_footprint_matches_the_kernel_layout():
    assert model_footprint_bytes([8, 4, 3]) == 4 * (8 * 4 + 4 + 4 * 3 + 3) * 3
    assert model_footprint_bytes([8, 4, 3], adaptive_rate=False) == 4 * 51 * 2
    assert tiny()["footprint_bytes"] == model_footprint_bytes([8, 4, 3])
    from h2odl_mpi.kernel import NetConfig, Network
    for act, units in (("Rectifier", [758, 200, 200, 10]), ("Maxout", [8, 4, 3])):
        net = Network(NetConfig(units=units, activation=act))
        assert model_footprint_bytes(units, act) == 4 * net.n_total


def test_mean_over_rows_of_their_own_activity():
    nz = np.zeros((2, 8), dtype=bool)
    nz[0, :] = True      # a dense row: 1193 flops
    nz[1, 3] = True      # one non-zero input: the gather path, 689 flops
    act = np.zeros((2, 4), dtype=bool)
    act[:, :2] = True
    c = counts_from_activity([8, 4, 3], "Rectifier", "adadelta", nz, [act])
    assert c["flops"] == (1193 + (20 + 124 + 47 + 24 + 474)) / 2
    assert c["layers"][0]["path"] == "gather 50%"
    assert c["active"] == [2.0]


def test_levels_and_roofs():
    levels = {"L1": {"bytes": 32 << 10}, "L2": {"bytes": 1 << 20}, "L3": {"bytes": 32 << 20}}
    assert [fits_in(b, levels) for b in (1000, 2 << 20, 33 << 20)] == ["L1", "L3", "DRAM"]
    counts = {"bytes_read": 100.0, "bytes_rmw": 300.0, "bytes": 400.0, "ai": 2.0}
    bw = {"read": {"L3": {1: 10.0}}, "rmw": {"L3": {1: 30.0}}}
    assert memory_roof(counts, bw, "L3", 1) == pytest.approx(400 / (100 / 10 + 300 / 30))
    assert memory_roof(counts, bw, "L2", 1) is None
    r = roof(counts, 100.0, 20.0)
    assert (r["roof_gflops"], r["bound"]) == (40.0, "memory")
    r = roof(counts, 30.0, 20.0)
    assert (r["roof_gflops"], r["bound"]) == (30.0, "compute")


def test_refuses_bad_arguments():
    with pytest.raises(ValueError):
        layer_counts([8, 4, 3], "Rectifier", "adadelta", 9, [2])   # more non-zeros than inputs
    with pytest.raises(ValueError):
        layer_counts([8, 4, 3], "Rectifier", "adam", 8, [2])
    with pytest.raises(ValueError):
        tiny(active_fraction=[0.5, 0.5])
    assert math.isfinite(tiny(active_fraction=0.0)["ai"])
