"""Distributed ingest under mpirun (pytest-mpi; run with 1, 2 and 3 ranks).

Inside one run, the ranks form communicators of every size 1..N; each reads the same input
and must give the serial read's global rows (order-insensitive hash), domains and summaries,
with local row counts that add up.  A failure on one rank must end every rank with the same
UserError.  Collective calls come first and assertions after, so a failing assertion on one
rank cannot leave the others waiting.
"""
import gzip
import os

import numpy as np
import pytest
from mpi4py import MPI

from h2odl_mpi.errors import UserError
from h2odl_mpi.data.frame import CATEGORICAL, Frame

WORLD = MPI.COMM_WORLD
RANK, SIZE = WORLD.Get_rank(), WORLD.Get_size()


def shared_dir(tmp_path_factory, name):
    path = tmp_path_factory.mktemp(name) if RANK == 0 else None
    return WORLD.bcast(str(path) if path else None, root=0)


def on_root(write):
    """Run `write()` on rank 0 only, then let every rank see the result."""
    if RANK == 0:
        write()
    WORLD.Barrier()


def fingerprint(frame):
    """Collective: everything that must not depend on the number of ranks."""
    summaries = [(s.name, s.type, s.rows, s.na_count, s.zero_count, s.min, s.max, s.cardinality,
                  tuple(s.levels), tuple(s.level_counts), s.mean, s.sd) for s in frame.summary()]
    return dict(hash=frame.content_hash(), rows=frame.n_rows, names=frame.names,
                types=frame.types, domains=[c.domain for c in frame.columns],
                summaries=summaries,
                local_rows_sum=int(sum(frame.comm.allgather(frame.n_local_rows))
                                   if frame.comm is not None else frame.n_local_rows),
                local_rows=frame.n_local_rows)


def same_fingerprint(a, b):
    if "error" in a or "error" in b:
        return False
    exact = ("hash", "rows", "names", "types", "domains")
    if any(a[k] != b[k] for k in exact):
        return False
    for sa, sb in zip(a["summaries"], b["summaries"]):
        if sa[:10] != sb[:10]:
            return False
        for x, y in zip(sa[10:], sb[10:]):   # mean, sd: summed in another order
            if (x is None) != (y is None) or (x is not None and not np.isclose(x, y, rtol=1e-12,
                                                                                  equal_nan=True)):
                return False
    return True


def read_with_every_size(path, **options):
    """[(size, fingerprint)] for communicators of 1..SIZE ranks that include this rank.

    A failed read is recorded, not raised, so every rank still takes part in every Split."""
    results = []
    for size in range(1, SIZE + 1):
        sub = WORLD.Split(0 if RANK < size else MPI.UNDEFINED, RANK)
        if sub != MPI.COMM_NULL:
            try:
                results.append((size, fingerprint(Frame.read(path, comm=sub, **options))))
            except UserError as err:
                results.append((size, {"error": str(err)}))
            sub.Free()
    return results


INPUTS = {
    "byte ranges": "cal_housing/cal_housing.csv",
    "one gzip file, strided": "airlines/allyears2k_headers.csv.gz",
    "small headerless file": "ecg/ecg_discord_test.csv",
}


@pytest.mark.mpi
@pytest.mark.parametrize("name", sorted(INPUTS))
def test_same_global_frame_on_any_number_of_ranks(data_dir, name):
    path = data_dir / INPUTS[name]
    reference = fingerprint(Frame.read(path))          # serial, on every rank
    results = read_with_every_size(path)
    assert results, "this rank took part in no read"
    for size, got in results:
        assert same_fingerprint(got, reference), (name, size)
        assert got["local_rows_sum"] == reference["rows"]
        if size > 1:
            assert got["local_rows"] < reference["rows"]   # a share, not a copy


@pytest.mark.mpi
def test_replicated_holds_every_row(data_dir):
    path = data_dir / INPUTS["byte ranges"]
    frame = Frame.read(path, comm=WORLD, replicate=True)
    got = fingerprint(frame)
    reference = fingerprint(Frame.read(path))
    assert frame.n_local_rows == frame.n_rows == reference["rows"]
    assert same_fingerprint(got, reference)


@pytest.mark.mpi
def test_more_ranks_than_rows(tmp_path_factory):
    folder = shared_dir(tmp_path_factory, "tiny")
    path = os.path.join(folder, "tiny.csv")
    rows = max(SIZE - 1, 1)
    on_root(lambda: open(path, "w").write("k,v\n" + "".join(f"l{i},{i}\n" for i in range(rows))))
    reference = fingerprint(Frame.read(path))
    frame = Frame.read(path, comm=WORLD)
    got = fingerprint(frame)
    empty_ranks = sum(WORLD.allgather(int(frame.n_local_rows == 0)))
    assert same_fingerprint(got, reference)
    assert got["local_rows_sum"] == rows
    if SIZE > 1:
        assert empty_ranks >= 1


@pytest.mark.mpi
def test_text_seen_by_one_rank_makes_the_column_categorical_everywhere(tmp_path_factory):
    folder = shared_dir(tmp_path_factory, "promote")
    path = os.path.join(folder, "late_text.csv")
    lines = [f"{i},{i % 7}" for i in range(20000)] + ["20000,seven"]
    on_root(lambda: open(path, "w").write("id,v\n" + "\n".join(lines) + "\n"))
    reference = fingerprint(Frame.read(path))
    results = read_with_every_size(path)
    for size, got in results:
        assert got["types"][1] == CATEGORICAL and "seven" in got["domains"][1]
        assert same_fingerprint(got, reference), size


@pytest.mark.mpi
def test_many_compressed_files_are_shared_whole(tmp_path_factory):
    folder = shared_dir(tmp_path_factory, "parts")

    def write_parts():
        for k in range(2 * SIZE + 1):
            with gzip.open(os.path.join(folder, f"part{k:02d}.csv.gz"), "wt") as fh:
                fh.write("a,b\n" + "".join(f"{k * 100 + i},c{i % 5}\n" for i in range(50 + k)))
    on_root(write_parts)
    reference = fingerprint(Frame.read(folder))
    results = read_with_every_size(folder)
    for size, got in results:
        assert same_fingerprint(got, reference), size


def collective_error(read):
    """Every rank's UserError message (or None), gathered after the read."""
    try:
        read()
        message = None
    except UserError as err:
        message = str(err)
    return WORLD.allgather(message)


@pytest.mark.mpi
def test_one_broken_file_fails_every_rank(tmp_path_factory):
    folder = shared_dir(tmp_path_factory, "broken")

    def write_parts():
        for k in range(SIZE + 1):
            data = gzip.compress(("a,b\n" + "".join(f"{i},{i}\n" for i in range(5000))).encode())
            if k == SIZE:                        # the last file: only the last rank reads it
                data = data[:len(data) // 2]
            with open(os.path.join(folder, f"f{k}.csv.gz"), "wb") as fh:
                fh.write(data)
    on_root(write_parts)
    messages = collective_error(lambda: Frame.read(folder, comm=WORLD))
    assert all(m is not None for m in messages)
    assert len(set(messages)) == 1
    assert f"f{SIZE}.csv.gz: corrupt or truncated gzip data" in messages[0]


@pytest.mark.mpi
def test_ragged_row_in_the_last_share_fails_every_rank(tmp_path_factory):
    folder = shared_dir(tmp_path_factory, "ragged")
    path = os.path.join(folder, "ragged.csv")
    lines = [f"{i},{i}" for i in range(9000)]
    lines[8990] = "1,2,3"
    on_root(lambda: open(path, "w").write("x,y\n" + "\n".join(lines) + "\n"))
    messages = collective_error(lambda: Frame.read(path, comm=WORLD))
    assert all(m is not None for m in messages) and len(set(messages)) == 1
    assert "ragged.csv, line 8992: expected 2 fields, found 3" in messages[0]


@pytest.mark.mpi
def test_missing_file_fails_every_rank():
    messages = collective_error(lambda: Frame.read("/nonexistent/dir/x.csv", comm=WORLD))
    assert all(m is not None and "no such file" in m for m in messages)


def _padded_rows(n):
    """Census-like text: blanks around fields, fields of blanks only, NA strings of some
    columns, a quoted field holding the separator, and text late in a column forced numeric."""
    rows = []
    for i in range(n):
        work = "   " if i % 11 == 0 else (" missing" if i % 13 == 0 else f" w{i % 6}")
        hours = "  " if i % 17 == 0 else ("-999" if i % 19 == 0 else f" {i % 60} ")
        note = ' "a, b" ' if i % 23 == 0 else f" n{i % 4}"
        code = "oops" if i == n - 2 else str(i % 9)
        rows.append(f"{i},{work},{hours},{note},{code}")
    return "id, work, hours, note, code\n" + "\n".join(rows) + "\n"


@pytest.mark.mpi
def test_na_strings_col_types_and_blanks_read_alike_on_any_number_of_ranks(tmp_path_factory):
    folder = shared_dir(tmp_path_factory, "options")
    path = os.path.join(folder, "padded.csv")
    on_root(lambda: open(path, "w").write(_padded_rows(30000)))
    options = dict(na_strings={"work": "missing", "hours": ["-999"]}, col_types={"code": "numeric", "id": "enum"},
                   block_bytes=1 << 16)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = fingerprint(Frame.read(path, **options))
        results = read_with_every_size(path, **options)
        replicated = fingerprint(Frame.read(path, comm=WORLD, replicate=True, **options))
        sharded = fingerprint(Frame.read(path, comm=WORLD, **options))
    assert reference["types"] == ["categorical", "categorical", "numeric", "categorical", "numeric"]
    work, note = reference["domains"][1], reference["domains"][3]
    assert work == [f"w{k}" for k in range(6)] and "missing" not in work and "" not in work
    assert note == ["a, b", "n0", "n1", "n2", "n3"]
    na = {s[0]: s[3] for s in reference["summaries"]}
    assert na["hours"] == sum(1 for i in range(30000) if i % 17 == 0 or (i % 19 == 0))
    assert na["code"] == 1
    assert same_fingerprint(replicated, reference) and same_fingerprint(sharded, reference)
    for size, got in results:
        assert same_fingerprint(got, reference), size


@pytest.mark.mpi
def test_bad_col_types_fail_every_rank_alike(tmp_path_factory):
    folder = shared_dir(tmp_path_factory, "badtypes")
    path = os.path.join(folder, "d.csv")
    on_root(lambda: open(path, "w").write("a,b\n1,x\n2,y\n"))
    messages = collective_error(lambda: Frame.read(path, comm=WORLD, col_types={"c": "enum"}))
    assert all(m is not None for m in messages) and len(set(messages)) == 1
    assert "col_types: no column 'c' (columns: a, b)" in messages[0]
