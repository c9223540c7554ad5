"""wildamp.notebook: runtime setup (non-Colab branch), live plots, metric checks, eval table, videos.

Fast: no MJX, no training. The video helpers render a few frames with MuJoCo (skipped when this
machine has no OpenGL context).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from wildamp import notebook as NB
from wildamp import paths
from wildamp import trainplots as TP
from wildamp.viz import CAPTION_HEIGHT as CAPTION
from wildamp.amp.monitor import HEALTHY_DISC_ACC as HEALTHY


# --------------------------------------------------------------------------------------- runtime


def test_add_xla_flags_appends_once_and_keeps_user_values():
    assert NB.add_xla_flags("", ["--a=1"]) == "--a=1"
    assert NB.add_xla_flags("--x=2", ["--a=1"]) == "--x=2 --a=1"
    # A user's own value of the same flag wins; repeating the call adds nothing.
    assert NB.add_xla_flags("--a=0 --x=2", ["--a=1"]) == "--a=0 --x=2"
    once = NB.add_xla_flags("--x=2", NB.GPU_XLA_FLAGS)
    assert NB.add_xla_flags(once, NB.GPU_XLA_FLAGS) == once


def test_gpu_possible():
    # An explicit JAX_PLATFORMS decides, on Colab too.
    assert NB.gpu_possible(True, "cpu") is False and NB.gpu_possible(False, "cpu") is False
    assert NB.gpu_possible(False, "cuda") is True and NB.gpu_possible(False, "cpu,cuda") is True
    assert NB.gpu_possible(True, None) is True and NB.gpu_possible(True, "") is True


def test_egl_vendor_file_written_only_when_missing(tmp_path):
    f = tmp_path / "glvnd" / "egl_vendor.d" / "10_nvidia.json"
    assert NB.write_egl_vendor_file(f) is True
    import json
    assert json.loads(f.read_text())["ICD"]["library_path"] == "libEGL_nvidia.so.0"
    f.write_text("mine")
    assert NB.write_egl_vendor_file(f) is False and f.read_text() == "mine"


def test_setup_runtime_local_branch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    vendor = tmp_path / "vendor.json"
    rt = NB.setup_runtime(colab=False, egl_vendor_file=vendor, compilation_cache=False)
    assert rt.in_colab is False and rt.backend == "cpu" and rt.devices
    assert Path.cwd() == paths.REPO_ROOT and rt.repo_root == paths.REPO_ROOT
    assert not vendor.exists(), "the NVIDIA vendor file is a Colab-only fix"
    # CPU only: XLA_FLAGS untouched (they are part of JAX's persistent-cache key).
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=1" == rt.xla_flags
    assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    # Headless Linux (the test machine) renders through EGL, which conftest selects.
    assert rt.mujoco_gl == os.environ.get("MUJOCO_GL", "").lower()
    assert "cpu" in str(rt)
    # Started outside the checkout it imports (tmp_path): the Runtime says whose code runs.
    assert rt.started_in == tmp_path and rt.foreign_checkout
    assert f"WARNING: this notebook started in {tmp_path}, outside {paths.REPO_ROOT}" in str(rt)
    monkeypatch.chdir(paths.REPO_ROOT / "notebooks")
    rt = NB.setup_runtime(colab=False, egl_vendor_file=vendor, compilation_cache=False)
    assert rt.started_in == paths.REPO_ROOT / "notebooks" and not rt.foreign_checkout and "WARNING" not in str(rt)


def test_setup_runtime_adds_gpu_flags_where_a_gpu_may_run(tmp_path, monkeypatch):
    monkeypatch.setattr(NB, "gpu_possible", lambda colab, platforms: True)
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    rt = NB.setup_runtime(colab=False, compilation_cache=False, chdir=False)
    assert rt.xla_flags.split() == ["--xla_force_host_platform_device_count=1", *NB.GPU_XLA_FLAGS]


def test_setup_runtime_colab_branch_without_gpu_requirement(tmp_path, monkeypatch):
    # What can run off Colab: the install (faked), the vendor file and MUJOCO_GL=egl (the GPU check is
    # tested below).
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    installed = []
    monkeypatch.setattr(NB, "pip_install_repo", lambda root: installed.append(root))
    vendor = tmp_path / "egl_vendor.d" / "10_nvidia.json"
    rt = NB.setup_runtime(colab=True, require_gpu=False, egl_vendor_file=vendor, compilation_cache=False,
                          chdir=False)
    assert rt.in_colab and vendor.exists() and os.environ["MUJOCO_GL"] == "egl"
    assert installed == [paths.REPO_ROOT]
    # Locally nothing is installed unless asked for.
    NB.setup_runtime(colab=False, compilation_cache=False, chdir=False)
    assert installed == [paths.REPO_ROOT]


def test_pip_install_repo_installs_the_checkout_and_refuses_a_non_checkout(tmp_path):
    calls = []
    cmd = NB.pip_install_repo(paths.REPO_ROOT, run=lambda c, check: calls.append((c, check)))
    assert calls == [(cmd, True)] and cmd[-2:] == ["-e", f"{paths.REPO_ROOT}[notebooks]"]
    with pytest.raises(RuntimeError, match="not a checkout"):
        NB.pip_install_repo(tmp_path, run=lambda c, check: calls.append(c))
    assert len(calls) == 1


def test_setup_runtime_jax_platforms_is_a_default(monkeypatch):
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    NB.setup_runtime(colab=False, jax_platforms="cpu", compilation_cache=False, chdir=False)
    assert os.environ["JAX_PLATFORMS"] == "cpu"
    monkeypatch.setenv("JAX_PLATFORMS", "cpu,cuda")  # the user's own setting wins
    NB.setup_runtime(colab=False, jax_platforms="cpu", compilation_cache=False, chdir=False)
    assert os.environ["JAX_PLATFORMS"] == "cpu,cuda"


def test_setup_runtime_refuses_cpu_when_gpu_required(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XLA_FLAGS", "")
    with pytest.raises(RuntimeError, match="GPU is required"):
        NB.setup_runtime(colab=False, require_gpu=True, compilation_cache=False, chdir=False)
    assert Path.cwd() == tmp_path


# The notebooks' first cells: the Colab bootstrap (the one thing that must run before wildamp can be
# imported) and the setup, one call of setup_runtime.

NOTEBOOKS = sorted((paths.REPO_ROOT / "notebooks").glob("*.ipynb"))


def _code_cells(path: Path) -> list[str]:
    import nbformat

    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_every_notebook_sets_up_with_one_setup_runtime_call():
    assert len(NOTEBOOKS) == 4
    colab_cells = set()
    for nb in NOTEBOOKS:
        cells = _code_cells(nb)
        colab_cells.add(cells[1])
        setup = [line for line in cells[2].splitlines() if line and not line.startswith("#")]
        assert setup[0] == "from wildamp.notebook import setup_runtime", nb.name
        assert setup[1].startswith("RT = setup_runtime(") and len(setup) == 3, (nb.name, setup)
        text = "\n".join(cells)
        for copied in ("egl_vendor", "libEGL", "MUJOCO_GL\", \"egl", "wildamp/wildamp.git"):
            assert copied not in text, f"{nb.name} re-implements setup_runtime ({copied!r})"
    assert len(colab_cells) == 1, "the Colab cells of the notebooks differ"


def _run_colab_cell(monkeypatch, url_env: str | None, form: str = "") -> list:
    import subprocess
    import sys
    import types

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    if url_env is None:
        monkeypatch.delenv("WILDAMP_REPO_URL", raising=False)
    else:
        monkeypatch.setenv("WILDAMP_REPO_URL", url_env)
    real_isdir = os.path.isdir
    monkeypatch.setattr(os.path, "isdir", lambda p: False if p == "/content/wildamp" else real_isdir(p))
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    src = _code_cells(NOTEBOOKS[0])[1].replace('REPO_URL = ""', f"REPO_URL = {form!r}", 1)
    exec(compile(src, "colab_cell", "exec"), {})
    return calls


def test_colab_cell_needs_a_repository_url(monkeypatch):
    with pytest.raises(ValueError, match="set REPO_URL .*WILDAMP_REPO_URL"):
        _run_colab_cell(monkeypatch, None)
    assert _run_colab_cell(monkeypatch, "https://example.org/w.git") == [
        ["git", "clone", "--depth", "1", "https://example.org/w.git", "/content/wildamp"]]
    import sys
    assert sys.path[0] == "/content/wildamp"
    assert _run_colab_cell(monkeypatch, None, form="https://example.org/f.git")[0][4] == "https://example.org/f.git"


def test_colab_cell_does_nothing_locally(monkeypatch):
    import subprocess
    import sys

    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.delenv("WILDAMP_REPO_URL", raising=False)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("ran a command locally"))
    before = list(sys.path)
    exec(compile(_code_cells(NOTEBOOKS[0])[1], "colab_cell", "exec"), {})
    assert sys.path == before


def test_pick_config():
    assert NB.pick_config(True, "gpu").name == "smoke.yaml"
    assert NB.pick_config(False, "cpu").name == "cpu.yaml"
    assert NB.pick_config(False, "gpu").name == "ppo_amass_training.yaml"
    for smoke, backend in ((True, "cpu"), (False, "cpu"), (False, "gpu")):
        assert NB.pick_config(smoke, backend).exists()


# --------------------------------------------------------------------------------------- metrics


def _record(it: int, **extra) -> dict:
    r = {"training/iteration": it, "training/env_steps": 128.0 * it, "reward/task": 0.1 * it,
         "amp/reward_mean": 0.5, "amp/disc_acc": 0.7, "env/vel_error": 0.2,
         "episode/length": 40.0, "episode/count": 3.0}
    r.update(extra)
    return r


def test_live_plot_redraws_every_n_and_updates_one_output():
    shown = []

    def show(obj, handle):
        shown.append((obj, handle))
        return "handle"

    live = NB.LivePlot(every=2, show=show, title="test")
    for it in range(1, 6):
        live(_record(it))
    assert live.redraws == 2 and len(live.records) == 5
    # The first draw creates the output, later draws update that same output.
    assert shown[0][1] is None and shown[1][1] == "handle"
    assert shown[0][0].data[:8] == b"\x89PNG\r\n\x1a\n"
    fig = live.finish()
    assert live.redraws == 3 and len(fig.axes) == len(TP.LIVE_PANELS)
    assert [ax.get_title() for ax in fig.axes] == [TP.PANELS[p].title for p in TP.LIVE_PANELS]
    assert fig.get_suptitle() == "test iteration 5, 640 env steps"
    # The plotted task-reward line holds every iteration.
    task_ax = fig.axes[TP.LIVE_PANELS.index("task_reward")]
    assert np.allclose(task_ax.lines[0].get_ydata(), [0.1 * i for i in range(1, 6)])
    live.finish()
    assert live.redraws == 3, "nothing new arrived: no redraw"
    with pytest.raises(KeyError, match="nope"):
        NB.LivePlot(panels=("nope",))


def test_format_env_steps_and_robot_time_use_readable_units():
    assert TP.format_env_steps(512) == "512 env steps"
    assert TP.format_env_steps(12_288) == "12.3 k env steps"
    assert TP.format_env_steps(1_234_567) == "1.23 M env steps"
    assert TP.format_env_steps(29_491_200) == "29.5 M env steps"
    assert TP.format_env_steps(0) == "0 env steps"
    assert TP.format_robot_time(10.24) == "10.2 s"
    assert TP.format_robot_time(750) == "12.5 min"
    assert TP.format_robot_time(589_824) == "164 h"
    with pytest.raises(ValueError):
        TP.format_env_steps(-1)


def test_compile_free_drops_the_first_call():
    recs = [_record(i, **{"training/sps": s}) for i, s in enumerate((30.0, 30.0, 1700.0, 1750.0), start=1)]
    assert [r["training/sps"] for r in TP.compile_free(recs, 2)] == [1700.0, 1750.0]
    assert TP.compile_free(recs[:2], 2) == []
    with pytest.raises(ValueError):
        TP.compile_free(recs, 0)


def _health_records(n: int, acc: float = 0.7) -> list[dict]:
    return [_record(i, **{"amp/disc_acc": acc, "amp/disc_real_mean": 0.6, "amp/disc_fake_mean": 0.3,
                          "amp/reward_mean": 0.4, "amp/replay_fill": 0.1 * i, "ppo/approx_kl": 0.01,
                          "training/sps": 30.0 if i <= 2 else 1700.0 + i})
            for i in range(1, n + 1)]


def test_training_panels_label_axes_share_d_and_leave_out_compiling():
    import matplotlib.pyplot as plt

    from wildamp.figcheck import figure_problems

    recs = _health_records(6, acc=0.75)
    for r in recs:
        r["episode/fall"] = math.nan                     # no episode ended in the whole run
    fig = TP.plot_training(recs, TP.HEALTH_PANELS, iterations_per_call=2, title="run")
    assert figure_problems(fig) == []
    ax = dict(zip(TP.HEALTH_PANELS, fig.axes))
    assert [ln.get_label() for ln in ax["disc_output"].get_lines()[:2]] == ["D(reference)", "D(policy)"]
    band = [p for p in ax["disc_acc"].patches if p.get_label().startswith("healthy")]
    assert band and np.allclose((band[0].get_y(), band[0].get_y() + band[0].get_height()), HEALTHY)
    sps = ax["sps"].get_lines()[0]
    assert np.array_equal(sps.get_xdata(), [384.0, 512.0, 640.0, 768.0])   # iterations 3..6
    assert min(sps.get_ydata()) > 1000
    assert "no episode ended yet" in ax["falls"].texts[0].get_text() and not ax["falls"].get_lines()
    assert len(ax["falls"].get_yticks()) == 0                  # no meaningless y scale on an empty panel
    assert ax["disc_acc"].xaxis.get_major_formatter()(1_500_000, 0) == "1.5 M"
    # Only compiling iterations: the throughput panel says so instead of plotting them.
    fig = TP.plot_training(recs[:2], ("sps",), iterations_per_call=2)
    assert "only compiling" in fig.axes[0].texts[0].get_text() and figure_problems(fig) == []
    with pytest.raises(KeyError, match="unknown panels"):
        TP.plot_training(recs, ("nope",))
    # Two runs on the same panels (PPO+AMP vs PPO only): one labelled line each, in different styles.
    fig = TP.plot_training({"PPO + AMP": recs, "PPO only": _health_records(6)}, ("task_reward", "disc_output"))
    assert figure_problems(fig) == []
    task = fig.axes[0].get_lines()
    assert [ln.get_label() for ln in task] == ["PPO + AMP", "PPO only"] and task[0].get_linestyle() != task[1].get_linestyle()
    assert len(fig.axes[1].get_lines()) == 4 and fig.axes[1].get_lines()[3].get_label() == "PPO only: D(policy)"
    plt.close("all")


def test_replay_health_gives_the_trainers_verdict():
    short = NB.replay_health(_health_records(4, acc=0.5), window=5, objective="lsgan_01")
    assert short.verdict().startswith("not enough iterations to judge") and short.warnings_issued == 0
    ok = NB.replay_health(_health_records(6), window=5, objective="lsgan_01")
    assert "stayed in range" in ok.verdict()
    strong = NB.replay_health(_health_records(10, acc=1.0), window=5, objective="lsgan_01")
    assert strong.warnings_issued == 2 and strong.verdict().startswith("2 warning(s)")


def test_missing_metrics_uses_the_registry():
    amp = NB.expected_metrics("amp/")
    assert "amp/disc_acc" in amp and "amp/disc_sigma_*" in amp
    full = {k: 0.0 for k in amp if "*" not in k}
    assert NB.missing_metrics(full, "amp/") == ["amp/disc_sigma_*"]
    full["amp/disc_sigma_0"] = 1.0
    assert NB.missing_metrics(full, "amp/") == []
    del full["amp/replay_fill"]
    assert NB.missing_metrics(full, "amp/") == ["amp/replay_fill"]


def test_nonfinite_metrics_ignores_only_empty_episode_stats():
    ok = _record(1, **{"episode/count": 0.0, "episode/length": math.nan, "episode/return": math.nan})
    assert NB.nonfinite_metrics([ok]) == {}
    bad = _record(2, **{"amp/disc_acc": math.nan, "episode/length": math.inf})
    assert NB.nonfinite_metrics([ok, bad]) == {"amp/disc_acc": [2], "episode/length": [2]}


# --------------------------------------------------------------------------------------- evaluation


def test_format_eval_table_lists_every_command():
    ev = {"vel_error": 0.12, "forward_velocity": 0.13, "fall_rate": 0.25, "episode_length": 88.0,
          "single_support_fraction": 0.4, "score": -0.37,
          "per_command": {"0.25": {"vel_error": 0.2, "forward_velocity": 0.05, "fall_rate": 0.5},
                          "0.15": {"vel_error": 0.04, "forward_velocity": 0.19, "fall_rate": 0.0}}}
    text = NB.format_eval_table(ev)
    rows = [ln.split() for ln in text.splitlines()]
    cmd_rows = [r for r in rows if r and r[0] in ("0.15", "0.25")]
    assert [r[0] for r in cmd_rows] == ["0.15", "0.25"]   # sorted by speed
    # The measured velocity next to |v - cmd|: a robot at 0.05 m/s under a 0.25 command shows as such.
    assert rows[0][:4] == ["command", "vx", "measured", "vx"]
    assert cmd_rows[1][1:] == ["0.050", "0.200", "50%"] and cmd_rows[0][1:] == ["0.190", "0.040", "0%"]
    assert [r for r in rows if r and r[0] == "all"][0][1:] == ["0.130", "0.120", "25%"]
    with pytest.raises(KeyError, match="per_command"):
        NB.format_eval_table({k: v for k, v in ev.items() if k != "per_command"})


# --------------------------------------------------------------------------------------- reference


@pytest.fixture(scope="module")
def robot():
    from wildamp.robot import load_model, load_robot_spec
    model = load_model(paths.DEFAULT_MODEL)
    return model, load_robot_spec(paths.DEFAULT_ROBOT_CONFIG, model=model)


def _clip(spec, name, speed=None, lateral=None, joint_names=None, T=30):
    from wildamp.reference.clip import Clip
    rng = np.random.default_rng(sum(name.encode()))
    names = list(joint_names or spec.joint_names)
    meta = {}
    if speed is not None:
        meta["speed"] = speed
    if lateral is not None:
        meta["lateral_speed"] = lateral
    q = np.tile([1.0, 0.0, 0.0, 0.0], (T, 1))
    pos = np.zeros((T, 3)) + [0, 0, 0.45]
    pos[:, 0] = np.arange(T) * 0.004
    return Clip(name=name, fps=50.0, root_pos=pos, root_quat=q,
                joint_pos=rng.uniform(-0.05, 0.05, (T, len(names))), joint_names=tuple(names), meta=meta)


def test_closest_reference_clip(robot):
    from wildamp.reference.clip import MotionDataset
    _, spec = robot
    clips = [_clip(spec, "a", 0.1, 0.0), _clip(spec, "b", 0.2), _clip(spec, "side", 0.0, 0.2),
             _clip(spec, "gmr")]
    ds = MotionDataset(clips=clips, joint_names=spec.joint_names, fps=50.0)
    cmds = np.array([[0.15, 0, 0], [0.25, 0, 0], [0.15, 0, 0]], np.float32)
    m = NB.closest_reference_clip(ds, cmds)
    # 0.2 is 0.05 from both commands; 0.1 is 0.05 from 0.15: first best kept, any 0.05 gap is right.
    assert m.speed_gap == pytest.approx(0.05, abs=1e-6) and m.clip.name in ("a", "b")
    m = NB.closest_reference_clip(ds, np.array([[0.0, 0.19, 0.0]]))
    assert m.clip.name == "side" and m.command[1] == pytest.approx(0.19)
    # A tracked clip is matched by the speed it was made for, not the few mm/s it walks off it.
    tracked = _clip(spec, "tracked", 0.2502, 0.0)
    tracked.meta.update(nominal_speed=0.25, nominal_lateral_speed=0.0)
    near = _clip(spec, "near", 0.2499, 0.0)
    ds = MotionDataset(clips=[near, tracked], joint_names=spec.joint_names, fps=50.0)
    m = NB.closest_reference_clip(ds, np.array([[0.25, 0, 0]], np.float32))
    assert m.clip.name == "tracked" and m.speed_gap == pytest.approx(0.0, abs=1e-9)
    no_speed = MotionDataset(clips=[_clip(spec, "gmr")], joint_names=spec.joint_names, fps=50.0)
    with pytest.raises(ValueError, match="meta\\['speed'\\]"):
        NB.closest_reference_clip(no_speed, cmds)


def test_clip_qpos_places_joints_by_name(robot):
    model, spec = robot
    shuffled = list(reversed(spec.joint_names))
    c = _clip(spec, "rev", 0.1, joint_names=shuffled)
    q = NB.clip_qpos(c, spec)
    assert q.shape == (c.num_frames, model.nq)
    assert np.array_equal(q[:, :3], c.root_pos)
    np.testing.assert_allclose(q[:, 3:7], c.root_quat, atol=1e-12)
    for j, name in enumerate(spec.joint_names):
        adr = int(model.jnt_qposadr[model.joint(name).id])
        assert np.array_equal(q[:, adr], c.joint_pos[:, shuffled.index(name)]), name
    bad = _clip(spec, "bad", 0.1, joint_names=shuffled[:-1] + ["nope"])
    with pytest.raises(ValueError, match="missing from the clip"):
        NB.clip_qpos(bad, spec)


def test_policy_vs_reference_frames_equal_lengths(robot):
    model, spec = robot
    ref = NB.clip_qpos(_clip(spec, "r", 0.1, T=40), spec)          # 40 frames at 50 Hz = 0.78 s
    pol = NB.clip_qpos(_clip(spec, "p", 0.1, T=50), spec)[::2]      # 25 frames at 25 Hz = 0.96 s
    try:
        frames = NB.policy_vs_reference_frames(model, pol, 25.0, ref, 50.0, seconds=0.5,
                                               width=64, height=48, fps=20.0)
    except RuntimeError as e:  # no OpenGL context on this machine
        pytest.skip(f"rendering unavailable: {e}")
    # 0.5 s at 20 fps, both halves the same length (each resampled from its own rate); the labels in a
    # caption bar above the pictures.
    assert frames.dtype == np.uint8 and frames.shape[1:] == (48 + CAPTION, 2 * 64 + 4, 3)
    assert abs(frames.shape[0] - 0.5 * 20) <= 1
    assert frames[:, :, :64].std() > 5 and frames[:, :, -64:].std() > 5
    with pytest.raises(ValueError, match="nothing to render"):
        NB.policy_vs_reference_frames(model, pol[:1], 25.0, ref, 50.0, seconds=1.0)


def test_render_eval_rollouts_one_episode_per_command(robot):
    model, spec = robot
    q = NB.clip_qpos(_clip(spec, "p", 0.1, T=12), spec)
    qpos = np.stack([q, q, q], axis=1)                              # (T, N=3, nq)
    cmds = np.array([[0.25, 0, 0], [0.15, 0, 0], [0.25, 0, 0]], np.float32)
    try:
        frames = NB.render_eval_rollouts(model, qpos, cmds, dt=0.02, seconds=0.1, width=64, height=48)
    except RuntimeError as e:
        pytest.skip(f"rendering unavailable: {e}")
    assert frames.shape == (2 * 5, 48 + CAPTION, 64, 3)   # 2 distinct commands x 0.1 s / 0.02 s, captioned
    with pytest.raises(ValueError, match="qpos must be"):
        NB.render_eval_rollouts(model, qpos[:, :2], cmds, dt=0.02, seconds=0.1)


def _turned(qpos: np.ndarray, yaw: float, shift: tuple[float, float]) -> np.ndarray:
    """The same motion walked in another world direction: turned by ``yaw`` about z and moved."""
    from wildamp import quat

    out = qpos.copy()
    c, s = np.cos(yaw), np.sin(yaw)
    out[:, 0] = c * qpos[:, 0] - s * qpos[:, 1] + shift[0]
    out[:, 1] = s * qpos[:, 0] + c * qpos[:, 1] + shift[1]
    out[:, 3:7] = quat.multiply(np.broadcast_to(quat.quat_from_yaw(yaw), qpos[:, 3:7].shape), qpos[:, 3:7])
    return out


def test_heading_camera_films_a_turned_robot_the_same_and_keeps_it_whole(robot):
    from wildamp import viz

    model, spec = robot
    q = NB.clip_qpos(_clip(spec, "p", 0.1, T=20), spec)
    turned = _turned(q, 2.0, (1.0, -3.0))
    try:
        same = [viz.robot_masks(model, x, "heading", width=64, height=48, every=5) for x in (q, turned)]
        fixed = [viz.robot_masks(model, x, "track", width=64, height=48, every=5) for x in (q, turned)]
    except RuntimeError as e:
        pytest.skip(f"rendering unavailable: {e}")
    overlap = lambda a, b: (a & b).sum() / (a | b).sum()  # noqa: E731
    # The heading camera sees the turned robot from the same side, in the same place of the picture; a
    # camera fixed in world orientation sees it from another side.
    assert same[0].sum() > 100 and overlap(*same) > 0.9 and overlap(*fixed) < 0.8, (overlap(*same), overlap(*fixed))
    assert viz.frames_cutting_robot(model, q, "heading", width=64, height=48, every=5) == []
    assert viz.frames_cutting_robot(model, q, viz.HeadingCamera(distance=0.5), width=64, height=48, every=5) == [0, 5, 10, 15]
