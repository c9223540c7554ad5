"""Conventions of external motion files, checked instead of guessed: quaternion order and joint signs.

Two silent ways a GMR clip goes wrong on a robot it was not made for:

- **Quaternion order.** GMR stores ``root_rot`` xyzw. A wxyz file read as xyzw is usually upside
  down, but a clip facing near 180° reads as upright and instead walks backwards or leans tens of
  degrees. A clip is refused when, read as given, the root is upside down in most frames, faces
  away from its direction of travel (:data:`MAX_FACING_TRAVEL_DEG`) or leans on average more than
  :data:`MAX_MEAN_TILT_DEG`; the message says how the other order reads and names the flag
  (``--quat-order wxyz|xyzw``) that states the order and skips these checks.
- **Joint signs.** The source model's joint axes (``joint_axes`` in its robot config, pelvis frame)
  are compared with the target's, joint by joint, by name: parallel axes keep the angle, opposite
  axes negate it, anything else is refused naming the joint.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from wildamp import quat

__all__ = [
    "MAX_MEAN_TILT_DEG", "MAX_FACING_TRAVEL_DEG", "MIN_TRAVEL_SPEED", "AXIS_PARALLEL_TOL", "QuatOrder",
    "ConventionError", "root_orientation_problems", "root_quat_from_gmr", "joint_signs",
]

MAX_MEAN_TILT_DEG = 25.0  # a walking robot's pelvis leans a few degrees; 25° on average is a fall or a misread
MAX_FACING_TRAVEL_DEG = 135.0  # sideways walking is 90°; beyond 135° the clip walks backwards
MIN_TRAVEL_SPEED = 0.05  # m/s: slower frames (standing, stepping in place) have no direction of travel
TRAVEL_WINDOW_S = 0.5  # s over which the travel direction is measured (averages out the sway of a step)
AXIS_PARALLEL_TOL = 0.02  # |a_source -/+ a_target| below this: the same / the opposite axis
QuatOrder = Literal["xyzw", "wxyz"]


class ConventionError(ValueError):
    """A clip's conventions do not fit the target robot (a failed check, exit status 1)."""


def _as_wxyz(root_rot: np.ndarray, order: QuatOrder) -> np.ndarray:
    q = quat.from_xyzw(root_rot) if order == "xyzw" else np.asarray(root_rot, np.float64)
    return quat.make_sign_continuous(quat.normalize(q))


def _facing_travel_angle(root_pos: np.ndarray, q: np.ndarray, fps: float) -> float | None:
    """Median angle (deg) between the heading and the direction of travel over frames that move."""
    k = max(1, int(round(TRAVEL_WINDOW_S * fps)))
    if len(root_pos) <= k:
        return None
    v = (root_pos[k:, :2] - root_pos[:-k, :2]) * fps / k
    fwd = quat.to_matrix(q)[:, :2, 0]
    fwd = 0.5 * (fwd[k:] + fwd[:-k])
    speed = np.linalg.norm(v, axis=1)
    moving = (speed > MIN_TRAVEL_SPEED) & (np.linalg.norm(fwd, axis=1) > 1e-6)
    if not moving.any():
        return None
    cos = np.sum(v[moving] * fwd[moving], axis=1) / (speed[moving] * np.linalg.norm(fwd[moving], axis=1))
    return float(np.degrees(np.median(np.arccos(np.clip(cos, -1.0, 1.0)))))


def root_orientation_problems(root_pos: np.ndarray, root_rot: np.ndarray, fps: float,
                              order: QuatOrder) -> tuple[list[str], dict[str, Any]]:
    """How ``root_rot`` read in ``order`` looks: (problems, measures).

    Problems name what is implausible for a walking robot (upside down, walking backwards, leaning
    on average more than :data:`MAX_MEAN_TILT_DEG`); measures are the numbers behind them.
    """
    q = _as_wxyz(root_rot, order)
    up = np.clip(quat.to_matrix(q)[:, 2, 2], -1.0, 1.0)
    down = float(np.mean(up < 0.0))
    tilt = float(np.degrees(np.mean(np.arccos(up))))
    angle = _facing_travel_angle(root_pos, q, fps)
    problems = []
    if down > 0.5:
        problems.append(f"is upside down in {down:.0%} of frames (body z axis points down)")
    elif tilt > MAX_MEAN_TILT_DEG:
        problems.append(f"leans {tilt:.0f}° on average (limit {MAX_MEAN_TILT_DEG:g}°)")
    if angle is not None and angle > MAX_FACING_TRAVEL_DEG and down <= 0.5:
        problems.append(f"faces {angle:.0f}° away from its direction of travel (walks backwards)")
    measures = {"mean_tilt_deg": tilt, "facing_travel_deg": angle, "upside_down_fraction": down}
    return problems, measures


def root_quat_from_gmr(root_pos: np.ndarray, root_rot: np.ndarray, fps: float, path: str,
                       quat_order: QuatOrder | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """wxyz root quaternions of a GMR ``root_rot`` and the orientation measures.

    ``quat_order`` None: xyzw (GMR's order), refused with :class:`ConventionError` if it reads as
    implausible (module docstring); given: read so, unchecked (the caller states the order).
    """
    order: QuatOrder = quat_order or "xyzw"
    problems, measures = root_orientation_problems(root_pos, root_rot, fps, order)
    measures["quat_order"] = order
    if problems and quat_order is None:
        other_problems, other = root_orientation_problems(root_pos, root_rot, fps, "wxyz")
        angle = other["facing_travel_deg"]
        how = (f"read as wxyz it leans {other['mean_tilt_deg']:.0f}° on average"
               + (f" and faces {angle:.0f}° from its travel direction" if angle is not None else ""))
        likely = ("root_rot is likely stored wxyz (scalar first)" if not other_problems
                  else "neither order reads as upright walking forwards: the clip itself may be wrong")
        raise ConventionError(
            f"{path}: read as xyzw (GMR's order) the root {' and '.join(problems)}; {how}. {likely}. "
            "If the order is known, state it with --quat-order wxyz or --quat-order xyzw (skips this check)")
    return _as_wxyz(root_rot, order), measures


def joint_signs(source_names: tuple[str, ...], source_axes: np.ndarray, target_names: tuple[str, ...],
                target_axes: np.ndarray, source: str = "source", target: str = "target") -> dict[str, float]:
    """``{joint: +1 | -1}`` for every target joint: the sign turning a source angle into a target angle.

    Joints are matched by name; raises :class:`ConventionError` naming a target joint the source
    lacks or a joint whose axes are neither parallel nor opposite.
    """
    index = {n: i for i, n in enumerate(source_names)}
    missing = [n for n in target_names if n not in index]
    if missing:
        raise ConventionError(f"joints {missing} of the {target} robot are not in the {source} robot config")
    signs = {}
    for n, a_t in zip(target_names, np.asarray(target_axes, np.float64)):
        a_s = np.asarray(source_axes, np.float64)[index[n]]
        if np.linalg.norm(a_s - a_t) <= AXIS_PARALLEL_TOL:
            signs[n] = 1.0
        elif np.linalg.norm(a_s + a_t) <= AXIS_PARALLEL_TOL:
            signs[n] = -1.0
        else:
            raise ConventionError(
                f"joint {n!r}: axis {np.round(a_s, 3).tolist()} in the {source} robot and "
                f"{np.round(a_t, 3).tolist()} in the {target} robot (pelvis frame) are neither the same nor "
                "opposite: its angles cannot be converted by a sign")
    return signs
