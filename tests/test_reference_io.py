"""Reference data I/O: quaternions, clips, the npz dataset, GMR ingest (safe unpickling) and resampling."""

from __future__ import annotations

import os
import pathlib
import pickle
import re

import numpy as np
import pytest

from wildamp import quat
from wildamp.cli import convert_gmr_main
from wildamp.reference.clip import Clip, MotionDataset
from wildamp.reference.gmr import (
    MIN_GMR_FRAMES,
    UnsafePickleError,
    convert_gmr_files,
    gmr_to_clip,
    load_gmr_pickle,
    write_gmr_pickle,
)
from wildamp.reference.resample import resample_clip

# ARCHITECTURE.md §4: joint (= actuator) order and ranges of WildRobot.
JOINTS = {
    "waist_yaw": (-0.5236, 0.5236),
    "left_hip_pitch": (-0.0873, 1.5708),
    "left_hip_roll": (-1.5708, 0.1745),
    "left_knee_pitch": (0.0, 1.3963),
    "left_ankle_pitch": (-0.7854, 0.7854),
    "right_hip_pitch": (-1.5708, 0.0873),
    "right_hip_roll": (-0.1745, 1.5708),
    "right_knee_pitch": (0.0, 1.3963),
    "right_ankle_pitch": (-0.7854, 0.7854),
}
NAMES = tuple(JOINTS)


# ----------------------------------------------------------------------------- synthetic motion
def walking_state(t: np.ndarray, yaw_rate: float = 0.3, yaw_amp: float = 0.6):
    """Analytic walking-like root/joint trajectory: turning heading, bobbing, rocking, swinging legs."""
    t = np.asarray(t, dtype=np.float64)
    pos = np.stack([0.25 * t + 0.05 * np.sin(t), 0.1 * np.sin(0.4 * t), 0.469 + 0.01 * np.cos(4 * np.pi * t)], -1)
    yaw = yaw_amp * np.sin(0.5 * t) + yaw_rate * t
    pitch = 0.05 * np.sin(4 * np.pi * t)
    roll = 0.04 * np.sin(2 * np.pi * t)
    q = quat.multiply(
        quat.quat_from_yaw(yaw),
        quat.multiply(quat.from_axis_angle([0.0, 1.0, 0.0], pitch), quat.from_axis_angle([1.0, 0.0, 0.0], roll)),
    )
    lo = np.array([r[0] for r in JOINTS.values()])
    hi = np.array([r[1] for r in JOINTS.values()])
    phase = np.linspace(0.0, 2.0, len(NAMES))
    joints = 0.5 * (lo + hi) + 0.2 * 0.5 * (hi - lo) * np.sin(2 * np.pi * t[:, None] + phase)
    return pos, q, joints


def walking_clip(fps: float, duration: float = 4.0, name: str = "walk", **kw) -> Clip:
    n = int(np.floor(duration * fps + 1e-9)) + 1
    pos, q, joints = walking_state(np.arange(n) / fps, **kw)
    return Clip(name, fps, pos, quat.make_sign_continuous(q), joints, NAMES, source="synthetic",
                meta={"speed": 0.25, "kind": "test"}).validate()


def gmr_dict(clip: Clip) -> dict:
    return {
        "fps": clip.fps,
        "root_pos": clip.root_pos.copy(),
        "root_rot": quat.to_xyzw(clip.root_quat),
        "dof_pos": clip.joint_pos.copy(),
        "local_body_pos": None,
        "link_body_list": None,
    }


def dump(d, path) -> pathlib.Path:
    with open(path, "wb") as f:
        pickle.dump(d, f)
    return pathlib.Path(path)


# ----------------------------------------------------------------------------- quaternions
def test_quat_basics_are_consistent():
    rng = np.random.default_rng(0)
    q = quat.normalize(rng.normal(size=(200, 4)))
    v = rng.normal(size=(200, 3))
    m = quat.to_matrix(q)
    np.testing.assert_allclose(quat.rotate(q, v), np.einsum("nij,nj->ni", m, v), atol=1e-12)
    np.testing.assert_allclose(np.einsum("nij,nkj->nik", m, m), np.broadcast_to(np.eye(3), m.shape), atol=1e-12)
    # matrix round trip (w >= 0 representative), including exact 180° turns where w = 0
    assert quat.angle_between(quat.from_matrix(m), q).max() < 1e-7
    half = quat.from_axis_angle(np.eye(3), np.pi)
    assert quat.angle_between(quat.from_matrix(quat.to_matrix(half)), half).max() < 1e-7
    # composition: rotating by a⊗b is rotating by b then a; conjugate undoes
    q2 = quat.normalize(rng.normal(size=(200, 4)))
    np.testing.assert_allclose(quat.rotate(quat.multiply(q, q2), v), quat.rotate(q, quat.rotate(q2, v)), atol=1e-12)
    np.testing.assert_allclose(quat.rotate(quat.conjugate(q), quat.rotate(q, v)), v, atol=1e-12)
    # xyzw boundary: the scalar moves to the end and back
    np.testing.assert_array_equal(quat.to_xyzw([1.0, 2.0, 3.0, 4.0]), [2.0, 3.0, 4.0, 1.0])
    np.testing.assert_array_equal(quat.from_xyzw(quat.to_xyzw(q)), q)
    # angle is sign invariant and matches the axis-angle construction
    a = rng.uniform(0, np.pi, 50)
    axis = rng.normal(size=(50, 3))
    r = quat.from_axis_angle(axis, a)
    np.testing.assert_allclose(quat.angle_between(quat.identity((50,)), r), a, atol=1e-9)
    np.testing.assert_allclose(quat.angle_between(-q, q2), quat.angle_between(q, q2), atol=1e-12)
    # yaw of a pure yaw rotation, and yaw ignores added pitch/roll about body axes
    yaw = rng.uniform(-3.1, 3.1, 50)
    np.testing.assert_allclose(quat.yaw_of(quat.quat_from_yaw(yaw)), yaw, atol=1e-12)
    tilted = quat.multiply(quat.quat_from_yaw(yaw), quat.from_axis_angle([0, 1, 0], 0.3))
    np.testing.assert_allclose(quat.yaw_of(tilted), yaw, atol=1e-12)
    # slerp: endpoints, shortest arc regardless of the sign of q1, constant angular speed
    np.testing.assert_allclose(quat.angle_between(quat.slerp(q, -q2, 0.0), q), 0, atol=1e-7)
    np.testing.assert_allclose(quat.angle_between(quat.slerp(q, -q2, 1.0), q2), 0, atol=1e-7)
    full = quat.angle_between(q, q2)
    np.testing.assert_allclose(quat.angle_between(q, quat.slerp(q, -q2, 0.3)), 0.3 * full, atol=1e-9)
    with pytest.raises(ValueError):
        quat.normalize(np.zeros(4))


def test_make_sign_continuous_keeps_rotations():
    rng = np.random.default_rng(1)
    q = walking_clip(50.0).root_quat
    flipped = q * rng.choice([-1.0, 1.0], size=(len(q), 1))
    fixed = quat.make_sign_continuous(flipped)
    assert (np.sum(fixed[1:] * fixed[:-1], axis=1) >= 0).all()
    assert quat.angle_between(fixed, q).max() < 1e-12
    np.testing.assert_array_equal(fixed[0], flipped[0])


# ----------------------------------------------------------------------------- clips and datasets
def two_clip_dataset() -> MotionDataset:
    a = walking_clip(50.0, 2.0, name="a")
    b = walking_clip(50.0, 3.1, name="b", yaw_rate=-0.5)
    b.meta = {"speed": 0.1, "params": {"freq": 1.2, "list": [1, 2]}}
    return MotionDataset([a, b], NAMES, 50.0, metadata={"generator": "test", "version": 3})


def test_npz_round_trip(tmp_path):
    ds = two_clip_dataset()
    path = tmp_path / "sub" / "ds.npz"
    ds.save(path)
    assert sorted(os.listdir(path.parent)) == ["ds.npz"]  # atomic: no temporary file left behind
    with np.load(path, allow_pickle=False) as z:  # readable without pickle
        assert list(z["clip_lengths"]) == [101, 156]
        assert list(z["clip_starts"]) == [0, 101]
    back = MotionDataset.load(path)
    assert back.joint_names == NAMES and back.fps == 50.0
    assert back.metadata == ds.metadata
    assert back.clip_names == ("a", "b")
    for c0, c1 in zip(ds.clips, back.clips):
        assert c1.num_frames == c0.num_frames  # boundaries kept
        np.testing.assert_array_equal(c1.root_pos, c0.root_pos)
        np.testing.assert_array_equal(c1.root_quat, c0.root_quat)
        np.testing.assert_array_equal(c1.joint_pos, c0.joint_pos)
        assert (c1.meta, c1.source, c1.joint_names) == (c0.meta, c0.source, c0.joint_names)
    assert back.clip("b") is back.clips[1] and back.clip(-1) is back.clips[1]
    assert back.clip(0).duration == pytest.approx(2.0)
    with pytest.raises(KeyError, match="'zzz'.*'a', 'b'"):
        back.clip("zzz")


def test_load_with_permuted_joint_names_remaps_by_name(tmp_path):
    ds = two_clip_dataset()
    path = tmp_path / "ds.npz"
    ds.save(path)
    rng = np.random.default_rng(2)
    perm = tuple(NAMES[i] for i in rng.permutation(len(NAMES)))
    back = MotionDataset.load(path, joint_names=perm)
    assert back.joint_names == perm
    for c0, c1 in zip(ds.clips, back.clips):
        assert c1.joint_names == perm
        for j, name in enumerate(perm):
            np.testing.assert_array_equal(c1.joint_pos[:, j], c0.joint_pos[:, NAMES.index(name)])


def test_load_with_mismatched_joint_names_lists_them(tmp_path):
    path = tmp_path / "ds.npz"
    two_clip_dataset().save(path)
    wrong = tuple("left_hip_yaw" if n == "left_hip_roll" else n for n in NAMES)
    with pytest.raises(ValueError, match=r"missing from the dataset: \['left_hip_yaw'\].*extra in the dataset: \['left_hip_roll'\]"):
        MotionDataset.load(path, joint_names=wrong)
    with pytest.raises(ValueError, match=r"extra in the dataset: \['right_ankle_pitch'\]"):
        MotionDataset.load(path, joint_names=NAMES[:-1])


def test_clip_and_dataset_validation_name_the_problem():
    c = walking_clip(50.0, 1.0, name="bad")
    flipped = Clip(c.name, c.fps, c.root_pos, c.root_quat * np.where(np.arange(c.num_frames) == 7, -1, 1)[:, None],
                   c.joint_pos, NAMES)
    with pytest.raises(ValueError, match="clip 'bad'.*sign flip at frame 7"):
        flipped.validate()
    with pytest.raises(ValueError, match="clip 'bad'.*not unit norm"):
        Clip("bad", 50, c.root_pos, 2 * c.root_quat, c.joint_pos, NAMES).validate()
    with pytest.raises(ValueError, match="clip 'bad'.*joint_pos has shape"):
        Clip("bad", 50, c.root_pos, c.root_quat, c.joint_pos[:, :8], NAMES).validate()
    nan = c.joint_pos.copy()
    nan[5, 2] = np.nan
    with pytest.raises(ValueError, match="clip 'bad'.*joint_pos has non-finite values.*frame 5"):
        Clip("bad", 50, c.root_pos, c.root_quat, nan, NAMES).validate()
    with pytest.raises(ValueError, match="clip 'bad'.*meta is not JSON"):
        Clip("bad", 50, c.root_pos, c.root_quat, c.joint_pos, NAMES, meta={"x": object()}).validate()
    other = walking_clip(25.0, 1.0, name="slow")
    with pytest.raises(ValueError, match="clip 'slow'.*fps 25.0 differs"):
        MotionDataset([c, other], NAMES, 50.0)
    with pytest.raises(ValueError, match="clip 'bad'.*joint_names"):
        MotionDataset([c], tuple(reversed(NAMES)), 50.0)
    with pytest.raises(ValueError, match=r"duplicate clip names \['bad'\]"):
        MotionDataset([c, c], NAMES, 50.0)


# ----------------------------------------------------------------------------- clip -> qpos
def test_clip_to_qpos_places_joints_by_name(spec, model):
    from wildamp.features import FrameIds

    assert tuple(spec.joint_names) == NAMES
    c = walking_clip(50.0, 1.0, name="walk")
    q = c.to_qpos(spec)
    assert q.shape == (c.num_frames, spec.nq) and q.dtype == np.float64
    for j, name in enumerate(NAMES):
        np.testing.assert_array_equal(q[:, spec.qpos_adr[j]], c.joint_pos[:, j])
    np.testing.assert_array_equal(q[:, 0:3], c.root_pos)  # the free joint comes first
    np.testing.assert_allclose(np.linalg.norm(q[:, 3:7], axis=-1), 1.0, atol=1e-15)
    # The clip's column order does not matter: a shuffled clip gives the same qpos, bit for bit.
    perm = np.random.default_rng(3).permutation(len(NAMES))
    shuffled = Clip(c.name, c.fps, c.root_pos, c.root_quat, c.joint_pos[:, perm],
                    tuple(NAMES[i] for i in perm))
    np.testing.assert_array_equal(shuffled.to_qpos(spec), q)
    # Frame ids of the model address the same coordinates (they carry no home pose: base is explicit).
    ids = FrameIds.from_model(model, spec)
    np.testing.assert_array_equal(shuffled.to_qpos(ids, base=spec.home_qpos), q)
    # The root quaternion is normalised, its sign kept.
    big = Clip(c.name, c.fps, c.root_pos, -3.0 * c.root_quat, c.joint_pos, NAMES)
    np.testing.assert_allclose(big.to_qpos(spec)[:, 3:7], -q[:, 3:7], atol=1e-15)


def test_clip_to_qpos_names_the_problem(spec):
    c = walking_clip(50.0, 1.0, name="bad")
    wrong = tuple("left_hip_yaw" if n == "left_hip_roll" else n for n in NAMES)
    with pytest.raises(ValueError, match=r"clip 'bad'.*missing from the clip: \['left_hip_roll'\]; "
                                         r"unknown to the robot: \['left_hip_yaw'\]"):
        Clip("bad", 50, c.root_pos, c.root_quat, c.joint_pos, wrong).to_qpos(spec)
    zero = c.root_quat.copy()
    zero[4] = 0.0
    with pytest.raises(ValueError, match="clip 'bad': root_quat has zero or non-finite entries"):
        Clip("bad", 50, c.root_pos, zero, c.joint_pos, NAMES).to_qpos(spec)
    nan = c.joint_pos.copy()
    nan[5, 2] = np.nan
    with pytest.raises(ValueError, match="clip 'bad': non-finite root_pos or joint_pos"):
        Clip("bad", 50, c.root_pos, c.root_quat, nan, NAMES).to_qpos(spec)
    with pytest.raises(ValueError, match=r"base qpos has shape \(3,\)"):
        c.to_qpos(spec, base=np.zeros(3))


# ----------------------------------------------------------------------------- resampling
def test_resample_constant_yaw_rate_keeps_rate():
    rate = 1.5  # rad/s; 5 s wraps the heading past ±π
    fps = 30.0
    t = np.arange(151) / fps
    q = quat.multiply(quat.quat_from_yaw(rate * t), quat.from_axis_angle([0, 1, 0], 0.1))
    c = Clip("spin", fps, np.zeros((151, 3)), quat.make_sign_continuous(q), np.zeros((151, 9)), NAMES).validate()
    r = resample_clip(c, 50.0)
    assert r.fps == 50.0 and r.num_frames == 251 and r.duration == pytest.approx(c.duration)
    assert (r.name, r.meta, r.source) == (c.name, c.meta, c.source)
    yaw = np.unwrap(quat.yaw_of(r.root_quat))
    np.testing.assert_allclose(np.diff(yaw) * 50.0, rate, atol=1e-9)
    np.testing.assert_allclose(quat.angle_between(r.root_quat[1:], r.root_quat[:-1]), rate / 50.0, atol=1e-9)


def test_resample_is_insensitive_to_quaternion_signs():
    c = walking_clip(33.3, 3.0)
    rng = np.random.default_rng(3)
    flipped = Clip(c.name, c.fps, c.root_pos, c.root_quat * rng.choice([-1.0, 1.0], size=(c.num_frames, 1)),
                   c.joint_pos, NAMES)
    a = resample_clip(c, 50.0)
    b = resample_clip(flipped, 50.0)
    assert quat.angle_between(a.root_quat, b.root_quat).max() < 1e-12
    np.testing.assert_array_equal(a.joint_pos, b.joint_pos)


def test_resample_interpolates_linear_signals_exactly():
    c = walking_clip(33.3, 2.0)
    t = np.arange(c.num_frames) / c.fps
    c.joint_pos = np.tile(0.1 + 0.2 * t[:, None], (1, 9))
    r = resample_clip(c, 50.0)
    np.testing.assert_allclose(r.joint_pos[:, 0], 0.1 + 0.2 * np.arange(r.num_frames) / 50.0, atol=1e-12)
    assert r.num_frames == int(np.floor(c.duration * 50.0 + 1e-9)) + 1


# ----------------------------------------------------------------------------- GMR ingest
def test_gmr_round_trip_at_33hz(tmp_path):
    src = walking_clip(33.3, 4.0, name="walk33")
    write_gmr_pickle(src, tmp_path / "walk33.pkl")
    out = tmp_path / "out" / "ref.npz"
    ds = convert_gmr_files([tmp_path / "walk33.pkl"], NAMES, out)
    loaded = MotionDataset.load(out, joint_names=NAMES)
    for c in (ds.clip("walk33"), loaded.clip("walk33")):
        assert c.fps == 50.0 and c.joint_names == NAMES
        assert c.duration == pytest.approx(src.duration, abs=1 / 50.0)
        # Compare with the analytic motion at the 50 Hz times (two interpolation errors only).
        pos, q, joints = walking_state(np.arange(c.num_frames) / 50.0)
        np.testing.assert_allclose(c.root_pos, pos, atol=1e-3)
        np.testing.assert_allclose(c.joint_pos, joints, atol=2e-3)
        assert quat.angle_between(c.root_quat, q).max() < 3e-3
        assert c.meta["source_fps"] == pytest.approx(33.3)
        assert c.source == str(tmp_path / "walk33.pkl")


def test_gmr_round_trip_same_rate_is_exact(tmp_path):
    src = walking_clip(50.0, 2.0, name="w")
    write_gmr_pickle(src, tmp_path / "w.pkl")
    d = load_gmr_pickle(tmp_path / "w.pkl")
    np.testing.assert_array_equal(d["root_rot"][:, 3], src.root_quat[:, 0])  # scalar last on disk
    c = gmr_to_clip(d, NAMES, tmp_path / "w.pkl")
    np.testing.assert_allclose(c.root_pos, src.root_pos, atol=1e-12)
    np.testing.assert_allclose(c.joint_pos, src.joint_pos, atol=1e-12)
    assert quat.angle_between(c.root_quat, src.root_quat).max() < 1e-7


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_gmr_pickle_protocols_load(tmp_path, protocol):
    src = walking_clip(33.3, 1.0, name="p")
    write_gmr_pickle(src, tmp_path / "p.pkl", protocol=protocol)
    d = load_gmr_pickle(tmp_path / "p.pkl")
    np.testing.assert_array_equal(d["dof_pos"], src.joint_pos)
    assert d["fps"] == src.fps and d["local_body_pos"] is None


def test_gmr_pickle_from_numpy1_loads(tmp_path):
    """Files written under numpy 1.x name numpy.core.* (not numpy._core.*): both are admitted."""
    src = walking_clip(33.3, 1.0, name="old")
    raw = pickle.dumps(gmr_dict(src), protocol=2)
    assert b"numpy._core" in raw
    old = tmp_path / "old.pkl"
    old.write_bytes(raw.replace(b"numpy._core", b"numpy.core"))
    d = load_gmr_pickle(old)
    np.testing.assert_array_equal(d["root_rot"], quat.to_xyzw(src.root_quat))


def test_gmr_write_resamples_to_requested_fps(tmp_path):
    src = walking_clip(50.0, 2.0)
    write_gmr_pickle(src, tmp_path / "a.pkl", fps=33.3)
    d = load_gmr_pickle(tmp_path / "a.pkl")
    assert d["fps"] == pytest.approx(33.3) and d["num_frames"] == len(d["root_pos"]) == 67


def test_gmr_sign_flips_do_not_change_output(tmp_path):
    src = walking_clip(33.3, 2.0)
    d = gmr_dict(src)
    rng = np.random.default_rng(4)
    d_flip = dict(d, root_rot=d["root_rot"] * rng.choice([-1.0, 1.0], size=(len(d["root_rot"]), 1)))
    a = gmr_to_clip(d, NAMES, "a.pkl")
    b = gmr_to_clip(d_flip, NAMES, "b.pkl")
    assert quat.angle_between(a.root_quat, b.root_quat).max() < 1e-12
    assert (np.sum(b.root_quat[1:] * b.root_quat[:-1], axis=1) >= 0).all()


def _bad_inputs(src: Clip):
    good = gmr_dict(src)
    n = src.num_frames
    nan = good["dof_pos"].copy()
    nan[3, 4] = np.nan
    inf = good["root_pos"].copy()
    inf[2, 0] = np.inf
    short = {k: (v[: MIN_GMR_FRAMES - 1] if isinstance(v, np.ndarray) else v) for k, v in good.items()}
    # A near-identity clip stored wxyz: read as xyzw it is a ~180° roll (body z axis down).
    level = walking_clip(33.3, 2.0, yaw_rate=0.0, yaw_amp=0.3)
    swapped = dict(gmr_dict(level), root_rot=level.root_quat.copy())
    return {
        "missing_key": ({k: v for k, v in good.items() if k != "root_rot"}, r"missing required key\(s\) \['root_rot'\]"),
        "root_pos_shape": (dict(good, root_pos=good["root_pos"][:, :2]), r"root_pos has shape \(\d+, 2\), expected \(N, 3\)"),
        "root_rot_shape": (dict(good, root_rot=good["root_rot"][:, :3]), r"root_rot has shape .*expected \(N, 4\)"),
        "frame_mismatch": (dict(good, dof_pos=good["dof_pos"][:-1]), "frame counts differ"),
        "joint_count": (dict(good, dof_pos=good["dof_pos"][:, :8]), "wrong joint count: dof_pos has 8 columns, the robot has 9"),
        "nan": (dict(good, dof_pos=nan), r"dof_pos has non-finite values \(NaN; first at frame 3\)"),
        "inf": (dict(good, root_pos=inf), r"root_pos has non-finite values \(inf; first at frame 2\)"),
        "fps_zero": (dict(good, fps=0.0), r"fps must be finite and > 0, got 0.0"),
        "fps_negative": (dict(good, fps=-33.3), r"fps must be finite and > 0"),
        "fps_string": (dict(good, fps="33.3"), r"fps must be a number"),
        "too_short": (short, rf"too short: {MIN_GMR_FRAMES - 1} frame\(s\), at least {MIN_GMR_FRAMES}"),
        "non_unit": (dict(good, root_rot=good["root_rot"] * 1.5), "not a unit quaternion"),
        "wxyz_as_xyzw": (swapped, r"upside down in 100% of frames.*likely stored wxyz.*--quat-order wxyz"),
        "num_frames": (dict(good, num_frames=n + 5), "num_frames says"),
        "object_array": (dict(good, dof_pos=good["dof_pos"].astype(object)), "dtype object, not plain data"),
        "set_value": (dict(good, robot={"a", "b"}), "is a set, not plain data"),
        "ordered_dict": (dict(good, extra=__import__("collections").OrderedDict(a=1)), "refused global collections.OrderedDict"),
    }


@pytest.mark.parametrize("case", list(_bad_inputs(walking_clip(33.3, 1.0))))
def test_bad_gmr_inputs_are_refused_and_nothing_written(tmp_path, case):
    src = walking_clip(33.3, 1.0)
    d, message = _bad_inputs(src)[case]
    good = dump(gmr_dict(src), tmp_path / "good_clip.pkl")
    bad = dump(d, tmp_path / f"bad_{case}.pkl")
    out = tmp_path / "out" / "ds.npz"
    # The bad file comes second: the good one must not have been written already.
    with pytest.raises(ValueError, match=message) as info:
        convert_gmr_files([good, bad], NAMES, out)
    assert str(bad) in str(info.value)
    assert not out.exists() and not out.parent.exists()


def test_non_dict_pickle_refused(tmp_path):
    bad = dump([1, 2, 3], tmp_path / "list.pkl")
    with pytest.raises(ValueError, match=rf"{bad}: GMR file must hold a dict, found list"):
        load_gmr_pickle(bad)
    corrupt = tmp_path / "corrupt.pkl"
    corrupt.write_bytes(pickle.dumps(gmr_dict(walking_clip(33.3, 1.0)))[:100])
    with pytest.raises(ValueError, match=rf"{corrupt}: not a readable pickle"):
        load_gmr_pickle(corrupt)


class _Payload:
    """A pickle payload whose __reduce__ creates ``target`` when unpickled by a plain unpickler."""

    def __init__(self, kind: str, target: pathlib.Path):
        self.kind, self.target = kind, target

    def __reduce__(self):
        if self.kind == "os.system":
            return (os.system, (f"touch '{self.target}'",))
        if self.kind == "builtins.open":
            return (open, (str(self.target), "w"))
        return (pathlib.Path.touch, (pathlib.Path(self.target),))


@pytest.mark.parametrize("kind,refused", [
    ("os.system", r"refused global (posix|nt|os)\.system"),
    ("builtins.open", r"refused global (builtins|io)\.open"),
    ("pathlib", r"refused global pathlib\.(Path\.touch|PosixPath|WindowsPath|Path)"),
])
def test_malicious_pickle_refused_without_side_effect(tmp_path, kind, refused):
    # Control: a plain unpickler really runs this payload (so the refusal below is meaningful).
    control = tmp_path / "control_created"
    pickle.loads(pickle.dumps(dict(gmr_dict(walking_clip(33.3, 1.0)), x=_Payload(kind, control))))
    assert control.exists()

    target = tmp_path / "pwned"
    evil = dump(dict(gmr_dict(walking_clip(33.3, 1.0)), source_file=_Payload(kind, target)), tmp_path / "evil.pkl")
    with pytest.raises(UnsafePickleError, match=refused) as info:
        load_gmr_pickle(evil)
    assert str(evil) in str(info.value)
    out = tmp_path / "ds.npz"
    with pytest.raises(ValueError, match=refused):
        convert_gmr_files([evil], NAMES, out)
    assert not target.exists() and not out.exists()


def _robot_yaml(tmp_path, name="robot_config.yaml", **changes) -> pathlib.Path:
    """The shipped robot config with some keys changed, written to ``tmp_path / name``."""
    import yaml

    from wildamp.paths import DEFAULT_ROBOT_CONFIG

    cfg = yaml.safe_load(DEFAULT_ROBOT_CONFIG.read_text())
    cfg["model_path"] = str(DEFAULT_ROBOT_CONFIG.parent / "scene.xml")
    p = tmp_path / name
    p.write_text(yaml.safe_dump(dict(cfg, **changes)))
    return p


def test_convert_gmr_main_summary_report_and_errors(tmp_path, capsys):
    a = tmp_path / "a" / "clip.pkl"
    b = tmp_path / "b" / "clip.pkl"  # same stem: names are made unique with the folder
    write_gmr_pickle(walking_clip(33.3, 2.0), a)
    write_gmr_pickle(walking_clip(33.3, 3.0, yaw_rate=-0.4), b)
    out = tmp_path / "ref.npz"
    assert convert_gmr_main([a, b], _robot_yaml(tmp_path), out) == 0
    printed = capsys.readouterr().out
    assert "a/clip:" in printed and "b/clip:" in printed and "mean horizontal speed" in printed
    assert "joints within 0.01 rad of a limit" in printed  # the conversion report table
    ds = MotionDataset.load(out, joint_names=NAMES)
    assert ds.clip_names == ("a/clip", "b/clip") and ds.metadata["files"] == [str(a), str(b)]
    report = ds.metadata["conversion_report"]["b/clip"]
    assert report["duration_s"] == pytest.approx(ds.clip("b/clip").duration)
    assert set(report["near_limit_fraction"]) == set(NAMES) and ds.metadata["joints_negated"] == []

    before = out.read_bytes()
    dump(dict(gmr_dict(walking_clip(33.3, 1.0)), fps=float("nan")), tmp_path / "nanfps.pkl")
    assert convert_gmr_main([a, tmp_path / "nanfps.pkl"], _robot_yaml(tmp_path), out) == 2
    err = capsys.readouterr().err
    assert "nanfps.pkl" in err and "fps must be finite" in err and len(err.strip().splitlines()) == 1
    assert out.read_bytes() == before  # an existing dataset is left untouched on error

    bad_yaml = tmp_path / "no_names.yaml"
    bad_yaml.write_text("model: x.xml\n")
    assert convert_gmr_main([a], bad_yaml, tmp_path / "other.npz") == 2
    assert "missing keys" in capsys.readouterr().err
    dump(dict(gmr_dict(walking_clip(33.3, 1.0)), dof_pos=np.zeros((34, 8))), tmp_path / "eight.pkl")
    assert convert_gmr_main([tmp_path / "eight.pkl"], _robot_yaml(tmp_path), tmp_path / "other.npz") == 2
    assert "wrong joint count" in capsys.readouterr().err
    stale = _robot_yaml(tmp_path, "stale.yaml", version=1)
    assert convert_gmr_main([a], stale, tmp_path / "other.npz") == 2
    assert "regenerate it with `wildamp robot-config" in capsys.readouterr().err
    assert not (tmp_path / "other.npz").exists()


def _facing_back_walk(fps: float = 50.0, seconds: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Root of a robot walking along -x facing -x (yaw ≈ 180°), rocking slightly: (pos, wxyz quat)."""
    t = np.arange(int(fps * seconds)) / fps
    q = quat.multiply(quat.quat_from_yaw(np.pi + 0.05 * np.sin(2 * np.pi * t)),
                      quat.from_axis_angle([0.0, 1.0, 0.0], 0.04 * np.sin(4 * np.pi * t)))
    pos = np.stack([-0.25 * t, 0.0 * t, 0.469 + 0.0 * t], -1)
    return pos, quat.make_sign_continuous(q)


@pytest.mark.parametrize("stored,problem", [
    ("wxyz", "faces 180° away from its direction of travel"),  # reads as walking backwards
    ("wxyz_leaning", r"leans \d+° on average"),  # yaw 150° stored wxyz reads as a 40°+ lean
])
def test_convert_gmr_refuses_swapped_quaternions_unless_the_order_is_stated(tmp_path, capsys, stored, problem):
    pos, q = _facing_back_walk()
    if stored == "wxyz_leaning":
        q = quat.make_sign_continuous(quat.multiply(quat.quat_from_yaw(-np.pi / 6), q))
        pos = pos @ np.array([[np.cos(-np.pi / 6), np.sin(-np.pi / 6), 0], [-np.sin(-np.pi / 6), np.cos(-np.pi / 6), 0],
                              [0, 0, 1]])
    joints = np.tile(np.array([0.0, 0.3, 0.0, 0.6, -0.3, -0.3, 0.0, 0.6, -0.3]), (len(pos), 1))
    d = {"fps": 50.0, "root_pos": pos, "root_rot": q.copy(), "dof_pos": joints}  # wxyz where xyzw belongs
    f = dump(d, tmp_path / "swapped.pkl")
    out = tmp_path / "ref.npz"
    assert convert_gmr_main([f], _robot_yaml(tmp_path), out) == 1
    err = capsys.readouterr().err
    assert re.search(problem, err) and "likely stored wxyz" in err and "--quat-order wxyz" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    # Stating the order converts it, facing where it walks, upright.
    assert convert_gmr_main([f], _robot_yaml(tmp_path), out, quat_order="wxyz") == 0
    c = MotionDataset.load(out, joint_names=NAMES).clips[0]
    assert quat.angle_between(c.root_quat, q[: c.num_frames]).max() < 1e-6
    # The same file written correctly (xyzw) goes through without the flag.
    dump(dict(d, root_rot=quat.to_xyzw(q)), tmp_path / "right.pkl")
    assert convert_gmr_main([tmp_path / "right.pkl"], _robot_yaml(tmp_path), out) == 0


def test_convert_gmr_converts_reversed_joint_axes_and_refuses_skewed_ones(tmp_path, capsys):
    """A source model whose waist_yaw turns about -z: its angles are negated for ours."""
    import yaml

    from wildamp.paths import DEFAULT_ROBOT_CONFIG

    axes = yaml.safe_load(DEFAULT_ROBOT_CONFIG.read_text())["joint_axes"]
    src = walking_clip(50.0, 2.0)
    write_gmr_pickle(src, tmp_path / "w.pkl")
    reversed_src = _robot_yaml(tmp_path, "source.yaml", joint_axes=[[0.0, 0.0, -1.0]] + axes[1:])
    out = tmp_path / "ref.npz"
    assert convert_gmr_main([tmp_path / "w.pkl"], _robot_yaml(tmp_path), out, source_robot_config=reversed_src) == 0
    assert "joints negated" in capsys.readouterr().out
    ds = MotionDataset.load(out, joint_names=NAMES)
    np.testing.assert_allclose(ds.clips[0].joint_pos[:, 0], -src.joint_pos[:, 0], atol=1e-12)
    np.testing.assert_allclose(ds.clips[0].joint_pos[:, 1:], src.joint_pos[:, 1:], atol=1e-12)
    assert ds.metadata["joints_negated"] == ["waist_yaw"]
    skewed = _robot_yaml(tmp_path, "skewed.yaml", joint_axes=axes[:3] + [[0.0, 0.8, 0.6]] + axes[4:])
    assert convert_gmr_main([tmp_path / "w.pkl"], _robot_yaml(tmp_path), tmp_path / "x.npz",
                            source_robot_config=skewed) == 1
    err = capsys.readouterr().err
    assert "'left_knee_pitch'" in err and "neither the same nor opposite" in err
    assert not (tmp_path / "x.npz").exists()


def test_conversion_report_measures_limits_balance_and_slip(spec, model):
    """Straight knees (at their 0 limit), a root gliding 0.3 m/s with planted feet, CoM over the feet."""
    from wildamp.reference.conversion_report import clip_report, support_margin

    T = 51
    pos = np.stack([0.3 * np.arange(T) / 50.0, np.zeros(T), np.full(T, 0.469)], -1)
    c = Clip("glide", 50.0, pos, np.tile([1.0, 0, 0, 0], (T, 1)), np.zeros((T, 9)), spec.joint_names).validate()
    r = clip_report(model, spec, c)
    assert r["near_limit_fraction"]["left_knee_pitch"] == 1.0 and r["near_limit_fraction"]["left_hip_roll"] == 0.0
    assert r["speed_mps"] == pytest.approx(0.3) and r["planted_slip_mean_mps"] == pytest.approx(0.3)
    assert abs(r["foot_lowest_m"]["left"]) < 1e-9 and r["foot_clearance_max_m"]["right"] < 1e-9
    assert 0.02 < r["initial_balance_margin_m"] < 0.06  # CoM above the feet, 2-6 cm inside the support edge
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0.5, 0.5]])
    assert support_margin([0.5, 0.4], square) == pytest.approx(0.4)
    assert support_margin([1.5, 0.5], square) == pytest.approx(-0.5)


def test_provenance_names_installed_versions_and_marks_missing_ones():
    import mujoco

    from wildamp import provenance

    v = provenance.library_versions(("mujoco", "no-such-distribution-wildamp"), missing=None)
    assert v["mujoco"] == mujoco.__version__ and v["no-such-distribution-wildamp"] is None and v["python"]
    assert provenance.library_versions(("no-such-distribution-wildamp",))["no-such-distribution-wildamp"] == "not installed"
    assert set(provenance.machine_info()) == {"system", "machine", "processor"}
