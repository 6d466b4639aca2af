"""h2odl_mpi: H2O Deep Learning as an MPI program with a Hogwild! C kernel.

Public Python API: see h2odl_mpi.estimator (H2ODeepLearning) once built.
"""
__version__ = "0.1.0"
