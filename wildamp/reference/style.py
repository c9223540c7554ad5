"""How different two motions look to the discriminator: AMP samples of single clips and style distances.

The samples come from the one feature function (:mod:`wildamp.features`, ARCHITECTURE.md §3.3):
a clip is replayed kinematically (qpos → forward kinematics → :class:`FeatureFrame`) and cut into
AMP samples exactly as :func:`wildamp.features.dataset_samples` does. The forward kinematics run
host-side in MuJoCo C (:func:`wildamp.features.mj_frames`) rather than through MJX: the samples
agree to float32 rounding (a test holds them together), and a repair scores a hundred candidate
clips, for which MJX's compile and per-call overhead on a CPU would cost more than the clips.

Two measures of style distance, both with the *source* as the reference side:

- :func:`style_distance`: the RMS of the standardised differences of every channel's mean and
  standard deviation (scaled as :class:`SourceStyle` says). It is smooth in a generator's
  parameters, which makes it the least-squares objective of :mod:`wildamp.reference.repair`.
- :func:`compare_style`: the leak detector (:func:`wildamp.diagnose.diagnose`): the held-out
  classifier AUC (0.5 = indistinguishable, 1.0 = perfectly separable) and the per-channel AUCs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import mujoco
import numpy as np

from wildamp import features as F
from wildamp.diagnose import LeakReport, diagnose
from wildamp.reference.clip import Clip
from wildamp.reference.feasibility import DEFAULT_CTRL_DT
from wildamp.reference.resample import resample_clip

__all__ = ["StyleFeatures", "SourceStyle", "StyleComparison", "compare_style", "style_distance",
           "format_channel_table"]


@dataclass(frozen=True)
class StyleFeatures:
    """The AMP feature function for single clips of one robot and one ``features`` config section."""

    model: mujoco.MjModel
    ids: F.FrameIds
    layout: F.FeatureLayout
    params: F.FeatureParams
    ctrl_dt: float = DEFAULT_CTRL_DT

    @classmethod
    def build(cls, model: mujoco.MjModel, spec: Any, features_cfg: Any,
              ctrl_dt: float = DEFAULT_CTRL_DT) -> "StyleFeatures":
        """Layout, parameters and frame ids of ``spec`` on ``model`` for a FeaturesConfig."""
        return cls(model=model, ids=F.FrameIds.from_model(model, spec),
                   layout=F.FeatureLayout.build(spec, features_cfg),
                   params=F.FeatureParams.from_config(features_cfg, spec, model), ctrl_dt=float(ctrl_dt))

    @property
    def channel_names(self) -> tuple[str, ...]:
        """Names of the sample channels (``group.name@t-k``)."""
        return self.layout.sample_channel_names()

    def samples(self, clip: Clip) -> np.ndarray:
        """(N, D) AMP samples of ``clip`` (resampled to the control rate first, as training sees it)."""
        if abs(clip.fps * self.ctrl_dt - 1.0) > 1e-9:
            clip = resample_clip(clip, 1.0 / self.ctrl_dt)
        full = clip.to_qpos(self.ids, base=np.asarray(self.model.qpos0, dtype=np.float64))
        frames = F.mj_frames(self.model, self.ids, full)
        # Velocities from the float64 poses, as the MJX replay computes them.
        qvel = F.reference_qvel(full[:, self.ids.qpos_index], self.ctrl_dt).astype(np.float32)
        phi = F.clip_features(self.layout, self.params, frames._replace(qvel=qvel), self.ctrl_dt)
        out = F.window_samples(phi, self.layout.history)
        if out.shape[0] < 2:
            raise ValueError(f"clip {clip.name!r} is too short for AMP samples ({clip.num_frames} frames)")
        F.check_finite(out, self.channel_names, what=f"features of clip {clip.name!r}")
        return out


@dataclass(frozen=True)
class SourceStyle:
    """A source clip's samples and the per-channel scale of every residual against it.

    The scale is the pooled standard deviation of the source and a baseline motion (the embedded
    gait at the source's speed), at least the config's ``std_floor``: a channel the source holds
    still (straight knees) is then measured against how much it moves in walking, not against a
    spread of zero, and every channel counts, those constant in the source too (a normaliser fitted
    on the source would drop them, but a channel the source holds still and another clip moves is
    exactly a difference of style).
    """

    samples: np.ndarray
    scale: np.ndarray

    @classmethod
    def of(cls, samples: np.ndarray, baseline: np.ndarray, std_floor: float) -> "SourceStyle":
        """The source's samples and the pooled scale with the ``baseline`` samples."""
        samples, baseline = np.asarray(samples, np.float64), np.asarray(baseline, np.float64)
        if samples.ndim != 2 or baseline.shape[1:] != samples.shape[1:]:
            raise ValueError(f"source samples {samples.shape} and baseline samples {baseline.shape} differ in channels")
        pooled = np.sqrt(0.5 * (samples.var(axis=0) + baseline.var(axis=0)))
        return cls(samples=samples, scale=np.maximum(pooled, float(std_floor)))

    def residuals(self, samples: np.ndarray) -> np.ndarray:
        """Standardised differences of every channel's mean and std, (2 · channels,)."""
        other = np.asarray(samples, np.float64)
        return np.concatenate([(other.mean(axis=0) - self.samples.mean(axis=0)) / self.scale,
                               (other.std(axis=0) - self.samples.std(axis=0)) / self.scale])


def style_distance(source: SourceStyle, samples: np.ndarray) -> float:
    """RMS of :meth:`SourceStyle.residuals` (0: same channel means and spreads as the source)."""
    r = source.residuals(samples)
    return float(np.sqrt(np.mean(r * r)))


@dataclass(frozen=True)
class StyleComparison:
    """One clip against the source: what was compared, the leak report and the style distance."""

    label: str
    leak: LeakReport
    distance: float

    @property
    def classifier_auc(self) -> float:
        """Held-out AUC of a fresh classifier, source vs this clip."""
        return self.leak.classifier_auc

    def to_dict(self) -> dict:
        """JSON-ready summary (the per-channel AUCs included)."""
        return {"label": self.label, "classifier_auc": self.classifier_auc, "distance": self.distance,
                "channels": {c.name: {"folded_auc": c.folded_auc, "mean": c.other_mean, "std": c.other_std}
                             for c in self.leak.channels}}


def compare_style(label: str, source: SourceStyle, samples: np.ndarray,
                  channel_names: Sequence[str]) -> StyleComparison:
    """The leak detector and the style distance of ``samples`` against the source."""
    leak = diagnose(source.samples, samples, channel_names)
    return StyleComparison(label=label, leak=leak, distance=style_distance(source, samples))


def format_channel_table(before: StyleComparison, after: StyleComparison, top: int = 10) -> str:
    """The ``top`` channels most different from the source (largest folded AUC before or after).

    Only the newest frame's channels (``@t``) are listed: the older copies of a channel in a sample
    read the same. Means ± stds of the source, the ``before`` clip and the ``after`` clip.
    """
    b = {c.name: c for c in before.leak.channels}
    a = {c.name: c for c in after.leak.channels}
    names = [n for n in b if n.endswith("@t")] or list(b)
    names = sorted(names, key=lambda n: -max(b[n].folded_auc, a[n].folded_auc))[:top]
    w = max(len("channel"), *(len(n) for n in names))
    head = (f"{'channel'.ljust(w)}  {'source mean±std':>17}  {'before mean±std':>17}  {'after mean±std':>17}  "
            f"{'AUC before':>10}  {'AUC after':>9}")
    rows = [head, "-" * len(head)]
    for n in names:
        rows.append(f"{n.ljust(w)}  {b[n].ref_mean:8.3f}±{b[n].ref_std:<8.3f}  "
                    f"{b[n].other_mean:8.3f}±{b[n].other_std:<8.3f}  {a[n].other_mean:8.3f}±{a[n].other_std:<8.3f}  "
                    f"{b[n].folded_auc:10.3f}  {a[n].folded_auc:9.3f}")
    return "\n".join(rows)
