"""The LSGAN objective and its reward mapping, held together in ONE object.

The seed's worst adversarial bug (v0.4.0, "participation trophy") was a discriminator trained with
0/1 targets whose output was scored with the reward formula of ±1 targets: a certainly-fake sample
(D = 0) still earned 0.75. Here the targets and the reward come from a single name, so a mismatched
pair cannot be built from a config. The bug itself is kept only as
:func:`bug_demo_participation_trophy_reward`, for the notebook that explains it.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp

# name -> (real target, fake target). The reward formula is chosen by the same name in `reward`.
_TARGETS: dict[str, tuple[float, float]] = {
    "lsgan_01": (1.0, 0.0),    # seed v0.4.0 fix: reward = clip(D, 0, 1)
    "lsgan_pm1": (1.0, -1.0),  # AMP paper (Peng et al. 2021): reward = max(0, 1 - (D - 1)^2 / 4)
}
OBJECTIVES: tuple[str, ...] = tuple(_TARGETS)


@dataclass(frozen=True)
class AMPObjective:
    """LSGAN targets plus the reward mapping that matches them, selected by one name.

    ``"lsgan_01"``: targets real = 1, fake = 0; reward ``clip(D, 0, 1)``.
    ``"lsgan_pm1"``: targets real = +1, fake = -1; reward ``max(0, 1 - (D - 1)^2 / 4)``.
    Both map D = real target to reward 1 and D = fake target to reward 0.
    """

    name: str

    def __post_init__(self) -> None:
        if self.name not in _TARGETS:
            raise ValueError(f"unknown AMP objective {self.name!r}; known objectives: {list(OBJECTIVES)}")

    @property
    def real_target(self) -> float:
        """LSGAN regression target for reference (real) samples."""
        return _TARGETS[self.name][0]

    @property
    def fake_target(self) -> float:
        """LSGAN regression target for policy (fake) samples."""
        return _TARGETS[self.name][1]

    @property
    def midpoint(self) -> float:
        """Decision threshold between the two targets (used for disc_acc)."""
        return 0.5 * (self.real_target + self.fake_target)

    def loss(self, d_real: jnp.ndarray, d_fake: jnp.ndarray) -> jnp.ndarray:
        """LSGAN discriminator loss ``½(E[(D(real) − r)²] + E[(D(fake) − f)²])``."""
        return 0.5 * (jnp.mean(jnp.square(d_real - self.real_target))
                      + jnp.mean(jnp.square(d_fake - self.fake_target)))

    def reward(self, d: jnp.ndarray) -> jnp.ndarray:
        """Style reward in [0, 1] for discriminator outputs ``d`` (any shape)."""
        if self.name == "lsgan_01":
            return jnp.clip(d, 0.0, 1.0)
        # lsgan_pm1 (the only other name __post_init__ admits)
        return jnp.maximum(0.0, 1.0 - 0.25 * jnp.square(d - 1.0))


def as_objective(objective: AMPObjective | str) -> AMPObjective:
    """Accept an :class:`AMPObjective` or its config name."""
    return objective if isinstance(objective, AMPObjective) else AMPObjective(objective)


def bug_demo_participation_trophy_reward(d: jnp.ndarray) -> jnp.ndarray:
    """BUG DEMO ONLY — reproduces the seed's pre-v0.4.0 reward bug; never use for training.

    The discriminator was trained with 0/1 targets (``lsgan_01``) but its output was scored with the
    ±1 formula ``max(0, 1 − ¼(D − 1)²)``. At D = 0 (the fake target: "certainly fake") this pays
    0.75 — the "participation trophy". Not reachable from any config: :class:`AMPObjective` pairs
    each target set with its own reward.
    """
    return jnp.maximum(0.0, 1.0 - 0.25 * jnp.square(jnp.asarray(d) - 1.0))
