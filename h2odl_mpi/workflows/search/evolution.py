"""strategy = "Evolutionary": an asynchronous genetic search, with no generation barrier.

The genes are the [hyper_params]: a list of values (in the file's order) or a Range
{min, max[, log]}.  Model k of the search is:

    k < population      a random draw: each gene uniform over its list or range (uniform in
                        log(value) with log = true), redrawn (up to 10 times) where it equals
                        an earlier draw
    k >= population     bred from its pool (below), as soon as a group is free for it:
                        two tournament selections (tournament_size models drawn with
                        replacement, the best by sort_by wins; the second among the others),
                        uniform crossover (each gene from either parent with probability
                        1/2), then mutation of each gene with probability mutation_rate: a
                        neighbouring value of a list (one step in the file's order), a
                        Gaussian step in a range (sd 1/5 of its width, in log(value) with
                        log), clipped to the range.  A child equal to a model it was bred
                        from the records of (j <= k - lag, any island, failed ones too) has
                        one random gene mutated again (up to 10 times).  An empty pool (all
                        its models failed) gives a random draw.

Islands (`islands` I): model k belongs to island k mod I, and its pool holds only its island's
models; at the island's models number migration_interval, 2 x migration_interval, ...
(model k = m*I + i) the best model of every other island joins the island's pool for good
(migration).  Islands belong to models rather than groups, so that which group trains a model
changes nothing; with models of equal cost a group trains the models of one island.

Reproducibility: model k's proposal is a pure function of the search seed, k and the
records of its pool's candidates, the models j <= k - lag, lag = the number of groups of the
search's first run (search.json): when a group claims model k the other groups are training
about models k-1 .. k-lag+1, so those j have (nearly always) ended; the group waits until
every one of them has a record (the search's loop, grid.py).  So with threads = 1 and the same
seed and number of groups, a search proposes the same models in the same order, whichever
group finishes first.  With early culling (search.halving) models are compared on their
rung-0 metric, which every model has (its later rungs depend on the order models end).
"""
import json
import math

import numpy as np

from h2odl_mpi.workflows.search.hyperspace import Range
from h2odl_mpi.workflows.search.leaderboard import sort_key_of, value_of

STEP = 0.2            # a range's mutation step: this fraction of its width (sd)
REDRAWS = 10          # tries for a draw or a child unlike the ones before
DRAW, BREED, FALLBACK = 1, 2, 3   # the random streams of model k: [seed, k, stream]


# ---- one gene ------------------------------------------------------------------------------

def random_value(gene, rng):
    """A value drawn uniformly from a list or a Range."""
    if not isinstance(gene, Range):
        return gene[int(rng.integers(len(gene)))]
    if gene.log:
        return _clean(gene, math.exp(rng.uniform(math.log(gene.lo), math.log(gene.hi))))
    if gene.integer:
        return int(rng.integers(int(gene.lo), int(gene.hi) + 1))
    return _clean(gene, rng.uniform(gene.lo, gene.hi))


def mutate_value(gene, value, rng):
    """A neighbour of `value`: the next or previous value of a list, a Gaussian step in a Range."""
    if not isinstance(gene, Range):
        if len(gene) == 1:
            return gene[0]
        i = _index(gene, value)
        if i is None:
            return random_value(gene, rng)
        j = 1 if i == 0 else len(gene) - 2 if i == len(gene) - 1 else i + (1 if rng.random() < 0.5 else -1)
        return gene[j]
    if gene.log:
        width = math.log(gene.hi) - math.log(gene.lo)
        new = math.exp(math.log(max(float(value), gene.lo)) + rng.normal(0.0, STEP * width))
    else:
        new = float(value) + rng.normal(0.0, STEP * (gene.hi - gene.lo))
    if gene.integer:
        new = round(new)
        if new == value:  # a step of less than one: one whole step, towards the inside
            new = value + (1 if value < gene.hi and (value == gene.lo or rng.random() < 0.5) else -1)
        return gene.clip(new)
    return _clean(gene, new)


def _clean(gene, v):
    """A float gene's value with 4 significant digits (readable in the leaderboard), clipped."""
    return gene.clip(float(f"{v:.4g}"))


def _index(values, value):
    key = _key(value)
    return next((i for i, v in enumerate(values) if _key(v) == key), None)


def _key(v):
    return json.dumps(v, sort_keys=True)


# ---- whole proposals ---------------------------------------------------------------------

def random_params(hyper, rng):
    return {name: random_value(gene, rng) for name, gene in hyper.items()}


def crossover(a, b, hyper, rng):
    """Uniform crossover: each gene from parent a or b with probability 1/2."""
    return {name: (a if rng.random() < 0.5 else b)[name] for name in hyper}


def mutate(params, hyper, rate, rng):
    """Each gene mutated with probability `rate`."""
    return {name: mutate_value(gene, params[name], rng) if rng.random() < rate else params[name]
            for name, gene in hyper.items()}


def tournament(pool, size, rng):
    """The best of `size` members of `pool` drawn with replacement (pool: Members)."""
    picks = rng.integers(len(pool), size=size)
    return min((pool[int(i)] for i in picks), key=lambda m: m.order)


class Member:
    """A model as breeding sees it: index, id, parameters, and its order (lower is better)."""

    def __init__(self, index, rec, key, direction):
        v = value_of(rec, key)
        self.index, self.model_id, self.params = index, rec["model_id"], rec["params"]
        self.order = (math.isnan(v), -direction * v if not math.isnan(v) else 0.0, index)


def members(records, sort_by):
    """{j: Member} of the records a model can be bred from (not failed, with a metric)."""
    usable = {j: r for j, r in records.items() if r is not None and r.get("status") != "failed" and r.get("metrics")}
    if not usable:
        return {}
    key, direction = sort_key_of(sort_by, next(iter(usable.values())).get("kind", "classification"))
    out = {j: Member(j, r, key, direction) for j, r in usable.items()}
    return {j: m for j, m in out.items() if not m.order[0]}  # (a NaN metric breeds nothing)


class Evolution:
    """The Evolutionary strategy: `count` models; `needs(k)`: the models whose records
    model k is bred from; `propose(k, records)`: its parameters, parents and island."""

    def __init__(self, hyper, criteria, seed, groups):
        self.hyper, self.seed = hyper, int(seed)
        self.count = criteria["max_models"]
        self.islands, self.interval = criteria["islands"], criteria["migration_interval"]
        self.population = criteria["population"] or max(4, 2 * groups, 2 * self.islands)
        self.rate, self.tournament_size, self.sort_by = (criteria["mutation_rate"], criteria["tournament_size"],
                                                         criteria["sort_by"])
        self.lag = max(1, int(groups))
        self._draws = []  # the random models 0, 1, ... (each a function of the seed and its index)

    def needs(self, k):
        return range(0, k - self.lag + 1) if k >= self.population else range(0)

    def propose(self, k, records=None):
        """Model k's {"params", "parents" (model ids), "island"}; `records`: {j: record or
        None} for j in needs(k) (all of them, so that the proposal is reproducible)."""
        island = k % self.islands
        if k < self.population:
            return {"params": self.draw(k), "parents": [], "island": island}
        pool = self.pool(k, members(records or {}, self.sort_by))
        if not pool:
            rng = np.random.default_rng([self.seed, k, FALLBACK])
            return {"params": random_params(self.hyper, rng), "parents": [], "island": island}
        rng = np.random.default_rng([self.seed, k, BREED])
        a = tournament(pool, self.tournament_size, rng)
        b = tournament([m for m in pool if m is not a] or pool, self.tournament_size, rng)
        child = mutate(crossover(a.params, b.params, self.hyper, rng), self.hyper, self.rate, rng)
        child = self._unlike(child, {_key(r["params"]) for r in (records or {}).values() if r}, rng)
        return {"params": child, "parents": list(dict.fromkeys([a.model_id, b.model_id])), "island": island}

    def draw(self, k):
        """Random model k (k < population), unlike the draws before it where possible."""
        while len(self._draws) <= k:
            j = len(self._draws)
            rng = np.random.default_rng([self.seed, j, DRAW])
            seen = {_key(p) for p in self._draws}
            params = random_params(self.hyper, rng)
            for _ in range(REDRAWS):
                if _key(params) not in seen:
                    break
                params = random_params(self.hyper, rng)
            self._draws.append(params)
        return dict(self._draws[k])

    def _unlike(self, child, seen, rng):
        """The child, with one random gene mutated again while it equals a model in `seen`."""
        names = list(self.hyper)
        for _ in range(REDRAWS):
            if _key(child) not in seen:
                break
            name = names[int(rng.integers(len(names)))]
            child = dict(child, **{name: mutate_value(self.hyper[name], child[name], rng)})
        return child

    # ---- islands ---------------------------------------------------------------------------
    def pool(self, k, found):
        """Model k's pool, by index: its island's models j <= k - lag, and the migrants its
        island received up to k.  found: {j: Member} of the usable records."""
        island, limit = k % self.islands, k - self.lag
        out = {j: m for j, m in found.items() if j <= limit and j % self.islands == island}
        if self.islands > 1:
            step = self.interval * self.islands  # an island's migrations: every `interval` of its models
            for event in range(step + island, k + 1, step):
                out.update({m.index: m for m in self.migrants(event, found)})
        return [out[j] for j in sorted(out)]

    def migrants(self, event, found):
        """The best model of every other island than model `event`'s, among j <= event - lag."""
        island, limit = event % self.islands, event - self.lag
        best = {}
        for j, m in found.items():
            o = j % self.islands
            if j <= limit and o != island and (o not in best or m.order < best[o].order):
                best[o] = m
        return [best[o] for o in sorted(best)]
