"""h2odl_mpi: H2O Deep Learning as an MPI program with a Hogwild! C kernel.

Python API: `h2odl_mpi.params.validate(dict)` checks H2O-named parameters,
`h2odl_mpi.trainer.train(params, comm)` trains over any MPI communicator and returns a
`TrainingRun`, `h2odl_mpi.model_io.load_model(path)` reads a model file.
"""
__version__ = "0.1.0"
