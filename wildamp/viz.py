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
from dataclasses import dataclass
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


#: The camera name that selects `HeadingCamera` (also usable as ``video.camera`` in a config).
HEADING_CAMERA = "heading"


@dataclass(frozen=True)
class HeadingCamera:
    """A free camera that follows the robot at a fixed pose **relative to its heading**.

    Two robots walking in different world directions (a policy starts with a random yaw, a reference
    clip walks along +x) are then filmed from the same side, at the same distance. The look-at point
    follows the root's horizontal position at a fixed height, and the azimuth follows the root's yaw;
    both are averaged over ``smooth_frames`` input frames so the picture does not sway with the gait's
    rocking.

    Attributes:
        distance: metres from the look-at point (1.5 m keeps the 0.7 m robot, head included, in frame
            with MuJoCo's 45° field of view).
        elevation: degrees, negative looks down.
        azimuth_offset: degrees from the robot's heading to the camera's viewing direction; -120 looks
            at the robot's left side, a little from the front.
        lookat_height: metres above the floor (about the middle of the robot).
        smooth_frames: moving-average window over the input sequence (frames).
    """

    distance: float = 1.5
    elevation: float = -12.0
    azimuth_offset: float = -120.0
    lookat_height: float = 0.36
    smooth_frames: int = 25

    def poses(self, qpos_seq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(T, 3) look-at points and (T,) azimuths (degrees) for a (T, nq) free-root qpos sequence."""
        from wildamp.quat import yaw_of

        q = np.asarray(qpos_seq, dtype=np.float64)
        yaw = np.unwrap(yaw_of(q[:, 3:7]))
        xy = _moving_average(q[:, :2], self.smooth_frames)
        lookat = np.column_stack([xy, np.full(len(q), self.lookat_height)])
        return lookat, np.degrees(_moving_average(yaw, self.smooth_frames)) + self.azimuth_offset


def _moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average along axis 0, the ends padded with the edge values (no drop-off)."""
    x = np.asarray(x, dtype=np.float64)
    w = max(1, min(int(window), len(x)))
    if w == 1:
        return x.copy()
    lead, trail = (w - 1) // 2, w // 2
    padded = np.concatenate([np.repeat(x[:1], lead, axis=0), x, np.repeat(x[-1:], trail, axis=0)])
    c = np.cumsum(np.concatenate([np.zeros((1,) + x.shape[1:]), padded]), axis=0)
    return (c[w:] - c[:-w]) / w


def _camera_arg(model: "mujoco.MjModel", camera: "str | int | HeadingCamera") -> "str | int | HeadingCamera":
    import mujoco

    if isinstance(camera, HeadingCamera):
        return camera
    if isinstance(camera, str):
        if camera == HEADING_CAMERA:
            return HeadingCamera()
        if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera) < 0:
            names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
            raise ValueError(f"camera {camera!r} not in the model; cameras: {names} (or -1 for the free "
                             f"camera, or {HEADING_CAMERA!r} for a camera that follows the robot's heading)")
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


def _camera_poses(cam: "str | int | HeadingCamera", qpos_seq: np.ndarray) -> Any:
    """``camera_at(t)``: what `mujoco.Renderer.update_scene` gets as the camera for frame t."""
    if not isinstance(cam, HeadingCamera):
        return lambda t: cam
    import mujoco

    lookat, azimuth = cam.poses(qpos_seq)
    free = mujoco.MjvCamera()
    free.type = mujoco.mjtCamera.mjCAMERA_FREE
    free.distance, free.elevation = cam.distance, cam.elevation

    def camera_at(t: int) -> Any:
        free.lookat[:], free.azimuth = lookat[t], azimuth[t]
        return free

    return camera_at


def render_qpos_trajectory(
    model: "mujoco.MjModel",
    qpos_seq: np.ndarray,
    camera: "str | int | HeadingCamera" = "track",
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
        camera: camera name, index, -1 for the default free camera, or a `HeadingCamera` (the name
            ``"heading"`` gives the default one): the same view of the robot whatever its heading.
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
    camera_at = _camera_poses(cam, qpos_seq)
    try:
        for i, t in enumerate(idx):
            data.qpos[:] = qpos_seq[t]
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera=camera_at(t), scene_option=scene_option)
            renderer.render(out=frames[i])
    finally:
        renderer.close()
    return frames


def robot_masks(model: "mujoco.MjModel", qpos_seq: np.ndarray, camera: "str | int | HeadingCamera",
                width: int, height: int, every: int = 1) -> np.ndarray:
    """(n, height, width) bool: where the robot is in every ``every``-th frame of ``qpos_seq``.

    Renders MuJoCo's segmentation image: a pixel belongs to the robot when it shows a geom of a body
    other than the world (the floor).
    """
    import mujoco

    qpos_seq = np.asarray(qpos_seq, dtype=np.float64)
    cam = _camera_arg(model, camera)
    idx = np.arange(0, len(qpos_seq), max(int(every), 1))
    robot_geom = model.geom_bodyid != 0
    renderer = mujoco.Renderer(model, height=height, width=width)
    renderer.enable_segmentation_rendering()
    data = mujoco.MjData(model)
    camera_at = _camera_poses(cam, qpos_seq)
    masks = np.zeros((len(idx), height, width), dtype=bool)
    try:
        for i, t in enumerate(idx):
            data.qpos[:] = qpos_seq[t]
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera=camera_at(t))
            seg = renderer.render()
            ids, types = seg[..., 0], seg[..., 1]
            is_geom = (types == int(mujoco.mjtObj.mjOBJ_GEOM)) & (ids >= 0)
            masks[i][is_geom] = robot_geom[ids[is_geom]]
    finally:
        renderer.close()
    return masks


def frames_cutting_robot(model: "mujoco.MjModel", qpos_seq: np.ndarray, camera: "str | int | HeadingCamera",
                         width: int, height: int, every: int = 10) -> list[int]:
    """Indices of the frames (every ``every``-th of ``qpos_seq``) in which the robot touches the
    picture's border, i.e. is cut off (its head at the top, its feet at the bottom). An empty list
    means the whole robot is in every checked frame."""
    masks = robot_masks(model, qpos_seq, camera, width, height, every)
    touches = masks[:, 0].any(1) | masks[:, -1].any(1) | masks[:, :, 0].any(1) | masks[:, :, -1].any(1)
    return [int(i) * max(int(every), 1) for i in np.nonzero(touches)[0]]


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


def _font(size: int = 11) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no size argument
        return ImageFont.load_default()


def _per_frame(text: str | Sequence[str], n: int) -> list[str]:
    texts = [text] * n if isinstance(text, str) else list(text)
    if len(texts) != n:
        raise ValueError(f"{len(texts)} texts for {n} frames")
    return texts


#: Height (pixels) of a caption bar: one line of the 11 px default font with its margins.
CAPTION_HEIGHT = 16
CAPTION_BACKGROUND = 24


def caption(frames: np.ndarray, text: str | Sequence[str], where: str = "top") -> np.ndarray:
    """``frames`` with a dark bar of `CAPTION_HEIGHT` pixels added above (``where='top'``) or below
    (``'bottom'``) the picture, holding ``text`` (one string, or one per frame): a label that can never
    cover the robot."""
    if where not in ("top", "bottom"):
        raise ValueError(f"where must be 'top' or 'bottom', got {where!r}")
    frames = _check_frames(frames)
    texts = _per_frame(text, len(frames))
    T, _, W, _ = frames.shape
    bars = np.full((T, CAPTION_HEIGHT, W, 3), CAPTION_BACKGROUND, dtype=np.uint8)
    cache: dict[str, np.ndarray] = {}   # a label is usually the same for many frames: draw it once
    for i, t in enumerate(texts):
        if t not in cache:
            cache[t] = _draw_caption(bars[i], t)
        bars[i] = cache[t]
    parts = [bars, frames] if where == "top" else [frames, bars]
    return np.concatenate(parts, axis=1)


def _draw_caption(bar: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    img = Image.fromarray(bar)
    ImageDraw.Draw(img).text((4, 2), text, fill=(255, 255, 255), font=_font())
    return np.asarray(img)


def overlay_command(
    frames: np.ndarray,
    commands: np.ndarray,
    max_abs: Sequence[float] = (1.0, 1.0, 1.0),
    labels: Sequence[str] = ("vx", "vy", "wz"),
) -> np.ndarray:
    """The velocity command of each frame in a strip **below** the picture (never over the robot):
    a text line and one small horizontal bar per component.

    Args:
        frames: (T, H, W, 3) uint8.
        commands: (T, C) command per frame (e.g. vx, vy, yaw rate) or (C,) for a constant command.
        max_abs: the value that fills half a bar, per component.
        labels: component names for the text line.

    Returns:
        (T, H + strip, W, 3) frames: the picture unchanged on top, the command strip under it.
    """
    frames = _check_frames(frames)
    cmds = np.asarray(commands, dtype=np.float64)
    if cmds.ndim == 1:
        cmds = np.broadcast_to(cmds, (len(frames), cmds.shape[0]))
    if cmds.shape[0] != len(frames) or cmds.shape[1] != len(labels) or len(max_abs) != len(labels):
        raise ValueError(f"commands {cmds.shape} / max_abs {len(max_abs)} / labels {len(labels)} do not match {len(frames)} frames")
    text = ["  ".join(f"{lab}={v:+.2f}" for lab, v in zip(labels, row)) for row in cmds]
    out = caption(frames, text, where="bottom")
    T, H, W, _ = frames.shape
    bar_h, x0 = 4, 4
    bar_w = max(W // 5, 10)
    bars = np.full((T, cmds.shape[1] * (bar_h + 3) + 2, W, 3), CAPTION_BACKGROUND, dtype=np.uint8)
    for c in range(cmds.shape[1]):
        y0 = c * (bar_h + 3) + 1
        mid = x0 + bar_w // 2
        bars[:, y0 : y0 + bar_h, x0 : x0 + bar_w] = 60  # bar background
        frac = np.clip(cmds[:, c] / max_abs[c], -1.0, 1.0)
        for t in range(T):
            end = mid + int(round(frac[t] * (bar_w // 2)))
            if end > mid:
                bars[t, y0 : y0 + bar_h, mid + 1 : end + 1] = (40, 200, 40)  # positive: green, rightwards
            elif end < mid:
                bars[t, y0 : y0 + bar_h, end:mid] = (220, 60, 40)  # negative: red, leftwards
        bars[:, y0 : y0 + bar_h, mid] = 255  # zero mark, drawn last so it stays visible
    return np.concatenate([out, bars], axis=1)


def side_by_side(
    frames_a: np.ndarray,
    frames_b: np.ndarray,
    labels: Sequence[str] | None = None,
    gap: int = 4,
) -> np.ndarray:
    """Two clips next to each other (same length T; a shorter height is padded with black).

    ``labels`` (two strings) go in a `caption` bar above each half, outside the pictures.
    """
    a, b = _check_frames(frames_a, "frames_a"), _check_frames(frames_b, "frames_b")
    if len(a) != len(b):
        raise ValueError(f"clips differ in length ({len(a)} vs {len(b)} frames); trim or resample one first")
    if labels is not None:
        if len(labels) != 2:
            raise ValueError(f"labels must be two strings, got {labels!r}")
        a, b = caption(a, labels[0]), caption(b, labels[1])
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


#: A joint limit is drawn in a panel only when the trace comes this close to it (rad): a limit far from
#: the motion would only stretch the axis and squash the trace.
LIMIT_NEAR = 0.35


def plot_joint_traces(
    t: np.ndarray,
    joint_pos: np.ndarray,
    joint_names: Sequence[str],
    ranges: np.ndarray | Mapping[str, tuple[float, float]] | None = None,
    ncols: int = 3,
    label: str | None = None,
    fig: "Figure | None" = None,
    title: str | None = None,
    near: float = LIMIT_NEAR,
) -> "Figure":
    """One small axis per joint: angle [rad] vs time [s]; a joint limit the trace comes within
    ``near`` of is drawn (dashed, the side beyond it shaded) with its margin in degrees, and samples
    beyond a limit are marked red.

    Args:
        t: (T,) time in seconds.
        joint_pos: (T, J) joint angles (rad), columns in the order of ``joint_names``.
        joint_names: J names (titles; also the keys into a ``ranges`` dict).
        ranges: (J, 2) limits in the same order, or ``{name: (lo, hi)}`` (missing names: no limits).
        label: legend label of this trace (a figure legend); with ``fig`` from an earlier call, traces
            overlay, each call drawing in the next line style so that coinciding traces stay visible.
        fig: draw into this figure (it must have one axis per joint) instead of a new one.
        title: figure title (name the clip), laid out so it never overlaps a panel title.
        near: draw a limit only when the trace comes within this distance of it (rad).
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
    if fig is None:
        fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.2 * rows + 0.5), sharex=True,
                                 squeeze=False, layout="constrained")
        for ax in axes.flat[len(names):]:
            fig.delaxes(ax)
        fig.supxlabel("time [s]", fontsize=9)
        fig.supylabel("joint angle [rad]", fontsize=9)
    elif len(fig.axes) != len(names):
        raise ValueError(f"fig has {len(fig.axes)} axes, expected one per joint ({len(names)})")
    style = LINE_STYLES[_traces_drawn(fig) % len(LINE_STYLES)]
    for j, (ax, name) in enumerate(zip(fig.axes, names)):
        ax.plot(t, q[:, j], lw=1.0, ls=style, label=label if j == 0 else None, gid="trace")
        lim = lims[j]
        if lim is not None:
            for bound, side in ((lim[0], -1), (lim[1], +1)):
                gap = float(np.min(side * (bound - q[:, j])))   # distance inside the limit (<0: beyond)
                if gap < near:
                    ax.axhline(bound, color="firebrick", ls="--", lw=0.8, gid="limit")
                    ax.axhspan(bound, bound + side * 10.0, color="firebrick", alpha=0.08, lw=0, zorder=0)
                    ax.text(0.01, 0.97 if side > 0 else 0.03, f"{'max' if side > 0 else 'min'} "
                            f"limit, margin {np.degrees(gap):.1f}°", transform=ax.transAxes, fontsize=6,
                            va="top" if side > 0 else "bottom", color="firebrick")
            out = (q[:, j] < lim[0]) | (q[:, j] > lim[1])
            if out.any():
                ax.plot(t[out], q[out, j], ".", ms=3, color="red", label="beyond the limit" if j == 0 else None)
        _fit_ylim(ax)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    if title is not None:
        fig.suptitle(title, fontsize=10)
    if label is not None:
        for old in fig.legends:
            old.remove()
        fig.legend(*fig.axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=7)
    return fig


#: Line styles that successive overlaid traces cycle through, so a trace lying exactly on another
#: stays visible.
LINE_STYLES = ("-", "--", ":", "-.")


def _fit_ylim(ax: Any) -> None:
    """y range = every trace and drawn limit of the panel, padded (the shaded spans do not count)."""
    ys = [np.asarray(ln.get_ydata(), np.float64) for ln in ax.get_lines() if ln.get_gid() in ("trace", "limit")]
    lo, hi = min(float(np.nanmin(y)) for y in ys), max(float(np.nanmax(y)) for y in ys)
    pad = 0.2 * max(hi - lo, 0.05)
    ax.set_ylim(lo - pad, hi + pad)


def _traces_drawn(fig: "Figure") -> int:
    return sum(1 for ln in fig.axes[0].get_lines() if ln.get_gid() == "trace")


def plot_contacts(
    t: np.ndarray,
    contacts: Mapping[str, np.ndarray],
    names: Sequence[str] | None = None,
    title: str | None = None,
) -> "Figure":
    """Contact timelines as stacked raster bars: per pad (or foot), one bar row per source.

    Where several sources (e.g. an estimate and the simulator's forces) say "in contact", bars of the
    same group line up, so agreement reads at a glance; each group's row labels say the share of
    samples in which every other source agrees with the first.

    Args:
        t: (T,) time in seconds (equally spaced).
        contacts: ``{source: (T, K) bool or 0/1}``: in contact or not (threshold estimates first).
        names: the K column names (default: ``robot.FOOT_GEOMS``, the one declaration of the pad
            order; imported here, not at module level, because importing viz must not import mujoco).
        title: figure title (name the clip).
    """
    if names is None:
        from wildamp.robot import FOOT_GEOMS as names
    import matplotlib.pyplot as plt

    t = np.asarray(t, dtype=np.float64)
    if not contacts:
        raise ValueError("contacts is empty: pass at least one source")
    flags = {}
    for src, c in contacts.items():
        c = np.asarray(c)
        if c.shape != (t.shape[0], len(names)):
            raise ValueError(f"contacts[{src!r}] has shape {c.shape}, expected (T={t.shape[0]}, {len(names)})")
        if c.dtype != bool and not np.isin(c, (0, 1)).all():
            raise ValueError(f"contacts[{src!r}] is not 0/1: threshold continuous estimates before plotting")
        flags[src] = c.astype(bool)
    dt = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
    sources = list(flags)
    first = flags[sources[0]]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) * (len(sources) + 0.6) + 1.0), layout="constrained")
    ticks, labels = [], []
    y = 0.0
    for k, name in enumerate(names):
        for i, src in enumerate(sources):
            runs = _runs(flags[src][:, k])
            ax.broken_barh([(t[a], (b - a) * dt) for a, b in runs], (y, 0.8), color=f"C{i}", lw=0)
            if not runs:   # an empty row would read as a gap in the figure
                ax.text(t[0], y + 0.4, "  never in contact", va="center", fontsize=7, color="0.4")
            agree = "" if i == 0 else f" ({100 * (flags[src][:, k] == first[:, k]).mean():.0f}% agree)"
            ticks.append(y + 0.4)
            labels.append(f"{name}: {src}{agree}")
            y += 1.0
        y += 0.6
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set_ylim(y - 0.4, -0.2)   # first pad at the top
    ax.set_xlim(t[0], t[-1] + dt)
    ax.set_xlabel("time [s]")
    ax.set_ylabel("bar = in contact", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    if title is not None:
        ax.set_title(title, fontsize=9)
    return fig


def _runs(on: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the True runs of a 1-d bool array."""
    edges = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
    return list(zip(np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]))


def cycle_averaged_velocity(root_pos: np.ndarray, root_quat: np.ndarray, fps: float,
                            cycle_seconds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward and lateral root speed from the displacement over one whole gait cycle.

    The instantaneous horizontal speed of a rocking gait is dominated by its side-to-side sway; over
    a whole cycle the sway cancels. ``v(t) = (p(t + C/2) − p(t − C/2)) / C`` for a cycle of C seconds,
    split into the heading frame of that window (forward = along the root's mean heading over the
    cycle, lateral = to its left).
    Where the window does not fit inside the clip the value is NaN, never a padded guess.

    Args:
        root_pos: (T, 3) root positions (m); root_quat: (T, 4) wxyz; fps: frame rate (Hz);
        cycle_seconds: the gait cycle (two steps), e.g. ``2 * meta['params']['step_period']``.

    Returns:
        (t, forward, lateral): (T,) times (s) and speeds (m/s).
    """
    from wildamp.quat import yaw_of

    p = np.asarray(root_pos, dtype=np.float64)
    T = len(p)
    t = np.arange(T) / fps
    half = 0.5 * cycle_seconds
    forward = np.full(T, np.nan)
    lateral = np.full(T, np.nan)
    inside = (t - half >= 0) & (t + half <= t[-1] + 1e-9)
    if inside.any() and cycle_seconds > 0:
        # Positions at t ± C/2 interpolated between frames: a window a fraction of a frame off the
        # cycle leaves a ripple of the sway in the average.
        ends = [np.column_stack([np.interp(t[inside] + sign * half, t, p[:, k]) for k in range(2)])
                for sign in (-1, +1)]
        d = (ends[1] - ends[0]) / cycle_seconds
        # The heading averaged over the window (circular mean): the root's yaw wobbles within a cycle,
        # and turning the displacement by the yaw of one instant would leak forward speed into lateral.
        yaw = yaw_of(np.asarray(root_quat, dtype=np.float64))
        n = max(int(round(half * fps)), 0)
        cs = np.cumsum(np.concatenate([[0.0], np.cos(yaw)]))
        sn = np.cumsum(np.concatenate([[0.0], np.sin(yaw)]))
        idx = np.nonzero(inside)[0]
        lo, hi = np.clip(idx - n, 0, T - 1), np.clip(idx + n, 0, T - 1) + 1
        heading = np.arctan2(sn[hi] - sn[lo], cs[hi] - cs[lo])
        c, s = np.cos(heading), np.sin(heading)
        forward[inside] = c * d[:, 0] + s * d[:, 1]
        lateral[inside] = -s * d[:, 0] + c * d[:, 1]
    return t, forward, lateral


def plot_clip_speeds(speeds: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                     nominal: Mapping[str, tuple[float, float]], title: str | None = None) -> "Figure":
    """Forward and lateral speed per clip, side by side, against each clip's nominal speeds.

    Args:
        speeds: ``{clip name: (t, forward, lateral)}`` as `cycle_averaged_velocity` returns them.
        nominal: ``{clip name: (forward, lateral)}`` nominal speeds (m/s), drawn dotted in the clip's
            colour; a nominal 0 is drawn once, as the grey zero line, so no two nominal lines coincide.
        title: figure title.
    """
    import matplotlib.pyplot as plt

    missing = sorted(set(speeds) - set(nominal))
    if missing:
        raise KeyError(f"no nominal speed for clips {missing}")
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), sharex=True, layout="constrained")
    for ax, what in zip(axes, ("forward", "lateral")):
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.set_title(f"{what} speed, averaged over one gait cycle", fontsize=9)
        ax.set_xlabel("time [s]")
        ax.set_ylabel(f"{what} speed [m/s]")
        ax.grid(alpha=0.3)
    for i, (name, (t, fwd, lat)) in enumerate(speeds.items()):
        color, ls = f"C{i % 10}", LINE_STYLES[(i // 2) % len(LINE_STYLES)]
        for k, (ax, v) in enumerate(zip(axes, (fwd, lat))):
            ax.plot(t, v, color=color, ls=ls, lw=1.3, label=name)
            target = float(nominal[name][k])
            if target != 0.0:
                ax.axhline(target, color=color, ls=":", lw=0.9)
    axes[1].legend(fontsize=7, ncol=1, loc="center left", bbox_to_anchor=(1.01, 0.5))
    if title is not None:
        fig.suptitle(title, fontsize=10)
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
