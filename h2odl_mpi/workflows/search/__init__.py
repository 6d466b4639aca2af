"""Many models at once: H2O's grid and random search, a genetic search and successive
halving, on groups of MPI ranks.

`python -m h2odl_mpi grid --config grid.toml --search_dir DIR [--ranks_per_model R]`, or
`grid_search(...)` from Python.  The modules:

    grid_file      the grid file: fixed train parameters, [hyper_params], [search_criteria]
    hyperspace     the models to train: every combination (Cartesian) or a seeded sample
    evolution      Evolutionary: random models, then bred ones (selection, crossover,
                   mutation, islands and migration)
    halving        successive halving (ASHA): rungs of epochs, promotion, culling
    search_dir     the search directory: claims, proposals, records, rungs, the models' files
    leaderboard    the models sorted by a metric, as CSV, JSON and printed lines
    progress_plot  search_progress.png: the best metric so far against time and models
    grid           the groups of ranks and their loop: claim a job, train it, record it
"""
from h2odl_mpi.workflows.search.grid import grid_search  # noqa: F401
