"""H2O-3's parse options na_strings and col_types, and its rule for blanks around fields:
through Frame.read (CSV and Parquet), h2o.import_file / upload_file, the train command's
--na_strings (training and validation files) and evaluate's.  Values are checked against
what the text holds; NA counts come from the frame's summary, levels from its domains."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from h2odl_mpi import h2o
from h2odl_mpi.cli import main
from h2odl_mpi.data.frame import CATEGORICAL, NUMERIC, Frame
from h2odl_mpi.data.frame.blanks import normalize_blanks
from h2odl_mpi.data.frame.parse_options import na_strings_flag
from h2odl_mpi.errors import EstimatorError, UserError
from h2odl_mpi.model.model_io import load_model
from h2odl_mpi.training.trainer import read_frames

TEXT = ("num,cat,code,other\n"
        "1.5,red,7,a\n"
        "-999,missing,-999,b\n"
        "2.5,blue,8,missing\n"
        "-999,red,-999,-999\n"
        "4,missing,9,c\n")


def write(path, text):
    path.write_text(text)
    return path


def values(frame):
    """{name: list of values}: levels as text, numbers as floats, NA as None."""
    out = {}
    for c in frame.columns:
        v = c.decode()
        out[c.name] = [None if np.isnan(x) else (c.domain[int(x)] if c.kind == CATEGORICAL else float(x))
                       for x in v]
    return out


def na_counts(frame):
    return {s.name: s.na_count for s in frame.summary()}


def test_without_na_strings_the_strings_are_values(tmp_path):
    frame = Frame.read(write(tmp_path / "d.csv", TEXT))
    assert frame.types == [NUMERIC, CATEGORICAL, NUMERIC, CATEGORICAL]
    assert "missing" in frame.domain("cat") and na_counts(frame) == {"num": 0, "cat": 0, "code": 0, "other": 0}


def test_na_strings_for_every_column(tmp_path):
    frame = Frame.read(write(tmp_path / "d.csv", TEXT), na_strings=["-999", "missing"])
    assert frame.types == [NUMERIC, CATEGORICAL, NUMERIC, CATEGORICAL]
    assert na_counts(frame) == {"num": 2, "cat": 2, "code": 2, "other": 2}
    assert frame.domain("cat") == ["blue", "red"] and frame.domain("other") == ["a", "b", "c"]
    assert values(frame)["num"] == [1.5, None, 2.5, None, 4.0]
    assert values(frame)["other"] == ["a", "b", None, None, "c"]


def test_na_strings_per_column_list(tmp_path):
    frame = Frame.read(write(tmp_path / "d.csv", TEXT), na_strings=[["-999"], ["missing"], None, []])
    assert na_counts(frame) == {"num": 2, "cat": 2, "code": 0, "other": 0}
    assert frame.domain("cat") == ["blue", "red"]
    assert values(frame)["code"] == [7.0, -999.0, 8.0, -999.0, 9.0]
    assert "missing" in frame.domain("other") and "-999" in frame.domain("other")


def test_na_strings_by_column_name(tmp_path):
    frame = Frame.read(write(tmp_path / "d.csv", TEXT), na_strings={"code": "-999", "other": ["missing", "-999"]})
    assert na_counts(frame) == {"num": 0, "cat": 0, "code": 2, "other": 2}
    assert frame.types[3] == CATEGORICAL and frame.domain("other") == ["a", "b", "c"]
    assert "missing" in frame.domain("cat")


def test_a_column_na_string_makes_a_text_column_numeric(tmp_path):
    text = "x,y\n1,a\nn/k,b\n3,c\n"
    frame = Frame.read(write(tmp_path / "d.csv", text), na_strings={"x": ["n/k"]})
    assert frame.types == [NUMERIC, CATEGORICAL] and values(frame)["x"] == [1.0, None, 3.0]
    # NA strings match whole fields, as text: "-999.0" is not "-999"
    frame = Frame.read(write(tmp_path / "e.csv", "v\n-999\n-999.0\n2\n"), na_strings={"v": "-999"})
    assert values(frame)["v"] == [None, -999.0, 2.0]


def test_na_strings_are_matched_in_every_block_and_on_text_found_late(tmp_path):
    rows = [f"{i},{'x' if i % 3 else 'gone'}" for i in range(30000)] + ["30000,late"]
    path = write(tmp_path / "big.csv", "k,v\n" + "\n".join(rows) + "\n")
    frame = Frame.read(path, na_strings={"v": "gone"}, block_bytes=1 << 16)
    assert frame.domain("v") == ["late", "x"] and na_counts(frame)["v"] == 10000


def test_col_types_make_numbers_categorical_and_text_numeric(tmp_path):
    text = "id,grade,score\n01,7,1.5\n2,8,x\n3,7,2\n4.0,9,?\n"
    path = write(tmp_path / "d.csv", text)
    with pytest.warns(UserWarning, match=r"column 'score': 1 value\(s\) that are not numbers \(e.g. 'x'\)"):
        frame = Frame.read(path, col_types={"id": "enum", "grade": "factor", "score": "numeric"})
    assert frame.types == [CATEGORICAL, CATEGORICAL, NUMERIC]
    assert frame.domain("id") == ["01", "2", "3", "4.0"]        # the text as written, as H2O
    assert frame.domain("grade") == ["7", "8", "9"]
    assert values(frame)["score"] == [1.5, None, 2.0, None]    # H2O: text in a numeric column is NA
    assert na_counts(frame)["score"] == 2
    listed = Frame.read(path, col_types=["categorical", None, "real"], na_strings=["x"])
    assert listed.types == [CATEGORICAL, NUMERIC, NUMERIC]


def test_col_types_numeric_reads_text_that_appears_after_numbers(tmp_path):
    rows = [f"{i}" for i in range(20000)] + ["oops", "7"]
    path = write(tmp_path / "late.csv", "v\n" + "\n".join(rows) + "\n")
    with pytest.warns(UserWarning, match="1 value"):
        frame = Frame.read(path, col_types=["int"], block_bytes=1 << 16)
    assert frame.types == [NUMERIC] and frame.n_rows == 20002 and na_counts(frame)["v"] == 1


@pytest.mark.parametrize("col_types,message", [
    ({"cat": "string"}, "col_types: column 'cat' has type 'string', which is not supported"),
    ({"num": "time"}, "col_types: column 'num' has type 'time', which is not supported"),
    (["enum", "uuid"], "col_types: column 2 has type 'uuid', which is not supported"),
    ({"num": "bignum"}, "col_types: column 'num': unknown type 'bignum'"),
    ({"nope": "enum"}, "col_types: no column 'nope' (columns: num, cat, code, other)"),
    (["enum"], "col_types has 1 types for 4 columns"),
    ("enum", "col_types: expected a list of types"),
])
def test_bad_col_types_are_one_line_naming_the_column(tmp_path, col_types, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Frame.read(write(tmp_path / "d.csv", TEXT), col_types=col_types)


@pytest.mark.parametrize("na_strings,message", [
    ({"nope": "x"}, "na_strings: no column 'nope'"),
    ([["x"], ["y"]], "na_strings has 2 lists for 4 columns"),
    ([1, 2], "na_strings: expected strings, got 1"),
    ({"num": [None]}, r"na_strings\['num'\]: expected strings, got None"),
    (7, "na_strings: expected a list of strings"),
])
def test_bad_na_strings_are_one_line(tmp_path, na_strings, message):
    with pytest.raises(UserError, match=message):
        Frame.read(write(tmp_path / "d.csv", TEXT), na_strings=na_strings)


# ------------------------------------------------------------------------- H2O's blank rule

def test_blank_fields_are_missing_and_blanks_before_fields_are_skipped(tmp_path):
    text = ("age, workclass, hours, note\n"
            "39, State-gov, 40 , x  \n"
            "50,   ,   ,\t\n"
            "38, Private,\t13, \"  quoted  \" \n"
            " 49 , State-gov, 7, \"   \"\n")
    frame = Frame.read(write(tmp_path / "census.csv", text))
    assert frame.names == ["age", "workclass", "hours", "note"]
    assert frame.types == [NUMERIC, CATEGORICAL, NUMERIC, CATEGORICAL]
    got = values(frame)
    assert got["age"] == [39.0, 50.0, 38.0, 49.0]
    assert got["workclass"] == ["State-gov", None, "Private", "State-gov"]
    assert got["hours"] == [40.0, None, 13.0, 7.0]          # blanks only: NA, not text
    # unquoted text keeps its trailing blanks (as H2O's STRING state); quoted blanks are kept
    assert got["note"] == ["x  ", None, "  quoted  ", "   "]
    assert frame.domain("note") == ["   ", "  quoted  ", "x  "]
    assert na_counts(frame) == {"age": 0, "workclass": 1, "hours": 1, "note": 1}


def test_blank_rule_on_bytes():
    def norm(text, sep=",", quote='"'):
        return bytes(normalize_blanks(bytearray(text.encode()), sep, quote)).decode()
    assert norm("a, b ,  ,c\n") == "a,b ,,c\n"
    assert norm('x,  "a, b"  ,y\n') == 'x,"a, b",y\n'      # a quote after blanks opens a field
    assert norm('5" screen, "q""r" ,\n') == '5" screen,"q""r",\n'
    assert norm("a\t b\t \t c\n", sep="\t") == "a\tb\t\tc\n"  # the separator is no blank
    assert norm("a  b\n", sep=" ") == "a  b\n"
    assert norm("1,2\n3,4\n") == "1,2\n3,4\n"


def test_blank_padded_quoted_field_holding_the_separator(tmp_path):
    frame = Frame.read(write(tmp_path / "q.csv", 'k, name, v\n1,  "Smith, J" , 2\n2, Doe, 3\n'))
    assert values(frame) == {"k": [1.0, 2.0], "name": ["Smith, J", "Doe"], "v": [2.0, 3.0]}


# ------------------------------------------------------------------------------- Parquet

def test_parquet_na_strings_and_col_types(tmp_path):
    table = pa.table({"n": pa.array([1, 2, None, 4], pa.int64()), "s": pa.array(["a", "?x", None, "b"]),
                      "t": pa.array(["1.5", "bad", "3", "none"])})
    path = tmp_path / "p.parquet"
    pq.write_table(table, path, row_group_size=2)
    with pytest.warns(UserWarning, match="column 't': 1 value"):
        frame = Frame.read(path, na_strings=["?x", "none"], col_types={"n": "enum", "t": "numeric"})
    assert frame.types == [CATEGORICAL, CATEGORICAL, NUMERIC]
    assert frame.domain("n") == ["1", "2", "4"] and frame.domain("s") == ["a", "b"]
    assert values(frame)["t"] == [1.5, None, 3.0, None]


def test_svmlight_refuses_col_types(tmp_path):
    path = write(tmp_path / "d.svm", "1 1:0.5 2:1\n0 1:1.5\n")
    assert Frame.read(path, na_strings=["x"]).n_rows == 2     # numbers only: nothing to match
    with pytest.raises(UserError, match="col_types: not supported for SVMLight input"):
        Frame.read(path, col_types={"target": "enum"})


def test_csv_options_for_other_formats_are_named(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"a": [1.0]}), path)
    with pytest.raises(UserError, match="sep: an option for csv input only; .*p.parquet is read as parquet"):
        Frame.read(path, sep=";")


# -------------------------------------------------------------------------------- h2o-py

def test_import_file_passes_na_strings_and_col_types(tmp_path):
    path = str(write(tmp_path / "d.csv", TEXT))
    frame = h2o.import_file(path, na_strings={"cat": ["missing"]}, col_types={"code": "enum"})
    assert frame.types == {"num": "real", "cat": "enum", "code": "enum", "other": "enum"}
    assert frame["cat"].levels() == [["blue", "red"]]
    assert "-999" in frame["code"].levels()[0]
    up = h2o.upload_file(path, na_strings=["missing", "-999"])
    assert na_counts(up.frame) == {"num": 2, "cat": 2, "code": 2, "other": 2}


def test_import_file_col_names_apply_before_the_dicts(tmp_path):
    path = str(write(tmp_path / "d.csv", TEXT))
    frame = h2o.import_file(path, col_names=["a", "b", "c", "d"], col_types={"c": "enum"},
                            na_strings={"b": "missing"})
    assert frame.names == ["a", "b", "c", "d"] and frame.types["c"] == "enum"
    assert frame["b"].levels() == [["blue", "red"]]


@pytest.mark.parametrize("kwargs,message", [
    ({"col_types": {"cat": "string"}}, "col_types: column 'cat' has type 'string'"),
    ({"skipped_columns": [1]}, "import_file: skipped_columns is not supported"),
    ({"pattern": ".*csv"}, "import_file: pattern is not supported"),
    ({"parse": False}, "import_file: parse=False is not supported"),
    ({"col_names": ["a"]}, "import_file: col_names has 1 names for 4 columns"),
    ({"quotechar": "|"}, "import_file: quotechar must be"),
])
def test_import_file_refuses_what_it_cannot_honour(tmp_path, kwargs, message):
    with pytest.raises(EstimatorError, match=message):
        h2o.import_file(str(write(tmp_path / "d.csv", TEXT)), **kwargs)


# ------------------------------------------------------------------------- command line

def test_na_strings_flag_splits_on_commas_only():
    assert na_strings_flag("-999, not available,,?") == ["-999", "not available", "?"]


def _labelled(path, n=60, missing_every=7):
    rng = np.random.default_rng(1)
    lines = ["a,color,label"]
    for i in range(n):
        a = "-999" if i % 5 == 0 else f"{rng.normal():.4f}"
        color = "unknown" if i % 4 == 0 else ("red" if i % 2 else "blue")
        label = "unknown" if i % missing_every == 0 else ("yes" if i % 3 else "no")
        lines.append(f"{a}, {color},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_train_na_strings_flag_end_to_end(tmp_path):
    data = _labelled(tmp_path / "d.csv")
    valid = _labelled(tmp_path / "v.csv", n=30, missing_every=3)
    common = ["train", "--train", str(data), "--validation", str(valid), "--response", "label",
              "--hidden", "4", "--epochs", "1", "--threads", "1", "--seed", "1", "--quiet_mode", "true"]
    assert main(common + ["--model_out", str(tmp_path / "plain.h5")]) == 0
    assert main(common + ["--na_strings", "unknown,-999", "--model_out", str(tmp_path / "na.h5")]) == 0
    _, _, plain, _, _ = load_model(str(tmp_path / "plain.h5"))
    _, _, info, params, _ = load_model(str(tmp_path / "na.h5"))
    assert plain.domain == ["no", "unknown", "yes"]
    assert info.domain == ["no", "yes"] and params["na_strings"] == ["unknown", "-999"]
    color = next(c for c in info.columns if c.name == "color")
    assert color.levels == ["blue", "red"]                   # blanks skipped, "unknown" is NA
    a = next(c for c in info.columns if c.name == "a")
    assert a.stats["na_count"] == 12 and a.stats["min"] > -100


def test_train_na_strings_reach_the_validation_file(tmp_path):
    data, valid = _labelled(tmp_path / "d.csv"), _labelled(tmp_path / "v.csv", n=30)
    params = {"train": str(data), "validation": str(valid), "na_strings": ["unknown"]}
    frame, vframe = read_frames(params, None)
    for f in (frame, vframe):
        assert "unknown" not in f.domain("color") and "unknown" not in f.domain("label")
        assert na_counts(f)["color"] > 0


def test_evaluate_na_strings_flag(tmp_path, capsys):
    data = _labelled(tmp_path / "d.csv")
    model, flagged, blanked = tmp_path / "m.h5", tmp_path / "flagged.json", tmp_path / "blanked.json"
    assert main(["train", "--train", str(data), "--response", "label", "--hidden", "4", "--epochs", "1",
                 "--threads", "1", "--na_strings", "unknown,-999", "--model_out", str(model),
                 "--quiet_mode", "true"]) == 0
    # the NA strings read as missing are the same as empty fields in their place
    cleaned = tmp_path / "clean.csv"
    cleaned.write_text(data.read_text().replace("-999", "").replace("unknown", ""))
    assert main(["evaluate", "--model", str(model), "--data", str(data), "--na_strings", "unknown, -999",
                 "--json", str(flagged)]) == 0
    assert main(["evaluate", "--model", str(model), "--data", str(cleaned), "--json", str(blanked)]) == 0
    assert main(["evaluate", "--model", str(model), "--data", str(data), "--json", str(tmp_path / "raw.json")]) == 0
    capsys.readouterr()
    assert flagged.read_text() == blanked.read_text()
    assert flagged.read_text() != (tmp_path / "raw.json").read_text()


def test_h2oframe_column_types_and_na_strings_on_data_in_memory():
    import pandas as pd
    df = pd.DataFrame({"a": [1.0, -999.0, 3.0], "b": ["x", "missing", "y"], "c": ["1", "two", "3"]})
    with pytest.warns(UserWarning, match="column 'c': 1 value"):
        frame = h2o.H2OFrame(df, column_types={"a": "enum", "c": "numeric"}, na_strings=["-999", "missing"])
    assert frame.types == {"a": "enum", "b": "enum", "c": "real"}
    assert frame["a"].levels() == [["1", "3"]] and frame["b"].levels() == [["x", "y"]]
    assert na_counts(frame.frame) == {"a": 1, "b": 1, "c": 1}
    renamed = h2o.H2OFrame({"p": [1, 2], "q": ["u", "v"]}, column_names=["x", "y"], na_strings={"y": "v"})
    assert renamed.names == ["x", "y"] and renamed["y"].levels() == [["u"]]
    with pytest.raises(EstimatorError, match="H2OFrame: column_types: column 'p' has type 'time'"):
        h2o.H2OFrame({"p": [1, 2]}, column_types={"p": "time"})


def test_predict_file_na_strings(tmp_path):
    from h2odl_mpi.evaluation.predict import predict_file
    data = _labelled(tmp_path / "d.csv")
    model = tmp_path / "m.h5"
    assert main(["train", "--train", str(data), "--response", "label", "--hidden", "4", "--epochs", "1",
                 "--threads", "1", "--na_strings", "unknown,-999", "--model_out", str(model),
                 "--quiet_mode", "true"]) == 0
    cleaned = tmp_path / "clean.csv"
    cleaned.write_text(data.read_text().replace("-999", "").replace("unknown", ""))
    outs = [tmp_path / f"p{k}.csv" for k in range(3)]
    predict_file(str(model), str(data), str(outs[0]), na_strings=["unknown", "-999"])
    predict_file(str(model), str(cleaned), str(outs[1]))
    predict_file(str(model), str(data), str(outs[2]))
    assert outs[0].read_text() == outs[1].read_text() != outs[2].read_text()


def test_describe_takes_na_strings_and_still_reads_parquet(tmp_path, capsys):
    import argparse
    import json
    from h2odl_mpi.data.frame import describe
    parser = describe.add_arguments(argparse.ArgumentParser())
    csv_path = write(tmp_path / "d.csv", "a, b\n1,   \n2, x\n3, -\n")
    assert describe.run(parser.parse_args(["--data", str(csv_path), "--na_strings", "-", "--json"])) == 0
    b = json.loads(capsys.readouterr().out)["columns"][1]
    assert b["na_count"] == 2 and b["levels"] == ["x"]
    pq.write_table(pa.table({"a": [1.0, 2.0]}), tmp_path / "p.parquet")
    assert describe.run(parser.parse_args(["--data", str(tmp_path / "p.parquet"), "--json"])) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 2
