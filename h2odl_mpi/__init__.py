"""h2odl_mpi: H2O Deep Learning as an MPI program with a Hogwild! C kernel.

The package's folders are the stages of the work, each importing only the stages before it
and the base modules at this level (errors, collectives, atomic, sizes, splitmix, params,
config, kernel, threads, version):

    data/        the column store (frame/), preprocessing, encodings, response, folds
    model/       the model file, its layer table, the inputs' importances
    evaluation/  predictions, metrics and their tables, model_performance, predict, evaluate, report
    training/    one model: the loop, Hogwild! blocks, combining, scoring, checkpoints, outputs
    workflows/   many models: cross-validation, searches, ensembles
    api/         h2o-py's and scikit-learn's estimators, h2o-py's module functions
    cli.py, jobscript.py   the command line and the batch job scripts

Python API: `h2odl_mpi.params.validate(dict)` checks H2O-named parameters,
`h2odl_mpi.training.trainer.train(params, comm)` trains one model over any MPI communicator
and returns a `TrainingRun` (`h2odl_mpi.workflows.cross_validation.train_or_cross_validate`
also cross-validates when nfolds or fold_column asks), `h2odl_mpi.model.model_io.load_model(path)`
reads a model file.

As h2o-py (h2odl_mpi.api; scikit-learn estimators too):
    from h2odl_mpi import DeepLearningEstimator, AutoEncoderEstimator, h2o
    from h2odl_mpi import DeepLearningClassifier, DeepLearningRegressor, load_model
(imported on first use, so that the command line does not load scikit-learn).
"""
from h2odl_mpi.version import VERSION as __version__

_ESTIMATOR_NAMES = ("DeepLearningEstimator", "AutoEncoderEstimator", "DeepLearningClassifier",
                    "DeepLearningRegressor", "load_model")
__all__ = list(_ESTIMATOR_NAMES) + ["h2o"]


def __getattr__(name):
    if name in _ESTIMATOR_NAMES:
        from h2odl_mpi.api import estimator
        return getattr(estimator, name)
    if name == "h2o":
        from h2odl_mpi.api import h2o
        return h2o
    raise AttributeError(f"module 'h2odl_mpi' has no attribute {name!r}")
