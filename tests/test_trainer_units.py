"""Pieces of the trainer on one process: row sampling for scoring, TSPI auto-tuning."""
import numpy as np

from h2odl_mpi.trainer import AutoTuner, sample_rows


def test_stratified_sampling_keeps_class_shares():
    y = np.array([0] * 900 + [1] * 90 + [2] * 10, dtype=np.float32)
    pick = sample_rows(len(y), 100, seed=3, classes=y)
    assert len(pick) == 100 and len(np.unique(pick)) == 100
    assert np.bincount(y[pick].astype(int)).tolist() == [90, 9, 1]
    uniform = [np.bincount(y[sample_rows(len(y), 100, seed=s)].astype(int), minlength=3)[2] for s in range(30)]
    assert min(uniform) != max(uniform)  # uniform sampling does not hold the shares fixed


def test_autotuner_moves_toward_the_target_ratio():
    t = AutoTuner(target=0.05, n_ranks=2, local_rows=100_000, total_rows=100_000, epochs=100,
                  first_guess=1000)
    t_row, t_comm = 1e-4, 0.01  # 0.1 ms per row, 10 ms per average -> ideal ~1900 rows
    for _ in range(30):
        rows = t.value
        t.update(rows, rows * t_row, t_comm)
    ratio = t_comm / (t_comm + t.value * t_row)
    assert abs(ratio - 0.05) < 0.005, (t.value, ratio)


def test_autotuner_respects_its_bounds():
    t = AutoTuner(target=0.05, n_ranks=4, local_rows=10, total_rows=40, epochs=1, first_guess=10**9)
    assert t.value <= 10 * 4 * 10
    t.update(t.value, 1.0, 0.0)  # free communication: fewest rows
    for _ in range(40):
        t.update(t.value, 1.0, 0.0)
    assert t.value == 4  # at least one row per rank
