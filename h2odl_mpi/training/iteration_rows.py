"""Rows per iteration: how many rows the ranks train between two combines
(train_samples_per_iteration, TSPI, and its auto-tuning), each rank's share of them, and
which of its rows a rank trains.

TSPI: 0 is one epoch per iteration, -1 every rank's local rows, a positive value that many
rows over all ranks, and -2 (the default) is tuned while running: the measured compute time
per row and the measured time of a combine set the next iteration's TSPI so that
communication takes about target_ratio_comm_to_comp of the time.  Every value here is
computed from agreed numbers, so every rank holds the same.
"""
import math

import numpy as np

from h2odl_mpi.collectives import allreduce_scalar, rank_and_size
from h2odl_mpi.training.hogwild import probe_row_time


def rows_for(epochs, n_rows):
    """Rows that `epochs` passes over n_rows make, rounded up, but not for the last bits
    of a decimal fraction: 0.93 + 0.5 epochs of 2000 rows are 2860 rows, though
    (0.93 + 0.5) * 2000 is 2860.0000000000005 in floating point."""
    return int(math.ceil(epochs * n_rows - 1e-9 * max(1.0, epochs * n_rows)))


def row_shares(tspi, local_counts):
    """Rows each rank trains this iteration: tspi split in proportion to the ranks' local
    row counts (largest remainder, so the shares add up to tspi exactly; equal shares with
    replicated data, 0 for a rank without rows)."""
    counts = np.asarray(local_counts, dtype=np.float64)
    if counts.sum() == 0:
        return np.zeros(len(counts), dtype=np.int64)
    exact = tspi * counts / counts.sum()
    shares = np.floor(exact).astype(np.int64)
    rest = int(tspi - shares.sum())
    if rest:
        order = np.lexsort((np.arange(len(counts)), -(exact - shares)))
        shares[order[:rest]] += 1
    return shares


class AutoTuner:
    """TSPI = -2: pick the global rows per iteration so that t_comm / (t_comm + t_comp)
    approaches the target, from times measured every iteration (smoothed)."""

    def __init__(self, target, n_ranks, local_rows, total_rows, epochs, first_guess, cap=None):
        self.target = max(target, 1e-6)
        self.lo = n_ranks  # at least one row per rank
        self.hi = max(self.lo, 10 * n_ranks * local_rows)  # 10 x what -1 would do
        self.hi = max(self.lo, min(self.hi, int(epochs * total_rows / 10) or self.lo))
        if cap is not None:  # what the combining rule needs to stay accurate
            self.hi = max(self.lo, min(self.hi, int(cap)))
        self.value = int(min(max(first_guess, self.lo), self.hi))

    def update(self, rows, t_comp, t_comm):
        if rows <= 0 or t_comp <= 0:
            return self.value
        t_row = t_comp / rows  # seconds per global row, ranks in parallel
        ideal = t_comm * (1.0 - self.target) / (self.target * t_row)
        # mostly the new measurement; a little geometric smoothing keeps one noisy
        # iteration from swinging the value
        new = math.exp(0.8 * math.log(max(ideal, 1.0)) + 0.2 * math.log(max(self.value, 1)))
        self.value = int(min(max(new, self.lo), self.hi))
        return self.value


class RowsPerIteration:
    """The TSPI policy of one run: `value` is the next iteration's global rows; `update`
    feeds it the agreed measurements of the last one.  The combining rule may cap the rows
    between combines (`combiner.rows_cap`): the auto-tuner stays below the cap, and an
    explicit TSPI above it is kept but said (`warning`)."""

    def __init__(self, params, comm, data, combiner, probe, restored_state=None):
        """data: the run's TrainingData; probe: (train, model, threads, seed) for the
        first guess of an auto-tuned run."""
        _, size = rank_and_size(comm)
        tspi = params["train_samples_per_iteration"]
        self.param, self.tuner, self.warning = tspi, None, None
        self.tuned_for = -1.0  # the target the value was tuned for, or -1
        cap = combiner.rows_cap(data.n_total, size)
        if tspi == 0:
            self.value = data.n_total
        elif tspi == -1:
            self.value = size * data.n_local
        elif tspi > 0:
            self.value = tspi
        elif size == 1:
            self.value = data.n_total  # one rank: nothing to communicate, an epoch per iteration
        else:
            target = params["target_ratio_comm_to_comp"]
            first = self._first_guess(target, comm, data, probe + (combiner,), restored_state or {})
            self.tuner = AutoTuner(target, size, data.n_local, data.n_total, params["epochs"], first, cap)
            self.value, self.tuned_for = self.tuner.value, target
        if self.tuner is None and cap is not None and self.value > cap:
            self.warning = (f"train_samples_per_iteration: {self.value:,} rows between combines; "
                            f"{combiner.name} needs at most about {int(cap):,} here to stay as accurate "
                            f"as one rank ({combiner.rows_cap_reason})")

    @staticmethod
    def _first_guess(target, comm, data, probe, state):
        """Where a restart on as many ranks had got to, else from a measured kernel probe
        (the slowest rank's time per row) and the measured combine."""
        size = comm.Get_size()
        if state.get("n_ranks") == size and state.get("tspi", 0) > 0 and state.get("tuned_for") == target:
            return int(state["tspi"])
        train, model, threads, seed, combiner = probe
        t_row = allreduce_scalar(comm, probe_row_time(train, model, data.rows, threads, seed), "max")
        t_comm = combiner.time(comm, model)
        return min(100_000 * size, int(t_comm * (1 - target) / (max(target, 1e-6) * t_row / size)))

    def update(self, rows, t_comp, t_comm):
        if self.tuner is not None:
            self.value = self.tuner.update(rows, t_comp, t_comm)
        return self.value


class RowPicker:
    """Which of this rank's usable rows it trains in an iteration, drawn from its own
    random stream.  A part of the rows is trained in storage order
    (shuffle_training_data=false, H2O's default); when a rank trains all its rows (or more)
    every iteration, they come shuffled, as H2O then turns shuffling on: the same order
    every iteration would leave the model fitted to the end of the file.  With
    balance_classes the rows are drawn with replacement at the classes' rates."""

    def __init__(self, data, rng, shuffle):
        self.data, self.rng, self.shuffle = data, rng, shuffle
        self.told_shuffle = False

    def pick(self, mine):
        """Row indices (into the rank's rows) to train `mine` rows; says once, on its first
        shuffled iteration, that it shuffles (True as the second value)."""
        n_local, rng = self.data.n_local, self.rng
        in_order = not self.shuffle and mine < n_local
        if self.data.balance is not None:
            order = rng.choice(n_local, size=mine, replace=True, p=self.data.balance)
        elif mine <= n_local:
            order = rng.choice(n_local, size=mine, replace=False)
        else:
            order = rng.integers(0, n_local, size=mine)
        tell = False
        if in_order:
            order.sort()
        elif not self.shuffle and not self.told_shuffle:
            self.told_shuffle = tell = True
        return self.data.usable[order], tell
