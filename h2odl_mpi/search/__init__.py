"""Many models at once: H2O's grid and random search on groups of MPI ranks.

`python -m h2odl_mpi grid --config grid.toml --search_dir DIR [--ranks_per_model R]`, or
`grid_search(...)` from Python.  The modules:

    grid_file    the grid file: fixed train parameters, [hyper_params], [search_criteria]
    hyperspace   the models to train: every combination (Cartesian) or a seeded sample
    search_dir   the search directory: claims, finished records, the models' files
    leaderboard  the models sorted by a metric, as CSV, JSON and printed lines
    grid         the groups of ranks and their loop: claim a model, train it, record it
"""
from h2odl_mpi.search.grid import grid_search  # noqa: F401
