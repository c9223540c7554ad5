"""Policy and critic observations of the walking env (pure JAX, one env).

Policy observation, in :data:`OBS_LAYOUT` order: gravity in the body frame, heading-frame root linear
and angular velocity, joint positions relative to the default posture, 0.1·joint velocities, the
last action and the command. The critic additionally sees (``privileged_critic``) the root height,
tanh-scaled pad forces, pad heights and the feet's air time.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from wildamp.rotations import heading_frame, quat_rotate, quat_rotate_inv

#: (name, size) of each policy-observation block; None = one entry per joint.
OBS_LAYOUT: tuple[tuple[str, int | None], ...] = (
    ("gravity_body", 3), ("lin_vel_heading", 3), ("ang_vel_heading", 3), ("joint_pos_rel", None),
    ("joint_vel", None), ("last_action", None), ("command", 3),
)
#: Privileged critic blocks appended to the policy observation.
PRIVILEGED_LAYOUT: tuple[tuple[str, int], ...] = (
    ("base_height", 1), ("pad_force_tanh", 4), ("pad_height", 4), ("feet_air_time", 2))


def obs_slice(name: str, num_joints: int) -> slice:
    """Where block ``name`` of :data:`OBS_LAYOUT` sits in the policy observation (and the critic's)."""
    start = 0
    for n, size in OBS_LAYOUT:
        size = num_joints if size is None else size
        if n == name:
            return slice(start, start + size)
        start += size
    raise KeyError(f"no observation block {name!r}; blocks: {[n for n, _ in OBS_LAYOUT]}")


def obs_size(num_joints: int) -> int:
    return sum(num_joints if s is None else s for _, s in OBS_LAYOUT)


def critic_obs_size(num_joints: int, privileged: bool) -> int:
    return obs_size(num_joints) + (sum(s for _, s in PRIVILEGED_LAYOUT) if privileged else 0)


def root_kinematics(qpos: jax.Array, qvel: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """(root position, gravity in the body frame, heading-frame linear velocity, heading-frame
    angular velocity) of a free-floating root (qvel: world linear, body angular velocity)."""
    quat = qpos[3:7]
    gravity_body = quat_rotate_inv(quat, jnp.array([0.0, 0.0, -1.0]))
    lin_h = heading_frame(quat, qvel[0:3])
    ang_h = heading_frame(quat, quat_rotate(quat, qvel[3:6]))
    return qpos[0:3], gravity_body, lin_h, ang_h


def observe(qpos: jax.Array, qvel: jax.Array, joint_pos_rel: jax.Array, joint_vel: jax.Array,
            command: jax.Array, last_action: jax.Array, pad_force: jax.Array, air_time: jax.Array,
            pad_z: jax.Array, privileged: bool, force_scale: float) -> tuple[jax.Array, jax.Array]:
    """(policy observation, critic observation); the critic's equals the policy's without privilege."""
    pos, gravity_body, lin_h, ang_h = root_kinematics(qpos, qvel)
    obs = jnp.concatenate([gravity_body, lin_h, ang_h, joint_pos_rel, 0.1 * joint_vel, last_action, command])
    if not privileged:
        return obs, obs
    priv = jnp.concatenate([pos[2:3], jnp.tanh(pad_force / force_scale), pad_z, air_time])
    return obs, jnp.concatenate([obs, priv])
