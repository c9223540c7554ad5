"""wildamp.diagnose: the per-channel leak detector and the fresh-classifier AUC (CPU).

Reference samples are real AMP features (wildamp.features.dataset_samples with configs/smoke.yaml's
features section) of two synthetic 4 s clips: every joint oscillating around home with its own
amplitude, frequency and phase, the root moving forward, swaying and turning (independent of the
gait generator, which has its own tests).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from wildamp import diagnose as D
from wildamp import features as F
from wildamp import quat
from wildamp.cli import diagnose_features_main
from wildamp.config import load_config
from wildamp.physics import make_mjx_model
from wildamp.reference.clip import Clip, MotionDataset
from wildamp.robot import load_model, load_robot_spec


def oscillation_clip(spec, name: str, seed: int, seconds: float = 4.0, fps: float = 50.0) -> Clip:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * fps) + 1) / fps
    lo, hi = spec.joint_ranges[:, 0], spec.joint_ranges[:, 1]
    half = 0.5 * (hi - lo)
    centre = spec.home_joint_pos
    amp = rng.uniform(0.02, 0.08, len(lo)) * half
    f = rng.uniform(0.5, 2.0, len(lo))
    ph = rng.uniform(0, 2 * np.pi, len(lo))
    joints = np.clip(centre + amp * np.sin(2 * np.pi * f * t[:, None] + ph), lo, hi)
    # Small root motion so that the feet stay near the floor (the contacts are not constant).
    root = np.stack([0.01 * np.sin(np.pi * t), 0.01 * np.sin(2 * np.pi * t),
                     0.469 + 0.005 * np.sin(4 * np.pi * t)], -1)
    q = quat.multiply(quat.quat_from_yaw(0.1 * t), quat.from_axis_angle(
        np.broadcast_to(np.array([1.0, 0.0, 0.0]), (len(t), 3)), 0.05 * np.sin(2 * np.pi * t)))
    return Clip(name, fps, root, q, joints, spec.joint_names, source="tests/test_diagnose.py")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    model = load_model("assets/scene.xml")
    spec = load_robot_spec("assets/robot_config.yaml", model)
    cfg = load_config("configs/smoke.yaml")
    ds = MotionDataset([oscillation_clip(spec, "osc_a", 0), oscillation_clip(spec, "osc_b", 1)],
                       spec.joint_names, 50.0)
    path = tmp_path_factory.mktemp("diag") / "ref.npz"
    ds.save(path)
    samples, clip_index = F.dataset_samples(ds, model, spec, cfg.features, mjx_model=make_mjx_model(model))
    names = F.FeatureLayout.build(spec, cfg.features).sample_channel_names()
    return samples, names, path


def test_channel_auc_is_the_pairwise_probability_with_ties():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, size=(37, 2)).astype(float)   # many ties
    b = rng.integers(1, 5, size=(23, 2)).astype(float)
    brute = [np.mean([(y > x) + 0.5 * (y == x) for x in a[:, j] for y in b[:, j]]) for j in range(2)]
    np.testing.assert_allclose(D.channel_auc(a, b), brute, rtol=1e-12)
    rep = D.separability(a, b, ["u", "v"], threshold=0.99)
    assert [r.folded_auc for r in rep] == pytest.approx([0.5 + abs(x - 0.5) for x in brute])


def test_planted_leak_is_flagged(reference):
    samples, names, _ = reference
    rng = np.random.default_rng(1)
    perm = rng.permutation(len(samples))
    ref, other = samples[perm[::2]], samples[perm[1::2]].copy()
    j = names.index("root_height@t")
    other[:, j] = 0.0  # one channel zeroed on one side only
    report = D.diagnose(ref, other, names)
    assert report.flagged == ["root_height@t"]
    row = report.channels[j]
    assert row.folded_auc > 0.99 and row.other_const_frac == 1.0 and row.ref_const_frac < 0.1
    assert report.classifier_auc > 0.95
    text = D.format_table(report)
    assert text.splitlines()[2].startswith("root_height@t") and "LEAK" in text


def test_zeros_for_contacts_bug_is_flagged(reference):
    """ARCHITECTURE.md §6: the policy side sent zeros for the foot contacts."""
    samples, names, _ = reference
    half = len(samples) // 2
    other = samples[half:].copy()
    contact = [i for i, n in enumerate(names) if n.startswith("foot_contacts.")]
    assert len(contact) == 8 and (samples[:, contact] > 0.1).mean(axis=0).min() > 0.2
    other[:, contact] = 0.0
    report = D.diagnose(samples[:half], other, names)
    assert set(report.flagged) == {names[i] for i in contact}
    # also when the reference's contacts are often near zero (soft contacts in swing), where the AUC
    # alone can stay below the threshold: a constant on one side is flagged by itself
    ref = samples[:half].copy()
    ref[: len(ref) // 10, contact] = 0.0  # 10 % exact zeros in the reference → AUC ≈ 0.95
    rep2 = D.diagnose(ref, other, names, threshold=0.99)
    by = {c.name: c for c in rep2.channels}
    assert set(rep2.flagged) == {names[i] for i in contact}
    assert {by[names[i]].reason for i in contact} == {"constant on the other side"}
    # the mirror case — constant in the reference only — is the normaliser's job: noted, not flagged
    rep3 = D.diagnose(other, ref, names, threshold=0.99)
    assert rep3.flagged == [] and {c.reason for c in rep3.channels if c.name in rep2.flagged} == {"reference constant"}


def test_two_halves_of_one_dataset_are_not_flagged(reference):
    samples, names, _ = reference
    perm = np.random.default_rng(2).permutation(len(samples))
    report = D.diagnose(samples[perm[::2]], samples[perm[1::2]], names)
    assert report.flagged == []
    assert max(c.folded_auc for c in report.channels) < 0.7
    assert report.classifier_auc < 0.7


def test_cli_on_dataset_and_feature_set(reference, tmp_path, capsys):
    samples, names, ds_path = reference
    other = samples.copy()
    j = names.index("joint_pos.left_hip_roll@t-1")
    other[:, j] += 0.5  # a policy that spreads its left leg
    fs = tmp_path / "policy_features.npz"
    D.save_feature_set(fs, other, names)
    out = tmp_path / "report.json"
    assert diagnose_features_main(ds_path, fs, out=out, config="configs/smoke.yaml") == 0
    printed = capsys.readouterr().out
    assert "joint_pos.left_hip_roll@t-1" in printed and "LEAK" in printed
    rep = json.loads(out.read_text())
    assert rep["flagged"] == ["joint_pos.left_hip_roll@t-1"] and len(rep["channels"]) == len(names)
    D.save_feature_set(tmp_path / "short.npz", other[:, :10], names[:10])
    with pytest.raises(ValueError, match="different feature channels"):
        diagnose_features_main(ds_path, tmp_path / "short.npz")
    with pytest.raises(ValueError, match="neither a feature set"):
        np.savez(tmp_path / "junk.npz", x=np.zeros(3))
        D.load_samples(tmp_path / "junk.npz")


def test_contact_activity_finds_stuck_contacts(reference):
    samples, names, _ = reference
    acts = D.contact_activity(samples, names)
    assert len(acts) == 8 and all(a.stuck is None for a in acts)  # the reference's feet come and go
    policy = samples.copy()
    lt = [i for i, n in enumerate(names) if n.startswith("foot_contacts.left")]
    rt = [i for i, n in enumerate(names) if n.startswith("foot_contacts.right")]
    policy[:, lt] = 0.0                                      # zeros-for-contacts
    policy[:, rt] = np.maximum(policy[:, rt], 0.3)           # "always on" right foot (seed heuristic)
    stuck = {a.name: a.stuck for a in D.contact_activity(policy, names)}
    assert {stuck[names[i]] for i in lt} == {"never"} and {stuck[names[i]] for i in rt} == {"always"}
    with pytest.raises(ValueError, match="foot_contacts"):
        D.contact_activity(samples[:, :5], names[:5])


def test_contact_agreement():
    forces = np.array([[10.0, 0, 0, 3], [0, 0, 5, 5], [1, 1, 1, 1]])
    est = np.array([[0.9, 0.0, 0.0, 0.0], [0.0, 0.0, 0.8, 0.9], [0.0, 0.0, 0.0, 0.0]])
    a = D.contact_agreement(est, forces, force_threshold=2.0, on_threshold=0.5)
    assert a["pad"] == pytest.approx(11 / 12) and a["foot"] == pytest.approx(5 / 6)
    assert a["balanced"] == pytest.approx(0.5 * (3 / 4 + 8 / 8))
    const = D.contact_agreement(np.ones((3, 4)), forces, 2.0, 0.5)
    assert const["balanced"] == pytest.approx(0.5)


def test_random_servo_rollouts_carry_real_contact_forces():
    model = load_model("assets/scene.xml")
    spec = load_robot_spec("assets/robot_config.yaml", model)
    ids = F.FrameIds.from_model(model, spec)
    still = D.random_servo_rollouts(model, spec, ids, episodes=1, seconds=1.0, ctrl_dt=0.02,
                                    action_scale=0.5, amplitude=0.0)[0]
    assert still.qpos.shape[0] == 51
    mg = spec.total_mass * 9.81
    assert np.asarray(still.contact_force)[-1].sum() == pytest.approx(mg, rel=0.02)  # stands on its pads
    moving = D.random_servo_rollouts(model, spec, ids, episodes=2, seconds=1.0, ctrl_dt=0.02,
                                     action_scale=0.5, amplitude=0.1, seed=3)
    assert len(moving) == 2 and np.ptp(np.asarray(moving[0].qpos)[:, 7:], axis=0).max() > 0.02


def test_channel_near_constant_on_one_side_is_flagged_by_magnitude():
    """A rate moving on one side and near-constant on the other around the same centre: the raw AUC
    sees nothing (≈ 0.5), |x − median| separates perfectly, and the variance ratio says by how much."""
    rng = np.random.default_rng(3)
    t = np.linspace(0.0, 20.0, 2000)
    ref = np.stack([np.sin(2 * np.pi * 1.3 * t), rng.normal(size=t.size)], axis=1)
    other = np.stack([1e-3 * rng.normal(size=t.size), rng.normal(size=t.size)], axis=1)
    rep = D.separability(ref, other, ["pelvis_rate", "noise"])
    rate, noise = rep
    assert rate.folded_auc < 0.6 and rate.magnitude_auc > 0.95 and rate.log_var_ratio < -10
    assert rate.flagged and rate.reason == "magnitude"
    assert not noise.flagged and noise.magnitude_auc < 0.6 and abs(noise.log_var_ratio) < 0.2
    # The mirror case (constant in the reference) stays the normaliser's job: noted, not flagged.
    swapped = D.separability(np.stack([np.zeros(t.size), ref[:, 1]], 1), ref, ["pelvis_rate", "noise"])
    assert not swapped[0].flagged and swapped[0].reason == "reference constant"


def test_the_style_auc_is_averaged_over_classifier_splits():
    """One train/test split of a short reference clip is a noisy judge; the style check reports the
    mean over ``STYLE_SPLITS`` splits, which a single split can miss by a few hundredths."""
    from wildamp.diagnose import classifier_auc
    from wildamp.evaluate import STYLE_SPLITS, style_auc
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(250, 12))                    # a 5 s reference clip's worth of samples
    policy = rng.normal(size=(1800, 12)) + 0.15         # a policy a little off in every channel
    singles = np.array([classifier_auc(ref, policy, seed=s) for s in range(STYLE_SPLITS)])
    assert STYLE_SPLITS >= 5
    assert singles.max() - singles.min() > 0.02         # the split alone moves the AUC
    assert style_auc(ref, policy) == pytest.approx(singles.mean())
    assert style_auc(ref, policy, splits=1) == pytest.approx(singles[0])
