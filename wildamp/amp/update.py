"""Discriminator state, inference (rewards) and the jit-compatible discriminator update.

Order inside one training iteration (ARCHITECTURE.md §3.6), owned by the training loop:
rollout → AMP features → :func:`amp_reward` with the discriminator of rollout time (the state *before*
this iteration's update) → :func:`disc_update` → PPO.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Optional

import flax.struct as struct
import jax
import jax.numpy as jnp
import optax

from wildamp.amp.discriminator import SN_COLLECTION, Discriminator, layer_sigmas
from wildamp.amp.hyper import AMPHyper
from wildamp.amp.objective import AMPObjective, as_objective
from wildamp.amp.penalties import logit_l2_penalty, r1_penalty, wgan_gp_penalty
from wildamp.amp.replay import ReplayBuffer, replay_add, replay_fill, replay_init, replay_sample_unchecked


@struct.dataclass
class DiscState:
    """Everything the discriminator carries between training iterations (a pytree).

    ``sn_state`` is the spectral-norm power-iteration collection ({} when SN is off). The network
    architecture is static (not a leaf) so that :func:`disc_logits` needs only the state.
    """

    params: Any
    sn_state: Any
    opt_state: Any
    replay: ReplayBuffer
    step: jnp.ndarray                                   # int32: discriminator gradient steps so far
    hidden: tuple[int, ...] = struct.field(pytree_node=False)
    activation: str = struct.field(pytree_node=False)
    use_spectral_norm: bool = struct.field(pytree_node=False)

    @property
    def module(self) -> Discriminator:
        return Discriminator(self.hidden, self.activation, self.use_spectral_norm)

    def variables(self) -> dict:
        """Flax variable dict for ``module.apply``."""
        v = {"params": self.params}
        if self.use_spectral_norm:
            v[SN_COLLECTION] = self.sn_state
        return v


def make_disc_optimizer(hyper: AMPHyper) -> optax.GradientTransformation:
    """Adam with decoupled weight decay on kernels only (biases are not decayed)."""
    return optax.adamw(hyper.disc_lr, weight_decay=hyper.weight_decay,
                       mask=lambda p: jax.tree_util.tree_map(lambda x: x.ndim >= 2, p))


def init_disc_state(rng: jax.Array, input_dim: int, hyper: AMPHyper) -> DiscState:
    """Fresh discriminator (params, random SN vectors u, optimiser state) and an empty replay buffer."""
    if input_dim < 1:
        raise ValueError(f"init_disc_state: input_dim must be >= 1, got {input_dim}")
    # One compiled program instead of dozens of op-by-op dispatches (several seconds on CPU otherwise).
    return _init_disc_state_jit(rng, int(input_dim), hyper)


@partial(jax.jit, static_argnums=(1, 2))
def _init_disc_state_jit(rng: jax.Array, input_dim: int, hyper: AMPHyper) -> DiscState:
    module = Discriminator(hyper.hidden, hyper.activation, hyper.use_spectral_norm)
    variables = module.init(rng, jnp.zeros((1, input_dim), jnp.float32), update_stats=False)
    params = variables["params"]
    sn_state = variables.get(SN_COLLECTION, {}) if hyper.use_spectral_norm else {}
    return DiscState(
        params=params, sn_state=sn_state, opt_state=make_disc_optimizer(hyper).init(params),
        replay=replay_init(hyper.replay_buffer_size, input_dim), step=jnp.zeros((), jnp.int32),
        hidden=hyper.hidden, activation=hyper.activation, use_spectral_norm=hyper.use_spectral_norm)


def disc_logits(state: DiscState, x: jnp.ndarray) -> jnp.ndarray:
    """Inference D(x) for (B, D) features: no input noise, spectral-norm state not updated."""
    return state.module.apply(state.variables(), x, update_stats=False)


def amp_reward(state: DiscState, x: jnp.ndarray, objective: AMPObjective | str) -> jnp.ndarray:
    """Style reward (B,) of features x under ``objective``'s mapping. Use the rollout-time state."""
    return as_objective(objective).reward(disc_logits(state, x))


def disc_sigmas(state: DiscState) -> list[jnp.ndarray]:
    """Current σ estimate per layer (hidden_0 … logit); empty when SN is off."""
    return layer_sigmas(state.sn_state, len(state.hidden)) if state.use_spectral_norm else []


def _sample_rows(x: jnp.ndarray, mask: Optional[jnp.ndarray], rng: jax.Array, n: int) -> jnp.ndarray:
    """n rows of x (with replacement), uniform over the rows whose mask is true."""
    if mask is None:
        return x[jax.random.randint(rng, (n,), 0, x.shape[0])]
    w = jnp.asarray(mask).reshape(x.shape[0]).astype(jnp.float32)
    idx = jax.random.choice(rng, x.shape[0], (n,), replace=True, p=w / jnp.sum(w))
    return x[idx]


def sample_fake_batch(replay: ReplayBuffer, fresh: jnp.ndarray, rng: jax.Array, hyper: AMPHyper,
                      fresh_mask: Optional[jnp.ndarray] = None) -> jnp.ndarray:
    """Fake batch (batch_size, D): ``n_fresh`` rows from this iteration's valid policy samples, then
    ``n_replay`` rows from the replay buffer (fresh rows stand in while the buffer is still empty)."""
    k_fresh, k_replay, k_sub = jax.random.split(rng, 3)
    parts = []
    if hyper.n_fresh:
        parts.append(_sample_rows(fresh, fresh_mask, k_fresh, hyper.n_fresh))
    if hyper.n_replay:
        from_replay = replay_sample_unchecked(replay, k_replay, hyper.n_replay)
        substitute = _sample_rows(fresh, fresh_mask, k_sub, hyper.n_replay)
        parts.append(jnp.where(replay.count > 0, from_replay, substitute))
    return jnp.concatenate(parts, axis=0)


def _check_compatible(state: DiscState, hyper: AMPHyper, reference: jnp.ndarray, fresh: jnp.ndarray) -> None:
    arch = (state.hidden, state.activation, state.use_spectral_norm)
    want = (hyper.hidden, hyper.activation, hyper.use_spectral_norm)
    if arch != want:
        raise ValueError(f"disc_update: state architecture {arch} does not match hyper {want}")
    dim = state.replay.data.shape[1]
    for name, arr in (("reference features", reference), ("fresh policy features", fresh)):
        if arr.ndim != 2 or arr.shape[1] != dim or arr.shape[0] < 1:
            raise ValueError(f"disc_update: {name} must be (N >= 1, {dim}), got {arr.shape}")


def disc_update(state: DiscState, real_batch_source: jnp.ndarray, fresh_fake: jnp.ndarray, rng: jax.Array,
                hyper: AMPHyper, fresh_mask: Optional[jnp.ndarray] = None) -> tuple[DiscState, dict]:
    """``hyper.update_steps`` discriminator steps (a lax.scan), then insert the fresh samples into replay.

    Each step: a real batch drawn uniformly from ``real_batch_source`` (N_ref, D); a fake batch from
    ``fresh_fake`` (M, D) (rows with ``fresh_mask`` false — e.g. episode-boundary transitions — are
    never used nor stored) mixed with replay rows at ``replay_buffer_ratio``; Gaussian input noise on
    both; loss = LSGAN + penalty + logit L2; one optimiser step; the SN power-iteration state is carried.

    Returns the new state and float metrics (means over the steps; σ and replay_fill after them):
    disc_loss, disc_lsgan_loss, disc_penalty, disc_logit_l2, disc_acc, disc_real_mean/std,
    disc_fake_mean/std, disc_fresh_valid_frac, replay_fill, disc_sigma_<i>.
    """
    _check_compatible(state, hyper, real_batch_source, fresh_fake)
    objective = AMPObjective(hyper.objective)
    module = state.module
    tx = make_disc_optimizer(hyper)
    sn = hyper.use_spectral_norm
    b = hyper.batch_size

    def loss_fn(params, sn_state, real, fake, k_gp):
        x = jnp.concatenate([real, fake], axis=0)
        if sn:
            # One forward pass updates u/σ once per step; the penalty pass below reuses the *old*
            # u (update_stats=False), which yields the same normalised kernels as this pass.
            d, upd = module.apply({"params": params, SN_COLLECTION: sn_state}, x,
                                  update_stats=True, mutable=[SN_COLLECTION])
            new_sn = upd[SN_COLLECTION]
            variables = {"params": params, SN_COLLECTION: sn_state}
        else:
            d = module.apply({"params": params}, x, update_stats=False)
            new_sn = sn_state
            variables = {"params": params}
        d_real, d_fake = d[:b], d[b:]
        d_fn = lambda xx: module.apply(variables, xx, update_stats=False)  # noqa: E731
        lsgan = objective.loss(d_real, d_fake)
        if hyper.penalty == "r1":
            pen = r1_penalty(d_fn, real, hyper.r1_gamma)
        elif hyper.penalty == "wgan_gp":
            pen = wgan_gp_penalty(d_fn, real, fake, k_gp, hyper.r1_gamma)
        else:
            pen = jnp.zeros(())
        l2 = logit_l2_penalty(params, hyper.logit_l2)
        mid = objective.midpoint
        metrics = {
            "disc_loss": lsgan + pen + l2,
            "disc_lsgan_loss": lsgan,
            "disc_penalty": pen,
            "disc_logit_l2": l2,
            "disc_acc": 0.5 * (jnp.mean(d_real > mid) + jnp.mean(d_fake < mid)),
            "disc_real_mean": jnp.mean(d_real), "disc_real_std": jnp.std(d_real),
            "disc_fake_mean": jnp.mean(d_fake), "disc_fake_std": jnp.std(d_fake),
        }
        return lsgan + pen + l2, (new_sn, metrics)

    def step(carry, key):
        params, sn_state, opt_state = carry
        k_real, k_fake, k_nr, k_nf, k_gp = jax.random.split(key, 5)
        real = real_batch_source[jax.random.randint(k_real, (b,), 0, real_batch_source.shape[0])]
        fake = sample_fake_batch(state.replay, fresh_fake, k_fake, hyper, fresh_mask)
        if hyper.input_noise_std > 0:
            real = real + hyper.input_noise_std * jax.random.normal(k_nr, real.shape, real.dtype)
            fake = fake + hyper.input_noise_std * jax.random.normal(k_nf, fake.shape, fake.dtype)
        grads, (new_sn, metrics) = jax.grad(loss_fn, has_aux=True)(params, sn_state, real, fake, k_gp)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return (params, new_sn, opt_state), metrics

    keys = jax.random.split(rng, hyper.update_steps)
    (params, sn_state, opt_state), per_step = jax.lax.scan(
        step, (state.params, state.sn_state, state.opt_state), keys)
    replay = replay_add(state.replay, fresh_fake, fresh_mask)
    new_state = state.replace(params=params, sn_state=sn_state, opt_state=opt_state, replay=replay,
                              step=state.step + hyper.update_steps)

    metrics = {k: jnp.mean(v) for k, v in per_step.items()}
    metrics["replay_fill"] = replay_fill(replay)
    metrics["disc_fresh_valid_frac"] = (jnp.ones(()) if fresh_mask is None
                                        else jnp.mean(jnp.asarray(fresh_mask).astype(jnp.float32)))
    for i, s in enumerate(disc_sigmas(new_state)):
        metrics[f"disc_sigma_{i}"] = s
    return new_state, metrics


def reward_stats(rewards: jnp.ndarray, mask: Optional[jnp.ndarray] = None) -> dict:
    """amp_reward_mean/std/p10/p50/p90 over the rewards whose mask is true (NaN if none is)."""
    r = jnp.ravel(rewards).astype(jnp.float32)
    m = jnp.ones_like(r, bool) if mask is None else jnp.ravel(jnp.asarray(mask)).astype(bool)
    w = m.astype(jnp.float32)
    n = jnp.sum(w)
    mean = jnp.sum(r * w) / n
    std = jnp.sqrt(jnp.sum(w * jnp.square(r - mean)) / n)
    p10, p50, p90 = jnp.nanpercentile(jnp.where(m, r, jnp.nan), jnp.array([10.0, 50.0, 90.0]))
    return {"amp_reward_mean": mean, "amp_reward_std": std,
            "amp_reward_p10": p10, "amp_reward_p50": p50, "amp_reward_p90": p90}
