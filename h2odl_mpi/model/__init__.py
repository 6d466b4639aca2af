"""Stage 2, the model: the HDF5 model file (and checkpoint) that holds a network's weights
with its data description, H2O's layer table of a model, and the inputs' importances.

Imports the base modules and h2odl_mpi.data."""
