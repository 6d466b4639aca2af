"""Cross-validation folds: which fold each training row belongs to, as H2O-3 assigns them.

A row is named by its global index: its position in the frame's global row order (rank 0's
rows, then rank 1's, ...: the file order, see frame/frame.py), `frame.first_row` plus its
local position.  Every assignment is a function of that index, the seed and the data, never
of the number of ranks:

- Modulo: row i goes to fold i % nfolds.
- Random (AUTO): row i goes to fold floor(u * nfolds), u a uniform number hashed from
  (seed, i) (splitmix64), so any rank computes any row's fold alone.
- Stratified: the rows of each class (a missing response is a class of its own) are
  shuffled by the same hash of (seed, i) and dealt round-robin to the folds, the deal going
  on from class to class; each fold then holds every class's rows to within one row, and
  the folds' sizes differ by one row at most.  Every rank sees every row's class (one
  allgather of a class index per row).
- fold_column: the column's values name the folds: a categorical column's levels that
  occur, in level order; an integer column's values, which must be 0..N-1 or 1..N without
  gaps (H2O-3's rule).  No row may lack one.

`assign` returns a `Folds` (this rank's rows' folds, every fold's size); `holdout` gives a
fold model its `Holdout`: the fold's rows, left out of its training (their targets hidden)
and scored as its validation rows.
"""
from dataclasses import dataclass

import numpy as np

from h2odl_mpi.collectives import allgather_values, allreduce, rank_and_size
from h2odl_mpi.errors import UserError
from h2odl_mpi.data.frame.column import CATEGORICAL
from h2odl_mpi.splitmix import GOLDEN, splitmix64



@dataclass
class Folds:
    """The folds of a frame's rows on this rank."""
    n_folds: int
    fold: np.ndarray        # int64, this rank's rows' folds (0-based), in local row order
    sizes: list             # rows in each fold, over all ranks
    how: str                # "Modulo", "Random", "Stratified" or "fold_column <name>"

    @property
    def n_rows(self):
        return int(sum(self.sizes))


@dataclass
class Holdout:
    """What a fold model leaves out: `held` marks this rank's rows of the fold; `mine` the
    fold rows this rank predicts and scores (all of `held` in a sharded frame, this rank's
    share of them in a replicated one, so that no row counts twice); `n_train` the rows
    outside the fold over all ranks (an epoch of the fold model)."""
    fold: int
    held: np.ndarray
    mine: np.ndarray
    n_train: int

    def training_targets(self, y):
        """The targets a fold model trains on: the fold's rows hidden (NaN), so they are
        neither trained nor scored as training rows."""
        y = np.array(y, dtype=np.float32, copy=True)
        y[self.held] = np.nan
        return y

    def validation_targets(self, y):
        """The targets a fold model is validated on: only the fold rows this rank scores."""
        y = np.array(y, dtype=np.float32, copy=True)
        y[~self.mine] = np.nan
        return y


def row_hash(seed, index):
    """A 64-bit hash of (seed, global row index) for every index (uint64 array)."""
    with np.errstate(over="ignore"):
        base = splitmix64(np.array([int(seed) & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64) + GOLDEN)
        return splitmix64(np.asarray(index, dtype=np.int64).astype(np.uint64) * GOLDEN ^ base)


def modulo_folds(index, n_folds):
    """H2O's Modulo: row i -> i % n_folds."""
    return np.asarray(index, dtype=np.int64) % n_folds


def random_folds(index, n_folds, seed):
    """H2O's Random (and AUTO): a seeded uniform fold per row, from the row's global index."""
    u = (row_hash(seed, index) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    return np.minimum((u * n_folds).astype(np.int64), n_folds - 1)


def stratified_folds(labels, n_folds, seed):
    """Folds of ALL rows (global order) from their class labels (-1: missing): each
    class's rows in the order of their seeded hash, dealt round-robin, the deal going on
    from one class to the next."""
    labels = np.asarray(labels, dtype=np.int64)
    key = row_hash(seed, np.arange(labels.size))
    fold = np.empty(labels.size, dtype=np.int64)
    start = 0
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        rows = rows[np.argsort(key[rows], kind="stable")]
        fold[rows] = (start + np.arange(rows.size)) % n_folds
        start = (start + rows.size) % n_folds
    return fold


def _data_comm(frame):
    return None if frame.replicated else frame.comm


def column_folds(frame, name):
    """(folds of this rank's rows, number of folds) from fold column `name` (collective
    over the frame's ranks); a column unfit to name folds is refused."""
    if name not in frame.names:
        raise UserError(f"fold_column: no column named {name!r} in {frame.source or 'the training data'}")
    comm, v = _data_comm(frame), frame.decode(name)
    missing = int(allreduce(comm, np.array([np.isnan(v).sum()], dtype=np.int64))[0])
    if missing:
        raise UserError(f"fold_column {name!r}: {missing:,} row(s) have no value; every row needs a fold")
    if frame.column(name).kind == CATEGORICAL:
        counts = np.bincount(v.astype(np.int64), minlength=len(frame.domain(name)))
        present = np.flatnonzero(allreduce(comm, counts.astype(np.int64)))
        fold = np.searchsorted(present, v.astype(np.int64))
    else:
        if np.any(v != np.floor(v)):
            raise UserError(f"fold_column {name!r}: holds non-integer values; folds are integers or levels")
        present = np.unique(allgather_values(comm, np.unique(v)))
        lo = present[0] if present.size else 0.0
        if present.size and (lo not in (0.0, 1.0) or present[-1] - lo + 1 != present.size):
            raise UserError(f"fold_column {name!r}: integer folds must be 0..N-1 or 1..N without gaps, "
                            f"found {present.size} distinct values from {lo:g} to {present[-1]:g}")
        fold = (v - lo).astype(np.int64)
    if present.size < 2:
        raise UserError(f"fold_column {name!r} is constant: it must name at least 2 folds")
    return fold, int(present.size)


def _stratified(frame, info, n_folds, seed):
    """This rank's rows' Stratified folds (every row's class gathered once)."""
    if not info.classification:
        raise UserError("fold_assignment = Stratified: only for classification (the response is numeric)")
    y = np.asarray(info.response_values(frame), dtype=np.float64)
    labels = allgather_values(_data_comm(frame), np.where(np.isnan(y), -1.0, y))
    return stratified_folds(labels.astype(np.int64), n_folds, seed)[global_rows(frame)]


def global_rows(frame):
    """Global indices of this rank's rows of `frame`."""
    return frame.first_row + np.arange(frame.n_local_rows, dtype=np.int64)


def assign(params, frame, info):
    """The Folds of `frame`'s rows for the parameters (nfolds with fold_assignment, or
    fold_column); collective over the frame's ranks.  Empty folds are refused."""
    if params.get("fold_column"):
        fold, n = column_folds(frame, params["fold_column"])
        how = f"fold_column {params['fold_column']}"
    else:
        n, how = int(params["nfolds"]), params["fold_assignment"]
        if n > frame.n_rows:
            raise UserError(f"nfolds = {n} is more than the {frame.n_rows:,} training rows")
        index = global_rows(frame)
        if how == "Modulo":
            fold = modulo_folds(index, n)
        elif how == "Stratified":
            fold = _stratified(frame, info, n, params["seed"])
        else:
            how, fold = "Random", random_folds(index, n, params["seed"])
    sizes = allreduce(_data_comm(frame), np.bincount(fold, minlength=n).astype(np.int64)).tolist()
    empty = [j + 1 for j, s in enumerate(sizes) if s == 0]
    if empty:
        raise UserError(f"nfolds = {n}: fold {empty[0]} has no rows ({frame.n_rows:,} rows, fold_assignment "
                        f"{how}): use fewer folds, another seed or fold_assignment Modulo")
    return Folds(n, fold, [int(s) for s in sizes], how)


def holdout(folds, j, frame, comm):
    """The Holdout of fold `j` (0-based) for a model trained on `frame` over `comm`."""
    held = folds.fold == j
    mine = held
    rank, size = rank_and_size(comm)
    if frame.replicated and size > 1:  # every rank holds every row: each scores its share
        rows = np.flatnonzero(held)
        cut = np.arange(size + 1) * rows.size // size
        mine = np.zeros_like(held)
        mine[rows[cut[rank]:cut[rank + 1]]] = True
    return Holdout(j, held, mine, folds.n_rows - folds.sizes[j])
