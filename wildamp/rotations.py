"""Quaternion and frame rotations in JAX (wxyz, unit quaternions); the numpy twin is :mod:`wildamp.quat`.

The one JAX implementation used by the env, the AMP features and the observations. Every function is
invariant to the sign of the quaternion (q and −q are the same rotation).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def qmul(a: jax.Array, b: jax.Array) -> jax.Array:
    """Hamilton product a ⊗ b of wxyz quaternions."""
    aw, ax, ay, az = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bw, bx, by, bz = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return jnp.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], axis=-1)


def qconj(q: jax.Array) -> jax.Array:
    return q * jnp.array([1.0, -1.0, -1.0, -1.0], dtype=q.dtype)


def quat_rotate(q: jax.Array, v: jax.Array) -> jax.Array:
    """R(q) v for unit wxyz q (body → world). Quadratic in q, hence sign-invariant."""
    w, u = q[..., :1], q[..., 1:]
    t = 2.0 * jnp.cross(u, v)
    return v + w * t + jnp.cross(u, t)


def quat_rotate_inv(q: jax.Array, v: jax.Array) -> jax.Array:
    """R(q)ᵀ v for unit wxyz q (world → body), e.g. gravity projected into the body frame."""
    w, u = q[..., :1], q[..., 1:]
    t = 2.0 * jnp.cross(u, v)
    return v - w * t + jnp.cross(u, t)


def quat_rotvec(q: jax.Array) -> jax.Array:
    """Rotation vector (axis·angle, angle in [0, π]) of a unit wxyz quaternion; sign-invariant.

    The sign is fixed to w ≥ 0 first (q and −q are the same rotation; the short arc is wanted), then
    ``angle = 2·atan2(|v|, w)``; the small-angle branch uses the limit 2/w so gradients stay finite.
    """
    q = jnp.where(q[..., :1] < 0.0, -q, q)
    w, v = q[..., 0], q[..., 1:]
    n = jnp.sqrt(jnp.sum(v * v, axis=-1))
    small = n < 1e-7
    n_safe = jnp.where(small, 1.0, n)
    scale = jnp.where(small, 2.0 / jnp.maximum(w, 1e-12), 2.0 * jnp.arctan2(n, w) / n_safe)
    return v * scale[..., None]


def yaw_of(q: jax.Array) -> jax.Array:
    """Heading: angle of the body x axis projected on the world xy plane (sign-invariant)."""
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return jnp.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def heading_frame(q: jax.Array, v_world: jax.Array) -> jax.Array:
    """Express world vectors in the heading frame of root orientation ``q`` (rotate by −yaw about z)."""
    yaw = yaw_of(q)
    c, s = jnp.cos(yaw), jnp.sin(yaw)
    x, y = v_world[..., 0], v_world[..., 1]
    return jnp.stack([c * x + s * y, -s * x + c * y, v_world[..., 2]], axis=-1)


def quat_from_yaw(yaw: jax.Array) -> jax.Array:
    """Unit wxyz quaternion of a rotation by ``yaw`` about the world z axis."""
    return jnp.stack([jnp.cos(yaw / 2), jnp.zeros_like(yaw), jnp.zeros_like(yaw), jnp.sin(yaw / 2)], -1)
