"""The CPU walking task is learnable as configured: the reference posture is within the action's
reach, and standing still does not pay like walking (checked before any tuning)."""

from __future__ import annotations

import numpy as np
import pytest

from wildamp import paths
from wildamp.config import load_config
from wildamp.env import WalkEnv
from wildamp.reference.clip import MotionDataset, commanded_clips
from wildamp.reference_data import reference_dataset_path

CPU = paths.CONFIGS_DIR / "cpu.yaml"


@pytest.fixture(scope="module")
def env():
    return WalkEnv(load_config(CPU, ["env.physics=mujoco"]))


def _reference_joints(env, commanded_only: bool = False) -> np.ndarray:
    """Joint angles of every reference frame (``commanded_only``: of the clips whose commanded speed lies in the
    forward command range, the ones a policy is asked to walk like)."""
    ds = MotionDataset.load(reference_dataset_path(env.cfg), joint_names=env.spec.joint_names)
    cmd = env.cfg.env.command
    clips = commanded_clips(ds, cmd.forward_range, cmd.lateral_range) if commanded_only else ds.clips
    return np.concatenate([c.joint_pos for c in clips])


def test_reference_frames_are_reachable_by_the_actions(env):
    for commanded_only, share in ((True, 0.99), (False, 0.95)):
        q = _reference_joints(env, commanded_only)
        a = (q - np.asarray(env.default_joints)) / (env.cfg.env.action_scale * np.asarray(env.action_sign))
        reachable = np.all(np.abs(a) <= 1.0, axis=1)
        # (Every frame of the commanded clips is reachable; the tracked 0.30-0.40 m/s clips, above the
        # command range, flex the hips past it in 5-14 % of their frames.)
        assert reachable.mean() >= share, f"only {100 * reachable.mean():.1f} % of reference frames reachable"
    # The straight-legged keyframe would reach none of them (the bug this default fixes).
    home = np.asarray(env.spec.home_qpos)[np.asarray(env.spec.qpos_adr)]
    a_home = (q - home) / (env.cfg.env.action_scale * np.asarray(env.action_sign))
    assert np.all(np.abs(a_home) <= 1.0, axis=1).mean() < 0.01


def test_default_posture_is_the_crouched_reference_stance_on_the_floor(env):
    q = _reference_joints(env, commanded_only=True)
    np.testing.assert_allclose(np.asarray(env.default_joints), q.mean(0), atol=1e-5)
    from wildamp.env.posture import lowest_pad_point
    assert abs(lowest_pad_point(env.mj_model, np.asarray(env.default_qpos, np.float64), env.pad_ids)) < 1e-5


def test_standing_still_earns_at_most_a_third_of_the_tracking_reward(env):
    sigma = env.cfg.env.tracking_sigma
    slowest = min(c for c in (env.cfg.env.command.forward_range[0],) if c > 0)
    standing = np.exp(-slowest ** 2 / sigma)
    assert standing <= 0.37, f"standing earns {standing:.2f} of the maximum at {slowest} m/s"
    # ... a robot within 0.01 m/s of the command still earns nearly all of it, while 0.03 m/s off (the
    # gap between neighbouring reference speeds is 0.05) already costs a third: the gait is pinned to
    # the commanded speed, the speed its style is judged at.
    assert np.exp(-0.01 ** 2 / sigma) >= 0.95
    assert np.exp(-0.03 ** 2 / sigma) <= 0.7


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
    """The clock's period, swing height and swing fraction describe the reference gait: played in
    phase, every commanded reference clip (the gait as the robot performs it: its feet swing lower
    than the generator's plan, each for about a third of the cycle, with both feet down in between)
    earns ≥ 0.78 of the feet_phase maximum (measured 0.80-0.84 with the configured 2.5 cm over 0.33
    of the cycle; 0.66 with a swing over the whole half cycle, 0.56 at the plan's 4 cm; 0.72 for the
    irregular 0.25 m/s clip the tracker kept before it asked for regular steps); standing on both
    feet earns at most 0.7 of that (so the term pays for stepping in time, not for standing)."""
    import jax
    import jax.numpy as jnp
    from wildamp.env.rewards import RewardInputs, feet_phase
    ecfg = env.cfg.env
    assert ecfg.gait_period > 0
    ds = MotionDataset.load(reference_dataset_path(env.cfg), joint_names=env.spec.joint_names)
    clips = commanded_clips(ds, ecfg.command.forward_range, ecfg.command.lateral_range)
    assert len(clips) == 4

    def one(h, phase):
        x = RewardInputs(**{f: None for f in RewardInputs._fields})
        return feet_phase(x._replace(cfg=ecfg, moving_command=jnp.ones(()), foot_height=h, gait_phase=phase))

    per_frame = jax.jit(jax.vmap(one))

    def mean_reward(h: np.ndarray, t: np.ndarray, offset: float) -> float:
        return float(per_frame(jnp.asarray(h), jnp.asarray((t / ecfg.gait_period + offset) % 1.0)).mean())

    offsets = np.linspace(0.0, 1.0, 20, endpoint=False)
    for clip in clips:
        heights = _reference_foot_heights(env, clip)[int(round(ecfg.rsi_skip_seconds * clip.fps)):]
        t = np.arange(len(heights)) / clip.fps
        in_phase = max(mean_reward(heights, t, o) for o in offsets)
        standing = mean_reward(np.zeros_like(heights), t, 0.0)
        assert in_phase >= 0.78, (clip.name, in_phase)
        assert standing <= 0.7 * in_phase, (clip.name, standing, in_phase)


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


def _tracking_reward_along(env, clip, window_steps: int) -> float:
    """Mean ``tracking_lin_vel`` a robot moving exactly like ``clip`` earns at the clip's speed, its
    heading-frame velocity averaged over the last ``window_steps`` control steps (1 = none)."""
    import jax
    import jax.numpy as jnp
    from wildamp.env.rewards import RewardInputs, tracking_lin_vel
    from wildamp.quat import yaw_of
    yaw = np.unwrap(yaw_of(clip.root_quat))[1:]
    v = np.diff(clip.root_pos[:, :2], axis=0) * clip.fps
    heading_v = np.stack([v[:, 0] * np.cos(yaw) + v[:, 1] * np.sin(yaw),
                          -v[:, 0] * np.sin(yaw) + v[:, 1] * np.cos(yaw)], axis=1)
    kernel = np.ones(window_steps) / window_steps
    window = np.stack([np.convolve(heading_v[:, i], kernel, "valid") for i in range(2)], axis=1)
    command = jnp.asarray([clip.meta["speed"], clip.meta["lateral_speed"], 0.0])
    x = RewardInputs(**{f: None for f in RewardInputs._fields})._replace(cfg=env.cfg.env, command=command)
    reward = jax.vmap(lambda w: tracking_lin_vel(x._replace(window_vel=jnp.concatenate([w, jnp.zeros(1)]))))
    skip = int(round(2.0 * clip.fps))                                  # the clips ramp up from standing
    return float(reward(jnp.asarray(window[skip:], jnp.float32)).mean())


def test_a_steady_reference_gait_earns_the_tracking_reward_at_its_own_speed(env):
    """A stride surges and sways (the embedded gait sideways at 0.27 m/s std): judged step by step, the
    generator's steady gait would earn a tenth of the sharp tracking reward (a policy would be paid to
    glide without swaying); averaged over the velocity window it earns nearly all of it."""
    from wildamp.reference.generator import ensure_default_reference
    ds = MotionDataset.load(ensure_default_reference(paths.DEFAULT_REFERENCE), joint_names=env.spec.joint_names)
    lo, hi = env.cfg.env.command.forward_range
    clips = [c for c in ds.clips if lo <= c.meta["speed"] <= hi and c.meta.get("lateral_speed", 0.0) == 0.0]
    assert len(clips) >= 3
    assert env.window_steps == round(env.cfg.env.velocity_window_seconds / env.cfg.env.ctrl_dt) > 1
    for clip in clips:
        windowed = _tracking_reward_along(env, clip, env.window_steps)
        per_step = _tracking_reward_along(env, clip, 1)
        assert windowed >= 0.95, (clip.name, windowed)
        assert per_step <= 0.15, (clip.name, per_step)


def test_the_tracking_reward_compares_the_command_with_the_windowed_velocity(env):
    import jax
    import jax.numpy as jnp
    from wildamp.env.observations import obs_slice
    state = jax.jit(env.reset)(jax.random.PRNGKey(3))
    step = jax.jit(env.step)
    lin, ang = obs_slice("lin_vel_heading", env.num_joints), obs_slice("ang_vel_heading", env.num_joints)
    adr = np.asarray(env.qpos_adr)
    recent = [np.array([state.obs[lin][0], state.obs[lin][1], state.obs[ang][2]])] * env.window_steps
    joints = [np.asarray(state.physics.qpos)[adr]] * env.window_steps
    for _ in range(10):
        state = step(state, 0.3 * jnp.ones(env.action_size))
        recent = recent[1:] + [np.array([state.obs[lin][0], state.obs[lin][1], state.obs[ang][2]])]
        joints = joints[1:] + [np.asarray(state.physics.qpos)[adr]]
    expected = np.mean(recent, axis=0)
    np.testing.assert_allclose(np.asarray(state.window_vel), expected, atol=1e-5)
    err = np.sum((np.asarray(state.command[:2]) - expected[:2]) ** 2)
    assert float(state.reward_terms["tracking_lin_vel"]) == pytest.approx(np.exp(-err / env.cfg.env.tracking_sigma),
                                                                          rel=1e-3)
    # The posture held over the window, not the stride's swing, is what pose_mean charges for.
    offset = np.sum(((np.mean(joints, axis=0) - np.asarray(env.default_joints)) / np.asarray(env.joint_spread)) ** 2)
    q = _reference_joints(env, commanded_only=True)
    np.testing.assert_allclose(np.asarray(env.joint_spread), np.maximum(q.std(0), env.cfg.env.pose_spread_floor),
                               rtol=1e-5)
    assert offset > 1e-3
    assert float(state.reward_terms["pose_mean"]) == pytest.approx(offset, rel=1e-3)


def test_the_base_height_target_is_the_reference_gaits_own(env):
    ds = MotionDataset.load(reference_dataset_path(env.cfg), joint_names=env.spec.joint_names)
    from wildamp.reference.clip import commanded_clips
    clips = commanded_clips(ds, env.cfg.env.command.forward_range, env.cfg.env.command.lateral_range)
    skip = int(round(env.cfg.env.rsi_skip_seconds * clips[0].fps))
    height = np.concatenate([c.root_pos[skip:, 2] for c in clips]).mean()
    assert abs(env.cfg.env.base_height_target - height) < 0.002, height


def test_swing_targets_alternate_with_a_double_support_between_short_swings():
    """Each foot swings along a half sine for ``swing_fraction`` of the cycle (left from phase 0,
    right from 0.5) and is down otherwise; 0.5 is the plain alternating half sine."""
    import jax.numpy as jnp
    from wildamp.env.rewards import swing_height_targets
    phase = np.linspace(0.0, 1.0, 200, endpoint=False)
    half = np.stack([swing_height_targets(jnp.asarray(p), 0.04, 0.5) for p in phase])
    s = np.sin(2 * np.pi * phase)
    np.testing.assert_allclose(half, 0.04 * np.stack([np.maximum(s, 0), np.maximum(-s, 0)], 1), atol=1e-6)
    short = np.stack([swing_height_targets(jnp.asarray(p), 0.04, 0.3) for p in phase])
    both_down = (short[:, 0] == 0) & (short[:, 1] == 0)
    np.testing.assert_allclose(both_down.mean(), 0.4, atol=0.02)
    assert np.all(short[(phase > 0.3) & (phase < 0.5)] == 0.0)
    np.testing.assert_allclose(short[phase == 0.15, 0], 0.04, atol=1e-6)
    np.testing.assert_allclose(short[phase == 0.65, 1], 0.04, atol=1e-6)
    assert np.all(short[phase < 0.5, 1] == 0.0) and np.all(short[phase >= 0.5, 0] == 0.0)
