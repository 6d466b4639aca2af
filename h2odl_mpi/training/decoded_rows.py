"""Rows decoded once: the rows a run reads at every iteration (its training rows, the rows
its scorers score) kept as dense float32 rows when they fit, decoded by the kernel's own
decoder.

The kernel decodes a row of the compressed column store column by column each time it reads
it: for training's shuffled rows, a binary search or a bitmap rank per value.  On the MNIST
pair at mini_batch_size 32 that was about a third of the kernel's time.  Rows decoded once by
h2o_rows_expand are the inputs the kernel would decode, and the kernel reads DENSE rows as it
reads the equal FRAME rows (csrc/workspace.c, load_row: the same inputs in the same order,
the same input-dropout draws), so a run gives the same bits either way.  Dense rows take 4
bytes a value where the store takes one or less, so they are kept only within a
DecodeBudget: 1/MEMORY_SHARE of the memory available, shared among the ranks of the node
(the trainer gives none to a run with an epoch or less left: each row is read once).
"""
import os

from h2odl_mpi.collectives import node_size
from h2odl_mpi.kernel import Rows
from h2odl_mpi.sizes import memory_available

# decoded rows of all ranks on a node take at most this fraction of the memory available
MEMORY_SHARE = 8
# the ranks on this node as the launcher tells (MPICH's Hydra, Open MPI, Slurm): the whole
# job's, where a communicator holds only its group's (many models at once)
_LOCAL_RANKS_VARS = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE")


def ranks_on_node(comm=None):
    """The ranks sharing this node's memory: the larger of `comm`'s ranks on this node and
    the launcher's count of the job's ranks here (collective over `comm`)."""
    local = node_size(comm)
    for var in _LOCAL_RANKS_VARS:
        v = os.environ.get(var, "")
        if v.isdigit():
            local = max(local, int(v))
    return local


class DecodeBudget:
    """The bytes of decoded rows this rank may still keep: `nbytes`, by default
    1/MEMORY_SHARE of the memory available now divided among the ranks on the node (none
    where the memory is not known).  Collective over `comm` when built without `nbytes`;
    `decoded` is local."""

    def __init__(self, comm=None, nbytes=None):
        if nbytes is None:
            avail = memory_available()
            nbytes = 0 if avail is None else avail // (MEMORY_SHARE * ranks_on_node(comm))
        self.left, self.used = int(nbytes), 0

    def decoded(self, rows, threads=1):
        """FRAME `rows` as dense rows (decoded on `threads` threads) when they fit what is
        left (then counted), else `rows` as they are; rows of other kinds as they are."""
        if rows.kind != "frame":
            return rows
        need = 4 * rows.n_rows * rows.n_cols
        if need > self.left:
            return rows
        self.left -= need
        self.used += need
        return Rows.dense(rows.expand(threads=threads), rows.y, rows.weight, rows.offset)
