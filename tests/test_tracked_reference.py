"""The physics-filtered reference (`wildamp reference track`, wildamp.reference.tracked): the embedded
gait as the robot performs it when its servos follow it — a reference a physical run can match,
unlike the kinematic clip, whose constant hip roll no simulated robot holds."""

from __future__ import annotations

import numpy as np
import pytest

from wildamp import features as F
from wildamp.cli import track_main
from wildamp.config import load_config
from wildamp.diagnose import classifier_auc
from wildamp.env.posture import rsi_table
from wildamp.paths import CONFIGS_DIR
from wildamp.reference import infeasible
from wildamp.reference.clip import MotionDataset
from wildamp.reference.feasibility import track_clip
from wildamp.reference.generator import default_gait_params, generate_clip
from wildamp.reference.resample import resample_clip
from wildamp.reference.tracked import SPEED_SKIP_SECONDS, tracked_clip

CTRL_DT = 0.02


@pytest.fixture(scope="module")
def gait(spec, model):
    return generate_clip(spec, default_gait_params(0.20, duration=4.0), model=model)


@pytest.fixture(scope="module")
def tracked(spec, model, gait):
    return tracked_clip(model, spec, gait, ctrl_dt=CTRL_DT)


def _dataset(*clips) -> MotionDataset:
    return MotionDataset(clips=list(clips), joint_names=clips[0].joint_names, fps=clips[0].fps)


def test_tracked_clip_is_the_tracking_run_with_its_measured_speed(spec, model, gait, tracked):
    trace = track_clip(model, spec, gait, ctrl_dt=CTRL_DT)
    np.testing.assert_allclose(tracked.root_pos, trace.qpos[:, :3])
    np.testing.assert_allclose(tracked.joint_pos, trace.joint_pos)
    assert tracked.fps == pytest.approx(1.0 / CTRL_DT)
    skip = int(round(SPEED_SKIP_SECONDS / CTRL_DT))
    vx, vy = (trace.qpos[-1, :2] - trace.qpos[skip, :2]) / ((trace.qpos.shape[0] - 1 - skip) * CTRL_DT)
    assert tracked.meta["speed"] == pytest.approx(vx)
    assert tracked.meta["measured_velocity"] == pytest.approx([vx, vy])
    assert tracked.meta["lateral_speed"] == 0.0          # a forward clip's sideways drift is not its command
    assert tracked.meta["nominal_speed"] == pytest.approx(0.20)
    assert abs(vx - 0.20) < 0.05                         # the servos keep most of the clip's speed
    # The kinematic clip holds hip roll at 0; carrying the body, the tracked one does not.
    roll = [spec.joint_names.index(n) for n in spec.joint_names if "hip_roll" in n]
    assert np.abs(gait.joint_pos[:, roll]).max() < 0.01
    assert np.abs(tracked.joint_pos[:, roll]).mean() > 0.02


def test_a_physical_run_is_told_from_the_kinematic_clip_but_not_from_the_tracked_one(spec, model, gait, tracked):
    """The style check's classifier on a second physical run (another start timing): it separates the
    run from the kinematic gait almost perfectly, from the tracked gait hardly at all."""
    fcfg = load_config(CONFIGS_DIR / "cpu.yaml").features
    layout = F.FeatureLayout.build(spec, fcfg)
    params = F.FeatureParams.from_config(fcfg, spec, model)
    names = layout.sample_channel_names()
    run = track_clip(model, spec, gait, ctrl_dt=CTRL_DT, settle_time=0.13)
    frames = F.mj_frames(model, F.FrameIds.from_model(model, spec), run.qpos, contact_force=run.foot_forces)
    run_samples = np.asarray(F.trajectory_samples(layout, params, [frames], CTRL_DT)[0])
    auc = {}
    for label, clip in (("kinematic", gait), ("tracked", tracked)):
        ref, _ = F.dataset_samples(_dataset(clip), model, spec, fcfg, ctrl_dt=CTRL_DT)
        norm = F.FeatureNormalizer.from_config(ref, names, fcfg)
        auc[label] = classifier_auc(norm.apply(ref), norm.apply(run_samples))
    assert auc["kinematic"] > 0.95, auc
    assert auc["tracked"] < 0.75, auc


def test_a_clip_the_robot_falls_from_is_refused_by_name(spec, model, gait, tmp_path):
    # The 0.25 m/s gait played 1.5x faster throws the robot from every start (test_reference_repair).
    fast = infeasible.sped_up(generate_clip(spec, default_gait_params(0.25, duration=4.0), model=model), 1.5)
    with pytest.raises(ValueError, match=fast.name):
        tracked_clip(model, spec, fast)
    src = tmp_path / "fast.npz"
    _dataset(gait, resample_clip(fast, gait.fps)).save(src)
    out = tmp_path / "tracked.npz"
    assert track_main(src, out) == 1
    assert not out.exists()


def test_cli_writes_a_dataset_that_rsi_starts_from_at_the_measured_speed(spec, model, gait, tmp_path):
    src, out = tmp_path / "gait.npz", tmp_path / "tracked.npz"
    _dataset(gait).save(src)
    assert track_main(src, out) == 0
    ds = MotionDataset.load(out, joint_names=spec.joint_names)
    assert ds.metadata["tracked"] is True and ds.fps == pytest.approx(1.0 / CTRL_DT)
    speed = ds.clips[0].meta["speed"]
    table = rsi_table(ds, F.FrameIds.from_model(model, spec), 1.0, (0.1, 0.25), (0.0, 0.0))
    np.testing.assert_allclose(np.asarray(table.command)[:, 0], speed, rtol=1e-6)
    assert np.asarray(table.command)[:, 1:].max() == 0.0


def test_the_gait_the_robot_performs_meets_the_stepping_targets(spec, model, gait, tracked):
    """The walking targets' alternation and swing-per-cycle describe the reference gait as the robot
    performs it (a policy imitating it perfectly would meet them). Read from the raw force contact
    it would not: at each foot strike the standing foot is unloaded for a step or two."""
    from wildamp.gait import TARGETS
    from wildamp.reference.tracked import trace_gait
    trace = track_clip(model, spec, gait, ctrl_dt=CTRL_DT)
    m = trace_gait(model, spec, trace)
    assert m["alternation"] >= TARGETS.min_alternation, m
    assert m["swing_per_cycle"] >= TARGETS.min_swing_per_cycle, m
    raw = trace_gait(model, spec, trace, min_swing_seconds=0.0)
    assert raw["alternation"] < TARGETS.min_alternation and raw["step_frequency_hz"] > 1.5 * m["step_frequency_hz"], raw
    assert tracked.meta["tracked"]["alternation"] == round(m["alternation"], 4)


def test_the_fastest_commanded_clip_is_replanned_to_a_regular_gait_at_its_speed(spec, model):
    """Servo tracking walks plans faster than 0.26 m/s of the slow band at 0.25 m/s on average only
    by stumbling into a double step now and then (the first plan within the speed tolerance, 0.3175
    m/s, alternated 0.88 of its touchdowns); the search keeps looking until the steps are regular."""
    from wildamp.reference.tracked import SPEED_TOLERANCE, speed_matched_tracked_clip, steps_regularly
    clip = generate_clip(spec, default_gait_params(0.25), model=model)
    matched = speed_matched_tracked_clip(model, spec, clip, ctrl_dt=CTRL_DT)
    assert abs(matched.meta["speed"] - 0.25) <= SPEED_TOLERANCE, matched.meta
    assert steps_regularly(matched.meta["tracked"]), matched.meta["tracked"]
    assert not steps_regularly({"alternation": 0.88, "swing_per_cycle": 1.0})
    assert not steps_regularly({"alternation": 1.0, "swing_per_cycle": 0.9})


def test_a_generated_clip_is_replanned_to_walk_at_its_nominal_speed(spec, model):
    """Open-loop servos walk the 0.10 m/s plan faster than planned; the speed-matched tracked clip is
    the tracking run of a re-planned (slower) gait that the robot walks at 0.10 m/s, under the clip's
    own name and nominal speed. A clip without generator parameters is tracked as it is."""
    import dataclasses
    from wildamp.reference.tracked import SPEED_TOLERANCE, speed_matched_tracked_clip
    clip = generate_clip(spec, default_gait_params(0.10), model=model)
    plain = tracked_clip(model, spec, clip, ctrl_dt=CTRL_DT)
    assert plain.meta["speed"] - 0.10 > 2 * SPEED_TOLERANCE, plain.meta["speed"]     # the mismatch fixed here
    matched = speed_matched_tracked_clip(model, spec, clip, ctrl_dt=CTRL_DT)
    assert abs(matched.meta["speed"] - 0.10) <= SPEED_TOLERANCE, matched.meta["speed"]
    assert matched.name == clip.name and matched.meta["nominal_speed"] == 0.10
    plan_speed = matched.meta["tracked"]["plan_speed"]
    assert plan_speed < 0.10
    replanned = generate_clip(spec, default_gait_params(plan_speed), model=model)
    np.testing.assert_allclose(matched.root_pos, tracked_clip(model, spec, replanned, ctrl_dt=CTRL_DT).root_pos)
    no_params = dataclasses.replace(clip, meta={k: v for k, v in clip.meta.items() if k != "params"})
    as_given = speed_matched_tracked_clip(model, spec, no_params, ctrl_dt=CTRL_DT)
    np.testing.assert_allclose(as_given.root_pos, plain.root_pos)
    assert "plan_speed" not in as_given.meta["tracked"]


def test_a_clip_is_commanded_by_the_speed_it_was_made_for(tracked):
    """A tracked clip re-planned to its nominal speed walks it only to within a few mm/s, so a clip
    made for the edge of the command range is judged by its nominal speed, not its measured one."""
    from dataclasses import replace
    from wildamp.reference.clip import command_speed, commanded_clips

    def clip(name, **meta):
        return replace(tracked, name=name, meta=meta)

    edge = clip("edge", speed=0.2502, nominal_speed=0.25, lateral_speed=0.0, nominal_lateral_speed=0.0)
    fast = clip("fast", speed=0.2480, nominal_speed=0.30)                 # made for 0.30, walks slower
    measured_only = clip("gmr", speed=0.15)                               # no nominal: its measured speed
    sideways = clip("side", speed=0.0, lateral_speed=0.098, nominal_speed=0.0, nominal_lateral_speed=0.1)
    ds = _dataset(edge, fast, measured_only, sideways)
    assert command_speed(edge) == (0.25, 0.0) and command_speed(measured_only) == (0.15, 0.0)
    names = [c.name for c in commanded_clips(ds, (0.10, 0.25), (0.0, 0.0))]
    assert names == ["edge", "gmr"]
    assert [c.name for c in commanded_clips(ds, (0.0, 0.0), (-0.1, 0.1))] == ["side"]
    assert len(commanded_clips(ds)) == 4                                  # no ranges: every clip


def test_the_cpu_discriminator_is_shown_only_the_commanded_clips(spec, model):
    """reference.clips: commanded (cpu.yaml) — the discriminator's reference samples, the feature
    normaliser and the style check come from the clips made for 0.10-0.25 m/s forward only; the
    faster and sideways clips of the embedded dataset are left out."""
    from wildamp.reference.clip import commanded_clips
    from wildamp.reference_data import amp_reference_clips, load_reference_dataset, load_reference_features
    cfg = load_config(CONFIGS_DIR / "cpu.yaml")
    ds = load_reference_dataset(cfg, spec)
    wanted = [c.name for c in commanded_clips(ds, cfg.env.command.forward_range, cfg.env.command.lateral_range)]
    assert wanted == ["walk_fwd_0.10", "walk_fwd_0.15", "walk_fwd_0.20", "walk_fwd_0.25"]
    assert len(ds.clips) > len(wanted)
    ref = load_reference_features(cfg, model, spec, dataset=ds)
    assert list(ref.clip_names) == wanted
    np.testing.assert_allclose(ref.clip_speed[:, 0], [0.10, 0.15, 0.20, 0.25], atol=0.003)
    # The normaliser is fitted on those clips alone: their samples are centred.
    kept = ref.samples.mean(axis=0)
    assert np.abs(kept).max() < 1e-3
    everything = load_reference_features(load_config(CONFIGS_DIR / "cpu.yaml", ["reference.clips=all"]),
                                         model, spec, dataset=ds)
    assert list(everything.clip_names) == list(ds.clip_names)
    with pytest.raises(ValueError, match="reference.clips: commanded"):
        amp_reference_clips(load_config(CONFIGS_DIR / "cpu.yaml", ["env.command.forward_range=[0.6,0.7]"]), ds)


def test_the_reference_samples_leave_out_each_clips_start_from_standing(spec, model):
    """reference.skip_seconds: the clips start from standing and accelerate for about a second; the
    AMP reference (discriminator, normaliser, style check) holds only samples whose frames all lie
    after the skip. Measured on the tracked 0.10 m/s clip: its first second is slower, lower and on
    both feet more often than the rest, so keeping it would shift the reference's means."""
    from wildamp.reference_data import after_start, load_reference_dataset, load_reference_features
    cfg = load_config(CONFIGS_DIR / "cpu.yaml")
    ds = load_reference_dataset(cfg, spec)
    skip = int(round(cfg.reference.skip_seconds * ds.fps))
    assert skip >= 25
    kept = load_reference_features(cfg, model, spec, dataset=ds)
    whole = load_reference_features(load_config(CONFIGS_DIR / "cpu.yaml", ["reference.skip_seconds=0"]),
                                    model, spec, dataset=ds)
    for c in range(len(kept.clip_names)):
        assert (whole.clip_index == c).sum() - (kept.clip_index == c).sum() == skip
    # Without the start the reference walks faster on average and stands on both feet less often.
    names = list(kept.normalizer.channel_names)
    vx, toe = names.index("root_lin_vel.x@t"), names.index("foot_contacts.left_toe@t")
    assert kept.normalizer.mean[vx] > whole.normalizer.mean[vx] + 0.01
    assert kept.normalizer.mean[toe] < whole.normalizer.mean[toe]
    x = np.arange(10.0)[:, None] * np.ones((1, 3))
    s, i = after_start(x, np.array([0] * 6 + [1] * 4), 3, ["a", "b"])
    np.testing.assert_array_equal(s[:, 0], [3, 4, 5, 9])
    np.testing.assert_array_equal(i, [0, 0, 0, 1])
    with pytest.raises(ValueError, match="skip_seconds leaves clip 'b'"):
        after_start(x, np.array([0] * 6 + [1] * 4), 4, ["a", "b"])
