"""Discriminator hyper-parameters: one explicit, validated, hashable record (usable as a static jit arg)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import flax.linen as nn
import jax.numpy as jnp

from wildamp.amp.objective import OBJECTIVES

ACTIVATIONS: dict[str, Callable[[jnp.ndarray], jnp.ndarray]] = {
    "elu": nn.elu,
    "relu": nn.relu,
    "tanh": jnp.tanh,
    "swish": nn.swish,
    "leaky_relu": nn.leaky_relu,
}
PENALTIES: tuple[str, ...] = ("r1", "wgan_gp", "none")


def activation_fn(name: str) -> Callable[[jnp.ndarray], jnp.ndarray]:
    """Activation function by config name; unknown names are refused."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown discriminator activation {name!r}; known: {list(ACTIVATIONS)}")
    return ACTIVATIONS[name]


@dataclass(frozen=True)
class AMPHyper:
    """Everything that shapes the discriminator and its training. No defaults: every field is explicit.

    Attributes:
      hidden: hidden layer widths (seed: (512, 256)); () gives a linear discriminator.
      activation: one of :data:`ACTIVATIONS`.
      use_spectral_norm: spectral-normalise every Dense kernel (power-iteration state is carried).
      objective: ``"lsgan_01"`` or ``"lsgan_pm1"`` (targets and reward together, see AMPObjective).
      penalty: ``"r1"`` (γ/2·E‖∇D(x_real)‖²), ``"wgan_gp"`` (γ·E(‖∇D(x̂)‖−1)², notebook comparison
        only) or ``"none"`` (then r1_gamma must be 0 so that no value is silently ignored).
      r1_gamma: the gradient-penalty weight γ (seed v0.4.1: 5.0).
      logit_l2: weight of the L2 penalty Σw² on the output-layer kernel.
      weight_decay: decoupled weight decay (AdamW) on all kernels (biases are not decayed).
      disc_lr: discriminator learning rate (seed v0.2.0: 5e-5).
      update_steps: discriminator gradient steps per training iteration (seed: 2).
      batch_size: real and fake samples per discriminator step (each).
      input_noise_std: Gaussian noise added to real and fake inputs during training only (seed: 0.05).
      replay_buffer_size: capacity (rows) of the policy-sample replay buffer (seed v0.6.0: 100000).
      replay_buffer_ratio: fraction of each fake batch drawn from the replay buffer (seed: 0.5).
    """

    hidden: tuple[int, ...]
    activation: str
    use_spectral_norm: bool
    objective: str
    penalty: str
    r1_gamma: float
    logit_l2: float
    weight_decay: float
    disc_lr: float
    update_steps: int
    batch_size: int
    input_noise_std: float
    replay_buffer_size: int
    replay_buffer_ratio: float

    def __post_init__(self) -> None:
        # Lists from YAML would make the record unhashable (it is a static jit argument).
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"AMPHyper.hidden must contain positive widths, got {self.hidden}")
        activation_fn(self.activation)
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown AMP objective {self.objective!r}; "
                             f"known objectives: {list(OBJECTIVES)}")
        if self.penalty not in PENALTIES:
            raise ValueError(f"unknown discriminator penalty {self.penalty!r}; known: {list(PENALTIES)}")
        if self.r1_gamma < 0:
            raise ValueError(f"AMPHyper.r1_gamma must be >= 0, got {self.r1_gamma}")
        if self.penalty == "none" and self.r1_gamma != 0:
            raise ValueError(f"AMPHyper.penalty is 'none' but r1_gamma={self.r1_gamma} would be ignored; "
                             "set r1_gamma to 0 or choose penalty 'r1'/'wgan_gp'")
        for name in ("logit_l2", "weight_decay", "input_noise_std"):
            if getattr(self, name) < 0:
                raise ValueError(f"AMPHyper.{name} must be >= 0, got {getattr(self, name)}")
        if not self.disc_lr >= 0:
            raise ValueError(f"AMPHyper.disc_lr must be >= 0, got {self.disc_lr}")
        if self.update_steps < 1 or self.batch_size < 1:
            raise ValueError(f"AMPHyper.update_steps and batch_size must be >= 1, got "
                             f"{self.update_steps}, {self.batch_size}")
        if self.replay_buffer_size < 1:
            raise ValueError(f"AMPHyper.replay_buffer_size must be >= 1, got {self.replay_buffer_size}")
        if not 0.0 <= self.replay_buffer_ratio <= 1.0:
            raise ValueError(f"AMPHyper.replay_buffer_ratio must be in [0, 1], "
                             f"got {self.replay_buffer_ratio}")

    @property
    def n_replay(self) -> int:
        """Rows of each fake batch taken from the replay buffer (static)."""
        return int(round(self.batch_size * self.replay_buffer_ratio))

    @property
    def n_fresh(self) -> int:
        """Rows of each fake batch taken from this iteration's policy samples (static)."""
        return self.batch_size - self.n_replay


# The seed's last discriminator settings (v0.2.0 tuning, v0.4.0 objective and size, v0.4.1 R1,
# v0.6.0 SN + replay), for notebooks. The seed does not record its activation: "elu" is wildamp's
# choice. Training configs set every field explicitly.
SEED_AMP_HYPER = AMPHyper(
    hidden=(512, 256), activation="elu", use_spectral_norm=True, objective="lsgan_01", penalty="r1",
    r1_gamma=5.0, logit_l2=0.0, weight_decay=0.0, disc_lr=5e-5, update_steps=2, batch_size=256,
    input_noise_std=0.05, replay_buffer_size=100_000, replay_buffer_ratio=0.5,
)
