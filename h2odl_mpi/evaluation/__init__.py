"""Stage 3, evaluation: a model applied to data, distributed over the ranks: predictions,
H2O's metrics (combined exactly over ranks) and their tables, model_performance, the
stopping metrics, the `predict`, `evaluate` and `report` commands, and ensemble files scored
as one model.

Imports the base modules, h2odl_mpi.data and h2odl_mpi.model."""
