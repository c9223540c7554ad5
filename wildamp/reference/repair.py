"""Repair an infeasible clip: the nearest walk this robot can follow, keeping the source's style.

Retargeted human clips usually fail the feasibility gate (straight knees on their stops, a cadence
the servos cannot follow, an unbalanced start; ARCHITECTURE.md §5). Editing such a clip frame by
frame rarely makes it followable. The embedded gait generator (:mod:`wildamp.reference.generator`),
on the other hand, makes balanced walks the gate accepts over a range of its parameters. So the
repair *fits the generator to the source*:

1. **Measure the source**: its AMP samples (:class:`wildamp.reference.style.StyleFeatures`), its
   forward speed in its own heading frame and its cadence (the dominant frequency of the hip swing).
2. **Start** from the embedded gait at the source's speed (clamped to the speeds the embedded gait
   covers), with the source's cadence where the generator can make it.
3. **Fit** the generator parameters of :data:`FIT_RANGES` (cadence, speed, step height, pelvis
   height and lean, rocking, push phase, pelvis bob, torso counter-rotation) by bounded least squares
   (``scipy.optimize.least_squares``) on the standardised differences of every AMP channel's mean and
   spread (:class:`wildamp.reference.style.SourceStyle`), within the ranges the gait tuner
   searches (:data:`wildamp.reference.tuning.TUNABLE_RANGES`). The other parameters keep the start's
   values. A candidate the generator refuses (a joint leaves its range) scores a large residual.
4. **Verify** the fitted clip with the gate (:func:`wildamp.reference.feasibility.check_clip`,
   the thresholds of ``wildamp reference check``) from the tuner's four start timings (a clip that
   passes from one start only is fragile; optionally the tracked robot must keep a share of the
   reference's speed, :class:`GateVerdict`). If it fails, the first of the start, the
   embedded gait at the source's speed and the embedded gait at the nearest speed of its dataset
   that passes is an anchor, and a bisection on the straight line from the anchor to the fitted
   parameters (:data:`BISECTION_STEPS`) keeps the passing point nearest the fit. None passing: not
   repairable.
5. **Report** the style distance to the source *before* (the embedded gait at the source's speed)
   and *after* (the repaired clip): the leak detector's classifier AUC, the RMS standardised
   distance and the most different channels (:mod:`wildamp.reference.style`).

What the repair cannot keep: the generator walks straight ahead at a steady speed with WildRobot's
rocking gait, so a source's turning, sideways walking or speed changes are not reproduced (the
report states the source's heading change and lateral speed).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import mujoco
import numpy as np

from wildamp import quat
from wildamp.reference.clip import Clip, MotionDataset
from wildamp.reference.conventions import QuatOrder, joint_signs
from wildamp.reference.feasibility import DEFAULT_CTRL_DT, ClipReport, FeasibilityThresholds, check_clip
from wildamp.reference.generator import DEFAULT_SPEEDS, GaitParams, default_gait_params, generate_clip
from wildamp.reference.resample import resample_clip
from wildamp.reference.style import (
    SourceStyle, StyleComparison, StyleFeatures, compare_style, format_channel_table,
)
from wildamp.reference.tuning import DEFAULT_SETTLE_TIMES, TUNABLE_RANGES

__all__ = ["FIT_RANGES", "DURATION_RANGE", "BISECTION_STEPS", "FAILED_RESIDUAL",
           "load_source_clip", "SourceMotion", "measure_source", "FitResult", "fit_gait", "GateVerdict",
           "gate_verdict", "GateAttempt", "RepairResult", "repair_clip", "format_repair_report", "repaired_dataset"]

#: Fitted :class:`GaitParams` fields and their bounds. ``speed`` spans the embedded gait's forward
#: speeds (every one passes the gate); ``waist_yaw_gain`` only turns the upper torso and does not
#: change the balance, so it gets a wide range; the others are the tuner's search ranges.
FIT_RANGES: dict[str, tuple[float, float]] = {
    "speed": (min(DEFAULT_SPEEDS), max(DEFAULT_SPEEDS)),
    "step_period": TUNABLE_RANGES["step_period"],
    "step_height": TUNABLE_RANGES["step_height"],
    "pelvis_height": TUNABLE_RANGES["pelvis_height"],
    "pelvis_pitch": TUNABLE_RANGES["pelvis_pitch"],
    "rock_gain": TUNABLE_RANGES["rock_gain"],
    "double_support_fraction": TUNABLE_RANGES["double_support_fraction"],
    "stance_lift": TUNABLE_RANGES["stance_lift"],
    "waist_yaw_gain": (0.0, 1.0),
}
#: Default length (s) of the repaired clip: the source's, within this range. The same length keeps
#: the share of standing and ramp-up frames the same; the embedded gait's clips are 5 s, and longer
#: open-loop clips at its faster speeds fall (README, "Reference gait").
DURATION_RANGE: tuple[float, float] = (3.0, GaitParams().duration)
#: Bisection steps on the straight line from a feasible anchor (0) to the fitted parameters (1) when
#: the fitted clip fails the gate: the repair keeps the passing point nearest the fit (resolution 1/16).
BISECTION_STEPS = 4
#: Residual (in source standard deviations, per entry) of a candidate the generator refuses: far
#: worse than any clip it makes, so the least-squares steps stay where clips can be made.
FAILED_RESIDUAL = 10.0
#: Gait cycles per second searched for the source's cadence (a step period of 0.15-0.6 s).
_CYCLE_HZ = (1.0 / (2 * 0.6), 1.0 / (2 * 0.15))


def load_source_clip(path: str | os.PathLike, spec: Any, clip: str | None = None, source_spec: Any = None,
                     quat_order: QuatOrder | None = None) -> Clip:
    """The clip to repair: a GMR pickle (``.pkl``, converted as ``wildamp reference convert-gmr``
    does: joint signs from ``source_spec``'s axes, default ``spec``'s, quaternion order checked unless
    ``quat_order`` states it) or the clip named ``clip`` of a motion dataset (``.npz``; the name may be
    left out when it holds one clip). Raises FileNotFoundError, KeyError (unknown clip), ValueError
    (anything else unusable) and :class:`wildamp.reference.conventions.ConventionError`."""
    from wildamp.reference.gmr import convert_gmr_files

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.suffix == ".pkl":
        source = source_spec or spec
        signs = joint_signs(source.joint_names, source.joint_axes, spec.joint_names, spec.joint_axes)
        ds = convert_gmr_files([path], source.joint_names, None, target_fps=1.0 / DEFAULT_CTRL_DT,
                               quat_order=quat_order, joint_signs=signs)
    elif path.suffix == ".npz":
        ds = MotionDataset.load(path, joint_names=spec.joint_names)
    else:
        raise ValueError(f"{path}: expected a GMR pickle (.pkl) or a motion dataset (.npz)")
    if clip is None:
        if ds.num_clips != 1:
            raise ValueError(f"{path} holds {ds.num_clips} clips {list(ds.clip_names)}; name one with --clip")
        return ds.clips[0]
    return ds.clip(clip)


@dataclass(frozen=True)
class SourceMotion:
    """What the repair reads off the source clip before fitting (SI units)."""

    forward_speed: float  # mean velocity along the heading (m/s)
    lateral_speed: float  # mean velocity to the left of the heading (m/s)
    heading_change: float  # yaw at the end minus yaw at the start (rad)
    step_period: float | None  # half the period of the dominant hip swing (s); None: no clear swing
    duration: float  # s


def _hip_swing_period(clip: Clip) -> float | None:
    """Half the period (s) of the strongest hip-pitch oscillation within :data:`_CYCLE_HZ`, or None."""
    hips = [n for n in clip.joint_names if n.endswith("hip_pitch")]
    if not hips or clip.duration < 1.0 / _CYCLE_HZ[0]:
        return None
    x = clip.joint_pos[:, [clip.joint_names.index(n) for n in hips]]
    x = x - x.mean(axis=0)
    n = 8 * clip.num_frames  # zero-padding: finer frequency grid
    power = np.sum(np.abs(np.fft.rfft(x * np.hanning(clip.num_frames)[:, None], n=n, axis=0)) ** 2, axis=1)
    freq = np.fft.rfftfreq(n, 1.0 / clip.fps)
    band = (freq >= _CYCLE_HZ[0]) & (freq <= _CYCLE_HZ[1])
    if not band.any() or power[band].max() <= 1e-12:
        return None
    return float(0.5 / freq[band][np.argmax(power[band])])


def measure_source(clip: Clip) -> SourceMotion:
    """Speed in the clip's own heading frame, heading change and cadence of ``clip``."""
    dt = 1.0 / clip.fps
    vel = np.diff(clip.root_pos[:, :2], axis=0) / dt
    yaw = np.unwrap(quat.yaw_of(clip.root_quat))
    mid = 0.5 * (yaw[1:] + yaw[:-1])
    forward = np.cos(mid) * vel[:, 0] + np.sin(mid) * vel[:, 1]
    lateral = -np.sin(mid) * vel[:, 0] + np.cos(mid) * vel[:, 1]
    return SourceMotion(forward_speed=float(forward.mean()), lateral_speed=float(lateral.mean()),
                        heading_change=float(yaw[-1] - yaw[0]), step_period=_hip_swing_period(clip),
                        duration=float(clip.duration))


def _to_unit(values: dict[str, float]) -> np.ndarray:
    return np.array([(values[k] - lo) / (hi - lo) for k, (lo, hi) in FIT_RANGES.items()])


def _from_unit(u: np.ndarray) -> dict[str, float]:
    u = np.clip(u, 0.0, 1.0)
    return {k: float(lo + x * (hi - lo)) for x, (k, (lo, hi)) in zip(u, FIT_RANGES.items())}


def _params(base: GaitParams, fitted: dict[str, float]) -> GaitParams:
    return dataclasses.replace(base, **fitted).validate()


@dataclass
class FitResult:
    """The fitted parameters, the start they came from and the distances along the way."""

    start: GaitParams
    params: GaitParams
    start_distance: float
    distance: float
    evaluations: int
    refused: int  # candidates the generator refused (a joint outside its range)
    history: list[float] = field(default_factory=list)  # best distance after each evaluation


class _Budget(Exception):
    """The evaluation budget is spent (stops ``least_squares`` from inside its objective)."""


def fit_gait(source: SourceStyle, start: GaitParams, make_samples: Callable[[GaitParams], np.ndarray],
             evaluations: int = 120, progress: bool = True) -> FitResult:
    """Bounded least squares of the :data:`FIT_RANGES` fields of ``start`` on the source's style.

    ``make_samples(params)`` generates a clip and returns its AMP samples (ValueError when the
    generator refuses the parameters). At most ``evaluations`` candidates are generated (the
    finite-difference Jacobian's included); the best one seen is returned.
    """
    from scipy.optimize import least_squares
    from tqdm.auto import tqdm

    if evaluations < 1:
        raise ValueError(f"evaluations must be >= 1, got {evaluations}")
    base_values = {k: float(getattr(start, k)) for k in FIT_RANGES}
    u0 = np.clip(_to_unit(base_values), 0.0, 1.0)
    n_res = 2 * source.scale.shape[0]
    best: dict[str, Any] = {"cost": math.inf, "u": u0}
    state = {"n": 0, "refused": 0}
    history: list[float] = []
    bar = tqdm(total=evaluations, desc="fit gait to source", disable=not progress)

    def residuals(u: np.ndarray) -> np.ndarray:
        if state["n"] >= evaluations:
            raise _Budget
        state["n"] += 1
        bar.update(1)
        try:
            r = source.residuals(make_samples(_params(start, _from_unit(u))))
        except ValueError:
            state["refused"] += 1
            r = np.full(n_res, FAILED_RESIDUAL)
        cost = float(np.mean(r * r))
        if cost < best["cost"]:
            best.update(cost=cost, u=np.array(u, dtype=np.float64))
        history.append(math.sqrt(best["cost"]))
        bar.set_postfix(distance=f"{math.sqrt(best['cost']):.3f}", refused=state["refused"])
        return r

    try:
        r0 = residuals(u0)
        if not np.all(r0 == FAILED_RESIDUAL):
            # Finite differences of 3 % of each range: the generator is smooth at that scale but
            # its clips are sampled in frames, so much smaller steps see the sampling, not the slope.
            least_squares(residuals, u0, bounds=(0.0, 1.0), diff_step=0.03, x_scale=1.0, method="trf",
                          max_nfev=evaluations)
    except _Budget:
        pass
    finally:
        bar.close()
    if not math.isfinite(best["cost"]) or np.all(r0 == FAILED_RESIDUAL):
        raise ValueError(f"the generator refuses the start parameters {dataclasses.asdict(start)}")
    return FitResult(start=start, params=_params(start, _from_unit(best["u"])),
                     start_distance=float(np.sqrt(np.mean(r0 * r0))), distance=math.sqrt(best["cost"]),
                     evaluations=state["n"], refused=state["refused"], history=history)


@dataclass
class GateVerdict:
    """A clip on the gate from several start timings (``settle_time``).

    It passes when every run passes the gate and the tracked robot keeps at least
    ``min_speed_ratio`` of the reference's mean speed in every run (0: the gate alone). The gate's
    speed tolerance (0.05 m/s + 30 %) lets a short clip pass while the robot walks at half its
    speed, where the embedded gait keeps 0.87-1.18 of it (README "Reference gait").
    """

    reports: list[ClipReport]
    settle_times: tuple[float, ...]
    min_speed_ratio: float = 0.0

    @property
    def speed_ratios(self) -> list[float]:
        """Tracked / reference mean speed of every run (NaN for a reference standing still)."""
        return [r.sim_speed / r.ref_speed if r.ref_speed > 1e-9 else float("nan") for r in self.reports]

    def _run_passed(self, report: ClipReport, ratio: float) -> bool:
        return report.passed and not ratio < self.min_speed_ratio

    @property
    def passed(self) -> bool:
        """True when every start timing passes the gate at ``min_speed_ratio`` of the speed or more."""
        return all(self._run_passed(r, q) for r, q in zip(self.reports, self.speed_ratios))

    def describe(self) -> str:
        """One line: how many starts pass, the tracked speed range, the first failing run's failures."""
        runs = list(zip(self.settle_times, self.reports, self.speed_ratios))
        n = sum(self._run_passed(r, q) for _, r, q in runs)
        # Over runs that did not fall: a fall stops the run, and the few steps before say nothing.
        ratios = [q for _, r, q in runs if not r.fell and np.isfinite(q)]
        speed = f", tracked speed {min(ratios):.2f}-{max(ratios):.2f} of the reference" if ratios else ""
        line = f"{'passes' if self.passed else 'FAILS'} from {n}/{len(runs)} start timings{speed}"
        failing = next(((s, r, q) for s, r, q in runs if not self._run_passed(r, q)), None)
        if failing is not None:
            s, r, q = failing
            why = r.failures or [f"tracked speed {q:.2f} of the reference < {self.min_speed_ratio:g}"]
            line += f"; start {s:g} s: " + "; ".join(why)
        return line

    def to_dict(self) -> dict:
        """JSON-ready: pass/fail, and the gate's failures and the speed ratio of every start timing."""
        return {"passed": self.passed, "min_speed_ratio": self.min_speed_ratio,
                "runs": [{"settle_time": s, "gate_passed": r.passed, "failures": r.failures,
                          "speed_ratio": None if not np.isfinite(q) else q}
                         for s, r, q in zip(self.settle_times, self.reports, self.speed_ratios)]}


def gate_verdict(model: mujoco.MjModel, spec: Any, clip: Clip, thresholds: FeasibilityThresholds,
                 settle_times: Sequence[float], min_speed_ratio: float = 0.0) -> GateVerdict:
    """The gate on ``clip`` from every start timing of ``settle_times`` (the thresholds' own included)."""
    times = tuple(sorted({float(thresholds.settle_time), *(float(t) for t in settle_times)}))
    return GateVerdict(reports=[check_clip(model, spec, clip, dataclasses.replace(thresholds, settle_time=t))
                                for t in times], settle_times=times, min_speed_ratio=float(min_speed_ratio))


@dataclass
class GateAttempt:
    """One candidate clip on the gate: which parameters (``label``) and the verdict."""

    label: str
    params: GaitParams
    verdict: GateVerdict


@dataclass
class RepairResult:
    """Everything ``wildamp reference repair`` reports. ``clip`` is None when nothing passed."""

    source_name: str
    source_motion: SourceMotion
    source_gate: GateVerdict
    baseline: GaitParams | None  # the "before" gait: the embedded one at the source's speed
    fit: FitResult | None
    attempts: list[GateAttempt]
    clip: Clip | None
    before: StyleComparison | None
    after: StyleComparison | None

    @property
    def repaired(self) -> bool:
        """True when a clip passed the gate (or the source already did)."""
        return self.clip is not None

    def to_dict(self) -> dict:
        """JSON-ready summary (stored in the repaired dataset's metadata)."""
        return {
            "source": self.source_name,
            "source_motion": dataclasses.asdict(self.source_motion),
            "source_gate": self.source_gate.to_dict(),
            "baseline_params": None if self.baseline is None else dataclasses.asdict(self.baseline),
            "fit": None if self.fit is None else {
                "start": dataclasses.asdict(self.fit.start), "params": dataclasses.asdict(self.fit.params),
                "start_distance": self.fit.start_distance, "distance": self.fit.distance,
                "evaluations": self.fit.evaluations, "refused": self.fit.refused},
            "attempts": [{"label": a.label, **a.verdict.to_dict()} for a in self.attempts],
            "repaired": self.repaired,
            "style_before": None if self.before is None else self.before.to_dict(),
            "style_after": None if self.after is None else self.after.to_dict(),
        }


def _nearest_default_speed(speed: float) -> float:
    return min(DEFAULT_SPEEDS, key=lambda s: abs(s - speed))


def _start_params(motion: SourceMotion, duration: float, model: mujoco.MjModel,
                  spec: Any) -> tuple[GaitParams, GaitParams]:
    """(the embedded gait at the source's speed, that gait with the source's cadence if it can be made)."""
    lo, hi = FIT_RANGES["speed"]
    default = default_gait_params(float(np.clip(motion.forward_speed, lo, hi)), duration=duration)
    if motion.step_period is None:
        return default, default
    cadence = dataclasses.replace(default, step_period=float(np.clip(motion.step_period, *FIT_RANGES["step_period"])))
    try:
        generate_clip(spec, cadence, model=model)
    except ValueError:  # this cadence with the default stride leaves a joint range
        return default, default
    return default, cadence


def _feasible_nearest_fit(attempt: Callable[[str, GaitParams], Any], fitted: GaitParams,
                          anchors: Sequence[tuple[str, GaitParams]]) -> Any:
    """The fitted parameters if they pass ``attempt`` (the gate); else the first anchor that passes
    and then a bisection from it towards the fit, keeping the passing point nearest the fit. Returns
    what ``attempt`` returned for the accepted candidate, or None when nothing passed."""
    accepted = attempt("the fitted parameters", fitted)
    fitted_u = _to_unit({k: getattr(fitted, k) for k in FIT_RANGES})
    seen = [fitted]
    for label, anchor in anchors:
        if accepted is not None:
            break
        if anchor in seen:
            continue
        seen.append(anchor)
        accepted = attempt(label, anchor)
        if accepted is None:
            continue
        anchor_u, lo, hi = _to_unit({k: getattr(anchor, k) for k in FIT_RANGES}), 0.0, 1.0
        for _ in range(BISECTION_STEPS):
            t = 0.5 * (lo + hi)
            passed = attempt(f"{100 * t:.0f}% of the way from {label} to the fit",
                             _params(anchor, _from_unit(anchor_u + t * (fitted_u - anchor_u))))
            if passed is not None:
                lo, accepted = t, passed
            else:
                hi = t
    return accepted


def repair_clip(model: mujoco.MjModel, spec: Any, source: Clip, features_cfg: Any, duration: float | None = None,
                evaluations: int = 120, thresholds: FeasibilityThresholds | None = None,
                settle_times: Sequence[float] = DEFAULT_SETTLE_TIMES, min_speed_ratio: float = 0.0,
                progress: bool = True, log: Callable[[str], None] = print) -> RepairResult:
    """Repair ``source`` (module docstring). ``duration``: of the repaired clip (default: the
    source's, within :data:`DURATION_RANGE`). A clip passes when the gate (``thresholds``: those of
    ``wildamp reference check`` by default) passes it from every start timing of ``settle_times``
    (the tuner's, plus the gate's own: an open-loop tracked gait is chaotic, and a clip that passes
    from one start only is fragile); with ``min_speed_ratio`` > 0 the tracked robot must also keep
    that share of the reference's speed. A source that passes is returned unchanged (no fit).
    ``log`` receives one line per stage, ``progress`` shows a progress bar of the fit."""
    th = thresholds or FeasibilityThresholds()
    duration = float(np.clip(source.duration, *DURATION_RANGE) if duration is None else duration)
    style = StyleFeatures.build(model, spec, features_cfg)
    name = f"{source.name}_repaired"
    source = resample_clip(source, 1.0 / style.ctrl_dt) if abs(source.fps * style.ctrl_dt - 1) > 1e-9 else source
    motion = measure_source(source)
    log(f"source {source.name!r}: {motion.duration:.2f} s, forward {motion.forward_speed:.3f} m/s, "
        f"lateral {motion.lateral_speed:+.3f} m/s, heading change {math.degrees(motion.heading_change):+.0f} deg, "
        + (f"step period {motion.step_period:.3f} s" if motion.step_period else "no clear step rhythm"))
    log("feasibility gate on the source ...")
    source_gate = gate_verdict(model, spec, source, th, settle_times, min_speed_ratio)
    log(f"  source {source_gate.describe()}")
    if source_gate.passed:
        return RepairResult(source_name=source.name, source_motion=motion, source_gate=source_gate, baseline=None,
                            fit=None, attempts=[], clip=source, before=None, after=None)

    log("AMP features of the source ...")
    names = style.channel_names
    default, start = _start_params(motion, duration, model, spec)

    def make_samples(p: GaitParams) -> np.ndarray:
        return style.samples(generate_clip(spec, p, model=model, name=name))

    default_samples = make_samples(default)
    src = SourceStyle.of(style.samples(source), default_samples, features_cfg.std_floor)

    fit = fit_gait(src, start, make_samples, evaluations=evaluations, progress=progress)
    log(f"fit: style distance {fit.start_distance:.3f} at the start -> {fit.distance:.3f} after "
        f"{fit.evaluations} generated clips ({fit.refused} refused by the generator)")

    attempts: list[GateAttempt] = []

    def attempt(label: str, params: GaitParams) -> tuple[Clip, GateAttempt] | None:
        """Generate and gate one candidate; (clip, attempt) when it passes."""
        log(f"feasibility gate on {label} ...")
        try:
            clip = generate_clip(spec, params, model=model, name=name)
        except ValueError as e:
            log(f"  not generated: {e}")
            return None
        gated = GateAttempt(label=label, params=params,
                            verdict=gate_verdict(model, spec, clip, th, settle_times, min_speed_ratio))
        attempts.append(gated)
        log(f"  {gated.verdict.describe()}")
        return (clip, gated) if gated.verdict.passed else None

    nearest = default_gait_params(_nearest_default_speed(default.speed), duration=duration)
    anchors = [("the start (the embedded gait at the source's speed"
                + (" and cadence)" if start != default else ")"), start),
               ("the embedded gait at the source's speed", default),
               (f"the embedded gait at {nearest.speed:g} m/s", nearest)]
    accepted = _feasible_nearest_fit(attempt, fit.params, anchors)

    before = compare_style(f"embedded gait at {default.speed:.3g} m/s vs source", src, default_samples, names)
    repaired, after = None, None
    if accepted is not None:
        repaired, chosen = accepted
        repaired.meta.update(source=source.name, source_clip=source.source, repair=chosen.label)
        after = compare_style(f"repaired ({chosen.label}) vs source", src, style.samples(repaired), names)
    return RepairResult(source_name=source.name, source_motion=motion, source_gate=source_gate, baseline=default,
                        fit=fit, attempts=attempts, clip=repaired, before=before, after=after)


def format_repair_report(result: RepairResult, top: int = 10) -> str:
    """The style distances before and after, the fitted parameters and the channel table, as text."""
    if result.fit is None or result.before is None:
        return f"{result.source_name}: the source already passes the gate; written unchanged"
    lines = ["style distance to the source (the source is the reference side of the leak detector; classifier "
             "AUC: 0.5 = a fresh classifier does no better than chance (below 0.5: noise of a held-out split), "
             "1.0 = perfectly separable; distance: RMS standardised difference of the channel means and stds):",
             f"  before: {result.before.label}: classifier AUC {result.before.classifier_auc:.3f}, "
             f"distance {result.before.distance:.3f}"]
    if result.after is not None:
        lines.append(f"  after:  {result.after.label}: classifier AUC {result.after.classifier_auc:.3f}, "
                     f"distance {result.after.distance:.3f}")
    else:
        lines.append("  after:  no candidate passed the gate")
    lines.append(f"fitted generator parameters ({result.fit.evaluations} clips generated; start -> fit):")
    w = max(len(k) for k in FIT_RANGES)
    lines += [f"  {k.ljust(w)}  {getattr(result.fit.start, k):8.4f} -> {getattr(result.fit.params, k):8.4f}"
              for k in FIT_RANGES]
    if result.after is not None:
        lines.append(format_channel_table(result.before, result.after, top))
    m = result.source_motion
    if abs(m.heading_change) > math.radians(20) or abs(m.lateral_speed) > 0.05:
        lines.append(f"not kept: the source turns {math.degrees(m.heading_change):+.0f} deg and walks "
                     f"{m.lateral_speed:+.2f} m/s sideways; the repaired clip walks straight ahead")
    return "\n".join(lines)


def repaired_dataset(result: RepairResult) -> MotionDataset:
    """The repaired clip as a one-clip dataset; the repair summary in its metadata."""
    if result.clip is None:
        raise ValueError(f"{result.source_name}: nothing to write, no clip passed the gate")
    clip = result.clip
    return MotionDataset(clips=[clip], joint_names=clip.joint_names, fps=clip.fps,
                         metadata={"source": "repair", "repair": result.to_dict()})
