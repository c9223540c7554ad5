"""Headless rendering (mujoco.Renderer), videos (mediapy) and matplotlib plots.

MuJoCo picks its OpenGL backend **when ``mujoco`` is first imported**, from ``MUJOCO_GL``. On a
machine without a display, call `ensure_gl_backend` (or set ``MUJOCO_GL=egl``) *before anything
imports mujoco*::

    from wildamp.viz import ensure_gl_backend
    ensure_gl_backend()          # first cell of a notebook, before `import mujoco` / wildamp.robot

This module itself imports mujoco only inside the rendering functions, so importing it is safe.
On CPU machines EGL is Mesa's software renderer (Debian packages ``libegl1 libgl1-mesa-dri``);
``MUJOCO_GL=osmesa`` needs ``libosmesa6``.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import mujoco
    from matplotlib.figure import Figure

#: The contact order of the feature function (ARCHITECTURE.md §4).
GL_PACKAGES_HINT = "Debian/Ubuntu: apt-get install libegl1 libgl1-mesa-dri (EGL) or libosmesa6 (OSMesa)"
_HEADLESS_BACKENDS = ("egl", "osmesa")


# --------------------------------------------------------------------------------------- backends


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def ensure_gl_backend(default: str = "egl") -> str:
    """Choose MuJoCo's OpenGL backend for headless use; must run before ``mujoco`` is imported.

    Sets ``MUJOCO_GL=default`` when it is unset and Linux has no display (macOS/Windows and
    machines with a display keep MuJoCo's own choice). Returns the backend in effect ('' means
    MuJoCo's default, GLFW).

    Raises:
        RuntimeError: mujoco was already imported with no usable headless backend, so the setting
            can no longer take effect (restart the kernel/interpreter and call this first).
    """
    current = os.environ.get("MUJOCO_GL", "").strip().lower()
    needs_headless = platform.system() == "Linux" and not _has_display()
    if "mujoco" in sys.modules:
        # Too late to change anything: report what mujoco actually loaded.
        loaded = _loaded_backend()
        if needs_headless and loaded not in _HEADLESS_BACKENDS:
            raise RuntimeError(
                f"mujoco was imported before MUJOCO_GL was set (it loaded backend {loaded or 'glfw'!r}) "
                "and this machine has no display, so rendering will fail. Restart the "
                "interpreter/kernel and call wildamp.viz.ensure_gl_backend() (or set "
                f"MUJOCO_GL={default}) before anything imports mujoco."
            )
        return loaded
    if not current and needs_headless:
        os.environ["MUJOCO_GL"] = default  # mujoco sets PYOPENGL_PLATFORM to match
        return default
    return current


def _loaded_backend() -> str:
    try:
        from mujoco.rendering.classic import gl_context  # type: ignore[import-not-found]

        return str(getattr(gl_context, "_MUJOCO_GL", os.environ.get("MUJOCO_GL", ""))).strip().lower()
    except ImportError:
        return os.environ.get("MUJOCO_GL", "").strip().lower()


def ensure_ffmpeg() -> str:
    """Point mediapy at an ffmpeg binary: the system one, else imageio-ffmpeg's; returns its path."""
    import mediapy

    system = shutil.which("ffmpeg")
    if system:
        mediapy.set_ffmpeg(system)
        return system
    try:
        import imageio_ffmpeg
    except ImportError as e:
        raise RuntimeError(
            "no ffmpeg found for mediapy: install the system package 'ffmpeg' or "
            "pip install 'imageio-ffmpeg<0.8' (0.8's ffmpeg breaks mediapy.read_video)"
        ) from e
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    mediapy.set_ffmpeg(exe)
    return exe


# --------------------------------------------------------------------------------------- rendering


def _camera_arg(model: "mujoco.MjModel", camera: str | int) -> str | int:
    import mujoco

    if isinstance(camera, str):
        if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera) < 0:
            names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
            raise ValueError(f"camera {camera!r} not in the model; cameras: {names} (or -1 for the free camera)")
        return camera
    if not (-1 <= int(camera) < model.ncam):
        raise ValueError(f"camera index {camera} out of range (model has {model.ncam} cameras; -1 = free camera)")
    return int(camera)


def _frame_indices(T: int, fps: float | None, source_fps: float | None) -> np.ndarray:
    if fps is None:
        return np.arange(T)
    if source_fps is None:
        raise ValueError("fps given without source_fps: the rate of qpos_seq is needed to resample it")
    if fps <= 0 or source_fps <= 0:
        raise ValueError(f"fps and source_fps must be positive, got {fps}, {source_fps}")
    # Nearest source frame at each output time; covers the same duration as the input.
    duration = (T - 1) / source_fps
    n = int(np.floor(duration * fps + 1e-9)) + 1
    return np.clip(np.rint(np.arange(n) / fps * source_fps).astype(int), 0, T - 1)


def render_qpos_trajectory(
    model: "mujoco.MjModel",
    qpos_seq: np.ndarray,
    camera: str | int = "track",
    width: int = 480,
    height: int = 360,
    fps: float | None = None,
    *,
    source_fps: float | None = None,
    scene_option: "mujoco.MjvOption | None" = None,
) -> np.ndarray:
    """Render a kinematic replay of ``qpos_seq`` (T, nq): ``mj_forward`` + render per frame.

    Args:
        model: the MjModel (its offscreen buffer must be at least width x height:
            ``<visual><global offwidth=.. offheight=..>``).
        qpos_seq: (T, nq) generalized positions (free-joint quaternions wxyz, as in MuJoCo).
        camera: camera name, index, or -1 for the default free camera.
        width, height: image size in pixels.
        fps: output frame rate; ``None`` renders every input frame. When given, ``source_fps``
            (the rate of ``qpos_seq``) is required and frames are picked nearest in time.
        source_fps: rate of ``qpos_seq`` (only used with ``fps``).
        scene_option: optional ``mujoco.MjvOption`` (e.g. to show contact points).

    Returns:
        (T', height, width, 3) uint8 frames.
    """
    import mujoco

    qpos_seq = np.asarray(qpos_seq, dtype=np.float64)
    if qpos_seq.ndim != 2 or qpos_seq.shape[1] != model.nq:
        raise ValueError(f"qpos_seq must have shape (T, nq={model.nq}), got {qpos_seq.shape}")
    if not np.all(np.isfinite(qpos_seq)):
        bad = np.unique(np.nonzero(~np.isfinite(qpos_seq))[0])
        raise ValueError(f"qpos_seq has non-finite values in frames {bad[:10].tolist()}")
    cam = _camera_arg(model, camera)
    idx = _frame_indices(len(qpos_seq), fps, source_fps)
    try:
        renderer = mujoco.Renderer(model, height=height, width=width)
    except ValueError:
        raise  # image larger than the offscreen buffer: mujoco's own message names offwidth/offheight
    except Exception as e:  # noqa: BLE001 - GL context failures come as many types
        raise RuntimeError(
            f"could not create a MuJoCo OpenGL context (MUJOCO_GL={os.environ.get('MUJOCO_GL', '')!r}): {e}. "
            f"Headless: set MUJOCO_GL=egl before importing mujoco (wildamp.viz.ensure_gl_backend()); "
            f"{GL_PACKAGES_HINT}."
        ) from e
    data = mujoco.MjData(model)
    frames = np.empty((len(idx), height, width, 3), dtype=np.uint8)
    try:
        for i, t in enumerate(idx):
            data.qpos[:] = qpos_seq[t]
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera=cam, scene_option=scene_option)
            renderer.render(out=frames[i])
    finally:
        renderer.close()
    return frames


# --------------------------------------------------------------------------------------- videos


def _check_frames(frames: Any, name: str = "frames") -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (T, H, W, 3), got {frames.shape}")
    if frames.dtype != np.uint8:
        raise TypeError(f"{name} must be uint8 RGB, got {frames.dtype}")
    return frames


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float) -> Path:
    """Write (T, H, W, 3) uint8 frames to a video file (mp4/gif by extension) with mediapy."""
    import mediapy

    frames = _check_frames(frames)
    if len(frames) == 0:
        raise ValueError("no frames to write")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    ensure_ffmpeg()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mediapy.write_video(path, frames, fps=fps)
    return path


def _text_fill(frame: np.ndarray, text: str, xy: tuple[int, int], scale: int = 1) -> np.ndarray:
    """Draw ``text`` (with a dark box behind it for contrast) onto one frame with PIL."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.fromarray(frame)
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.load_default(size=11 * scale)
    except TypeError:  # Pillow < 10.1 has no size argument
        font = ImageFont.load_default()
    box = draw.textbbox(xy, text, font=font)
    draw.rectangle((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), fill=(0, 0, 0))
    draw.text(xy, text, fill=(255, 255, 255), font=font)
    return np.asarray(img)


def overlay_text(frames: np.ndarray, text: str | Sequence[str], xy: tuple[int, int] = (4, 4)) -> np.ndarray:
    """Return a copy of ``frames`` with ``text`` drawn at ``xy`` (one string, or one per frame)."""
    frames = _check_frames(frames)
    texts = [text] * len(frames) if isinstance(text, str) else list(text)
    if len(texts) != len(frames):
        raise ValueError(f"{len(texts)} texts for {len(frames)} frames")
    return np.stack([_text_fill(f, t, xy) for f, t in zip(frames, texts)]) if len(frames) else frames.copy()


def overlay_command(
    frames: np.ndarray,
    commands: np.ndarray,
    max_abs: Sequence[float] = (1.0, 1.0, 1.0),
    labels: Sequence[str] = ("vx", "vy", "wz"),
) -> np.ndarray:
    """Draw the velocity command of each frame: one small horizontal bar per component plus text.

    Args:
        frames: (T, H, W, 3) uint8.
        commands: (T, C) command per frame (e.g. vx, vy, yaw rate) or (C,) for a constant command.
        max_abs: the value that fills half a bar, per component.
        labels: component names for the text line.
    """
    frames = _check_frames(frames)
    cmds = np.asarray(commands, dtype=np.float64)
    if cmds.ndim == 1:
        cmds = np.broadcast_to(cmds, (len(frames), cmds.shape[0]))
    if cmds.shape[0] != len(frames) or cmds.shape[1] != len(labels) or len(max_abs) != len(labels):
        raise ValueError(f"commands {cmds.shape} / max_abs {len(max_abs)} / labels {len(labels)} do not match {len(frames)} frames")
    out = frames.copy()
    T, H, W, _ = out.shape
    bar_w, bar_h, x0 = max(W // 5, 10), max(4, H // 60), 4
    for c in range(cmds.shape[1]):
        y0 = H - (cmds.shape[1] - c) * (bar_h + 3) - 2
        mid = x0 + bar_w // 2
        out[:, y0 : y0 + bar_h, x0 : x0 + bar_w] = 60  # bar background
        frac = np.clip(cmds[:, c] / max_abs[c], -1.0, 1.0)
        for t in range(T):
            end = mid + int(round(frac[t] * (bar_w // 2)))
            if end > mid:
                out[t, y0 : y0 + bar_h, mid + 1 : end + 1] = (40, 200, 40)  # positive: green, rightwards
            elif end < mid:
                out[t, y0 : y0 + bar_h, end:mid] = (220, 60, 40)  # negative: red, leftwards
        out[:, y0 : y0 + bar_h, mid] = 255  # zero mark, drawn last so it stays visible
    text = ["  ".join(f"{lab}={v:+.2f}" for lab, v in zip(labels, row)) for row in cmds]
    # Text just above the bars, leaving the top-left corner free for clip labels (side_by_side).
    top_of_bars = H - cmds.shape[1] * (bar_h + 3) - 2
    return overlay_text(out, text, xy=(x0, max(top_of_bars - 16, 0)))


def side_by_side(
    frames_a: np.ndarray,
    frames_b: np.ndarray,
    labels: Sequence[str] | None = None,
    gap: int = 4,
) -> np.ndarray:
    """Two clips next to each other (same length T; a shorter height is padded with black).

    ``labels`` (two strings) are drawn in the top-left corner of each half.
    """
    a, b = _check_frames(frames_a, "frames_a"), _check_frames(frames_b, "frames_b")
    if len(a) != len(b):
        raise ValueError(f"clips differ in length ({len(a)} vs {len(b)} frames); trim or resample one first")
    if labels is not None:
        if len(labels) != 2:
            raise ValueError(f"labels must be two strings, got {labels!r}")
        a, b = overlay_text(a, labels[0]), overlay_text(b, labels[1])
    H = max(a.shape[1], b.shape[1])

    def pad(x: np.ndarray) -> np.ndarray:
        return np.pad(x, ((0, 0), (0, H - x.shape[1]), (0, 0), (0, 0)))

    spacer = np.full((len(a), H, gap, 3), 255, dtype=np.uint8)
    return np.concatenate([pad(a), spacer, pad(b)], axis=2)


def show_video(frames: np.ndarray, fps: float, **kwargs: Any) -> None:
    """Show frames inline in a notebook (mediapy.show_video with ffmpeg configured)."""
    import mediapy

    ensure_ffmpeg()
    mediapy.show_video(_check_frames(frames), fps=fps, **kwargs)


# --------------------------------------------------------------------------------------- plots


def _grid(n: int, ncols: int) -> tuple[int, int]:
    cols = max(1, min(ncols, n))
    return -(-n // cols), cols


def plot_joint_traces(
    t: np.ndarray,
    joint_pos: np.ndarray,
    joint_names: Sequence[str],
    ranges: np.ndarray | Mapping[str, tuple[float, float]] | None = None,
    ncols: int = 3,
    label: str | None = None,
    fig: "Figure | None" = None,
) -> "Figure":
    """One small axis per joint: angle vs time, joint range shaded, out-of-range samples in red.

    Args:
        t: (T,) time in seconds.
        joint_pos: (T, J) joint angles (rad), columns in the order of ``joint_names``.
        joint_names: J names (titles; also the keys into a ``ranges`` dict).
        ranges: (J, 2) limits in the same order, or ``{name: (lo, hi)}`` (missing names: no band).
        label: legend label of this trace; with ``fig`` from an earlier call, traces overlay.
        fig: draw into this figure (it must have one axis per joint) instead of a new one.
    """
    import matplotlib.pyplot as plt

    t = np.asarray(t, dtype=np.float64)
    q = np.asarray(joint_pos, dtype=np.float64)
    names = list(joint_names)
    if q.ndim != 2 or q.shape[0] != t.shape[0] or q.shape[1] != len(names):
        raise ValueError(f"joint_pos {q.shape} must be (T={t.shape[0]}, J={len(names)})")
    if ranges is None:
        lims: list[tuple[float, float] | None] = [None] * len(names)
    elif isinstance(ranges, Mapping):
        unknown = sorted(set(ranges) - set(names))
        if unknown:
            raise KeyError(f"ranges names joints not in joint_names: {unknown}")
        lims = [tuple(ranges[n]) if n in ranges else None for n in names]
    else:
        r = np.asarray(ranges, dtype=np.float64)
        if r.shape != (len(names), 2):
            raise ValueError(f"ranges must be (J={len(names)}, 2), got {r.shape}")
        lims = [tuple(row) for row in r]
    rows, cols = _grid(len(names), ncols)
    new = fig is None
    if new:
        fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.2 * rows), sharex=True, squeeze=False)
        for ax in axes.flat[len(names):]:
            fig.delaxes(ax)
    elif len(fig.axes) != len(names):
        raise ValueError(f"fig has {len(fig.axes)} axes, expected one per joint ({len(names)})")
    for j, (ax, name) in enumerate(zip(fig.axes, names)):
        ax.plot(t, q[:, j], lw=1.0, label=label)
        lim = lims[j]
        if lim is not None:
            if new:
                ax.axhspan(lim[0], lim[1], color="0.9", zorder=0)
                ax.axhline(lim[0], color="0.5", ls="--", lw=0.7)
                ax.axhline(lim[1], color="0.5", ls="--", lw=0.7)
            out = (q[:, j] < lim[0]) | (q[:, j] > lim[1])
            if out.any():
                ax.plot(t[out], q[out, j], ".", ms=3, color="red")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        if label is not None and j == 0:
            ax.legend(fontsize=7)
    fig.supxlabel("time [s]", fontsize=9)
    fig.tight_layout()
    return fig


def plot_contacts(
    t: np.ndarray,
    contacts: Mapping[str, np.ndarray],
    pad_names: Sequence[str] | None = None,
) -> "Figure":
    """Compare several contact estimators: 4 rows (one per sole pad), one line per estimator.

    Args:
        t: (T,) time in seconds.
        contacts: ``{estimator_name: (T, 4) array}`` (0/1 flags, probabilities or forces), columns in
            the order of ``pad_names``.
        pad_names: the column order (default: ``robot.FOOT_GEOMS``, the one declaration of the pad
            order; imported here, not at module level, because importing viz must not import mujoco).
    """
    if pad_names is None:
        from wildamp.robot import FOOT_GEOMS as pad_names
    import matplotlib.pyplot as plt

    t = np.asarray(t, dtype=np.float64)
    if not contacts:
        raise ValueError("contacts is empty: pass at least one estimator")
    arrays = {}
    for name, c in contacts.items():
        c = np.asarray(c, dtype=np.float64)
        if c.shape != (t.shape[0], len(pad_names)):
            raise ValueError(f"contacts[{name!r}] has shape {c.shape}, expected (T={t.shape[0]}, {len(pad_names)})")
        arrays[name] = c
    fig, axes = plt.subplots(len(pad_names), 1, figsize=(9, 1.5 * len(pad_names) + 0.6), sharex=True)
    axes = np.atleast_1d(axes)
    for k, (ax, pad) in enumerate(zip(axes, pad_names)):
        for name, c in arrays.items():
            ax.step(t, c[:, k], where="post", lw=1.0, label=name)
        ax.set_ylabel(pad, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7, loc="upper right", ncol=min(len(arrays), 4))
    axes[-1].set_xlabel("time [s]")
    fig.tight_layout()
    return fig


def plot_height(
    t: np.ndarray,
    h: np.ndarray,
    fall_height: float | None = None,
    reference: float | None = None,
    label: str = "pelvis height",
) -> "Figure":
    """Root (pelvis) height vs time, with optional fall-termination and nominal-height lines."""
    import matplotlib.pyplot as plt

    t = np.asarray(t, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    if h.shape != t.shape:
        raise ValueError(f"h {h.shape} and t {t.shape} must have the same shape")
    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.plot(t, h, lw=1.2, label=label)
    if fall_height is not None:
        ax.axhline(fall_height, color="red", ls="--", lw=0.8, label="fall threshold")
    if reference is not None:
        ax.axhline(reference, color="0.4", ls=":", lw=0.8, label="nominal")
    ax.set_xlabel("time [s]")
    ax.set_ylabel("height [m]")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
