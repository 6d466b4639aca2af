"""What every fuzz target shares: the Target record, the Failure it raises, and reading a
file the way the property asks (a result, or one UserError naming the file).

Not a script: fuzz/run.py (the long run) and tests/test_fuzz_readers.py (the short run and
the corpus replay) import it.  A target is

    Target(name, strategy, check, examples)

`strategy`: a hypothesis strategy giving a *case*, a JSON-able dict (bytes travel as
latin-1 text, see `to_text`), so that a failing case is written to fuzz/corpus/<name>/ as
it is and replayed by the tests; `check(case, workdir)` writes the case's files into
`workdir` (an empty directory) and raises Failure when the property does not hold (any
other exception escaping it is a failure as well); `examples`: hypothesis examples in the
short run of the test suite.
"""
import base64
import os
from dataclasses import dataclass

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


class Failure(AssertionError):
    """The property of a target does not hold for a case."""


@dataclass
class Target:
    name: str
    strategy: object
    check: object
    examples: int = 20


def to_text(data):
    """Bytes as JSON-able text (base64)."""
    return base64.b64encode(bytes(data)).decode("ascii")


def from_text(text):
    return base64.b64decode(text.encode("ascii"))


def write(workdir, name, data):
    path = os.path.join(workdir, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def refused_on_line(error, line, what, read):
    """A Failure unless `error` (refused()'s message, None when the file was read) names
    `line`, where the input put `what` (a bad line: "a ragged row", "a bad token 'x'")."""
    if error is None:
        raise Failure(f"{what} on line {line} was read: {read}")
    if f"line {line}" not in error:
        raise Failure(f"{what} is on line {line}; the error says: {error}")


def refused(call, path):
    """(result, None) of call(), or (None, message) of the UserError it raised, which must
    name `path` on one line; any other exception propagates (the property forbids it)."""
    from h2odl_mpi.errors import UserError
    try:
        return call(), None
    except UserError as e:
        message = str(e)
        if str(path) not in message:
            raise Failure(f"UserError does not name the file {path}: {message!r}") from e
        if "\n" in message.strip():
            raise Failure(f"UserError is not one line: {message!r}") from e
        return None, message


def frame_values(frame):
    """{name: ("numeric", float64 array) or ("categorical", [str or None])} of a Frame."""
    from h2odl_mpi.data.frame import CATEGORICAL
    out = {}
    for column in frame.columns:
        values = column.decode()
        if column.kind == CATEGORICAL:
            domain = column.domain
            out[column.name] = ("categorical", [None if np.isnan(v) else domain[int(v)] for v in values])
        else:
            out[column.name] = ("numeric", values)
    return out


def same_numbers(a, b):
    """Equal float64 arrays bit for bit, any NaN equal to any NaN (NaN is NA)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return False
    na = np.isnan(a)
    return bool(np.array_equal(na, np.isnan(b)) and np.array_equal(a[~na].view(np.uint64), b[~na].view(np.uint64)))


def compare_frame(frame, expected, what):
    """Failure unless the Frame holds `expected`: [(name, kind, values)] in order (values:
    float64 for numeric, [str or None] for categorical); categorical domains must be the
    sorted distinct values."""
    got = frame_values(frame)
    names = [n for n, _k, _v in expected]
    if list(got) != names:
        raise Failure(f"{what}: columns {list(got)}, expected {names}")
    for name, kind, values in expected:
        got_kind, got_values = got[name]
        if got_kind != kind:
            raise Failure(f"{what}: column {name!r} is {got_kind}, expected {kind} ({_short(values)})")
        if kind == "numeric":
            if not same_numbers(got_values, values):
                raise Failure(f"{what}: column {name!r}: {_diff(got_values, values)}")
        else:
            if got_values != list(values):
                raise Failure(f"{what}: column {name!r}: {_diff(got_values, values)}")
            domain = frame.column(name).domain
            want = sorted({v for v in values if v is not None})
            if domain != want:
                raise Failure(f"{what}: column {name!r}: domain {_short(domain)}, expected {_short(want)}")
    if frame.n_rows != (len(expected[0][2]) if expected else frame.n_rows):
        raise Failure(f"{what}: {frame.n_rows} rows, expected {len(expected[0][2])}")


def _short(values, n=8):
    values = list(values)
    return repr(values[:n]) + (f" ... ({len(values)})" if len(values) > n else "")


def _diff(got, want):
    got, want = list(got), list(want)
    if len(got) != len(want):
        return f"{len(got)} rows, expected {len(want)}: got {_short(got)}, expected {_short(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        gn = isinstance(g, float) and np.isnan(g)
        wn = isinstance(w, float) and np.isnan(w)
        if gn and wn:
            continue
        if isinstance(g, float) and isinstance(w, float):
            if np.float64(g).view(np.uint64) == np.float64(w).view(np.uint64):
                continue
        elif g == w:
            continue
        return f"row {i}: got {g!r}, expected {w!r}"
    return "differ"
