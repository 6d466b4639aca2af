"""H2O-3's MOJO container as both directions need it: the Deep Learning MOJO's constants,
model.ini's value syntax (Java's `key = value` with `[a, b]` arrays, `true`/`false`, `null`),
and the mapping between this program's input layout and the MOJO's.

A MOJO is a zip holding `model.ini` (sections [info], [columns], [domains]) and one
`domains/dNNN.txt` per categorical column (its levels, one a line).  The network's inputs in
a Deep Learning MOJO are H2O's DataInfo layout: the categorical columns' one-hot blocks first
(`cat_offsets`, the last unit of each block is where a missing or unseen level goes), then
the numeric columns, each `(v - norm_sub) * norm_mul`, a missing number becoming 0.  Here the
numeric-valued inputs come first and the one-hot blocks after them (docs/preprocessing.md):
`input_permutation` gives, for each MOJO input, this program's input unit.
docs/mojo.md describes both directions.
"""
import math

import numpy as np

MOJO_VERSION = "1.10"          # hex.deeplearning.DeepLearningMojoWriter.mojoVersion()
H2O_VERSION = "3.46.0.11"      # the H2O-3 release whose MOJOs these are written as
ZIP_MAGIC = b"PK\x03\x04"


def is_mojo(data):
    """Whether bytes `data` (a file's start is enough) are a zip, the container of a MOJO."""
    return bytes(data[:4]) == ZIP_MAGIC


# --------------------------------------------------------------------- model.ini values

def ini_value(v):
    """The text of one model.ini value as H2O's ModelMojoWriter.writekv writes it."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple, np.ndarray)):
        return "[" + ", ".join(ini_value(x) for x in (v.tolist() if isinstance(v, np.ndarray) else v)) + "]"
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return "NaN" if math.isnan(f) else ("Infinity" if f > 0 else "-Infinity") if math.isinf(f) else repr(f)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return str(v)


def parse_ini(text):
    """model.ini as ({info key: raw text}, [columns], {column index: (count, domain file)})."""
    info, columns, domains, section = {}, [], {}, None
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        if s.startswith("[") and s.endswith("]") and "=" not in s:
            section = s[1:-1]
            continue
        if section == "info" and "=" in s:
            key, _, value = s.partition("=")
            info[key.strip()] = value.strip()
        elif section == "columns":
            columns.append(line.rstrip("\r\n"))
        elif section == "domains":
            index, _, rest = s.partition(":")
            count, _, name = rest.strip().partition(" ")
            domains[int(index)] = (int(count), name.strip())
    return info, columns, domains


def parse_value(text):
    """One model.ini value: None, a bool, a number, a list of numbers, or the text itself."""
    t = text.strip()
    if t == "null":
        return None
    if t in ("true", "false"):
        return t == "true"
    if t.startswith("[") and t.endswith("]"):
        inner = t[1:-1].strip()
        return [] if not inner else [_number(x) for x in inner.split(",")]
    try:
        return _number(t)
    except ValueError:
        return t


def _number(text):
    t = text.strip()
    special = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
    if t in special:
        return special[t]
    try:
        return int(t)
    except ValueError:
        return float(t)


# --------------------------------------------------------------------- the input layout

def mojo_columns(info):
    """(categorical columns, numeric columns) of a data description in the MOJO's order:
    each group in this program's column order."""
    cats = [c for c in info.columns if c.kind == "onehot"]
    nums = [c for c in info.columns if c.kind == "numeric"]
    return cats, nums


def cat_offsets(cats):
    """The MOJO's cat_offsets of one-hot columns: where each block starts, then the end."""
    offsets = [0]
    for c in cats:
        offsets.append(offsets[-1] + c.width)
    return offsets


def input_permutation(info):
    """For each MOJO input unit (one-hot blocks, then numbers), this program's input unit."""
    cats, nums = mojo_columns(info)
    perm = [c.input + k for c in cats for k in range(c.width)]
    perm += [c.input for c in nums]
    return np.array(perm, dtype=np.int64)


def maxout_to_mojo(w, channels=2):
    """A Maxout layer's weights, rows channel-major here (unit u's channel k is row
    channels*u + k), as genmodel's flat order: index channels*(u*inputs + j) + k."""
    rows, inputs = w.shape
    units = rows // channels
    return w.reshape(units, channels, inputs).transpose(0, 2, 1).reshape(-1)


def maxout_from_mojo(flat, units, inputs, channels=2):
    """maxout_to_mojo's inverse: (channels*units, inputs) rows from genmodel's flat order."""
    return np.asarray(flat).reshape(units, inputs, channels).transpose(0, 2, 1).reshape(units * channels, inputs)
