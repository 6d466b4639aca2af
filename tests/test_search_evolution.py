"""strategy = "Evolutionary" (h2odl_mpi.workflows.search.evolution) on one rank: ranges in the grid
file, the genetic operators stay inside each parameter's list or range, selection, islands
and migration, the same seed proposes the same models, the progress plot, and a search
stopped by SIGTERM and continued loses no model and trains none twice."""
import json
import math
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from h2odl_mpi.errors import UserError
from h2odl_mpi.workflows.search import evolution, grid_file, grid_search, progress_plot
from h2odl_mpi.workflows.search.hyperspace import Range
from search_data import binary_csv as _csv

HYPER = {"hidden": [[3], [5], [4, 3]], "l1": Range(1e-6, 1e-2, log=True), "rate": Range(0.001, 0.05),
         "score_training_samples": Range(100, 400, integer=True)}


def _fixed(path, **kw):
    return dict({"train": path, "response": "y", "epochs": 1, "seed": 9, "threads": 1, "reproducible": True,
                 "train_samples_per_iteration": 100, "variable_importances": False, "stopping_rounds": 0,
                 "adaptive_rate": False, "score_interval": 0.0, "classification_stop": -1.0}, **kw)


def _inside(hyper, params):
    for name, gene in hyper.items():
        v = params[name]
        if isinstance(gene, Range):
            assert gene.lo <= v <= gene.hi, (name, v)
            assert isinstance(v, int) if gene.integer else isinstance(v, float), (name, v)
        else:
            assert v in gene, (name, v)


def _criteria(**kw):
    return grid_file.check_criteria(dict({"strategy": "Evolutionary", "max_models": 40, "seed": 1}, **kw))


def _records(hyper, n, seed=0):
    """n fake finished records with random parameters and metrics (every 5th one failed)."""
    rng = np.random.default_rng(seed)
    out = {}
    for j in range(n):
        rec = {"index": j, "model_id": f"model_{j + 1}", "params": evolution.random_params(hyper, rng),
               "status": "failed" if j % 5 == 4 else "done", "kind": "classification",
               "metrics": {"training": {"logloss": float(rng.uniform(0.1, 1.0))}}}
        out[j] = rec
    return out


# ---- the grid file -------------------------------------------------------------------------

def test_ranges_in_the_grid_file(tmp_path):
    p = tmp_path / "g.toml"
    p.write_text('train = "t.csv"\nresponse = "y"\n[hyper_params]\nhidden = [[8], [16]]\n'
                 'l1 = {min = 0.0, max = 1e-4}\nl2 = {min = 1e-6, max = 1e-2, log = true}\n'
                 'epochs = {min = 1, max = 20}\n[search_criteria]\nstrategy = "evolutionary"\nmax_models = 5\n')
    _fixed_params, hyper, criteria = grid_file.load(str(p))
    assert hyper["l1"] == Range(0.0, 1e-4) and hyper["l2"] == Range(1e-6, 1e-2, log=True)
    assert hyper["epochs"] == Range(1.0, 20.0) and not hyper["epochs"].integer  # epochs is a float parameter
    assert criteria["strategy"] == "Evolutionary" and criteria["mutation_rate"] == 0.2 and criteria["islands"] == 1


@pytest.mark.parametrize("hyper, criteria, message", [
    ('l1 = {min = 1e-4, max = 0.0}', '', "min (0.0001) must be below max (0.0)"),
    ('l1 = {min = 0.0, max = 1.0, log = true}', '', "log = true needs min > 0"),
    ('l1 = {min = -1.0, max = 1.0}', '', "hyper_params.l1: min: l1 = -1.0 is out of range"),
    ('l1 = {min = 0.0, maxi = 1.0}', '', "unknown key 'maxi'"),
    ('l1 = {min = 0.0}', '', "min and max are required"),
    ('l1 = {min = 0.0, max = 1.0, log = 1}', '', "log must be true or false"),
    ('seed = {min = 1, max = 2.5}', '', "hyper_params.seed: max must be an integer"),
    ('hidden = {min = 1, max = 9}', '', "only for a number parameter"),
    ('l1 = {min = 0.0, max = 1.0}', 'strategy = "Cartesian"', "strategy Cartesian takes lists of values only"),
    ('l1 = {min = 0.0, max = 1.0}', 'strategy = "Halving"\nmin_epochs = 1', "strategy Halving takes lists"),
    ('l1 = [0.0]', 'strategy = "Evolutionary"', "max_models is required with strategy Evolutionary"),
    ('l1 = [0.0]', 'strategy = "Evolutionary"\nmax_models = 4\nmutation_rate = 1.5', "mutation_rate must be"),
    ('l1 = [0.0]', 'strategy = "Evolutionary"\nmax_models = 4\npopulation = 3\nislands = 2',
     "population (3) must be at least 2 x islands (2)"),
    ('l1 = [0.0]', 'strategy = "Evolutionary"\nmax_models = 4\nislands = 0', "islands must be a finite number >= 1"),
    ('l1 = [0.0]', 'strategy = "RandomDiscrete"\npopulation = 8', "population is a criterion of strategy Evolutionary"),
    ('l1 = [0.0]', 'strategy = "Evolutionary"\nmax_models = 4\nislands = 1.5', "islands must be an integer"),
])
def test_range_and_criteria_mistakes_name_the_key(tmp_path, hyper, criteria, message):
    p = tmp_path / "g.toml"
    p.write_text(f'train = "t.csv"\nresponse = "y"\n[hyper_params]\n{hyper}\n[search_criteria]\n{criteria}\n')
    with pytest.raises(UserError) as e:
        grid_file.load(str(p))
    assert str(p) in str(e.value) and message in str(e.value) and "\n" not in str(e.value)


# ---- the operators -------------------------------------------------------------------------

def test_the_operators_keep_every_parameter_inside_its_list_or_range():
    hyper = {"a": [1, 2, 3], "b": ["x"], "c": Range(0.0, 1e-4), "d": Range(1e-6, 1e-2, log=True),
             "e": Range(1, 9, integer=True), "f": Range(2, 200, log=True, integer=True), "g": [[4], [8, 8]]}
    rng = np.random.default_rng(0)
    for _ in range(300):
        a, b = evolution.random_params(hyper, rng), evolution.random_params(hyper, rng)
        _inside(hyper, a)
        _inside(hyper, evolution.crossover(a, b, hyper, rng))
        for rate in (0.0, 0.5, 1.0):
            _inside(hyper, evolution.mutate(a, hyper, rate, rng))
    for gene, edge in ((hyper["c"], 1e-4), (hyper["c"], 0.0), (hyper["d"], 1e-2), (hyper["e"], 9), (hyper["e"], 1)):
        for _ in range(100):  # steps from the edges are clipped
            _inside({"v": gene}, {"v": evolution.mutate_value(gene, edge, rng)})
    assert evolution.mutate_value([1, 2, 3], 1, rng) == 2 and evolution.mutate_value([1, 2, 3], 3, rng) == 2
    assert {evolution.mutate_value([1, 2, 3], 2, rng) for _ in range(50)} == {1, 3}  # a neighbour, not itself
    assert all(evolution.mutate_value(hyper["e"], 5, rng) != 5 for _ in range(50))  # an integer moves
    assert evolution.mutate(dict(a=1, b="x", c=0.0, d=1e-3, e=3, f=10, g=[4]), hyper, 0.0, rng) == \
        dict(a=1, b="x", c=0.0, d=1e-3, e=3, f=10, g=[4])  # rate 0 changes nothing


def test_bred_proposals_stay_inside_the_space_and_name_their_parents():
    strategy = evolution.Evolution(HYPER, _criteria(population=6), seed=3, groups=2)
    records = _records(HYPER, 40)
    for k in range(40):
        needed = strategy.needs(k)
        assert list(needed) == (list(range(k - 1)) if k >= 6 else [])  # j <= k - groups
        got = strategy.propose(k, {j: records[j] for j in needed})
        _inside(HYPER, got["params"])
        assert (got["parents"] == []) == (k < 6)
        ids = {records[j]["model_id"] for j in needed if records[j]["status"] == "done"}
        assert set(got["parents"]) <= ids


def test_tournament_prefers_the_better_models():
    records = _records({"a": [1]}, 30)
    pool = list(evolution.members(records, "logloss").values())
    assert len(pool) == 24  # the failed ones are left out
    rng = np.random.default_rng(1)
    wins = [evolution.tournament(pool, 3, rng) for _ in range(2000)]
    order = sorted(pool, key=lambda m: m.order)
    share = [sum(w is m for w in wins) / len(wins) for m in order]
    assert share[0] > 0.09 and share[-1] < 0.005  # 1-(23/24)^3 = 0.12 for the best; (1/24)^3 for the worst
    assert evolution.tournament(pool, 500, rng) is order[0]
    auc = list(evolution.members({j: dict(r, metrics={"training": {"auc": r["metrics"]["training"]["logloss"]}})
                                  for j, r in records.items()}, "auc").values())
    assert evolution.tournament(auc, 500, rng).index == order[-1].index  # AUC: more is better


def test_islands_breed_from_their_own_models_and_migrants():
    strategy = evolution.Evolution({"a": list(range(50))}, _criteria(islands=2, migration_interval=3, population=4),
                                   seed=1, groups=1)
    found = evolution.members(_records({"a": list(range(50))}, 30, seed=2), "logloss")
    for k in range(4, 30):
        pool = strategy.pool(k, found)
        own = [m for m in pool if m.index % 2 == k % 2]
        assert [m.index for m in own] == [j for j in sorted(found) if j <= k - 1 and j % 2 == k % 2]
        migrants = [m for m in pool if m.index % 2 != k % 2]
        if k < 6:  # an island's migrations: at its models number 3, 6, ... (k = 6 + island, 12 + island, ...)
            assert migrants == []
        events = [e for e in range(6 + k % 2, k + 1, 6)]
        want = {min((m for j, m in found.items() if j <= e - 1 and j % 2 != k % 2), key=lambda m: m.order).index
                for e in events}
        assert {m.index for m in migrants} == want


# ---- reproducibility -----------------------------------------------------------------------

def test_a_proposal_is_a_function_of_the_seed_k_and_its_records():
    records = _records(HYPER, 30)

    def sequence(seed, groups=2, recs=records):
        s = evolution.Evolution(HYPER, _criteria(), seed=seed, groups=groups)
        return [s.propose(k, {j: recs[j] for j in s.needs(k)}) for k in range(30)]
    one = sequence(5)
    assert one == sequence(5)
    assert json.loads(json.dumps(one)) == one  # (as the proposal files keep them)
    assert one != sequence(6) and one[:4] != sequence(6)[:4]
    assert one != sequence(5, groups=3)  # the lag (and the population) depend on the groups
    other = {**records, 0: dict(records[0], metrics={"training": {"logloss": 0.0}})}
    assert sequence(5, recs=other)[:4] == one[:4] and sequence(5, recs=other) != one  # bred from the records
    for k, p in enumerate(one):  # not a copy of a model it was bred from the records of
        assert all(p["params"] != records[j]["params"] for j in range(k - 1))


def test_a_fixed_seed_gives_the_same_sequence_of_models(tmp_path):
    data = _csv(tmp_path / "d.csv")
    crit = {"strategy": "Evolutionary", "max_models": 9, "population": 4, "seed": 11, "mutation_rate": 0.5}

    def run(name, **kw):
        grid_search(_fixed(data), HYPER, dict(crit, **kw), str(tmp_path / name))
        recs = [json.loads((tmp_path / name / "results" / f"{k}.json").read_text()) for k in range(9)]
        return [(r["params"], r["parents"], r["metrics"]["training"]["logloss"]) for r in recs]
    one = run("a")
    assert len({json.dumps(params, sort_keys=True) for params, _p, _m in one}) == 9  # no model twice
    assert run("b") == one
    assert all(p for _params, p, _m in one[4:]) and not any(p for _params, p, _m in one[:4])
    assert run("c", seed=12) != one
    board = json.loads((tmp_path / "a" / "leaderboard.json").read_text())
    assert all(r["parents"] == one[int(r["model_id"].split("_")[1]) - 1][1] for r in board)
    head = (tmp_path / "a" / "leaderboard.csv").read_text().splitlines()[0].split(",")
    assert "parents" in head and "rung" in head
    assert (tmp_path / "a" / "search_progress.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_matplotlib_the_plot_is_skipped_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(progress_plot, "pyplot", lambda: None)
    grid_search(_fixed(_csv(tmp_path / "d.csv")), {"l1": [0.0, 1e-4]}, {}, str(tmp_path / "s"))
    assert capsys.readouterr().out.count("search_progress.png skipped: matplotlib is not installed") == 1
    assert not (tmp_path / "s" / "search_progress.png").exists()


def test_progress_series_is_the_best_so_far_in_finishing_order():
    recs = [{"index": i, "model_id": f"model_{i + 1}", "status": s, "kind": "classification", "finished": 100.0 + t,
             "metrics": {"validation": {"logloss": v}}}
            for i, (s, t, v) in enumerate([("done", 3, 0.5), ("done", 1, 0.7), ("failed", 2, None), ("done", 4, 0.6)])]
    name, direction, points = progress_plot.series(recs, "AUTO", 100.0)
    assert name == "validation_logloss" and direction == -1
    assert [(t, n, b) for t, n, _v, b in points] == [(1, 1, 0.7), (2, 2, 0.7), (3, 3, 0.5), (4, 4, 0.5)]
    assert math.isnan(points[1][2])


# ---- stopped and continued -----------------------------------------------------------------

def test_sigterm_in_an_evolutionary_search_loses_no_model_and_trains_none_twice(tmp_path):
    data = _csv(tmp_path / "big.csv", n=2000)
    grid = tmp_path / "grid.toml"
    grid.write_text(f'train = "{data}"\nresponse = "y"\nepochs = 150\nseed = 3\nthreads = 1\nhidden = [32, 32]\n'
                    'variable_importances = false\nstopping_rounds = 0\ncheckpoint_interval = "0"\n'
                    'train_samples_per_iteration = 500\n'
                    '[hyper_params]\nl1 = {min = 1e-6, max = 1e-3, log = true}\nrho = [0.9, 0.95, 0.99]\n'
                    '[search_criteria]\nstrategy = "Evolutionary"\nmax_models = 6\npopulation = 4\nseed = 2\n')
    sd = tmp_path / "s"
    cmd = [sys.executable, "-m", "h2odl_mpi", "grid", "--config", str(grid), "--search_dir", str(sd)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (sd / "results" / "4.json").exists() or not (sd / "claims" / "5").exists():  # bred models: 4, 5
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)  # (model 6 trains for seconds: the signal finds it training)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 85, err
    before = {k: (sd / "results" / f"{k}.json").read_text() for k in range(6)
              if (sd / "results" / f"{k}.json").exists()}
    assert 5 not in before and list((sd / "models" / "model_6" / "checkpoints").glob("*.h5"))
    proposal = json.loads((sd / "models" / "model_6" / "proposal.json").read_text())
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"{len(before)} finished before" in r.stdout
    for k, text in before.items():  # not trained again
        assert (sd / "results" / f"{k}.json").read_text() == text
    last = json.loads((sd / "results" / "5.json").read_text())
    assert last["status"] == "done" and "checkpoints" in last["continued_from"]  # continued, not started again
    assert last["params"] == proposal["params"] and last["parents"] == proposal["parents"] != []
    board = json.loads((sd / "leaderboard.json").read_text())
    assert sorted(x["model_id"] for x in board) == [f"model_{i}" for i in range(1, 7)]
    assert sorted(p.name for p in (sd / "claims").iterdir()) == [str(k) for k in range(6)]
