"""Resampling clips onto a uniform time grid at another frame rate."""

from __future__ import annotations

import math

import numpy as np

from wildamp import quat
from wildamp.reference.clip import Clip

__all__ = ["resample_clip", "resample_times"]


def resample_times(num_frames: int, fps: float, target_fps: float) -> np.ndarray:
    """Times ``k / target_fps`` (s) of the output grid covering ``[0, (num_frames-1)/fps]``.

    The grid starts at the first frame and never extrapolates past the last one.
    """
    if not (math.isfinite(target_fps) and target_fps > 0):
        raise ValueError(f"target fps must be a finite positive number, got {target_fps}")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"source fps must be a finite positive number, got {fps}")
    duration = (num_frames - 1) / fps
    # The small slack keeps a last frame that lies exactly on the end (e.g. 50 Hz -> 25 Hz)
    # from being lost to rounding.
    n_out = int(math.floor(duration * target_fps + 1e-9)) + 1
    return np.arange(n_out) / target_fps


def resample_clip(clip: Clip, target_fps: float) -> Clip:
    """Resample ``clip`` to ``target_fps`` over its duration.

    Root position and joint angles are interpolated linearly, the root orientation by slerp
    after making the input sign-continuous (so an input with random quaternion sign flips gives
    the same rotations). Name, source and meta are kept; the result is validated.
    """
    T = clip.num_frames
    if T < 2:
        raise ValueError(f"clip {clip.name!r}: cannot resample a clip with {T} frame(s)")
    for key, arr, width in (
        ("root_pos", clip.root_pos, 3),
        ("root_quat", clip.root_quat, 4),
        ("joint_pos", clip.joint_pos, clip.num_joints),
    ):
        if arr.shape != (T, width):
            raise ValueError(f"clip {clip.name!r}: {key} has shape {arr.shape}, expected {(T, width)}")
    try:
        t = resample_times(T, clip.fps, float(target_fps))
        q = quat.make_sign_continuous(quat.normalize(clip.root_quat))
    except ValueError as e:
        raise ValueError(f"clip {clip.name!r}: {e}") from e

    # Fractional source index of every output time; the last segment is reused at the end point.
    s = t * clip.fps
    i = np.minimum(np.floor(s).astype(np.int64), T - 2)
    a = (s - i)[:, None]

    def lerp(x: np.ndarray) -> np.ndarray:
        return (1.0 - a) * x[i] + a * x[i + 1]

    root_quat = quat.make_sign_continuous(quat.slerp(q[i], q[i + 1], a[:, 0]))
    return Clip(
        name=clip.name,
        fps=float(target_fps),
        root_pos=lerp(clip.root_pos),
        root_quat=root_quat,
        joint_pos=lerp(clip.joint_pos),
        joint_names=clip.joint_names,
        source=clip.source,
        meta=dict(clip.meta),
    ).validate()
