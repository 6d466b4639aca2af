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
key (with the closest known name for a typo) or the line of a TOML syntax error.
"""
import tomllib

from h2odl_mpi import params as P
from h2odl_mpi.errors import UserError

_LIST_ITEM = {"hidden": int, "hidden_dropout_ratios": float, "class_sampling_factors": float}
_TYPE_NAME = {str: "a string", int: "an integer", float: "a number", bool: "a boolean (true or false)"}
_PLURAL = {str: "strings", int: "integers", float: "numbers"}


def load(path):
    """The train parameters in the TOML file `path`: {H2O name: value of the parameter's type}."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise UserError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a config file") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read config file: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:  # the message ends "(at line L, column C)"
        raise UserError(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not valid TOML: not UTF-8 text (byte {e.start})") from None
    out = {}
    for key, value in doc.items():
        name = P.canonical(key)
        if name in out:
            raise UserError(f"{path}: {key} and {name} are the same parameter: give one")
        out[name] = _value(path, name, value)
    return out


def _unknown(path, key):
    near = P.closest(key)
    hint = f" (did you mean {near}?)" if near else ""
    return UserError(f"{path}: unknown parameter {key!r}{hint}")


def _value(path, key, value):
    if isinstance(value, dict):
        raise UserError(f"{path}: [{key}] is a table; the file takes train parameters at the top "
                        "level only, no sections")
    if key in P.NOT_YET:
        raise UserError(f"{path}: {key}: not supported by this version of h2odl_mpi yet")
    if key not in P.SPEC:
        raise _unknown(path, key)
    typ = P.SPEC[key][0]
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
    return value


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
