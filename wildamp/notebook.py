"""Helpers the notebooks share: runtime setup, live training plots, evaluation tables and videos.

Everything a notebook cell would otherwise hold as logic lives here so that tests reach it
(ARCHITECTURE.md §8). Importing this module is cheap and imports neither jax nor mujoco: `setup_runtime`
must be able to choose MuJoCo's OpenGL backend and JAX's XLA flags *before* those are loaded.

Typical use in a notebook (on Colab after the notebook's bootstrap cell cloned the repository)::

    from wildamp.notebook import setup_runtime, LivePlot
    rt = setup_runtime()      # Colab: pip install; GL backend, XLA flags, GPU check, compile cache, cwd
    live = LivePlot(every=5)
    result = run_training(cfg, run_dir, on_metrics=live)
"""

from __future__ import annotations

import importlib.util
import io
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np

from wildamp import paths

if TYPE_CHECKING:  # pragma: no cover
    import mujoco
    from matplotlib.figure import Figure

    from wildamp.reference.clip import Clip, MotionDataset

#: Where Colab's NVIDIA driver is told to libglvnd for EGL (missing on some Colab images).
NVIDIA_EGL_VENDOR_FILE = Path("/usr/share/glvnd/egl_vendor.d/10_nvidia.json")
NVIDIA_EGL_VENDOR_JSON = '{"file_format_version": "1.0.0", "ICD": {"library_path": "libEGL_nvidia.so.0"}}\n'
#: XLA flags for GPU training (ARCHITECTURE.md §7). Only set where a GPU may be used: XLA_FLAGS are part of
#: JAX's persistent-cache key, so setting them on CPU would split the cache shared with the CLI and tests.
GPU_XLA_FLAGS = ("--xla_gpu_triton_gemm_any=True",)
#: JAX's GPU plugins; one of them installed means JAX may pick a GPU.
_GPU_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin", "jax_rocm7_plugin")


# --------------------------------------------------------------------------------------- runtime


@dataclass(frozen=True)
class Runtime:
    """What `setup_runtime` found: where we run and with which backends."""

    in_colab: bool
    backend: str             # jax.default_backend(): 'cpu', 'gpu', 'tpu'
    devices: tuple[str, ...]
    mujoco_gl: str           # MuJoCo's OpenGL backend ('' = MuJoCo's default, GLFW)
    xla_flags: str
    repo_root: Path          # the checkout wildamp was imported from: its code, configs and data run
    started_in: Path | None = None   # the kernel's working directory before setup (the notebook's folder)

    @property
    def foreign_checkout(self) -> bool:
        """The notebook was started outside the checkout whose wildamp it imports (e.g. a notebook of
        another worktree while wildamp is installed editable from the main one)."""
        return self.started_in is not None and not self.started_in.resolve().is_relative_to(self.repo_root.resolve())

    def __str__(self) -> str:
        where = "Colab" if self.in_colab else "local"
        text = (f"{where}: JAX backend {self.backend} ({', '.join(self.devices)}); "
                f"MUJOCO_GL={self.mujoco_gl or '(default)'}; XLA_FLAGS={self.xla_flags!r}; wildamp imported from "
                f"{self.repo_root}")
        if self.foreign_checkout:
            text += (f"\nWARNING: this notebook started in {self.started_in}, outside {self.repo_root}: it runs "
                     f"the code, configs and data of {self.repo_root}, not of the checkout it is in "
                     f"(put that checkout first on PYTHONPATH, or install it, to run its own code)")
        return text


def in_colab() -> bool:
    """True inside a Google Colab kernel."""
    return "google.colab" in sys.modules


def add_xla_flags(current: str, flags: Sequence[str]) -> str:
    """``current`` XLA_FLAGS with each of ``flags`` appended unless that flag is already set.

    A flag counts as set when its name (the part before ``=``) appears, so a user's own value wins.
    """
    parts = current.split()
    names = {p.split("=", 1)[0] for p in parts}
    for f in flags:
        if f.split("=", 1)[0] not in names:
            parts.append(f)
            names.add(f.split("=", 1)[0])
    return " ".join(parts)


def gpu_possible(colab: bool, jax_platforms: str | None) -> bool:
    """Whether JAX may run on a GPU in this process (decided before its backend starts).

    ``jax_platforms`` is the ``JAX_PLATFORMS`` setting: when given, it decides. Otherwise a Colab
    kernel (a GPU runtime, or `setup_runtime` refuses it) or an installed JAX GPU plugin means yes.
    """
    if jax_platforms:
        return any(p.strip() in ("cuda", "gpu", "rocm") for p in jax_platforms.lower().split(","))
    if colab:
        return True
    return any(importlib.util.find_spec(m) is not None for m in _GPU_PLUGINS)


def write_egl_vendor_file(path: str | os.PathLike = NVIDIA_EGL_VENDOR_FILE) -> bool:
    """Register NVIDIA's EGL library with libglvnd if ``path`` is missing; returns whether it wrote.

    Colab's GPU images ship the driver but not always this file; without it EGL finds no device and
    MuJoCo cannot render. An existing file is never touched.
    """
    path = Path(path)
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(NVIDIA_EGL_VENDOR_JSON)
    return True


def pip_install_repo(repo_root: str | os.PathLike = paths.REPO_ROOT, extras: str = "notebooks",
                     run: Callable[..., Any] | None = None) -> list[str]:
    """``pip install -e repo_root[extras]`` in this interpreter (Colab: wildamp's dependencies).

    Raises RuntimeError when ``repo_root`` is not a checkout of the repository (no
    ``pyproject.toml``): wildamp needs the checkout's configs and assets, not just the package.
    Returns the command that ran.
    """
    import subprocess

    root = Path(repo_root)
    if not (root / "pyproject.toml").is_file():
        raise RuntimeError(f"wildamp is imported from {root}, which is not a checkout of the repository "
                           "(no pyproject.toml); clone the repository and import wildamp from there")
    cmd = [sys.executable, "-m", "pip", "install", "-q", "-e", f"{root}[{extras}]" if extras else str(root)]
    (run or subprocess.run)(cmd, check=True)
    return cmd


def setup_runtime(colab: bool | None = None, *, require_gpu: bool | None = None,
                  jax_platforms: str | None = None, install: bool | None = None,
                  egl_vendor_file: str | os.PathLike = NVIDIA_EGL_VENDOR_FILE,
                  compilation_cache: bool = True, chdir: bool = True) -> Runtime:
    """Prepare a notebook kernel: install (Colab), GL backend, XLA settings, GPU check, compile cache,
    working dir. Every notebook's setup is this one call.

    Order matters and is why this is one function: MuJoCo reads ``MUJOCO_GL`` when it is first
    imported and XLA reads ``XLA_FLAGS`` when its backend starts, so both are set before either
    library is loaded here. XLA_FLAGS gets `GPU_XLA_FLAGS` only where a GPU may be used
    (`gpu_possible`).

    On Colab the repository must already be cloned and on ``sys.path`` (the notebooks' Colab cell
    does that from ``REPO_URL`` / ``WILDAMP_REPO_URL``: wildamp cannot be imported before its code is
    there); this function then pip-installs it with its dependencies.

    Args:
        colab: running on Colab (default: detected). Colab: the NVIDIA EGL vendor file is written if
            missing and ``MUJOCO_GL=egl``. Elsewhere: `wildamp.viz.ensure_gl_backend` (EGL on a
            headless Linux machine, MuJoCo's own choice where there is a display).
        require_gpu: raise unless JAX runs on a GPU (default: on Colab only).
        jax_platforms: default for ``JAX_PLATFORMS`` (e.g. ``'cpu'`` where nothing needs an
            accelerator); a value already in the environment wins.
        install: ``pip install -e`` the repository with the ``notebooks`` extra (`pip_install_repo`)
            before mujoco and jax are imported (default: on Colab only).
        egl_vendor_file: where the vendor file goes (Colab only).
        compilation_cache: turn on JAX's persistent compilation cache (reruns skip most compiles).
        chdir: change into the repository root (configs name files relative to it). The directory
            the kernel started in is kept (`Runtime.started_in`): when it lies outside the checkout
            wildamp is imported from, printing the Runtime says so (`Runtime.foreign_checkout`).

    Raises:
        RuntimeError: a GPU was required and JAX has none (on Colab: pick a GPU runtime), mujoco
            was already imported with no headless backend on a machine without display, or an
            install was asked for and wildamp is not imported from a checkout.
    """
    from wildamp.viz import ensure_gl_backend

    started_in = Path.cwd()
    colab = in_colab() if colab is None else colab
    require_gpu = colab if require_gpu is None else require_gpu
    install = colab if install is None else install
    if install:
        pip_install_repo(paths.REPO_ROOT)
    if jax_platforms:
        os.environ.setdefault("JAX_PLATFORMS", jax_platforms)
    if colab:
        write_egl_vendor_file(egl_vendor_file)
        if "mujoco" not in sys.modules:
            os.environ.setdefault("MUJOCO_GL", "egl")
        gl = os.environ.get("MUJOCO_GL", "")
    else:
        gl = ensure_gl_backend()
    # Notebooks share the GPU with rendering and other cells: grab memory on demand.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if gpu_possible(colab, os.environ.get("JAX_PLATFORMS")):
        os.environ["XLA_FLAGS"] = add_xla_flags(os.environ.get("XLA_FLAGS", ""), GPU_XLA_FLAGS)

    import jax

    backend = jax.default_backend()
    if require_gpu and backend != "gpu":
        hint = " (Colab: Runtime → Change runtime type → a GPU)" if colab else ""
        raise RuntimeError(f"a GPU is required but JAX runs on {backend!r}: {jax.devices()}{hint}")
    if compilation_cache:
        from wildamp.train import enable_compilation_cache  # imports mujoco: GL is chosen by now
        enable_compilation_cache()
    if chdir:
        os.chdir(paths.REPO_ROOT)
    return Runtime(in_colab=colab, backend=backend, devices=tuple(str(d) for d in jax.devices()),
                   mujoco_gl=gl, xla_flags=os.environ.get("XLA_FLAGS", ""), repo_root=paths.REPO_ROOT,
                   started_in=None if colab else started_in)


def pick_config(smoke: bool, backend: str) -> Path:
    """The training config a notebook uses: smoke test, CPU-sized, or the full GPU run."""
    if smoke:
        name = "smoke.yaml"
    elif backend == "gpu":
        name = "ppo_amass_training.yaml"
    else:
        name = "cpu.yaml"
    return paths.CONFIGS_DIR / name


# --------------------------------------------------------------------------------------- metrics


def _ipython_display(obj: Any, handle: Any) -> Any:
    """Show ``obj`` in a notebook output that later calls update in place; no-op outside IPython."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return None
    if get_ipython() is None:
        return None
    if handle is None:
        return display(obj, display_id=True)
    handle.update(obj)
    return handle


class LivePlot:
    """``on_metrics`` callback for `wildamp.train.run_training` that redraws the training panels live.

    Every ``every`` iterations the panels (`wildamp.trainplots.plot_training`) are drawn into one
    figure, rendered to PNG and shown in the same notebook output (IPython display handle), so a long
    run shows one updating plot instead of hundreds.

    Attributes:
        records: the flat records received, in order.
        figure: the matplotlib Figure (not registered with pyplot, so cells do not show it twice).
        redraws: how many times the figure was drawn.
    """

    def __init__(self, panels: Sequence[str] | None = None, every: int = 1, title: str = "",
                 iterations_per_call: int = 1, ncols: int = 3, dpi: int = 80,
                 show: Callable[[Any, Any], Any] | None = _ipython_display) -> None:
        from matplotlib.figure import Figure

        from wildamp.trainplots import LIVE_PANELS, PANELS

        if every < 1:
            raise ValueError(f"LivePlot: every must be >= 1, got {every}")
        self.panels = tuple(LIVE_PANELS if panels is None else panels)
        unknown = [p for p in self.panels if p not in PANELS]
        if unknown:
            raise KeyError(f"LivePlot: unknown panels {unknown}; known: {sorted(PANELS)}")
        self.every = int(every)
        self.title = title
        self.iterations_per_call = int(iterations_per_call)
        self.ncols = ncols
        self.dpi = dpi
        self._show = show
        self._handle: Any = None
        self.records: list[dict[str, float]] = []
        cols = min(ncols, len(self.panels))
        rows = math.ceil(len(self.panels) / cols)
        self.figure: Figure = Figure(figsize=(3.8 * cols, 2.7 * rows + 0.4))
        self.redraws = 0
        self._drawn_at = 0

    def __call__(self, record: Mapping[str, Any]) -> None:
        self.records.append(dict(record))
        if len(self.records) % self.every == 0:
            self.redraw()

    def redraw(self) -> "Figure":
        """Draw the panels of everything received so far and update the notebook output."""
        from IPython.display import Image

        from wildamp.trainplots import format_env_steps, plot_training

        title = self.title
        if self.records:
            last = self.records[-1]
            title = (f"{self.title} iteration {int(last['training/iteration'])}, "
                     f"{format_env_steps(float(last['training/env_steps']))}").strip()
        plot_training(self.records, self.panels, self.iterations_per_call, fig=self.figure,
                      ncols=self.ncols, title=title)
        self.redraws += 1
        self._drawn_at = len(self.records)
        if self._show is not None:
            buf = io.BytesIO()
            self.figure.savefig(buf, format="png", dpi=self.dpi)
            self._handle = self._show(Image(data=buf.getvalue(), format="png"), self._handle)
        return self.figure

    def finish(self) -> "Figure":
        """Final redraw if records arrived since the last one; returns the figure."""
        if self._drawn_at != len(self.records) or self.redraws == 0:
            self.redraw()
        return self.figure


def expected_metrics(prefix: str) -> list[str]:
    """Metric names (and ``*`` patterns) declared in the registry under ``prefix`` (e.g. 'amp/')."""
    from wildamp.metrics import REGISTRY

    return sorted(m.name for m in REGISTRY.declarations() if m.name.startswith(prefix))


def missing_metrics(record: Mapping[str, Any], prefix: str) -> list[str]:
    """Declared metrics under ``prefix`` absent from ``record`` (a pattern needs one matching key).

    Metrics declared for evaluation (``eval/``) are logged by the evaluator, not per iteration;
    pass the prefix of what the record should hold (``'amp/'``, ``'ppo/'``, ...).
    """
    import re

    out = []
    for name in expected_metrics(prefix):
        if "*" in name:
            rx = re.compile("^" + "[^/]+".join(re.escape(p) for p in name.split("*")) + "$")
            if not any(rx.match(k) for k in record):
                out.append(name)
        elif name not in record:
            out.append(name)
    return out


def nonfinite_metrics(records: Sequence[Mapping[str, Any]]) -> dict[str, list[int]]:
    """``{metric: [iterations]}`` of non-finite values in flat training records.

    ``episode/*`` statistics other than the count are NaN by definition in an iteration where no
    episode ended (``episode/count == 0``); those are not reported. Anything else non-finite is.
    """
    bad: dict[str, list[int]] = {}
    for r in records:
        no_episodes = float(r.get("episode/count", 1.0)) == 0.0
        for k, v in r.items():
            if no_episodes and k.startswith("episode/") and k != "episode/count":
                continue
            if not math.isfinite(float(v)):
                bad.setdefault(k, []).append(int(r.get("training/iteration", -1)))
    return bad


def replay_health(records: Sequence[Mapping[str, Any]], window: int, objective: str) -> Any:
    """A `wildamp.amp.DiscHealthMonitor` fed a run's records as the trainer feeds its own (same window,
    midpoint and inputs), so a notebook can ask it for its `verdict` after the run. The notebook
    checks that it gives as many warnings as the trainer wrote to ``warnings.log``."""
    from wildamp import amp as A

    monitor = A.DiscHealthMonitor(window=window, midpoint=A.as_objective(objective).midpoint)
    for r in records:
        monitor.update({"disc_acc": r["amp/disc_acc"], "disc_real_mean": r["amp/disc_real_mean"],
                        "disc_fake_mean": r["amp/disc_fake_mean"], "amp_reward_mean": r["amp/reward_mean"]})
    return monitor


# --------------------------------------------------------------------------------------- evaluation


def format_eval_table(ev: Mapping[str, Any]) -> str:
    """Evaluation result of `wildamp.evaluate.Evaluator.evaluate` as a per-command text table:
    commanded and measured forward velocity (m/s, heading frame, after settling), |v - cmd|, falls."""
    for k in ("per_command", "vel_error", "forward_velocity", "fall_rate", "episode_length",
              "single_support_fraction"):
        if k not in ev:
            raise KeyError(f"evaluation result has no {k!r} (keys: {sorted(ev)})")
    # The measured velocity next to the error: a robot standing still shows as v = 0, not only as
    # |v - cmd| = cmd.
    lines = [f"{'command vx':>10}  {'measured vx':>11}  {'|v - cmd| m/s':>13}  {'falls':>6}", "-" * 48]
    for c, r in sorted(ev["per_command"].items(), key=lambda kv: float(kv[0])):
        lines.append(f"{float(c):>10.2f}  {r['forward_velocity']:>11.3f}  {r['vel_error']:>13.3f}  "
                     f"{100 * r['fall_rate']:>5.0f}%")
    lines.append("-" * 48)
    lines.append(f"{'all':>10}  {ev['forward_velocity']:>11.3f}  {ev['vel_error']:>13.3f}  "
                 f"{100 * ev['fall_rate']:>5.0f}%")
    lines.append(f"episode length {ev['episode_length']:.1f} steps, single support "
                 f"{100 * ev['single_support_fraction']:.0f}% of the time, score {ev.get('score', float('nan')):.3f}")
    return "\n".join(lines)


def restore_checkpoint(trainer: Any, template_state: Any, path: str | os.PathLike) -> tuple[Any, dict]:
    """Load checkpoint ``path`` of a run of ``trainer`` (see :func:`wildamp.run_state.restore_checkpoint`)."""
    from wildamp import run_state
    return run_state.restore_checkpoint(trainer, template_state, path)


# --------------------------------------------------------------------------------------- videos


class ReferenceMatch(NamedTuple):
    """A reference clip paired with the evaluation command whose velocity it is closest to."""

    clip: "Clip"
    command: np.ndarray      # (3,) vx, vy, yaw rate
    speed_gap: float         # |(vx, vy) - (clip speed, clip lateral speed)| in m/s


def closest_reference_clip(dataset: "MotionDataset", commands: np.ndarray) -> ReferenceMatch:
    """The clip whose commanded speed (:func:`wildamp.reference.clip.command_speed`: the speed it was
    made for, else the speed it walks) is closest to one of ``commands`` (N, 3), with that command.

    Clips without a speed (e.g. converted GMR clips) are not candidates. Raises ValueError when no
    clip has one.
    """
    cmds = np.unique(np.asarray(commands, np.float64).reshape(-1, 3), axis=0)
    from wildamp.reference.clip import command_speed
    candidates = [c for c in dataset.clips if np.isfinite(command_speed(c)[0])]
    if not candidates:
        raise ValueError(f"no reference clip has meta['speed'] (clips: {list(dataset.clip_names)}); "
                         "cannot pick one to compare against a commanded velocity")
    best: ReferenceMatch | None = None
    for clip in candidates:
        v = np.array(command_speed(clip))
        gaps = np.hypot(cmds[:, 0] - v[0], cmds[:, 1] - v[1])
        i = int(np.argmin(gaps))
        if best is None or gaps[i] < best.speed_gap:
            best = ReferenceMatch(clip=clip, command=cmds[i].astype(np.float32), speed_gap=float(gaps[i]))
    assert best is not None
    return best


def clip_qpos(clip: "Clip", spec: Any) -> np.ndarray:
    """(T, nq) MuJoCo qpos of a clip for kinematic replay (:meth:`wildamp.reference.clip.Clip.to_qpos`:
    joints placed **by name**, other coordinates from the home pose)."""
    return clip.to_qpos(spec)


def render_eval_rollouts(model: "mujoco.MjModel", qpos: np.ndarray, commands: np.ndarray, dt: float,
                         seconds: float, camera: Any = "heading", width: int = 320,
                         height: int = 240) -> np.ndarray:
    """Frames of one evaluation episode per distinct forward command, one after the other in time,
    each labelled with its command in a caption bar above the picture (frames are
    ``height + viz.CAPTION_HEIGHT`` tall). ``qpos`` (T, N, nq) as `Evaluator.evaluate(keep_qpos=True)`
    returns it, ``commands`` (N, 3) its commands (`Evaluator.commands`), ``dt`` the control step;
    ``camera`` as in `wildamp.viz.render_qpos_trajectory` (default: the heading-following camera).

    Note: the evaluator's env resets itself after a fall; `Evaluator.evaluate(keep_qpos=True)` holds
    each episode at its last live pose instead, so a fallen robot does not reappear standing.
    """
    from wildamp import viz

    qpos = np.asarray(qpos)
    commands = np.asarray(commands)
    if qpos.ndim != 3 or qpos.shape[1] != commands.shape[0]:
        raise ValueError(f"qpos must be (T, N={commands.shape[0]}, nq), got {qpos.shape}")
    n = min(qpos.shape[0], int(round(seconds / dt)))
    clips = []
    for c in np.unique(commands[:, 0]):
        i = int(np.nonzero(commands[:, 0] == c)[0][0])
        frames = viz.render_qpos_trajectory(model, qpos[:n, i], camera=camera, width=width, height=height)
        clips.append(viz.caption(frames, f"policy, command vx = {c:.2f} m/s"))
    return np.concatenate(clips, axis=0)


def policy_vs_reference_frames(model: "mujoco.MjModel", policy_qpos: np.ndarray, policy_fps: float,
                               reference_qpos: np.ndarray, reference_fps: float, seconds: float,
                               labels: Sequence[str] = ("policy", "reference"), camera: Any = "heading",
                               width: int = 320, height: int = 240, fps: float | None = None) -> np.ndarray:
    """Side-by-side video frames of the policy and a reference clip, same duration and frame count.

    Both sequences are rendered at ``fps`` (default: the policy's rate), each resampled from its own
    rate, over the shorter of ``seconds`` and the two sequences' durations, by the same camera: the
    default heading-following camera (`wildamp.viz.HeadingCamera`) films each robot from the same
    pose relative to its own heading, so a policy that starts with a random yaw and a reference
    walking along +x are seen from the same side. The labels are captions above the pictures.
    """
    from wildamp import viz

    fps = float(policy_fps if fps is None else fps)
    duration = min(float(seconds), (len(policy_qpos) - 1) / policy_fps, (len(reference_qpos) - 1) / reference_fps)
    if duration <= 0:
        raise ValueError(f"nothing to render: duration {duration} s (seconds={seconds}, "
                         f"{len(policy_qpos)} policy and {len(reference_qpos)} reference frames)")

    def render(q: np.ndarray, src_fps: float) -> np.ndarray:
        q = np.asarray(q)[: int(np.floor(duration * src_fps + 1e-9)) + 1]
        return viz.render_qpos_trajectory(model, q, camera=camera, width=width, height=height,
                                          fps=fps, source_fps=src_fps)

    a, b = render(policy_qpos, policy_fps), render(reference_qpos, reference_fps)
    n = min(len(a), len(b))   # rounding of the two resamplings may differ by a frame
    return viz.side_by_side(a[:n], b[:n], labels=tuple(labels))
