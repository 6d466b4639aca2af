"""Which part of the input each rank reads, and the blocks of whole text records it yields.

Three ways to share text inputs among `size` ranks (`plan_text_shard`):

* byte ranges: when every input is an uncompressed file, the inputs are laid end to end
  and rank r takes bytes [r*T/size, (r+1)*T/size) of that total.  Each cut is moved forward
  to the next line start, computed identically by the two ranks that share it, so no row is
  split, lost or read twice.  A cut can land inside a quoted field that contains a newline;
  byte ranges are therefore only used when the reader is told values hold no newlines.
* whole files: compressed inputs cannot be split; with at least as many inputs as ranks,
  each rank takes a contiguous run of inputs balanced by size.
* strided stream: fewer unsplittable inputs than ranks (one .gz file, or quoted newlines):
  every rank decompresses every input but parses only blocks b with b % size == rank.
  Decompression is repeated, parsing (the expensive part) is not.

Replicated reading, or one rank, streams everything.  Blocks are cut at record ends: the
last newline of the buffer, or with `quoted_newlines` the last newline outside quotes.  Each
block carries its source and position, so an error names the file and line.
"""
from dataclasses import dataclass, field

import numpy as np

from h2odl_mpi.errors import UserError
from h2odl_mpi.data.frame.sources import DECOMPRESSION_ERRORS

BOM = b"\xef\xbb\xbf"
_ALIGN_READ = 1 << 16
_READ_PIECE = 1 << 20


@dataclass
class TextBlock:
    """Whole records read from one input."""
    data: bytearray           # None once the consumer has parsed it
    source: object            # InputFile
    offset: int               # position of data[0] in the decompressed input
    first_line: int = None    # 1-based line number of data[0]; None until asked for
    blanks_done: bool = False # the blanks H2O-3 skips are deleted (csv_format)

    def start_line(self):
        if self.first_line is None:
            self.first_line = _count_lines_before(self.source, self.offset) + 1
        return self.first_line


@dataclass
class TextShard:
    """What one rank reads: byte ranges, or inputs streamed with a block filter."""
    mode: str                                   # "ranges", "files", "strided" or "all"
    ranges: list = field(default_factory=list)  # (InputFile, start, stop) in input bytes
    inputs: list = field(default_factory=list)  # inputs streamed
    stride: int = 1                             # keep block b if b % stride == phase
    phase: int = 0


def partition(weights, rank, size):
    """Indices of the items rank `rank` gets when items are cut into `size` contiguous runs
    of about equal total weight (an item goes to the rank holding its weight's midpoint)."""
    weights = np.asarray(weights, dtype=np.float64)
    n = weights.size
    total = weights.sum()
    if n == 0:
        return []
    if total <= 0:
        owner = np.arange(n) * size // n
    else:
        mid = np.cumsum(weights) - weights / 2
        owner = np.minimum((mid * size / total).astype(np.int64), size - 1)
    return [int(i) for i in np.flatnonzero(owner == rank)]


def plan_text_shard(inputs, rank, size, replicate, quoted_newlines=False):
    """The TextShard of `rank` among `size` ranks (see the module docstring)."""
    if replicate or size == 1:
        return TextShard("all", inputs=list(inputs))
    if all(f.splittable for f in inputs) and not quoted_newlines:
        total = sum(f.size for f in inputs)
        lo, hi = rank * total // size, (rank + 1) * total // size
        ranges, start = [], 0
        for f in inputs:
            a, b = max(lo, start), min(hi, start + f.size)
            if a < b:
                ranges.append((f, a - start, b - start))
            start += f.size
        return TextShard("ranges", ranges=ranges)
    if len(inputs) >= size:
        mine = partition([max(f.size, 1) for f in inputs], rank, size)
        return TextShard("files", inputs=[inputs[i] for i in mine])
    return TextShard("strided", inputs=list(inputs), stride=size, phase=rank)


def iter_blocks(shard, block_bytes, header, quote_char='"', quoted_newlines=False, sep=None):
    """Yield the TextBlocks of a shard, in input order.

    `header`: skip each input's first line that is not blank (blanks: space and tab, less
    the separator `sep`).  A byte-order mark at an input's start is dropped.
    """
    header = blank_line(sep) if header else None
    cutter = _quote_aware_cut(quote_char, sep) if quoted_newlines else _last_newline_cut
    if shard.mode == "ranges":
        for f, start, stop in shard.ranges:
            yield from _range_blocks(f, start, stop, block_bytes, header, cutter)
        return
    if shard.stride == 1:     # every block of every input: plain files are read as ranges
        for f in shard.inputs:
            if f.splittable:
                yield from _range_blocks(f, 0, f.size, block_bytes, header, cutter)
            else:
                yield from _stream_blocks(f, block_bytes, header, cutter)
        return
    counter = 0
    for f in shard.inputs:
        for block in _stream_blocks(f, block_bytes, header, cutter):
            if counter % shard.stride == shard.phase:
                yield block
            counter += 1


def _last_newline_cut(buffer):
    return buffer.rfind(b"\n") + 1


def _quote_aware_cut(quote_char, sep=None):
    """The cut of a buffer after its last newline outside quoted fields, found as Arrow
    finds quoted fields (a quote opens one only at a field's start, after blanks; "" inside
    is a quote; any other quote is a character).  When every quote is at a field's start or
    end, the parity of the quotes before a newline says it (vectorised); else the quotes are
    visited one by one (a quote inside an unquoted field, such as 5" screen, would make the
    parity cut a block inside a quoted field)."""
    quote = ord(quote_char) if quote_char else None
    sep_byte = ord(sep or ",")
    blanks = set(blank_line(sep)[1:])
    bounds = np.array([sep_byte, 10, 13], dtype=np.uint8)

    def cut(buffer):
        data = np.frombuffer(buffer, dtype=np.uint8)
        newline = data == 10
        if quote is None:
            ends = np.flatnonzero(newline)
        else:
            is_quote = data == quote
            odd = (np.cumsum(is_quote) & 1).astype(bool)
            where = np.flatnonzero(is_quote)
            opening, closing = where[odd[where]], where[~odd[where]]
            before = data[np.maximum(opening - 1, 0)]
            after = data[np.minimum(closing + 1, len(data) - 1)]
            parity_holds = (((opening == 0) | np.isin(before, bounds) | (before == quote)).all()
                            and ((closing == len(data) - 1) | np.isin(after, bounds) | (after == quote)).all())
            if parity_holds:
                ends = np.flatnonzero(newline & ~odd)
            else:
                ends = _newlines_outside_quotes(buffer, np.flatnonzero(newline), where.tolist(), quote, sep_byte,
                                                blanks)
        return int(ends[-1]) + 1 if ends.size else 0
    return cut


def _newlines_outside_quotes(data, newlines, quotes, quote, sep, blanks):
    """The positions of `newlines` (ascending) outside the quoted fields of `data` (quotes:
    the positions of the quote byte), the quotes visited one by one; a quoted field still
    open at the end (or whose last quote may be the first of "") runs to the end."""
    n, starts, stops = len(data), [], []
    i = 0
    while i < len(quotes):
        p = quotes[i]
        k = p - 1
        while k >= 0 and data[k] in blanks:
            k -= 1
        if k >= 0 and data[k] not in (sep, 10, 13):   # inside an unquoted field: a character
            i += 1
            continue
        j, close = i + 1, None
        while j < len(quotes):
            c = quotes[j]
            if c + 1 < n and data[c + 1] == quote:        # "": a quote
                j += 2
                continue
            close = c if c + 1 < n else None
            break
        starts.append(p)
        stops.append(n if close is None else close)
        if close is None:
            break
        i = j + 1
    if not starts:
        return newlines
    at = np.searchsorted(np.asarray(starts), newlines, side="right") - 1
    inside = (at >= 0) & (newlines < np.asarray(stops)[np.maximum(at, 0)])
    return newlines[~inside]


def blank_line(sep=None):
    """The bytes a blank line holds, for separator `sep`: CR and the blanks (space and tab,
    less the separator).  Such a line is no record (csv_format's sniffer skips it too)."""
    return b"\r" + b"".join(b for b in (b" ", b"\t") if b != (sep or "").encode())


def header_end(buffer, start=0, blanks=b" \t\r"):
    """The position after the header line of text `buffer` (from `start`): the first line
    that is not blank (holding only `blanks`); None if it does not end in `buffer`."""
    while True:
        end = buffer.find(b"\n", start)
        if end < 0:
            return None
        blank = not buffer[start:end].strip(blanks)
        start = end + 1
        if not blank:
            return start


def _skip_preamble(buffer, at_input_start, header):
    """Bytes to skip at an input's start: a byte-order mark, then, with a header (`header`:
    the bytes of a blank line, see blank_line), the blank lines before it and the header
    line; None when the header line does not end in `buffer`."""
    if not at_input_start:
        return 0
    skip = len(BOM) if buffer.startswith(BOM) else 0
    return header_end(buffer, skip, header) if header else skip


def _range_blocks(f, start, stop, block_bytes, header, cutter):
    with f.open() as fh:
        start, stop = _record_start(fh, start, f.size), _record_start(fh, stop, f.size)
        if start >= stop:
            return
        fh.seek(start)
        yield from _cut_blocks(fh, f, stop - start, block_bytes, header if start == 0 else None, cutter,
                               position=start, at_start=start == 0)


def _record_start(fh, position, size):
    """First record start at or after `position` (a line start or the end of the file)."""
    if position <= 0:
        return 0
    if position >= size:
        return size
    fh.seek(position - 1)
    scanned = position - 1
    while True:
        piece = fh.read(_ALIGN_READ)
        if not piece:
            return size
        newline = piece.find(b"\n")
        if newline >= 0:
            return scanned + newline + 1
        scanned += len(piece)


def _stream_blocks(f, block_bytes, header, cutter):
    progress = [0]
    try:
        with f.open() as stream:
            yield from _cut_blocks(stream, f, None, block_bytes, header, cutter, position=0,
                                   at_start=True, progress=progress)
    except DECOMPRESSION_ERRORS as err:
        try:      # error path only: count the lines of the text passed (read it again)
            lines = _count_lines_before(f, progress[0])
        except DECOMPRESSION_ERRORS:
            lines = "?"
        raise UserError(f"{f.name}: corrupt or truncated {f.compression} data after line "
                        f"{lines}: {err}") from err


def _cut_blocks(stream, f, remaining, block_bytes, header, cutter, position, at_start,
                progress=None):
    """Read `remaining` bytes (None: to the end) of `stream` as TextBlocks of whole records.

    A block is a bytearray of about `block_bytes`, allocated once and filled in place
    (readinto), so one block of text is held at a time; the consumer may drop `block.data`
    once parsed.  `progress`, a one-element list, is kept at the input offset of the text
    not yet yielded.  Line numbers are not counted here: a block finds its first line only
    when an error message asks for it.
    """
    carry = b""
    while True:
        target = block_bytes if len(carry) < block_bytes // 2 else len(carry) + block_bytes
        if remaining is not None and remaining - (target - len(carry)) <= block_bytes // 4:
            target = len(carry) + remaining  # a short tail joins this block
        buffer = bytearray(target)
        buffer[:len(carry)] = carry
        filled, eof = len(carry), False
        carry = None
        with memoryview(buffer) as view:
            while filled < target:
                want = min(_READ_PIECE, target - filled)
                if remaining is not None:
                    want = min(want, remaining)
                    if want <= 0:
                        eof = True
                        break
                got = stream.readinto(view[filled:filled + want])
                if not got:
                    if remaining is not None:
                        raise UserError(f"{f.name}: file shrank while being read")
                    eof = True
                    break
                filled += got
                if remaining is not None:
                    remaining -= got
        if remaining is not None and remaining <= 0:
            eof = True
        del buffer[filled:]
        if at_start:
            skip = _skip_preamble(buffer, True, header)
            if not eof and (skip is None or (len(buffer) < len(BOM) and BOM.startswith(buffer))):
                carry = bytes(buffer)        # a header (or a BOM) longer than a block: read on
                continue
            skip = len(buffer) if skip is None else skip   # (at the end: a header only)
            del buffer[:skip]
            position, at_start = position + skip, False
        cut = len(buffer) if eof else cutter(buffer)
        if cut == 0 and not eof:
            carry = bytes(buffer)            # a record longer than the block: read on
            continue
        carry = bytes(buffer[cut:])
        del buffer[cut:]
        if progress is not None:
            progress[0] = position
        if buffer:
            block = TextBlock(buffer, f, position)
            position += cut
            buffer = None
            yield block
        if progress is not None:
            progress[0] = position
        if eof:
            return


def _count_lines_before(f, offset):
    """Newlines in the first `offset` decompressed bytes of an input (error path only)."""
    count = 0
    with f.open() as stream:
        remaining = offset
        while remaining > 0:
            piece = stream.read(min(remaining, 1 << 22))
            if not piece:
                break
            count += piece.count(b"\n")
            remaining -= len(piece)
    return count
