"""Bad input: each case either has its documented behaviour (docs/column_store.md) or raises
a UserError whose message names the file and, where there is one, the line."""
import gzip

import numpy as np
import pytest

from h2odl_mpi.errors import UserError
from h2odl_mpi.data.frame import CATEGORICAL, NUMERIC, Frame
from h2odl_mpi.data.frame import describe


def write(path, data, opener=open):
    with opener(path, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
    return path


def test_ragged_row_names_file_and_line(tmp_path):
    path = write(tmp_path / "ragged.csv", "a,b,c\n1,2,3\n4,5,6\n7,8\n9,10,11\n")
    with pytest.raises(UserError, match=r"ragged\.csv, line 4: expected 3 fields, found 2"):
        Frame.from_csv(path)


def test_ragged_row_deep_in_a_byte_range(tmp_path):
    rows = [f"{i},{i}" for i in range(3000)]
    rows[2500] = "1,2,3"
    path = write(tmp_path / "deep.csv", "x,y\n" + "\n".join(rows) + "\n")
    with pytest.raises(UserError, match=r"deep\.csv, line 2502: expected 2 fields, found 3"):
        Frame.from_csv(path, block_bytes=1000, use_threads=True)


def test_empty_file(tmp_path):
    path = write(tmp_path / "empty.csv", "")
    with pytest.raises(UserError, match=r"empty\.csv: empty file"):
        Frame.from_csv(path)


def test_blank_lines_only_count_as_empty(tmp_path):
    with pytest.raises(UserError, match="empty file"):
        Frame.from_csv(write(tmp_path / "blank.csv", "\n\n  \n"))


def test_header_without_rows_is_an_empty_frame(tmp_path):
    frame = Frame.from_csv(write(tmp_path / "h.csv", "alpha,beta\n"))
    assert frame.names == ["alpha", "beta"] and frame.n_rows == 0
    assert frame.types == [NUMERIC, NUMERIC]
    assert [s.rows for s in frame.summary()] == [0, 0]
    assert frame.to_numpy().shape == (0, 2)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match=r"nothere\.csv: no such file or directory"):
        Frame.read(tmp_path / "nothere.csv")


def test_glob_without_matches(tmp_path):
    with pytest.raises(UserError, match=r"no file matches"):
        Frame.read(str(tmp_path / "*.csv"))


def test_truncated_gzip(tmp_path):
    text = "a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(20000))
    whole = gzip.compress(text.encode())
    path = write(tmp_path / "broken.csv.gz", whole[:len(whole) // 2])
    with pytest.raises(UserError, match=r"broken\.csv\.gz: corrupt or truncated gzip data after line \d+"):
        Frame.read(path)


def test_garbage_after_gzip_magic(tmp_path):
    path = write(tmp_path / "garbage.gz", b"\x1f\x8b" + bytes(range(200)))
    with pytest.raises(UserError, match=r"garbage\.gz"):
        Frame.read(path)


def test_text_in_numeric_column_is_categorical(tmp_path):
    frame = Frame.from_csv(write(tmp_path / "mixed.csv", "n,m\n1,1\n2,two\n3,3\n"))
    assert frame.types == [NUMERIC, CATEGORICAL]
    assert frame.domain("m") == ["1", "3", "two"]


def test_too_many_levels(tmp_path):
    path = write(tmp_path / "lv.csv", "k\n" + "".join(f"v{i}\n" for i in range(50)))
    with pytest.raises(UserError, match=r"'k' has more than 20 categorical levels"):
        Frame.from_csv(path, max_levels=20)


def test_bytes_that_are_not_utf8_are_kept_as_latin1(tmp_path):
    frame = Frame.from_csv(write(tmp_path / "l1.csv", b"name\nN712\xe4\xe6\nplain\n"))
    assert frame.domain("name") == ["N712\xe4\xe6", "plain"]


def test_bad_svmlight_token_names_line(tmp_path):
    path = write(tmp_path / "bad.svm", "1 1:2\n0 3:4\n1 5-6\n")
    with pytest.raises(UserError, match=r"bad\.svm, line 3: not SVMLight"):
        Frame.read(path)


def test_svmlight_feature_index_beyond_the_bound_is_refused_before_columns_are_made(tmp_path):
    from h2odl_mpi.data.frame.svmlight import MAX_FEATURE_INDEX
    ok = Frame.read(write(tmp_path / "ok.svm", f"1 {MAX_FEATURE_INDEX // 64}:1\n0 3:4\n"))
    assert len(ok.names) == MAX_FEATURE_INDEX // 64 + 1  # (target, C1 ... C<index>)
    path = write(tmp_path / "wide.svm", f"1 1:2\n0 {MAX_FEATURE_INDEX + 1}:4\n")
    with pytest.raises(UserError, match=r"wide\.svm, line 2: not SVMLight: feature index 1048577 is above 1,048,576"):
        Frame.read(path)


def test_corrupt_parquet(tmp_path):
    path = write(tmp_path / "bad.parquet", b"PAR1" + b"\0" * 50)
    with pytest.raises(UserError, match=r"bad\.parquet: not a readable Parquet file"):
        Frame.read(path)


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(UserError, match="unknown format"):
        Frame.read(write(tmp_path / "x.csv", "a\n1\n"), format="xls")


def test_describe_reports_user_errors_with_status_2(tmp_path, capsys):
    assert describe.main(["--data", str(tmp_path / "none.csv")]) == 2
    assert "none.csv: no such file or directory" in capsys.readouterr().err


def test_infinite_and_nan_summaries(tmp_path):
    frame = Frame.from_csv(write(tmp_path / "inf.csv", "v\n1\nInf\nNaN\n"))
    (s,) = frame.summary()
    assert s.na_count == 1 and s.max == np.inf and s.mean == np.inf
    assert s.to_dict()["max"] == "inf"
