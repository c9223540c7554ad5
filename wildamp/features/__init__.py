"""THE AMP feature function: one JAX implementation for the policy and the reference (ARCHITECTURE.md §3.3).

Data flow::

    simulator state ──frame_from_data──▶ FeatureFrame ─┐
    reference clip ──reference_frames (qpos → FK)──▶ FeatureFrame ─┤
                                                       ▼
             frame_features(layout, params, prev, cur, dt) → φ (F,)   (pure JAX, jit/vmap-able)
                                                       ▼
             AMP sample = last ``history`` φ's concatenated, oldest first (k·F,)

The MJX env calls :func:`frame_from_data`, :func:`frame_features` and :func:`push_history` every
control step; the reference dataset goes through :func:`dataset_samples`, which replays every clip
kinematically through MJX and then calls the *same* :func:`frame_features`. There is no second
implementation to drift apart (a parity test in ``tests/test_features.py`` proves it).

Frames and conventions (ARCHITECTURE.md §3.1, §3.4):

- quaternions are wxyz; every formula below is invariant to the sign of the root quaternion
  (rotation matrices and the yaw are quadratic in q; relative rotations are sign-fixed before the log);
- root linear and angular velocities are expressed in the *heading* frame of the current state
  (world frame rotated by the root's yaw: yaw removed, pitch and roll kept), so every feature is
  invariant to a rotation of the whole motion about the world z axis;
- root height is the world z of the root body (a flat floor at z = 0 is assumed);
- foot contacts are ordered ``[left_toe, left_heel, right_toe, right_heel]``.

Contact estimators (``features.contact_estimator``):

- ``joints`` — the seed's v0.6.2 heuristic, made correct for the mirrored right hip. For each leg the
  *flexion-equivalent* hip pitch is ``s · q_hip`` with ``s = +1`` on the left (ARCHITECTURE.md §4: +q = leg
  forward) and ``s = spec.mirror_sign[right_hip_pitch]`` on the right (−1 for WildRobot), so "leg behind
  the body" means the same physical thing on both sides. A leg is in contact when its flexion-equivalent
  hip angle is below ``contact_threshold_angle``, with confidence
  ``clip(1 − |knee| / contact_knee_scale, contact_min_confidence, 1)``; toe and heel get that value.
  (The seed used ``q_hip`` unsigned on both sides: the right hip's flexion is negative, so the right
  foot was "in contact" in every frame — :func:`joint_contacts` with ``right_hip_sign=+1`` reproduces it.)
- ``fk`` (default) — geometric and soft, computed from the pad geoms' world positions::

      c = exp(−(max(h, 0) / fk_height_scale)²) · exp(−(v / fk_speed_scale)²)

  with ``h`` the pad's clearance (pad-centre height minus its rest height, i.e. its half-thickness
  for a flat pad: 0 when it rests on the floor, < 0 when it penetrates, which still counts as full
  contact) and ``v`` the pad's horizontal speed from the previous to the current state. A planted pad
  reads 1, a pad 1 cm up (scale 1 cm) reads e⁻¹, 2 cm up ≈ 0.02; a pad sliding at ``fk_speed_scale``
  reads e⁻¹. A Gaussian rather than a sigmoid so that a resting pad reads exactly 1 with one
  parameter per cue; both cues only need kinematics, so the reference and the policy get the same
  estimator.
- ``physics`` — ``tanh(F / physics_force_scale)`` of the simulator's pad normal forces (policy-side
  diagnostics). Reference frames carry NaN forces; using this estimator on them raises.

Modules (each re-exported here: ``from wildamp import features as F; F.frame_features`` and
``from wildamp.features import FeatureNormalizer`` are the public API):

- :mod:`~wildamp.features.layout` — the channel table (:class:`FeatureLayout`, :class:`Channel`),
  the numeric parameters (:class:`FeatureParams`, :func:`pad_rest_heights`) and the declared names
  (``GROUPS``, ``CONTACT_ORDER``, ``CONSTANT_STD_THRESHOLD``);
- :mod:`~wildamp.features.frames` — :class:`FrameIds`, :class:`FeatureFrame`, :func:`frame_from_data`,
  :func:`frame_from_pads`;
- :mod:`~wildamp.features.contacts` — the contact estimators :func:`joint_contacts`,
  :func:`fk_contacts`, :func:`physics_contacts`;
- :mod:`~wildamp.features.phi` — the feature function :func:`frame_features`;
- :mod:`~wildamp.features.history` — the AMP history buffer (:class:`History`, :func:`init_history`,
  :func:`push_history`, :func:`sample_valid`, :func:`sample_from_history`);
- :mod:`~wildamp.features.replay` — kinematic replay into FeatureFrames (:func:`clip_qpos`,
  :func:`reference_qvel`, :func:`reference_frames`, :func:`mj_frames`);
- :mod:`~wildamp.features.samples` — features and AMP samples of whole trajectories and datasets
  (:func:`trajectory_features`, :func:`clip_features`, :func:`window_samples`,
  :func:`trajectory_samples`, :func:`clip_samples`, :func:`dataset_samples`, :func:`check_finite`);
- :mod:`~wildamp.features.normalizer` — :class:`FeatureNormalizer`.

The rotation helpers :func:`heading_frame`, :func:`quat_rotate`, :func:`quat_rotate_inv` and
:func:`quat_rotvec` live in :mod:`wildamp.rotations` and are re-exported here.
"""

from __future__ import annotations

from wildamp.features.layout import (
    CONSTANT_STD_THRESHOLD, CONTACT_ORDER, GROUPS, Channel, FeatureLayout, FeatureParams, pad_rest_heights)
from wildamp.features.frames import FeatureFrame, FrameIds, frame_from_data, frame_from_pads
from wildamp.features.contacts import fk_contacts, joint_contacts, physics_contacts
from wildamp.features.phi import frame_features
from wildamp.features.history import History, init_history, push_history, sample_from_history, sample_valid
from wildamp.features.replay import clip_qpos, mj_frames, reference_frames, reference_qvel
from wildamp.features.samples import (
    check_finite, clip_features, clip_samples, dataset_samples, trajectory_features, trajectory_samples,
    window_samples)
from wildamp.features.normalizer import FeatureNormalizer

# Rotation helpers: one JAX implementation in wildamp.rotations (re-exported here).
from wildamp.rotations import heading_frame, quat_rotate, quat_rotate_inv, quat_rotvec

__all__ = [
    "GROUPS", "CONTACT_ORDER", "CONSTANT_STD_THRESHOLD",
    "FrameIds", "FeatureFrame", "frame_from_data", "FeatureLayout", "FeatureParams",
    "frame_features", "joint_contacts", "fk_contacts", "physics_contacts",
    "History", "init_history", "push_history", "sample_valid", "sample_from_history",
    "reference_frames", "reference_qvel", "trajectory_features", "clip_features", "window_samples",
    "trajectory_samples", "mj_frames", "clip_samples", "dataset_samples", "pad_rest_heights",
    "FeatureNormalizer", "check_finite", "heading_frame", "quat_rotvec",
]
