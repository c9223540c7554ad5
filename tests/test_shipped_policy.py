"""The shipped CPU walking policy (assets/policies/walk_cpu) loads, matches its config, and walks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wildamp import paths, run_state
from wildamp.config import load_config

POLICY = paths.REPO_ROOT / "assets" / "policies" / "walk_cpu"


@pytest.fixture(scope="module")
def shipped():
    from wildamp.train import Trainer
    trainer = Trainer.build(load_config(POLICY / "config.yaml"))
    state, info = run_state.load_policy(trainer, trainer.init_state(), POLICY)
    return trainer, state, info


def test_shipped_policy_is_small_and_its_spec_matches_its_config(shipped):
    trainer, state, info = shipped
    assert run_state.is_policy_dir(POLICY)
    assert (POLICY / run_state.POLICY_FILE).stat().st_size < 2_000_000
    # load_policy checked the saved spec against the one this config builds; check it again here so a
    # silently skipped check would fail this test.
    assert info["spec"]["joint_names"] == list(trainer.env.spec.joint_names)
    assert info["spec"]["obs_size"] == trainer.env.obs_size
    assert info["spec"]["default_joint_pos"] == trainer.spec()["default_joint_pos"]
    # The normaliser of this machine's reference clips equals the training machine's within float noise.
    from wildamp.checkpoint import SPEC_ATOL, SPEC_RTOL
    mine = trainer.spec()["feature_normalizer"]
    for k in ("mean", "std"):
        np.testing.assert_allclose(info["spec"]["feature_normalizer"][k], mine[k], rtol=SPEC_RTOL, atol=SPEC_ATOL)
    # It was trained with the CPU walking config (same reference, physics, task and AMP sections).
    cpu = load_config(paths.CONFIGS_DIR / "cpu.yaml").to_dict()
    mine = trainer.cfg.to_dict()
    for section in ("reference", "env", "reward_weights", "features", "amp", "networks"):
        assert mine[section] == cpu[section], section


@pytest.fixture(scope="module")
def c_eval(shipped):
    from wildamp.evaluate import Evaluator
    trainer, state, _ = shipped
    return Evaluator(trainer, episode_seconds=5.0).evaluate(state.ppo.params, state.obs_norm)


def test_shipped_policy_walks_forward_without_falling(shipped, c_eval):
    ev = c_eval
    assert ev["fall_rate"] == 0.0
    for c, r in ev["per_command"].items():
        assert abs(r["forward_velocity"] - float(c)) < 0.1, (c, r["forward_velocity"])


def test_committed_results_describe_the_shipped_policy():
    res = json.loads((paths.REPO_ROOT / "results" / "walk_cpu.json").read_text())
    info = json.loads((POLICY / run_state.POLICY_META).read_text())
    assert res["amp"]["eval"]["iteration"] == info["iteration"]
    assert {"amp", "ppo_only", "machine", "versions"} <= set(res)
    assert np.isfinite(res["amp"]["eval"]["vel_error"]) and res["amp"]["wall_clock_s"] > 0


def test_policy_trained_on_mujoco_c_evaluates_alike_on_mjx(shipped, c_eval):
    """Backend parity for a policy: trained with MuJoCo C physics, evaluated on MJX (5 s episodes)
    it has the same fall rate and a velocity error within 0.01 m/s."""
    from wildamp.config import replace
    from wildamp.evaluate import Evaluator
    from wildamp.train import Trainer
    trainer, state, _ = shipped
    mjx_trainer = Trainer.build(replace(trainer.cfg, ["env.physics=mjx"]))
    assert mjx_trainer.env.backend.name == "mjx"
    ev = Evaluator(mjx_trainer, episode_seconds=5.0).evaluate(state.ppo.params, state.obs_norm)
    assert ev["fall_rate"] == c_eval["fall_rate"]
    assert abs(ev["vel_error"] - c_eval["vel_error"]) < 0.01, (ev["vel_error"], c_eval["vel_error"])
