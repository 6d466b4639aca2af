"""Combining the ranks' models after each iteration: one interface, a rule per class.

The training loop calls, on every rank:

    combiner.start(comm, model, n_params, state)   once, before the first iteration
    combiner.combine(comm, model, rows_mine, rows_all)   after every iteration
    combiner.current(model)   the global model (to score, keep, save), not a copy when it can
    combiner.state(model)     {name: float32 array}: what a checkpoint must hold, beside
                              current(model), to continue with the same bits
    combiner.time(comm, model)   seconds of one combine's communication, for the tuner
    combiner.rows_cap(n_total, ranks)   the most rows between combines (over all ranks) the
                              rule needs to stay accurate, or None; the tuner keeps below it
    combiner.own_seconds      seconds spent in the rule's own arithmetic (beyond the mean)
    combiner.settle()         before a checkpoint: the combine in flight, if any, has arrived
    combiner.drain(comm, model)   the last iteration: the combine in flight, if any, applied
                              (True where the model moved)
    combiner.finish()         once, when the run ends (frees its communicators)

`model` is the rank's float32 buffer: the weights and biases (`model[:n_params]`) and then the
optimizer state (ADADELTA's accumulators or the momenta).  `rows_mine` rows were trained into it
on this rank since the last combine, `rows_all` on all ranks (every rank knows both).  After
`combine` every rank holds the same buffer, bit for bit: each rule starts from the exact weighted
mean (collectives.weighted_mean) and then does the same float32 arithmetic on every rank.  The
optimizer state is always averaged (weighted by rows): it is a running statistic of the
gradients, not a point to filter.  A rule does nothing on one rank: a 1-rank run is the same
whatever the rule.

The mean is node-aware where the run spans several nodes with several ranks on a node
(collectives.node_groups: a Reduce to each node's leader through shared memory, the flat mean
among the leaders, a Bcast back), else flat; `layout` says which (the run's first lines).

With combine_overlap (Overlapped, wrapping any rule) the combine of an iteration runs behind the
next iteration's training and is applied one iteration late; without it, settle and drain
have nothing to do.

To add a rule: a class with these methods, an entry in COMBINERS under its name, and the name
among the choices of `combining_rule` in params.SPEC.
"""
import time

import numpy as np

from h2odl_mpi.collectives import (InFlight, node_groups, parallel, time_collective, weighted_mean,
                                   weighted_mean_bf16, weighted_mean_log8)
from h2odl_mpi.errors import UserError


class ModelAverage:
    """Plain model averaging, as H2O does it: every rank's model weighted by the rows it
    trained (a rank stopped early by a signal, or holding no rows, weighs less or nothing).
    N ranks then move about as far per combine as one rank does alone, for N times the rows.

    `precision` "bfloat16" (combine_precision): the mean is taken of each rank's change
    since the block's start (`origin`, the buffer every rank trained from, kept here), sent
    as bfloat16 (collectives.weighted_mean_bf16): half the bytes of float32.  "bfloat16_log8"
    (ADADELTA only: params.validate refuses it with momenta): the weights' and biases' changes
    as bfloat16, ADADELTA's two accumulators, which are never negative, as 8-bit logarithms of
    their values (collectives.weighted_mean_log8): a third of the bytes of float32."""

    name = "Average"
    own_seconds = 0.0
    node_color = None   # (tests: an int per rank that stands for its node; None: MPI's nodes)
    nodes = None        # collectives.NodeGroups, or None: the flat mean
    precision = "float32"
    origin = None       # (bfloat16, bfloat16_log8: the buffer the ranks started the block from)
    n_params = None     # the weights and biases at the start of the buffer; then the state

    def start(self, comm, model, n_params, state=None):
        self.n_params = n_params
        self.join(comm, model)

    def join(self, comm, model):
        """Collective: the node-aware groups of `comm` where they pay (see the module); the
        block's origin for a bfloat16 combine.  A rule's start() calls it once it has put
        the point the ranks train from into `model`."""
        self.finish()
        self.nodes = node_groups(comm, self.node_color)
        self.origin = model.copy() if self.precision != "float32" and parallel(comm) else None

    @property
    def layout(self):
        return str(self.nodes) if self.nodes is not None else "flat"

    def finish(self):
        if self.nodes is not None:
            self.nodes.free()
            self.nodes = None

    def combine(self, comm, model, rows_mine, rows_all):
        """The rows-weighted mean, then the rule's own step (`rule`)."""
        if rows_all == 0:
            return
        self._mean(comm, model, float(rows_mine), float(rows_all))
        t = time.perf_counter()
        self.rule(model)
        if self.origin is not None:
            self.origin[...] = model  # (where every rank trains the next block from)
        self.own_seconds += time.perf_counter() - t

    def rule(self, model):
        """The rule's step after the mean (`model` holds the mean): none for plain averaging."""

    overlap = False  # (Overlapped: the combine runs behind compute)

    def late(self, model, begin, g):
        """combine_overlap (Overlapped): the rule's step for the mean change `g` of the weights
        and biases since `begin`, the point the ranks trained that iteration from, one
        iteration late; model[:n_params] becomes where they train from next.  Here: the rule
        applied to the mean model begin + g."""
        np.add(begin, g, out=model[:self.n_params])
        self.rule(model)

    def settle(self):
        """Nothing in flight: every combine ends where it starts (see Overlapped)."""

    def drain(self, comm, model):
        """Nothing in flight to apply: False (see Overlapped)."""
        return False

    def current(self, model):
        return model

    def state(self, model):
        return {}

    def rows_cap(self, n_total, ranks):
        return None

    def time(self, comm, model):
        """Seconds of one combine of a buffer of the model's size (the slowest rank's)."""
        scratch = np.zeros_like(model)
        return time_collective(comm, lambda: self._mean(comm, scratch))

    def mean_of(self, comm, buf, weight=1.0, total=None):
        """In place: the weighted mean of `buf` over `comm`'s ranks, in float32 values, node-aware
        where this rule's mean is (combine_overlap's changes)."""
        return weighted_mean(comm, buf, weight=weight, total=total, nodes=self.nodes)

    def _mean(self, comm, buf, weight=1.0, total=None):
        """In place: the weighted mean of `buf` over the ranks, as this combiner sends it
        (float32 values, node-aware or flat; or changes from the origin as bfloat16; or
        those of the weights and biases, and the optimizer state's values as 8-bit logarithms)."""
        if self.origin is None:
            self.mean_of(comm, buf, weight, total)
        elif self.precision == "bfloat16":
            weighted_mean_bf16(comm, buf, self.origin, weight=weight, total=total)
        else:
            n = self.n_params
            weighted_mean_bf16(comm, buf[:n], self.origin[:n], weight=weight, total=total)
            if buf.size > n:
                weighted_mean_log8(comm, buf[n:], weight=weight, total=total)


class BlockMomentum(ModelAverage):
    """Blockwise model-update filtering (BMUF: Chen and Huo, ICASSP 2016; CNTK's block
    momentum learner; SlowMo, Wang et al., ICLR 2020), Nesterov form.

    W is the global model, D the filtered block update.  Every rank trains from the start
    point S = W + m D (Nesterov; S = W without it); at a combine, with A the weighted mean of
    the ranks' models:

        G = A - S                 the block's mean displacement
        D = m D + r G             filtered with the block momentum m and block rate r
        W = W + D
        S = W + m D               where every rank trains from next

    m defaults to 1 - 1/N for N ranks (CNTK's), so that a steady displacement adds up to
    r G / (1 - m) = N r G: N ranks move as far as one rank would over all their rows, where plain
    averaging moves 1/N of that.  `current` is W; a checkpoint holds W (as the model) and D."""

    name = "BlockMomentum"

    def __init__(self, momentum=-1.0, rate=1.0, nesterov=True):
        self.momentum_param, self.rate, self.nesterov = momentum, float(rate), bool(nesterov)
        self.w = self.d = None

    def start(self, comm, model, n_params, state=None):
        """model: the global model W every rank starts from (a fresh, pretrained or
        checkpointed one); state: a checkpoint's D (None: zeros)."""
        self.active = parallel(comm)
        if not self.active:
            return
        n = comm.Get_size()
        self.m = np.float32(1.0 - 1.0 / n if self.momentum_param < 0 else self.momentum_param)
        self.r = np.float32(self.rate)
        self.n_params = n_params
        self.w = model[:n_params].copy()
        d = (state or {}).get("block_update")
        self.d = np.zeros(n_params, dtype=np.float32) if d is None else np.array(d, dtype=np.float32)
        if self.d.shape != (n_params,):
            raise ValueError(f"block_update has {self.d.size} values for {n_params} weights and biases")
        self._start_point(model[:n_params])
        self.join(comm, model)

    def _start_point(self, out):
        """out = W + m D (or W): where the ranks train from."""
        if self.nesterov:
            np.multiply(self.d, self.m, out=out)
            out += self.w
        else:
            out[...] = self.w

    def rule(self, model):
        if not self.active:
            return
        a = model[:self.n_params]       # A, the mean; becomes the next start point
        g = np.empty_like(self.w)
        self._start_point(g)            # S, recomputed: the same bits as when it was set
        np.subtract(a, g, out=g)        # G = A - S
        self.d *= self.m
        g *= self.r
        self.d += g                     # D = m D + r G
        self.w += self.d                # W = W + D
        self._start_point(a)

    # combine_overlap: each G arrives one iteration late, and the ranks meanwhile train from a
    # start that lacks it.  With the full block learning rate the filter overshoots: 8 ranks
    # ended 3.3 points worse than in line on the MNIST pair (seed 1); predicting the step in
    # flight in the start (W + (m + m^2) D) was worse still, and r / 2 came within 0.6 points
    # (3 seeds; docs/training.md, "Combining behind compute").
    LATE_RATE = 0.5

    def late(self, model, begin, g):
        """combine_overlap: D = m D + (r / 2) G; W = W + D; the ranks go on from W + m D (W)."""
        if not self.active:
            return
        self.d *= self.m
        self.d += (self.r * np.float32(self.LATE_RATE)) * g
        self.w += self.d
        self._start_point(model[:self.n_params])

    def current(self, model):
        return _with_weights(model, self.w) if self.active else model

    def state(self, model):
        return {"block_update": self.d} if self.active else {}

    # The block momentum 1 - 1/N takes about N combines to build up.  Measured with the
    # defaults (benchmarks/results/rank_accuracy_defaults.md, MNIST pair, 3 seeds): at
    # 1.5 N combines an epoch 16 ranks needed 1.40x one rank's epochs to 12% test error,
    # at 3 N 1.03x (8 ranks: 1.10x and 0.92x); on a generated 200,000-row set 2 N was
    # between the two.
    COMBINES_PER_EPOCH_PER_RANK = 3.0
    rows_cap_reason = "about 3 x ranks combines an epoch, measured"

    def rows_cap(self, n_total, ranks):
        if ranks < 2:
            return None
        return max(ranks, n_total / (self.COMBINES_PER_EPOCH_PER_RANK * ranks))


class ElasticAverage(ModelAverage):
    """H2O's elastic_averaging (after elastic averaging SGD, Zhang, Choromanska and LeCun,
    2015): the consensus model C is a moving average of the ranks' mean model A,

        C = a A + (1 - a) C       a = elastic_averaging_moving_rate (H2O's time average)

    and the ranks continue from A pulled toward C by elastic_averaging_regularization p:
    A - p (A - C).  H2O applies that pull inside every row's update; here it is applied once a
    combine, where the ranks meet.  `current` (scored, kept, saved) is C, as in H2O; a
    checkpoint holds C (as the model) and the point the ranks train from."""

    name = "ElasticAveraging"

    def __init__(self, moving_rate=0.9, regularization=1e-3):
        self.a, self.p = np.float32(moving_rate), np.float32(regularization)
        self.c = None

    def start(self, comm, model, n_params, state=None):
        """model: the consensus C every rank starts from; state: a checkpoint's point the
        ranks trained from (None: C)."""
        self.active = parallel(comm)
        if self.active:
            self.n_params = n_params
            self.c = model[:n_params].copy()
            start = (state or {}).get("training_point")
            if start is not None:
                if np.shape(start) != (n_params,):
                    raise ValueError(f"training_point has {np.size(start)} values for {n_params} weights and biases")
                model[:n_params] = start
            self.join(comm, model)

    def rule(self, model):
        if not self.active:
            return
        a = model[:self.n_params]
        self.c *= np.float32(1) - self.a
        self.c += self.a * a            # C = a A + (1 - a) C
        a -= self.p * (a - self.c)      # the ranks go on from A - p (A - C)

    def current(self, model):
        return _with_weights(model, self.c) if self.active else model

    def state(self, model):
        return {"training_point": model[:self.n_params].copy()} if self.active else {}


class Overlapped:
    """combine_overlap: a rule's combine behind compute, one iteration late (overlap local SGD,
    Wang et al. 2020; delayed averaging).  At the end of iteration k every rank hands its
    weights' change since the iteration's start B (the buffer every rank started it from) and
    its optimizer state to a collective on a thread of its own (collectives.InFlight: the
    exact rows-weighted mean), and trains iteration k+1 while it travels.  At the end of k+1
    that mean change G_k is applied by the rule's `late` step (plain averaging and elastic
    averaging: as the mean model B + G_k; block momentum: at half its block learning rate),
    the state becomes the mean state, and the rule's next start point is where every rank
    trains k+2 from:

        end of iteration k:   G_k = mean(weights - B), started;   wait for G_(k-1)
                              model = rule.late(B, G_(k-1));   B = model

    so every iteration's rows count, one iteration late (the first iteration's start is also
    the second's).  Every rank holds the same B and rule state after every combine, bit for
    bit.  `settle()` waits for the change in flight (a checkpoint holds it, `pending_change`,
    and a resume gives a straight run's bits); `drain(model)` applies it (the last iteration:
    the final model has every row).  One rank: the rule itself, nothing in flight."""

    overlap = True

    def __init__(self, rule):
        self.rule = rule
        self.flight = self.begin = self.pending = None
        self.active = False

    name = property(lambda self: self.rule.name)
    own_seconds = property(lambda self: self.rule.own_seconds)

    @property
    def layout(self):
        return self.rule.layout + ", behind compute (applied one iteration late)"

    def start(self, comm, model, n_params, state=None):
        self.rule.start(comm, model, n_params, state)
        self.active, self.n = parallel(comm), n_params
        if not self.active:
            return
        try:
            self.flight = InFlight.open(comm)
        except ValueError as e:
            raise UserError(f"combine_overlap: {e}; set combine_overlap false, or build mpi4py "
                            "on an MPI with threads") from None
        self.begin = model.copy()
        self.changes = [np.empty_like(model), np.empty_like(model)]  # (one in flight, one applied)
        self.turn = 0
        pending = (state or {}).get("pending_change")
        if pending is not None:
            if np.shape(pending) != model.shape:
                raise ValueError(f"pending_change has {np.size(pending)} values for {model.size}")
            self.pending = self.changes[1]
            self.pending[...] = pending

    def combine(self, comm, model, rows_mine, rows_all):
        if not self.active:
            return self.rule.combine(comm, model, rows_mine, rows_all)
        if rows_all == 0:
            return
        self.settle()
        out, n = self.changes[self.turn], self.n
        np.subtract(model[:n], self.begin[:n], out=out[:n])
        out[n:] = model[n:]
        self.flight.launch(self.rule.mean_of, out, float(rows_mine), float(rows_all))
        self.turn ^= 1
        self._apply(model)

    def settle(self):
        """Wait for the change in flight (on every rank at the same point: a collective)."""
        if self.active and self.flight.busy:
            self.flight.wait()
            self.pending = self.changes[self.turn ^ 1]

    def drain(self, comm, model):
        """Apply the change in flight now; True where there was one (the model moved)."""
        if not self.active:
            return False
        self.settle()
        moved = self.pending is not None
        self._apply(model)
        return moved

    def _apply(self, model):
        """model = rule(B + G) with the settled G (none: model = B); B = model."""
        t = time.perf_counter()
        n = self.n
        if self.pending is None:
            model[...] = self.begin
        else:
            model[n:] = self.pending[n:]
            self.rule.late(model, self.begin[:n], self.pending[:n])
            self.pending = None
        self.begin[...] = model
        self.rule.own_seconds += time.perf_counter() - t

    def current(self, model):
        return self.rule.current(model)

    def state(self, model):
        """The rule's arrays and, when settled, the mean change not yet applied (the stall
        watchdog's copy, taken with it still in flight, goes without it: that iteration's
        rows are then lost to a resume)."""
        out = dict(self.rule.state(model))
        if self.active and self.pending is not None:
            out["pending_change"] = self.pending
        return out

    def rows_cap(self, n_total, ranks):
        return self.rule.rows_cap(n_total, ranks)

    rows_cap_reason = property(lambda self: getattr(self.rule, "rows_cap_reason", ""))

    def time(self, comm, model):
        return self.rule.time(comm, model)

    @property
    def seconds_behind(self):
        """Seconds the collectives spent on their thread, behind compute."""
        return self.flight.seconds if self.flight is not None else 0.0

    def finish(self):
        try:
            if self.flight is not None:
                self.flight.free()
                self.flight = None
        finally:
            self.rule.finish()


def _with_weights(model, weights):
    """A copy of `model` whose weights and biases (its first len(weights) values) are `weights`."""
    out = model.copy()
    out[:weights.size] = weights
    return out


COMBINERS = {"Average": ModelAverage, "BlockMomentum": BlockMomentum, "ElasticAveraging": ElasticAverage}


def combiner_for(params):
    """A fresh combiner for a training run's parameters (params.validate resolves AUTO and
    H2O's elastic_averaging into combining_rule)."""
    rule = params.get("combining_rule", "Average")
    if rule == "BlockMomentum":
        out = BlockMomentum(params["block_momentum"], params["block_learning_rate"], params["block_nesterov"])
    elif rule == "ElasticAveraging":
        out = ElasticAverage(params["elastic_averaging_moving_rate"], params["elastic_averaging_regularization"])
    else:
        out = ModelAverage()
    out.precision = params.get("combine_precision", "float32")
    return Overlapped(out) if params.get("combine_overlap") else out
