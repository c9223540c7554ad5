"""Strict config loading: every bad config stops with an error naming the key and the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from wildamp import paths
from wildamp.config import ConfigError, config_from_dict, load_config, save_effective_config

SMOKE = paths.CONFIGS_DIR / "smoke.yaml"
FULL = paths.CONFIGS_DIR / "ppo_amass_training.yaml"


def _raw() -> dict:
    return yaml.safe_load(SMOKE.read_text())


def _set(d: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d[k]
    d[keys[-1]] = value


def _del(d: dict, dotted: str) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d[k]
    del d[keys[-1]]


# (description, mutation, words the message must contain)
BAD = [
    ("unknown top-level key", lambda d: d.update(bogus=1), ["bogus"]),
    ("unknown nested key", lambda d: _set(d, "amp.discriminator_hiden", [8]), ["amp.discriminator_hiden"]),
    ("missing required key", lambda d: _del(d, "reward_weights.feet_slip"), ["reward_weights.feet_slip", "missing"]),
    ("missing section", lambda d: _del(d, "features"), ["features", "missing"]),
    ("wrong type: string for float", lambda d: _set(d, "trainer.lr", "fast"), ["trainer.lr", "number"]),
    ("wrong type: int for bool", lambda d: _set(d, "amp.enabled", 1), ["amp.enabled", "true/false"]),
    ("wrong type: float for int", lambda d: _set(d, "trainer.num_envs", 16.5), ["trainer.num_envs", "integer"]),
    ("out of range probability", lambda d: _set(d, "amp.replay_buffer_ratio", 1.5), ["amp.replay_buffer_ratio", "out of range"]),
    ("out of range: zero sim_dt", lambda d: _set(d, "env.sim_dt", 0.0), ["env.sim_dt", "out of range"]),
    ("bad literal", lambda d: _set(d, "amp.objective", "lsgan"), ["amp.objective", "lsgan_01"]),
    ("inverted range", lambda d: _set(d, "env.command.forward_range", [0.4, 0.1]), ["env.command.forward_range"]),
    ("ctrl_dt not a multiple of sim_dt", lambda d: _set(d, "env.sim_dt", 0.003), ["ctrl_dt", "sim_dt"]),
    ("minibatches do not divide batch", lambda d: _set(d, "trainer.num_minibatches", 7), ["trainer.num_minibatches"]),
    ("unknown feature group", lambda d: _set(d, "features.drop_groups", ["elbows"]), ["features.drop_groups", "elbows"]),
    ("NaN value", lambda d: _set(d, "amp.weight", float("nan")), ["amp.weight", "finite"]),
    ("evaluation between checkpoints", lambda d: (_set(d, "checkpoints.every_iterations", 4), _set(d, "eval.every_iterations", 6)),
     ["eval.every_iterations", "checkpoints.every_iterations"]),
]


@pytest.mark.parametrize("desc,mutate,words", BAD, ids=[b[0] for b in BAD])
def test_bad_config_is_rejected_naming_key_and_file(tmp_path: Path, desc, mutate, words):
    raw = _raw()
    mutate(raw)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as e:
        load_config(bad)
    msg = str(e.value)
    assert str(bad) in msg, msg
    for w in words:
        assert w in msg, f"{desc}: {w!r} not in {msg!r}"


SHIPPED = sorted(paths.CONFIGS_DIR.glob("*.yaml"))


def test_shipped_configs_load():
    assert {p.name for p in SHIPPED} >= {"smoke.yaml", "cpu.yaml", "ppo_amass_training.yaml"}
    for p in SHIPPED:
        cfg = load_config(p)
        assert cfg.version and cfg.version_name
    assert load_config(FULL).trainer.num_envs >= 8192


def test_reward_weights_and_reward_terms_correspond_one_to_one(tmp_path: Path):
    # A weight without a term is an unknown key.
    raw = _raw()
    raw["reward_weights"]["upright_bonus"] = 1.0
    with pytest.raises(ConfigError, match="reward_weights.upright_bonus"):
        config_from_dict(raw, "x.yaml")
    # A term registered without a weight in the YAML is a missing key; with its one weight line the
    # config loads and the env sums it. (A fresh interpreter: the weight section is derived from
    # the registry when wildamp.config is imported.)
    with_weight = tmp_path / "with_weight.yaml"
    with_weight.write_text(yaml.safe_dump(raw))
    script = f"""
from wildamp.env.rewards import reward_term
@reward_term
def upright_bonus(x):
    return x.gravity_body[2] * 0 + 1.0
from wildamp.config import ConfigError, load_config
try:
    load_config({str(SMOKE)!r})
    raise SystemExit("a term without a weight was accepted")
except ConfigError as e:
    assert "reward_weights.upright_bonus" in str(e) and "missing" in str(e), e
cfg = load_config({str(with_weight)!r})
import jax
from wildamp.env import WalkEnv
env = WalkEnv(cfg)
s = jax.jit(env.step)(jax.jit(env.reset)(jax.random.PRNGKey(0)), jax.numpy.zeros(env.action_size))
assert float(s.reward_terms["upright_bonus"]) == 1.0
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == 0 and "ok" in r.stdout, r.stdout + r.stderr


def test_config_choices_are_the_owning_modules_names():
    """Every name list the config offers is declared once, by the module that implements it."""
    import typing

    from wildamp import config, features, ppo, robot
    from wildamp.amp import hyper, objective

    def choices(cls, name):
        return typing.get_args(typing.get_type_hints(cls)[name])

    assert choices(config.AmpConfig, "objective") == objective.OBJECTIVES == tuple(objective._TARGETS)
    assert choices(config.AmpConfig, "penalty") == hyper.PENALTIES
    assert choices(config.AmpConfig, "activation") == tuple(hyper.ACTIVATIONS)
    assert choices(config.NetworksConfig, "activation") == tuple(ppo.ACTIVATIONS)
    assert config.FEATURE_CHANNEL_GROUPS is features.GROUPS
    assert features.CONTACT_ORDER is robot.FOOT_GEOMS
    # Every choice the config accepts is one the implementation builds.
    for name in choices(config.AmpConfig, "activation"):
        assert callable(hyper.activation_fn(name))
    for name in choices(config.NetworksConfig, "activation"):
        assert callable(ppo.ACTIVATIONS[name])
    for name in choices(config.AmpConfig, "objective"):
        assert objective.AMPObjective(name).name == name
