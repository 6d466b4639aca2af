"""Fuzz targets of SVMLight input, the TOML config and grid files.

Target `svmlight`: random rows (`label index:value ...`, indices in any order, qid tokens,
comments, blank lines, blanks and CRLF), read with Frame.read(path) (format detected by the
.svm suffix) must equal the reference: one row per line holding tokens, column 'target'
(the label as Python's float() reads it), then C<i> for feature i from 0 to the largest
index (C0 left out when no row uses index 0), absent features 0.0, NaN as NA.  A line whose
token is not `index:value` must be refused with one UserError naming the file and line.

Target `svmlight_bytes`: damaged and random files, read as SVMLight: a frame or one
UserError naming the file.

Target `config`: random TOML documents (every train parameter, aliases, H2O-only ones and
unknown keys; values of every TOML type, strings the flags take, tables, arrays), and
damaged ones, loaded with h2odl_mpi.config.load: a dict of canonical parameter names whose
values have the parameter's type (which params.validate then takes or refuses with a
UserError), or one UserError naming the file.

Target `grid`: random grid files ([hyper_params] lists and ranges, [search_criteria] of
every criterion with values of any type), and damaged ones, loaded with
h2odl_mpi.workflows.search.grid_file.load: (fixed, hyper_params, criteria) checked, or one
UserError naming the file.
"""
import math

import numpy as np
from hypothesis import strategies as st

from fuzz_common import Failure, Target, compare_frame, from_text, refused, refused_on_line, to_text, write

# ------------------------------------------------------------------------------ SVMLight

SVM_NUMBERS = st.one_of(st.sampled_from(["0", "1", "-1", "+1", "0.5", "1e-3", "1E5", "inf", "-inf", "nan",
                                         "3.4028235e38", "1e400", "-0", ".5", "5.", "1_0", "00"]),
                        st.floats(allow_nan=False).map(repr), st.integers(-10 ** 6, 10 ** 6).map(str))


@st.composite
def svmlight_cases(draw):
    rows = []
    for _ in range(draw(st.integers(0, 12))):
        n = draw(st.integers(0, 6))
        indices = draw(st.lists(st.integers(0, 40), min_size=n, max_size=n, unique=True))
        rows.append({"label": draw(SVM_NUMBERS), "features": [[i, draw(SVM_NUMBERS)] for i in indices],
                     "qid": draw(st.sampled_from([None, None, "1", "7"])),
                     "comment": draw(st.sampled_from([None, None, "", " x:y # z", " 1:2"])),
                     "gap": draw(st.sampled_from([" ", " ", "\t", "  ", " \t "]))})
    bad = None
    if rows and draw(st.integers(0, 7)) == 0:
        bad = [draw(st.integers(0, len(rows) - 1)), draw(st.sampled_from(["x", "3", "1:", ":2", "a:1", "-1:2",
                                                                             "1:x", "1::2", "1.5:2"]))]
    return {"rows": rows, "bad": bad, "crlf": draw(st.booleans()), "final_eol": draw(st.booleans()),
            "blank_lines": draw(st.lists(st.integers(0, len(rows)), max_size=2))}


def render_svmlight(case):
    """(bytes, {row index: physical line})."""
    lines = []
    for i, r in enumerate(case["rows"]):
        tokens = [r["label"]] + ([f"qid:{r['qid']}"] if r["qid"] else []) + [f"{k}:{v}" for k, v in r["features"]]
        if case["bad"] and case["bad"][0] == i:
            tokens.insert(1, case["bad"][1])
        line = r["gap"].join(tokens) + (f" #{r['comment']}" if r["comment"] is not None else "")
        lines.append((line, i))
    for position in sorted(case["blank_lines"], reverse=True):
        lines.insert(position, ("# only a comment" if position % 2 else "", None))
    eol = "\r\n" if case["crlf"] else "\n"
    text, where = "", {}
    for k, (line, i) in enumerate(lines):
        if i is not None:
            where[i] = k + 1
        text += line + (eol if k < len(lines) - 1 or case["final_eol"] else "")
    return text.encode(), where


def expected_svmlight(case):
    rows = case["rows"]
    labels = np.array([float(r["label"]) for r in rows], dtype=np.float64)
    top = max((k for r in rows for k, _v in r["features"]), default=-1)
    uses_zero = any(k == 0 for r in rows for k, _v in r["features"])
    columns = [("target", "numeric", labels)]
    for k in range(0 if uses_zero else 1, top + 1):
        values = np.zeros(len(rows))
        for i, r in enumerate(rows):
            for index, v in r["features"]:
                if index == k:
                    values[i] = float(v)
        columns.append((f"C{k}", "numeric", values))
    return columns


def check_svmlight(case, workdir):
    from h2odl_mpi.data.frame import Frame
    data, where = render_svmlight(case)
    path = write(workdir, "data.svm", data)
    frame, error = refused(lambda: Frame.read(path), path)
    if case["bad"]:
        refused_on_line(error, where[case["bad"][0]], f"a bad token {case['bad'][1]!r}", frame)
    elif not case["rows"]:
        pass    # (no rows: an empty frame or a refusal, either is fine)
    elif error is not None:
        raise Failure(f"well-formed SVMLight refused: {error}")
    else:
        compare_frame(frame, expected_svmlight(case), "svmlight")


@st.composite
def damaged(draw, cases, render, size=300):
    """Random bytes, or a rendered case with a few bytes changed, inserted or cut."""
    if draw(st.integers(0, 3)) == 0:
        return bytearray(draw(st.binary(max_size=size)))
    data = bytearray(render(draw(cases)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["set", "insert", "cut"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.one_of(st.binary(min_size=1, max_size=4),
                                         st.sampled_from([b":", b"#", b"\n", b" ", b"\x00", b"9", b"\xff"])))
        else:
            del data[at:at + draw(st.integers(1, 8))]
    return data


def check_svmlight_bytes(case, workdir):
    from h2odl_mpi.data.frame import Frame
    path = write(workdir, "data.svm", from_text(case["data"]))
    refused(lambda: Frame.read(path, format="svmlight"), path)


# ------------------------------------------------------------------------------ TOML

def toml_value(v):
    """TOML text of a value (strings as basic strings, JSON's escapes, which TOML shares)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return _basic(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def _basic(s):
    out = []
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04X}")
        elif 0xD800 <= ord(c) <= 0xDFFF:
            out.append("?")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def toml_key(k):
    return k if k and all(c.isascii() and (c.isalnum() or c in "_-") for c in k) else _basic(k)


def render_toml(doc):
    lines, tables = [], []
    for k, v in doc.items():
        (tables if isinstance(v, dict) and k.startswith("[") else lines).append((k, v))
    text = "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in lines)
    for k, v in tables:
        text += f"\n{k}\n" + "".join(f"{toml_key(a)} = {toml_value(b)}\n" for a, b in v.items())
    return text.encode()


def _param_names():
    from h2odl_mpi import params as P
    return sorted(P.SPEC) + sorted(P.H2O_ONLY) + sorted(P.ALIASES)


SCALARS = st.one_of(st.booleans(), st.integers(-(2 ** 63), 2 ** 63 - 1), st.sampled_from([0, 1, 2, 3, -1, 100]),
                    st.floats(), st.sampled_from([0.0, 0.5, 1.0, 1e-6, 1e308, -0.0]),
                    st.text(max_size=8),
                    st.sampled_from(["", "1", "200,200", "true", "false", "1e6", "Tanh", "Rectifier", "AUTO",
                                     "100it", "10min", "x.csv", "1,2,x", "nan", "inf", "-1", "Cartesian",
                                     "RandomDiscrete", "Evolutionary", "Halving", "logloss", "0x10", " 3 "]))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.lists(st.lists(st.integers(0, 300), max_size=3),
                                                                    max_size=3),
                   st.dictionaries(st.sampled_from(["min", "max", "log", "x"]), SCALARS, max_size=3))


@st.composite
def config_docs(draw):
    keys = st.one_of(st.sampled_from(_param_names()), st.text(max_size=8))
    doc = draw(st.dictionaries(keys, VALUES, max_size=6))
    return {k: v for k, v in doc.items() if not k.startswith("[")}


@st.composite
def config_cases(draw):
    data = draw(st.one_of(config_docs().map(render_toml),
                          damaged(config_docs(), render_toml, 200)))
    return {"data": to_text(data)}


def check_config(case, workdir):
    from h2odl_mpi import config
    from h2odl_mpi import params as P
    path = write(workdir, "run.toml", from_text(case["data"]))
    out, _error = refused(lambda: config.load(path), path)
    if out is None:
        return
    if not isinstance(out, dict):
        raise Failure(f"config.load gave {type(out).__name__}, not a dict")
    for name, value in out.items():
        if name not in P.SPEC and name not in P.H2O_ONLY:
            raise Failure(f"config.load gave {name!r}, which is no parameter")
        typ = P.type_of(name)
        ok = (isinstance(value, bool) if typ is bool else
              isinstance(value, (int, float)) and not isinstance(value, bool) if typ is float else
              isinstance(value, int) and not isinstance(value, bool) if typ is int else
              isinstance(value, typ))
        if not ok:
            raise Failure(f"config.load gave {name} = {value!r}, not of its type {typ.__name__}")
    params = dict(out)
    params.setdefault("train", "x.csv")
    params.setdefault("response", "y")
    refused(lambda: P.validate(params), "")   # a dict or a UserError (of a parameter: it names no file)


# ------------------------------------------------------------------------------ grid files

@st.composite
def grid_docs(draw):
    from h2odl_mpi.workflows.search.grid_file import CRITERIA
    doc = draw(config_docs())
    hyper_keys = st.one_of(st.sampled_from(["hidden", "l1", "l2", "epochs", "rate", "rho", "epsilon", "activation",
                                            "adaptive_rate", "input_dropout_ratio", "seed", "train", "nthreads",
                                            "momentum_start", "mini_batch_size"]), st.sampled_from(_param_names()),
                           st.text(max_size=5))
    hyper_values = st.one_of(st.lists(SCALARS, max_size=4), st.lists(st.lists(st.integers(-1, 300), max_size=3),
                                                                     max_size=3),
                             st.fixed_dictionaries({"min": SCALARS, "max": SCALARS},
                                                   optional={"log": st.one_of(st.booleans(), SCALARS)}),
                             SCALARS)
    if draw(st.integers(0, 9)):
        doc["[hyper_params]"] = draw(st.dictionaries(hyper_keys, hyper_values, max_size=4))
    if draw(st.booleans()):
        crit_keys = st.one_of(st.sampled_from(sorted(CRITERIA)), st.text(max_size=5))
        doc["[search_criteria]"] = draw(st.dictionaries(crit_keys, SCALARS, max_size=5))
    return doc


@st.composite
def grid_cases(draw):
    data = draw(st.one_of(grid_docs().map(render_toml), damaged(grid_docs(), render_toml, 300)))
    return {"data": to_text(data)}


def check_grid(case, workdir):
    from h2odl_mpi.workflows.search import grid_file
    path = write(workdir, "grid.toml", from_text(case["data"]))
    out, _error = refused(lambda: grid_file.load(path), path)
    if out is None:
        return
    fixed, hyper, criteria = out
    if not isinstance(fixed, dict) or not isinstance(hyper, dict) or not hyper:
        raise Failure(f"grid_file.load gave {out!r}")
    if criteria.get("strategy") not in grid_file.STRATEGIES or set(criteria) != set(grid_file.CRITERIA):
        raise Failure(f"grid_file.load gave the criteria {criteria!r}")
    for name, values in hyper.items():
        if isinstance(values, list) and not values:
            raise Failure(f"hyper_params.{name} is an empty list")


TARGETS = [Target("svmlight", svmlight_cases(), check_svmlight, 50),
           Target("svmlight_bytes", damaged(svmlight_cases(), lambda c: render_svmlight(c)[0]).map(
               lambda d: {"data": to_text(d)}), check_svmlight_bytes, 50),
           Target("config", config_cases(), check_config, 60),
           Target("grid", grid_cases(), check_grid, 60)]
