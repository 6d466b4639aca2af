"""Input kinds: how one source column becomes network input units.

`ENCODINGS` is the one table of categorical encodings: H2O's categorical_encoding name ->
the object that fits a categorical column into an `InputColumn` and then, for such a
column, names its units (`unit_names`), describes it to the C decoder (`frame_input`: the
c_view.FrameInput of its kind), expands it in numpy (`expand`: the reference the C decoder
is held to, bit for bit) and says which of its fields the model file holds (`meta_fields`,
`array_fields`).  `NUMERIC_KIND` does the same for numeric columns, and `HASHED_KIND` for one-hot
columns folded into max_categorical_features shared units (H2O's hashing trick); no
categorical_encoding names those two.  `KINDS` finds the object of a fitted column by its
`kind`; `layout` places the fitted columns' units.

Adding an encoding: a class and an ENCODINGS entry here (a new C kind needs csrc too), and
its row in docs/preprocessing.md.
"""
from dataclasses import dataclass, field
import math

import numpy as np

from h2odl_mpi.errors import UserError
from h2odl_mpi.data.frame.c_view import FrameInput
from h2odl_mpi.collectives import allreduce


@dataclass
class InputColumn:
    """One source column and the input units it feeds (saved with the model)."""
    name: str
    kind: str                 # a KINDS key: numeric | label | binary | onehot | hashed
    input: int                # first unit
    width: int                # units (hashed: the shared region's size)
    sub: float = 0.0          # numeric / label: x = (v - sub) * mul
    mul: float = 1.0
    na_fill: float = 0.0      # the transformed value of NA (mean imputation)
    levels: list = None       # categorical kinds: training levels, in code order
    first_level: int = 0      # onehot / hashed: 1 when use_all_factor_levels is off
    bit_sub: list = None      # binary: per bit
    bit_mul: list = None
    cat_offset: int = 0       # hashed: first unit of this column before hashing
    hash_seed: int = 0
    stats: dict = field(default_factory=dict)   # mean, sd, min, max, na_count (as summarised)

    @property
    def categorical(self):
        return self.levels is not None

    def unit_names(self):
        return KINDS[self.kind].unit_names(self)


@dataclass(frozen=True)
class FitOptions:
    """The fit's settings that shape a column's units and their scaling."""
    standardize: bool = True
    autoencoder: bool = False
    sparse: bool = False
    use_all_factor_levels: bool = True

    def scaling(self, stats):
        """(sub, mul, na_fill) of a numeric-valued input from its global summary."""
        mean, sd, lo, hi = (stats.get(k) for k in ("mean", "sd", "min", "max"))
        finite = mean is not None and math.isfinite(mean)
        sub, mul = 0.0, 1.0
        if self.standardize and finite:
            if self.autoencoder:      # normalise to [-0.5, 0.5]
                sub = (lo + hi) / 2.0
                mul = 1.0 / (hi - lo) if hi > lo else 1.0
            else:
                sub = 0.0 if self.sparse else mean
                mul = 1.0 / sd if sd is not None and math.isfinite(sd) and sd > 0 else 1.0
        na_fill = (mean - sub) * mul if finite else 0.0
        return float(sub), float(mul), float(na_fill)


def level_stats(counts):
    """mean, sd, min, max of the integer codes 0..k-1 occurring counts[c] times."""
    codes = np.arange(counts.size, dtype=np.float64)
    n = float(counts.sum())
    if n == 0:
        return dict(mean=float("nan"), sd=float("nan"), min=float("nan"), max=float("nan"))
    mean = float((codes * counts).sum() / n)
    sd = math.sqrt(float((counts * (codes - mean) ** 2).sum()) / (n - 1)) if n > 1 else float("nan")
    present = np.flatnonzero(counts)
    return dict(mean=mean, sd=sd, min=float(present[0]), max=float(present[-1]))


def np_hash(key, seed):
    """numpy twin of h2o_hash (csrc/frame_rows.c) for uint32 keys."""
    m = np.uint64(0xFFFFFFFF)
    h = ((np.asarray(key, dtype=np.uint64) * np.uint64(0x9E3779B1)) & m) ^ np.uint64(seed & 0xFFFFFFFF)
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & m
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & m
    h ^= h >> np.uint64(16)
    return h


def levels_of(values, level_map, n_levels):
    """Training level of decoded categorical values (-1: NA or unseen), as C's fr_level."""
    lim = level_map.size if level_map is not None else n_levels
    ok = (values >= 0) & (values < lim)            # NaN compares false
    code = np.where(ok, values, 0).astype(np.int64)
    level = level_map[code] if level_map is not None else code
    return np.where(ok, level, -1).astype(np.int64)


# ------------------------------------------------------------------------- the kinds

class InputKind:
    """One way a source column becomes units: everything that depends on a fitted
    column's `kind`."""
    kind = None               # InputColumn.kind, and the C decoder's FrameInput kind
    numeric_valued = True     # laid out among the numeric inputs (False: the one-hot region)
    c_fields = ()             # InputColumn fields the C decoder reads besides the common ones
    meta_fields = ()          # InputColumn scalars saved in the column's JSON meta
    array_fields = ()         # InputColumn per-unit lists, saved as concatenated datasets

    def unit_names(self, col):
        return [col.name]

    def frame_input(self, col, source, level_map):
        """The C decoder's description of `col` read from Column `source`."""
        return FrameInput(column=source, kind=col.kind, input=col.input, width=col.width,
                          n_levels=len(col.levels) if col.categorical else 0,
                          level_map=level_map, **{f: getattr(col, f) for f in self.c_fields})

    def expand(self, col, values, level_map, x, rows):
        """Write the units of `col` for decoded `values` into float32 matrix x (rows:
        arange over x's rows), with the C decoder's arithmetic."""
        raise NotImplementedError


class Numeric(InputKind):
    """A numeric column: one unit, standardised, NA mean-imputed."""
    kind = "numeric"
    c_fields = ("sub", "mul", "na_fill")

    def fit(self, name, summary, options):
        stats = dict(mean=summary.mean, sd=summary.sd, min=summary.min, max=summary.max,
                     na_count=summary.na_count)
        sub, mul, fill = options.scaling(stats)
        return InputColumn(name, self.kind, 0, 1, sub, mul, fill, stats=stats)

    def expand(self, col, values, level_map, x, rows):
        with np.errstate(invalid="ignore"):
            t = ((values - col.sub) * col.mul).astype(np.float32)
        x[:, col.input] = np.where(np.isnan(values), np.float32(col.na_fill), t)


class CategoricalEncoding(InputKind):
    """A categorical_encoding: fits a categorical column from its global level counts."""

    def prepare(self, frame, names, target, comm):
        """Per-column facts the fit needs beyond level counts ({} here); collective.
        target: a Preprocess holding only the response."""
        return {}

    def fit(self, name, levels, counts, summary, options, prepared=None):
        """The InputColumn of categorical column `name` (levels in code order, counts: global
        rows per level as float64, summary: its ColumnSummary), input still 0."""
        raise NotImplementedError

    @staticmethod
    def _stats(levels, summary):
        return dict(na_count=int(summary.na_count), cardinality=len(levels))


class LabelEncoder(CategoricalEncoding):
    """One unit: the level index, standardised like a number; NA/unseen mean-imputed."""
    kind = "label"
    c_fields = ("sub", "mul", "na_fill")

    def fit(self, name, levels, counts, summary, options, prepared=None):
        stats = self._stats(levels, summary)
        stats.update(level_stats(counts))
        sub, mul, fill = options.scaling(stats)
        return InputColumn(name, self.kind, 0, 1, sub, mul, fill, levels=levels, stats=stats)

    def expand(self, col, values, level_map, x, rows):
        level = levels_of(values, level_map, len(col.levels))
        t = ((level.astype(np.float64) - col.sub) * col.mul).astype(np.float32)
        x[:, col.input] = np.where(level < 0, np.float32(col.na_fill), t)


class Binary(CategoricalEncoding):
    """bit_length(levels) units: bit b of level + 1 (NA/unseen: 0), each bit standardised."""
    kind = "binary"
    c_fields = ("bit_sub", "bit_mul")
    array_fields = ("bit_sub", "bit_mul")

    def fit(self, name, levels, counts, summary, options, prepared=None):
        width = max(1, len(levels)).bit_length()
        n = float(summary.rows)
        codes = np.arange(len(levels)) + 1
        bsub, bmul = [], []
        for b in range(width):
            ones = float(counts[((codes >> b) & 1) == 1].sum())
            mean = ones / n if n else float("nan")
            sd = math.sqrt((ones * (1 - mean) ** 2 + (n - ones) * mean ** 2) / (n - 1)) \
                if n > 1 else float("nan")
            bstats = dict(mean=mean, sd=sd, min=0.0 if ones < n else 1.0, max=1.0 if ones > 0 else 0.0)
            sub, mul, _ = options.scaling(bstats)
            bsub.append(sub)
            bmul.append(mul)
        return InputColumn(name, self.kind, 0, width, levels=levels, bit_sub=bsub, bit_mul=bmul,
                           stats=self._stats(levels, summary))

    def unit_names(self, col):
        return [f"{col.name}:{b}" for b in range(col.width)]

    def expand(self, col, values, level_map, x, rows):
        level = levels_of(values, level_map, len(col.levels))
        code = np.where(level < 0, 0, level + 1)
        for b in range(col.width):
            bit = ((code >> b) & 1).astype(np.float64)
            x[:, col.input + b] = ((bit - col.bit_sub[b]) * col.bit_mul[b]).astype(np.float32)


class OneHot(CategoricalEncoding):
    """One unit per level (the first dropped when use_all_factor_levels is off) and a last
    unit for NA or unseen levels."""
    kind = "onehot"
    numeric_valued = False
    c_fields = ("first_level",)
    meta_fields = ("first_level",)

    def fit(self, name, levels, counts, summary, options, prepared=None):
        first = 0 if options.use_all_factor_levels else 1
        return InputColumn(name, self.kind, 0, len(levels) + 1 - first, levels=levels,
                           first_level=first, stats=self._stats(levels, summary))

    def unit_names(self, col):
        return [f"{col.name}.{lvl}" for lvl in col.levels[col.first_level:]] + \
            [f"{col.name}.missing(NA)"]

    @staticmethod
    def units(col, values, level_map):
        """The column's unit of each row (-1: none, the dropped first level)."""
        level = levels_of(values, level_map, len(col.levels))
        return np.where(level < 0, len(col.levels) - col.first_level, level - col.first_level)

    def expand(self, col, values, level_map, x, rows):
        unit = self.units(col, values, level_map)
        on = unit >= 0
        x[rows[on], col.input + unit[on]] = 1.0


class SortByResponse(OneHot):
    """One-hot with the levels ordered by their mean response (regression or 2 classes),
    so use_all_factor_levels=false drops the lowest."""

    def prepare(self, frame, names, target, comm):
        """Each level's mean response, per column (collective)."""
        if target.response is None:
            raise UserError("categorical_encoding=SortByResponse needs a response (not an autoencoder)")
        if target.classification and len(target.domain) != 2:
            raise UserError("categorical_encoding=SortByResponse: only for regression or two "
                            "classes (the response has "
                            f"{len(target.domain)})")
        y = target.response_values(frame).astype(np.float64)
        if not target.classification:
            y = y * target.response_sd + target.response_mean
        has_y = ~np.isnan(y)
        sizes = [len(frame.domain(n)) for n in names]
        sums, cnts = np.zeros(sum(sizes)), np.zeros(sum(sizes))
        start = 0
        for name, size in zip(names, sizes):
            codes = frame.decode(name)
            ok = has_y & ~np.isnan(codes)
            ci = codes[ok].astype(np.int64)
            sums[start:start + size] += np.bincount(ci, weights=y[ok], minlength=size)
            cnts[start:start + size] += np.bincount(ci, minlength=size)
            start += size
        sums, cnts = allreduce(comm, sums), allreduce(comm, cnts)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(cnts > 0, sums / np.maximum(cnts, 1), np.nan)
        out, start = {}, 0
        for name, size in zip(names, sizes):
            out[name] = means[start:start + size]
            start += size
        return out

    def fit(self, name, levels, counts, summary, options, prepared=None):
        means = prepared
        order = sorted(range(len(levels)),
                       key=lambda i: (math.isnan(means[i]), means[i] if not math.isnan(means[i]) else 0.0, i))
        return super().fit(name, [levels[i] for i in order], counts[order], summary, options)


class Hashed(OneHot):
    """One-hot columns sharing max_categorical_features units: a row's one-hot unit u of
    a column whose units would start at cat_offset adds 1 to unit
    h2o_hash(cat_offset + u, seed) % width of the shared region."""
    kind = "hashed"
    c_fields = ("first_level", "cat_offset", "hash_seed")
    meta_fields = ("first_level", "cat_offset", "hash_seed")

    def unit_names(self, col):
        return []             # shared units: Preprocess.input_names names them

    def fold(self, columns, first_unit, n_units, seed):
        """Turn one-hot `columns` into hashed ones sharing units first_unit.. + n_units."""
        offset = 0
        for col in columns:
            col.kind, col.cat_offset, col.hash_seed = self.kind, offset, int(seed) & 0xFFFFFFFF
            offset += col.width
            col.input, col.width = first_unit, int(n_units)

    def expand(self, col, values, level_map, x, rows):
        unit = self.units(col, values, level_map)
        on = unit >= 0
        slot = np_hash(col.cat_offset + unit[on], col.hash_seed) % np.uint64(col.width)
        np.add.at(x, (rows[on], col.input + slot.astype(np.int64)), np.float32(1.0))


# ------------------------------------------------------------------------- the table

NUMERIC_KIND = Numeric()
HASHED_KIND = Hashed()
_ONE_HOT = OneHot()

ENCODINGS = {
    "AUTO": _ONE_HOT,
    "OneHotInternal": _ONE_HOT,
    "Binary": Binary(),
    "LabelEncoder": LabelEncoder(),
    "SortByResponse": SortByResponse(),
}
CATEGORICAL_ENCODINGS = tuple(ENCODINGS)     # the categorical_encoding values supported

KINDS = {NUMERIC_KIND.kind: NUMERIC_KIND, HASHED_KIND.kind: HASHED_KIND}
for _encoding in ENCODINGS.values():
    KINDS.setdefault(_encoding.kind, _encoding)
META_FIELDS = tuple(dict.fromkeys(f for k in KINDS.values() for f in k.meta_fields))
ARRAY_FIELDS = tuple(dict.fromkeys(f for k in KINDS.values() for f in k.array_fields))


def layout(columns, max_categorical_features, seed):
    """Give fitted columns their units: every numeric-valued one in the given (frame) order,
    then the one-hot blocks, or, when these would exceed max_categorical_features units,
    one shared region of that many units they are hashed into.  Returns (the columns in
    layout order, the number of units)."""
    numeric = [c for c in columns if KINDS[c.kind].numeric_valued]
    onehot = [c for c in columns if not KINDS[c.kind].numeric_valued]
    unit = 0
    for col in numeric:
        col.input = unit
        unit += col.width
    if sum(c.width for c in onehot) > max_categorical_features:
        HASHED_KIND.fold(onehot, unit, max_categorical_features, seed)
        unit += int(max_categorical_features)
    else:
        for col in onehot:
            col.input = unit
            unit += col.width
    return numeric + onehot, unit
