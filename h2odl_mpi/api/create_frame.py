"""h2o.create_frame: a frame of random columns, made where the rows live.

h2o-py's arguments and its split of the columns among the types (the fractions not given
share what is left by the weights real 0.5, categorical 0.2, integer 0.2, binary 0.1); as
H2O-3's frame creator: each type gets int(fraction x cols) columns, the reals the rest, in
an order shuffled by seed_for_column_types; names C1, C2, ... with a "response" column first
when has_response.  Values: reals uniform in [-real_range, real_range] (`value` when not
randomize), integers uniform in [-integer_range, integer_range], categorical levels
c<j>.l<k> (k < factors) uniform, binary 1 with binary_ones_fraction; each value (the
response's excepted) NA with missing_fraction.  Every value is a hash of the seed, its
column and its row's global index, so a frame is the same on any number of ranks; each rank
makes only its own rows.  Time and string columns are refused (the store has neither).
"""
import numpy as np

from h2odl_mpi.api.frame_ops import agreed_seed
from h2odl_mpi.api.h2oframe import H2OFrame
from h2odl_mpi.data.adapters import my_rows
from h2odl_mpi.data.folds import row_hash
from h2odl_mpi.data.frame import Frame
from h2odl_mpi.data.frame import derive
from h2odl_mpi.errors import H2OValueError

WEIGHTS = {"real": 0.5, "categorical": 0.2, "integer": 0.2, "binary": 0.1, "time": 0.0, "string": 0.0}


def fractions(a):
    """Each type's fraction, as h2o-py completes those not given."""
    given = {t: a[f"{t}_fraction"] for t in WEIGHTS}
    total = sum(v for v in given.values() if v is not None)
    if total >= 1 + 1e-10:
        raise H2OValueError("Fractions of binary, integer, categorical, time and string columns should add up to a "
                            "number less than 1.")
    left, weights = 1 - total, sum(WEIGHTS[t] for t, v in given.items() if v is None)
    out = {}
    for t, v in given.items():
        if v is None and total < 1 - 1e-10:
            v = left if weights == 0 else left * WEIGHTS[t] / weights
            left, weights = left - v, weights - WEIGHTS[t]
        out[t] = v or 0.0
    return out


def column_types(a):
    """The columns' types, in the order seed_for_column_types shuffles them to."""
    f, cols = fractions(a), int(a["cols"])
    if f["time"] > 0 or f["string"] > 0:
        raise H2OValueError("create_frame: time and string columns are not supported by h2odl_mpi (time_fraction "
                            "and string_fraction must be 0)")
    counts = {t: int(f[t] * cols) for t in ("categorical", "integer", "binary")}
    if not a["randomize"] and (counts["categorical"] or counts["integer"] or counts["binary"]):
        raise H2OValueError("create_frame: randomize must be True with categorical, integer or binary columns")
    types = ["categorical"] * counts["categorical"] + ["integer"] * counts["integer"] + ["binary"] * counts["binary"]
    types = ["real"] * (cols - len(types)) + types
    rng = np.random.default_rng(a["seed_types"])
    return [types[i] for i in rng.permutation(len(types))]


def uniform(seed, j, index):
    """Uniform numbers in [0, 1) of (seed, column j, global row index)."""
    return (row_hash(seed * 1_000_003 + j, index) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def column(a, kind, j, name, index):
    """Column `name` of kind `kind` (the j-th made) for the global rows `index`."""
    u = uniform(a["seed"], 2 * j, index)
    if kind == "categorical":
        levels = [f"c{j}.l{k}" for k in range(int(a["factors"]))]
        codes = np.minimum((u * len(levels)).astype(np.int64), len(levels) - 1).astype(np.float64)
        values, out = codes, lambda v: derive.coded_column(name, v, levels)
    else:
        if kind == "real":
            r = float(a["real_range"])
            values = (2 * u - 1) * r if a["randomize"] else np.full(index.size, float(a["value"]))
        elif kind == "integer":
            r = int(a["integer_range"])
            values = np.floor(u * (2 * r + 1)) - r
        else:
            values = (u < a["binary_ones_fraction"]).astype(np.float64)
        out = lambda v: derive.numeric_column(name, v)  # noqa: E731
    if a["missing_fraction"] > 0:
        values = np.where(uniform(a["seed"], 2 * j + 1, index) < a["missing_fraction"], np.nan, values)
    return out(values)


def response(a, index):
    u = uniform(a["seed"], -1, index)
    k = int(a["response_factors"])
    if k >= 2:
        levels = [str(i) for i in range(k)]
        return derive.coded_column("response", np.minimum((u * k).astype(np.int64), k - 1).astype(np.float64), levels)
    r = float(a["real_range"])
    return derive.numeric_column("response", u * r if a["positive_response"] else (2 * u - 1) * r)


def create_frame(comm, a):
    """The frame h2o.create_frame's arguments `a` ask for, its rows spread over `comm`."""
    if int(a["rows"]) < 1 or int(a["cols"]) < 1:
        raise H2OValueError(f"create_frame: rows and cols must be at least 1, got {a['rows']} and {a['cols']}")
    a = dict(a, seed=agreed_seed(a["seed"], comm))
    a["seed_types"] = agreed_seed(a["seed_for_column_types"], comm)
    types = column_types(a)
    mine = my_rows(int(a["rows"]), comm, False)
    index = np.arange(mine.start, mine.stop, dtype=np.int64)
    columns = [response(a, index)] if a["has_response"] else []
    columns += [column(a, kind, j, f"C{j + 1}", index) for j, kind in enumerate(types)]
    frame = Frame(columns, comm)
    out = H2OFrame(frame, a["frame_id"])
    out.frame_id = a["frame_id"] or f"frame_rand_{a['seed'] & 0xFFFFFF:x}"
    return out
