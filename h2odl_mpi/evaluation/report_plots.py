"""The figures of the model report (h2odl_mpi.evaluation.report), drawn by matplotlib.

Every figure is FIGSIZE x DPI (640 x 400 pixels) and laid out by matplotlib's constrained
layout, which makes room for the axis labels inside the figure (the size stays fixed, so
nothing is cut off and no image grows).  Names longer than LABEL_LIMIT characters are
shortened in the middle with an ellipsis (`shorten`: the start and the end stay, which is
where column names differ); the tables beside the figures keep the full names.  The counts
in the confusion matrix's cells are white or black, whichever contrasts more with the
cell's shade (`text_colour`, WCAG's contrast ratio), so every count is readable.

matplotlib is an optional extra (requirements-report.txt): `pyplot()` says in one line
(a UserError) how to install it.
"""
import base64
import html
import io
import math

from h2odl_mpi.errors import UserError

FIGSIZE = (6.4, 4.0)   # inches; at DPI the PNGs are 640 x 400 pixels
DPI = 100
LABEL_LIMIT = 28       # characters of a tick label; longer names are shortened in the middle
ELLIPSIS = "\u2026"
INSTALL = "python -m pip install -r requirements-report.txt (matplotlib)"


def pyplot():
    """matplotlib's pyplot on the Agg backend, or a UserError saying how to install it."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError(f"report needs matplotlib, which is not installed: {INSTALL}") from None
    return plt


# ------------------------------------------------------------------------------ helpers
def figure(plt):
    """A FIGSIZE x DPI figure with one axes, laid out by the constrained layout engine."""
    fig = plt.figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    return fig, fig.add_subplot()


def image(plt, fig, alt):
    """The figure as an inlined PNG <img> (FIGSIZE x DPI pixels)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<p><img alt="{html.escape(alt, quote=True)}" src="data:image/png;base64,{data}"></p>'


def shorten(name, limit=LABEL_LIMIT):
    """`name` as text of at most `limit` characters: a longer one keeps its start and its
    end around an ellipsis (the end a little shorter)."""
    name = str(name)
    if len(name) <= limit:
        return name
    keep = limit - 1
    head = (keep + 1) // 2
    return name[:head] + ELLIPSIS + name[len(name) - (keep - head):]


def short_labels(names, limit=LABEL_LIMIT):
    """shorten() of each name, made unique: a shortened name met before gets " (2)", " (3)",
    ... (itself shortened to fit)."""
    out, seen = [], set()
    for name in names:
        label = shorten(name, limit)
        k = 1
        while label in seen:
            k += 1
            suffix = f" ({k})"
            label = shorten(name, limit - len(suffix)) + suffix
        seen.add(label)
        out.append(label)
    return out


def relative_luminance(rgb):
    """WCAG's relative luminance of an sRGB colour (components 0..1)."""
    def linear(c):
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (linear(float(c)) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a, b):
    """WCAG's contrast ratio (1 to 21) of two sRGB colours."""
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def text_colour(background):
    """"white" or "black": the text colour of the larger contrast on `background` (an RGB(A)
    tuple, components 0..1).  Either way the ratio is at least 4.58 (WCAG AA: 4.5)."""
    white, black = (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)
    return "white" if contrast_ratio(background, white) > contrast_ratio(background, black) else "black"


# ------------------------------------------------------------------------------ figures
def history_figures(plt, history, metric, series):
    """[(figure, alt)]: `metric` of each series (name: values) against epochs and against time."""
    out = []
    for key, label in (("epochs", "epochs"), ("duration_s", "time (s)")):
        x = [r.get(key) for r in history]
        fig, ax = figure(plt)
        for which, y in series.items():
            ax.plot(x, y, marker="o", label=which)
        ax.set_xlabel(label)
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} against {label}")
        ax.legend()
        out.append((fig, f"scoring history: {metric} against {label}"))
    return out


def confusion_figure(plt, cm, labels, which, max_labels=20):
    """The confusion matrix `cm` (rows actual, columns predicted) as shaded cells, each count
    in the colour that reads on its shade (up to `max_labels` classes; more: shades only)."""
    from matplotlib.colors import Normalize
    values = [[float(v) for v in row] for row in cm]
    flat = [v for row in values for v in row] or [0.0]
    norm = Normalize(vmin=min(flat), vmax=max(flat))
    cmap = plt.get_cmap("Blues")
    fig, ax = figure(plt)
    ax.imshow(values, cmap=cmap, norm=norm)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(f"confusion matrix ({which} data)")
    if len(labels) <= max_labels:
        names = short_labels(labels, 12 if len(labels) > 5 else LABEL_LIMIT)
        ax.set_xticks(range(len(names)), names, rotation=45 if len(labels) > 5 else 0,
                      ha="right" if len(labels) > 5 else "center")
        ax.set_yticks(range(len(names)), names)
        size = 12 if len(labels) <= 3 else 9 if len(labels) <= 8 else 7
        for i, row in enumerate(cm):
            for j, v in enumerate(row):
                shade = cmap(norm(float(v)))
                ax.text(j, i, _count(v), ha="center", va="center", fontsize=size, color=text_colour(shade))
    return fig


def _count(v):
    if isinstance(v, int) or (isinstance(v, float) and math.isfinite(v) and v == int(v)):
        return str(int(v))
    return f"{v:.4g}"


def varimp_figure(plt, rows):
    """Horizontal bars of the rows' scaled importances, the first row on top; the names
    shortened (short_labels) so that they fit beside the bars."""
    rows = list(reversed(rows))
    fig, ax = figure(plt)
    ax.barh(range(len(rows)), [r["scaled_importance"] for r in rows])
    ax.set_yticks(range(len(rows)), short_labels([r["variable"] for r in rows]))
    ax.set_xlabel("scaled importance")
    ax.set_title(f"variable importances (Gedeon), the {len(rows)} largest")
    ax.tick_params(axis="y", labelsize=7)
    return fig


def curve_figures(plt, curves):
    """[(figure, alt)]: the ROC curve (tpr against fpr) and the precision-recall curve of each
    data set, curves = {data set: {"fpr", "tpr", "precision", "recall" (lists, one value per
    threshold, highest threshold first), "auc", "aucpr"}}.  The ROC curve starts at (0, 0),
    the point of a threshold above every score; nothing else is added."""
    roc, pr = figure(plt), figure(plt)
    for which, c in curves.items():
        roc[1].plot([0.0] + list(c["fpr"]), [0.0] + list(c["tpr"]),
                    label=f"{which} (AUC {_g(c.get('auc'))})")
        points = [(r, p) for r, p in zip(c["recall"], c["precision"]) if _finite(r) and _finite(p)]
        pr[1].plot([r for r, _ in points], [p for _, p in points], drawstyle="steps-pre",
                   label=f"{which} (AUCPR {_g(c.get('aucpr'))})")
    roc[1].plot([0, 1], [0, 1], linestyle=":", color="grey")
    for (fig, ax), x, y, title in ((roc, "false positive rate", "true positive rate", "ROC curve"),
                                   (pr, "recall", "precision", "precision-recall curve")):
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.set_title(title)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.legend(loc="lower right" if fig is roc[0] else "lower left")
    return [(roc[0], "ROC curve"), (pr[0], "precision-recall curve")]


def _finite(v):
    return isinstance(v, (int, float)) and math.isfinite(v)


def _g(v):
    return f"{v:.4f}" if _finite(v) else "n/a"
