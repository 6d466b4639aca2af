"""h2o-py's view of a trained model: its metrics (model_performance and model.auc(),
model.logloss(), ...), print(model), the layer table, the scoring history, the variable
importances, its model file (save) and its H2O-3 MOJO (download_mojo, save_mojo).

H2OModel is mixed into the estimators (h2odl_mpi.api.estimator): it reads what training
learned (the attributes ending in "_": network_, model_, info_, params_, summary_, state_,
scoring_history_, model_id_, comm_) and the estimator's _fitted(), _frame_of() and _threads().
"""
import os

from h2odl_mpi.collectives import rank_and_size
from h2odl_mpi.errors import EstimatorError, UserError, agree
from h2odl_mpi.atomic import write_bytes
from h2odl_mpi.model import importance, model_io, model_summary


class H2OModel:
    """h2o-py's model accessors, for an estimator that has been trained."""

    def model_performance(self, test_data=None, train=False, valid=False, xval=False, auc_type="AUTO"):
        """h2o-py's model_performance: the metrics on labelled `test_data` (computed now,
        performance.model_performance), or those the final scoring of training computed on
        the training data (train=True, the default), the validation data (valid=True) or
        the cross-validation holdouts (xval=True).  A performance.ModelPerformance with
        H2O's accessors (auc(), logloss(), rmse(), confusion_matrix(), ...)."""
        self._fitted()
        from h2odl_mpi.evaluation import performance
        if test_data is not None:
            frame, _ = self._frame_of(test_data)
            try:
                return performance.model_performance(self.network_, self.model_, self.info_, frame,
                                                     comm=self.comm_, threads=self._threads(),
                                                     params=self.params_, auc_type=auc_type)
            except UserError as e:
                raise EstimatorError(str(e)) from None
        which = "cross_validation" if xval else "validation" if valid and not train else "training"
        m = (self.summary_.get("metrics") or {}).get(which)
        if not m:
            raise EstimatorError({"validation": "valid=True: the model was trained without a validation_frame",
                                  "cross_validation": "xval=True: the model was not cross-validated (nfolds)",
                                  "training": "model_performance: the model holds no training metrics "
                                              "(give test_data)"}[which])
        return performance.ModelPerformance.from_dict({"model_category": _category(self.info_),
                                                       "domain": list(self.info_.domain), **m})

    def __str__(self):
        """print(model): h2o-py's model details once fitted (the layer table and the final
        scoring's metrics), else the settings."""
        if not self.__sklearn_is_fitted__():
            return repr(self)
        lines = ["Model Details", "=============", f"{type(self).__name__}: Deep Learning",
                 f"Model Key: {self.model_id_}", "",
                 model_summary.text(self.model_summary_rows(),
                                    model_summary.title(self.info_, self._samples(), self.network_))]
        metrics = self.summary_.get("metrics") or {}
        for which, flags, on in (("training", {"train": True}, "train"), ("validation", {"valid": True}, "validation"),
                                 ("cross_validation", {"xval": True}, "cross-validation")):
            if metrics.get(which):
                lines += ["", self.model_performance(**flags).text(on=on)]
        return "\n".join(lines)

    def show(self):
        """h2o-py's show(): print the model details."""
        print(str(self))

    def summary(self):
        """h2o-py's model summary: H2O's "Status of Neuron Layers", a pandas DataFrame."""
        self._fitted()
        return model_summary.to_pandas(self.model_summary_rows())

    def model_summary_rows(self):
        """The layer table as a list of dicts (model_summary.COLUMNS)."""
        self._fitted()
        return model_summary.table(self.network_, self.model_, self.params_, self._samples())

    def _samples(self):
        st = self.state_ or {}
        return int(st.get("samples", self.summary_.get("training_samples", 0)))

    def scoring_history(self):
        """h2o-py's scoring_history: one row a scoring event, a pandas DataFrame."""
        import pandas as pd
        self._fitted()
        return pd.DataFrame(self.scoring_history_)

    def varimp(self, use_pandas=False):
        """h2o-py's varimp: the inputs' variable importances (Gedeon), most important first,
        as (variable, relative_importance, scaled_importance, percentage) tuples, or a pandas
        DataFrame of these columns with use_pandas=True."""
        self._fitted()
        rows = self.summary_.get("variable_importances") or importance.table(
            self.info_.input_names, importance.gedeon(self.network_, self.model_))
        cols = ("variable", "relative_importance", "scaled_importance", "percentage")
        if use_pandas:
            import pandas as pd
            return pd.DataFrame([[r[c] for c in cols] for r in rows], columns=list(cols))
        return [tuple(r[c] for c in cols) for r in rows]

    def _metric(self, name, train=False, valid=False, xval=False):
        """A metric of the training / validation scoring (h2o-py's model.<metric>(...))."""
        self._fitted()
        m = self.summary_.get("metrics") or {}
        pick = {"train": (m.get("training") or {}).get(name), "valid": (m.get("validation") or {}).get(name),
                "xval": (m.get("cross_validation") or {}).get(name)}
        asked = [k for k, on in (("train", train), ("valid", valid), ("xval", xval)) if on]
        if len(asked) > 1:
            return {k: pick[k] for k in asked}
        return pick[asked[0]] if asked else pick["train"]

    # ---- files ---------------------------------------------------------------------------
    def _progress(self):
        """The model file's progress attributes: epochs, training_samples, iterations."""
        st = self.state_ or {}
        return {"epochs": st.get("epochs", self.summary_.get("epochs", 0.0)), "training_samples": self._samples(),
                "iterations": st.get("iteration", self.summary_.get("iterations", 0))}

    def _model_image(self):
        """The model file's bytes."""
        return model_io.model_image(self.network_, self.model_, self.info_, self.params_, self._progress(),
                                    self.scoring_history_, state=self.state_,
                                    importances=self.summary_.get("variable_importances"),
                                    metrics=self.summary_.get("metrics")).getvalue()

    def save(self, path):
        """Write the model file (the one train --model_out writes) to `path`, atomically,
        by rank 0 of the communicator; returns the path."""
        self._fitted()
        err = None
        if rank_and_size(self.comm_)[0] == 0:
            try:
                _check_output(path)
                write_bytes(os.fspath(path), self._model_image())
            except UserError as e:
                err = EstimatorError(str(e))
            except OSError as e:
                err = EstimatorError(f"{path}: cannot write: {e.strerror or e}")
        agree(self.comm_, err)
        return os.fspath(path)


    def download_mojo(self, path=".", get_genmodel_jar=False, genmodel_name=""):
        """h2o-py's download_mojo: the model as an H2O-3 Deep Learning MOJO (export --mojo),
        written into directory `path` as <model_id>.zip, or to `path` itself when it names a
        file; returns the file's path.  h2o-genmodel's jar comes with the `h2o` package
        (get_genmodel_jar is refused)."""
        if get_genmodel_jar or genmodel_name:
            raise EstimatorError("download_mojo: get_genmodel_jar is not supported here: h2o-genmodel is in the "
                                 "h2o package's jar (README, Deploying a model)")
        return self._write_mojo(path, force=True)

    def save_mojo(self, path="", force=False, filename=None):
        """h2o-py's save_mojo: as download_mojo, into directory `path` (the current one when
        empty) as `filename` (default <model_id>.zip); an existing file is kept unless force."""
        return self._write_mojo(os.path.join(path or ".", filename) if filename else (path or "."), force)

    def _write_mojo(self, path, force):
        """Rank 0 writes the MOJO (mojo_writer.write_mojo); returns its path."""
        from h2odl_mpi.evaluation.predict import model_threshold
        from h2odl_mpi.model.mojo_writer import write_mojo
        self._fitted()
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, f"{getattr(self, 'model_id_', None) or 'model'}.zip")
        err = None
        if rank_and_size(self.comm_)[0] == 0:
            try:
                if os.path.exists(path) and not force:
                    raise EstimatorError(f"{path}: exists (give force=True to replace it)")
                _check_output(path)
                attrs = {"history": self.scoring_history_, "metrics": self.summary_.get("metrics")}
                if getattr(self, "mojo_threshold_", None) is not None:
                    attrs["mojo_threshold"] = self.mojo_threshold_
                threshold = model_threshold(attrs, self.params_) if self.info_.n_classes == 2 else 0.5
                write_mojo(path, self.network_, self.model_, self.info_, self.params_, threshold)
            except UserError as e:
                err = EstimatorError(str(e))
            except OSError as e:
                err = EstimatorError(f"{path}: cannot write: {e.strerror or e}")
        agree(self.comm_, err)
        return path


def _add_metric_accessors(cls):
    """h2o-py's model.mse(train=, valid=), model.logloss(...), ...: the final scoring's values."""
    for name in ("mse", "rmse", "mae", "rmsle", "r2", "logloss", "auc", "aucpr", "mean_per_class_error",
                 "mean_residual_deviance", "classification_error"):
        def accessor(self, train=False, valid=False, xval=False, _name=name):
            return self._metric(_name, train, valid, xval)
        accessor.__name__ = name
        accessor.__doc__ = f"h2o-py's model.{name}(train=False, valid=False): the final scoring's {name}."
        setattr(cls, name, accessor)


_add_metric_accessors(H2OModel)


def _category(info):
    """H2O's model category of a data description."""
    if info.autoencoder:
        return "AutoEncoder"
    if info.classification:
        return "Binomial" if info.n_classes == 2 else "Multinomial"
    return "Regression"


def _check_output(path):
    """UserError naming `path` unless a model file can be written there."""
    target = os.path.abspath(os.fspath(path))
    if os.path.isdir(target):
        raise EstimatorError(f"{path}: is a directory: give a file name")
    if os.path.exists(target) and not os.path.isfile(target):
        raise EstimatorError(f"{path}: is not a regular file")
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        raise EstimatorError(f"{path}: no such directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise EstimatorError(f"{path}: cannot write in {parent}")
