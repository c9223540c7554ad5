"""The robot's home pose: the model's keyframe, or one generated from joint values, checked by simulation.

CAD exports rarely carry a ``home`` keyframe. Without one, the home pose is generated: the joints
at the given values (``wildamp robot-config --home joint=value,...``; unnamed joints at their
reference value ``qpos0``), the pelvis level and facing +x, lowered until the lowest point of the
sole pads touches z = 0. Every home pose, keyframe or generated, must then *stand*: held by the
robot's own position servos on a flat floor for :data:`STAND_SECONDS`, the pelvis may tilt at most
:data:`STAND_MAX_TILT_DEG` and keep at least :data:`STAND_MIN_HEIGHT_RATIO` of its height.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Sequence

import mujoco
import numpy as np

from wildamp.symmetry import RobotCheckError

__all__ = [
    "STAND_SECONDS", "STAND_MAX_TILT_DEG", "STAND_MIN_HEIGHT_RATIO", "NotStandingError", "Standing",
    "parse_joint_values", "generated_home_qpos", "lowest_pad_point", "standing_check",
]

STAND_SECONDS = 2.0
STAND_MAX_TILT_DEG = 10.0  # a robot that leans further within 2 s of standing still is falling
STAND_MIN_HEIGHT_RATIO = 0.85  # servo sag lowers the pelvis by millimetres; a collapse by far more


class NotStandingError(RobotCheckError):
    """The home pose does not stand on a flat floor under the robot's own servos."""


@dataclass(frozen=True)
class Standing:
    """What the standing check measured: the worst pelvis tilt and the final height ratio."""

    max_tilt_deg: float
    height_ratio: float

    def describe(self) -> str:
        """One line for the command's report."""
        return (f"stands: pelvis tilt ≤ {self.max_tilt_deg:.1f}° (limit {STAND_MAX_TILT_DEG:g}°), "
                f"height kept {self.height_ratio:.1%} over {STAND_SECONDS:g} s")


def parse_joint_values(text: str) -> dict[str, float]:
    """``"left_knee_pitch=0.3,right_knee_pitch=0.3"`` → ``{name: value}`` (ValueError naming the item)."""
    out: dict[str, float] = {}
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--home {item!r}: expected JOINT=RADIANS, comma-separated") from None
    if not out:
        raise ValueError("--home is empty: give JOINT=RADIANS pairs, comma-separated")
    return out


def _geom_ids(model: mujoco.MjModel, names: Sequence[str]) -> list[int]:
    ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, n) for n in names]
    missing = [n for n, i in zip(names, ids) if i < 0]
    if missing:
        raise ValueError(f"pad geom(s) {missing} not in the model")
    return ids


def lowest_pad_point(model: mujoco.MjModel, qpos: np.ndarray, pad_geoms: Sequence[str]) -> float:
    """World z (m) of the lowest point of the pads' bounding boxes at ``qpos``."""
    d = mujoco.MjData(model)
    d.qpos[:] = qpos
    mujoco.mj_kinematics(model, d)
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
    z = []
    for g in _geom_ids(model, pad_geoms):
        half = model.geom_aabb[g, 3:]  # local bounding box of any geom type (box: its size)
        corners = model.geom_aabb[g, :3] + signs * half
        z.append((d.geom_xpos[g] + corners @ d.geom_xmat[g].reshape(3, 3).T)[:, 2].min())
    return float(min(z))


def generated_home_qpos(model: mujoco.MjModel, root_joint: str, pad_geoms: Sequence[str],
                        joint_values: Mapping[str, float] | None = None) -> np.ndarray:
    """A home qpos: joints at ``joint_values`` (others at ``qpos0``), pelvis level at the origin
    facing +x, pads touching z = 0. ValueError naming an unknown joint or a value out of its range."""
    qpos = model.qpos0.copy()
    for name, value in (joint_values or {}).items():
        j = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
        if j < 0 or int(model.jnt_type[j]) not in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)):
            raise ValueError(f"--home: {name!r} is not a hinge or slide joint of the model")
        lo, hi = model.jnt_range[j]
        if model.jnt_limited[j] and not lo <= value <= hi:
            raise ValueError(f"--home: {name}={value} is outside its range [{lo:.4f}, {hi:.4f}]")
        qpos[model.jnt_qposadr[j]] = value
    r = model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, root_joint)]
    qpos[r:r + 3] = 0.0
    qpos[r + 3:r + 7] = (1.0, 0.0, 0.0, 0.0)
    qpos[r + 2] = -lowest_pad_point(model, qpos, pad_geoms)
    return qpos


def _with_floor(model_path: str | os.PathLike, pad_geoms: Sequence[str]) -> mujoco.MjModel:
    """The model, with a floor plane at z = 0 that collides with the pads if it has no plane yet."""
    spec = mujoco.MjSpec.from_file(str(model_path))
    model = spec.compile()
    planes = [g for g in range(model.ngeom)
              if model.geom_bodyid[g] == 0 and int(model.geom_type[g]) == int(mujoco.mjtGeom.mjGEOM_PLANE)]
    if planes:
        return model
    ids = _geom_ids(model, pad_geoms)
    contype = int(np.bitwise_or.reduce(model.geom_conaffinity[ids]))
    conaffinity = int(np.bitwise_or.reduce(model.geom_contype[ids]))
    if contype == 0 and conaffinity == 0:
        raise ValueError(f"the pad geoms {list(pad_geoms)} collide with nothing (contype = conaffinity = 0)")
    spec.worldbody.add_geom(name="wildamp_standing_check_floor", type=mujoco.mjtGeom.mjGEOM_PLANE,
                            size=[0, 0, 0.05], contype=contype, conaffinity=conaffinity)
    return spec.compile()


def standing_check(model_path: str | os.PathLike, home_qpos: np.ndarray, root_body: str,
                   actuated_joints: Sequence[str], pad_geoms: Sequence[str]) -> Standing:
    """Hold ``home_qpos`` with the position servos (ctrl = the home joint angles) on a flat floor.

    Returns what was measured; raises :class:`NotStandingError` if the pelvis tilts more than
    :data:`STAND_MAX_TILT_DEG` or sinks below :data:`STAND_MIN_HEIGHT_RATIO` of its height, and
    ValueError for an actuator that is not a position servo (the targets would mean nothing).
    """
    model = _with_floor(model_path, pad_geoms)
    for a in range(model.nu):
        gain, bias = model.actuator_gainprm[a, 0], model.actuator_biasprm[a, 1]
        if int(model.actuator_biastype[a]) != int(mujoco.mjtBias.mjBIAS_AFFINE) or not np.isclose(gain, -bias):
            name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, a)
            raise ValueError(f"actuator {name!r} is not a position servo (ctrl = target angle); "
                             "wildamp drives the joints with position targets")
    d = mujoco.MjData(model)
    d.qpos[:] = home_qpos
    jids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in actuated_joints]
    d.ctrl[:] = [home_qpos[model.jnt_qposadr[j]] for j in jids]
    b = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, root_body)
    mujoco.mj_forward(model, d)
    z0, up0 = float(d.xpos[b, 2]), d.xmat[b].reshape(3, 3)[:, 2].copy()
    worst = 0.0
    for _ in range(int(round(STAND_SECONDS / model.opt.timestep))):
        mujoco.mj_step(model, d)
        cos = float(np.clip(d.xmat[b].reshape(3, 3)[:, 2] @ up0, -1.0, 1.0))
        worst = max(worst, float(np.degrees(np.arccos(cos))))
    result = Standing(max_tilt_deg=worst, height_ratio=float(d.xpos[b, 2]) / z0 if z0 > 0 else 0.0)
    if not np.isfinite(worst) or worst > STAND_MAX_TILT_DEG or result.height_ratio < STAND_MIN_HEIGHT_RATIO:
        raise NotStandingError(
            f"the home pose does not stand: held by its servos on a flat floor the pelvis tilted "
            f"{worst:.1f}° (limit {STAND_MAX_TILT_DEG:g}°) and kept {result.height_ratio:.0%} of its height "
            f"(limit {STAND_MIN_HEIGHT_RATIO:.0%}) within {STAND_SECONDS:g} s; give a standing pose with "
            "--home JOINT=RADIANS,... or a `home` keyframe")
    return result
