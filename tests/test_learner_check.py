"""Learner check (wildamp.learner_check): PPO from wildamp.ppo must learn a pendulum swing-up.

A short run (8 iterations, 51,200 env steps; with compilation about 20-40 s on 2 busy CPU cores)
must raise the episode return clearly above its start. With the advantages negated or GAE's
recursion run forwards in time, the same run does not improve and this test fails (checked when the
test was written). The full check is ``wildamp bench learner``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from wildamp import learner_check as lc

STEPS = 8 * lc.LearnerCheckConfig().steps_per_iteration
#: Required gain of the episode return over the first iteration (untrained policy, hanging: about
#: -190; the maximum is 200). Measured after these steps, mean of the last two iterations, seeds 0-5:
#: -79 to -63 (seed 0: -192.5 -> -72.3). Negated advantages gave -200, a forwards GAE -172.
MIN_GAIN = 60.0


@pytest.fixture(scope="module")
def short_runs() -> tuple[dict, dict]:
    """The short run, and its first 3 iterations again (reusing the compiled programs)."""
    first = lc.run_learner_check(STEPS, seed=0, progress=False)
    again = lc.run_learner_check(3 * STEPS // 8, seed=0, progress=False)
    return first, again


def test_return_improves(short_runs: tuple[dict, dict]) -> None:
    res = short_runs[0]
    ret = res["curve"]["episode_return"]
    assert len(ret) == 8 and all(r is not None and math.isfinite(r) for r in ret)
    start, end = ret[0], np.mean(ret[-2:])
    assert start < -150.0, f"the untrained policy should hang down, got return {start:.1f}"
    assert end - start > MIN_GAIN, f"return went {start:.1f} -> {end:.1f}: PPO did not learn"
    # The deterministic policy is better than doing nothing too.
    assert res["eval"]["return_mean"] > res["eval"]["return_zero_torque_mean"] + MIN_GAIN
    assert res["env_steps"] == STEPS and not res["passed"]  # far from the full target this early


def test_deterministic(short_runs: tuple[dict, dict]) -> None:
    """Same seed, same learning curve (the learning rate is constant, so a shorter run is a prefix)."""
    first, again = short_runs
    assert len(again["curve"]["env_steps"]) == 3
    assert {k: v[:3] for k, v in first["curve"].items()} == again["curve"]


def test_task_needs_a_swing() -> None:
    """Full torque held from hanging down cannot lift the pole far: it has to swing up.

    With heavy joint damping (no swinging) the pole settles where the motor torque balances gravity,
    asin(2 / 4.9) = 24 degrees from hanging down."""
    import mujoco

    model = mujoco.MjModel.from_xml_string(lc.PENDULUM_XML)
    model.dof_damping[0] = 5.0
    data = mujoco.MjData(model)
    data.qpos[0] = np.pi
    data.ctrl[0] = 1.0
    largest = 0.0
    for _ in range(2000):
        mujoco.mj_step(model, data)
        from_hanging = np.pi - abs(math.atan2(math.sin(data.qpos[0]), math.cos(data.qpos[0])))
        largest = max(largest, from_hanging)
    assert math.radians(20.0) < largest < math.radians(30.0), math.degrees(largest)


def test_plot_and_json(short_runs: tuple[dict, dict], tmp_path) -> None:
    """The result is JSON-ready and the learning-curve PNG is written."""
    import json

    res = short_runs[0]
    assert json.loads(json.dumps(res))["curve"] == res["curve"]
    png = lc.plot_learning_curve(res, tmp_path / "curve.png")
    assert png.stat().st_size > 10_000
