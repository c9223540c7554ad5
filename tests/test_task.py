"""The CPU walking task is learnable as configured: the reference posture is within the action's
reach, and standing still does not pay like walking (checked before any tuning)."""

from __future__ import annotations

import numpy as np
import pytest

from wildamp import paths
from wildamp.config import load_config
from wildamp.env import WalkEnv
from wildamp.reference.clip import MotionDataset
from wildamp.reference_data import reference_dataset_path

CPU = paths.CONFIGS_DIR / "cpu.yaml"


@pytest.fixture(scope="module")
def env():
    return WalkEnv(load_config(CPU, ["env.physics=mujoco"]))


def _reference_joints(env) -> np.ndarray:
    ds = MotionDataset.load(reference_dataset_path(env.cfg), joint_names=env.spec.joint_names)
    return np.concatenate([c.joint_pos for c in ds.clips])


def test_reference_frames_are_reachable_by_the_actions(env):
    q = _reference_joints(env)
    a = (q - np.asarray(env.default_joints)) / (env.cfg.env.action_scale * np.asarray(env.action_sign))
    reachable = np.all(np.abs(a) <= 1.0, axis=1)
    assert reachable.mean() >= 0.99, f"only {100 * reachable.mean():.1f} % of reference frames reachable"
    # The straight-legged keyframe would reach none of them (the bug this default fixes).
    home = np.asarray(env.spec.home_qpos)[np.asarray(env.spec.qpos_adr)]
    a_home = (q - home) / (env.cfg.env.action_scale * np.asarray(env.action_sign))
    assert np.all(np.abs(a_home) <= 1.0, axis=1).mean() < 0.01


def test_default_posture_is_the_crouched_reference_stance_on_the_floor(env):
    q = _reference_joints(env)
    np.testing.assert_allclose(np.asarray(env.default_joints), q.mean(0), atol=1e-5)
    from wildamp.env.posture import lowest_pad_point
    assert abs(lowest_pad_point(env.mj_model, np.asarray(env.default_qpos, np.float64), env.pad_ids)) < 1e-5


def test_standing_still_earns_at_most_a_third_of_the_tracking_reward(env):
    sigma = env.cfg.env.tracking_sigma
    slowest = min(c for c in (env.cfg.env.command.forward_range[0],) if c > 0)
    standing = np.exp(-slowest ** 2 / sigma)
    assert standing <= 0.37, f"standing earns {standing:.2f} of the maximum at {slowest} m/s"
    # ... while a robot within 0.03 m/s of the command still earns most of it.
    assert np.exp(-0.03 ** 2 / sigma) >= 0.85


def _reference_foot_heights(env, clip) -> np.ndarray:
    """(T, 2) lowest-pad height above rest of each foot along a reference clip (MuJoCo FK)."""
    import mujoco
    from wildamp.features import clip_qpos
    d = mujoco.MjData(env.mj_model)
    z = []
    for q in clip_qpos(env.frame_ids, clip):
        d.qpos[:] = q
        mujoco.mj_kinematics(env.mj_model, d)
        z.append(d.geom_xpos[np.asarray(env.pad_ids), 2] - env.pad_rest_height)
    z = np.asarray(z)
    from wildamp.robot import PADS_OF_FOOT
    return np.stack([z[:, list(p)].min(1) for p in PADS_OF_FOOT], axis=1)


def test_the_reference_gait_earns_the_gait_clock_reward_and_standing_does_not(env):
    """The clock's period and swing height describe the reference gait: played in phase, the
    reference earns ≥ 0.85 of the feet_phase maximum; standing on both feet earns less than half
    of that (so the term pays for stepping in time, not for standing)."""
    import jax
    import jax.numpy as jnp
    from wildamp.env.rewards import RewardInputs, feet_phase
    ecfg = env.cfg.env
    assert ecfg.gait_period > 0
    ds = MotionDataset.load(reference_dataset_path(env.cfg), joint_names=env.spec.joint_names)
    clip = next(c for c in ds.clips if c.name.startswith("walk_fwd"))
    skip = int(round(ecfg.rsi_skip_seconds * clip.fps))
    heights = _reference_foot_heights(env, clip)[skip:]
    t = np.arange(len(heights)) / clip.fps

    def one(h, phase):
        x = RewardInputs(**{f: None for f in RewardInputs._fields})
        return feet_phase(x._replace(cfg=ecfg, moving_command=jnp.ones(()), foot_height=h, gait_phase=phase))

    per_frame = jax.jit(jax.vmap(one))

    def mean_reward(h: np.ndarray, offset: float) -> float:
        return float(per_frame(jnp.asarray(h), jnp.asarray((t / ecfg.gait_period + offset) % 1.0)).mean())

    offsets = np.linspace(0.0, 1.0, 20, endpoint=False)
    in_phase = max(mean_reward(heights, o) for o in offsets)
    standing = mean_reward(np.zeros_like(heights), 0.0)
    assert in_phase >= 0.85, in_phase
    assert standing <= 0.5 * in_phase, (standing, in_phase)


def test_the_policy_observes_the_gait_phase(env):
    import jax
    import jax.numpy as jnp
    from wildamp.env.observations import gait_clock, obs_size
    assert env.obs_size == obs_size(env.num_joints) + 2
    assert env.spec_dict()["obs_layout"][-1] == ["gait_phase", 2]
    state = jax.jit(env.reset)(jax.random.PRNGKey(0))
    step = jax.jit(env.step)
    for _ in range(7):
        state = step(state, jnp.zeros(env.action_size))
    phase = 7 * env.cfg.env.ctrl_dt / env.cfg.env.gait_period
    np.testing.assert_allclose(np.asarray(state.obs[-2:]), np.asarray(gait_clock(jnp.asarray(phase))), atol=1e-5)
    assert float(state.reward_terms["feet_phase"]) > 0.0


def test_without_a_clock_there_is_no_phase_block_and_no_phase_reward():
    import jax
    import jax.numpy as jnp
    from wildamp.env.observations import obs_size
    env = WalkEnv(load_config(CPU, ["env.physics=mujoco", "env.gait_period=0", "env.rsi_fraction=0"]))
    assert env.obs_size == obs_size(env.num_joints)
    state = jax.jit(env.step)(jax.jit(env.reset)(jax.random.PRNGKey(0)), jnp.zeros(env.action_size))
    assert float(state.reward_terms["feet_phase"]) == 0.0
