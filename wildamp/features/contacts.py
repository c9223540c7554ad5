"""Foot-contact estimators: (..., 4) contacts ``[left_toe, left_heel, right_toe, right_heel]``.

Which one the feature function uses is ``features.contact_estimator`` (see :mod:`wildamp.features`
for what each one computes): :func:`joint_contacts` (``joints``), :func:`fk_contacts` (``fk``,
the default) and :func:`physics_contacts` (``physics``). All are pure JAX.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from wildamp.features.layout import FeatureLayout, FeatureParams

__all__ = ["joint_contacts", "fk_contacts", "physics_contacts"]


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
