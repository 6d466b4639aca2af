"""`python -m h2odl_mpi report MODEL.h5 -o report.html`: a model file as one HTML page.

The page holds the model (kind, response, network, training samples), the scoring history
(the main metric of the training and the validation data against epochs and against time:
logloss for classification, RMSE for regression, MSE for an autoencoder), the confusion
matrix of the final model (validation data, else training data; only when the model file has
the final metrics), the variable importances (the 20 largest), the layer summary (H2O's
"Status of Neuron Layers") and every parameter.  Plots are PNG images drawn by matplotlib,
inlined as base64 data: the page is self-contained (no other file, nothing fetched).  The
page is written atomically (atomic.write_bytes); the output is checked before anything is
drawn (not the model file, not a directory, in a writable directory).

matplotlib is an optional extra (requirements-report.txt): without it the command says in
one line how to install it and exits with status 2.
"""
import base64
import html
import io
import json
import os

from h2odl_mpi.model import model_summary
from h2odl_mpi.atomic import write_bytes
from h2odl_mpi.errors import UserError

FIGSIZE = (6.4, 4.0)   # inches; at DPI the PNGs are 640 x 400 pixels
DPI = 100
TOP_VARIABLES = 20
INSTALL = "python -m pip install -r requirements-report.txt (matplotlib)"
MAIN_METRIC = {"classification": "logloss", "regression": "rmse", "autoencoder": "mse"}


def add_arguments(parser):
    parser.add_argument("model", help="model file (HDF5) written by train --model_out or a checkpoint")
    parser.add_argument("-o", "--out", required=True, help="the HTML page to write")
    return parser


def pyplot():
    """matplotlib's pyplot on the Agg backend, or a UserError saying how to install it."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError(f"report needs matplotlib, which is not installed: {INSTALL}") from None
    return plt


def run(ns):
    """The command: check the output, read the model, write the page.  Exit status 0."""
    from h2odl_mpi.evaluation.predict import check_output
    plt = pyplot()
    check_output(ns.out, [("model", ns.model)], "--out")
    page = render(ns.model, plt)
    try:
        write_bytes(ns.out, page.encode())
    except OSError as e:
        raise UserError(f"--out {ns.out}: cannot write: {e.strerror or e}") from None
    print(f"report written to {ns.out}")
    return 0


def render(path, plt=None):
    """The HTML page of the model file at `path`."""
    from h2odl_mpi.model.model_io import load_model
    plt = plt or pyplot()
    network, model, info, params, attrs = load_model(path)
    history = attrs.get("history") or []
    rows = attrs.get("model_summary") or model_summary.table(network, model, params, attrs.get("training_samples", 0))
    parts = [_head(os.path.basename(path)),
             f"<h1>{_e(os.path.basename(path))}</h1>",
             f"<p>{_e(model_summary.title(info, attrs.get('training_samples', 0), network))}; "
             f"network {_e('-'.join(map(str, network.units)))}, {float(attrs.get('epochs', 0)):.4g} epochs, "
             f"h2odl_mpi {_e(str(attrs.get('software_version', '?')))}</p>"]
    parts += _history_section(plt, history, info.kind)
    parts += _confusion_section(plt, attrs.get("metrics") or {}, info)
    parts += _varimp_section(plt, attrs.get("variable_importances") or [])
    parts += ["<h2>Layers</h2>", _table(list(model_summary.HEADERS),
                                        [[model_summary.cell(k, r.get(k)) for k in model_summary.COLUMNS] for r in rows])]
    parts += ["<h2>Parameters</h2>", _table(["parameter", "value"],
                                            [[k, _fmt(v)] for k, v in sorted(params.items())])]
    parts.append("</body></html>\n")
    return "\n".join(parts)


# ----------------------------------------------------------------------------- sections
def _history_section(plt, history, kind):
    metric = MAIN_METRIC[kind]
    series = {which: [r.get(f"{which}_{metric}") for r in history] for which in ("training", "validation")}
    series = {k: v for k, v in series.items() if any(x is not None and x == x for x in v)}
    out = ["<h2>Scoring history</h2>"]
    if not series:
        return out + ["<p>The model file holds no scoring history.</p>"]
    for key, label in (("epochs", "epochs"), ("duration_s", "time (s)")):
        x = [r.get(key) for r in history]
        fig, ax = _figure(plt)
        for which, y in series.items():
            ax.plot(x, y, marker="o", label=which)
        ax.set_xlabel(label)
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} against {label}")
        ax.legend()
        out.append(_image(plt, fig, f"scoring history: {metric} against {label}"))
    return out


def _confusion_section(plt, metrics, info):
    """The final model's confusion matrix (validation data, else training), if the file has one."""
    which = next((w for w in ("validation", "training") if (metrics.get(w) or {}).get("confusion_matrix")), None)
    if which is None or not info.classification:
        return []
    cm = metrics[which]["confusion_matrix"]
    labels = list(info.domain)
    fig, ax = _figure(plt)
    ax.imshow(cm, cmap="Blues")
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(f"confusion matrix ({which} data)")
    if len(labels) <= 20:
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(labels)), labels)
        for i, row in enumerate(cm):
            for j, v in enumerate(row):
                ax.text(j, i, f"{v:g}", ha="center", va="center", fontsize=7)
    table = _table(["actual / predicted"] + labels, [[a] + [_fmt(v) for v in row] for a, row in zip(labels, cm)])
    return [f"<h2>Confusion matrix ({_e(which)} data)</h2>", _image(plt, fig, f"confusion matrix, {which} data"),
            table]


def _varimp_section(plt, rows):
    if not rows:
        return []
    top = rows[:TOP_VARIABLES]
    fig, ax = _figure(plt)
    ax.barh([r["variable"] for r in reversed(top)], [r["scaled_importance"] for r in reversed(top)])
    ax.set_xlabel("scaled importance")
    ax.set_title(f"variable importances (Gedeon), the {len(top)} largest")
    ax.tick_params(axis="y", labelsize=7)
    cols = ("variable", "relative_importance", "scaled_importance", "percentage")
    return ["<h2>Variable importances</h2>", _image(plt, fig, "variable importances"),
            _table(list(cols), [[_fmt(r[c]) for c in cols] for r in top])]


# ------------------------------------------------------------------------------ helpers
def _figure(plt):
    fig = plt.figure(figsize=FIGSIZE, dpi=DPI)
    return fig, fig.add_axes((0.18, 0.14, 0.76, 0.76))


def _image(plt, fig, alt):
    """The figure as an inlined PNG <img> (FIGSIZE x DPI pixels)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<p><img alt="{_e(alt)}" src="data:image/png;base64,{data}"></p>'


def _table(header, rows):
    head = "".join(f"<th>{_e(str(h))}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{_e(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}\n</table>"


def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def _e(text):
    return html.escape(text, quote=True)


def _head(title):
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}: h2odl_mpi model report</title>\n<style>"
            "body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;margin:1em 0}"
            "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right;font-size:90%}"
            "</style></head><body>")
