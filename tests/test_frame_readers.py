"""Readers: CSV dialects, compression, many files, SVMLight and Parquet give the values pandas
(or the text itself) says they hold; the byte-range and strided shards of any number of ranks
cover every row exactly once."""
import bz2
import gzip
import zipfile

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from h2odl_mpi.data.frame import CATEGORICAL, NUMERIC, Frame
from h2odl_mpi.data.frame.sharding import iter_blocks, plan_text_shard
from h2odl_mpi.data.frame.sources import resolve_inputs


def write(path, text, opener=open):
    with opener(path, "wb") as fh:
        fh.write(text.encode() if isinstance(text, str) else text)
    return path


def frame_values(frame):
    """{name: list of Python values}, categorical as level text, NA as None."""
    out = {}
    for name in frame.names:
        col = frame.column(name)
        values = col.decode()
        if col.kind == CATEGORICAL:
            out[name] = [None if np.isnan(v) else col.domain[int(v)] for v in values]
        else:
            out[name] = [None if np.isnan(v) else float(v) for v in values]
    return out


SIMPLE = "a,b,c\n1,x,2.5\n2,y,\n3,x,NA\n"


def test_csv_header_types_and_na(tmp_path):
    frame = Frame.from_csv(write(tmp_path / "s.csv", SIMPLE))
    assert frame.names == ["a", "b", "c"]
    assert frame.types == [NUMERIC, CATEGORICAL, NUMERIC]
    assert frame.shape == (3, 3) and frame.n_local_rows == 3
    assert frame.domain("b") == ["x", "y"]
    assert frame_values(frame) == {"a": [1.0, 2.0, 3.0], "b": ["x", "y", "x"], "c": [2.5, None, None]}


def test_csv_without_header_gets_h2o_names(tmp_path):
    frame = Frame.from_csv(write(tmp_path / "n.csv", "1,2\n3,4\n"))
    assert frame.names == ["C1", "C2"]
    assert frame.to_numpy().tolist() == [[1.0, 2.0], [3.0, 4.0]]
    forced = Frame.from_csv(write(tmp_path / "h.csv", "1,2\n3,4\n"), header=True)
    assert forced.names == ["1", "2"] and forced.n_rows == 1


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_separator_is_detected(tmp_path, sep):
    text = f"x{sep}y\n1{sep}2\n3{sep}4\n"
    frame = Frame.from_csv(write(tmp_path / "d.csv", text))
    assert frame.names == ["x", "y"] and frame.to_numpy().tolist() == [[1, 2], [3, 4]]


def test_given_separator_wins(tmp_path):
    frame = Frame.from_csv(write(tmp_path / "g.csv", "p,q;r\n1,5;2\n"), sep=";")
    assert frame.names == ["p,q", "r"]
    assert frame_values(frame)["p,q"] == ["1,5"]


def test_quoted_fields_and_na_strings(tmp_path):
    text = 'id,name,v\n1,"Smith, J",?\n2,"say ""hi""",NaN\n3,"",N/A\n4,NA,7\n'
    frame = Frame.from_csv(write(tmp_path / "q.csv", text))
    values = frame_values(frame)
    assert values["name"] == ["Smith, J", 'say "hi"', None, None]
    assert values["v"] == [None, None, None, 7.0]


def test_quoted_newlines_when_announced(tmp_path):
    text = 'k,t\n1,"line one\nline two"\n2,plain\n'
    frame = Frame.from_csv(write(tmp_path / "m.csv", text), quoted_newlines=True)
    assert frame_values(frame)["t"] == ["line one\nline two", "plain"]


@pytest.mark.parametrize("kind", ["gzip", "bz2", "zip"])
def test_compressed_csv(tmp_path, kind):
    if kind == "gzip":
        path = write(tmp_path / "c.csv.gz", SIMPLE, gzip.open)
    elif kind == "bz2":
        path = write(tmp_path / "c.bz2", SIMPLE, bz2.open)
    else:
        path = tmp_path / "c.zip"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("inner.csv", SIMPLE)
    assert frame_values(Frame.read(path)) == frame_values(Frame.read(write(tmp_path / "p.csv", SIMPLE)))


def test_directory_and_glob_of_files(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    write(folder / "part1.csv", "a,b\n1,u\n2,v\n")
    write(folder / "part2.csv.gz", "a,b\n3,w\n", gzip.open)
    write(folder / "part3.csv", "a,b\n4,u\n")
    by_dir = Frame.read(folder)
    assert by_dir.n_rows == 4
    assert frame_values(by_dir) == {"a": [1.0, 2.0, 3.0, 4.0], "b": ["u", "v", "w", "u"]}
    by_glob = Frame.read(str(folder / "part*.csv"))
    assert frame_values(by_glob)["a"] == [1.0, 2.0, 4.0]


def test_parquet_row_groups_and_types(tmp_path):
    table = pa.table({"i": pa.array([1, 2, None, 4], pa.int64()),
                      "f": pa.array([0.5, None, 1.5, -2.0]),
                      "s": pa.array(["b", "a", None, "b"]),
                      "t": pa.array([True, False, None, True]),
                      "d": pa.array([0, 1, 2, 3], pa.date32())})
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=2)
    frame = Frame.read(path)
    assert frame.types == [NUMERIC, NUMERIC, CATEGORICAL, NUMERIC, NUMERIC]
    values = frame_values(frame)
    assert values["i"] == [1.0, 2.0, None, 4.0]
    assert values["f"] == [0.5, None, 1.5, -2.0]
    assert values["s"] == ["b", "a", None, "b"]
    assert values["t"] == [1.0, 0.0, None, 1.0]
    assert values["d"] == [0.0, 86_400_000.0, 2 * 86_400_000.0, 3 * 86_400_000.0]


def test_svmlight(tmp_path):
    text = "1 1:0.5 3:2 # comment\n-1 qid:3 2:1.25\n\n0 3:-1 4:7\n"
    frame = Frame.read(write(tmp_path / "d.svmlight", text))
    assert frame.names == ["target", "C1", "C2", "C3", "C4"]
    assert frame.to_numpy().tolist() == [[1, 0.5, 0, 2, 0], [-1, 0, 1.25, 0, 0], [0, 0, 0, -1, 7]]
    zero_based = Frame.from_svmlight(write(tmp_path / "z.txt", "2 0:1 2:3\n"))
    assert zero_based.names == ["target", "C0", "C1", "C2"]


def test_svmlight_is_detected_by_content(tmp_path):
    frame = Frame.read(write(tmp_path / "noext", "1 2:3\n0 1:1\n"))
    assert frame.names == ["target", "C1", "C2"]


def test_from_arrays_and_head():
    frame = Frame.from_arrays({"x": np.array([1.0, np.nan, 3.0]),
                               "c": np.array(["b", None, "a"], dtype=object)})
    assert frame.domain("c") == ["a", "b"]
    head = frame.head(2)
    assert list(head.columns) == ["x", "c"] and len(head) == 2
    assert head["c"].tolist() == ["b", None]
    assert np.isnan(head["x"][1])


def test_text_in_numeric_column_makes_it_categorical(tmp_path):
    rows = "\n".join(str(i) for i in range(5000))
    path = write(tmp_path / "t.csv", f"v\n{rows}\noops\n7\n")
    frame = Frame.from_csv(path, block_bytes=1 << 12)   # the text is far past the first block
    assert frame.types == [CATEGORICAL]
    assert "oops" in frame.domain("v") and "4999" in frame.domain("v")
    assert frame.n_rows == 5002


def test_many_levels(tmp_path):
    n = 100_000
    levels = [f"L{i:06d}" for i in np.random.default_rng(0).permutation(n)]
    path = write(tmp_path / "lv.csv", "k,x\n" + "".join(f"{lv},{i % 3}\n" for i, lv in enumerate(levels)))
    frame = Frame.from_csv(path)
    assert frame.column("k").kind == CATEGORICAL
    domain = frame.domain("k")
    assert len(domain) == n and domain == sorted(domain)
    codes = frame.decode("k").astype(int)
    assert [domain[c] for c in codes[:5]] == levels[:5]
    summary = {s.name: s for s in frame.summary()}
    assert summary["k"].cardinality == n


# ----------------------------------------------------------------- sharding, simulated

def rows_of_shards(inputs, size, header, quoted_newlines=False, block_bytes=64):
    """Row texts each of `size` ranks would parse, read without MPI."""
    per_rank = []
    for rank in range(size):
        shard = plan_text_shard(inputs, rank, size, replicate=False, quoted_newlines=quoted_newlines)
        text = b"".join(b.data for b in iter_blocks(shard, block_bytes, header, '"', quoted_newlines))
        per_rank.append([r for r in text.replace(b"\r", b"").split(b"\n") if r])
    return per_rank


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 40])
def test_byte_ranges_cover_every_row_once(tmp_path, size):
    rows = [f"{i},{'x' * (i % 13)},{i * 0.5}".encode() for i in range(37)]
    path = write(tmp_path / "r.csv", b"a,b,c\r\n" + b"\r\n".join(rows))     # CRLF, no final newline
    per_rank = rows_of_shards(resolve_inputs(path), size, header=True)
    assert [r for part in per_rank for r in part] == rows
    assert sum(len(p) for p in per_rank) == len(rows)


@pytest.mark.parametrize("size", [2, 3, 5])
def test_many_files_and_strided_streams_cover_every_row_once(tmp_path, size):
    expected = []
    for k in range(4):
        rows = [f"{k},{i}".encode() for i in range(k * 7 + 1)]
        expected += rows
        write(tmp_path / f"f{k}.csv.gz", b"a,b\n" + b"\n".join(rows) + b"\n", gzip.open)
    inputs = resolve_inputs(str(tmp_path / "f*.csv.gz"))
    per_rank = rows_of_shards(inputs, size, header=True, block_bytes=16)
    assert sorted(r for part in per_rank for r in part) == sorted(expected)


def test_quoted_newlines_are_streamed_whole(tmp_path):
    rows = [f'{i},"two\nlines {i}"'.encode() for i in range(20)]
    content = b"\n".join(rows) + b"\n"
    inputs = resolve_inputs(write(tmp_path / "q.csv", content))
    blocks = []
    for rank in range(3):
        shard = plan_text_shard(inputs, rank, 3, False, quoted_newlines=True)
        assert shard.mode == "strided"
        blocks += list(iter_blocks(shard, 32, False, '"', quoted_newlines=True))
    blocks.sort(key=lambda b: b.offset)
    assert b"".join(b.data for b in blocks) == content
    assert all(b.data.endswith(b'"\n') for b in blocks)   # never cut inside a quoted value
    frame = Frame.from_csv(inputs[0].path, quoted_newlines=True, block_bytes=32)
    assert frame.n_rows == 20


def test_bom_and_crlf(tmp_path):
    path = write(tmp_path / "b.csv", b"\xef\xbb\xbfname,val\r\nx,1\r\ny,2\r\n")
    frame = Frame.from_csv(path)
    assert frame.names == ["name", "val"]
    assert frame_values(frame) == {"name": ["x", "y"], "val": [1.0, 2.0]}


def test_inf_and_nan_literals(tmp_path):
    path = write(tmp_path / "i.csv", "v\nInf\n-inf\nInfinity\nNaN\nnan\n1e400\n-0.0\n")
    values = Frame.from_csv(path).decode("v")
    assert values[:3].tolist() == [np.inf, -np.inf, np.inf]
    assert np.isnan(values[3:5]).all()
    assert values[5] == np.inf and np.signbit(values[6]) and values[6] == 0


def test_matches_pandas_on_ecg(data_dir):
    path = data_dir / "ecg" / "ecg_discord_train.csv"
    frame = Frame.read(path)
    expected = pd.read_csv(path, header=None).to_numpy(dtype=np.float64)
    assert frame.shape == expected.shape
    assert np.array_equal(frame.to_numpy(), expected)
