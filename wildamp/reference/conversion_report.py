"""What a converted clip asks of the robot, measured by kinematic replay on the target model.

Per clip: duration and speed, the fraction of frames each joint spends within
:data:`NEAR_LIMIT_RAD` of (or beyond) a limit, the initial balance (signed distance of the centre
of mass from the edge of the support polygon at the first frame: positive inside), the feet's
height above the floor (z = 0) and the sliding speed of planted pads. These are the usual reasons
a retargeted human clip fails the feasibility gate; the report shows them before the gate runs.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

from wildamp.reference.clip import Clip, MotionDataset

__all__ = ["NEAR_LIMIT_RAD", "PLANTED_HEIGHT", "clip_report", "dataset_reports", "format_report_table",
           "support_margin"]

NEAR_LIMIT_RAD = 0.01
PLANTED_HEIGHT = 0.01  # m: a pad whose lowest point is this close to the floor (or below) is planted
_CORNERS = np.array([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)], dtype=np.float64)


def _cross(a: np.ndarray, b: np.ndarray) -> float:
    """z component of the cross product of two 2-D vectors."""
    return float(a[0] * b[1] - a[1] * b[0])


def _hull(points: np.ndarray) -> np.ndarray:
    """Convex hull (counter-clockwise) of 2-D points, monotone chain."""
    pts = sorted(map(tuple, np.round(points, 12)))
    if len(pts) <= 2:
        return np.asarray(pts)

    def half(seq):
        out: list = []
        for p in seq:
            while len(out) >= 2 and _cross(np.subtract(out[-1], out[-2]), np.subtract(p, out[-2])) <= 0:
                out.pop()
            out.append(p)
        return out[:-1]
    return np.asarray(half(pts) + half(pts[::-1]))


def support_margin(point: np.ndarray, support: np.ndarray) -> float:
    """Signed distance (m) of a 2-D point from the edge of the convex hull of ``support``: + inside."""
    hull = _hull(np.asarray(support, np.float64))
    p = np.asarray(point, np.float64)
    edges = [(hull[i], hull[(i + 1) % len(hull)]) for i in range(len(hull))] if len(hull) > 1 else []
    dist = []
    for a, b in edges:
        ab = b - a
        t = np.clip((p - a) @ ab / max(ab @ ab, 1e-18), 0.0, 1.0)
        dist.append(float(np.linalg.norm(p - (a + t * ab))))
    d = min(dist) if dist else float(np.linalg.norm(p - hull[0]))
    inside = len(hull) >= 3 and all(_cross(b - a, p - a) >= 0 for a, b in edges)
    return d if inside else -d


def _pad_points(model: mujoco.MjModel, data: mujoco.MjData, g: int) -> np.ndarray:
    """(8, 3) world corners of a pad's bounding box."""
    local = model.geom_aabb[g, :3] + _CORNERS * model.geom_aabb[g, 3:]
    return data.geom_xpos[g] + local @ data.geom_xmat[g].reshape(3, 3).T


def clip_report(model: mujoco.MjModel, spec: Any, clip: Clip) -> dict[str, Any]:
    """The report of one clip (plain JSON-able dict; module docstring) on ``model`` / ``spec``."""
    qpos = clip.to_qpos(spec)
    data = mujoco.MjData(model)
    pads = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, n) for n in spec.foot_geoms]
    root = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, spec.root_body)
    T = clip.num_frames
    low = np.zeros((T, len(pads)))
    centre = np.zeros((T, len(pads), 2))
    margin = 0.0
    for k in range(T):
        data.qpos[:] = qpos[k]
        mujoco.mj_kinematics(model, data)
        corners = [_pad_points(model, data, g) for g in pads]
        low[k] = [c[:, 2].min() for c in corners]
        centre[k] = [data.geom_xpos[g][:2] for g in pads]
        if k == 0:
            mujoco.mj_comPos(model, data)
            ground = min(low[0])
            support = np.concatenate([c[c[:, 2] <= ground + PLANTED_HEIGHT, :2] for c in corners])
            margin = support_margin(data.subtree_com[root][:2], support)
    names = list(spec.joint_names)
    q = clip.joint_pos[:, [clip.joint_names.index(n) for n in names]]
    lo, hi = np.asarray(spec.joint_ranges).T
    at_limit = (q <= lo + NEAR_LIMIT_RAD) | (q >= hi - NEAR_LIMIT_RAD)
    planted = (low[1:] < PLANTED_HEIGHT) & (low[:-1] < PLANTED_HEIGHT)
    slide = np.linalg.norm(np.diff(centre, axis=0), axis=-1) * clip.fps
    slips = slide[planted]
    feet = {side: [i for i, g in enumerate(spec.foot_geoms) if g.startswith(side + "_")] for side in ("left", "right")}
    foot_low = {side: low[:, idx].min(axis=1) for side, idx in feet.items()}
    disp = clip.root_pos[-1, :2] - clip.root_pos[0, :2]
    return {
        "duration_s": float(clip.duration),
        "speed_mps": float(np.linalg.norm(disp) / clip.duration) if clip.duration > 0 else 0.0,
        "near_limit_fraction": {n: float(f) for n, f in zip(names, at_limit.mean(axis=0))},
        "initial_balance_margin_m": float(margin),
        "foot_clearance_max_m": {s: float(v.max()) for s, v in foot_low.items()},
        "foot_lowest_m": {s: float(v.min()) for s, v in foot_low.items()},
        "planted_slip_mean_mps": float(slips.mean()) if slips.size else None,
        "planted_slip_p95_mps": float(np.percentile(slips, 95)) if slips.size else None,
    }


def dataset_reports(model: mujoco.MjModel, spec: Any, dataset: MotionDataset) -> dict[str, dict[str, Any]]:
    """``{clip name: clip_report}`` for every clip of ``dataset``."""
    return {c.name: clip_report(model, spec, c) for c in dataset.clips}


def _mm(x: float) -> float:
    """Metres to millimetres, with no "-0" for round-off below the printed precision."""
    return round(x * 1000, 1) + 0.0


def format_report_table(reports: dict[str, dict[str, Any]]) -> str:
    """The reports as a fixed-width table, one clip per row (joints at a limit listed by share)."""
    head = (f"{'clip':<24} {'dur s':>6} {'v m/s':>6} {'balance mm':>10} {'clear L/R mm':>13} "
            f"{'lowest mm':>9} {'slip m/s':>8}  joints within {NEAR_LIMIT_RAD:g} rad of a limit")
    rows = [head]
    for name, r in reports.items():
        near = ", ".join(f"{n} {f:.0%}" for n, f in sorted(r["near_limit_fraction"].items(), key=lambda x: -x[1])
                         if f > 0) or "none"
        clear = "/".join(f"{_mm(r['foot_clearance_max_m'][s]):.0f}" for s in ("left", "right"))
        lowest = _mm(min(r["foot_lowest_m"].values()))
        slip = r["planted_slip_mean_mps"]
        rows.append(f"{name:<24} {r['duration_s']:>6.2f} {r['speed_mps']:>6.3f} "
                    f"{r['initial_balance_margin_m'] * 1000:>10.1f} {clear:>13} {lowest:>9.1f} "
                    f"{'-' if slip is None else f'{slip:.3f}':>8}  {near}")
    return "\n".join(rows)
