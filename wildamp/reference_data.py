"""The reference side of AMP for a run: dataset → AMP samples → fitted normaliser.

The samples come from :func:`wildamp.features.dataset_samples` (the same feature function the env
uses). Nothing is written here (a user's dataset may sit in a read-only folder): a training run
saves its fitted normaliser into its run folder, and checkpoints store it and its digest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from wildamp import features as F
from wildamp import paths
from wildamp.config import Config
from wildamp.reference.clip import MotionDataset, command_speed, commanded_clips, walked_speed


def embedded_default(path: Path) -> str | None:
    """What ``path`` is when it names one of the embedded (generated-on-first-use) datasets, else None."""
    resolved = path.resolve()
    if resolved == paths.DEFAULT_REFERENCE.resolve():
        return "the embedded gait"
    if resolved == paths.DEFAULT_TRACKED_REFERENCE.resolve():
        return "the embedded gait PD-tracked in MuJoCo"
    return None


def reference_dataset_path(cfg: Config) -> Path:
    """The configured dataset; an embedded default (:func:`embedded_default`) is generated on first use."""
    p = paths.resolve(cfg.reference.dataset)
    if not p.exists():
        what = embedded_default(p)
        if what is None:
            raise FileNotFoundError(
                f"reference.dataset {cfg.reference.dataset!r} does not exist ({p}); create it with "
                f"`wildamp reference generate --out {p}` or `wildamp reference convert-gmr …`")
        print(f"generating {what} → {p}")
        if p.resolve() == paths.DEFAULT_REFERENCE.resolve():
            from wildamp.reference.generator import ensure_default_reference
            ensure_default_reference(p)
        else:
            from wildamp.reference.tracked import ensure_tracked_default_reference
            ensure_tracked_default_reference(p)
    return p


@dataclass(frozen=True)
class ReferenceFeatures:
    normalizer: F.FeatureNormalizer
    samples: np.ndarray        # (N, D_out) float32, normalised
    clip_index: np.ndarray     # (N,) which clip each sample comes from
    clip_speed: np.ndarray     # (num_clips, 2) forward / lateral speed each clip walks (m/s)
    clip_command: np.ndarray   # (num_clips, 2) forward / lateral speed each clip was made for (m/s)
    clip_names: tuple[str, ...]

    def samples_near_speed(self, forward: float, lateral: float = 0.0) -> np.ndarray:
        """Samples of the clip(s) whose commanded speed is closest to (forward, lateral)."""
        d = np.hypot(self.clip_speed[:, 0] - forward, self.clip_speed[:, 1] - lateral)
        best = np.nonzero(np.isclose(d, d.min()))[0]
        return self.samples[np.isin(self.clip_index, best)]


def load_reference_dataset(cfg: Config, spec: Any) -> MotionDataset:
    """The configured reference clips, joints checked against the robot by name."""
    return MotionDataset.load(reference_dataset_path(cfg), joint_names=spec.joint_names)


def amp_reference_clips(cfg: Config, dataset: MotionDataset) -> MotionDataset:
    """The clips of ``dataset`` that are the AMP reference under ``cfg.reference.clips``: all, or those
    made for a speed inside ``cfg.env.command``'s ranges. ValueError when none is."""
    if cfg.reference.clips == "all":
        return dataset
    cmd = cfg.env.command
    clips = commanded_clips(dataset, cmd.forward_range, cmd.lateral_range)
    if not clips:
        raise ValueError(f"reference.clips: commanded — no clip of {list(dataset.clip_names)} was made for a "
                         f"speed inside the command ranges forward {list(cmd.forward_range)}, lateral "
                         f"{list(cmd.lateral_range)}; widen the ranges or use reference.clips: all")
    return MotionDataset(clips=clips, joint_names=dataset.joint_names, fps=dataset.fps, metadata=dataset.metadata)


def after_start(samples: np.ndarray, clip_index: np.ndarray, skip_frames: int,
                clip_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(samples, clip_index)`` without each clip's first ``skip_frames`` samples: sample i of a clip
    reads frames i … i + history (:func:`wildamp.features.clip_samples`), so no kept sample reads a
    frame before ``skip_frames``. ValueError naming a clip left without samples."""
    position = np.zeros(len(clip_index), np.int64)
    for c in np.unique(clip_index):
        rows = np.nonzero(clip_index == c)[0]
        if len(rows) <= skip_frames:
            raise ValueError(f"reference.skip_seconds leaves clip {clip_names[c]!r} without AMP samples "
                             f"({len(rows)} samples, {skip_frames} skipped); shorten the skip or lengthen the clip")
        position[rows] = np.arange(len(rows))
    keep = position >= skip_frames
    return samples[keep], clip_index[keep]


def load_reference_features(cfg: Config, model: mujoco.MjModel, spec: Any,
                            dataset: MotionDataset | None = None) -> ReferenceFeatures:
    """The run's reference side: fitted normaliser and normalised AMP samples with their clips,
    each clip's first ``reference.skip_seconds`` left out (:func:`after_start`).
    ``dataset``: the already loaded clips of ``cfg`` (loaded here when None); only its
    :func:`amp_reference_clips` are used."""
    dataset = amp_reference_clips(cfg, dataset if dataset is not None else load_reference_dataset(cfg, spec))
    samples, clip_index = F.dataset_samples(dataset, model, spec, cfg.features, ctrl_dt=cfg.env.ctrl_dt)
    samples, clip_index = after_start(samples, clip_index, int(round(cfg.reference.skip_seconds * dataset.fps)),
                                      [c.name for c in dataset.clips])
    layout = F.FeatureLayout.build(spec, cfg.features)
    names = layout.sample_channel_names()
    normalizer = F.FeatureNormalizer.from_config(samples, names, cfg.features)
    return ReferenceFeatures(
        normalizer=normalizer, samples=np.asarray(normalizer.apply(samples), np.float32),
        clip_index=np.asarray(clip_index), clip_speed=np.array([walked_speed(c) for c in dataset.clips]),
        clip_command=np.array([command_speed(c) for c in dataset.clips]),
        clip_names=tuple(c.name for c in dataset.clips))
