"""THE AMP feature function: one JAX implementation for the policy and the reference (ARCHITECTURE.md §3.3).

Data flow::

    simulator state ──frame_from_data──▶ FeatureFrame ─┐
    reference clip ──reference_frames (qpos → FK)──▶ FeatureFrame ─┤
                                                       ▼
             frame_features(layout, params, prev, cur, dt) → φ (F,)   (pure JAX, jit/vmap-able)
                                                       ▼
             AMP sample = last ``history`` φ's concatenated, oldest first (k·F,)

The MJX env calls :func:`frame_from_data`, :func:`frame_features` and :func:`push_history` every
control step; the reference dataset goes through :func:`dataset_samples`, which replays every clip
kinematically through MJX and then calls the *same* :func:`frame_features`. There is no second
implementation to drift apart (a parity test in ``tests/test_features.py`` proves it).

Frames and conventions (ARCHITECTURE.md §3.1, §3.4):

- quaternions are wxyz; every formula below is invariant to the sign of the root quaternion
  (rotation matrices and the yaw are quadratic in q; relative rotations are sign-fixed before the log);
- root linear and angular velocities are expressed in the *heading* frame of the current state
  (world frame rotated by the root's yaw: yaw removed, pitch and roll kept), so every feature is
  invariant to a rotation of the whole motion about the world z axis;
- root height is the world z of the root body (a flat floor at z = 0 is assumed);
- foot contacts are ordered ``[left_toe, left_heel, right_toe, right_heel]``.

Contact estimators (``features.contact_estimator``):

- ``joints`` — the seed's v0.6.2 heuristic, made correct for the mirrored right hip. For each leg the
  *flexion-equivalent* hip pitch is ``s · q_hip`` with ``s = +1`` on the left (ARCHITECTURE.md §4: +q = leg
  forward) and ``s = spec.mirror_sign[right_hip_pitch]`` on the right (−1 for WildRobot), so "leg behind
  the body" means the same physical thing on both sides. A leg is in contact when its flexion-equivalent
  hip angle is below ``contact_threshold_angle``, with confidence
  ``clip(1 − |knee| / contact_knee_scale, contact_min_confidence, 1)``; toe and heel get that value.
  (The seed used ``q_hip`` unsigned on both sides: the right hip's flexion is negative, so the right
  foot was "in contact" in every frame — :func:`joint_contacts` with ``right_hip_sign=+1`` reproduces it.)
- ``fk`` (default) — geometric and soft, computed from the pad geoms' world positions::

      c = exp(−(max(h, 0) / fk_height_scale)²) · exp(−(v / fk_speed_scale)²)

  with ``h`` the pad's clearance (pad-centre height minus its rest height, i.e. its half-thickness
  for a flat pad: 0 when it rests on the floor, < 0 when it penetrates, which still counts as full
  contact) and ``v`` the pad's horizontal speed from the previous to the current state. A planted pad
  reads 1, a pad 1 cm up (scale 1 cm) reads e⁻¹, 2 cm up ≈ 0.02; a pad sliding at ``fk_speed_scale``
  reads e⁻¹. A Gaussian rather than a sigmoid so that a resting pad reads exactly 1 with one
  parameter per cue; both cues only need kinematics, so the reference and the policy get the same
  estimator.
- ``physics`` — ``tanh(F / physics_force_scale)`` of the simulator's pad normal forces (policy-side
  diagnostics). Reference frames carry NaN forces; using this estimator on them raises.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from wildamp.robot import FOOT_GEOMS

__all__ = [
    "GROUPS", "CONTACT_ORDER", "CONSTANT_STD_THRESHOLD",
    "FrameIds", "FeatureFrame", "frame_from_data", "FeatureLayout", "FeatureParams",
    "frame_features", "joint_contacts", "fk_contacts", "physics_contacts",
    "History", "init_history", "push_history", "sample_valid", "sample_from_history",
    "reference_frames", "reference_qvel", "trajectory_features", "clip_features", "window_samples",
    "trajectory_samples", "mj_frames", "clip_samples", "dataset_samples", "pad_rest_heights",
    "FeatureNormalizer", "check_finite", "heading_frame", "quat_rotvec",
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

# Frames are kinematically replayed in fixed-size chunks so that clips of any length share one
# compiled function (a new clip length would otherwise trigger a new XLA compile).
_CHUNK = 256


# Rotation helpers: one JAX implementation in wildamp.rotations (re-exported here).
from wildamp.rotations import heading_frame, qconj as _qconj, qmul as _qmul, quat_rotate, quat_rotate_inv, quat_rotvec  # noqa: E402,F401


# ============================================================================ frames


@dataclass(frozen=True)
class FrameIds:
    """Where a :class:`FeatureFrame`'s data lives in a model, resolved by name (static, hashable).

    Attributes:
        joint_names: the spec's joints (actuator order); the frame's joint columns follow it.
        root_joint: name of the free joint.
        root_qpos_adr, root_qvel_adr: addresses of the free joint in qpos (7 entries) / qvel (6).
        joint_qpos_adr, joint_qvel_adr: per-joint addresses, in ``joint_names`` order.
        pad_names: the four sole-pad geoms, ``[left_toe, left_heel, right_toe, right_heel]``.
        pad_geom_ids: their geom ids.
        nq, nv: sizes of the model's qpos / qvel (checked in :func:`frame_from_data`).
    """

    joint_names: tuple[str, ...]
    root_joint: str
    root_qpos_adr: int
    root_qvel_adr: int
    joint_qpos_adr: tuple[int, ...]
    joint_qvel_adr: tuple[int, ...]
    pad_names: tuple[str, ...]
    pad_geom_ids: tuple[int, ...]
    nq: int
    nv: int

    @classmethod
    def from_model(cls, model: mujoco.MjModel, spec: Any) -> "FrameIds":
        """Resolve every address by name from ``model`` for the joints/pads of ``spec`` (a RobotSpec).

        Raises ValueError naming missing joints/geoms, a missing or non-free root joint, or pads not in
        the contact order ``[left_toe, left_heel, right_toe, right_heel]``.
        """
        pads = tuple(spec.foot_geoms)
        if pads != CONTACT_ORDER:
            raise ValueError(f"robot spec foot_geoms {list(pads)} must be {list(CONTACT_ORDER)} "
                             "(the contact channel order of the features)")
        missing_g = [n for n in pads if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, n) < 0]
        if missing_g:
            raise ValueError(f"sole pad geom(s) {missing_g} not found in the model; the contact "
                             "features need all of " + str(list(CONTACT_ORDER)))
        gids = tuple(int(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, n)) for n in pads)
        jids = {n: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in spec.joint_names}
        missing_j = [n for n, j in jids.items() if j < 0]
        if missing_j:
            raise ValueError(f"joint(s) {missing_j} of the robot spec not found in the model")
        root = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, spec.root_joint)
        if root < 0:
            raise ValueError(f"root joint {spec.root_joint!r} not found in the model")
        if int(model.jnt_type[root]) != int(mujoco.mjtJoint.mjJNT_FREE):
            raise ValueError(f"root joint {spec.root_joint!r} is not a free joint")
        return cls(
            joint_names=tuple(spec.joint_names),
            root_joint=str(spec.root_joint),
            root_qpos_adr=int(model.jnt_qposadr[root]),
            root_qvel_adr=int(model.jnt_dofadr[root]),
            joint_qpos_adr=tuple(int(model.jnt_qposadr[jids[n]]) for n in spec.joint_names),
            joint_qvel_adr=tuple(int(model.jnt_dofadr[jids[n]]) for n in spec.joint_names),
            pad_names=pads,
            pad_geom_ids=gids,
            nq=int(model.nq),
            nv=int(model.nv),
        )

    @property
    def qpos_index(self) -> np.ndarray:
        """Gather index: model qpos → frame qpos ``[root pos (3), root quat wxyz (4), joints (J)]``."""
        a = self.root_qpos_adr
        return np.array(list(range(a, a + 7)) + list(self.joint_qpos_adr), dtype=np.int32)

    @property
    def qvel_index(self) -> np.ndarray:
        """Gather index: model qvel → frame qvel ``[root lin world (3), root ang body (3), joints (J)]``."""
        a = self.root_qvel_adr
        return np.array(list(range(a, a + 6)) + list(self.joint_qvel_adr), dtype=np.int32)


class FeatureFrame(NamedTuple):
    """What one simulator state contributes to the features (a pytree; leading batch axes allowed).

    The generalised coordinates are gathered *by name* into a canonical order so that the feature
    function never depends on model addresses (for WildRobot it equals the model's own order):

    Attributes:
        qpos: (..., 7 + J) ``[root pos (3), root quat wxyz (4), joint angles (J, spec order)]``.
        qvel: (..., 6 + J) ``[root linear vel (3, world), root angular vel (3, body), joint vels (J)]``
            — MuJoCo's free-joint convention.
        pad_pos: (..., 4, 3) world positions of the four pad geoms (geom_xpos after kinematics).
        contact_force: (..., 4) normal force on each pad (N); NaN when unknown (reference frames).
    """

    qpos: jax.Array
    qvel: jax.Array
    pad_pos: jax.Array
    contact_force: jax.Array


def frame_from_data(ids: FrameIds, qpos: Any, qvel: Any, geom_xpos: Any,
                    contact_force: Any = None) -> FeatureFrame:
    """Build a :class:`FeatureFrame` from MJX or MuJoCo C data fields (plain field access).

    ``qpos`` (..., nq), ``qvel`` (..., nv), ``geom_xpos`` (..., ngeom, 3) as found in ``mjx.Data`` or
    ``mujoco.MjData``; ``contact_force`` (..., 4) pad normal forces, or None for "unknown" (stored as
    NaN so that the ``physics`` estimator can refuse it instead of reading zeros).
    """
    qpos = jnp.asarray(qpos)
    qvel = jnp.asarray(qvel)
    geom_xpos = jnp.asarray(geom_xpos)
    if qpos.shape[-1] != ids.nq or qvel.shape[-1] != ids.nv:
        raise ValueError(f"frame_from_data: qpos/qvel have sizes {qpos.shape[-1]}/{qvel.shape[-1]}, "
                         f"the model has nq={ids.nq}, nv={ids.nv}")
    pad_pos = geom_xpos[..., np.asarray(ids.pad_geom_ids), :]
    if contact_force is None:
        contact_force = jnp.full(pad_pos.shape[:-1], jnp.nan, dtype=pad_pos.dtype)
    else:
        contact_force = jnp.asarray(contact_force)
        if contact_force.shape[-1] != len(ids.pad_names):
            raise ValueError(f"frame_from_data: contact_force has {contact_force.shape[-1]} entries, "
                             f"expected one per pad {list(ids.pad_names)}")
    return frame_from_pads(ids, qpos, qvel, pad_pos, contact_force)


def frame_from_pads(ids: FrameIds, qpos: jax.Array, qvel: jax.Array, pad_pos: jax.Array,
                    contact_force: jax.Array) -> FeatureFrame:
    """A :class:`FeatureFrame` from model qpos/qvel and the pads' positions (..., 4, 3) and forces."""
    return FeatureFrame(qpos=qpos[..., ids.qpos_index], qvel=qvel[..., ids.qvel_index],
                        pad_pos=pad_pos, contact_force=contact_force.astype(pad_pos.dtype))


# ============================================================================ layout and params


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


# ============================================================================ contact estimators


def joint_contacts(joint_pos: jax.Array, layout: FeatureLayout, params: FeatureParams,
                   right_hip_sign: float | None = None) -> jax.Array:
    """The ``joints`` estimator: (..., 4) contacts ``[lt, lh, rt, rh]`` from joint angles.

    ``right_hip_sign`` defaults to the layout's mirror sign; passing ``+1.0`` reproduces the seed's
    bug (unsigned right hip: the right foot reads "in contact" whenever its hip is flexed).
    """
    s_r = layout.right_hip_sign if right_hip_sign is None else right_hip_sign

    def leg(hip_flex: jax.Array, knee: jax.Array) -> jax.Array:
        conf = jnp.clip(1.0 - jnp.abs(knee) / params.contact_knee_scale,
                        params.contact_min_confidence, 1.0)
        return jnp.where(hip_flex < params.contact_threshold_angle, conf, 0.0)

    left = leg(joint_pos[..., layout.left_hip], joint_pos[..., layout.left_knee])
    right = leg(s_r * joint_pos[..., layout.right_hip], joint_pos[..., layout.right_knee])
    return jnp.stack([left, left, right, right], axis=-1)


def fk_contacts(prev_pad_pos: jax.Array, pad_pos: jax.Array, params: FeatureParams,
                dt: Any) -> jax.Array:
    """The ``fk`` estimator: (..., 4) soft contacts from pad clearance and horizontal pad speed."""
    clearance = pad_pos[..., 2] - jnp.asarray(params.pad_rest_height, dtype=pad_pos.dtype)
    h = jnp.maximum(clearance, 0.0) / params.fk_height_scale
    d = (pad_pos[..., :2] - prev_pad_pos[..., :2]) / dt
    v2 = jnp.sum(d * d, axis=-1) / (params.fk_speed_scale ** 2)
    return jnp.exp(-h * h) * jnp.exp(-v2)


def physics_contacts(contact_force: jax.Array, params: FeatureParams) -> jax.Array:
    """The ``physics`` estimator: tanh(F / scale). Refuses NaN (unknown) forces when it can see them."""
    if not isinstance(contact_force, jax.core.Tracer):
        if np.isnan(np.asarray(contact_force)).any():
            raise ValueError(
                "contact_estimator='physics' needs simulator contact forces, but this frame has none "
                "(NaN: a kinematically replayed reference frame, or frame_from_data without "
                "contact_force). Use 'fk' or 'joints' for features shared with reference data.")
    return jnp.tanh(contact_force / params.physics_force_scale)


# ============================================================================ the feature function


def _velocities(layout: FeatureLayout, prev: FeatureFrame, cur: FeatureFrame,
                dt: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(root linear velocity world, root angular velocity world, joint velocities) of ``cur``."""
    q1 = cur.qpos[..., 3:7]
    if layout.use_finite_diff_vel:
        lin = (cur.qpos[..., 0:3] - prev.qpos[..., 0:3]) / dt
        # World-frame angular velocity: q1 = exp(ω dt) ⊗ q0 → ω = log(q1 ⊗ q0*) / dt (sign-fixed).
        ang = quat_rotvec(_qmul(q1, _qconj(prev.qpos[..., 3:7]))) / dt
        jv = (cur.qpos[..., 7:] - prev.qpos[..., 7:]) / dt
    else:
        lin = cur.qvel[..., 0:3]                       # free joint: linear velocity in world frame
        ang = quat_rotate(q1, cur.qvel[..., 3:6])      # free joint: angular velocity in body frame
        jv = cur.qvel[..., 6:]
    return lin, ang, jv


def frame_features(layout: FeatureLayout, params: FeatureParams, prev: FeatureFrame,
                   cur: FeatureFrame, dt: Any) -> jax.Array:
    """φ (..., F): the per-frame AMP features of the transition ``prev → cur`` (pure JAX).

    Velocities come from the finite difference prev→cur when ``layout.use_finite_diff_vel``
    (``dt`` = the control period), otherwise from ``cur.qvel``; contacts from the layout's estimator.
    """
    parts: dict[str, jax.Array] = {}
    q = cur.qpos[..., 3:7]
    lin_w, ang_w, jv = _velocities(layout, prev, cur, dt)
    parts["joint_pos"] = cur.qpos[..., 7:]
    parts["joint_vel"] = jv
    lin_h = heading_frame(q, lin_w)
    if layout.velocity_treatment == "direction":
        # Seed v0.3.0: unit direction of the root velocity, the zero vector below the threshold.
        n = jnp.sqrt(jnp.sum(lin_h * lin_h, axis=-1, keepdims=True))
        moving = n > params.direction_threshold
        lin_h = jnp.where(moving, lin_h / jnp.where(moving, n, 1.0), 0.0)
    parts["root_lin_vel"] = lin_h
    parts["root_ang_vel"] = heading_frame(q, ang_w)
    parts["root_height"] = cur.qpos[..., 2:3]
    if any(g == "foot_contacts" for g, _, _ in layout.groups):
        if layout.contact_estimator == "joints":
            parts["foot_contacts"] = joint_contacts(cur.qpos[..., 7:], layout, params)
        elif layout.contact_estimator == "fk":
            parts["foot_contacts"] = fk_contacts(prev.pad_pos, cur.pad_pos, params, dt)
        else:
            parts["foot_contacts"] = physics_contacts(cur.contact_force, params)
    dtype = cur.qpos.dtype
    return jnp.concatenate([parts[g].astype(dtype) for g, _, _ in layout.groups], axis=-1)


# ============================================================================ history buffer


class History(NamedTuple):
    """The last k per-frame feature vectors of one env (or a batch: leading axes allowed).

    ``frames`` (..., k, F), oldest first; ``count`` (...,) how many of them belong to the current
    episode (capped at k). A sample is valid only when all k do (ARCHITECTURE.md §3.5).
    """

    frames: jax.Array
    count: jax.Array


def init_history(num_features: int, k: int, batch_shape: tuple[int, ...] = ()) -> History:
    """An empty history (zeros, count 0)."""
    return History(frames=jnp.zeros(tuple(batch_shape) + (k, num_features)),
                   count=jnp.zeros(tuple(batch_shape), dtype=jnp.int32))


def push_history(hist: History, phi: jax.Array, reset_mask: Any = None) -> History:
    """Append φ (..., F) as the newest entry.

    ``reset_mask`` (..., bool): True where φ is the first transition of a new episode — the older
    entries belong to another episode and are cleared (zeroed, count restarts at 1). Envs that
    replace the whole history with :func:`init_history` at reset can leave it None.
    """
    frames, count = hist.frames, hist.count
    k = frames.shape[-2]
    if reset_mask is not None:
        r = jnp.asarray(reset_mask, dtype=bool)
        frames = jnp.where(r[..., None, None], 0.0, frames)
        count = jnp.where(r, 0, count)
    frames = jnp.concatenate([frames[..., 1:, :], phi[..., None, :].astype(frames.dtype)], axis=-2)
    return History(frames=frames, count=jnp.minimum(count + 1, k).astype(jnp.int32))


def sample_valid(hist: History) -> jax.Array:
    """(...,) bool: the history holds k transitions of one episode (a usable AMP sample)."""
    return hist.count >= hist.frames.shape[-2]


def sample_from_history(hist: History) -> jax.Array:
    """(..., k·F) the AMP sample: the history frames concatenated, oldest first."""
    return hist.frames.reshape(hist.frames.shape[:-2] + (-1,))


# ============================================================================ reference replay


def clip_qpos(ids: FrameIds, clip: Any) -> np.ndarray:
    """(T, 7+J) canonical qpos ``[root pos, root quat wxyz (unit), joints (ids order)]`` of a clip:
    :meth:`wildamp.reference.clip.Clip.to_qpos` (joints by name; ValueError naming mismatches)
    gathered into the frame order."""
    return clip.to_qpos(ids)[:, ids.qpos_index]


def reference_qvel(qpos: np.ndarray, dt: float) -> np.ndarray:
    """(T, 6+J) velocities of canonical qpos frames by central differences (one-sided at the ends),
    with MuJoCo's ``mj_differentiatePos`` semantics for the free joint: linear velocity in the
    world frame, angular velocity in the body frame of the frame itself.

    Computed in float64 numpy (host-side, once per clip).
    """
    qpos = np.asarray(qpos, dtype=np.float64)
    T = qpos.shape[0]
    if T < 2:
        raise ValueError("reference_qvel needs at least 2 frames")
    i0 = np.clip(np.arange(T) - 1, 0, T - 1)
    i1 = np.clip(np.arange(T) + 1, 0, T - 1)
    span = ((i1 - i0) * dt)[:, None]
    lin = (qpos[i1, 0:3] - qpos[i0, 0:3]) / span
    jv = (qpos[i1, 7:] - qpos[i0, 7:]) / span
    q0, q1, q = qpos[i0, 3:7], qpos[i1, 3:7], qpos[:, 3:7]
    conj = np.array([1.0, -1.0, -1.0, -1.0])
    rel = _np_qmul_f64(q1, q0 * conj)                 # world-frame relative rotation q0 → q1
    rel = np.where(rel[:, :1] < 0.0, -rel, rel)
    vn = np.linalg.norm(rel[:, 1:], axis=-1, keepdims=True)
    ang = 2.0 * np.arctan2(vn, rel[:, :1])
    rotvec = np.where(vn > 1e-12, rel[:, 1:] * ang / np.maximum(vn, 1e-300), 2.0 * rel[:, 1:])
    ang_w = rotvec / span
    # world → body frame of this frame: R(q)ᵀ ω
    ang_b = _np_rotate_f64(q * conj, ang_w)
    return np.concatenate([lin, ang_b, jv], axis=-1)


def _np_qmul_f64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], -1)


def _np_rotate_f64(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    w, u = q[..., :1], q[..., 1:]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


@functools.lru_cache(maxsize=8)
def _fk_fn(ids: FrameIds):
    """Jitted, vmapped kinematics: model qpos chunk (C, nq) → pad geom positions (C, 4, 3)."""
    from mujoco import mjx  # local: importing mjx is slow and only needed for replay

    pad = np.asarray(ids.pad_geom_ids)

    @jax.jit
    def fk(mjx_model: Any, qpos: jax.Array) -> jax.Array:
        data = mjx.make_data(mjx_model)

        def one(q: jax.Array) -> jax.Array:
            d = mjx.kinematics(mjx_model, data.replace(qpos=q))
            return d.geom_xpos[pad]

        return jax.vmap(one)(qpos)

    return fk


def reference_frames(mjx_model: Any, ids: FrameIds, clip: Any) -> FeatureFrame:
    """Replay a clip kinematically through MJX: a FeatureFrame batch with leading axis T.

    qpos is set from the clip (root position, root quaternion wxyz — any sign, normalised — and joints
    by name, other coordinates at the model's ``qpos0``); ``mjx.kinematics`` gives the pad positions;
    qvel comes from :func:`reference_qvel` (used only when ``use_finite_diff_vel`` is false); contact
    forces are NaN (unknown).
    """
    full = clip.to_qpos(ids, base=np.asarray(mjx_model.qpos0, dtype=np.float64))  # (T, nq)
    qpos_c = full[:, ids.qpos_index]                  # (T, 7+J) canonical
    T = qpos_c.shape[0]
    qvel_c = reference_qvel(qpos_c, 1.0 / float(clip.fps))
    pad_to = -(-T // _CHUNK) * _CHUNK
    full = np.concatenate([full, np.repeat(full[-1:], pad_to - T, axis=0)])
    fk = _fk_fn(ids)
    chunks = [np.asarray(fk(mjx_model, jnp.asarray(full[s:s + _CHUNK], dtype=jnp.float32)))
              for s in range(0, pad_to, _CHUNK)]
    pad_pos = np.concatenate(chunks)[:T]
    f32 = np.float32
    return FeatureFrame(qpos=qpos_c.astype(f32), qvel=qvel_c.astype(f32), pad_pos=pad_pos.astype(f32),
                        contact_force=np.full((T, len(ids.pad_names)), np.nan, dtype=f32))


@functools.lru_cache(maxsize=16)
def _features_fn(layout: FeatureLayout):
    """Jitted φ over a batch of (prev, cur) pairs."""
    return jax.jit(jax.vmap(functools.partial(frame_features, layout), in_axes=(None, 0, 0, None)))


def _require_kinematic_estimator(layout: FeatureLayout) -> None:
    if layout.contact_estimator == "physics" and any(g == "foot_contacts" for g, _, _ in layout.groups):
        raise ValueError(
            "contact_estimator='physics' cannot be used for reference motion: replayed clips have no "
            "contact forces (only a simulator provides them). Use 'fk' or 'joints', or drop the "
            "'foot_contacts' group.")


def trajectory_features(layout: FeatureLayout, params: FeatureParams, frames: FeatureFrame,
                        dt: float) -> np.ndarray:
    """(T-1, F) per-transition features φ_i = frame_features(frame_i, frame_i+1) of a frame batch
    (a reference replay or a simulated trajectory), jitted in fixed-size chunks.

    The ``physics`` estimator needs every frame's forces: NaN forces raise here (inside jit they
    could not), and for kinematic estimators unknown forces are replaced by zeros before tracing,
    so NaN never enters the computation.
    """
    T = int(np.shape(frames.qpos)[0])
    n = T - 1
    if n < 1:
        raise ValueError("trajectory_features needs at least 2 frames")
    uses_forces = layout.contact_estimator == "physics" and any(
        g == "foot_contacts" for g, _, _ in layout.groups)
    force = np.asarray(frames.contact_force)
    if uses_forces:
        physics_contacts(force[1:], params)  # raises, naming the problem, on NaN (unknown) forces
    else:
        force = np.zeros_like(force)
    frames = frames._replace(contact_force=force)
    pad_to = -(-n // _CHUNK) * _CHUNK

    def pairs(x: Any, lo: int) -> np.ndarray:
        x = np.asarray(x)[lo:lo + n]
        return np.concatenate([x, np.repeat(x[-1:], pad_to - n, axis=0)])

    prev = FeatureFrame(*(pairs(a, 0) for a in frames))
    cur = FeatureFrame(*(pairs(a, 1) for a in frames))
    fn = _features_fn(layout)
    out = [np.asarray(fn(params, jax.tree.map(lambda a: a[s:s + _CHUNK], prev),
                         jax.tree.map(lambda a: a[s:s + _CHUNK], cur), dt))
           for s in range(0, pad_to, _CHUNK)]
    return np.concatenate(out)[:n]


def clip_features(layout: FeatureLayout, params: FeatureParams, frames: FeatureFrame,
                  dt: float) -> np.ndarray:
    """:func:`trajectory_features` of kinematically replayed reference frames (refuses ``physics``)."""
    _require_kinematic_estimator(layout)
    return trajectory_features(layout, params, frames, dt)


def window_samples(phi: np.ndarray, k: int) -> np.ndarray:
    """(T-1-k+1, k·F) AMP samples from per-transition features (T-1, F) of ONE continuous
    trajectory: every window of k consecutive φ, oldest first (as the env's history buffer)."""
    phi = np.asarray(phi)
    n = phi.shape[0] - k + 1
    if n < 1:
        return np.zeros((0, k * phi.shape[1]), dtype=phi.dtype)
    idx = np.arange(n)[:, None] + np.arange(k)[None, :]
    return phi[idx].reshape(n, k * phi.shape[1])


def trajectory_samples(layout: FeatureLayout, params: FeatureParams, trajectories: Sequence[FeatureFrame],
                       dt: float) -> tuple[np.ndarray, np.ndarray]:
    """AMP samples of several continuous trajectories (e.g. simulated episodes):
    ``(samples (N, k·F), trajectory_index (N,))``; windows never span two trajectories."""
    out, index = [], []
    for i, frames in enumerate(trajectories):
        s = window_samples(trajectory_features(layout, params, frames, dt), layout.history)
        out.append(s)
        index.append(np.full(s.shape[0], i, dtype=np.int64))
    if not out:
        raise ValueError("trajectory_samples: no trajectories")
    return np.concatenate(out), np.concatenate(index)


def mj_frames(model: mujoco.MjModel, ids: FrameIds, qpos: np.ndarray, qvel: np.ndarray | None = None,
              contact_force: np.ndarray | None = None) -> FeatureFrame:
    """FeatureFrame batch of MuJoCo C states (T, nq): ``mj_kinematics`` per state for the pad
    positions (host side; for logged or PD-tracked trajectories). ``qvel`` defaults to zeros
    (only the qvel velocity path reads it), ``contact_force`` (T, 4) to unknown (NaN)."""
    qpos = np.asarray(qpos, dtype=np.float64)
    T = qpos.shape[0]
    data = mujoco.MjData(model)
    gx = np.empty((T, model.ngeom, 3))
    for i in range(T):
        data.qpos[:] = qpos[i]
        mujoco.mj_kinematics(model, data)
        gx[i] = data.geom_xpos
    qvel = np.zeros((T, model.nv)) if qvel is None else np.asarray(qvel, dtype=np.float64)
    fr = frame_from_data(ids, qpos.astype(np.float32), qvel.astype(np.float32), gx.astype(np.float32),
                         None if contact_force is None else np.asarray(contact_force, np.float32))
    return FeatureFrame(*(np.asarray(a) for a in fr))


def clip_samples(mjx_model: Any, ids: FrameIds, layout: FeatureLayout, params: FeatureParams,
                 clip: Any) -> np.ndarray:
    """(T − k, k·F) AMP samples of one clip: every window of k consecutive transitions."""
    _require_kinematic_estimator(layout)
    frames = reference_frames(mjx_model, ids, clip)
    return window_samples(clip_features(layout, params, frames, 1.0 / float(clip.fps)), layout.history)


def dataset_samples(dataset: Any, model: mujoco.MjModel, spec: Any, features_cfg: Any,
                    ctrl_dt: float | None = None, mjx_model: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """AMP samples of a MotionDataset: ``(samples (N, k·F), clip_index (N,))``.

    Windows never cross clip boundaries. ``ctrl_dt``, if given, must match the dataset's frame period
    (AMP samples compare transitions at the control rate; resample the dataset otherwise).
    Raises ValueError for the ``physics`` estimator (no forces in reference data) and for non-finite
    features (naming the channel and clip).
    """
    if ctrl_dt is not None and abs(float(dataset.fps) * float(ctrl_dt) - 1.0) > 1e-6:
        raise ValueError(f"reference dataset runs at {dataset.fps} fps but the control rate is "
                         f"{1.0 / ctrl_dt:g} Hz; resample it (wildamp.reference.resample) first")
    layout = FeatureLayout.build(spec, features_cfg)
    _require_kinematic_estimator(layout)
    params = FeatureParams.from_config(features_cfg, spec, model)
    ids = FrameIds.from_model(model, spec)
    if mjx_model is None:
        from wildamp.physics import make_mjx_model
        mjx_model = make_mjx_model(model)
    out, index = [], []
    names = layout.sample_channel_names()
    for ci, clip in enumerate(dataset.clips):
        s = clip_samples(mjx_model, ids, layout, params, clip)
        check_finite(s, names, what=f"features of clip {clip.name!r}")
        out.append(s)
        index.append(np.full(s.shape[0], ci, dtype=np.int64))
    samples = np.concatenate(out)
    if samples.shape[0] == 0:
        raise ValueError(f"reference dataset has no clip longer than history={layout.history} frames")
    return samples, np.concatenate(index)


def check_finite(samples: Any, channel_names: Sequence[str], what: str = "features") -> None:
    """Raise ValueError naming the first channels that hold NaN/inf values."""
    x = np.asarray(samples)
    bad = ~np.isfinite(x).reshape(-1, x.shape[-1]).all(axis=0)
    if bad.any():
        names = [channel_names[i] for i in np.nonzero(bad)[0][:5]]
        raise ValueError(f"{what}: non-finite values in channel(s) {names}"
                         + (" ..." if bad.sum() > 5 else ""))


# ============================================================================ normalisation


@dataclass(frozen=True, eq=False)
class FeatureNormalizer:
    """Fixed normalisation of AMP samples, fitted on reference samples (ARCHITECTURE.md §6).

    ``apply(x) = clip(((x − mean) / std)[..., keep], −clip, clip)`` with ``std ≥ std_floor``;
    channels whose reference std is below ``const_threshold`` are dropped (``keep`` False) when
    ``drop_constant`` — a channel the reference never moves carries no style information, and
    normalising it would amplify any policy motion without bound.
    """

    channel_names: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    keep: np.ndarray
    clip: float
    std_floor: float
    const_threshold: float

    @classmethod
    def fit(cls, samples: Any, channel_names: Sequence[str], std_floor: float, clip: float,
            drop_constant: bool, const_threshold: float = CONSTANT_STD_THRESHOLD) -> "FeatureNormalizer":
        """Fit on reference samples (N, D)."""
        x = np.asarray(samples, dtype=np.float64)
        names = tuple(channel_names)
        if x.ndim != 2 or x.shape[1] != len(names):
            raise ValueError(f"normaliser: samples have shape {x.shape}, expected (N, {len(names)})")
        if x.shape[0] < 2:
            raise ValueError("normaliser: need at least 2 samples to fit")
        check_finite(x, names, "normaliser fit samples")
        if std_floor <= 0 or clip <= 0:
            raise ValueError(f"normaliser: std_floor ({std_floor}) and clip ({clip}) must be > 0")
        mean = x.mean(axis=0)
        raw_std = x.std(axis=0)
        keep = (raw_std >= const_threshold) if drop_constant else np.ones(len(names), bool)
        if not keep.any():
            raise ValueError("normaliser: every channel is constant in the reference samples")
        return cls(channel_names=names, mean=mean.astype(np.float32),
                   std=np.maximum(raw_std, std_floor).astype(np.float32), keep=keep,
                   clip=float(clip), std_floor=float(std_floor), const_threshold=float(const_threshold))

    @classmethod
    def from_config(cls, samples: Any, channel_names: Sequence[str], cfg: Any) -> "FeatureNormalizer":
        """Fit with ``cfg.std_floor``, ``cfg.clip``, ``cfg.drop_constant_channels`` (a FeaturesConfig)."""
        return cls.fit(samples, channel_names, cfg.std_floor, cfg.clip, cfg.drop_constant_channels)

    @property
    def in_dim(self) -> int:
        return len(self.channel_names)

    @property
    def out_dim(self) -> int:
        """Dimension after dropping constant channels (the discriminator's input size)."""
        return int(self.keep.sum())

    @property
    def dropped(self) -> tuple[str, ...]:
        """Names of the dropped (constant) channels."""
        return tuple(n for n, k in zip(self.channel_names, self.keep) if not k)

    @property
    def kept(self) -> tuple[str, ...]:
        return tuple(n for n, k in zip(self.channel_names, self.keep) if k)

    def apply(self, samples: Any) -> Any:
        """Normalise (..., D) samples (numpy or JAX; jit-friendly: the kept indices are static)."""
        if samples.shape[-1] != self.in_dim:
            raise ValueError(f"normaliser: samples have {samples.shape[-1]} channels, fitted on {self.in_dim}")
        xp = jnp if isinstance(samples, jax.Array) or isinstance(samples, jax.core.Tracer) else np
        idx = np.nonzero(self.keep)[0]
        z = (samples[..., idx] - self.mean[idx]) / self.std[idx]
        return xp.clip(z, -self.clip, self.clip)

    def to_dict(self) -> dict[str, np.ndarray]:
        """Plain numpy arrays (for an .npz next to the dataset, or a checkpoint)."""
        return {
            "channel_names": np.array(self.channel_names, dtype=np.str_),
            "mean": np.asarray(self.mean, np.float32),
            "std": np.asarray(self.std, np.float32),
            "keep": np.asarray(self.keep, bool),
            "clip": np.array(self.clip, np.float64),
            "std_floor": np.array(self.std_floor, np.float64),
            "const_threshold": np.array(self.const_threshold, np.float64),
        }

    @classmethod
    def from_dict(cls, d: Any) -> "FeatureNormalizer":
        """Inverse of :meth:`to_dict` (accepts an open npz too); ValueError naming missing keys."""
        keys = ("channel_names", "mean", "std", "keep", "clip", "std_floor", "const_threshold")
        missing = [k for k in keys if k not in d]
        if missing:
            raise ValueError(f"feature normaliser data is missing {missing}")
        names = tuple(str(n) for n in np.asarray(d["channel_names"]).reshape(-1))
        out = cls(channel_names=names, mean=np.asarray(d["mean"], np.float32),
                  std=np.asarray(d["std"], np.float32), keep=np.asarray(d["keep"], bool),
                  clip=float(np.asarray(d["clip"])), std_floor=float(np.asarray(d["std_floor"])),
                  const_threshold=float(np.asarray(d["const_threshold"])))
        for k in ("mean", "std", "keep"):
            if getattr(out, k).shape != (len(names),):
                raise ValueError(f"feature normaliser: {k} has shape {getattr(out, k).shape}, "
                                 f"expected ({len(names)},)")
        return out

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_dict` to an .npz (no pickle)."""
        np.savez(Path(path), **self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "FeatureNormalizer":
        with np.load(Path(path), allow_pickle=False) as z:
            return cls.from_dict({k: z[k] for k in z.files})

    def check_compatible(self, other: "FeatureNormalizer | FeatureLayout | Sequence[str]") -> None:
        """Raise ValueError if ``other``'s channel names (a normaliser, a layout's sample channels or a
        list of names) differ from this normaliser's, naming the first differences."""
        if isinstance(other, FeatureNormalizer):
            names = other.channel_names
        elif isinstance(other, FeatureLayout):
            names = other.sample_channel_names()
        else:
            names = tuple(other)
        if tuple(names) != self.channel_names:
            missing = [n for n in self.channel_names if n not in names]
            extra = [n for n in names if n not in self.channel_names]
            raise ValueError(
                f"feature channels do not match the normaliser: {len(names)} vs {len(self.channel_names)} "
                f"channels; missing {missing[:6]}; unexpected {extra[:6]}"
                + ("; same names in a different order" if not missing and not extra else ""))

    def describe(self) -> str:
        """One-line summary (dimensions and dropped channels)."""
        return (f"FeatureNormalizer: {self.in_dim} → {self.out_dim} channels, std floor {self.std_floor}, "
                f"clip ±{self.clip}; dropped (constant in the reference): {list(self.dropped)}")
