"""Parquet inputs: the schema's column kinds, row-group shards and batches as Arrow tables.

Numbers, booleans and decimals become numeric columns (float64); dates and timestamps
become numeric milliseconds since the epoch (as H2O's time columns); strings and
dictionaries become categorical.  The unit of sharding is the row group.
"""
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from h2odl_mpi.errors import UserError
from h2odl_mpi.data.frame.column import CATEGORICAL, NUMERIC

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


def iter_tables(input_file, groups, names, kinds, batch_rows):
    """Tables of at most `batch_rows` rows from the given row groups, converted for the store."""
    parquet = open_parquet(input_file)
    if parquet.schema_arrow.names != names:
        raise UserError(f"{input_file.name}: columns {parquet.schema_arrow.names} differ from "
                        f"the first file's {names}")
    try:
        for batch in parquet.iter_batches(batch_size=batch_rows, row_groups=groups, columns=names):
            yield pa.table([_convert(batch.column(j), kinds[j]) for j in range(len(names))],
                           names=names)
    except (pa.ArrowInvalid, OSError) as err:
        raise UserError(f"{input_file.name}: cannot read Parquet data: {err}") from err


def _kind(field, input_file):
    t = field.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return CATEGORICAL
    if (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
            or pa.types.is_decimal(t) or pa.types.is_temporal(t)):
        return NUMERIC
    raise UserError(f"{input_file.name}: column {field.name!r} has type {field.type}, "
                    f"which the column store cannot hold")


def _convert(array, kind):
    if kind == CATEGORICAL:
        if pa.types.is_dictionary(array.type):
            return array.cast(pa.dictionary(pa.int32(), pa.string()))
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
