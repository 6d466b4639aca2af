"""h2o-py's view of a trained model: its metrics (model_performance and model.auc(),
model.logloss(), ...), print(model), the layer table, the scoring history, the variable
importances, its model file (save) and its H2O-3 MOJO (download_mojo, save_mojo).

H2OModel is mixed into the estimators (h2odl_mpi.api.estimator): it reads what training
learned (the attributes ending in "_": network_, model_, info_, params_, summary_, state_,
scoring_history_, model_id_, comm_) and the estimator's _fitted(), _frame_of() and _threads().
"""
import os

import numpy as np

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

    # ---- scores as h2o-py's frames ----------------------------------------------------------
    def _scores_h2oframe(self, test, kind, **kw):
        """predict / deepfeatures / anomaly of an h2o.H2OFrame as an H2OFrame whose rows are
        the test frame's, on the same ranks (nothing gathered): "predict" a categorical
        column of the classes and p<class> columns, or numbers."""
        from h2odl_mpi.data.frame import Frame
        from h2odl_mpi.data.frame import derive
        from h2odl_mpi.evaluation.predict import predict_frame
        frame = test.frame
        gather = "all" if frame.replicated else "none"
        try:
            header, values = predict_frame(self.network_, self.model_, self.info_, frame, comm=self.comm_,
                                           threads=self._threads(), kind=kind, gather=gather, **kw)
        except UserError as e:
            raise EstimatorError(str(e)) from None
        values = np.asarray(values)
        columns = []
        for j, name in enumerate(header):
            if name == "predict" and self.info_.classification:
                where = {d: float(i) for i, d in enumerate(self.info_.domain)}
                codes = np.array([where.get(str(v), np.nan) for v in values[:, j]], dtype=np.float64)
                columns.append(derive.coded_column(name, codes, self.info_.domain))
            else:
                columns.append(derive.numeric_column(name, values[:, j].astype(np.float64)))
        out = test.fresh(Frame(columns, frame.comm, frame.replicated))
        out.ids = test.ids   # (the test frame's rows)
        return out

    # ---- the network's values and h2o-py's model JSON ---------------------------------------
    def weights(self, matrix_id=0):
        """The weights from layer `matrix_id` to the next (0: inputs to the first hidden
        layer) as an H2OFrame: a row per unit of the next layer, a column (C1, ...) per
        unit of this one."""
        return self._matrix_frame("weights", matrix_id)

    def biases(self, vector_id=0):
        """The biases of layer `vector_id` + 1 (0: the first hidden layer), an H2OFrame of
        one column, C1."""
        return self._matrix_frame("biases", vector_id)

    def _matrix_frame(self, what, layer):
        from h2odl_mpi.api.h2oframe import H2OFrame
        from h2odl_mpi.data.adapters import my_rows
        from h2odl_mpi.data.frame import Frame
        self._fitted()
        if not 0 <= int(layer) < self.network_.n_layers:
            raise EstimatorError(f"{what}({layer}): the network has weight layers 0..{self.network_.n_layers - 1}")
        values = np.asarray(self.network_.view(self.model_, what, int(layer)), dtype=np.float64)
        values = values.reshape(values.shape[0], -1)
        rows = my_rows(values.shape[0], self.comm_, False)
        data = {f"C{j + 1}": values[rows, j] for j in range(values.shape[1])}
        return H2OFrame(Frame.from_arrays(data, self.comm_))

    @property
    def actual_params(self):
        """h2o-py's actual_params: {parameter: the value the model was built with}."""
        return {name: p["actual"] for name, p in self.params.items()}

    @property
    def parms(self):
        """h2o-py's parms: {parameter: {"name", "default_value", "actual_value", "input_value"}}."""
        return {name: {"name": name, "default_value": p["default"], "actual_value": p["actual"],
                       "input_value": p["input"]} for name, p in self.params.items()}

    @property
    def _model_json(self):
        """The fields of h2o-py's model JSON that scripts read: model_id, algo, parameters,
        and output (model_category, names, domains, training/validation/cross-validation
        metrics, scoring_history, model_summary and variable_importances as tables with
        as_data_frame())."""
        self._fitted()
        import pandas as pd
        metrics = self.summary_.get("metrics") or {}
        info = self.info_
        names = list(self.input_columns_) + ([info.response] if info.response else [])
        output = {
            "model_category": _category(info), "names": names,
            "domains": [list(info.domain) if n == info.response and info.classification else None for n in names],
            "response_column_name": info.response,
            "training_metrics": metrics.get("training"), "validation_metrics": metrics.get("validation"),
            "cross_validation_metrics": metrics.get("cross_validation"),
            "scoring_history": H2OTable(pd.DataFrame(self.scoring_history_)),
            "model_summary": H2OTable(self.summary()),
            "variable_importances": H2OTable(self.varimp(use_pandas=True)) if not info.autoencoder else None,
            "epochs": float(self._progress()["epochs"]),
        }
        parameters = [{"name": n, "default_value": p["default"], "actual_value": p["actual"],
                       "input_value": p["input"]} for n, p in self.params.items()]
        return {"model_id": {"name": self.model_id_, "type": "Key<Model>"}, "algo": "deeplearning",
                "algo_full_name": "Deep Learning", "parameters": parameters, "output": output}

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


class H2OTable:
    """A table of h2o-py's model JSON (H2OTwoDimTable): as_data_frame(), col_header,
    cell_values, and a column by name."""

    def __init__(self, df):
        self.df = df

    def as_data_frame(self):
        return self.df.copy()

    @property
    def col_header(self):
        return list(self.df.columns)

    @property
    def cell_values(self):
        return self.df.values.tolist()

    def __getitem__(self, column):
        return self.df[column].tolist()

    def __len__(self):
        return len(self.df)

    def __repr__(self):
        return self.df.to_string()


def effective(name, value, info):
    """The value H2O-3 resolves a parameter set to AUTO to (what params' "actual" shows)."""
    if value != "AUTO" or info is None:
        return value
    if name == "distribution" and not info.autoencoder:
        return ("bernoulli" if info.n_classes == 2 else "multinomial") if info.classification else "gaussian"
    if name == "categorical_encoding":
        return "OneHotInternal"
    return value


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
