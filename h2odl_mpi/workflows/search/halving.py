"""Asynchronous successive halving (ASHA, Li et al. 2018): strategy = "Halving" (the models
of RandomDiscrete, culled in rungs), or early_culling = true with any strategy.

Rungs: rung r trains a model to min_epochs x eta^r epochs (eta: reduction_factor); a model's
last rung is the first that reaches its own epochs, and trains to exactly those.  A model
that ends a rung below its last waits there (rungs/K.R.json, its checkpoints kept); one that
stops before its rung's epochs (early stopping, the search's time limit) is done in that rung.

Promotion (ASHA's get_job): a group that is free looks at the rungs from the highest down; in
rung r, the models that reached it so far (waiting there, gone on from it, or ended in it as
their last) are ranked by sort_by, and a model waiting in rung r among the best
floor(n_r / eta) of them is promoted to rung r+1.  A group with nothing to promote takes a
new model (rung 0); with no new model either, it waits while other groups train (one of them
may make a model promotable), and ends when none does.  Promotions are claimed as models are
(claims/K.rR, exclusively) and kept (promoted/K.R), so that a promoted rung interrupted by a
signal is continued by the resumed search.

A promoted model continues from its own checkpoint: it trains with resume = its checkpoint
directory, whose newest checkpoint is the one written at the end of its rung (or, after a
signal, a later one of the rung it was in), and epochs = the next rung's (epochs is the
total).  Its rungs below the last run with overwrite_with_best_model = false, so that the
checkpoint holds the model the training goes on with.  With threads = 1, a fixed
train_samples_per_iteration that divides each rung's rows (min_epochs x eta^r x rows) and
the restored random state, the model has the same bits as one trained to its epochs at once.

When the search ends (not on a signal), the models still waiting are culled: their record
(results/K.json) is their rung's, with status "culled" and its rung.
"""
import math
import time

from h2odl_mpi.workflows.search.leaderboard import sort_key_of, value_of

RELATIVE = 1e-9  # a rung's epochs within this fraction of the model's epochs are its last


def rung_epochs(min_epochs, eta, epochs):
    """The epochs at the end of each of a model's rungs: min_epochs x eta^r below `epochs`,
    then `epochs` itself."""
    out, e = [], float(min_epochs)
    while e < epochs * (1 - RELATIVE):
        out.append(e)
        e *= eta
    return out + [float(epochs)]


def kept(population, eta):
    """The indices of the best floor(n / eta) of `population` ({K: order}, lower order is better)."""
    best = sorted(population, key=lambda k: (population[k], k))
    return best[:len(population) // eta]


def promotions(populations, waiting, promoted, eta):
    """The rungs ASHA would start next, in its order: [(K, R+1)] for every model K waiting in
    rung R among the kept fraction of that rung, highest rungs first.
    populations: {R: {K: order}}; waiting: {(K, R)}; promoted: {(K, R)} already promoted."""
    out = []
    for r in sorted(populations, reverse=True):
        out += [(k, r + 1) for k in kept(populations[r], eta) if (k, r) in waiting and (k, r + 1) not in promoted]
    return out


def order_of(rec, key, direction):
    """A record's place in a ranking: lower is better, NaN last."""
    v = value_of(rec, key)
    return (1, 0.0) if math.isnan(v) else (0, -direction * v)


class Culling:
    """Successive halving over a search directory (search_dir.SearchDirectory): which rung a
    free group trains next, and the culled models at the end."""

    def __init__(self, directory, criteria):
        self.dir, self.sort_by = directory, criteria["sort_by"]
        self.min_epochs, self.eta = criteria["min_epochs"], criteria["reduction_factor"]

    def schedule(self, epochs):
        return rung_epochs(self.min_epochs, self.eta, epochs)

    def state(self):
        """(populations {R: {K: order}}, waiting {(K, R)}) from the records on disk."""
        rungs, finals = self.dir.rungs(), self.dir.finished()
        recs = [r for r in list(rungs.values()) + list(finals.values()) if r.get("status") != "failed"]
        if not recs:
            return {}, set()
        key, direction = sort_key_of(self.sort_by, recs[0].get("kind", "classification"))
        populations = {}
        for (k, r), rec in rungs.items():
            populations.setdefault(r, {})[k] = order_of(rec, key, direction)
        for k, rec in finals.items():  # ended in its last rung (or culled: counted already)
            if rec.get("status") == "done" and rec.get("rung") is not None:
                populations.setdefault(int(rec["rung"]), {})[k] = order_of(rec, key, direction)
        waiting = {(k, r) for (k, r) in rungs if k not in finals}
        return populations, waiting

    def promotion(self):
        """(K, R): a rung this group has claimed (a promoted one left by a stopped run, else
        ASHA's next promotion), or None."""
        promoted = self.dir.promoted()
        for k, r in sorted(promoted):
            if not self.dir.job_done(k, r) and self.dir.claim_rung(k, r):
                return k, r
        populations, waiting = self.state()
        for k, r in promotions(populations, waiting, promoted, self.eta):
            if self.dir.claim_rung(k, r):
                self.dir.mark_promoted(k, r)
                return k, r
        return None

    def cull_waiting(self):
        """At the end of the search: each model still waiting in a rung gets its record,
        its rung's with status "culled" and the time `culled` (its checkpoints go).
        Returns their indices."""
        _populations, waiting = self.state()
        top = {}
        for k, r in waiting:
            top[k] = max(top.get(k, r), r)
        rungs = self.dir.rungs()
        for k, r in sorted(top.items()):
            self.dir.record(k, dict(rungs[(k, r)], status="culled", rung=r, culled=time.time()))
        return sorted(top)
