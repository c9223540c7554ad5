"""Checks that a matplotlib figure shows what a reader needs: the notebooks assert them on every figure.

A figure can run without error and still mislead: an unlabelled axis, an empty panel that looks like a
flat line, a curve drawn exactly on top of another so only one of them is seen, a legend over the data,
a figure title printed across a panel title. `figure_problems` lists such defects; `check_figure`
raises with the list, so a notebook cell fails under nbval when its figure regresses.

A panel that is empty on purpose carries a text note (``ax.text``). Two curves that coincide on
purpose are drawn in distinguishable styles (another line style or marker, or the later one thinner),
or one of their labels, or a note in the panel, says "identical".
"""

from __future__ import annotations

from itertools import combinations
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Two curves closer than this fraction of their panel's y range at every x count as one picture.
SAME_CURVE_TOL = 0.005
#: A legend hides a curve when this fraction of the curve's points lies under the legend box.
LEGEND_COVER_TOL = 0.05
#: A later-drawn line this much thinner (points) lets the one under it show at both edges.
THINNER_BY = 1.0
IDENTICAL_NOTE = "identical"


def _shared_label(ax: "Axes", axis: str) -> str:
    """The axis label of ``ax``, or of an axes it shares that axis with (a column of panels)."""
    own = ax.get_xlabel() if axis == "x" else ax.get_ylabel()
    if own:
        return own
    group = ax.get_shared_x_axes() if axis == "x" else ax.get_shared_y_axes()
    for sib in group.get_siblings(ax):
        label = sib.get_xlabel() if axis == "x" else sib.get_ylabel()
        if label:
            return label
    return ""


def _fig_label(fig: "Figure", axis: str) -> str:
    text = getattr(fig, "_supxlabel" if axis == "x" else "_supylabel", None)
    return text.get_text() if text is not None else ""


def _panel_name(ax: "Axes", i: int) -> str:
    title = ax.get_title() or ax.get_title("left") or ax.get_title("right")
    return f"panel {i} ({title!r})" if title else f"panel {i}"


def _data_lines(ax: "Axes") -> list[Any]:
    """Visible lines with at least one finite point."""
    out = []
    for line in ax.get_lines():
        if not line.get_visible():
            continue
        y = np.asarray(line.get_ydata(), dtype=np.float64)
        if y.size and np.isfinite(y).any():
            out.append(line)
    return out


def _has_data(ax: "Axes") -> bool:
    if _data_lines(ax) or ax.images:
        return True
    # Bars, spans, scatter points and filled areas are collections or patches.
    if any(c.get_visible() and len(c.get_paths()) for c in ax.collections):
        return True
    return any(p.get_visible() for p in ax.patches)


def _xy(line: Any) -> tuple[np.ndarray, np.ndarray]:
    return (np.asarray(line.get_xdata(), dtype=np.float64).ravel(),
            np.asarray(line.get_ydata(), dtype=np.float64).ravel())


def _same_curve(a: Any, b: Any, y_span: float) -> bool:
    (xa, ya), (xb, yb) = _xy(a), _xy(b)
    if xa.shape != xb.shape or ya.shape != yb.shape or ya.size < 2:
        return False
    if not np.allclose(xa, xb, equal_nan=True):
        return False
    both = np.isfinite(ya) & np.isfinite(yb)
    if not both.any() or (np.isfinite(ya) != np.isfinite(yb)).any():
        return False
    return bool(np.max(np.abs(ya[both] - yb[both])) <= SAME_CURVE_TOL * max(y_span, 1e-12))


def _distinguishable(under: Any, over: Any) -> bool:
    """Whether ``under`` still shows where ``over`` (drawn later) lies exactly on it."""
    if under.get_linestyle() != over.get_linestyle() or under.get_marker() != over.get_marker():
        return True
    return under.get_linewidth() - over.get_linewidth() >= THINNER_BY


def _says_identical(ax: "Axes", *lines: Any) -> bool:
    texts = [ln.get_label() for ln in lines] + [t.get_text() for t in ax.texts]
    legend = ax.get_legend()
    if legend is not None:
        texts += [t.get_text() for t in legend.get_texts()]
    return any(IDENTICAL_NOTE in str(t).lower() for t in texts)


def _hidden_lines(ax: "Axes") -> list[str]:
    lines = _data_lines(ax)
    lo, hi = ax.get_ylim()
    out = []
    for a, b in combinations(lines, 2):   # get_lines() is in drawing order: b is drawn over a
        under, over = (a, b) if a.get_zorder() <= b.get_zorder() else (b, a)
        if _same_curve(a, b, abs(hi - lo)) and not _distinguishable(under, over) \
                and not _says_identical(ax, a, b):
            out.append(f"line {over.get_label()!r} hides line {under.get_label()!r} exactly "
                       "(draw them in distinct styles or say 'identical')")
    return out


def _legend_covers(ax: "Axes", renderer: Any) -> list[str]:
    legend = ax.get_legend()
    if legend is None or not legend.get_visible():
        return []
    box = legend.get_window_extent(renderer)
    out = []
    for line in _data_lines(ax):
        xy = np.column_stack(_xy(line))
        xy = xy[np.isfinite(xy).all(axis=1)]
        if len(xy) < 2:
            continue
        pts = line.get_transform().transform(xy)
        inside = ((pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1))
        if inside.mean() > LEGEND_COVER_TOL:
            out.append(f"the legend covers {100 * inside.mean():.0f}% of line {line.get_label()!r}")
    return out


def _overlapping_titles(fig: "Figure", axes: list["Axes"], renderer: Any) -> list[str]:
    """The figure title, panel titles, axis labels and figure legends must not print over one another."""
    texts = []
    for what, attr in (("figure title", "_suptitle"), ("figure x label", "_supxlabel"), ("figure y label", "_supylabel")):
        t = getattr(fig, attr, None)
        if t is not None and t.get_text():
            texts.append((what, t))
    for i, ax in enumerate(axes):
        for loc in ("center", "left", "right"):
            t = {"center": ax.title, "left": ax._left_title, "right": ax._right_title}[loc]
            if t.get_text():
                texts.append((f"title of panel {i}", t))
        for what, t in (("x label", ax.xaxis.label), ("y label", ax.yaxis.label)):
            if t.get_text() and t.get_visible():
                texts.append((f"{what} of panel {i}", t))
    boxes = [(name, t.get_window_extent(renderer)) for name, t in texts]
    boxes += [(f"figure legend {i}", lg.get_window_extent(renderer)) for i, lg in enumerate(fig.legends)]
    out = []
    for (na, a), (nb, b) in combinations(boxes, 2):
        w = min(a.x1, b.x1) - max(a.x0, b.x0)
        h = min(a.y1, b.y1) - max(a.y0, b.y0)
        if w > 1 and h > 1:
            out.append(f"{na} and {nb} overlap")
    return out


def figure_problems(fig: "Figure") -> list[str]:
    """What is wrong with ``fig`` for a reader; an empty list when nothing is.

    Checked per visible panel: an x and a y label (its own, a shared one of its row/column, or the
    figure's ``supxlabel``/``supylabel``); data, or else a text note saying why there is none; no
    curve exactly hidden under another; a legend that covers no curve. For the whole figure: no
    titles, axis labels or figure legends printed over one another.
    """
    if not hasattr(fig.canvas, "get_renderer"):   # a Figure made without pyplot has no drawing canvas
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    fig.canvas.draw()   # text extents and legend positions exist only after a draw
    renderer = fig.canvas.get_renderer()
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    problems: list[str] = []
    for i, ax in enumerate(axes):
        name = _panel_name(ax, i)
        if not (_shared_label(ax, "x") or _fig_label(fig, "x")):
            problems.append(f"{name}: no x label")
        if not (_shared_label(ax, "y") or _fig_label(fig, "y")):
            problems.append(f"{name}: no y label")
        if not _has_data(ax) and not any(t.get_text().strip() for t in ax.texts):
            problems.append(f"{name}: empty, and no note says why")
        problems += [f"{name}: {p}" for p in _hidden_lines(ax) + _legend_covers(ax, renderer)]
    problems += _overlapping_titles(fig, axes, renderer)
    return problems


def check_figure(fig: "Figure") -> "Figure":
    """Raise AssertionError listing `figure_problems` of ``fig``; returns ``fig`` when there are none."""
    problems = figure_problems(fig)
    if problems:
        raise AssertionError("figure problems:\n  " + "\n  ".join(problems))
    return fig
