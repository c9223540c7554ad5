"""Left/right symmetry of a robot model, judged in the pelvis frame on what matters physically.

CAD exports put body frames wherever the exporter likes (often offset along a joint axis by tens of
millimetres), rotate them, split a link into massless dummy bodies, and ship a settled keyframe whose
pelvis is tilted a degree or two. None of that changes the robot. What does is compared here between
each left part and the mirror image of its right partner:

- every rigid link (the body a joint moves, with the jointless bodies welded below it): mass, centre
  of mass and inertia tensor about the centre of mass;
- every joint axis: its direction and its line (where along the line the anchor sits is irrelevant);
- every joint range, mapped through the pair's mirror sign;
- the sole pads: type, size, centre and orientation.

Everything is expressed in the root (pelvis) body's frame at the model's reference configuration
``qpos0``, so neither a keyframe nor where the model puts the robot in the world enters. The pelvis
frame is x forward, y left, z up (ARCHITECTURE.md §4); the mirror is ``M = diag(1, -1, 1)`` in it.

Mirror signs: with pelvis-frame unit axes ``a_i`` and ``a_p`` of a joint and its partner, joint axes
being pseudovectors, the mirror image of ``a_i`` is ``-M a_i`` and the mirror sign is
``s = a_p . (-M a_i)`` (``+1``: equal angles give mirrored poses; ``-1``: the angle must be negated).
A joint without a side prefix (``waist_yaw``) is its own partner.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Sequence

import mujoco
import numpy as np

__all__ = [
    "MIRROR", "Tolerances", "RobotCheckError", "SymmetryError", "parse_tolerances", "partner_name",
    "pelvis_frame_data", "joint_axes", "mirror_signs", "check_symmetry",
]

MIRROR = np.diag([1.0, -1.0, 1.0])  # sagittal reflection in the pelvis frame: left (+y) <-> right (-y)


@dataclass(frozen=True)
class Tolerances:
    """How far a left part may differ from the mirror image of its right partner.

    The defaults admit CAD rounding and small manufacturing differences and refuse anything a
    policy would feel (a leg 15 % heavier, a pad moved 1 cm). Override with
    ``wildamp robot-config --tolerance KEY=VALUE``.
    """

    mass: float = 0.02  # link mass difference relative to the lighter link (2 %)
    length: float = 0.003  # m: link centres of mass, joint axis lines, pad centres and sizes (3 mm)
    inertia: float = 0.10  # Frobenius difference of link inertia tensors about their CoMs, relative to the smaller
    axis: float = 0.02  # |difference| of unit joint axes / pad orientations (0.02 ≈ 1.1°)
    range: float = 1e-3  # rad: joint ranges mapped through the mirror sign

    def describe(self) -> str:
        """One line naming every tolerance and its value."""
        return (f"mass {self.mass:.1%}, length {self.length * 1000:g} mm, inertia {self.inertia:.0%}, "
                f"axis {self.axis:g}, range {self.range:g} rad")


class RobotCheckError(ValueError):
    """The model was read but fails a check (asymmetric, does not stand): exit status 1, not 2."""


class SymmetryError(RobotCheckError):
    """Left and right differ beyond the tolerances; the message names every offending part."""


def parse_tolerances(items: Sequence[str], base: Tolerances | None = None) -> Tolerances:
    """``["mass=0.05", "length=0.004"]`` → :class:`Tolerances` (unset keys keep ``base``'s value).

    Raises ValueError naming an unknown key, a malformed item or a value that is not a number > 0.
    """
    tol = base or Tolerances()
    known = [f.name for f in fields(Tolerances)]
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in known:
            raise ValueError(f"--tolerance {item!r}: expected KEY=VALUE with KEY one of {known}")
        try:
            v = float(value)
        except ValueError:
            raise ValueError(f"--tolerance {item!r}: {value!r} is not a number") from None
        if not np.isfinite(v) or v <= 0:
            raise ValueError(f"--tolerance {item!r}: the value must be a finite number > 0")
        tol = replace(tol, **{key: v})
    return tol


def partner_name(name: str) -> str | None:
    """``left_X`` <-> ``right_X``; None for a name without a side prefix (self-mirrored)."""
    if name.startswith("left_"):
        return "right_" + name[len("left_"):]
    if name.startswith("right_"):
        return "left_" + name[len("right_"):]
    return None


def _id(model: mujoco.MjModel, obj: mujoco.mjtObj, name: str) -> int:
    return mujoco.mj_name2id(model, obj, name)


def _name(model: mujoco.MjModel, obj: mujoco.mjtObj, i: int) -> str:
    return mujoco.mj_id2name(model, obj, i) or f"#{i}"


@dataclass(frozen=True)
class PelvisFrameData:
    """Kinematics at ``qpos0`` and the root body's pose, to express world quantities in its frame."""

    data: mujoco.MjData
    rot: np.ndarray  # (3, 3) world-from-pelvis rotation
    origin: np.ndarray  # (3,) pelvis origin in the world

    def point(self, x: np.ndarray) -> np.ndarray:
        """A world point in the pelvis frame."""
        return self.rot.T @ (np.asarray(x) - self.origin)

    def vector(self, v: np.ndarray) -> np.ndarray:
        """A world direction in the pelvis frame."""
        return self.rot.T @ np.asarray(v)

    def matrix(self, m: np.ndarray) -> np.ndarray:
        """A world rotation / tensor in the pelvis frame."""
        return self.rot.T @ np.asarray(m).reshape(3, 3) @ self.rot


def pelvis_frame_data(model: mujoco.MjModel, root_body: str) -> PelvisFrameData:
    """Forward kinematics at the reference configuration ``qpos0``, seen from body ``root_body``."""
    b = _id(model, mujoco.mjtObj.mjOBJ_BODY, root_body)
    if b < 0:
        raise ValueError(f"root body {root_body!r} not in the model")
    data = mujoco.MjData(model)
    data.qpos[:] = model.qpos0
    mujoco.mj_kinematics(model, data)
    return PelvisFrameData(data=data, rot=data.xmat[b].reshape(3, 3).copy(), origin=data.xpos[b].copy())


def joint_axes(model: mujoco.MjModel, joint_names: Sequence[str], root_body: str) -> np.ndarray:
    """(J, 3) unit axes of ``joint_names`` in the pelvis frame at ``qpos0`` (what +q rotates about)."""
    pf = pelvis_frame_data(model, root_body)
    out = np.zeros((len(joint_names), 3))
    for i, n in enumerate(joint_names):
        j = _id(model, mujoco.mjtObj.mjOBJ_JOINT, n)
        if j < 0:
            raise ValueError(f"joint {n!r} not in the model")
        a = pf.vector(pf.data.xaxis[j])
        out[i] = a / np.linalg.norm(a)
    return out


def mirror_signs(model: mujoco.MjModel, joint_names: Sequence[str], root_body: str,
                 tol: Tolerances | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mirror_perm, mirror_sign) of ``joint_names`` from their pelvis-frame axes at ``qpos0``.

    ``mirror_perm[i]`` is the index of joint i's partner; ``mirror_sign[i] = a_partner . (-M a_i)``
    rounded to ±1. Raises ValueError naming a joint without its partner, :class:`SymmetryError`
    naming a pair whose axes are not mirror images within ``tol.axis``.
    """
    tol = tol or Tolerances()
    index = {n: i for i, n in enumerate(joint_names)}
    axes = joint_axes(model, joint_names, root_body)
    perm = np.zeros(len(joint_names), dtype=np.int64)
    sign = np.zeros(len(joint_names), dtype=np.float64)
    for i, name in enumerate(joint_names):
        partner = partner_name(name) or name
        if partner not in index:
            raise ValueError(f"joint {name!r} has no mirror partner {partner!r} among the actuated joints")
        image = -MIRROR @ axes[i]
        s = 1.0 if float(axes[index[partner]] @ image) >= 0 else -1.0
        err = float(np.linalg.norm(axes[index[partner]] - s * image))
        if err > tol.axis:
            raise SymmetryError(
                f"joint axes of {name!r} {np.round(axes[i], 4).tolist()} and {partner!r} "
                f"{np.round(axes[index[partner]], 4).tolist()} are not mirror images in the pelvis frame "
                f"(difference {err:.4f} > axis tolerance {tol.axis:g})")
        perm[i] = index[partner]
        sign[i] = s
    return perm, sign


@dataclass(frozen=True)
class _Link:
    """One rigid link: a jointed body and the jointless bodies welded below it (pelvis frame)."""

    body: str
    bodies: tuple[str, ...]
    mass: float
    com: np.ndarray  # (3,)
    inertia: np.ndarray  # (3, 3) about the CoM


def _links(model: mujoco.MjModel, pf: PelvisFrameData, owners: set[int]) -> dict[int, _Link]:
    """The rigid link of every body in ``owners`` (bodies with joints, and the root)."""
    members: dict[int, list[int]] = {o: [] for o in owners}
    for b in range(1, model.nbody):
        o = b
        while o not in owners and int(model.body_jntnum[o]) == 0 and o != 0:
            o = int(model.body_parentid[o])
        if o in members:
            members[o].append(b)
    out = {}
    d = pf.data
    for o, bs in members.items():
        m = np.array([model.body_mass[b] for b in bs])
        x = np.array([pf.point(d.xipos[b]) for b in bs])
        total = float(m.sum())
        com = (m @ x) / total if total > 0 else pf.point(d.xpos[o])
        inertia = np.zeros((3, 3))
        for b, mb, xb in zip(bs, m, x):
            R = pf.matrix(d.ximat[b])
            r = xb - com
            inertia += R @ np.diag(model.body_inertia[b]) @ R.T + mb * (r @ r * np.eye(3) - np.outer(r, r))
        out[o] = _Link(body=_name(model, mujoco.mjtObj.mjOBJ_BODY, o),
                       bodies=tuple(_name(model, mujoco.mjtObj.mjOBJ_BODY, b) for b in bs),
                       mass=total, com=com, inertia=inertia)
    return out


def _relative(a: float, b: float, diff: float) -> float:
    """``diff`` relative to the smaller of two magnitudes (a leg 15 % heavier reads 15 %)."""
    if diff == 0.0:
        return 0.0
    return diff / min(a, b) if min(a, b) > 0 else float("inf")


def check_symmetry(model: mujoco.MjModel, joint_names: Sequence[str], root_body: str,
                   pad_geoms: Sequence[str], tol: Tolerances | None = None) -> dict[str, tuple[float, str]]:
    """Compare every left part with the mirror image of its right partner (module docstring).

    Returns the worst deviation of each criterion with the part it was found on (for the
    command's report). Raises :class:`SymmetryError` listing every part beyond ``tol``, naming the
    body, joint or pad and the ``--tolerance`` key that admits it; ValueError for a missing partner.
    """
    tol = tol or Tolerances()
    perm, sign = mirror_signs(model, joint_names, root_body, tol)
    pf = pelvis_frame_data(model, root_body)
    d = pf.data
    root = _id(model, mujoco.mjtObj.mjOBJ_BODY, root_body)
    jids = [_id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in joint_names]
    owners = {root} | {int(model.jnt_bodyid[j]) for j in jids}
    links = _links(model, pf, owners)
    worst: dict[str, tuple[float, str]] = {}
    problems: list[str] = []

    def judge(criterion: str, value: float, limit: float, what: str, text: str) -> None:
        if value > worst.get(criterion, (-1.0, ""))[0]:
            worst[criterion] = (value, what)
        if value > limit:
            problems.append(f"{text} (--tolerance {criterion}=…)")

    # Rigid links, paired through their joints (a link and its partner; self-mirrored ones alone).
    pairs = {(root, root)}
    for i, j in enumerate(jids):
        pairs.add(tuple(sorted((int(model.jnt_bodyid[j]), int(model.jnt_bodyid[jids[perm[i]]])))))
    for a, b in sorted(pairs):
        la, lb = links[a], links[b]
        who = f"body {la.body!r}" if a == b else f"body {la.body!r} vs its mirror {lb.body!r}"
        dm = _relative(la.mass, lb.mass, abs(la.mass - lb.mass))
        judge("mass", dm, tol.mass, la.body,
              f"{who}: link mass {la.mass:.4f} vs {lb.mass:.4f} kg differs by {dm:.1%} > {tol.mass:.1%}")
        if la.mass > 0 and lb.mass > 0:
            dc = float(np.linalg.norm(MIRROR @ la.com - lb.com))
            judge("length", dc, tol.length, la.body,
                  f"{who}: centre of mass {np.round(la.com, 4).tolist()} m is {dc * 1000:.1f} mm from the mirror "
                  f"image of {np.round(lb.com, 4).tolist()} m (> {tol.length * 1000:g} mm)")
            di = _relative(float(np.linalg.norm(la.inertia)), float(np.linalg.norm(lb.inertia)),
                           float(np.linalg.norm(MIRROR @ la.inertia @ MIRROR - lb.inertia)))
            judge("inertia", di, tol.inertia, la.body,
                  f"{who}: inertia tensors differ from mirror images by {di:.1%} > {tol.inertia:.0%}")

    # Joint axis lines and ranges (the axis directions were judged by mirror_signs).
    for i, n in enumerate(joint_names):
        p = joint_names[perm[i]]
        if i > perm[i]:
            continue
        ji, jp = jids[i], jids[perm[i]]
        ap = pf.vector(d.xaxis[jp])
        ap = ap / np.linalg.norm(ap)
        off = pf.point(d.xanchor[jp]) - MIRROR @ pf.point(d.xanchor[ji])
        dl = float(np.linalg.norm(np.cross(off, ap)))
        pair = f"joint {n!r}" if n == p else f"joint {n!r} vs {p!r}"
        judge("length", dl, tol.length, n,
              f"{pair}: axis line {dl * 1000:.1f} mm from the mirror image (> {tol.length * 1000:g} mm)")
        mapped = np.sort(sign[i] * model.jnt_range[ji])
        dr = float(np.max(np.abs(mapped - model.jnt_range[jp])))
        judge("range", dr, tol.range, n,
              f"joint range of {n!r} {model.jnt_range[ji].tolist()} does not mirror onto {p!r} "
              f"{model.jnt_range[jp].tolist()} (mirror sign {sign[i]:+.0f}; off by {dr:.4f} rad > {tol.range:g})")

    # Sole pads: type, size, centre, orientation (a box is the same box under any axis flip).
    for n in pad_geoms:
        p = partner_name(n)
        if p is None or not n.startswith("left_"):
            continue
        gi, gp = _id(model, mujoco.mjtObj.mjOBJ_GEOM, n), _id(model, mujoco.mjtObj.mjOBJ_GEOM, p)
        if gi < 0 or gp < 0:
            raise ValueError(f"pad geom {n!r} or its partner {p!r} is not in the model")
        if int(model.geom_type[gi]) != int(model.geom_type[gp]):
            problems.append(f"pad geom {n!r} and {p!r} differ in type")
        ds = float(np.max(np.abs(model.geom_size[gi] - model.geom_size[gp])))
        judge("length", ds, tol.length, n,
              f"pad geom {n!r} size {model.geom_size[gi].tolist()} differs from {p!r} "
              f"{model.geom_size[gp].tolist()} by {ds * 1000:.1f} mm (> {tol.length * 1000:g} mm)")
        dc = float(np.linalg.norm(MIRROR @ pf.point(d.geom_xpos[gi]) - pf.point(d.geom_xpos[gp])))
        judge("length", dc, tol.length, p,
              f"pad geom {p!r} centre is {dc * 1000:.1f} mm from the mirror image of {n!r} "
              f"(> {tol.length * 1000:g} mm)")
        Ri, Rp = pf.matrix(d.geom_xmat[gi]), pf.matrix(d.geom_xmat[gp])
        do = float(np.max(np.abs(np.abs(MIRROR @ Ri @ MIRROR) - np.abs(Rp))))
        judge("axis", do, tol.axis, p, f"pad geom {p!r} is turned against the mirror image of {n!r} "
              f"(orientation difference {do:.3f} > {tol.axis:g})")
    if problems:
        raise SymmetryError("the model is not left/right symmetric in the pelvis frame: " + "; ".join(problems))
    return worst
