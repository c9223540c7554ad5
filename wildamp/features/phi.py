"""THE feature function φ: :func:`frame_features` of one transition ``prev → cur`` (pure JAX).

The env calls it every control step and the reference replay (:mod:`wildamp.features.samples`)
calls the same function on kinematically replayed clips.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from wildamp.features.contacts import fk_contacts, joint_contacts, physics_contacts
from wildamp.features.frames import FeatureFrame
from wildamp.features.layout import FeatureLayout, FeatureParams
from wildamp.rotations import heading_frame, qconj as _qconj, qmul as _qmul, quat_rotate, quat_rotvec

__all__ = ["frame_features"]


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
