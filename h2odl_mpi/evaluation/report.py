"""`python -m h2odl_mpi report --model MODEL.h5 -o report.html`: a model file as one HTML page.

The model is named by `--model FILE`, as for predict and evaluate (the older positional
form `report MODEL.h5` still works; giving both is refused).  The page holds:
- the model: kind, response, network, epochs, training samples, and the seed the run used
  (the training state's, /progress seed), with where it came from (the seed parameter, the
  clock when the parameter was -1, or the checkpoint the run continued);
- the metrics of the final model on each data set the file has (training, validation,
  cross-validation: one column each), H2O's scalar metrics of the kind: binomial MSE, RMSE,
  LogLoss, mean per-class error, classification error, AUC, AUCPR, Gini, the max-F1
  threshold; multinomial the same without the AUCs, and the top-K hit ratios;
  regression MSE, RMSE, MAE, RMSLE, R^2, mean residual deviance; autoencoder MSE, RMSE;
- a cross-validated model's "Cross-Validation Metrics Summary" (per metric mean, sd and
  cv_<k>_valid) and its fold models;
- for a binomial model, the ROC and precision-recall curves of every data set whose stored
  metrics carry H2O's thresholds table (thresholds_and_metric_scores).  Model files written
  by train keep the AUC, AUCPR and one confusion matrix, not that table: the page then says
  that the curves cannot be drawn from the file (`evaluate --json` computes the table on a
  data file), and draws none;
- the scoring history (the main metric of the training and the validation data against
  epochs and against time: logloss for classification, RMSE for regression, MSE for an
  autoencoder), the confusion matrix of the final model (validation data, else
  cross-validation, else training), the variable importances (the 20 largest), the layer
  summary (H2O's "Status of Neuron Layers") and every parameter.
An ensemble file (h2odl_mpi.evaluation.ensemble_model) gives its members (id, weight, network,
seed, own metric), how the weights were chosen, the ensemble's metrics, curves and
confusion matrix.

Plots are PNG images drawn by matplotlib (report_plots.py), inlined as base64 data: the
page is self-contained (no other file, nothing fetched).  The whole page is made before
anything is written, then written atomically (atomic.write_bytes); the output is checked
first (not the model file, not a directory, in a writable directory).  Bad input is one line
naming the file (UserError, exit status 2).

matplotlib is an optional extra (requirements-report.txt): without it the command says in
one line how to install it and exits with status 2.
"""
import html
import json
import math
import os

from h2odl_mpi.atomic import write_bytes
from h2odl_mpi.errors import UserError
from h2odl_mpi.evaluation import report_plots as plots
from h2odl_mpi.evaluation.metric_tables import Table
from h2odl_mpi.model import model_summary

FIGSIZE, DPI, INSTALL = plots.FIGSIZE, plots.DPI, plots.INSTALL  # (640 x 400 pixel PNGs)
pyplot = plots.pyplot
TOP_VARIABLES = 20
MAIN_METRIC = {"classification": "logloss", "regression": "rmse", "autoencoder": "mse"}
DATA_SETS = (("training", "Training"), ("validation", "Validation"), ("cross_validation", "Cross-Validation"))
# H2O's scalar metrics of each kind, in its order, under its names
METRICS = {
    "binomial": (("mse", "MSE"), ("rmse", "RMSE"), ("logloss", "LogLoss"),
                 ("mean_per_class_error", "Mean Per-Class Error"), ("classification_error", "Classification Error"),
                 ("auc", "AUC"), ("aucpr", "AUCPR"), ("gini", "Gini"), ("threshold", "max-F1 threshold")),
    "multinomial": (("mse", "MSE"), ("rmse", "RMSE"), ("logloss", "LogLoss"),
                    ("mean_per_class_error", "Mean Per-Class Error"),
                    ("classification_error", "Classification Error")),
    "regression": (("mse", "MSE"), ("rmse", "RMSE"), ("mae", "MAE"), ("rmsle", "RMSLE"), ("r2", "R^2"),
                   ("mean_residual_deviance", "Mean Residual Deviance")),
    "autoencoder": (("mse", "MSE"), ("rmse", "RMSE")),
}
ROWS = ("nobs", "rows scored (nobs)")


def add_arguments(parser):
    parser.add_argument("--model", dest="model_file", default=None, metavar="FILE",
                        help="model file (HDF5) written by train --model_out, a checkpoint, or an ensemble file")
    parser.add_argument("model", nargs="?", default=None, metavar="MODEL",
                        help="the model file, as --model (the older form; give one of the two)")
    parser.add_argument("-o", "--out", required=True, help="the HTML page to write")
    return parser


def model_of(ns):
    """The model file named by --model or the positional MODEL (exactly one of them)."""
    given, positional = getattr(ns, "model_file", None), getattr(ns, "model", None)
    if given is not None and positional is not None:
        raise UserError(f"report: the model is given twice ({positional} and --model {given}): "
                        "give it once, as --model FILE")
    if given is None and positional is None:
        raise UserError("report: no model file: give it as --model FILE")
    return given if given is not None else positional


def run(ns):
    """The command: check the output, read the model, write the page.  Exit status 0."""
    from h2odl_mpi.evaluation.predict import check_output
    path = model_of(ns)
    plt = pyplot()
    check_output(ns.out, [("--model" if getattr(ns, "model_file", None) else "model", path)], "--out")
    page = render(path, plt)
    try:
        write_bytes(ns.out, page.encode())
    except OSError as e:
        raise UserError(f"--out {ns.out}: cannot write: {e.strerror or e}") from None
    print(f"report written to {ns.out}")
    return 0


def load(path):
    """(network, model, info, params, attrs, is an ensemble) of a model or ensemble file."""
    from h2odl_mpi.evaluation.ensemble_model import is_ensemble, load_ensemble
    from h2odl_mpi.model.model_io import load_model
    if not os.path.exists(path):
        raise UserError(f"{path}: no such model file")
    if os.path.isdir(path):
        raise UserError(f"{path}: is a directory, not a model file")
    try:
        with open(path, "rb") as f:
            image = f.read()
    except OSError as e:
        raise UserError(f"{path}: cannot read the model file: {e.strerror or e}") from None
    if is_ensemble(image):
        return (*load_ensemble(path, image=image), True)
    return (*load_model(path, image=image), False)


def render(path, plt=None):
    """The HTML page of the model (or ensemble) file at `path`."""
    plt = plt or pyplot()
    network, model, info, params, attrs, ensemble = load(path)
    name = os.path.basename(path)
    if ensemble:
        parts = _ensemble_parts(plt, name, network, info, attrs)
    else:
        parts = _model_parts(plt, name, network, model, info, params, attrs)
    return "\n".join([_head(name), f"<h1>{_e(name)}</h1>"] + parts + ["</body></html>\n"])


def _model_parts(plt, name, network, model, info, params, attrs):
    samples = attrs.get("training_samples", 0)
    metrics = attrs.get("metrics") or {}
    rows = attrs.get("model_summary") or model_summary.table(network, model, params, samples)
    seed, where = seed_used(params, attrs.get("state"))
    facts = [["kind", _kind(info)]] + ([] if info.autoencoder else [["response", info.response]]) + [
        ["network", "-".join(map(str, network.units))], ["epochs", f"{float(attrs.get('epochs', 0)):.4g}"],
        ["training samples", f"{int(samples):,}"], ["seed", f"{seed} ({where})"],
        ["h2odl_mpi", str(attrs.get("software_version", "?"))]]
    parts = [f"<p>{_e(model_summary.title(info, samples, network))}</p>", "<h2>Model</h2>",
             _table(["property", "value"], facts)]
    parts += metrics_section(metrics, info)
    parts += cross_validation_section(attrs.get("cross_validation"))
    parts += curves_section(plt, metrics, info)
    parts += _history_section(plt, attrs.get("history") or [], info.kind)
    parts += _confusion_section(plt, metrics, info)
    parts += _varimp_section(plt, attrs.get("variable_importances") or [])
    parts += ["<h2>Layers</h2>", _table(list(model_summary.HEADERS),
                                        [[model_summary.cell(k, r.get(k)) for k in model_summary.COLUMNS] for r in rows])]
    shown = {k: (f"{_fmt(v)} as given; the run used {seed}: {where}" if k == "seed" and seed != v else _fmt(v))
             for k, v in params.items()}
    parts += ["<h2>Parameters</h2>", _table(["parameter", "value"], [[k, shown[k]] for k in sorted(params)])]
    return parts


def _ensemble_parts(plt, name, network, info, attrs):
    metrics = attrs.get("metrics") or {}
    members, weights = network.members, attrs.get("weights") or []
    method = _text(attrs.get("weights_method", "?"))
    fitted_on = _text(attrs.get("fitted_on", ""))
    how = f"{method} weights" + (f", fitted on {fitted_on}" if fitted_on else "")
    parts = [f"<p>Ensemble of {len(members)} models: the weighted mean of their predictions of "
             f"{_e(info.response)}; {_e(how)}.</p>",
             "<h2>Ensemble</h2>",
             _table(["property", "value"], [["kind", _kind(info)], ["response", info.response],
                                            ["members", str(len(members))], ["weights", how],
                                            ["h2odl_mpi", _text(attrs.get("software_version", "?"))]])]
    metric = MAIN_METRIC[info.kind]
    rows = []
    for i, (m, w) in enumerate(zip(members, weights)):
        seed, where = seed_used(m.params, m.attrs.get("state"))
        own = m.attrs.get("metrics") or {}
        which = next((d for d in ("validation", "cross_validation", "training") if metric in (own.get(d) or {})), None)
        rows.append([str(i + 1), m.model_id, _fmt(float(w)), "-".join(map(str, m.network.units)),
                     str(m.params.get("activation", "")), f"{float(m.attrs.get('epochs', 0)):.4g}",
                     f"{seed} ({where})", f"{_fmt(own[which][metric])} ({which})" if which else ""])
    parts += ["<h2>Members and weights</h2>",
              _table(["#", "model id", "weight", "network", "activation", "epochs", "seed", f"own {metric}"], rows)]
    parts += metrics_section(metrics, info)
    parts += curves_section(plt, metrics, info)
    parts += _confusion_section(plt, metrics, info)
    parts.append("<p>An ensemble has no scoring history, variable importances or layers of its own: each "
                 "member is a model file of its own inside the ensemble file (docs/model_format.md, "
                 "\"Ensembles\", shows how to take one out for its own report).</p>")
    return parts


# ----------------------------------------------------------------------------- the seed
def seed_used(params, state):
    """(the seed the run used, where it came from): the training state's seed (/progress)
    when the file has one, else the seed parameter as given."""
    given = params.get("seed", -1)
    if not state or state.get("seed") is None:
        if given == -1:
            return given, "the seed parameter as given; the model file holds no training state to tell the seed used"
        return given, "the seed parameter; the model file holds no training state"
    used = int(state["seed"])
    read = "read from the model file's training state"
    if given == used:
        return used, f"the seed parameter; {read}"
    if params.get("checkpoint"):
        return used, f"kept from the checkpoint the run continued, {params['checkpoint']}; {read}"
    if given == -1:
        return used, f"drawn from the clock, the seed parameter being -1; {read}"
    return used, f"{read}; the seed parameter was {given}"


# ----------------------------------------------------------------------------- metrics
def model_category(info):
    """H2O's model category: binomial, multinomial, regression or autoencoder."""
    if info.autoencoder:
        return "autoencoder"
    if info.classification:
        return "binomial" if info.n_classes == 2 else "multinomial"
    return "regression"


def metric_rows(metrics, info):
    """(header, rows) of the metrics table: one row per metric of the model's category (and
    any other scalar the file holds), one column per data set the file has metrics of."""
    sets = [(k, label) for k, label in DATA_SETS if metrics.get(k)]
    sets += [(k, k) for k in metrics if metrics.get(k) and k not in dict(DATA_SETS)]
    known = METRICS[model_category(info)]
    extra = sorted({k for key, _ in sets for k, v in metrics[key].items() if _scalar(v)}
                   - {k for k, _ in known} - {ROWS[0]})
    rows = []
    labels = {k: label for rows in METRICS.values() for k, label in rows}
    for key, label in list(known) + [(k, labels.get(k, k)) for k in extra] + [ROWS]:
        values = [_metric(metrics[s], key) for s, _ in sets]
        if any(v is not None for v in values):
            rows.append([label] + [_fmt(v) for v in values])
    return ["metric"] + [label for _, label in sets], rows


def _metric(m, key):
    if key == "gini" and "gini" not in m and _scalar(m.get("auc")):
        return 2.0 * m["auc"] - 1.0   # H2O's Gini coefficient
    v = m.get(key)
    return v if _scalar(v) else None


def metrics_section(metrics, info):
    out = ["<h2>Metrics</h2>"]
    header, rows = metric_rows(metrics, info)
    if not rows:
        return out + ["<p>The model file holds no metrics of the final model.</p>"]
    out.append(_table(header, rows))
    hits = [(label, metrics[k]["hit_ratios"]) for k, label in DATA_SETS if (metrics.get(k) or {}).get("hit_ratios")]
    if hits:
        n = max(len(h) for _, h in hits)
        out += ["<h3>Top-K hit ratios</h3>",
                _table(["k"] + [label for label, _ in hits],
                       [[str(k + 1)] + [_fmt(h[k]) if k < len(h) else "" for _, h in hits] for k in range(n)])]
    return out


def cross_validation_section(cv):
    """H2O's "Cross-Validation Metrics Summary" (mean, sd, cv_<k>_valid per metric) and the
    fold models of a cross-validated model's attrs["cross_validation"]."""
    summary = (cv or {}).get("metrics_summary") or {}
    if not summary:
        return []
    cols = []
    for stats in summary.values():
        cols += [c for c in stats if c not in cols]
    cols = sorted(cols, key=lambda c: (c not in ("mean", "sd"), ("mean", "sd").index(c) if c in ("mean", "sd")
                                       else _fold_number(c), c))
    out = ["<h2>Cross-Validation Metrics Summary</h2>",
           _table([""] + cols, [[metric] + [_fmt(stats.get(c)) for c in cols] for metric, stats in summary.items()])]
    models = cv.get("models") or []
    if models:
        keys = []
        for m in models:
            keys += [k for k in m if k not in keys]
        out += ["<h3>Cross-validation models</h3>", _table(keys, [[_fmt(m.get(k)) for k in keys] for m in models])]
    return out


def _fold_number(col):
    digits = "".join(c for c in col if c.isdigit())
    return int(digits) if digits else math.inf


def curve_data(metrics):
    """{data set label: the curves' points} of the data sets whose metrics carry H2O's
    thresholds table (thresholds_and_metric_scores with fpr, tpr, precision, recall)."""
    out = {}
    for key, label in DATA_SETS:
        m = metrics.get(key) or {}
        table = Table.from_dict(m.get("thresholds_and_metric_scores")) if isinstance(
            m.get("thresholds_and_metric_scores"), dict) else None
        if table is None or not len(table) or not {"fpr", "tpr", "precision", "recall"} <= set(table.col_header):
            continue
        out[label] = {c: [_number(v) for v in table[c]] for c in ("fpr", "tpr", "precision", "recall")}
        out[label].update(auc=m.get("auc"), aucpr=m.get("aucpr"))
    return out


def curves_section(plt, metrics, info):
    """A binomial model's ROC and precision-recall curves, from the thresholds tables the
    file holds; where it holds none, a line saying so (nothing is drawn)."""
    if model_category(info) != "binomial" or not any(metrics.values()):
        return []
    curves = curve_data(metrics)
    out = ["<h2>ROC and precision-recall curves</h2>"]
    if not curves:
        return out + ["<p>Not drawn: the model file keeps the AUC, the AUCPR and the confusion matrix at the "
                      "max-F1 threshold, not the thresholds table (thresholds_and_metric_scores) the curves "
                      "are drawn from. <code>python -m h2odl_mpi evaluate --model MODEL --data DATA --json "
                      "FILE</code> computes that table on a data file.</p>"]
    missing = [label for k, label in DATA_SETS if metrics.get(k) and label not in curves]
    if missing:
        out.append(f"<p>No thresholds table in the file for: {_e(', '.join(missing))}.</p>")
    return out + [plots.image(plt, fig, alt) for fig, alt in plots.curve_figures(plt, curves)]


# ----------------------------------------------------------------------------- sections
def _history_section(plt, history, kind):
    metric = MAIN_METRIC[kind]
    series = {which: [r.get(f"{which}_{metric}") for r in history] for which in ("training", "validation")}
    series = {k: v for k, v in series.items() if any(x is not None and x == x for x in v)}
    out = ["<h2>Scoring history</h2>"]
    if not series:
        return out + ["<p>The model file holds no scoring history.</p>"]
    return out + [plots.image(plt, fig, alt) for fig, alt in plots.history_figures(plt, history, metric, series)]


def _confusion_section(plt, metrics, info):
    """The final model's confusion matrix (validation data, else cross-validation, else
    training), if the file has one."""
    which = next((w for w in ("validation", "cross_validation", "training")
                  if (metrics.get(w) or {}).get("confusion_matrix")), None)
    if which is None or not info.classification:
        return []
    cm = metrics[which]["confusion_matrix"]
    labels = [str(d) for d in info.domain]
    shown = which.replace("_", "-")
    fig = plots.confusion_figure(plt, cm, labels, shown)
    table = _table(["actual / predicted"] + labels, [[a] + [_fmt(v) for v in row] for a, row in zip(labels, cm)])
    return [f"<h2>Confusion matrix ({_e(shown)} data)</h2>", plots.image(plt, fig, f"confusion matrix, {shown} data"),
            table]


def _varimp_section(plt, rows):
    if not rows:
        return []
    top = rows[:TOP_VARIABLES]
    cols = ("variable", "relative_importance", "scaled_importance", "percentage")
    return ["<h2>Variable importances</h2>", plots.image(plt, plots.varimp_figure(plt, top), "variable importances"),
            _table(list(cols), [[_fmt(r[c]) for c in cols] for r in top])]


# ------------------------------------------------------------------------------ helpers
def _kind(info):
    category = model_category(info)
    if info.classification:
        return f"{category} classification ({info.n_classes} classes: {', '.join(map(str, info.domain))})"
    return category


def _scalar(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _number(v):
    return float("nan") if v is None else float(v)


def _text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def _table(header, rows):
    head = "".join(f"<th>{_e(str(h))}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{_e(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}\n</table>"


def _fmt(v):
    """A value as the page shows it: floats with 6 significant digits."""
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
