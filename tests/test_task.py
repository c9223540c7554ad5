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
