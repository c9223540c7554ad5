"""Tests for wildamp.ppo: GAE semantics, minibatching, loss gradients, normaliser, learning."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wildamp import ppo


def _hyper(**overrides) -> ppo.PPOHyper:
    base = dict(
        discount=0.99,
        gae_lambda=0.95,
        clip_epsilon=0.2,
        value_clip=None,
        entropy_coef=0.0,
        value_coef=0.5,
        max_grad_norm=1.0,
        learning_rate=3e-4,
        lr_schedule="constant",
        total_updates=10,
        update_epochs=2,
        num_minibatches=2,
        normalize_advantages=False,
    )
    base.update(overrides)
    return ppo.PPOHyper(**base)


def _tiny_networks(obs_dim: int = 3, action_dim: int = 2, init_log_std: float = -0.5):
    return ppo.make_networks(
        obs_dim=obs_dim,
        critic_obs_dim=obs_dim + 1,
        action_dim=action_dim,
        policy_hidden=(8,),
        value_hidden=(8,),
        activation="tanh",
        init_log_std=init_log_std,
    )


# --------------------------------------------------------------------------------------------------
# GAE
# --------------------------------------------------------------------------------------------------


def _gae_reference(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Forward-sum formulation: A_t = sum_k (gamma*lam)^k delta_{t+k} until the episode ends or the
    rollout does. Plain Python loops, no recursion shared with the implementation."""
    T, N = rewards.shape
    adv = np.zeros((T, N))
    for n in range(N):
        for t in range(T):
            total, coef, k = 0.0, 1.0, t
            while True:
                boot = 0.0 if terminated[k, n] else gamma * next_values[k, n]
                delta = rewards[k, n] + boot - values[k, n]
                total += coef * delta
                if terminated[k, n] or truncated[k, n] or k == T - 1:
                    break
                coef *= gamma * lam
                k += 1
            adv[t, n] = total
    return adv, adv + values


def _mc_returns(rewards, next_values, terminated, truncated, gamma):
    """lambda = 1 targets as discounted reward sums: stop at a termination (add nothing), at a
    truncation or the rollout's end add gamma^(k+1) * V(final observation)."""
    T, N = rewards.shape
    out = np.zeros((T, N))
    for n in range(N):
        for t in range(T):
            g, k = 0.0, t
            while True:
                g += gamma ** (k - t) * rewards[k, n]
                if terminated[k, n]:
                    break
                if truncated[k, n] or k == T - 1:
                    g += gamma ** (k - t + 1) * next_values[k, n]
                    break
                k += 1
            out[t, n] = g
    return out


def _gae_example():
    """T=6, N=2. Env 0 terminates at t=1 and is truncated at t=4; env 1 never ends."""
    rng = np.random.default_rng(0)
    T, N = 6, 2
    rewards = rng.normal(size=(T, N))
    values = rng.normal(size=(T, N))
    # next_values[t] = values[t+1] except where an episode ended (value of the true final obs)
    # and at the last step (value after the rollout).
    next_values = np.concatenate([values[1:], rng.normal(size=(1, N))], axis=0)
    terminated = np.zeros((T, N), bool)
    truncated = np.zeros((T, N), bool)
    terminated[1, 0] = True
    truncated[4, 0] = True
    next_values[1, 0] = 123.0  # must be ignored: the episode terminated
    next_values[4, 0] = 2.5  # value of the final observation before auto-reset
    return rewards, values, next_values, terminated, truncated


@pytest.mark.parametrize("lam", [0.0, 0.9, 1.0])
def test_gae_matches_forward_sum_reference(lam):
    rewards, values, next_values, terminated, truncated = _gae_example()
    gamma = 0.9
    dones = terminated | truncated  # the documented convention: done = any episode end
    adv, ret = jax.jit(ppo.compute_gae, static_argnums=(5, 6))(
        jnp.asarray(rewards, jnp.float32),
        jnp.asarray(values, jnp.float32),
        jnp.asarray(next_values, jnp.float32),
        jnp.asarray(dones),
        jnp.asarray(truncated),
        gamma,
        lam,
    )
    exp_adv, exp_ret = _gae_reference(
        rewards, values, next_values, terminated, truncated, gamma, lam
    )
    np.testing.assert_allclose(np.asarray(adv), exp_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ret), exp_ret, rtol=1e-5, atol=1e-5)
    if lam == 1.0:
        np.testing.assert_allclose(
            np.asarray(ret),
            _mc_returns(rewards, next_values, terminated, truncated, gamma),
            rtol=1e-5,
            atol=1e-5,
        )
    if lam == 0.0:  # one-step TD targets
        boot = np.where(terminated, 0.0, gamma * next_values)
        np.testing.assert_allclose(np.asarray(ret), rewards + boot, rtol=1e-5, atol=1e-5)


def test_gae_accepts_terminations_only_dones():
    """A caller passing dones = terminations only (truncation separate) gets the same result."""
    rewards, values, next_values, terminated, truncated = _gae_example()
    args = [jnp.asarray(a, jnp.float32) for a in (rewards, values, next_values)]
    trunc = jnp.asarray(truncated)
    a1, _ = ppo.compute_gae(*args, jnp.asarray(terminated | truncated), trunc, 0.9, 0.9)
    a2, _ = ppo.compute_gae(*args, jnp.asarray(terminated), trunc, 0.9, 0.9)
    np.testing.assert_allclose(np.asarray(a1), np.asarray(a2), rtol=1e-6, atol=1e-6)


def test_truncation_differs_from_termination():
    rewards, values, next_values, terminated, truncated = _gae_example()
    gamma, lam = 0.9, 0.9
    args = [jnp.asarray(a, jnp.float32) for a in (rewards, values, next_values)]
    adv_trunc, _ = ppo.compute_gae(
        *args, jnp.asarray(terminated | truncated), jnp.asarray(truncated), gamma, lam
    )
    # The original bug: the time limit reported as a termination.
    no_trunc = jnp.zeros(truncated.shape, bool)
    adv_term, _ = ppo.compute_gae(
        *args, jnp.asarray(terminated | truncated), no_trunc, gamma, lam
    )
    adv_trunc, adv_term = np.asarray(adv_trunc), np.asarray(adv_term)
    # At the truncated step the difference is exactly the bootstrap gamma * V(final obs) ...
    np.testing.assert_allclose(adv_trunc[4, 0] - adv_term[4, 0], gamma * 2.5, rtol=1e-5)
    # ... it propagates back within the episode (t = 2, 3) ...
    for t in (2, 3):
        expected = (gamma * lam) ** (4 - t) * gamma * 2.5
        np.testing.assert_allclose(adv_trunc[t, 0] - adv_term[t, 0], expected, rtol=1e-5)
    # ... and not across the episode boundary (t <= 1) nor into the next episode (t = 5).
    np.testing.assert_allclose(adv_trunc[[0, 1, 5], 0], adv_term[[0, 1, 5], 0], atol=1e-6)
    np.testing.assert_allclose(adv_trunc[:, 1], adv_term[:, 1], atol=1e-6)


# --------------------------------------------------------------------------------------------------
# Minibatching
# --------------------------------------------------------------------------------------------------


def test_minibatch_permutation_covers_every_sample_once_per_epoch():
    batch_size, num_minibatches = 48, 6
    seen = []
    for seed in range(3):  # three epochs
        idx = np.asarray(
            ppo.minibatch_permutation(jax.random.PRNGKey(seed), batch_size, num_minibatches)
        )
        assert idx.shape == (num_minibatches, batch_size // num_minibatches)
        np.testing.assert_array_equal(np.sort(idx.ravel()), np.arange(batch_size))
        seen.append(idx.ravel())
    # Shuffled, and differently per epoch (not the identity split every time).
    assert not np.array_equal(seen[0], np.arange(batch_size))
    assert not np.array_equal(seen[0], seen[1])


def test_minibatch_permutation_rejects_indivisible_batch():
    with pytest.raises(ValueError, match="not divisible"):
        ppo.minibatch_permutation(jax.random.PRNGKey(0), 10, 3)


# --------------------------------------------------------------------------------------------------
# Networks and loss
# --------------------------------------------------------------------------------------------------


def test_sampling_matches_gaussian_and_entropy_is_minus_expected_log_prob():
    nets = _tiny_networks(init_log_std=-1.0)
    params = nets.init(jax.random.PRNGKey(0))
    obs = jnp.ones((4096, 3))
    actions, logp = nets.sample_action(params, obs, jax.random.PRNGKey(1))
    mean, log_std = nets.policy_dist_params(params, obs)
    assert actions.shape == (4096, 2) and logp.shape == (4096,)
    np.testing.assert_allclose(np.asarray(log_std), -1.0)  # init_log_std honoured
    np.testing.assert_allclose(np.std(np.asarray(actions), 0), math.exp(-1.0), rtol=0.05)
    np.testing.assert_allclose(np.asarray(nets.log_prob(params, obs, actions)), np.asarray(logp),
                               rtol=1e-5, atol=1e-5)
    # Monte-Carlo entropy -E[log p] vs the closed form.
    np.testing.assert_allclose(-np.mean(np.asarray(logp)), float(nets.entropy(params, obs)[0]),
                               atol=0.05)
    # Small-scale final layer: initial means are near zero.
    assert np.max(np.abs(np.asarray(nets.deterministic_action(params, obs)))) < 0.1
    assert nets.value(params, jnp.ones((5, 4))).shape == (5,)


def test_make_networks_rejects_unknown_activation():
    with pytest.raises(ValueError, match="swishy"):
        ppo.make_networks(3, 3, 2, (8,), (8,), "swishy", 0.0)


def _single_sample_batch(nets, params, advantage, log_prob_offset=0.0):
    obs = jnp.array([[0.3, -0.2, 0.5]])
    action = jnp.array([[0.4, -0.7]])
    lp = nets.log_prob(params, obs, action)
    return ppo.PPOBatch(
        obs=obs,
        critic_obs=jnp.ones((1, 4)),
        actions=action,
        log_probs=lp + log_prob_offset,
        values=jnp.zeros((1,)),
        advantages=jnp.array([advantage]),
        returns=jnp.zeros((1,)),
    )


@pytest.mark.parametrize("advantage,direction", [(1.0, +1), (-1.0, -1)])
def test_policy_gradient_moves_log_prob_with_advantage_sign(advantage, direction):
    nets = _tiny_networks()
    params = nets.init(jax.random.PRNGKey(3))
    hyper = _hyper(value_coef=0.0, entropy_coef=0.0)
    batch = _single_sample_batch(nets, params, advantage)
    grads, _ = jax.grad(ppo.ppo_loss, has_aux=True)(params, nets, batch, hyper)
    stepped = jax.tree_util.tree_map(lambda p, g: p - 1e-2 * g, params, grads)
    before = float(nets.log_prob(params, batch.obs, batch.actions)[0])
    after = float(nets.log_prob(stepped, batch.obs, batch.actions)[0])
    assert direction * (after - before) > 1e-4


def test_clipped_ratio_gives_no_policy_gradient():
    """Ratio e (far above 1 + eps) with positive advantage: the clipped branch is active."""
    nets = _tiny_networks()
    params = nets.init(jax.random.PRNGKey(3))
    hyper = _hyper(value_coef=0.0, entropy_coef=0.0)
    batch = _single_sample_batch(nets, params, 1.0, log_prob_offset=-1.0)
    grads, metrics = jax.grad(ppo.ppo_loss, has_aux=True)(params, nets, batch, hyper)
    assert float(metrics["clip_fraction"]) == 1.0
    assert float(ppo.optax.tree_utils.tree_norm(grads["policy"])) == 0.0


def test_clip_fraction_and_kl_zero_when_params_unchanged():
    nets = _tiny_networks()
    params = nets.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (64, 3))
    actions, logp = nets.sample_action(params, obs, jax.random.PRNGKey(2))
    batch = ppo.PPOBatch(
        obs=obs,
        critic_obs=jnp.ones((64, 4)),
        actions=actions,
        log_probs=logp,
        values=jnp.zeros((64,)),
        advantages=jax.random.normal(jax.random.PRNGKey(3), (64,)),
        returns=jnp.zeros((64,)),
    )
    hyper = _hyper()
    _, m = ppo.ppo_loss(params, nets, batch, hyper)
    assert float(m["clip_fraction"]) == 0.0
    assert abs(float(m["approx_kl"])) < 1e-6
    # Non-vacuous: a changed std does move the ratio out of the clip range for some samples.
    changed = jax.tree_util.tree_map(lambda x: x, params)
    changed["policy"] = dict(changed["policy"])
    changed["policy"]["log_std"] = params["policy"]["log_std"] + 0.5
    _, m2 = ppo.ppo_loss(changed, nets, batch, hyper)
    assert float(m2["clip_fraction"]) > 0.1
    assert float(m2["approx_kl"]) > 1e-3


def test_explained_variance():
    r = jnp.array([1.0, 2.0, 3.0, 4.0])
    assert float(ppo.explained_variance(r, r)) == pytest.approx(1.0)
    assert float(ppo.explained_variance(jnp.full(4, 2.5), r)) == pytest.approx(0.0, abs=1e-6)
    assert math.isnan(float(ppo.explained_variance(r, jnp.ones(4))))


# --------------------------------------------------------------------------------------------------
# Normaliser
# --------------------------------------------------------------------------------------------------


def test_normalizer_matches_numpy_over_several_updates():
    rng = np.random.default_rng(1)
    dim = 5
    offset = np.array([0.0, 100.0, -3.0, 1e4, 7.0])
    scale = np.array([1.0, 0.5, 20.0, 0.1, 1e-3])
    shapes = [(3, 4, dim), (17, dim), (2, 6, dim), (1, dim)]
    state = ppo.init_normalizer(dim)
    update = jax.jit(ppo.update_normalizer)
    seen = []
    for shape in shapes:
        x = (offset + scale * rng.normal(size=shape)).astype(np.float32)
        seen.append(x.reshape(-1, dim).astype(np.float64))
        state = update(state, jnp.asarray(x))
        allx = np.concatenate(seen)
        np.testing.assert_allclose(np.asarray(state.mean), allx.mean(0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(state.var), allx.var(0), rtol=2e-3, atol=1e-8)
        assert float(state.count) == allx.shape[0]


def test_normalize_clips_and_floors_std():
    state = ppo.NormalizerState(
        mean=jnp.array([1.0, 5.0]), var=jnp.array([4.0, 0.0]), count=jnp.array(10.0)
    )
    out = np.asarray(ppo.normalize(state, jnp.array([[3.0, 5.0], [1.0, 5.001], [100.0, 9.0]])))
    np.testing.assert_allclose(out[0], [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(out[1], [0.0, 1.0], atol=1e-3)  # floor 1e-3, not 1e-8
    np.testing.assert_allclose(out[2], [10.0, 10.0])  # clipped


# --------------------------------------------------------------------------------------------------
# Hyper, schedule
# --------------------------------------------------------------------------------------------------


def test_hyper_validation_names_the_field():
    with pytest.raises(ValueError, match="lr_schedule"):
        _hyper(lr_schedule="cosine")
    with pytest.raises(ValueError, match="num_minibatches"):
        _hyper(num_minibatches=0)
    with pytest.raises(ValueError, match="value_clip"):
        _hyper(value_clip=-1.0)
    hash(_hyper())  # usable as a static jit argument


def test_linear_schedule_decays_per_update_call():
    hyper = _hyper(lr_schedule="linear", learning_rate=1.0, total_updates=4)
    sched = ppo.make_lr_schedule(hyper)
    spu = hyper.steps_per_update
    lrs = [float(sched(jnp.asarray(k * spu + j))) for k in range(4) for j in (0, spu - 1)]
    np.testing.assert_allclose(lrs, [1, 1, 0.75, 0.75, 0.5, 0.5, 0.25, 0.25])
    const = ppo.make_lr_schedule(dataclasses.replace(hyper, lr_schedule="constant"))
    assert float(const(jnp.asarray(1000))) == 1.0


# --------------------------------------------------------------------------------------------------
# Learning: a 1-D continuous bandit
# --------------------------------------------------------------------------------------------------


def test_ppo_update_solves_continuous_bandit():
    """Reward -(a - 0.5)^2, one-step episodes. The initial policy mean is ~0 (expected reward about
    -0.25 - sigma^2); after 60 iterations of ppo_update the deterministic action must be within
    0.02 of 0.5 and the mean sampled reward of the last 5 iterations above -0.01 (observed: about
    0.4994 and -0.0002; the std shrinks as the mean converges)."""
    num_envs, iterations = 256, 60
    nets = ppo.make_networks(1, 1, 1, (16,), (16,), "tanh", init_log_std=math.log(0.3))
    hyper = _hyper(
        learning_rate=1e-2,
        value_clip=0.5,  # exercise the clipped-value path too
        entropy_coef=0.0,
        update_epochs=4,
        num_minibatches=4,
        normalize_advantages=True,
        lr_schedule="linear",
        total_updates=iterations,
    )
    state = ppo.create_train_state(nets, hyper, jax.random.PRNGKey(0))
    obs = jnp.ones((1, num_envs, 1))  # (T=1, N, obs_dim)

    @jax.jit
    def iteration(state, rng):
        rng_act, rng_upd = jax.random.split(rng)
        actions, logp = nets.sample_action(state.params, obs, rng_act)
        rewards = -jnp.square(actions[..., 0] - 0.5)
        values = nets.value(state.params, obs)
        dones = jnp.ones_like(rewards, bool)
        adv, ret = ppo.compute_gae(rewards, values, jnp.zeros_like(values), dones,
                                   jnp.zeros_like(dones), hyper.discount, hyper.gae_lambda)
        batch = ppo.PPOBatch(obs, obs, actions, logp, values, adv, ret)
        state, metrics = ppo.ppo_update(state, batch, rng_upd, hyper)
        return state, jnp.mean(rewards), metrics

    rngs = jax.random.split(jax.random.PRNGKey(1), iterations)
    first_action = float(nets.deterministic_action(state.params, obs)[0, 0, 0])
    rewards = []
    for i in range(iterations):
        state, r, metrics = iteration(state, rngs[i])
        rewards.append(float(r))
    for k, v in metrics.items():
        assert np.isfinite(float(v)), k
    assert int(state.step) == iterations * hyper.steps_per_update
    final_action = float(nets.deterministic_action(state.params, obs)[0, 0, 0])
    assert abs(first_action) < 0.1
    assert abs(final_action - 0.5) < 0.02, final_action
    assert np.mean(rewards[-5:]) > -0.01, rewards[-5:]
    assert np.mean(rewards[-5:]) > np.mean(rewards[:5]) + 0.1
