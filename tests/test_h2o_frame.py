"""h2o-py's H2OFrame over the column store (api/h2oframe.py, api/frame_ops.py): each function
against the value h2o-py's documentation or H2O-3's Rapids operators give, computed here
independently with numpy / pandas; the once silently wrong `frame["x"] == 1` filter; what is
not supported raises H2OValueError naming it."""
import numpy as np
import pandas as pd
import pytest

from h2odl_mpi import h2o
from h2odl_mpi.errors import H2OValueError

ROWS = [[1, "a", 2.5], [2, "b", None], [3, "a", 4.0], [4, None, 1.0], [5, "c", -3.0]]


@pytest.fixture
def fr():
    return h2o.H2OFrame(ROWS, column_names=["n", "s", "x"])


def col(frame, name=None):
    """A column's values as a list (NaN as None)."""
    df = frame.as_data_frame()
    values = df[name or df.columns[0]].tolist()
    return [None if isinstance(v, float) and np.isnan(v) else v for v in values]


def test_construction_as_h2o_py():
    flat = h2o.H2OFrame([1, 2, 2.5, -100.9, 0])  # h2o-py's docs: a flat list is one column
    assert flat.shape == (5, 1) and flat.names == ["C1"]
    rows = h2o.H2OFrame([["x", "y"], [1, "u"], [2, "v"]], header=1)
    assert rows.names == ["x", "y"] and rows.types == {"x": "real", "y": "enum"}
    arr = h2o.H2OFrame(np.arange(6.0).reshape(3, 2))
    assert arr.names == ["C1", "C2"] and col(arr, "C2") == [1, 3, 5]
    assert h2o.H2OFrame.from_python([[1, "u"]], column_names=["x", "y"]).types == {"x": "real", "y": "enum"}
    d = h2o.H2OFrame({"a": [1, 2], "b": ["p", None]})
    assert col(d, "b") == ["p", None] and d.nrow == 2 and d.ncol == 2 and d.dim == [2, 2]


def test_equality_is_a_boolean_column_that_filters_rows(fr):
    mask = fr["n"] == 1
    assert isinstance(mask, h2o.H2OFrame) and col(mask) == [1, 0, 0, 0, 0]
    assert col(fr[mask], "x") == [2.5] and fr[mask].nrow == 1
    assert col(fr[fr["s"] == "a"], "n") == [1, 3]       # a level's text
    assert col(fr["s"] == "zz") == [0, 0, 0, 0, 0]        # a level it lacks matches nothing
    assert col(fr["s"] != "a") == [0, 1, 0, 1, 1]         # NA != "a" (H2O-3's str_op)
    assert col(fr[(fr["n"] > 1) & (fr["x"] < 3)], "n") == [4, 5]
    assert col(fr[~(fr["n"] >= 3)], "n") == [1, 2]
    with pytest.raises(H2OValueError, match=r"frame\[False\]: a row filter is a boolean column"):
        fr[False]
    with pytest.raises(H2OValueError, match="Did you mean & "):
        bool(fr["n"] == 1)
    with pytest.raises(H2OValueError, match="Did you mean & "):
        fr[(fr["n"] > 1) and (fr["x"] < 3)]


def test_operators_follow_h2o_3():
    f = h2o.H2OFrame({"l": [7.0, -7.0, 1.0, 0.0, np.nan, np.nan], "r": [2.0, 2.0, 0.0, np.nan, 1.0, np.nan]})
    l, r = f["l"], f["r"]
    assert col(l < r) == [0, 1, 0, 0, 0, 0]                 # a comparison with NA is 0
    assert col(l == r) == [0, 0, 0, 0, 0, 1]                # NA == NA is 1
    assert col(l != r) == [1, 1, 1, 1, 1, 0]
    assert col(l % r)[:2] == [1.0, -1.0]                    # the dividend's sign (Java's %)
    assert col(l // r)[:4] == [3, -3, None, None]           # truncated; zero divisor (NA as 0) is NA
    assert col((l == 0) & (r == 1)) == [0, 0, 0, 0, 0, 0]
    a = h2o.H2OFrame({"p": [0.0, 1.0, np.nan, np.nan, 1.0], "q": [np.nan, np.nan, 0.0, 1.0, 1.0]})
    assert col(a["p"] & a["q"]) == [0, None, 0, None, 1]   # R's three-valued logic
    assert col(a["p"] | a["q"]) == [None, 1, None, 1, 1]
    assert col(~a["p"]) == [1, 0, None, None, 0]
    np.testing.assert_allclose(col(2 ** f["r"])[:3], [4.0, 4.0, 1.0])
    np.testing.assert_allclose(col(10 - f["l"] / 2)[:3], [6.5, 13.5, 9.5])
    np.testing.assert_allclose(col(-f["l"])[:3], [-7.0, 7.0, -1.0])


def test_math_functions_are_named_as_h2o_py(fr):
    x = fr["x"]
    expect = np.array([2.5, np.nan, 4.0, 1.0, -3.0])
    for name, fn in (("log", np.log), ("sqrt", np.sqrt), ("exp", np.exp), ("abs", np.abs), ("log1p", np.log1p),
                     ("floor", np.floor), ("ceil", np.ceil), ("tanh", np.tanh)):
        out = getattr(x, name)()
        assert out.names == [f"{name}(x)"]
        with np.errstate(invalid="ignore"):
            np.testing.assert_allclose(out.as_data_frame().iloc[:, 0].to_numpy(dtype=float), fn(expect))
    assert abs(x).names == ["abs(x)"] and x.isna().names == ["isNA(x)"] and col(x.isna()) == [0, 1, 0, 0, 0]
    with pytest.raises(H2OValueError, match="Function log cannot be applied to enum column 's'"):
        fr["s"].log()
    with pytest.raises(H2OValueError, match="operator '\\+': column 's' is categorical"):
        fr["s"] + 1


def test_selection_by_name_index_list_slice_and_rows(fr):
    assert fr[0].names == ["n"] and fr[-1].names == ["x"] and fr[["x", "n"]].names == ["x", "n"]
    assert fr[[2, 0]].names == ["x", "n"] and fr[1:].names == ["s", "x"] and fr[:, -1].names == ["x"]
    assert col(fr[1:3, :], "n") == [2, 3] and col(fr[[0, 4], "n"]) == [1, 5]
    assert fr[2, "s"] == "a" and fr[1, 2] is None and fr[4, "x"] == -3.0
    assert col(fr.head(2), "n") == [1, 2] and col(fr.tail(2), "n") == [4, 5] and fr.head(rows=3, cols=1).shape == (3, 1)
    assert fr[3:4, :].getrow() == [4.0, None, 1.0]
    with pytest.raises(H2OValueError, match="This method can only be applied to single-row frames"):
        fr.getrow()
    with pytest.raises(H2OValueError, match="no column 'nope'"):
        fr["nope"]
    with pytest.raises(H2OValueError, match="row indices must be ascending"):
        fr[[3, 1], :]


def test_assignment_by_name_index_and_mask(fr):
    fr["twice"] = fr["n"] * 2                       # a new column
    assert fr.names[-1] == "twice" and col(fr, "twice") == [2, 4, 6, 8, 10]
    fr[0] = fr[0].asfactor()                         # by index, as the booklet's scripts do
    assert fr.types["n"] == "enum" and fr["n"].levels() == [["1", "2", "3", "4", "5"]]
    fr["x"] = fr["x"] + 1                            # an existing column
    x = fr["x"]
    x[x > 3] = 0                                     # col[mask] = value
    assert col(x) == [0, None, 0, 2.0, -2.0] and col(fr, "x") == [3.5, None, 5.0, 2.0, -2.0]
    fr[fr["s"] == "a", "x"] = None                   # frame[mask, col] = NA
    assert col(fr, "x") == [None, None, None, 2.0, -2.0]
    fr["s"] = "z"                                    # a constant level
    assert col(fr, "s") == ["z"] * 5 and fr["s"].levels() == [["a", "b", "c", "z"]]
    fr["c"] = 7
    assert col(fr, "c") == [7] * 5
    with pytest.raises(H2OValueError, match="column 'c' is numeric; text goes into a categorical"):
        fr["c"] = "text"
    big = h2o.H2OFrame({"v": list(range(6))}).asfactor()
    assert big["v"].levels() == [["0", "1", "2", "3", "4", "5"]]
    ten = h2o.H2OFrame({"v": [10, 2, 1]}).asfactor()
    assert ten["v"].levels() == [["1", "2", "10"]] and ten.asnumeric().as_data_frame()["v"].tolist() == [2, 1, 0]


def test_cbind_drop_pop_set_names(fr):
    both = fr.cbind(fr["x"] * 2)
    assert both.names == ["n", "s", "x", "x0"] and col(both, "x0") == [5.0, None, 8.0, 2.0, -6.0]
    assert fr.cbind(3).names[-1] == "C1" and col(fr.cbind(3), "C1") == [3] * 5
    assert fr.drop("s").names == ["n", "x"] and fr.drop([0, 2]).names == ["s"] and fr.names == ["n", "s", "x"]
    assert col(fr.drop([0, 3], axis=0), "n") == [2, 3, 5]
    popped = fr.pop("s")
    assert popped.names == ["s"] and fr.names == ["n", "x"] and col(popped) == ["a", "b", "a", None, "c"]
    assert fr.set_names(["A", "B"]).names == ["A", "B"] and fr.names == ["A", "B"]
    with pytest.raises(H2OValueError, match="Cannot bind a dataframe with 2 rows to a data frame with 5 rows"):
        fr.cbind(h2o.H2OFrame([1, 2]))


def test_reductions(fr):
    df = pd.DataFrame({"n": [1, 2, 3, 4, 5], "x": [2.5, np.nan, 4.0, 1.0, -3.0]})
    assert fr[["n", "x"]].mean() == pytest.approx([3.0, df["x"].mean()])
    means = fr.mean()
    assert np.isnan(means[1]) and means[0] == 3.0              # a categorical column's mean is NA
    assert np.isnan(fr["x"].mean(skipna=False)[0])
    assert fr["x"].min() == -3.0 and fr["x"].max() == 4.0 and fr[["n", "x"]].max() == 5.0
    assert fr["x"].sum() == pytest.approx(4.5) and fr[["n", "x"]].sum() == pytest.approx(19.5)
    assert fr.nacnt() == [0, 1, 1]
    assert fr[["n", "x"]].mean(return_frame=True).getrow() == pytest.approx([3.0, 1.125])
    with pytest.raises(H2OValueError, match="min: column 's' is categorical"):
        fr.min()
    with pytest.raises(H2OValueError, match="axis=1"):
        fr.mean(axis=1)


def test_runif_and_split_frame_from_the_seed():
    f = h2o.H2OFrame({"i": list(range(2000))})
    u = f.runif(seed=42)
    assert u.names == ["rnd"] and col(u) == col(f.runif(seed=42)) and col(u) != col(f.runif(seed=43))
    values = np.array(col(u))
    assert 0 <= values.min() and values.max() < 1 and abs(values.mean() - 0.5) < 0.03
    parts = f.split_frame(ratios=[0.5, 0.25], destination_frames=["f1", "f2", "f3"], seed=7)
    assert [p.frame_id for p in parts] == ["f1", "f2", "f3"]
    ids = [col(p) for p in parts]
    assert sorted(sum(ids, [])) == list(range(2000))            # disjoint, every row once
    r = np.array(col(f.runif(seed=7)))                           # h2o-py's rule: runif <= boundary
    assert ids[0] == np.flatnonzero(r <= 0.5).tolist() and ids[2] == np.flatnonzero(r > 0.75).tolist()
    assert [len(i) for i in ids] == [len(i) for i in (c for c in (col(p) for p in f.split_frame([0.5, 0.25], seed=7)))]
    with pytest.raises(H2OValueError, match="Ratios must add up to less than 1.0"):
        f.split_frame([0.6, 0.4])


def test_insert_missing_values_and_ifelse():
    f = h2o.H2OFrame({"a": [float(i) for i in range(1000)], "b": [1.0] * 1000})
    g = h2o.H2OFrame({"a": [float(i) for i in range(1000)], "b": [1.0] * 1000})
    f.insert_missing_values(fraction=0.2, seed=3)
    g.insert_missing_values(fraction=0.2, seed=3)
    na = f.nacnt()
    assert na == g.nacnt() and all(150 < n < 250 for n in na)
    y = (f["a"] > 500).ifelse(1, -1)                 # NA > 500 is 0 in H2O-3: "no"
    assert col(y) == [1 if v is not None and v > 500 else -1 for v in col(f, "a")]
    z = f["a"].isna().ifelse(f["b"], 0)
    assert col(z) == [b if a is None else 0 for a, b in zip(col(f, "a"), col(f, "b"))]


def test_as_data_frame_and_refusals(fr):
    assert fr.as_data_frame(use_pandas=False)[:2] == [["n", "s", "x"], ["1", "a", "2.5"]]
    assert fr.as_data_frame()["n"].dtype == np.int64           # as h2o-py reads an integer column
    for name in ("rbind", "group_by", "sort", "unique"):
        with pytest.raises(H2OValueError, match=f"H2OFrame.{name} is not supported by h2odl_mpi"):
            getattr(fr, name)
    with pytest.raises(AttributeError):
        fr.not_an_h2o_method
