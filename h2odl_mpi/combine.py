"""Combining the ranks' models after each iteration: one object, one interface.

The training loop calls `combiner.combine(comm, model, rows_mine, rows_all)` once per
iteration, on every rank, after each rank trained `rows_mine` rows of its copy of the model
(`rows_all` of them over all ranks, which every rank knows).  On return every rank must
hold the same model buffer (weights, biases and optimizer state), bit for bit.
`combiner.time(comm, model)` measures one combine's communication, for the tuner of rows
per iteration.  A combiner may keep state between iterations (a block momentum, say); it
is made fresh for each training run.

To add a rule: a class with these two methods, an entry in COMBINERS, and (once there is a
choice) the parameter that picks it in params.SPEC.  `train(..., combiner=...)` takes any
object with this interface, which is how tests swap one in.
"""
import numpy as np

from h2odl_mpi.collectives import time_collective, weighted_mean


class ModelAverage:
    """Plain model averaging, as H2O does it: every rank's model weighted by the rows it
    trained (a rank stopped early by a signal, or holding no rows, weighs less or nothing)."""

    name = "average"

    def combine(self, comm, model, rows_mine, rows_all):
        if rows_all > 0:
            weighted_mean(comm, model, weight=float(rows_mine), total=float(rows_all))

    def time(self, comm, model):
        """Seconds of one combine of a buffer of the model's size (the slowest rank's)."""
        scratch = np.zeros_like(model)
        return time_collective(comm, lambda: weighted_mean(comm, scratch))


COMBINERS = {"average": ModelAverage}


def combiner_for(params):
    """A fresh combiner for a training run's parameters."""
    return ModelAverage()
