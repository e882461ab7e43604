"""The PNG figures of the evaluation and the report, drawn headless (matplotlib's Agg backend)."""

import io

import numpy as np

#: Above this many classes a confusion-matrix picture is unreadable; the data are still written.
MAX_CONFUSION_CLASSES = 100


def _figure(width, height):
    import matplotlib
    matplotlib.use("Agg", force=True)  # no display: CI machines, servers, Dataflow
    from matplotlib import pyplot as plt
    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    return plt, fig, ax


def _png(plt, fig, *, title=None) -> bytes:
    """The figure as PNG bytes; `title` also goes into the PNG's Title text chunk, so tools
    (and tests) can tell which run a picture shows without reading its pixels."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", metadata={"Title": title} if title else None)
    plt.close(fig)
    return buf.getvalue()


def confusion_png(confusion, classes, *, title: str) -> bytes:
    """Row-normalised confusion matrix (rows = true class) as a PNG; `title` names the model
    (several matrices side by side are otherwise told apart by file path only)."""
    confusion = np.asarray(confusion, np.float64)
    rows = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    side = min(max(4.0, 0.35 * n + 2), 24.0)
    plt, fig, ax = _figure(side, side)
    image = ax.imshow(rows, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 40:
        ax.set_xticks(range(n), classes, rotation=90, fontsize=7)
        ax.set_yticks(range(n), classes, fontsize=7)
    ax.set_title(f"{title}\nconfusion matrix (share of each true class)", fontsize=9)
    return _png(plt, fig, title=title)


def curves_png(curves: dict, *, title: str) -> bytes:
    """One line per run: {label: [(epoch, top-1 accuracy), ...]} as a PNG."""
    plt, fig, ax = _figure(7, 4.5)
    for label, points in curves.items():
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, [100 * y for y in ys], marker="o", markersize=3, label=label)
    ax.set_xlabel("labeled epochs")
    ax.set_ylabel("validation top-1 (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if any(curves.values()):
        ax.legend()
    return _png(plt, fig)


def per_class_png(supervised, fixmatch, *, xlabel: str, ylabel: str) -> bytes:
    """Per-class top-1 of one run against the other, one point per class, the diagonal drawn:
    points above it are classes the second run does better on. Readable at any number of
    classes (a 1,000 x 1,000 confusion matrix is not)."""
    plt, fig, ax = _figure(5.5, 5.5)
    xs, ys = 100 * np.asarray(supervised, np.float64), 100 * np.asarray(fixmatch, np.float64)
    ax.plot([0, 100], [0, 100], color="0.6", linewidth=1)
    ax.scatter(xs, ys, s=max(3.0, 40.0 / np.sqrt(max(len(xs), 1))), alpha=0.5)
    ax.set_xlim(-2, 102)
    ax.set_ylim(-2, 102)
    ax.set_xlabel(f"{xlabel}: class top-1 (%)", fontsize=8)
    ax.set_ylabel(f"{ylabel}: class top-1 (%)", fontsize=8)
    title = f"per-class top-1 of {len(xs):,} classes"
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _png(plt, fig, title=title)
