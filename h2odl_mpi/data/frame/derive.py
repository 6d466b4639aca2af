"""Columns made from values in memory rather than read: a rank's local float64 values (or
level codes with their domain, or text labels) encoded into the store's compressed chunks,
as a read column is, and a column's local rows taken by a mask or by positions.

Every function works on this rank's rows only; those that agree on something over the
ranks (the levels of text labels) say *collective* and take the frame's data communicator
(None when the frame is replicated or there is one rank).
"""
import numpy as np

from h2odl_mpi.collectives import allgather_obj
from h2odl_mpi.data.frame.assemble import DEFAULT_CHUNK_ROWS
from h2odl_mpi.data.frame.column import CATEGORICAL, NUMERIC, Column
from h2odl_mpi.data.frame.encoding import encode_rows


def encoded(values, chunk_rows=DEFAULT_CHUNK_ROWS):
    """Chunks of float64 `values` (NaN is NA), `chunk_rows` rows each."""
    values = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        return encode_rows(values.reshape(1, 0))
    return [encode_rows(values[start:start + chunk_rows].reshape(1, -1))[0]
            for start in range(0, values.size, chunk_rows)]


def numeric_column(name, values):
    """A numeric Column of this rank's float64 `values` (NaN is NA)."""
    return Column(name, NUMERIC, encoded(values))


def coded_column(name, codes, domain):
    """A categorical Column of level codes (float64, NaN is NA) into `domain`."""
    return Column(name, CATEGORICAL, encoded(codes), list(domain))


def labels_column(name, labels, data_comm):
    """A categorical Column of text labels (None is NA); its levels are every rank's labels,
    sorted as H2O sorts a domain (collective over `data_comm`)."""
    labels = np.asarray(labels, dtype=object)
    present = labels[np.array([v is not None for v in labels.tolist()], dtype=bool)] if labels.size else labels
    mine = sorted(set(map(str, present.tolist())))
    domain = sorted(set().union(*map(set, allgather_obj(data_comm, mine))))
    where = {level: float(i) for i, level in enumerate(domain)}
    codes = np.array([np.nan if v is None else where[str(v)] for v in labels.tolist()], dtype=np.float64)
    return coded_column(name, codes, domain)


def renamed(column, name):
    """`column` under another name (the chunks are shared: they are never changed)."""
    return Column(name, column.kind, column.chunks, column.domain)


def taken(column, rows):
    """A Column of `column`'s local rows picked by a boolean mask or by positions."""
    values = column.decode()[rows]
    if column.kind == CATEGORICAL:
        return coded_column(column.name, values, column.domain)
    return numeric_column(column.name, values)
