"""Physics backends of the walking env: the one seam between the JAX env and a physics engine.

A backend turns (physics state, joint targets, domain randomisation) into the next physics state and
a :class:`PhysicsFrame` — everything the env reads from physics: qpos, qvel, pad positions, pad
normal forces and actuator forces. Rewards, observations, AMP features, commands and auto-reset are
one JAX implementation on top of either backend.

- :class:`MjxBackend` steps MJX inside the jitted program (the GPU path; also runs on CPU).
- :class:`MujocoBackend` steps MuJoCo's C engine on the host, threaded over the cores with
  ``mujoco.rollout``, joined to the jitted program by ``jax.pure_callback``. On a 2-core CPU it is
  several times faster than MJX (``wildamp bench env --physics mjx,mujoco``).

Both report pad normal forces with one meaning: the sum over the pad's active contacts of the contact
normal force (N, >= 0), summed over pyramid facets (see :mod:`wildamp.physics`). Pad positions of both
come from MJX forward kinematics of the final qpos, exactly as for the kinematically replayed
reference, so pads and joints always describe the same instant.
"""

from __future__ import annotations

import os
import threading
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from wildamp.physics import geom_ids, make_mjx_model, mjx_geom_normal_forces

PHYSICS_BACKENDS: tuple[str, ...] = ("mjx", "mujoco")


class PhysicsFrame(NamedTuple):
    """What the env reads from physics after a step (or at a reset)."""
    qpos: jax.Array            # (nq,)
    qvel: jax.Array            # (nv,)
    pad_pos: jax.Array         # (P, 3) world positions of the sole pads (geom centres)
    pad_force: jax.Array       # (P,) contact normal force on each pad (N); zeros at a reset
    actuator_force: jax.Array  # (nu,)


class HostState(NamedTuple):
    """Physics state of the MuJoCo C backend between control steps (everything else is recomputed
    from it by ``mj_step``). Solver warm-start is not carried: every control step starts cold, which
    keeps results independent of how envs are spread over threads."""
    qpos: jax.Array
    qvel: jax.Array
    time: jax.Array


def resolve_backend_name(name: str) -> str:
    """``auto`` → ``mjx`` when JAX has a GPU, else ``mujoco``; other names pass through (checked)."""
    if name == "auto":
        return "mjx" if jax.default_backend() == "gpu" else "mujoco"
    if name not in PHYSICS_BACKENDS:
        raise ValueError(f"unknown physics backend {name!r}; known: auto, {', '.join(PHYSICS_BACKENDS)}")
    return name


def randomized_mjx_model(m: mjx.Model, dr: jax.Array) -> mjx.Model:
    """``m`` with every geom's friction, every body's mass and inertia and the servos' kp scaled by
    ``dr = (friction, mass, kp)`` (friction combines by max, so scaling all geoms scales the
    effective pad–floor friction)."""
    kp = m.actuator_gainprm[:, 0] * dr[2]
    return m.replace(
        geom_friction=m.geom_friction.at[:, 0].multiply(dr[0]),
        body_mass=m.body_mass * dr[1], body_inertia=m.body_inertia * dr[1],
        actuator_gainprm=m.actuator_gainprm.at[:, 0].set(kp),
        actuator_biasprm=m.actuator_biasprm.at[:, 1].set(-kp))


class _Kinematics:
    """MJX forward kinematics of pad positions (shared by both backends)."""

    def __init__(self, mj_model: mujoco.MjModel, pad_ids: np.ndarray):
        self.mjx_model = make_mjx_model(mj_model)
        self.pad_ids = np.asarray(pad_ids)
        home = mujoco.MjData(mj_model)
        mujoco.mj_forward(mj_model, home)
        self.template = mjx.put_data(mj_model, home, impl="jax")


class MjxBackend(_Kinematics):
    """MJX stepping inside the jitted program. State: ``mjx.Data``."""

    name = "mjx"

    def __init__(self, mj_model: mujoco.MjModel, pad_names: Any, n_substeps: int, randomize: bool):
        super().__init__(mj_model, geom_ids(mj_model, pad_names))
        self.n_substeps = n_substeps
        self.randomize = randomize

    def initial(self, qpos: jax.Array, qvel: jax.Array, ctrl: jax.Array) -> tuple[mjx.Data, PhysicsFrame]:
        data = self.template.replace(qpos=qpos, qvel=qvel, ctrl=ctrl,
                                     time=jnp.zeros_like(self.template.time))
        data = mjx.kinematics(self.mjx_model, data)
        return data, PhysicsFrame(data.qpos, data.qvel, data.geom_xpos[self.pad_ids],
                                  jnp.zeros(len(self.pad_ids)), data.actuator_force)

    def step(self, data: mjx.Data, ctrl: jax.Array, dr: jax.Array) -> tuple[mjx.Data, PhysicsFrame]:
        model = randomized_mjx_model(self.mjx_model, dr) if self.randomize else self.mjx_model
        data = data.replace(ctrl=ctrl)
        data, _ = jax.lax.scan(lambda d, _: (mjx.step(model, d), None), data, None, length=self.n_substeps)
        forces = mjx_geom_normal_forces(model, data, self.pad_ids)
        # mj_step leaves positions of the pre-integration state in xpos; recompute so that geometry
        # and qpos agree exactly as they do for the kinematically replayed reference.
        data = mjx.kinematics(self.mjx_model, data)
        return data, PhysicsFrame(data.qpos, data.qvel, data.geom_xpos[self.pad_ids], forces,
                                  data.actuator_force)


def _with_force_sensors(model_path: str | os.PathLike, mj_model: mujoco.MjModel, pad_names: Any,
                        max_contacts: int) -> mujoco.MjModel:
    """The model of ``model_path`` with sensors for what the env reads after a step: per pad, the
    contact forces (contact frame, normal first) of up to ``max_contacts`` contacts; per actuator, its
    force. The simulation options of ``mj_model`` (the env's, loaded from the same file) are copied."""
    spec = mujoco.MjSpec.from_file(str(model_path))
    for s in list(spec.sensors):
        spec.delete(s)
    for p in pad_names:
        s = spec.add_sensor(name=f"wildamp_force_{p}", type=mujoco.mjtSensor.mjSENS_CONTACT)
        s.objtype, s.objname = mujoco.mjtObj.mjOBJ_GEOM, p
        s.intprm[0] = 2              # data = "force" (contact frame: normal, tangent, tangent)
        s.intprm[1] = 0              # reduce = "none": the first `num` contacts
        s.intprm[2] = max_contacts   # num
    for i in range(mj_model.nu):
        s = spec.add_sensor(name=f"wildamp_actfrc_{i}", type=mujoco.mjtSensor.mjSENS_ACTUATORFRC)
        s.objtype, s.objname = mujoco.mjtObj.mjOBJ_ACTUATOR, mujoco.mj_id2name(
            mj_model, mujoco.mjtObj.mjOBJ_ACTUATOR, i)
    out = spec.compile()
    for f in ("timestep", "iterations", "ls_iterations", "cone", "solver", "integrator", "tolerance",
              "ls_tolerance", "noslip_iterations"):
        setattr(out.opt, f, getattr(mj_model.opt, f))
    sizes = ("nq", "nv", "nu", "ngeom", "nbody")
    if any(getattr(out, k) != getattr(mj_model, k) for k in sizes):
        raise ValueError(f"MuJoCo C backend: {model_path} does not compile to the env's model")
    return out


class MujocoBackend(_Kinematics):
    """MuJoCo C stepping on the host (``mujoco.rollout`` over a thread pool). State: :class:`HostState`.

    The jitted program calls :meth:`step` through ``jax.pure_callback`` with
    ``vmap_method="broadcast_all"``, so a vmapped env hands the whole batch to one C rollout.
    """

    name = "mujoco"
    MAX_PAD_CONTACTS = 4  # a box pad on a plane has at most 4 contact points

    def __init__(self, mj_model: mujoco.MjModel, pad_names: Any, n_substeps: int, randomize: bool,
                 model_path: str | os.PathLike, threads: int = 0):
        if randomize:
            raise ValueError("env.physics=mujoco does not support env.domain_randomization yet "
                             "(the C models would have to be rebuilt per episode); use env.physics=mjx")
        super().__init__(mj_model, geom_ids(mj_model, pad_names))
        self.n_substeps = n_substeps
        self.nq, self.nv, self.nu = mj_model.nq, mj_model.nv, mj_model.nu
        self.num_pads = len(pad_names)
        self.c_model = _with_force_sensors(model_path, mj_model, pad_names, self.MAX_PAD_CONTACTS)
        self.nstate = mujoco.mj_stateSize(self.c_model, mujoco.mjtState.mjSTATE_FULLPHYSICS)
        if self.nstate != 1 + self.nq + self.nv:
            raise ValueError(f"MuJoCo C backend: the model has extra physics state ({self.nstate} != "
                             f"1 + nq + nv): activations, mocap or plugins are not supported")
        self.threads = threads if threads > 0 else (os.cpu_count() or 1)
        self._lock = threading.Lock()
        self._pool = None

    # -- host side ------------------------------------------------------------------------------
    def _runner(self):
        # One Rollout thread pool and MjData set for the backend's lifetime, created on first use.
        # It must not be owned by the (short-lived) thread that XLA runs a callback on: a pool torn
        # down with that thread crashes the process.
        if self._pool is None:
            from mujoco import rollout
            self._pool = (rollout.Rollout(nthread=self.threads),
                          [mujoco.MjData(self.c_model) for _ in range(self.threads)])
        return self._pool

    def host_step(self, qpos: np.ndarray, qvel: np.ndarray, time: np.ndarray, ctrl: np.ndarray):
        """Numpy in, numpy out: ``n_substeps`` MuJoCo steps of every env with constant ``ctrl``."""
        qpos, qvel, time, ctrl = (np.asarray(a) for a in (qpos, qvel, time, ctrl))
        batch = qpos.shape[:-1]
        n = int(np.prod(batch)) if batch else 1
        state0 = np.concatenate([np.reshape(time, (n, 1)), np.reshape(qpos, (n, self.nq)),
                                 np.reshape(qvel, (n, self.nv))], axis=1).astype(np.float64)
        control = np.reshape(ctrl, (n, 1, self.nu)).astype(np.float64)
        with self._lock:  # one pool, one rollout at a time
            runner, datas = self._runner()
            state, sensor = runner.rollout(self.c_model, datas, state0, control, nstep=self.n_substeps,
                                           initial_warmstart=np.zeros((n, self.nv)))
        last, sens = state[:, -1], sensor[:, -1]
        p, k = self.num_pads, self.MAX_PAD_CONTACTS
        pad_force = sens[:, :p * k * 3].reshape(n, p, k, 3)[..., 0].sum(-1)
        act = sens[:, p * k * 3:p * k * 3 + self.nu]
        f32 = np.float32
        return (last[:, 1:1 + self.nq].reshape(*batch, self.nq).astype(f32),
                last[:, 1 + self.nq:].reshape(*batch, self.nv).astype(f32),
                last[:, 0].reshape(batch).astype(f32),
                pad_force.reshape(*batch, p).astype(f32),
                act.reshape(*batch, self.nu).astype(f32))

    # -- JAX side -------------------------------------------------------------------------------
    def _pad_pos(self, qpos: jax.Array) -> jax.Array:
        d = mjx.kinematics(self.mjx_model, self.template.replace(qpos=qpos))
        return d.geom_xpos[self.pad_ids]

    def initial(self, qpos: jax.Array, qvel: jax.Array, ctrl: jax.Array) -> tuple[HostState, PhysicsFrame]:
        del ctrl  # position servos: the first step's targets come with it
        state = HostState(qpos=qpos, qvel=qvel, time=jnp.zeros((), qpos.dtype))
        return state, PhysicsFrame(qpos, qvel, self._pad_pos(qpos), jnp.zeros(self.num_pads),
                                   jnp.zeros(self.nu, qpos.dtype))

    def step(self, state: HostState, ctrl: jax.Array, dr: jax.Array) -> tuple[HostState, PhysicsFrame]:
        del dr  # refused in __init__ when enabled
        f32 = jnp.float32
        shapes = (jax.ShapeDtypeStruct((self.nq,), f32), jax.ShapeDtypeStruct((self.nv,), f32),
                  jax.ShapeDtypeStruct((), f32), jax.ShapeDtypeStruct((self.num_pads,), f32),
                  jax.ShapeDtypeStruct((self.nu,), f32))
        qpos, qvel, t, pad_force, act = jax.pure_callback(
            self.host_step, shapes, state.qpos.astype(f32), state.qvel.astype(f32),
            state.time.astype(f32), ctrl.astype(f32), vmap_method="broadcast_all")
        return (HostState(qpos, qvel, t),
                PhysicsFrame(qpos, qvel, self._pad_pos(qpos), pad_force, act))


def make_backend(name: str, mj_model: mujoco.MjModel, model_path: str | os.PathLike, pad_names: Any,
                 n_substeps: int, randomize: bool, threads: int = 0) -> MjxBackend | MujocoBackend:
    """The configured backend (``auto`` resolved by :func:`resolve_backend_name`)."""
    name = resolve_backend_name(name)
    if name == "mjx":
        return MjxBackend(mj_model, pad_names, n_substeps, randomize)
    return MujocoBackend(mj_model, pad_names, n_substeps, randomize, model_path, threads)
