"""The few MPI collectives the frame needs, written so that comm=None means one process.

Numbers travel as numpy buffers (Allreduce); domains and metadata as small pickled Python
objects (allgather/bcast), which is fine outside the hot path.
"""
import numpy as np

_OPS = ("sum", "min", "max")


def rank_and_size(comm):
    return (0, 1) if comm is None else (comm.Get_rank(), comm.Get_size())


def allreduce(comm, values, op="sum"):
    """Element-wise reduction of a numpy array over all ranks (a new array)."""
    values = np.ascontiguousarray(values)
    if comm is None or comm.Get_size() == 1:
        return values.copy()
    from mpi4py import MPI
    if op not in _OPS:
        raise ValueError(f"op must be one of {_OPS}")
    result = np.empty_like(values)
    comm.Allreduce(values, result, op={"sum": MPI.SUM, "min": MPI.MIN, "max": MPI.MAX}[op])
    return result


def allgather(comm, obj):
    """Every rank's `obj`, in rank order."""
    if comm is None or comm.Get_size() == 1:
        return [obj]
    return comm.allgather(obj)


def bcast(comm, obj, root=0):
    if comm is None or comm.Get_size() == 1:
        return obj
    return comm.bcast(obj, root=root)
