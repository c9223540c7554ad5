"""Speed-conditioned discriminator input (wildamp.amp.condition) and its use in a training iteration."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wildamp import paths
from wildamp.amp.condition import build_speed_condition
from wildamp.config import load_config

CLIPS = np.array([[0.10, 0.0], [0.15, 0.0], [0.20, 0.0], [0.25, 0.0]])


def test_cells_split_the_range_halfway_between_clip_speeds():
    c = build_speed_condition(CLIPS, (0.10, 0.25), (0.0, 0.0))
    assert c.axes == (0,) and c.size == 1          # the single-valued lateral range carries nothing
    np.testing.assert_allclose(c.cell_lo[:, 0], [0.10, 0.125, 0.175, 0.225], atol=1e-7)
    np.testing.assert_allclose(c.cell_hi[:, 0], [0.125, 0.175, 0.225, 0.25], atol=1e-7)
    np.testing.assert_allclose(np.asarray(c.scale(jnp.array([[0.10, 0, 0], [0.25, 0, 0], [0.175, 0, 0]]))),
                               [[-1.0], [1.0], [0.0]], atol=1e-6)


def test_reference_conditions_lie_in_their_clip_cell_and_cover_the_range_uniformly():
    c = build_speed_condition(CLIPS, (0.10, 0.25), (0.0, 0.0))
    clip_index = np.repeat(np.arange(4), 50)
    samples = jnp.asarray(clip_index[:, None] * np.ones((1, 3)), jnp.float32)   # a sample names its clip
    rows = np.concatenate([np.asarray(c.reference_rows(jax.random.PRNGKey(i), samples, jnp.asarray(clip_index)))
                           for i in range(40)])
    assert rows.shape == (40 * 200, 4)
    clip = rows[:, 0].astype(int)
    speed = 0.10 + (rows[:, -1] + 1.0) / 2.0 * 0.15
    assert np.all(speed >= c.cell_lo[clip, 0] - 1e-6) and np.all(speed <= c.cell_hi[clip, 0] + 1e-6)
    # Uniform over the range: drawn per clip only (equal samples per clip), the end cells, half as wide,
    # would hold as many conditions as the middle ones and their density would double.
    hist, _ = np.histogram(rows[:, -1], bins=6, range=(-1, 1))
    frac = hist / hist.sum()
    np.testing.assert_allclose(frac, 1 / 6, atol=0.02)


def test_condition_refuses_nothing_to_condition_on_and_clips_outside_the_range():
    with pytest.raises(ValueError, match="single values"):
        build_speed_condition(CLIPS, (0.2, 0.2), (0.0, 0.0))
    with pytest.raises(ValueError, match="no reference clip"):
        build_speed_condition(np.array([[0.3, 0], [0.4, 0]]), (0.1, 0.25), (0.0, 0.0))


def test_clips_outside_the_command_range_are_never_drawn():
    c = build_speed_condition(np.array([[0.1, 0], [0.4, 0], [0.2, 0]]), (0.1, 0.25), (0.0, 0.0))
    np.testing.assert_allclose(c.cell_lo[:, 0], [0.10, 0.4, 0.15], atol=1e-7)
    np.testing.assert_allclose(c.cell_hi[:, 0], [0.15, 0.4, 0.25], atol=1e-7)
    w = np.asarray(c.clip_weights(np.array([0, 1, 1, 2])))
    assert w[1] == w[2] == 0.0 and w.sum() == pytest.approx(1.0) and w[3] == pytest.approx(2 * w[0])


def test_a_conditioned_training_iteration_feeds_the_command_to_the_discriminator():
    from wildamp.train import Trainer
    cfg = load_config(paths.CONFIGS_DIR / "smoke.yaml",
                      ["amp.condition_on_command=true", "env.physics=mujoco", "trainer.iterations=1"])
    tr = Trainer.build(cfg)
    assert tr.condition is not None and tr.amp_input_size == tr.feature_normalizer.out_dim + 1
    assert tr.spec()["amp_condition_axes"] == [0]
    state = tr.init_state()
    kernels = [leaf.shape for leaf in jax.tree_util.tree_leaves(state.disc.params) if leaf.ndim == 2]
    assert (tr.amp_input_size, cfg.amp.discriminator_hidden[0]) in kernels
    new_state, metrics = jax.jit(tr.iteration)(state, tr.reference)
    assert math.isfinite(float(metrics["amp/disc_loss"]))
    # The rows the update stored are this rollout's valid samples, each followed by its env's scaled command.
    _, traj = jax.jit(tr.rollout)(state)
    from wildamp.env.observations import obs_slice
    command = np.asarray(traj.obs)[..., obs_slice("command", tr.env.num_joints)]
    valid = np.asarray(traj.amp_valid).reshape(-1) > 0.5
    features = np.asarray(tr.feature_normalizer.apply(traj.amp_sample)).reshape(valid.size, -1)
    expected = np.concatenate([features, 2 * (command[..., :1].reshape(-1, 1) - 0.1) / 0.15 - 1], axis=1)[valid]
    stored = np.asarray(new_state.disc.replay.data)[: int(new_state.disc.replay.count)]
    assert len(np.unique(command[..., 0])) > 1 and len(stored) == valid.sum() > 0
    np.testing.assert_allclose(stored, expected, atol=1e-5)
