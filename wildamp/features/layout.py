"""The declared table of AMP feature channels and the feature function's numeric parameters.

:class:`FeatureLayout` (static, hashable: usable in jit closures) says which channel groups are kept,
in which order, with which units and sources; :class:`FeatureParams` (a pytree) holds the thresholds
and scales of the velocity treatment and the contact estimators. The group names, the contact channel
order and the "constant channel" threshold are declared here once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

import mujoco
import numpy as np

from wildamp.robot import FOOT_GEOMS

__all__ = [
    "GROUPS", "CONTACT_ORDER", "CONSTANT_STD_THRESHOLD",
    "Channel", "FeatureLayout", "FeatureParams", "pad_rest_heights",
]

#: Channel groups in feature order (the one declaration: ``config.FEATURE_CHANNEL_GROUPS`` is this tuple).
GROUPS: tuple[str, ...] = (
    "joint_pos", "joint_vel", "root_lin_vel", "root_ang_vel", "root_height", "foot_contacts")
#: Contact channel order: the robot's sole pads, ``wildamp.robot.FOOT_GEOMS`` (declared there once);
#: ``RobotSpec.foot_geoms`` must equal it.
CONTACT_ORDER: tuple[str, ...] = FOOT_GEOMS
#: A reference channel whose std is below this (in its own units) is "constant" and dropped by the
#: normaliser when ``drop_constant_channels`` (ARCHITECTURE.md §6: waist_yaw is always 0 in the reference,
#: and dividing policy motion by a ~0 std amplified it ~7,000×).
CONSTANT_STD_THRESHOLD: float = 1e-6

# Joints the `joints` contact estimator reads, by name (never by position).
_HIP = {"left": "left_hip_pitch", "right": "right_hip_pitch"}
_KNEE = {"left": "left_knee_pitch", "right": "right_knee_pitch"}


@dataclass(frozen=True)
class Channel:
    """One row of the feature table."""

    name: str
    group: str
    index: int
    unit: str
    frame: str
    source: str


@dataclass(frozen=True)
class FeatureLayout:
    """The declared table of feature channels (static and hashable: usable in jit closures).

    Build it with :meth:`build` from a RobotSpec and a FeaturesConfig. ``groups`` maps each kept
    group to its ``(start, stop)`` slice of the per-frame vector φ.
    """

    joint_names: tuple[str, ...]
    groups: tuple[tuple[str, int, int], ...]
    channels: tuple[Channel, ...]
    history: int
    use_finite_diff_vel: bool
    velocity_treatment: str
    contact_estimator: str
    # Indices into the joint vector for the `joints` estimator and the right hip's mirror sign.
    left_hip: int
    left_knee: int
    right_hip: int
    right_knee: int
    right_hip_sign: float

    @classmethod
    def build(cls, spec: Any, cfg: Any) -> "FeatureLayout":
        """Channels for ``spec`` (RobotSpec) under ``cfg`` (FeaturesConfig); ValueError on bad names."""
        names = tuple(spec.joint_names)
        unknown = [g for g in cfg.drop_groups if g not in GROUPS]
        if unknown:
            raise ValueError(f"features.drop_groups has unknown group(s) {unknown}; known: {list(GROUPS)}")
        if cfg.velocity_treatment not in ("raw", "direction"):
            raise ValueError(f"features.velocity_treatment must be 'raw' or 'direction', "
                             f"got {cfg.velocity_treatment!r}")
        if cfg.contact_estimator not in ("joints", "fk", "physics"):
            raise ValueError(f"features.contact_estimator must be 'joints', 'fk' or 'physics', "
                             f"got {cfg.contact_estimator!r}")
        if tuple(spec.foot_geoms) != CONTACT_ORDER:
            raise ValueError(f"robot spec foot_geoms {list(spec.foot_geoms)} must be {list(CONTACT_ORDER)}")
        idx = {n: i for i, n in enumerate(names)}
        need = [_HIP["left"], _KNEE["left"], _HIP["right"], _KNEE["right"]]
        missing = [n for n in need if n not in idx]
        if missing and cfg.contact_estimator == "joints" and "foot_contacts" not in cfg.drop_groups:
            raise ValueError(f"the 'joints' contact estimator needs joints {missing}, "
                             f"not in the robot spec {list(names)}")
        lh, lk, rh, rk = (idx.get(n, -1) for n in need)
        right_sign = 1.0
        if lh >= 0 and rh >= 0:
            if int(spec.mirror_perm[rh]) != lh:
                raise ValueError(f"robot spec: mirror partner of {_HIP['right']!r} is "
                                 f"{names[int(spec.mirror_perm[rh])]!r}, expected {_HIP['left']!r}")
            right_sign = float(spec.mirror_sign[rh])

        fd = bool(cfg.use_finite_diff_vel)
        direction = cfg.velocity_treatment == "direction"
        vel_src = "finite difference prev→cur" if fd else "qvel of cur"
        est = {
            "joints": "joints: hip-pitch threshold × knee confidence (mirror-signed right hip)",
            "fk": "fk: pad clearance & horizontal pad speed (soft)",
            "physics": "physics: tanh(pad normal force / scale)",
        }[cfg.contact_estimator]
        spec_rows: dict[str, list[tuple[str, str, str, str]]] = {
            "joint_pos": [(f"joint_pos.{n}", "rad", "joint", "qpos of cur") for n in names],
            "joint_vel": [(f"joint_vel.{n}", "rad/s", "joint", vel_src) for n in names],
            "root_lin_vel": [(f"root_lin_vel.{a}", "1 (unit direction, 0 below threshold)" if direction
                              else "m/s", "heading", vel_src) for a in "xyz"],
            "root_ang_vel": [(f"root_ang_vel.{a}", "rad/s", "heading", vel_src) for a in "xyz"],
            "root_height": [("root_height", "m", "world z", "qpos of cur")],
            "foot_contacts": [(f"foot_contacts.{p}", "1 (0..1)", "-", est) for p in CONTACT_ORDER],
        }
        groups, channels, i = [], [], 0
        for g in GROUPS:
            if g in cfg.drop_groups:
                continue
            rows = spec_rows[g]
            groups.append((g, i, i + len(rows)))
            for name, unit, frame, src in rows:
                channels.append(Channel(name, g, i, unit, frame, src))
                i += 1
        if not channels:
            raise ValueError("features.drop_groups removes every channel group")
        return cls(joint_names=names, groups=tuple(groups), channels=tuple(channels),
                   history=int(cfg.history), use_finite_diff_vel=fd,
                   velocity_treatment=str(cfg.velocity_treatment),
                   contact_estimator=str(cfg.contact_estimator),
                   left_hip=lh, left_knee=lk, right_hip=rh, right_knee=rk, right_hip_sign=right_sign)

    @property
    def size(self) -> int:
        """Per-frame feature dimension F."""
        return len(self.channels)

    @property
    def sample_size(self) -> int:
        """AMP sample dimension ``history · F``."""
        return self.history * self.size

    def group_slice(self, group: str) -> slice:
        """Slice of ``group`` in φ; KeyError naming the kept groups if it was dropped."""
        for g, a, b in self.groups:
            if g == group:
                return slice(a, b)
        raise KeyError(f"feature group {group!r} is not in this layout (groups: {[g for g, _, _ in self.groups]})")

    def channel_names(self) -> tuple[str, ...]:
        """Names of the F per-frame channels."""
        return tuple(c.name for c in self.channels)

    def sample_channel_names(self) -> tuple[str, ...]:
        """Names of the ``history · F`` sample channels, oldest frame first (``name@t-1``, ``name@t``)."""
        k = self.history
        return tuple(f"{c.name}@t" + (f"-{k - 1 - i}" if i < k - 1 else "")
                     for i in range(k) for c in self.channels)

    def table(self) -> list[dict]:
        """The channel table as a list of dicts (name, slice index, group, unit, frame, source)."""
        return [dataclasses.asdict(c) for c in self.channels]

    def table_str(self) -> str:
        """The channel table as aligned text."""
        rows = [("idx", "name", "unit", "frame", "source")] + [
            (str(c.index), c.name, c.unit, c.frame, c.source) for c in self.channels]
        w = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(r[i].ljust(w[i]) for i in range(5)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * x for x in w))
        head = (f"{self.size} channels per frame × history {self.history} = {self.sample_size} per AMP "
                f"sample; velocities: {'finite difference' if self.use_finite_diff_vel else 'qvel'}, "
                f"root velocity: {self.velocity_treatment}, contacts: {self.contact_estimator}")
        return head + "\n" + "\n".join(lines)

    def __str__(self) -> str:
        return self.table_str()


class FeatureParams(NamedTuple):
    """Numeric parameters of the feature function (a pytree of arrays/floats; may be traced)."""

    direction_threshold: Any      # m/s: below it the root velocity direction is the zero vector
    contact_threshold_angle: Any  # rad: flexion-equivalent hip pitch below it → contact (joints)
    contact_knee_scale: Any       # rad (joints)
    contact_min_confidence: Any   # (joints)
    fk_height_scale: Any          # m (fk)
    fk_speed_scale: Any           # m/s (fk)
    physics_force_scale: Any      # N (physics)
    pad_rest_height: Any          # (4,) m: pad-centre height above the floor when the pad rests flat

    @classmethod
    def from_config(cls, cfg: Any, spec: Any, model: mujoco.MjModel | None = None) -> "FeatureParams":
        """Parameters from a FeaturesConfig; pad rest heights from the pad geoms of ``model``.

        ``model`` defaults to the MJCF the spec was generated from (``spec.model_path``); pass the
        model you simulate so a user's own MJCF gives its own pad thickness.
        """
        if model is None:
            from wildamp.robot import load_model  # local import: robot imports nothing from here
            model = load_model(spec.model_path)
        return cls(
            direction_threshold=float(cfg.direction_threshold),
            contact_threshold_angle=float(cfg.contact_threshold_angle),
            contact_knee_scale=float(cfg.contact_knee_scale),
            contact_min_confidence=float(cfg.contact_min_confidence),
            fk_height_scale=float(cfg.fk_height_scale),
            fk_speed_scale=float(cfg.fk_speed_scale),
            physics_force_scale=float(cfg.physics_force_scale),
            pad_rest_height=pad_rest_heights(model, spec.foot_geoms),
        )


def pad_rest_heights(model: mujoco.MjModel, pad_names: Sequence[str]) -> np.ndarray:
    """Height of each pad geom's centre above the floor when it rests flat: the bottom of its
    geom-frame bounding box (``geom_aabb``), i.e. the half-thickness for a centred box pad."""
    out = []
    for n in pad_names:
        g = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, n)
        if g < 0:
            raise ValueError(f"sole pad geom {n!r} not found in the model")
        aabb = np.asarray(model.geom_aabb[g], dtype=np.float64)  # (cx, cy, cz, hx, hy, hz) geom frame
        out.append(aabb[5] - aabb[2])
    return np.asarray(out, dtype=np.float32)
