"""The leaderboard: every model of a search, best first by `sort_by`.

A record (one per model, search_dir.SearchDirectory.record) holds the model's id, status
("done" or "failed" with its error), hyper-parameters, seed, metrics under the summary JSON's
names ({"training": ..., "validation": ..., "cross_validation": ...}), times and samples.
Models are compared on their cross-validation metrics when they have them, else validation,
else training.  `sort_by` is an H2O metric name (AUTO: logloss for classification, deviance
for regression, MSE for an autoencoder); failed models come last.
"""
import csv
import io
import json
import math
import os

from h2odl_mpi import stopping
from h2odl_mpi.atomic import write_bytes
from h2odl_mpi.errors import UserError

# sort_by names beyond stopping.METRICS: name -> (key in a metrics dict, -1 less is better / +1 more)
EXTRA_METRICS = {"r2": ("r2", +1), "mean_residual_deviance": ("mean_residual_deviance", -1),
                 "classification_error": ("classification_error", -1), "err": ("classification_error", -1)}
SOURCES = ("cross_validation", "validation", "training")


def sort_key_of(sort_by, kind):
    """(metrics key, direction) of `sort_by` for models of `kind` (classification,
    regression, autoencoder)."""
    name = str(sort_by)
    if name.lower() in EXTRA_METRICS:
        return EXTRA_METRICS[name.lower()]
    try:
        m = stopping.resolve_metric(name, kind == "classification", kind == "autoencoder")
    except ValueError:
        raise UserError(f"search_criteria: sort_by {sort_by!r} is not a metric; one of AUTO, "
                        + ", ".join(list(stopping.METRICS) + list(EXTRA_METRICS))) from None
    return stopping.METRICS[m][0], stopping.METRICS[m][1]


def source_of(rec):
    """Which metrics a record is compared on: cross_validation, validation or training."""
    metrics = rec.get("metrics") or {}
    return next((s for s in SOURCES if metrics.get(s)), "training")


def value_of(rec, key):
    v = ((rec.get("metrics") or {}).get(source_of(rec)) or {}).get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def ranked(records, sort_by):
    """The records best first: done models by the metric (NaN last), then failed ones."""
    done = [r for r in records if r.get("status") == "done"]
    kind = done[0].get("kind", "classification") if done else "classification"
    key, direction = sort_key_of(sort_by, kind)

    def order(r):
        v = value_of(r, key)
        return (r.get("status") != "done", math.isnan(v), -direction * v if not math.isnan(v) else 0.0,
                r.get("index", 0))
    return sorted(records, key=order), key


def rows(records, sort_by, search_dir, hyper_names):
    """Leaderboard rows, best first (what leaderboard.json holds)."""
    board, key = ranked(records, sort_by)
    out = []
    for place, r in enumerate(board, 1):
        row = {"rank": place, "model_id": r["model_id"], "status": r["status"],
               "sort_metric": f"{source_of(r)}_{key}", "sort_value": value_of(r, key)}
        row.update({name: r["params"].get(name) for name in hyper_names})
        for name in ("seed", "training_time_s", "wall_time_s", "training_samples", "epochs", "stop_reason"):
            row[name] = r.get(name)
        row["metrics"] = r.get("metrics") or {}
        row["model_path"] = os.path.join(search_dir, r["model_path"]) if r.get("model_path") else None
        row["error"] = r.get("error")
        out.append(row)
    return out


def csv_text(board, hyper_names):
    """leaderboard.csv: one line per model, its metrics flattened (validation_logloss, ...)."""
    metric_cols = []
    for row in board:
        for src, m in row["metrics"].items():
            for k, v in m.items():
                col = f"{src}_{k}"
                if isinstance(v, (int, float)) and col not in metric_cols:
                    metric_cols.append(col)
    head = (["rank", "model_id", "status"] + list(hyper_names) + ["sort_metric", "sort_value", "seed",
            "training_time_s", "training_samples", "epochs"] + metric_cols + ["model_path", "error"])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    for row in board:
        flat = {f"{src}_{k}": v for src, m in row["metrics"].items() for k, v in m.items()}
        w.writerow([_cell(row.get(c, flat.get(c))) for c in head])
    return buf.getvalue()


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return v


def write(search_dir, board, hyper_names):
    """leaderboard.json and leaderboard.csv, each atomically; errors name the file."""
    for name, text in (("leaderboard.json", json.dumps(board, indent=1, default=_plain)),
                       ("leaderboard.csv", csv_text(board, hyper_names))):
        path = os.path.join(search_dir, name)
        try:
            write_bytes(path, text.encode())
        except OSError as e:
            raise UserError(f"{path}: cannot write the leaderboard: {e.strerror or e}") from None


def write_best(search_dir, board):
    """best_model.h5: a copy of the best finished model's file (None when none finished)."""
    best = next((r for r in board if r["status"] == "done" and r.get("model_path")), None)
    if best is None:
        return None
    path = os.path.join(search_dir, "best_model.h5")
    try:
        with open(best["model_path"], "rb") as f:
            data = f.read()
        write_bytes(path, data)
    except OSError as e:
        raise UserError(f"{path}: cannot write the best model ({best['model_path']}): {e.strerror or e}") from None
    return path


def line(row, hyper_names):
    """One printed line for a model: id, status, its hyper-parameters, its metric, its time."""
    hp = " ".join(f"{n}={_short(row.get(n))}" for n in hyper_names)
    if row["status"] != "done":
        return f"{row['model_id']:>10}  failed  {hp}  {row.get('error')}"
    t = row.get("training_time_s") or 0.0
    return f"{row['model_id']:>10}  {row['sort_metric']} {row['sort_value']:.6g}  {hp}  ({t:.1f} s)"


def _short(v):
    return json.dumps(v).replace(" ", "") if isinstance(v, list) else v


def _plain(v):
    if hasattr(v, "tolist"):
        return v.tolist()
    raise TypeError(f"not JSON: {type(v).__name__}")
