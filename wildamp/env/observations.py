"""Policy and critic observations of the walking env (pure JAX, one env).

Policy observation, in :data:`OBS_LAYOUT` order: gravity in the body frame, heading-frame root linear
and angular velocity, joint positions relative to the default posture, 0.1·joint velocities, the
last action and the command, then — with a gait clock — (sin, cos) of the gait phase. The critic additionally sees (``privileged_critic``) the root height,
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
#: Appended to the policy observation when the env has a gait clock (``env.gait_period`` > 0).
CLOCK_BLOCK: tuple[str, int] = ("gait_phase", 2)
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


def policy_layout(num_joints: int, gait_clock: bool) -> tuple[tuple[str, int], ...]:
    """(name, size) of every policy-observation block, sizes resolved, in order."""
    blocks = tuple((n, num_joints if s is None else s) for n, s in OBS_LAYOUT)
    return blocks + ((CLOCK_BLOCK,) if gait_clock else ())


def obs_size(num_joints: int, gait_clock: bool = False) -> int:
    return sum(s for _, s in policy_layout(num_joints, gait_clock))


def critic_obs_size(num_joints: int, privileged: bool, gait_clock: bool = False) -> int:
    return obs_size(num_joints, gait_clock) + (sum(s for _, s in PRIVILEGED_LAYOUT) if privileged else 0)


def gait_clock(phase: jax.Array) -> jax.Array:
    """The phase block of the observation: (sin, cos) of 2π·phase (phase in cycles)."""
    angle = 2.0 * jnp.pi * phase
    return jnp.stack([jnp.sin(angle), jnp.cos(angle)])


def root_kinematics(qpos: jax.Array, qvel: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """(root position, gravity in the body frame, heading-frame linear velocity, heading-frame
    angular velocity) of a free-floating root (qvel: world linear, body angular velocity)."""
    quat = qpos[3:7]
    gravity_body = quat_rotate_inv(quat, jnp.array([0.0, 0.0, -1.0]))
    lin_h = heading_frame(quat, qvel[0:3])
    ang_h = heading_frame(quat, quat_rotate(quat, qvel[3:6]))
    return qpos[0:3], gravity_body, lin_h, ang_h


def commanded_velocity(lin_h: jax.Array, ang_h: jax.Array) -> jax.Array:
    """(3,) the velocity a command speaks of, (vx, vy, yaw rate) in the heading frame, from
    :func:`root_kinematics`' heading-frame linear and angular velocities."""
    return jnp.stack([lin_h[0], lin_h[1], ang_h[2]])


def observe(qpos: jax.Array, qvel: jax.Array, joint_pos_rel: jax.Array, joint_vel: jax.Array,
            command: jax.Array, last_action: jax.Array, pad_force: jax.Array, air_time: jax.Array,
            pad_z: jax.Array, privileged: bool, force_scale: float,
            phase: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """(policy observation, critic observation); the critic's equals the policy's without privilege.
    ``phase``: the gait phase (cycles) when the env has a gait clock, else None."""
    pos, gravity_body, lin_h, ang_h = root_kinematics(qpos, qvel)
    blocks = [gravity_body, lin_h, ang_h, joint_pos_rel, 0.1 * joint_vel, last_action, command]
    if phase is not None:
        blocks.append(gait_clock(phase))
    obs = jnp.concatenate(blocks)
    if not privileged:
        return obs, obs
    priv = jnp.concatenate([pos[2:3], jnp.tanh(pad_force / force_scale), pad_z, air_time])
    return obs, jnp.concatenate([obs, priv])
