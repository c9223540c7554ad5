"""Tests for wildamp.viz: headless rendering, video I/O, overlays, plots, GL backend selection.

Rendering runs in a fresh interpreter: MuJoCo fixes its GL backend at first import, and in a full
test session another test file may already have imported mujoco without MUJOCO_GL.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mediapy  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from wildamp import viz
from wildamp.robot import FOOT_GEOMS  # noqa: E402

BOX_XML = """
<mujoco>
  <visual><global offwidth="160" offheight="120"/></visual>
  <worldbody>
    <light pos="0 0 3" dir="0 0 -1"/>
    <geom type="plane" size="3 3 0.1" rgba="0.7 0.7 0.7 1"/>
    <camera name="track" pos="0 -2.5 0.8" xyaxes="1 0 0 0 0.3 1"/>
    <body name="box" pos="0 0 0.2">
      <freejoint/>
      <geom type="box" size="0.12 0.12 0.12" rgba="1 0 0 1"/>
    </body>
  </worldbody>
</mujoco>
"""

RENDER_SCRIPT = """
import sys
from wildamp import viz
viz.ensure_gl_backend()
import mujoco
import numpy as np
model = mujoco.MjModel.from_xml_string(sys.argv[1])
try:
    r = mujoco.Renderer(model, height=8, width=8); r.close()
except Exception as e:  # the GL backend, not wildamp, is missing
    print("GL_UNAVAILABLE", type(e).__name__, e)
    sys.exit(77)
T = 5
qpos = np.tile(model.qpos0, (T, 1))
qpos[:, 0] = np.linspace(-0.6, 0.6, T)  # slide the box along +x (to the right in the image)
frames = viz.render_qpos_trajectory(model, qpos, camera="track", width=160, height=120)
np.save(sys.argv[2], frames)
resampled = viz.render_qpos_trajectory(model, qpos, camera="track", width=160, height=120, fps=10, source_fps=20)
assert resampled.shape[0] == 3, resampled.shape
np.testing.assert_array_equal(resampled[1], frames[2])
try:
    viz.render_qpos_trajectory(model, qpos, camera="nope", width=160, height=120)
except ValueError as e:
    assert "track" in str(e), e
else:
    raise AssertionError("unknown camera accepted")
print("RENDER_OK")
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("render") / "frames.npy"
    proc = subprocess.run(
        [sys.executable, "-c", RENDER_SCRIPT, BOX_XML, str(out)], capture_output=True, text=True, timeout=120
    )
    if proc.returncode == 77:
        pytest.skip(f"no working MuJoCo GL backend here ({proc.stdout.strip()}); {viz.GL_PACKAGES_HINT}")
    assert proc.returncode == 0 and "RENDER_OK" in proc.stdout, proc.stdout + proc.stderr
    return np.load(out)


def red_centroid_x(frame: np.ndarray) -> float:
    f = frame.astype(int)
    red = (f[..., 0] > 120) & (f[..., 1] < 60) & (f[..., 2] < 60)
    assert red.sum() > 20, "box not visible"
    return float(np.nonzero(red)[1].mean())


def test_render_frames_follow_the_trajectory(rendered):
    assert rendered.shape == (5, 120, 160, 3) and rendered.dtype == np.uint8
    assert not all(np.array_equal(rendered[0], f) for f in rendered[1:])
    xs = [red_centroid_x(f) for f in rendered]
    assert np.all(np.diff(xs) > 2), xs  # the box moves right in the image as qpos x grows


def test_write_video_roundtrip(rendered, tmp_path):
    path = viz.write_video(tmp_path / "clip.mp4", rendered, fps=10)
    back = mediapy.read_video(path)
    assert back.shape == rendered.shape
    assert np.abs(back.astype(int) - rendered.astype(int)).mean() < 12  # lossy, but the same picture


def test_write_video_validates_frames(tmp_path):
    with pytest.raises(TypeError, match="uint8"):
        viz.write_video(tmp_path / "x.mp4", np.zeros((2, 8, 8, 3), np.float32), fps=10)
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        viz.write_video(tmp_path / "x.mp4", np.zeros((2, 8, 8), np.uint8), fps=10)


def test_frame_indices_resample_nearest_in_time():
    assert viz._frame_indices(5, None, None).tolist() == [0, 1, 2, 3, 4]
    assert viz._frame_indices(7, 10, 30).tolist() == [0, 3, 6]
    up = viz._frame_indices(3, 50, 25)  # upsampling repeats frames, nearest in time
    assert len(up) == 5 and up[0] == 0 and up[-1] == 2
    assert np.all(np.abs(up / 25 - np.arange(5) / 50) <= 0.5 / 25 + 1e-12)
    with pytest.raises(ValueError, match="source_fps"):
        viz._frame_indices(5, 10, None)


def test_side_by_side_and_labels():
    a = np.full((3, 20, 30, 3), 10, np.uint8)
    b = np.full((3, 16, 25, 3), 200, np.uint8)
    sbs = viz.side_by_side(a, b)
    assert sbs.shape == (3, 20, 30 + 4 + 25, 3)
    np.testing.assert_array_equal(sbs[:, :, :30], a)
    np.testing.assert_array_equal(sbs[:, :16, 34:], b)
    assert (sbs[:, 16:, 34:] == 0).all()  # shorter clip padded with black
    labelled = viz.side_by_side(a, b, labels=("ref", "policy"))
    assert not np.array_equal(labelled[:, :, :30], a)  # text drawn on the left half
    with pytest.raises(ValueError, match="length"):
        viz.side_by_side(a, b[:2])


def test_overlay_command_draws_signed_bars():
    frames = np.full((2, 60, 100, 3), 128, np.uint8)
    out = viz.overlay_command(frames, np.array([[0.5, 0.0, 0.0], [-0.5, 0.0, 0.0]]))
    assert out.shape == frames.shape and not np.array_equal(out, frames)
    np.testing.assert_array_equal(frames, 128)  # input untouched
    bottom = out[:, 30:].astype(int)  # bars sit at the bottom; the text line is at the top
    white = (bottom == 255).all(-1)
    mid = np.median(np.nonzero(white[0])[1])  # the bars' zero mark
    green = (bottom[..., 1] > 150) & (bottom[..., 0] < 100)
    red = (bottom[..., 0] > 150) & (bottom[..., 1] < 100)
    assert green[0].any() and np.nonzero(green[0])[1].min() >= mid  # +vx: bar right of zero
    assert red[1].any() and np.nonzero(red[1])[1].max() <= mid  # -vx: bar left of zero
    assert not red[0].any() and not green[1].any()


def test_plots_have_expected_axes():
    t = np.linspace(0, 1, 50)
    names = ["a", "b", "c", "d", "e"]
    q = np.stack([np.sin(t * k) for k in range(1, 6)], axis=1) * 2
    fig = viz.plot_joint_traces(t, q, names, ranges={"a": (-1, 1), "c": (0, 0.5)})
    assert len(fig.axes) == 5 and [ax.get_title() for ax in fig.axes] == names
    n_lines = len(fig.axes[0].lines)
    assert n_lines >= 4  # trace + 2 limit lines + out-of-range markers
    fig = viz.plot_joint_traces(t, q * 0.1, names, fig=fig, label="second")
    assert len(fig.axes[0].lines) == n_lines + 1  # overlaid, same axes
    with pytest.raises(KeyError, match="zz"):
        viz.plot_joint_traces(t, q, names, ranges={"zz": (0, 1)})
    with pytest.raises(ValueError):
        viz.plot_joint_traces(t, q[:, :4], names)

    c = {"force": np.random.default_rng(0).random((50, 4)) > 0.5, "height": np.zeros((50, 4))}
    fig = viz.plot_contacts(t, c)
    assert len(fig.axes) == 4
    assert [ax.get_ylabel() for ax in fig.axes] == list(FOOT_GEOMS)
    assert all(len(ax.lines) == 2 for ax in fig.axes)  # one line per estimator on every row
    with pytest.raises(ValueError, match="height"):
        viz.plot_contacts(t, {"height": np.zeros((50, 3))})

    fig = viz.plot_height(t, 0.45 + 0.01 * np.sin(t), fall_height=0.2, reference=0.469)
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 3
    plt.close("all")


def test_ensure_gl_backend(monkeypatch):
    monkeypatch.setattr(viz.platform, "system", lambda: "Linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.delitem(sys.modules, "mujoco", raising=False)
    assert viz.ensure_gl_backend() == "egl"
    assert viz.os.environ["MUJOCO_GL"] == "egl"
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    assert viz.ensure_gl_backend() == "osmesa"  # an explicit choice is kept
    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.setenv("DISPLAY", ":0")
    assert viz.ensure_gl_backend() == ""  # with a display mujoco's default is fine
    assert "MUJOCO_GL" not in viz.os.environ
    # Too late: mujoco already imported with its default backend and there is no display.
    monkeypatch.delenv("DISPLAY")
    monkeypatch.setitem(sys.modules, "mujoco", types.ModuleType("mujoco"))
    monkeypatch.setattr(viz, "_loaded_backend", lambda: "")
    with pytest.raises(RuntimeError, match="before anything imports mujoco"):
        viz.ensure_gl_backend()
    monkeypatch.setattr(viz, "_loaded_backend", lambda: "egl")
    assert viz.ensure_gl_backend() == "egl"
