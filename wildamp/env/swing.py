"""Where the gait clock wants each foot: the target height of the (left, right) foot at a gait phase.

Two schedules (``env.swing_profile``), both paid by the ``feet_phase`` reward term:

- ``half_sine``: each foot swings along a half sine to ``env.swing_height`` for ``env.swing_fraction``
  of the cycle (left from phase 0, right from 0.5) and is down otherwise (:func:`half_sine_targets`).
- ``reference``: each foot follows the tracked reference clips' own foot height at that phase
  (:func:`reference_swing_profile`), interpolated between the clips by the commanded forward speed.
  A template is an idealisation: a policy can fit it better than the reference does (the tracked
  clips earn 0.72-0.87 of the half-sine term, trained policies 0.92) and is then paid for walking
  unlike the reference; the reference's profile is the schedule the reference itself fits best.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from wildamp.features import FrameIds, clip_qpos
from wildamp.reference.clip import commanded_clips, walked_speed
from wildamp.robot import PADS_OF_FOOT

#: Phase bins of a reference profile (one cycle of 0.55 s at 50 Hz holds 27.5 frames; a 4 s clip
#: folds about 7 cycles into each bin).
PROFILE_BINS = 25


def half_sine_targets(phase: jax.Array, swing_height: float, swing_fraction: float = 0.5) -> jax.Array:
    """(2,) target height of the (left, right) foot at gait ``phase``: the left foot swings from phase
    0 and the right from phase 0.5, each along a half sine lasting ``swing_fraction`` of the cycle;
    otherwise the foot is down (with a fraction below 0.5 both feet are down between the swings)."""
    since_lift = jnp.stack([phase, phase - 0.5]) % 1.0
    s = since_lift / swing_fraction
    return swing_height * jnp.where(s < 1.0, jnp.sin(jnp.pi * jnp.clip(s, 0.0, 1.0)), 0.0)


def reference_foot_heights(model: mujoco.MjModel, ids: FrameIds, pad_ids: np.ndarray, pad_rest_height: float,
                           clip) -> np.ndarray:
    """(T, 2) height of each foot's lowest sole pad above its resting height along ``clip`` (FK)."""
    d = mujoco.MjData(model)
    z = []
    for q in clip_qpos(ids, clip):
        d.qpos[:] = q
        mujoco.mj_kinematics(model, d)
        z.append(d.geom_xpos[np.asarray(pad_ids), 2] - pad_rest_height)
    z = np.asarray(z)
    return np.stack([z[:, list(p)].min(1) for p in PADS_OF_FOOT], axis=1)


def phase_profile(heights: np.ndarray, fps: float, period: float, swing_height: float, swing_fraction: float,
                  bins: int = PROFILE_BINS) -> np.ndarray:
    """(bins, 2) mean height of each foot per phase bin, ``heights`` folded at ``period`` and turned so
    that the left foot's swing starts at phase 0 (the turn that best matches :func:`half_sine_targets`:
    the clock convention the policy observes). ValueError if a bin holds no frame."""
    phase = (np.arange(len(heights)) / fps / period) % 1.0
    b = np.minimum((phase * bins).astype(int), bins - 1)
    count = np.bincount(b, minlength=bins)
    if np.any(count == 0):
        raise ValueError(f"a reference clip of {len(heights) / fps:.2f} s leaves phase bins empty: "
                         f"too short for a {bins}-bin profile of a {period} s cycle")
    prof = np.stack([np.bincount(b, weights=heights[:, k], minlength=bins) / count for k in (0, 1)], axis=1)
    centres = (np.arange(bins) + 0.5) / bins
    template = np.stack([np.asarray(half_sine_targets(jnp.asarray(p), swing_height, swing_fraction))
                         for p in centres])
    shift = min(range(bins), key=lambda s: float(((np.roll(prof, -s, axis=0) - template) ** 2).sum()))
    return np.roll(prof, -shift, axis=0)


class SwingProfile(NamedTuple):
    """Reference foot heights by commanded speed and phase: ``heights[c]`` is the (bins, 2) profile of
    the clip walking ``speeds[c]`` m/s (speeds ascending)."""
    speeds: jax.Array     # (C,)
    heights: jax.Array    # (C, bins, 2)


def reference_swing_profile(dataset, model: mujoco.MjModel, ids: FrameIds, pad_ids: np.ndarray,
                            pad_rest_height: float, period: float, swing_height: float, swing_fraction: float,
                            skip_seconds: float, forward_range, lateral_range) -> SwingProfile:
    """The :func:`phase_profile` of every commanded clip after ``skip_seconds`` (its start from
    standing), keyed by the forward speed it walks. ValueError if no clip is commanded."""
    rows = []
    for clip in commanded_clips(dataset, forward_range, lateral_range):
        h = reference_foot_heights(model, ids, pad_ids, pad_rest_height, clip)[int(round(skip_seconds * clip.fps)):]
        rows.append((walked_speed(clip)[0], phase_profile(h, clip.fps, period, swing_height, swing_fraction)))
    if not rows:
        raise ValueError("env.swing_profile reference: no reference clip has a speed inside the command ranges")
    rows.sort(key=lambda r: r[0])
    return SwingProfile(jnp.asarray([r[0] for r in rows], jnp.float32),
                        jnp.asarray(np.stack([r[1] for r in rows]), jnp.float32))


def profile_targets(profile: SwingProfile, phase: jax.Array, speed: jax.Array) -> jax.Array:
    """(2,) target foot heights at ``phase`` (cycles) and forward ``speed``: linear between phase bins
    (circularly) and between the clips' speeds (held at the slowest and fastest clip)."""
    bins = profile.heights.shape[1]
    x = phase * bins - 0.5
    i0 = jnp.floor(x).astype(jnp.int32)
    w = x - i0
    by_phase = (1.0 - w) * profile.heights[:, i0 % bins] + w * profile.heights[:, (i0 + 1) % bins]   # (C, 2)
    per_foot = [jnp.interp(speed, profile.speeds, by_phase[:, k]) for k in (0, 1)]
    return jnp.stack(per_foot)
