"""Gate-in-the-loop tuning of the gait generator (``wildamp reference tune``): tiny searches on the CPU."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from wildamp.cli import main as cli_main
from wildamp.reference import generator as gen
from wildamp.reference import tuning


def test_trial_score_orders_outcomes():
    good = tuning.score_trial(1.0, 1.0, True, 0.0, 0.05)
    assert good == pytest.approx(3.5 - 0.025)
    # A fall halfway, a robot that shuffles at half the speed, one that runs ahead, slip: all worse.
    assert tuning.score_trial(0.5, 1.0, False, 0.0, 0.05) < good
    assert tuning.score_trial(1.0, 0.5, True, 0.0, 0.05) < good
    assert tuning.score_trial(1.0, 1.5, True, 0.0, 0.05) < good
    assert tuning.score_trial(1.0, 1.0, True, 0.2, 0.05) < good
    assert tuning.score_trial(1.0, float("nan"), False, 0.0, 0.0) == pytest.approx(1.0)


def test_score_params_runs_the_gate_per_speed_and_start(spec, model):
    score, trials = tuning.score_params(model, spec, {}, speeds=(0.2,), settle_times=(0.07, 0.17))
    assert [(t.speed, t.lateral_speed, t.settle_time, t.friction_scale) for t in trials] == [
        (0.2, 0.0, 0.07, 1.0), (0.2, 0.0, 0.17, 1.0)]
    # The embedded set walks at 0.2 m/s: both runs pass without a fall.
    assert all(t.passed and t.survived == 1.0 for t in trials)
    assert score == pytest.approx(min(t.score for t in trials) + 0.1 * np.mean([t.score for t in trials]))
    # A set whose clip cannot be generated (the legs cannot make the stride) scores GENERATION_FAILED.
    bad, none = tuning.score_params(model, spec, {"step_period": 0.45}, speeds=(0.6,), settle_times=(0.1,))
    assert bad == tuning.GENERATION_FAILED and none == []


def test_friction_scales_track_on_other_floors_without_touching_the_model(spec, model):
    before = model.geom_friction.copy()
    _, trials = tuning.score_params(model, spec, {}, speeds=(0.2,), settle_times=(0.1,), friction_scales=(0.5, 1.0))
    assert [t.friction_scale for t in trials] == [0.5, 1.0]
    np.testing.assert_array_equal(model.geom_friction, before)
    # The floor really changed: the tracked run differs on the slippery floor.
    assert trials[0].speed_ratio != trials[1].speed_ratio


def test_sideways_clips_are_scored_too(spec, model):
    _, trials = tuning.score_params(model, spec, {}, speeds=(), settle_times=(0.1,), lateral_speeds=(0.1, -0.1))
    assert [(t.speed, t.lateral_speed) for t in trials] == [(0.0, 0.1), (0.0, -0.1)]
    assert all(t.passed for t in trials)  # the embedded sideways clips
    with pytest.raises(ValueError, match="forward or lateral"):
        tuning.tune_gait((), iterations=1, population=4, progress=False)


def test_jittered_copies_are_tracked_too(spec, model):
    base = {"step_height": 0.04, "ramp_steps": 3}
    _, trials = tuning.score_params(model, spec, base, speeds=(0.2,), settle_times=(0.1,), jitter=0.01,
                                    jitter_draws=2)
    assert [t.variant for t in trials] == [0, 1, 2]
    # Each copy is its own clip (different parameters, so a different tracked run); same seeds, same runs.
    assert len({t.speed_ratio for t in trials}) == 3
    _, again = tuning.score_params(model, spec, base, speeds=(0.2,), settle_times=(0.1,), jitter=0.01,
                                   jitter_draws=2)
    assert [t.speed_ratio for t in again] == [t.speed_ratio for t in trials]


def test_a_falling_set_scores_its_survival(spec, model):
    # The slow band's parameters at 0.4 m/s: the tracked robot falls (why the faster bands exist).
    slow = {k: v for k, v in vars(gen.GaitParams()).items() if k in tuning.TUNABLE_RANGES}
    score, trials = tuning.score_params(model, spec, slow, speeds=(0.4,), settle_times=(0.1,))
    assert not trials[0].passed and trials[0].survived < 1.0
    fast, _ = tuning.score_params(model, spec, {}, speeds=(0.4,), settle_times=(0.1,))
    assert fast > score


def test_tune_gait_keeps_the_best_and_never_gets_worse(spec, model):
    start = {"step_height": 0.03}
    res = tuning.tune_gait((0.15,), iterations=2, population=4, init=start, seed=3, settle_times=(0.1,),
                           progress=False)
    init_score, _ = tuning.score_params(model, spec, tuning._params_from({**vars(gen.default_gait_params(0.15)),
                                                                           **start}), (0.15,), (0.1,))
    assert res.score >= init_score - 1e-12  # the starting set is scored in the first iteration
    assert len(res.history) == 2 and res.history[1] >= res.history[0]
    assert set(res.params) == set(tuning.TUNABLE_RANGES)
    assert isinstance(res.params["ramp_steps"], int)
    for k, (lo, hi) in tuning.TUNABLE_RANGES.items():
        assert lo <= res.params[k] <= hi, k
    gen.default_gait_params(0.15, **res.params)  # a valid parameter set
    again, _ = tuning.score_params(model, spec, res.params, (0.15,), (0.1,))
    assert again == pytest.approx(res.score)  # deterministic: the reported score is reproducible
    with pytest.raises(ValueError, match="unknown gait parameters"):
        tuning.tune_gait((0.15,), iterations=1, population=4, init={"stride": 1.0}, progress=False)
    with pytest.raises(ValueError, match="population"):
        tuning.tune_gait((0.15,), iterations=1, population=2, progress=False)


def test_tune_cli_writes_the_result_and_reports_the_gate(tmp_path, capsys):
    out = tmp_path / "tuned.json"
    init = tmp_path / "init.json"
    init.write_text(json.dumps({"params": {"step_height": 0.045}}))
    rc = cli_main(["reference", "tune", "--speeds", "0.2", "--iterations", "1", "--population", "4",
                   "--workers", "2", "--init", str(init), "--out", str(out)])
    res = json.loads(out.read_text())
    assert res["speeds"] == [0.2] and res["lateral_speeds"] == []
    assert len(res["trials"]) == len(tuning.DEFAULT_SETTLE_TIMES)
    assert rc == (0 if all(t["passed"] for t in res["trials"]) else 1)
    assert math.isfinite(res["score"]) and res["history"] == [res["score"]]
    printed = capsys.readouterr().out
    assert "v_sim/v_ref" in printed and f"wrote {out}" in printed
