"""Stage 4, training one model: the loop (trainer), Hogwild! blocks of rows, rows per
iteration and their auto-tuning, combining the ranks' models, scoring while training, the
starting model, checkpoints and resume, progress lines and the files a run writes.

Imports the base modules, h2odl_mpi.data, h2odl_mpi.model and h2odl_mpi.evaluation."""
