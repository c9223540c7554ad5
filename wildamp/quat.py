"""Quaternion utilities (numpy, vectorised over leading axes).

Convention: **wxyz** (scalar first), Hamilton product, active rotations: ``rotate(q, v)`` maps a
body-frame vector to the world frame for a body whose orientation is ``q``. xyzw appears only at
the GMR file boundary, through :func:`from_xyzw` / :func:`to_xyzw`.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "normalize", "multiply", "conjugate", "rotate", "from_xyzw", "to_xyzw", "slerp",
    "make_sign_continuous", "yaw_of", "quat_from_yaw", "from_axis_angle", "to_matrix",
    "from_matrix", "angle_between", "identity",
]

_EPS = 1e-12


def identity(shape: tuple[int, ...] = ()) -> np.ndarray:
    """Identity rotation(s) of the given leading shape."""
    q = np.zeros(tuple(shape) + (4,))
    q[..., 0] = 1.0
    return q


def normalize(q: np.ndarray) -> np.ndarray:
    """Scale quaternions to unit norm; a (near-)zero quaternion is an error, not a silent identity."""
    q = np.asarray(q, dtype=np.float64)
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    if (n < _EPS).any() or not np.isfinite(n).all():
        raise ValueError("cannot normalise a zero or non-finite quaternion")
    return q / n


def multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a ⊗ b`` (apply b, then a)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def conjugate(q: np.ndarray) -> np.ndarray:
    """Conjugate (the inverse rotation for unit quaternions)."""
    q = np.asarray(q, dtype=np.float64)
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v`` (..., 3) by unit quaternions ``q`` (..., 4)."""
    q = np.asarray(q, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    w = q[..., :1]
    u = q[..., 1:]
    # v' = v + 2w (u×v) + 2 u×(u×v): the expanded form of q v q*, cheaper than two products.
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def from_xyzw(q_xyzw: np.ndarray) -> np.ndarray:
    """Reorder scalar-last (xyzw) quaternions to wxyz."""
    q = np.asarray(q_xyzw, dtype=np.float64)
    return np.concatenate([q[..., 3:4], q[..., :3]], axis=-1)


def to_xyzw(q: np.ndarray) -> np.ndarray:
    """Reorder wxyz quaternions to scalar-last (xyzw)."""
    q = np.asarray(q, dtype=np.float64)
    return np.concatenate([q[..., 1:], q[..., :1]], axis=-1)


def slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Spherical linear interpolation along the shorter arc (sign of ``q1`` is irrelevant).

    ``t`` broadcasts against the leading shape of ``q0``/``q1``; t=0 gives q0, t=1 gives ±q1
    (with the sign closest to q0).
    """
    q0 = normalize(q0)
    q1 = normalize(q1)
    t = np.asarray(t, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0.0, -q1, q1)
    dot = np.clip(np.abs(dot), 0.0, 1.0)
    theta = np.arccos(dot)
    sin_theta = np.sin(theta)
    small = sin_theta < 1e-8
    # Near-identical rotations: the slerp weights are 0/0, lerp is exact to first order there.
    safe = np.where(small, 1.0, sin_theta)
    w0 = np.where(small, 1.0 - t, np.sin((1.0 - t) * theta) / safe)
    w1 = np.where(small, t, np.sin(t * theta) / safe)
    return normalize(w0 * q0 + w1 * q1)


def make_sign_continuous(q: np.ndarray) -> np.ndarray:
    """Flip signs along axis 0 so consecutive quaternions have a non-negative dot product.

    The first quaternion keeps its sign; the rotations are unchanged (q and −q are the same
    rotation), only the representation becomes continuous, as interpolation and finite
    differences need.
    """
    q = np.array(q, dtype=np.float64, copy=True)
    if q.shape[0] < 2:
        return q
    dots = np.sum(q[1:] * q[:-1], axis=-1)
    # Each negative dot toggles the sign relative to the first frame; cumprod carries it forward.
    flips = np.concatenate([np.ones((1,) + dots.shape[1:]), np.where(dots < 0.0, -1.0, 1.0)])
    return q * np.cumprod(flips, axis=0)[..., None]


def yaw_of(q: np.ndarray) -> np.ndarray:
    """Heading angle (rad) of the body x axis projected on the world xy plane (ZYX yaw)."""
    q = np.asarray(q, dtype=np.float64)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def quat_from_yaw(yaw: np.ndarray | float) -> np.ndarray:
    """Rotation(s) about the world z axis by ``yaw`` radians."""
    yaw = np.asarray(yaw, dtype=np.float64)
    q = np.zeros(yaw.shape + (4,))
    q[..., 0] = np.cos(0.5 * yaw)
    q[..., 3] = np.sin(0.5 * yaw)
    return q


def from_axis_angle(axis: np.ndarray, angle: np.ndarray | float) -> np.ndarray:
    """Rotation(s) by ``angle`` radians about ``axis`` (normalised here)."""
    axis = np.asarray(axis, dtype=np.float64)
    n = np.linalg.norm(axis, axis=-1, keepdims=True)
    if (n < _EPS).any():
        raise ValueError("rotation axis has zero length")
    half = 0.5 * np.asarray(angle, dtype=np.float64)[..., None]
    vec = np.sin(half) * axis / n
    w = np.broadcast_to(np.cos(half), vec.shape[:-1] + (1,))
    return np.concatenate([w, vec], axis=-1)


def to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) of unit quaternions; columns are the body axes in world."""
    q = np.asarray(q, dtype=np.float64)
    w, x, y, z = np.moveaxis(q, -1, 0)
    m = np.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        axis=-1,
    )
    return m.reshape(q.shape[:-1] + (3, 3))


def from_matrix(m: np.ndarray) -> np.ndarray:
    """Unit quaternions (w ≥ 0) of rotation matrices (..., 3, 3).

    Uses the largest of the four candidate denominators per matrix (Shepperd) so the result is
    accurate for every rotation, including 180° turns where w ≈ 0.
    """
    m = np.asarray(m, dtype=np.float64)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    tr = m00 + m11 + m22
    cands = np.stack(
        [
            # case w largest
            np.stack([1 + tr, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                      m[..., 1, 0] - m[..., 0, 1]], axis=-1),
            # case x largest
            np.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m00 - m11 - m22,
                      m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], axis=-1),
            # case y largest
            np.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0],
                      1 - m00 + m11 - m22, m[..., 1, 2] + m[..., 2, 1]], axis=-1),
            # case z largest
            np.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0],
                      m[..., 1, 2] + m[..., 2, 1], 1 - m00 - m11 + m22], axis=-1),
        ],
        axis=-2,
    )  # (..., 4 cases, 4 components); case k's k-th component is 4·q_k² > 0 when chosen.
    diag = np.stack([tr, m00, m11, m22], axis=-1)
    k = np.argmax(diag, axis=-1)
    q = np.take_along_axis(cands, k[..., None, None], axis=-2)[..., 0, :]
    q = normalize(q)
    return np.where(q[..., :1] < 0.0, -q, q)


def angle_between(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Angle (rad, in [0, π]) of the relative rotation between q1 and q2; sign-invariant."""
    rel = multiply(conjugate(normalize(q1)), normalize(q2))
    # atan2 of vector norm vs |w| is accurate for tiny and near-π angles, unlike arccos(|dot|).
    return 2.0 * np.arctan2(np.linalg.norm(rel[..., 1:], axis=-1), np.abs(rel[..., 0]))
