"""Benchmarks: raw MJX physics throughput (``bench_physics``) and a JSON writer.

Numbers are only comparable on the same device and versions, so every result carries the device,
library versions and a host-name-free machine description.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from wildamp import paths, physics, robot

#: Control period of the robot (DESIGN.md section 4: 50 Hz control, 500 Hz physics).
CTRL_DT = 0.02


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("jax", "jaxlib", "mujoco", "mujoco-mjx", "numpy"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


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
        "versions": _versions(),
        "cpu_count": os.cpu_count(),
        "machine": {"system": platform.system(), "machine": platform.machine(), "processor": platform.processor()},
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def write_json(result: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a benchmark result as indented JSON (creating parent folders); returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    return p
