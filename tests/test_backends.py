"""Physics backends: MuJoCo C (host, threaded rollout) and MJX agree; the C path is deterministic;
reference-state initialisation starts inside the reference distribution."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wildamp import paths
from wildamp.config import load_config
from wildamp.env import WalkEnv

SMOKE = paths.CONFIGS_DIR / "smoke.yaml"
POSTURE = ["env.default_pose=reference_mean", "env.reset_noise_qpos=0.0", "env.reset_noise_qvel=0.0",
           "env.episode_seconds=100.0", "env.command.resample_seconds=100.0"]


@pytest.fixture(scope="module")
def envs():
    return {b: WalkEnv(load_config(SMOKE, POSTURE + [f"env.physics={b}"])) for b in ("mjx", "mujoco")}


def _physics_rollout(env, qpos, qvel, targets):
    """Root position, joints and pad forces after each control step of a joint-target sequence."""
    def one(carry, ctrl):
        st, _ = env.backend.step(carry, ctrl, jnp.ones(3))
        return st, None

    def run(qpos, qvel, targets):
        st, _ = env.backend.initial(qpos, qvel, targets[0])

        def body(st, ctrl):
            st, pf = env.backend.step(st, ctrl, jnp.ones(3))
            return st, (pf.qpos, pf.pad_force)
        return jax.lax.scan(body, st, targets)[1]
    return jax.jit(run)(qpos, qvel, targets)


def test_standing_5s_agrees_between_backends(envs):
    e = envs["mjx"]
    steps = int(5.0 / e.cfg.env.ctrl_dt)
    targets = jnp.tile(e.default_joints, (steps, 1))
    out = {b: _physics_rollout(env, env.default_qpos, jnp.zeros(env.mj_model.nv), targets)
           for b, env in envs.items()}
    (q_m, f_m), (q_c, f_c) = out["mjx"], out["mujoco"]
    np.testing.assert_allclose(q_c[-1, :3], q_m[-1, :3], atol=0.005)          # root position, m
    np.testing.assert_allclose(q_c[-1, 7:], q_m[-1, 7:], atol=0.01)           # joints, rad
    weight = e.total_mass * 9.81
    # Standing: the four pads carry the robot's weight on both backends (within 2 %).
    assert abs(float(f_c[-50:].sum(-1).mean()) / weight - 1) < 0.02
    assert abs(float(f_m[-50:].sum(-1).mean()) / weight - 1) < 0.02
    np.testing.assert_allclose(f_c[-50:].mean(0), f_m[-50:].mean(0), atol=0.05 * weight)


def test_pd_tracking_of_a_reference_clip_agrees_between_backends(envs):
    e = envs["mujoco"]
    from wildamp.env.posture import rsi_table
    from wildamp.reference.clip import MotionDataset
    from wildamp.reference_data import reference_dataset_path
    ds = MotionDataset.load(reference_dataset_path(e.cfg), joint_names=e.spec.joint_names)
    table = rsi_table(ds.__class__(clips=[ds.clips[1]], joint_names=ds.joint_names, fps=ds.fps),
                      e.frame_ids, 1.0, (0.0, 1.0), (0.0, 0.0))
    stride = int(round(e.cfg.env.ctrl_dt * ds.fps))
    steps = int(2.0 / e.cfg.env.ctrl_dt)
    targets = table.qpos[1:1 + steps * stride:stride][:, np.asarray(e.spec.qpos_adr)]
    out = {b: _physics_rollout(env, table.qpos[0], table.qvel[0], targets) for b, env in envs.items()}
    (q_m, f_m), (q_c, f_c) = out["mjx"], out["mujoco"]
    print("max |root diff| m:", np.abs(q_c[:, :3] - q_m[:, :3]).max(0), "max |joint diff| rad:", np.abs(q_c[:, 7:] - q_m[:, 7:]).max())
    np.testing.assert_allclose(q_c[:, :3], q_m[:, :3], atol=0.05)             # root path, m (contact-rich: trajectories separate slowly)
    np.testing.assert_allclose(q_c[:, 7:], q_m[:, 7:], atol=0.08)             # joints, rad
    # Contact timing: the foot in contact (force > 2 N) agrees on >= 90 % of steps.
    c_m = np.stack([f_m[:, :2].sum(-1), f_m[:, 2:].sum(-1)], -1) > 2.0
    c_c = np.stack([f_c[:, :2].sum(-1), f_c[:, 2:].sum(-1)], -1) > 2.0
    assert (c_m == c_c).mean() >= 0.9
    assert float(q_c[-1, 0] - q_c[0, 0]) > 0.1                               # it walked forward


def test_env_quantities_are_identical_for_the_same_physics_state(envs):
    # Resets compute everything from (qpos, qvel) with the same JAX code: identical on both backends.
    r = {b: jax.jit(env.reset)(jax.random.PRNGKey(3)) for b, env in envs.items()}
    for name in ("obs", "critic_obs", "command"):
        np.testing.assert_array_equal(np.asarray(getattr(r["mjx"], name)), np.asarray(getattr(r["mujoco"], name)))
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                 r["mjx"].prev_frame, r["mujoco"].prev_frame)


def test_mujoco_backend_is_deterministic_and_batched_like_single(envs):
    env = envs["mujoco"]
    n = 6
    reset, step = jax.jit(jax.vmap(env.reset)), jax.jit(jax.vmap(env.step))
    acts = jax.random.uniform(jax.random.PRNGKey(1), (5, n, env.action_size), minval=-1, maxval=1)

    def run():
        s = reset(jax.random.split(jax.random.PRNGKey(0), n))
        for a in acts:
            s = step(s, a)
        return s
    a, b = run(), run()
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)
    # An env stepped alone gives the same result as inside the batch (no cross-talk between envs).
    s1 = jax.jit(env.reset)(jax.random.split(jax.random.PRNGKey(0), n)[2])
    for x in acts:
        s1 = jax.jit(env.step)(s1, x[2])
    np.testing.assert_array_equal(np.asarray(s1.physics.qpos), np.asarray(a.physics.qpos[2]))


def test_mujoco_backend_refuses_domain_randomisation():
    cfg = load_config(SMOKE, ["env.physics=mujoco", "env.domain_randomization.enabled=true"])
    with pytest.raises(ValueError, match="domain_randomization"):
        WalkEnv(cfg)


def test_rsi_resets_start_inside_the_reference_distribution():
    cfg = load_config(SMOKE, ["env.physics=mujoco", "env.default_pose=reference_mean",
                              "env.rsi_fraction=1.0", "env.command.forward_range=[0.1, 0.25]"])
    env = WalkEnv(cfg)
    s = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), 64))
    # The command is the clip's speed; the AMP history starts empty (no sample spans the reset).
    assert set(np.round(np.asarray(s.command[:, 0], np.float64), 3).tolist()) <= {0.1, 0.15, 0.2, 0.25}
    assert np.all(np.asarray(s.history.count) == 0)
    # One step later the first AMP features lie inside the reference's range.
    s2 = jax.jit(jax.vmap(env.step))(s, jnp.zeros((64, env.action_size)))
    from wildamp.reference_data import load_reference_features
    ref = load_reference_features(cfg, env.mj_model, env.spec)
    phi = np.asarray(s2.history.frames[:, -1])                      # (n, F) newest frame
    f = phi.shape[1]   # the sample's newest frame: its last f channels
    z = np.abs((phi - ref.normalizer.mean[-f:]) / ref.normalizer.std[-f:])
    kept = np.asarray(ref.normalizer.keep[-f:], bool)
    assert np.median(z[:, kept]) < 1.0 and np.quantile(z[:, kept], 0.95) < 4.0
    # Root pose from the clip: crouched walking height, not the straight-legged keyframe.
    assert np.all(np.abs(np.asarray(s.physics.qpos[:, 2]) - 0.44) < 0.03)
