"""MJX walking env: shapes, frames, terminations vs truncation, auto-reset, reward terms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wildamp import paths
from wildamp.config import REWARD_TERMS, load_config
from wildamp.env import WalkEnv, quat_from_yaw, quat_rotate_inv

N = 4


@pytest.fixture(scope="module")
def env() -> WalkEnv:
    # Short episodes and a short command timer so truncation and resampling happen within the test.
    cfg = load_config(paths.CONFIGS_DIR / "smoke.yaml",
                      ["env.episode_seconds=0.2", "env.command.resample_seconds=0.1",
                       "env.command.standing_fraction=0.0", "env.command.lateral_range=[-0.2, 0.2]"])
    return WalkEnv(cfg)


@pytest.fixture(scope="module")
def fns(env):
    return jax.jit(jax.vmap(env.reset)), jax.jit(jax.vmap(env.step))


def test_reset_and_step_shapes_and_finiteness(env, fns):
    reset, step = fns
    s = reset(jax.random.split(jax.random.PRNGKey(0), N))
    assert s.obs.shape == (N, env.obs_size) and s.critic_obs.shape == (N, env.critic_obs_size)
    s2 = step(s, jnp.zeros((N, env.action_size)))
    for name in ("obs", "critic_obs", "reward", "amp_sample"):
        x = np.asarray(getattr(s2, name))
        assert np.isfinite(x).all(), name
    assert s2.amp_sample.shape == (N, env.amp_sample_size)
    # The first transition of an episode has no complete (s_t, s_t+1) history yet: masked.
    assert np.all(np.asarray(s2.amp_valid) == 0)
    s3 = step(s2, jnp.zeros((N, env.action_size)))
    assert np.all(np.asarray(s3.amp_valid) == 1)


def test_projected_gravity_is_down_at_any_yaw():
    for yaw in np.linspace(-3.0, 3.0, 7):
        g = quat_rotate_inv(quat_from_yaw(jnp.asarray(yaw)), jnp.array([0.0, 0.0, -1.0]))
        np.testing.assert_allclose(np.asarray(g), [0, 0, -1], atol=1e-6)


def test_observation_gravity_upright_after_reset(env, fns):
    reset, _ = fns
    s = reset(jax.random.split(jax.random.PRNGKey(1), N))  # random yaw per env
    np.testing.assert_allclose(np.asarray(s.obs[:, :3]), np.tile([0, 0, -1.0], (N, 1)), atol=1e-6)


def test_truncation_is_not_termination_and_autoreset_resamples_command(env, fns):
    reset, step = fns
    s = reset(jax.random.split(jax.random.PRNGKey(2), N))
    cmd0 = np.asarray(s.command)
    for _ in range(env.episode_steps):
        s = step(s, jnp.zeros((N, env.action_size)))
    truncated = np.asarray(s.truncated)
    assert truncated.all(), "standing still for the whole episode must end by the time limit"
    assert not np.asarray(s.terminated).any(), "a time limit is not a termination"
    # Auto-reset: the step counter restarts, the return starts again from 0, a new command is drawn.
    assert np.all(np.asarray(s.step_count) == 0)
    assert np.all(np.asarray(s.episode_return) == 0.0)
    assert not np.allclose(np.asarray(s.command), cmd0)


def test_truncated_transition_keeps_the_true_last_state_for_bootstrapping():
    # Long command timer: the command cannot change inside the episode, so the same transition
    # stepped with and without the time limit must agree on everything but the reset.
    cfg = load_config(paths.CONFIGS_DIR / "smoke.yaml",
                      ["env.episode_seconds=0.1", "env.command.resample_seconds=100.0"])
    env = WalkEnv(cfg)
    reset, step = jax.jit(env.reset), jax.jit(env.step)
    s = reset(jax.random.PRNGKey(5))
    a = jnp.full((env.action_size,), 0.1)
    for _ in range(env.episode_steps - 1):
        s = step(s, a)
    last = step(s, a)                                  # hits the time limit, auto-resets
    free = step(s._replace(step_count=jnp.zeros((), jnp.int32)), a)   # same transition, no limit
    assert bool(last.truncated) and not bool(last.terminated) and not bool(free.truncated)
    np.testing.assert_array_equal(np.asarray(last.final_critic_obs), np.asarray(free.critic_obs))
    np.testing.assert_array_equal(np.asarray(last.reward), np.asarray(free.reward))
    np.testing.assert_array_equal(np.asarray(last.amp_sample), np.asarray(free.amp_sample))
    # ... while the returned state is the next episode's first state.
    assert int(last.step_count) == 0
    assert not np.allclose(np.asarray(last.physics.qpos), np.asarray(free.physics.qpos))
    assert float(last.amp_valid) == float(free.amp_valid) == 1.0
    assert int(last.history.count) == 0            # the AMP history restarts empty


def test_fall_terminates(env, fns):
    reset, step = fns
    s = reset(jax.random.split(jax.random.PRNGKey(3), N))
    # Tip every robot over by 90 degrees about x: orientation limit exceeded on the next step.
    q = jnp.array([np.cos(np.pi / 4), np.sin(np.pi / 4), 0.0, 0.0])
    data = s.physics.replace(qpos=s.physics.qpos.at[:, 3:7].set(q))
    s = s._replace(physics=data)
    s2 = step(s, jnp.zeros((N, env.action_size)))
    assert np.asarray(s2.terminated).all()
    assert not np.asarray(s2.truncated).any()
    assert np.all(np.asarray(s2.reward_terms["termination"]) == 1.0)


def test_nonfinite_physics_state_is_flagged_and_reset(env, fns):
    reset, step = fns
    s = reset(jax.random.split(jax.random.PRNGKey(7), N))
    s = s._replace(physics=s.physics.replace(qvel=s.physics.qvel.at[0, 0].set(jnp.nan)))
    s2 = step(s, jnp.zeros((N, env.action_size)))
    assert np.asarray(s2.nonfinite).tolist() == [True, False, False, False]
    assert bool(s2.terminated[0])
    assert np.isfinite(np.asarray(s2.physics.qpos)).all()  # the diverged env was reset


def test_every_configured_reward_term_is_computed(env, fns):
    reset, step = fns
    s = reset(jax.random.split(jax.random.PRNGKey(4), N))
    s = step(s, jax.random.uniform(jax.random.PRNGKey(5), (N, env.action_size), minval=-1, maxval=1))
    assert set(s.reward_terms) == set(REWARD_TERMS)
    total = sum(env.reward_weights[k] * np.asarray(s.reward_terms[k]) for k in REWARD_TERMS)
    np.testing.assert_allclose(np.asarray(s.reward), total, rtol=1e-5, atol=1e-6)
    # Random actions move the joints: the action-rate and torque terms are live, not constant zeros.
    assert np.all(np.asarray(s.reward_terms["action_rate"]) > 0)
    assert np.all(np.asarray(s.reward_terms["torques"]) > 0)


def test_physics_foot_contacts_carry_the_robot(env, fns):
    reset, step = fns
    s = reset(jax.random.split(jax.random.PRNGKey(6), N))
    for _ in range(5):
        s = step(s, jnp.zeros((N, env.action_size)))
    f = np.asarray(s.prev_frame.contact_force)          # (N, 4) pad normal forces
    mg = env.total_mass * 9.81
    np.testing.assert_allclose(f.sum(-1), mg, rtol=0.1)
    assert np.asarray(s.feet_contact).all()


def test_domain_randomisation_changes_the_physics_per_episode():
    cfg = load_config(paths.CONFIGS_DIR / "smoke.yaml",
                      ["env.domain_randomization.enabled=true",
                       "env.domain_randomization.mass_scale_range=[0.8, 1.2]",
                       "env.domain_randomization.friction_range=[0.5, 1.5]",
                       "env.domain_randomization.kp_scale_range=[0.7, 1.3]"])
    env = WalkEnv(cfg)
    n = 8
    s = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(8), n))
    dr = np.asarray(s.dr)
    assert dr.shape == (n, 3) and len(np.unique(dr[:, 1])) == n
    for j, (lo, hi) in enumerate([(0.5, 1.5), (0.8, 1.2), (0.7, 1.3)]):
        assert np.all((dr[:, j] >= lo) & (dr[:, j] <= hi))
    step = jax.jit(jax.vmap(env.step))
    for _ in range(5):
        s = step(s, jnp.zeros((n, env.action_size)))
    # The floor carries each robot's own (randomised) weight: the mass really changed in the physics.
    support = np.asarray(s.prev_frame.contact_force).sum(-1)
    np.testing.assert_allclose(support, env.total_mass * 9.81 * dr[:, 1], rtol=0.1)
    from wildamp.env.backends import randomized_mjx_model
    m = randomized_mjx_model(env.backend.mjx_model, jnp.asarray([1.0, 1.0, 1.3]))
    np.testing.assert_allclose(np.asarray(m.actuator_gainprm[:, 0]), 1.3 * 21.1, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(m.actuator_biasprm[:, 1]), -1.3 * 21.1, rtol=1e-6)
