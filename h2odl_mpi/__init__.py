"""h2odl_mpi: H2O Deep Learning as an MPI program with a Hogwild! C kernel.

Python API: `h2odl_mpi.params.validate(dict)` checks H2O-named parameters,
`h2odl_mpi.trainer.train(params, comm)` trains over any MPI communicator and returns a
`TrainingRun`, `h2odl_mpi.model_io.load_model(path)` reads a model file.

As h2o-py (h2odl_mpi.estimator; scikit-learn estimators too):
    from h2odl_mpi import DeepLearningEstimator, AutoEncoderEstimator
    from h2odl_mpi import DeepLearningClassifier, DeepLearningRegressor, load_model
(imported on first use, so that the command line does not load scikit-learn).
"""
__version__ = "0.1.0"

_ESTIMATOR_NAMES = ("DeepLearningEstimator", "AutoEncoderEstimator", "DeepLearningClassifier",
                    "DeepLearningRegressor", "load_model")
__all__ = list(_ESTIMATOR_NAMES)


def __getattr__(name):
    if name in _ESTIMATOR_NAMES:
        from h2odl_mpi import estimator
        return getattr(estimator, name)
    raise AttributeError(f"module 'h2odl_mpi' has no attribute {name!r}")
