"""`train --config run.toml`: train parameters from a TOML file.

The file is flat: each key is a train parameter under its H2O name (the flag's name,
h2odl_mpi.params.SPEC), each value a TOML value of the parameter's type or a string the flag
would accept:

    train = "data/train.csv.gz"      # paths are relative to the working directory
    response = "C785"
    hidden = [200, 200]              # or "200,200"
    epochs = 10
    adaptive_rate = true
    checkpoint_interval = "100it"

`load(path)` returns {name: value} ready for params.validate; flags given on the command line
override the file (cli._train_params).  Every mistake is a UserError naming the file, and the
key (with the closest known name for a typo) or the line of a TOML syntax error.  An H2O-3
parameter this version lacks (params.H2O_PARAMETERS: nthreads, sparsity_beta, ...) is taken
as its flag is: accepted when its value changes nothing here (train notes it), else refused
with the reason.  Only a regular file of at most 1 MiB is read (a device, a FIFO or a huge
file is refused, naming it).
"""
import os
import stat
import tomllib

from h2odl_mpi import params as P
from h2odl_mpi.errors import UserError

_LIST_ITEM = {"hidden": int, "hidden_dropout_ratios": float, "class_sampling_factors": float}
_TYPE_NAME = {str: "a string", int: "an integer", float: "a number", bool: "a boolean (true or false)"}
_PLURAL = {str: "strings", int: "integers", float: "numbers"}


MAX_BYTES = 1 << 20  # a config file holds parameters, not data: at most 1 MiB
def load(path):
    """The train parameters in the TOML file `path`: {H2O name: value of the parameter's type}."""
    return parameters(path, read_toml(path))


def read_toml(path):
    """The TOML document in file `path` as a dict (a bounded regular file; errors name it)."""
    text = _read_bounded(path)
    try:
        return tomllib.loads(text.decode("utf-8"))
    except tomllib.TOMLDecodeError as e:  # the message ends "(at line L, column C)"
        raise UserError(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not valid TOML: not UTF-8 text (byte {e.start})") from None


def parameters(path, doc):
    """{H2O name: value} of the top-level keys of TOML document `doc` (read from `path`)."""
    out = {}
    for key, value in doc.items():
        name = P.canonical(key)
        if name in out:
            raise UserError(f"{path}: {shown(key)} and {name} are the same parameter: give one")
        out[name] = value_of(path, name, value)
    return out


def _read_bounded(path):
    """The bytes of config file `path`: a regular file of at most MAX_BYTES.  A device, a
    FIFO, a socket or a directory is refused before it is opened for reading (and opened
    without blocking, should it change meanwhile), so nothing hangs or fills the memory."""
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise UserError(f"{path}: is a directory, not a config file")
        _check_regular(path, st)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
        with os.fdopen(fd, "rb") as f:
            _check_regular(path, os.fstat(f.fileno()))
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise UserError(f"{path}: no such config file") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read config file: {e.strerror or e}") from None
    if len(data) > MAX_BYTES:
        raise UserError(f"{path}: a config file may hold at most {MAX_BYTES} bytes (1 MiB); this one is larger")
    return data


def _check_regular(path, st):
    """UserError unless `st` (os.stat of `path`) is a regular file of at most MAX_BYTES."""
    if not stat.S_ISREG(st.st_mode):
        kind = ("a character device" if stat.S_ISCHR(st.st_mode) else "a block device" if stat.S_ISBLK(st.st_mode)
                else "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "not a regular file")
        raise UserError(f"{path}: is {kind}, not a regular config file")
    if st.st_size > MAX_BYTES:
        raise UserError(f"{path}: a config file may hold at most {MAX_BYTES} bytes (1 MiB); this one has "
                        f"{st.st_size}")


def shown(key):
    """A key as messages show it: as it is when it is a plain name, else quoted (repr), so
    that a key holding a newline or other odd characters keeps the message one line."""
    key = str(key)
    return key if key.replace("-", "_").isidentifier() and key.isascii() else repr(key)


def _unknown(path, key):
    near = P.closest(key)
    hint = f" (did you mean {near}?)" if near else ""
    return UserError(f"{path}: unknown parameter {key!r}{hint}")


def value_of(path, key, value):
    """`value` (from the TOML file `path`) as a value of train parameter `key`.  An H2O
    parameter SPEC lacks is refused as the flag is (`{path}: name: not supported in this
    version (why)`), but for a value that changes nothing here (params.check_implemented)."""
    value = _value_of(path, key, value)
    return P.check_implemented(key, value, f"{path}: ") if key in P.H2O_ONLY else value


def _value_of(path, key, value):
    if isinstance(value, dict):
        raise UserError(f"{path}: [{shown(key)}] is a table; the file takes train parameters at the top "
                        "level only, no sections")
    if key not in P.SPEC and key not in P.H2O_ONLY:
        raise _unknown(path, key)
    typ = P.type_of(key)
    if isinstance(value, str) and not (typ is str):
        try:
            return P.parse_value(key, value)  # as the flag reads it: "200,200", "true", "1e6"
        except UserError as e:
            raise UserError(f"{path}: {key}: {_strip_flag(key, e)}") from None
    if typ is list:
        item = _LIST_ITEM.get(key, str)
        if not isinstance(value, list) or not all(_is(item, v) for v in value):
            raise _wrong(path, key, value, f"an array of {_PLURAL[item]} (or a comma separated string)")
        return [item(v) for v in value]
    if typ is str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise _wrong(path, key, value, "a string")
        return value if isinstance(value, str) else str(value)  # e.g. checkpoint_interval = 600
    if not _is(typ, value):
        raise _wrong(path, key, value, _TYPE_NAME[typ])
    return typ(value) if typ in (int, float) else value   # (seed = 1.0: 1, as the flag; l1 = 0: 0.0)


def _is(typ, v):
    if isinstance(v, bool):
        return typ is bool
    if typ is float:
        return isinstance(v, (int, float))
    if typ is int:
        return isinstance(v, int) or (isinstance(v, float) and v.is_integer())
    return isinstance(v, typ)


def _wrong(path, key, value, expected):
    shown = "a table" if isinstance(value, dict) else repr(value)
    return UserError(f"{path}: {key} must be {expected}, got {shown}")


def _strip_flag(key, error):
    text = str(error)
    prefix = f"--{key}: "
    return text[len(prefix):] if text.startswith(prefix) else text
