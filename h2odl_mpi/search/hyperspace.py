"""The models a search trains, in the order they are handed out.

The hyper-parameter space is the Cartesian product of the [hyper_params] lists, in the
file's order with the last parameter varying fastest (as H2O's Cartesian walker).  Model k of
the search is combination plan[k]: every combination in order (Cartesian), or a sample
without replacement drawn with the search seed (RandomDiscrete), cut at max_models.  The plan
is a pure function of the space and the criteria, so every rank, and a resumed search, agree
on which model k is without talking.
"""
import math

import numpy as np

from h2odl_mpi.errors import UserError

MAX_PLANNED = 1_000_000  # models a plan may list (a search of more needs max_models)


def space_size(hyper):
    return math.prod(len(v) for v in hyper.values())


def combination(hyper, index):
    """The parameters of combination `index` (mixed radix, the last parameter fastest)."""
    out = {}
    for name in reversed(list(hyper)):
        values = hyper[name]
        index, i = divmod(index, len(values))
        out[name] = values[i]
    return {name: out[name] for name in hyper}


def plan(hyper, criteria):
    """The combination indices of models 0, 1, ... of the search."""
    n, cap = space_size(hyper), criteria["max_models"]
    count = min(n, cap) if cap > 0 else n
    if count > MAX_PLANNED:
        raise UserError(f"search_criteria: the space has {n:,} combinations; set max_models "
                        f"(at most {MAX_PLANNED:,} models are planned)")
    if criteria["strategy"] == "Cartesian":
        return list(range(count))
    return _random_sample(n, count, criteria["seed"])


def _random_sample(n, count, seed):
    """`count` distinct indices below n, in a seeded random order (every prefix is itself a
    uniform sample, so max_models only cuts the list)."""
    rng = np.random.default_rng(seed)
    if n <= 4 * MAX_PLANNED:
        return [int(i) for i in rng.permutation(n)[:count]]
    seen, out = set(), []
    while len(out) < count:  # a huge space: rejection sampling never repeats for long
        i = int(rng.integers(n))
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out
