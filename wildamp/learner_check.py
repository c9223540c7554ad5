"""Learner check: the project's PPO functions on a pendulum swing-up, a task with a known answer.

Why this exists: when walking does not learn, the cause can be the learner (a sign, GAE, the
normaliser, the update) or the task (rewards, physics, exploration). This module trains a policy
for a classic control task that PPO is known to solve, using *only* the functions of
``wildamp.ppo`` that the walking trainer uses (``make_networks``, ``PPOHyper``,
``create_train_state``, ``compute_gae``, ``PPOBatch``, ``ppo_update``, the observation normaliser,
``Networks.sample_action`` / ``deterministic_action`` / ``value``) and the same physics engine
(MJX, ``mjx.step`` in a ``lax.scan`` over substeps, vmapped over envs). If this check passes, the
learner is sound and a walking failure is about the walking task; if it fails, fix the learner first.

The task (``PENDULUM_XML``): a 1 kg point-like bob on a 0.5 m massless-ish pole, one hinge, a
torque motor limited to ``MAX_TORQUE`` = 2 N m, while gravity needs m g l = 4.9 N m to hold the
pole horizontal. From hanging down, the largest angle that constant full torque can hold is
asin(2 / 4.9) = 24 degrees, so the policy must pump energy by swinging back and forth and then
balance the pole upright (theta = 0), which is unstable.

* Observation: (cos theta, sin theta, theta_dot / 8), theta = 0 upright, passed through the PPO
  running normaliser (policy and critic see the same observation).
* Action: one unbounded Gaussian sample, clipped by the env to [-1, 1] and scaled by the motor
  gear to [-2, 2] N m.
* Reward per control step: cos theta - 0.001 theta_dot^2 - 0.01 u^2 (u the clipped action), so
  at most 1 per step; hanging still earns about -1 per step.
* Episodes: ``EPISODE_STEPS`` = 200 control steps of 0.05 s (10 s; 5 physics substeps of 0.01 s),
  starting hanging down with small noise (+-0.1 rad, +-0.1 rad/s). Episodes end only at the time
  limit, which is a *truncation*: GAE bootstraps from the value of the true final observation.

Target (``TARGET_UPRIGHT_FRACTION``, ``TARGET_ENV_STEPS``): with the deterministic (mean-action)
policy, the pole is within ``UPRIGHT_TOLERANCE_RAD`` = 0.3 rad of upright for at least 80 % of the
second half of an episode (mean over ``EVAL_EPISODES`` evaluation episodes with their own seeds),
after at most ``TARGET_ENV_STEPS`` = 500,000 environment steps of training. How the budget was
chosen (``TARGET_BASIS``): in runs of seeds 0-4 with the default config (2-core CPU, jax 0.10.2),
the stochastic training policy first held the pole upright for >= 80 % of the second half at
192,000-224,000 env steps, and the deterministic evaluations after 300,000 (seeds 1-4) and about
400,000 (seed 0) steps all scored 100 %; 500,000 steps leaves more than 2x margin. The figures of the committed full run are in
``results/learner_check_cpu.json`` (``wildamp bench learner``).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from wildamp import ppo, provenance

__all__ = [
    "PENDULUM_XML",
    "LearnerCheckConfig",
    "PendulumEnv",
    "run_learner_check",
    "plot_learning_curve",
]

#: Motor torque limit (N m): the actuator gear; the control range is [-1, 1].
MAX_TORQUE = 2.0
#: Control steps per episode (the time limit).
EPISODE_STEPS = 200
#: Physics substeps per control step (physics timestep 0.01 s -> control period 0.05 s).
SUBSTEPS = 5
#: |wrapped angle| below this counts as upright (rad).
UPRIGHT_TOLERANCE_RAD = 0.3
#: Pass threshold: mean share of the episode's second half spent upright (deterministic policy).
TARGET_UPRIGHT_FRACTION = 0.8
#: Pass budget: env steps of training within which the target must be reached.
TARGET_ENV_STEPS = 500_000
#: Where the budget comes from (recorded in the JSON with the target).
TARGET_BASIS = ("seeds 0-4, default config, 2-core CPU: the stochastic training policy first reached "
                ">= 80 % upright in the second half at 192,000-224,000 env steps; budget set >2x higher")
#: Evaluation episodes (one per env, seeds independent of training).
EVAL_EPISODES = 32
#: Scale of the angular velocity in the observation (rad/s).
VELOCITY_SCALE = 8.0

PENDULUM_XML = f"""
<mujoco model="learner_check_pendulum">
  <option timestep="0.01" integrator="Euler" gravity="0 0 -9.81">
    <flag contact="disable"/>
  </option>
  <worldbody>
    <body name="pole">
      <joint name="hinge" type="hinge" axis="0 1 0" damping="0.05"/>
      <geom name="rod" type="capsule" fromto="0 0 0 0 0 0.5" size="0.01" mass="0.01"/>
      <geom name="bob" type="sphere" pos="0 0 0.5" size="0.03" mass="1"/>
    </body>
  </worldbody>
  <actuator>
    <motor name="torque" joint="hinge" gear="{MAX_TORQUE}" ctrllimited="true" ctrlrange="-1 1"/>
  </actuator>
</mujoco>
"""


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LearnerCheckConfig:
    """Everything that fixes the compiled programs (hashable: it keys the compile cache).

    The env-step budget is *not* here: it only sets how many times the iteration is called, so runs
    of different lengths share one compilation. The learning rate is therefore constant.
    """

    num_envs: int = 32
    rollout_steps: int = EPISODE_STEPS
    episode_steps: int = EPISODE_STEPS
    substeps: int = SUBSTEPS
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    init_log_std: float = -0.5
    discount: float = 0.97
    gae_lambda: float = 0.95
    clip_epsilon: float = 0.2
    entropy_coef: float = 0.0
    value_coef: float = 0.5
    max_grad_norm: float = 0.5
    learning_rate: float = 1e-3
    update_epochs: int = 10
    num_minibatches: int = 8

    def hyper(self) -> ppo.PPOHyper:
        """The ``PPOHyper`` of this config (constant learning rate, advantages normalised)."""
        return ppo.PPOHyper(
            discount=self.discount,
            gae_lambda=self.gae_lambda,
            clip_epsilon=self.clip_epsilon,
            value_clip=None,
            entropy_coef=self.entropy_coef,
            value_coef=self.value_coef,
            max_grad_norm=self.max_grad_norm,
            learning_rate=self.learning_rate,
            lr_schedule="constant",
            total_updates=1,
            update_epochs=self.update_epochs,
            num_minibatches=self.num_minibatches,
            normalize_advantages=True,
        )

    @property
    def steps_per_iteration(self) -> int:
        """Env steps collected by one training iteration."""
        return self.num_envs * self.rollout_steps


# --------------------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------------------


class PendulumState(NamedTuple):
    """One env's state (vmapped: leading env axis on every leaf)."""

    data: mjx.Data
    step: jax.Array  # control steps taken in the current episode (int32)
    episode_return: jax.Array  # reward summed over the current episode


class StepResult(NamedTuple):
    """What ``PendulumEnv.step`` returns besides the next state."""

    final_obs: jax.Array  # observation the transition led to (before any auto-reset)
    reward: jax.Array
    truncated: jax.Array  # the time limit ended the episode at this step
    episode_return: jax.Array  # the finished episode's return where truncated, else 0
    angle: jax.Array  # wrapped angle after the step (rad, 0 = upright)
    step_in_episode: jax.Array  # index of this transition within its episode (0-based)


def wrap_angle(theta: jax.Array) -> jax.Array:
    """Angle wrapped to (-pi, pi]."""
    return jnp.arctan2(jnp.sin(theta), jnp.cos(theta))


class PendulumEnv:
    """Pendulum swing-up in MJX; single-env functions, to be vmapped by the caller."""

    def __init__(self, episode_steps: int = EPISODE_STEPS, substeps: int = SUBSTEPS) -> None:
        if episode_steps < 2 or substeps < 1:
            raise ValueError(f"episode_steps ({episode_steps}) must be >= 2, substeps ({substeps}) >= 1")
        self.model = mujoco.MjModel.from_xml_string(PENDULUM_XML)
        self.mx = mjx.put_model(self.model, impl="jax")
        self.data0 = mjx.put_data(self.model, mujoco.MjData(self.model), impl="jax")
        self.episode_steps = episode_steps
        self.substeps = substeps
        self.obs_size = 3
        self.action_size = 1
        self.ctrl_dt = float(self.model.opt.timestep) * substeps

    def observe(self, data: mjx.Data) -> jax.Array:
        """(cos theta, sin theta, theta_dot / VELOCITY_SCALE)."""
        theta, theta_dot = data.qpos[0], data.qvel[0]
        return jnp.stack([jnp.cos(theta), jnp.sin(theta), theta_dot / VELOCITY_SCALE])

    def reset(self, rng: jax.Array) -> PendulumState:
        """Hanging down (theta = pi) with +-0.1 rad and +-0.1 rad/s uniform noise."""
        k1, k2 = jax.random.split(rng)
        qpos = jnp.pi + jax.random.uniform(k1, (1,), minval=-0.1, maxval=0.1)
        qvel = jax.random.uniform(k2, (1,), minval=-0.1, maxval=0.1)
        data = self.data0.replace(qpos=qpos, qvel=qvel, ctrl=jnp.zeros((1,)))
        return PendulumState(data=data, step=jnp.zeros((), jnp.int32),
                             episode_return=jnp.zeros((), jnp.float32))

    def physics(self, data: mjx.Data, u: jax.Array) -> mjx.Data:
        """One control period: ``substeps`` ``mjx.step`` calls with the control held."""
        data = data.replace(ctrl=u)

        def sub(d: mjx.Data, _: None) -> tuple[mjx.Data, None]:
            return mjx.step(self.mx, d), None

        data, _ = jax.lax.scan(sub, data, None, length=self.substeps)
        return data

    def reward(self, data: mjx.Data, u: jax.Array) -> jax.Array:
        """cos theta - 0.001 theta_dot^2 - 0.01 u^2 after the step (u the clipped action)."""
        theta_dot = data.qvel[0]
        return jnp.cos(data.qpos[0]) - 1e-3 * jnp.square(theta_dot) - 1e-2 * jnp.sum(jnp.square(u))

    def step(self, state: PendulumState, action: jax.Array,
             reset_rng: jax.Array) -> tuple[PendulumState, StepResult]:
        """Clip the action, step the physics, score, and auto-reset at the time limit."""
        u = jnp.clip(action, -1.0, 1.0)
        data = self.physics(state.data, u)
        reward = self.reward(data, u)
        episode_return = state.episode_return + reward
        step = state.step + 1
        truncated = step >= self.episode_steps
        stepped = PendulumState(data=data, step=step, episode_return=episode_return)
        fresh = self.reset(reset_rng)
        nxt = jax.tree_util.tree_map(lambda a, b: jnp.where(truncated, a, b), fresh, stepped)
        result = StepResult(final_obs=self.observe(data), reward=reward, truncated=truncated,
                            episode_return=jnp.where(truncated, episode_return, 0.0),
                            angle=wrap_angle(data.qpos[0]), step_in_episode=state.step)
        return nxt, result


# --------------------------------------------------------------------------------------------------
# Training and evaluation programs
# --------------------------------------------------------------------------------------------------


class LoopState(NamedTuple):
    """Everything one training iteration carries to the next."""

    train: ppo.PPOTrainState
    obs_norm: ppo.NormalizerState
    env: PendulumState
    rng: jax.Array


class _Programs(NamedTuple):
    env: PendulumEnv
    networks: ppo.Networks
    hyper: ppo.PPOHyper
    init: Callable[[jax.Array], LoopState]
    iteration: Callable[[LoopState], tuple[LoopState, dict[str, jax.Array]]]
    evaluate: Callable[..., dict[str, jax.Array]]


@functools.lru_cache(maxsize=4)
def _programs(cfg: LearnerCheckConfig) -> _Programs:
    """Build (and cache per config) the env, networks and the jitted init / iteration / eval."""
    env = PendulumEnv(cfg.episode_steps, cfg.substeps)
    hyper = cfg.hyper()
    networks = ppo.make_networks(
        obs_dim=env.obs_size, critic_obs_dim=env.obs_size, action_dim=env.action_size,
        policy_hidden=cfg.hidden, value_hidden=cfg.hidden, activation=cfg.activation,
        init_log_std=cfg.init_log_std)
    if cfg.steps_per_iteration % cfg.num_minibatches:
        raise ValueError(f"num_envs * rollout_steps ({cfg.steps_per_iteration}) is not divisible by "
                         f"num_minibatches ({cfg.num_minibatches})")
    v_reset = jax.vmap(env.reset)
    v_step = jax.vmap(env.step)
    v_observe = jax.vmap(env.observe)
    half = cfg.episode_steps // 2

    def init(rng: jax.Array) -> LoopState:
        k_ppo, k_env, rng = jax.random.split(rng, 3)
        return LoopState(train=ppo.create_train_state(networks, hyper, k_ppo),
                         obs_norm=ppo.init_normalizer(env.obs_size),
                         env=v_reset(jax.random.split(k_env, cfg.num_envs)), rng=rng)

    def iteration(state: LoopState) -> tuple[LoopState, dict[str, jax.Array]]:
        params, norm = state.train.params, state.obs_norm

        def one(carry: tuple[PendulumState, jax.Array], _: None):
            env_state, rng = carry
            rng, k_act, k_reset = jax.random.split(rng, 3)
            raw = v_observe(env_state.data)
            obs = ppo.normalize(norm, raw)
            action, log_prob = networks.sample_action(params, obs, k_act)
            value = networks.value(params, obs)
            nxt, res = v_step(env_state, action, jax.random.split(k_reset, cfg.num_envs))
            out = dict(raw_obs=raw, obs=obs, action=action, log_prob=log_prob, value=value,
                       next_value=networks.value(params, ppo.normalize(norm, res.final_obs)),
                       reward=res.reward, truncated=res.truncated,
                       episode_return=res.episode_return, angle=res.angle,
                       step_in_episode=res.step_in_episode)
            return (nxt, rng), out

        (env_state, rng), tr = jax.lax.scan(one, (state.env, state.rng), None,
                                            length=cfg.rollout_steps)
        # Episodes end only at the time limit: done == truncated, and GAE bootstraps there.
        adv, ret = ppo.compute_gae(tr["reward"], tr["value"], tr["next_value"], tr["truncated"],
                                   tr["truncated"], hyper.discount, hyper.gae_lambda)
        batch = ppo.PPOBatch(obs=tr["obs"], critic_obs=tr["obs"], actions=tr["action"],
                             log_probs=tr["log_prob"], values=tr["value"], advantages=adv,
                             returns=ret)
        rng, k_upd = jax.random.split(rng)
        train, pm = ppo.ppo_update(state.train, batch, k_upd, hyper)
        obs_norm = ppo.update_normalizer(norm, tr["raw_obs"])  # after the update (ppo.py docstring)

        n_done = jnp.sum(tr["truncated"])
        late = tr["step_in_episode"] >= half
        upright = jnp.abs(tr["angle"]) < UPRIGHT_TOLERANCE_RAD
        metrics = {
            "step_reward": jnp.mean(tr["reward"]),
            "episode_return": jnp.where(n_done > 0, jnp.sum(tr["episode_return"])
                                        / jnp.maximum(n_done, 1), jnp.nan),
            "episodes": n_done.astype(jnp.float32),
            "upright_fraction_last_half": jnp.where(
                jnp.any(late), jnp.sum(upright & late) / jnp.maximum(jnp.sum(late), 1), jnp.nan),
            **pm,
        }
        return LoopState(train=train, obs_norm=obs_norm, env=env_state, rng=rng), metrics

    def evaluate(params: Any, norm: ppo.NormalizerState, rng: jax.Array,
                 action_scale: jax.Array) -> dict[str, jax.Array]:
        """One full episode per eval env with ``action_scale`` x the mean action; no resets.

        ``action_scale`` is traced (1 = the policy, 0 = zero torque) so both share one compilation."""
        env_state = v_reset(jax.random.split(rng, EVAL_EPISODES))

        def one(s: PendulumState, _: None):
            obs = ppo.normalize(norm, v_observe(s.data))
            action = action_scale * networks.deterministic_action(params, obs)
            u = jnp.clip(action, -1.0, 1.0)
            data = jax.vmap(env.physics)(s.data, u)
            reward = jax.vmap(env.reward)(data, u)
            return s._replace(data=data), (reward, wrap_angle(data.qpos[:, 0]))

        _, (rewards, angles) = jax.lax.scan(one, env_state, None, length=cfg.episode_steps)
        upright = (jnp.abs(angles[half:]) < UPRIGHT_TOLERANCE_RAD).mean(axis=0)  # per episode
        return {"return": jnp.sum(rewards, axis=0), "upright_fraction": upright}

    return _Programs(env=env, networks=networks, hyper=hyper, init=jax.jit(init),
                     iteration=jax.jit(iteration),
                     evaluate=jax.jit(evaluate))


def _nan_to_none(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


def run_learner_check(env_steps: int = TARGET_ENV_STEPS, seed: int = 0, num_envs: int = 32,
                      config: LearnerCheckConfig | None = None, progress: bool = True,
                      eval_seed: int = 12345) -> dict[str, Any]:
    """Train PPO on the pendulum swing-up for ``env_steps`` env steps; evaluate deterministically.

    Args:
        env_steps: training budget; rounded down to whole iterations of ``num_envs * rollout_steps``
            (at least one), so the run never uses more than the budget.
        seed: training seed (network init, env noise, action noise, minibatches).
        num_envs: parallel envs (overrides ``config.num_envs``).
        config: everything else (``LearnerCheckConfig()`` by default).
        progress: show a tqdm progress bar.
        eval_seed: seed of the evaluation episodes' initial states.

    Returns:
        A JSON-ready dict: ``config``, ``target`` (the stated pass criterion), ``curve`` (per
        iteration: ``env_steps``, ``episode_return``, ``step_reward``,
        ``upright_fraction_last_half`` of the *stochastic* training policy, ``policy_std``,
        ``approx_kl``, ``explained_variance``), ``eval`` (deterministic policy over
        ``EVAL_EPISODES`` episodes: mean/min upright fraction of the second half, mean return, and
        the zero-torque return for reference), ``env_steps``, ``wall_s`` (whole run including
        compilation), ``compile_s`` (first iteration call) and ``passed``.
    """
    from tqdm.auto import tqdm

    if env_steps < 1:
        raise ValueError(f"env_steps must be >= 1, got {env_steps}")
    cfg = dataclasses.replace(config or LearnerCheckConfig(), num_envs=num_envs)
    t_start = time.perf_counter()
    prog = _programs(cfg)
    per_iter = cfg.steps_per_iteration
    n_iter = max(1, env_steps // per_iter)

    state = prog.init(jax.random.PRNGKey(seed))
    curve: dict[str, list] = {k: [] for k in ("env_steps", "episode_return", "step_reward",
                                              "upright_fraction_last_half", "policy_std",
                                              "approx_kl", "explained_variance")}
    compile_s = None
    bar = tqdm(range(n_iter), desc="learner check (pendulum)", unit="it", disable=not progress)
    for i in bar:
        t0 = time.perf_counter()
        state, m = prog.iteration(state)
        m = jax.device_get(m)
        if compile_s is None:
            compile_s = time.perf_counter() - t0
        curve["env_steps"].append((i + 1) * per_iter)
        for k in list(curve)[1:]:
            curve[k].append(_nan_to_none(float(m[k])))
        if not math.isfinite(float(m["policy_loss"])):
            raise FloatingPointError(f"learner check: non-finite policy loss at iteration {i + 1}")
        bar.set_postfix(ret=f"{float(m['episode_return']):.1f}",
                        up=f"{float(m['upright_fraction_last_half']):.2f}")
    bar.close()

    params, norm = state.train.params, state.obs_norm
    eval_rng = jax.random.PRNGKey(eval_seed)
    ev = jax.device_get(prog.evaluate(params, norm, eval_rng, jnp.float32(1.0)))
    zero = jax.device_get(prog.evaluate(params, norm, eval_rng, jnp.float32(0.0)))
    wall_s = time.perf_counter() - t_start
    used = n_iter * per_iter
    up = np.asarray(ev["upright_fraction"])
    eval_res = {
        "episodes": EVAL_EPISODES,
        "upright_fraction_last_half_mean": float(up.mean()),
        "upright_fraction_last_half_min": float(up.min()),
        "episodes_meeting_target": int((up >= TARGET_UPRIGHT_FRACTION).sum()),
        "return_mean": float(np.mean(ev["return"])),
        "return_zero_torque_mean": float(np.mean(zero["return"])),
        "max_possible_return": float(cfg.episode_steps),
    }
    passed = bool(eval_res["upright_fraction_last_half_mean"] >= TARGET_UPRIGHT_FRACTION
                  and used <= TARGET_ENV_STEPS)
    return {
        "benchmark": "learner_check",
        "task": "pendulum swing-up (MJX), PPO from wildamp.ppo",
        "target": {
            "criterion": (f"deterministic policy within {UPRIGHT_TOLERANCE_RAD} rad of upright for "
                          f">= {TARGET_UPRIGHT_FRACTION:.0%} of the second half of an episode (mean "
                          f"over {EVAL_EPISODES} eval episodes) after <= {TARGET_ENV_STEPS:,} env steps"),
            "upright_fraction": TARGET_UPRIGHT_FRACTION,
            "upright_tolerance_rad": UPRIGHT_TOLERANCE_RAD,
            "env_steps": TARGET_ENV_STEPS,
            "basis": TARGET_BASIS,
        },
        "passed": passed,
        "seed": seed,
        "eval_seed": eval_seed,
        "env_steps": used,
        "iterations": n_iter,
        "wall_s": wall_s,
        "compile_s": compile_s,
        "eval": eval_res,
        "env": {"max_torque_nm": MAX_TORQUE, "gravity_torque_horizontal_nm": 9.81 * 0.5 * 1.0,
                "episode_steps": cfg.episode_steps, "ctrl_dt": prog.env.ctrl_dt,
                "substeps": cfg.substeps, "sim_dt": float(prog.env.model.opt.timestep)},
        "config": dataclasses.asdict(cfg),
        "curve": curve,
        "device": {"platform": jax.devices()[0].platform, "device_kind": jax.devices()[0].device_kind},
        "versions": provenance.library_versions(("jax", "jaxlib", "mujoco", "mujoco-mjx", "numpy",
                                                 "flax", "optax")),
        "cpu_count": os.cpu_count(),
        "machine": provenance.machine_info(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


# --------------------------------------------------------------------------------------------------
# Plot
# --------------------------------------------------------------------------------------------------


def plot_learning_curve(result: dict[str, Any], path: str | os.PathLike) -> Path:
    """Two panels (episode return; upright share of the second half) against env steps, with the
    target drawn as dashed lines and the final deterministic evaluation as a star. Writes a PNG."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c, ev, tgt = result["curve"], result["eval"], result["target"]
    x = np.asarray(c["env_steps"], dtype=float)

    def arr(key: str) -> np.ndarray:
        return np.asarray([np.nan if v is None else v for v in c[key]], dtype=float)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax1.plot(x, arr("episode_return"), label="training episodes (stochastic policy)")
    ax1.axhline(ev["return_zero_torque_mean"], color="grey", ls=":", label="zero torque (hanging)")
    ax1.axhline(ev["max_possible_return"], color="grey", ls="--", lw=0.8, label="upper bound")
    ax1.plot([x[-1]], [ev["return_mean"]], "r*", ms=12, label="final eval (mean action)")
    ax1.set_xlabel("env steps")
    ax1.set_ylabel(f"episode return ({result['env']['episode_steps']} steps)")
    ax1.set_title("Pendulum swing-up: return")
    ax1.legend(loc="lower right", fontsize=8)

    ax2.plot(x, arr("upright_fraction_last_half"), label="training episodes (stochastic policy)")
    ax2.axhline(tgt["upright_fraction"], color="k", ls="--",
                label=f"target {tgt['upright_fraction']:.0%}")
    ax2.axvline(tgt["env_steps"], color="k", ls=":", label=f"budget {tgt['env_steps']:,} steps")
    ax2.plot([x[-1]], [ev["upright_fraction_last_half_mean"]], "r*", ms=12,
             label="final eval (mean action)")
    ax2.set_ylim(-0.02, 1.02)
    ax2.set_xlabel("env steps")
    ax2.set_ylabel(f"share of 2nd half within {tgt['upright_tolerance_rad']} rad of upright")
    ax2.set_title("Pendulum swing-up: " + ("PASSED" if result["passed"] else "NOT PASSED"))
    ax2.legend(loc="center right", fontsize=8)
    steps_fmt = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v / 1000:g}k" if v else "0")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_formatter(steps_fmt)
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=100)
    plt.close(fig)
    return p
