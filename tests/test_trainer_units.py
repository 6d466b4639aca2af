"""Pieces of the trainer on one process: row sampling for scoring, TSPI auto-tuning."""
import numpy as np

from h2odl_mpi.training.iteration_rows import AutoTuner, rows_for
from h2odl_mpi.training.scoring import sample_rows


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


def test_rows_come_shuffled_when_every_iteration_trains_all_of_them(tmp_path, capsys):
    """shuffle_training_data=false trains a part of the rows in storage order; when each
    iteration trains all rows (an epoch per iteration on one rank) they come shuffled, as
    H2O turns shuffling on then, and the log says so."""
    from h2odl_mpi.training import hogwild, trainer
    from h2odl_mpi.params import validate
    path = tmp_path / "d.csv"
    rng = np.random.default_rng(0)
    with open(path, "w") as f:
        f.write("x,y\n")
        f.writelines(f"{v:.4f},{int(v > 0)}\n" for v in rng.normal(size=400))
    seen = []
    real = hogwild.Blocks.train

    def spy(self, model, rows, order, *args):
        seen.append(np.array(order))
        return real(self, model, rows, order, *args)
    hogwild.Blocks.train = spy
    try:
        for tspi in (0, 100):
            seen.clear()
            trainer.train(validate({"train": str(path), "response": "y", "hidden": [3], "epochs": 2,
                                    "train_samples_per_iteration": tspi, "seed": 1, "threads": 1,
                                    "classification_stop": -1.0, "stopping_rounds": 0}))
            assert all(len(o) == (400 if tspi == 0 else 100) for o in seen)
            is_sorted = [bool(np.all(np.diff(o) > 0)) for o in seen]
            assert is_sorted == [tspi != 0] * len(seen)
            assert ("shuffling the training rows" in capsys.readouterr().out) == (tspi == 0)
            if tspi == 0:
                assert not np.array_equal(seen[0], seen[1])  # a new order every iteration
    finally:
        hogwild.Blocks.train = real


def test_epochs_become_rows_without_floating_point_leftovers():
    assert (0.93 + 0.5) * 2000 > 2860  # what the rounding must not count
    assert rows_for(1.43, 2000) == 2860
    assert rows_for(0.93 + 0.5, 2000) == 2860
    assert rows_for(0.0005, 2000) == 1 and rows_for(2.5, 3) == 8 and rows_for(10, 60000) == 600000
