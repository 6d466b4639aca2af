"""An h2o-py Deep Learning script, written as h2o-py's documentation writes them (the airlines
data: loading, munging, training, checking metrics, grid search, checkpoint), changed only
in its imports (and the file's path: the bundled copy); the asserts check what it computed
against values worked out here independently."""
import numpy as np
import pandas as pd
import pytest


def test_an_h2o_py_script_runs_with_the_imports_changed(data_dir, capsys):
    from h2odl_mpi import h2o                                                    # import h2o
    from h2odl_mpi import DeepLearningEstimator as H2ODeepLearningEstimator     # from h2o.estimators import ...
    from h2odl_mpi.api.grid import H2OGridSearch                                # from h2o.grid.grid_search import ...
    from h2odl_mpi.errors import H2OResponseError                               # from h2o.exceptions import ...
    h2o.init()

    airlines = h2o.upload_file(str(data_dir / "airlines" / "allyears2k_headers.csv.gz"))
    airlines = airlines[airlines["Year"] >= 2007]          # a few thousand rows: the test stays fast
    airlines["Year"] = airlines["Year"].asfactor()
    airlines["Month"] = airlines["Month"].asfactor()
    airlines["DayOfWeek"] = airlines["DayOfWeek"].asfactor()
    airlines["Cancelled"] = airlines["Cancelled"].asfactor()
    airlines["logDistance"] = airlines["Distance"].log()
    airlines["late"] = (airlines["DepDelay"] > 15) & (airlines["Cancelled"] == "0")
    airlines[airlines["DepDelay"].isna(), "DepDelay"] = 0
    airlines = airlines.drop(["ArrDelay", "IsArrDelayed", "ArrTime", "DepTime", "CarrierDelay"])
    print(airlines.mean()[:2], airlines["Distance"].max(), airlines.nrow, airlines.ncol)

    predictors = ["Origin", "Dest", "Year", "UniqueCarrier", "DayOfWeek", "Month", "logDistance"]
    response = "IsDepDelayed"
    train, valid = airlines.split_frame(ratios=[.8], seed=1234)

    airlines_dl = H2ODeepLearningEstimator(hidden=[16], epochs=1, seed=1234, reproducible=True,
                                           score_each_iteration=True, force_load_balance=False)
    airlines_dl.train(x=predictors, y=response, training_frame=train, validation_frame=valid)
    auc = airlines_dl.auc(valid=True)
    pred = airlines_dl.predict(valid)
    print(airlines_dl.params["distribution"]["actual"], auc, pred.head())

    hyper_params = {"hidden": [[8], [16, 16]], "l1": [0, 1e-4]}
    grid = H2OGridSearch(model=H2ODeepLearningEstimator(epochs=1, seed=1234, reproducible=True),
                         hyper_params=hyper_params, grid_id="airlines_grid")
    grid.train(x=predictors, y=response, training_frame=train, validation_frame=valid)
    sorted_grid = grid.get_grid(sort_by="auc", decreasing=True)
    best = h2o.get_model(sorted_grid.model_ids[0])
    best_auc = best.model_performance(valid).auc()

    continued = H2ODeepLearningEstimator(checkpoint=airlines_dl.model_id, hidden=[16], epochs=2, seed=1234,
                                         reproducible=True)
    continued.train(x=predictors, y=response, training_frame=train, validation_frame=valid)
    maybe = train.head(200)
    maybe[maybe["Month"] == "1", response] = "MAYBE"       # a response class the checkpoint never saw
    with pytest.raises(H2OResponseError, match="Categorical factor levels of the training data must be the same"):
        H2ODeepLearningEstimator(checkpoint=airlines_dl.model_id, hidden=[16], epochs=3).train(
            x=predictors, y=response, training_frame=maybe)

    # -- what the script computed, checked independently --------------------------------------
    raw = pd.read_csv(data_dir / "airlines" / "allyears2k_headers.csv.gz", na_values=["NA"], encoding="latin-1",
                      low_memory=False)
    raw = raw[raw["Year"] >= 2007]
    assert airlines.nrow == len(raw) and train.nrow + valid.nrow == len(raw)
    assert airlines["Distance"].max() == raw["Distance"].max()
    np.testing.assert_allclose(airlines["logDistance"].as_data_frame().iloc[:, 0], np.log(raw["Distance"]))
    assert airlines["DepDelay"].nacnt() == [0] and airlines.types["Year"] == "enum"
    late = ((raw["DepDelay"] > 15) & (raw["Cancelled"] == 0)).astype(int).to_numpy()
    np.testing.assert_array_equal(airlines["late"].as_data_frame().iloc[:, 0], late)
    assert "ArrDelay" not in airlines.names and airlines.ncol == raw.shape[1] + 2 - 5
    assert airlines_dl.params["distribution"]["actual"] == "bernoulli" and 0.5 < auc <= 1
    assert pred.nrow == valid.nrow and pred.names == ["predict", "pNO", "pYES"]
    accuracy = (pred["predict"] == valid[response]).mean()[0]
    assert accuracy == pytest.approx(1 - airlines_dl.model_performance(valid).classification_error(), abs=1e-12)
    assert len(sorted_grid.models) == 4 and sorted(sorted_grid.model_ids) == [f"airlines_grid_model_{k}"
                                                                              for k in range(1, 5)]
    aucs = [m.auc(valid=True) for m in sorted_grid.models]
    assert aucs == sorted(aucs, reverse=True) and best_auc == pytest.approx(aucs[0])
    assert continued.params["checkpoint"]["actual"] == airlines_dl.model_id
    assert continued.summary_["training_samples"] == 2 * airlines_dl.summary_["training_samples"]
    assert "bernoulli" in capsys.readouterr().out
