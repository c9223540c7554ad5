"""The feasibility gate: can the robot's own servos make the robot follow a reference clip?

Every clip is PD-tracked in MuJoCo C exactly as a policy would drive the robot: free-floating, no
harness, the position servos of the model receive the reference joint angles as targets at the
control rate, physics runs at the model timestep. The robot starts in the clip's first frame with
its soles put on the floor and zero velocity, holds that pose for ``settle_time``, then follows the
clip. The target sent during the control step ending at frame k is the reference pose at
``t_k + ctrl_lead``; by default ``ctrl_lead`` is the first-order lag of the model's own servos,
``(kv + joint damping) / kp`` (~28 ms for WildRobot), the standard feed-forward of a position servo
(a policy learns the same). No other feedback or compensation is used.

What is measured (per clip) and why:

- ``saturation_fraction``: reference frames with a joint within ``limit_margin`` of (or beyond) a
  limit. Retargeted human clips pin the 5-degree hip extension limit; a servo cannot follow that.
- ``joint_rmse``: RMS servo tracking error over all joints and frames.
- ``slip_fraction`` / ``slip_speed_mean``: of the stance samples (the foot carries weight now and
  at the previous control step; normal forces from :func:`wildamp.physics.mj_geom_normal_forces`),
  the fraction in which the sole slides faster than ``slip_speed`` at its contact points (a foot
  rocking on its edge is not sliding). The original project measured 77.6 % on its retargeted
  clips.
- ``height_rmse``, ``tilt_rmse``: root height and root tilt (angle between the simulated and the
  reference body z axes) against the reference. Absolute x/y and heading are *not* compared: a
  free-floating robot drifts, which is harmless.
- ``speed_error``: the mean horizontal root velocity of the tracked robot against the reference's
  (vectors, over the whole clip), with a tolerance ``speed_abs_tol + speed_rel_tol * |v_ref|``.
- ``fell``: root below ``fall_height`` or tilted more than ``fall_tilt`` (the run stops there).
- ``load_support_fraction``: samples where the feet carry at least ``support_force_fraction``
  of the robot's weight; a robot held up by anything but its feet, or bouncing, fails this.

A clip passes iff no criterion fails; the report names every failing criterion with its value.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Sequence

import mujoco
import numpy as np

from wildamp import quat
from wildamp.physics import geom_ids, mj_geom_normal_forces
from wildamp.reference.clip import Clip, MotionDataset
from wildamp.reference.resample import resample_clip

__all__ = [
    "FeasibilityThresholds", "ClipReport", "TrackingTrace", "DEFAULT_CTRL_DT", "servo_lag", "track_clip",
    "evaluate_trace", "check_clip", "check_dataset", "format_table", "reports_to_json",
    "with_friction_scale", "start_timings", "RobustnessRow", "robustness", "format_robustness",
]

#: Control period (s) of the servos' targets: the policy's rate (ARCHITECTURE.md §4, 50 Hz).
DEFAULT_CTRL_DT = 0.02


@dataclass(frozen=True)
class FeasibilityThresholds:
    """Pass/fail thresholds and settings of the gate (defaults suit WildRobot walking at 0.1-0.4 m/s).

    Attributes:
        limit_margin: a reference joint angle within this of its limit (rad, 1 deg) is saturated.
        max_saturation_fraction: most reference frames allowed to have a saturated joint.
        max_joint_rmse: RMS joint tracking error allowed (rad, ~6.9 deg; servo sag under load and
            one control period of lag are normal).
        contact_force_fraction: a foot carries weight when its pads' normal force is at least
            this fraction of m*g (5 %, ~1.7 N); below, it may brush the floor and slide freely.
        slip_speed: horizontal speed (m/s) above which a weight-bearing foot counts as slipping.
        max_slip_fraction: most stance samples (weight-bearing now and one step before) allowed to slip.
        max_height_rmse: RMS root height error allowed (m).
        max_tilt_rmse: RMS root tilt error allowed (rad, ~8.6 deg).
        fall_height: root height (m) below which the robot has fallen.
        fall_tilt: root tilt from upright (rad, 45 deg) beyond which the robot has fallen.
        speed_abs_tol, speed_rel_tol: allowed |mean velocity error| = abs + rel * |v_ref| (m/s).
        support_force_fraction: total foot normal force counting as "supported" (fraction of m*g).
        min_load_support_fraction: fewest samples that must be supported.
        settle_time: (gate setting) time (s) the first frame is held on the floor before tracking.
        ctrl_lead: (gate setting) look-ahead (s) of the servo targets; None: the servos' own lag
            ``(kv + damping) / kp`` from the model (:func:`servo_lag`).
    """

    limit_margin: float = math.radians(1.0)
    max_saturation_fraction: float = 0.02
    max_joint_rmse: float = 0.12
    contact_force_fraction: float = 0.05
    slip_speed: float = 0.10
    max_slip_fraction: float = 0.10
    max_height_rmse: float = 0.03
    max_tilt_rmse: float = 0.15
    fall_height: float = 0.25
    fall_tilt: float = math.radians(45.0)
    speed_abs_tol: float = 0.05
    speed_rel_tol: float = 0.3
    support_force_fraction: float = 0.5
    min_load_support_fraction: float = 0.9
    settle_time: float = 0.1
    ctrl_lead: float | None = None


@dataclass
class TrackingTrace:
    """Time series of one PD-tracking run, sampled at the control rate (frame k of the clip).

    ``qpos`` (K, nq) simulated states; ``ref_qpos`` (K, nq) the reference states (root height
    shifted by ``height_offset`` like the simulated start); ``foot_forces`` (K, 4) normal force per
    pad in ``spec.foot_geoms`` order; ``foot_speed`` (K, 2) sliding speed of each foot (left, right):
    horizontal velocity of the sole at its contact points, force-weighted (0 without contact);
    ``ctrl`` (K, J) servo targets; ``fell_at`` the frame of the fall or None (K is shorter than the
    clip if the robot fell); ``ctrl_lead`` the look-ahead of the targets (s).
    """

    clip_name: str
    dt: float
    qpos: np.ndarray
    ref_qpos: np.ndarray
    joint_pos: np.ndarray
    ref_joint_pos: np.ndarray
    foot_forces: np.ndarray
    foot_speed: np.ndarray
    ctrl: np.ndarray
    height_offset: float
    fell_at: int | None
    unstable: bool = False
    ctrl_lead: float = 0.0


@dataclass
class ClipReport:
    """Per-clip result of the gate. ``failures`` names every failing criterion with its value."""

    name: str
    passed: bool
    failures: list[str]
    num_frames: int
    duration: float
    saturation_fraction: float
    saturated_joints: list[str]
    joint_rmse: float
    joint_rmse_per_joint: dict[str, float]
    slip_fraction: float
    slip_speed_mean: float
    height_rmse: float
    tilt_rmse: float
    tilt_max: float
    yaw_drift: float
    ref_speed: float
    sim_speed: float
    speed_error: float
    fell: bool
    fall_time: float | None
    load_support_fraction: float
    height_offset: float
    ctrl_lead: float

    @property
    def failing_criteria(self) -> list[str]:
        """Names of the failing criteria (``"slip"``, ``"fell"``, …), in the order of ``failures``."""
        return [f.split(":")[0] for f in self.failures]

    def to_dict(self) -> dict:
        """JSON-ready dict: plain floats, non-finite values (e.g. no stance sample) as None."""
        def clean(v):
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v

        return clean(dataclasses.asdict(self))


def _tilt(q: np.ndarray) -> np.ndarray:
    """Angle (rad) between the body z axis and the world z axis."""
    zz = quat.to_matrix(q)[..., 2, 2]
    return np.arccos(np.clip(zz, -1.0, 1.0))


def _body_z(q: np.ndarray) -> np.ndarray:
    return quat.to_matrix(q)[..., :, 2]


def _lowest_pad_point(model: mujoco.MjModel, data: mujoco.MjData, pad_ids: np.ndarray) -> float:
    """Lowest z of the sole pads (boxes: lowest corner; other shapes: centre minus bounding radius)."""
    low = np.inf
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=float)
    for g in pad_ids:
        c = data.geom_xpos[g]
        if int(model.geom_type[g]) == int(mujoco.mjtGeom.mjGEOM_BOX):
            R = data.geom_xmat[g].reshape(3, 3)
            pts = c + (corners * model.geom_size[g]) @ R.T
            low = min(low, float(pts[:, 2].min()))
        else:
            low = min(low, float(c[2] - model.geom_rbound[g]))
    return low


def servo_lag(model: mujoco.MjModel) -> float:
    """Mean first-order lag (s) of the model's position servos, ``(kv + joint damping) / kp``.

    A position servo ``tau = kp (u - q) - kv q'`` on a joint with damping ``b`` follows a slow target
    with the delay ``(kv + b) / kp``; commanding the target that much ahead cancels it. ``kp`` and
    ``kv`` are read from the actuators (MuJoCo ``<position>``: gainprm[0] = kp, biasprm = [0, -kp,
    -kv]); actuators that are not position servos raise ValueError.
    """
    lags = []
    for a in range(model.nu):
        kp = float(model.actuator_gainprm[a, 0])
        if kp <= 0 or abs(float(model.actuator_biasprm[a, 1]) + kp) > 1e-9 * max(kp, 1.0):
            name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, a)
            raise ValueError(f"actuator {name or a!r} is not a position servo (gain {kp}, bias "
                             f"{model.actuator_biasprm[a, :3].tolist()}); pass ctrl_lead explicitly")
        kv = -float(model.actuator_biasprm[a, 2])
        dof = int(model.jnt_dofadr[int(model.actuator_trnid[a, 0])])
        lags.append((kv + float(model.dof_damping[dof])) / kp)
    return float(np.mean(lags)) if lags else 0.0


def _actuator_order(model: mujoco.MjModel, joint_names: Sequence[str]) -> np.ndarray:
    """For each model actuator, the column of ``joint_names`` it drives (by joint name)."""
    cols = []
    for a in range(model.nu):
        j = int(model.actuator_trnid[a, 0])
        jname = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j)
        if jname not in joint_names:
            raise KeyError(f"actuator {a} drives joint {jname!r}, which the clip does not have "
                           f"(clip joints {list(joint_names)})")
        cols.append(list(joint_names).index(jname))
    return np.asarray(cols, dtype=np.int64)


def track_clip(model: mujoco.MjModel, spec, clip: Clip, settle_time: float = 0.1,
               ctrl_dt: float = DEFAULT_CTRL_DT, fall_height: float = 0.25,
               fall_tilt: float = math.radians(45.0), ctrl_lead: float | None = None) -> TrackingTrace:
    """PD-track ``clip`` with the model's position servos; returns the sampled trace.

    The clip is resampled to the control rate. The start state is the first frame with zero
    velocity, lifted or lowered so that the lowest pad touches the floor (``height_offset``), held
    for ``settle_time``. During the control step ending at frame k the servo targets are the
    reference joint angles at ``t_k + ctrl_lead`` (linear interpolation, clamped to the clip's end;
    with ``ctrl_lead = 0`` that is frame k itself, the pose a policy would command for the next
    state; None, the default: the servos' own lag, :func:`servo_lag`). The run stops at a fall
    (height/tilt) or a non-finite state.
    """
    if tuple(clip.joint_names) != tuple(spec.joint_names):
        if sorted(clip.joint_names) != sorted(spec.joint_names):
            raise ValueError(f"clip {clip.name!r}: joints {list(clip.joint_names)} are not the robot's "
                             f"{list(spec.joint_names)}")
        order = [clip.joint_names.index(n) for n in spec.joint_names]
        clip = dataclasses.replace(clip, joint_pos=clip.joint_pos[:, order], joint_names=tuple(spec.joint_names))
    n_sub = int(round(ctrl_dt / model.opt.timestep))
    if n_sub < 1 or abs(n_sub * model.opt.timestep - ctrl_dt) > 1e-9:
        raise ValueError(f"ctrl_dt {ctrl_dt} is not a whole multiple of the model timestep {model.opt.timestep}")
    if abs(clip.fps - 1.0 / ctrl_dt) > 1e-9:
        clip = resample_clip(clip, 1.0 / ctrl_dt)
    T = clip.num_frames
    if ctrl_lead is None:
        ctrl_lead = servo_lag(model)
    act_cols = _actuator_order(model, spec.joint_names)
    pad_ids = geom_ids(model, spec.foot_geoms)
    foot_of_pad = np.array([0 if g.startswith("left") else 1 for g in spec.foot_geoms])
    qadr = np.asarray(spec.qpos_adr)

    data = mujoco.MjData(model)
    ref_qpos = clip.to_qpos(spec)
    ref_qpos[:, 3:7] = quat.make_sign_continuous(ref_qpos[:, 3:7])
    data.qpos[:] = ref_qpos[0]
    data.qvel[:] = 0.0
    mujoco.mj_kinematics(model, data)
    offset = -_lowest_pad_point(model, data, pad_ids) + 5e-4  # soles 0.5 mm above the floor
    ref_qpos[:, 2] += offset
    data.qpos[2] += offset
    mujoco.mj_forward(model, data)

    lo, hi = model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1]
    data.ctrl[:] = np.clip(clip.joint_pos[0, act_cols], lo, hi)
    for _ in range(int(round(settle_time / model.opt.timestep))):
        mujoco.mj_step(model, data)

    K = T
    qpos = np.zeros((K, model.nq))
    forces = np.zeros((K, len(pad_ids)))
    foot_speed = np.zeros((K, 2))
    ctrl = np.zeros((K, len(spec.joint_names)))
    vel6 = np.zeros(6)
    fell_at, unstable = None, False

    f6 = np.zeros(6)

    def sample(k: int) -> None:
        qpos[k] = data.qpos
        forces[k] = mj_geom_normal_forces(model, data, pad_ids)
        # Sliding speed of each foot: the horizontal velocity of the pad material *at each contact
        # point* (centre velocity + w x r), weighted by that contact's normal force. Measuring at the
        # pad centre instead would count a foot rocking on its edge as slipping.
        num, den = np.zeros(2), np.zeros(2)
        for i in range(data.ncon):
            con = data.contact[i]
            if con.efc_address < 0:
                continue
            hit = np.nonzero((pad_ids == con.geom[0]) | (pad_ids == con.geom[1]))[0]
            if hit.size == 0:
                continue
            gid = int(pad_ids[hit[0]])
            mujoco.mj_contactForce(model, data, i, f6)
            fn = max(float(f6[0]), 0.0)
            mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_GEOM, gid, vel6, 0)
            v = vel6[3:6] + np.cross(vel6[0:3], con.pos - data.geom_xpos[gid])
            s = foot_of_pad[hit[0]]
            num[s] += fn * float(np.hypot(v[0], v[1]))
            den[s] += fn
        foot_speed[k] = np.where(den > 1e-9, num / np.maximum(den, 1e-9), 0.0)

    sample(0)
    ctrl[0] = clip.joint_pos[0]
    n_done = 1
    tq = np.arange(T) * ctrl_dt
    lead_targets = np.stack([np.interp(tq + ctrl_lead, tq, clip.joint_pos[:, j]) for j in range(clip.num_joints)], axis=1)
    for k in range(1, T):
        target = lead_targets[k]
        data.ctrl[:] = np.clip(target[act_cols], lo, hi)
        mujoco.mj_step(model, data, nstep=n_sub)
        ctrl[k] = target
        if not np.isfinite(data.qpos).all() or not np.isfinite(data.qvel).all():
            unstable, fell_at = True, k
            break
        sample(k)
        n_done = k + 1
        z = data.qpos[2]
        if z < fall_height or _tilt(data.qpos[3:7]) > fall_tilt:
            fell_at = k
            break
    n = n_done
    return TrackingTrace(
        clip_name=clip.name, dt=ctrl_dt, qpos=qpos[:n], ref_qpos=ref_qpos[:n],
        joint_pos=qpos[:n][:, qadr], ref_joint_pos=clip.joint_pos[:n], foot_forces=forces[:n],
        foot_speed=foot_speed[:n], ctrl=ctrl[:n], height_offset=float(offset), fell_at=fell_at,
        unstable=unstable, ctrl_lead=float(ctrl_lead),
    )


def saturation(spec, joint_pos: np.ndarray, margin: float) -> tuple[float, list[str]]:
    """(fraction of frames with any joint within ``margin`` of a limit, names of those joints)."""
    lo, hi = spec.joint_ranges[:, 0], spec.joint_ranges[:, 1]
    near = (joint_pos <= lo + margin) | (joint_pos >= hi - margin)
    names = [n for n, b in zip(spec.joint_names, near.any(axis=0)) if b]
    return float(near.any(axis=1).mean()), names


def foot_loads(spec, trace: TrackingTrace) -> np.ndarray:
    """(K, 2) normal force (N) on each foot (left, right): the sum over its pads."""
    return np.stack([trace.foot_forces[:, [i for i, g in enumerate(spec.foot_geoms) if g.startswith(s)]].sum(axis=1)
                     for s in ("left", "right")], axis=1)


def weight_bearing(loads: np.ndarray, mass: float, thresholds: FeasibilityThresholds | None = None) -> np.ndarray:
    """Whether each foot's load (:func:`foot_loads`) is at least ``contact_force_fraction`` of the
    robot's weight (``mass`` kg): the foot bears weight and no longer slides freely."""
    th = thresholds or FeasibilityThresholds()
    return loads >= th.contact_force_fraction * mass * 9.81


def evaluate_trace(spec, clip: Clip, trace: TrackingTrace, mass: float,
                   thresholds: FeasibilityThresholds | None = None) -> ClipReport:
    """Compute the gate's metrics from a tracking trace and decide pass/fail."""
    th = thresholds or FeasibilityThresholds()
    mg = mass * 9.81
    n = trace.qpos.shape[0]
    sat, sat_names = saturation(spec, trace.ref_joint_pos if n == clip.num_frames else
                                _ref_at_ctrl(clip, trace), th.limit_margin)
    err = trace.joint_pos - trace.ref_joint_pos
    joint_rmse = float(np.sqrt(np.mean(err ** 2)))
    per_joint = {nme: float(np.sqrt(np.mean(err[:, j] ** 2))) for j, nme in enumerate(spec.joint_names)}

    foot_f = foot_loads(spec, trace)
    bearing = weight_bearing(foot_f, mass, th)
    # Stance = bearing weight now and at the previous control step: the touchdown sample itself
    # (an impact) is not stance yet, sliding after it is.
    loaded = bearing & np.concatenate([np.zeros((1, 2), dtype=bool), bearing[:-1]], axis=0)
    slipping = loaded & (trace.foot_speed > th.slip_speed)
    n_loaded = int(loaded.sum())
    slip_fraction = float(slipping.sum() / n_loaded) if n_loaded else 1.0
    slip_speed_mean = float(trace.foot_speed[loaded].mean()) if n_loaded else float("nan")

    h_err = trace.qpos[:, 2] - trace.ref_qpos[:, 2]
    height_rmse = float(np.sqrt(np.mean(h_err ** 2)))
    zs, zr = _body_z(trace.qpos[:, 3:7]), _body_z(trace.ref_qpos[:, 3:7])
    tilt_err = np.arccos(np.clip(np.sum(zs * zr, axis=-1), -1.0, 1.0))
    tilt_rmse = float(np.sqrt(np.mean(tilt_err ** 2)))
    yaw_s = np.unwrap(quat.yaw_of(trace.qpos[:, 3:7]))
    yaw_r = np.unwrap(quat.yaw_of(trace.ref_qpos[:, 3:7]))
    yaw_drift = float((yaw_s[-1] - yaw_s[0]) - (yaw_r[-1] - yaw_r[0]))

    dur = max((n - 1) * trace.dt, trace.dt)
    v_sim = (trace.qpos[-1, :2] - trace.qpos[0, :2]) / dur
    v_ref = (trace.ref_qpos[-1, :2] - trace.ref_qpos[0, :2]) / dur
    speed_error = float(np.linalg.norm(v_sim - v_ref))
    supported = foot_f.sum(axis=1) >= th.support_force_fraction * mg
    load_support = float(supported.mean())
    fell = trace.fell_at is not None

    failures = []
    if trace.unstable:
        failures.append(f"unstable: the simulation became non-finite at frame {trace.fell_at}")
    if fell:
        failures.append(f"fell: at t = {trace.fell_at * trace.dt:.2f} s of {(clip.num_frames - 1) / clip.fps:.2f} s")
    if sat > th.max_saturation_fraction:
        failures.append(f"saturation: {100 * sat:.1f}% of frames within {math.degrees(th.limit_margin):.1f} deg "
                        f"of a limit ({', '.join(sat_names)}) > {100 * th.max_saturation_fraction:.1f}%")
    if joint_rmse > th.max_joint_rmse:
        worst = max(per_joint, key=per_joint.get)
        failures.append(f"tracking: joint RMSE {joint_rmse:.3f} rad > {th.max_joint_rmse:.3f} (worst {worst} "
                        f"{per_joint[worst]:.3f})")
    if slip_fraction > th.max_slip_fraction:
        failures.append(f"slip: {100 * slip_fraction:.1f}% of stance samples slide faster than "
                        f"{th.slip_speed:.2f} m/s > {100 * th.max_slip_fraction:.1f}%")
    if height_rmse > th.max_height_rmse:
        failures.append(f"height: root height RMSE {height_rmse:.3f} m > {th.max_height_rmse:.3f}")
    if tilt_rmse > th.max_tilt_rmse:
        failures.append(f"tilt: root tilt RMSE {math.degrees(tilt_rmse):.1f} deg > {math.degrees(th.max_tilt_rmse):.1f}")
    tol = th.speed_abs_tol + th.speed_rel_tol * float(np.linalg.norm(v_ref))
    if speed_error > tol:
        failures.append(f"speed: mean velocity error {speed_error:.3f} m/s > {tol:.3f} (sim {np.linalg.norm(v_sim):.3f}, "
                        f"reference {np.linalg.norm(v_ref):.3f} m/s)")
    if load_support < th.min_load_support_fraction:
        failures.append(f"support: feet carry >= {100 * th.support_force_fraction:.0f}% of m*g in only "
                        f"{100 * load_support:.1f}% of samples < {100 * th.min_load_support_fraction:.0f}%")
    return ClipReport(
        name=clip.name, passed=not failures, failures=failures, num_frames=clip.num_frames,
        duration=float(clip.duration), saturation_fraction=sat, saturated_joints=sat_names,
        joint_rmse=joint_rmse, joint_rmse_per_joint=per_joint, slip_fraction=slip_fraction,
        slip_speed_mean=slip_speed_mean, height_rmse=height_rmse, tilt_rmse=tilt_rmse,
        tilt_max=float(tilt_err.max()), yaw_drift=yaw_drift, ref_speed=float(np.linalg.norm(v_ref)),
        sim_speed=float(np.linalg.norm(v_sim)), speed_error=speed_error, fell=fell,
        fall_time=None if not fell else float(trace.fell_at * trace.dt),
        load_support_fraction=load_support, height_offset=trace.height_offset, ctrl_lead=trace.ctrl_lead,
    )


def _ref_at_ctrl(clip: Clip, trace: TrackingTrace) -> np.ndarray:
    """The whole reference's joint angles at the control rate (saturation is judged on the whole
    clip even when the tracked run stopped early)."""
    if abs(clip.fps * trace.dt - 1.0) > 1e-9:
        clip = resample_clip(clip, 1.0 / trace.dt)
    return clip.joint_pos


def check_clip(model: mujoco.MjModel, spec, clip: Clip, thresholds: FeasibilityThresholds | None = None,
               ctrl_dt: float = DEFAULT_CTRL_DT, return_trace: bool = False):
    """Run the gate on one clip: ``ClipReport`` (and the ``TrackingTrace`` with ``return_trace``)."""
    th = thresholds or FeasibilityThresholds()
    lead = servo_lag(model) if th.ctrl_lead is None else float(th.ctrl_lead)
    trace = track_clip(model, spec, clip, settle_time=th.settle_time, ctrl_dt=ctrl_dt,
                       fall_height=th.fall_height, fall_tilt=th.fall_tilt, ctrl_lead=lead)
    report = evaluate_trace(spec, clip, trace, float(np.sum(model.body_mass)), th)
    return (report, trace) if return_trace else report


def check_dataset(model: mujoco.MjModel, spec, dataset: MotionDataset,
                  thresholds: FeasibilityThresholds | None = None, ctrl_dt: float = DEFAULT_CTRL_DT,
                  clips: Sequence[str] | None = None) -> list[ClipReport]:
    """Run the gate on every clip of ``dataset`` (or the named ``clips``)."""
    chosen = dataset.clips if clips is None else [dataset.clip(c) for c in clips]
    return [check_clip(model, spec, c, thresholds, ctrl_dt=ctrl_dt) for c in chosen]


def format_table(reports: Sequence[ClipReport]) -> str:
    """A fixed-width text table of the reports, one clip per row, failing criteria at the end."""
    head = (f"{'clip':<24} {'pass':<4} {'sat%':>5} {'rmse':>6} {'slip%':>6} {'dz':>6} {'tilt°':>6} "
            f"{'v_ref':>6} {'v_sim':>6} {'supp%':>6}  failing")
    rows = [head, "-" * len(head)]
    for r in reports:
        crit = ", ".join(r.failing_criteria) or "-"
        rows.append(
            f"{r.name[:24]:<24} {'yes' if r.passed else 'NO':<4} {100 * r.saturation_fraction:5.1f} "
            f"{r.joint_rmse:6.3f} {100 * r.slip_fraction:6.1f} {r.height_rmse:6.3f} "
            f"{math.degrees(r.tilt_rmse):6.1f} {r.ref_speed:6.3f} {r.sim_speed:6.3f} "
            f"{100 * r.load_support_fraction:6.1f}  {crit}"
        )
    n_pass = sum(r.passed for r in reports)
    rows.append(f"{n_pass}/{len(reports)} clips pass")
    return "\n".join(rows)


def reports_to_json(reports: Sequence[ClipReport], thresholds: FeasibilityThresholds | None = None,
                    extra: dict | None = None) -> str:
    """The reports (and the thresholds used, plus the top-level entries of ``extra``) as JSON."""
    th = thresholds or FeasibilityThresholds()
    doc = {
        "thresholds": dataclasses.asdict(th),
        "all_passed": all(r.passed for r in reports),
        "clips": [r.to_dict() for r in reports],
        **(extra or {}),
    }
    return json.dumps(doc, indent=2, allow_nan=False)


def with_friction_scale(model: mujoco.MjModel, scale: float) -> mujoco.MjModel:
    """A copy of ``model`` whose sliding friction is ``scale`` times the original on every geom
    (MuJoCo uses the larger friction of a geom pair, so the floor-sole contact scales by ``scale``);
    ``model`` itself when the scale is 1."""
    if scale == 1.0:
        return model
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"friction scale must be positive, got {scale}")
    scaled = copy.deepcopy(model)
    scaled.geom_friction[:, 0] *= scale
    return scaled


def start_timings(n: int) -> np.ndarray:
    """``n`` start timings (s the first pose is held on the floor) evenly spaced over 0.045-0.2575 s
    (for n = 18: every 12.5 ms)."""
    if n < 1:
        raise ValueError(f"need at least one start timing, got {n}")
    return np.round(np.linspace(0.045, 0.2575, n), 6) if n > 1 else np.array([FeasibilityThresholds().settle_time])


@dataclass(frozen=True)
class RobustnessRow:
    """One clip on one floor, tracked from several start timings: how many runs pass, the range of
    tracked / reference mean speed, and how often each criterion failed."""

    clip: str
    friction_scale: float
    runs: int
    passed: int
    speed_ratio_min: float
    speed_ratio_max: float
    failing: dict

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def robustness(model: mujoco.MjModel, spec, dataset: MotionDataset, settle_times: Sequence[float],
               friction_scales: Sequence[float] = (1.0,), thresholds: FeasibilityThresholds | None = None,
               ctrl_dt: float = DEFAULT_CTRL_DT) -> list[RobustnessRow]:
    """Run the gate on every clip from every start timing on every floor friction scale.

    An open-loop tracked gait is chaotic: one start can pass where another falls, so a single gate
    run says little about how close to the edge a clip is. This says it.
    """
    th = thresholds or FeasibilityThresholds()
    rows = []
    for clip in dataset.clips:
        for scale in friction_scales:
            m = with_friction_scale(model, float(scale))
            reports = [check_clip(m, spec, clip, dataclasses.replace(th, settle_time=float(s)), ctrl_dt=ctrl_dt)
                       for s in settle_times]
            ratios = [r.sim_speed / r.ref_speed for r in reports if r.ref_speed > 1e-9] or [float("nan")]
            failing: dict[str, int] = {}
            for r in reports:
                for key in r.failing_criteria:
                    failing[key] = failing.get(key, 0) + 1
            rows.append(RobustnessRow(clip=clip.name, friction_scale=float(scale), runs=len(reports),
                                      passed=sum(r.passed for r in reports), speed_ratio_min=float(min(ratios)),
                                      speed_ratio_max=float(max(ratios)), failing=failing))
    return rows


def format_robustness(rows: Sequence[RobustnessRow]) -> str:
    """A text table of :func:`robustness` rows."""
    head = f"{'clip':<24} {'friction':>8} {'passed':>8} {'v_sim/v_ref':>11}  failing (runs)"
    out = [head, "-" * len(head)]
    for r in rows:
        fails = ", ".join(f"{k} ({v})" for k, v in sorted(r.failing.items())) or "-"
        out.append(f"{r.clip[:24]:<24} {r.friction_scale:8.2f} {r.passed:>4}/{r.runs:<3} "
                   f"{r.speed_ratio_min:5.2f}-{r.speed_ratio_max:<5.2f}  {fails}")
    return "\n".join(out)
