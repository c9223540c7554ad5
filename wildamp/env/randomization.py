"""Per-episode domain randomisation: scale factors drawn at every reset.

``dr = (friction, mass, servo kp)`` scales; ones when randomisation is off. How a backend applies
them to its model lives with the backend (:func:`wildamp.env.backends.randomized_mjx_model`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from wildamp.config import DomainRandomizationConfig

DR_FACTORS: tuple[str, ...] = ("friction", "mass", "kp")


def sample_randomization(rng: jax.Array, dr: DomainRandomizationConfig) -> jax.Array:
    """(friction, mass, kp) scale factors of one episode, uniform in the configured ranges."""
    if not dr.enabled:
        return jnp.ones(len(DR_FACTORS))
    lo = jnp.array([dr.friction_range[0], dr.mass_scale_range[0], dr.kp_scale_range[0]])
    hi = jnp.array([dr.friction_range[1], dr.mass_scale_range[1], dr.kp_scale_range[1]])
    return jax.random.uniform(rng, (len(DR_FACTORS),), minval=lo, maxval=hi)
