"""Host-side discriminator health monitor carrying the seed's tuning guide.

The guide is the "Discriminator Tuning Guide" of the seed CHANGELOG (v0.2.0 lessons, "Quick Reference").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional

#: Conditions the monitor counts streaks of: disc_acc too high, disc_acc pinned near 0.5, AMP reward
#: below its floor.
STREAK_KINDS: tuple[str, ...] = ("too_strong", "collapsed", "reward")
#: Every kind of :class:`HealthWarning`: the streak kinds plus ``undecided`` (a collapsed/reward
#: streak while D scores both sample sets on the fake side of its midpoint).
HEALTH_KINDS: tuple[str, ...] = STREAK_KINDS + ("undecided",)

TOO_STRONG_GUIDE = ("Discriminator too strong (seed tuning guide: disc_acc 0.95+): ↓ disc_lr, "
                    "↓ update_steps, ↑ r1_gamma / ↑ input_noise_std. Also check that policy and reference "
                    "features come from the same feature function (the seed's zero foot contacts gave "
                    "disc_acc 1.00).")
#: disc_acc of a healthy adversarial game (seed tuning guide): D tells policy from reference often, not always.
HEALTHY_DISC_ACC: tuple[float, float] = (0.6, 0.8)
COLLAPSED_GUIDE = ("Discriminator collapsed (seed tuning guide: disc_acc ~0.50): ↑ disc_lr, ↑ update_steps, "
                   f"↓ r1_gamma. Healthy is disc_acc {HEALTHY_DISC_ACC[0]}-{HEALTHY_DISC_ACC[1]} with oscillation; "
                   "don't over-handicap it.")
UNDECIDED_GUIDE = ("The discriminator scores reference AND policy samples on the fake side of its midpoint: "
                   "it has not separated them yet (normal for the first iterations, as D starts near 0 — "
                   "more so with spectral norm), so a low AMP reward at this stage does not mean it is too "
                   "strong. If it lasts: ↑ disc_lr, ↑ update_steps, ↓ r1_gamma; check that the reference "
                   "features vary (constant channels are dropped) and that both sides use the same feature "
                   "function.")
REWARD_COLLAPSE_GUIDE = ("AMP reward collapsed: the discriminator calls every policy sample fake — treat as "
                         "too strong: ↓ disc_lr, ↓ update_steps, ↑ r1_gamma / ↑ input_noise_std; check "
                         "feature parity (contacts, frames, normalisation) between policy and reference.")


@dataclass(frozen=True)
class HealthWarning:
    """One warning of :class:`DiscHealthMonitor`: its ``kind`` (one of :data:`HEALTH_KINDS`), the
    streak length that fired it, and the full message with the tuning advice (``str(w)``)."""

    kind: str
    streak: int
    text: str

    def __post_init__(self) -> None:
        if self.kind not in HEALTH_KINDS:
            raise ValueError(f"unknown health warning kind {self.kind!r}; known: {list(HEALTH_KINDS)}")

    def __str__(self) -> str:
        return self.text


def _finite(metrics: Mapping[str, object], key: str) -> float:
    if key not in metrics:
        raise KeyError(f"DiscHealthMonitor: metric {key!r} missing (have: {sorted(metrics)})")
    v = float(metrics[key])   # accepts Python floats, numpy and jax scalars
    if not math.isfinite(v):
        raise FloatingPointError(f"DiscHealthMonitor: metric {key!r} is not finite ({v})")
    return v


class DiscHealthMonitor:
    """Warns when disc_acc stays ≥ ``high`` or inside ``low_band`` for ``window`` consecutive
    iterations, or when ``amp_reward_mean`` stays below ``reward_floor`` (None: not checked) as long.

    A warning fires when a streak reaches ``window`` and again every further ``window`` iterations
    while it lasts. Each warning is a :class:`HealthWarning` (kind, streak, message carrying the seed's
    tuning advice).

    The guides contradict each other (↑ vs ↓ disc_lr) in one common case: D has not separated the
    samples yet and scores *everything* as fake, so disc_acc sits at 0.5 and the reward drops low.
    With ``midpoint`` (the objective's decision threshold) and the metrics ``disc_real_mean``/
    ``disc_fake_mean``, a collapse or reward warning while disc_acc is pinned and both means are
    below the midpoint is reported as "undecided" instead (one message per iteration).
    """

    def __init__(self, window: int, high: float = 0.95, low_band: tuple[float, float] = (0.45, 0.55),
                 reward_floor: Optional[float] = 0.05, midpoint: Optional[float] = None) -> None:
        if window < 1:
            raise ValueError(f"DiscHealthMonitor: window must be >= 1, got {window}")
        if not low_band[0] < low_band[1] < high:
            raise ValueError(f"DiscHealthMonitor: need low_band[0] < low_band[1] < high, "
                             f"got {low_band}, {high}")
        self.window = window
        self.high = high
        self.low_band = low_band
        self.reward_floor = reward_floor
        self.midpoint = midpoint
        self.iteration = 0
        self.warnings_issued = 0
        self._streaks = {k: 0 for k in STREAK_KINDS}

    @property
    def judged(self) -> bool:
        """Whether a whole window of iterations was seen: before that no warning *can* fire."""
        return self.iteration >= self.window

    def verdict(self) -> str:
        """One line on the run so far. Silence only means "in range" once a window was filled."""
        if not self.judged:
            return (f"not enough iterations to judge: {self.iteration} seen, a warning needs "
                    f"{self.window} in a row")
        if self.warnings_issued == 0:
            return (f"no warning in {self.iteration} iterations (window {self.window}): disc_acc and the "
                    f"AMP reward stayed in range")
        return f"{self.warnings_issued} warning(s) in {self.iteration} iterations (window {self.window})"

    def update(self, metrics: Mapping[str, object]) -> list[HealthWarning]:
        """Feed one iteration's metrics (needs disc_acc, and amp_reward_mean if reward_floor is set);
        returns the warnings that fire at this iteration."""
        warnings = self._update(metrics)
        self.warnings_issued += len(warnings)
        return warnings

    def _update(self, metrics: Mapping[str, object]) -> list[HealthWarning]:
        self.iteration += 1
        acc = _finite(metrics, "disc_acc")
        conditions = {
            "too_strong": acc >= self.high,
            "collapsed": self.low_band[0] <= acc <= self.low_band[1],
            "reward": (self.reward_floor is not None
                       and _finite(metrics, "amp_reward_mean") < self.reward_floor),
        }
        fired = {}
        for name, active in conditions.items():
            self._streaks[name] = self._streaks[name] + 1 if active else 0
            s = self._streaks[name]
            if s and s % self.window == 0:
                fired[name] = s
        if ("collapsed" in fired or "reward" in fired) and conditions["collapsed"] and self._undecided(metrics):
            # disc_acc ~0.5 because D scores everything as fake: neither a collapse to "cannot tell"
            # nor a too-strong D; one message (once per iteration even when both streaks fire).
            streak = max(fired.pop("collapsed", 0), fired.pop("reward", 0))
            return [self._message("undecided", acc, metrics, streak)] + [
                self._message(n, acc, metrics, s) for n, s in fired.items()]
        return [self._message(n, acc, metrics, s) for n, s in fired.items()]

    def _undecided(self, metrics: Mapping[str, object]) -> bool:
        """Both sample means on the fake side of the midpoint (needs ``midpoint`` and the means)."""
        if self.midpoint is None or "disc_real_mean" not in metrics or "disc_fake_mean" not in metrics:
            return False
        return (_finite(metrics, "disc_real_mean") < self.midpoint
                and _finite(metrics, "disc_fake_mean") < self.midpoint)

    def _message(self, name: str, acc: float, metrics: Mapping[str, object], streak: int) -> HealthWarning:
        return HealthWarning(kind=name, streak=streak, text=self._text(name, acc, metrics, streak))

    def _text(self, name: str, acc: float, metrics: Mapping[str, object], streak: int) -> str:
        where = f"iteration {self.iteration}, {streak} iterations in a row"
        if name == "too_strong":
            return f"[disc health] disc_acc={acc:.3f} >= {self.high} ({where}). {TOO_STRONG_GUIDE}"
        if name == "collapsed":
            # disc_acc ≈ 0.5 also when D puts *both* clouds on one side of the midpoint; the means tell.
            means = "".join(f", {k}={float(metrics[k]):.3f}" for k in ("disc_real_mean", "disc_fake_mean")
                            if k in metrics)
            return (f"[disc health] disc_acc={acc:.3f} pinned in {list(self.low_band)}{means} ({where}). "
                    f"{COLLAPSED_GUIDE}")
        if name == "undecided":
            r = _finite(metrics, "amp_reward_mean") if self.reward_floor is not None else float("nan")
            return (f"[disc health] undecided: disc_acc={acc:.3f}, amp_reward_mean={r:.3f}, "
                    f"disc_real_mean={float(metrics['disc_real_mean']):.3f} and "
                    f"disc_fake_mean={float(metrics['disc_fake_mean']):.3f} both below the midpoint "
                    f"{self.midpoint:g} ({where}). {UNDECIDED_GUIDE}")
        r = float(metrics["amp_reward_mean"])
        return (f"[disc health] amp_reward_mean={r:.3f} < {self.reward_floor} ({where}). "
                f"{REWARD_COLLAPSE_GUIDE}")
