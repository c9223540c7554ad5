"""The training iteration (one ``jax.jit``) and the host loop: PPO, optionally with AMP.

One iteration, all on device:
  rollout (lax.scan over env steps, vmapped envs)
  → AMP samples of every transition (boundary transitions masked)
  → AMP reward with the discriminator parameters of rollout time (before this iteration's update)
  → discriminator updates on reference vs fresh + replayed policy samples
  → total reward = task_weight · task + w_amp(iteration) · AMP   (per step)
  → GAE (bootstrapping on truncation) → PPO epochs × minibatches.
``amp.enabled: false`` runs the same code path with the AMP parts compiled out.

The host loop calls a jitted ``lax.scan`` of ``iterations_per_call`` iterations, so shapes never
change between calls and the function compiles once.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from wildamp import amp as A
from wildamp import checkpoint as C
from wildamp import paths, ppo
from wildamp.amp.condition import SpeedCondition, build_speed_condition
from wildamp.config import REWARD_TERMS, Config, load_config, save_effective_config
from wildamp.env import WalkEnv
from wildamp.env.observations import obs_slice
from wildamp.run_state import TrainState, checkpoint_template, restore_checkpoint


def enable_compilation_cache(cache_dir: str | os.PathLike | None = None) -> None:
    """JAX's persistent compilation cache (repeat runs skip most of the compile)."""
    d = Path(cache_dir or os.environ.get("WILDAMP_JAX_CACHE", Path.home() / ".cache" / "wildamp_jax"))
    d.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(d))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


# --------------------------------------------------------------------------------------------- #
# State
# --------------------------------------------------------------------------------------------- #


def data_parallel_mesh() -> Mesh | None:
    """A 1-D mesh over every visible device (None on a single device)."""
    devices = jax.devices()
    return Mesh(np.asarray(devices), ("envs",)) if len(devices) > 1 else None


def shard_state(state: "TrainState") -> "TrainState":
    """Data parallelism: envs split across devices along their batch axis, everything else replicated.

    The jitted iteration is written for one device; XLA's sharding propagation partitions it, and
    the means in the PPO and discriminator losses become cross-device reductions, so gradients are
    averaged over all envs. With one device this is the identity.
    """
    mesh = data_parallel_mesh()
    if mesh is None:
        return state
    n = mesh.devices.size
    num_envs = jax.tree.leaves(state.env)[0].shape[0]
    if num_envs % n:
        raise ValueError(f"trainer.num_envs={num_envs} must be divisible by the {n} visible devices")
    envs = NamedSharding(mesh, P("envs"))
    replicated = NamedSharding(mesh, P())
    return state._replace(
        env=jax.device_put(state.env, envs),
        **{k: jax.device_put(getattr(state, k), replicated)
           for k in ("ppo", "obs_norm", "critic_norm", "disc", "rng", "iteration", "env_steps")})


class AMPReference(NamedTuple):
    """The reference side of the discriminator update, passed into the jitted iteration."""
    samples: jax.Array       # (N, D) normalised reference AMP samples
    clip_index: jax.Array    # (N,) int32: the clip of each sample


class Transition(NamedTuple):
    obs: jax.Array
    critic_obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    next_critic_obs: jax.Array   # raw critic obs of the state the transition led to (pre-reset)
    task_reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    amp_sample: jax.Array
    amp_valid: jax.Array
    reward_terms: dict
    episode_length: jax.Array
    episode_return: jax.Array
    vel_error: jax.Array
    nonfinite: jax.Array


def ppo_hyper(cfg: Config) -> ppo.PPOHyper:
    t = cfg.trainer
    return ppo.PPOHyper(
        discount=t.discount, gae_lambda=t.gae_lambda, clip_epsilon=t.clip_epsilon,
        value_clip=t.value_clip, entropy_coef=t.entropy_coef, value_coef=t.value_coef,
        max_grad_norm=t.max_grad_norm, learning_rate=t.lr, lr_schedule=t.lr_schedule,
        total_updates=t.iterations, update_epochs=t.update_epochs,
        num_minibatches=t.num_minibatches, normalize_advantages=t.normalize_advantages)


def amp_hyper(cfg: Config) -> A.AMPHyper:
    a = cfg.amp
    return A.AMPHyper(
        hidden=a.discriminator_hidden, activation=a.activation, use_spectral_norm=a.use_spectral_norm,
        objective=a.objective, penalty=a.penalty, r1_gamma=a.r1_gamma, logit_l2=a.logit_l2,
        weight_decay=a.weight_decay, disc_lr=a.disc_lr, update_steps=a.update_steps,
        batch_size=a.batch_size, input_noise_std=a.disc_input_noise_std,
        replay_buffer_size=a.replay_buffer_size, replay_buffer_ratio=a.replay_buffer_ratio)


def amp_step(disc: A.DiscState, samples: jax.Array, valid: jax.Array, reference: jax.Array,
             rng: jax.Array, hyper: A.AMPHyper) -> tuple[jax.Array, A.DiscState, dict]:
    """AMP reward of a rollout, then the discriminator update — in that order.

    ``samples`` (T, N, D) normalised AMP samples, ``valid`` (T, N) 0 where a sample spans an episode
    boundary. The reward uses ``disc`` as it was during the rollout (the seed's "hindsight bias" bug
    computed it after the update); invalid samples earn 0 and are never shown to the discriminator.
    Returns (reward (T, N), updated disc, metrics).
    """
    flat = samples.reshape(-1, samples.shape[-1])
    mask = valid.reshape(-1) > 0.5
    reward = A.amp_reward(disc, flat, hyper.objective).reshape(valid.shape) * valid
    new_disc, metrics = A.disc_update(disc, reference, flat, rng, hyper, fresh_mask=mask)
    metrics = dict(metrics)
    metrics.update({k[4:]: v for k, v in A.reward_stats(reward, valid > 0.5).items()})
    return reward, new_disc, metrics


#: Spec entries derived from the reference data (see `Trainer.check_saved_spec`).
TOLERANT_SPEC_KEYS = ("default_joint_pos", "feature_normalizer.mean", "feature_normalizer.std")


def normalizer_hash(normalizer: Any) -> str:
    """Digest of the AMP feature normalisation (a checkpoint is only valid with the same one)."""
    import hashlib
    h = hashlib.sha256()
    for k, v in sorted(normalizer.to_dict().items()):
        h.update(k.encode())
        h.update(np.ascontiguousarray(v).tobytes())
    return h.hexdigest()[:16]


def amp_weight_at(cfg: Config, iteration: jax.Array) -> jax.Array:
    """AMP weight with an optional linear warm-up ramp over the first iterations."""
    w = cfg.amp.weight
    n = cfg.amp.weight_warmup_iterations
    if n <= 0:
        return jnp.asarray(w, jnp.float32)
    return w * jnp.clip((iteration.astype(jnp.float32) + 1.0) / n, 0.0, 1.0)


# --------------------------------------------------------------------------------------------- #
# Building blocks
# --------------------------------------------------------------------------------------------- #


@dataclass
class Trainer:
    """Everything static about a run: env, networks, hyperparameters, reference features."""

    cfg: Config
    env: WalkEnv
    networks: ppo.Networks
    hyper: ppo.PPOHyper
    amp_hyper: A.AMPHyper | None
    reference: AMPReference | None       # the discriminator's reference side (None without AMP)
    feature_normalizer: Any
    reference_features: Any              # reference_data.ReferenceFeatures (also for the style check)
    condition: SpeedCondition | None = None   # amp.condition_on_command: the discriminator's speed input

    @classmethod
    def build(cls, cfg: Config) -> "Trainer":
        from wildamp.reference_data import load_reference_features
        env = WalkEnv(cfg)
        # The env's clips (read for its default posture / RSI, if it needed them) serve the AMP side too.
        ref = load_reference_features(cfg, env.mj_model, env.spec, dataset=env.dataset)
        normalizer = ref.normalizer
        n = cfg.networks
        networks = ppo.make_networks(env.obs_size, env.critic_obs_size, env.action_size,
                                     n.policy_hidden, n.value_hidden, n.activation, n.init_log_std)
        cmd = cfg.env.command
        condition = (build_speed_condition(ref.clip_command, cmd.forward_range, cmd.lateral_range)
                     if cfg.amp.enabled and cfg.amp.condition_on_command else None)
        reference = (AMPReference(samples=jnp.asarray(ref.samples),
                                  clip_index=jnp.asarray(ref.clip_index, jnp.int32))
                     if cfg.amp.enabled else None)
        return cls(cfg=cfg, env=env, networks=networks, hyper=ppo_hyper(cfg),
                   amp_hyper=amp_hyper(cfg) if cfg.amp.enabled else None, reference=reference,
                   feature_normalizer=normalizer, reference_features=ref, condition=condition)

    @property
    def amp_input_size(self) -> int:
        """Discriminator input width: the normalised AMP features, plus the speed condition if any."""
        return int(self.feature_normalizer.out_dim) + (self.condition.size if self.condition else 0)

    def spec(self) -> dict:
        s = self.env.spec_dict()
        s["amp_input_channels"] = list(self.feature_normalizer.kept)
        norm = self.feature_normalizer.to_dict()
        s["feature_normalizer"] = {"mean": norm["mean"], "std": norm["std"]}
        s["amp_enabled"] = self.cfg.amp.enabled
        if self.condition is not None:      # absent when unconditioned: older exports keep loading
            s["amp_condition_axes"] = list(self.condition.axes)
        return s

    def check_saved_spec(self, saved: Mapping[str, Any]) -> None:
        """Raise `wildamp.checkpoint.SpecMismatchError` unless a checkpoint's or export's ``saved``
        spec fits this trainer. The default posture and the feature normaliser come from the
        reference clips, which MuJoCo tracks on each machine with last-bit differences between CPUs:
        they are compared within a tolerance (:data:`TOLERANT_SPEC_KEYS`). Specs written before the
        normaliser's values were recorded hold its digest, compared exactly."""
        current = self.spec()
        if "feature_normalizer_sha256" in saved:
            current.pop("feature_normalizer")
            current["feature_normalizer_sha256"] = normalizer_hash(self.feature_normalizer)
        C.check_spec(saved, current, tolerant=TOLERANT_SPEC_KEYS)

    # ------------------------------------------------------------------ init
    def init_state(self, seed: int | None = None) -> TrainState:
        cfg = self.cfg
        rng = jax.random.PRNGKey(cfg.trainer.seed if seed is None else seed)
        rng, k_ppo, k_disc, k_env = jax.random.split(rng, 4)
        ppo_state = ppo.create_train_state(self.networks, self.hyper, k_ppo)
        env_state = jax.jit(jax.vmap(self.env.reset))(jax.random.split(k_env, cfg.trainer.num_envs))
        disc = (A.init_disc_state(k_disc, self.amp_input_size, self.amp_hyper)
                if cfg.amp.enabled else ())
        state = TrainState(ppo=ppo_state, obs_norm=ppo.init_normalizer(self.env.obs_size),
                           critic_norm=ppo.init_normalizer(self.env.critic_obs_size), disc=disc,
                           env=env_state, rng=rng, iteration=jnp.zeros((), jnp.int32),
                           env_steps=jnp.zeros((), jnp.float32))
        return shard_state(state)

    # ------------------------------------------------------------------ one iteration
    def _norm(self, state: TrainState, obs, critic):
        if not self.cfg.trainer.normalize_observations:
            return obs, critic
        return ppo.normalize(state.obs_norm, obs), ppo.normalize(state.critic_norm, critic)

    def rollout(self, state: TrainState) -> tuple[TrainState, Transition]:
        env, nets = self.env, self.networks
        step_fn = jax.vmap(env.step)

        def one(carry, _):
            env_state, rng = carry
            rng, k = jax.random.split(rng)
            obs, critic = self._norm(state, env_state.obs, env_state.critic_obs)
            action, log_prob = nets.sample_action(state.ppo.params, obs, k)
            value = nets.value(state.ppo.params, critic)
            nxt = step_fn(env_state, action)
            done = nxt.terminated | nxt.truncated
            # Raw observations are stored; the batch is normalised once after the rollout with the
            # same (not yet updated) statistics the policy saw.
            tr = Transition(
                obs=env_state.obs, critic_obs=env_state.critic_obs, action=action, log_prob=log_prob, value=value,
                next_critic_obs=nxt.final_critic_obs, task_reward=nxt.reward,
                terminated=nxt.terminated, truncated=nxt.truncated, amp_sample=nxt.amp_sample,
                amp_valid=nxt.amp_valid, reward_terms=nxt.reward_terms,
                episode_length=jnp.where(done, env_state.step_count + 1, 0),
                episode_return=jnp.where(done, env_state.episode_return + nxt.reward, 0.0),
                vel_error=nxt.vel_error, nonfinite=nxt.nonfinite)
            return (nxt, rng), tr

        (env_state, rng), traj = jax.lax.scan(one, (state.env, state.rng), None,
                                              length=self.cfg.trainer.rollout_steps)
        return state._replace(env=env_state, rng=rng), traj

    def iteration(self, state: TrainState, reference: AMPReference | None) -> tuple[TrainState, dict]:
        """One training iteration. ``reference``: the discriminator's reference side (None without AMP);
        passed as an argument rather than closed over so it is not baked into the compiled program."""
        cfg = self.cfg
        state, traj = self.rollout(state)
        rng, k_disc, k_ppo = jax.random.split(state.rng, 3)
        metrics: dict[str, jax.Array] = {}

        # Bootstrap values of the states each transition led to (true final state before reset).
        obs_n, critic_n = self._norm(state, traj.obs, traj.critic_obs)
        _, next_critic = self._norm(state, traj.obs, traj.next_critic_obs)
        next_values = self.networks.value(state.ppo.params, next_critic)

        task = traj.task_reward
        reward = cfg.amp.task_weight * task if cfg.amp.enabled else task
        disc = state.disc
        if cfg.amp.enabled:
            x = self.feature_normalizer.apply(traj.amp_sample)             # (T, N, D)
            real = reference.samples
            if self.condition is not None:
                k_disc, k_real = jax.random.split(k_disc)
                command = traj.obs[..., obs_slice("command", self.env.num_joints)]
                x = jnp.concatenate([x, self.condition.scale(command)], axis=-1)
                real = self.condition.reference_rows(k_real, reference.samples, reference.clip_index)
            r_amp, disc, dm = amp_step(disc, x, traj.amp_valid, real, k_disc, self.amp_hyper)
            w = amp_weight_at(cfg, state.iteration)
            reward = reward + w * r_amp
            style = jnp.mean(w * r_amp)
            metrics["reward/style"] = style
            metrics["reward/style_share"] = style / jnp.maximum(
                jnp.mean(jnp.abs(cfg.amp.task_weight * task)) + style, 1e-8)
            metrics.update({f"amp/{k}": v for k, v in dm.items()})
            metrics["amp/weight"] = w

        done = traj.terminated | traj.truncated
        adv, ret = ppo.compute_gae(reward, traj.value, next_values, done, traj.truncated,
                                   cfg.trainer.discount, cfg.trainer.gae_lambda)
        batch = ppo.PPOBatch(obs=obs_n, critic_obs=critic_n, actions=traj.action,
                             log_probs=traj.log_prob, values=traj.value, advantages=adv, returns=ret)
        ppo_state, pm = ppo.ppo_update(state.ppo, batch, k_ppo, self.hyper)
        metrics.update({f"ppo/{k}": v for k, v in pm.items()})

        # Observation statistics after the update, so the rollout used one consistent normaliser.
        obs_norm, critic_norm = state.obs_norm, state.critic_norm
        if cfg.trainer.normalize_observations:
            obs_norm = ppo.update_normalizer(obs_norm, traj.obs)
            critic_norm = ppo.update_normalizer(critic_norm, traj.critic_obs)

        n_done = jnp.sum(done)
        denom = jnp.maximum(n_done, 1)
        metrics["episode/count"] = n_done.astype(jnp.float32)
        metrics["episode/length"] = jnp.where(n_done > 0, jnp.sum(traj.episode_length) / denom, jnp.nan)
        metrics["episode/return"] = jnp.where(n_done > 0, jnp.sum(traj.episode_return) / denom, jnp.nan)
        metrics["episode/fall"] = jnp.where(n_done > 0, jnp.sum(traj.terminated) / denom, jnp.nan)
        metrics["episode/success"] = jnp.where(n_done > 0, jnp.sum(traj.truncated) / denom, jnp.nan)
        metrics["reward/task"] = jnp.mean(task)
        metrics["reward/total"] = jnp.mean(reward)
        for k in REWARD_TERMS:
            metrics[f"reward/{k}"] = jnp.mean(traj.reward_terms[k])
        metrics["env/vel_error"] = jnp.mean(traj.vel_error)
        steps = cfg.trainer.num_envs * cfg.trainer.rollout_steps
        metrics["training/nonfinite_states"] = jnp.sum(traj.nonfinite).astype(jnp.float32)
        new = TrainState(ppo=ppo_state, obs_norm=obs_norm, critic_norm=critic_norm, disc=disc,
                         env=state.env, rng=rng, iteration=state.iteration + 1,
                         env_steps=state.env_steps + steps)
        return new, metrics

    def make_train_fn(self):
        """Jitted ``iterations_per_call`` iterations; returns (state, stacked metrics)."""
        n = self.cfg.trainer.iterations_per_call

        def run(state: TrainState, reference: AMPReference | None):
            return jax.lax.scan(lambda s, _: self.iteration(s, reference), state, None, length=n)

        jitted = jax.jit(run, donate_argnums=0)
        return lambda state: jitted(state, self.reference)


# --------------------------------------------------------------------------------------------- #
# Host loop
# --------------------------------------------------------------------------------------------- #

_EXTRA_METRICS = [
    ("amp/disc_logit_l2", "L2 penalty on the discriminator's output-layer kernel (weighted)", "mean", ""),
    ("amp/disc_fresh_valid_frac", "fraction of this rollout's AMP samples not spanning an episode boundary", "mean", ""),
    ("ppo/total_loss", "total PPO loss (policy + value_coef·value − entropy_coef·entropy)", "mean", ""),
    ("ppo/policy_std", "mean standard deviation of the Gaussian policy", "mean", ""),
    ("reward/task", "mean per-step task reward (weighted sum of the terms)", "mean", ""),
    ("reward/total", "mean per-step total reward used by PPO (task and style)", "mean", ""),
    ("reward/style", "mean per-step weighted style (AMP) reward in the total reward", "mean", ""),
    ("reward/style_share", "style share of the reward signal: mean weighted style / (mean |weighted task| + mean weighted style)", "mean", ""),
    ("training/nonfinite_states", "transitions whose physics state became NaN/inf (training stops)", "sum", ""),
    ("eval/style_auc", "deterministic evaluation: held-out AUC of a fresh classifier, policy vs reference AMP features at matched speed (0.5 = indistinguishable)", "mean", ""),
    ("eval/alternation", "deterministic evaluation: share of consecutive touchdowns made by alternate feet (1 = strictly alternating)", "mean", ""),
    ("eval/swing_per_cycle", "deterministic evaluation: share of the other foot's step intervals during which a foot swung at least once", "mean", ""),
    ("eval/step_frequency_hz", "deterministic evaluation: touchdowns per second per foot", "mean", "Hz"),
    ("training/wall_s", "wall-clock seconds since the start of training (compile included)", "last", "s"),
]


def _declare_metrics() -> None:
    from wildamp.metrics import REGISTRY, declare_reward_terms
    for name, meaning, agg, unit in _EXTRA_METRICS:
        if name not in REGISTRY:
            REGISTRY.register(name, meaning, agg, unit)
    declare_reward_terms([k for k in REWARD_TERMS if f"reward/{k}" not in REGISTRY])


class TrainingDiverged(RuntimeError):
    """NaN/inf in losses or states: training stopped; the last good checkpoint is kept."""


def default_config_path() -> Path:
    """The full GPU config on a GPU, the CPU-sized config elsewhere."""
    gpu = any(d.platform == "gpu" for d in jax.devices())
    return paths.CONFIGS_DIR / ("ppo_amass_training.yaml" if gpu else "cpu.yaml")


def progress_postfix(rec: dict[str, float], last_return: float | None, amp: bool) -> dict[str, str]:
    """The progress bar's postfix for the latest iteration record ``rec``.

    ``ret`` is the mean return of the episodes that ended most recently: ``last_return`` (the caller
    keeps the last finite ``episode/return`` seen), ``'-'`` before any episode has ended. An iteration
    without a finished episode logs ``episode/return`` as NaN, which is no news, not a value to show.
    ``sps`` is env steps per second of the last jitted call.
    """
    out = {"ret": "-" if last_return is None else f"{last_return:.2f}",
           "verr": f"{rec['env/vel_error']:.3f}"}
    if amp:
        out["disc_acc"] = f"{rec['amp/disc_acc']:.2f}"
    out["sps"] = f"{rec['training/sps']:,.0f}"
    return out


def _host(metrics: dict, i: int) -> dict[str, float]:
    return {k: float(np.asarray(v)[i]) for k, v in metrics.items()}


def _save_on_interrupt(run_dir: Path, save, state: TrainState) -> None:
    """Ctrl-C: checkpoint the last completed iteration (if its buffers are still alive: a call that
    was interrupted has donated them) and say how to continue."""
    try:
        path = save(int(state.iteration))
        where = f"saved {path}"
    except Exception:  # noqa: BLE001 - the interrupted call consumed the state; fall back
        latest = C.latest_checkpoint(run_dir)
        where = f"latest checkpoint {latest}" if latest else "no checkpoint yet"
    print(f"\ninterrupted: {where}; continue with `wildamp train --resume {run_dir}`")


@dataclass
class RunResult:
    run_dir: Path
    records: list[dict]
    state: TrainState
    trainer: Trainer
    best_checkpoint: Path | None
    eval: dict | None


def _checkpoint_bytes(trainer: Trainer, state: TrainState) -> int:
    """Bytes of one checkpoint's arrays (what the free-space check multiplies)."""
    return int(sum(getattr(x, "nbytes", 8) for x in jax.tree.leaves(checkpoint_template(trainer, state))))


def run_training(cfg: Config, run_dir: str | os.PathLike, resume: bool = False,
                 progress: bool = True, on_metrics=None, iterations: int | None = None,
                 allow_config_change: bool = False, fall_back: bool = False) -> RunResult:
    """Train ``cfg`` into ``run_dir`` (checkpoints, metrics.jsonl, config.yaml, eval results).

    ``on_metrics(record)`` is called on the host after every iteration (notebook live plots).
    A new run refuses a folder that already holds files (`wildamp.run_folder.RunFolderError`).
    With ``resume`` the latest checkpoint of ``run_dir`` is restored (its spec must match) and
    training continues exactly where it stopped; ``cfg`` is compared with the run's config.yaml
    first, and changes beyond `wildamp.config.RESUME_SAFE_KEYS` need ``allow_config_change``
    (`wildamp.run_folder.ConfigChangeError` otherwise). A corrupt latest checkpoint is refused
    unless ``fall_back`` (then the newest intact one is used). Every check runs before the first
    write. The folder is locked for the whole run (one process per folder).
    """
    from wildamp import run_folder as RF

    run_dir = Path(run_dir)
    if resume:
        RF.check_resumable(run_dir)
    else:
        RF.prepare_new_run_dir(run_dir)  # refuses a folder that holds files; creates it
    with RF.RunLock(run_dir):
        return _run_training_locked(cfg, run_dir, resume, progress, on_metrics, iterations,
                                    allow_config_change, fall_back)


def _run_training_locked(cfg: Config, run_dir: Path, resume: bool, progress: bool, on_metrics,
                         iterations: int | None, allow_config_change: bool, fall_back: bool) -> RunResult:
    from wildamp import run_folder as RF
    from wildamp.evaluate import Evaluator
    from wildamp.metrics import MetricsLogger, TensorBoardSink, WandbSink, trim_jsonl
    from wildamp.run_state import resolve_checkpoint

    # Everything that can refuse the run comes first: nothing is written before it passes.
    changes: dict = {}
    latest = None
    if resume:
        changes = RF.resume_config_changes(run_dir, cfg, allow_changes=allow_config_change)
        if C.latest_checkpoint(run_dir) is None:
            raise FileNotFoundError(f"--resume {run_dir}: no checkpoint found under {run_dir}/checkpoints")
        latest = resolve_checkpoint(run_dir, "latest", fall_back=fall_back)
    enable_compilation_cache()
    _declare_metrics()
    trainer = Trainer.build(cfg)
    spec = trainer.spec()
    state = trainer.init_state()
    if resume:
        state, meta = restore_checkpoint(trainer, state, latest)
        state = shard_state(state)
    RF.check_writable(run_dir, _checkpoint_bytes(trainer, state) * (cfg.checkpoints.keep_last + 2))

    if resume:
        resumed_at = int(state.iteration)
        newer = [p for s, p in C.list_checkpoints(run_dir) if s > resumed_at]
        for p in newer:  # corrupt checkpoints skipped by fall_back: kept, but never "latest" again
            os.replace(p, p.with_name(f"corrupt_{p.name}"))
        best_file = C.checkpoints_dir(run_dir) / C.BEST_FILE
        if newer and best_file.exists() and C.read_json(best_file).get("step", -1) > resumed_at:
            os.replace(best_file, best_file.with_name(f"corrupt_{C.BEST_FILE}"))
        trimmed = trim_jsonl(run_dir / MetricsLogger.JSONL_NAME, resumed_at)
        RF.record_config_changes(run_dir, changes, resumed_at)
        print(f"resumed from {latest} (iteration {resumed_at})")
        if newer:
            print(f"  set aside {len(newer)} newer unreadable checkpoint(s) as corrupt_*")
        if trimmed.dropped_rows or trimmed.dropped_partial_line:
            print(f"  metrics.jsonl: removed {trimmed.describe()}")
        if changes:
            print("  config changes: " + ", ".join(f"{k}: {a!r} → {b!r}" for k, (a, b) in changes.items()))
    save_effective_config(cfg, run_dir)
    trainer.feature_normalizer.save(run_dir / "feature_normalizer.npz")
    sinks = []
    if cfg.logging.tensorboard:
        sinks.append(TensorBoardSink(run_dir / "tb"))
    if cfg.logging.wandb:
        sinks.append(WandbSink(cfg.logging.wandb_project, mode=cfg.logging.wandb_mode, dir=run_dir))
    logger = MetricsLogger(run_dir, sinks)
    monitor = (A.DiscHealthMonitor(window=cfg.amp.health_window,
                                   midpoint=A.as_objective(cfg.amp.objective).midpoint)
               if cfg.amp.enabled else None)
    evaluator = Evaluator(trainer)
    train_fn = trainer.make_train_fn()
    total = iterations if iterations is not None else cfg.trainer.iterations
    per_call = cfg.trainer.iterations_per_call
    steps_per_iter = cfg.trainer.num_envs * cfg.trainer.rollout_steps
    records: list[dict] = []
    best: Path | None = None
    last_eval = None
    t_start = time.time()
    compile_s = None
    last_return: float | None = None  # the progress bar's 'ret': last finite episode/return

    def save(it: int) -> Path:
        return C.save_checkpoint(run_dir, it, checkpoint_template(trainer, state),
                                 {"iteration": it, "env_steps": float(state.env_steps), "spec": spec,
                                  "config": cfg.to_dict()}, keep_last=cfg.checkpoints.keep_last)

    try:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, initial=int(state.iteration), desc="train", disable=not progress,
                   unit="it")
        while int(state.iteration) < total:
            t0 = time.time()
            first_it = int(state.iteration)  # read before the call: the state's buffers are donated
            state, m = train_fn(state)
            jax.block_until_ready(state.iteration)
            dt = time.time() - t0
            if compile_s is None:
                compile_s = dt  # the first call compiles (or hits the persistent cache)
                print(f"compiled the training iteration in {compile_s:.1f} s "
                      f"(first call, {per_call} iterations included)")
            for i in range(per_call):
                it = first_it + i + 1
                rec = _host(m, i)
                rec["training/iteration"] = it
                rec["training/env_steps"] = float(it * steps_per_iter)
                rec["training/sps"] = steps_per_iter * per_call / dt
                rec["training/compile_s"] = compile_s
                rec["training/wall_s"] = time.time() - t_start
                bad = [k for k in ("ppo/policy_loss", "ppo/value_loss", "amp/disc_loss")
                       if k in rec and not math.isfinite(rec[k])]
                if rec["training/nonfinite_states"] > 0:
                    bad.append("env state (physics diverged)")
                if bad:
                    (run_dir / "FAILED.json").write_text(json.dumps(
                        {"iteration": it, "nonfinite": bad, "record": {k: str(v) for k, v in rec.items()}},
                        indent=1))
                    raise TrainingDiverged(
                        f"non-finite {bad} at iteration {it}; the last good checkpoint is kept in "
                        f"{run_dir / 'checkpoints'}; details in {run_dir / 'FAILED.json'}")
                if monitor is not None:
                    for w in monitor.update({k: rec[f"amp/{k}"] for k in (
                            "disc_acc", "disc_real_mean", "disc_fake_mean")} |
                            {"amp_reward_mean": rec["amp/reward_mean"]}):
                        print(f"[AMP health] iteration {it}: {w}")
                        with open(run_dir / "warnings.log", "a") as f:
                            f.write(f"iteration {it}: {w}\n")
                if it % cfg.logging.log_every == 0 or it == total:
                    logger.log(it, rec)
                records.append(rec)
                if math.isfinite(rec.get("episode/return", math.nan)):
                    last_return = rec["episode/return"]
                if on_metrics is not None:
                    on_metrics(rec)
            it = int(state.iteration)
            bar.update(per_call)
            bar.set_postfix(progress_postfix(records[-1], last_return, cfg.amp.enabled))
            if it % cfg.checkpoints.every_iterations < per_call or it >= total:
                path = save(it)
                if it % cfg.eval.every_iterations < per_call or it >= total:
                    last_eval = evaluator.evaluate(state.ppo.params, state.obs_norm)
                    ev = {f"eval/{k}": v for k, v in last_eval.items() if k in
                          ("vel_error", "vel_error_instantaneous", "fall_rate", "episode_length", "score",
                           "targets_met", "style_auc",
                                                                    "alternation", "swing_per_cycle", "step_frequency_hz")}
                    logger.log(it, ev)
                    if C.mark_best(run_dir, it, last_eval["score"]):
                        best = path
        bar.close()
    except KeyboardInterrupt:
        bar.close()
        _save_on_interrupt(run_dir, save, state)
        raise
    finally:
        logger.close()
    if best is None:
        b = C.best_checkpoint(run_dir)
        best = b[0] if b else None
    return RunResult(run_dir=run_dir, records=records, state=state, trainer=trainer,
                     best_checkpoint=best, eval=last_eval)
