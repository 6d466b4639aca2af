"""Stage 6, the Python API: h2o-py's and scikit-learn's estimators and h2o-py's module
functions (`from h2odl_mpi import DeepLearningEstimator`, `from h2odl_mpi import h2o`).

Imports every stage below it."""
