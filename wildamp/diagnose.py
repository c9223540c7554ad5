"""Leak diagnostics: which feature channels let a discriminator tell policy from reference?

The original project's discriminator won trivially (disc_acc 1.00) because one channel — foot
contacts, all zeros on the policy side — separated the two sets perfectly (ARCHITECTURE.md §6). A channel that
is *by itself* almost perfectly separable is such a leak: the discriminator learns it first and the
policy gets no useful style gradient. This module measures, for two sets of samples (reference vs
anything else):

- per channel: the rank-based AUC (the probability that a random "other" value exceeds a random
  reference value, ties counting ½), folded so that 1.0 = perfectly separable and 0.5 = identical
  distributions (|AUC − 0.5| + 0.5); means/stds per side; the fraction of each side's samples equal to
  its most common value (1.0 = a constant channel, like the zeros of the contacts bug);
- overall: the held-out AUC of a small L2-regularised logistic regression on standardised features
  (fitted by Newton/IRLS iterations on a train split, scored on the rest) — a "fresh classifier"
  estimate of how separable the sets are when all channels are used together.

- per channel, magnitude and spread: the folded AUC of ``|x − m|`` (``m`` the reference median) and
  the log variance ratio ``ln(var_other / var_ref)``. A channel near-constant on one side and moving
  on the other around the same centre (a pelvis rate) has a raw AUC near 0.5 but a magnitude AUC near 1.

A channel is flagged when its folded AUC ≥ ``threshold`` (default 0.95), when its folded magnitude AUC
is (reason "magnitude"; not for a channel constant in the reference, see below), or when the *other* side is
constant in it (≥ 99.9 % of its samples equal one value) while fewer than half of the reference's
samples take that value: a discriminator separates an exact constant trivially even where the AUC stays
just below the threshold (the zeros-for-contacts bug against soft contacts that are near 0 in swing).
A channel constant in the *reference* is not flagged but noted: the feature normaliser drops it
(``features.drop_constant_channels``), so the discriminator never sees it.

Stuck contacts (:func:`contact_activity`): a walking robot lifts every foot some of the time and
stands on it some of the time. A contact channel that is "on" in (almost) every sample, or in none,
carries no gait information and is a bug: the original's policy-side zeros ("never") and its
joint-angle heuristic that ignored the mirrored right hip ("always", right foot) both show up here
even when both sides share the bug and no per-channel AUC can see it.

CLI: ``wildamp diagnose features REF.npz OTHER.npz [--out FILE.json]`` (:func:`wildamp.cli.diagnose_features_main`);
each file is a MotionDataset npz (features computed with the config's ``features`` section) or a
feature set npz (``samples``, ``channel_names``; :func:`save_feature_set`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy.stats import rankdata

__all__ = [
    "ChannelReport", "LeakReport", "channel_auc", "separability", "classifier_auc", "diagnose",
    "format_table", "print_table", "ContactActivity", "contact_activity", "CONSTANT_FRACTION", "contact_agreement",
    "random_servo_rollouts", "save_feature_set", "load_feature_set", "load_samples",
    "DEFAULT_THRESHOLD",
]

#: Folded per-channel AUC at or above which a channel is flagged as a leak.
DEFAULT_THRESHOLD = 0.95
# Per-side cap on the samples used (AUC and the classifier converge long before; keeps it fast).
_MAX_SAMPLES = 20000


@dataclass
class ChannelReport:
    """Separability of one channel between the reference and the other set."""

    name: str
    auc: float            # P(other > ref) + ½ P(other == ref)
    folded_auc: float     # 0.5 + |auc − 0.5|: 1.0 = perfectly separable
    ref_mean: float
    ref_std: float
    other_mean: float
    other_std: float
    ref_const_frac: float    # fraction of reference samples equal to the reference's mode
    other_const_frac: float  # same for the other set
    flagged: bool
    reason: str = ""         # "auc", "magnitude", "constant on the other side", "" — or "reference constant"
    magnitude_auc: float = 0.5  # folded AUC of |x − reference median|: 1.0 = spreads perfectly separable
    log_var_ratio: float = 0.0  # ln(var_other / var_ref) (variances floored at 1e-24)


@dataclass
class LeakReport:
    """All channels, the classifier AUC and the flagged channels."""

    channels: list[ChannelReport]
    classifier_auc: float
    threshold: float
    n_ref: int
    n_other: int
    flagged: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"channels": [asdict(c) for c in self.channels], "classifier_auc": self.classifier_auc,
                "threshold": self.threshold, "n_ref": self.n_ref, "n_other": self.n_other,
                "flagged": list(self.flagged)}

    def to_json(self, indent: int = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)


def _check_pair(ref: np.ndarray, other: np.ndarray, channel_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(ref, dtype=np.float64)
    other = np.asarray(other, dtype=np.float64)
    if ref.ndim != 2 or other.ndim != 2:
        raise ValueError(f"expected 2-D sample arrays, got shapes {ref.shape} and {other.shape}")
    if ref.shape[1] != other.shape[1] or ref.shape[1] != len(channel_names):
        raise ValueError(f"channel count mismatch: reference {ref.shape[1]}, other {other.shape[1]}, "
                         f"names {len(channel_names)}")
    if ref.shape[0] < 2 or other.shape[0] < 2:
        raise ValueError(f"need at least 2 samples per side, got {ref.shape[0]} and {other.shape[0]}")
    for what, x in (("reference", ref), ("other", other)):
        bad = ~np.isfinite(x).all(axis=0)
        if bad.any():
            raise ValueError(f"{what} samples have non-finite values in channel(s) "
                             f"{[channel_names[i] for i in np.nonzero(bad)[0][:5]]}")
    return ref, other


def _subsample(x: np.ndarray, rng: np.random.Generator, n: int = _MAX_SAMPLES) -> np.ndarray:
    return x if x.shape[0] <= n else x[rng.choice(x.shape[0], n, replace=False)]


def channel_auc(ref: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Per-column AUC = P(other > ref) + ½·P(other = ref) via average ranks (Mann–Whitney U)."""
    ref = np.atleast_2d(np.asarray(ref, dtype=np.float64).T).T
    other = np.atleast_2d(np.asarray(other, dtype=np.float64).T).T
    n0, n1 = ref.shape[0], other.shape[0]
    ranks = rankdata(np.concatenate([ref, other]), axis=0)  # ties get their average rank
    u = ranks[n0:].sum(axis=0) - n1 * (n1 + 1) / 2.0
    return u / (n0 * n1)


#: A side is "constant" in a channel when at least this fraction of its samples share one value.
CONSTANT_FRACTION = 0.999


def _mode(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column, (most common value, fraction of rows equal to it)."""
    val, frac = np.empty(x.shape[1]), np.empty(x.shape[1])
    for j in range(x.shape[1]):
        u, counts = np.unique(x[:, j], return_counts=True)
        k = int(np.argmax(counts))
        val[j], frac[j] = u[k], counts[k] / x.shape[0]
    return val, frac


def separability(ref: np.ndarray, other: np.ndarray, channel_names: Sequence[str],
                 threshold: float = DEFAULT_THRESHOLD, seed: int = 0) -> list[ChannelReport]:
    """Per-channel reports (see the module docstring); ``flagged`` = folded AUC ≥ ``threshold``."""
    ref, other = _check_pair(ref, other, channel_names)
    rng = np.random.default_rng(seed)
    ref, other = _subsample(ref, rng), _subsample(other, rng)
    auc = channel_auc(ref, other)
    folded = 0.5 + np.abs(auc - 0.5)
    centre = np.median(ref, axis=0)
    magnitude = 0.5 + np.abs(channel_auc(np.abs(ref - centre), np.abs(other - centre)) - 0.5)
    log_var = np.log(np.maximum(other.var(axis=0), 1e-24) / np.maximum(ref.var(axis=0), 1e-24))
    (rv, rc), (ov, oc) = _mode(ref), _mode(other)
    out = []
    for j, n in enumerate(channel_names):
        # The other side constant at a value the reference rarely takes (zeros for contacts).
        const_other = oc[j] >= CONSTANT_FRACTION and np.mean(ref[:, j] == ov[j]) < 0.5
        reason = ("auc" if folded[j] >= threshold else "magnitude" if magnitude[j] >= threshold and rc[j] < CONSTANT_FRACTION
                  else "constant on the other side" if const_other else "")
        flagged = bool(reason)
        if not flagged and rc[j] >= CONSTANT_FRACTION:
            reason = "reference constant"  # dropped by the normaliser (drop_constant_channels)
        out.append(ChannelReport(name=str(n), auc=float(auc[j]), folded_auc=float(folded[j]),
                                 ref_mean=float(ref[:, j].mean()), ref_std=float(ref[:, j].std()),
                                 other_mean=float(other[:, j].mean()), other_std=float(other[:, j].std()),
                                 ref_const_frac=float(rc[j]), other_const_frac=float(oc[j]),
                                 flagged=flagged, reason=reason, magnitude_auc=float(magnitude[j]),
                                 log_var_ratio=float(log_var[j])))
    return out


def classifier_auc(ref: np.ndarray, other: np.ndarray, seed: int = 0, test_fraction: float = 0.3,
                   l2: float = 1e-2, iterations: int = 30) -> float:
    """Held-out AUC of an L2-regularised logistic regression (reference = 0, other = 1).

    Features are standardised with the training split's pooled mean/std (constant columns get std
    1); classes are weighted to equal total weight; Newton (IRLS) iterations with a ridge ``l2``
    keep the weights finite even for perfectly separable sets. Returns the AUC of the decision
    scores on the held-out split (0.5 = chance, 1.0 = perfectly separable).
    """
    ref = np.asarray(ref, dtype=np.float64)
    other = np.asarray(other, dtype=np.float64)
    rng = np.random.default_rng(seed)
    ref, other = _subsample(ref, rng), _subsample(other, rng)

    def split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = rng.permutation(x.shape[0])
        n_test = max(1, int(round(test_fraction * x.shape[0])))
        return x[p[n_test:]], x[p[:n_test]]

    r_tr, r_te = split(ref)
    o_tr, o_te = split(other)
    if r_tr.shape[0] < 1 or o_tr.shape[0] < 1:
        raise ValueError("classifier_auc: too few samples for a train/test split")
    x = np.concatenate([r_tr, o_tr])
    y = np.concatenate([np.zeros(len(r_tr)), np.ones(len(o_tr))])
    w = np.where(y == 1, 0.5 / len(o_tr), 0.5 / len(r_tr))
    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)

    def design(a: np.ndarray) -> np.ndarray:
        return np.concatenate([(a - mu) / sd, np.ones((a.shape[0], 1))], axis=1)

    X = design(x)
    beta = np.zeros(X.shape[1])
    reg = np.full(X.shape[1], l2)
    reg[-1] = 0.0  # the bias is not regularised
    for _ in range(iterations):
        z = np.clip(X @ beta, -30.0, 30.0)
        p = 1.0 / (1.0 + np.exp(-z))
        g = X.T @ (w * (p - y)) + reg * beta
        H = (X * (w * p * (1 - p))[:, None]).T @ X + np.diag(reg + 1e-9)
        step = np.linalg.solve(H, g)
        beta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    s_ref = design(r_te) @ beta
    s_oth = design(o_te) @ beta
    return float(channel_auc(s_ref[:, None], s_oth[:, None])[0])


def diagnose(ref: np.ndarray, other: np.ndarray, channel_names: Sequence[str],
             threshold: float = DEFAULT_THRESHOLD, seed: int = 0) -> LeakReport:
    """Per-channel separability plus the classifier AUC, as one report."""
    chans = separability(ref, other, channel_names, threshold, seed)
    auc = classifier_auc(ref, other, seed=seed)
    return LeakReport(channels=chans, classifier_auc=auc, threshold=float(threshold),
                      n_ref=int(np.shape(ref)[0]), n_other=int(np.shape(other)[0]),
                      flagged=[c.name for c in chans if c.flagged])


def format_table(report: LeakReport | Sequence[ChannelReport], top: int | None = None) -> str:
    """Channels as aligned text, flagged ones first, then by folded AUC; flagged rows say LEAK (why)."""
    chans = report.channels if isinstance(report, LeakReport) else list(report)
    rows = sorted(chans, key=lambda c: (not c.flagged, -c.folded_auc))[: top or None]
    w = max([len("channel")] + [len(c.name) for c in rows])
    head = (f"{'channel'.ljust(w)}  {'AUC':>6}  {'fold':>6}  {'ref mean':>9}  {'ref std':>8}  "
            f"{'oth mean':>9}  {'oth std':>8}  {'|x|AUC':>6}  {'ln var':>7}  {'ref=const':>9}  {'oth=const':>9}  flag")
    lines = [head, "-" * len(head)]
    for c in rows:
        lines.append(f"{c.name.ljust(w)}  {c.auc:6.3f}  {c.folded_auc:6.3f}  {c.ref_mean:9.4f}  "
                     f"{c.ref_std:8.4f}  {c.other_mean:9.4f}  {c.other_std:8.4f}  {c.magnitude_auc:6.3f}  "
                     f"{c.log_var_ratio:7.2f}  {c.ref_const_frac:9.2f}  "
                     f"{c.other_const_frac:9.2f}  {('LEAK (' + c.reason + ')') if c.flagged else c.reason}")
    if isinstance(report, LeakReport):
        lines.append(f"classifier AUC (held-out logistic regression): {report.classifier_auc:.3f}; "
                     f"{len(report.flagged)} channel(s) flagged (folded AUC or magnitude AUC >= "
                     f"{report.threshold}, or constant on the other side): "
                     f"{report.flagged}")
    return "\n".join(lines)


def print_table(report: LeakReport | Sequence[ChannelReport], top: int | None = None) -> None:
    """Print :func:`format_table`."""
    print(format_table(report, top))


@dataclass
class ContactActivity:
    """How often one contact channel is "on" (> ``threshold``) and whether it is stuck."""

    name: str
    on_fraction: float
    stuck: str | None  # "always", "never" or None


def contact_activity(samples: np.ndarray, channel_names: Sequence[str], threshold: float = 0.05,
                     low: float = 0.01, high: float = 0.99,
                     prefix: str = "foot_contacts.") -> list[ContactActivity]:
    """On-fraction of every channel whose name starts with ``prefix``; ``stuck`` = "never" below
    ``low``, "always" above ``high``. Meant for samples of *walking* motion. Raises ValueError if
    there is no contact channel (nothing to check is an error, not a pass)."""
    x = np.asarray(samples)
    cols = [(j, n) for j, n in enumerate(channel_names) if str(n).startswith(prefix)]
    if not cols:
        raise ValueError(f"no channel named {prefix}* among {len(channel_names)} channels")
    out = []
    for j, n in cols:
        on = float((x[:, j] > threshold).mean())
        out.append(ContactActivity(str(n), on, "never" if on < low else "always" if on > high else None))
    return out


def contact_agreement(contacts: np.ndarray, forces: np.ndarray, force_threshold: float,
                      on_threshold: float) -> dict[str, float]:
    """Agreement of estimated contacts (T, 4) with simulator contact (normal force > threshold).

    Returns ``pad`` (fraction of pad-frames where ``contacts > on_threshold`` equals the truth),
    ``foot`` (same per foot, a foot being on if either pad is) and ``balanced`` (the mean of the
    true-positive and true-negative rates per pad, so that a constant estimate scores 0.5).
    """
    c = np.asarray(contacts) > on_threshold
    t = np.asarray(forces) > force_threshold
    if c.shape != t.shape:
        raise ValueError(f"contacts {c.shape} and forces {t.shape} differ in shape")
    foot = lambda x: np.stack([x[:, :2].any(axis=1), x[:, 2:].any(axis=1)], axis=1)  # noqa: E731
    tpr = (c & t).sum() / max(t.sum(), 1)
    tnr = (~c & ~t).sum() / max((~t).sum(), 1)
    return {"pad": float((c == t).mean()), "foot": float((foot(c) == foot(t)).mean()),
            "balanced": float(0.5 * (tpr + tnr))}


def random_servo_rollouts(model: Any, spec: Any, ids: Any, episodes: int, seconds: float, ctrl_dt: float,
                          action_scale: float, amplitude: float, hold_steps: int = 10,
                          seed: int = 0, fall_height: float = 0.25) -> list:
    """Policy-like trajectories in MuJoCo C: the robot starts at ``home`` and its servos track
    ``home + action_scale · a`` with random actions ``a ~ U(−amplitude, amplitude)`` held for
    ``hold_steps`` control steps (amplitude 0 = standing still under the servos). An episode ends
    after ``seconds`` or when the root falls below ``fall_height``. Returns one
    :class:`wildamp.features.FeatureFrame` batch per episode, with the pads' simulated normal forces.
    """
    import mujoco

    from wildamp import features as F
    from wildamp.physics import geom_ids, mj_geom_normal_forces

    rng = np.random.default_rng(seed)
    n_sub = int(round(ctrl_dt / model.opt.timestep))
    if n_sub < 1 or abs(n_sub * model.opt.timestep - ctrl_dt) > 1e-9:
        raise ValueError(f"ctrl_dt {ctrl_dt} is not a whole multiple of the model timestep {model.opt.timestep}")
    pads = geom_ids(model, spec.foot_geoms)
    # Actuator order is joint order (robot spec); map by name all the same.
    act_joint = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, int(model.actuator_trnid[a, 0]))
                 for a in range(model.nu)]
    cols = [list(spec.joint_names).index(n) for n in act_joint]
    home = np.asarray(spec.home_joint_pos)[cols]
    lo, hi = model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1]
    steps = int(round(seconds / ctrl_dt))
    out = []
    data = mujoco.MjData(model)
    for _ in range(episodes):
        mujoco.mj_resetData(model, data)
        data.qpos[:] = spec.home_qpos
        mujoco.mj_forward(model, data)
        qpos, qvel, force = [data.qpos.copy()], [data.qvel.copy()], [mj_geom_normal_forces(model, data, pads)]
        a = np.zeros(model.nu)
        for k in range(steps):
            if k % hold_steps == 0:
                a = rng.uniform(-amplitude, amplitude, model.nu)
            data.ctrl[:] = np.clip(home + action_scale * a, lo, hi)
            mujoco.mj_step(model, data, nstep=n_sub)
            if not np.isfinite(data.qpos).all() or data.qpos[2] < fall_height:
                break
            qpos.append(data.qpos.copy())
            qvel.append(data.qvel.copy())
            force.append(mj_geom_normal_forces(model, data, pads))
        if len(qpos) > 2:
            out.append(F.mj_frames(model, ids, np.array(qpos), np.array(qvel), np.array(force)))
    if not out:
        raise ValueError("random_servo_rollouts: every episode fell immediately")
    return out


# ================================================================================== files


def save_feature_set(path: str | os.PathLike, samples: np.ndarray, channel_names: Sequence[str]) -> None:
    """Write a feature set npz (``samples`` (N, D) float32, ``channel_names`` (D,)); no pickle."""
    samples = np.asarray(samples)
    if samples.ndim != 2 or samples.shape[1] != len(channel_names):
        raise ValueError(f"samples shape {samples.shape} does not match {len(channel_names)} channel names")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:  # a file object keeps np.savez from renaming the file
        np.savez(f, samples=samples.astype(np.float32), channel_names=np.array(list(channel_names), dtype=np.str_))


def load_feature_set(path: str | os.PathLike) -> tuple[np.ndarray, tuple[str, ...]]:
    """Read a feature set npz written by :func:`save_feature_set`."""
    with np.load(path, allow_pickle=False) as z:
        if "samples" not in z.files or "channel_names" not in z.files:
            raise ValueError(f"{path}: not a feature set (needs arrays 'samples' and 'channel_names'; "
                             f"has {sorted(z.files)})")
        return np.asarray(z["samples"]), tuple(str(n) for n in z["channel_names"])


def load_samples(path: str | os.PathLike, config: Any = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Samples and channel names from a feature set npz or a MotionDataset npz.

    A dataset's features are computed with ``config``'s ``features`` section (a Config, or a path to
    a YAML config; default ``configs/smoke.yaml``) and its robot model/spec.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    with np.load(path, allow_pickle=False) as z:
        files = set(z.files)
    if {"samples", "channel_names"} <= files:
        return load_feature_set(path)
    if {"root_quat", "joint_pos", "joint_names", "clip_lengths"} <= files:
        from wildamp import features as F
        from wildamp.config import Config, load_config
        from wildamp.reference.clip import MotionDataset
        from wildamp.robot import load_model, load_robot_spec

        cfg = config if isinstance(config, Config) else load_config(config or "configs/smoke.yaml")
        model = load_model(cfg.robot.model)
        spec = load_robot_spec(cfg.robot.robot_config, model)
        ds = MotionDataset.load(path, joint_names=spec.joint_names)
        samples, _ = F.dataset_samples(ds, model, spec, cfg.features)
        return samples, F.FeatureLayout.build(spec, cfg.features).sample_channel_names()
    raise ValueError(f"{path}: neither a feature set (samples, channel_names) nor a motion dataset "
                     f"(root_quat, joint_pos, ...); arrays: {sorted(files)}")
