"""wildamp.figcheck: each defect a notebook figure must not have is found, and a clean figure passes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from wildamp.figcheck import check_figure, figure_problems  # noqa: E402

X = np.linspace(0.0, 1.0, 50)


def _axes(**kw):
    fig, ax = plt.subplots(figsize=(5, 3), layout="constrained", **kw)
    return fig, ax


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_a_clean_figure_passes():
    fig, ax = _axes()
    ax.plot(X, X, label="a")
    ax.plot(X, X ** 2, label="b")
    ax.set_xlabel("time [s]"); ax.set_ylabel("m"); ax.set_title("t")
    ax.legend(loc="upper left")
    assert figure_problems(fig) == [] and check_figure(fig) is fig


def test_a_figure_made_without_pyplot_is_checked_too():
    from matplotlib.figure import Figure

    fig = Figure()                                     # as LivePlot makes it: no pyplot, no canvas to draw on
    ax = fig.add_subplot()
    ax.plot(X, X)
    assert figure_problems(fig) == ["panel 0: no x label", "panel 0: no y label"]


def test_missing_axis_labels_are_found_and_shared_or_figure_labels_count():
    fig, ax = _axes()
    ax.plot(X, X)
    assert figure_problems(fig) == ["panel 0: no x label", "panel 0: no y label"]
    fig.supxlabel("time [s]")
    fig.supylabel("m")
    assert figure_problems(fig) == []
    # A column of panels sharing x: the bottom one's label serves both.
    fig, axes = plt.subplots(2, 1, sharex=True, layout="constrained")
    for ax in axes:
        ax.plot(X, X); ax.set_ylabel("m")
    axes[1].set_xlabel("time [s]")
    assert figure_problems(fig) == []


def test_an_empty_panel_needs_a_note():
    fig, ax = _axes()
    ax.set_xlabel("x"); ax.set_ylabel("y"); ax.set_title("falls")
    ax.plot(X, np.full_like(X, np.nan))               # nothing finite to draw
    assert figure_problems(fig) == ["panel 0 ('falls'): empty, and no note says why"]
    ax.text(0.5, 0.5, "no episode ended yet", transform=ax.transAxes)
    assert figure_problems(fig) == []
    fig, ax = _axes()                                  # bars count as data
    ax.broken_barh([(0.1, 0.2)], (0, 1)); ax.set_xlabel("x"); ax.set_ylabel("y")
    assert figure_problems(fig) == []


def test_a_line_exactly_under_another_is_found_unless_styled_apart_or_noted():
    fig, ax = _axes()
    ax.plot(X, X, label="noise 0.0")
    ax.plot(X, X + 1e-5, label="noise 0.05")          # the same picture
    ax.set_xlabel("x"); ax.set_ylabel("y")
    problems = figure_problems(fig)
    assert len(problems) == 1 and "'noise 0.05' hides line 'noise 0.0'" in problems[0]
    ax.lines[1].set_linestyle("--")                    # dashed over solid: both show
    assert figure_problems(fig) == []
    ax.lines[1].set_linestyle("-")
    ax.lines[0].set_linewidth(3.0)                     # a wide line under a thin one shows at its edges
    assert figure_problems(fig) == []
    ax.lines[0].set_linewidth(1.5)
    ax.lines[1].set_label("noise 0.05 (identical)")
    assert figure_problems(fig) == []
    ax.lines[1].set_label("noise 0.05")
    ax.plot(X, X + 0.2, label="noise 0.2")             # a different curve is no problem
    assert len(figure_problems(fig)) == 1


def test_a_legend_over_a_curve_is_found():
    fig, ax = _axes()
    ax.plot(X, np.ones_like(X), label="flat at the top")
    ax.plot(X, np.zeros_like(X), label="flat at the bottom")
    ax.set_xlabel("x"); ax.set_ylabel("y")
    ax.legend(loc="upper center", fontsize=12)
    problems = figure_problems(fig)
    assert len(problems) == 1 and "legend covers" in problems[0] and "flat at the top" in problems[0]


def test_a_figure_title_over_a_panel_title_is_found():
    fig, axes = plt.subplots(1, 3, figsize=(8, 3))
    for ax in axes:
        ax.plot(X, X); ax.set_xlabel("x"); ax.set_ylabel("y"); ax.set_title("a panel title")
    fig.tight_layout()
    fig.suptitle("a long figure title that runs across the middle panel", y=0.93)  # after layout: overlaps
    problems = figure_problems(fig)
    assert any("figure title and title of panel 1 overlap" in p for p in problems), problems
    with pytest.raises(AssertionError, match="overlap"):
        check_figure(fig)
    # A figure legend over the figure title counts too.
    fig, ax = _axes()
    ax.plot(X, X, label="a curve with a long legend entry"); ax.set_xlabel("x"); ax.set_ylabel("y")
    fig.suptitle("a figure title")
    fig.legend(loc="upper center")
    assert any("figure title and figure legend 0 overlap" in p for p in figure_problems(fig))
    fig.legends[0].remove()
    fig.supxlabel("time [s]")
    fig.legend(loc="lower center")
    assert any("figure x label and figure legend 0 overlap" in p for p in figure_problems(fig))
