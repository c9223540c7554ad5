"""Kinematic replay: FeatureFrame batches from reference clips (through MJX) and from MuJoCo C states.

:func:`reference_frames` sets qpos from a clip, runs ``mjx.kinematics`` for the pad positions and
takes qvel from :func:`reference_qvel`; :func:`mj_frames` does the same host-side for logged or
simulated MuJoCo states.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from wildamp.features.frames import FeatureFrame, FrameIds, frame_from_data

__all__ = ["clip_qpos", "reference_qvel", "reference_frames", "mj_frames"]

# Frames are kinematically replayed in fixed-size chunks so that clips of any length share one
# compiled function (a new clip length would otherwise trigger a new XLA compile).
_CHUNK = 256


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
