"""h2o-py's Deep Learning estimators as scikit-learn estimators.

    from h2odl_mpi import DeepLearningEstimator as H2ODeepLearningEstimator
    model = H2ODeepLearningEstimator(hidden=[32, 32], epochs=10, variable_importances=True)
    model.train(x=x, y="C785", training_frame="train.csv.gz", validation_frame="test.csv.gz")
    model.model_performance(valid=True).logloss(); model.predict("test.csv.gz").head()
    model.summary(); model.scoring_history(); model.varimp(use_pandas=True); model.save("m.h5")

Parameters are H2O-3's names and defaults (params.SPEC), with h2o-py's names for the data
(training_frame, validation_frame, response_column) and model_id; enum values may be spelt as
H2O does or as h2o-py does ("RectifierWithDropout", "rectifier_with_dropout").  Every
parameter is a keyword of the constructor and an attribute (get_params / set_params); what
training learns ends in "_" (network_, model_, info_, params_, scoring_history_, summary_,
classes_, ...), so settings and learned state stay apart.

Data: a file path (a list, directory or glob of files), a column store Frame, an
h2o.H2OFrame (h2odl_mpi.api.h2o), a pandas DataFrame or a numpy array.  `train(x, y,
training_frame, validation_frame)` is h2o-py's call (y a column name); `fit(X, y)`
scikit-learn's (y an array; a column name when X is a frame).  `predict` of an h2o.H2OFrame
answers as h2o-py (an H2OFrame: predict and the class probabilities; a path or a Frame gives
them as a pandas DataFrame), of an array or a pandas DataFrame as scikit-learn (an array).
After `train`, `model_id` is h2o-py's key (registry.py), which checkpoint= and
pretrained_autoencoder= take.  DeepLearningClassifier and DeepLearningRegressor fix
the kind (scikit-learn's classifier and regressor); DeepLearningEstimator decides it from the
response as H2O does; AutoEncoderEstimator trains an autoencoder.

With `comm` (an mpi4py communicator) every rank calls the same code with the same arguments:
arrays are split among the ranks (or replicated, with replicate_training_data), the ranks
train one model together, and every rank gets the same model and the same predictions.
"""
import inspect
import os
import re

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from h2odl_mpi.api import initial_values, registry
from h2odl_mpi.api.h2o_model import H2OModel, effective
from h2odl_mpi.model import model_io
from h2odl_mpi import params as P
from h2odl_mpi.collectives import bcast_bytes, bcast_obj, rank_and_size
from h2odl_mpi.errors import EstimatorError, H2OResponseError, UserError, agree
from h2odl_mpi.data.adapters import column_name, comm_of, frame_of_arrays, is_frame, is_pandas, response_name, to_frame
from h2odl_mpi.data.response import number_label


# h2o-py's names for the data parameters; the rest of params.SPEC keep their names
RENAMED = {"train": "training_frame", "validation": "validation_frame", "response": "response_column"}
# command-line parameters the estimators leave out: scoring_history names the CLI's CSV file,
# where h2o-py's model.scoring_history() is a method (the CSV: save the DataFrame it returns);
# na_strings is a parse option, which h2o.import_file(path, na_strings=...) takes, as in h2o-py
LEFT_OUT = ("scoring_history", "na_strings")
# the parameters of h2o-py's estimator that params.SPEC lacks (H2O_PARAMETERS says what each
# does here); nthreads and max_hit_ratio_k are not the estimator's in h2o-py 3.46
H2O_ONLY = tuple(n for n in P.H2O_ONLY if n not in ("model_id", "nthreads", "max_hit_ratio_k"))


def parameter_defaults(autoencoder=False):
    """Every constructor parameter and its default (H2O's; lists as tuples, as scikit-learn
    wants immutable defaults)."""
    out = {"model_id": None, "training_frame": None, "validation_frame": None, "response_column": None}
    for name, (_typ, default, _check, _help) in P.SPEC.items():
        if name not in RENAMED and name not in LEFT_OUT:
            out[name] = tuple(default) if isinstance(default, list) else default
    for name in H2O_ONLY:  # h2o-py's parameters this version lacks: accepted or refused by validate
        out[name] = P.H2O_ONLY[name][2][1]
    out["autoencoder"] = bool(autoencoder)
    out["comm"] = None
    return out


def _make_init(defaults):
    """An __init__ taking every parameter as a keyword (its signature lists them, which is
    what scikit-learn's get_params reads); it only stores them."""
    def __init__(self, **kwargs):
        for k in kwargs:
            if k not in defaults:
                near = P.closest(k, defaults)
                raise EstimatorError(f"unknown parameter {k!r}" + (f" (did you mean {near}?)" if near else ""))
        for k, v in defaults.items():
            setattr(self, k, kwargs.get(k, v))
    kw = inspect.Parameter.KEYWORD_ONLY
    __init__.__signature__ = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)] +
        [inspect.Parameter(k, kw, default=v) for k, v in defaults.items()])
    return __init__


def _plain(v):
    """Tuples and arrays as lists, numpy scalars as Python numbers (what params.validate takes)."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (tuple, np.ndarray)):
        return [_plain(x) for x in v]
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


# ---------------------------------------------------------------------------- estimator
class DeepLearningEstimator(H2OModel, BaseEstimator):
    """H2O Deep Learning (h2o-py's H2ODeepLearningEstimator): classification or regression
    as H2O decides from the response, or an autoencoder with autoencoder=True."""

    _kind = None            # "classification" / "regression": fixed by the flavours below

    __init__ = _make_init(parameter_defaults())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True          # NA inputs: mean imputation (or skipped rows)
        tags.non_deterministic = not (self.reproducible and self.seed not in (-1, None))
        tags.target_tags.required = not self.autoencoder
        return tags

    # ---- settings --------------------------------------------------------------------
    def _settings(self):
        """The settings as params.validate takes them (H2O's names; the data come apart)."""
        raw = {name: _plain(getattr(self, name)) for name in P.SPEC if name not in RENAMED and name not in LEFT_OUT}
        raw.update({name: _plain(getattr(self, name)) for name in H2O_ONLY})
        if isinstance(raw["hidden"], int):
            raw["hidden"] = [raw["hidden"]]
        raw["ignored_columns"] = raw["ignored_columns"] or []
        return raw

    def _validated(self, raw):
        try:
            return P.validate(raw)
        except UserError as e:
            raise H2OResponseError(str(e)) from None   # (h2o-py's error of a refused build)

    @property
    def params(self):
        """h2o-py's model.params: {name: {"default", "actual", "input"}} of every parameter;
        "actual" is the value H2O-3 resolves AUTO to once trained (distribution bernoulli,
        multinomial or gaussian; categorical_encoding OneHotInternal) and the model's key."""
        defaults = parameter_defaults(self.autoencoder)
        actual, info = getattr(self, "params_", {}), getattr(self, "info_", None)
        out = {}
        for name, default in defaults.items():
            if name == "comm":
                continue
            key = next((k for k, v in RENAMED.items() if v == name), name)
            value = effective(name, actual.get(key, getattr(self, name)), info)
            out[name] = {"default": default, "input": getattr(self, name), "actual": value}
        if hasattr(self, "model_id_"):
            out["model_id"]["actual"] = self.model_id_
        return out

    # ---- training --------------------------------------------------------------------
    def train(self, x=None, y=None, training_frame=None, offset_column=None, fold_column=None,
              weights_column=None, validation_frame=None, max_runtime_secs=None, ignored_columns=None,
              model_id=None, verbose=False):
        """h2o-py's train (its arguments, in its order): `x` the predictor columns (names or
        0-based indices; default all but y and the weights/offset/fold columns), `y` the
        response column (ignored by an autoencoder), the frames as paths, Frames,
        h2o.H2OFrames, pandas or numpy; verbose: the progress lines whatever quiet_mode says.
        Returns self."""
        self._forget()
        training_frame = self.training_frame if training_frame is None else training_frame
        comm = self.comm_ = comm_of(self.comm, training_frame)
        validation_frame = self.validation_frame if validation_frame is None else validation_frame
        if training_frame is None:
            raise EstimatorError("training_frame: no training data given")
        overrides = {k: v for k, v in (("weights_column", weights_column), ("offset_column", offset_column),
                                       ("fold_column", fold_column), ("max_runtime_secs", max_runtime_secs),
                                       ("quiet_mode", False if verbose else None)) if v is not None}
        frame = to_frame(training_frame, comm, bool(self.replicate_training_data), "training_frame")
        vframe = None if validation_frame is None else to_frame(validation_frame, comm, False, "validation_frame")
        y = self.response_column if y is None else y
        response = None
        if not self.autoencoder:
            if y is None:
                raise EstimatorError("y: the response column is required (unless autoencoder=True)")
            response = column_name(frame, y, "y")
        ignored = self._ignored(frame, x, response, ignored_columns, overrides)
        numeric = response is not None and frame.column(response).kind != "categorical"
        self._train_frames(frame, vframe, response, ignored, overrides, model_id,
                           distribution=self._forced_distribution(numeric))
        self.input_columns_ = [n for n in frame.names if n not in ignored and n != response and
                               n not in (overrides.get("weights_column", self.weights_column),
                                         overrides.get("offset_column", self.offset_column),
                                         overrides.get("fold_column", self.fold_column))]
        self.n_features_in_ = len(self.input_columns_)
        self.feature_names_in_ = np.array(self.input_columns_, dtype=object)
        self.fitted_on_ = "frame"
        self.model_id = self.model_id_   # h2o-py's model.model_id: the key (train only; fit leaves its parameters)
        return self

    def _ignored(self, frame, x, response, ignored_columns, overrides):
        """H2O's ignored columns: those given, and with x every column not in x, the
        response, the weights or the offset column."""
        ignored = list(_plain(ignored_columns if ignored_columns is not None else self.ignored_columns) or [])
        if x is None:
            return ignored
        x = [x] if isinstance(x, (str, int, np.integer)) else list(x)
        keep = {column_name(frame, c, "x") for c in x}
        special = {response, overrides.get("weights_column", self.weights_column),
                   overrides.get("offset_column", self.offset_column), overrides.get("fold_column", self.fold_column)}
        return ignored + [n for n in frame.names if n not in keep and n not in special and n not in ignored]

    def _train_frames(self, frame, vframe, response, ignored, overrides=None, model_id=None, distribution=None):
        """Train on the Frames and keep what was learned (every rank)."""
        from h2odl_mpi.workflows.cross_validation import train_or_cross_validate
        raw = self._settings()
        raw.update(overrides or {})
        if distribution is not None and raw["distribution"] == "AUTO":
            raw["distribution"] = distribution
        raw.update(response=response, ignored_columns=ignored, train=frame.source,
                   validation=vframe.source if vframe is not None else None)
        for f, what in ((frame, "training_frame"), (vframe, "validation_frame")):
            if f is not None and f.n_rows == 0:
                raise EstimatorError(f"{what}: no data rows")
        initial = initial_values.take(raw)
        with registry.model_files(raw, self.comm_) as given:
            params = self._validated(raw)
            params.update(initial)
            try:
                run = train_or_cross_validate(params, self.comm_, data=(frame, vframe))
            except UserError as e:
                raise H2OResponseError(str(e)) from None
        for key, model in given.items():  # the model it started from, not the temporary file gone now
            run.params[key] = model.model_id_
        if "checkpoint" in given:
            run.summary["continued_from"] = given["checkpoint"].model_id_
        self._learn(run.network, run.model, run.info, run.params, run.history, run.summary, run.state)
        self.model_id_ = bcast_obj(self.comm_, model_id or self.model_id) or registry.new_model_id(self.comm_)
        registry.keep_model(self)
        return run

    def _learn(self, network, model, info, params, history, summary, state):
        """The learned attributes (names ending in "_")."""
        self.network_, self.model_, self.info_, self.params_ = network, model, info, params
        self.scoring_history_, self.summary_, self.state_ = list(history), dict(summary), state
        if info.classification:
            self.classes_ = _classes_of(info)
            self.class_index_ = np.arange(len(info.domain))

    def fit(self, X, y=None, X_valid=None, y_valid=None):
        """scikit-learn's fit: X an array or pandas DataFrame and y its response array; or
        X a frame (path, Frame, h2o.H2OFrame) and y the response column's name.
        X_valid, y_valid: validation data of the same kind.  Returns self."""
        if is_frame(X):
            return self.train(y=y, training_frame=X, validation_frame=X_valid)
        self._forget()
        X, y, names = self._check_arrays(X, y, reset=True)
        if len(X) < 2 and self.ignore_const_cols:
            raise EstimatorError("X: 1 sample only: every input column is constant (ignore_const_cols), "
                                 "nothing to learn from")
        response = None if self.autoencoder else response_name(names)
        comm, replicate = self.comm, bool(self.replicate_training_data)
        self.comm_ = comm
        frame = frame_of_arrays(X, names, y, response, comm, replicate)
        vframe = None
        if X_valid is not None:
            Xv, yv, _ = self._check_arrays(X_valid, y_valid, reset=False, names=names)
            vframe = frame_of_arrays(Xv, names, yv, response, comm, False)
        numeric = y is not None and np.asarray(y).dtype.kind in "biuf"
        self._train_frames(frame, vframe, response, [], distribution=self._forced_distribution(numeric))
        self.input_columns_ = list(names)
        self.fitted_on_ = "arrays"
        if self.info_.classification:
            self.classes_, self.class_index_ = _classes_for(y, self.info_)
        return self

    def _forced_distribution(self, numeric):
        """The distribution that makes a flavour's kind H2O's choice where it is AUTO: a
        regressor's gaussian, a classifier's multinomial for a numeric response."""
        if self._kind == "regression":
            return "gaussian"
        if self._kind == "classification" and numeric:
            return "multinomial"
        return None

    def _forget(self):
        """Drop what an earlier fit learned (attributes ending in "_")."""
        for k in [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]:
            delattr(self, k)

    def _check_arrays(self, X, y, reset, names=None):
        """scikit-learn's checks of X (and y): (X as a float array, or the pandas DataFrame
        itself, whose columns may be categorical; y; the column names).  names: the
        columns of the data being fitted (for its validation data)."""
        original = X
        pandas = is_pandas(X)
        dtype = None if pandas else "numeric"
        if pandas and not reset and names is None and getattr(self, "fitted_on_", None) == "frame":  # H2O: by name
            missing = [n for n in self.input_columns_ if n not in set(map(str, X.columns))]
            if missing:
                raise EstimatorError(f"X: the model's input columns {missing[:10]} are not in the data")
            return original, y, [str(c) for c in original.columns]
        if self.autoencoder or not reset:
            X = validate_data(self, X, reset=reset, ensure_all_finite="allow-nan", dtype=dtype)
        else:  # (y None: scikit-learn's "requires y to be passed" error)
            X, y = validate_data(self, X, y, reset=reset, y_numeric=self._kind == "regression",
                                 ensure_all_finite="allow-nan", dtype=dtype)
            if self._kind == "classification":
                check_classification_targets(y)
                if len(np.unique(y)) < 2:
                    raise EstimatorError(f"y: one class only ({np.unique(y)[0]!r}): a classifier needs 2 or more")
        if pandas:
            return original, y, [str(c) for c in original.columns]
        if reset:
            names = [f"C{j + 1}" for j in range(X.shape[1])]
        elif names is None:
            names = [str(c) for c in getattr(self, "feature_names_in_", [])] or list(self.input_columns_)
        return np.asarray(X, dtype=np.float64), y, names

    # ---- predicting ------------------------------------------------------------------
    def __sklearn_is_fitted__(self):
        return hasattr(self, "model_")

    def _fitted(self):
        check_is_fitted(self, "model_")

    def _frame_of(self, X):
        """(Frame of X over the communicator, whether X came as a frame)."""
        if is_frame(X):
            return to_frame(X, self.comm_, False, "test_data"), True
        X, _, names = self._check_arrays(X, None, reset=False)
        return frame_of_arrays(X, names, None, None, self.comm_, False), False

    def _scores(self, frame, kind="predict", **kw):
        """predict.predict_frame on every rank: (header, values), all rows on every rank."""
        from h2odl_mpi.evaluation.predict import predict_frame
        try:
            return predict_frame(self.network_, self.model_, self.info_, frame, comm=self.comm_,
                                 threads=self._threads(), kind=kind, gather="all", **kw)
        except UserError as e:
            raise EstimatorError(str(e)) from None

    def _threads(self):
        return (getattr(self, "params_", None) or {}).get("threads") or None

    def predict(self, X):
        """Predictions.  Of an h2o.H2OFrame: as h2o-py, an H2OFrame (`predict` and the class
        probabilities, or an autoencoder's reconstruction) whose rows stay on the test
        frame's ranks; of a path or a Frame: a pandas DataFrame of the same columns.
        Of an array or pandas DataFrame: as scikit-learn, the labels (classes_), the values
        (regression) or the reconstruction (autoencoder, rows x inputs)."""
        self._fitted()
        frame, as_frame = self._frame_of(X)
        if as_frame:  # H2O labels two classes by the max-F1 threshold of the final scoring
            from h2odl_mpi.evaluation.predict import default_threshold
            threshold = None if self.info_.n_classes != 2 else getattr(self, "mojo_threshold_", None) or \
                default_threshold(self.scoring_history_, self.params_)
            if _is_h2oframe(X):
                return self._scores_h2oframe(X, "reconstruction" if self.info_.autoencoder else "predict",
                                             threshold=threshold)
            return _table(*self._scores(frame, "reconstruction" if self.info_.autoencoder else "predict",
                                        threshold=threshold))
        header, values = self._scores(frame, "reconstruction" if self.info_.autoencoder else "predict")
        if self.info_.autoencoder:
            return np.asarray(values, dtype=np.float64)
        if self.info_.classification:
            return self.classes_[np.asarray(self._probabilities(values)).argmax(axis=1)]
        return np.asarray(values[:, 0] if np.ndim(values) == 2 else values, dtype=np.float64)

    def _probabilities(self, values):
        """Class probabilities in classes_' order from predict_frame's values."""
        values = np.asarray(values)
        k = len(self.info_.domain)
        probs = np.asarray(values[:, -k:], dtype=np.float64)
        out = np.zeros((probs.shape[0], len(self.classes_)))
        out[:, self.class_index_] = probs
        return out

    def _may_be_classifier(self):
        if self._kind or self.autoencoder:
            return self._kind == "classification" and not self.autoencoder
        return not hasattr(self, "info_") or self.info_.classification

    @available_if(_may_be_classifier)
    def predict_proba(self, X):
        """scikit-learn's class probabilities (rows x classes_; classifiers only)."""
        self._fitted()
        frame, _ = self._frame_of(X)
        return self._probabilities(self._scores(frame, "predict")[1])

    def score(self, X, y=None, sample_weight=None):
        """scikit-learn's score: accuracy (classification), R^2 (regression), or minus the
        mean reconstruction error (autoencoder: the higher the better)."""
        self._fitted()
        if self.info_.autoencoder:
            return -float(np.mean(np.asarray(self.anomaly(X).iloc[:, 0], dtype=np.float64)))
        if y is None:
            raise EstimatorError("score: y (the true responses) is required")
        pred = self.predict(X)
        if self.info_.classification:
            return accuracy_score(y, pred, sample_weight=sample_weight)
        return r2_score(y, pred, sample_weight=sample_weight)

    def deepfeatures(self, test_data, layer):
        """h2o-py's deepfeatures: the activations of hidden layer `layer` (0-based),
        DF.L<layer+1>.C<j>: an H2OFrame of an H2OFrame, else a pandas DataFrame."""
        self._fitted()
        if _is_h2oframe(test_data):
            return self._scores_h2oframe(test_data, "deepfeatures", layer=layer)
        frame, _ = self._frame_of(test_data)
        return _table(*self._scores(frame, "deepfeatures", layer=layer))

    def anomaly(self, test_data, per_feature=False):
        """h2o-py's anomaly: an autoencoder's reconstruction error per row
        (Reconstruction.MSE), or per input with per_feature=True: an H2OFrame of an
        H2OFrame, else a pandas DataFrame."""
        self._fitted()
        if _is_h2oframe(test_data):
            return self._scores_h2oframe(test_data, "anomaly", per_feature=per_feature)
        frame, _ = self._frame_of(test_data)
        return _table(*self._scores(frame, "anomaly", per_feature=per_feature))

    def __getstate__(self):
        """Pickling (joblib, copy): the model goes as its model file's bytes (the kernel's
        buffers and handles are not picklable)."""
        state = dict(super().__getstate__())  # (a copy: object.__getstate__ gives __dict__ itself)
        if "model_" in state:
            state["_model_file"] = self._model_image()
            for k in ("network_", "model_", "info_"):
                del state[k]
        state.pop("comm_", None)
        return state

    def __setstate__(self, state):
        state = dict(state)
        image = state.pop("_model_file", None)
        super().__setstate__(state)
        self.comm_ = self.comm
        if image is not None:
            self.network_, self.model_, self.info_, _p, _a = model_io.load_model("(pickled model)", image=image)

    @classmethod
    def load(cls, path, comm=None):
        """A fitted estimator from a model file (train --model_out's, or save's): of this
        class, or when called on DeepLearningEstimator, an AutoEncoderEstimator for an
        autoencoder.  Rank 0 reads the file, every rank of `comm` gets it."""
        network, model, info, params, attrs = _read_model(path, comm)
        kind = cls
        if cls is DeepLearningEstimator and info.autoencoder:
            kind = AutoEncoderEstimator
        if bool(info.autoencoder) != bool(kind().autoencoder) or \
                (kind._kind and kind._kind != info.kind):
            raise EstimatorError(f"{path}: a {info.kind} model cannot be loaded as a {kind.__name__}")
        est = kind(**_constructor_args(params, kind), comm=comm)
        est.comm_ = comm
        summary = {k: attrs[k] for k in ("epochs", "training_samples", "iterations") if k in attrs}
        summary.update(variable_importances=attrs.get("variable_importances"),
                       model_summary=attrs.get("model_summary"), metrics=attrs.get("metrics") or {})
        est._learn(network, model, info, params, attrs.get("history", []), summary, attrs.get("state"))
        est.model_id_ = est.model_id or os.path.splitext(os.path.basename(os.fspath(path)))[0]
        registry.keep_model(est)
        est.input_columns_ = _input_columns(info)
        est.n_features_in_ = len(est.input_columns_)
        est.fitted_on_ = "frame"  # (columns by name)
        est.mojo_threshold_ = attrs.get("mojo_threshold")   # (an H2O-3 MOJO's default_threshold)
        return est


class DeepLearningClassifier(ClassifierMixin, DeepLearningEstimator):
    """H2O Deep Learning as scikit-learn's classifier: the response is a class whatever its
    values (numbers: distribution multinomial where AUTO)."""
    _kind = "classification"


class DeepLearningRegressor(RegressorMixin, DeepLearningEstimator):
    """H2O Deep Learning as scikit-learn's regressor (distribution gaussian where AUTO)."""
    _kind = "regression"


class AutoEncoderEstimator(TransformerMixin, DeepLearningEstimator):
    """h2o-py's H2OAutoEncoderEstimator: Deep Learning with autoencoder=True; y is ignored."""
    __init__ = _make_init(parameter_defaults(autoencoder=True))

    def transform(self, X, layer=None):
        """The deep features of the middle hidden layer (or `layer`), as an array."""
        self._fitted()
        n_hidden = self.network_.n_layers - 1
        frame, _ = self._frame_of(X)
        _, values = self._scores(frame, "deepfeatures", layer=(n_hidden - 1) // 2 if layer is None else layer)
        return np.asarray(values, dtype=np.float64)


# ------------------------------------------------------------------------------- helpers
def load_model(path, comm=None):
    """The estimator of a model file (h2o.load_model): DeepLearningEstimator, or
    AutoEncoderEstimator for an autoencoder."""
    return DeepLearningEstimator.load(path, comm)


def _read_model(path, comm):
    """model_io.load_model on every rank of `comm`, the file read once, by rank 0."""
    image, err = None, None
    if rank_and_size(comm)[0] == 0:
        try:
            with open(path, "rb") as f:
                image = f.read()
        except OSError as e:
            err = EstimatorError(f"{path}: cannot read the model file: {e.strerror or e}")
    agree(comm, err)
    image = bcast_bytes(comm, image if image is not None else b"")
    try:
        return model_io.load_model(os.fspath(path), image=image)
    except UserError as e:
        raise EstimatorError(str(e)) from None


def _constructor_args(params, kind):
    """The constructor's keywords from a model file's parameters (not the files of the run
    that trained it: checkpoint, resume, checkpoint_dir, model_out, summary_json)."""
    names = set(parameter_defaults()) - {"comm", "autoencoder", "checkpoint", "resume", "checkpoint_dir",
                                         "model_out", "summary_json"}
    out = {}
    for k, v in params.items():
        k = RENAMED.get(k, k)
        if k in names:
            out[k] = tuple(v) if isinstance(v, list) else v
    return out


def _input_columns(info):
    """The source columns a loaded model takes, in their training order where the names
    tell it (C1, C2, ...), else in the model's layout order."""
    names = [c.name for c in info.columns]
    names += [n for n, why in info.dropped.items() if why != "ignored" and n not in names]
    special = {info.response, info.weights_column, info.offset_column}
    names = [n for n in names if n not in special]
    if all(re.fullmatch(r"C\d+", n) for n in names):
        names.sort(key=lambda n: int(n[1:]))
    return names


def _classes_of(info):
    """classes_ of a classification model from its classes: numbers where the response
    was numeric (integers where they all are), else the labels."""
    domain = list(info.domain)
    if info.response_numeric:
        values = np.array([float(d) for d in domain])
        return values.astype(np.int64) if np.all(values == np.round(values)) else values
    return np.array(domain, dtype=object)


def _classes_for(y, info):
    """(classes_, class_index_) of an array response y: np.unique(y), and for each of the
    model's classes its position in classes_."""
    classes = np.unique(y)
    text = [number_label(c) if np.asarray(y).dtype.kind in "biuf" else str(c) for c in classes]
    where = {t: i for i, t in enumerate(text)}
    missing = [d for d in info.domain if d not in where]
    if missing:
        raise EstimatorError(f"y: the model's classes {missing} are not among the labels of y")
    return classes, np.array([where[d] for d in info.domain], dtype=np.int64)


def _is_h2oframe(data):
    """Whether `data` is an h2o.H2OFrame (whose scores are H2OFrames, as in h2o-py)."""
    from h2odl_mpi.api.h2oframe import H2OFrame
    return isinstance(data, H2OFrame)


def _table(header, values):
    """predict_frame's result as a pandas DataFrame (numbers as numbers)."""
    import pandas as pd
    return pd.DataFrame(np.asarray(values, dtype=object) if np.ndim(values) == 2 else values,
                        columns=list(header)).infer_objects()
