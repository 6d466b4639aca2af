"""The data description (h2odl_mpi.data.preprocess) against plain numpy/pandas references.

Airlines (IsDepDelayed; categorical UniqueCarrier, TailNum, Origin, Dest, CancellationCode
with NAs) and California housing (numeric, regression): layout and unit names, means and
sds, imputed values, one-hot / binary / label codes, the dropped first level, Skip, the
response (classes, standardised regression target), class balancing, scoring frames with
an unseen level, a missing column, extra columns or another column order, numbers arriving
for a categorical input, the HDF5 and bytes round trips, the refused encodings (checked by
params.validate) and that params offers exactly the encodings of encodings.ENCODINGS.
"""
import h5py
import numpy as np
import pandas as pd
import pytest

from h2odl_mpi.errors import UserError
from h2odl_mpi.data.frame import Frame
from h2odl_mpi.params import SPEC, validate
from h2odl_mpi.data.preprocess import Preprocess

NA = ["", "NA", "NaN", "nan", "N/A", "?"]
AIR_IGNORED = ["IsArrDelayed", "ArrDelay", "DepDelay"]
CATS = ["UniqueCarrier", "TailNum", "Origin", "Dest", "CancellationCode"]


@pytest.fixture(scope="module")
def air(data_dir):
    path = data_dir / "airlines" / "allyears2k_headers.csv.gz"
    df = pd.read_csv(path, keep_default_na=False, na_values=NA, encoding="latin-1", low_memory=False)
    return Frame.read(str(path)), df


@pytest.fixture(scope="module")
def cal(data_dir):
    path = data_dir / "cal_housing" / "cal_housing.csv"
    return Frame.read(str(path)), pd.read_csv(path)


@pytest.fixture(scope="module")
def air_pre(air):
    frame, _ = air
    return Preprocess.fit(frame, dict(response="IsDepDelayed", ignored_columns=AIR_IGNORED))


def numeric_reference(df, exclude):
    """name -> (values, mean, sd) of the non-constant numeric columns, frame order."""
    out = {}
    for name in df.columns:
        if name in exclude or df[name].dtype == object or str(df[name].dtype) == "str":
            continue
        v = df[name].to_numpy(dtype=np.float64)
        present = v[~np.isnan(v)]
        if present.size == 0 or present.min() == present.max():
            continue
        out[name] = (v, present.mean(), present.std(ddof=1))
    return out


def sample_rows(n, k=3000, seed=0):
    return np.sort(np.random.default_rng(seed).choice(n, size=min(n, k), replace=False))


def test_airlines_layout_means_and_one_hot(air, air_pre):
    frame, df = air
    pre = air_pre
    nums = numeric_reference(df, set(AIR_IGNORED) | {"IsDepDelayed"})
    # layout: numeric columns first (frame order), then each categorical's levels + NA unit
    expected_names = list(nums)
    for c in CATS:
        expected_names += [f"{c}.{lvl}" for lvl in sorted(df[c].dropna().unique())] + [f"{c}.missing(NA)"]
    assert pre.input_names == expected_names
    assert pre.n_inputs == len(expected_names)
    by_name = {c.name: c for c in pre.columns}
    for name, (_, mean, sd) in nums.items():
        assert by_name[name].stats["mean"] == pytest.approx(mean, rel=1e-12)
        assert by_name[name].stats["sd"] == pytest.approx(sd, rel=1e-12)
    rows = sample_rows(len(df))
    x = pre.rows(frame).expand(rows)                       # decoded in C
    np.testing.assert_array_equal(x, pre.expand(frame, rows))  # the numpy twin, bit for bit
    for j, (name, (v, mean, sd)) in enumerate(nums.items()):
        want = np.where(np.isnan(v[rows]), 0.0, (v[rows] - mean) / sd)  # NA -> mean -> 0
        np.testing.assert_allclose(x[:, j], want, rtol=2e-6, atol=2e-6, err_msg=name)
    assert np.isnan(df["DepTime"]).any() and np.all(x[np.isnan(df["DepTime"].to_numpy()[rows]), 0 + list(nums).index("DepTime")] == 0)
    start = len(nums)
    for c in CATS:
        levels = sorted(df[c].dropna().unique())
        block = x[:, start:start + len(levels) + 1]
        codes = df[c].to_numpy()[rows]
        want = np.zeros_like(block)
        for r, value in enumerate(codes):
            want[r, levels.index(value) if isinstance(value, str) else len(levels)] = 1.0
        np.testing.assert_array_equal(block, want, err_msg=c)
        start += len(levels) + 1


def test_airlines_response_classes(air, air_pre):
    frame, df = air
    assert air_pre.classification and air_pre.domain == ["NO", "YES"]
    y = air_pre.response_values(frame)
    want = df["IsDepDelayed"].map({"NO": 0.0, "YES": 1.0}).to_numpy(dtype=np.float32)
    np.testing.assert_array_equal(y, want)


def test_binary_label_and_dropped_first_level(air):
    frame, df = air
    keep = ["UniqueCarrier", "Origin", "Distance", "IsDepDelayed"]
    ignored = [n for n in frame.names if n not in keep]
    rows = sample_rows(len(df), 2000, seed=1)
    # Binary: bits of level + 1 (NA -> 0), each bit standardised as a numeric column
    pre = Preprocess.fit(frame, dict(response="IsDepDelayed", ignored_columns=ignored,
                                     categorical_encoding="Binary"))
    x = pre.rows(frame).expand(rows)
    np.testing.assert_array_equal(x, pre.expand(frame, rows))
    # numeric-valued inputs in frame order: UniqueCarrier bits, Origin bits, Distance
    assert pre.input_names[-1] == "Distance"
    col = 0
    for c in ["UniqueCarrier", "Origin"]:
        levels = sorted(df[c].dropna().unique())
        width = len(levels).bit_length()
        codes = np.array([levels.index(v) + 1 if isinstance(v, str) else 0 for v in df[c]])
        for b in range(width):
            bits = ((codes >> b) & 1).astype(np.float64)
            want = (bits[rows] - bits.mean()) / bits.std(ddof=1)
            np.testing.assert_allclose(x[:, col], want, rtol=1e-5, atol=1e-6, err_msg=f"{c}:{b}")
            assert pre.input_names[col] == f"{c}:{b}"
            col += 1
    assert col == pre.n_inputs - 1
    # LabelEncoder: the level index as a number, standardised; NA -> mean
    pre = Preprocess.fit(frame, dict(response="IsDepDelayed", ignored_columns=ignored,
                                     categorical_encoding="LabelEncoder"))
    assert pre.input_names == ["UniqueCarrier", "Origin", "Distance"]
    x = pre.rows(frame).expand(rows)
    levels = sorted(df["Origin"].dropna().unique())
    codes = np.array([levels.index(v) for v in df["Origin"]], dtype=np.float64)
    j = pre.input_names.index("Origin")
    np.testing.assert_allclose(x[:, j], (codes[rows] - codes.mean()) / codes.std(ddof=1), rtol=1e-5, atol=1e-6)
    # use_all_factor_levels = false: the first level has no unit (all zeros)
    pre = Preprocess.fit(frame, dict(response="IsDepDelayed", ignored_columns=ignored,
                                     use_all_factor_levels=False))
    carriers = sorted(df["UniqueCarrier"].dropna().unique())
    assert f"UniqueCarrier.{carriers[0]}" not in pre.input_names
    assert f"UniqueCarrier.{carriers[1]}" in pre.input_names
    x = pre.rows(frame).expand(rows)
    first = (df["UniqueCarrier"].to_numpy()[rows] == carriers[0])
    block = [i for i, n in enumerate(pre.input_names) if n.startswith("UniqueCarrier.")]
    assert first.any() and np.all(x[first][:, block] == 0)
    assert np.all(x[~first][:, block].sum(axis=1) == 1)


def test_skip_drops_rows_with_na(air):
    frame, df = air
    keep = ["DepTime", "TailNum", "Origin", "IsDepDelayed"]
    ignored = [n for n in frame.names if n not in keep]
    pre = Preprocess.fit(frame, dict(response="IsDepDelayed", ignored_columns=ignored,
                                     missing_values_handling="Skip"))
    rows = pre.rows(frame)
    na = df[["DepTime", "TailNum", "Origin"]].isna().any(axis=1).to_numpy()
    assert na.any() and not na.all()
    np.testing.assert_array_equal(rows.weight == 0, na)
    assert pre.n_usable_rows == int((~na & df["IsDepDelayed"].notna().to_numpy()).sum())
    np.testing.assert_array_equal(rows.usable_rows(), np.flatnonzero(~na))
    # scoring still mean-imputes
    assert pre.rows(frame, training=False).weight is None


def test_california_regression_and_autoencoder(cal):
    frame, df = cal
    pre = Preprocess.fit(frame, dict(response="medianHouseValue"))
    assert not pre.classification
    target = df["medianHouseValue"].to_numpy()
    assert pre.response_mean == pytest.approx(target.mean(), rel=1e-12)
    assert pre.response_sd == pytest.approx(target.std(ddof=1), rel=1e-12)
    np.testing.assert_allclose(pre.response_values(frame), (target - target.mean()) / target.std(ddof=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pre.decode_response(pre.response_values(frame).astype(np.float64)), target, rtol=1e-5)
    names = [c for c in df.columns if c != "medianHouseValue"]
    assert pre.input_names == names
    x = pre.rows(frame).expand()
    np.testing.assert_array_equal(x, pre.expand(frame))
    ref = df[names].to_numpy()
    np.testing.assert_allclose(x, (ref - ref.mean(0)) / ref.std(0, ddof=1), rtol=1e-5, atol=1e-5)
    # autoencoder: normalised to [-0.5, 0.5]
    ae = Preprocess.fit(frame, dict(autoencoder=True))
    x = ae.rows(frame).expand()
    np.testing.assert_allclose(x.min(0), -0.5, atol=1e-6)
    np.testing.assert_allclose(x.max(0), 0.5, atol=1e-6)
    # integer-valued response with 2..255 levels is a classification unless told otherwise
    auto = Preprocess.fit(frame, dict(response="housingMedianAge"))
    assert auto.classification and auto.domain == [str(v) for v in sorted(df["housingMedianAge"].unique().astype(int))]
    assert not Preprocess.fit(frame, dict(response="housingMedianAge"), classification=False).classification


def test_const_columns_weights_offset_and_balance():
    rng = np.random.default_rng(3)
    n = 600
    y = np.where(rng.random(n) < 0.2, "yes", "no").astype(object)
    data = {"a": rng.normal(size=n), "const": np.full(n, 7.0), "w": rng.uniform(0, 2, n),
            "off": rng.normal(size=n), "y": y}
    data["w"][:10] = np.nan
    frame = Frame.from_arrays(data)
    pre = Preprocess.fit(frame, dict(response="y", weights_column="w", offset_column="off",
                                     balance_classes=True, max_after_balance_size=5.0))
    assert pre.input_names == ["a"] and pre.dropped["const"] == "constant"
    rows = pre.rows(frame)
    np.testing.assert_array_equal(rows.weight, np.nan_to_num(data["w"]).astype(np.float32))
    np.testing.assert_array_equal(rows.offset, data["off"].astype(np.float32))
    # H2O: rate_k = (N / K) / count_k scaled so the majority keeps 1, total capped
    w = np.nan_to_num(data["w"])
    counts = np.array([w[y == "no"].sum(), w[y == "yes"].sum()])
    rates = (n / 2) / counts
    rates /= rates.min()
    expected = (rates * counts).sum()
    rates *= round(expected) / expected          # H2O rounds the expected row count
    np.testing.assert_allclose(pre.class_rates, rates, rtol=1e-6)   # weights travel as float32
    np.testing.assert_allclose(pre.prior_class_dist, counts / counts.sum())
    order = pre.balanced_order(rows.y, np.random.default_rng(0))
    picked = rows.y[order]
    assert abs((picked == 1).sum() / (picked == 0).sum() - 1) < 0.25   # roughly balanced
    p = np.array([[0.5, 0.5]])
    corrected = pre.correct_probabilities(p)
    assert corrected.sum() == pytest.approx(1.0) and corrected[0, 1] < 0.5
    # a cap at 1x the rows scales every rate down
    capped = Preprocess.fit(frame, dict(response="y", balance_classes=True, max_after_balance_size=1.0))
    c = np.array([(y == "no").sum(), (y == "yes").sum()], dtype=float)
    assert (capped.class_rates * c).sum() == pytest.approx(n)
    with pytest.raises(UserError, match="class_sampling_factors"):
        Preprocess.fit(frame, dict(response="y", balance_classes=True, class_sampling_factors=[1.0]))
    with pytest.raises(UserError, match="balance_classes"):
        Preprocess.fit(frame, dict(response="a", balance_classes=True))


def scoring_frame(df, rows, drop=(), order=None, extra=False, unseen=None):
    data = {}
    for name in df.columns:
        if name in drop:
            continue
        v = df[name].to_numpy()[rows]
        if v.dtype == object or str(df[name].dtype) == "str":
            data[name] = np.array([x if isinstance(x, str) else None for x in v], dtype=object)
        else:
            data[name] = v.astype(np.float64)
    if unseen:
        col, value = unseen
        data[col] = data[col].copy()
        data[col][0] = value
    if extra:
        data["not_in_training"] = np.arange(len(rows), dtype=np.float64)
    names = list(data)
    if order == "reversed":
        names = names[::-1]
    return Frame.from_arrays({k: data[k] for k in names})


def test_scoring_unseen_level_missing_column_and_other_order(air, air_pre):
    frame, df = air
    pre = air_pre
    rows = sample_rows(len(df), 300, seed=5)
    df = df.astype({c: object for c in CATS + ["IsDepDelayed", "IsArrDelayed"]})
    want = pre.rows(frame).expand(rows)
    # other column order, extra column, fewer levels in the scoring frame: same inputs
    other = scoring_frame(df, rows, order="reversed", extra=True)
    got = pre.rows(other, training=False).expand()
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, pre.expand(other))
    # an unseen level goes to the column's missing unit
    unseen = scoring_frame(df, rows, unseen=("Origin", "ZZZ-never-seen"))
    got = pre.rows(unseen, training=False).expand()
    origin = [i for i, n in enumerate(pre.input_names) if n.startswith("Origin.")]
    assert got[0, origin].sum() == 1 and got[0, pre.input_names.index("Origin.missing(NA)")] == 1
    np.testing.assert_array_equal(got[1:], want[1:])
    # an unseen response class is a missing target
    odd = scoring_frame(df, rows, unseen=("IsDepDelayed", "MAYBE"))
    assert np.isnan(pre.response_values(odd)[0])
    # a missing input column is an error naming it; a missing response is fine for scoring
    missing = scoring_frame(df, rows, drop=("Dest", "IsDepDelayed"))
    with pytest.raises(UserError, match="'Dest'"):
        pre.rows(missing, training=False)
    no_response = scoring_frame(df, rows, drop=("IsDepDelayed",))
    assert pre.rows(no_response, training=False).y is None
    with pytest.raises(UserError, match="IsDepDelayed"):
        pre.rows(no_response, training=True)


def test_numbers_for_a_categorical_input_and_text_for_a_numeric_one():
    train = Frame.from_arrays({"c": np.array(["1", "2", "x", None, "2"], dtype=object),
                               "v": np.array([1.0, 2.0, 3.0, 4.0, np.nan]),
                               "y": np.array([0.0, 1.5, 2.0, 3.0, 1.0])})
    pre = Preprocess.fit(train, dict(response="y"))
    score = Frame.from_arrays({"c": np.array([2.0, 1.0, np.nan, 7.0]),
                               "v": np.array(["3", "oops", "1", None], dtype=object)})
    x = pre.rows(score, training=False).expand()
    names = pre.input_names
    assert names == ["v", "c.1", "c.2", "c.x", "c.missing(NA)"]
    np.testing.assert_array_equal(x[:, 1:], [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1]])
    col = pre.columns[0]
    np.testing.assert_allclose(x[:, 0], [(3 - col.sub) * col.mul, 0, (1 - col.sub) * col.mul, 0], rtol=1e-6)


def test_hdf5_round_trip(tmp_path, air, air_pre):
    frame, df = air
    path = tmp_path / "pre.h5"
    with h5py.File(path, "w") as f:
        air_pre.to_hdf5(f.create_group("preprocess"))
    with h5py.File(path, "r") as f:
        back = Preprocess.from_hdf5(f["preprocess"])
    assert back.input_names == air_pre.input_names and back.domain == air_pre.domain
    rows = sample_rows(len(df), 500, seed=2)
    np.testing.assert_array_equal(back.rows(frame).expand(rows), air_pre.rows(frame).expand(rows))
    binary = Preprocess.fit(frame, dict(response="IsDepDelayed", ignored_columns=AIR_IGNORED,
                                        categorical_encoding="Binary", balance_classes=True))
    with h5py.File(path, "w") as f:
        binary.to_hdf5(f.create_group("p"))
    with h5py.File(path, "r") as f:
        back = Preprocess.from_hdf5(f["p"])
    np.testing.assert_array_equal(back.expand(frame, rows), binary.expand(frame, rows))
    np.testing.assert_array_equal(back.class_rates, binary.class_rates)


def test_bytes_round_trip(air, air_pre, cal):
    """to_bytes is an in-memory HDF5 file (plain data, no pickle) that from_bytes turns back
    into the same description: same layout, same inputs from C and from numpy."""
    frame, df = air
    rows = sample_rows(len(df), 500, seed=3)
    data = air_pre.to_bytes()
    assert isinstance(data, bytes) and data.startswith(b"\x89HDF\r\n\x1a\n")
    back = Preprocess.from_bytes(data)
    assert back.input_names == air_pre.input_names and back.domain == air_pre.domain
    assert back.classification and {c.kind for c in back.columns} == {"numeric", "onehot"}
    np.testing.assert_array_equal(back.rows(frame).expand(rows), air_pre.rows(frame).expand(rows))
    np.testing.assert_array_equal(back.expand(frame, rows), air_pre.expand(frame, rows))
    np.testing.assert_array_equal(back.response_values(frame), air_pre.response_values(frame))

    ae = Preprocess.fit(frame, dict(autoencoder=True, ignored_columns=AIR_IGNORED + ["IsDepDelayed"],
                                    categorical_encoding="Binary"))
    back = Preprocess.from_bytes(ae.to_bytes())
    assert back.autoencoder and back.input_names == ae.input_names
    np.testing.assert_array_equal(back.rows(frame).expand(rows), ae.rows(frame).expand(rows))
    np.testing.assert_array_equal(back.expand(frame, rows), ae.expand(frame, rows))
    cal_frame, _ = cal
    numeric_ae = Preprocess.fit(cal_frame, dict(autoencoder=True))
    back = Preprocess.from_bytes(numeric_ae.to_bytes())
    np.testing.assert_array_equal(back.expand(cal_frame), numeric_ae.expand(cal_frame))


def test_refused_and_bad_parameters(cal):
    frame, _ = cal
    # the parameters' values are checked once, by params.validate (Preprocess.fit trusts them)
    for enc in ("Eigen", "OneHotExplicit", "nonsense"):
        with pytest.raises(UserError, match="categorical_encoding"):
            validate(dict(response="medianHouseValue", categorical_encoding=enc))
    with pytest.raises(UserError, match="missing_values_handling"):
        validate(dict(response="medianHouseValue", missing_values_handling="Drop"))
    with pytest.raises(UserError, match="response column 'nope'"):
        Preprocess.fit(frame, dict(response="nope"))
    with pytest.raises(UserError, match="weights_column"):
        Preprocess.fit(frame, dict(response="medianHouseValue", weights_column="nope"))


def test_params_offer_exactly_the_encodings_of_the_table():
    """params.validate accepts the categorical_encoding values encodings.ENCODINGS
    implements, no more and no fewer."""
    from h2odl_mpi.data.encodings import CATEGORICAL_ENCODINGS, ENCODINGS
    assert CATEGORICAL_ENCODINGS == tuple(ENCODINGS)
    assert set(SPEC["categorical_encoding"][2]) == set(CATEGORICAL_ENCODINGS)
    for enc in CATEGORICAL_ENCODINGS:
        assert validate(dict(response="y", categorical_encoding=enc))["categorical_encoding"] == enc


def test_sparse_divides_by_the_sd_without_centring(cal):
    """H2O's sparse=true (DataInfo DESCALE): x / sd, so a zero input stays zero."""
    from h2odl_mpi.params import validate
    frame, df = cal
    names = [c for c in df.columns if c != "medianHouseValue"]
    pre = Preprocess.fit(frame, validate(dict(train="t.csv", response="medianHouseValue", sparse=True)))
    ref = df[names].to_numpy()
    np.testing.assert_allclose(pre.rows(frame).expand(), ref / ref.std(0, ddof=1), rtol=1e-5, atol=1e-6)
    centred = Preprocess.fit(frame, validate(dict(train="t.csv", response="medianHouseValue")))
    assert not np.allclose(centred.rows(frame).expand(), ref / ref.std(0, ddof=1), atol=1e-3)
