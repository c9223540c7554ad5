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
from wildamp.figcheck import figure_problems  # noqa: E402
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


def test_side_by_side_and_caption_labels():
    a = np.full((3, 20, 30, 3), 10, np.uint8)
    b = np.full((3, 16, 25, 3), 200, np.uint8)
    sbs = viz.side_by_side(a, b)
    assert sbs.shape == (3, 20, 30 + 4 + 25, 3)
    np.testing.assert_array_equal(sbs[:, :, :30], a)
    np.testing.assert_array_equal(sbs[:, :16, 34:], b)
    assert (sbs[:, 16:, 34:] == 0).all()  # shorter clip padded with black
    labelled = viz.side_by_side(a, b, labels=("ref", "policy"))
    cap = viz.CAPTION_HEIGHT
    assert labelled.shape == (3, 20 + cap, 30 + 4 + 25, 3)
    # The pictures are untouched below their caption bars; the labels are drawn in the bars.
    np.testing.assert_array_equal(labelled[:, cap:, :30], a)
    np.testing.assert_array_equal(labelled[:, cap:cap + 16, 34:], b)
    assert (labelled[:, :cap, :30] > 200).any() and (labelled[:, :cap, 34:] > 200).any()
    with pytest.raises(ValueError, match="length"):
        viz.side_by_side(a, b[:2])


def test_caption_adds_a_bar_and_never_draws_on_the_picture():
    frames = np.full((2, 30, 80, 3), 77, np.uint8)
    top = viz.caption(frames, ["first", "second"])
    bottom = viz.caption(frames, "same", where="bottom")
    cap = viz.CAPTION_HEIGHT
    assert top.shape == bottom.shape == (2, 30 + cap, 80, 3)
    np.testing.assert_array_equal(top[:, cap:], frames)
    np.testing.assert_array_equal(bottom[:, :30], frames)
    assert (top[:, :cap] == 255).any() and not np.array_equal(top[0, :cap], top[1, :cap])  # one text per frame
    with pytest.raises(ValueError, match="3 texts for 2 frames"):
        viz.caption(frames, ["a", "b", "c"])
    with pytest.raises(ValueError, match="where"):
        viz.caption(frames, "x", where="left")


def test_overlay_command_draws_signed_bars_below_the_picture():
    frames = np.full((2, 60, 100, 3), 128, np.uint8)
    out = viz.overlay_command(frames, np.array([[0.5, 0.0, 0.0], [-0.5, 0.0, 0.0]]))
    assert out.shape[0] == 2 and out.shape[1] > 60 and out.shape[2:] == (100, 3)
    np.testing.assert_array_equal(out[:, :60], frames)  # the picture itself is untouched
    np.testing.assert_array_equal(frames, 128)          # input untouched
    strip = out[:, 60:].astype(int)
    bars = strip[:, viz.CAPTION_HEIGHT:]                 # under the text line
    mid = np.median(np.nonzero((bars == 255).all(-1)[0])[1])  # the bars' zero mark
    green = (bars[..., 1] > 150) & (bars[..., 0] < 100)
    red = (bars[..., 0] > 150) & (bars[..., 1] < 100)
    assert (strip[:, : viz.CAPTION_HEIGHT] > 200).all(-1).any()   # the command as text
    assert green[0].any() and np.nonzero(green[0])[1].min() >= mid  # +vx: bar right of zero
    assert red[1].any() and np.nonzero(red[1])[1].max() <= mid  # -vx: bar left of zero
    assert not red[0].any() and not green[1].any()


def test_joint_traces_draw_only_the_limits_the_motion_comes_near():
    t = np.linspace(0, 1, 50)
    names = ["near", "far", "beyond"]
    q = np.column_stack([0.8 * np.sin(6 * t), 0.1 * np.sin(6 * t), 1.2 * np.sin(6 * t)])
    ranges = {"near": (-1.0, 1.0), "far": (-1.5, 1.5), "beyond": (-1.0, 1.0)}
    fig = viz.plot_joint_traces(t, q, names, ranges=ranges, title="clip x")
    limits = [[ln.get_ydata()[0] for ln in ax.get_lines() if ln.get_gid() == "limit"] for ax in fig.axes]
    assert limits == [[-1.0, 1.0], [], [-1.0, 1.0]]   # 0.2 rad from "near"'s limits, 1.4 from "far"'s
    lo, hi = fig.axes[1].get_ylim()
    assert hi - lo < 0.5                               # the far limits do not squash the trace
    red = [ln for ln in fig.axes[2].get_lines() if ln.get_marker() == "."]
    assert red and np.all(np.abs(red[0].get_ydata()) > 1.0)   # samples beyond the limits marked
    assert fig.get_suptitle() == "clip x" and fig._supylabel.get_text() == "joint angle [rad]"
    assert figure_problems(fig) == []
    # Overlaid traces: a figure legend, and each call in another line style (one on top of another shows).
    fig = viz.plot_joint_traces(t, q, names, label="first")
    fig = viz.plot_joint_traces(t, q, names, fig=fig, label="second")
    traces = [ln for ln in fig.axes[0].get_lines() if ln.get_gid() == "trace"]
    assert len(traces) == 2 and traces[0].get_linestyle() != traces[1].get_linestyle()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["first", "second"]
    assert figure_problems(fig) == []
    with pytest.raises(KeyError, match="zz"):
        viz.plot_joint_traces(t, q, names, ranges={"zz": (0, 1)})
    with pytest.raises(ValueError):
        viz.plot_joint_traces(t, q[:, :2], names)
    plt.close("all")


def test_contacts_are_raster_bars_per_pad_and_source():
    t = np.arange(50) * 0.02
    truth = np.zeros((50, 4), bool)
    truth[10:30, 0] = True
    est = truth.copy()
    est[10:15, 0] = False                              # the estimate misses 5 of 50 samples on pad 0
    fig = viz.plot_contacts(t, {"physics": truth, "estimate": est.astype(float)}, title="clip y")
    ax = fig.axes[0]
    labels = [lab.get_text() for lab in ax.get_yticklabels()]
    assert labels[:2] == [f"{FOOT_GEOMS[0]}: physics", f"{FOOT_GEOMS[0]}: estimate (90% agree)"]
    assert len(labels) == 2 * len(FOOT_GEOMS) and labels[3].endswith("(100% agree)")
    bars = [c.get_paths() for c in ax.collections]
    assert len(bars[0]) == 1 and len(bars[1]) == 1     # one contact run each on pad 0
    x0 = bars[1][0].get_extents().x0
    assert x0 == pytest.approx(t[15])                  # the estimate's bar starts where it does
    assert sum("never in contact" in x.get_text() for x in ax.texts) == 2 * (len(FOOT_GEOMS) - 1)  # empty rows say so
    assert figure_problems(fig) == []
    with pytest.raises(ValueError, match="0/1"):
        viz.plot_contacts(t, {"force": np.random.default_rng(0).random((50, 4))})
    with pytest.raises(ValueError, match="shape"):
        viz.plot_contacts(t, {"height": np.zeros((50, 3), bool)})
    fig = viz.plot_height(t, 0.45 + 0.01 * np.sin(t), fall_height=0.2, reference=0.469)
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 3
    plt.close("all")


def _walk(T=400, fps=50.0, v=(0.2, 0.0), cycle=0.55, yaw0=0.7, sway=0.03, wobble=0.05):
    """A root walking at v (heading frame) with a side-to-side sway and a yaw wobble of one cycle."""
    from wildamp.quat import quat_from_yaw

    t = np.arange(T) / fps
    phase = 2 * np.pi * t / cycle
    local = np.column_stack([v[0] * t, v[1] * t + sway * np.sin(phase)])
    c, s = np.cos(yaw0), np.sin(yaw0)
    pos = np.column_stack([c * local[:, 0] - s * local[:, 1], s * local[:, 0] + c * local[:, 1], np.full(T, 0.45)])
    return pos, quat_from_yaw(yaw0 + wobble * np.sin(phase))


def test_cycle_averaged_velocity_cancels_the_sway_and_splits_forward_from_lateral():
    pos, q = _walk()
    t, fwd, lat = viz.cycle_averaged_velocity(pos, q, 50.0, 0.55)
    inside = np.isfinite(fwd)
    # Half a cycle at each end has no whole cycle around it: NaN, never a padded value.
    assert not inside[:13].any() and not inside[-13:].any() and inside[14:-14].all()
    np.testing.assert_allclose(fwd[inside], 0.2, atol=2e-3)
    np.testing.assert_allclose(lat[inside], 0.0, atol=2e-3)
    inst = np.linalg.norm(np.gradient(pos[:, :2], 0.02, axis=0), axis=1)
    assert inst.mean() > 0.25                          # the sway dominates the instantaneous speed
    pos, q = _walk(v=(0.0, -0.1))                      # sideways to the right
    _, fwd, lat = viz.cycle_averaged_velocity(pos, q, 50.0, 0.55)
    np.testing.assert_allclose(fwd[np.isfinite(fwd)], 0.0, atol=2e-3)
    np.testing.assert_allclose(lat[np.isfinite(lat)], -0.1, atol=2e-3)
    _, fwd, _ = viz.cycle_averaged_velocity(pos[:20], q[:20], 50.0, 0.55)
    assert np.isnan(fwd).all()                         # shorter than a cycle: nothing to say


def test_clip_speeds_figure_draws_each_nonzero_nominal_once():
    pos, q = _walk()
    series = {"a": viz.cycle_averaged_velocity(pos, q, 50.0, 0.55)}
    pos2, q2 = _walk(v=(0.0, 0.1))
    series["side"] = viz.cycle_averaged_velocity(pos2, q2, 50.0, 0.55)
    fig = viz.plot_clip_speeds(series, {"a": (0.2, 0.0), "side": (0.0, 0.1)}, title="t")
    fwd_ax, lat_ax = fig.axes
    levels = lambda ax: sorted(ln.get_ydata()[0] for ln in ax.get_lines() if len(ln.get_xdata()) == 2)  # noqa: E731
    assert levels(fwd_ax) == [0.0, 0.2] and levels(lat_ax) == [0.0, 0.1]   # one zero line per panel
    assert figure_problems(fig) == []
    with pytest.raises(KeyError, match="side"):
        viz.plot_clip_speeds(series, {"a": (0.2, 0.0)})
    plt.close("all")


def test_heading_camera_follows_position_and_heading():
    pos, q = _walk(T=200, yaw0=1.0, wobble=0.0)
    qpos = np.column_stack([pos, q])
    cam = viz.HeadingCamera(azimuth_offset=-90.0, smooth_frames=5)
    lookat, azimuth = cam.poses(qpos)
    np.testing.assert_allclose(azimuth, np.degrees(1.0) - 90.0, atol=1e-9)
    assert np.all(lookat[:, 2] == cam.lookat_height)
    np.testing.assert_allclose(lookat[100, :2], pos[98:103, :2].mean(axis=0), atol=1e-9)
    # Edges average over edge-padded values: the first point stays near the start, no drop-off to 0.
    assert np.linalg.norm(lookat[0, :2] - pos[0, :2]) < 0.01


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
