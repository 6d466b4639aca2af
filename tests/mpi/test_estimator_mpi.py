"""The estimators on several ranks (pytest-mpi; run with 2 and 3 ranks): every rank calls the
same code with the same arguments and gets the same model and the same answers; arrays are
split among the ranks (or replicated), files read in shares; a model saved by rank 0 loads
on every rank.  Collective calls come before assertions."""
import numpy as np
import pytest
from mpi4py import MPI

from h2odl_mpi import DeepLearningClassifier, DeepLearningEstimator, h2o
from h2odl_mpi.collectives import allgather_obj

comm = MPI.COMM_WORLD
FAST = dict(hidden=(8,), epochs=5, seed=2, quiet_mode=True, threads=1)


def _same_everywhere(a):
    """Whether array `a` has the same bits on every rank."""
    digests = allgather_obj(comm, np.ascontiguousarray(a).tobytes().hex())
    return all(d == digests[0] for d in digests)


def _data(n=301):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(n, 3))
    return X, np.where(X[:, 0] - X[:, 1] > 0, "up", "down")


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("replicate", [True, False])
def test_fit_predict_on_a_communicator(replicate):
    X, y = _data()
    m = DeepLearningClassifier(comm=comm, replicate_training_data=replicate, **FAST).fit(X, y)
    proba, labels, score = m.predict_proba(X), m.predict(X), m.score(X, y)
    same = [_same_everywhere(a) for a in (m.model_, proba)]
    assert all(same) and proba.shape == (301, 2) and labels.shape == (301,)
    assert m.summary_["n_ranks"] == comm.size and score > 0.8


@pytest.mark.mpi(min_size=2)
def test_train_save_load_on_a_communicator(tmp_path_factory):
    X, y = _data()
    path, model_path = None, None
    if comm.rank == 0:
        d = tmp_path_factory.mktemp("est")
        path, model_path = str(d / "d.csv"), str(d / "m.h5")
        with open(path, "w") as f:
            f.write("a,b,c,y\n")
            f.writelines(f"{a!r},{b!r},{c!r},{t}\n" for (a, b, c), t in zip(X, y))
    path, model_path = comm.bcast((path, model_path), root=0)
    h2o.init(comm=comm)
    try:
        train = h2o.import_file(path)
        m = DeepLearningEstimator(**FAST).train(y="y", training_frame=train)  # (the frame's communicator)
        pred = m.predict(train).as_data_frame()
        m.save(model_path)
        back = h2o.load_model(model_path)
        again = back.predict(path)
        perf = back.model_performance(path)
    finally:
        h2o.init()
    assert m.comm_ is comm and _same_everywhere(m.model_)
    assert pred.columns.tolist() == ["predict", "pdown", "pup"] and len(pred) == 301
    assert again.equals(pred) and np.array_equal(back.model_, m.model_)
    assert perf.nobs() == 301 and 0 <= perf.logloss()
