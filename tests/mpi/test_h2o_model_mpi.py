"""h2o-py's module and model object on several ranks (run with 2 and 3 ranks): create_frame
makes the frame one process makes; a model trained on a spread frame has one key on every
rank, which checkpoint= resolves; predict gives an H2OFrame whose rows stay on their ranks
and whose frame arithmetic agrees with the model's metrics; a grid search trains and ranks
the same models on every rank.  Collective calls come before assertions."""
import numpy as np
import pytest
from mpi4py import MPI

from h2odl_mpi import DeepLearningEstimator, h2o
from h2odl_mpi.api.grid import H2OGridSearch
from h2odl_mpi.collectives import allgather_obj

comm = MPI.COMM_WORLD
FAST = dict(hidden=[6], epochs=2, seed=4, quiet_mode=True, threads=1)


def everywhere(value):
    values = allgather_obj(comm, value)
    return all(v == values[0] for v in values)


@pytest.mark.mpi(min_size=2)
def test_create_frame_is_the_one_process_frame():
    kw = dict(rows=503, cols=6, seed=9, seed_for_column_types=2, has_response=True, missing_fraction=0.05)
    h2o.init(comm=comm)
    try:
        spread = h2o.create_frame(**kw)
        rows, table, means = spread.frame.n_local_rows, spread.as_data_frame(), spread.mean()
    finally:
        h2o.init()
    alone = h2o.create_frame(**kw)
    ok = table.equals(alone.as_data_frame()) and np.allclose(means, alone.mean(), equal_nan=True, rtol=1e-12)
    assert all(allgather_obj(comm, ok)) and rows < 503 and sum(allgather_obj(comm, rows)) == 503


@pytest.mark.mpi(min_size=2)
def test_model_key_predictions_and_grid_on_the_communicator(tmp_path_factory):
    path = None
    if comm.rank == 0:
        rng = np.random.default_rng(2)
        path = str(tmp_path_factory.mktemp("m") / "d.csv")
        with open(path, "w") as f:
            f.write("a,b,c,y\n")
            for a, b in rng.normal(size=(401, 2)):
                f.write(f"{a!r},{b!r},{'uvw'[int(abs(a) * 10) % 3]},{'up' if a - b > 0 else 'down'}\n")
    path = comm.bcast(path, root=0)
    h2o.init(comm=comm)
    try:
        fr = h2o.import_file(path)
        train, valid = fr.split_frame([0.75], seed=3)
        m = DeepLearningEstimator(**FAST).train(y="y", training_frame=train, validation_frame=valid)
        pred = m.predict(valid)
        local_rows = pred.frame.n_local_rows == valid.frame.n_local_rows
        accuracy = (pred["predict"] == valid["y"]).mean()[0]
        error = m.model_performance(valid).classification_error()
        more = DeepLearningEstimator(**{**FAST, "epochs": 4}, checkpoint=m.model_id).train(y="y", training_frame=train)
        grid = H2OGridSearch(DeepLearningEstimator(**FAST), {"hidden": [[4], [8]], "l2": [0, 1e-3]}, grid_id="g")
        grid.train(y="y", training_frame=train, validation_frame=valid)
        ranked = grid.get_grid(sort_by="logloss", decreasing=False)
        losses = [g.logloss(valid=True) for g in ranked.models]
        w = m.weights(0).as_data_frame().to_numpy()
    finally:
        h2o.init()
    assert everywhere(m.model_id) and h2o.get_model(m.model_id) is m and local_rows
    assert accuracy == pytest.approx(1 - error, abs=1e-12) and pred.nrow == valid.nrow
    assert more.summary_["continued_from"] == m.model_id
    assert everywhere(ranked.model_ids) and losses == sorted(losses) and len(losses) == 4
    assert everywhere(w.tolist()) and w.shape[0] == 6
