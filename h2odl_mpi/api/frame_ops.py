"""H2OFrame's element-wise operators, math functions, type conversions and reductions,
with H2O-3's Rapids semantics (mixed into api.h2oframe.H2OFrame).

Every operation works on this rank's rows and makes new columns in the store's chunks; the
reductions (mean, min, max, sum, nacnt) are sums, minima and maxima over the ranks.

H2O-3's rules kept here (its Rapids operators): comparisons are 1 or 0, a comparison with
NA is 0 (NA == NA is 1, and != its negation), == and != compare within one ulp; & and |
are R's three-valued logic (0 & NA is 0, 1 | NA is 1, else NA); ~ is 1 for 0, 0 for
nonzero, NA for NA; % is the remainder with the dividend's sign; // truncates both sides
to integers (NA for a zero divisor).  A categorical column compares with a level's text, or
with another categorical column (by label), by == and != only (a level it lacks matches no
row); any other operation on a categorical column raises H2OValueError naming it (H2O-3
would give a column of NA).
"""
import numpy as np

from h2odl_mpi.collectives import allreduce, bcast_obj
from h2odl_mpi.data.folds import row_hash
from h2odl_mpi.data.frame import derive
from h2odl_mpi.data.frame.column import CATEGORICAL
from h2odl_mpi.errors import H2OValueError

# h2o-py's H2OFrame methods this frame has not: asking for one raises H2OValueError naming it
H2O_PY_METHODS = frozenset((
    "rbind", "merge", "group_by", "sort", "quantile", "impute", "scale", "hist", "table", "unique", "cut",
    "match", "topN", "sub", "gsub", "strsplit", "tolower", "toupper", "trim", "nchar", "substring", "lstrip",
    "rstrip", "ascharacter", "asdate", "as_date", "day", "month", "year", "week", "hour", "minute", "second",
    "dayOfWeek", "stratified_split", "kfold_column", "modulo_kfold_column", "stratified_kfold_column",
    "difflag1", "cumsum", "cumprod", "cummin", "cummax", "var", "sd", "cor", "median", "mode", "skewness",
    "kurtosis", "prod", "relevel", "set_levels", "set_level", "rename", "apply", "mult", "transpose",
    "structure", "summary", "round", "signif", "interaction", "countmatches", "entropy", "num_valid_substrings",
    "grep", "na_omit", "fillna", "rank_within_group_by", "distance", "pivot", "drop_duplicates", "refresh",
    "get_frame_data", "to_pandas", "convert_H2OFrame_2_DMatrix", "columns_by_type", "isstring", "isnumeric",
    "isin", "idxmax", "idxmin", "any_na_rm", "all", "any", "ischaracter", "flatten", "frame_type", "key",
))

# name: (numpy function); results are named "<name>(<column>)", as h2o-py names them
UNARY = {"abs": np.abs, "sqrt": np.sqrt, "log": np.log, "log10": np.log10, "log2": np.log2, "log1p": np.log1p,
         "exp": np.exp, "expm1": np.expm1, "floor": np.floor, "ceil": np.ceil, "trunc": np.trunc, "sign": np.sign,
         "cos": np.cos, "sin": np.sin, "tan": np.tan, "acos": np.arccos, "asin": np.arcsin, "atan": np.arctan,
         "cosh": np.cosh, "sinh": np.sinh, "tanh": np.tanh, "acosh": np.arccosh, "asinh": np.arcsinh,
         "atanh": np.arctanh}


def h2o_type(column):
    """h2o-py's type of a column: "enum" (categorical) or "real"."""
    return "enum" if column.kind == CATEGORICAL else "real"


def java_int(x):
    """Java's (int) cast of doubles: toward zero, NaN as 0, saturated at the int range."""
    return np.clip(np.trunc(np.nan_to_num(x, nan=0.0)), -2.0 ** 31, 2.0 ** 31 - 1)


def equal(l, r):
    """H2O's == : equal within one small ulp, NA equal to NA."""
    with np.errstate(invalid="ignore"):
        near = np.abs(l - r) <= np.minimum(np.spacing(np.abs(l)), np.spacing(np.abs(r)))
    return near | (np.isnan(l) & np.isnan(r))


def int_div(l, r):
    li, ri = java_int(l), java_int(r)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ri == 0, np.nan, np.trunc(li / np.where(ri == 0, 1.0, ri)))


def logical_and(l, r):
    return np.where((l == 0) | (r == 0), 0.0, np.where(np.isnan(l) | np.isnan(r), np.nan, 1.0))


def logical_or(l, r):
    return np.where((l == 1) | (r == 1), 1.0, np.where(np.isnan(l) | np.isnan(r), np.nan, 0.0))


BINARY = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide, "^": np.power, "%": np.fmod,
    "intDiv": int_div, "&": logical_and, "|": logical_or,
    "<": lambda l, r: (l < r).astype(np.float64), "<=": lambda l, r: (l <= r).astype(np.float64),
    ">": lambda l, r: (l > r).astype(np.float64), ">=": lambda l, r: (l >= r).astype(np.float64),
    "==": lambda l, r: equal(l, r).astype(np.float64), "!=": lambda l, r: (~equal(l, r)).astype(np.float64),
}


def operand(x, n, what):
    """An operand's columns, `n` of them (a one-column frame repeats): [(column or None,
    values)] for a frame, [(None, value)] * n for a number, text or None (NA)."""
    if hasattr(x, "frame"):
        columns = x.frame.columns
        if len(columns) not in (1, n):
            raise H2OValueError(f"{what}: a frame of {len(columns)} columns with one of {n}")
        return [(c, c.decode()) for c in (columns if len(columns) == n else columns * n)]
    if x is None:
        x = float("nan")
    if isinstance(x, (bool, np.bool_)):
        x = float(x)
    if not isinstance(x, (int, float, np.number, str)):
        raise H2OValueError(f"{what}: expected an H2OFrame, a number or a string, got {type(x).__name__}")
    return [(None, x)] * n


def apply_binary(op, a, b, name):
    """One result column of `op` on operands (column or None, values)."""
    (ca, x), (cb, y) = a, b
    categorical = [c for c in (ca, cb) if c is not None and c.kind == CATEGORICAL]
    text = isinstance(x, str) or isinstance(y, str)
    if len(categorical) == 2 and op in ("==", "!="):   # by label (H2O-3 aligns the domains); NA == NA
        x, y = same_labels(ca, x, cb, y)
    elif categorical or text:
        if op not in ("==", "!=") or len(categorical) != 1 or not text:
            what = f"column {categorical[0].name!r} is categorical" if categorical else "text is a level"
            raise H2OValueError(f"operator {op!r}: {what}; a categorical column compares with a level's text by "
                                f"== and != only (convert with asnumeric() for arithmetic)")
        column, level = (ca, y) if ca is not None and ca.kind == CATEGORICAL else (cb, x)
        codes = x if column is ca else y
        found = float(column.domain.index(level)) if level in column.domain else -1.0
        x, y = codes, found
    with np.errstate(all="ignore"):
        values = BINARY[op](np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return derive.numeric_column(name, values)


def same_labels(ca, x, cb, y):
    """Two categorical columns' codes as codes of one domain (NA as -1)."""
    where = {level: i for i, level in enumerate(ca.domain)}
    mapped = np.array([where.get(level, -2) for level in cb.domain] or [0], dtype=np.float64)
    right = np.where(np.isnan(y), -1.0, mapped[np.nan_to_num(y, nan=0).astype(np.int64)])
    return np.where(np.isnan(x), -1.0, x), right


def binop(left, op, right):
    """h2o-py's binary operators on frames, numbers and text (one frame at least)."""
    frames = [x for x in (left, right) if hasattr(x, "frame")]
    if len(frames) == 2:
        frames[0].check_aligned(frames[1], f"operator {op!r}")
    n = max(f.ncol for f in frames)
    names = next(f for f in frames if f.ncol == n).names
    what = f"operator {op!r}"
    pairs = zip(operand(left, n, what), operand(right, n, what))
    return frames[0].with_columns([apply_binary(op, a, b, name) for (a, b), name in zip(pairs, names)])


class FrameOps:
    """Operators, math, conversions and reductions of an H2OFrame (which provides frame,
    with_columns, check_aligned, select_rows, names, ncol, nrow)."""

    __array_ufunc__ = None   # numpy leaves `number op frame` to the frame's reflected operators
    __hash__ = object.__hash__

    # ---- operators --------------------------------------------------------------------
    def __add__(self, rhs): return binop(self, "+", rhs)
    def __sub__(self, rhs): return binop(self, "-", rhs)
    def __mul__(self, rhs): return binop(self, "*", rhs)
    def __truediv__(self, rhs): return binop(self, "/", rhs)
    def __floordiv__(self, rhs): return binop(self, "intDiv", rhs)
    def __mod__(self, rhs): return binop(self, "%", rhs)
    def __pow__(self, rhs): return binop(self, "^", rhs)
    def __and__(self, rhs): return binop(self, "&", rhs)
    def __or__(self, rhs): return binop(self, "|", rhs)
    def __lt__(self, rhs): return binop(self, "<", rhs)
    def __le__(self, rhs): return binop(self, "<=", rhs)
    def __gt__(self, rhs): return binop(self, ">", rhs)
    def __ge__(self, rhs): return binop(self, ">=", rhs)
    def __eq__(self, rhs): return binop(self, "==", rhs)
    def __ne__(self, rhs): return binop(self, "!=", rhs)
    def __radd__(self, lhs): return binop(lhs, "+", self)
    def __rsub__(self, lhs): return binop(lhs, "-", self)
    def __rmul__(self, lhs): return binop(lhs, "*", self)
    def __rtruediv__(self, lhs): return binop(lhs, "/", self)
    def __rfloordiv__(self, lhs): return binop(lhs, "intDiv", self)
    def __rmod__(self, lhs): return binop(lhs, "%", self)
    def __rpow__(self, lhs): return binop(lhs, "^", self)
    def __rand__(self, lhs): return binop(lhs, "&", self)
    def __ror__(self, lhs): return binop(lhs, "|", self)

    def __neg__(self):
        return binop(0, "-", self)

    def __abs__(self):
        return self.unary("abs")

    def __invert__(self):
        return self.logical_negation()

    def __bool__(self):
        """As h2o-py: a frame is no truth value (`and`/`or`/`not`/`if` on a condition is a
        mistake for &, |, ~), except a 1x1 frame, whose value decides."""
        if self.nrow != 1 or self.ncol != 1:
            raise H2OValueError("This operation is not supported on an H2OFrame. Try using parentheses. "
                                "Did you mean & (logical and), | (logical or), or ~ (logical not)?")
        return bool(self.getrow()[0])

    def __contains__(self, value):
        raise H2OValueError("`value in frame` is not supported by h2odl_mpi: compare a column (frame['x'] == v)")

    def __iter__(self):
        raise H2OValueError("an H2OFrame is not iterable: use as_data_frame() or names")

    def logical_negation(self):
        """~frame: 1 where 0, 0 where nonzero, NA where NA."""
        return self.unary("!!", lambda v: np.where(np.isnan(v), np.nan, (v == 0).astype(np.float64)), name=False)

    def unary(self, op, fn=None, name=True):
        """A numeric function of every (numeric) column, named op(column) as h2o-py does."""
        fn = fn or UNARY[op]
        out = []
        for c in self.frame.columns:
            if c.kind == CATEGORICAL:
                raise H2OValueError(f"Function {op} cannot be applied to enum column '{c.name}'")
            with np.errstate(all="ignore"):
                values = fn(c.decode())
            out.append(derive.numeric_column(f"{op}({c.name})" if name else c.name, values))
        return self.with_columns(out)

    def ifelse(self, yes, no):
        """Where this one-column condition is nonzero `yes`, where 0 `no`, NA where NA
        (numbers or aligned one-column numeric frames)."""
        if self.ncol != 1:
            raise H2OValueError(f"ifelse: the condition must be one column, it has {self.ncol}")
        (_, test), = operand(self, 1, "ifelse")
        picks = [operand(v, 1, "ifelse")[0] for v in (yes, no)]
        for v, (column, value) in zip((yes, no), picks):
            if hasattr(v, "frame"):
                self.check_aligned(v, "ifelse")
            if isinstance(value, str) or (column is not None and column.kind == CATEGORICAL):
                raise H2OValueError("ifelse: yes and no must be numbers or numeric columns here")
        values = np.where(np.isnan(test), np.nan, np.where(test != 0, picks[0][1], picks[1][1]))
        return self.with_columns([derive.numeric_column(self.names[0], values)])

    # ---- types --------------------------------------------------------------------------
    def asfactor(self):
        """Every column categorical: numbers become levels by their text (3.0 -> "3",
        ordered by value, as H2O's as.factor), already categorical columns stay."""
        from h2odl_mpi.data.response import number_label
        f, out = self.frame, []
        for c in f.columns:
            if c.kind == CATEGORICAL:
                out.append(c)
                continue
            values = c.decode()
            present = np.unique(values[~np.isnan(values)])
            everywhere = np.unique(np.concatenate([present, *gathered(f.data_comm, present)]))
            domain = [number_label(v) for v in everywhere]
            codes = np.searchsorted(everywhere, values).astype(np.float64)
            codes[np.isnan(values)] = np.nan
            out.append(derive.coded_column(c.name, codes, domain))
        return self.with_columns(out)

    def asnumeric(self):
        """Every column numeric: a categorical column gives its level codes (0-based), as
        H2O's as.numeric."""
        return self.with_columns([derive.numeric_column(c.name, c.decode()) if c.kind == CATEGORICAL else c
                                  for c in self.frame.columns])

    def isfactor(self):
        """True for a categorical column (a list, one a column, for several)."""
        kinds = [c.kind == CATEGORICAL for c in self.frame.columns]
        return kinds[0] if len(kinds) == 1 else kinds

    def levels(self):
        """Each column's levels (a list of lists; [] for a numeric column)."""
        return [list(c.domain or []) for c in self.frame.columns]

    def nlevels(self):
        """Each column's number of levels."""
        return [len(c.domain or []) for c in self.frame.columns]

    def isna(self):
        """1 where a value is NA, else 0; columns named isNA(<column>)."""
        return self.with_columns([derive.numeric_column(f"isNA({c.name})", np.isnan(c.decode()).astype(np.float64))
                                  for c in self.frame.columns])

    # ---- reductions ---------------------------------------------------------------------
    def column_sums(self, skipna=True, what="sum"):
        """(sums, counts of values, counts of NA) of every numeric column over the ranks;
        a categorical column's sum is NA."""
        local = np.zeros((3, self.ncol))
        for j, c in enumerate(self.frame.columns):
            v = c.decode()
            na = np.isnan(v)
            local[:, j] = (np.nan if c.kind == CATEGORICAL else v[~na].sum(), (~na).sum(), na.sum())
        total = allreduce(self.frame.data_comm, local, "sum")
        sums = total[0]
        if not skipna:
            sums = np.where(total[2] > 0, np.nan, sums)
        return sums, total[1], total[2]

    def mean(self, skipna=True, axis=0, return_frame=False, **kwargs):
        """Every column's mean (NA for a categorical column, and without skipna for one
        holding NA): a list, or a one-row frame with return_frame=True."""
        check_reduction("mean", axis, kwargs)
        sums, counts, _ = self.column_sums(skipna)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        return self.one_row(means) if return_frame else [float(m) for m in means]

    def sum(self, skipna=True, axis=0, return_frame=False, **kwargs):
        """The sum of every value (h2o-py's scalar), or with return_frame=True a one-row
        frame of the columns' sums."""
        check_reduction("sum", axis, kwargs)
        self.numeric_only("sum")
        sums, _, _ = self.column_sums(skipna)
        return self.one_row(sums) if return_frame else float(np.sum(sums))

    def min(self):
        """The smallest value of the frame (NA ignored; numeric columns only)."""
        return self.extreme("min")

    def max(self):
        """The largest value of the frame (NA ignored; numeric columns only)."""
        return self.extreme("max")

    def extreme(self, op):
        self.numeric_only(op)
        fn, start = (np.fmin, np.inf) if op == "min" else (np.fmax, -np.inf)
        local = np.array([fn.reduce(c.decode(), initial=start) for c in self.frame.columns] or [start])
        value = float(fn.reduce(allreduce(self.frame.data_comm, local, op), initial=start))
        return value if np.isfinite(value) or self.nrow else float("nan")

    def nacnt(self):
        """Every column's count of NA values."""
        return [int(n) for n in self.column_sums()[2]]

    def numeric_only(self, what):
        bad = [c.name for c in self.frame.columns if c.kind == CATEGORICAL]
        if bad:
            raise H2OValueError(f"{what}: column {bad[0]!r} is categorical; {what} takes numeric columns")

    def one_row(self, values):
        """A one-row frame of `values` under this frame's names (held by rank 0)."""
        from h2odl_mpi.api.python_data import typed
        from h2odl_mpi.data.frame import Frame
        from h2odl_mpi.data.adapters import my_rows
        f = self.frame
        rows = my_rows(1, f.data_comm, False)
        data = {n: typed(np.array([v]))[rows] for n, v in zip(self.names, values)}
        return self.fresh(Frame.from_arrays(data, f.comm, f.replicated))

    # ---- random numbers -------------------------------------------------------------------
    def runif(self, seed=None):
        """A column "rnd" of uniform numbers in [0, 1), one a row, from the seed and the
        row's index in its data (row_ids: the file's order): the same on any number of ranks.  seed None or -1: a random
        seed (rank 0's)."""
        seed = agreed_seed(seed, self.frame.comm)
        u = (row_hash(seed, self.row_ids()) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
        return self.with_columns([derive.numeric_column("rnd", u)])

    def split_frame(self, ratios=None, destination_frames=None, seed=None):
        """h2o-py's split_frame: len(ratios) + 1 frames, row i in the part its runif(seed)
        falls in (boundaries the ratios' running sums; h2o-py's <= and >)."""
        ratios = [0.75] if ratios is None else list(ratios)
        if not ratios:
            raise H2OValueError("Ratios array may not be empty")
        if destination_frames is not None and len(destination_frames) != len(ratios) + 1:
            raise H2OValueError("The number of provided destination_frames must be one more than the number of "
                                "provided ratios")
        bounds = np.cumsum(ratios)
        if any(r < 0 for r in ratios):
            raise H2OValueError("Ratio must be greater than 0")
        if bounds[-1] >= 1.0:
            raise H2OValueError("Ratios must add up to less than 1.0")
        r = self.runif(seed).frame.columns[0].decode()
        edges = np.concatenate([[-np.inf], bounds, [np.inf]])
        parts = []
        for i in range(len(ratios) + 1):
            keep = (r > edges[i]) & (r <= edges[i + 1])
            part = self.with_columns([derive.taken(c, keep) for c in self.frame.columns], keep)
            if destination_frames is not None:
                part.frame_id = destination_frames[i]
            parts.append(part)
        return parts

    def insert_missing_values(self, fraction=0.1, seed=None):
        """Make about `fraction` of the values NA (each value by a uniform number from the
        seed, its row's global index and its column), in place; returns self."""
        if not 0 <= fraction <= 1:
            raise H2OValueError(f"insert_missing_values: fraction must be in [0, 1], got {fraction!r}")
        seed = agreed_seed(seed, self.frame.comm)
        f, index = self.frame, self.row_ids()
        out = []
        for j, c in enumerate(f.columns):
            u = (row_hash(seed + 7919 * (j + 1), index) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
            v = np.where(u < fraction, np.nan, c.decode())
            out.append(derive.coded_column(c.name, v, c.domain) if c.kind == CATEGORICAL
                       else derive.numeric_column(c.name, v))
        self.frame = self.with_columns(out).frame
        return self


def gathered(comm, values):
    """Every rank's small float64 array (a list, in rank order)."""
    from h2odl_mpi.collectives import allgather_obj
    return [np.asarray(p, dtype=np.float64) for p in allgather_obj(comm, np.asarray(values, dtype=np.float64))]


def agreed_seed(seed, comm):
    """`seed`, or for None / -1 a random one, rank 0's on every rank."""
    if seed is None or seed == -1:
        seed = int(np.random.default_rng().integers(0, 2 ** 62))
    return int(bcast_obj(comm, int(seed)))


def check_reduction(what, axis, kwargs):
    if axis != 0:
        raise H2OValueError(f"{what}: axis=1 (row-wise) is not supported by h2odl_mpi; axis=0 is")
    if kwargs:
        raise H2OValueError(f"{what}: unknown parameters {sorted(kwargs)}")


def _add_math(cls):
    for op in UNARY:
        def method(self, _op=op):
            return self.unary(_op)
        method.__name__ = op
        method.__doc__ = f"h2o-py's {op}(): the function of every numeric column, named {op}(<column>)."
        setattr(cls, op, method)


_add_math(FrameOps)
