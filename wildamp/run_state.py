"""Run state: what a training run carries between iterations, what a checkpoint stores, how both are
restored, and the small policy-only export that is shipped with the repository.

Training, evaluation and the notebooks all restore through :func:`restore_checkpoint` /
:func:`load_policy`; there is no other copy of this logic.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from wildamp import checkpoint as C
from wildamp import ppo
from wildamp.env.walk import EnvState

POLICY_FILE = "policy.msgpack"
POLICY_META = "policy.json"


class TrainState(NamedTuple):
    ppo: ppo.PPOTrainState
    obs_norm: ppo.NormalizerState
    critic_norm: ppo.NormalizerState
    disc: Any                    # amp.DiscState, or () when AMP is off
    env: EnvState                # batched over envs
    rng: jax.Array
    iteration: jax.Array
    env_steps: jax.Array


def _leaves_dict(tree: Any) -> dict[str, Any]:
    # The env state holds backend physics state (e.g. MJX Data), which the msgpack serialiser does
    # not know: store its leaves by position (the structure comes from the template on restore).
    return {f"{i:04d}": leaf for i, leaf in enumerate(jax.tree.leaves(tree))}


def checkpoint_template(trainer: Any, state: TrainState) -> dict:
    """What a checkpoint stores: everything needed to continue exactly (the envs included)."""
    return {"ppo_params": state.ppo.params, "ppo_opt": state.ppo.opt_state, "ppo_step": state.ppo.step,
            "obs_norm": state.obs_norm, "critic_norm": state.critic_norm, "disc": state.disc,
            "env": _leaves_dict(state.env), "rng": state.rng, "iteration": state.iteration,
            "env_steps": state.env_steps,
            # The AMP feature normalisation the run trained with (its digest is also in the spec).
            "feature_normalizer": {k: np.asarray(getattr(trainer.feature_normalizer, k))
                                   for k in ("mean", "std", "keep")}}


def state_from_checkpoint(state: TrainState, c: dict) -> TrainState:
    env_def = jax.tree.structure(state.env)
    env = jax.tree.unflatten(env_def, [jnp.asarray(c["env"][k]) for k in sorted(c["env"])])
    to_jax = lambda t: jax.tree.map(jnp.asarray, t)  # noqa: E731
    return TrainState(ppo=state.ppo.replace(params=to_jax(c["ppo_params"]), opt_state=to_jax(c["ppo_opt"]),
                                            step=jnp.asarray(c["ppo_step"])),
                      obs_norm=to_jax(c["obs_norm"]), critic_norm=to_jax(c["critic_norm"]),
                      disc=to_jax(c["disc"]), env=env, rng=jnp.asarray(c["rng"]),
                      iteration=jnp.asarray(c["iteration"]), env_steps=jnp.asarray(c["env_steps"]))


def restore_checkpoint(trainer: Any, template_state: TrainState, path: str | os.PathLike) -> tuple[TrainState, dict]:
    """Load checkpoint ``path`` of a run of ``trainer`` into a TrainState; returns ``(state, meta)``.

    The checkpoint's spec is checked against the trainer's first (joint order, observation layout,
    default posture, feature normaliser, ...): a mismatch raises `wildamp.checkpoint.SpecMismatchError`.
    """
    trainer.check_saved_spec(C.load_meta(path)["spec"])
    restored, meta = C.load_checkpoint(path, checkpoint_template(trainer, template_state))
    return state_from_checkpoint(template_state, restored), meta


def resolve_checkpoint(run_dir: str | os.PathLike, which: str = "best", fall_back: bool = False) -> Path:
    """``best`` (the latest when none is marked), ``latest`` or an explicit checkpoint directory,
    verified intact (`wildamp.checkpoint.verify_checkpoint`).

    A corrupt or unreadable choice raises `wildamp.checkpoint.CheckpointCorruptError` naming the
    file, unless ``fall_back``: then the newest intact checkpoint of the run is used and a line
    says which one was skipped.
    """
    run = Path(run_dir)
    try:
        if which == "best":
            b = C.best_checkpoint(run)
            path = b[0] if b else C.latest_checkpoint(run)
        elif which == "latest":
            path = C.latest_checkpoint(run)
        else:
            path = Path(which)
            if not path.is_dir():
                raise FileNotFoundError(f"checkpoint {path} is not a directory (expected best, latest or "
                                        "a checkpoint directory such as RUN/checkpoints/ckpt_000000120)")
        if path is None:
            raise FileNotFoundError(f"no checkpoint in {run / 'checkpoints'}")
        C.verify_checkpoint(path)
        return path
    except C.CheckpointCorruptError as e:
        if not fall_back:
            raise C.CheckpointCorruptError(
                f"{e}\n  (use the newest intact checkpoint instead with --fall-back)") from None
        intact, bad = C.newest_intact_checkpoint(run)
        if intact is None:
            raise C.CheckpointCorruptError(f"{e}\n  and no intact checkpoint is left in {run / 'checkpoints'}") from None
        print(f"{e}\n  → falling back to the newest intact checkpoint {intact}", file=sys.stderr)
        return intact


# ----------------------------------------------------------------------------------- policy export


def is_policy_dir(path: str | os.PathLike) -> bool:
    """A directory written by :func:`export_policy` (config.yaml + policy.msgpack + policy.json)."""
    p = Path(path)
    return (p / POLICY_FILE).is_file() and (p / POLICY_META).is_file()


def export_policy(trainer: Any, state: TrainState, meta: dict, out_dir: str | os.PathLike,
                  extra: dict | None = None) -> Path:
    """Write the policy alone (network parameters and observation normaliser, a few hundred kB)
    with the run's effective config and spec, so it can be evaluated without the training state."""
    from flax import serialization

    from wildamp.config import save_effective_config
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_effective_config(trainer.cfg, out)
    payload = {"params": jax.device_get(state.ppo.params), "obs_norm": jax.device_get(state.obs_norm)}
    data = serialization.msgpack_serialize(serialization.to_state_dict(payload))
    (out / POLICY_FILE).write_bytes(data)
    info = {"spec": trainer.spec(), "iteration": int(meta["iteration"]),
            "env_steps": float(np.asarray(state.env_steps)), "policy_sha256": hashlib.sha256(data).hexdigest(),
            **(extra or {})}
    (out / POLICY_META).write_text(json.dumps(C.jsonable(info), indent=1))
    return out


def load_policy(trainer: Any, template_state: TrainState, policy_dir: str | os.PathLike) -> tuple[TrainState, dict]:
    """A TrainState whose policy parameters and observation normaliser come from an exported policy
    (the rest is ``template_state``); the export's spec is checked against the trainer's, and its
    bytes against ``policy_sha256`` when the export records one (`CheckpointCorruptError` naming
    the file otherwise; exports made before the hash was recorded load unverified)."""
    from flax import serialization
    p = Path(policy_dir)
    info = C.read_json(p / POLICY_META)
    if "spec" not in info:
        raise C.CheckpointCorruptError(f"{p / POLICY_META}: has no 'spec'")
    trainer.check_saved_spec(info["spec"])
    data = (p / POLICY_FILE).read_bytes()
    recorded = info.get("policy_sha256")
    if recorded is not None and hashlib.sha256(data).hexdigest() != recorded:
        raise C.CheckpointCorruptError(f"{p / POLICY_FILE} is corrupt: its SHA-256 differs from the one "
                                       f"recorded in {POLICY_META}")
    template = {"params": template_state.ppo.params, "obs_norm": template_state.obs_norm}
    try:
        raw = serialization.msgpack_restore(data)
        loaded = serialization.from_state_dict(template, raw)
    except Exception as e:  # noqa: BLE001 - garbage bytes fail in many ways; one clear error
        raise C.CheckpointCorruptError(f"{p / POLICY_FILE}: not a readable policy ({type(e).__name__}: {e})") from None
    loaded = jax.tree.map(jnp.asarray, loaded)
    state = template_state._replace(ppo=template_state.ppo.replace(params=loaded["params"]),
                                    obs_norm=loaded["obs_norm"])
    return state, info
