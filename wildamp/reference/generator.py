"""The embedded WildRobot walking gait: a rocking, ZMP-preview-controlled pattern generator.

Why it exists: retargeted human clips are infeasible for this robot (ARCHITECTURE.md §5), so
wildamp ships its own reference gait that the robot's own servos can follow; the feasibility gate
(:mod:`wildamp.reference.feasibility`) proves it clip by clip.

Why it rocks: WildRobot's legs have no ankle roll. A sole is only flat when its leg is vertical in
the frontal plane, so with both soles flat the pelvis cannot move sideways, and on one foot the
centre of mass stays ~4.5 cm outside the inner edge of the sole whatever the joints do. Shifting
the weight by hip roll (the textbook LIPM gait) only tilts the soles onto their edges, and a
PD-tracked robot then falls towards its swing foot. What the robot *can* do is what small toy
bipeds do: rock from side to side as a rigid body on the edges of its soles, the unloaded foot
lifting, short single supports, the push of the other leg feeding the rocking. The generator
builds that motion, and takes the sagittal centre-of-mass path from the cart-table (LIPM) model:

1. **Footsteps.** Alternating steps of period ``step_period``, left foot first. Each step starts
   with a push phase (``double_support_fraction``; the new swing foot is still on the floor and its
   leg extends as the body tilts away), then the swing. Stride, lift and rocking ramp up over
   ``ramp_steps`` from standing.
2. **Rocking.** The whole body rolls about an edge of the stance sole by
   ``amplitude * sin(pi * phase + rock_phase)``, alternating sides: about the outer edge while
   tilted towards the stance foot, about the inner edge while already falling towards the swing
   foot. The default amplitude is the free rocking of the robot as a rigid body on that edge over
   one step (mass and roll inertia from the model), so that gravity, not the servos, carries it.
3. **Sagittal CoM.** Kajita's ZMP preview control (LQR with integral action and future-ZMP
   feed-forward) on the cart-table model turns the forward ZMP reference (on the stance sole,
   rolling ``zmp_forward_travel`` heel to toe, moving to the new sole during the push) into a
   smooth CoM path at the CoM height of the standing pose. The lateral CoM reference of the
   nominal (untilted) pose is the middle of the feet, which moves when walking sideways.
4. **Whole body.** Nominal pose: pelvis at ``pelvis_height`` (+ ``stance_lift`` at mid single
   support against servo sag), leaning forward by ``pelvis_pitch``, then rotated with the rocking.
   Fixed-point iterations with MuJoCo forward kinematics correct the pelvis x so that the whole-body
   CoM follows the plan, and the ankle targets so that the stance sole rolls exactly about its
   edge and the swing sole's lowest point follows ``step_height * sin(pi s)^lift_exponent``.
5. **Leg IK.** Analytic for this chain (hip pitch, then hip roll about the pitched x axis, knee
   pitch, ankle pitch) with the geometry and the joint-axis signs read from the model at ``home``,
   so the mirrored right hip comes out right by construction; the ankle keeps the sole's forward
   axis horizontal in the world.
6. ``waist_yaw`` counter-rotates the upper torso against the swinging legs (proportional to the
   fore-aft distance between the feet), which also keeps that channel from being constant.

Joint limits are checked with :data:`LIMIT_MARGIN` for every frame; parameters that leave them
raise a ValueError naming the joint, the frame and what to change (nothing is clipped silently).
Turning is not generated: with no hip yaw joint the feet cannot turn relative to the pelvis, so a
turn needs the stance foot to pivot on the floor, which the gate's slip criterion rejects.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import mujoco
import numpy as np

from wildamp import paths, quat
from wildamp.reference.clip import Clip, MotionDataset

__all__ = [
    "GaitParams", "GaitPlan", "LegGeometry", "DEFAULT_SPEEDS", "DEFAULT_LATERAL_SPEEDS", "GRAVITY",
    "LIMIT_MARGIN", "leg_geometry", "leg_ik", "solve_dare", "preview_control_com", "rocking_amplitude",
    "plan_gait", "generate_clip", "generate_dataset", "ensure_default_reference",
    "default_gait_params", "pad_heights",
]

GRAVITY = 9.81
#: Forward speeds (m/s) of the default dataset. Every clip passes the feasibility gate from several
#: start timings (tests/test_reference_gait.py); above 0.25 m/s each speed has its own tuned
#: parameter set (:data:`GAIT_BANDS`).
DEFAULT_SPEEDS: tuple[float, ...] = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)
#: Sideways speeds (m/s, + is to the robot's left) of the default dataset's lateral clips.
DEFAULT_LATERAL_SPEEDS: tuple[float, ...] = (0.1, -0.1)
#: Joint angles must stay this far inside their limits (rad, ~2 deg).
LIMIT_MARGIN = 0.035
GENERATOR_VERSION = 4


@dataclass(frozen=True)
class GaitParams:
    """Parameters of one generated walking clip (SI units; the robot faces +x, its left is +y).

    The defaults are the embedded gait's slow band (up to 0.25 m/s and the sideways clips; faster
    bands override some of them, :data:`GAIT_BANDS`). Like every band they come from the
    gate-in-the-loop search (:mod:`wildamp.reference.tuning`), here ``wildamp reference tune --speeds
    0.1,0.15,0.2,0.25 --lateral-speeds 0.1,-0.1 --iterations 12 --population 32 --seed 21``
    (rounded to 4 decimals, then re-checked). Changing one of them is fine for experiments; the gate
    (``wildamp reference check``) says whether the result is still feasible.

    Attributes:
        speed: forward walking speed (m/s) in steady state.
        lateral_speed: sideways speed (m/s, + = to the robot's left).
        step_period: duration of one step (s); a gait cycle (left + right step) lasts twice as long.
            Short steps keep the single support (where the CoM is always outside the sole) brief.
        double_support_fraction: fraction of each step, at its start, during which the new swing
            foot still pushes on the floor (both feet down).
        step_height: peak height (m) of the swing sole's lowest point above the floor.
        pelvis_height: height (m) of the pelvis origin in the nominal, untilted pose; below the home
            height 0.469 so that the knees stay bent and the trailing leg can reach back.
        step_width: lateral distance between the sole centres (m); None: as at ``home``.
        rock_amplitude: peak side-to-side roll of the body (rad); None: the free rocking of the
            robot over one step (:func:`rocking_amplitude`) times ``rock_gain``.
        rock_gain: scale of the automatic rocking amplitude.
        rock_phase: phase lead (rad) of the rocking over the steps: the body is already tilting
            towards the swing foot when it lands (as a rigid robot standing on the inner edge of its
            sole does), instead of being level at touch-down (0).
        zmp_forward_travel: the ZMP reference rolls from -travel/2 to +travel/2 (m) along the sole
            during single support (heel to toe).
        waist_yaw_gain: upper-torso counter-rotation (rad per metre of fore-aft foot distance).
        duration: clip length (s), including ``stand_time``.
        stand_time: time standing still at the start (s).
        ramp_steps: steps over which the stride, the lift and the rocking grow to their full size.
        first_push_fraction: push (double-support) fraction of the first step from standing, which
            must start the rocking; it blends to ``double_support_fraction`` over the ramp.
        stance_lift: the pelvis rises by this much (m) at mid single support (raised cosine), which
            offsets the servos' sag under the full body weight.
        pelvis_pitch: forward lean of the pelvis (rad); gives the trailing leg room before the 5 deg
            hip-extension limit.
        lift_exponent: swing lift profile ``step_height * sin(pi s)^lift_exponent`` over the swing
            phase s in [0, 1] (2: raised cosine, soft touch-down; 1: half sine, lower frequency, which
            the servos follow better).
        preview_time: ZMP preview horizon (s).
    """

    speed: float = 0.25
    lateral_speed: float = 0.0
    step_period: float = 0.2738
    double_support_fraction: float = 0.0
    step_height: float = 0.0443
    pelvis_height: float = 0.4299
    step_width: float | None = None
    rock_amplitude: float | None = None
    rock_gain: float = 1.1334
    rock_phase: float = 0.7067
    zmp_forward_travel: float = 0.0002
    waist_yaw_gain: float = 0.5
    duration: float = 5.0
    stand_time: float = 0.3
    ramp_steps: int = 3
    first_push_fraction: float = 0.4968
    stance_lift: float = 0.0128
    pelvis_pitch: float = 0.1403
    lift_exponent: float = 1.969
    preview_time: float = 1.6

    def validate(self) -> "GaitParams":
        """Raise ValueError naming the first parameter outside its sensible range."""
        checks = [
            ("speed", math.isfinite(self.speed) and abs(self.speed) <= 1.0),
            ("lateral_speed", math.isfinite(self.lateral_speed) and abs(self.lateral_speed) <= 0.5),
            ("step_period", 0.15 <= self.step_period <= 1.5),
            ("double_support_fraction", 0.0 <= self.double_support_fraction < 0.8),
            ("step_height", 0.0 < self.step_height <= 0.12),
            ("pelvis_height", 0.2 < self.pelvis_height < 1.0),
            ("rock_gain", 0.0 <= self.rock_gain <= 3.0),
            ("rock_phase", 0.0 <= self.rock_phase < 0.5 * math.pi),
            ("zmp_forward_travel", 0.0 <= self.zmp_forward_travel <= 0.1),
            ("duration", self.duration > self.stand_time + 2 * self.step_period),
            ("stand_time", self.stand_time >= 0.0),
            ("ramp_steps", isinstance(self.ramp_steps, int) and self.ramp_steps >= 0),
            ("first_push_fraction", 0.0 <= self.first_push_fraction < 0.8),
            ("stance_lift", 0.0 <= self.stance_lift <= 0.05),
            ("pelvis_pitch", -0.5 <= self.pelvis_pitch <= 0.5),
            ("lift_exponent", 0.5 <= self.lift_exponent <= 4.0),
            ("preview_time", self.preview_time > 0.2),
        ]
        for name, ok in checks:
            if not ok:
                raise ValueError(f"GaitParams.{name} = {getattr(self, name)!r} is out of range")
        if self.step_width is not None and self.step_width <= 0:
            raise ValueError(f"GaitParams.step_width = {self.step_width!r} must be positive")
        if self.rock_amplitude is not None and not 0.0 <= self.rock_amplitude <= 0.3:
            raise ValueError(f"GaitParams.rock_amplitude = {self.rock_amplitude!r} is out of range [0, 0.3]")
        return self

    def default_name(self) -> str:
        """A readable clip name such as ``walk_fwd_0.25`` or ``walk_lat_+0.10``."""
        if self.lateral_speed != 0.0 and self.speed == 0.0:
            return f"walk_lat_{self.lateral_speed:+.2f}"
        if self.lateral_speed != 0.0:
            return f"walk_fwd_{self.speed:.2f}_lat_{self.lateral_speed:+.2f}"
        return f"walk_fwd_{self.speed:.2f}"


#: The embedded gait's parameter sets by forward speed band: ``(top speed, overrides of the
#: GaitParams defaults)``. A clip at forward speed v uses the first band whose top speed is >= |v|
#: (the last band above that). The defaults carry the slow band; all sets come from
#: ``wildamp reference tune`` (:mod:`wildamp.reference.tuning`: cross-entropy search scored by the
#: feasibility gate from several start timings; the 0.4 m/s set also on floors of 0.85 and 1.15
#: times the friction and with 0.2 %-jittered copies of each candidate, because a set found without
#: them could hinge on the 5th digit of a parameter): faster walking needs a later rocking phase,
#: higher and softer swings and a slower ramp-up (8-9 steps), which the slow band cannot give (its
#: tracked robot falls from 0.35 m/s on).
GAIT_BANDS: tuple[tuple[float, dict], ...] = (
    (0.25, {}),
    (0.30, dict(step_period=0.273, double_support_fraction=0.0704, step_height=0.0532, pelvis_height=0.4357,
                rock_gain=1.1518, rock_phase=1.0521, zmp_forward_travel=0.0156,
                first_push_fraction=0.5551, stance_lift=0.0135, pelvis_pitch=0.0601,
                lift_exponent=1.7527, ramp_steps=8)),
    (0.35, dict(step_period=0.2916, double_support_fraction=0.0, step_height=0.0487, pelvis_height=0.44,
                rock_gain=1.091, rock_phase=1.28, zmp_forward_travel=0.0326, first_push_fraction=0.4772,
                stance_lift=0.0128, pelvis_pitch=0.06, lift_exponent=1.4519, ramp_steps=8)),
    (0.40, dict(step_period=0.2828, double_support_fraction=0.007, step_height=0.0501, pelvis_height=0.439,
                rock_gain=1.3456, rock_phase=0.9951, zmp_forward_travel=0.0247,
                first_push_fraction=0.1451, stance_lift=0.0171, pelvis_pitch=0.07,
                lift_exponent=1.2094, ramp_steps=9)),
)


def default_gait_params(speed: float = 0.25, lateral_speed: float = 0.0, **overrides) -> GaitParams:
    """The embedded gait's parameters at a given speed: the :data:`GAIT_BANDS` set for ``speed``,
    then ``overrides``."""
    band = next((p for top, p in GAIT_BANDS if abs(float(speed)) <= top + 1e-9), GAIT_BANDS[-1][1])
    return GaitParams(speed=float(speed), lateral_speed=float(lateral_speed), **{**band, **overrides}).validate()


# ------------------------------------------------------------------------------ leg geometry


@dataclass(frozen=True)
class LegGeometry:
    """One leg's kinematics in the pelvis frame at ``home`` (read from the model, nothing typed in).

    ``signs`` convert the canonical angles of the IK (rotations about the pelvis +y, +x, +y, +y axes
    for hip pitch, hip roll, knee, ankle) into joint angles: ``q = sign * canonical``. For the left
    hip pitch (axis -y) the sign is -1, for the mirrored right hip pitch (axis +y) it is +1.
    """

    side: str
    joint_names: tuple[str, str, str, str]  # hip pitch, hip roll, knee, ankle
    joint_index: tuple[int, int, int, int]  # columns in spec.joint_names
    signs: tuple[float, float, float, float]
    roll_anchor: np.ndarray  # (3,) hip-roll anchor in the pelvis frame (pitch leaves it in place)
    thigh: float  # hip-roll anchor -> knee (m)
    shank: float  # knee -> ankle (m)
    sole_offset: np.ndarray  # (3,) ankle anchor -> sole centre (bottom of the pads), foot frame
    sole_half_length: float  # half of the pads' extent along x (m)
    sole_half_width: float  # half of the pads' extent along y (m)
    foot_body: int  # body id of the foot (the ankle joint's body)
    sole_in_foot: np.ndarray  # (3,) sole centre in the foot body frame
    sole_corners_in_foot: np.ndarray  # (4, 3) corners of the sole rectangle in the foot body frame


def _joint_id(model: mujoco.MjModel, name: str) -> int:
    j = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
    if j < 0:
        raise KeyError(f"joint {name!r} not found in the model")
    return j


def _home_data(model: mujoco.MjModel, spec) -> mujoco.MjData:
    data = mujoco.MjData(model)
    data.qpos[:] = spec.home_qpos
    data.qpos[3:7] = (1.0, 0.0, 0.0, 0.0)  # level pelvis: pelvis frame == world axes
    mujoco.mj_kinematics(model, data)
    return data


def leg_geometry(model: mujoco.MjModel, spec, side: str) -> LegGeometry:
    """Extract one leg's chain from the model at ``home`` (pelvis level, all joints as in home).

    The analytic IK assumes this chain (true for wildamp's model and the real WildRobot): hip pitch
    about the pelvis y axis, then hip roll about x with its anchor on the pitch axis, then knee and
    ankle pitch about y with the knee straight below the roll anchor and the ankle below the knee.
    Anything else raises ValueError naming the joint, instead of producing wrong angles.
    """
    names = tuple(f"{side}_{j}" for j in ("hip_pitch", "hip_roll", "knee_pitch", "ankle_pitch"))
    index = tuple(spec.joint_names.index(n) if n in spec.joint_names else -1 for n in names)
    missing = [n for n, i in zip(names, index) if i < 0]
    if missing:
        raise KeyError(f"leg joints {missing} not in the robot spec joints {list(spec.joint_names)}")
    if np.any(np.abs(spec.home_qpos[spec.qpos_adr[list(index)]]) > 1e-9):
        raise ValueError(f"{side} leg: the generator expects the home pose to have straight legs (all leg joints 0)")
    data = _home_data(model, spec)
    root = data.xpos[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, spec.root_body)].copy()
    jids = [_joint_id(model, n) for n in names]
    anchors = [data.xanchor[j] - root for j in jids]
    axes = [data.xaxis[j].copy() for j in jids]
    canon = [np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]),
             np.array([0.0, 1.0, 0.0])]
    signs = []
    for n, a, c in zip(names, axes, canon):
        s = float(a @ c)
        if abs(abs(s) - 1.0) > 1e-6:
            raise ValueError(f"joint {n!r}: axis {a.round(4).tolist()} is not along {c.tolist()} at home; "
                             "the analytic leg IK does not apply to this model")
        signs.append(math.copysign(1.0, s))
    # Kinematic order: each joint's body is the child of the previous joint's body.
    bodies = [int(model.jnt_bodyid[j]) for j in jids]
    for k in range(1, 4):
        if int(model.body_parentid[bodies[k]]) != bodies[k - 1]:
            raise ValueError(f"joint {names[k]!r} is not on the child body of {names[k - 1]!r}; "
                             "the generator's IK needs the chain hip pitch -> hip roll -> knee -> ankle")
    pitch, roll, knee, ankle = anchors
    if np.linalg.norm(np.cross(roll - pitch, canon[0])) > 1e-6:
        raise ValueError(f"{names[1]!r}: anchor is not on the hip pitch axis (the IK assumes it is)")
    for upper, lower, n in ((roll, knee, names[2]), (knee, ankle, names[3])):
        off = lower - upper
        if np.linalg.norm(off[:2]) > 1e-6 or off[2] >= 0:
            raise ValueError(f"{n!r}: anchor is not straight below the previous joint at home")
    # The sole: the bounding box of the foot's pads (bottom face), relative to the ankle anchor.
    pads = [g for g in spec.foot_geoms if g.startswith(side)]
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for g in pads:
        gid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, g)
        if gid < 0:
            raise KeyError(f"foot geom {g!r} not found in the model")
        if int(model.geom_type[gid]) != int(mujoco.mjtGeom.mjGEOM_BOX):
            raise ValueError(f"foot geom {g!r} is not a box; the generator needs box sole pads")
        c = data.geom_xpos[gid] - root
        half = np.abs(data.geom_xmat[gid].reshape(3, 3)) @ model.geom_size[gid]
        lo, hi = np.minimum(lo, c - half), np.maximum(hi, c + half)
    centre = 0.5 * (lo + hi)
    sole = np.array([centre[0], centre[1], lo[2]])
    foot = bodies[3]
    foot_pos = data.xpos[foot] - root
    foot_rot = data.xmat[foot].reshape(3, 3)
    corners = np.array([[x, y, lo[2]] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])])
    return LegGeometry(
        side=side,
        joint_names=names,
        joint_index=index,
        signs=tuple(signs),
        roll_anchor=roll,
        thigh=float(roll[2] - knee[2]),
        shank=float(knee[2] - ankle[2]),
        sole_offset=sole - ankle,
        sole_half_length=float(0.5 * (hi[0] - lo[0])),
        sole_half_width=float(0.5 * (hi[1] - lo[1])),
        foot_body=foot,
        sole_in_foot=foot_rot.T @ (sole - foot_pos),
        sole_corners_in_foot=(corners - foot_pos) @ foot_rot,
    )


def leg_ik(leg: LegGeometry, ankle_in_pelvis: np.ndarray, up_in_pelvis: np.ndarray | None = None) -> np.ndarray:
    """Joint angles (N, 4) [hip pitch, hip roll, knee, ankle] putting the ankle at the targets.

    ``ankle_in_pelvis`` (N, 3) are ankle-anchor positions in the pelvis frame. The knee bends
    forward (flexion); the ankle makes the sole's forward axis horizontal in the world, whose up
    direction in the pelvis frame is ``up_in_pelvis`` (N, 3; default: pelvis level). Forward
    kinematics of the chain (rotations about +y, +x, +y, +y with canonical angles p, r, k, a):
    ``ankle - roll_anchor = Ry(p) Rx(r) (-L2 sin k, 0, -L1 - L2 cos k)``.
    Raises ValueError naming the first unreachable frame.
    """
    d = np.asarray(ankle_in_pelvis, dtype=np.float64) - leg.roll_anchor
    L1, L2 = leg.thigh, leg.shank
    dist2 = np.sum(d * d, axis=-1)
    c = (dist2 - L1 * L1 - L2 * L2) / (2.0 * L1 * L2)
    bad = (c > 1.0 - 1e-9) | (c < -1.0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{leg.side} leg IK: ankle target of frame {i} is {math.sqrt(dist2[i]):.4f} m from the hip, "
            f"outside the reach ({abs(L1 - L2):.3f}, {L1 + L2:.3f}) m; lower pelvis_height or shorten the step"
        )
    k = np.arccos(c)
    ux = -L2 * np.sin(k)
    uz = -(L1 + L2 * np.cos(k))  # < 0: the leg points down
    s = np.clip(d[..., 1] / (-uz), -1.0, 1.0)
    r = np.arcsin(s)
    wx, wz = ux, uz * np.cos(r)
    p = np.arctan2(d[..., 0], d[..., 2]) - np.arctan2(wx, wz)
    p = (p + np.pi) % (2.0 * np.pi) - np.pi
    # Sole level in pitch: the foot x axis Ry(p) Rx(r) Ry(b) e_x = cos(b) u1 - sin(b) u2 is
    # perpendicular to the world up direction n.
    n = np.broadcast_to([0.0, 0.0, 1.0], d.shape) if up_in_pelvis is None else np.asarray(up_in_pelvis)
    u1 = np.stack([np.cos(p), np.zeros_like(p), -np.sin(p)], axis=-1)
    u2 = np.stack([np.cos(r) * np.sin(p), -np.sin(r), np.cos(r) * np.cos(p)], axis=-1)
    b = np.arctan2(np.sum(n * u1, axis=-1), np.sum(n * u2, axis=-1))
    a = b - k
    canonical = np.stack([p, r, k, a], axis=-1)
    return canonical * np.asarray(leg.signs)


# ---------------------------------------------------------------------- ZMP preview control


def solve_dare(A: np.ndarray, B: np.ndarray, Q: np.ndarray, R: np.ndarray, tol: float = 1e-12,
               max_iter: int = 100) -> np.ndarray:
    """Stabilising solution P of the discrete algebraic Riccati equation
    ``P = Q + A^T P A - A^T P B (R + B^T P B)^-1 B^T P A`` by the structure-preserving doubling
    algorithm (quadratic convergence; numpy only, so the package needs no scipy).
    """
    n = A.shape[0]
    Ak, Gk, Hk = A.copy(), B @ np.linalg.solve(R, B.T), Q.copy()
    for _ in range(max_iter):
        W = np.eye(n) + Gk @ Hk
        AW = np.linalg.solve(W.T, Ak.T).T  # Ak W^-1
        H_next = Hk + Ak.T @ Hk @ np.linalg.solve(W, Ak)
        G_next = Gk + AW @ Gk @ Ak.T
        Ak = AW @ Ak
        done = np.max(np.abs(H_next - Hk)) <= tol * max(1.0, float(np.max(np.abs(H_next))))
        Gk, Hk = G_next, H_next
        if done:
            return 0.5 * (Hk + Hk.T)
    raise ValueError("the Riccati equation of the ZMP preview controller did not converge")


def _preview_gains(z_c: float, dt: float, n_preview: int, q_e: float = 1.0, r: float = 1e-6):
    """Kajita's preview-control gains for the cart-table model (state: position, velocity,
    acceleration; input: jerk; output: ZMP) with integral action on the ZMP error."""
    A = np.array([[1.0, dt, dt * dt / 2.0], [0.0, 1.0, dt], [0.0, 0.0, 1.0]])
    B = np.array([[dt ** 3 / 6.0], [dt * dt / 2.0], [dt]])
    C = np.array([[1.0, 0.0, -z_c / GRAVITY]])
    # Augmented system x~ = [sum of ZMP error; x] (Katayama et al. 1985).
    At = np.block([[np.eye(1), C @ A], [np.zeros((3, 1)), A]])
    Bt = np.vstack([C @ B, B])
    It = np.array([[1.0], [0.0], [0.0], [0.0]])
    Q = np.zeros((4, 4))
    Q[0, 0] = q_e
    R = np.array([[r]])
    P = solve_dare(At, Bt, Q, R)
    S = np.linalg.inv(R + Bt.T @ P @ Bt)
    K = S @ Bt.T @ P @ At
    Gi, Gx = float(K[0, 0]), K[0, 1:].copy()
    Ac = At - Bt @ K
    X = -Ac.T @ P @ It
    Gd = np.zeros(n_preview)
    Gd[0] = -Gi
    for j in range(1, n_preview):
        Gd[j] = float((S @ Bt.T @ X)[0, 0])
        X = Ac.T @ X
    return A, B, C, Gi, Gx, Gd


def preview_control_com(zmp_ref: np.ndarray, z_c: float, dt: float, preview_time: float,
                        com0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CoM path (N, D) of the cart-table model tracking ``zmp_ref`` (N + preview, D) by preview control.

    ``zmp_ref`` must extend at least ``preview_time`` beyond the N output samples (the controller
    looks ahead). Returns (com, com_velocity, realised zmp), each (N, D); the CoM starts at rest at
    ``com0`` (default: the first ZMP reference).
    """
    zmp_ref = np.asarray(zmp_ref, dtype=np.float64)
    n_prev = int(round(preview_time / dt))
    N = zmp_ref.shape[0] - n_prev
    if N < 1:
        raise ValueError("zmp_ref must be longer than the preview horizon")
    A, B, C, Gi, Gx, Gd = _preview_gains(z_c, dt, n_prev)
    D = zmp_ref.shape[1]
    x = np.zeros((3, D))
    x[0] = zmp_ref[0] if com0 is None else com0
    err = np.zeros(D)
    com, vel, zmp = np.zeros((N, D)), np.zeros((N, D)), np.zeros((N, D))
    for k in range(N):
        p = (C @ x)[0]
        com[k], vel[k], zmp[k] = x[0], x[1], p
        err += p - zmp_ref[k]
        u = -Gi * err - Gx @ x - Gd @ zmp_ref[k : k + n_prev]
        x = A @ x + B @ u[None, :]
    return com, vel, zmp


# --------------------------------------------------------------------------- gait planning


@dataclass
class GaitPlan:
    """Timed footsteps and reference paths of one clip, sampled at the frame times ``t``.

    ``steps`` rows: (swing side 0=left 1=right, step start, lift-off, touch-down, from x, from y,
    to x, to y). ``feet_xy`` (T, 2, 2): planned sole centres (left, right); ``lift`` (T, 2): planned
    height of each sole's lowest point; ``contact`` (T, 2): the foot is planned on the floor;
    ``stance`` (T,): side whose sole carries the rocking pivot (-1 while standing);
    ``roll`` (T,): body roll about +x (rad; > 0 tilts the body towards its right, -y);
    ``pivot_y`` (T,): y of the pivot edge (the stance sole's outer edge while tilted towards it,
    its inner edge after); ``com``/``zmp``/``zmp_ref`` (T, 2): nominal (untilted) CoM path, its
    ZMP and the ZMP reference; ``amplitude``: full rocking amplitude (rad); ``pelvis_dz`` (T,):
    the pelvis rise in single support (``stance_lift``).
    """

    t: np.ndarray
    steps: np.ndarray
    feet_xy: np.ndarray
    lift: np.ndarray
    contact: np.ndarray
    stance: np.ndarray
    roll: np.ndarray
    pivot_y: np.ndarray
    com: np.ndarray
    zmp: np.ndarray
    zmp_ref: np.ndarray
    amplitude: float
    pelvis_dz: np.ndarray


def _cycloid(s: np.ndarray) -> np.ndarray:
    """0 -> 1 with zero velocity at both ends (the horizontal swing profile)."""
    return s - np.sin(2.0 * np.pi * s) / (2.0 * np.pi)


def _ease(s: np.ndarray) -> np.ndarray:
    """Raised-cosine 0 -> 1 blend."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(s, 0.0, 1.0))


def plan_gait(params: GaitParams, half_width: float, sole_half_width: float, t: np.ndarray,
              z_c: float, amplitude: float, fine_dt: float = 0.005) -> GaitPlan:
    """Footsteps, rocking, swing-sole paths, ZMP reference and preview-controlled CoM at times ``t``.

    ``half_width``: half the lateral distance between the sole centres; ``sole_half_width``: half
    the sole width (the pivot is the stance sole's outer edge); ``z_c``: LIPM CoM height;
    ``amplitude``: full rocking amplitude (rad). The left foot steps first, unless the robot walks
    sideways to its right only (then the right foot leads).
    """
    p = params
    T = p.step_period
    t_first = p.stand_time
    horizon = float(t[-1]) + p.preview_time + 2.0 * T
    n_steps = int(math.ceil((horizon - t_first) / T)) + 1
    first = 1 if (p.lateral_speed < 0 and p.speed == 0.0) else 0
    sgn = np.array([1.0, -1.0])  # left is +y
    v = np.array([p.speed, p.lateral_speed])
    feet0 = np.array([[0.0, half_width], [0.0, -half_width]])

    pos = feet0.copy()
    centre = np.zeros(2)
    steps, ramps = [], []
    for i in range(n_steps):
        sw = (first + i) % 2
        ramp = min(1.0, (i + 1) / (p.ramp_steps + 1))
        # The midline advances by v*T per step (less while ramping up), so the first step from
        # feet side by side is half a stride and later ones a full stride (2 v T).
        centre = centre + v * T * ramp
        target = centre + np.array([0.0, sgn[sw] * half_width])
        t0 = t_first + i * T
        dsf = p.double_support_fraction + (1.0 - ramp) * (p.first_push_fraction - p.double_support_fraction)
        steps.append((sw, t0, t0 + dsf * T, t0 + T, *pos[sw], *target))
        ramps.append(ramp)
        pos[sw] = target
    steps_arr = np.array(steps)

    def feet_at(times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xy = np.broadcast_to(feet0, (times.shape[0], 2, 2)).copy()
        lift = np.zeros((times.shape[0], 2))
        contact = np.ones((times.shape[0], 2), dtype=bool)
        for (sw, t0, t_lift, t_land, fx, fy, tx, ty), ramp in zip(steps, ramps):
            sw = int(sw)
            m = (times >= t_lift) & (times < t_land)
            s = (times[m] - t_lift) / (t_land - t_lift)
            g = _cycloid(s)
            xy[m, sw, 0] = fx + (tx - fx) * g
            xy[m, sw, 1] = fy + (ty - fy) * g
            lift[m, sw] = p.step_height * ramp * np.sin(np.pi * s) ** p.lift_exponent
            contact[m, sw] = False
            after = times >= t_land
            xy[after, sw] = (tx, ty)
        return xy, lift, contact

    def zmp_at(times: np.ndarray) -> np.ndarray:
        xy, _, _ = feet_at(times)
        out = np.zeros((times.shape[0], 2))
        out[:, 1] = xy[:, :, 1].mean(axis=1)  # lateral: the middle of the feet (rocking does the rest)
        out[:, 0] = feet0[:, 0].mean()
        prev = feet0[:, 0].mean()
        foot_x = feet0[:, 0].copy()
        for sw, t0, t_lift, t_land, fx, fy, tx, ty in steps:
            st = 1 - int(sw)
            start = foot_x[st] - 0.5 * p.zmp_forward_travel
            m = (times >= t0) & (times < t_lift)
            if t_lift > t0:
                out[m, 0] = prev + (start - prev) * _ease((times[m] - t0) / (t_lift - t0))
            m = (times >= t_lift) & (times < t_land)
            out[m, 0] = start + p.zmp_forward_travel * (times[m] - t_lift) / (t_land - t_lift)
            prev = foot_x[st] + 0.5 * p.zmp_forward_travel
            foot_x[int(sw)] = tx
        return out

    n_prev = int(round(p.preview_time / fine_dt))
    n_out = int(math.ceil(float(t[-1]) / fine_dt)) + 2
    tf = np.arange(n_out + n_prev) * fine_dt
    com_f, _, zmp_f = preview_control_com(zmp_at(tf), z_c, fine_dt, p.preview_time)
    tf = tf[:n_out]

    def interp(y: np.ndarray) -> np.ndarray:
        return np.stack([np.interp(t, tf, y[:, j]) for j in range(y.shape[1])], axis=-1)

    feet_xy, lift, contact = feet_at(t)
    stance = np.full(t.shape[0], -1, dtype=np.int64)
    roll = np.zeros(t.shape[0])
    pivot_y = np.zeros(t.shape[0])
    pelvis_dz = np.zeros(t.shape[0])
    for (sw, t0, t_lift, t_land, *_), ramp in zip(steps, ramps):
        m = (t >= t_lift) & (t < t_land)
        pelvis_dz[m] = p.stance_lift * ramp * np.sin(np.pi * (t[m] - t_lift) / (t_land - t_lift)) ** 2
        m = (t >= t0) & (t < t_land)
        st = 1 - int(sw)
        stance[m] = st
        env = _ease((t[m] - t_first) / ((p.ramp_steps + 1) * T))
        # Tilt towards the stance side (roll < 0 tilts towards +y). With rock_phase > 0 the tilt
        # leads the steps: the body is already falling towards the swing foot when it lands.
        tilt = amplitude * env * np.sin(np.pi * (t[m] - t0) / (t_land - t0) + p.rock_phase)
        roll[m] = -sgn[st] * tilt
        # Pivot: the outer sole edge while tilted towards the stance side, the inner one after.
        pivot_y[m] = feet_xy[m, st, 1] + np.where(tilt >= 0.0, sgn[st], -sgn[st]) * sole_half_width
    return GaitPlan(t=t, steps=steps_arr, feet_xy=feet_xy, lift=lift, contact=contact, stance=stance,
                    roll=roll, pivot_y=pivot_y, com=interp(com_f), zmp=interp(zmp_f), zmp_ref=zmp_at(t),
                    amplitude=float(amplitude), pelvis_dz=pelvis_dz)


# ----------------------------------------------------------------------------- whole body


def _load_model_for(spec) -> mujoco.MjModel:
    from wildamp.robot import load_model

    return load_model(spec.model_path)


class _Body:
    """Forward kinematics of whole configurations: CoM, sole centres and sole lowest points."""

    def __init__(self, model: mujoco.MjModel, spec, legs: Sequence[LegGeometry]) -> None:
        self.model, self.spec, self.legs = model, spec, legs
        self.data = mujoco.MjData(model)
        self.root = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, spec.root_body)

    def qpos(self, root_pos: np.ndarray, root_quat: np.ndarray, joints: np.ndarray) -> np.ndarray:
        q = np.tile(self.spec.home_qpos, (joints.shape[0], 1))
        q[:, 0:3], q[:, 3:7] = root_pos, root_quat
        q[:, self.spec.qpos_adr] = joints
        return q

    def fk(self, root_pos: np.ndarray, root_quat: np.ndarray, joints: np.ndarray):
        """(CoM (N, 3), sole centres (N, 2, 3), sole lowest z (N, 2)) of N configurations."""
        qpos = self.qpos(root_pos, root_quat, joints)
        n = qpos.shape[0]
        com, centre, low = np.zeros((n, 3)), np.zeros((n, 2, 3)), np.zeros((n, 2))
        d = self.data
        for i in range(n):
            d.qpos[:] = qpos[i]
            mujoco.mj_kinematics(self.model, d)
            mujoco.mj_comPos(self.model, d)
            com[i] = d.subtree_com[self.root]
            for s, leg in enumerate(self.legs):
                R = d.xmat[leg.foot_body].reshape(3, 3)
                x = d.xpos[leg.foot_body]
                centre[i, s] = x + R @ leg.sole_in_foot
                low[i, s] = np.min(x[2] + leg.sole_corners_in_foot @ R[2])
        return com, centre, low

    def roll_inertia(self, qpos: np.ndarray, pivot_y: float) -> float:
        """Moment of inertia (kg m^2) about the floor line x-parallel through y = pivot_y."""
        d = self.data
        d.qpos[:] = qpos
        mujoco.mj_kinematics(self.model, d)
        total = 0.0
        for b in range(1, self.model.nbody):
            R = d.ximat[b].reshape(3, 3)
            I = (R * self.model.body_inertia[b]) @ R.T
            y, z = d.xipos[b, 1] - pivot_y, d.xipos[b, 2]
            total += I[0, 0] + self.model.body_mass[b] * (y * y + z * z)
        return float(total)


def rocking_amplitude(mass: float, com_y_from_pivot: float, roll_inertia: float, step_period: float) -> float:
    """Peak roll (rad) of a rigid body rocking freely on a floor edge through one step.

    Small-angle rocking about an edge at lateral distance b from the CoM decelerates at
    ``m g b / I`` (I: roll inertia about the edge). Matching the peak deceleration of a half sine
    of duration T, ``A pi^2 / T^2``, gives ``A = (m g b / I) T^2 / pi^2``: the amplitude gravity
    alone sustains between two touch-downs.
    """
    return mass * GRAVITY * abs(com_y_from_pivot) / roll_inertia * step_period ** 2 / math.pi ** 2


def _roll_quat(roll: np.ndarray) -> np.ndarray:
    return quat.from_axis_angle(np.broadcast_to([1.0, 0.0, 0.0], roll.shape + (3,)), roll)


def _solve_joints(spec, legs: Sequence[LegGeometry], root_pos: np.ndarray, root_quat: np.ndarray,
                  ankle_world: np.ndarray, waist: np.ndarray) -> np.ndarray:
    """Joint angles (T, J) with the ankles at ``ankle_world`` (T, 2, 3) and the pelvis at root_pos/quat."""
    T = root_pos.shape[0]
    joints = np.tile(spec.home_qpos[spec.qpos_adr], (T, 1))
    R = quat.to_matrix(root_quat)  # (T, 3, 3) pelvis -> world
    up = R[:, 2, :]  # world z axis in the pelvis frame: R^T e_z, the third row of R
    for s, leg in enumerate(legs):
        ankle_pelvis = np.einsum("tji,tj->ti", R, ankle_world[:, s] - root_pos)
        joints[:, list(leg.joint_index)] = leg_ik(leg, ankle_pelvis, up)
    if "waist_yaw" in spec.joint_names:
        joints[:, spec.joint_names.index("waist_yaw")] = waist
    return joints


def _check_limits(spec, joints: np.ndarray, name: str, margin: float | None = None) -> None:
    margin = LIMIT_MARGIN if margin is None else margin
    lo, hi = spec.joint_ranges[:, 0] + margin, spec.joint_ranges[:, 1] - margin
    bad = (joints < lo) | (joints > hi)
    if bad.any():
        f, j = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(
            f"generated clip {name!r}: joint {spec.joint_names[j]!r} = {joints[f, j]:+.4f} rad at frame {f} "
            f"leaves its range {spec.joint_ranges[j].tolist()} minus the margin {margin} rad "
            "(shorter steps, another pelvis_height or a smaller step_height/rocking fix this)"
        )


def _whole_body(spec, legs, body: _Body, params: GaitParams, plan: GaitPlan, com_offset: np.ndarray,
                iterations: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Root position, root quaternion and joint angles realising ``plan`` (fixed-point iterations).

    Nominal pose: pelvis at ``pelvis_height`` (+ ``pelvis_dz``), leaning by ``pelvis_pitch``, above
    (x, y) such that the whole-body CoM x is the planned one; the whole body is then rolled about
    the plan's pivot edge. Feet: the stance sole rolls with the body about that edge; the other
    sole's centre follows the planned x/y and its lowest point the planned lift. Each iteration
    measures the CoM and the soles by forward kinematics and corrects the pelvis x and the ankle
    targets.
    """
    n = plan.t.shape[0]
    h = params.pelvis_height
    root_nom = np.zeros((n, 3))
    root_nom[:, :2] = plan.com - com_offset[:2]
    root_nom[:, 2] = h + plan.pelvis_dz
    q_roll = _roll_quat(plan.roll)
    R_roll = quat.to_matrix(q_roll)
    # The pelvis leans forward by pelvis_pitch (about its y axis) before the rocking roll.
    q_root = quat.multiply(q_roll, quat.from_axis_angle(np.array([0.0, 1.0, 0.0]), params.pelvis_pitch))
    pivot = np.zeros((n, 3))
    pivot[:, 1] = plan.pivot_y

    def tilt(x: np.ndarray) -> np.ndarray:  # rotate world points about the pivot edge
        return pivot + np.einsum("tij,tj->ti", R_roll, x - pivot)

    # Desired sole centres: stance sole rolled with the body; others from the plan (z fixed below).
    want = np.zeros((n, 2, 3))
    want[:, :, :2] = plan.feet_xy
    for s in (0, 1):
        st = plan.stance == s
        flat = np.concatenate([plan.feet_xy[:, s], np.zeros((n, 1))], axis=1)
        want[st, s] = tilt(flat)[st]
    is_pivot = np.stack([plan.stance == 0, plan.stance == 1], axis=1)

    ankle = np.zeros((n, 2, 3))
    for s, leg in enumerate(legs):
        ankle[:, s] = want[:, s] - np.einsum("tij,j->ti", R_roll, leg.sole_offset)
        ankle[:, s, 2] += np.where(is_pivot[:, s], 0.0, plan.lift[:, s])
    waist = params.waist_yaw_gain * (plan.feet_xy[:, 0, 0] - plan.feet_xy[:, 1, 0])
    for _ in range(iterations):
        root = tilt(root_nom)
        joints = _solve_joints(spec, legs, root, q_root, ankle, waist)
        com, centre, low = body.fk(root, q_root, joints)
        # The nominal (untilted) CoM must follow the plan; the tilt maps x unchanged.
        root_nom[:, 0] += plan.com[:, 0] - com[:, 0]
        for s in (0, 1):
            # x/y: the sole centre where wanted; z: the sole's lowest point on the floor (pivot
            # sole: 0; the other: its planned lift). When the leg is not exactly vertical (walking
            # sideways) the pivot sole is not exactly level, so its centre height is not prescribed.
            err = want[:, s] - centre[:, s]
            ankle[:, s, :2] += err[:, :2]
            ankle[:, s, 2] += np.where(is_pivot[:, s], 0.0, plan.lift[:, s]) - low[:, s]
    root = tilt(root_nom)
    joints = _solve_joints(spec, legs, root, q_root, ankle, waist)
    return root, q_root, joints


def generate_clip(spec, params: GaitParams, fps: float = 50.0, name: str | None = None,
                  model: mujoco.MjModel | None = None, return_plan: bool = False):
    """Generate one walking clip for ``spec`` (a :class:`wildamp.robot.RobotSpec`).

    ``model`` defaults to the spec's model file. The clip's ``meta`` records the generator
    parameters (and the rocking amplitude and CoM height used). With ``return_plan=True`` returns
    ``(clip, plan)`` (the :class:`GaitPlan`, for plots and tests). Raises ValueError if a joint
    would leave its range (with :data:`LIMIT_MARGIN`) or a target is out of reach.
    """
    params.validate()
    if model is None:
        model = _load_model_for(spec)
    name = name or params.default_name()
    legs = [leg_geometry(model, spec, "left"), leg_geometry(model, spec, "right")]
    body = _Body(model, spec, legs)
    n = int(math.floor(params.duration * fps + 1e-9)) + 1
    t = np.arange(n) / fps
    home_half = 0.5 * float(abs(legs[0].roll_anchor[1] + legs[0].sole_offset[1]
                                - legs[1].roll_anchor[1] - legs[1].sole_offset[1]))
    half_width = 0.5 * params.step_width if params.step_width is not None else home_half
    shw = legs[0].sole_half_width

    # The level standing pose at this pelvis height: LIPM height, CoM offset, rocking amplitude.
    stand_root = np.array([[0.0, 0.0, params.pelvis_height]])
    q1 = quat.from_axis_angle(np.array([[0.0, 1.0, 0.0]]), np.array([params.pelvis_pitch]))
    stand_ankle = np.stack([np.array([[0.0, sy * half_width, 0.0]]) - leg.sole_offset
                            for sy, leg in zip((1.0, -1.0), legs)], axis=1)
    stand_j = _solve_joints(spec, legs, stand_root, q1, stand_ankle, np.zeros(1))
    com_stand = body.fk(stand_root, q1, stand_j)[0][0]
    if params.rock_amplitude is not None:
        amplitude = float(params.rock_amplitude)
    else:
        pivot_y = -(half_width + shw)
        inertia = body.roll_inertia(body.qpos(stand_root, q1, stand_j)[0], pivot_y)
        amplitude = params.rock_gain * rocking_amplitude(float(np.sum(model.body_mass)),
                                                         com_stand[1] - pivot_y, inertia, params.step_period)
    z_c = float(com_stand[2])
    plan = plan_gait(params, half_width, shw, t, z_c, amplitude)
    root_pos, root_quat, joints = _whole_body(spec, legs, body, params, plan, com_stand - stand_root[0])
    _check_limits(spec, joints, name)

    meta = {
        "generator": "wildamp.reference.generator",
        "generator_version": GENERATOR_VERSION,
        "params": dataclasses.asdict(params),
        "speed": params.speed,
        "lateral_speed": params.lateral_speed,
        "com_height": z_c,
        "rock_amplitude": amplitude,
        "step_length": params.speed * params.step_period,
    }
    clip = Clip(name=name, fps=fps, root_pos=root_pos, root_quat=quat.make_sign_continuous(root_quat),
                joint_pos=joints, joint_names=tuple(spec.joint_names), source="generator",
                meta=meta).validate()
    return (clip, plan) if return_plan else clip


def pad_heights(model: mujoco.MjModel, spec, clip: Clip) -> np.ndarray:
    """Lowest point (m) of every sole pad of ``spec.foot_geoms`` in every frame, by MuJoCo FK: (T, 4).

    A kinematic replay of the clip (qpos from root pose and joint angles by name): a pad touches the
    floor when this is ~0, is in the air when it is positive and penetrates when it is negative.
    Boxes use their lowest corner, other shapes their centre minus the bounding radius.
    """
    data = mujoco.MjData(model)
    ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, n) for n in spec.foot_geoms]
    missing = [n for n, i in zip(spec.foot_geoms, ids) if i < 0]
    if missing:
        raise KeyError(f"foot geoms {missing} not in the model")
    qpos = clip.to_qpos(spec)
    corners = np.array([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)], dtype=np.float64)
    out = np.zeros((clip.num_frames, len(ids)))
    for k in range(clip.num_frames):
        data.qpos[:] = qpos[k]
        mujoco.mj_kinematics(model, data)
        for i, g in enumerate(ids):
            if int(model.geom_type[g]) == int(mujoco.mjtGeom.mjGEOM_BOX):
                R = data.geom_xmat[g].reshape(3, 3)
                out[k, i] = float((data.geom_xpos[g] + (corners * model.geom_size[g]) @ R.T)[:, 2].min())
            else:
                out[k, i] = float(data.geom_xpos[g][2] - model.geom_rbound[g])
    return out


def generate_dataset(spec, speeds: Sequence[float] | None = None, fps: float = 50.0,
                     lateral_speeds: Sequence[float] | None = None,
                     model: mujoco.MjModel | None = None, **overrides) -> MotionDataset:
    """The embedded gait: one forward clip per speed (default :data:`DEFAULT_SPEEDS`) plus the
    sideways clips (default :data:`DEFAULT_LATERAL_SPEEDS`; pass ``()`` for none).

    ``overrides`` are passed to :func:`default_gait_params` for every clip (e.g. ``duration=3``).
    """
    if model is None:
        model = _load_model_for(spec)
    speeds = DEFAULT_SPEEDS if speeds is None else tuple(float(s) for s in speeds)
    lateral_speeds = DEFAULT_LATERAL_SPEEDS if lateral_speeds is None else tuple(lateral_speeds)
    params = [default_gait_params(s, **overrides) for s in speeds]
    params += [default_gait_params(0.0, lateral_speed=v, **overrides) for v in lateral_speeds]
    clips = [generate_clip(spec, p, fps=fps, model=model) for p in params]
    return MotionDataset(
        clips=clips, joint_names=tuple(spec.joint_names), fps=fps,
        metadata={"source": "generator", "generator_version": GENERATOR_VERSION,
                  "model_path": str(spec.model_path), "speeds": list(speeds),
                  "lateral_speeds": list(lateral_speeds)},
    )


def ensure_default_reference(path: str | os.PathLike = paths.DEFAULT_REFERENCE) -> Path:
    """Return ``path``, generating the default embedded gait there first when needed.

    Generated when the file does not exist, or when it was written by another generator version
    (the file is derived data, never edited by hand; a note is printed to stderr then).
    """
    path = Path(path)
    if path.exists():
        try:
            version = MotionDataset.load(path).metadata.get("generator_version")
        except ValueError as e:
            raise ValueError(f"default reference {path} is unreadable ({e}); delete it to regenerate") from e
        if version == GENERATOR_VERSION:
            return path
        print(f"wildamp: regenerating {path} (generator version {version} -> {GENERATOR_VERSION})",
              file=sys.stderr)
    from wildamp.robot import load_model, load_robot_spec

    spec = load_robot_spec(paths.DEFAULT_ROBOT_CONFIG)
    generate_dataset(spec, model=load_model(spec.model_path)).save(path)
    return path
