"""Column summaries equal pandas' on the bundled airlines and California housing files; the
describe command prints them (text and JSON); compressed sizes beat float64."""
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import h2odl_mpi
from h2odl_mpi.data.frame import CATEGORICAL, Frame
from h2odl_mpi.data.frame import describe
from h2odl_mpi.data.frame.readers import NA_STRINGS

DATA = Path(h2odl_mpi.__file__).parent / "datasets"

FILES = {"airlines": "airlines/allyears2k_headers.csv.gz", "cal_housing": "cal_housing/cal_housing.csv"}


@pytest.fixture(scope="module", params=sorted(FILES))
def pair(request):
    path = DATA / FILES[request.param]
    expected = pd.read_csv(path, encoding="latin-1", na_values=list(NA_STRINGS),
                           keep_default_na=False, low_memory=False)
    return Frame.read(path), expected


def test_types_and_shape_match_pandas(pair):
    frame, expected = pair
    assert frame.shape == expected.shape
    assert frame.names == list(expected.columns)
    text_columns = {c for c in expected.columns if expected[c].dtype == object or
                    pd.api.types.is_string_dtype(expected[c])}
    assert {c.name for c in frame.columns if c.kind == CATEGORICAL} == text_columns


def test_numeric_summaries_match_pandas(pair):
    frame, expected = pair
    for s in frame.summary():
        column = expected[s.name]
        assert s.rows == len(column)
        assert s.na_count == int(column.isna().sum()), s.name
        if s.type == "enum":
            continue
        present = column.dropna().to_numpy(dtype=np.float64)
        assert s.min == present.min() and s.max == present.max(), s.name
        assert s.zero_count == int((present == 0).sum()), s.name
        assert s.mean == pytest.approx(present.mean(), rel=1e-12), s.name
        assert s.sd == pytest.approx(present.std(ddof=1), rel=1e-10), s.name
        assert s.type == ("int" if np.array_equal(present, np.rint(present)) else "real")


@pytest.mark.parametrize("kept", [0, 40_000])
def test_values_kept_for_the_second_pass_give_the_same_bits(pair, monkeypatch, kept):
    """Pass 2 (the sd) reads the values pass 1 decoded, up to KEPT_BYTES, and decodes the
    rest again: nothing kept, some kept and all kept give the same summaries, bit for bit."""
    from h2odl_mpi.data.frame import summary
    frame, _ = pair
    everything = [s.to_dict() for s in summary.summarize(frame.columns, None)]
    monkeypatch.setattr(summary, "KEPT_BYTES", kept)
    assert [s.to_dict() for s in summary.summarize(frame.columns, None)] == everything


def test_categorical_summaries_match_pandas(pair):
    frame, expected = pair
    for s in frame.summary():
        if s.type != "enum":
            continue
        column = expected[s.name].dropna().astype(str)
        domain = sorted(column.unique())
        assert s.cardinality == len(domain) and frame.domain(s.name) == domain
        counts = column.value_counts()
        assert s.level_counts == [int(counts[level]) for level in s.levels]


def test_rows_decode_to_pandas_values(pair):
    frame, expected = pair
    for col in frame.columns:
        values = col.decode()
        if col.kind == CATEGORICAL:
            text = [None if np.isnan(v) else col.domain[int(v)] for v in values]
            assert text == [None if pd.isna(v) else str(v) for v in expected[col.name]]
        else:
            assert np.array_equal(values, expected[col.name].to_numpy(dtype=np.float64),
                                  equal_nan=True), col.name


def test_compressed_far_below_float64(pair):
    frame, _ = pair
    assert frame.compressed_bytes == sum(c.nbytes for c in frame.columns)
    assert frame.compressed_bytes < 0.35 * 8 * frame.n_rows * frame.n_columns


def test_head_is_the_first_rows(pair):
    frame, expected = pair
    head = frame.head(4)
    assert len(head) == 4 and list(head.columns) == frame.names
    first = frame.names[0]
    assert head[first].tolist() == expected[first].head(4).tolist()


def args(path, **kw):
    base = dict(data=str(path), format=None, sep=None, header="auto", replicate=False, levels=3,
                json=False)
    base.update(kw)
    return SimpleNamespace(**base)


def test_describe_json(data_dir, capsys):
    path = data_dir / FILES["airlines"]
    assert describe.run(args(path, json=True)) == 0
    report = json.loads(capsys.readouterr().out)
    expected = pd.read_csv(path, encoding="latin-1", low_memory=False)
    assert report["rows"] == len(expected)
    assert [c["name"] for c in report["columns"]] == list(expected.columns)
    assert report["compressed_bytes"] == sum(c["compressed_bytes"] for c in report["columns"])
    carrier = next(c for c in report["columns"] if c["name"] == "UniqueCarrier")
    assert carrier["type"] == "enum" and carrier["cardinality"] == expected["UniqueCarrier"].nunique()
    assert carrier["levels"] == sorted(expected["UniqueCarrier"].unique())[:3]
    year = next(c for c in report["columns"] if c["name"] == "Year")
    assert year["mean"] == pytest.approx(expected["Year"].mean(), rel=1e-12)
    assert sum(year["encodings"].values()) >= 1


def test_describe_text(data_dir, capsys):
    assert describe.run(args(data_dir / FILES["cal_housing"])) == 0
    out = capsys.readouterr().out
    assert "20,640 rows x 9 columns" in out
    lines = {line.split()[0]: line for line in out.splitlines()[3:] if line.strip()}
    assert set(lines) == set(pd.read_csv(data_dir / FILES["cal_housing"], nrows=1).columns)
    assert " real " in lines["medianIncome"] and "dec" in lines["medianIncome"]
