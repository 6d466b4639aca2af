"""N-fold cross-validation under mpirun (pytest-mpi; run with 2 and 3 ranks, 4 for groups of
two): folds that do not depend on the number of ranks, fold models side by side on
sub-communicators equal to the same fold models trained one after another, the
cross-validation metrics of the predictions gathered from every rank, and a refusal that
reaches every rank.  Collective calls come first and assertions after, so a failing
assertion on one rank cannot leave the others waiting."""
import csv
import os

import numpy as np
import pytest
from mpi4py import MPI

from h2odl_mpi.data import folds as F
from h2odl_mpi.evaluation import metrics
from h2odl_mpi.workflows.cross_validation import cross_validate
from h2odl_mpi.errors import UserError
from h2odl_mpi.data.frame import Frame
from h2odl_mpi.params import validate
from h2odl_mpi.data.preprocess import Preprocess
from h2odl_mpi.workflows.cross_validation import train_or_cross_validate

WORLD = MPI.COMM_WORLD
RANK, SIZE = WORLD.Get_rank(), WORLD.Get_size()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A classification CSV of 150 rows (3 classes, one missing) with a fold column."""
    path = None
    if RANK == 0:
        path = str(tmp_path_factory.mktemp("cv") / "d.csv")
        rng = np.random.default_rng(5)
        x = rng.normal(size=(150, 3))
        with open(path, "w") as fh:
            fh.write("a,b,c,f,y\n")
            for i, (a, b, c) in enumerate(x):
                y = "" if i == 7 else ("lo" if a + b < -0.5 else "mid" if a + b < 0.7 else "hi")
                fh.write(f"{a:.5f},{b:.5f},{c:.5f},{'pqrs'[i % 4]},{y}\n")
    return WORLD.bcast(path, root=0)


def _params(path, **kw):
    return validate(dict({"train": path, "response": "y", "hidden": [4], "epochs": 2, "seed": 3, "threads": 1,
                          "quiet_mode": True, "train_samples_per_iteration": 40, "variable_importances": False,
                          "score_interval": 1e6, "reproducible": True}, **kw))


def _folds_everywhere(path, params, replicate):
    """The folds of every row in global order, from a frame spread over all ranks."""
    frame = Frame.read(path, comm=WORLD, replicate=replicate)
    got = F.assign(params, frame, Preprocess.fit(frame, params))
    return np.concatenate(WORLD.allgather(got.fold)) if not replicate else got.fold


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("how", [{"nfolds": 3, "fold_assignment": "Modulo"}, {"nfolds": 4, "fold_assignment": "Random"},
                                 {"nfolds": 3, "fold_assignment": "Stratified"}, {"fold_column": "f"}],
                         ids=["Modulo", "Random", "Stratified", "fold_column"])
def test_folds_do_not_depend_on_the_number_of_ranks(data, how):
    params = _params(data, **how)
    sharded = _folds_everywhere(data, params, replicate=False)
    replicated = _folds_everywhere(data, params, replicate=True)
    alone = Frame.read(data, comm=MPI.COMM_SELF)
    serial = F.assign(params, alone, Preprocess.fit(alone, params)).fold
    assert len(sharded) == 150 and np.array_equal(sharded, serial) and np.array_equal(replicated, serial)
    if how.get("fold_assignment") == "Modulo":
        assert np.array_equal(serial, np.arange(150) % 3)
    if how.get("fold_assignment") == "Stratified":
        labels = alone.decode("y")
        for c in np.unique(np.nan_to_num(labels, nan=-1)):
            per_fold = np.bincount(serial[np.nan_to_num(labels, nan=-1) == c], minlength=3)
            assert per_fold.max() - per_fold.min() <= 1


def _outputs(tmp_path_factory, name):
    where = WORLD.bcast(str(tmp_path_factory.mktemp(name)) if RANK == 0 else None, root=0)
    return dict(model_out=os.path.join(where, "m.h5"), keep_cross_validation_predictions=True,
                keep_cross_validation_fold_assignment=True)


def _own(tmp_path_factory, name):
    """Files of this rank's own runs (each rank runs alone)."""
    where = str(tmp_path_factory.mktemp(f"{name}{RANK}"))
    return dict(model_out=os.path.join(where, "m.h5"), keep_cross_validation_predictions=True)


def _text(path):
    with open(path) as fh:
        return fh.read()


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("replicate", [True, False])
@pytest.mark.parametrize("nfolds", [2, 3])
def test_side_by_side_equals_one_after_another(data, tmp_path_factory, replicate, nfolds):
    """With SIZE >= nfolds the folds train side by side on groups of SIZE // nfolds = 1
    rank; the same fold models one after another on one rank give the same bits."""
    if SIZE // nfolds != 1:
        pytest.skip("needs nfolds to 2 * nfolds - 1 ranks (fold models of one rank side by side)")
    side = train_or_cross_validate(_params(data, nfolds=nfolds, replicate_training_data=replicate,
                         **_outputs(tmp_path_factory, "side")), WORLD)
    mine = _own(tmp_path_factory, "alone")
    alone = cross_validate(_params(data, nfolds=nfolds, replicate_training_data=replicate, **mine),
                           MPI.COMM_SELF, side_by_side=False)
    side_csv = WORLD.bcast(_text(side.params["model_out"][:-3] + "_cv_holdout_predictions.csv")
                           if RANK == 0 else None, root=0)
    assert side_csv == _text(mine["model_out"][:-3] + "_cv_holdout_predictions.csv")  # the same predictions
    assert side["cross_validation_metrics_summary"] == alone["cross_validation_metrics_summary"]
    assert [dict(m, model_file=None) for m in side["cross_validation_models"]] == \
        [dict(m, model_file=None) for m in alone["cross_validation_models"]]
    for k, v in alone.metrics["cross_validation"].items():  # (sums over other ranks: the last bits)
        assert np.allclose(side.metrics["cross_validation"][k], v, rtol=1e-12, atol=0), k
    assert side["n_ranks"] == SIZE


@pytest.mark.mpi(min_size=4)
def test_groups_of_two_ranks_equal_one_after_another_on_two_ranks(data):
    side = train_or_cross_validate(_params(data, nfolds=2), WORLD)  # 2 groups of SIZE // 2 ranks
    pairs = WORLD.Split(RANK // 2 if RANK < 4 else MPI.UNDEFINED, RANK)
    alone = None
    if pairs != MPI.COMM_NULL:
        alone = cross_validate(_params(data, nfolds=2), pairs, side_by_side=False) if SIZE == 4 else None
        pairs.Free()
    if alone is not None:
        assert side["cross_validation_metrics_summary"] == alone["cross_validation_metrics_summary"]


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("replicate", [True, False])
def test_cv_metrics_are_those_of_the_predictions_from_every_rank(data, tmp_path_factory, replicate):
    """Each rank predicts its own rows (of a replicated frame: its share of the fold)."""
    out = _outputs(tmp_path_factory, "gathered")
    run = train_or_cross_validate(_params(data, nfolds=3, fold_assignment="Stratified", replicate_training_data=replicate, **out),
                WORLD)
    cvs = WORLD.allgather(run.metrics["cross_validation"])
    if RANK == 0:
        with open(out["model_out"][:-3] + "_cv_holdout_predictions.csv") as fh:
            rows = list(csv.reader(fh))[1:]
        with open(out["model_out"][:-3] + "_cv_fold_assignment.csv") as fh:
            fold = np.array([int(r[0]) for r in list(csv.reader(fh))[1:]])
        prob = np.array([[float(v) for v in r[1:]] for r in rows])
        frame = Frame.read(data)
        y = Preprocess.fit(frame, run.params).response_values(frame)
        ref = metrics.classification_metrics(prob, y)
        assert len(rows) == 150 and cvs[0]["nobs"] == 149  # one row has no response
        for k in ("logloss", "mse", "classification_error", "mean_per_class_error"):
            assert cvs[0][k] == pytest.approx(ref[k], rel=1e-12), k
        table = run["cross_validation_metrics_summary"]
        for k in range(3):
            own = metrics.classification_metrics(prob[fold == k], y[fold == k])
            assert table["logloss"][f"cv_{k + 1}_valid"] == pytest.approx(own["logloss"], rel=1e-12)
        values = [table["logloss"][f"cv_{k}_valid"] for k in (1, 2, 3)]
        assert table["logloss"]["mean"] == pytest.approx(np.mean(values), rel=1e-12)
        assert table["logloss"]["sd"] == pytest.approx(np.std(values, ddof=1), rel=1e-9)
    assert all(c == cvs[0] for c in cvs)  # the same on every rank


@pytest.mark.mpi(min_size=2)
def test_a_refusal_reaches_every_rank(tmp_path_factory):
    path = None
    if RANK == 0:
        path = str(tmp_path_factory.mktemp("bad") / "b.csv")
        with open(path, "w") as fh:
            fh.write("a,f,y\n" + "".join(f"{i},{'' if i == 37 else i % 2},{i % 3}\n" for i in range(60)))
    path = WORLD.bcast(path, root=0)
    try:
        train_or_cross_validate(_params(path, fold_column="f", replicate_training_data=False), WORLD)
        message = None
    except UserError as e:
        message = str(e)
    messages = WORLD.allgather(message)
    assert all(m is not None and "fold_column 'f': 1 row(s) have no value" in m for m in messages)
