"""Every MPI collective the package uses, in one place.

`comm` is an mpi4py communicator, or None for one process; a 1-rank communicator behaves as
None.  Nothing is pickled: numbers travel as numpy buffers (upper-case mpi4py calls), and the
few small objects (levels, messages, dialects, row counts) as JSON text in a byte buffer
(`allgather_obj`, `bcast_obj`: dicts, lists, strings, numbers, booleans, None and numpy
arrays).  A data description or a model file travels as the bytes of its HDF5 image
(`bcast_bytes`).

Agreed reductions: decisions taken on every rank (the next rows per iteration, whether to
score, stop or checkpoint, the metrics) must be bit-identical everywhere, which an
Allreduce does not promise.  `agreed_sum` gathers every rank's small float64 vector and adds
them in rank order on every rank; `weighted_mean` sums each element once, on one rank
(Reduce_scatter), and sends the result to all (Allgatherv).

`time_collective` times a collective as the OSU micro-benchmarks do: a barrier, then the
best of a few repetitions, the slowest rank's time.

`watch_collectives(monitor)`: while a training run watches for stalls (--stall_timeout,
h2odl_mpi.training.watchdog), every collective here tells its monitor when the calling thread
starts waiting in it (`monitor.waiting(name)`) and when it is through (`monitor.done()`).
"""
import base64
import functools
import json
import math
import time

import numpy as np

from h2odl_mpi._kernel import ffi, lib


def _mpi():
    from mpi4py import MPI
    return MPI


def parallel(comm):
    """Whether `comm` has more than one rank (else every collective is a local no-op)."""
    return comm is not None and comm.Get_size() > 1


def rank_and_size(comm):
    return (0, 1) if comm is None else (comm.Get_rank(), comm.Get_size())


_monitor = None  # the watchdog of the training run in progress on this process, or None


def watch_collectives(monitor):
    """From now on tell `monitor` (None: no one) when a collective starts and ends; returns
    the monitor it replaces (to put back)."""
    global _monitor
    old, _monitor = _monitor, monitor
    return old


def _collective(fn):
    """`fn(comm, ...)`, which waits for the other ranks: the monitor hears of it."""
    name = fn.__name__

    @functools.wraps(fn)
    def watched(comm, *args, **kwargs):
        m = _monitor
        if m is None or not parallel(comm):
            return fn(comm, *args, **kwargs)
        m.waiting(name)
        try:
            return fn(comm, *args, **kwargs)
        finally:
            m.done()
    return watched


# ---------------------------------------------------------------------------- communicators
@_collective
def split(comm, color, key):
    """comm.Split(color, key) (a color of None: MPI_UNDEFINED, no communicator)."""
    return comm.Split(_mpi().UNDEFINED if color is None else color, key)


@_collective
def duplicate(comm):
    """comm.Dup(): a communicator of the same ranks, for messages of its own."""
    return comm.Dup()


@_collective
def node_communicator(comm):
    """The ranks of `comm` on this node (MPI_COMM_TYPE_SHARED); the caller frees it."""
    return comm.Split_type(_mpi().COMM_TYPE_SHARED)


def node_size(comm):
    """How many ranks of `comm` are on this node (1 without a parallel `comm`; collective)."""
    if not parallel(comm):
        return 1
    node = node_communicator(comm)
    size = node.Get_size()
    node.Free()
    return size


# ---------------------------------------------------------------------------- numbers
_OPS = ("sum", "min", "max")


@_collective
def allreduce(comm, values, op="sum"):
    """Element-wise reduction of a numpy array over all ranks (a new array).  Exact for
    integers and for min/max; a float sum may differ in its last bits between ranks."""
    values = np.ascontiguousarray(values)
    if op not in _OPS:
        raise ValueError(f"op must be one of {_OPS}")
    if not parallel(comm):
        return values.copy()
    MPI = _mpi()
    result = np.empty_like(values)
    comm.Allreduce(values, result, op={"sum": MPI.SUM, "min": MPI.MIN, "max": MPI.MAX}[op])
    return result


def allreduce_scalar(comm, value, op="sum"):
    """A float or int reduced over the ranks (exact for ints, min and max)."""
    dtype = np.int64 if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else np.float64
    out = allreduce(comm, np.array([value], dtype=dtype), op)[0]
    return int(out) if dtype is np.int64 else float(out)


@_collective
def sum_in_place(comm, buf):
    """In-place Allreduce(SUM) of an integer buffer (exact on every rank)."""
    if parallel(comm):
        comm.Allreduce(_mpi().IN_PLACE, buf, op=_mpi().SUM)
    return buf


@_collective
def gather_rows(comm, vec):
    """Every rank's fixed-size float64 vector: a (ranks, len) array, the same on every rank."""
    vec = np.ascontiguousarray(vec, dtype=np.float64)
    if not parallel(comm):
        return vec[None, :]
    out = np.empty((comm.Get_size(), vec.size), dtype=np.float64)
    comm.Allgather(vec, out)
    return out


def agreed_sum(comm, vec):
    """Column sums of every rank's small float64 vector, added in rank order on every rank:
    the same bits everywhere, whatever algorithm the MPI library picks."""
    return sum_in_rank_order(gather_rows(comm, vec))


def sum_in_rank_order(rows):
    """The sum of gather_rows' rows, added in rank order (the same bits on every rank)."""
    total = rows[0].copy()
    for r in rows[1:]:
        total += r
    return total


def allgather_counts(comm, n):
    """Every rank's integer `n`, in rank order (a list)."""
    return [int(v) for v in gather_rows(comm, np.array([n], dtype=np.float64))[:, 0]]


@_collective
def gather_to_root(comm, rows):
    """Gatherv an (n, k) float64 array to rank 0: the concatenation there, None elsewhere."""
    rows = np.ascontiguousarray(rows, dtype=np.float64)
    if not parallel(comm):
        return rows
    k = rows.shape[1]
    counts = np.empty(comm.Get_size(), dtype=np.int64)
    comm.Allgather(np.array([rows.shape[0]], dtype=np.int64), counts)
    if comm.Get_rank() != 0:
        comm.Gatherv(rows, None, root=0)
        return None
    recv = np.empty((int(counts.sum()), k), dtype=np.float64)
    displs = np.concatenate([[0], np.cumsum(counts * k)[:-1]])
    comm.Gatherv(rows, [recv, (counts * k).tolist(), displs.tolist(), _mpi().DOUBLE], root=0)
    return recv


@_collective
def allgather_values(comm, values):
    """Every rank's 1-d float64 array, concatenated in rank order on every rank."""
    values = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
    if not parallel(comm):
        return values.copy()
    counts = np.empty(comm.Get_size(), dtype=np.int64)
    comm.Allgather(np.array([values.size], dtype=np.int64), counts)
    out = np.empty(int(counts.sum()), dtype=np.float64)
    displs = np.concatenate([[0], np.cumsum(counts)[:-1]])
    comm.Allgatherv(values, [out, counts.tolist(), displs.tolist(), _mpi().DOUBLE])
    return out


@_collective
def bcast_array(comm, arr, root=0):
    """In place: every rank's `arr` (same shape and dtype everywhere) becomes root's."""
    if parallel(comm):
        comm.Bcast(arr, root=root)
    return arr


@_collective
def weighted_mean(comm, model, weight=1.0, total=None, nodes=None):
    """In place: every rank's float32 buffer becomes sum_r weight_r * model_r / total
    (total: the sum of the weights, which every rank knows; default equal weights).

    Flat (nodes None): a Reduce_scatter and an Allgatherv on the buffer: each element is
    summed once, on one rank, so every rank ends bit-identical, at an Allreduce's bandwidth
    cost.  Node-aware (`nodes`, a NodeGroups of `comm`): the ranks of a node sum into their
    node's leader (a Reduce, through shared memory), the leaders alone do the flat mean over
    the network, and each leader sends the result to its node (a Bcast): one rank per node
    on the wire, and still the same bits on every rank."""
    if not parallel(comm):
        return model
    total = comm.Get_size() if total is None else total
    if weight != 1.0:
        model *= np.float32(weight)
    if nodes is None:
        return _flat_mean(comm, model, total)
    MPI = _mpi()
    if nodes.node.Get_rank() == 0:
        nodes.node.Reduce(MPI.IN_PLACE, [model, MPI.FLOAT], op=MPI.SUM, root=0)
        _flat_mean(nodes.leaders, model, total)
    else:
        nodes.node.Reduce([model, MPI.FLOAT], None, op=MPI.SUM, root=0)
    nodes.node.Bcast([model, MPI.FLOAT], root=0)
    return model


def _flat_mean(comm, model, total):
    """In place: the sum over `comm` divided by `total`, each element summed on one rank."""
    MPI = _mpi()
    size, rank = comm.Get_size(), comm.Get_rank()
    if size == 1:
        model *= np.float32(1.0 / total)
        return model
    counts, displs = _split(model.size, size)
    part = np.empty(counts[rank], dtype=model.dtype)
    comm.Reduce_scatter([model, MPI.FLOAT], [part, MPI.FLOAT], recvcounts=counts, op=MPI.SUM)
    part *= np.float32(1.0 / total)
    comm.Allgatherv([part, MPI.FLOAT], [model, (counts, displs), MPI.FLOAT])
    return model


def to_bfloat16(x):
    """float32 values as bfloat16 bits (uint16), rounded to the nearest, ties to even."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)


def from_bfloat16(bits):
    """bfloat16 bits (uint16) as float32 values (exact)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


@_collective
def weighted_mean_bf16(comm, model, origin, weight=1.0, total=None):
    """In place: model = origin + sum_r weight_r * (model_r - origin) / total, where `origin`
    (the buffer every rank started the block from, the same bits everywhere) is not sent, and
    the changes travel as bfloat16 (2 bytes a value, half of weighted_mean's): an Alltoallv
    of each rank's rounded change, each piece summed in rank order on its rank, an Allgatherv
    of the rounded mean change.  Every rank ends with the same bits.  The rounding error is
    relative to a block's change (8 bits of it), not to the weights, so small updates are not
    lost to it."""
    if not parallel(comm):
        return model
    change = model - origin
    if weight != 1.0:
        change *= np.float32(weight)
    mean = _coded_mean(comm, change, BFLOAT16, comm.Get_size() if total is None else total)
    np.add(origin, mean, out=model)
    return model


class _Codec:
    """How a coded mean (`_coded_mean`) sends float32 values: `code(x)` -> (codes, scale),
    `value(codes, scale)` -> float32; `dtype` and `mpi` the codes' numpy and MPI types;
    `scaled`: whether each piece travels with its scale (a float32)."""

    def __init__(self, dtype, mpi, code, value, scaled):
        self.dtype, self.mpi, self.code, self.value, self.scaled = dtype, mpi, code, value, scaled


def _coded_mean(comm, x, codec, total):
    """sum_r x_r / total over `comm`'s ranks (a new float32 array, the same bits on every
    rank), each rank's values coded by `codec`: an Alltoallv of each rank's codes of each
    piece (one nearly equal piece a rank) and, for a scaled code, an Alltoall of the
    pieces' scales; each piece decoded and summed in rank order in float32 on its rank,
    scaled by 1/total and coded again; an Allgatherv of the codes (and an Allgather of the
    scales) back, decoded."""
    MPI = _mpi()
    size, rank = comm.Get_size(), comm.Get_rank()
    counts, displs = _split(x.size, size)
    mine, kind = counts[rank], getattr(MPI, codec.mpi)
    codes, scales = _code_pieces(codec, x, counts, displs)
    pieces, their = np.empty(size * mine, dtype=codec.dtype), np.empty(size, dtype=np.float32)
    comm.Alltoallv([codes, (counts, displs), kind], [pieces, ([mine] * size, [k * mine for k in range(size)]), kind])
    if codec.scaled:
        comm.Alltoall([scales, MPI.FLOAT], [their, MPI.FLOAT])
    part = np.zeros(mine, dtype=np.float32)
    for k in range(size):
        part += codec.value(pieces[k * mine:(k + 1) * mine], their[k])
    part *= np.float32(1.0 / total)
    own_codes, own = codec.code(part)
    mean, every = np.empty(x.size, dtype=codec.dtype), np.empty(size, dtype=np.float32)
    comm.Allgatherv([own_codes, kind], [mean, (counts, displs), kind])
    if not codec.scaled:
        return codec.value(mean, None)
    comm.Allgather([np.array([own], dtype=np.float32), MPI.FLOAT], [every, MPI.FLOAT])
    out = np.empty(x.size, dtype=np.float32)
    for k, (c, d) in enumerate(zip(counts, displs)):
        out[d:d + c] = codec.value(mean[d:d + c], every[k])
    return out


def _code_pieces(codec, x, counts, displs):
    """(codes of x, a scale a piece): an unscaled code in one call, a scaled one piece by piece."""
    scales = np.ones(len(counts), dtype=np.float32)
    if not codec.scaled:
        return codec.code(x)[0], scales
    codes = np.empty(x.size, dtype=codec.dtype)
    for k, (c, d) in enumerate(zip(counts, displs)):
        codes[d:d + c], scales[k] = codec.code(x[d:d + c])
    return codes, scales


# 8-bit logarithmic codes of non-negative values against a scale `top` (their largest):
# code 254 is top, each code below it 2^(-1/LOG8_STEPS) of the one above, down to code 1
# (top * 2^(-253/8), about 3e-10 top); code 0 is 0, code 255 NaN.
LOG8_STEPS = lib.H2O_LOG8_STEPS  # (csrc/h2odl.h: the C code's own)
_LOG8_MULT = np.concatenate([[0.0], 2.0 ** ((np.arange(1, 255) - 254) / LOG8_STEPS), [np.nan]]).astype(np.float32)


def to_log8(v, top):
    """Non-negative float32 values `v` (at most `top`, a positive float32) as 8-bit
    logarithmic codes (uint8), rounded to the nearest code in the logarithm (a relative
    error of at most 2^(1/16) - 1, 4.4%); values below code 1's are 0; NaN, infinities and
    negative values are the NaN code, as is everything against a top that is not finite
    (csrc/codec.c, h2o_log8_encode; tests/test_codec.py holds it to a numpy reference)."""
    v = np.ascontiguousarray(v, dtype=np.float32)
    out = np.empty(v.shape, dtype=np.uint8)
    if v.size:  # (C, csrc/codec.c: a void function, its arguments checked here)
        lib.h2o_log8_encode(ffi.cast("const float *", v.ctypes.data), v.size, float(np.float32(top)),
                            ffi.cast("uint8_t *", out.ctypes.data))
    return out


def from_log8(codes, top):
    """8-bit logarithmic codes (uint8) against `top` as float32 values."""
    return _LOG8_MULT[np.asarray(codes, dtype=np.uint8)] * np.float32(top)


def _log8_top(x):
    """A piece's scale: its largest value (1 for an empty or all-zero piece; NaN where a
    value is not finite, so that the piece travels as NaN)."""
    if not x.size:
        return np.float32(1.0)
    top = np.float32(np.max(x)) if np.isfinite(x).all() else np.float32(np.nan)
    return top if top != 0 else np.float32(1.0)


@_collective
def weighted_mean_log8(comm, values, weight=1.0, total=None):
    """In place: a float32 buffer of non-negative values (ADADELTA's accumulators) becomes
    sum_r weight_r * values_r / total, the values travelling as 8-bit logarithmic codes
    (to_log8: 1 byte a value, 4.4% relative error at most, over 31 octaves below each
    piece's largest value): an Alltoallv of each rank's codes for each piece and an
    Alltoall of their scales (4 bytes a piece), each piece summed in rank order in float32
    on its rank, coded again against its own largest value, an Allgatherv and an Allgather
    back.  Every rank ends with the same bits; no value comes back negative."""
    if not parallel(comm):
        return values
    mine = values * np.float32(weight) if weight != 1.0 else values
    values[...] = _coded_mean(comm, mine, LOG8, comm.Get_size() if total is None else total)
    return values


BFLOAT16 = _Codec(np.uint16, "UINT16_T", lambda x: (to_bfloat16(x), np.float32(1.0)),
                  lambda codes, _scale: from_bfloat16(codes), scaled=False)


def _log8_code(x):
    top = _log8_top(x)
    return to_log8(x, top), top


LOG8 = _Codec(np.uint8, "UINT8_T", _log8_code, from_log8, scaled=True)


class NodeGroups:
    """The two communicators of a node-aware combine: `node` (this node's ranks, its leader
    rank 0) and `leaders` (one rank per node; None on the other ranks); `n_nodes` and
    `widest` (the most ranks on one node) for the run's report."""

    def __init__(self, node, leaders, n_nodes, widest):
        self.node, self.leaders, self.n_nodes, self.widest = node, leaders, n_nodes, widest

    def __str__(self):
        return f"node-aware over {self.n_nodes} nodes (up to {self.widest} ranks each)"

    def free(self):
        for c in (self.node, self.leaders):
            if c is not None:
                c.Free()
        self.node = self.leaders = None


def node_groups(comm, node_color=None):
    """Collective: the NodeGroups of `comm`, or None where the flat combine is as good (one
    rank, one node, or one rank per node).  The nodes are MPI's shared-memory domains, or,
    given `node_color` (an int per rank), the ranks of equal color (for tests)."""
    if not parallel(comm):
        return None
    node = node_communicator(comm) if node_color is None else split(comm, int(node_color), comm.Get_rank())
    lead = node.Get_rank() == 0
    leaders = split(comm, 0 if lead else None, comm.Get_rank())
    n_nodes = allreduce_scalar(comm, int(lead))
    widest = allreduce_scalar(comm, node.Get_size(), "max")
    groups = NodeGroups(node, leaders if lead else None, n_nodes, widest)
    if n_nodes == 1 or widest == 1:
        groups.free()
        return None
    return groups


def _split(n, parts):
    """Counts and offsets of n elements cut into `parts` nearly equal pieces."""
    counts = [n // parts + (1 if r < n % parts else 0) for r in range(parts)]
    displs = [0]
    for c in counts[:-1]:
        displs.append(displs[-1] + c)
    return counts, displs


# ---------------------------------------------------------------------------- objects
def _to_json(obj):
    def default(v):
        if isinstance(v, np.ndarray):
            a = np.ascontiguousarray(v)
            return {"__ndarray__": base64.b64encode(a.tobytes()).decode("ascii"),
                    "dtype": a.dtype.str, "shape": list(a.shape)}
        if isinstance(v, np.generic):
            return v.item()
        raise TypeError(f"cannot send a {type(v).__name__} between ranks")
    return json.dumps(obj, default=default, allow_nan=True).encode()


def _from_json(data):
    def hook(d):
        if "__ndarray__" in d:
            raw = base64.b64decode(d["__ndarray__"])
            return np.frombuffer(raw, dtype=np.dtype(d["dtype"])).reshape(d["shape"]).copy()
        return d
    return json.loads(bytes(data).decode(), object_hook=hook)


@_collective
def bcast_bytes(comm, data, root=0):
    """Root's bytes on every rank (its length first, then the buffer)."""
    if not parallel(comm):
        return data
    n = np.array([len(data) if comm.Get_rank() == root else 0], dtype=np.int64)
    comm.Bcast(n, root=root)
    buf = np.frombuffer(data, dtype=np.uint8).copy() if comm.Get_rank() == root else \
        np.empty(int(n[0]), dtype=np.uint8)
    comm.Bcast(buf, root=root)
    return buf.tobytes()


def bcast_obj(comm, obj, root=0):
    """Root's small object (JSON types and numpy arrays; tuples arrive as lists)."""
    if not parallel(comm):
        return obj
    return _from_json(bcast_bytes(comm, _to_json(obj) if comm.Get_rank() == root else b"", root))


@_collective
def allgather_obj(comm, obj):
    """Every rank's small object, in rank order (JSON types and numpy arrays; tuples arrive
    as lists)."""
    if not parallel(comm):
        return [obj]
    mine = np.frombuffer(_to_json(obj), dtype=np.uint8)
    counts = np.empty(comm.Get_size(), dtype=np.int64)
    comm.Allgather(np.array([mine.size], dtype=np.int64), counts)
    out = np.empty(int(counts.sum()), dtype=np.uint8)
    displs = np.concatenate([[0], np.cumsum(counts)[:-1]])
    comm.Allgatherv(mine, [out, counts.tolist(), displs.tolist(), _mpi().BYTE])
    return [_from_json(out[d:d + c]) for d, c in zip(displs, counts)]


@_collective
def gather_obj(comm, obj, root=0):
    """Every rank's small object on `root`, in rank order (a list there, None elsewhere)."""
    if not parallel(comm):
        return [obj]
    mine = np.frombuffer(_to_json(obj), dtype=np.uint8)
    counts = np.empty(comm.Get_size(), dtype=np.int64)
    comm.Allgather(np.array([mine.size], dtype=np.int64), counts)
    if comm.Get_rank() != root:
        comm.Gatherv(mine, None, root=root)
        return None
    out = np.empty(int(counts.sum()), dtype=np.uint8)
    displs = np.concatenate([[0], np.cumsum(counts)[:-1]])
    comm.Gatherv(mine, [out, counts.tolist(), displs.tolist(), _mpi().BYTE], root=root)
    return [_from_json(out[d:d + c]) for d, c in zip(displs, counts)]


# ---------------------------------------------------------------------------- timing
@_collective
def time_collective(comm, run, reps=3):
    """Seconds one call of `run()` takes (a collective over `comm`): a barrier before each
    repetition, the best repetition, the slowest rank's best (the same on every rank)."""
    if not parallel(comm):
        return 0.0
    best = math.inf
    for _ in range(reps):
        comm.Barrier()
        t = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t)
    return allreduce_scalar(comm, best, "max")
