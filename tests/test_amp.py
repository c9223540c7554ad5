"""Tests for wildamp.amp: objective/reward pairing, spectral norm state, replay buffer, penalties,
the discriminator update and the health monitor (ARCHITECTURE.md §3.6, §6)."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wildamp.amp import (AMPHyper, AMPObjective, DiscHealthMonitor, OBJECTIVES, amp_reward,
                         bug_demo_participation_trophy_reward, disc_logits, disc_update, init_disc_state,
                         layer_names, layer_us, logit_l2_penalty, r1_penalty, replay_add, replay_fill,
                         replay_init, replay_sample, reward_stats, sample_fake_batch, wgan_gp_penalty)

jax.config.update("jax_platforms", "cpu")

# One jitted update shared by all tests (hyper is static; each distinct hyper/shape compiles once).
_update = jax.jit(disc_update, static_argnames=("hyper",))


def _hyper(**kw) -> AMPHyper:
    base = dict(hidden=(32, 16), activation="elu", use_spectral_norm=True, objective="lsgan_01",
                penalty="r1", r1_gamma=5.0, logit_l2=0.0, weight_decay=0.0, disc_lr=1e-3, update_steps=1,
                batch_size=32, input_noise_std=0.0, replay_buffer_size=64, replay_buffer_ratio=0.5)
    base.update(kw)
    return AMPHyper(**base)


# --------------------------------------------------------------------------------------------- #
# Objective and reward
# --------------------------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", OBJECTIVES)
def test_reward_of_targets_is_one_and_zero(name):
    obj = AMPObjective(name)
    assert float(obj.reward(jnp.asarray(obj.real_target))) == pytest.approx(1.0)
    assert float(obj.reward(jnp.asarray(obj.fake_target))) == pytest.approx(0.0)
    # The loss is minimised exactly at the targets, and the reward stays in [0, 1] everywhere.
    assert float(obj.loss(jnp.full(4, obj.real_target), jnp.full(4, obj.fake_target))) == 0.0
    d = jnp.linspace(-5.0, 5.0, 101)
    r = obj.reward(d)
    assert float(r.min()) >= 0.0 and float(r.max()) <= 1.0
    assert obj.fake_target < obj.midpoint < obj.real_target


def test_objective_targets_match_their_names():
    assert (AMPObjective("lsgan_01").real_target, AMPObjective("lsgan_01").fake_target) == (1.0, 0.0)
    assert (AMPObjective("lsgan_pm1").real_target, AMPObjective("lsgan_pm1").fake_target) == (1.0, -1.0)


def test_unknown_objective_refused():
    with pytest.raises(ValueError, match="lsgan_bce"):
        AMPObjective("lsgan_bce")
    with pytest.raises(ValueError, match="objective"):
        _hyper(objective="lsgan_bce")


def test_participation_trophy_bug_demo_pays_075_for_certain_fake():
    fake = AMPObjective("lsgan_01").fake_target        # the bug: 0/1 targets ...
    assert float(bug_demo_participation_trophy_reward(fake)) == pytest.approx(0.75)   # ... ±1 formula
    assert float(AMPObjective("lsgan_01").reward(jnp.asarray(fake))) == 0.0           # the fix


@pytest.mark.parametrize("kw, match", [
    (dict(penalty="gp"), "penalty"), (dict(activation="sigmoid"), "activation"),
    (dict(penalty="none", r1_gamma=5.0), "r1_gamma"), (dict(replay_buffer_ratio=1.5), "replay_buffer_ratio"),
    (dict(replay_buffer_size=0), "replay_buffer_size"), (dict(update_steps=0), "update_steps"),
])
def test_hyper_rejects_bad_values(kw, match):
    with pytest.raises(ValueError, match=match):
        _hyper(**kw)


def test_hyper_is_hashable_with_list_hidden():
    h = _hyper(hidden=[8, 4])
    assert h.hidden == (8, 4) and hash(h) == hash(_hyper(hidden=(8, 4)))


# --------------------------------------------------------------------------------------------- #
# Spectral normalisation state
# --------------------------------------------------------------------------------------------- #


def _true_sigmas(state):
    return [float(np.linalg.svd(np.asarray(state.params[n]["kernel"]), compute_uv=False)[0])
            for n in layer_names(len(state.hidden))]


# lr = 0 keeps the kernels fixed, so σ_true is constant and only the power iteration moves.
# Shared by two tests (same hyper and shapes) so that disc_update compiles once for both.
_FROZEN_HYPER = _hyper(disc_lr=0.0)


def test_spectral_norm_sigma_converges_only_when_state_is_carried():
    h = _FROZEN_HYPER
    s0 = init_disc_state(jax.random.PRNGKey(0), 6, h)
    true = _true_sigmas(s0)
    ref = jax.random.normal(jax.random.PRNGKey(1), (50, 6))
    fake = ref - 1.0

    mask = jnp.ones(50, bool)    # same call signature as test_disc_update_never_stores_masked_rows
    s, carried_errs = s0, []
    for i in range(60):
        s, m = _update(s, ref, fake, jax.random.PRNGKey(i), hyper=h, fresh_mask=mask)
        carried_errs.append([abs(float(m[f"disc_sigma_{j}"]) - t) / t for j, t in enumerate(true)])
    final = carried_errs[-1]
    assert max(final) < 2e-3, f"carried σ did not converge: rel errors {final}"

    # The seed's bug: u thrown away every call (state reset to its initial random u) -> one
    # power-iteration step from random u on every call, which stays far off for the hidden layers.
    _, m_fresh = _update(s0, ref, fake, jax.random.PRNGKey(99), hyper=h, fresh_mask=mask)
    fresh = [abs(float(m_fresh[f"disc_sigma_{j}"]) - t) / t for j, t in enumerate(true)]
    for j in range(len(h.hidden)):
        assert fresh[j] > 10 * final[j] + 1e-3, (j, fresh, final)
        # Power iteration underestimates: σ̂ = vᵀWu ≤ σ_max.
        assert float(m_fresh[f"disc_sigma_{j}"]) <= true[j] * (1 + 1e-5)
    # The carried u vectors really change across updates.
    for u0, u1 in zip(layer_us(s0.sn_state, 2)[:2], layer_us(s.sn_state, 2)[:2]):
        assert float(jnp.max(jnp.abs(u0 - u1))) > 1e-2


def _np_sn_forward(params, sn_state, x, names):
    """Hand-written inference pass: each kernel divided by σ from one power-iteration step from stored u."""
    h = np.asarray(x, np.float64)
    for i, name in enumerate(names):
        w = np.asarray(params[name]["kernel"], np.float64)
        u = np.asarray(sn_state[f"sn_{name}"][f"{name}/kernel/u"], np.float64)
        v = u @ w.T
        v /= np.linalg.norm(v)
        u = v @ w
        u /= np.linalg.norm(u)
        sigma = float((v @ w @ u.T)[0, 0])
        h = h @ (w / sigma) + np.asarray(params[name]["bias"])
        if i < len(names) - 1:
            h = np.where(h > 0, h, np.expm1(h))   # elu
    return h[:, 0]


def test_disc_logits_is_noise_free_spectrally_normalised_inference():
    h = _hyper(disc_lr=0.0, input_noise_std=1.0)   # training noise must not reach inference
    s = init_disc_state(jax.random.PRNGKey(0), 6, h)
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 6))
    a, b = disc_logits(s, x), disc_logits(s, x)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert a.shape == (8,)
    want = _np_sn_forward(s.params, s.sn_state, x, layer_names(len(h.hidden)))
    np.testing.assert_allclose(np.asarray(a), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(amp_reward(s, x, "lsgan_01")), np.clip(want, 0, 1), atol=1e-5)
    np.testing.assert_allclose(np.asarray(amp_reward(s, x, AMPObjective("lsgan_pm1"))),
                               np.maximum(0, 1 - 0.25 * (want - 1) ** 2), atol=1e-5)


# --------------------------------------------------------------------------------------------- #
# Replay buffer
# --------------------------------------------------------------------------------------------- #


def _rows(start, n, d=3):
    return jnp.arange(start, start + n, dtype=jnp.float32)[:, None] * jnp.ones((1, d))


def test_replay_add_changes_content_and_respects_mask():
    buf = replay_init(8, 3)
    buf2 = replay_add(buf, _rows(1, 4), mask=jnp.array([True, False, True, False]))
    assert int(buf2.count) == 2 and int(buf2.ptr) == 2
    np.testing.assert_array_equal(np.asarray(buf2.data[:2, 0]), [1.0, 3.0])   # rows 2 and 4 were masked
    np.testing.assert_array_equal(np.asarray(buf2.data[2:]), 0.0)
    assert float(replay_fill(buf2)) == pytest.approx(2 / 8)


def test_replay_wraps_around_and_keeps_newest():
    buf = replay_add(replay_init(5, 3), _rows(1, 4))          # 1..4
    buf = replay_add(buf, _rows(5, 3))                          # 5,6,7 -> slots 4,0,1
    assert int(buf.count) == 5 and int(buf.ptr) == 2
    np.testing.assert_array_equal(np.asarray(buf.data[:, 0]), [6, 7, 3, 4, 5])
    # More rows than capacity in one add: only the newest 5 survive, in ring order.
    buf = replay_add(buf, _rows(10, 7))                         # 10..16 -> keep 12..16 from slot 2
    assert int(buf.count) == 5 and int(buf.ptr) == (2 + 7) % 5
    np.testing.assert_array_equal(np.sort(np.asarray(buf.data[:, 0])), [12, 13, 14, 15, 16])
    # As if written one by one: the oldest survivor sits at the next write slot, the newest just before.
    assert float(buf.data[int(buf.ptr), 0]) == 12.0 and float(buf.data[int(buf.ptr) - 1, 0]) == 16.0


def test_replay_samples_only_inserted_rows_from_filled_part():
    buf = replay_add(replay_init(10, 3), _rows(1, 3))           # filled part = rows 1, 2, 3
    x = np.asarray(replay_sample(buf, jax.random.PRNGKey(0), 600))
    assert set(np.unique(x[:, 0])) == {1.0, 2.0, 3.0}           # never the empty zero rows, all used
    assert np.all(x == x[:, :1])                                # whole rows, not mixed entries
    with pytest.raises(ValueError, match="empty"):
        replay_sample(replay_init(4, 3), jax.random.PRNGKey(0), 2)


def test_replay_add_is_jittable():
    f = jax.jit(replay_add)
    buf = f(replay_init(4, 3), _rows(1, 3), jnp.array([True, True, False]))
    assert int(buf.count) == 2


def test_fake_batch_mixes_fresh_and_replay_at_ratio():
    h = _hyper(batch_size=40, replay_buffer_ratio=0.25)
    fresh = jnp.concatenate([_rows(-1, 1, 6) * 100.0, _rows(999, 1, 6)])      # valid -100, masked 999
    mask = jnp.array([True, False])
    empty = replay_init(16, 6)
    sample = jax.jit(sample_fake_batch, static_argnames=("hyper",))   # as inside disc_update
    b = np.asarray(sample(empty, fresh, jax.random.PRNGKey(0), hyper=h, fresh_mask=mask))
    assert b.shape == (40, 6) and np.all(b == -100.0)            # empty buffer: fresh stands in
    full = replay_add(empty, jnp.full((16, 6), 7.0))
    b = np.asarray(sample(full, fresh, jax.random.PRNGKey(0), hyper=h, fresh_mask=mask))
    assert np.sum(b[:, 0] == 7.0) == 10 and np.sum(b[:, 0] == -100.0) == 30
    assert not np.any(b == 999.0)


# --------------------------------------------------------------------------------------------- #
# Penalties
# --------------------------------------------------------------------------------------------- #


def test_r1_and_wgan_gp_on_linear_discriminator_match_hand_computation():
    w = jnp.array([0.5, -2.0, 1.0])
    d_fn = lambda x: x @ w + 0.3   # noqa: E731
    x = jax.random.normal(jax.random.PRNGKey(0), (16, 3))
    gamma = 5.0
    sq = float(jnp.sum(w ** 2))
    assert float(r1_penalty(d_fn, x, gamma)) == pytest.approx(gamma / 2 * sq, rel=1e-6)
    gp = wgan_gp_penalty(d_fn, x, -x, jax.random.PRNGKey(1), gamma)
    assert float(gp) == pytest.approx(gamma * (math.sqrt(sq) - 1.0) ** 2, rel=1e-5)


def test_disc_update_r1_metric_equals_hand_value_for_linear_discriminator():
    # hidden=() and no SN/noise: D(x) = w·x + b, so the R1 term is γ/2·‖w‖² at the pre-update params.
    h = _hyper(hidden=(), use_spectral_norm=False, r1_gamma=3.0, update_steps=1, logit_l2=0.1)
    s = init_disc_state(jax.random.PRNGKey(0), 5, h)
    w = np.asarray(s.params["logit"]["kernel"])[:, 0]
    ref = jax.random.normal(jax.random.PRNGKey(1), (40, 5))
    _, m = _update(s, ref, ref + 1.0, jax.random.PRNGKey(2), hyper=h)
    assert float(m["disc_penalty"]) == pytest.approx(3.0 / 2 * float(np.sum(w ** 2)), rel=1e-5)
    assert float(m["disc_logit_l2"]) == pytest.approx(0.1 * float(np.sum(w ** 2)), rel=1e-5)
    assert float(logit_l2_penalty(s.params, 0.1)) == pytest.approx(0.1 * float(np.sum(w ** 2)), rel=1e-6)
    assert float(m["disc_loss"]) == pytest.approx(
        float(m["disc_lsgan_loss"]) + float(m["disc_penalty"]) + float(m["disc_logit_l2"]), rel=1e-5)


# --------------------------------------------------------------------------------------------- #
# Discriminator update
# --------------------------------------------------------------------------------------------- #


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_disc_update_separates_gaussian_clouds(objective):
    h = _hyper(objective=objective, update_steps=50, batch_size=64, input_noise_std=0.05,
               replay_buffer_size=1000, weight_decay=1e-4)
    s = init_disc_state(jax.random.PRNGKey(0), 4, h)
    real = jax.random.normal(jax.random.PRNGKey(1), (400, 4)) * 0.5 + 1.5
    fake = jax.random.normal(jax.random.PRNGKey(2), (300, 4)) * 0.5 - 1.5
    mask = jnp.arange(300) % 10 != 0                       # 10% "boundary" transitions
    accs = []
    for i in range(4):                                      # 200 discriminator steps
        s, m = _update(s, real, fake, jax.random.PRNGKey(10 + i), hyper=h, fresh_mask=mask)
        accs.append(float(m["disc_acc"]))
    assert accs[-1] > 0.9, accs
    r_real = amp_reward(s, real, objective)
    r_fake = amp_reward(s, fake, objective)
    assert float(r_real.mean()) > float(r_fake.mean()) + 0.5
    assert int(s.step) == 200
    # Replay holds exactly the valid fresh rows of each call (4 × 270, capped at capacity).
    assert int(s.replay.count) == min(4 * 270, 1000) and float(m["replay_fill"]) == pytest.approx(
        min(4 * 270, 1000) / 1000)
    assert float(m["disc_fresh_valid_frac"]) == pytest.approx(0.9)
    assert all(np.isfinite(float(v)) for v in m.values())


def test_disc_update_never_stores_masked_rows():
    h = _FROZEN_HYPER
    s = init_disc_state(jax.random.PRNGKey(0), 6, h)
    fresh = jnp.concatenate([jnp.full((20, 6), 1.0, jnp.float32), jnp.full((30, 6), 999.0, jnp.float32)])
    mask = jnp.array([True] * 20 + [False] * 30)
    s, m = _update(s, jnp.zeros((50, 6)), fresh, jax.random.PRNGKey(0), hyper=h, fresh_mask=mask)
    assert int(s.replay.count) == 20 and float(m["replay_fill"]) == pytest.approx(20 / 64)
    assert not np.any(np.asarray(s.replay.data) == 999.0)


def test_disc_update_rejects_mismatched_inputs():
    h = _FROZEN_HYPER
    s = init_disc_state(jax.random.PRNGKey(0), 6, h)
    with pytest.raises(ValueError, match="reference features"):
        disc_update(s, jnp.zeros((5, 4)), jnp.zeros((5, 6)), jax.random.PRNGKey(0), h)
    with pytest.raises(ValueError, match="fresh policy features"):
        disc_update(s, jnp.zeros((5, 6)), jnp.zeros((5, 3)), jax.random.PRNGKey(0), h)
    with pytest.raises(ValueError, match="architecture"):
        disc_update(s, jnp.zeros((5, 6)), jnp.zeros((5, 6)), jax.random.PRNGKey(0),
                    dataclasses.replace(h, hidden=(8,)))


def test_reward_stats_respect_mask():
    r = jnp.array([0.0, 0.1, 0.2, 0.3, 0.4, 5.0, 7.0])
    mask = jnp.array([True] * 5 + [False] * 2)
    st = reward_stats(r, mask)
    valid = np.asarray(r[:5])
    assert float(st["amp_reward_mean"]) == pytest.approx(valid.mean())
    assert float(st["amp_reward_std"]) == pytest.approx(valid.std(), rel=1e-5)
    for q in (10, 50, 90):
        assert float(st[f"amp_reward_p{q}"]) == pytest.approx(np.percentile(valid, q), rel=1e-5)


# --------------------------------------------------------------------------------------------- #
# Health monitor
# --------------------------------------------------------------------------------------------- #


def _run(monitor, accs, reward=0.5):
    out = []
    for a in accs:
        out += monitor.update({"disc_acc": a, "amp_reward_mean": reward})
    return out


def test_monitor_fires_on_stuck_at_one():
    w = _run(DiscHealthMonitor(window=10), [1.0] * 25)
    assert len(w) == 2                       # at 10 and 20 iterations in a row
    assert [(x.kind, x.streak) for x in w] == [("too_strong", 10), ("too_strong", 20)]
    assert "↓ disc_lr" in w[0].text and "↓ update_steps" in w[0].text and "↑ r1_gamma" in w[0].text
    assert str(w[0]) == w[0].text and f"{w[0]}" == w[0].text   # the trainer prints them with f-strings


def test_monitor_verdict_needs_a_filled_window():
    mon = DiscHealthMonitor(window=5)
    _run(mon, [0.46] * 4)     # pinned at 0.5, but shorter than the window: no warning could fire yet
    assert not mon.judged and mon.warnings_issued == 0
    assert mon.verdict().startswith("not enough iterations to judge") and "in range" not in mon.verdict()
    _run(mon, [0.7])          # a healthy 5th iteration: the window is filled, nothing fired
    assert mon.judged and "stayed in range" in mon.verdict()
    w = _run(mon, [1.0] * 5)
    assert mon.warnings_issued == len(w) == 1 and mon.verdict().startswith("1 warning(s) in 10 iterations")


def test_health_warning_is_a_typed_record():
    from wildamp.amp import HEALTH_KINDS, HealthWarning

    assert HEALTH_KINDS == ("too_strong", "collapsed", "reward", "undecided")
    w = HealthWarning(kind="collapsed", streak=5, text="msg")
    assert str(w) == "msg"
    with pytest.raises(dataclasses.FrozenInstanceError):
        w.kind = "reward"
    with pytest.raises(ValueError, match="unknown health warning kind 'bogus'"):
        HealthWarning(kind="bogus", streak=1, text="x")


def test_monitor_fires_on_pinned_half():
    rng = np.random.default_rng(0)
    w = _run(DiscHealthMonitor(window=10), 0.5 + rng.uniform(-0.03, 0.03, 12))
    assert len(w) == 1 and w[0].kind == "collapsed" and "↑ disc_lr" in w[0].text and "↓ r1_gamma" in w[0].text


def test_monitor_quiet_on_healthy_oscillation():
    accs = 0.72 + 0.15 * np.sin(np.arange(200) / 3.0)       # 0.57 .. 0.87
    assert _run(DiscHealthMonitor(window=10), accs) == []


def test_monitor_reports_an_undecided_discriminator_once_not_as_two_contradicting_warnings():
    from wildamp.amp.monitor import COLLAPSED_GUIDE, REWARD_COLLAPSE_GUIDE, UNDECIDED_GUIDE

    # D near 0 for everything (the start of training): disc_acc 0.5 AND reward ~0 at once.
    start = {"disc_acc": 0.5, "amp_reward_mean": 0.02, "disc_real_mean": 0.06, "disc_fake_mean": 0.03}
    m = DiscHealthMonitor(window=5, midpoint=0.5)
    w = [x for _ in range(10) for x in m.update(start)]
    assert len(w) == 2 and all(x.kind == "undecided" and UNDECIDED_GUIDE in x.text for x in w)
    assert not any(REWARD_COLLAPSE_GUIDE in x.text or COLLAPSED_GUIDE in x.text for x in w)
    assert "disc_real_mean=0.060" in w[0].text and "10 iterations in a row" in w[1].text
    assert [x.streak for x in w] == [5, 10]
    # Without the midpoint (or the means) the monitor cannot tell and reports both conditions.
    def feed(monitor, metrics, n=5):
        return [x for _ in range(n) for x in monitor.update(metrics)]

    w = feed(DiscHealthMonitor(window=5), start)
    assert [x.kind for x in w] == ["collapsed", "reward"]
    assert COLLAPSED_GUIDE in w[0].text and REWARD_COLLAPSE_GUIDE in w[1].text
    assert len(feed(DiscHealthMonitor(window=5, midpoint=0.5), {"disc_acc": 0.5, "amp_reward_mean": 0.02})) == 2
    # As in a real CPU run: the pinned streak fires first, the reward streak later (reward still
    # above the floor at first); every message is "undecided", none says "too strong".
    m = DiscHealthMonitor(window=5, midpoint=0.5)
    early = dict(start, amp_reward_mean=0.07)
    w = feed(m, early, 3) + feed(m, start, 9)
    assert len(w) == 3 and all(x.kind == "undecided" for x in w)
    assert [x.text.split("(iteration ")[1].split(",")[0] for x in w] == ["5", "8", "10"]
    # Reference scored real while the policy is scored fake (and disc_acc still ~0.5): not "undecided".
    w = feed(DiscHealthMonitor(window=5, midpoint=0.5), dict(start, disc_real_mean=0.7))
    assert len(w) == 2 and not any(x.kind == "undecided" or "undecided" in x.text for x in w)


def test_monitor_fires_on_reward_collapse_and_needs_the_metric():
    m = DiscHealthMonitor(window=5, reward_floor=0.05)
    w = _run(m, [0.8] * 5, reward=jnp.asarray(0.01))
    assert len(w) == 1 and w[0].kind == "reward" and "amp_reward_mean" in w[0].text
    with pytest.raises(KeyError, match="amp_reward_mean"):
        m.update({"disc_acc": 0.7})
    with pytest.raises(FloatingPointError, match="disc_acc"):
        m.update({"disc_acc": float("nan"), "amp_reward_mean": 0.5})
