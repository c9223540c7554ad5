"""The reference side of AMP for a run: dataset → AMP samples → fitted normaliser.

The samples come from :func:`wildamp.features.dataset_samples` (the same feature function the env
uses). The fitted normaliser is stored next to the dataset so that notebooks and diagnostics use
the exact statistics a run trained with; checkpoints record its digest in their spec.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from wildamp import features as F
from wildamp import paths
from wildamp.config import Config
from wildamp.reference.clip import MotionDataset


def reference_dataset_path(cfg: Config) -> Path:
    """The configured dataset; the embedded default gait is generated on first use when absent."""
    p = paths.resolve(cfg.reference.dataset)
    if not p.exists():
        if p.resolve() == paths.DEFAULT_REFERENCE.resolve():
            from wildamp.reference.generator import ensure_default_reference
            print(f"generating the embedded reference gait → {p}")
            ensure_default_reference(p)
        else:
            raise FileNotFoundError(
                f"reference.dataset {cfg.reference.dataset!r} does not exist ({p}); create it with "
                f"`wildamp reference generate --out {p}` or `wildamp reference convert-gmr …`")
    return p


def load_reference_features(cfg: Config, model: mujoco.MjModel, spec: Any
                            ) -> tuple[F.FeatureNormalizer, np.ndarray]:
    """(normaliser, normalised reference AMP samples (N, D_out) float32) for ``cfg``."""
    path = reference_dataset_path(cfg)
    dataset = MotionDataset.load(path, joint_names=spec.joint_names)
    samples, _ = F.dataset_samples(dataset, model, spec, cfg.features, ctrl_dt=cfg.env.ctrl_dt)
    layout = F.FeatureLayout.build(spec, cfg.features)
    names = layout.sample_channel_names()
    normalizer = F.FeatureNormalizer.from_config(samples, names, cfg.features)
    key = hashlib.sha256(json.dumps(cfg.to_dict()["features"], sort_keys=True).encode()).hexdigest()[:10]
    normalizer.save(path.with_name(f"{path.stem}.normalizer-{key}.npz"))
    return normalizer, np.asarray(normalizer.apply(samples), np.float32)
