"""This rank's rows trained by the kernel's threads, Hogwild! on one model or a replica each
(--thread_scheme): the rows of an iteration cut into blocks so that a stop signal is answered
within seconds (how many threads, which scheme: h2odl_mpi.threads)."""
import time

import numpy as np



def row_seed(seed, rank, iteration):
    """The kernel's seed (dropout masks) for this rank's rows of one iteration."""
    return (seed * 1000003 + rank * 7919 + iteration) & 0x7FFFFFFFFFFFFFFF


class Blocks:
    """An iteration's rows trained in blocks of about `seconds` each, so that a stop signal
    is seen within a block, not an iteration (an epoch, with train_samples_per_iteration
    0 or -1).  Sample numbers continue across blocks, so with one thread the result is
    bit-identical to a single kernel call.  The block size follows the measured speed
    (growing at most 4-fold a call from 256 rows), so an iteration shorter than `seconds`
    is one kernel call: every call ends with the threads waiting for the slowest.

    With mini_batch_size B > 1 a kernel call ends each thread's last mini-batch (h2odl.h),
    so calls are cut at whole mini-batches: with one thread after a multiple of B usable
    rows (skipped rows -- NaN target, weight 0 -- do not count), which keeps the bit-identity
    above; with T threads at a multiple of B x T rows, a whole number of mini-batches per
    thread when no row is skipped.

    scheme "replicas": each call trains a replica a thread and leaves their mean in the model
    (Network.train_replicas), so the threads' models are combined once a call."""

    def __init__(self, network, threads, flag, seconds=2.0, scheme="hogwild"):
        self.network, self.threads, self.flag, self.seconds = network, threads, flag, seconds
        self.block = 256
        self.batch = int(getattr(network.config, "mini_batch_size", 1))
        self.kernel = network.train_replicas if scheme == "replicas" else network.train

    def train(self, model, rows, order, samples_before, seed):
        """(rows done, non-finite seen); fewer rows than len(order) only after a signal."""
        done, n = 0, len(order)
        cut = self._cutter(rows, order)
        while done < n and not self.flag.signum:
            k = cut(done, min(self.block, n - done))
            t = time.perf_counter()
            st = self.kernel(model, rows, order[done:done + k], samples_before=samples_before + done,
                             seed=seed, threads=self.threads)
            dt = time.perf_counter() - t
            done += k
            if st.nonfinite:
                return done, True
            if k == self.block or k >= 64:  # a measurement worth taking
                want = self.seconds * k / max(dt, 1e-9)
                self.block = int(min(max(want, 16), max(4 * k, self.block), 1 << 24))
        return done, False

    def _cutter(self, rows, order):
        """cut(done, k): the rows of the next call from order[done:], at least k (or all that
        are left), ending at a whole number of mini-batches."""
        n, B = len(order), self.batch
        if B == 1:
            return lambda done, k: k
        if self.threads > 1:
            unit = B * self.threads
            return lambda done, k: min(n - done, -(-k // unit) * unit)
        usable = np.zeros(rows.n_rows, dtype=bool)
        usable[rows.usable_rows()] = True
        count = np.cumsum(usable[np.asarray(order)])     # usable rows in order[:i + 1]

        def cut(done, k):   # end after the first multiple of B usable rows at or past done + k
            target = -(-int(count[done + k - 1]) // B) * B
            return max(k, min(n, int(np.searchsorted(count, target)) + 1) - done)
        return cut


def probe_row_time(train, model, rows, threads, seed, n=200):
    """Measured seconds per row of `train` (the kernel call the run trains with: Blocks.kernel,
    Hogwild! or replicas) on a scratch copy of the model."""
    scratch = model.copy()
    n = min(n, rows.n_rows)
    order = np.arange(n, dtype=np.int64)
    t = time.perf_counter()
    train(scratch, rows, order, seed=seed, threads=threads)
    return (time.perf_counter() - t) / max(n, 1)
