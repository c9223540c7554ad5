"""The AMP discriminator: an MLP with a scalar output, optionally spectral-normalised per layer.

Spectral normalisation uses ``flax.linen.SpectralNorm`` (flax 0.12.8): each Dense kernel is divided by
an estimate of its top singular value σ obtained by one power-iteration step from a stored vector u.
u and σ live in the ``"batch_stats"`` collection. They must be *carried*: the seed threw them away on
every call, so each step started power iteration from a fresh random u and σ was never accurate
(ARCHITECTURE.md §6). Call with ``update_stats=True`` and ``mutable=["batch_stats"]`` when training and keep
the returned collection; call with ``update_stats=False`` for inference (deterministic, state unchanged).
"""

from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax.numpy as jnp

from wildamp.amp.hyper import activation_fn

SN_COLLECTION = "batch_stats"


def layer_names(n_hidden: int) -> list[str]:
    """Dense layer names in order: ``hidden_0 … hidden_{n-1}, logit``."""
    return [f"hidden_{i}" for i in range(n_hidden)] + ["logit"]


class Discriminator(nn.Module):
    """MLP discriminator ``D: (B, D_in) -> (B,)``.

    Attributes:
      hidden: hidden layer widths.
      activation: activation name (see :data:`wildamp.amp.hyper.ACTIVATIONS`).
      use_spectral_norm: wrap every Dense layer (including the logit layer) in SpectralNorm.
    """

    hidden: tuple[int, ...]
    activation: str
    use_spectral_norm: bool

    @nn.compact
    def __call__(self, x: jnp.ndarray, *, update_stats: bool) -> jnp.ndarray:
        act = activation_fn(self.activation)
        names = layer_names(len(self.hidden))
        widths = list(self.hidden) + [1]
        for i, (name, width) in enumerate(zip(names, widths)):
            dense = nn.Dense(width, name=name)
            if self.use_spectral_norm:
                x = nn.SpectralNorm(dense, collection_name=SN_COLLECTION, name=f"sn_{name}")(
                    x, update_stats=update_stats)
            else:
                x = dense(x)
            if i < len(self.hidden):
                x = act(x)
        return x[..., 0]


def layer_sigmas(sn_state: Mapping[str, Any], n_hidden: int) -> list[jnp.ndarray]:
    """Per-layer σ estimates (order of :func:`layer_names`) from the spectral-norm state.

    Raises KeyError naming the layer when the state does not hold it (e.g. SN disabled).
    """
    out = []
    for name in layer_names(n_hidden):
        sn = sn_state.get(f"sn_{name}")
        key = f"{name}/kernel/sigma"
        if sn is None or key not in sn:
            raise KeyError(f"spectral-norm state has no sigma for layer {name!r} "
                           f"(keys: {list(sn_state)}); is use_spectral_norm on?")
        out.append(sn[key])
    return out


def layer_us(sn_state: Mapping[str, Any], n_hidden: int) -> list[jnp.ndarray]:
    """Per-layer power-iteration vectors u (shape (1, out_features)), order of :func:`layer_names`."""
    return [sn_state[f"sn_{name}"][f"{name}/kernel/u"] for name in layer_names(n_hidden)]
