"""Offline discriminator experiments (notebook 03): no simulator, no policy.

"Real" samples are the reference AMP samples. "Fake" samples are the same reference clips changed in
a known way (played faster or slower, joint noise, a robot standing still, played backwards) and
passed through the *same* feature function (:func:`wildamp.features.dataset_samples`) and the same
fitted normaliser, so every difference the discriminator finds is a difference in the motion, never
in the pipeline (ARCHITECTURE.md §3.3).

The discriminator is trained with the production :func:`wildamp.amp.disc_update` (replay buffer,
spectral norm, penalties, input noise) in jitted chunks of iterations; each chunk ends with the mean
style reward of every evaluation set, so learning curves show disc_acc *and* what the policy would be
paid. The two historic bugs of the seed are reproduced here on purpose, next to the code that catches
them: the "participation trophy" (0/1 targets scored with the ±1 reward formula) and the "hindsight
bias" (rewards computed with the discriminator after its update).
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from wildamp import amp as A
from wildamp.reference.clip import Clip, MotionDataset
from wildamp.reference.resample import resample_clip

__all__ = [
    "PERTURBATION_KINDS", "perturb_clip", "perturbations", "motion_features", "experiment_hyper",
    "OfflineRun", "train_discriminator_offline", "final", "series", "plot_learning_curves",
    "health_warnings", "disc_auc", "input_grad_norm", "spectral_report", "participation_trophy_demo",
    "sign_test_p", "hindsight_bias_demo", "reward_order_check",
]

#: Known ways of turning reference motion into "fake" motion (see :func:`perturb_clip`).
PERTURBATION_KINDS: tuple[str, ...] = ("speedup", "slowdown", "joint_noise", "standing", "time_reversed")


# ============================================================================ fake motion


def _as_generator(rng: np.random.Generator | int) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(int(rng))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], std: float, window: int) -> np.ndarray:
    """(T, J) zero-mean noise of standard deviation ``std`` per column; ``window`` > 1 low-passes it
    with a moving average (then rescales), so that finite-difference velocities stay physical."""
    white = rng.standard_normal(shape)
    if window > 1:
        kernel = np.ones(window) / window
        white = np.stack([np.convolve(white[:, j], kernel, mode="same") for j in range(shape[1])], axis=1)
        white /= np.maximum(white.std(axis=0, keepdims=True), 1e-12)
    return std * white


def _time_scaled(clip: Clip, factor: float) -> Clip:
    """The clip played ``factor`` times faster, on the same frame rate (resample to fps/factor, then
    re-label the frames at the original fps). Root positions come along, so root speed scales too."""
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"time-scale factor must be a finite positive number, got {factor}")
    r = resample_clip(clip, clip.fps / factor)
    return dataclasses.replace(r, fps=clip.fps)


def _root_home(spec: Any) -> tuple[np.ndarray, np.ndarray]:
    """(root position (3,), root quaternion wxyz (4,)) of the ``home`` keyframe.

    The free joint owns the 7 qpos entries that no named joint uses (names, never positions)."""
    nq = int(spec.nq)
    free = sorted(set(range(nq)) - {int(a) for a in np.asarray(spec.qpos_adr)})
    if len(free) != 7:
        raise ValueError(f"robot spec: expected 7 free-joint qpos entries besides the named joints, "
                         f"found {len(free)} (nq={nq}, joints={list(spec.joint_names)})")
    home = np.asarray(spec.home_qpos, np.float64)
    return home[free[:3]], home[free[3:]]


def perturb_clip(clip: Clip, kind: str, rng: np.random.Generator | int, *, spec: Any = None,
                 speed_factor: float = 1.75, noise_std: float = 0.1, noise_smooth_s: float = 0.1,
                 stand_noise_std: float = 0.005) -> Clip:
    """One clip turned into "fake" motion of a known kind (same fps and joint order as the input).

    kinds:
      ``speedup``       played ``speed_factor`` (> 1) times faster (fewer frames, same fps);
      ``slowdown``      played ``speed_factor`` times slower;
      ``joint_noise``   Gaussian noise of std ``noise_std`` rad on every joint angle, low-passed over
                        ``noise_smooth_s`` seconds (0: white noise, i.e. large velocity noise);
      ``standing``      the robot holding its ``home`` pose (needs ``spec``) for the clip's length,
                        with smooth joint noise of std ``stand_noise_std`` (so it is not constant);
      ``time_reversed`` the frames in reverse order (walking backwards with the gait phases reversed).

    ``rng`` (a numpy Generator or a seed) drives the noise. The clip's meta records the perturbation.
    """
    if kind not in PERTURBATION_KINDS:
        raise ValueError(f"unknown perturbation {kind!r}; known: {list(PERTURBATION_KINDS)}")
    g = _as_generator(rng)
    window = max(1, int(round(noise_smooth_s * clip.fps)))
    info: dict = {"kind": kind}
    if kind == "speedup":
        if speed_factor <= 1:
            raise ValueError(f"speedup needs speed_factor > 1, got {speed_factor}")
        out = _time_scaled(clip, speed_factor)
        info["factor"] = float(speed_factor)
    elif kind == "slowdown":
        if speed_factor <= 1:
            raise ValueError(f"slowdown needs speed_factor > 1 (the clip plays that many times slower), "
                             f"got {speed_factor}")
        out = _time_scaled(clip, 1.0 / speed_factor)
        info["factor"] = 1.0 / float(speed_factor)
    elif kind == "joint_noise":
        if noise_std < 0:
            raise ValueError(f"joint_noise needs noise_std >= 0, got {noise_std}")
        noise = _smooth_noise(g, clip.joint_pos.shape, noise_std, window)
        out = dataclasses.replace(clip, joint_pos=clip.joint_pos + noise)
        info.update(noise_std=float(noise_std), smooth_s=float(noise_smooth_s))
    elif kind == "standing":
        if spec is None:
            raise ValueError("perturbation 'standing' needs the robot spec (for the home pose)")
        names = tuple(spec.joint_names)
        if set(names) != set(clip.joint_names):
            raise ValueError(f"clip {clip.name!r}: joints {list(clip.joint_names)} do not match the robot's "
                             f"{list(names)}")
        home = dict(zip(names, np.asarray(spec.home_joint_pos, np.float64)))
        q_home = np.array([home[n] for n in clip.joint_names])  # by name, in the clip's order
        T = clip.num_frames
        root_pos, root_quat = _root_home(spec)
        root_pos = np.tile(root_pos, (T, 1))
        root_pos[:, :2] = clip.root_pos[0, :2]  # stand where the clip starts (features are xy-invariant)
        joints = q_home[None, :] + _smooth_noise(g, (T, len(q_home)), stand_noise_std, window)
        out = dataclasses.replace(clip, root_pos=root_pos, root_quat=np.tile(root_quat, (T, 1)),
                                  joint_pos=joints)
        info["noise_std"] = float(stand_noise_std)
    else:  # time_reversed
        out = dataclasses.replace(clip, root_pos=clip.root_pos[::-1].copy(),
                                  root_quat=clip.root_quat[::-1].copy(), joint_pos=clip.joint_pos[::-1].copy())
    meta = dict(clip.meta)
    meta["perturbation"] = info
    return dataclasses.replace(out, meta=meta).validate()


def perturbations(dataset: MotionDataset, kind: str, rng: np.random.Generator | int, **kwargs: Any
                  ) -> MotionDataset:
    """Every clip of ``dataset`` through :func:`perturb_clip` (same fps and joint names, clip names
    kept); keyword arguments are passed on (e.g. ``spec=``, ``speed_factor=``, ``noise_std=``)."""
    g = _as_generator(rng)
    clips = [perturb_clip(c, kind, g, **kwargs) for c in dataset.clips]
    meta = dict(dataset.metadata)
    meta["perturbation"] = kind
    return MotionDataset(clips=clips, joint_names=dataset.joint_names, fps=dataset.fps, metadata=meta)


def motion_features(dataset: MotionDataset, model: Any, spec: Any, cfg: Any, normalizer: Any) -> np.ndarray:
    """Normalised AMP samples (N, D) of a dataset: :func:`wildamp.features.dataset_samples` (the one
    feature function, ``cfg.features`` at ``cfg.env.ctrl_dt``) then the reference's fitted normaliser."""
    from wildamp import features as F

    samples, _ = F.dataset_samples(dataset, model, spec, cfg.features, ctrl_dt=cfg.env.ctrl_dt)
    normalizer.check_compatible(F.FeatureLayout.build(spec, cfg.features))
    return np.asarray(normalizer.apply(samples), np.float32)


def experiment_hyper(cfg: Any, **overrides: Any) -> A.AMPHyper:
    """The discriminator hyper-parameters of ``cfg.amp`` (as training builds them), with overrides
    (any :class:`wildamp.amp.AMPHyper` field, e.g. ``use_spectral_norm=False``)."""
    from wildamp.train import amp_hyper

    return dataclasses.replace(amp_hyper(cfg), **overrides)


# ============================================================================ offline training


class OfflineRun(NamedTuple):
    """Result of :func:`train_discriminator_offline`: the final discriminator and the metric history
    (one dict of floats per logged chunk)."""

    state: A.DiscState
    history: list[dict]


@partial(jax.jit, static_argnames=("hyper", "iterations", "fresh_size"))
def _train_chunk(state: A.DiscState, real: jax.Array, fake: jax.Array, n_fake: jax.Array, rng: jax.Array,
                 hyper: A.AMPHyper, iterations: int, fresh_size: int):
    """``iterations`` discriminator iterations (a lax.scan) on the first ``n_fake`` rows of the padded
    fake pool. Per iteration it also scores that iteration's fresh fake batch and a real batch with
    the discriminator before and after the update (the hindsight-bias measurement, nearly free)."""
    objective = A.AMPObjective(hyper.objective)

    def mean_reward(st, x):
        return jnp.mean(objective.reward(A.disc_logits(st, x)))

    def one(st, key):
        k_rows, k_real, k_upd = jax.random.split(key, 3)
        # Each iteration's "fresh policy samples": a random subset of the fake pool, as a rollout
        # would deliver; disc_update mixes in replay rows and then stores these in the buffer.
        fresh = fake[jax.random.randint(k_rows, (fresh_size,), 0, n_fake)]
        real_b = real[jax.random.randint(k_real, (fresh_size,), 0, real.shape[0])]
        new, m = A.disc_update(st, real, fresh, k_upd, hyper)
        m = dict(m)
        m["fresh_reward_before"] = mean_reward(st, fresh)    # rollout-time discriminator (correct)
        m["fresh_reward_after"] = mean_reward(new, fresh)    # post-update discriminator (the seed's bug)
        m["real_reward_before"] = mean_reward(st, real_b)
        m["real_reward_after"] = mean_reward(new, real_b)
        return new, m

    return jax.lax.scan(one, state, jax.random.split(rng, iterations))


@partial(jax.jit, static_argnames=("objective",))
def _eval_sets(state: A.DiscState, xs: jax.Array, w: jax.Array, objective: str):
    """Weighted mean reward and logit of K padded evaluation sets xs (K, E, D) with row weights w (K, E)."""
    d = jax.vmap(lambda x: A.disc_logits(state, x))(xs)
    r = A.AMPObjective(objective).reward(d)
    n = jnp.sum(w, axis=1)
    return jnp.sum(r * w, axis=1) / n, jnp.sum(d * w, axis=1) / n


def _bucket(n: int, minimum: int = 4096) -> int:
    """Padded row count (a power of two) so that pools of similar size share one compiled program."""
    return max(minimum, 1 << (int(n) - 1).bit_length())


def _subsample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return x if x.shape[0] <= n else x[np.sort(rng.choice(x.shape[0], n, replace=False))]


def _pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
    return np.concatenate([x, np.zeros((rows - x.shape[0], x.shape[1]), x.dtype)]) if rows > x.shape[0] else x


def _check_samples(what: str, x: Any, dim: int | None = None) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or x.shape[0] < 1 or (dim is not None and x.shape[1] != dim):
        want = f"(N >= 1, {dim if dim is not None else 'D'})"
        raise ValueError(f"offline discriminator: {what} samples must be {want}, got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"offline discriminator: {what} samples hold non-finite values")
    return x


def _run_chunks(state, real, fake, hyper, steps, rng, log_every, fresh_size):
    """Generator over chunks of ``log_every`` iterations: yields (state, per-iteration metrics as
    numpy arrays)."""
    if steps < 1 or log_every < 1 or steps % log_every:
        raise ValueError(f"offline discriminator: steps ({steps}) must be a positive multiple of "
                         f"log_every ({log_every})")
    real_j = jnp.asarray(real)
    fake_j = jnp.asarray(_pad_rows(fake, _bucket(fake.shape[0])))
    n_fake = jnp.asarray(fake.shape[0], jnp.int32)
    for key in jax.random.split(rng, steps // log_every):
        state, per_iter = _train_chunk(state, real_j, fake_j, n_fake, key, hyper, log_every, fresh_size)
        yield state, {k: np.asarray(v) for k, v in per_iter.items()}


def train_discriminator_offline(real: Any, fake: Any, hyper: A.AMPHyper, steps: int, rng: jax.Array,
                                log_every: int, *, state: A.DiscState | None = None,
                                eval_sets: Mapping[str, Any] | None = None, fresh_size: int | None = None,
                                eval_size: int = 1024) -> OfflineRun:
    """Train a discriminator on ``real`` (N, D) vs ``fake`` (M, D) normalised AMP samples.

    ``steps`` training iterations, each one :func:`wildamp.amp.disc_update` (``hyper.update_steps``
    gradient steps) with ``fresh_size`` (default ``hyper.batch_size``) fresh fake rows drawn from
    ``fake``; jitted in chunks of ``log_every`` iterations (``steps`` must be a multiple of it; pools
    are padded to power-of-two row counts so that different fakes share one compiled program).
    Pass ``state`` to continue training (e.g. after the fake distribution has drifted).

    After every chunk one history record holds: ``iteration`` (total iterations of ``state``),
    ``disc_steps``, every disc_update metric (means over the chunk; σ and replay_fill: last),
    ``fresh_reward_before/after`` and ``real_reward_before/after`` (chunk means, see
    :func:`hindsight_bias_demo`) and, for every evaluation set (default ``{"real": real,
    "fake": fake}``; a fixed subset of at most ``eval_size`` rows each), ``reward_<name>`` (mean
    style reward) and ``d_<name>`` (mean logit).
    """
    real = _check_samples("real", real)
    fake = _check_samples("fake", fake, real.shape[1])
    eval_sets = {"real": real, "fake": fake} if eval_sets is None else dict(eval_sets)
    host_rng = np.random.default_rng(int(jax.random.randint(rng, (), 0, 2**31 - 1)))
    names = tuple(eval_sets)
    subs = [_subsample(_check_samples(f"eval set {n!r}", eval_sets[n], real.shape[1]), eval_size, host_rng)
            for n in names]
    rows = int(eval_size)   # a fixed padded size: one compiled evaluation for every call
    xs = jnp.asarray(np.stack([_pad_rows(s, rows) for s in subs]))
    w = jnp.asarray(np.stack([np.arange(rows) < s.shape[0] for s in subs]).astype(np.float32))
    k_init, rng = jax.random.split(rng)
    if state is None:
        state = A.init_disc_state(k_init, real.shape[1], hyper)
    fresh_size = hyper.batch_size if fresh_size is None else int(fresh_size)

    history = []
    for state, per_iter in _run_chunks(state, real, fake, hyper, steps, rng, log_every, fresh_size):
        disc_steps = int(state.step)
        rec: dict = {"iteration": disc_steps // hyper.update_steps, "disc_steps": disc_steps}
        for k, v in per_iter.items():
            # σ estimates and the fill level are states: the last value; losses etc.: the chunk mean.
            rec[k] = float(v[-1] if (k.startswith("disc_sigma_") or k == "replay_fill") else np.mean(v))
        rewards, d_means = _eval_sets(state, xs, w, hyper.objective)
        for n, r, d in zip(names, np.asarray(rewards), np.asarray(d_means)):
            rec[f"reward_{n}"] = float(r)
            rec[f"d_{n}"] = float(d)
        bad = [k for k, v in rec.items() if not math.isfinite(v)]
        if bad:
            raise FloatingPointError(f"offline discriminator training diverged at iteration "
                                     f"{rec['iteration']}: non-finite {bad}")
        history.append(rec)
    return OfflineRun(state, history)


def series(history: Sequence[Mapping[str, float]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(iterations, values) of one metric of a history (KeyError naming what exists if absent)."""
    if not history or key not in history[0]:
        raise KeyError(f"metric {key!r} not in the history (have: {sorted(history[0]) if history else []})")
    return (np.array([r["iteration"] for r in history], np.float64),
            np.array([r[key] for r in history], np.float64))


def final(history: Sequence[Mapping[str, float]], key: str, last: int = 3) -> float:
    """Mean of a metric over the last ``last`` records (a less noisy "final value")."""
    return float(np.mean(series(history, key)[1][-last:]))


#: y-axis label of each learning-curve metric (``reward_<set>`` is the mean style reward of that set).
CURVE_LABELS = {"disc_acc": "accuracy on training batches", "disc_loss": "loss", "disc_penalty": "penalty",
                "replay_fill": "fraction full"}


def _curve_label(key: str) -> str:
    if key.startswith("reward_"):
        return "mean style reward (0..1)"
    if key.startswith("disc_sigma_"):
        return f"σ of layer {key.rsplit('_', 1)[1]}"
    return CURVE_LABELS.get(key, key)


def plot_learning_curves(runs: Mapping[str, Sequence[Mapping[str, float]]],
                         keys: Sequence[str] = ("disc_acc", "reward_real", "reward_fake"),
                         title: str | None = None, ncols: int | None = None):
    """One panel per metric, one line per run (``{label: history}``); returns the Figure.

    Each run has its own colour *and* line style, so a run whose curve lies exactly on another's
    still shows; the legend is the figure's (every panel shows the same runs).
    """
    import matplotlib.pyplot as plt

    from wildamp.viz import LINE_STYLES

    ncols = ncols or len(keys)
    nrows = math.ceil(len(keys) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.7 * nrows + 0.5), squeeze=False,
                             layout="constrained")
    for ax, key in zip(axes.flat, keys):
        for i, (label, hist) in enumerate(runs.items()):
            if hist and key in hist[0]:
                ax.plot(*series(hist, key), label=label, color=f"C{i}", ls=LINE_STYLES[i % len(LINE_STYLES)], lw=1.4)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("discriminator iteration", fontsize=8)
        ax.set_ylabel(_curve_label(key), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if key == "disc_acc":
            ax.axhline(0.5, color="gray", ls="--", lw=0.8)   # 0.5 = cannot tell real from fake
    for ax in list(axes.flat)[len(keys):]:
        ax.set_axis_off()
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# ============================================================================ diagnostics


def health_warnings(history: Sequence[Mapping[str, float]], window: int = 3,
                    reward_key: str = "reward_fake") -> dict[str, list[str]]:
    """Feed a history to :class:`wildamp.amp.DiscHealthMonitor` (``disc_acc``, and ``reward_key`` as the
    policy's ``amp_reward_mean``), one record per monitor iteration. Returns its warnings' messages by
    kind: ``too_strong``, ``collapsed`` and ``reward`` (reward collapse), i.e.
    :data:`wildamp.amp.monitor.STREAK_KINDS` (without a midpoint the monitor never reports
    ``undecided``)."""
    from wildamp.amp.monitor import STREAK_KINDS

    mon = A.DiscHealthMonitor(window=window)
    out: dict[str, list[str]] = {k: [] for k in STREAK_KINDS}
    for rec in history:
        for w in mon.update({"disc_acc": rec["disc_acc"], "amp_reward_mean": rec[reward_key]}):
            out[w.kind].append(w.text)
    return out


def disc_auc(state: A.DiscState, real: Any, fake: Any) -> float:
    """P(D(real) > D(fake)) (+½ ties) over all pairs: 1.0 = perfectly separated, 0.5 = cannot tell."""
    from wildamp.diagnose import channel_auc

    d_real = np.asarray(A.disc_logits(state, jnp.asarray(real, jnp.float32)))
    d_fake = np.asarray(A.disc_logits(state, jnp.asarray(fake, jnp.float32)))
    return float(channel_auc(d_fake[:, None], d_real[:, None])[0])


def input_grad_norm(state: A.DiscState, x: Any) -> float:
    """Mean ‖∇ₓ D(x)‖ over the rows of ``x``: how steeply the reward changes around these samples
    (what R1 drives towards 0 on real samples and WGAN-GP towards 1 between real and fake)."""
    g = jax.grad(lambda xx: jnp.sum(A.disc_logits(state, xx)))(jnp.asarray(x, jnp.float32))
    return float(jnp.mean(jnp.linalg.norm(g, axis=-1)))


def spectral_report(state: A.DiscState, seed: int = 0) -> list[dict]:
    """Per Dense layer (hidden_0 … logit): the true top singular value of its raw kernel (SVD),
    and with spectral norm on, the carried power-iteration estimate σ, the top singular value of the
    kernel the network actually uses (``σ_true / σ``, ≈ 1 when the carried state has converged) and,
    for contrast, that value if u were thrown away and redrawn for one power iteration (the seed's bug).
    """
    from wildamp.amp.discriminator import layer_names

    names = layer_names(len(state.hidden))
    sig = A.disc_sigmas(state)
    g = np.random.default_rng(seed)
    out = []
    for i, name in enumerate(names):
        w = np.asarray(state.params[name]["kernel"], np.float64)
        true = float(np.linalg.svd(w, compute_uv=False)[0])
        row = {"layer": name, "shape": tuple(w.shape), "sigma_true": true}
        if state.use_spectral_norm:
            est = float(sig[i])
            u = g.standard_normal((1, w.shape[1]))
            v = u @ w.T
            v /= np.linalg.norm(v)
            u = v @ w
            u /= np.linalg.norm(u)
            fresh = float((v @ w @ u.T)[0, 0])
            row.update(sigma_estimate=est, effective_sigma=true / est, effective_sigma_fresh_u=true / fresh)
        out.append(row)
    return out


# ============================================================================ the two historic bugs


def participation_trophy_demo(state: A.DiscState, fake: Any) -> dict:
    """Rewards of ``fake`` samples under a discriminator trained with 0/1 targets (``lsgan_01``):
    the seed's pre-v0.4.0 mismatched formula (:func:`wildamp.amp.bug_demo_participation_trophy_reward`)
    vs the objective's own reward. Returns mean logit ``d_fake`` and mean ``reward_bug`` / ``reward_fixed``."""
    d = A.disc_logits(state, jnp.asarray(fake, jnp.float32))
    return {"d_fake": float(jnp.mean(d)),
            "reward_bug": float(jnp.mean(A.bug_demo_participation_trophy_reward(d))),
            "reward_fixed": float(jnp.mean(A.AMPObjective("lsgan_01").reward(d)))}


def sign_test_p(n_lower: int, n_higher: int) -> float:
    """One-sided sign test: P(at least ``n_lower`` of ``n_lower + n_higher`` fair coin flips come up
    "lower"). Small values mean "lower" happens systematically, not by chance."""
    n = n_lower + n_higher
    if n == 0:
        return 1.0
    return float(sum(math.comb(n, k) for k in range(n_lower, n + 1)) / 2.0**n)


def hindsight_bias_demo(state: A.DiscState, real: Any, fake: Any, hyper: A.AMPHyper, rng: jax.Array,
                        iterations: int, log_every: int, fresh_size: int | None = None) -> dict:
    """The seed's "hindsight bias" (pre-v0.4.0), measured: in each of ``iterations`` training
    iterations, that iteration's batch of fresh fake samples (its "rollout") is scored with the
    rollout-time discriminator and again with the discriminator after it was updated on that batch.

    Returns numpy arrays with one entry per iteration — ``fake_before``, ``fake_after`` (mean reward
    of the fresh fake batch), ``real_before``, ``real_after`` (of a real batch) — the final ``state``,
    and a summary of ``gap = fake_after − fake_before``: ``lower``/``tied``/``higher`` (fractions of
    iterations) and ``p_value``, a one-sided sign test of "lower more often than higher" (ties, e.g.
    rewards clipped at 1 both times, are left out).

    The update has just been trained to push exactly these samples towards "fake", so while the
    discriminator is still catching up with the policy (in training: always, since the policy keeps
    changing) the post-update reward is systematically lower: a policy paid in hindsight is
    under-paid for what it just did.
    """
    real = _check_samples("real", real)
    fake = _check_samples("fake", fake, real.shape[1])
    fresh_size = hyper.batch_size if fresh_size is None else int(fresh_size)
    parts: dict[str, list] = {"fresh_reward_before": [], "fresh_reward_after": [],
                              "real_reward_before": [], "real_reward_after": []}
    for state, per_iter in _run_chunks(state, real, fake, hyper, iterations, rng, log_every, fresh_size):
        for k in parts:
            parts[k].append(per_iter[k])
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    gap = cat["fresh_reward_after"] - cat["fresh_reward_before"]
    n_lower, n_higher = int(np.sum(gap < 0)), int(np.sum(gap > 0))
    p = sign_test_p(n_lower, n_higher)
    return {"fake_before": cat["fresh_reward_before"], "fake_after": cat["fresh_reward_after"],
            "real_before": cat["real_reward_before"], "real_after": cat["real_reward_after"], "state": state,
            "lower": n_lower / gap.size, "higher": n_higher / gap.size,
            "tied": 1.0 - (n_lower + n_higher) / gap.size, "p_value": float(p)}


def reward_order_check(amp_step_fn: Callable, disc: A.DiscState, real: Any, fake_batch: Any,
                       rng: jax.Array, hyper: A.AMPHyper) -> dict:
    """Which discriminator does a training step's AMP reward come from?

    ``amp_step_fn`` has the signature of :func:`wildamp.train.amp_step`
    ``(disc, samples (T, N, D), valid (T, N), reference, rng, hyper) -> (reward, new_disc, metrics)``.
    It is called on ``fake_batch`` (as one rollout step of N samples); its reward is compared with the
    reward of the same samples under the discriminator before (``disc``) and after (the returned one)
    the update. Returns ``max_abs_diff_before``, ``max_abs_diff_after`` and the mean rewards.
    """
    x = jnp.asarray(fake_batch, jnp.float32)[None]                      # (T=1, N, D)
    valid = jnp.ones(x.shape[:2], jnp.float32)
    reward, new_disc, _ = amp_step_fn(disc, x, valid, jnp.asarray(real, jnp.float32), rng, hyper)
    before = A.amp_reward(disc, x[0], hyper.objective)
    after = A.amp_reward(new_disc, x[0], hyper.objective)
    r = jnp.reshape(reward, (-1,))
    return {"max_abs_diff_before": float(jnp.max(jnp.abs(r - before))),
            "max_abs_diff_after": float(jnp.max(jnp.abs(r - after))),
            "reward_step": float(jnp.mean(r)), "reward_before": float(jnp.mean(before)),
            "reward_after": float(jnp.mean(after))}
