"""Task-reward terms: one small pure function per term, one registry.

Each term maps a :class:`RewardInputs` (everything a term may read about one transition) to a
scalar. The registry :data:`REWARD_TERMS` (name → function, in summation order) is the one home of
the term list: the config's ``reward_weights`` section, the ``reward/<term>`` metric declarations
and the YAML checks are all derived from it. The task reward is Σ weight·term.

Adding a term: write ``@reward_term def my_term(x: RewardInputs) -> jax.Array`` here and add
``my_term: <weight>`` under ``reward_weights`` in every YAML in ``configs/`` (a missing or unknown
weight is a config error).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class RewardInputs(NamedTuple):
    """One transition as the reward terms see it (heading frame = yaw removed)."""
    cfg: Any                    # EnvConfig (static)
    command: jax.Array          # (3,) vx, vy, yaw rate of the transition
    lin_vel_heading: jax.Array  # (3,) root linear velocity
    ang_vel_heading: jax.Array  # (3,) root angular velocity
    window_vel: jax.Array       # (3,) vx, vy, yaw rate averaged over env.velocity_window_seconds
    gravity_body: jax.Array     # (3,) unit gravity in the body frame
    base_height: jax.Array      # () root height (m)
    action: jax.Array           # (J,) this step's action
    last_action: jax.Array      # (J,) previous step's action
    joint_pos: jax.Array        # (J,)
    joint_vel: jax.Array        # (J,)
    default_joint_pos: jax.Array  # (J,) the env's default posture (pose-penalty target)
    window_joint_pos: jax.Array   # (J,) joint positions averaged over the velocity window
    joint_spread: jax.Array       # (J,) the reference's per-joint std about its mean posture (1 without one)
    actuator_force: jax.Array   # (J,)
    air_time: jax.Array         # (2,) seconds each foot has been in the air, including this step
    first_contact: jax.Array    # (2,) bool: the foot touched down in this step
    pad_contact: jax.Array      # (P,) bool: pad carries more than the contact threshold
    pad_vel: jax.Array          # (P, 3) pad velocities (finite difference)
    foot_height: jax.Array      # (2,) lowest pad of each foot above its resting height (m)
    gait_phase: jax.Array       # () gait-clock phase in cycles [0, 1) (0 without a clock)
    moving_command: jax.Array   # () bool: the command asks for motion
    terminated: jax.Array       # () bool


RewardFn = Callable[[RewardInputs], jax.Array]
_REGISTRY: dict[str, RewardFn] = {}


def reward_term(fn: RewardFn) -> RewardFn:
    """Register ``fn`` as the reward term named after the function (summation order = definition order)."""
    if fn.__name__ in _REGISTRY:
        raise ValueError(f"reward term {fn.__name__!r} registered twice")
    _REGISTRY[fn.__name__] = fn
    return fn


@reward_term
def tracking_lin_vel(x: RewardInputs) -> jax.Array:
    """exp(−|cmd_xy − v̄_xy|² / σ): 1 when the planar velocity, averaged over the velocity window
    (a stride's surge and sway are part of walking, not tracking errors), matches the command."""
    return jnp.exp(-jnp.sum((x.command[:2] - x.window_vel[:2]) ** 2) / x.cfg.tracking_sigma)


@reward_term
def tracking_ang_vel(x: RewardInputs) -> jax.Array:
    """exp(−(cmd_yaw − ω̄_z)² / σ) with the yaw rate averaged over the velocity window."""
    return jnp.exp(-((x.command[2] - x.window_vel[2]) ** 2) / x.cfg.tracking_sigma)


@reward_term
def lin_vel_z(x: RewardInputs) -> jax.Array:
    return x.lin_vel_heading[2] ** 2


@reward_term
def ang_vel_xy(x: RewardInputs) -> jax.Array:
    return jnp.sum(x.ang_vel_heading[:2] ** 2)


@reward_term
def orientation(x: RewardInputs) -> jax.Array:
    return jnp.sum(x.gravity_body[:2] ** 2)


@reward_term
def base_height(x: RewardInputs) -> jax.Array:
    return (x.base_height - x.cfg.base_height_target) ** 2


@reward_term
def action_rate(x: RewardInputs) -> jax.Array:
    return jnp.sum((x.action - x.last_action) ** 2)


@reward_term
def torques(x: RewardInputs) -> jax.Array:
    return jnp.sum(x.actuator_force ** 2)


@reward_term
def energy(x: RewardInputs) -> jax.Array:
    return jnp.sum(jnp.abs(x.actuator_force * x.joint_vel))


@reward_term
def feet_air_time(x: RewardInputs) -> jax.Array:
    """At each touchdown, air time minus the target (paid only while a motion is commanded)."""
    return jnp.sum((x.air_time - x.cfg.feet_air_time_target) * x.first_contact) * x.moving_command


@reward_term
def feet_slip(x: RewardInputs) -> jax.Array:
    return jnp.sum(x.pad_contact * jnp.sum(x.pad_vel[:, :2] ** 2, axis=-1))


@reward_term
def pose(x: RewardInputs) -> jax.Array:
    return jnp.sum((x.joint_pos - x.default_joint_pos) ** 2)


@reward_term
def pose_mean(x: RewardInputs) -> jax.Array:
    """Σ ((joint position averaged over the velocity window − default posture) / reference spread)²:
    a posture offset held through the gait cycle (a twisted waist, a taller stance), not the stride's
    own swing, in units of how far the reference itself strays on each joint."""
    return jnp.sum(((x.window_joint_pos - x.default_joint_pos) / x.joint_spread) ** 2)


def swing_height_targets(phase: jax.Array, swing_height: float, swing_fraction: float = 0.5) -> jax.Array:
    """(2,) target height of the (left, right) foot at gait ``phase``: the left foot swings from phase
    0 and the right from phase 0.5, each along a half sine lasting ``swing_fraction`` of the cycle;
    otherwise the foot is down (with a fraction below 0.5 both feet are down between the swings)."""
    since_lift = jnp.stack([phase, phase - 0.5]) % 1.0
    s = since_lift / swing_fraction
    return swing_height * jnp.where(s < 1.0, jnp.sin(jnp.pi * jnp.clip(s, 0.0, 1.0)), 0.0)


@reward_term
def feet_phase(x: RewardInputs) -> jax.Array:
    """exp(−Σ_feet (height − target(phase))² / (swing_height/2)²): alternating single support on the
    gait clock (1 when both feet follow their schedule); 0 without a clock or a moving command."""
    if x.cfg.gait_period <= 0.0:
        return jnp.zeros(())
    err = x.foot_height - swing_height_targets(x.gait_phase, x.cfg.swing_height, x.cfg.swing_fraction)
    return jnp.exp(-jnp.sum(err ** 2) / (0.5 * x.cfg.swing_height) ** 2) * x.moving_command


@reward_term
def alive(x: RewardInputs) -> jax.Array:
    return jnp.ones(())


@reward_term
def termination(x: RewardInputs) -> jax.Array:
    return x.terminated.astype(jnp.float32)


REWARD_TERMS: Mapping[str, RewardFn] = _REGISTRY
"""Every task-reward term by name, in summation order (the one list; everything else derives from it)."""


def reward_terms(x: RewardInputs) -> dict[str, jax.Array]:
    """All unweighted terms of a transition (non-finite values read as 0)."""
    terms = {k: fn(x) for k, fn in REWARD_TERMS.items()}
    return {k: jnp.where(jnp.isfinite(v), v, 0.0) for k, v in terms.items()}


def weighted_sum(terms: Mapping[str, jax.Array], weights: Mapping[str, float]) -> jax.Array:
    """Σ w_k·r_k in registry order. Deliberately per step, not multiplied by ctrl_dt: with dt the
    per-step rewards are ~1e-3 and the critic's initial errors drown the advantages."""
    return sum(weights[k] * terms[k] for k in REWARD_TERMS)
