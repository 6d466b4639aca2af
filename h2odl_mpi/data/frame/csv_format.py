"""CSV dialect detection and the parsing of one text block into an Arrow table.

`sniff_csv` looks at the first 64 KiB of the first non-empty input (rank 0 does this once):
separator (given, or the first of , TAB ; | space that splits every sampled line into the
same number of fields, more than one), header (given, or: the first line is all non-numeric
text and either some column below it holds numbers, or no first-line value recurs in its
column), column names (header, else H2O's C1..Cn) and a first guess of each column's kind:
numeric, categorical, or undecided when the sample holds only NA (such a column is read as
text and decided by the first block holding a value).

`parse_csv_block` first deletes the blanks H2O-3 skips around fields (blanks.py), then hands
the block of whole records to pyarrow.csv with the agreed column types: float64 for numeric
columns, dictionary<int32, binary> for categorical ones.  A value that is not a number in a
numeric column raises NotNumeric (the caller makes the column categorical and parses again),
except in a column that col_types makes numeric: there it is NA, as in H2O-3, and counted
(ParseState).  NA strings given for some columns only (parse_options) are matched after
parsing: such a column is parsed as text, its NA strings are dropped from the levels, and a
numeric one is then converted to numbers.  A row with the wrong number of fields raises a
UserError that names the file and line.
"""
import csv
import functools
import io
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from h2odl_mpi.errors import UserError
from h2odl_mpi.data.frame.blanks import normalize_blanks
from h2odl_mpi.data.frame.builder import level_text
from h2odl_mpi.data.frame.column import CATEGORICAL, NUMERIC, UNDECIDED
from h2odl_mpi.data.frame.parse_options import resolve
from h2odl_mpi.data.frame.sharding import BOM, blank_line, header_end
from h2odl_mpi.data.frame.sources import read_head

NA_STRINGS = ("", "NA", "NaN", "nan", "N/A", "?")
SEPARATOR_CANDIDATES = (",", "\t", ";", "|", " ")
SAMPLE_BYTES = 1 << 16
KIND_SAMPLE_BYTES = 1 << 14   # data lines of the sample that guess the column kinds
ARROW_MIN_PIECE, ARROW_MAX_PIECE = 1 << 16, 1 << 20   # bytes Arrow parses at a time
CATEGORY_TYPE = pa.dictionary(pa.int32(), pa.binary())   # levels need not be UTF-8
_WRONG_WIDTH = re.compile(r"Expected (\d+) columns, got (\d+)")
_CONVERSION_ERROR = re.compile(
    r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to \w+: invalid value '(.*)'", re.S)


class NotNumeric(Exception):
    """A numeric column met a value that is not a number."""

    def __init__(self, column, value):
        super().__init__(f"column #{column}: {value!r} is not a number")
        self.column, self.value = column, value


@dataclass
class CsvDialect:
    """How to parse the CSV inputs: agreed on rank 0 and broadcast."""
    sep: str
    header: bool
    names: list
    kinds: list                   # first guess per column: NUMERIC or CATEGORICAL
    na_strings: tuple = NA_STRINGS
    quote_char: str = '"'
    quoted_newlines: bool = False
    bytes_per_row: float = 100.0  # in the sample, to size read blocks
    column_na: list = None        # per column: NA strings of that column only (parse_options)
    forced: list = None           # per column: the kind col_types gives it, or None


class ParseState:
    """One rank's parsing of one input: the columns col_types makes numeric that met text
    (parsed as text from then on) and, per column name, [values made NA, first such value]."""

    def __init__(self):
        self.coerce = set()
        self.invalid = {}


def sniff_csv(inputs, sep=None, header=None, na_strings=NA_STRINGS, quote_char='"',
              quoted_newlines=False, na_spec=None, types_spec=None):
    """Detect the dialect from the first non-empty input; UserError if all are empty.
    `na_spec` / `types_spec`: checked na_strings / col_types (parse_options), resolved here
    against the column names (NA strings of every column join `na_strings`)."""
    blanks = blank_line(sep if sep is not None and len(sep) == 1 else None)
    for f in inputs:
        head = read_head(f, SAMPLE_BYTES + 1)
        if head.startswith(BOM):
            head = head[len(BOM):]
        if head.strip(blanks + b"\n"):   # (a line of blanks only is no record)
            break
    else:
        raise UserError(f"{inputs[0].name}: empty file (no header and no rows)"
                        if len(inputs) == 1 else f"{inputs[0].name} and the other "
                        f"{len(inputs) - 1} input(s) are all empty")
    complete = len(head) <= SAMPLE_BYTES
    sample = head if complete else head[:head.rfind(b"\n") + 1] or head[:SAMPLE_BYTES]
    text = sample.decode("utf-8", errors="replace")
    lines = record_lines(text, blanks)
    sep = sep if sep is not None else _detect_separator(lines, quote_char)
    if len(sep) != 1:
        raise UserError(f"separator must be a single character, not {sep!r}")
    # the sample as the blocks are parsed, without the blanks H2O skips (blanks.py): else a
    # blank before a quoted number makes its column look like text, which it then stays
    sample = bytes(normalize_blanks(bytearray(sample), sep, quote_char or None, quoted_newlines))
    blanks = blank_line(sep)
    lines = record_lines(sample.decode("utf-8", errors="replace"), blanks)
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=sep, skipinitialspace=sep != " ",
                           quotechar=quote_char or '"', quoting=csv.QUOTE_MINIMAL if quote_char else csv.QUOTE_NONE))
    width = len(rows[0])
    na = set(na_strings)
    if header is None:
        header = _looks_like_header(rows, na)
    names = _column_names(rows[0], width) if header else [f"C{j + 1}" for j in range(width)]
    column_na, forced = resolve(names, na_spec, types_spec, inputs[0].name)
    common = column_na[0] if all(c == column_na[0] for c in column_na) else ()
    na_strings = tuple(dict.fromkeys(tuple(na_strings) + common))
    column_na = [tuple(s for s in c if s not in na_strings) for c in column_na]
    column_na = column_na if any(column_na) else None
    na = set(na_strings)
    data_rows = rows[1:] if header else rows
    # Kinds are a first guess (a column guessed numeric that holds text later becomes
    # categorical when a block is parsed), so the first KIND_SAMPLE_BYTES of data lines do.
    end = header_end(sample, 0, blanks) if header else 0
    body = b"" if end is None else sample[end:]
    if len(body) > KIND_SAMPLE_BYTES:
        end = body.find(b"\n", KIND_SAMPLE_BYTES)
        body = body if end < 0 else body[:end + 1]
    body_text = body.decode("utf-8", errors="replace")
    data_rows = data_rows[:len(record_lines(body_text, blanks))]
    every_na = set(na_strings).union(*(column_na or []))
    if _all_numbers(body_text, sep, width, tuple(every_na), quote_char):
        kinds = [NUMERIC] * width        # every field of every sampled row is a number
    else:
        if all(len(r) == width for r in data_rows):
            columns = [set(c) for c in zip(*data_rows)] if data_rows else [set()] * width
        else:
            columns = [{r[j] for r in data_rows if j < len(r)} for j in range(width)]
        kinds = []
        for j, distinct in enumerate(columns):   # each distinct value once
            missing = na.union(column_na[j]) if column_na else na
            values = [v for v in distinct if v.strip() not in missing]
            kinds.append(UNDECIDED if not values else
                         NUMERIC if all(_is_number(v) for v in values) else CATEGORICAL)
    kinds = [f or k for f, k in zip(forced, kinds)]
    bytes_per_row = len(sample) / max(len(lines), 1)
    return CsvDialect(sep, bool(header), names, kinds, tuple(na_strings), quote_char,
                      quoted_newlines, bytes_per_row, column_na, forced)


# A number as Python's float() reads it (a subset of its syntax: no underscores, no other
# whitespace).  Atomic groups and possessive quantifiers: a failing match never backtracks.
_NUMBER = (r"(?>[+-]?+(?:\d++(?:\.\d*+)?+(?:[eE][+-]?+\d++)?+|\.\d++(?:[eE][+-]?+\d++)?+"
           r"|(?i:inf(?:inity)?+)))")
_PADDED_NUMBER = r"(?>[ \t]*+" + _NUMBER + r"[ \t]*+)"


def _all_numbers(body, sep, width, na_strings, quote_char):
    """True if the sample's data lines (blank lines aside) all have `width` fields and every
    field is a number that Python's float() reads (a conservative subset of its syntax), and
    no NA string looks like such a number.  One regular expression over the whole text: the
    common case of a numeric file costs no work per value."""
    if not body.strip() or (quote_char and quote_char in body):
        return False
    number = re.compile(_PADDED_NUMBER)
    if any(number.fullmatch(na) for na in na_strings):
        return False
    field = _NUMBER if sep in " \t" else _PADDED_NUMBER
    line = f"{field}(?:{re.escape(sep)}{field}){{{width - 1}}}" if width > 1 else field
    return re.fullmatch(f"(?:(?:{line})?+\\r?+\\n)*+(?:{line})?+", body) is not None


_LINE_END = re.compile(r"\r\n|\n|\r")
_LINES_LF = re.compile(r"[^\n]*\n|[^\n]+$")


def record_lines(text, blanks=b" \t\r"):
    """The lines of `text` that hold a record, split where the CSV parser ends lines (LF,
    CRLF, CR; not at the other line ends of str.splitlines, such as \x85 or \u2028, which
    are ordinary characters in a field); a line of `blanks` only (sharding.blank_line: the
    block reader skips such lines before the header alike) holds none."""
    blanks = blanks.decode()
    return [ln for ln in _LINE_END.split(text) if ln.strip(blanks)]


def _detect_separator(lines, quote_char):
    best, best_score = ",", (0, 0)
    for candidate in SEPARATOR_CANDIDATES:
        counts = [len(r) for r in csv.reader(lines[:200], delimiter=candidate,
                                              quotechar=quote_char or '"')]
        if not counts or max(counts) < 2:
            continue
        consistent = all(c == counts[0] for c in counts)
        score = (1 if consistent else 0, sum(c == counts[0] for c in counts) if consistent else 0)
        if score > best_score:
            best, best_score = candidate, score
        if consistent:
            return candidate
    return best


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _looks_like_header(rows, na):
    first = [v.strip() for v in rows[0]]
    if not all(v and v not in na and not _is_number(v) for v in first):
        return False
    rest = rows[1:]
    if not rest:
        return True
    for j, name in enumerate(first):
        if any(_is_number(r[j].strip()) for r in rest if j < len(r)):
            return True
    return all(name not in {r[j].strip() for r in rest if j < len(r)} for j, name in enumerate(first))


def _column_names(fields, width):
    names, seen = [], set()
    for j, raw in enumerate(fields[:width]):
        name = raw.strip() or f"C{j + 1}"
        base, k = name, 2
        while name in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name)
        names.append(name)
    return names


@functools.lru_cache(maxsize=16)
def _block_options(names, kinds, as_text, na_strings, use_threads, piece):
    """Read and convert options for blocks (built once per column-kind layout: with many
    columns, building them costs as much as parsing a small block).  Columns in `as_text`
    are read as text whatever their kind (numeric ones are converted after parsing)."""
    read_options = pacsv.ReadOptions(column_names=list(names), use_threads=use_threads,
                                     block_size=piece)
    convert_options = pacsv.ConvertOptions(
        column_types={name: (pa.float64() if kind == NUMERIC and j not in as_text else CATEGORY_TYPE)
                      for j, (name, kind) in enumerate(zip(names, kinds))},   # undecided: text
        null_values=list(na_strings), strings_can_be_null=True,
        quoted_strings_can_be_null=True)
    return read_options, convert_options


def parse_csv_block(block, dialect, kinds, use_threads=True, memory_pool=None, state=None):
    """Parse one TextBlock into a pyarrow Table with one column per dialect name (the blanks
    H2O-3 skips deleted from the block first).  `state`: this read's ParseState."""
    state = state if state is not None else ParseState()
    if not block.blanks_done:
        normalize_blanks(block.data, dialect.sep, dialect.quote_char or None, dialect.quoted_newlines)
        block.blanks_done = True
    if not block.data.strip(b"\r\n"):   # blank lines only: no record (Arrow: "Empty CSV file")
        return pa.table([pa.array([], pa.float64()) for _ in dialect.names], names=list(dialect.names))
    column_na = dialect.column_na or [()] * len(dialect.names)
    forced = dialect.forced or [None] * len(dialect.names)
    while True:
        as_text = frozenset(j for j, k in enumerate(kinds)
                            if k == NUMERIC and (column_na[j] or j in state.coerce))
        try:
            table = _parse(block, dialect, kinds, as_text, use_threads, memory_pool)
        except NotNumeric as err:
            if forced[err.column] != NUMERIC or err.column in state.coerce:
                raise
            state.coerce.add(err.column)   # col_types numeric: text is NA (as H2O), parse as text
            continue
        return _column_options(table, dialect.names, kinds, as_text, column_na, forced, state)


def _parse(block, dialect, kinds, as_text, use_threads, memory_pool):
    # Arrow parses a block in pieces of block_size bytes (its temporaries are about twice a
    # piece): a quarter of the block, so that they stay small against the block itself.
    piece = min(max(len(block.data) // 4, ARROW_MIN_PIECE), ARROW_MAX_PIECE)
    read_options, convert_options = _block_options(tuple(dialect.names), tuple(kinds), as_text,
                                                   tuple(dialect.na_strings), bool(use_threads),
                                                   piece)
    parse_options = pacsv.ParseOptions(delimiter=dialect.sep,
                                       quote_char=dialect.quote_char or False,
                                       newlines_in_values=dialect.quoted_newlines)
    data = block.data
    if data.startswith(BOM):   # Arrow drops a BOM that starts its input: here it is a value's
        data = b"\n" + data    # (an empty line first, which Arrow skips, keeps it)
    try:
        return pacsv.read_csv(pa.py_buffer(data), read_options=read_options,
                              parse_options=parse_options, convert_options=convert_options,
                              memory_pool=memory_pool)
    except pa.ArrowInvalid as err:
        message = str(err)
        width = _WRONG_WIDTH.search(message)
        if width:
            # (found here, not with Arrow's invalid_row_handler: Arrow decodes the row as
            # UTF-8 before it calls the handler, and fails silently on a Latin-1 row)
            line, text = _wrong_width_record(block, dialect, int(width.group(1)))
            raise UserError(f"{block.source.name}, line {line}: expected {width.group(1)} fields, found "
                            f"{width.group(2)}: {text[:80]!r}") from err
        match = _CONVERSION_ERROR.search(message)
        if match:
            raise NotNumeric(int(match.group(1)), match.group(2)) from err
        raise UserError(f"{block.source.name}, lines from {block.start_line()}: cannot parse "
                        f"CSV: {' '.join(message.split())[:300]}") from err


def _wrong_width_record(block, dialect, expected):
    """(line, text) of the first record of a block whose number of fields is not `expected`
    (error path only: the block is read again with Python's csv module)."""
    quote = dialect.quote_char
    lines = _LINES_LF.findall(bytes(block.data).decode("latin-1"))   # (lines end at LF, as counted)
    reader = csv.reader(lines, delimiter=dialect.sep, quotechar=quote or '"',
                        quoting=csv.QUOTE_MINIMAL if quote else csv.QUOTE_NONE)
    before = 0
    try:
        for fields in reader:
            first, before = before + 1, reader.line_num
            if fields and len(fields) != expected:
                text = level_text(dialect.sep.join(fields).encode("latin-1"))
                return block.start_line() + first - 1, text
    except csv.Error:
        pass
    return block.start_line(), ""


def _column_options(table, names, kinds, as_text, column_na, forced, state):
    """The table with each column's own NA strings made NA (and dropped from its levels) and
    the numeric columns read as text converted to float64."""
    changed = {}
    for j in range(len(names)):
        if not column_na[j] and j not in as_text:
            continue
        column = table.column(j)
        if column_na[j]:
            column = drop_levels(column, column_na[j])
        if j in as_text:
            column, bad, example = text_to_numbers(column)
            if bad:
                if forced[j] != NUMERIC:
                    raise NotNumeric(j, example)
                seen = state.invalid.setdefault(names[j], [0, example])
                seen[0] += bad
        changed[j] = column
    if not changed:
        return table
    columns = [changed.get(j, table.column(j)) for j in range(len(names))]
    del table
    return pa.table(columns, names=list(names))


def drop_levels(chunked, strings):
    """A dictionary (or string) column with the values equal to `strings` made NA and dropped
    from each chunk's dictionary (so that they never become levels)."""
    drop = pa.array([s.encode() for s in strings], type=pa.binary())
    chunks = []
    for array in chunked.chunks:
        if not pa.types.is_dictionary(array.type):
            array = array.dictionary_encode()
        dictionary = array.dictionary
        if not pa.types.is_binary(dictionary.type):
            dictionary = pc.cast(dictionary, pa.binary())
        hit = pc.is_in(dictionary, value_set=drop).to_numpy(zero_copy_only=False)
        if hit.any():
            keep = ~hit
            remap = pa.array(np.cumsum(keep, dtype=np.int32) - 1, mask=hit)
            array = pa.DictionaryArray.from_arrays(pc.take(remap, array.indices),
                                                   dictionary.filter(pa.array(keep)))
        chunks.append(array)
    return pa.chunked_array(chunks, type=CATEGORY_TYPE) if chunks else chunked


def text_to_numbers(chunked):
    """(float64 column, values that are not numbers, the first of them) of a text column:
    blanks trimmed, numbers as Arrow reads them (inf, 1e400: infinity; NaN: NA); a value
    that is not a number is NA."""
    out, bad, example = [], 0, None
    for array in chunked.chunks:
        if not pa.types.is_dictionary(array.type):
            array = array.dictionary_encode()
        values, invalid = _numbers(array.dictionary)
        if invalid is not None:
            rows = pc.take(pa.array(invalid), array.indices)
            n_bad = pc.sum(rows).as_py() or 0
            if n_bad:
                bad += n_bad
                if example is None:
                    example = level_text(array.dictionary[int(np.flatnonzero(invalid)[0])].as_py())
        out.append(pc.take(values, array.indices))
    return pa.chunked_array(out, type=pa.float64()), bad, example


def _numbers(dictionary):
    """(float64 values, None or a bool mask of the entries that are not numbers)."""
    try:
        text = pc.utf8_trim_whitespace(pc.cast(dictionary, pa.string()))
        values = pc.cast(text, pa.float64())
        invalid = None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        numbers, invalid = [], np.zeros(len(dictionary), dtype=bool)
        for i, raw in enumerate(dictionary.to_pylist()):
            try:
                text = level_text(raw)
                numbers.append(None if "_" in text else float(text))
            except ValueError:
                numbers.append(None)
            invalid[i] = numbers[-1] is None
        values = pa.array(numbers, type=pa.float64())
    return pc.if_else(pc.is_nan(values), pa.scalar(None, pa.float64()), values), invalid
