"""Finding a description's input columns in a frame (training or scoring).

Columns are looked up by name (any order, extra ones ignored).  Where the frame's kind
differs from training, the column is converted (re-encoded, one compressed column): numbers
for a categorical input are matched to the training levels by their text, text for a
numeric input is parsed as numbers.  A categorical column whose levels differ from
training gets a level map (frame code -> training level, -1: unseen) instead.
docs/preprocessing.md ("Scoring frames").
"""
import numpy as np

from h2odl_mpi.errors import UserError
from h2odl_mpi.data.frame.column import CATEGORICAL, NUMERIC, Column
from h2odl_mpi.data.frame.encoding import encode
from h2odl_mpi.data.response import number_label


def input_sources(columns, frame, what="frame"):
    """(InputColumn, Column, level_map) for each of `columns` (InputColumns) in `frame`."""
    names = set(frame.names)
    missing = [c.name for c in columns if c.name not in names]
    if missing:
        raise UserError(f"{what}: missing column(s) {', '.join(repr(m) for m in missing)} "
                        "that the model uses as inputs")
    out = []
    for col in columns:
        source = frame.column(col.name)
        level_map = None
        if col.categorical:
            if source.kind == NUMERIC:
                source = _numbers_as_levels(source, col.levels)
            elif list(source.domain) != list(col.levels):
                index = {lvl: i for i, lvl in enumerate(col.levels)}
                level_map = np.array([index.get(lvl, -1) for lvl in source.domain], dtype=np.int32)
        elif source.kind == CATEGORICAL:
            source = _levels_as_numbers(source)
        out.append((col, source, level_map))
    return out


def numeric_values(frame, name, what):
    """This rank's values of numeric column `name` (UserError if it is categorical)."""
    col = frame.column(name)
    if col.kind != NUMERIC:
        raise UserError(f"{what}: column {name!r} must be numeric")
    return col.decode()


def _rechunk(column, kind, values_of, domain=None):
    """A column with the same chunk boundaries, each chunk's values mapped and re-encoded."""
    chunks = [encode(values_of(column.chunk(i).decode())) for i in range(column.n_chunks)]
    return Column(column.name, kind, chunks, domain=domain)


def _numbers_as_levels(column, levels):
    """A numeric scoring column for a categorical input: numbers matched to the training
    levels by their text ('3' for 3.0); others become NA (the missing level)."""
    index = {lvl: i for i, lvl in enumerate(levels)}

    def convert(v):
        out = np.full(v.size, np.nan)
        finite = ~np.isnan(v)
        uniq, inverse = np.unique(v[finite], return_inverse=True)
        table = np.array([index.get(number_label(u), np.nan) for u in uniq] + [np.nan])
        out[finite] = table[inverse] if uniq.size else out[finite]
        return out
    return _rechunk(column, CATEGORICAL, convert, domain=levels)


def _levels_as_numbers(column):
    """A categorical scoring column for a numeric input: levels parsed as numbers, text
    that is not a number becomes NA (mean-imputed)."""
    def parse(text):
        try:
            return float(text)
        except ValueError:
            return np.nan
    table = np.array([parse(lvl) for lvl in column.domain] + [np.nan], dtype=np.float64)

    def convert(v):
        codes = np.where(np.isnan(v), len(column.domain), v).astype(np.int64)
        return table[codes]
    return _rechunk(column, NUMERIC, convert)
