"""Discriminator regularisers: R1 (on real samples), WGAN-GP (notebook comparison), logit-layer L2."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

DiscFn = Callable[[jnp.ndarray], jnp.ndarray]   # (B, D) -> (B,)


def _input_grads(d_fn: DiscFn, x: jnp.ndarray) -> jnp.ndarray:
    # D is applied row-wise (no cross-sample terms), so ∇_x Σ_b D(x_b) stacks the per-sample gradients.
    return jax.grad(lambda xx: jnp.sum(d_fn(xx)))(x)


def r1_penalty(d_fn: DiscFn, x_real: jnp.ndarray, gamma: float) -> jnp.ndarray:
    """R1 (Mescheder et al. 2018): ``(γ/2)·E_x[‖∇_x D(x)‖²]`` over real samples ``x_real`` (B, D)."""
    g = _input_grads(d_fn, x_real)
    return 0.5 * gamma * jnp.mean(jnp.sum(jnp.square(g), axis=-1))


def wgan_gp_penalty(d_fn: DiscFn, x_real: jnp.ndarray, x_fake: jnp.ndarray, rng: jax.Array,
                    gamma: float) -> jnp.ndarray:
    """WGAN-GP (Gulrajani et al. 2017): ``γ·E[(‖∇D(x̂)‖ − 1)²]``, x̂ uniform on real–fake segments.

    Kept for the notebook comparison only: the seed replaced it by R1 in v0.4.1 because a
    1-Lipschitz critic constraint does not match the bounded LSGAN targets.
    """
    alpha = jax.random.uniform(rng, (x_real.shape[0], 1), dtype=x_real.dtype)
    x_hat = alpha * x_real + (1.0 - alpha) * x_fake
    g = _input_grads(d_fn, x_hat)
    # eps inside the sqrt keeps the gradient of the norm finite where ∇D = 0.
    norm = jnp.sqrt(jnp.sum(jnp.square(g), axis=-1) + 1e-12)
    return gamma * jnp.mean(jnp.square(norm - 1.0))


def logit_l2_penalty(params: Mapping[str, Any], weight: float) -> jnp.ndarray:
    """``weight · Σ w²`` over the output ("logit") layer kernel (IsaacGymEnvs/AMP_for_hardware style)."""
    if "logit" not in params:
        raise KeyError(f"discriminator params have no 'logit' layer (keys: {list(params)})")
    return weight * jnp.sum(jnp.square(params["logit"]["kernel"]))
