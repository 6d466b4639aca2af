"""h2o-py's H2OFrame on several ranks (run with 2 and 3 ranks): a munging script run on a
frame spread over the communicator gives what the same script gives on one process (each
rank also runs it alone, comm None) -- the filters, derived and assigned columns, the
reductions, runif and split_frame (by global row index), head, tail and as_data_frame.
Collective calls come before assertions."""
import numpy as np
import pytest
from mpi4py import MPI

from h2odl_mpi import h2o
from h2odl_mpi.collectives import allgather_obj

comm = MPI.COMM_WORLD


def munge(fr):
    """An h2o-py-style munging of the frame; every result as plain Python values."""
    out = {}
    fr["y"] = fr["y"].asfactor()
    fr[0] = fr[0] * 2
    fr["ratio"] = fr["a"] / (fr["b"] + 1)
    fr["lg"] = fr["b"].abs().log1p()
    col = fr["a"]
    col[col > 5] = 5
    fr["a"] = col
    fr[fr["y"] == "up", "b"] = None
    big = fr[(fr["a"] >= 0) & (fr["y"] != "down")]
    out["big"] = big.as_data_frame().to_dict("list")
    out["means"] = fr.mean()
    out["min_max_sum"] = [fr["a"].min(), fr["a"].max(), fr["ratio"].sum(), fr.nacnt()]
    out["rnd"] = fr.runif(seed=11).as_data_frame()["rnd"].tolist()
    train, valid, test = fr.split_frame(ratios=[0.6, 0.2], seed=5)
    out["split"] = [p.as_data_frame()["a"].tolist() for p in (train, valid, test)]
    out["head_tail"] = [fr.head(3).as_data_frame().to_dict("list"), fr.tail(2).as_data_frame().to_dict("list"), fr[fr.nrow - 1, "ratio"]]
    out["shape"] = [fr.shape, big.shape, fr.drop("lg").names, fr.cbind(fr["a"]).names]
    fr.insert_missing_values(0.1, seed=2)
    out["missing"] = fr.nacnt()
    return out


def same(a, b):
    """Equal, NaN equal to NaN; floats to 1e-12 (a sum over ranks adds in another order)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b, rel=1e-12, abs=1e-15)
    return a == b


@pytest.mark.mpi(min_size=2)
def test_a_munging_script_gives_one_process_answers(tmp_path_factory):
    path = None
    if comm.rank == 0:
        rng = np.random.default_rng(3)
        path = str(tmp_path_factory.mktemp("fr") / "d.csv")
        with open(path, "w") as f:
            f.write("a,b,y\n")
            for i in range(257):
                b = "" if i % 17 == 0 else repr(float(np.round(rng.normal(), 3)))
                f.write(f"{rng.integers(-3, 9)},{b},{'up' if rng.random() < 0.5 else 'down'}\n")
    path = comm.bcast(path, root=0)
    h2o.init(comm=comm)
    try:
        spread = h2o.import_file(path)
        ranks = spread.frame.rank_rows
        distributed = munge(spread)
        listed = h2o.H2OFrame([[i, i % 7] for i in range(50)])
        listed_mean = (listed[listed["C2"] > 2]["C1"]).mean()
    finally:
        h2o.init()
    alone = munge(h2o.import_file(path))
    alone_mean = h2o.H2OFrame([[i, i % 7] for i in range(50)])
    alone_mean = alone_mean[alone_mean["C2"] > 2]["C1"].mean()
    agreed = allgather_obj(comm, [same(distributed, alone), listed_mean == alone_mean])
    assert all(ranks) and len(ranks) == comm.size            # every rank held rows of its own
    assert all(a for pair in agreed for a in pair), agreed
    assert sum(len(p) for p in alone["split"]) == 257


@pytest.mark.mpi(min_size=2)
def test_split_of_one_compressed_file_read_in_turns_is_the_one_process_split(tmp_path_factory):
    """One .gz file on several ranks is parsed a block at a time by each rank in turn (the
    rows are not rank after rank in file order): runif hashes each row's place in the file."""
    import gzip
    path = None
    if comm.rank == 0:
        path = str(tmp_path_factory.mktemp("gz") / "d.csv.gz")
        with gzip.open(path, "wt") as f:
            f.write("i,v\n" + "".join(f"{i},{(i * 7919) % 1000 / 10}\n" for i in range(60000)))
    path = comm.bcast(path, root=0)
    h2o.init(comm=comm)
    try:
        fr = h2o.import_file(path)
        in_turns = not fr.frame.ingest["file_order"]
        kept = fr[fr["v"] < 50]
        parts = kept.split_frame([0.3, 0.3], seed=8)
        spread = [sorted(p.as_data_frame()["i"].tolist()) for p in parts]
        drawn = sorted(zip(kept.as_data_frame()["i"], kept.runif(seed=2).as_data_frame()["rnd"]))
    finally:
        h2o.init()
    alone = h2o.import_file(path)
    alone = alone[alone["v"] < 50]
    one = [sorted(p.as_data_frame()["i"].tolist()) for p in alone.split_frame([0.3, 0.3], seed=8)]
    one_drawn = sorted(zip(alone.as_data_frame()["i"], alone.runif(seed=2).as_data_frame()["rnd"]))
    agreed = allgather_obj(comm, [spread == one, drawn == one_drawn, in_turns])
    assert all(all(a) for a in agreed), agreed
