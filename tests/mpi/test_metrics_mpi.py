"""Metrics combined across ranks equal the serial metrics of the concatenated rows
(pytest-mpi; run with 2 and 3 ranks).

Every rank builds the same global data from one seed, takes an uneven slice of it (one rank
gets no rows), and calls the collective metric functions with the world communicator and with
a sub-communicator.  Every rank compares with the single-process result on all rows: sums to
1e-12 relative, counts and confusion matrices exactly, and all ranks hold identical results.
Collective calls come first and assertions after, so a failing assertion on one rank cannot
leave the others waiting.
"""
import math

import numpy as np
import pytest
from mpi4py import MPI

from h2odl_mpi.evaluation.metrics import autoencoder_metrics, classification_metrics, regression_metrics

WORLD = MPI.COMM_WORLD
RANK, SIZE = WORLD.Get_rank(), WORLD.Get_size()
REL = 1e-12


def uneven_bounds(n, size, seed):
    """Cut points giving rank `size - 1` no rows and the others random, unequal shares."""
    rng = np.random.default_rng(seed)
    if size == 1:
        return [0, n]
    cuts = np.sort(rng.choice(np.arange(1, n), size=size - 2, replace=False)) if size > 2 else []
    return [0, *cuts, n, n]  # the last rank gets an empty slice


def local(arr, bounds, rank):
    return None if arr is None else arr[bounds[rank]:bounds[rank + 1]]


def cls_data(n, K, seed, weighted):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, K))
    y = rng.integers(0, K, n).astype(float)
    logits[np.arange(n), y.astype(int)] += 1.0
    p = np.exp(logits)
    p /= p.sum(1, keepdims=True)
    y[rng.random(n) < 0.1] = np.nan
    if K == 2:
        p[: n // 4, 1] = np.round(p[: n // 4, 1], 1)  # tied scores across rank boundaries
        p[: n // 4, 0] = 1 - p[: n // 4, 1]
    return p, y, (rng.uniform(0.1, 2.0, n) if weighted else None)


def same_on_all_ranks(comm, m):
    """Collective: is the dict's repr identical on every rank of comm?"""
    return comm.allreduce(len({repr(sorted(m.items()))} ^ set(comm.allgather(repr(sorted(m.items()))))),
                          op=MPI.MAX) == 0


def compare(dist, ser):
    """List of mismatching keys (floats to REL, everything else exactly)."""
    bad = []
    if dist.keys() != ser.keys():
        return ["keys: " + str(set(dist) ^ set(ser))]
    for k, v in ser.items():
        d = dist[k]
        if isinstance(v, float):
            if not ((math.isnan(v) and math.isnan(d)) or math.isclose(d, v, rel_tol=REL, abs_tol=1e-15)):
                bad.append((k, d, v))
        elif isinstance(v, list) and v and isinstance(v[0], list) and isinstance(v[0][0], float):
            if not np.allclose(np.array(d), np.array(v), rtol=REL, atol=1e-13):
                bad.append((k, d, v))
        elif isinstance(v, list) and v and isinstance(v[0], float):
            if not np.allclose(d, v, rtol=REL, atol=1e-15):
                bad.append((k, d, v))
        elif d != v:
            bad.append((k, d, v))
    return bad


def comms():
    """World, and a sub-communicator of the first SIZE-1 ranks (others get COMM_NULL)."""
    sub = WORLD.Split(0 if RANK < SIZE - 1 else MPI.UNDEFINED, RANK)
    return [("world", WORLD), ("sub", sub)]


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("K", [2, 3, 11])
@pytest.mark.parametrize("weighted", [False, True])
def test_classification_combined_exactly(K, weighted):
    p, y, w = cls_data(1500, K, seed=K * 7 + weighted, weighted=weighted)
    problems = []
    for name, comm in comms():
        if comm == MPI.COMM_NULL:
            continue
        size, rank = comm.Get_size(), comm.Get_rank()
        b = uneven_bounds(len(y), size, seed=size)
        for mode in ("argmax", "max_f1"):
            dist = classification_metrics(local(p, b, rank), local(y, b, rank), local(w, b, rank),
                                          comm=comm, binomial_threshold=mode)
            ident = same_on_all_ranks(comm, dist)
            ser = classification_metrics(p, y, w, binomial_threshold=mode)
            problems += [(name, mode, x) for x in compare(dist, ser)]
            if not ident:
                problems.append((name, mode, "ranks differ"))
        if name == "sub":
            comm.Free()
    assert not problems, problems


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("dist_name,kw", [("gaussian", {}), ("poisson", {}), ("gamma", {}),
                                          ("tweedie", {"tweedie_power": 1.4}), ("laplace", {}),
                                          ("quantile", {"quantile_alpha": 0.3}),
                                          ("huber", {"huber_delta": 0.5})])
def test_regression_combined_exactly(dist_name, kw):
    rng = np.random.default_rng(11)
    n = 1200
    y = rng.gamma(2.0, 1.5, n) + 1e3  # large mean: the variance needs the careful combine
    f = y * rng.uniform(0.9, 1.1, n)
    y[rng.random(n) < 0.1] = np.nan
    w = rng.uniform(0.1, 2.0, n)
    problems = []
    for name, comm in comms():
        if comm == MPI.COMM_NULL:
            continue
        size, rank = comm.Get_size(), comm.Get_rank()
        b = uneven_bounds(n, size, seed=size + 1)
        for weights in (None, w):
            dist = regression_metrics(local(f, b, rank), local(y, b, rank), local(weights, b, rank),
                                      comm=comm, distribution=dist_name, **kw)
            ident = same_on_all_ranks(comm, dist)
            ser = regression_metrics(f, y, weights, distribution=dist_name, **kw)
            problems += [(name, x) for x in compare(dist, ser)]
            if not ident:
                problems.append((name, "ranks differ"))
        if name == "sub":
            comm.Free()
    assert not problems, problems


@pytest.mark.mpi(min_size=2)
def test_autoencoder_and_empty_combined():
    e = np.random.default_rng(3).gamma(1.0, 0.1, 999)
    b = uneven_bounds(len(e), SIZE, seed=5)
    dist = autoencoder_metrics(local(e, b, RANK), comm=WORLD)
    ser = autoencoder_metrics(e)
    # no response anywhere: {} on every rank, no hang
    empty_c = classification_metrics(np.zeros((0, 3)), np.zeros(0), comm=WORLD)
    empty_b = classification_metrics(np.zeros((0, 2)), np.zeros(0), comm=WORLD)
    empty_r = regression_metrics(np.zeros(3), np.full(3, np.nan), comm=WORLD)
    assert compare(dist, ser) == []
    assert empty_c == {} and empty_b == {} and empty_r == {}


@pytest.mark.mpi(min_size=2)
def test_class_count_mismatch_raises_everywhere():
    K = 3 if RANK == 0 else 4
    try:
        classification_metrics(np.full((2, K), 1.0 / K), np.zeros(2), comm=WORLD)
        raised = False
    except ValueError:
        raised = True
    assert WORLD.allreduce(int(raised), op=MPI.SUM) == SIZE
