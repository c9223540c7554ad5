"""The AMP history buffer: the last k per-frame feature vectors of an env (ARCHITECTURE.md §3.5).

An AMP sample is the k newest φ concatenated, oldest first; it is valid only when all k belong to
the current episode.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["History", "init_history", "push_history", "sample_valid", "sample_from_history"]


class History(NamedTuple):
    """The last k per-frame feature vectors of one env (or a batch: leading axes allowed).

    ``frames`` (..., k, F), oldest first; ``count`` (...,) how many of them belong to the current
    episode (capped at k). A sample is valid only when all k do (ARCHITECTURE.md §3.5).
    """

    frames: jax.Array
    count: jax.Array


def init_history(num_features: int, k: int, batch_shape: tuple[int, ...] = ()) -> History:
    """An empty history (zeros, count 0)."""
    return History(frames=jnp.zeros(tuple(batch_shape) + (k, num_features)),
                   count=jnp.zeros(tuple(batch_shape), dtype=jnp.int32))


def push_history(hist: History, phi: jax.Array, reset_mask: Any = None) -> History:
    """Append φ (..., F) as the newest entry.

    ``reset_mask`` (..., bool): True where φ is the first transition of a new episode — the older
    entries belong to another episode and are cleared (zeroed, count restarts at 1). Envs that
    replace the whole history with :func:`init_history` at reset can leave it None.
    """
    frames, count = hist.frames, hist.count
    k = frames.shape[-2]
    if reset_mask is not None:
        r = jnp.asarray(reset_mask, dtype=bool)
        frames = jnp.where(r[..., None, None], 0.0, frames)
        count = jnp.where(r, 0, count)
    frames = jnp.concatenate([frames[..., 1:, :], phi[..., None, :].astype(frames.dtype)], axis=-2)
    return History(frames=frames, count=jnp.minimum(count + 1, k).astype(jnp.int32))


def sample_valid(hist: History) -> jax.Array:
    """(...,) bool: the history holds k transitions of one episode (a usable AMP sample)."""
    return hist.count >= hist.frames.shape[-2]


def sample_from_history(hist: History) -> jax.Array:
    """(..., k·F) the AMP sample: the history frames concatenated, oldest first."""
    return hist.frames.reshape(hist.frames.shape[:-2] + (-1,))
