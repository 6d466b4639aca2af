"""Successive halving (h2odl_mpi.workflows.search.halving, ASHA) on one rank: the rungs, the promotion
rule, a search that promotes by it and culls the rest, survivors continued from their
rung-end checkpoints with the bits of an uninterrupted run, early culling with another
strategy, and a search stopped in a promoted rung and continued."""
import json
import signal

import numpy as np
import pytest

from h2odl_mpi.training.checkpoint import StopFlag, TrainingInterrupted
from h2odl_mpi.errors import UserError
from h2odl_mpi.model.model_io import load_model
from h2odl_mpi.params import validate
from h2odl_mpi.workflows.search import grid_file, grid_search, halving
from h2odl_mpi.training.trainer import train
from search_data import binary_csv as _csv

HYPER = {"hidden": [[3], [5], [4, 3]], "l1": [0.0, 1e-4, 1e-2]}
CRIT = {"strategy": "Halving", "max_models": 9, "seed": 3, "min_epochs": 1, "reduction_factor": 3}


def _fixed(path, **kw):
    """Rungs of 1 and 3 epochs of 400 rows end on iterations of 100 rows; the last model
    goes on training (no best model kept)."""
    return dict({"train": path, "response": "y", "epochs": 3, "seed": 9, "threads": 1, "reproducible": True,
                 "train_samples_per_iteration": 100, "variable_importances": False, "stopping_rounds": 0,
                 "overwrite_with_best_model": False, "score_interval": 0.0, "classification_stop": -1.0}, **kw)


def _records(sd, n):
    return [json.loads((sd / "results" / f"{k}.json").read_text()) for k in range(n)]


def _alone(fixed, params):
    return train(validate(dict(fixed, **params, quiet_mode=True))).model


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    """A Halving search of 9 models: rung 0 trains 1 epoch, rung 1 (the last) 3 epochs."""
    tmp = tmp_path_factory.mktemp("halving")
    data = _csv(tmp / "d.csv")
    board = grid_search(_fixed(data), HYPER, CRIT, str(tmp / "s"))
    return tmp / "s", data, board


# ---- the rule ------------------------------------------------------------------------------

def test_rungs_multiply_min_epochs_by_eta_up_to_the_models_epochs():
    assert halving.rung_epochs(1, 3, 10) == [1, 3, 9, 10]
    assert halving.rung_epochs(1, 3, 9) == [1, 3, 9]
    assert halving.rung_epochs(0.5, 2, 2.0000000001) == [0.5, 1, 2.0000000001]
    assert halving.rung_epochs(2, 3, 1) == [1]  # a model of fewer epochs than rung 0: one rung


def test_a_rung_keeps_exactly_its_best_fraction():
    order = {k: (0, v) for k, v in enumerate([0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6])}
    waiting = {(k, 0) for k in order}
    assert halving.kept(order, 3) == [1, 5, 3]
    assert halving.promotions({0: order}, waiting, set(), 3) == [(1, 1), (5, 1), (3, 1)]
    assert halving.promotions({0: order}, waiting, {(1, 1)}, 3) == [(5, 1), (3, 1)]  # once each
    assert halving.promotions({0: dict(list(order.items())[:2])}, waiting, set(), 3) == []  # 2 // 3 = 0
    assert halving.kept({k: order[k] for k in range(6)}, 3) == [1, 5]
    assert halving.kept(order, 2) == [1, 5, 3, 7]
    # a model gone on from rung 0 still counts there; higher rungs first; NaN last
    rung1 = {1: (0, 0.05), 5: (0, 0.01), 3: (0, 0.2)}
    got = halving.promotions({0: order, 1: rung1}, waiting | {(5, 1), (3, 1)}, {(1, 1), (5, 1), (3, 1)}, 3)
    assert got == [(5, 2)]
    assert halving.kept({0: (1, 0.0), 1: (0, 0.9), 2: (0, 0.8)}, 3) == [2]


@pytest.mark.parametrize("criteria, message", [
    ({"strategy": "Halving"}, "min_epochs is required with strategy Halving"),
    ({"early_culling": True}, "min_epochs is required with early_culling = true"),
    ({"strategy": "Halving", "min_epochs": 1, "reduction_factor": 1}, "reduction_factor must be a finite number >= 2"),
    ({"min_epochs": 1}, "min_epochs is a criterion of strategy Halving or early_culling = true"),
    ({"strategy": "Halving", "min_epochs": 1, "early_culling": "yes"}, "early_culling must be true or false"),
])
def test_halving_criteria_mistakes_name_the_key(criteria, message):
    with pytest.raises(UserError, match=message):
        grid_file.check_criteria(criteria)


# ---- a search ------------------------------------------------------------------------------

def test_a_halving_search_promotes_by_the_rule_and_culls_exactly_the_rest(search):
    sd, _data, board = search
    recs = _records(sd, 9)
    done = {r["index"] for r in recs if r["status"] == "done"}
    culled = {r["index"] for r in recs if r["status"] == "culled"}
    assert done | culled == set(range(9)) and not done & culled
    assert all(r["rung"] == 1 and r["epochs"] == 3 for r in recs if r["index"] in done)
    assert all(r["rung"] == 0 and r["epochs"] == 1 for r in recs if r["index"] in culled)
    promoted = {(k, r) for k, r in (map(int, p.name.split(".")) for p in (sd / "promoted").iterdir())}
    assert promoted == {(k, 1) for k in done}
    rung0 = {k: json.loads((sd / "rungs" / f"{k}.0.json").read_text()) for k in range(9)}
    value = {k: (0, r["metrics"]["training"]["logloss"]) for k, r in rung0.items()}
    assert set(halving.kept(value, 3)) <= done  # the best third of rung 0 all went on
    for k, _r in promoted:  # each when it was in the best third of the models in rung 0 then
        when = json.loads((sd / "promoted" / f"{k}.1").read_text())["when"]
        then = {j: v for j, v in value.items() if rung0[j]["finished"] <= when}
        assert k in halving.kept(then, 3), (k, sorted(then))
    assert 3 <= len(done) < 9  # (ASHA promotes the best third of what it has seen so far)
    assert [(r["status"], r["rung"]) for r in board] == [("done", 1)] * len(done) + [("culled", 0)] * len(culled)
    assert not any((sd / "models" / f"model_{k + 1}" / "checkpoints").exists() for k in range(9))
    head = (sd / "leaderboard.csv").read_text().splitlines()[0].split(",")
    assert head[3:7] == ["hidden", "l1", "rung", "parents"]


def test_a_survivor_continues_from_its_checkpoint_with_the_bits_of_an_uninterrupted_run(search):
    sd, data, _board = search
    for rec in _records(sd, 9):
        _, model, *_ = load_model(str(sd / rec["model_path"]))
        if rec["status"] == "done":  # rung 0 ended at iteration 4 (1 epoch of 400 rows)
            assert rec["continued_from"].endswith("model_%d/checkpoints/ckpt_000000004.h5" % (rec["index"] + 1))
            assert np.array_equal(model, _alone(_fixed(data), rec["params"])), rec["model_id"]
        else:
            assert np.array_equal(model, _alone(_fixed(data, epochs=1), rec["params"])), rec["model_id"]


def test_rungs_off_the_iteration_boundaries_give_other_bits(tmp_path):
    """What bit-identity needs: 400 rows per rung-0 epoch in iterations of 150 rows end
    rung 0 inside an iteration, so the continued model trains other iterations."""
    data = _csv(tmp_path / "d.csv")
    fixed = _fixed(data, train_samples_per_iteration=150)
    board = grid_search(fixed, {"hidden": [[3], [5], [4, 3]]}, dict(CRIT, max_models=3), str(tmp_path / "s"))
    done = [r for r in board if r["status"] == "done"]
    assert len(done) == 1
    _, model, *_ = load_model(done[0]["model_path"])
    assert not np.array_equal(model, _alone(fixed, {"hidden": done[0]["hidden"]}))


def test_early_culling_with_cartesian_records_every_model_once(tmp_path):
    data = _csv(tmp_path / "d.csv")
    sd = tmp_path / "s"
    board = grid_search(_fixed(data), {"l1": [0.0, 1e-4, 1e-3, 1e-2]},  # rungs of 1, 2 and 3 epochs
                        {"strategy": "Cartesian", "early_culling": True, "min_epochs": 1, "reduction_factor": 2},
                        str(sd))
    recs = _records(sd, 4)
    assert [r["params"]["l1"] for r in recs] == [0.0, 1e-4, 1e-3, 1e-2]  # Cartesian's order
    assert sorted(r["model_id"] for r in board) == [f"model_{i}" for i in range(1, 5)]
    rung0 = {k: (0, json.loads((sd / "rungs" / f"{k}.0.json").read_text())["metrics"]["training"]["logloss"])
             for k in range(4)}
    assert all(recs[k]["rung"] >= 1 for k in halving.kept(rung0, 2))  # the better half of rung 0 went on
    assert {r["status"] for r in recs} == {"done", "culled"}
    assert all(r["epochs"] == [1, 2, 3][r["rung"]] for r in recs)


class _StopInRung1(StopFlag):
    """A stop signal as soon as some group has claimed a promoted rung (claims/K.r1)."""

    def __init__(self, sd):
        self.sd = sd
        super().__init__()

    @property
    def signum(self):
        return signal.SIGTERM if any((self.sd / "claims").glob("*.r1")) else 0

    @signum.setter
    def signum(self, _value):
        pass


def test_a_search_stopped_in_a_promoted_rung_continues_it_and_trains_nothing_twice(tmp_path):
    data = _csv(tmp_path / "d.csv")
    sd = tmp_path / "s"
    flag = _StopInRung1(sd).install()
    try:
        with pytest.raises(TrainingInterrupted, match="search stopped by signal"):
            grid_search(_fixed(data), HYPER, CRIT, str(sd), stop=flag)
    finally:
        flag.restore()
    (stopped,) = [p.name for p in (sd / "claims").glob("*.r1")]
    k = int(stopped.split(".")[0])
    assert (sd / "promoted" / f"{k}.1").exists()
    assert not list((sd / "results").iterdir())  # nobody culled on a signal
    rungs_before = {p.name: p.read_text() for p in (sd / "rungs").iterdir()}
    grid_search(_fixed(data), HYPER, CRIT, str(sd))
    recs = _records(sd, 9)
    assert recs[k]["status"] == "done" and recs[k]["rung"] == 1  # the promoted rung went on
    assert recs[k]["continued_from"].endswith("ckpt_000000004.h5")
    assert np.array_equal(load_model(str(sd / recs[k]["model_path"]))[1], _alone(_fixed(data), recs[k]["params"]))
    for name, text in rungs_before.items():  # the rungs ended before are not trained again
        assert (sd / "rungs" / name).read_text() == text
    assert sorted(r["status"] for r in recs).count("done") >= 3
