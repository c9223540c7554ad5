"""Data-parallel training across devices gives the single-device results (CPU, 2 forced host devices)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

SCRIPT = r"""
import json, sys, jax
from wildamp.config import load_config
from wildamp.train import run_training
cfg = load_config("configs/smoke.yaml", ["trainer.iterations=2", "trainer.num_envs=8",
                  "trainer.num_minibatches=2", "eval.every_iterations=100", "video.enabled=false"])
res = run_training(cfg, sys.argv[1], progress=False)
leaf = jax.tree.leaves(res.state.env)[0]
print("RESULT" + json.dumps({"devices": jax.device_count(),
      "env_shards": len(leaf.sharding.device_set), "records": res.records}))
"""


def _run(tmp_path, devices: int) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / f"run{devices}")], env=env,
                         capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.returncode == 0, out.stderr[-3000:]
    line = [l for l in out.stdout.splitlines() if l.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


def test_two_devices_match_one_device(tmp_path):
    one = _run(tmp_path, 1)
    two = _run(tmp_path, 2)
    assert one["devices"] == 1 and two["devices"] == 2
    assert two["env_shards"] == 2, "envs must be split across both devices"
    for a, b in zip(one["records"], two["records"]):
        for k in ("reward/task", "ppo/policy_loss", "ppo/value_loss", "amp/disc_loss", "amp/reward_mean"):
            np.testing.assert_allclose(b[k], a[k], rtol=1e-3, atol=1e-5, err_msg=k)
