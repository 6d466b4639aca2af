"""H2O-3's rule for blanks around CSV fields, applied to a block of text before Arrow parses it.

H2O-3's CSV parser (water.parser.CsvParser, a byte state machine) treats spaces and tabs
(blanks; a tab only when it is not the separator, a space only when it is not) this way:

* blanks before a field are skipped (state WHITESPACE_BEFORE_TOKEN), quoted or not; so a
  field of blanks only is empty, i.e. NA (H2O adds an invalid value for it);
* a quote after those blanks opens a quoted field; blanks inside quotes are kept (a quoted
  field of blanks only is a value, not NA), and blanks after the closing quote, before the
  separator or the line end, are skipped (STRING_END);
* blanks after a number are skipped (NUMBER_END); blanks after unquoted text are kept: they
  belong to the value (STRING adds every byte up to the separator).

Arrow's CSV reader keeps every blank in a value (it trims numbers only), so `normalize_blanks`
deletes, in place, the blanks H2O skips: those before each field (outside quotes) and those
between a closing quote and the separator or line end.  Newlines are never deleted, so line
numbers in messages stay those of the file.  A block that holds no blank after a separator,
a line start or a quote is left as it is (a few substring searches decide that).

Quoted fields are found as Arrow finds them: a quote opens one only at the start of a field
(after the blanks), `""` inside is a quote, and without quoted newlines a field cannot run
past the end of its line; any other quote is an ordinary character.  Only quotes are
visited one by one (in Python), and only in blocks that need the rule and hold quotes.
"""
import numpy as np

SPACE, TAB, LF, CR = 0x20, 0x09, 0x0A, 0x0D
SLICE = 1 << 20           # bytes examined at a time (bounds the temporaries)


def blank_bytes(sep):
    """The bytes that are blanks for separator `sep`: space and tab, less the separator."""
    return tuple(b for b in (SPACE, TAB) if bytes([b]) != sep.encode())


def needs_normalizing(data, sep, quote_char=None):
    """True if the text holds a blank that H2O would skip (or may: one after a quote): a
    blank at the start, after a separator, a line end or a quote.  Text without blanks is
    told by a byte search (memchr); otherwise the bytes before each blank are looked at."""
    blanks = blank_bytes(sep)
    if not data or not any(data.find(bytes([b])) >= 0 for b in blanks):
        return False
    if data[0] in blanks:
        return True
    leads = [sep.encode()[0], LF, CR] + ([ord(quote_char)] if quote_char else [])
    view = np.frombuffer(data, dtype=np.uint8)
    for lo in range(0, len(view), SLICE):
        part = view[max(lo - 1, 0):lo + SLICE]
        blank = _blank(part[1:] if lo else part, blanks)
        before = part[:-1] if lo else np.concatenate(([0], part[:-1])).astype(np.uint8)
        if np.isin(before[blank], leads).any():
            return True
    return False


def _blank(part, blanks):
    found = part == blanks[0]
    for b in blanks[1:]:
        found |= part == b
    return found


def normalize_blanks(data, sep, quote_char=None, quoted_newlines=False):
    """`data` (a bytearray of whole records) without the blanks H2O-3 skips; changed in place
    and returned.  Deterministic per line, so every rank's shard gives the same values."""
    if not needs_normalizing(data, sep, quote_char):
        return data
    blanks = blank_bytes(sep)
    spans, trailing = [], []
    if quote_char and quote_char.encode() in data:
        spans, trailing = _quoted_spans(data, ord(quote_char), sep.encode()[0], blanks, quoted_newlines)
    view = np.frombuffer(data, dtype=np.uint8)
    inside = np.zeros(len(data) + 1, dtype=bool)
    if spans:                                 # [start, stop): a quoted field, quotes included
        edges = np.asarray(spans, dtype=np.int64).ravel()
        inside[edges] = True                  # (spans never touch: a field lies between)
        inside = np.logical_xor.accumulate(inside)
    inside = inside[:-1]
    delete = _leading_blanks(view, blanks, sep.encode()[0], inside)
    for start, stop in trailing:
        delete[start:stop] = True
    kept = view[~delete]                      # a copy: the view can go before the resize
    del view, inside, delete
    data[:len(kept)] = memoryview(kept)
    del data[len(kept):]
    return data


def _leading_blanks(view, blanks, sep, inside):
    """Bool mask of blanks outside quotes whose previous non-blank byte is a field boundary
    (a separator outside quotes, a line end, or the start of the block)."""
    delete = np.zeros(len(view), dtype=bool)
    carry = True                              # the block starts a field
    for lo in range(0, len(view), SLICE):
        part, quoted = view[lo:lo + SLICE], inside[lo:lo + SLICE]
        blank = _blank(part, blanks)
        boundary = ((part == sep) | (part == LF) | (part == CR)) & ~quoted
        mark = np.empty(len(part), dtype=bool)  # first blank after a boundary, then its run
        mark[0] = blank[0] and carry
        np.logical_and(blank[1:], boundary[:-1], out=mark[1:])
        for _ in range(8):                    # runs of a few blanks: a few shifts
            grown = mark[:-1] & blank[1:]
            if not (grown & ~mark[1:]).any():
                break
            mark[1:] |= grown
        else:                                 # long runs: the last non-blank byte before each
            last = np.where(~blank, np.arange(len(part), dtype=np.int32), -1)
            np.maximum.accumulate(last, out=last)
            mark = blank & np.where(last >= 0, boundary[np.maximum(last, 0)], carry)
        mark &= ~quoted
        delete[lo:lo + len(part)] = mark
        carry = bool(mark[-1] or boundary[-1])
    return delete


def _quoted_spans(data, quote, sep, blanks, quoted_newlines):
    """([start, stop) of each quoted field, quotes included], [[start, stop) of the blanks
    after a closing quote that H2O skips]), found as Arrow's parser finds quoted fields."""
    positions = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == quote).tolist()
    n, spans, trailing = len(data), [], []
    ends = (sep, LF, CR)
    i = 0
    while i < len(positions):
        p = positions[i]
        k = p - 1
        while k >= 0 and data[k] in blanks:
            k -= 1
        if k >= 0 and data[k] not in ends:    # a quote inside an unquoted field: a character
            i += 1
            continue
        j, close = i + 1, None
        while j < len(positions):
            c = positions[j]
            if c + 1 < n and data[c + 1] == quote:   # "" inside quotes: one quote
                j += 2
                continue
            close = c
            break
        if close is None or (not quoted_newlines and data.find(b"\n", p, close) >= 0):
            i += 1                            # unterminated on its line: Arrow ends it there
            continue
        spans.append((p, close + 1))
        m = close + 1
        while m < n and data[m] in blanks:
            m += 1
        if m > close + 1 and (m == n or data[m] in ends):
            trailing.append((close + 1, m))
        i = j + 1
    return spans, trailing
