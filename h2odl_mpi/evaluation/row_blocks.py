"""A model's outputs of the rows this rank scores: its part of a replicated frame, and the
rows expanded into dense kernel rows a block at a time (never the whole share at once)."""
import numpy as np

from h2odl_mpi.collectives import rank_and_size
from h2odl_mpi.kernel import Rows

BLOCK_ROWS = 4096      # rows expanded densely at a time (replicated shares, per-feature errors)


def local_part(frame, comm=None):
    """(the local rows this rank scores, None meaning all of them; the global index of its
    first one).  A replicated frame is cut into contiguous runs, one per rank of `comm`."""
    rank, size = rank_and_size(comm)
    if frame.replicated and size > 1:
        lo, hi = frame.n_rows * rank // size, frame.n_rows * (rank + 1) // size
        return np.arange(lo, hi, dtype=np.int64), lo
    return None, frame.first_row


def score_rows(network, model, rows, what, threads=None, pick=None, layer=None):
    """network.predict of `rows` (all, or local rows `pick`, expanded in dense blocks), as
    float64."""
    if pick is None:
        return network.predict(model, rows, what, layer=layer, threads=threads).astype(np.float64)
    parts = [network.predict(model, dense_rows(rows, idx), what, layer=layer, threads=threads)
             for idx in blocks(pick)]
    return np.concatenate(parts).astype(np.float64)


def blocks(pick):
    """`pick` in blocks of BLOCK_ROWS rows (one empty block when there are none)."""
    return [pick[s:s + BLOCK_ROWS] for s in range(0, len(pick), BLOCK_ROWS)] or [pick[:0]]


def dense_rows(rows, idx):
    """Rows `idx` of `rows` as dense kernel rows (the inputs the kernel sees, written by C)."""
    if hasattr(rows, "dense_subset"):  # an ensemble's rows: each member's
        return rows.dense_subset(idx)
    sub = (lambda a: None if a is None else a[idx])  # noqa: E731
    return Rows.dense(rows.expand(idx), y=sub(rows.y), weight=sub(rows.weight), offset=sub(rows.offset))


def per_feature_errors(network, model, rows, threads=None, pick=None):
    """(n, inputs) squared reconstruction error of each input unit, in the network's units
    (their row mean is the Reconstruction.MSE)."""
    pick = np.arange(rows.n_rows, dtype=np.int64) if pick is None else pick
    parts = []
    for idx in blocks(pick):
        block = dense_rows(rows, idx)
        recon = network.predict(model, block, "output", threads=threads).astype(np.float64)
        parts.append((recon - block.x.astype(np.float64)) ** 2)
    return np.concatenate(parts)
