"""CSV dialect detection and the parsing of one text block into an Arrow table.

`sniff_csv` looks at the first 64 KiB of the first non-empty input (rank 0 does this once):
separator (given, or the first of , TAB ; | space that splits every sampled line into the
same number of fields, more than one), header (given, or: the first line is all non-numeric
text and either some column below it holds numbers, or no first-line value recurs in its
column), column names (header, else H2O's C1..Cn) and a first guess of each column's kind:
numeric, categorical, or undecided when the sample holds only NA (such a column is read as
text and decided by the first block holding a value).

`parse_csv_block` hands one block of whole records to pyarrow.csv with the agreed column
types: float64 for numeric columns, dictionary<int32, string> for categorical ones.  A value
that is not a number in a numeric column raises NotNumeric (the caller makes the column
categorical and parses again); a row with the wrong number of fields raises a UserError that
names the file and line.
"""
import csv
import functools
import io
import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pacsv

from h2odl_mpi.errors import UserError
from h2odl_mpi.data.frame.column import CATEGORICAL, NUMERIC, UNDECIDED
from h2odl_mpi.data.frame.sharding import BOM
from h2odl_mpi.data.frame.sources import read_head

NA_STRINGS = ("", "NA", "NaN", "nan", "N/A", "?")
SEPARATOR_CANDIDATES = (",", "\t", ";", "|", " ")
SAMPLE_BYTES = 1 << 16
KIND_SAMPLE_BYTES = 1 << 14   # data lines of the sample that guess the column kinds
ARROW_MIN_PIECE, ARROW_MAX_PIECE = 1 << 16, 1 << 20   # bytes Arrow parses at a time
CATEGORY_TYPE = pa.dictionary(pa.int32(), pa.binary())   # levels need not be UTF-8
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


def sniff_csv(inputs, sep=None, header=None, na_strings=NA_STRINGS, quote_char='"',
              quoted_newlines=False):
    """Detect the dialect from the first non-empty input; UserError if all are empty."""
    for f in inputs:
        head = read_head(f, SAMPLE_BYTES + 1)
        if head.startswith(BOM):
            head = head[len(BOM):]
        if head.strip():
            break
    else:
        raise UserError(f"{inputs[0].name}: empty file (no header and no rows)"
                        if len(inputs) == 1 else f"{inputs[0].name} and the other "
                        f"{len(inputs) - 1} input(s) are all empty")
    complete = len(head) <= SAMPLE_BYTES
    sample = head if complete else head[:head.rfind(b"\n") + 1] or head[:SAMPLE_BYTES]
    text = sample.decode("utf-8", errors="replace")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    sep = sep if sep is not None else _detect_separator(lines, quote_char)
    if len(sep) != 1:
        raise UserError(f"separator must be a single character, not {sep!r}")
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=sep,
                           quotechar=quote_char or '"', quoting=csv.QUOTE_MINIMAL if quote_char else csv.QUOTE_NONE))
    width = len(rows[0])
    na = set(na_strings)
    if header is None:
        header = _looks_like_header(rows, na)
    names = _column_names(rows[0], width) if header else [f"C{j + 1}" for j in range(width)]
    data_rows = rows[1:] if header else rows
    # Kinds are a first guess (a column guessed numeric that holds text later becomes
    # categorical when a block is parsed), so the first KIND_SAMPLE_BYTES of data lines do.
    body = sample.split(b"\n", 1)[1] if header and b"\n" in sample else (b"" if header else sample)
    if len(body) > KIND_SAMPLE_BYTES:
        end = body.find(b"\n", KIND_SAMPLE_BYTES)
        body = body if end < 0 else body[:end + 1]
    body_text = body.decode("utf-8", errors="replace")
    data_rows = data_rows[:sum(1 for ln in body_text.splitlines() if ln.strip())]
    if _all_numbers(body_text, sep, width, na_strings, quote_char):
        kinds = [NUMERIC] * width        # every field of every sampled row is a number
    else:
        if all(len(r) == width for r in data_rows):
            columns = [set(c) for c in zip(*data_rows)] if data_rows else [set()] * width
        else:
            columns = [{r[j] for r in data_rows if j < len(r)} for j in range(width)]
        kinds = []
        for distinct in columns:        # each distinct value once
            values = [v for v in distinct if v.strip() not in na]
            kinds.append(UNDECIDED if not values else
                         NUMERIC if all(_is_number(v) for v in values) else CATEGORICAL)
    bytes_per_row = len(sample) / max(len(lines), 1)
    return CsvDialect(sep, bool(header), names, kinds, tuple(na_strings), quote_char,
                      quoted_newlines, bytes_per_row)


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
def _block_options(names, kinds, na_strings, use_threads, piece):
    """Read and convert options for blocks (built once per column-kind layout: with many
    columns, building them costs as much as parsing a small block)."""
    read_options = pacsv.ReadOptions(column_names=list(names), use_threads=use_threads,
                                     block_size=piece)
    convert_options = pacsv.ConvertOptions(
        column_types={name: (pa.float64() if kind == NUMERIC else CATEGORY_TYPE)   # undecided: text
                      for name, kind in zip(names, kinds)},
        null_values=list(na_strings), strings_can_be_null=True,
        quoted_strings_can_be_null=True)
    return read_options, convert_options


def parse_csv_block(block, dialect, kinds, use_threads=True, memory_pool=None):
    """Parse one TextBlock into a pyarrow Table with one column per dialect name."""
    invalid = []

    def on_invalid_row(row):
        invalid.append(row)
        return "error"

    # Arrow parses a block in pieces of block_size bytes (its temporaries are about twice a
    # piece): a quarter of the block, so that they stay small against the block itself.
    piece = min(max(len(block.data) // 4, ARROW_MIN_PIECE), ARROW_MAX_PIECE)
    read_options, convert_options = _block_options(tuple(dialect.names), tuple(kinds),
                                                   tuple(dialect.na_strings), bool(use_threads),
                                                   piece)
    parse_options = pacsv.ParseOptions(delimiter=dialect.sep,
                                       quote_char=dialect.quote_char or False,
                                       newlines_in_values=dialect.quoted_newlines,
                                       invalid_row_handler=on_invalid_row)
    try:
        return pacsv.read_csv(pa.py_buffer(block.data), read_options=read_options,
                              parse_options=parse_options, convert_options=convert_options,
                              memory_pool=memory_pool)
    except pa.ArrowInvalid as err:
        message = str(err)
        if invalid:
            row = invalid[0]
            line = _line_of_invalid_row(block, row)
            raise UserError(f"{block.source.name}, line {line}: expected {row.expected_columns} "
                            f"fields, found {row.actual_columns}: {row.text[:80]!r}") from err
        match = _CONVERSION_ERROR.search(message)
        if match:
            raise NotNumeric(int(match.group(1)), match.group(2)) from err
        raise UserError(f"{block.source.name}, lines from {block.start_line()}: cannot parse "
                        f"CSV: {message}") from err


def _line_of_invalid_row(block, row):
    if row.number is not None and row.number > 0:
        return block.line_of_row(row.number)
    text = row.text.encode("utf-8", errors="replace")
    position = 0
    while True:
        found = block.data.find(text, position)
        if found < 0:
            return block.start_line()
        if found == 0 or block.data[found - 1:found] == b"\n":
            return block.line_of_byte(found)
        position = found + 1
