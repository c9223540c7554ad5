"""Training figures: panels of the per-iteration training records, labelled for a reader.

`plot_training` draws named `Panel`\\ s from the flat records `wildamp.train.run_training` passes to
``on_metrics``: every panel has a title and a y label with its unit, the x axis is env steps written
with units ("1.2 M"), related series share one axis (D(reference) and D(policy)), disc_acc shows the
healthy band, throughput leaves out the iterations of the first (compiling) call, and a panel with no
value yet says so instead of drawing an empty or misleading axis. `format_env_steps` and
`format_robot_time` print the same quantities in text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from wildamp.amp.monitor import HEALTHY_DISC_ACC

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

ITERATION_KEY = "training/iteration"
ENV_STEPS_KEY = "training/env_steps"


# --------------------------------------------------------------------------------------- text


def _scaled(n: float) -> str:
    for div, unit in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(n) >= div:
            v = n / div
            return f"{v:.3g}{unit}" if v < 100 else f"{v:,.0f}{unit}"
    return f"{n:,.0f}"


def format_env_steps(n: float) -> str:
    """Env steps with a unit a reader takes in at once: '512 env steps', '12.3 k env steps',
    '1.2 M env steps'."""
    if not math.isfinite(n) or n < 0:
        raise ValueError(f"env steps must be a finite count >= 0, got {n}")
    return f"{_scaled(n)} env steps"


def format_robot_time(seconds: float) -> str:
    """Simulated time in the unit that keeps it readable: '10 s', '12.5 min', '3.4 h'."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"seconds must be finite and >= 0, got {seconds}")
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


# --------------------------------------------------------------------------------------- records


def compile_free(records: Sequence[Mapping[str, Any]], iterations_per_call: int) -> list[Mapping[str, Any]]:
    """The records after the first jitted call of a run: its iterations' wall time includes compiling.

    ``records`` are one run's records in order (as `run_training` returns them); a resumed run
    compiles again on its first call, so pass the records of one `run_training` call.
    """
    if iterations_per_call < 1:
        raise ValueError(f"iterations_per_call must be >= 1, got {iterations_per_call}")
    return list(records[iterations_per_call:])


# --------------------------------------------------------------------------------------- panels


@dataclass(frozen=True)
class Panel:
    """One panel: ``series`` are (metric key, legend label) drawn on one axis."""

    title: str
    ylabel: str
    series: tuple[tuple[str, str], ...]
    band: tuple[float, float] | None = None   # shaded y range, e.g. the healthy disc_acc
    band_label: str = ""
    hline: float | None = None                # a reference level, e.g. disc_acc 0.5
    hline_label: str = ""
    skip_compile: bool = False                # leave out the first call's (compiling) iterations
    empty_note: str = "no value yet"

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.series)


_EPISODE_NOTE = "no episode ended yet"

PANELS: dict[str, Panel] = {
    "task_reward": Panel("task reward", "reward per step", (("reward/task", "task"),)),
    "style_reward": Panel("AMP style reward", "reward per step (0..1)", (("amp/reward_mean", "style"),)),
    "disc_acc": Panel("discriminator accuracy", "disc_acc", (("amp/disc_acc", "disc_acc"),),
                      band=HEALTHY_DISC_ACC,
                      band_label=f"healthy {HEALTHY_DISC_ACC[0]:g}–{HEALTHY_DISC_ACC[1]:g}",
                      hline=0.5, hline_label="0.5: cannot tell"),
    "disc_output": Panel("discriminator output", "mean D",
                         (("amp/disc_real_mean", "D(reference)"), ("amp/disc_fake_mean", "D(policy)"))),
    "vel_error": Panel("velocity error |v − cmd|", "m/s", (("env/vel_error", "|v − cmd|"),)),
    "episode_length": Panel("length of ended episodes", "steps", (("episode/length", "length"),),
                            empty_note=_EPISODE_NOTE),
    "episode_return": Panel("return of ended episodes", "return", (("episode/return", "return"),),
                            empty_note=_EPISODE_NOTE),
    "falls": Panel("ended episodes that fell", "fraction", (("episode/fall", "falls"),),
                   empty_note=_EPISODE_NOTE),
    "replay_fill": Panel("AMP replay buffer", "fraction full", (("amp/replay_fill", "fill"),)),
    "approx_kl": Panel("PPO approx. KL", "nats", (("ppo/approx_kl", "KL"),)),
    "sps": Panel("throughput (first call, compiling, left out)", "env steps / s",
                 (("training/sps", "env steps/s"),), skip_compile=True,
                 empty_note="only compiling iterations so far"),
}
#: What the training notebook redraws live.
LIVE_PANELS = ("task_reward", "style_reward", "disc_acc", "vel_error", "episode_length")
#: The AMP health figure of the training notebook.
HEALTH_PANELS = ("disc_acc", "disc_output", "replay_fill", "approx_kl", "falls", "sps")
#: Without the AMP panels (a PPO-only run).
PPO_PANELS = ("task_reward", "vel_error", "episode_length", "episode_return")


def panel_keys(panels: Sequence[str]) -> list[str]:
    """The metric keys the named panels read."""
    return [k for name in panels for k in PANELS[name].keys]


def _env_steps_axis(ax: Any) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _scaled(x)))


def _draw_panel(ax: Any, panel: Panel, runs: Mapping[str, Sequence[Mapping[str, Any]]],
                iterations_per_call: int) -> None:
    from wildamp.viz import LINE_STYLES

    drawn = 0
    all_x: list[float] = []
    for j, (run, records) in enumerate(runs.items()):
        all_x += [float(r[ENV_STEPS_KEY]) for r in records]
        rows = compile_free(records, iterations_per_call) if panel.skip_compile else list(records)
        xs = np.array([float(r[ENV_STEPS_KEY]) for r in rows], dtype=np.float64)
        for i, (key, label) in enumerate(panel.series):
            ys = np.array([float(r.get(key, math.nan)) for r in rows], dtype=np.float64)
            finite = np.isfinite(ys)
            if not finite.any():
                continue
            # Series of one run differ in colour and style; runs differ in line style (and colour when
            # a panel has one series), so two coinciding curves both show.
            style = LINE_STYLES[(i + j) % len(LINE_STYLES)]
            color = f"C{i}" if len(panel.series) > 1 else f"C{j}"
            name = label if len(runs) == 1 else (run if len(panel.series) == 1 else f"{run}: {label}")
            # A point with no finite neighbour would not show as a line: few points get markers.
            ax.plot(xs, ys, lw=1.3, marker="." if finite.sum() < 20 else None, ms=4, color=color, ls=style,
                    label=name)
            drawn += 1
    if panel.band is not None:
        ax.axhspan(*panel.band, color="tab:green", alpha=0.12, lw=0, label=panel.band_label)
    if panel.hline is not None:
        ax.axhline(panel.hline, color="0.5", ls=":", lw=0.9, label=panel.hline_label)
    if not drawn:
        n = max(len(r) for r in runs.values()) if runs else 0
        ax.text(0.5, 0.5, f"{panel.empty_note}\n({n} iterations)", ha="center", va="center",
                transform=ax.transAxes, fontsize=8, color="0.4")
        ax.set_yticks([])   # no values: a y scale would mean nothing
    if all_x and min(all_x) < max(all_x):
        pad = 0.03 * (max(all_x) - min(all_x))
        ax.set_xlim(min(all_x) - pad, max(all_x) + pad)   # the same x range as the other panels
    ax.set_title(panel.title, fontsize=9)
    ax.set_ylabel(panel.ylabel, fontsize=8)
    ax.set_xlabel("env steps", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    _env_steps_axis(ax)
    if drawn and (drawn > 1 or panel.band is not None or panel.hline is not None):
        ax.legend(fontsize=6, loc="best")


def plot_training(records: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Mapping[str, Any]]],
                  panels: Sequence[str] = LIVE_PANELS, iterations_per_call: int = 1, fig: "Figure | None" = None,
                  ncols: int = 3, title: str | None = None) -> "Figure":
    """Draw the named `PANELS` of one run's flat training records (``on_metrics`` records), or of
    several runs side by side (``{run name: records}``, e.g. PPO+AMP vs PPO only).

    Args:
        records: flat records with ``training/iteration`` and ``training/env_steps``, or a mapping of
            run name to such records.
        panels: names in `PANELS`.
        iterations_per_call: the trainer's ``iterations_per_call`` (panels with ``skip_compile``
            leave out the first call's iterations of each run).
        fig: clear and redraw this figure (live updating) instead of a new one.
        title: figure title.
    """
    import matplotlib.pyplot as plt

    runs = dict(records) if isinstance(records, Mapping) else {"": list(records)}
    unknown = [p for p in panels if p not in PANELS]
    if unknown:
        raise KeyError(f"unknown panels {unknown}; known: {sorted(PANELS)}")
    for recs in runs.values():
        for r in recs:
            if ITERATION_KEY not in r or ENV_STEPS_KEY not in r:
                raise KeyError(f"training record without {ITERATION_KEY!r}/{ENV_STEPS_KEY!r} "
                               f"(keys: {sorted(r)[:12]} ...)")
    cols = min(ncols, len(panels))
    rows = math.ceil(len(panels) / cols)
    if fig is None:
        fig = plt.figure(figsize=(3.8 * cols, 2.7 * rows + 0.4), layout="constrained")
    else:
        fig.clear()
        fig.set_layout_engine("constrained")
    for i, name in enumerate(panels):
        _draw_panel(fig.add_subplot(rows, cols, i + 1), PANELS[name], runs, iterations_per_call)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
