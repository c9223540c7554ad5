"""Speed-conditioned discriminator input: AMP features ⊕ the commanded speed they were made under.

Pooled over all commanded clips, the discriminator judges a policy sample against every speed's
reference at once, while the style check judges it against the clip of its own speed. With the
condition appended, D(x, c) judges x against the reference at speed c (``amp.condition_on_command``).

The condition is the forward and lateral commanded speed, each scaled to [−1, 1] over its command
range; an axis whose range is a single value carries no information and is left out (yaw rate is
never used: reference clips walk straight).

Reference clips come at a few discrete speeds while commands are drawn from a range, so a reference
sample's condition cannot simply be its clip's speed — the discriminator would learn that real samples
sit on a grid and fake ones between it, a signal the policy cannot act on. Each clip instead owns the
part of the range closer to it than to any other clip's speed (per axis, halfway to its neighbours),
its samples' conditions are drawn uniformly from that cell, and clips are drawn in proportion to their
cell's size: the condition's marginal is uniform over the range on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

#: Command components a condition may use: (index in the command vector, name).
CONDITION_AXES: tuple[tuple[int, str], ...] = ((0, "forward"), (1, "lateral"))


@dataclass(frozen=True)
class SpeedCondition:
    """What conditions the discriminator: the command axes used and their ranges, and each
    reference clip's cell of the command range. Build with :func:`build_speed_condition`."""

    axes: tuple[int, ...]              # command indices used (subset of CONDITION_AXES' indices)
    lo: np.ndarray                     # (k,) command range per used axis
    hi: np.ndarray                     # (k,)
    cell_lo: np.ndarray                # (num_clips, k) each clip's cell of the range
    cell_hi: np.ndarray                # (num_clips, k)

    @property
    def size(self) -> int:
        """Number of condition columns appended to the discriminator input."""
        return len(self.axes)

    def scale(self, command: jax.Array) -> jax.Array:
        """(..., 3) commands → (..., k) conditions in [−1, 1] over the command ranges."""
        c = command[..., jnp.asarray(self.axes)]
        return 2.0 * (c - self.lo) / (self.hi - self.lo) - 1.0

    def clip_weights(self, clip_index: jax.Array) -> jax.Array:
        """(N,) sampling probability of each reference sample: its clip's cell volume, shared among the
        clip's samples, so that conditions drawn per :meth:`reference_rows` cover the range uniformly."""
        volume = jnp.asarray(np.prod(self.cell_hi - self.cell_lo, axis=1))
        clip_index = jnp.asarray(clip_index)
        per_clip = jnp.bincount(clip_index, length=volume.shape[0]).astype(jnp.float32)
        w = volume[clip_index] / jnp.maximum(per_clip[clip_index], 1.0)
        return w / jnp.sum(w)

    def reference_rows(self, rng: jax.Array, samples: jax.Array, clip_index: jax.Array) -> jax.Array:
        """(N, D + k) conditioned reference rows for one discriminator update: N samples redrawn by
        :meth:`clip_weights`, each with a condition drawn uniformly from its clip's cell."""
        k_pick, k_cond = jax.random.split(rng)
        n = samples.shape[0]
        idx = jax.random.choice(k_pick, n, (n,), replace=True, p=self.clip_weights(clip_index))
        lo, hi = jnp.asarray(self.cell_lo)[clip_index[idx]], jnp.asarray(self.cell_hi)[clip_index[idx]]
        speed = lo + (hi - lo) * jax.random.uniform(k_cond, lo.shape)
        command = jnp.zeros((n, 3), speed.dtype).at[:, jnp.asarray(self.axes)].set(speed)
        return jnp.concatenate([samples[idx], self.scale(command)], axis=-1)


def _cells(speeds: np.ndarray, inside: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Per clip, the interval of [lo, hi] nearer to its speed than to any other distinct speed among
    the clips ``inside`` the range; an empty interval (at the clip's speed) for the others."""
    distinct = np.unique(speeds[inside])
    edges = np.concatenate([[lo], 0.5 * (distinct[1:] + distinct[:-1]), [hi]])
    at = np.clip(np.searchsorted(distinct, speeds), 0, len(distinct) - 1)
    return np.where(inside, edges[at], speeds), np.where(inside, edges[at + 1], speeds)


def build_speed_condition(clip_command: np.ndarray, forward_range: tuple[float, float],
                          lateral_range: tuple[float, float]) -> SpeedCondition:
    """The condition of a run whose reference clips were made for ``clip_command`` (num_clips, 2)
    (forward, lateral m/s) and whose commands span the given ranges.

    A clip made for a speed outside the ranges (``reference.clips: all``) matches no command: its cell
    is empty and its samples are never drawn as conditioned reference rows. ValueError when both
    ranges are a single value (nothing to condition on) or no clip lies inside them."""
    ranges = {0: tuple(map(float, forward_range)), 1: tuple(map(float, lateral_range))}
    axes = tuple(i for i, _ in CONDITION_AXES if ranges[i][1] > ranges[i][0])
    if not axes:
        raise ValueError("amp.condition_on_command: the forward and lateral command ranges are single values; "
                         "there is no speed to condition the discriminator on")
    clip_command = np.asarray(clip_command, np.float64).reshape(-1, 2)
    inside = np.ones(len(clip_command), bool)
    for i in (0, 1):
        lo, hi = ranges[i]
        inside &= (clip_command[:, i] >= lo - 1e-9) & (clip_command[:, i] <= hi + 1e-9)
    if not inside.any():
        raise ValueError(f"amp.condition_on_command: no reference clip was made for a speed inside the command "
                         f"ranges forward {list(ranges[0])}, lateral {list(ranges[1])} (clip speeds "
                         f"{clip_command.tolist()})")
    cells = [_cells(clip_command[:, i], inside, *ranges[i]) for i in axes]
    return SpeedCondition(axes=axes, lo=np.array([ranges[i][0] for i in axes], np.float32),
                          hi=np.array([ranges[i][1] for i in axes], np.float32),
                          cell_lo=np.stack([a for a, _ in cells], 1).astype(np.float32),
                          cell_hi=np.stack([b for _, b in cells], 1).astype(np.float32))
