"""Parquet inputs: the schema's column kinds, row-group shards and batches as Arrow tables.

Numbers, booleans and decimals become numeric columns (float64); dates and timestamps
become numeric milliseconds since the epoch (as H2O's time columns); strings and
dictionaries become categorical.  The unit of sharding is the row group.  col_types may
turn a numeric column into a categorical one (levels: Arrow's text of each value, "3" for
3.0, "true", "2020-01-31") or a text column into a numeric one (a value that is not a
number is NA, as in H2O-3); na_strings apply to text columns (levels equal to one are NA).
"""
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from h2odl_mpi.errors import UserError
from h2odl_mpi.data.frame.column import CATEGORICAL, NUMERIC
from h2odl_mpi.data.frame.csv_format import drop_levels, text_to_numbers

PARQUET_MAGIC = b"PAR1"
_UNITS_PER_MS = {"s": 1e-3, "ms": 1.0, "us": 1e3, "ns": 1e6}


def open_parquet(input_file):
    try:
        return pq.ParquetFile(input_file.path)
    except (pa.ArrowInvalid, OSError) as err:
        raise UserError(f"{input_file.name}: not a readable Parquet file: {err}") from err


def schema_of(input_file):
    """(names, kinds, arrow types) of a Parquet file."""
    schema = open_parquet(input_file).schema_arrow
    kinds = [_kind(field, input_file) for field in schema]
    return list(schema.names), kinds, [field.type for field in schema]


def row_groups(input_file):
    """Rows in each row group of the file."""
    metadata = open_parquet(input_file).metadata
    return [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]


def iter_tables(input_file, groups, names, kinds, batch_rows, column_na=None, invalid=None):
    """Tables of at most `batch_rows` rows from the given row groups, converted for the store
    to `kinds`; `column_na`: per column, strings that are NA in a text column; `invalid`:
    {name: [count, first value]} of text made NA in a column made numeric (updated)."""
    parquet = open_parquet(input_file)
    if parquet.schema_arrow.names != names:
        raise UserError(f"{input_file.name}: columns {parquet.schema_arrow.names} differ from "
                        f"the first file's {names}")
    column_na = column_na or [()] * len(names)
    invalid = {} if invalid is None else invalid
    try:
        for batch in parquet.iter_batches(batch_size=batch_rows, row_groups=groups, columns=names):
            yield pa.table([_convert(batch.column(j), kinds[j], column_na[j], names[j], invalid)
                            for j in range(len(names))], names=names)
    except (pa.ArrowInvalid, OSError) as err:
        raise UserError(f"{input_file.name}: cannot read Parquet data: {err}") from err


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
    elif pa.types.is_timestamp(t):
        per_ms = _UNITS_PER_MS[t.unit]
        values = array.cast(pa.int64()).cast(pa.float64())
        return pc.divide(values, per_ms) if per_ms != 1 else values
    elif pa.types.is_date32(t):
        return pc.multiply(array.cast(pa.int32()).cast(pa.float64()), 86_400_000.0)
    elif pa.types.is_date64(t) or pa.types.is_time(t) or pa.types.is_duration(t):
        array = array.cast(pa.int64())
    return array.cast(pa.float64())
