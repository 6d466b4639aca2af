"""Fuzz targets of the CSV reader (Frame.read, format csv) and its generator of cases.

Target `csv`: a random table is rendered as CSV text (separator , TAB ; | or space; quote
" or ' or none; each field quoted or not, with blanks before and after it; numbers at the
float32 / float64 edges in several spellings; text in UTF-8 or Latin-1 bytes, with
separators, quotes, newlines (quoted, when the reader is told quoted_newlines) and
characters other line splitters see as line ends; NA strings, quoted or not; blank lines,
a byte-order mark, CRLF, no final newline; sometimes one ragged row), then read with
Frame.read(path, format="csv", sep=..., header=..., quote_char=..., quoted_newlines=...,
block_bytes=..., chunk_rows=...).  The property:

* a well-formed file reads as the reference: the fields Python's csv module reads (checked
  against the generator on every row without blanks around fields), with the rules the
  reader documents on top: H2O's blanks rule (blanks before a field and after a closing
  quote are skipped, blanks after unquoted text are kept, a field of blanks only is empty),
  a field equal to an NA string (NA_STRINGS) is NA quoted or not, a column is numeric iff
  every other value is a number as Python's float() reads ASCII text (inf, nan included;
  nan is NA), else categorical with each value's text as level (UTF-8, else Latin-1),
  domain sorted; an empty line (a one-column row of blanks) is no row;
* a file with a ragged row is refused with one UserError naming the file and the line;
* with `detect`, Frame.read(path) (format, separator and header detected) gives a frame or
  one UserError naming the file.

Target `csv_bytes`: random bytes, and well-formed files with random bytes changed,
inserted or cut, read with and without the dialect: a frame or one UserError naming the
file, nothing else.
"""
import csv
import io
import json
import math
import re

import numpy as np
from hypothesis import strategies as st

from fuzz_common import Failure, Target, compare_frame, from_text, refused, refused_on_line, to_text, write

SEPS = [",", "\t", ";", "|", " "]
NA_TOKENS = ["", "NA", "NaN", "nan", "N/A", "?"]
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)",
                    re.ASCII | re.IGNORECASE)
F32_MAX = float(np.finfo(np.float32).max)
EDGES = [0.0, -0.0, 1.0, -1.0, 0.1, 0.5, 1e-7, 123456789.0, F32_MAX, -F32_MAX,
         float(np.nextafter(np.float64(F32_MAX), np.inf)), 3.4028235677973366e38, 3.4028236e38,
         float(np.finfo(np.float32).tiny), 1.401298464324817e-45, 7e-46,
         float(np.finfo(np.float64).max), -float(np.finfo(np.float64).max), 2.2250738585072014e-308,
         5e-324, 2.0 ** 53, 2.0 ** 53 + 2, -(2.0 ** 53), 2.0 ** 63, 2.0 ** 64, 255.0, 256.0, 65535.0, 65536.0,
         4294967295.0, 4294967296.0, 1e15, 1e16, 0.123456789012, 1e300, 1e-300]
SPELLINGS = ["inf", "-inf", "Inf", "+Infinity", "INF", "-INFINITY", "1e400", "-1e400", "1e-400", "00012",
             "+1", ".5", "5.", "-.5e3", "1E+05", "0e0", "-0", "+0.0", "NAN", "-nan", "+NaN", "1e-45",
             "3.4028235e38", "3.4028236e38", "340282346638528859811704183484516925440",
             "179769313486231570814527423731704356798070567525844996598917476803157260780028538760589558632766878"
             "17154045895351438246423432132688946418276846754670353751698604991057655128207624549009038932894407"
             "586850845513394230458323690322294816580855933212334827479782620414472316873817718091929988125040"
             "40287.0", "9007199254740993", "0.1000000000000000055511151231257827"]
# characters that end lines for str.splitlines (not for CSV), quotes, blanks, NUL, non-ASCII
TRICKY = ["NA", "na", "N/A ", "?", "NULL", "null", "NaN ", " NA", "x,y", 'a"b', '"', "''", " lead", "trail ",
          "\t", "é", "日本", "\x00", "1.0", "1e5", "TRUE", "a\x1cb", "a\x85b", "a\u2028b", "a\x0bb", "a\x0cb",
          "\ufeff", "#", "a;b", "a|b", "a\tb", "a b", "1 2", "-", "+", ".", "e5", "1_000", "٣", "0x10"]
FIELD_TEXT = st.one_of(st.sampled_from(TRICKY),
                       st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6),
                       st.text("ab ,;|\t\"'\n\r\x00é", max_size=6))


def _formats(x):
    out = [repr(x), f"{x:.17g}", f"{x:.9g}", f"{x:e}", f"{x:.3f}" if math.isfinite(x) and abs(x) < 1e20 else repr(x)]
    if math.isfinite(x) and x == int(x) and abs(x) < 1e25:
        out.append(str(int(x)))
    return out


NUMBER_TEXT = st.one_of(
    st.builds(lambda x, i: _formats(x)[i % len(_formats(x))], st.sampled_from(EDGES), st.integers(0, 5)),
    st.builds(lambda x, i: _formats(x)[i % len(_formats(x))], st.floats(allow_nan=False), st.integers(0, 5)),
    st.builds(lambda x, i: _formats(x)[i % len(_formats(x))], st.floats(width=32, allow_nan=False),
              st.integers(0, 5)),
    st.integers(-(2 ** 70), 2 ** 70).map(str),
    st.builds(lambda m, s: f"{m / 10 ** s:.{s}f}" if s else str(m), st.integers(-10 ** 12, 10 ** 12),
              st.integers(0, 12)),
    st.sampled_from(SPELLINGS))


def blanks_of(sep):
    """The blank characters for separator `sep` (space and tab, less the separator)."""
    return "".join(b for b in " \t" if b != sep)


@st.composite
def _cell(draw, plan, sep, quote, quoted_newlines, p_na):
    if p_na and draw(st.integers(0, 99)) < p_na:
        s = draw(st.sampled_from(NA_TOKENS))
    elif plan == "bits":
        s = draw(st.sampled_from(["0", "1"]))
    elif plan == "int":
        s = str(draw(st.integers(-300, 300)))
    elif plan == "numeric":
        s = draw(NUMBER_TEXT)
    elif plan == "text":
        s = draw(FIELD_TEXT)
    else:
        s = draw(st.one_of(NUMBER_TEXT, FIELD_TEXT))
    if not quoted_newlines or not quote:
        s = s.replace("\r", "").replace("\n", "")
    enc = "l" if all(ord(c) < 256 for c in s) and draw(st.booleans()) else "u"
    blanks = blanks_of(sep)
    pads = [""] + [p for p in (" ", "\t", "  ", " \t") if all(c in blanks for c in p)]
    lpad, rpad = draw(st.sampled_from(pads)), draw(st.sampled_from(pads))
    start = (lpad + s).lstrip(blanks)
    must_quote = sep in s or "\n" in s or "\r" in s or (quote is not None and start.startswith(quote))
    if quote is None and must_quote:   # no quoting: the field cannot hold these
        s = s.replace(sep, "").replace("\n", "").replace("\r", "")
        must_quote = False
    quoted = quote is not None and (must_quote or draw(st.booleans()))
    return [s, enc, quoted, lpad, rpad]


@st.composite
def csv_cases(draw):
    sep = draw(st.sampled_from(SEPS))
    quote = draw(st.sampled_from(['"', '"', '"', "'", None]))
    quoted_newlines = quote is not None and draw(st.booleans())
    width = draw(st.integers(1, 5))
    n = draw(st.integers(0, 20))
    plans = [draw(st.sampled_from(["numeric", "int", "bits", "text", "mixed", "na"])) for _ in range(width)]
    p_na = draw(st.sampled_from([0, 0, 10, 50]))
    rows = [[draw(_cell("text" if p == "na" else p, sep, quote, quoted_newlines, 100 if p == "na" else p_na))
             for p in plans] for _ in range(n)]
    header = draw(st.booleans())
    names = None
    if header:
        bad = set(sep + "\r\n\"'")
        names = [draw(st.one_of(st.sampled_from(["a", "b", "a", "x y", " pad ", "", "Ä", "a\x85b", "a\u2028b",
                                                 "NA", "1", "C1"]),
                                st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=5)))
                 for _ in range(width)]
        names = ["".join(c for c in name if c not in bad) for name in names]
        if width == 1 and not names[0].strip(" \t"):
            names[0] = "v"
    ragged = None
    first = 0 if header else 1   # (without a header the first row gives the width)
    if n > first and draw(st.integers(0, 9)) == 0:
        ragged = [draw(st.integers(first, n - 1)), draw(st.sampled_from([1, -1] if width > 1 else [1]))]
        if not header:
            rows[0][0] = ["v", "u", False, "", ""]   # (a record: the row that gives the width)
    return _leading_feff_is_a_bom({"sep": sep, "quote": quote, "quoted_newlines": quoted_newlines, "header": header, "names": names,
            "rows": rows, "ragged": ragged, "bom": draw(st.integers(0, 5)) == 0,
            "crlf": draw(st.sampled_from([0, 0, 1, 2])),  # 1: every line, 2: some lines
            "final_eol": draw(st.integers(0, 4)) > 0,
            "blank_lines": draw(st.lists(st.tuples(st.integers(0, n + 1), st.sampled_from(["", " ", "\t", " \t "])),
                                         max_size=3)),
            "block_bytes": draw(st.sampled_from([None, None, 1, 16, 100, 1000])),
            "chunk_rows": draw(st.sampled_from([None, None, 1, 3, 64])),
            "detect": draw(st.integers(0, 3)) == 0})


def _leading_feff_is_a_bom(case):
    """A file whose first character is U+FEFF begins with a byte order mark, whatever the
    generator meant by it: such a case is rewritten as the BOM and the field without it."""
    if case["bom"] or any(position == 0 for position, _text in case["blank_lines"]):
        return case
    if case["header"]:
        names = case["names"]
        if names[0].startswith("\ufeff"):
            names[0] = names[0][1:] or ("v" if len(names) == 1 else "")
            case["bom"] = True
    elif case["rows"]:
        s, enc, quoted, lpad, rpad = case["rows"][0][0]
        if not quoted and not lpad and s.startswith("\ufeff"):
            case["rows"][0][0] = [s[1:], enc, quoted, lpad, rpad]
            case["bom"] = True
    return case


# ------------------------------------------------------------------------------ rendering

def _field(cell, sep, quote):
    s, _enc, quoted, lpad, rpad = cell
    body = quote + s.replace(quote, quote * 2) + quote if quoted else s
    return lpad + body + rpad


def _encode(text, enc):
    return text.encode("latin-1" if enc == "l" else "utf-8")


def render(case):
    """(file bytes, [physical line of each data row], width)."""
    sep, quote = case["sep"], case["quote"]
    rows = [list(r) for r in case["rows"]]
    width = len(case["names"]) if case["names"] else (len(rows[0]) if rows else 1)
    if case["ragged"]:
        i, delta = case["ragged"]
        row = [["r", "u", False, "", ""]] + rows[i][1:]
        rows[i] = row[:-1] if delta < 0 else row + [["r", "u", False, "", ""]]
    lines = []   # (bytes of the line without its end, data row index or None)
    if case["header"]:
        lines.append((sep.join(case["names"]).encode(), None))
    for i, row in enumerate(rows):
        lines.append((sep.encode().join(_encode(_field(c, sep, quote), c[1]) for c in row), i))
    blanks = blanks_of(sep)
    for position, text in sorted(case["blank_lines"], reverse=True):
        lines.insert(min(position, len(lines)), ("".join(c for c in text if c in blanks).encode(), None))
    out, line_no, row_lines = bytearray(b"\xef\xbb\xbf" if case["bom"] else b""), 1, {}
    for k, (text, row) in enumerate(lines):
        if row is not None:
            row_lines[row] = line_no
        out += text
        line_no += text.count(b"\n")
        last = k == len(lines) - 1
        if not last or case["final_eol"]:
            out += b"\r\n" if case["crlf"] == 1 or (case["crlf"] == 2 and k % 2) else b"\n"
            line_no += 1
    return bytes(out), row_lines, width


# ------------------------------------------------------------------------------ reference

def level_text(raw):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def cell_value(cell, sep):
    """The field's bytes after H2O's blanks rule, and whether it was quoted."""
    s, enc, quoted, lpad, rpad = cell
    if quoted:
        return _encode(s, enc), True
    return _encode((lpad + s + rpad).lstrip(blanks_of(sep)), enc), False


def column_names(names, width):
    if names is None:
        return [f"C{j + 1}" for j in range(width)]
    out, seen = [], set()
    for j, raw in enumerate(names):
        name = raw.strip() or f"C{j + 1}"
        base, k = name, 2
        while name in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name)
        out.append(name)
    return out


def kept_rows(case, width):
    """The rows that are records: a one-column row of blanks only is an empty line."""
    return [r for r in case["rows"] if not (width == 1 and not r[0][2] and not cell_value(r[0], case["sep"])[0])]


def expected_columns(case, width):
    """[(name, kind, values)] the file holds by the documented rules."""
    sep = case["sep"]
    na = {t.encode() for t in NA_TOKENS}
    rows = kept_rows(case, width)
    out = []
    for j, name in enumerate(column_names(case["names"], width)):
        values = [cell_value(r[j], sep)[0] for r in rows]
        present = [v for v in values if v not in na]
        numeric = all(NUMBER.fullmatch(v.strip(b" \t").decode("latin-1")) for v in present)
        if numeric:
            numbers = [math.nan if v in na else float(v.strip(b" \t")) for v in values]
            out.append((name, "numeric", np.array(numbers, dtype=np.float64)))
        else:
            out.append((name, "categorical", [None if v in na else level_text(v) for v in values]))
    return out


def csv_module_check(case, data):
    """The generator against Python's csv module: on a file whose fields have no blanks
    around them, csv.reader (same separator and quote) reads exactly the rendered fields."""
    if case["ragged"] or case["quote"] is None:
        return
    if any(c[3] or c[4] for r in case["rows"] for c in r) or any(t for _p, t in case["blank_lines"]):
        return
    text = data.decode("latin-1").removeprefix("\xef\xbb\xbf")
    read = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=case["sep"], quotechar=case["quote"],
                                  doublequote=True, strict=True) if r]
    want = ([case["names"]] if case["header"] else []) + [
        [_encode(c[0], c[1]).decode("latin-1") for c in r] for r in case["rows"]]
    width = len(want[0]) if want else 0
    want = [r for r in want if not (width == 1 and r == [""])]
    read = [r for r in read if not (width == 1 and r == [""])]
    if case["header"]:
        read[0] = [n.encode("latin-1").decode("utf-8") for n in read[0]]
    if read != want:
        raise Failure(f"generator: csv module reads {read[:3]!r}, rendered {want[:3]!r}")


def check_csv(case, workdir):
    from h2odl_mpi.data.frame import Frame
    case = _leading_feff_is_a_bom(json.loads(json.dumps(case)))   # (a corpus case may predate the rule)
    data, row_lines, width = render(case)
    path = write(workdir, "data.csv", data)
    csv_module_check(case, data)
    options = {"format": "csv", "sep": case["sep"], "header": case["header"], "quote_char": case["quote"],
               "quoted_newlines": case["quoted_newlines"]}
    for key in ("block_bytes", "chunk_rows"):
        if case[key]:
            options[key] = case[key]
    frame, error = refused(lambda: Frame.read(path, **options), path)
    if case["ragged"]:
        refused_on_line(error, row_lines[case["ragged"][0]], "a ragged row", frame)
    elif not case["header"] and not kept_rows(case, width):
        if error is None:
            raise Failure(f"a file without a header or rows was read: {frame}")
    else:
        if error is not None:
            raise Failure(f"well-formed CSV refused: {error}")
        compare_frame(frame, expected_columns(case, width), "csv")
    if case["detect"]:
        refused(lambda: Frame.read(path), path)


# ------------------------------------------------------------------------------ raw bytes

@st.composite
def csv_byte_cases(draw):
    kind = draw(st.sampled_from(["random", "damaged", "damaged"]))
    if kind == "random":
        data = draw(st.binary(max_size=300))
        options = {}
    else:
        case = draw(csv_cases())
        data = bytearray(render(case)[0])
        for _ in range(draw(st.integers(1, 4))):
            op = draw(st.sampled_from(["set", "insert", "cut"]))
            at = draw(st.integers(0, max(len(data) - 1, 0)))
            if op == "set" and data:
                data[at] = draw(st.integers(0, 255))
            elif op == "insert":
                data[at:at] = draw(st.binary(min_size=1, max_size=4))
            else:
                del data[at:at + draw(st.integers(1, 8))]
        options = {"sep": case["sep"], "header": case["header"], "quote_char": case["quote"],
                   "quoted_newlines": case["quoted_newlines"]} if draw(st.booleans()) else {}
        if case["block_bytes"] and options:
            options["block_bytes"] = case["block_bytes"]
    return {"data": to_text(data), "options": options, "suffix": draw(st.sampled_from([".csv", ".txt", ""]))}


def check_csv_bytes(case, workdir):
    from h2odl_mpi.data.frame import Frame
    path = write(workdir, "input" + case["suffix"], from_text(case["data"]))
    refused(lambda: Frame.read(path, format="csv", **case["options"]), path)
    if not case["options"]:
        refused(lambda: Frame.read(path), path)


TARGETS = [Target("csv", csv_cases(), check_csv, 80),
           Target("csv_bytes", csv_byte_cases(), check_csv_bytes, 60)]
