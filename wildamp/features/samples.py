"""AMP samples of whole trajectories: batched φ over frame batches, and windows of k transitions.

:func:`trajectory_features` runs :func:`wildamp.features.phi.frame_features` over a FeatureFrame
batch (jitted, in fixed-size chunks); :func:`window_samples` cuts it into AMP samples the way the
env's history buffer does; :func:`dataset_samples` does both for every clip of a MotionDataset.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import mujoco
import numpy as np

from wildamp.features.contacts import physics_contacts
from wildamp.features.frames import FeatureFrame, FrameIds
from wildamp.features.layout import FeatureLayout, FeatureParams
from wildamp.features.phi import frame_features
from wildamp.features.replay import _CHUNK, reference_frames

__all__ = [
    "trajectory_features", "clip_features", "window_samples", "trajectory_samples",
    "clip_samples", "dataset_samples", "check_finite",
]


@functools.lru_cache(maxsize=16)
def _features_fn(layout: FeatureLayout):
    """Jitted φ over a batch of (prev, cur) pairs."""
    return jax.jit(jax.vmap(functools.partial(frame_features, layout), in_axes=(None, 0, 0, None)))


def _require_kinematic_estimator(layout: FeatureLayout) -> None:
    if layout.contact_estimator == "physics" and any(g == "foot_contacts" for g, _, _ in layout.groups):
        raise ValueError(
            "contact_estimator='physics' cannot be used for reference motion: replayed clips have no "
            "contact forces (only a simulator provides them). Use 'fk' or 'joints', or drop the "
            "'foot_contacts' group.")


def trajectory_features(layout: FeatureLayout, params: FeatureParams, frames: FeatureFrame,
                        dt: float) -> np.ndarray:
    """(T-1, F) per-transition features φ_i = frame_features(frame_i, frame_i+1) of a frame batch
    (a reference replay or a simulated trajectory), jitted in fixed-size chunks.

    The ``physics`` estimator needs every frame's forces: NaN forces raise here (inside jit they
    could not), and for kinematic estimators unknown forces are replaced by zeros before tracing,
    so NaN never enters the computation.
    """
    T = int(np.shape(frames.qpos)[0])
    n = T - 1
    if n < 1:
        raise ValueError("trajectory_features needs at least 2 frames")
    uses_forces = layout.contact_estimator == "physics" and any(
        g == "foot_contacts" for g, _, _ in layout.groups)
    force = np.asarray(frames.contact_force)
    if uses_forces:
        physics_contacts(force[1:], params)  # raises, naming the problem, on NaN (unknown) forces
    else:
        force = np.zeros_like(force)
    frames = frames._replace(contact_force=force)
    pad_to = -(-n // _CHUNK) * _CHUNK

    def pairs(x: Any, lo: int) -> np.ndarray:
        x = np.asarray(x)[lo:lo + n]
        return np.concatenate([x, np.repeat(x[-1:], pad_to - n, axis=0)])

    prev = FeatureFrame(*(pairs(a, 0) for a in frames))
    cur = FeatureFrame(*(pairs(a, 1) for a in frames))
    fn = _features_fn(layout)
    out = [np.asarray(fn(params, jax.tree.map(lambda a: a[s:s + _CHUNK], prev),
                         jax.tree.map(lambda a: a[s:s + _CHUNK], cur), dt))
           for s in range(0, pad_to, _CHUNK)]
    return np.concatenate(out)[:n]


def clip_features(layout: FeatureLayout, params: FeatureParams, frames: FeatureFrame,
                  dt: float) -> np.ndarray:
    """:func:`trajectory_features` of kinematically replayed reference frames (refuses ``physics``)."""
    _require_kinematic_estimator(layout)
    return trajectory_features(layout, params, frames, dt)


def window_samples(phi: np.ndarray, k: int) -> np.ndarray:
    """(T-1-k+1, k·F) AMP samples from per-transition features (T-1, F) of ONE continuous
    trajectory: every window of k consecutive φ, oldest first (as the env's history buffer)."""
    phi = np.asarray(phi)
    n = phi.shape[0] - k + 1
    if n < 1:
        return np.zeros((0, k * phi.shape[1]), dtype=phi.dtype)
    idx = np.arange(n)[:, None] + np.arange(k)[None, :]
    return phi[idx].reshape(n, k * phi.shape[1])


def trajectory_samples(layout: FeatureLayout, params: FeatureParams, trajectories: Sequence[FeatureFrame],
                       dt: float) -> tuple[np.ndarray, np.ndarray]:
    """AMP samples of several continuous trajectories (e.g. simulated episodes):
    ``(samples (N, k·F), trajectory_index (N,))``; windows never span two trajectories."""
    out, index = [], []
    for i, frames in enumerate(trajectories):
        s = window_samples(trajectory_features(layout, params, frames, dt), layout.history)
        out.append(s)
        index.append(np.full(s.shape[0], i, dtype=np.int64))
    if not out:
        raise ValueError("trajectory_samples: no trajectories")
    return np.concatenate(out), np.concatenate(index)


def clip_samples(mjx_model: Any, ids: FrameIds, layout: FeatureLayout, params: FeatureParams,
                 clip: Any) -> np.ndarray:
    """(T − k, k·F) AMP samples of one clip: every window of k consecutive transitions."""
    _require_kinematic_estimator(layout)
    frames = reference_frames(mjx_model, ids, clip)
    return window_samples(clip_features(layout, params, frames, 1.0 / float(clip.fps)), layout.history)


def dataset_samples(dataset: Any, model: mujoco.MjModel, spec: Any, features_cfg: Any,
                    ctrl_dt: float | None = None, mjx_model: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """AMP samples of a MotionDataset: ``(samples (N, k·F), clip_index (N,))``.

    Windows never cross clip boundaries. ``ctrl_dt``, if given, must match the dataset's frame period
    (AMP samples compare transitions at the control rate; resample the dataset otherwise).
    Raises ValueError for the ``physics`` estimator (no forces in reference data) and for non-finite
    features (naming the channel and clip).
    """
    if ctrl_dt is not None and abs(float(dataset.fps) * float(ctrl_dt) - 1.0) > 1e-6:
        raise ValueError(f"reference dataset runs at {dataset.fps} fps but the control rate is "
                         f"{1.0 / ctrl_dt:g} Hz; resample it (wildamp.reference.resample) first")
    layout = FeatureLayout.build(spec, features_cfg)
    _require_kinematic_estimator(layout)
    params = FeatureParams.from_config(features_cfg, spec, model)
    ids = FrameIds.from_model(model, spec)
    if mjx_model is None:
        from wildamp.physics import make_mjx_model
        mjx_model = make_mjx_model(model)
    out, index = [], []
    names = layout.sample_channel_names()
    for ci, clip in enumerate(dataset.clips):
        s = clip_samples(mjx_model, ids, layout, params, clip)
        check_finite(s, names, what=f"features of clip {clip.name!r}")
        out.append(s)
        index.append(np.full(s.shape[0], ci, dtype=np.int64))
    samples = np.concatenate(out)
    if samples.shape[0] == 0:
        raise ValueError(f"reference dataset has no clip longer than history={layout.history} frames")
    return samples, np.concatenate(index)


def check_finite(samples: Any, channel_names: Sequence[str], what: str = "features") -> None:
    """Raise ValueError naming the first channels that hold NaN/inf values."""
    x = np.asarray(samples)
    bad = ~np.isfinite(x).reshape(-1, x.shape[-1]).all(axis=0)
    if bad.any():
        names = [channel_names[i] for i in np.nonzero(bad)[0][:5]]
        raise ValueError(f"{what}: non-finite values in channel(s) {names}"
                         + (" ..." if bad.sum() > 5 else ""))
