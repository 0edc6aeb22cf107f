"""The loss curve of a training: each step's loss, each epoch's mean and, where the graph has labels, the
accuracy after each epoch, drawn with matplotlib (imported here only, on its non-interactive Agg backend)
in the theme's font and colours.

The lines carry ids in the SVG (`step-loss`, `epoch-loss`, `accuracy`) and are never simplified, so every
point drawn is a number training printed.
"""

from __future__ import annotations

import io
from pathlib import Path

from cgtools.errors import CgError
from cgtools.export.themes import theme
from cgtools.files import write_atomic

PLOT_FORMATS = ("svg", "png", "pdf")
LOG_FROM = 100  # the loss axis is logarithmic when its largest loss is this many times its smallest


def plot_format(path: Path | str) -> str:
    """The plot's format, from its file's suffix."""
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in PLOT_FORMATS:
        raise CgError(f"expected a plot file ending in {', '.join('.' + f for f in PLOT_FORMATS)}, "
                      f"found {str(path)!r}")
    return fmt


def log_scale(losses: list[float]) -> bool:
    """Whether the losses span decades (and are all positive, as a log axis needs)."""
    return min(losses) > 0 and max(losses) >= LOG_FROM * min(losses)


def loss_plot(history, fmt: str, title: str = "", theme_name: str = "slide") -> bytes:
    """The plot of a train.History as `fmt` bytes: the loss above, the accuracy below when there is one."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    t = theme(theme_name)
    style = {"font.family": t["font"], "font.size": t["small"] + 2, "text.color": t["text"],
             "axes.labelcolor": t["text"], "axes.edgecolor": t["line"], "xtick.color": t["text"],
             "ytick.color": t["text"], "path.simplify": False, "svg.hashsalt": "cgtools"}
    with matplotlib.rc_context(style):
        rows = 2 if history.accuracy else 1
        figure = Figure(figsize=(8, 3.2 + 2.2 * (rows - 1)), facecolor=t["background"], layout="constrained")
        axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
        draw_loss(axes[0], history, t)
        if rows == 2:
            draw_accuracy(axes[1], history, t)
        axes[0].set_title(title, loc="left")
        axes[-1].set_xlabel("step")
        axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
        out = io.BytesIO()
        figure.savefig(out, format=fmt, dpi=144, facecolor=t["background"],
                       metadata={"Date": None} if fmt in ("svg", "pdf") else None)
    return out.getvalue()


def draw_loss(ax, history, t: dict) -> None:
    steps = range(len(history.losses))
    ax.plot(steps, history.losses, color=t["value"], alpha=0.45, linewidth=1.2, label="loss per step",
            gid="step-loss")
    ax.plot(history.epoch_ends(), history.epoch_means(), color=t["value"], linewidth=2.2, marker="o",
            markersize=4, label="mean loss per epoch", gid="epoch-loss")
    logarithmic = log_scale(history.losses)
    if logarithmic:
        ax.set_yscale("log")
    ax.set_ylabel("loss" + (" (log scale)" if logarithmic else ""))
    tidy(ax, t)
    ax.legend(frameon=False, loc="upper right")


def draw_accuracy(ax, history, t: dict) -> None:
    ax.plot(history.epoch_ends(), history.accuracy, color=t["grad"], linewidth=2.2, marker="o", markersize=4,
            gid="accuracy")
    ax.set_ylabel("accuracy after epoch")
    from matplotlib.ticker import PercentFormatter

    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    tidy(ax, t)


def tidy(ax, t: dict) -> None:
    """The axes of a slide: no box on top and right, a faint grid, the theme's background."""
    ax.set_facecolor(t["background"])
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, color=t["muted"], alpha=0.25, linewidth=0.6)


def write_plot(history, path: Path | str, title: str = "", theme_name: str = "slide") -> Path:
    """The plot written to `path`, in the format its suffix names, atomically."""
    path = Path(path)
    data = loss_plot(history, plot_format(path), title, theme_name)
    write_atomic(path, lambda f: f.write(data))
    return path
