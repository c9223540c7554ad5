"""Metric registry, metric sinks (JSONL, TensorBoard, W&B) and a live training dashboard.

Every metric that training logs has exactly one declaration here: its name, what it means, how
values within one iteration are reduced (``aggregation``) and its unit. `MetricsLogger.log` refuses
undeclared names, so a typo or a silently renamed metric fails loudly instead of producing a
dashboard line that is never looked at (or one that silently disappears).

The JSONL file is the ground truth: one JSON object per line::

    {"iteration": 12, "env_steps": 98304, "time": 1.7e9, "elapsed_s": 35.2,
     "metrics": {"ppo/approx_kl": 0.011, "amp/disc_acc": null, ...},
     "nonfinite": {"amp/disc_acc": "nan"}}

JSON has no NaN/inf, so non-finite values are written as ``null`` and flagged in ``nonfinite``
(NaN in training must be visible, never dropped); `read_jsonl` restores them.

This module imports nothing heavy at import time (matplotlib and the optional logging backends are
imported where used), because the trainer imports it.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol, Sequence

import numpy as np

AGGREGATIONS = ("mean", "sum", "last", "max", "min")

LOGGING_EXTRA_HINT = "pip install 'wildamp[logging]'"


@dataclass(frozen=True)
class Metric:
    """Declaration of one metric (or of a family of metrics when ``name`` contains ``*``).

    Attributes:
        name: slash-separated name, e.g. ``ppo/approx_kl``; ``*`` in a pattern matches one or more
            characters other than ``/`` (``amp/disc_sigma_*`` matches ``amp/disc_sigma_0``).
        meaning: one sentence a researcher can read in a dashboard tooltip.
        aggregation: how values produced within one iteration (per minibatch, per env, ...) are
            reduced to the single logged value: one of ``mean|sum|last|max|min``.
        unit: physical unit or ``''`` for dimensionless.
    """

    name: str
    meaning: str
    aggregation: str
    unit: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or self.name != self.name.strip():
            raise ValueError(f"metric name must be a non-empty string without surrounding spaces, got {self.name!r}")
        if not self.meaning or not isinstance(self.meaning, str):
            raise ValueError(f"metric {self.name!r} needs a non-empty 'meaning'")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(
                f"metric {self.name!r}: aggregation {self.aggregation!r} is not one of {AGGREGATIONS}"
            )

    @property
    def is_pattern(self) -> bool:
        """True when this declaration covers a family of names (contains ``*``)."""
        return "*" in self.name


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    # '*' matches within one path segment so that 'amp/*' cannot swallow 'amp/x/y' by accident.
    return re.compile("^" + "[^/]+".join(re.escape(p) for p in pattern.split("*")) + "$")


class MetricRegistry:
    """Holds metric declarations; exact names and ``*`` patterns."""

    def __init__(self) -> None:
        self._exact: dict[str, Metric] = {}
        self._patterns: dict[str, tuple[Metric, re.Pattern[str]]] = {}

    def register(self, name: str, meaning: str, aggregation: str, unit: str = "") -> Metric:
        """Declare one metric (or a ``*`` pattern).

        Re-declaring a name with an identical definition is a no-op (notebook cells get re-run);
        re-declaring it differently raises ``ValueError``: a metric has exactly one meaning.
        """
        metric = Metric(name, meaning, aggregation, unit)
        table = self._patterns if metric.is_pattern else self._exact
        existing = table.get(name)
        if existing is not None:
            existing_metric = existing[0] if metric.is_pattern else existing
            if existing_metric != metric:
                raise ValueError(
                    f"metric {name!r} is already declared differently: {existing_metric} vs {metric}"
                )
            return existing_metric
        if metric.is_pattern:
            self._patterns[name] = (metric, _pattern_regex(name))
        else:
            self._exact[name] = metric
        return metric

    def declare_many(self, metrics: Iterable[Metric | tuple]) -> list[Metric]:
        """Declare several metrics, given as `Metric` objects or ``(name, meaning, aggregation[, unit])``."""
        out = []
        for m in metrics:
            if isinstance(m, Metric):
                out.append(self.register(m.name, m.meaning, m.aggregation, m.unit))
            else:
                out.append(self.register(*m))
        return out

    def lookup(self, name: str) -> Metric:
        """The declaration of ``name``: an exact declaration wins, else exactly one matching pattern.

        Raises ``KeyError`` if undeclared, or if two patterns match (ambiguous declaration).
        """
        if name in self._exact:
            return self._exact[name]
        hits = [m for m, rx in self._patterns.values() if rx.match(name)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise KeyError(
                f"metric {name!r} matches several pattern declarations "
                f"{[m.name for m in hits]}; every metric needs exactly one declaration"
            )
        raise KeyError(f"metric {name!r} is not declared (see wildamp.metrics.REGISTRY.register)")

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.lookup(name)
        except KeyError:
            return False
        return True

    def check_declared(self, names: Iterable[str]) -> None:
        """Raise ``KeyError`` listing every name in ``names`` that has no (unique) declaration."""
        bad = sorted({n for n in names if n not in self})
        if bad:
            raise KeyError(
                f"{len(bad)} undeclared metric name(s): {bad}. Declare them with "
                "wildamp.metrics.REGISTRY.register(name, meaning, aggregation, unit) "
                "(reward terms: wildamp.metrics.declare_reward_terms)."
            )

    def declarations(self) -> list[Metric]:
        """All declarations (exact names, then patterns), sorted by name."""
        return sorted(self._exact.values(), key=lambda m: m.name) + sorted(
            (m for m, _ in self._patterns.values()), key=lambda m: m.name
        )

    def reduce(self, name: str, values: Any) -> float:
        """Reduce an array of per-minibatch/per-env values to one number with ``name``'s aggregation."""
        agg = self.lookup(name).aggregation
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        if arr.size == 0:
            raise ValueError(f"metric {name!r}: cannot reduce an empty array")
        if agg == "last":
            return float(arr[-1])
        return float(getattr(np, agg)(arr))

    def to_markdown(self) -> str:
        """A markdown table of all declarations (for docs and notebooks)."""
        rows = ["| metric | aggregation | unit | meaning |", "|---|---|---|---|"]
        rows += [f"| `{m.name}` | {m.aggregation} | {m.unit} | {m.meaning} |" for m in self.declarations()]
        return "\n".join(rows)


REGISTRY = MetricRegistry()

# The metrics the trainer logs. Aggregation says how within-iteration values are reduced.
_BUILTIN: list[tuple[str, str, str, str]] = [
    ("training/sps", "environment (control) steps per second of wall time, this iteration", "mean", "steps/s"),
    ("training/env_steps", "total environment (control) steps so far, summed over envs", "last", "steps"),
    ("training/iteration", "training iteration index (one rollout + one update)", "last", ""),
    ("training/compile_s", "seconds spent compiling the jitted training iteration", "sum", "s"),
    ("ppo/policy_loss", "clipped PPO surrogate loss (to minimise)", "mean", ""),
    ("ppo/value_loss", "value-function regression loss", "mean", ""),
    ("ppo/entropy", "mean entropy of the action distribution", "mean", "nats"),
    ("ppo/approx_kl", "approximate KL divergence between behaviour and updated policy", "mean", "nats"),
    ("ppo/clip_fraction", "fraction of samples whose probability ratio was clipped", "mean", ""),
    ("ppo/explained_variance", "1 - Var(returns - values) / Var(returns) of the critic", "mean", ""),
    ("ppo/grad_norm", "global gradient norm before clipping", "mean", ""),
    ("ppo/learning_rate", "optimizer learning rate in effect", "last", ""),
    ("episode/length", "length of episodes that ended this iteration", "mean", "steps"),
    ("episode/return", "undiscounted total (task + style) return of episodes that ended this iteration", "mean", ""),
    ("episode/success", "fraction of ended episodes that reached the time limit without falling", "mean", ""),
    ("episode/fall", "fraction of ended episodes that ended by a fall (termination)", "mean", ""),
    ("episode/count", "number of episodes that ended this iteration", "sum", "episodes"),
    ("env/vel_error", "|v_x - cmd_x|: forward (heading-frame) velocity minus the commanded forward velocity", "mean", "m/s"),
    ("amp/disc_loss", "total discriminator loss (LSGAN + penalty + regularisers)", "mean", ""),
    ("amp/disc_lsgan_loss", "least-squares GAN part of the discriminator loss", "mean", ""),
    ("amp/disc_penalty", "gradient penalty on real samples (weighted)", "mean", ""),
    ("amp/disc_acc", "discriminator accuracy on real vs policy samples (0.5 = cannot tell)", "mean", ""),
    ("amp/disc_real_mean", "mean discriminator output on reference samples", "mean", ""),
    ("amp/disc_real_std", "std of discriminator output on reference samples", "mean", ""),
    ("amp/disc_fake_mean", "mean discriminator output on policy samples", "mean", ""),
    ("amp/disc_fake_std", "std of discriminator output on policy samples", "mean", ""),
    ("amp/replay_fill", "fraction of the AMP replay buffer holding policy samples", "last", ""),
    ("amp/reward_mean", "mean AMP style reward of this rollout (rollout-time discriminator)", "mean", ""),
    ("amp/reward_std", "std of the AMP style reward of this rollout", "mean", ""),
    ("amp/reward_p10", "10th percentile of the AMP style reward of this rollout", "mean", ""),
    ("amp/reward_p50", "median AMP style reward of this rollout", "mean", ""),
    ("amp/reward_p90", "90th percentile of the AMP style reward of this rollout", "mean", ""),
    ("amp/weight", "weight of the style reward in the total reward", "last", ""),
    ("amp/disc_sigma_*", "spectral-norm estimate (largest singular value) of discriminator layer i", "last", ""),
    ("eval/vel_error", "deterministic evaluation: mean |v_x - cmd_x| after the settling time, v_x averaged over env.velocity_window_seconds", "mean", "m/s"),
    ("eval/vel_error_instantaneous", "deterministic evaluation: mean |v_x - cmd_x| of every control step after the settling time", "mean", "m/s"),
    ("eval/targets_met", "deterministic evaluation: how many of the five walking targets are met", "last", ""),
    ("eval/fall_rate", "deterministic evaluation: fraction of episodes ending in a fall", "mean", ""),
    ("eval/episode_length", "deterministic evaluation: mean episode length", "mean", "steps"),
    ("eval/score", "deterministic evaluation score used to select the best checkpoint: targets met, ties broken by lower style AUC, then lower velocity error + fall rate (higher is better)", "mean", ""),
]
REGISTRY.declare_many(_BUILTIN)


def declare_reward_terms(names: Iterable[str], registry: MetricRegistry = REGISTRY) -> list[str]:
    """Declare ``reward/<term>`` for each reward term name; returns the metric names.

    Reward terms are logged as the per-step mean over the rollout of the *unweighted* term (multiply
    by its ``reward_weights`` entry for the contribution to the task reward).
    """
    out = []
    for term in names:
        if not isinstance(term, str) or not term or "/" in term or "*" in term:
            raise ValueError(f"invalid reward term name {term!r} (non-empty, no '/' or '*')")
        name = f"reward/{term}"
        registry.register(name, f"mean per-step unweighted value of reward term '{term}'", "mean")
        out.append(name)
    return out


# --------------------------------------------------------------------------------------- sinks


class Sink(Protocol):
    """Receives one validated record per `MetricsLogger.log` call."""

    def write(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def _to_float(name: str, value: Any) -> float:
    """Convert a scalar (python, numpy or 0-d/size-1 jax array) to float; refuse anything else."""
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"metric {name!r}: expected a number, got {type(value).__name__} {value!r}")
    try:
        arr = np.asarray(value)
    except Exception as e:  # noqa: BLE001 - re-raised with the metric name
        raise TypeError(f"metric {name!r}: cannot convert {type(value).__name__} to a number") from e
    if arr.size != 1:
        raise ValueError(
            f"metric {name!r}: expected a scalar, got shape {arr.shape}; reduce it first "
            f"(REGISTRY.reduce({name!r}, values))"
        )
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"metric {name!r}: expected a number, got dtype {arr.dtype}")
    return float(arr.reshape(()))


def _nonfinite_tag(x: float) -> str | None:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return None


class JsonlSink:
    """Appends one JSON object per line to ``path`` (appending makes resumed runs continue the file).

    Each line goes to the file in one ``write`` on an ``O_APPEND`` descriptor, so a notebook can plot
    a run that is still training and a kill leaves at most one partial last line (which
    `read_jsonl` skips and `trim_jsonl` removes on resume).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, record: dict[str, Any]) -> None:
        if self._fd is None:
            raise RuntimeError(f"{self.path}: JsonlSink.write after close()")
        metrics: dict[str, float | None] = {}
        nonfinite: dict[str, str] = {}
        for k, v in record["metrics"].items():
            tag = _nonfinite_tag(v)
            if tag is None:
                metrics[k] = v
            else:
                metrics[k] = None
                nonfinite[k] = tag
        line = (json.dumps(dict(record, metrics=metrics, nonfinite=nonfinite), allow_nan=False) + "\n").encode()
        written = os.write(self._fd, line)
        while written < len(line):  # a regular file takes the whole line at once; be safe anyway
            written += os.write(self._fd, line[written:])

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class TensorBoardSink:
    """Writes scalars with tensorboardX (optional dependency: ``wildamp[logging]``).

    The x axis is env steps when ``training/env_steps`` is logged, else the iteration.
    """

    def __init__(self, logdir: str | os.PathLike) -> None:
        try:
            from tensorboardX import SummaryWriter
        except ImportError as e:
            raise ImportError(
                f"TensorBoardSink needs tensorboardX, which is not installed: {LOGGING_EXTRA_HINT}"
            ) from e
        self.logdir = Path(logdir)
        self._writer = SummaryWriter(logdir=str(self.logdir))

    def write(self, record: dict[str, Any]) -> None:
        step = record["env_steps"] if record["env_steps"] is not None else record["iteration"]
        for k, v in record["metrics"].items():
            self._writer.add_scalar(k, v, global_step=step)

    def close(self) -> None:
        self._writer.flush()
        self._writer.close()


class WandbSink:
    """Logs to Weights & Biases (optional dependency: ``wildamp[logging]``); offline by default."""

    def __init__(
        self,
        project: str,
        mode: str = "offline",
        dir: str | os.PathLike | None = None,  # noqa: A002 - mirrors wandb.init's argument name
        config: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        try:
            import wandb
        except ImportError as e:
            raise ImportError(f"WandbSink needs wandb, which is not installed: {LOGGING_EXTRA_HINT}") from e
        if mode not in ("offline", "online", "disabled"):
            raise ValueError(f"WandbSink mode must be 'offline', 'online' or 'disabled', got {mode!r}")
        self._run = wandb.init(
            project=project,
            mode=mode,
            dir=None if dir is None else str(dir),
            config=dict(config) if config is not None else None,
            name=name,
        )

    def write(self, record: dict[str, Any]) -> None:
        payload = dict(record["metrics"])
        if record["env_steps"] is not None:
            payload.setdefault("training/env_steps", record["env_steps"])
        self._run.log(payload, step=record["iteration"])

    def close(self) -> None:
        self._run.finish()


class MetricsLogger:
    """Validates metrics against the registry and fans one record out to every sink.

    A `JsonlSink` at ``run_dir/metrics.jsonl`` is always present (added unless ``sinks`` already
    holds a JsonlSink); TensorBoard/W&B sinks are extra.
    """

    JSONL_NAME = "metrics.jsonl"

    def __init__(
        self,
        run_dir: str | os.PathLike,
        sinks: Sequence[Sink] = (),
        registry: MetricRegistry = REGISTRY,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.registry = registry
        self.sinks: list[Sink] = list(sinks)
        if not any(isinstance(s, JsonlSink) for s in self.sinks):
            self.sinks.insert(0, JsonlSink(self.run_dir / self.JSONL_NAME))
        self._t0 = time.time()
        self._closed = False

    @property
    def jsonl_path(self) -> Path:
        """Path of the (first) JSONL sink."""
        return next(s for s in self.sinks if isinstance(s, JsonlSink)).path

    def log(self, step: int, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """Log ``metrics`` for iteration ``step``; returns the record written.

        Every name must be declared (``KeyError`` listing all undeclared names otherwise). Values
        must be scalars; NaN/inf are kept (and flagged in the JSONL file), never dropped.
        ``training/env_steps`` (if present) also becomes the record's ``env_steps`` field.
        """
        if self._closed:
            raise RuntimeError("MetricsLogger.log called after close()")
        if isinstance(step, bool) or int(step) != step or step < 0:
            raise ValueError(f"step must be a non-negative integer, got {step!r}")
        self.registry.check_declared(metrics.keys())
        values = {k: _to_float(k, v) for k, v in metrics.items()}
        env_steps = values.get("training/env_steps")
        if env_steps is not None and _nonfinite_tag(env_steps) is None:
            env_steps = int(env_steps)
        elif env_steps is not None:
            raise ValueError(f"training/env_steps is {env_steps}; it must be finite")
        now = time.time()
        record = {
            "iteration": int(step),
            "env_steps": env_steps,
            "time": now,
            "elapsed_s": now - self._t0,
            "metrics": values,
        }
        for sink in self.sinks:
            sink.write(record)
        return record

    def close(self) -> None:
        """Close every sink (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for sink in self.sinks:
            sink.close()

    def __enter__(self) -> "MetricsLogger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------- reading

_NONFINITE_VALUES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a metrics JSONL file; non-finite values flagged by the writer come back as nan/±inf.

    A final line without a trailing newline (the writer was killed mid-line, or is writing it
    right now) is ignored if it does not parse; a malformed line anywhere else raises ``ValueError``
    naming the file and line number.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    # After the final '\n' split() yields '' : a complete file. Anything else is a partial last line.
    partial_last = lines[-1] != ""
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            if partial_last and i == len(lines) - 1:
                break
            raise ValueError(f"{path}:{i + 1}: malformed metrics line: {e}") from e
        metrics = rec.get("metrics", {})
        for k, tag in rec.get("nonfinite", {}).items():
            metrics[k] = _NONFINITE_VALUES[tag]
        records.append(rec)
    return records


@dataclass(frozen=True)
class TrimReport:
    """What `trim_jsonl` removed: rows past the resumed iteration and a partial last line."""

    kept: int
    dropped_rows: int
    dropped_partial_line: bool

    def describe(self) -> str:
        parts = []
        if self.dropped_rows:
            parts.append(f"{self.dropped_rows} row(s) logged after the checkpoint")
        if self.dropped_partial_line:
            parts.append("a partial last line (the writer was killed mid-line)")
        return " and ".join(parts)


def trim_jsonl(path: str | os.PathLike, max_iteration: int) -> TrimReport:
    """Keep the rows of a metrics file up to ``max_iteration`` (the checkpoint a run resumes from).

    Rows logged after that checkpoint are trained again by the resumed run (they would be
    duplicated), and a partial last line left by a kill would otherwise glue itself to the next row.
    The file is rewritten atomically, and only if something is dropped. A malformed line before the
    last raises ``ValueError`` naming the file and line (nothing is changed then).
    """
    path = Path(path)
    if not path.exists():
        return TrimReport(0, 0, False)
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    partial = lines[-1] != ""
    complete = lines[:-1]
    if partial:
        try:
            json.loads(lines[-1])
            complete.append(lines[-1])  # a whole row that only lacks its newline
            partial = False
        except json.JSONDecodeError:
            pass
    keep: list[str] = []
    dropped = 0
    for i, line in enumerate(complete):
        if not line.strip():
            continue
        try:
            it = json.loads(line)["iteration"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{path}:{i + 1}: malformed metrics line ({e}); fix or remove it") from None
        if int(it) <= max_iteration:
            keep.append(line)
        else:
            dropped += 1
    if dropped or partial or (lines[-1] != "" and not partial):
        tmp = path.with_name(f".{path.name}.trim.tmp")
        tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
        os.replace(tmp, path)
    return TrimReport(len(keep), dropped, partial)


def _x_kind(records: Sequence[Mapping[str, Any]], key: str, x: str = "auto") -> tuple[list, str]:
    rows = [r for r in records if key in r.get("metrics", {})]
    if x == "auto":
        x = "env_steps" if rows and all(r.get("env_steps") is not None for r in rows) else "iteration"
    return rows, x


def metric_series(records: Sequence[Mapping[str, Any]], key: str, x: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` arrays for one metric over the records that contain it.

    ``x`` is ``'env_steps'``, ``'iteration'`` or ``'auto'`` (env steps when every record holding
    ``key`` has them, else iteration).
    """
    rows, x = _x_kind(records, key, x)
    if x not in ("env_steps", "iteration"):
        raise ValueError(f"x must be 'env_steps', 'iteration' or 'auto', got {x!r}")
    xs = np.array([r[x] for r in rows], dtype=np.float64)
    ys = np.array([np.nan if r["metrics"][key] is None else r["metrics"][key] for r in rows], dtype=np.float64)
    return xs, ys


DASHBOARD_KEYS = (
    "episode/return",
    "amp/reward_mean",
    "amp/disc_acc",
    "env/vel_error",
    "episode/length",
)


def _plot_series(ax: Any, key: str, xs: np.ndarray, ys: np.ndarray) -> None:
    """One dashboard panel's curve. NaN means "no value this iteration" (e.g. ``episode/*`` when no
    episode ended) and leaves a gap; a finite point with no finite neighbour gets a dot so it stays
    visible; ±inf (an overflow, a real error) is marked with a red × on the x axis. A series without
    a single finite value draws nothing but a note in the panel."""
    finite = np.isfinite(ys)
    if not finite.any():
        note = "no episode finished yet" if key.startswith("episode/") else "no finite value yet"
        ax.text(0.5, 0.5, f"{note}\n({len(ys)} records)", ha="center", va="center",
                transform=ax.transAxes, fontsize=8, color="gray")
        ax.set_yticks([])
        if len(xs) and xs.min() < xs.max():
            ax.set_xlim(xs.min(), xs.max())  # the same x range as the other panels
    else:
        (line,) = ax.plot(xs, ys, lw=1.2)
        prev = np.concatenate([[False], finite[:-1]])
        nxt = np.concatenate([finite[1:], [False]])
        alone = finite & ~prev & ~nxt
        if alone.any():
            ax.plot(xs[alone], ys[alone], ls="none", marker=".", ms=3, color=line.get_color())
    inf = np.isinf(ys)
    if inf.any():
        ax.plot(xs[inf], np.zeros(inf.sum()), "rx", transform=ax.get_xaxis_transform(), clip_on=False)


def plot_dashboard(
    records: Sequence[Mapping[str, Any]],
    keys: Sequence[str] | None = None,
    axes: Any = None,
    ncols: int = 3,
):
    """A grid of small line plots, one per metric present in ``records``.

    Args:
        records: output of `read_jsonl` (or the records `MetricsLogger.log` returned).
        keys: metric names; default `DASHBOARD_KEYS` (task return, AMP reward, disc_acc, velocity
            error, episode length). Keys absent from every record are skipped.
        axes: ``None`` for a new figure, or an existing matplotlib ``Figure`` to clear and redraw
            (live updating in a notebook loop: ``fig = plot_dashboard(read_jsonl(p), axes=fig)``).
        ncols: columns of the grid.

    Returns:
        The matplotlib Figure. With no key present it holds one axis saying so. Missing (NaN) values
        are gaps; a panel without any finite value says so instead of drawing a curve.
    """
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    keys = list(DASHBOARD_KEYS if keys is None else keys)
    present = [k for k in keys if any(k in r.get("metrics", {}) for r in records)]
    n = max(len(present), 1)
    cols = min(ncols, n)
    rows = math.ceil(n / cols)
    if axes is None:
        fig = plt.figure(figsize=(3.6 * cols, 2.6 * rows))
    elif isinstance(axes, Figure):
        fig = axes
        fig.clear()
    else:
        raise TypeError(f"axes must be None or a matplotlib Figure, got {type(axes).__name__}")
    if not present:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, f"no metrics yet ({len(records)} records)", ha="center", va="center")
        ax.set_axis_off()
        return fig
    for i, key in enumerate(present):
        ax = fig.add_subplot(rows, cols, i + 1)
        xs, ys = metric_series(records, key)
        _plot_series(ax, key, xs, ys)
        unit = REGISTRY.lookup(key).unit if key in REGISTRY else ""
        ax.set_title(key + (f" [{unit}]" if unit else ""), fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if key == "amp/disc_acc":
            ax.axhline(0.5, color="gray", ls="--", lw=0.8)  # 0.5 = the discriminator cannot tell
    _, x_kind = _x_kind(records, present[0])
    fig.supxlabel("env steps" if x_kind == "env_steps" else "iteration", fontsize=9)
    fig.tight_layout()
    return fig
