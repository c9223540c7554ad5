"""Gate-in-the-loop tuning of the gait generator: which :class:`GaitParams` can the robot follow?

The faster bands of the embedded gait (``GAIT_BANDS`` above 0.25 m/s) come from this search. A candidate
parameter set is scored by generating its clip at every requested speed and PD-tracking it with the
feasibility gate (:mod:`wildamp.reference.feasibility`) from several start timings (``settle_time``
values): an open-loop tracked gait is chaotic, and a set that passes from one start only passed by
luck. Per tracking run the score rewards

- surviving (the fraction of the clip before a fall),
- the tracked robot's mean speed matching the reference's (a robot that shuffles in place while the
  reference strides, or that runs ahead of it, follows a different motion),
- passing the gate, and penalises foot slip and root tilt error;

a candidate's score is its worst run plus a tenth of its mean (so the search improves the worst case
first). The search is the cross-entropy method over :data:`TUNABLE_RANGES`, started from a given set
(default: the embedded one for the first speed). ``wildamp reference tune`` is the command line.
"""

from __future__ import annotations

import itertools
import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from typing import Sequence

import mujoco
import numpy as np

from wildamp.reference.feasibility import FeasibilityThresholds, check_clip, with_friction_scale
from wildamp.reference.generator import GaitParams, default_gait_params, generate_clip

__all__ = ["TUNABLE_RANGES", "DEFAULT_SETTLE_TIMES", "GENERATION_FAILED", "TrialResult", "TuneResult",
           "score_trial", "score_params", "tune_gait"]

#: Search ranges of the tuned :class:`GaitParams` fields (SI units; ``ramp_steps`` is rounded).
TUNABLE_RANGES: dict[str, tuple[float, float]] = {
    "step_period": (0.2, 0.45),
    "double_support_fraction": (0.0, 0.35),
    "step_height": (0.02, 0.06),
    "pelvis_height": (0.39, 0.455),
    "rock_gain": (0.4, 1.5),
    "rock_phase": (0.0, 1.5),
    "zmp_forward_travel": (0.0, 0.07),
    "first_push_fraction": (0.05, 0.6),
    "stance_lift": (0.0, 0.02),
    "pelvis_pitch": (-0.05, 0.35),
    "lift_exponent": (1.0, 3.0),
    "ramp_steps": (2, 9),
}
#: Start timings (s of standing on the floor before tracking) every candidate is tracked from.
DEFAULT_SETTLE_TIMES: tuple[float, ...] = (0.07, 0.1, 0.13, 0.17)
#: Score of a candidate whose clip cannot be generated (a joint leaves its range, a target is out of reach).
GENERATION_FAILED = -10.0


@dataclass(frozen=True)
class TrialResult:
    """One gate run of a candidate: speed (m/s), start timing (s) and what the gate measured."""

    speed: float
    lateral_speed: float
    settle_time: float
    friction_scale: float  # floor and sole sliding friction relative to the model's
    variant: int  # 0: the candidate itself; d > 0: its d-th jittered copy
    passed: bool
    survived: float  # fraction of the clip tracked before a fall (1.0: no fall)
    speed_ratio: float  # tracked mean speed / reference mean speed
    slip_fraction: float
    tilt_rmse: float
    score: float


@dataclass
class TuneResult:
    """Best parameters found (``params``: the tuned fields only), their score and gate runs."""

    speeds: tuple[float, ...]
    lateral_speeds: tuple[float, ...]
    params: dict
    score: float
    trials: list[TrialResult]
    history: list[float] = field(default_factory=list)  # best score after each iteration

    def to_dict(self) -> dict:
        return {"speeds": list(self.speeds), "lateral_speeds": list(self.lateral_speeds), "params": self.params,
                "score": self.score,
                "history": self.history, "trials": [asdict(t) for t in self.trials]}


def score_trial(survived: float, speed_ratio: float, passed: bool, slip_fraction: float,
                tilt_rmse: float) -> float:
    """Score of one tracking run (higher is better; at most 3.5)."""
    match = 1.0 - min(abs(speed_ratio - 1.0), 1.0) if math.isfinite(speed_ratio) else 0.0
    return survived * (1.0 + 2.0 * match) + (0.5 if passed else 0.0) - 2.0 * slip_fraction - 0.5 * tilt_rmse


def _params_from(values: dict) -> dict:
    out = {k: float(np.clip(values[k], *TUNABLE_RANGES[k])) for k in TUNABLE_RANGES if k in values}
    if "ramp_steps" in out:
        out["ramp_steps"] = int(round(out["ramp_steps"]))
    return out


def score_params(model: mujoco.MjModel, spec, params: dict, speeds: Sequence[float],
                 settle_times: Sequence[float] = DEFAULT_SETTLE_TIMES,
                 friction_scales: Sequence[float] = (1.0,), jitter: float = 0.0,
                 jitter_draws: int = 0, lateral_speeds: Sequence[float] = ()) -> tuple[float, list[TrialResult]]:
    """Score ``params`` (overrides of the embedded set of each speed) at every forward speed (and
    every sideways speed of ``lateral_speeds``: clips walking sideways only), start timing and
    friction scale (the contact uses the larger friction of the two geoms; all are scaled).

    With ``jitter_draws`` > 0 the clip is also generated from that many copies of ``params`` whose
    real-valued entries are scaled by ``1 + jitter * N(0, 1)`` (fixed seeds): an open-loop tracked
    gait can hinge on the 5th digit of a parameter, which a set meant for other machines (other
    floating-point rounding) must not.

    Returns (score, trials); the score is :data:`GENERATION_FAILED` with no trials when a clip
    cannot be generated.
    """
    trials: list[TrialResult] = []
    variants = [params]
    for d in range(jitter_draws):
        rng = np.random.default_rng(1000 + d)
        variants.append({k: (float(x) * (1.0 + jitter * rng.standard_normal()) if isinstance(x, float) else x)
                         for k, x in params.items()})
    velocities = [(float(v), 0.0) for v in speeds] + [(0.0, float(v)) for v in lateral_speeds]
    for (v, lat), (index, variant) in itertools.product(velocities, enumerate(variants)):
        try:
            clip = generate_clip(spec, default_gait_params(v, lateral_speed=lat, **variant), model=model)
        except ValueError:
            return GENERATION_FAILED, []
        for friction, settle in itertools.product(friction_scales, settle_times):
            report, trace = check_clip(with_friction_scale(model, float(friction)), spec, clip,
                                       FeasibilityThresholds(settle_time=float(settle)), return_trace=True)
            survived = 1.0 if trace.fell_at is None else trace.fell_at / max(clip.num_frames - 1, 1)
            ratio = report.sim_speed / report.ref_speed if report.ref_speed > 1e-9 else float("nan")
            trials.append(TrialResult(
                speed=v, lateral_speed=lat, settle_time=float(settle), friction_scale=float(friction),
                variant=index,
                passed=report.passed,
                survived=float(survived),
                speed_ratio=float(ratio), slip_fraction=float(report.slip_fraction),
                tilt_rmse=float(report.tilt_rmse),
                score=score_trial(survived, ratio, report.passed, report.slip_fraction, report.tilt_rmse)))
    scores = np.array([t.score for t in trials])
    return float(scores.min() + 0.1 * scores.mean()), trials


_WORKER: dict = {}


def _worker_init(model_path: str, robot_config: str | None) -> None:
    from wildamp.robot import load_model, load_robot_spec

    spec = load_robot_spec(robot_config) if robot_config else load_robot_spec()
    _WORKER.update(spec=spec, model=load_model(model_path))


def _worker_score(args) -> tuple[float, list[TrialResult]]:
    params, speeds, settle_times, friction_scales, jitter, jitter_draws, lateral_speeds = args
    return score_params(_WORKER["model"], _WORKER["spec"], params, speeds, settle_times, friction_scales,
                        jitter, jitter_draws, lateral_speeds)


def tune_gait(speeds: Sequence[float], iterations: int = 14, population: int = 40,
              init: dict | None = None, seed: int = 0, workers: int = 1,
              settle_times: Sequence[float] = DEFAULT_SETTLE_TIMES, friction_scales: Sequence[float] = (1.0,),
              jitter: float = 0.0, jitter_draws: int = 0, lateral_speeds: Sequence[float] = (),
              robot_config: str | None = None, progress: bool = True) -> TuneResult:
    """Cross-entropy search for gait parameters the robot follows at ``speeds`` (forward, m/s) and
    ``lateral_speeds`` (sideways clips; the slow band's set also makes the sideways clips).

    ``init``: starting parameters (default: the embedded set of the first speed); the search starts
    with a spread of 1/8 of each range around it (much wider spreads mostly generate clips outside
    the joint limits). Each iteration samples ``population``
    candidates, keeps the best fifth and moves the mean and spread to them. ``workers`` > 1 scores
    candidates in that many processes. ``friction_scales`` (e.g. ``(0.8, 1.0, 1.2)``) tracks every
    start on floors of other frictions too, for sets that do not depend on the exact floor;
    ``jitter``/``jitter_draws`` also track slightly perturbed copies of each candidate
    (:func:`score_params`).
    """
    from tqdm.auto import tqdm

    from wildamp.robot import load_robot_spec

    speeds = tuple(float(s) for s in speeds)
    lateral_speeds = tuple(float(s) for s in lateral_speeds)
    if not speeds and not lateral_speeds:
        raise ValueError("tune_gait needs at least one forward or lateral speed")
    if iterations < 1 or population < 4:
        raise ValueError(f"iterations must be >= 1 and population >= 4 (got {iterations}, {population})")
    spec = load_robot_spec(robot_config) if robot_config else load_robot_spec()
    keys = list(TUNABLE_RANGES)
    lo = np.array([TUNABLE_RANGES[k][0] for k in keys], dtype=np.float64)
    hi = np.array([TUNABLE_RANGES[k][1] for k in keys], dtype=np.float64)
    start = asdict(default_gait_params(speeds[0] if speeds else 0.0))
    start.update(init or {})
    unknown = sorted(set(init or {}) - set(asdict(GaitParams())))
    if unknown:
        raise ValueError(f"unknown gait parameters in init: {unknown}")
    mean = np.clip(np.array([float(start[k]) for k in keys]), lo, hi)
    spread = (hi - lo) / 8.0
    rng = np.random.default_rng(seed)
    n_elite = max(2, population // 5)
    best = TuneResult(speeds=speeds, lateral_speeds=lateral_speeds, params=_params_from(dict(zip(keys, mean))),
                      score=-math.inf, trials=[])
    ctx = get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init,
                               initargs=(str(spec.model_path), robot_config)) if workers > 1 else None
    if pool is None:
        _worker_init(str(spec.model_path), robot_config)
    try:
        label = ", ".join([f"{s:g}" for s in speeds] + [f"lateral {s:+g}" for s in lateral_speeds])
        bar = tqdm(range(iterations), desc=f"tune gait @ {label} m/s", disable=not progress)
        for iteration in bar:
            X = np.clip(mean + spread * rng.standard_normal((population, len(keys))), lo, hi)
            if iteration == 0:
                X[0] = mean  # the starting set is always scored
            jobs = [(_params_from(dict(zip(keys, x))), speeds, tuple(settle_times), tuple(friction_scales),
                     float(jitter), int(jitter_draws), lateral_speeds) for x in X]
            results = list(pool.map(_worker_score, jobs)) if pool else [_worker_score(j) for j in jobs]
            scores = np.array([r[0] for r in results])
            elite = np.argsort(-scores)[:n_elite]
            if scores[elite[0]] > best.score:
                top = elite[0]
                best.params, best.score, best.trials = jobs[top][0], float(scores[top]), results[top][1]
            best.history.append(best.score)
            mean = X[elite].mean(axis=0)
            spread = 0.7 * spread + 0.3 * X[elite].std(axis=0) + 1e-3 * (hi - lo)
            bar.set_postfix(best=f"{best.score:.3f}", gen_failed=int(np.sum(scores == GENERATION_FAILED)))
    finally:
        if pool is not None:
            pool.shutdown()
    return best
