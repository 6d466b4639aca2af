"""The models a search trains, in the order they are handed out.

The hyper-parameter space is the Cartesian product of the [hyper_params] lists, in the
file's order with the last parameter varying fastest (as H2O's Cartesian walker).  Model k of
the search is combination plan[k]: every combination in order (Cartesian), or a sample
without replacement drawn with the search seed (RandomDiscrete), cut at max_models.  The plan
is a pure function of the space and the criteria, so every rank, and a resumed search, agree
on which model k is without talking.  (Evolutionary breeds its models instead:
search.evolution; a parameter may then also be a Range.)
"""
from dataclasses import dataclass
import math

import numpy as np

from h2odl_mpi.errors import UserError

MAX_PLANNED = 1_000_000  # models a plan may list (a search of more needs max_models)


@dataclass(frozen=True)
class Range:
    """A number parameter's interval [lo, hi] (an Evolutionary gene): uniform, or uniform in
    log(value) with `log`; whole numbers for an integer parameter."""
    lo: float
    hi: float
    log: bool = False
    integer: bool = False

    def as_table(self):
        """As the grid file writes it (and as search.json keeps it)."""
        return {"min": self.lo, "max": self.hi, "log": self.log}

    def clip(self, v):
        v = min(max(v, self.lo), self.hi)
        return int(round(v)) if self.integer else float(v)


def has_ranges(hyper):
    return any(isinstance(v, Range) for v in hyper.values())


def as_json(hyper):
    """{name: list of values, or a range's table} (what search.json keeps)."""
    return {k: v.as_table() if isinstance(v, Range) else v for k, v in hyper.items()}


def space_size(hyper):
    """Combinations of the lists (infinite with a range of floats)."""
    sizes = [(int(v.hi - v.lo) + 1 if v.integer else math.inf) if isinstance(v, Range) else len(v)
             for v in hyper.values()]
    return math.prod(sizes)


def combination(hyper, index):
    """The parameters of combination `index` (mixed radix, the last parameter fastest)."""
    out = {}
    for name in reversed(list(hyper)):
        values = hyper[name]
        index, i = divmod(index, len(values))
        out[name] = values[i]
    return {name: out[name] for name in hyper}


def planned_count(hyper, criteria):
    """How many models a plan of the space lists (max_models cuts it); a UserError when
    that is more than MAX_PLANNED (checked before the search creates anything)."""
    n, cap = space_size(hyper), criteria["max_models"]
    count = min(n, cap) if cap > 0 else n
    if count > MAX_PLANNED:
        raise UserError(f"search_criteria: the space has {n:,} combinations; set max_models "
                        f"(at most {MAX_PLANNED:,} models are planned)")
    return count


def plan(hyper, criteria):
    """The combination indices of models 0, 1, ... of the search."""
    n, count = space_size(hyper), planned_count(hyper, criteria)
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


class ListedPlan:
    """Cartesian, RandomDiscrete and Halving's models: model k is combination plan[k],
    known before anything is trained (no model waits for others)."""

    def __init__(self, hyper, criteria, seed):
        self.hyper = hyper
        self.plan = plan(hyper, {**criteria, "seed": seed,
                                 "strategy": "Cartesian" if criteria["strategy"] == "Cartesian" else "Random"})
        self.count = len(self.plan)

    def needs(self, k):
        """The models whose records model k's proposal is made from: none."""
        return ()

    def propose(self, k, records=None):
        return {"params": combination(self.hyper, self.plan[k]), "parents": [], "island": None}
