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

To add a rule: a class with these methods, an entry in COMBINERS under its name, and the name
among the choices of `combining_rule` in params.SPEC.
"""
import time

import numpy as np

from h2odl_mpi.collectives import (node_groups, parallel, time_collective, weighted_mean, weighted_mean_bf16,
                                   weighted_mean_log8)


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

    def _mean(self, comm, buf, weight=1.0, total=None):
        """In place: the weighted mean of `buf` over the ranks, as this combiner sends it
        (float32 values, node-aware or flat; or changes from the origin as bfloat16; or
        those of the weights and biases, and the optimizer state's values as 8-bit logarithms)."""
        if self.origin is None:
            weighted_mean(comm, buf, weight=weight, total=total, nodes=self.nodes)
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

    def current(self, model):
        return _with_weights(model, self.w) if self.active else model

    def state(self, model):
        return {"block_update": self.d} if self.active else {}

    # The block momentum 1 - 1/N takes about N combines to build up, and those N combines
    # must not span too much training.  Measured with the defaults: on the MNIST pair (3
    # seeds, benchmarks/results/rank_accuracy_defaults.md) at 1.5 N combines an epoch 16
    # ranks needed 1.40x one rank's epochs to 12% test error, at 3 N 1.03x (8 ranks: 1.10x
    # and 0.92x); on a generated 200,000-row set 2 N was between the two.  On 1,000,000
    # rows (rank_accuracy_teacher_1m_defaults.md) 3 N left 8 ranks at 1.61x one rank's
    # epochs to its error after one epoch (N combines spanning 333,000 rows), where 6 N and
    # 12 N gave 0.83x and 0.79x (seed 1): so also at most WINDOW_ROWS rows over N combines.
    COMBINES_PER_EPOCH_PER_RANK = 3.0
    WINDOW_ROWS = 100_000
    rows_cap_reason = (f"about 3 x ranks combines an epoch, and at most {WINDOW_ROWS:,} rows over ranks "
                       "combines, measured")

    def rows_cap(self, n_total, ranks):
        if ranks < 2:
            return None
        return max(ranks, min(n_total / (self.COMBINES_PER_EPOCH_PER_RANK * ranks), self.WINDOW_ROWS / ranks))


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
    return out
