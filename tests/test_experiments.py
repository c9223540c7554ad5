"""Tests for wildamp.experiments: fake-motion perturbations, offline discriminator training and the
helpers that reproduce the two historic AMP bugs (notebook 03)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wildamp import amp as A
from wildamp import experiments as X
from wildamp import paths
from wildamp.reference.clip import Clip, MotionDataset
from wildamp.robot import load_robot_spec

FPS = 50.0


@pytest.fixture(scope="module")
def spec():
    return load_robot_spec(paths.DEFAULT_ROBOT_CONFIG)


def _clip(spec, name="walk", T=101, speed=0.2) -> Clip:
    """A smooth synthetic walking-like clip: root moving forward at `speed`, sinusoidal joints."""
    t = np.arange(T) / FPS
    J = len(spec.joint_names)
    joints = 0.3 * np.sin(2 * np.pi * 1.5 * t[:, None] + np.arange(J)[None, :])
    root_pos = np.stack([speed * t, 0.01 * np.sin(2 * np.pi * t), 0.44 + 0.005 * np.cos(4 * np.pi * t)], axis=1)
    yaw = 0.1 * np.sin(2 * np.pi * 0.5 * t)
    root_quat = np.stack([np.cos(yaw / 2), 0 * t, 0 * t, np.sin(yaw / 2)], axis=1)
    return Clip(name=name, fps=FPS, root_pos=root_pos, root_quat=root_quat, joint_pos=joints,
                joint_names=spec.joint_names, source="test").validate()


def _mean_speed(c: Clip) -> float:
    return float(np.mean(np.linalg.norm(np.diff(c.root_pos[:, :2], axis=0), axis=1)) * c.fps)


# ---------------------------------------------------------------------------------- perturbations


def test_speedup_and_slowdown_play_the_same_motion_at_another_rate(spec):
    c = _clip(spec)
    fast = X.perturb_clip(c, "speedup", 0, speed_factor=2.0)
    slow = X.perturb_clip(c, "slowdown", 0, speed_factor=2.0)
    assert fast.fps == slow.fps == c.fps and fast.joint_names == c.joint_names
    assert fast.num_frames == 51 and slow.num_frames == 201        # (T-1)/f + 1 and (T-1)·f + 1
    # Frame k of the fast clip shows the original at time 2k/fps; the slow one at k/(2 fps).
    np.testing.assert_allclose(fast.joint_pos, c.joint_pos[::2], atol=1e-12)
    t_src = np.arange(c.num_frames) / c.fps
    t_slow = np.arange(slow.num_frames) / (2 * c.fps)
    np.testing.assert_allclose(slow.joint_pos[:, 3], np.interp(t_slow, t_src, c.joint_pos[:, 3]), atol=1e-12)
    assert _mean_speed(fast) == pytest.approx(2 * _mean_speed(c), rel=0.02)
    assert _mean_speed(slow) == pytest.approx(0.5 * _mean_speed(c), rel=0.02)
    assert fast.meta["perturbation"] == {"kind": "speedup", "factor": 2.0}


def test_joint_noise_is_smooth_seeded_and_leaves_the_root_alone(spec):
    c = _clip(spec, T=401)
    a = X.perturb_clip(c, "joint_noise", 1, noise_std=0.1, noise_smooth_s=0.1)
    b = X.perturb_clip(c, "joint_noise", 1, noise_std=0.1, noise_smooth_s=0.1)
    other = X.perturb_clip(c, "joint_noise", 2, noise_std=0.1, noise_smooth_s=0.1)
    white = X.perturb_clip(c, "joint_noise", 1, noise_std=0.1, noise_smooth_s=0.0)
    np.testing.assert_array_equal(a.joint_pos, b.joint_pos)
    assert not np.allclose(a.joint_pos, other.joint_pos)
    np.testing.assert_array_equal(a.root_pos, c.root_pos)
    np.testing.assert_array_equal(a.root_quat, c.root_quat)
    noise, noise_white = a.joint_pos - c.joint_pos, white.joint_pos - c.joint_pos
    assert np.std(noise) == pytest.approx(0.1, rel=0.1)
    assert np.std(noise_white) == pytest.approx(0.1, rel=0.1)
    # Low-passed noise changes little from frame to frame; white noise changes by ~√2·σ.
    assert np.std(np.diff(noise, axis=0)) < 0.6 * np.std(np.diff(noise_white, axis=0))


def test_standing_holds_the_home_pose_by_name(spec):
    c = _clip(spec)
    # Columns in another order than the robot's: the home pose must be mapped by name.
    order = np.arange(len(spec.joint_names))[::-1]
    shuffled = dataclasses.replace(c, joint_pos=c.joint_pos[:, order],
                                   joint_names=tuple(np.array(spec.joint_names)[order]))
    s = X.perturb_clip(shuffled, "standing", 0, spec=spec, stand_noise_std=0.002)
    home = dict(zip(spec.joint_names, spec.home_joint_pos))
    want = np.array([home[n] for n in s.joint_names])
    assert s.num_frames == c.num_frames and s.joint_names == shuffled.joint_names
    assert np.max(np.abs(s.joint_pos - want)) < 0.02
    assert np.std(s.joint_pos - want) == pytest.approx(0.002, rel=0.3)
    np.testing.assert_allclose(s.root_pos[:, 2], spec.home_qpos[2])     # the free joint comes first
    np.testing.assert_allclose(s.root_quat, np.tile(spec.home_qpos[3:7], (c.num_frames, 1)))
    np.testing.assert_allclose(s.root_pos[:, :2], np.tile(c.root_pos[0, :2], (c.num_frames, 1)))
    with pytest.raises(ValueError, match="spec"):
        X.perturb_clip(c, "standing", 0)


def test_time_reversed_reverses_and_is_an_involution(spec):
    c = _clip(spec)
    r = X.perturb_clip(c, "time_reversed", 0)
    np.testing.assert_array_equal(r.joint_pos, c.joint_pos[::-1])
    np.testing.assert_array_equal(r.root_pos, c.root_pos[::-1])
    np.testing.assert_array_equal(X.perturb_clip(r, "time_reversed", 0).root_quat, c.root_quat)


def test_perturbations_of_a_dataset_and_bad_arguments(spec):
    ds = MotionDataset(clips=[_clip(spec, "a"), _clip(spec, "b", speed=0.1)], joint_names=spec.joint_names,
                       fps=FPS)
    for kind in X.PERTURBATION_KINDS:
        out = X.perturbations(ds, kind, np.random.default_rng(0), spec=spec)
        assert out.clip_names == ds.clip_names and out.fps == ds.fps and out.joint_names == ds.joint_names
        assert out.metadata["perturbation"] == kind
        assert all(c.meta["perturbation"]["kind"] == kind for c in out.clips)
    with pytest.raises(ValueError, match="unknown perturbation"):
        X.perturbations(ds, "mirror", 0)
    with pytest.raises(ValueError, match="speed_factor"):
        X.perturb_clip(ds.clips[0], "speedup", 0, speed_factor=0.5)


def test_motion_features_go_through_the_one_feature_function(spec):
    from wildamp import features as F
    from wildamp.config import load_config
    from wildamp.reference.generator import default_gait_params, generate_clip
    from wildamp.robot import load_model

    cfg = load_config("configs/smoke.yaml")
    model = load_model(spec.model_path)
    clip = generate_clip(spec, default_gait_params(0.15, duration=1.2), fps=1.0 / cfg.env.ctrl_dt, model=model)
    ds = MotionDataset(clips=[clip], joint_names=spec.joint_names, fps=clip.fps)
    samples, _ = F.dataset_samples(ds, model, spec, cfg.features, ctrl_dt=cfg.env.ctrl_dt)
    layout = F.FeatureLayout.build(spec, cfg.features)
    norm = F.FeatureNormalizer.from_config(samples, layout.sample_channel_names(), cfg.features)
    real = X.motion_features(ds, model, spec, cfg, norm)
    np.testing.assert_allclose(real, norm.apply(samples), atol=1e-6)
    standing = X.motion_features(X.perturbations(ds, "standing", 0, spec=spec), model, spec, cfg, norm)
    assert standing.shape == real.shape
    # The standing robot's pelvis is exactly at the home height: its normalised root-height channel is
    # that height through the reference's normaliser, in every sample.
    name = "root_height@t"
    i, k = layout.sample_channel_names().index(name), norm.kept.index(name)
    want = np.clip((spec.home_qpos[2] - norm.mean[i]) / norm.std[i], -norm.clip, norm.clip)
    np.testing.assert_allclose(standing[:, k], want, atol=1e-4)
    assert np.abs(real[:, k] - want).max() > 0.5


# ---------------------------------------------------------------------------------- offline training

D_IN = 8
HYPER = dataclasses.replace(A.SEED_AMP_HYPER, hidden=(16, 16), batch_size=64, disc_lr=3e-3,
                            replay_buffer_size=1024, update_steps=1)


def _gaussians(shift_dim: int | None, n: int = 512, seed: int = 0, shift: float = 6.0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, D_IN)).astype(np.float32)
    if shift_dim is not None:
        x[:, shift_dim] += shift
    return x


@pytest.fixture(scope="module")
def trained():
    real, fake = _gaussians(None, seed=0), _gaussians(0, seed=1)
    return real, fake, X.train_discriminator_offline(real, fake, HYPER, 100, jax.random.PRNGKey(0), 25)


def test_offline_training_separates_an_obviously_different_fake(trained):
    real, fake, run = trained
    h = run.history
    assert [r["iteration"] for r in h] == [25, 50, 75, 100]
    assert h[-1]["disc_steps"] == int(run.state.step) == 100 * HYPER.update_steps
    for key in ("disc_acc", "disc_loss", "reward_real", "reward_fake", "d_real", "d_fake", "replay_fill",
                "disc_sigma_0", "fresh_reward_before", "fresh_reward_after"):
        assert key in h[-1], key
    assert h[-1]["reward_real"] > h[-1]["reward_fake"] + 0.5
    assert h[-1]["disc_acc"] > 0.95 and h[-1]["reward_fake"] < h[0]["reward_fake"] + 1e-6
    assert X.disc_auc(run.state, real, fake) > 0.95
    assert h[-1]["replay_fill"] == 1.0      # 100 iterations × 64 fresh rows filled the 1024-row buffer
    assert X.final(h, "disc_acc", last=2) == pytest.approx(np.mean([h[-2]["disc_acc"], h[-1]["disc_acc"]]))


def test_offline_training_cannot_separate_the_same_distribution():
    real, same = _gaussians(None, seed=0), _gaussians(None, seed=2)
    run = X.train_discriminator_offline(real, same, HYPER, 100, jax.random.PRNGKey(0), 25)
    assert X.disc_auc(run.state, real, same) < 0.65
    assert abs(run.history[-1]["reward_real"] - run.history[-1]["reward_fake"]) < 0.1


def test_training_continues_from_a_state_with_extra_eval_sets(trained):
    real, fake, run = trained
    other = _gaussians(1, seed=3)
    more = X.train_discriminator_offline(real, other, HYPER, 50, jax.random.PRNGKey(1), 25, state=run.state,
                                         eval_sets={"real": real, "old": fake, "new": other})
    assert [r["iteration"] for r in more.history] == [125, 150]
    assert {"reward_real", "reward_old", "reward_new", "d_old"} <= set(more.history[-1])
    assert "reward_fake" not in more.history[-1]
    # After learning to reject the new fake too, it is paid less than the reference.
    assert more.history[-1]["reward_new"] < more.history[-1]["reward_real"]


def test_offline_training_refuses_bad_input():
    real = _gaussians(None)
    with pytest.raises(ValueError, match="multiple"):
        X.train_discriminator_offline(real, real, HYPER, 30, jax.random.PRNGKey(0), 25)
    with pytest.raises(ValueError, match="fake"):
        X.train_discriminator_offline(real, real[:, :4], HYPER, 25, jax.random.PRNGKey(0), 25)
    bad = real.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        X.train_discriminator_offline(real, bad, HYPER, 25, jax.random.PRNGKey(0), 25)


# ---------------------------------------------------------------------------------- diagnostics


def test_health_warnings_flag_a_trivially_winning_discriminator():
    winning = [{"disc_acc": 1.0, "reward_fake": 0.01}] * 6
    healthy = [{"disc_acc": 0.7 + 0.05 * (i % 2), "reward_fake": 0.4} for i in range(6)]
    w = X.health_warnings(winning, window=3)
    assert len(w["too_strong"]) == 2 and len(w["reward"]) == 2 and not w["collapsed"]
    assert all(isinstance(x, str) and x.startswith("[disc health]") for x in w["too_strong"] + w["reward"])
    assert X.health_warnings(healthy, window=3) == {"too_strong": [], "collapsed": [], "reward": []}


def test_spectral_report_and_gradient_norm():
    lin = dataclasses.replace(HYPER, hidden=())
    st = A.init_disc_state(jax.random.PRNGKey(0), D_IN, lin)
    # A linear SN discriminator is D(x) = w·x / ‖w‖ + b: its input gradient has norm exactly 1.
    assert X.input_grad_norm(st, _gaussians(None, n=16)) == pytest.approx(1.0, abs=1e-4)
    off = A.init_disc_state(jax.random.PRNGKey(0), D_IN, dataclasses.replace(HYPER, use_spectral_norm=False))
    rep = X.spectral_report(off)
    assert [r["layer"] for r in rep] == ["hidden_0", "hidden_1", "logit"]
    assert "sigma_estimate" not in rep[0]
    w = np.asarray(off.params["hidden_1"]["kernel"])
    assert rep[1]["sigma_true"] == pytest.approx(np.linalg.svd(w, compute_uv=False)[0], rel=1e-6)


def test_spectral_report_after_training_has_unit_effective_sigma(trained):
    rep = X.spectral_report(trained[2].state)
    for r in rep:
        assert r["effective_sigma"] == pytest.approx(1.0, abs=0.05), r
        assert r["sigma_estimate"] == pytest.approx(r["sigma_true"] / r["effective_sigma"])


# ---------------------------------------------------------------------------------- the two bugs


def test_sign_test_p_matches_the_binomial_tail():
    assert X.sign_test_p(5, 0) == pytest.approx(1 / 32)
    assert X.sign_test_p(0, 5) == 1.0 and X.sign_test_p(0, 0) == 1.0
    assert X.sign_test_p(2, 1) == pytest.approx(4 / 8)      # P(k >= 2 of 3) = (3 + 1) / 8


def test_participation_trophy_demo_pays_075_for_certain_fakes(trained):
    _, fake, run = trained
    out = X.participation_trophy_demo(run.state, fake)
    assert out["d_fake"] < 0.15                  # D is (nearly) certain these are fake …
    assert out["reward_bug"] > 0.7               # … the mismatched formula still pays ≥ ~0.75 …
    assert out["reward_fixed"] < 0.15            # … the objective's own reward pays ≈ D
    d = np.asarray(A.disc_logits(run.state, jnp.asarray(fake)))
    assert out["reward_bug"] == pytest.approx(float(np.mean(1 - 0.25 * (d - 1) ** 2)), rel=1e-5)


def test_hindsight_bias_demo_post_update_rewards_of_new_fakes_are_lower(trained):
    real, _, run = trained
    novel = _gaussians(1, seed=4)        # a behaviour the trained discriminator has not seen
    slow = dataclasses.replace(HYPER, disc_lr=3e-4)   # adapts over many iterations, as in training
    out = X.hindsight_bias_demo(run.state, real, novel, slow, jax.random.PRNGKey(5), 50, 25)
    gap = out["fake_after"] - out["fake_before"]
    assert gap.shape == (50,) and out["real_before"].shape == (50,)
    assert out["fake_before"][0] > 0.5                # the new fakes start out well paid …
    assert np.mean(gap < 0) > 0.9 and gap.mean() < 0  # … and the post-update rewards are lower
    assert out["lower"] == pytest.approx(np.mean(gap < 0)) and out["p_value"] < 1e-6
    assert out["fake_before"][-1] < out["fake_before"][0] - 0.2
    assert int(out["state"].step) == int(run.state.step) + 50 * slow.update_steps


def test_reward_order_check_tells_before_from_after(trained):
    from wildamp.train import amp_step

    real, fake, run = trained
    novel = _gaussians(1, n=64, seed=6)

    def hindsight_amp_step(disc, samples, valid, reference, rng, hyper):   # the seed's bug
        flat = samples.reshape(-1, samples.shape[-1])
        new, m = A.disc_update(disc, reference, flat, rng, hyper)
        return A.amp_reward(new, flat, hyper.objective).reshape(valid.shape) * valid, new, m

    good = X.reward_order_check(amp_step, run.state, real, novel, jax.random.PRNGKey(7), HYPER)
    bad = X.reward_order_check(hindsight_amp_step, run.state, real, novel, jax.random.PRNGKey(7), HYPER)
    assert good["max_abs_diff_before"] < 1e-6 and good["max_abs_diff_after"] > 1e-4
    assert bad["max_abs_diff_after"] < 1e-6 and bad["max_abs_diff_before"] > 1e-4
    assert good["reward_step"] == pytest.approx(good["reward_before"])
    assert bad["reward_step"] == pytest.approx(bad["reward_after"])


def test_learning_curves_label_every_panel_and_keep_coinciding_runs_visible():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wildamp.figcheck import figure_problems

    hist = [{"iteration": i, "disc_acc": 0.5 + 0.01 * i, "reward_real": 0.1 * i, "disc_sigma_0": 1.0,
             "replay_fill": 0.1 * i} for i in range(1, 8)]
    # Two runs with identical curves (as the two replay fills of notebook 03): both must stay visible.
    fig = X.plot_learning_curves({"a": hist, "b": [dict(r) for r in hist]},
                                 keys=("disc_acc", "reward_real", "disc_sigma_0", "replay_fill"), ncols=2, title="t")
    assert figure_problems(fig) == []
    assert [ax.get_ylabel() for ax in fig.axes] == ["accuracy on training batches", "mean style reward (0..1)",
                                                   "σ of layer 0", "fraction full"]
    a, b = fig.axes[0].get_lines()[:2]
    assert a.get_linestyle() != b.get_linestyle()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["a", "b"]
    plt.close("all")
