"""FeatureFrame: what one simulator state (or replayed reference frame) contributes to the features.

:class:`FrameIds` resolves, by name, where the root, the joints and the four sole pads live in a
model; :func:`frame_from_data` / :func:`frame_from_pads` gather a state into the canonical
:class:`FeatureFrame` order, so that the feature function never depends on model addresses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from wildamp.features.layout import CONTACT_ORDER

__all__ = ["FrameIds", "FeatureFrame", "frame_from_data", "frame_from_pads"]


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
