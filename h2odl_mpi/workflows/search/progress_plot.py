"""DIR/search_progress.png: how fast the search found its best model.

Two panels: the best sort_by metric so far (of the done models) against wall time since the
search began (pauses between requeued jobs included) and against the number of models that
ended (done, culled or failed, in the order they ended); each done model's own metric is a
dot.  matplotlib is an optional extra (requirements-report.txt): without it the plot is
skipped and the search says so once.
"""
import io
import math
import os

from h2odl_mpi.atomic import write_bytes
from h2odl_mpi.errors import UserError
from h2odl_mpi.workflows.search.leaderboard import sort_key_of, source_of, value_of

FILE = "search_progress.png"
MISSING = ("grid: search_progress.png skipped: matplotlib is not installed "
           "(python -m pip install -r requirements-report.txt)")


def pyplot():
    """matplotlib's pyplot on the Agg backend, or None when it is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def series(records, sort_by, started):
    """(metric name, direction, points): one point per ended model in the order they ended,
    (seconds since `started`, models ended so far, its value or NaN, best so far or NaN)."""
    ended = sorted(records, key=lambda r: (r.get("finished", 0.0), r.get("index", 0)))
    done = [r for r in ended if r.get("status") == "done"]
    key, direction = sort_key_of(sort_by, done[0].get("kind", "classification") if done else "classification")
    name = f"{source_of(done[0])}_{key}" if done else key
    best, points = math.nan, []
    for n, r in enumerate(ended, 1):
        v = value_of(r, key) if r.get("status") == "done" else math.nan
        if not math.isnan(v) and (math.isnan(best) or direction * (v - best) > 0):
            best = v
        points.append((r.get("finished", started) - started, n, v, best))
    return name, direction, points


def write(search_dir, records, sort_by, started, plt):
    """Draw the plot into search_dir/search_progress.png (atomically); its path."""
    name, direction, points = series(records, sort_by, started)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100, sharey=True)
    for ax, col, label in ((axes[0], 0, "wall time since the search began (s)"),
                           (axes[1], 1, "models ended")):
        xs = [p[col] for p in points]
        ax.plot(xs, [p[2] for p in points], "o", color="0.6", markersize=3, label="model")
        ax.step(xs, [p[3] for p in points], where="post", color="C0", label="best so far")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"{name} ({'higher' if direction > 0 else 'lower'} is better)")
    axes[1].legend(loc="best")
    fig.suptitle(f"search progress: {sum(1 for p in points if not math.isnan(p[2]))} done of {len(points)} ended")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    path = os.path.join(search_dir, FILE)
    try:
        write_bytes(path, buf.getvalue())
    except OSError as e:
        raise UserError(f"{path}: cannot write the progress plot: {e.strerror or e}") from None
    return path
