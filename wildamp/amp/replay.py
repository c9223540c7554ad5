"""Functional, jit-compatible ring buffer of past policy AMP samples.

The seed configured a replay buffer but never used it (ARCHITECTURE.md §6); here it is a pytree carried in
:class:`wildamp.amp.update.DiscState`, filled after every discriminator update and sampled by it, and
its fill fraction is a metric.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp


class ReplayBuffer(NamedTuple):
    """Ring buffer: ``data`` (capacity, D), next write slot ``ptr`` and valid row count ``count``."""

    data: jnp.ndarray
    ptr: jnp.ndarray     # int32 scalar
    count: jnp.ndarray   # int32 scalar, <= capacity

    @property
    def capacity(self) -> int:
        return self.data.shape[0]


def replay_init(capacity: int, dim: int, dtype: jnp.dtype = jnp.float32) -> ReplayBuffer:
    """An empty buffer of ``capacity`` rows of width ``dim``."""
    if capacity < 1 or dim < 1:
        raise ValueError(f"replay buffer needs capacity >= 1 and dim >= 1, got {capacity}, {dim}")
    return ReplayBuffer(jnp.zeros((capacity, dim), dtype), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def replay_add(buf: ReplayBuffer, samples: jnp.ndarray, mask: Optional[jnp.ndarray] = None) -> ReplayBuffer:
    """Insert the rows of ``samples`` (n, D) whose ``mask`` (n,) is true, in order, overwriting the oldest.

    Static shapes: each kept row's slot is ``ptr + (its rank among kept rows)`` mod capacity (a
    cumulative sum), dropped rows scatter out of bounds and are discarded. When more than ``capacity``
    rows are kept only the newest ``capacity`` are written (no two rows race for a slot).
    """
    if samples.ndim != 2 or samples.shape[1] != buf.data.shape[1]:
        raise ValueError(f"replay_add: samples must be (n, {buf.data.shape[1]}), got {samples.shape}")
    n = samples.shape[0]
    cap = buf.capacity
    keep = jnp.ones((n,), bool) if mask is None else jnp.asarray(mask).reshape(n).astype(bool)
    rank = jnp.cumsum(keep.astype(jnp.int32)) - 1            # 0-based rank among kept rows
    n_keep = jnp.sum(keep.astype(jnp.int32))
    keep = keep & (rank >= n_keep - cap)                      # only the newest `cap` rows
    slot = jnp.where(keep, (buf.ptr + rank) % cap, cap)       # cap = out of bounds -> dropped
    data = buf.data.at[slot].set(samples.astype(buf.data.dtype), mode="drop")
    return ReplayBuffer(data, ((buf.ptr + n_keep) % cap).astype(jnp.int32),
                        jnp.minimum(buf.count + n_keep, cap).astype(jnp.int32))


def replay_sample(buf: ReplayBuffer, rng: jax.Array, n: int) -> jnp.ndarray:
    """``n`` rows drawn uniformly (with replacement) from the filled part of the buffer.

    Sampling an empty buffer is an error: eagerly it raises; under jit it cannot, and returns rows of
    zeros, so jitted callers must check ``buf.count`` (:func:`disc_update` falls back to fresh samples).
    """
    if not isinstance(buf.count, jax.core.Tracer) and int(buf.count) == 0:
        raise ValueError("replay_sample: the replay buffer is empty (count == 0)")
    return replay_sample_unchecked(buf, rng, n)


def replay_sample_unchecked(buf: ReplayBuffer, rng: jax.Array, n: int) -> jnp.ndarray:
    """As :func:`replay_sample` without the eager empty check (rows of zeros when empty); for callers
    that select between replay and fresh rows on ``buf.count`` themselves."""
    idx = jax.random.randint(rng, (n,), 0, jnp.maximum(buf.count, 1))
    return buf.data[idx]


def replay_fill(buf: ReplayBuffer) -> jnp.ndarray:
    """Fill fraction count / capacity in [0, 1] (a training metric)."""
    return buf.count.astype(jnp.float32) / buf.capacity
