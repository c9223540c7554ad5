"""Benchmarks: raw MJX physics throughput (``bench_physics``) and a JSON writer.

Numbers are only comparable on the same device and versions, so every result carries the device,
library versions and a host-name-free machine description.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from wildamp import paths, physics, provenance, robot

#: Control period of the robot (ARCHITECTURE.md §4: 50 Hz control, 500 Hz physics).
CTRL_DT = 0.02


def _device() -> dict[str, str]:
    dev = jax.devices()[0]
    return {"platform": dev.platform, "device_kind": dev.device_kind, "num_devices": str(jax.device_count())}


def bench_physics(
    num_envs: int,
    n_control_steps: int = 50,
    substeps: int | None = None,
    model_path: str | os.PathLike | None = None,
    seed: int = 0,
    repeats: int = 1,
) -> dict[str, Any]:
    """Raw MJX physics throughput of ``num_envs`` vmapped robots standing from ``home``.

    Each env starts at ``home`` with small random joint perturbations (+-0.05 rad) and servo targets
    (+-0.05 rad) so that contacts and the solver do real work. One control step is a ``lax.scan`` of
    ``substeps`` ``mjx.step`` calls (default ``round(CTRL_DT / timestep)``); the rollout is a scan over
    ``n_control_steps``. Compilation (AOT ``lower().compile()``) is timed separately from the
    steady-state run (best of ``repeats``, ``block_until_ready``). Raises RuntimeError if any env's
    state becomes non-finite (a benchmark of exploding physics would be meaningless).
    """
    if num_envs < 1 or n_control_steps < 1:
        raise ValueError(f"num_envs ({num_envs}) and n_control_steps ({n_control_steps}) must be >= 1")
    model_path = paths.DEFAULT_MODEL if model_path is None else model_path
    model = robot.load_model(model_path)
    if substeps is None:
        substeps = int(round(CTRL_DT / model.opt.timestep))
    key = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_KEY, robot.HOME_KEY)
    if key < 0:
        raise ValueError(f"model {model_path} has no keyframe {robot.HOME_KEY!r}")
    data = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, data, key)
    mx = physics.make_mjx_model(model)
    dx0 = mjx.put_data(model, data, impl="jax")

    # Actuated joints' qpos addresses, in actuator order (names -> indices, from the model).
    jnt = np.asarray(model.actuator_trnid[:, 0])
    qadr = jnp.asarray(model.jnt_qposadr[jnt])
    lo, hi = jnp.asarray(model.actuator_ctrlrange[:, 0]), jnp.asarray(model.actuator_ctrlrange[:, 1])

    def init(rng: jax.Array) -> mjx.Data:
        k1, k2 = jax.random.split(rng)
        dq = jax.random.uniform(k1, (model.nu,), minval=-0.05, maxval=0.05)
        qpos = dx0.qpos.at[qadr].add(dq)
        ctrl = jnp.clip(dx0.qpos[qadr] + jax.random.uniform(k2, (model.nu,), minval=-0.05, maxval=0.05), lo, hi)
        return dx0.replace(qpos=qpos, ctrl=ctrl)

    def rollout(d: mjx.Data) -> mjx.Data:
        def control_step(d: mjx.Data, _: None) -> tuple[mjx.Data, None]:
            def sub(d: mjx.Data, _: None) -> tuple[mjx.Data, None]:
                return mjx.step(mx, d), None

            d, _ = jax.lax.scan(sub, d, None, length=substeps)
            return d, None

        d, _ = jax.lax.scan(control_step, d, None, length=n_control_steps)
        return d

    batch = jax.jit(jax.vmap(init))(jax.random.split(jax.random.PRNGKey(seed), num_envs))
    jax.block_until_ready(batch)

    t0 = time.perf_counter()
    compiled = jax.jit(jax.vmap(rollout)).lower(batch).compile()
    compile_s = time.perf_counter() - t0

    best = float("inf")
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = compiled(batch)
        jax.block_until_ready(out)
        best = min(best, time.perf_counter() - t0)

    finite = np.asarray(jnp.all(jnp.isfinite(out.qpos), axis=-1) & jnp.all(jnp.isfinite(out.qvel), axis=-1))
    if not finite.all():
        raise RuntimeError(f"physics diverged: {int((~finite).sum())} of {num_envs} envs have non-finite state")
    root_z = np.asarray(out.qpos[:, 2])

    physics_steps = num_envs * n_control_steps * substeps
    return {
        "benchmark": "physics",
        "model_path": str(paths.resolve(model_path)),
        "num_envs": num_envs,
        "n_control_steps": n_control_steps,
        "substeps": substeps,
        "sim_dt": float(model.opt.timestep),
        "compile_s": compile_s,
        "run_s": best,
        "physics_steps_per_s": physics_steps / best,
        "control_steps_per_s": num_envs * n_control_steps / best,
        "final_root_height_mean": float(root_z.mean()),
        "final_root_height_min": float(root_z.min()),
        "device": _device(),
        "versions": provenance.library_versions(),
        "cpu_count": os.cpu_count(),
        "machine": provenance.machine_info(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def write_json(result: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a benchmark result as indented JSON (creating parent folders); returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    return p


def _context() -> dict[str, Any]:
    return {
        "device": _device(),
        "versions": provenance.library_versions(),
        "matmul_precision": str(jax.config.jax_default_matmul_precision),
        "cpu_count": os.cpu_count(),
        "machine": provenance.machine_info(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _peak_device_memory() -> int | None:
    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def bench_env(cfg: Any, num_envs: int, n_control_steps: int = 50, seed: int = 0) -> dict[str, Any]:
    """Control steps/s of the full walking env (rewards, features, auto-reset) under random actions."""
    from wildamp.env import WalkEnv

    env = WalkEnv(cfg)
    rng = jax.random.PRNGKey(seed)
    state = jax.jit(jax.vmap(env.reset))(jax.random.split(rng, num_envs))

    def rollout(state, rng):
        def one(s, k):
            a = jax.random.uniform(k, (num_envs, env.action_size), minval=-1.0, maxval=1.0)
            return jax.vmap(env.step)(s, a), None
        s, _ = jax.lax.scan(one, state, jax.random.split(rng, n_control_steps))
        return s

    t0 = time.perf_counter()
    compiled = jax.jit(rollout).lower(state, rng).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = compiled(state, rng)
    jax.block_until_ready(out.obs)
    run_s = time.perf_counter() - t0
    if not np.isfinite(np.asarray(out.obs)).all():
        raise RuntimeError("env bench: non-finite observations")
    res = {"benchmark": "env", "physics": env.backend.name, "num_envs": num_envs,
           "n_control_steps": n_control_steps, "sim_dt": cfg.env.sim_dt, "compile_s": compile_s,
           "run_s": run_s, "control_steps_per_s": num_envs * n_control_steps / run_s,
           "physics_steps_per_s": num_envs * n_control_steps * env.n_substeps / run_s,
           "amp_features": True, **_context()}
    if env.backend.name == "mujoco":
        # The C rollout alone on the same batch: how much of the env step is physics.
        p = jax.device_get(out.physics)
        ctrl = np.tile(np.asarray(env.default_joints, np.float32), (num_envs, 1))
        t0 = time.perf_counter()
        for _ in range(n_control_steps):
            env.backend.host_step(p.qpos, p.qvel, p.time, ctrl)
        phys_s = time.perf_counter() - t0
        res["physics_only_s"] = phys_s
        res["physics_share_of_env_step"] = phys_s / run_s
    return res


def bench_train(cfg: Any, calls: int = 2) -> dict[str, Any]:
    """End-to-end training throughput (``training/sps``), compile time and peak device memory."""
    from wildamp.train import Trainer, enable_compilation_cache

    enable_compilation_cache()
    trainer = Trainer.build(cfg)
    state = trainer.init_state()
    fn = trainer.make_train_fn()
    t0 = time.perf_counter()
    state, m = fn(state)
    jax.block_until_ready(state.iteration)
    first_s = time.perf_counter() - t0
    times = []
    for _ in range(max(1, calls)):
        t0 = time.perf_counter()
        state, m = fn(state)
        jax.block_until_ready(state.iteration)
        times.append(time.perf_counter() - t0)
    per_call = min(times)
    steps = cfg.trainer.num_envs * cfg.trainer.rollout_steps * cfg.trainer.iterations_per_call
    sps = steps / per_call
    return {"benchmark": "train", "amp_enabled": cfg.amp.enabled, "num_envs": cfg.trainer.num_envs,
            "rollout_steps": cfg.trainer.rollout_steps,
            "iterations_per_call": cfg.trainer.iterations_per_call, "sim_dt": cfg.env.sim_dt,
            "first_call_s": first_s, "compile_s_estimate": max(first_s - per_call, 0.0),
            "call_s": per_call, "training_sps": sps, "peak_device_memory_bytes": _peak_device_memory(),
            **_context()}


BACKEND_RATE_KEY = {"env": "control_steps_per_s", "train": "training_sps"}


def compare_backends(results: dict[str, dict], what: str) -> dict[str, Any]:
    """One JSON for a side-by-side backend run: each backend's result and rate / first backend's rate."""
    key = BACKEND_RATE_KEY[what]
    names = list(results)
    base = results[names[0]][key]
    return {"benchmark": f"{what}_backends", "rate_key": key, "backends": results,
            "ratio_to_" + names[0]: {n: results[n][key] / base for n in names}, **_context()}
