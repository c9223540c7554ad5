"""The env's default posture and reference-state initialisation (RSI), both taken from the clips.

- :func:`default_qpos`: the posture the action is centred on, the pose penalties pull toward and
  non-RSI resets start from. ``home`` is the model keyframe (straight legs for WildRobot);
  ``reference_mean`` is the mean joint posture over the frames of the clips inside the command
  ranges (the motions the policy is asked for; all clips when none is), with the root lowered so
  that the lowest sole-pad corner touches the floor — the crouched walking stance the policy must
  reach (straight-legged ``home`` puts 0 % of reference frames within the action range).
- :class:`RsiTable`: reference frames (qpos, qvel, command) a reset can start from, as in the AMP
  paper; the command is the clip's speed.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from wildamp.features import FrameIds, clip_qpos, reference_qvel
from wildamp.reference.clip import commanded_clips, walked_speed
from wildamp.rotations import qmul, quat_from_yaw, quat_rotate


def commanded_joint_frames(dataset, ids: FrameIds, forward_range=None, lateral_range=None) -> np.ndarray:
    """(frames, J) joint positions (``ids.joint_names`` order, joints by name through
    :meth:`Clip.to_qpos`) of the commanded clips (:func:`commanded_clips`; every clip when none is)."""
    adr = list(ids.joint_qpos_adr)
    clips = commanded_clips(dataset, forward_range, lateral_range) or list(dataset.clips)
    return np.concatenate([clip_qpos(ids, c)[:, adr] for c in clips])


def reference_mean_joints(dataset, ids: FrameIds, forward_range=None, lateral_range=None) -> np.ndarray:
    """Mean joint posture over the frames of the commanded clips (:func:`commanded_joint_frames`)."""
    return commanded_joint_frames(dataset, ids, forward_range, lateral_range).mean(axis=0)


def reference_joint_spread(dataset, ids: FrameIds, forward_range=None, lateral_range=None,
                           floor: float = 0.0) -> np.ndarray:
    """Standard deviation of each joint over the frames of the commanded clips, at least ``floor``:
    how far the reference itself strays from its mean posture."""
    return np.maximum(commanded_joint_frames(dataset, ids, forward_range, lateral_range).std(axis=0), floor)


def _pad_centres_and_lowest_corners(model: mujoco.MjModel, qpos: np.ndarray,
                                    pad_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World z of each (box) sole pad's centre and of its lowest corner at ``qpos``."""
    d = mujoco.MjData(model)
    d.qpos[:] = qpos
    mujoco.mj_kinematics(model, d)
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
    lowest = [(d.geom_xpos[g] + (signs * model.geom_size[g]) @ d.geom_xmat[g].reshape(3, 3).T)[:, 2].min()
              for g in pad_ids]
    return d.geom_xpos[np.asarray(pad_ids), 2].copy(), np.asarray(lowest)


def lowest_pad_point(model: mujoco.MjModel, qpos: np.ndarray, pad_ids: np.ndarray) -> float:
    """World z of the lowest corner of the (box) sole pads at ``qpos``."""
    return float(_pad_centres_and_lowest_corners(model, qpos, pad_ids)[1].min())


def resting_pad_height(model: mujoco.MjModel, qpos: np.ndarray, pad_ids: np.ndarray) -> float:
    """Height of a pad's centre above the floor when its foot stands flat in posture ``qpos``."""
    centre, lowest = _pad_centres_and_lowest_corners(model, qpos, pad_ids)
    return float(np.min(centre - lowest))


def default_qpos(mode: str, home_qpos: np.ndarray, ids: FrameIds, dataset, model: mujoco.MjModel,
                 pad_ids: np.ndarray, forward_range=None, lateral_range=None) -> np.ndarray:
    """The env's default posture as a full qpos (see the module docstring); ``reference_mean``
    averages the clips inside the command ranges (:func:`reference_mean_joints`)."""
    qpos = np.asarray(home_qpos, np.float64).copy()
    if mode == "home":
        return qpos
    if mode != "reference_mean":
        raise ValueError(f"unknown default_pose {mode!r}")
    qpos[np.asarray(ids.joint_qpos_adr)] = reference_mean_joints(dataset, ids, forward_range, lateral_range)
    qpos[3:7] = (1.0, 0.0, 0.0, 0.0)
    qpos[2] -= lowest_pad_point(model, qpos, pad_ids)
    return qpos


class RsiTable(NamedTuple):
    """Reference frames a reset may start from (leading axis: frame)."""
    qpos: jax.Array      # (M, nq), root xy at the origin
    qvel: jax.Array      # (M, nv), world linear / body angular root velocity
    command: jax.Array   # (M, 3) the clip's commanded (forward, lateral, yaw rate)


def rsi_table(dataset, ids: FrameIds, skip_seconds: float, forward_range, lateral_range) -> RsiTable:
    """Frames of every clip whose commanded speed lies in the command ranges, from ``skip_seconds``
    on (the clips start from standing). ValueError if no clip qualifies."""
    qs, vs, cs = [], [], []
    for clip in commanded_clips(dataset, forward_range, lateral_range):
        # The command is the speed the clip walks (what the tracking reward then pays for), which for
        # a tracked clip may differ a little from the nominal speed that made it a commanded clip.
        fwd, lat = walked_speed(clip)
        q = clip_qpos(ids, clip)
        v = reference_qvel(q, 1.0 / clip.fps)
        start = int(round(skip_seconds * clip.fps))
        q, v = q[start:], v[start:]
        q = q.copy()
        q[:, 0:2] = 0.0
        qs.append(q)
        vs.append(v)
        cs.append(np.tile([fwd, lat, 0.0], (len(q), 1)))
    if not qs:
        raise ValueError(f"reference-state initialisation: no reference clip has a speed inside the "
                         f"command ranges forward {list(forward_range)}, lateral {list(lateral_range)}")
    f32 = np.float32
    return RsiTable(jnp.asarray(np.concatenate(qs), f32), jnp.asarray(np.concatenate(vs), f32),
                    jnp.asarray(np.concatenate(cs), f32))


def sample_rsi(table: RsiTable, rng: jax.Array, yaw: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """A random reference frame turned by ``yaw`` about the world z axis: (qpos, qvel, command)."""
    i = jax.random.randint(rng, (), 0, table.qpos.shape[0])
    qpos, qvel = table.qpos[i], table.qvel[i]
    q_yaw = quat_from_yaw(yaw)
    qpos = qpos.at[3:7].set(qmul(q_yaw, qpos[3:7]))
    qvel = qvel.at[0:3].set(quat_rotate(q_yaw, qvel[0:3]))  # world linear velocity turns; body angular does not
    return qpos, qvel, table.command[i]
