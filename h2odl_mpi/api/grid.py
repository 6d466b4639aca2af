"""h2o-py's H2OGridSearch over the search machinery: the space and criteria checked as the
grid command checks them (workflows.search.grid_file), the models planned as it plans them
(hyperspace: Cartesian, or RandomDiscrete's seeded sample, cut at max_models), ranked as its
leaderboard ranks them (by the validation metrics when there is a validation frame, else
the cross-validation or training ones).

    from h2odl_mpi.api.grid import H2OGridSearch      # instead of: from h2o.grid.grid_search import ...
    grid = H2OGridSearch(H2ODeepLearningEstimator(epochs=2), hyper_params={"hidden": [[8], [16]]},
                         grid_id="dl_grid")
    grid.train(x=x, y=y, training_frame=train, validation_frame=valid)
    best = grid.get_grid(sort_by="logloss", decreasing=False).models[0]

The models are trained one after another in this process, each on the training frame's
communicator (every rank runs the same script), as estimators: each is a model with a key
(<grid_id>_model_<k>) that h2o.get_model finds.  A model whose training fails is left out
and listed in failed_params with its error, as H2O-3 does.  Evolutionary and Halving
strategies, and max_runtime_secs and the early-stopping criteria of a search, are the grid
command's (search directories, groups of ranks): refused here.
"""
import math
import time

from h2odl_mpi.collectives import rank_and_size
from h2odl_mpi.errors import EstimatorError, UserError
from h2odl_mpi.workflows.search import hyperspace, leaderboard
from h2odl_mpi.workflows.search.grid_file import check_search

REFUSED_CRITERIA = ("max_runtime_secs", "stopping_rounds", "population", "mutation_rate", "tournament_size",
                    "islands", "migration_interval", "min_epochs", "reduction_factor", "early_culling")
STRATEGIES = {"Cartesian": "Cartesian", "RandomDiscrete": "RandomDiscrete", "Random": "RandomDiscrete"}


class H2OGridSearch:
    """h2o-py's grid search of Deep Learning models."""

    def __init__(self, model, hyper_params, grid_id=None, search_criteria=None, export_checkpoints_dir=None,
                 recovery_dir=None, parallelism=1):
        if isinstance(model, type):
            model = model()
        if not hasattr(model, "get_params"):
            raise EstimatorError(f"H2OGridSearch: model must be a Deep Learning estimator, got {type(model).__name__}")
        if export_checkpoints_dir is not None or recovery_dir is not None:
            raise EstimatorError("H2OGridSearch: export_checkpoints_dir and recovery_dir are not supported "
                                 "(the grid command's search directory continues a search)")
        if parallelism not in (0, 1):
            raise EstimatorError("H2OGridSearch: parallelism is 1 here (models in parallel: the grid command's "
                                 "--ranks_per_model)")
        self.model, self.grid_id = model, grid_id or f"Grid_DeepLearning_{int(time.time() * 1000)}"
        self.hyper_params = {k: list(v) for k, v in dict(hyper_params).items()}
        self.search_criteria = dict(search_criteria or {"strategy": "Cartesian"})
        self.models, self.failed_params, self.failure_details = [], [], []
        self.sort_by, self.decreasing = None, None

    def train(self, x=None, y=None, training_frame=None, offset_column=None, fold_column=None,
              weights_column=None, validation_frame=None, max_runtime_secs=None, ignored_columns=None,
              model_id=None, verbose=False, **params):
        """Train every model of the plan (h2o-py's arguments, in its order; other keywords
        are fixed parameters of every model; max_runtime_secs each model's; verbose: a line
        per model); returns self."""
        if model_id is not None:
            raise EstimatorError("H2OGridSearch.train: model_id is not used by a grid: its models are "
                                 "<grid_id>_model_<k>; name the grid with grid_id")
        hyper, criteria = self.checked()
        columns = {"offset_column": offset_column, "fold_column": fold_column, "weights_column": weights_column}
        base = {**self.model.get_params(), **params, **{k: v for k, v in columns.items() if v is not None}}
        self.models, self.failed_params, self.failure_details = [], [], []
        for k, index in enumerate(hyperspace.plan(hyper, criteria)):
            combo = hyperspace.combination(hyper, index)
            est = type(self.model)(**{**base, **combo, "model_id": f"{self.grid_id}_model_{k + 1}"})
            try:
                est.train(x=x, y=y, training_frame=training_frame, validation_frame=validation_frame,
                          max_runtime_secs=max_runtime_secs, ignored_columns=ignored_columns)
            except UserError as e:
                self.failed_params.append(combo)
                self.failure_details.append(str(e))
                continue
            est.grid_params_ = combo
            self.models.append(est)
            if verbose and rank_and_size(est.comm_)[0] == 0:
                print(f"{self.grid_id}: model {k + 1} {est.model_id_} {combo}")
        if not self.models:
            raise EstimatorError(f"H2OGridSearch: every model failed; the first: {self.failure_details[0]}")
        self.models = self.ranked(None, None)
        return self

    def checked(self):
        """(hyper_params, criteria) as the grid command checks them; h2o-py's strategy names."""
        criteria = dict(self.search_criteria)
        strategy = STRATEGIES.get(str(criteria.get("strategy", "Cartesian")))
        if strategy is None:
            raise EstimatorError(f"H2OGridSearch: search_criteria strategy {criteria.get('strategy')!r}: Cartesian "
                                 f"or RandomDiscrete here (Evolutionary and Halving: the grid command)")
        given = [k for k in REFUSED_CRITERIA if criteria.get(k) not in (None, 0, 0.0, False)]
        if given:
            raise EstimatorError(f"H2OGridSearch: search_criteria {given[0]} is not supported in a Python grid (the "
                                 f"grid command has it)")
        criteria["strategy"] = strategy
        criteria.pop("sort_by", None)
        try:
            hyper, checked = check_search(self.hyper_params, criteria, "H2OGridSearch")
        except UserError as e:
            raise EstimatorError(str(e)) from None
        return hyper, checked

    def ranked(self, sort_by, decreasing):
        """The models best first by `sort_by` (default: H2O's, logloss / deviance / MSE),
        in `decreasing` order when given."""
        records = [{"metrics": m.summary_.get("metrics") or {}, "status": "done", "kind": m.info_.kind,
                    "index": i} for i, m in enumerate(self.models)]
        try:
            order, key = leaderboard.ranked(records, sort_by or "AUTO")
        except UserError as e:
            raise EstimatorError(str(e)) from None
        if decreasing is not None:
            values = [leaderboard.value_of(r, key) for r in records]
            order = sorted(records, key=lambda r: (math.isnan(values[r["index"]]),
                                                   (-1 if decreasing else 1) * values[r["index"]]
                                                   if not math.isnan(values[r["index"]]) else 0.0))
        return [self.models[r["index"]] for r in order]

    def get_grid(self, sort_by=None, decreasing=None):
        """A copy of this grid with its models sorted by `sort_by` (a metric name)."""
        out = H2OGridSearch(self.model, self.hyper_params, self.grid_id, self.search_criteria)
        out.models, out.failed_params, out.failure_details = self.ranked(sort_by, decreasing), \
            list(self.failed_params), list(self.failure_details)
        out.sort_by, out.decreasing = sort_by, decreasing
        return out

    @property
    def model_ids(self):
        return [m.model_id_ for m in self.models]

    def get_hyperparams(self, id, display=True):
        """The hyper-parameter values of model `id` (a key or an index), as a list."""
        model = self.models[id] if isinstance(id, int) else next((m for m in self.models if m.model_id_ == id), None)
        if model is None:
            raise EstimatorError(f"get_hyperparams: no model {id!r} in grid {self.grid_id}")
        return [model.grid_params_[k] for k in self.hyper_params]

    def get_hyperparams_dict(self, id, display=True):
        return dict(zip(self.hyper_params, self.get_hyperparams(id)))

    def sorted_metric_table(self):
        """The models' hyper-parameters, keys and sort metric, a pandas DataFrame."""
        import pandas as pd
        key = self.metric_key()
        rows = [{**m.grid_params_, "model_ids": m.model_id_, key: self.metric_of(m, key)} for m in self.models]
        return pd.DataFrame(rows, columns=list(self.hyper_params) + ["model_ids", key])

    def metric_key(self):
        kind = self.models[0].info_.kind if self.models else "classification"
        return leaderboard.sort_key_of(self.sort_by or "AUTO", kind)[0]

    def metric_of(self, model, key):
        record = {"metrics": model.summary_.get("metrics") or {}}
        return leaderboard.value_of(record, key)

    def __len__(self):
        return len(self.models)

    def __getitem__(self, i):
        return self.models[i]

    def show(self):
        print(self.sorted_metric_table().to_string())

    def __repr__(self):
        return f"H2OGridSearch({self.grid_id}: {len(self.models)} model(s), {len(self.failed_params)} failed)"
