"""`wildamp reference repair`: infeasible clips made on purpose fail the gate, their repairs pass it
and are closer in style to the source than the embedded gait at the source's speed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from wildamp.cli import check_main, convert_gmr_main, repair_main
from wildamp.config import load_config
from wildamp.paths import CONFIGS_DIR, DEFAULT_ROBOT_CONFIG
from wildamp.reference import infeasible
from wildamp.reference.clip import MotionDataset
from wildamp.reference.generator import default_gait_params, generate_clip
from wildamp.reference.gmr import write_gmr_pickle
from wildamp.reference.repair import measure_source
from wildamp.reference.style import SourceStyle, StyleFeatures, style_distance

# Few fit evaluations keep the tests fast; the repair must already move towards the source in them.
EVALUATIONS = 40
DURATION = 4.0


@pytest.fixture(scope="module")
def gait(spec, model):
    """The embedded gait at 0.25 m/s, 4 s: feasible, and its 1.5x faster version falls from every start."""
    return generate_clip(spec, default_gait_params(0.25, duration=DURATION), model=model)


def test_measure_source_reads_speed_and_cadence(gait):
    params = gait.meta["params"]
    m = measure_source(gait)
    assert m.step_period == pytest.approx(params["step_period"], rel=0.03)
    # The clip stands and ramps up before walking at 0.25 m/s: its mean is lower, but not by much.
    assert 0.15 < m.forward_speed < params["speed"]
    assert abs(m.lateral_speed) < 0.02 and abs(m.heading_change) < 0.05
    fast = measure_source(infeasible.sped_up(gait, 1.5))
    assert fast.step_period == pytest.approx(params["step_period"] / 1.5, rel=0.03)
    assert fast.forward_speed == pytest.approx(1.5 * m.forward_speed, rel=1e-6)


def test_style_samples_are_the_dataset_samples(spec, model, gait):
    """The host-side replay gives the AMP samples of the MJX replay (one feature function)."""
    from wildamp import features as F

    features = load_config(CONFIGS_DIR / "smoke.yaml").features
    clip = infeasible.tilted_start(generate_clip(spec, default_gait_params(0.25, duration=1.0), model=model))
    host = StyleFeatures.build(model, spec, features).samples(clip)
    mjx, _ = F.dataset_samples(MotionDataset(clips=[clip], joint_names=clip.joint_names, fps=clip.fps),
                               model, spec, features)
    assert host.shape == mjx.shape
    np.testing.assert_allclose(host, mjx, rtol=0, atol=1e-4)


def test_style_distance_is_zero_for_the_source_and_grows_with_a_change(spec, model, gait):
    style = StyleFeatures.build(model, spec, load_config(CONFIGS_DIR / "smoke.yaml").features)
    own = style.samples(gait)
    src = SourceStyle.of(own, own, std_floor=0.05)
    assert style_distance(src, own) == 0.0
    lower = style.samples(generate_clip(spec, dataclasses.replace(default_gait_params(0.25, duration=DURATION),
                                                                   pelvis_height=0.42), model=model))
    lowest = style.samples(generate_clip(spec, dataclasses.replace(default_gait_params(0.25, duration=DURATION),
                                                                    pelvis_height=0.41), model=model))
    assert 0.0 < style_distance(src, lower) < style_distance(src, lowest)


def _straighter_knees(fit: dict, gait) -> bool:
    """A higher pelvis straightens the knees (the source's are straight)."""
    return fit["params"]["pelvis_height"] > fit["start"]["pelvis_height"] + 0.01


def _faster(fit: dict, gait) -> bool:
    """Faster than the embedded gait at the source's mean speed (which includes standing and ramp-up)."""
    return fit["params"]["speed"] > fit["start"]["speed"] + 0.03


def _the_original_gait(fit: dict, gait) -> bool:
    """Only the first frames were spoiled: the fit finds the parameters the source was made with."""
    true = gait.meta["params"]
    return (abs(fit["params"]["speed"] - true["speed"]) < 0.01
            and abs(fit["params"]["step_period"] - true["step_period"]) < 0.005
            and abs(fit["params"]["pelvis_height"] - true["pelvis_height"]) < 0.003)


def test_gate_verdict_needs_every_start_and_the_asked_share_of_the_speed(spec, model, gait):
    from wildamp.reference.feasibility import FeasibilityThresholds
    from wildamp.reference.repair import gate_verdict

    verdict = gate_verdict(model, spec, gait, FeasibilityThresholds(), (0.07, 0.13))
    assert verdict.settle_times == (0.07, 0.1, 0.13)  # the gate's own start timing is always included
    assert verdict.passed and all(r.passed for r in verdict.reports)
    ratio = min(verdict.speed_ratios)
    assert 0.5 < ratio < 1.5
    assert dataclasses.replace(verdict, min_speed_ratio=ratio - 0.01).passed
    strict = dataclasses.replace(verdict, min_speed_ratio=ratio + 0.01)
    assert not strict.passed
    assert f"tracked speed {ratio:.2f} of the reference < {ratio + 0.01:g}" in strict.describe()


@pytest.mark.parametrize("spoil, fit_moves", [(infeasible.straight_knees, _straighter_knees),
                                              (infeasible.sped_up, _faster),
                                              (infeasible.tilted_start, _the_original_gait)],
                         ids=["straight_knees", "sped_up_1.5x", "tilted_start"])
def test_repair_makes_an_infeasible_gmr_clip_pass_the_gate_closer_to_its_style(tmp_path, capsys, gait, spoil,
                                                                                fit_moves):
    bad = spoil(gait)
    pkl = tmp_path / f"{bad.name}.pkl"
    write_gmr_pickle(bad, pkl)
    converted = tmp_path / "source.npz"
    assert convert_gmr_main([pkl], DEFAULT_ROBOT_CONFIG, converted) == 0
    assert check_main(converted) == 1, "the spoiled clip must fail the gate"

    out = tmp_path / "repaired.npz"
    capsys.readouterr()
    assert repair_main(pkl, out, duration=DURATION, evaluations=EVALUATIONS, progress=False) == 0
    printed = capsys.readouterr().out
    assert check_main(out) == 0, "the repaired clip must pass the gate"

    repaired = MotionDataset.load(out)
    summary = repaired.metadata["repair"]
    before, after = summary["style_before"], summary["style_after"]
    # The repair changed the gait: the fit moved the way the spoiling asks, the written clip is not
    # the embedded gait at the source's speed ...
    assert fit_moves(summary["fit"], gait), summary["fit"]
    assert repaired.clips[0].meta["params"] != summary["baseline_params"]
    # ... and it is closer to the source in style than that gait is, by both measures.
    assert after["distance"] < 0.97 * before["distance"]
    assert after["classifier_auc"] <= before["classifier_auc"] + 1e-9
    # The report prints both comparisons with their numbers.
    assert f"classifier AUC {before['classifier_auc']:.3f}, distance {before['distance']:.3f}" in printed
    assert f"classifier AUC {after['classifier_auc']:.3f}, distance {after['distance']:.3f}" in printed


def test_repair_exit_codes_for_bad_input_and_an_unrepairable_clip(tmp_path, capsys, gait, monkeypatch):
    ds = tmp_path / "two.npz"
    MotionDataset(clips=[gait, dataclasses.replace(gait, name="other")], joint_names=gait.joint_names,
                  fps=gait.fps).save(ds)
    out = tmp_path / "out.npz"
    cases = [(tmp_path / "missing.pkl", {}, "does not exist"),
             (ds, {}, "name one with --clip"),
             (ds, {"clip": "nope"}, "no clip named 'nope'"),
             (DEFAULT_ROBOT_CONFIG, {}, "expected a GMR pickle"),
             (ds, {"clip": "other", "evaluations": 0}, "--evaluations"),
             (ds, {"clip": "other", "duration": 0.2}, "duration")]
    for source, kw, message in cases:
        capsys.readouterr()
        assert repair_main(source, out, progress=False, **kw) == 2, message
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not out.exists()

    # A dataset clip by name; this one already passes the gate, so it is written unchanged.
    capsys.readouterr()
    assert repair_main(ds, out, clip="other", progress=False) == 0
    assert "already passes the gate; written unchanged" in capsys.readouterr().out
    kept = MotionDataset.load(out).clips[0]
    assert kept.name == "other" and np.array_equal(kept.joint_pos, gait.joint_pos)
    out.unlink()

    # A gate nothing can pass: the repair tries every candidate, writes nothing and exits 1.
    from wildamp.reference import repair
    from wildamp.reference.feasibility import FeasibilityThresholds

    monkeypatch.setattr(repair, "FeasibilityThresholds", lambda: FeasibilityThresholds(max_joint_rmse=0.0))
    spoiled = tmp_path / "tilted.pkl"
    write_gmr_pickle(infeasible.tilted_start(gait), spoiled)
    capsys.readouterr()
    assert repair_main(spoiled, out, duration=DURATION, evaluations=2, progress=False) == 1
    captured = capsys.readouterr()
    assert "could not be repaired" in captured.err
    assert captured.out.count("FAILS") >= 3  # the source, the fit and the fallbacks were all tried
    assert not out.exists()
