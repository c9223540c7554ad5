"""Physics-filtered reference: each clip replaced by what the robot does when its servos follow it.

Why: a kinematic clip can hold a channel exactly where no simulated robot can. The embedded gait
keeps both hip rolls at 0 rad (std 0.002 rad) while the servos, carrying the body on one leg, give
way by a few hundredths of a radian. Measured with ``wildamp eval``'s style check, the clips
PD-tracked in MuJoCo — the best any policy could do — are told apart from their own kinematic
source with AUC 1.00, almost all on hip roll (24 reference standard deviations). A discriminator
trained on such a reference saturates on that channel, whatever the policy does.

The tracked clip is the state sequence of :func:`wildamp.reference.feasibility.track_clip` (the
feasibility gate's PD-tracking run: free-floating, servos only, targets at the control rate), so it
is physically consistent by construction: a policy that reproduces the tracker's targets reproduces
it exactly. Speeds in the clip metadata become the *measured* speeds of the tracked robot along the axes the
clip moves on (the command RSI and the style check match against; sideways drift is kept in
``measured_velocity``); the generator's nominal speeds are kept as ``nominal_speed`` and
``nominal_lateral_speed``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from wildamp import quat
from wildamp.reference.clip import Clip, MotionDataset, command_speed
from wildamp.reference.feasibility import DEFAULT_CTRL_DT, TrackingTrace, foot_loads, track_clip, weight_bearing

#: Bumped when the tracked data would change for the same source (derived files are regenerated).
TRACKER_VERSION = 3
#: Seconds at the start of a clip left out of its measured speed (the robot starts from rest).
SPEED_SKIP_SECONDS = 1.0
#: A generated clip is re-planned until the robot tracking it walks within this of its nominal speed (m/s).
SPEED_TOLERANCE = 0.003
#: Plan speeds tried, as multiples of the nominal speed, nearest the proportional guess first.
PLAN_SPEED_FACTORS = np.round(np.linspace(0.5, 1.5, 251), 3)
#: A re-planned clip must also step regularly: this share of its touchdowns alternate feet and of its
#: gait cycles see each foot swing (:func:`wildamp.gait.gait_metrics`). Servo tracking of a plan
#: faster than the robot walks it can stumble into a double step now and then while keeping the
#: average speed; such a clip is unlike the others and unlike any steady gait a policy could learn.
MIN_STEP_REGULARITY = 1.0
#: The tracked robot's stepping, recorded in each tracked clip's ``meta["tracked"]``.
GAIT_SUMMARY_KEYS = ("alternation", "swing_per_cycle", "step_frequency_hz", "foot_clearance_m")


def tracked_clip(model: mujoco.MjModel, spec: Any, clip: Clip, ctrl_dt: float = DEFAULT_CTRL_DT) -> Clip:
    """``clip`` PD-tracked in MuJoCo, as a clip at the control rate (``1 / ctrl_dt`` fps).

    Raises ``ValueError`` naming the clip when the robot falls or the simulation goes unstable:
    such a clip has no physical counterpart to learn from (``wildamp reference check`` says why).
    """
    trace = track_clip(model, spec, clip, ctrl_dt=ctrl_dt)
    if trace.fell_at is not None or trace.unstable:
        what = "became unstable" if trace.unstable else f"fell at frame {trace.fell_at}"
        raise ValueError(f"clip {clip.name!r}: the PD-tracked robot {what}; it has no tracked version "
                         f"(run `wildamp reference check` on the dataset for the gate's report)")
    qpos = trace.qpos
    stepping = trace_gait(model, spec, trace)
    skip = _walking_start(qpos.shape[0], ctrl_dt)
    seconds = (qpos.shape[0] - 1 - skip) * ctrl_dt
    vx, vy = (qpos[-1, :2] - qpos[skip, :2]) / seconds
    nominal_fwd, nominal_lat = command_speed(clip)
    nominal_fwd = nominal_fwd if math.isfinite(nominal_fwd) else 0.0    # a clip made without a speed
    meta = dict(clip.meta)
    # The speed a clip is matched by (RSI's command, the style check's pairing) is measured along the
    # axes the clip was made to move on; sideways drift of a forward clip stays a recorded drift, so
    # a forward clip still matches purely forward commands.
    meta.update(speed=float(vx) if nominal_fwd else 0.0, lateral_speed=float(vy) if nominal_lat else 0.0,
                measured_velocity=[float(vx), float(vy)],
                nominal_speed=nominal_fwd, nominal_lateral_speed=nominal_lat,
                tracked={"source_clip": clip.name, "ctrl_dt": ctrl_dt, "ctrl_lead": trace.ctrl_lead,
                         "tracker_version": TRACKER_VERSION,
                         **{k: round(stepping[k], 4) for k in GAIT_SUMMARY_KEYS}})
    out = Clip(name=clip.name, fps=1.0 / ctrl_dt, root_pos=qpos[:, :3], root_quat=quat.make_sign_continuous(qpos[:, 3:7]),
               joint_pos=trace.joint_pos, joint_names=tuple(spec.joint_names), source=f"tracked:{clip.source}",
               meta=meta)
    out.validate()
    return out


def _walking_start(num_frames: int, dt: float) -> int:
    """First frame after the start from rest (``SPEED_SKIP_SECONDS``, at most half the run)."""
    return min(int(round(SPEED_SKIP_SECONDS / dt)), num_frames // 2)


def trace_gait(model: mujoco.MjModel, spec: Any, trace: TrackingTrace,
               min_swing_seconds: float | None = None) -> dict[str, float]:
    """:func:`wildamp.gait.gait_metrics` of a tracking run after its start from rest.

    A foot is down while it bears weight as the feasibility gate counts it
    (:func:`wildamp.reference.feasibility.weight_bearing`); ``min_swing_seconds`` None keeps the
    metrics' own debouncing of unloading blips (0 reads the raw force contact).
    """
    from wildamp.features import FrameIds
    from wildamp.features.replay import mj_frames
    from wildamp.gait import gait_metrics

    contact = weight_bearing(foot_loads(spec, trace), float(np.sum(model.body_mass)))
    pads = np.asarray(mj_frames(model, FrameIds.from_model(model, spec), trace.qpos).pad_pos)
    mask = np.zeros((len(trace.qpos), 1), bool)
    mask[_walking_start(len(mask), trace.dt):] = True
    forward = np.gradient(trace.qpos[:, 0], trace.dt)[:, None]
    kwargs = {} if min_swing_seconds is None else {"min_swing_seconds": min_swing_seconds}
    return gait_metrics(contact[:, None, :], pads[:, None], forward, mask, trace.dt, **kwargs)


def steps_regularly(gait: dict[str, float]) -> bool:
    """Whether a clip's :func:`trace_gait` shows strictly alternating steps, each foot swinging every cycle."""
    return gait["alternation"] >= MIN_STEP_REGULARITY and gait["swing_per_cycle"] >= MIN_STEP_REGULARITY


def _along_nominal(meta: dict) -> tuple[float, float]:
    """(nominal speed, measured speed) along the axis the clip was made to move on."""
    if meta.get("nominal_speed"):
        return float(meta["nominal_speed"]), float(meta["speed"])
    return float(meta.get("nominal_lateral_speed", 0.0)), float(meta["lateral_speed"])


def replanned_clip(model: mujoco.MjModel, spec: Any, clip: Clip, plan_speed: float) -> Clip:
    """The generated ``clip`` planned again at ``plan_speed`` along the axis it moves on (forward, or
    sideways for a sideways clip), all other generator parameters kept; same name and rate.
    Raises ``ValueError`` for a clip without generator parameters or an infeasible plan."""
    from wildamp.reference.generator import GaitParams, generate_clip

    params = clip.meta.get("params")
    if not params:
        raise ValueError(f"clip {clip.name!r} has no generator parameters to plan it again")
    axis = "speed" if params.get("speed") else "lateral_speed"
    plan = dataclasses.replace(GaitParams(**params), **{axis: float(plan_speed)}).validate()
    return generate_clip(spec, plan, fps=clip.fps, name=clip.name, model=model)


def speed_matched_tracked_clip(model: mujoco.MjModel, spec: Any, clip: Clip,
                               ctrl_dt: float = DEFAULT_CTRL_DT) -> Clip:
    """The tracked version of a *generated* clip, re-planned so that the robot walks at the clip's
    nominal speed with regular steps: open-loop servos do not walk a plan at its speed (the 0.10 m/s
    plan is walked at 0.12, the 0.25 at 0.22), and a command is paired with the clip nearest in
    speed, so a mismatch would make the style check compare a policy obeying its command with a gait
    at another speed; and a plan walked at the right speed only by stumbling into a double step now
    and then (:func:`steps_regularly`) would ask the policy for a gait unlike the other clips'.

    The generator's plan speed is searched over ``PLAN_SPEED_FACTORS`` × nominal (nearest the
    proportional guess first; the response is not monotonic) until the measured speed is within
    ``SPEED_TOLERANCE`` and the steps are regular, else the closest regular plan (or the closest of
    all, when none is regular) is kept; plans the robot falls from are skipped. The clip keeps its
    name and nominal speed; ``meta["tracked"]["plan_speed"]`` records the plan used. Clips without
    generator parameters (retargeted motion) and standing clips are tracked as they are.
    """
    first = tracked_clip(model, spec, clip, ctrl_dt)
    nominal, measured = _along_nominal(first.meta)

    def badness(tracked: Clip) -> tuple[bool, float]:
        """(irregular, |speed error|): lower is better, regularity first."""
        irregular = not steps_regularly(tracked.meta["tracked"])
        return irregular, abs(_along_nominal(tracked.meta)[1] - nominal)

    def good_enough(score: tuple[bool, float]) -> bool:
        return not score[0] and score[1] <= SPEED_TOLERANCE

    best, best_score, best_plan = first, badness(first), nominal
    if not clip.meta.get("params") or nominal == 0.0 or good_enough(best_score):
        return first
    guess = nominal * nominal / measured if measured * nominal > 0 else nominal
    for factor in sorted(PLAN_SPEED_FACTORS, key=lambda f: abs(f * nominal - guess)):
        plan_speed = float(factor * nominal)
        try:
            tracked = tracked_clip(model, spec, replanned_clip(model, spec, clip, plan_speed), ctrl_dt)
        except ValueError:
            continue
        score = badness(tracked)
        if score < best_score:
            best, best_score, best_plan = tracked, score, plan_speed
        if good_enough(best_score):
            break
    meta = dict(best.meta)
    meta.update(nominal_speed=first.meta["nominal_speed"], nominal_lateral_speed=first.meta["nominal_lateral_speed"],
                tracked={**best.meta["tracked"], "source_clip": clip.name, "plan_speed": round(best_plan, 4)})
    return dataclasses.replace(best, meta=meta, source=first.source)


def tracked_dataset(model: mujoco.MjModel, spec: Any, dataset: MotionDataset,
                    ctrl_dt: float = DEFAULT_CTRL_DT, progress: bool = True) -> MotionDataset:
    """Every clip of ``dataset`` replaced by its tracked version: generated clips at their nominal
    speed (:func:`speed_matched_tracked_clip`), others as they are (:func:`tracked_clip`)."""
    clips = []
    for i, clip in enumerate(dataset.clips):
        clips.append(speed_matched_tracked_clip(model, spec, clip, ctrl_dt))
        if progress:
            m = clips[-1].meta
            print(f"  tracked {i + 1}/{len(dataset.clips)} {clip.name}: measured speed "
                  f"{m['speed']:+.3f}, {m['lateral_speed']:+.3f} m/s (nominal {m['nominal_speed']}, "
                  f"{m['nominal_lateral_speed']}; plan {m['tracked'].get('plan_speed', 'as given')}; "
                  f"alternation {m['tracked']['alternation']:.2f})", file=sys.stderr)
    metadata = dict(dataset.metadata)
    metadata.update(tracked=True, tracker_version=TRACKER_VERSION, ctrl_dt=ctrl_dt)
    return MotionDataset(clips=clips, joint_names=tuple(spec.joint_names), fps=1.0 / ctrl_dt, metadata=metadata)


def ensure_tracked_default_reference(path: str | Path) -> Path:
    """Return ``path``, writing the embedded gait's tracked version there first when needed.

    (Re)generated when absent or written from another generator or tracker version, like the
    embedded gait itself (:func:`wildamp.reference.generator.ensure_default_reference`).
    """
    from wildamp import paths
    from wildamp.reference.generator import GENERATOR_VERSION, ensure_default_reference
    from wildamp.robot import load_model, load_robot_spec

    path = Path(path)
    if path.exists():
        meta = MotionDataset.load(path).metadata
        if meta.get("generator_version") == GENERATOR_VERSION and meta.get("tracker_version") == TRACKER_VERSION:
            return path
        print(f"wildamp: regenerating {path} (generator/tracker version changed)", file=sys.stderr)
    source = MotionDataset.load(ensure_default_reference(paths.DEFAULT_REFERENCE))
    spec = load_robot_spec(paths.DEFAULT_ROBOT_CONFIG)
    tracked_dataset(load_model(spec.model_path), spec, source).save(path)
    return path
