"""Deliberately infeasible variants of a feasible clip, for demonstrating and testing the repair.

Retargeted human walking fails the feasibility gate in three typical ways (ARCHITECTURE.md §5):
straight knees pinned at their limit, a cadence the servos cannot follow, and a first frame that
is not balanced. Each function here spoils a clip in one of those ways, so that
``wildamp reference repair`` (:mod:`wildamp.reference.repair`) can be shown and tested on clips
whose ground truth is known. They change only the motion, never the clip's joint names or format.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from wildamp import quat
from wildamp.reference.clip import Clip

__all__ = ["straight_knees", "sped_up", "tilted_start", "KNEE_JOINTS"]

#: The joints straightened by :func:`straight_knees`.
KNEE_JOINTS = ("left_knee_pitch", "right_knee_pitch")


def _variant(clip: Clip, suffix: str, how: str, **changes) -> Clip:
    # Spoiling a spoiled clip keeps both descriptions and the original clip's name.
    how = f"{clip.meta['spoiled']}, then {how}" if "spoiled" in clip.meta else how
    meta = {**clip.meta, "spoiled": how, "spoiled_from": clip.meta.get("spoiled_from", clip.name)}
    return dataclasses.replace(clip, name=f"{clip.name}_{suffix}", meta=meta, **changes).validate()


def straight_knees(clip: Clip, keep: float = 0.0) -> Clip:
    """The clip with its knee angles scaled by ``keep`` (0: straight, at the knees' 0 rad stop).

    Everything else, the root path included, is left as it was: the straightened legs then reach
    below the floor, as naively retargeted straight-legged human walking does.
    """
    cols = [clip.joint_names.index(n) for n in KNEE_JOINTS if n in clip.joint_names]
    if len(cols) != len(KNEE_JOINTS):
        raise KeyError(f"clip {clip.name!r} has no knee joints {list(KNEE_JOINTS)}")
    joints = clip.joint_pos.copy()
    joints[:, cols] *= float(keep)
    return _variant(clip, "straight_knees", f"knees x{keep:g}", joint_pos=joints)


def sped_up(clip: Clip, factor: float = 1.5) -> Clip:
    """The same frames played ``factor`` times faster (the frame rate is multiplied by it)."""
    if not factor > 0:
        raise ValueError(f"speed-up factor must be positive, got {factor}")
    return _variant(clip, f"x{factor:g}", f"played x{factor:g} faster", fps=clip.fps * float(factor))


def tilted_start(clip: Clip, pitch: float = 0.35, frames: int = 10) -> Clip:
    """The clip whose first ``frames`` frames lean forward by up to ``pitch`` rad about the root.

    The lean fades out linearly over those frames; the first frame puts the centre of mass ahead
    of the soles, so a robot started in it falls forwards.
    """
    n = min(int(frames), clip.num_frames)
    if n < 1:
        raise ValueError(f"need at least one tilted frame, got {frames}")
    angle = np.zeros(clip.num_frames)
    angle[:n] = float(pitch) * (1.0 - np.arange(n) / n)
    # Pitch about the body's own y axis (a lean forward), applied after the recorded orientation.
    lean = quat.from_axis_angle(np.broadcast_to([0.0, 1.0, 0.0], (clip.num_frames, 3)), angle)
    q = quat.make_sign_continuous(quat.multiply(clip.root_quat, lean))
    return _variant(clip, "tilted_start", f"first {n} frames pitched by up to {pitch:g} rad", root_quat=q)
