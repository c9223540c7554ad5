"""PPO as pure JAX / Flax / Optax functions: networks, observation normalisation, GAE, loss, update.

This module knows nothing about the environment or AMP. The trainer (``wildamp.train``) runs a
purejaxrl-style iteration and calls into it::

    rollout (lax.scan over env steps, actions from ``networks.sample_action`` on *normalised* obs)
      -> ``compute_gae``  (time-major (T, N) arrays)
      -> ``PPOBatch``     (any leading dims; ``ppo_update`` flattens them)
      -> ``ppo_update``   (lax.scan over epochs x minibatches)
      -> ``update_normalizer`` with the rollout's raw observations (for the *next* rollout)

Conventions the trainer must follow (each is a way PPO can be silently wrong):

* **Observation normalisation happens in the rollout**, with the normaliser state of rollout time,
  and the batch stores the *normalised* observations. The behaviour log-probs in the batch were
  computed on exactly those inputs, so at the first minibatch of an update the probability ratio is
  exactly 1. (Re-normalising stored raw observations with updated statistics would make the ratio
  drift before any gradient step.) Update the normaliser after ``ppo_update`` or before the next
  rollout, never between the rollout and the update.
* **Actions are unbounded Gaussian samples**; the env clips them to its action range. The batch
  stores the *unclipped* sample, because the log-prob is the Gaussian density of the unclipped
  sample (clipping is a deterministic post-processing that the policy gradient never sees).
* **Terminations vs truncations** in ``compute_gae``: see its docstring. ``next_values`` at a
  truncated step must be the value of the true final observation (before auto-reset).
* ``PPOHyper`` is a frozen (hashable) dataclass: close over it or pass it as a static argument of
  ``jax.jit``; it holds Python ints, strings and ``None`` that fix shapes and control flow.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

Params = Mapping[str, Any]

# Adam's epsilon: 1e-5 rather than optax's 1e-8 default, as in purejaxrl / the PPO
# implementation-details literature; it keeps the first updates of rarely-excited parameters sane.
ADAM_EPS = 1e-5
# Added to the minibatch advantage std so a constant-advantage minibatch does not divide by zero.
ADVANTAGE_NORM_EPS = 1e-8

_LOG_2PI = math.log(2.0 * math.pi)

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "relu": nn.relu,
    "elu": nn.elu,
    "swish": nn.swish,
    "silu": nn.silu,
    "gelu": nn.gelu,
}


# --------------------------------------------------------------------------------------------------
# Hyperparameters
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PPOHyper:
    """PPO hyperparameters. Every field is required: each one changes learning.

    Attributes:
        discount: gamma.
        gae_lambda: GAE lambda.
        clip_epsilon: PPO ratio clip range (ratio kept in [1 - eps, 1 + eps]).
        value_clip: if a float, clip the new value to old_value +/- value_clip and take the larger
            (pessimistic) of the clipped/unclipped squared errors; ``None`` disables value clipping.
        entropy_coef: weight of the entropy bonus (subtracted from the loss).
        value_coef: weight of the value loss.
        max_grad_norm: global-norm gradient clip applied before Adam.
        learning_rate: initial Adam learning rate.
        lr_schedule: ``'constant'`` or ``'linear'`` (linear decay towards 0 over ``total_updates``).
        total_updates: number of ``ppo_update`` calls in the run (used by the linear schedule).
        update_epochs: passes over the batch per ``ppo_update``.
        num_minibatches: minibatches per epoch; must divide the batch size.
        normalize_advantages: standardise advantages per minibatch.
    """

    discount: float
    gae_lambda: float
    clip_epsilon: float
    value_clip: float | None
    entropy_coef: float
    value_coef: float
    max_grad_norm: float
    learning_rate: float
    lr_schedule: str
    total_updates: int
    update_epochs: int
    num_minibatches: int
    normalize_advantages: bool

    def __post_init__(self) -> None:
        # Fail loudly at construction: a bad value here otherwise surfaces as a NaN hours later.
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ValueError(f"PPOHyper: {what}")

        need(0.0 <= self.discount <= 1.0, f"discount must be in [0, 1], got {self.discount}")
        need(0.0 <= self.gae_lambda <= 1.0, f"gae_lambda must be in [0, 1], got {self.gae_lambda}")
        need(self.clip_epsilon > 0.0, f"clip_epsilon must be > 0, got {self.clip_epsilon}")
        need(
            self.value_clip is None or self.value_clip > 0.0,
            f"value_clip must be None or > 0, got {self.value_clip}",
        )
        need(self.entropy_coef >= 0.0, f"entropy_coef must be >= 0, got {self.entropy_coef}")
        need(self.value_coef >= 0.0, f"value_coef must be >= 0, got {self.value_coef}")
        need(self.max_grad_norm > 0.0, f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        need(self.learning_rate > 0.0, f"learning_rate must be > 0, got {self.learning_rate}")
        need(
            self.lr_schedule in ("constant", "linear"),
            f"lr_schedule must be 'constant' or 'linear', got {self.lr_schedule!r}",
        )
        for name in ("total_updates", "update_epochs", "num_minibatches"):
            value = getattr(self, name)
            need(
                isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                f"{name} must be an int >= 1, got {value!r}",
            )
        need(
            isinstance(self.normalize_advantages, bool),
            f"normalize_advantages must be a bool, got {self.normalize_advantages!r}",
        )

    @property
    def steps_per_update(self) -> int:
        """Optimizer steps taken by one ``ppo_update`` call."""
        return self.update_epochs * self.num_minibatches


# --------------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------------


def _activation(name: str) -> Callable[[jax.Array], jax.Array]:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class MLP(nn.Module):
    """Plain MLP. Orthogonal init (gain sqrt 2) on hidden layers, ``out_scale`` on the last."""

    hidden: Sequence[int]
    activation: str
    out_dim: int
    out_scale: float

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = _activation(self.activation)
        for i, width in enumerate(self.hidden):
            x = nn.Dense(
                width,
                kernel_init=nn.initializers.orthogonal(math.sqrt(2.0)),
                bias_init=nn.initializers.zeros,
                name=f"hidden_{i}",
            )(x)
            x = act(x)
        return nn.Dense(
            self.out_dim,
            kernel_init=nn.initializers.orthogonal(self.out_scale),
            bias_init=nn.initializers.zeros,
            name="out",
        )(x)


class PolicyNetwork(nn.Module):
    """Diagonal Gaussian policy: MLP mean and a state-independent log-std parameter.

    Why state-independent log-std: exploration noise is then a handful of parameters that the
    optimiser moves slowly and that are easy to monitor (``policy_std``); a state-dependent std
    head can collapse or explode in rarely visited states, which is a known source of PPO
    instability in locomotion (purejaxrl, rsl_rl and the PPO paper all use this form).

    Why no tanh squashing: actions are unbounded samples and the *environment clips* them to its
    range. Squashing would need a log-det-Jacobian correction and saturates gradients at the
    bounds. The log-prob is computed on the unclipped sample, which is what the batch must store.

    The mean head's last layer is initialised with a small scale (0.01) so the initial policy
    outputs near-zero means (the home pose) with std ``exp(init_log_std)``.
    """

    action_dim: int
    hidden: Sequence[int]
    activation: str
    init_log_std: float

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        mean = MLP(self.hidden, self.activation, self.action_dim, out_scale=0.01, name="mean")(obs)
        log_std = self.param(
            "log_std", nn.initializers.constant(self.init_log_std), (self.action_dim,)
        )
        return mean, jnp.broadcast_to(log_std, mean.shape)


class ValueNetwork(nn.Module):
    """State-value MLP on the critic observation (which may include privileged state)."""

    hidden: Sequence[int]
    activation: str

    @nn.compact
    def __call__(self, critic_obs: jax.Array) -> jax.Array:
        return MLP(self.hidden, self.activation, 1, out_scale=1.0, name="v")(critic_obs)[..., 0]


def gaussian_log_prob(mean: jax.Array, log_std: jax.Array, action: jax.Array) -> jax.Array:
    """Log-density of a diagonal Gaussian, summed over the last (action) axis."""
    z = (action - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * jnp.square(z) - log_std - 0.5 * _LOG_2PI, axis=-1)


def gaussian_entropy(log_std: jax.Array) -> jax.Array:
    """Entropy of a diagonal Gaussian, summed over the last (action) axis."""
    return jnp.sum(log_std + 0.5 * (_LOG_2PI + 1.0), axis=-1)


# eq=False: hash/equality by identity, so a Networks object can sit in a static pytree field
# (``PPOTrainState``) or be a static jit argument without comparing Flax modules field by field.
@dataclasses.dataclass(frozen=True, eq=False)
class Networks:
    """The policy and value modules plus the functions the trainer calls.

    ``params`` everywhere is the dict ``{'policy': ..., 'value': ...}`` returned by ``init``.
    Observations passed here are expected to be normalised already (see the module docstring).
    """

    policy: PolicyNetwork
    value_net: ValueNetwork
    obs_dim: int
    critic_obs_dim: int
    action_dim: int

    def init(self, rng: jax.Array) -> dict[str, Any]:
        """Initialise ``{'policy': params, 'value': params}``."""
        rng_p, rng_v = jax.random.split(rng)
        policy = self.policy.init(rng_p, jnp.zeros((1, self.obs_dim), jnp.float32))["params"]
        value = self.value_net.init(rng_v, jnp.zeros((1, self.critic_obs_dim), jnp.float32))[
            "params"
        ]
        return {"policy": policy, "value": value}

    def policy_dist_params(self, params: Params, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(mean, log_std), each of shape obs.shape[:-1] + (action_dim,)."""
        return self.policy.apply({"params": params["policy"]}, obs)

    def sample_action(
        self, params: Params, obs: jax.Array, rng: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """Unclipped Gaussian sample and its log-prob. Store this action; let the env clip it."""
        mean, log_std = self.policy_dist_params(params, obs)
        action = mean + jnp.exp(log_std) * jax.random.normal(rng, mean.shape, mean.dtype)
        return action, gaussian_log_prob(mean, log_std, action)

    def deterministic_action(self, params: Params, obs: jax.Array) -> jax.Array:
        """The Gaussian mean (evaluation / deployment)."""
        return self.policy_dist_params(params, obs)[0]

    def log_prob(self, params: Params, obs: jax.Array, action: jax.Array) -> jax.Array:
        """Log-prob of (unclipped) ``action``, shape obs.shape[:-1]."""
        mean, log_std = self.policy_dist_params(params, obs)
        return gaussian_log_prob(mean, log_std, action)

    def entropy(self, params: Params, obs: jax.Array) -> jax.Array:
        """Policy entropy per observation, shape obs.shape[:-1]."""
        _, log_std = self.policy_dist_params(params, obs)
        return gaussian_entropy(log_std)

    def value(self, params: Params, critic_obs: jax.Array) -> jax.Array:
        """State value, shape critic_obs.shape[:-1]."""
        return self.value_net.apply({"params": params["value"]}, critic_obs)


def make_networks(
    obs_dim: int,
    critic_obs_dim: int,
    action_dim: int,
    policy_hidden: Sequence[int],
    value_hidden: Sequence[int],
    activation: str,
    init_log_std: float,
) -> Networks:
    """Build the policy/value pair. Validates sizes and the activation name up front."""
    for name, dim in (
        ("obs_dim", obs_dim),
        ("critic_obs_dim", critic_obs_dim),
        ("action_dim", action_dim),
    ):
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"make_networks: {name} must be a positive int, got {dim!r}")
    for name, hidden in (("policy_hidden", policy_hidden), ("value_hidden", value_hidden)):
        if any((not isinstance(w, int)) or w < 1 for w in hidden):
            raise ValueError(f"make_networks: {name} must be positive ints, got {hidden!r}")
    _activation(activation)
    if not math.isfinite(init_log_std):
        raise ValueError(f"make_networks: init_log_std must be finite, got {init_log_std}")
    return Networks(
        policy=PolicyNetwork(
            action_dim=action_dim,
            hidden=tuple(policy_hidden),
            activation=activation,
            init_log_std=float(init_log_std),
        ),
        value_net=ValueNetwork(hidden=tuple(value_hidden), activation=activation),
        obs_dim=obs_dim,
        critic_obs_dim=critic_obs_dim,
        action_dim=action_dim,
    )


# --------------------------------------------------------------------------------------------------
# Running observation normalisation
# --------------------------------------------------------------------------------------------------


class NormalizerState(NamedTuple):
    """Running mean / variance over all observations seen so far.

    The variance (not Welford's M2 = count * var) is stored so that every quantity stays O(1) in
    float32 however many samples are seen; ``count`` is float32 because only count ratios are used.
    """

    mean: jax.Array  # (obs_dim,)
    var: jax.Array  # (obs_dim,) population variance
    count: jax.Array  # () number of samples folded in


def init_normalizer(obs_dim: int) -> NormalizerState:
    """Empty statistics: the first update replaces them with the batch's mean and variance."""
    return NormalizerState(
        mean=jnp.zeros((obs_dim,), jnp.float32),
        var=jnp.ones((obs_dim,), jnp.float32),
        count=jnp.zeros((), jnp.float32),
    )


def update_normalizer(state: NormalizerState, batch_obs: jax.Array) -> NormalizerState:
    """Fold a batch (any leading dims, last dim = obs_dim) into the running statistics.

    Chan et al.'s parallel combination of (mean, var, count) with the batch's two-pass moments,
    written with the weight w = n / (count + n) so nothing grows with the sample count.
    """
    obs_dim = state.mean.shape[-1]
    if batch_obs.shape[-1] != obs_dim:
        raise ValueError(
            f"update_normalizer: batch last dim {batch_obs.shape[-1]} != normaliser dim {obs_dim}"
        )
    x = jnp.reshape(batch_obs, (-1, obs_dim)).astype(jnp.float32)
    n = jnp.asarray(x.shape[0], jnp.float32)
    batch_mean = jnp.mean(x, axis=0)
    batch_var = jnp.mean(jnp.square(x - batch_mean), axis=0)  # two-pass: no E[x^2]-E[x]^2 loss
    new_count = state.count + n
    w = n / new_count
    delta = batch_mean - state.mean
    mean = state.mean + w * delta
    var = (1.0 - w) * state.var + w * batch_var + w * (1.0 - w) * jnp.square(delta)
    return NormalizerState(mean=mean, var=var, count=new_count)


def normalize(
    state: NormalizerState, obs: jax.Array, clip: float = 10.0, std_floor: float = 1e-3
) -> jax.Array:
    """(obs - mean) / max(std, std_floor), clipped to [-clip, clip].

    The std floor and the clip exist because a channel that was (nearly) constant while the
    statistics were gathered would otherwise amplify any later deviation enormously (ARCHITECTURE.md §6).
    """
    std = jnp.maximum(jnp.sqrt(state.var), std_floor)
    return jnp.clip((obs - state.mean) / std, -clip, clip)


# --------------------------------------------------------------------------------------------------
# GAE
# --------------------------------------------------------------------------------------------------


def compute_gae(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    dones: jax.Array,
    truncations: jax.Array,
    discount: float,
    gae_lambda: float,
) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimation over time-major (T, N) arrays, by a reverse ``lax.scan``.

    Args:
        rewards: r_t, reward of the transition at step t.
        values: V(s_t) of the observation the action was taken from.
        next_values: V(s_{t+1}) of the observation the transition led to. At a step where the
            episode ended this must be the value of the *true final observation* (before
            auto-reset), not of the reset observation; elsewhere it is simply values[t + 1]
            (and, at t = T - 1, the value of the observation after the rollout).
        dones: True where the episode ended at step t for any reason (termination or time limit).
        truncations: True where it ended *only* because of the time limit. If a termination and
            the time limit coincide, mark it as a termination (truncation False).
        discount: gamma.
        gae_lambda: lambda.

    Semantics:
        * termination (done and not truncated): no bootstrap, delta_t = r_t - V(s_t).
        * truncation: bootstrap, delta_t = r_t + gamma * next_values_t - V(s_t), because the state
          was not terminal; treating it as terminal teaches the critic a spurious cliff.
        * either way the recursion A_t = delta_t + gamma * lambda * A_{t+1} is cut, because
          A_{t+1} belongs to the next (auto-reset) episode.

    Returns:
        (advantages, returns) with returns = advantages + values (the value-function target).
    """
    dones = dones.astype(bool)
    truncations = truncations.astype(bool)
    # ``dones | truncations`` keeps this right also when a caller passes terminations-only dones.
    episode_end = jnp.logical_or(dones, truncations)
    terminal = jnp.logical_and(dones, jnp.logical_not(truncations))

    bootstrap = discount * (1.0 - terminal.astype(values.dtype))
    continue_trace = discount * gae_lambda * (1.0 - episode_end.astype(values.dtype))
    deltas = rewards + bootstrap * next_values - values

    def step(next_advantage: jax.Array, xs: tuple[jax.Array, jax.Array]):
        delta, cont = xs
        advantage = delta + cont * next_advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(
        step, jnp.zeros_like(values[0]), (deltas, continue_trace), reverse=True
    )
    return advantages, advantages + values


# --------------------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------------------


class PPOBatch(NamedTuple):
    """One PPO batch. Leaves share leading dims (e.g. (T, N) or flat (B,)).

    obs / critic_obs are the *normalised* inputs the rollout used; actions are unclipped samples;
    log_probs and values are the behaviour policy's log-prob and the critic's value at rollout time.
    """

    obs: jax.Array
    critic_obs: jax.Array
    actions: jax.Array
    log_probs: jax.Array
    values: jax.Array
    advantages: jax.Array
    returns: jax.Array


def ppo_loss(
    params: Params, networks: Networks, batch: PPOBatch, hyper: PPOHyper
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Clipped-surrogate PPO loss on a flat minibatch; advantages are used as given.

    loss = policy_loss + value_coef * value_loss - entropy_coef * entropy

    Metrics: policy_loss, value_loss, entropy, approx_kl ((ratio - 1) - log ratio, an unbiased,
    non-negative estimator of KL(old || new)), clip_fraction (share of samples with
    |ratio - 1| > clip_epsilon), total_loss.
    """
    new_log_prob = networks.log_prob(params, batch.obs, batch.actions)
    log_ratio = new_log_prob - batch.log_probs
    ratio = jnp.exp(log_ratio)
    adv = batch.advantages
    surrogate = ratio * adv
    surrogate_clipped = jnp.clip(ratio, 1.0 - hyper.clip_epsilon, 1.0 + hyper.clip_epsilon) * adv
    policy_loss = -jnp.mean(jnp.minimum(surrogate, surrogate_clipped))

    new_value = networks.value(params, batch.critic_obs)
    value_error = jnp.square(new_value - batch.returns)
    if hyper.value_clip is not None:
        clipped_value = batch.values + jnp.clip(
            new_value - batch.values, -hyper.value_clip, hyper.value_clip
        )
        value_error = jnp.maximum(value_error, jnp.square(clipped_value - batch.returns))
    value_loss = 0.5 * jnp.mean(value_error)

    entropy = jnp.mean(networks.entropy(params, batch.obs))
    total = policy_loss + hyper.value_coef * value_loss - hyper.entropy_coef * entropy

    metrics = {
        "total_loss": total,
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        "approx_kl": jnp.mean((ratio - 1.0) - log_ratio),
        "clip_fraction": jnp.mean(
            (jnp.abs(ratio - 1.0) > hyper.clip_epsilon).astype(jnp.float32)
        ),
    }
    return total, metrics


# --------------------------------------------------------------------------------------------------
# Optimiser and train state
# --------------------------------------------------------------------------------------------------


def make_lr_schedule(hyper: PPOHyper) -> optax.Schedule:
    """Learning rate as a function of the optimizer step count.

    'linear' decays by one step per ``ppo_update`` call (constant within a call, as in purejaxrl),
    from ``learning_rate`` at the first call to ``learning_rate / total_updates`` at the last.
    """
    if hyper.lr_schedule == "constant":
        return optax.constant_schedule(hyper.learning_rate)

    def linear(count: jax.Array) -> jax.Array:
        update_index = count // hyper.steps_per_update
        frac = jnp.clip(1.0 - update_index / hyper.total_updates, 0.0, 1.0)
        return hyper.learning_rate * frac

    return linear


def make_optimizer(hyper: PPOHyper) -> optax.GradientTransformation:
    """Global-norm clip then Adam with the configured schedule."""
    return optax.chain(
        optax.clip_by_global_norm(hyper.max_grad_norm),
        optax.adam(make_lr_schedule(hyper), eps=ADAM_EPS),
    )


class PPOTrainState(struct.PyTreeNode):
    """Parameters and optimiser state; ``networks`` and ``tx`` ride along as static fields."""

    params: Any
    opt_state: optax.OptState
    step: jax.Array  # optimizer steps taken (drives the lr schedule metric)
    networks: Networks = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)


def create_train_state(networks: Networks, hyper: PPOHyper, rng: jax.Array) -> PPOTrainState:
    """Fresh parameters (``networks.init``) and optimiser state."""
    params = networks.init(rng)
    tx = make_optimizer(hyper)
    return PPOTrainState(
        params=params,
        opt_state=tx.init(params),
        step=jnp.zeros((), jnp.int32),
        networks=networks,
        tx=tx,
    )


# --------------------------------------------------------------------------------------------------
# Update
# --------------------------------------------------------------------------------------------------


def minibatch_permutation(rng: jax.Array, batch_size: int, num_minibatches: int) -> jax.Array:
    """Indices of shape (num_minibatches, batch_size // num_minibatches): one random permutation
    of range(batch_size) cut into minibatches, so every sample is used exactly once per epoch."""
    if batch_size % num_minibatches != 0:
        raise ValueError(
            f"batch size {batch_size} is not divisible by num_minibatches {num_minibatches}"
        )
    perm = jax.random.permutation(rng, batch_size)
    return jnp.reshape(perm, (num_minibatches, batch_size // num_minibatches))


def explained_variance(values: jax.Array, returns: jax.Array) -> jax.Array:
    """1 - Var[returns - values] / Var[returns]; 1 is a perfect critic, <= 0 is useless.

    NaN when the returns have zero variance (the ratio is undefined; no fake number is reported).
    """
    var_returns = jnp.var(returns)
    ev = 1.0 - jnp.var(returns - values) / jnp.where(var_returns > 0, var_returns, 1.0)
    return jnp.where(var_returns > 0, ev, jnp.nan)


def normalize_advantages(advantages: jax.Array) -> jax.Array:
    """Standardise to zero mean, unit std (per minibatch)."""
    return (advantages - jnp.mean(advantages)) / (jnp.std(advantages) + ADVANTAGE_NORM_EPS)


def _flatten_batch(batch: PPOBatch) -> PPOBatch:
    """Merge the leading dims (those of ``advantages``) of every leaf into one batch axis."""
    lead = batch.advantages.shape
    size = math.prod(lead)

    def flat(x: jax.Array) -> jax.Array:
        if x.shape[: len(lead)] != lead:
            raise ValueError(f"PPOBatch leaf shape {x.shape} does not start with {lead}")
        return jnp.reshape(x, (size,) + x.shape[len(lead) :])

    return jax.tree_util.tree_map(flat, batch)


def ppo_update(
    train_state: PPOTrainState, batch: PPOBatch, rng: jax.Array, hyper: PPOHyper
) -> tuple[PPOTrainState, dict[str, jax.Array]]:
    """``update_epochs`` x ``num_minibatches`` gradient steps, both as ``lax.scan``.

    Each epoch draws a fresh permutation (every sample once per epoch). Metrics are averaged over
    all minibatch steps and include grad_norm (global norm before clipping), learning_rate,
    policy_std (mean std of the Gaussian) and explained_variance (rollout values vs returns).
    """
    networks = train_state.networks
    flat = _flatten_batch(batch)
    batch_size = flat.advantages.shape[0]
    grad_fn = jax.value_and_grad(ppo_loss, has_aux=True)
    lr_schedule = make_lr_schedule(hyper)

    def minibatch_step(state: PPOTrainState, mb: PPOBatch):
        if hyper.normalize_advantages:
            mb = mb._replace(advantages=normalize_advantages(mb.advantages))
        (_, metrics), grads = grad_fn(state.params, networks, mb, hyper)
        updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = dict(metrics)
        metrics["grad_norm"] = optax.tree_utils.tree_norm(grads)
        metrics["learning_rate"] = jnp.asarray(lr_schedule(state.step), jnp.float32)
        new_state = state.replace(params=params, opt_state=opt_state, step=state.step + 1)
        return new_state, metrics

    def epoch_step(state: PPOTrainState, epoch_rng: jax.Array):
        idx = minibatch_permutation(epoch_rng, batch_size, hyper.num_minibatches)
        minibatches = jax.tree_util.tree_map(lambda x: x[idx], flat)
        return jax.lax.scan(minibatch_step, state, minibatches)

    train_state, metrics = jax.lax.scan(
        epoch_step, train_state, jax.random.split(rng, hyper.update_epochs)
    )
    metrics = jax.tree_util.tree_map(jnp.mean, metrics)
    metrics["explained_variance"] = explained_variance(flat.values, flat.returns)
    _, log_std = networks.policy_dist_params(train_state.params, flat.obs[:1])
    metrics["policy_std"] = jnp.mean(jnp.exp(log_std))
    return train_state, metrics
