"""Read CSV, SVMLight or Parquet inputs into a rank's Columns: shard, parse, encode, agree.

Every function here is collective over `comm` (None: one process).  Each rank reads only
its shard unless `replicate` is true (then every rank reads everything).  Anything that
may fail on some ranks only is wrapped and passed through `errors.agree` before the next
collective, so a bad file on one rank ends every rank with the same UserError.

CSV column kinds: rank 0's sniff gives a first guess (numeric, categorical or undecided when
the sample holds only NA).  A rank whose shard holds text in a numeric column makes it
categorical: in place if the column held only NA so far, else by reading its shard again.
An allreduce then makes the column categorical on every rank (ranks that hold numbers in it
read again).  A column holding any non-numeric text is therefore categorical, and its
numbers become levels as text.

H2O-3's parse options reach every reader the same way: `na_strings` (strings missing besides
the defaults, for all columns, per column or by name) and `col_types` (a kind forced per
column), checked before anything is read and resolved against the column names on rank 0
(parse_options.py), so that every rank parses every column alike.
"""
import contextlib
import dataclasses
import inspect
import warnings

import numpy as np
import pyarrow as pa

from h2odl_mpi.errors import UserError, agree
from h2odl_mpi.data.frame import parquet_format
from h2odl_mpi.data.frame.assemble import (DEFAULT_CHUNK_ROWS, agree_kinds, any_rank, build_columns,
                                      global_domains)
from h2odl_mpi.data.frame.builder import ChunkBuilder
from h2odl_mpi.collectives import allgather_obj, allreduce, bcast_obj, rank_and_size
from h2odl_mpi.data.frame.column import CATEGORICAL, NUMERIC
from h2odl_mpi.data.frame.csv_format import (NA_STRINGS, CsvDialect, NotNumeric, ParseState, parse_csv_block,
                                             sniff_csv)
from h2odl_mpi.data.frame.parse_options import check_col_types, check_na_strings, resolve as resolve_columns
from h2odl_mpi.data.frame.sharding import iter_blocks, partition, plan_text_shard
from h2odl_mpi.data.frame.sources import read_head, resolve_inputs
from h2odl_mpi.data.frame.svmlight import looks_like_svmlight, parse_svmlight_block

CSV, SVMLIGHT, PARQUET = "csv", "svmlight", "parquet"
FORMATS = (CSV, SVMLIGHT, PARQUET)
BLOCK_VALUES = 1 << 21          # float64 values parsed per block (16 MiB): the read buffer
MIN_BLOCK_BYTES, MAX_BLOCK_BYTES = 1 << 16, 1 << 26
DEFAULT_MAX_LEVELS = 10_000_000  # H2O's limit on categorical levels
_SUFFIXES = {".parquet": PARQUET, ".pq": PARQUET, ".svm": SVMLIGHT, ".svmlight": SVMLIGHT,
             ".libsvm": SVMLIGHT}


def _collective(comm, replicate):
    """The communicator that combines data: None when every rank holds every row."""
    return None if replicate else comm


def _on_root(comm, work):
    """Run `work()` on rank 0, agree on failure, broadcast its result."""
    rank, _ = rank_and_size(comm)
    result, error = None, None
    if rank == 0:
        try:
            result = work()
        except Exception as err:   # noqa: BLE001 - every failure must reach every rank
            error = err
    agree(comm, error)
    return bcast_obj(comm, result)


def _locally(comm, work):
    """Run `work()` on every rank; if it fails anywhere, every rank raises the same error."""
    result, error = None, None
    try:
        result = work()
    except Exception as err:   # noqa: BLE001
        error = err
    agree(comm, error)
    return result


def resolve(path, comm):
    """The inputs a path names; the same on every rank."""
    return _locally(comm, lambda: resolve_inputs(path))


def detect_format(inputs):
    """'parquet', 'svmlight' or 'csv' from the first input's name or first bytes."""
    first = inputs[0]
    name = (first.member or first.path).lower()
    for suffix, fmt in _SUFFIXES.items():
        if name.endswith(suffix) or name.endswith(suffix + ".gz") or name.endswith(suffix + ".bz2"):
            return fmt
    head = read_head(first, 1 << 14)
    if head.startswith(parquet_format.PARQUET_MAGIC):
        return PARQUET
    if looks_like_svmlight(head):
        return SVMLIGHT
    return CSV


def read_columns(path, comm=None, replicate=False, format=None, **options):
    """Read any supported input into this rank's Columns (collective)."""
    inputs = resolve(path, comm)
    if format is None:
        format = _on_root(comm, lambda: detect_format(inputs))
    if format not in FORMATS:
        raise UserError(f"unknown format {format!r}: expected one of {', '.join(FORMATS)}")
    reader = {CSV: read_csv, SVMLIGHT: read_svmlight, PARQUET: read_parquet}[format]
    takes = inspect.signature(reader).parameters
    other = [k for k in options if k not in takes and options[k] is not None]   # (None: the default)
    options = {k: v for k, v in options.items() if k in takes}
    if other:   # e.g. sep for a Parquet file: one line, the same on every rank
        formats = [f for f in FORMATS if other[0] in _OPTIONS[f]]
        raise UserError(f"{other[0]}: an option for {' and '.join(formats)} input only; {inputs[0].name} is "
                        f"read as {format}" if formats else f"unknown read option {other[0]!r}")
    return reader(inputs, comm, replicate, **options)


# ------------------------------------------------------------------------------------- CSV

def _options_of(reader):
    return set(inspect.signature(reader).parameters) - {"inputs", "comm", "replicate"}


def read_csv(inputs, comm=None, replicate=False, sep=None, header=None, na_strings=None,
             col_types=None, default_na_strings=NA_STRINGS, quote_char='"', quoted_newlines=False,
             block_bytes=None, chunk_rows=DEFAULT_CHUNK_ROWS, max_levels=DEFAULT_MAX_LEVELS,
             use_threads=None, memory_pool=None):
    """CSV inputs (already resolved) into this rank's Columns (collective).  `na_strings`,
    `col_types`: H2O-3's parse options (parse_options.py); `default_na_strings`: the
    strings missing in every column without being named (an empty field among them)."""
    rank, size = rank_and_size(comm)
    na_spec, types_spec = check_na_strings(na_strings), check_col_types(col_types)
    dialect = CsvDialect(**_on_root(comm, lambda: dataclasses.asdict(sniff_csv(
        inputs, sep, header, tuple(default_na_strings), quote_char, quoted_newlines, na_spec, types_spec))))
    dialect.na_strings = tuple(dialect.na_strings)
    shard = plan_text_shard(inputs, rank, size, replicate, quoted_newlines)
    rows = max(1024, BLOCK_VALUES // max(len(dialect.names), 1))
    auto_block_bytes = int(min(max(rows * dialect.bytes_per_row, MIN_BLOCK_BYTES), MAX_BLOCK_BYTES))
    if block_bytes is None:
        # At least about 4 blocks per rank, so that small inputs are not parsed as one
        # whole-file block (InputFile.text_size estimates the text of compressed inputs).
        expected = sum(f.text_size() for f in inputs)
        block_bytes = min(auto_block_bytes, max(MIN_BLOCK_BYTES, expected // (4 * size)))
    use_threads = (size == 1) if use_threads is None else use_threads
    data_comm = _collective(comm, replicate)
    stats = IngestStats()
    state = ParseState()

    def read_shard(kinds):
        while True:
            builder = ChunkBuilder(dialect.names, kinds, max_levels)
            state.invalid = {}
            blocks = iter_blocks(shard, block_bytes, dialect.header, dialect.quote_char,
                                 dialect.quoted_newlines, dialect.sep)
            try:
                with contextlib.closing(blocks):
                    for block in blocks:
                        builder.add_table(parse_block(builder, block))
                return builder
            except NotNumeric as err:   # text in a column that holds numbers: read again
                kinds = list(builder.kinds)
                kinds[err.column] = CATEGORICAL

    def parse_block(builder, block):
        while True:
            try:
                table = parse_csv_block(block, dialect, builder.kinds, use_threads, memory_pool, state)
            except NotNumeric as err:   # only NA so far in that column: categorical in place
                if not builder.adopt(err.column, CATEGORICAL):
                    raise
                continue
            stats.text(block)
            block.data = None            # free the text before encoding the block
            return table

    builder = _locally(comm, lambda: read_shard(list(dialect.kinds)))
    while True:
        kinds = agree_kinds(data_comm, builder.kinds)
        stale = not all(builder.adopt(j, kind) for j, kind in enumerate(kinds))
        if not any_rank(data_comm, stale):
            break
        if stale:                       # numbers here, text elsewhere: read as text again
            builder = _locally(comm, lambda: read_shard(kinds))
        else:
            agree(comm, None)
    if NUMERIC in (dialect.forced or ()):
        warn_invalid(comm, data_comm, inputs, state.invalid)
    return _finish(builder, comm, data_comm, chunk_rows, max_levels, stats, shard.mode != "strided")


def warn_invalid(comm, data_comm, inputs, invalid):
    """Rank 0 warns, per column that col_types makes numeric, of the values that were not
    numbers and are NA (H2O-3 makes them NA without a word).  Collective over data_comm."""
    total = {}
    for part in allgather_obj(data_comm, invalid):
        for name, (count, example) in part.items():
            seen = total.setdefault(name, [0, example])
            seen[0] += count
    if rank_and_size(comm)[0] == 0:
        for name, (count, example) in total.items():
            warnings.warn(f"{inputs[0].name}: column {name!r}: {count} value(s) that are not numbers "
                          f"(e.g. {example!r}) read as NA, as col_types makes the column numeric "
                          f"(as H2O-3 does)", UserWarning, stacklevel=2)


class IngestStats:
    """The largest text block one rank's read held (bytes); with the builder's largest block
    (rows) it gives one read buffer: that text plus the block's values as float64."""

    def __init__(self):
        self.max_block_bytes = 0

    def text(self, block):
        self.max_block_bytes = max(self.max_block_bytes, len(block.data))


class Columns(list):
    """A rank's Columns, with `ingest`: a dict of IngestStats and block sizes."""
    ingest = None


def _finish(builder, comm, data_comm, chunk_rows, max_levels, stats=None, file_order=True):
    """file_order: the ranks' rows, rank after rank, are the inputs' rows in order (not so
    when the ranks parsed every size-th block of one stream in turn)."""
    domains = _locally(comm, lambda: global_domains(data_comm, builder, max_levels))
    columns = Columns(_locally(comm, lambda: build_columns(builder, domains, chunk_rows)))
    columns.ingest = {"blocks": builder.blocks, "block_rows": list(builder.block_rows),
                      "max_block_rows": builder.max_block_rows,
                      "max_block_bytes": stats.max_block_bytes if stats else None,
                      "file_order": bool(file_order)}
    return columns


# -------------------------------------------------------------------------------- SVMLight

def read_svmlight(inputs, comm=None, replicate=False, block_bytes=1 << 22,
                  chunk_rows=DEFAULT_CHUNK_ROWS, na_strings=None, col_types=None):
    """SVMLight inputs into Columns: 'target', then C<i> for each feature index i.
    SVMLight holds numbers only: `na_strings` has nothing to match (checked, then unused);
    `col_types` is refused."""
    check_na_strings(na_strings)
    if col_types is not None:
        raise UserError(f"col_types: not supported for SVMLight input ({inputs[0].name}), whose columns are "
                        f"all numeric; make the target categorical with frame['target'].asfactor()")
    rank, size = rank_and_size(comm)
    shard = plan_text_shard(inputs, rank, size, replicate)
    data_comm = _collective(comm, replicate)

    def read_shard():
        builder = ChunkBuilder(["target"], [NUMERIC])
        index_zero_seen = False
        blocks = iter_blocks(shard, block_bytes, header=False, quote_char=None)
        with contextlib.closing(blocks):
            for block in blocks:
                rows, columns = parse_svmlight_block(block)
                if rows:
                    builder.add_columns(rows, columns)
                    index_zero_seen = index_zero_seen or 1 in columns
        return builder, index_zero_seen

    builder, index_zero_seen = _locally(comm, read_shard)
    width = int(allreduce(data_comm, np.array([len(builder.chunks)], dtype=np.int64), "max")[0])
    builder.pad_columns(width)
    # Column 1 holds feature index 0; drop it when no rank's input uses index 0.
    seen = np.array([int(index_zero_seen)], dtype=np.int64)
    zero_based = width > 1 and bool(allreduce(data_comm, seen, "max")[0])
    builder.names = ["target"] + [f"C{s - 1}" for s in range(1, width)]
    if width > 1 and not zero_based:
        for attr in ("names", "kinds", "levels", "_known", "_valued", "chunks"):
            del getattr(builder, attr)[1]
    return _finish(builder, comm, data_comm, chunk_rows, None, file_order=shard.mode != "strided")


# --------------------------------------------------------------------------------- Parquet

def read_parquet(inputs, comm=None, replicate=False, batch_rows=None,
                 chunk_rows=DEFAULT_CHUNK_ROWS, max_levels=DEFAULT_MAX_LEVELS, na_strings=None,
                 col_types=None):
    """Parquet inputs into Columns; ranks share the row groups of all files.  `na_strings`
    apply to text columns, `col_types` convert numbers to levels or text to numbers."""
    rank, size = rank_and_size(comm)
    data_comm = _collective(comm, replicate)
    na_spec, types_spec = check_na_strings(na_strings), check_col_types(col_types)
    for f in inputs:
        if not f.splittable:
            raise UserError(f"{f.name}: Parquet files must not be wrapped in {f.compression}")

    def schema():
        names, kinds = parquet_format.schema_of(inputs[0])[:2]
        column_na, forced = resolve_columns(names, na_spec, types_spec, inputs[0].name)
        return names, [f or k for f, k in zip(forced, kinds)], column_na, NUMERIC in forced

    names, kinds, column_na, any_forced = _on_root(comm, schema)
    units = _locally(comm, lambda: [(i, g, rows) for i, f in enumerate(inputs)
                                    for g, rows in enumerate(parquet_format.row_groups(f))])
    mine = range(len(units)) if replicate else partition([u[2] for u in units], rank, size)
    batch_rows = batch_rows or max(1024, BLOCK_VALUES // max(len(names), 1))
    invalid = {}

    def read_shard():
        builder = ChunkBuilder(names, kinds, max_levels)
        by_file = {}
        for u in mine:
            by_file.setdefault(units[u][0], []).append(units[u][1])
        for i, groups in sorted(by_file.items()):
            for table in parquet_format.iter_tables(inputs[i], groups, names, kinds, batch_rows,
                                                    column_na, invalid):
                builder.add_table(table)
        return builder

    builder = _locally(comm, read_shard)
    if any_forced:
        warn_invalid(comm, data_comm, inputs, invalid)
    return _finish(builder, comm, data_comm, chunk_rows, max_levels)


# ------------------------------------------------------------------------------ in-memory

def columns_from_arrays(data, comm=None, replicate=False, chunk_rows=DEFAULT_CHUNK_ROWS):
    """Columns from {name: array}: numbers are numeric, strings (object/str arrays) categorical.

    Each rank passes its own rows (or, with replicate, all rows).  Collective.
    """
    names = list(data)
    arrays = []
    for name in names:
        values = np.asarray(data[name])
        if values.dtype.kind in "OUS":
            arrays.append(pa.array(values.tolist(), type=pa.string()).dictionary_encode())
        else:
            arrays.append(pa.array(values.astype(np.float64), from_pandas=True))
    lengths = {len(a) for a in arrays}
    agree(comm, UserError(f"columns have different lengths: {sorted(lengths)}")
          if len(lengths) > 1 else None)
    kinds = [CATEGORICAL if pa.types.is_dictionary(a.type) else NUMERIC for a in arrays]
    agreed = agree_kinds(_collective(comm, replicate), kinds)
    mismatch = [names[j] for j in range(len(names)) if agreed[j] != kinds[j]]
    agree(comm, UserError(f"columns {mismatch} are numbers here but text on another rank")
          if mismatch else None)
    builder = ChunkBuilder(names, kinds)
    n = lengths.pop() if lengths else 0
    for start in range(0, n, chunk_rows):
        builder.add_table(pa.table([a.slice(start, chunk_rows) for a in arrays], names=names))
    return _finish(builder, comm, _collective(comm, replicate), chunk_rows, None)


_OPTIONS = {CSV: _options_of(read_csv), SVMLIGHT: _options_of(read_svmlight), PARQUET: _options_of(read_parquet)}
