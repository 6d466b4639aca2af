"""Turn every rank's ChunkBuilder into Columns that mean the same thing on every rank.

Column kinds are agreed with an allreduce (a column is categorical if any rank saw text in
it).  Categorical domains are the union of the ranks' levels, sorted lexicographically as
H2O sorts them, so a code means the same level everywhere; each rank then rewrites its local
codes as global ones.  Runs of small chunks are merged into chunks of up to `chunk_rows`.
"""
import numpy as np

from h2odl_mpi.errors import UserError
from h2odl_mpi.collectives import allgather_obj, allreduce
from h2odl_mpi.data.frame.column import CATEGORICAL, NUMERIC, UNDECIDED, Column, compact_columns

DEFAULT_CHUNK_ROWS = 1 << 16


_KIND_RANK = {UNDECIDED: 0, NUMERIC: 1, CATEGORICAL: 2}


def agree_kinds(comm, kinds):
    """Global kinds (allreduce): categorical if any rank saw text, else numeric (a column
    with only NA everywhere is numeric, as in H2O)."""
    local = np.array([_KIND_RANK[k] for k in kinds], dtype=np.int32)
    merged = allreduce(comm, local, "max")
    return [CATEGORICAL if m == 2 else NUMERIC for m in merged]


def any_rank(comm, flag):
    """True on every rank if `flag` is true on some rank."""
    return bool(allreduce(comm, np.array([int(flag)], dtype=np.int32), "max")[0])


def global_domains(comm, builder, max_levels=None):
    """Sorted union over ranks of each categorical column's levels: {column index: levels}."""
    categorical = [j for j, k in enumerate(builder.kinds) if k == CATEGORICAL]
    gathered = allgather_obj(comm, [builder.levels[j] for j in categorical])
    domains = {}
    for position, j in enumerate(categorical):
        union = set()
        for rank_levels in gathered:
            union.update(rank_levels[position])
        domain = sorted(union)
        if max_levels is not None and len(domain) > max_levels:
            raise UserError(f"column {builder.names[j]!r} has {len(domain)} categorical levels, "
                            f"more than max_levels={max_levels}")
        domains[j] = domain
    return domains


def build_columns(builder, domains, chunk_rows=DEFAULT_CHUNK_ROWS):
    """The rank's Columns: global categorical codes, small chunks merged."""
    columns = [None] * len(builder.names)
    transforms = {j: _recode(builder.levels[j], domains[j])
                  for j, kind in enumerate(builder.kinds) if kind == CATEGORICAL}
    order = [j for j, kind in enumerate(builder.kinds) if kind in (NUMERIC, CATEGORICAL)]
    for s in range(0, len(order), 256):    # bounded batches: old chunks freed as we go
        batch = order[s:s + 256]
        merged = compact_columns([builder.chunks[j] for j in batch], chunk_rows,
                                 transforms=[transforms.get(j) for j in batch])
        for j, chunks in zip(batch, merged):
            kind = builder.kinds[j]
            columns[j] = Column(builder.names[j], kind, chunks,
                                domain=domains[j] if kind == CATEGORICAL else None)
            builder.chunks[j] = None
    return columns


def _recode(local_levels, domain):
    """A function mapping local codes (float64, NaN = NA) to global codes, or None if equal."""
    position = {level: i for i, level in enumerate(domain)}
    lookup = np.array([position[level] for level in local_levels] + [np.nan], dtype=np.float64)
    if np.array_equal(lookup[:-1], np.arange(len(local_levels))):
        return None

    def transform(codes):
        na = np.isnan(codes)
        return lookup[np.where(na, -1, codes).astype(np.intp)]
    return transform
