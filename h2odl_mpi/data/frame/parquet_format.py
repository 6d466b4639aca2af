"""Parquet inputs: the schema's column kinds, row-group shards and batches as Arrow tables.

Numbers, booleans and decimals become numeric columns (float64); dates and timestamps
become numeric milliseconds since the epoch (as H2O's time columns); strings and
dictionaries become categorical.  The unit of sharding is the row group.  col_types may
turn a numeric column into a categorical one (levels: Arrow's text of each value, "3" for
3.0, "true", "2020-01-31") or a text column into a numeric one (a value that is not a
number is NA, as in H2O-3); na_strings apply to text columns (levels equal to one are NA).
"""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from h2odl_mpi.errors import UserError
from h2odl_mpi.data.frame.column import CATEGORICAL, NUMERIC
from h2odl_mpi.data.frame.csv_format import drop_levels, text_to_numbers

PARQUET_MAGIC = b"PAR1"
_COUNTS_PER_MS = {"ms": 1, "us": 1000, "ns": 1_000_000}


# what pyarrow raises for a damaged file: its own errors, and for damaged metadata some of
# Python's (a column name that is not UTF-8: UnicodeDecodeError, a ValueError)
DAMAGE_ERRORS = (pa.ArrowException, OSError, ValueError, IndexError, OverflowError)


def open_parquet(input_file):
    try:
        return pq.ParquetFile(input_file.path)
    except DAMAGE_ERRORS as err:
        raise UserError(f"{input_file.name}: not a readable Parquet file: {_one_line(err)}") from err


def _one_line(err):
    return " ".join(str(err).split())[:300]


def schema_of(input_file):
    """(names, kinds, arrow types) of a Parquet file."""
    parquet = open_parquet(input_file)
    try:
        schema = parquet.schema_arrow
    except DAMAGE_ERRORS as err:
        raise UserError(f"{input_file.name}: not a readable Parquet file: {_one_line(err)}") from err
    kinds = [_kind(field, input_file) for field in schema]
    return list(schema.names), kinds, [field.type for field in schema]


def row_groups(input_file):
    """Rows in each row group of the file."""
    parquet = open_parquet(input_file)
    try:
        metadata = parquet.metadata
        return [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    except DAMAGE_ERRORS as err:
        raise UserError(f"{input_file.name}: not a readable Parquet file: {_one_line(err)}") from err


def iter_tables(input_file, groups, names, kinds, batch_rows, column_na=None, invalid=None):
    """Tables of at most `batch_rows` rows from the given row groups, converted for the store
    to `kinds`; `column_na`: per column, strings that are NA in a text column; `invalid`:
    {name: [count, first value]} of text made NA in a column made numeric (updated)."""
    parquet = open_parquet(input_file)
    try:
        found = parquet.schema_arrow.names
    except DAMAGE_ERRORS as err:
        raise UserError(f"{input_file.name}: not a readable Parquet file: {_one_line(err)}") from err
    if found != names:
        raise UserError(f"{input_file.name}: columns {found} differ from the first file's {names}")
    column_na = column_na or [()] * len(names)
    invalid = {} if invalid is None else invalid
    try:
        expected = sum(parquet.metadata.row_group(g).num_rows for g in groups)
        read = 0
        for batch in parquet.iter_batches(batch_size=batch_rows, row_groups=groups, columns=names):
            read += batch.num_rows
            yield pa.table([_convert(batch.column(j), kinds[j], column_na[j], names[j], invalid)
                            for j in range(len(names))], names=names)
    except DAMAGE_ERRORS as err:   # (ArrowInvalid, ArrowNotImplementedError, ...)
        raise UserError(f"{input_file.name}: cannot read Parquet data: {_one_line(err)}") from err
    if read != expected:   # (a damaged page can hold fewer values than its row group's rows)
        raise UserError(f"{input_file.name}: its metadata gives {expected} rows to the row groups read, "
                        f"{read} could be read: the file is damaged")


def _kind(field, input_file):
    t = field.type
    if _is_text(t):
        return CATEGORICAL
    if pa.types.is_dictionary(t):
        t = t.value_type
    if (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
            or pa.types.is_decimal(t) or pa.types.is_temporal(t)):
        return NUMERIC
    raise UserError(f"{input_file.name}: column {field.name!r} has type {field.type}, "
                    f"which the column store cannot hold")


def _is_text(t):
    t = t.value_type if pa.types.is_dictionary(t) else t
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _convert(array, kind, na=(), name=None, invalid=None):
    if _is_text(array.type):
        array.validate(full=True)   # (a damaged file: dictionary indices or offsets out of range)
        text = array if pa.types.is_dictionary(array.type) else array.cast(pa.string()).dictionary_encode()
        text = pa.chunked_array([text.cast(pa.dictionary(pa.int32(), pa.string()))])
        if na:
            text = drop_levels(text, na)
        if kind == CATEGORICAL:
            return text
        values, bad, example = text_to_numbers(text)  # col_types numeric: text is NA (H2O)
        if bad:
            seen = invalid.setdefault(name, [0, example])
            seen[0] += bad
        return values
    if kind == CATEGORICAL:                 # col_types enum: the values' text are the levels
        if pa.types.is_floating(array.type):
            array = pc.if_else(pc.is_nan(array), pa.scalar(None, array.type), array)
        return array.cast(pa.string()).dictionary_encode()
    t = array.type
    if pa.types.is_boolean(t):
        array = array.cast(pa.int8())
    elif pa.types.is_timestamp(t) or pa.types.is_date64(t):
        return milliseconds(array.cast(pa.int64()), t.unit if pa.types.is_timestamp(t) else "ms")
    elif pa.types.is_date32(t):
        return pc.multiply(array.cast(pa.int32()).cast(pa.float64()), 86_400_000.0)
    elif pa.types.is_time32(t):
        array = array.cast(pa.int32())      # (Arrow casts time32 to int32 only)
    elif pa.types.is_time64(t) or pa.types.is_duration(t):
        array = array.cast(pa.int64())
    # (not a safe cast: an integer beyond 2**53 is rounded, as a CSV number is, not refused)
    return pc.cast(array, pa.float64(), safe=False)


def milliseconds(counts, unit):
    """float64 milliseconds of an int64 array of counts of `unit` (s, ms, us, ns), each
    correctly rounded (nulls stay null).  Below 2**53 a count converts exactly and is divided
    once; beyond, it is split into whole milliseconds (then at least 2**20: their float
    spacing is far coarser than the fraction's rounding) plus the fraction."""
    values = counts.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    if unit == "s":
        out = values.astype(np.float64) * 1000.0
    else:
        per_ms = _COUNTS_PER_MS[unit]
        out = values.astype(np.float64)
        if per_ms != 1:
            big = np.abs(values) >= 1 << 53
            out /= per_ms
            if big.any():
                whole, part = np.divmod(values[big], per_ms)
                out[big] = whole.astype(np.float64) + part.astype(np.float64) / per_ms
    return pa.array(out, mask=counts.is_null().to_numpy(zero_copy_only=False) if counts.null_count else None)
