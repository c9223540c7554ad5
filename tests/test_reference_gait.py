"""The embedded reference gait (generator) and the feasibility gate.

Everything here runs MuJoCo C on the CPU; the gate is run on a subset of the embedded clips (the
CLI `wildamp reference check` runs all of them).
"""

from __future__ import annotations

import dataclasses
import json
import math

import mujoco
import numpy as np
import pytest

from wildamp import quat
from wildamp.cli import check_main, generate_main
from wildamp.reference import feasibility as feas
from wildamp.reference import generator as gen
from wildamp.reference.clip import Clip, MotionDataset

DOWN_TOL = 0.004  # a sole whose lowest point is below this (m) is on the floor


@pytest.fixture(scope="module")
def dataset(spec, model) -> MotionDataset:
    return gen.generate_dataset(spec, model=model)


@pytest.fixture(scope="module")
def plans(spec, model):
    """(clip, plan) of the slowest and fastest forward clips."""
    speeds = (min(gen.DEFAULT_SPEEDS), max(gen.DEFAULT_SPEEDS))
    return {s: gen.generate_clip(spec, gen.default_gait_params(s), model=model, return_plan=True) for s in speeds}


def _fk_soles(model, spec, clip):
    """Per frame: lowest z of each foot's pads (left, right) and the whole-body CoM, by MuJoCo FK."""
    data = mujoco.MjData(model)
    pads = [model.geom(n).id for n in spec.foot_geoms]
    side = [0 if n.startswith("left") else 1 for n in spec.foot_geoms]
    corners = np.array([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)], dtype=float)
    low = np.full((clip.num_frames, 2), np.inf)
    com = np.zeros((clip.num_frames, 3))
    for k in range(clip.num_frames):
        data.qpos[:] = spec.home_qpos
        data.qpos[0:3], data.qpos[3:7] = clip.root_pos[k], clip.root_quat[k]
        data.qpos[spec.qpos_adr] = clip.joint_pos[k]
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        com[k] = data.subtree_com[model.body(spec.root_body).id]
        for g, s in zip(pads, side):
            pts = data.geom_xpos[g] + (corners * model.geom_size[g]) @ data.geom_xmat[g].reshape(3, 3).T
            low[k, s] = min(low[k, s], pts[:, 2].min())
    return low, com


# ------------------------------------------------------------------------------------ kinematics


def test_leg_ik_puts_the_ankle_on_target_with_a_level_sole(spec, model):
    """Analytic IK vs MuJoCo FK, both legs, random pelvis attitudes: exact ankle, level sole."""
    rng = np.random.default_rng(0)
    legs = [gen.leg_geometry(model, spec, s) for s in ("left", "right")]
    data = mujoco.MjData(model)
    for _ in range(20):
        root_q = quat.normalize(np.array([1.0, *rng.normal(0, 0.08, 3)]))
        R = quat.to_matrix(root_q)
        q = spec.home_qpos.copy()
        q[0:3], q[3:7] = (0.0, 0.0, 0.44), root_q
        targets = []
        for leg in legs:
            t = leg.roll_anchor + np.array([rng.uniform(-0.1, 0.1), rng.uniform(-0.03, 0.03), -rng.uniform(0.28, 0.36)])
            q[spec.qpos_adr[list(leg.joint_index)]] = gen.leg_ik(leg, t[None], R[2][None])[0]
            targets.append(t)
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        for leg, t in zip(legs, targets):
            ankle = model.joint(leg.joint_names[3]).id
            np.testing.assert_allclose(R.T @ (data.xanchor[ankle] - q[0:3]), t, atol=1e-9)
            foot_x = data.xmat[leg.foot_body].reshape(3, 3)[:, 0]
            assert abs(foot_x[2]) < 1e-9, f"{leg.side} sole not level in pitch: forward axis {foot_x}"


def test_leg_signs_come_from_the_axes_and_match_the_mirror_signs(spec, model):
    left, right = (gen.leg_geometry(model, spec, s) for s in ("left", "right"))
    # ARCHITECTURE.md §4: left hip pitch +q is flexion, the right one extension; knees and ankles are not mirrored.
    assert left.signs[0] == -right.signs[0]
    for k, joint in enumerate(("hip_pitch", "hip_roll", "knee_pitch", "ankle_pitch")):
        i = spec.joint_names.index(f"left_{joint}")
        # Canonical pitch angles are mirror-invariant, roll angles flip sign under the mirror.
        expected = left.signs[k] * right.signs[k] * (-1.0 if joint == "hip_roll" else 1.0)
        assert spec.mirror_sign[i] == expected, joint


def test_riccati_solution_is_stabilising():
    dt = 0.005
    A = np.array([[1.0, dt, dt * dt / 2], [0.0, 1.0, dt], [0.0, 0.0, 1.0]])
    B = np.array([[dt ** 3 / 6], [dt * dt / 2], [dt]])
    Q, R = np.diag([1.0, 0.0, 0.0]), np.array([[1e-6]])
    Q[1, 1] = 1e-3  # a state cost on velocity keeps (A, Q) detectable in this small example
    P = gen.solve_dare(A, B, Q, R)
    K = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
    residual = Q + A.T @ P @ A - A.T @ P @ B @ K - P
    assert np.abs(residual).max() < 1e-8 * np.abs(P).max()
    assert np.abs(np.linalg.eigvals(A - B @ K)).max() < 1.0


def test_preview_control_tracks_a_zmp_step():
    """The cart-table CoM starts moving before a ZMP step (preview) and its ZMP settles on it."""
    dt, z_c = 0.005, 0.3
    ref = np.zeros((1000, 1))
    ref[400:] = 0.05
    com, vel, zmp = gen.preview_control_com(ref, z_c, dt, preview_time=1.6)
    n = com.shape[0]
    assert np.abs(com[:100]).max() < 1e-4  # at rest long before the step
    assert com[399, 0] > 0.002  # anticipation: moving before the step (no preview would wait)
    assert abs(zmp[n - 1, 0] - 0.05) < 1e-3 and abs(com[n - 1, 0] - 0.05) < 1e-3
    # ZMP of the realised path from its own acceleration (cart-table), independent of the controller.
    acc = np.gradient(vel[:, 0], dt)
    np.testing.assert_allclose(com[50:-50, 0] - z_c / gen.GRAVITY * acc[50:-50], zmp[50:-50, 0], atol=2e-3)


# ----------------------------------------------------------------------------- generated clips


def test_dataset_covers_the_speed_grid(dataset):
    speeds = sorted(c.meta["speed"] for c in dataset.clips if c.meta["lateral_speed"] == 0.0)
    assert speeds == sorted(gen.DEFAULT_SPEEDS)
    assert min(speeds) <= 0.1
    lateral = sorted(c.meta["lateral_speed"] for c in dataset.clips if c.meta["lateral_speed"] != 0.0)
    assert lateral == sorted(gen.DEFAULT_LATERAL_SPEEDS)
    for c in dataset.clips:
        assert c.fps == 50.0 and c.duration >= 4.0
        assert c.joint_names == dataset.joint_names
        # Steady-state speed of the reference itself (whole gait cycles within the last 2 s, so that
        # the side-to-side rocking cancels) is the nominal one.
        cycle = 2.0 * c.meta["params"]["step_period"]
        window = math.floor(2.0 / cycle) * cycle
        k = int(round(window * c.fps))
        v = (c.root_pos[-1, :2] - c.root_pos[-1 - k, :2]) / (k / c.fps)
        nominal = np.array([c.meta["speed"], c.meta["lateral_speed"]])
        assert np.linalg.norm(v - nominal) < 0.1 * np.linalg.norm(nominal) + 0.01, (c.name, v)


def test_every_clip_is_within_joint_limits_with_margin(dataset, spec):
    lo, hi = spec.joint_ranges[:, 0], spec.joint_ranges[:, 1]
    for c in dataset.clips:
        margin = np.minimum(c.joint_pos - lo, hi - c.joint_pos).min(axis=0)
        worst = int(np.argmin(margin))
        assert margin[worst] >= gen.LIMIT_MARGIN - 1e-9, f"{c.name}: {spec.joint_names[worst]} margin {margin[worst]:.4f}"
        # waist_yaw counter-rotates (a constant channel would be dropped by the feature pipeline).
        assert np.ptp(c.joint_pos[:, spec.joint_names.index("waist_yaw")]) > 1e-3 or c.meta["speed"] == 0.0


def test_gait_alternates_single_support_with_clearance(dataset, spec, model):
    for c in dataset.clips:
        low, _ = _fk_soles(model, spec, c)
        assert low.min() > -1e-3, f"{c.name}: a sole penetrates the floor by {-low.min():.4f} m"
        p = c.meta["params"]
        walk = np.arange(c.num_frames) / c.fps >= p["stand_time"] + (p["ramp_steps"] + 1) * p["step_period"]
        down = low[walk] < DOWN_TOL
        assert down.any(axis=1).all(), f"{c.name}: both feet in the air"
        single = down[:, 0] ^ down[:, 1]
        assert single.mean() > 0.6, f"{c.name}: single support only {single.mean():.2f} of the time"
        # Sequence of single-support phases: which foot stands; must alternate L, R, L, R ...
        stance = np.where(down[:, 0] & ~down[:, 1], 0, np.where(down[:, 1] & ~down[:, 0], 1, -1))
        phases = [s for s in stance[stance >= 0]]
        seq = [phases[0]] + [b for a, b in zip(phases, phases[1:]) if b != a]
        n_expected = int(walk.sum() / c.fps / p["step_period"])
        assert len(seq) >= n_expected - 1 and all(a != b for a, b in zip(seq, seq[1:])), (c.name, seq)
        # Clearance: each swing lifts the sole well off the floor.
        for s in (0, 1):
            swing = low[walk, s] > DOWN_TOL
            edges = np.flatnonzero(np.diff(swing.astype(int)))
            peaks = [low[walk, s][a:b + 1].max() for a, b in zip(edges[::2], edges[1::2])]
            assert peaks and min(peaks) > 0.7 * p["step_height"], (c.name, s, peaks)


def test_pad_heights_match_forward_kinematics(dataset, spec, model):
    c = dataset.clip("walk_fwd_0.20")
    low, _ = _fk_soles(model, spec, c)
    pads = gen.pad_heights(model, spec, c)
    assert pads.shape == (c.num_frames, 4)
    left = [i for i, n in enumerate(spec.foot_geoms) if n.startswith("left")]
    right = [i for i, n in enumerate(spec.foot_geoms) if n.startswith("right")]
    np.testing.assert_allclose(pads[:, left].min(axis=1), low[:, 0], atol=1e-12)
    np.testing.assert_allclose(pads[:, right].min(axis=1), low[:, 1], atol=1e-12)


def test_com_follows_the_preview_plan(plans, spec, model):
    for speed, (clip, plan) in plans.items():
        _, com = _fk_soles(model, spec, clip)
        # Pelvis iterations put the whole-body CoM on the planned sagittal path (the lateral CoM
        # comes from the rocking, which tilts the nominal pose).
        assert np.abs(com[:, 0] - plan.com[:, 0]).max() < 2e-3, speed
        # In single support the planned ZMP stays on the stance sole (heel-to-toe extent).
        leg = gen.leg_geometry(model, spec, "left")
        for k in np.flatnonzero(plan.contact.sum(axis=1) == 1):
            st = int(np.argmax(plan.contact[k]))
            assert abs(plan.zmp[k, 0] - plan.feet_xy[k, st, 0]) < leg.sole_half_length


def test_generation_is_fast(spec, model):
    import time

    t0 = time.perf_counter()
    gen.generate_clip(spec, gen.default_gait_params(0.2), model=model)
    assert time.perf_counter() - t0 < 5.0


# -------------------------------------------------------------------------------------- the gate


def test_every_embedded_clip_passes_the_gate_from_several_starts(dataset, spec, model):
    # An open-loop tracked gait is chaotic: a clip that passes from one start timing only could pass
    # by luck. Every clip must pass from three (the gate's default 0.1 s among them).
    for clip in dataset.clips:
        for settle in (0.07, 0.1, 0.17):
            th = feas.FeasibilityThresholds(settle_time=settle)
            report, trace = feas.check_clip(model, spec, clip, th, return_trace=True)
            where = f"{clip.name} (settle {settle} s)"
            assert report.passed, f"{where}: {report.failures}"
            assert not report.fell and report.saturation_fraction == 0.0
            # The robot really walked on its feet: they carried its weight and it moved at roughly
            # the reference's mean speed (not shuffling in place, not running ahead).
            assert report.load_support_fraction > 0.9, where
            assert 0.6 * report.ref_speed < report.sim_speed < 1.5 * report.ref_speed, (
                where, report.sim_speed, report.ref_speed)
            assert trace.qpos.shape[0] == clip.num_frames


def test_fast_clips_need_their_own_band(spec, model):
    # The slow band's parameters cannot walk at 0.4 m/s (the tracked robot falls): the reason the
    # embedded gait has speed bands. The band's own set passes (test above).
    slow = gen.GaitParams(speed=0.4)
    report = feas.check_clip(model, spec, gen.generate_clip(spec, slow, model=model))
    assert not report.passed and report.fell
    fast = gen.default_gait_params(0.4)
    assert fast.step_period != slow.step_period and fast.ramp_steps != slow.ramp_steps
    assert gen.default_gait_params(0.25) == dataclasses.replace(gen.GaitParams(), speed=0.25)
    assert gen.default_gait_params(0.5).step_period == fast.step_period  # above the bands: the last one
    assert gen.default_gait_params(-0.3).step_period == gen.default_gait_params(0.3).step_period


def test_clip_sped_up_three_times_fails(dataset, spec, model):
    c = dataset.clip("walk_fwd_0.20")
    fast = Clip(name="fast", fps=3 * c.fps, root_pos=c.root_pos, root_quat=c.root_quat,
                joint_pos=c.joint_pos, joint_names=c.joint_names).validate()
    report = feas.check_clip(model, spec, fast)
    assert not report.passed
    # The servos cannot move the legs that fast: the robot does not get anywhere near the speed.
    assert any(f.startswith("speed") for f in report.failures), report.failures
    assert report.sim_speed < 0.5 * report.ref_speed


def test_targets_beyond_the_limits_fail_saturation(dataset, spec, model):
    c = dataset.clip("walk_fwd_0.10")
    j = c.joint_pos.copy()
    i = spec.joint_names.index("right_hip_pitch")
    j[:, i] = spec.joint_ranges[i, 1] + 0.1  # 5.7 deg past the extension limit, every frame
    bad = Clip(name="beyond_limits", fps=c.fps, root_pos=c.root_pos, root_quat=c.root_quat,
               joint_pos=j, joint_names=c.joint_names)
    report = feas.check_clip(model, spec, bad)
    assert not report.passed
    sat = [f for f in report.failures if f.startswith("saturation")]
    assert sat and "right_hip_pitch" in sat[0]
    assert report.saturation_fraction == 1.0 and report.saturated_joints == ["right_hip_pitch"]


def test_servo_lag_is_read_from_the_actuators(model):
    a = 0
    kp = model.actuator_gainprm[a, 0]
    kv = -model.actuator_biasprm[a, 2]
    damping = model.dof_damping[model.jnt_dofadr[model.actuator_trnid[a, 0]]]
    assert feas.servo_lag(model) == pytest.approx((kv + damping) / kp, rel=1e-6)  # all servos alike
    assert 0.01 < feas.servo_lag(model) < 0.05


def test_reports_table_and_json(dataset, spec, model, tmp_path):
    reports = [feas.check_clip(model, spec, dataset.clip("walk_fwd_0.10"))]
    table = feas.format_table(reports)
    assert "walk_fwd_0.10" in table and "1/1 clips pass" in table
    doc = json.loads(feas.reports_to_json(reports))
    assert doc["all_passed"] is True and doc["clips"][0]["name"] == "walk_fwd_0.10"
    assert doc["thresholds"]["max_slip_fraction"] == feas.FeasibilityThresholds().max_slip_fraction


# ------------------------------------------------------------------------------ files and CLI


def test_generated_gait_survives_gmr_round_trip(dataset, spec, tmp_path):
    from wildamp.reference.gmr import convert_gmr_files, write_gmr_pickle

    clips = [dataset.clip("walk_fwd_0.20"), dataset.clip("walk_lat_-0.10")]
    paths = []
    for c in clips:
        paths.append(tmp_path / f"{c.name}.pkl")
        write_gmr_pickle(c, paths[-1])
    ds = convert_gmr_files(paths, spec.joint_names, tmp_path / "converted.npz")
    back = MotionDataset.load(tmp_path / "converted.npz", joint_names=spec.joint_names)
    for c in clips:
        for got in (ds.clip(c.name), back.clip(c.name)):
            assert got.num_frames == c.num_frames and got.fps == c.fps
            np.testing.assert_allclose(got.root_pos, c.root_pos, atol=1e-12)
            np.testing.assert_allclose(got.joint_pos, c.joint_pos, atol=1e-12)
            assert quat.angle_between(got.root_quat, c.root_quat).max() < 1e-9


def test_generate_and_check_cli(tmp_path, capsys):
    out = tmp_path / "gait.npz"
    assert generate_main(out, write_gmr_dir=tmp_path / "gmr", speeds=[0.15]) == 0
    ds = MotionDataset.load(out)
    assert ds.clip_names == ("walk_fwd_0.15", "walk_lat_+0.10", "walk_lat_-0.10")
    assert ds.clip(0).meta["params"]["speed"] == 0.15
    assert sorted(p.name for p in (tmp_path / "gmr").iterdir()) == sorted(f"{n}.pkl" for n in ds.clip_names)
    assert check_main(out, tmp_path / "report.json") == 0
    assert json.loads((tmp_path / "report.json").read_text())["all_passed"] is True

    # A dataset with an infeasible clip: exit status 1, the failing criterion printed.
    c = ds.clip(0)
    fast = Clip(name="too_fast", fps=c.fps, root_pos=c.root_pos[::3], root_quat=c.root_quat[::3],
                joint_pos=c.joint_pos[::3], joint_names=c.joint_names)
    MotionDataset([fast], c.joint_names, c.fps).save(tmp_path / "bad.npz")
    capsys.readouterr()
    assert check_main(tmp_path / "bad.npz") == 1
    assert "too_fast: speed" in capsys.readouterr().out


def test_robustness_counts_passes_per_clip_and_floor(dataset, spec, model, tmp_path, capsys):
    one = MotionDataset([dataset.clip("walk_fwd_0.20")], dataset.joint_names, dataset.fps)
    settle = feas.start_timings(2)
    assert settle.tolist() == [0.045, 0.2575] and feas.start_timings(18)[1] == pytest.approx(0.0575)
    rows = feas.robustness(model, spec, one, settle, friction_scales=(1.0, 0.05))
    assert [(r.clip, r.friction_scale, r.runs) for r in rows] == [("walk_fwd_0.20", 1.0, 2), ("walk_fwd_0.20", 0.05, 2)]
    assert rows[0].passed == 2 and rows[0].failing == {}
    # On ice (friction x0.05) the soles slide: the runs fail and the table says why.
    assert rows[1].passed == 0 and rows[1].failing.get("slip", 0) + rows[1].failing.get("fell", 0) >= 2
    assert model.geom_friction[0, 0] == pytest.approx(feas.with_friction_scale(model, 1.0).geom_friction[0, 0])
    assert "walk_fwd_0.20" in feas.format_robustness(rows)
    with pytest.raises(ValueError, match="friction scale"):
        feas.with_friction_scale(model, 0.0)

    one.save(tmp_path / "one.npz")
    capsys.readouterr()
    assert check_main(tmp_path / "one.npz", tmp_path / "r.json", starts=2, friction_scales=(1.0,)) == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [r["passed"] for r in doc["robustness"]] == [2]
    assert doc["environment"]["mujoco"] == mujoco.__version__
    assert "robustness: 2 start timings" in capsys.readouterr().out


def test_ensure_default_reference_generates_once(tmp_path):
    path = tmp_path / "ref" / "gait.npz"
    assert gen.ensure_default_reference(path) == path and path.exists()
    mtime = path.stat().st_mtime_ns
    assert gen.ensure_default_reference(path) == path
    assert path.stat().st_mtime_ns == mtime  # not regenerated
    ds = MotionDataset.load(path)
    assert ds.metadata["generator_version"] == gen.GENERATOR_VERSION and ds.num_clips == len(gen.DEFAULT_SPEEDS) + 2


def test_bad_parameters_fail_loudly(spec, model):
    with pytest.raises(ValueError, match="step_period"):
        gen.GaitParams(step_period=0.05).validate()
    # A stride the legs cannot make names the joint (or the reach) instead of clipping silently.
    with pytest.raises(ValueError, match="hip_pitch|ankle_pitch|reach|knee"):
        gen.generate_clip(spec, gen.default_gait_params(0.6), model=model)
