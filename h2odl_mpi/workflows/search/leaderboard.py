"""The leaderboard: every model of a search, best first by `sort_by`.

A record (one per model, search_dir.SearchDirectory.record) holds the model's id, status
("done" or "failed" with its error), hyper-parameters, seed, metrics under the summary JSON's
names ({"training": ..., "validation": ..., "cross_validation": ...}), times and samples.
Models are compared on their cross-validation metrics when they have them, else validation,
else training.  `sort_by` is an H2O metric name (AUTO: logloss for classification, deviance
for regression, MSE for an autoencoder); failed models come last.

Ensembles of a search's models (h2odl_mpi.workflows.ensemble) keep their records in DIR/ensembles.json
(a list; `members` and `weights` besides the usual fields); `rows` merges them, so every
rewrite of the board, the search's own included, keeps their rows.  best_model.h5 stays the
best single model.
"""
import csv
import io
import json
import math
import os

from h2odl_mpi.evaluation import stopping
from h2odl_mpi.atomic import write_bytes
from h2odl_mpi.errors import UserError

# sort_by names beyond stopping.METRICS: name -> (key in a metrics dict, -1 less is better / +1 more)
EXTRA_METRICS = {"r2": ("r2", +1), "mean_residual_deviance": ("mean_residual_deviance", -1),
                 "classification_error": ("classification_error", -1), "err": ("classification_error", -1)}
SOURCES = ("cross_validation", "validation", "training")
ENSEMBLES_FILE = "ensembles.json"


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


STATUS_ORDER = {"done": 0, "culled": 1}  # then anything else (failed)


def ranked(records, sort_by):
    """The records best first: done models by the metric (NaN last), then culled ones (by
    rung, highest first, then the metric), then failed ones."""
    scored = [r for r in records if r.get("status") in STATUS_ORDER]
    kind = scored[0].get("kind", "classification") if scored else "classification"
    key, direction = sort_key_of(sort_by, kind)

    def order(r):
        v = value_of(r, key)
        culled_rung = -(r.get("rung") or 0) if r.get("status") == "culled" else 0
        return (STATUS_ORDER.get(r.get("status"), 2), culled_rung, math.isnan(v),
                -direction * v if not math.isnan(v) else 0.0, r.get("index", 0))
    return sorted(records, key=order), key


def read_ensembles(search_dir):
    """The ensemble records of DIR/ensembles.json ([] without one; a damaged file, which
    atomic writes leave only by hand, is left out rather than fail the search)."""
    try:
        with open(os.path.join(search_dir, ENSEMBLES_FILE), encoding="utf-8") as f:
            recs = json.load(f)
    except (OSError, ValueError):
        return []
    return [r for r in recs if isinstance(r, dict) and r.get("model_id")] if isinstance(recs, list) else []


def id_order(model_id):
    """Models in their number's order (model_K), then ensembles by name."""
    tail = str(model_id).rsplit("_", 1)[-1]
    return (0, int(tail), "") if tail.isdigit() else (1, 0, str(model_id))


def layout_of(board):
    """(sort_by, hyper-parameter names) of leaderboard.json's rows, as rows() wrote them:
    the metric of the first finished row's sort_metric, the keys between sort_value and seed."""
    sort_by = "AUTO"
    for row in board:
        metric = str(row.get("sort_metric") or "")
        src = next((s for s in SOURCES if metric.startswith(s + "_")), None)
        if row.get("status") == "done" and src:
            sort_by = metric[len(src) + 1:]
            break
    keys = list(board[0]) if board else []
    hyper = keys[keys.index("sort_value") + 1:keys.index("seed")] if "sort_value" in keys and "seed" in keys else []
    return sort_by, hyper


def rows(records, sort_by, search_dir, hyper_names, ensembles=None):
    """Leaderboard rows, best first (what leaderboard.json holds); the ensembles of
    DIR/ensembles.json among them (`ensembles`: those records instead)."""
    records = list(records) + (read_ensembles(search_dir) if ensembles is None else list(ensembles))
    board, key = ranked(records, sort_by)
    out = []
    for place, r in enumerate(board, 1):
        row = {"rank": place, "model_id": r["model_id"], "status": r["status"],
               "sort_metric": f"{source_of(r)}_{key}", "sort_value": value_of(r, key)}
        row.update({name: r["params"].get(name) for name in hyper_names})
        for name in ("seed", "training_time_s", "wall_time_s", "training_samples", "epochs", "stop_reason"):
            row[name] = r.get(name)
        row["rung"], row["parents"] = r.get("rung"), list(r.get("parents") or [])  # (halving, Evolutionary)
        row["metrics"] = r.get("metrics") or {}
        row["model_path"] = os.path.join(search_dir, r["model_path"]) if r.get("model_path") else None
        row["error"] = r.get("error")
        if r.get("members"):
            row.update(members=r["members"], weights=r.get("weights"))
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
    head = (["rank", "model_id", "status"] + list(hyper_names) + ["rung", "parents", "sort_metric", "sort_value",
            "seed", "training_time_s", "training_samples", "epochs"] + metric_cols + ["model_path", "error"]
            + (["members", "weights"] if any(row.get("members") for row in board) else []))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    for row in board:
        flat = {f"{src}_{k}": v for src, m in row["metrics"].items() for k, v in m.items()}
        w.writerow([_cell(row.get(c, flat.get(c)), c) for c in head])
    return buf.getvalue()


def _cell(v, column=None):
    if v is None:
        return ""
    if column == "parents":  # model ids: "model_3 model_7"
        return " ".join(v)
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return v


def texts(board, hyper_names):
    """{file name: text} of leaderboard.json and leaderboard.csv."""
    return {"leaderboard.json": json.dumps(board, indent=1, default=json_value),
            "leaderboard.csv": csv_text(board, hyper_names)}


def write(search_dir, board, hyper_names):
    """leaderboard.json and leaderboard.csv, each atomically; errors name the file."""
    for name, text in texts(board, hyper_names).items():
        path = os.path.join(search_dir, name)
        try:
            write_bytes(path, text.encode())
        except OSError as e:
            raise UserError(f"{path}: cannot write the leaderboard: {e.strerror or e}") from None


def best_of(board):
    """The row of the best done single model (not an ensemble), or None."""
    return next((r for r in board if r["status"] == "done" and r.get("model_path") and not r.get("members")), None)


def write_best(search_dir, best):
    """best_model.h5: a copy of the model file of row `best` (best_of(board))."""
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
    if row.get("parents"):
        hp += f"  parents {','.join(row['parents'])}"
    if row["status"] not in STATUS_ORDER:
        return f"{row['model_id']:>10}  failed  {hp}  {row.get('error')}"
    if row["status"] == "culled":
        hp = f"culled in rung {row.get('rung')}  {hp}"
    if row.get("members"):
        hp = "members " + ",".join(f"{m}:{w:.3g}" for m, w in zip(row["members"], row.get("weights") or []))
    t = row.get("training_time_s") or 0.0
    return f"{row['model_id']:>10}  {row['sort_metric']} {row['sort_value']:.6g}  {hp}  ({t:.1f} s)"


def _short(v):
    return json.dumps(v).replace(" ", "") if isinstance(v, list) else v


def json_value(v):
    """json.dumps' default for the numpy scalars and arrays in records and leaderboard rows."""
    if hasattr(v, "tolist"):
        return v.tolist()
    raise TypeError(f"not JSON: {type(v).__name__}")
