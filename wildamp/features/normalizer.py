"""FeatureNormalizer: the fixed normalisation of AMP samples, fitted on reference samples."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from wildamp.features.layout import CONSTANT_STD_THRESHOLD, FeatureLayout
from wildamp.features.samples import check_finite

__all__ = ["FeatureNormalizer"]


@dataclass(frozen=True, eq=False)
class FeatureNormalizer:
    """Fixed normalisation of AMP samples, fitted on reference samples (ARCHITECTURE.md §6).

    ``apply(x) = clip(((x − mean) / std)[..., keep], −clip, clip)`` with ``std ≥ std_floor``;
    channels whose reference std is below ``const_threshold`` are dropped (``keep`` False) when
    ``drop_constant`` — a channel the reference never moves carries no style information, and
    normalising it would amplify any policy motion without bound.
    """

    channel_names: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    keep: np.ndarray
    clip: float
    std_floor: float
    const_threshold: float

    @classmethod
    def fit(cls, samples: Any, channel_names: Sequence[str], std_floor: float, clip: float,
            drop_constant: bool, const_threshold: float = CONSTANT_STD_THRESHOLD) -> "FeatureNormalizer":
        """Fit on reference samples (N, D)."""
        x = np.asarray(samples, dtype=np.float64)
        names = tuple(channel_names)
        if x.ndim != 2 or x.shape[1] != len(names):
            raise ValueError(f"normaliser: samples have shape {x.shape}, expected (N, {len(names)})")
        if x.shape[0] < 2:
            raise ValueError("normaliser: need at least 2 samples to fit")
        check_finite(x, names, "normaliser fit samples")
        if std_floor <= 0 or clip <= 0:
            raise ValueError(f"normaliser: std_floor ({std_floor}) and clip ({clip}) must be > 0")
        mean = x.mean(axis=0)
        raw_std = x.std(axis=0)
        keep = (raw_std >= const_threshold) if drop_constant else np.ones(len(names), bool)
        if not keep.any():
            raise ValueError("normaliser: every channel is constant in the reference samples")
        return cls(channel_names=names, mean=mean.astype(np.float32),
                   std=np.maximum(raw_std, std_floor).astype(np.float32), keep=keep,
                   clip=float(clip), std_floor=float(std_floor), const_threshold=float(const_threshold))

    @classmethod
    def from_config(cls, samples: Any, channel_names: Sequence[str], cfg: Any) -> "FeatureNormalizer":
        """Fit with ``cfg.std_floor``, ``cfg.clip``, ``cfg.drop_constant_channels`` (a FeaturesConfig)."""
        return cls.fit(samples, channel_names, cfg.std_floor, cfg.clip, cfg.drop_constant_channels)

    @property
    def in_dim(self) -> int:
        return len(self.channel_names)

    @property
    def out_dim(self) -> int:
        """Dimension after dropping constant channels (the discriminator's input size)."""
        return int(self.keep.sum())

    @property
    def dropped(self) -> tuple[str, ...]:
        """Names of the dropped (constant) channels."""
        return tuple(n for n, k in zip(self.channel_names, self.keep) if not k)

    @property
    def kept(self) -> tuple[str, ...]:
        return tuple(n for n, k in zip(self.channel_names, self.keep) if k)

    def apply(self, samples: Any) -> Any:
        """Normalise (..., D) samples (numpy or JAX; jit-friendly: the kept indices are static)."""
        if samples.shape[-1] != self.in_dim:
            raise ValueError(f"normaliser: samples have {samples.shape[-1]} channels, fitted on {self.in_dim}")
        xp = jnp if isinstance(samples, jax.Array) or isinstance(samples, jax.core.Tracer) else np
        idx = np.nonzero(self.keep)[0]
        z = (samples[..., idx] - self.mean[idx]) / self.std[idx]
        return xp.clip(z, -self.clip, self.clip)

    def to_dict(self) -> dict[str, np.ndarray]:
        """Plain numpy arrays (for an .npz next to the dataset, or a checkpoint)."""
        return {
            "channel_names": np.array(self.channel_names, dtype=np.str_),
            "mean": np.asarray(self.mean, np.float32),
            "std": np.asarray(self.std, np.float32),
            "keep": np.asarray(self.keep, bool),
            "clip": np.array(self.clip, np.float64),
            "std_floor": np.array(self.std_floor, np.float64),
            "const_threshold": np.array(self.const_threshold, np.float64),
        }

    @classmethod
    def from_dict(cls, d: Any) -> "FeatureNormalizer":
        """Inverse of :meth:`to_dict` (accepts an open npz too); ValueError naming missing keys."""
        keys = ("channel_names", "mean", "std", "keep", "clip", "std_floor", "const_threshold")
        missing = [k for k in keys if k not in d]
        if missing:
            raise ValueError(f"feature normaliser data is missing {missing}")
        names = tuple(str(n) for n in np.asarray(d["channel_names"]).reshape(-1))
        out = cls(channel_names=names, mean=np.asarray(d["mean"], np.float32),
                  std=np.asarray(d["std"], np.float32), keep=np.asarray(d["keep"], bool),
                  clip=float(np.asarray(d["clip"])), std_floor=float(np.asarray(d["std_floor"])),
                  const_threshold=float(np.asarray(d["const_threshold"])))
        for k in ("mean", "std", "keep"):
            if getattr(out, k).shape != (len(names),):
                raise ValueError(f"feature normaliser: {k} has shape {getattr(out, k).shape}, "
                                 f"expected ({len(names)},)")
        return out

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_dict` to an .npz (no pickle)."""
        np.savez(Path(path), **self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "FeatureNormalizer":
        with np.load(Path(path), allow_pickle=False) as z:
            return cls.from_dict({k: z[k] for k in z.files})

    def check_compatible(self, other: "FeatureNormalizer | FeatureLayout | Sequence[str]") -> None:
        """Raise ValueError if ``other``'s channel names (a normaliser, a layout's sample channels or a
        list of names) differ from this normaliser's, naming the first differences."""
        if isinstance(other, FeatureNormalizer):
            names = other.channel_names
        elif isinstance(other, FeatureLayout):
            names = other.sample_channel_names()
        else:
            names = tuple(other)
        if tuple(names) != self.channel_names:
            missing = [n for n in self.channel_names if n not in names]
            extra = [n for n in names if n not in self.channel_names]
            raise ValueError(
                f"feature channels do not match the normaliser: {len(names)} vs {len(self.channel_names)} "
                f"channels; missing {missing[:6]}; unexpected {extra[:6]}"
                + ("; same names in a different order" if not missing and not extra else ""))

    def describe(self) -> str:
        """One-line summary (dimensions and dropped channels)."""
        return (f"FeatureNormalizer: {self.in_dim} → {self.out_dim} channels, std floor {self.std_floor}, "
                f"clip ±{self.clip}; dropped (constant in the reference): {list(self.dropped)}")
