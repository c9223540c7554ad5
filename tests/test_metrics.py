"""Tests for wildamp.metrics: registry, sinks, JSONL round trip, dashboard."""

from __future__ import annotations

import json
import math
import sys
import types

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from wildamp import metrics as M  # noqa: E402

TRAINER_METRICS = [
    "training/sps", "training/env_steps", "training/iteration", "training/compile_s",
    "ppo/policy_loss", "ppo/value_loss", "ppo/entropy", "ppo/approx_kl", "ppo/clip_fraction",
    "ppo/explained_variance", "ppo/grad_norm", "ppo/learning_rate", "episode/length",
    "episode/return", "episode/success", "episode/fall", "episode/count", "env/vel_error",
    "amp/disc_loss", "amp/disc_lsgan_loss", "amp/disc_penalty", "amp/disc_acc",
    "amp/disc_real_mean", "amp/disc_real_std", "amp/disc_fake_mean", "amp/disc_fake_std",
    "amp/replay_fill", "amp/reward_mean", "amp/reward_std", "amp/reward_p10", "amp/reward_p50",
    "amp/reward_p90", "amp/weight", "amp/disc_sigma_0", "amp/disc_sigma_12", "eval/vel_error",
    "eval/fall_rate", "eval/episode_length", "eval/score",
]


def test_trainer_metrics_are_predeclared():
    M.REGISTRY.check_declared(TRAINER_METRICS)  # raises if any is missing
    assert M.REGISTRY.lookup("amp/disc_sigma_3").name == "amp/disc_sigma_*"


def test_check_declared_lists_every_undeclared_name():
    with pytest.raises(KeyError) as e:
        M.REGISTRY.check_declared(["ppo/approx_kl", "ppo/aprox_kl", "amp/disc_accuracy"])
    msg = str(e.value)
    assert "ppo/aprox_kl" in msg and "amp/disc_accuracy" in msg
    assert "'ppo/approx_kl'" not in msg


def test_pattern_matches_one_segment_only():
    reg = M.MetricRegistry()
    reg.register("amp/disc_sigma_*", "sigma", "last")
    assert "amp/disc_sigma_0" in reg
    assert "amp/disc_sigma_" not in reg  # '*' needs at least one character
    assert "amp/disc_sigma_0/x" not in reg  # and stays within one path segment
    assert "xamp/disc_sigma_0" not in reg


def test_redeclaration_identical_ok_conflicting_refused_and_ambiguous_patterns():
    reg = M.MetricRegistry()
    reg.register("a/b", "thing", "mean")
    reg.register("a/b", "thing", "mean")
    with pytest.raises(ValueError, match="already declared"):
        reg.register("a/b", "thing", "sum")
    reg.register("x/*_1", "p1", "mean")
    reg.register("x/a_*", "p2", "mean")
    with pytest.raises(KeyError, match="several pattern"):
        reg.lookup("x/a_1")
    with pytest.raises(ValueError, match="aggregation"):
        reg.register("c", "c", "median")


def test_declare_reward_terms_and_reduce():
    reg = M.MetricRegistry()
    names = M.declare_reward_terms(["tracking_lin_vel", "action_rate"], registry=reg)
    assert names == ["reward/tracking_lin_vel", "reward/action_rate"]
    reg.check_declared(names)
    with pytest.raises(ValueError):
        M.declare_reward_terms(["bad/name"], registry=reg)
    reg.declare_many([("s", "sum me", "sum"), M.Metric("l", "last", "last"), ("mx", "max", "max")])
    vals = [1.0, 5.0, 2.0]
    assert reg.reduce("s", vals) == 8.0
    assert reg.reduce("l", vals) == 2.0
    assert reg.reduce("mx", vals) == 5.0
    assert reg.reduce("reward/action_rate", vals) == pytest.approx(8.0 / 3)


def test_logger_jsonl_roundtrip_with_nan_flagged(tmp_path):
    with M.MetricsLogger(tmp_path) as log:
        log.log(0, {"training/env_steps": 100, "ppo/approx_kl": np.float32(0.5), "amp/disc_acc": 0.75})
        log.log(1, {"training/env_steps": 200, "ppo/approx_kl": float("nan"), "ppo/grad_norm": np.inf})
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    raw = json.loads(lines[1])  # strict JSON: NaN/inf must be null + flagged
    assert raw["metrics"]["ppo/approx_kl"] is None
    assert raw["nonfinite"] == {"ppo/approx_kl": "nan", "ppo/grad_norm": "inf"}
    assert raw["iteration"] == 1 and raw["env_steps"] == 200
    assert isinstance(raw["time"], float) and raw["elapsed_s"] >= 0
    recs = M.read_jsonl(tmp_path / "metrics.jsonl")
    assert recs[0]["metrics"]["ppo/approx_kl"] == 0.5
    assert math.isnan(recs[1]["metrics"]["ppo/approx_kl"])
    assert recs[1]["metrics"]["ppo/grad_norm"] == math.inf
    xs, ys = M.metric_series(recs, "amp/disc_acc")
    assert xs.tolist() == [100.0] and ys.tolist() == [0.75]


def test_logger_refuses_undeclared_and_non_scalars(tmp_path):
    log = M.MetricsLogger(tmp_path)
    with pytest.raises(KeyError, match="ppo/typo"):
        log.log(0, {"ppo/typo": 1.0})
    with pytest.raises(ValueError, match="ppo/entropy.*shape"):
        log.log(0, {"ppo/entropy": np.ones(3)})
    with pytest.raises(TypeError, match="ppo/entropy"):
        log.log(0, {"ppo/entropy": "high"})
    log.close()
    assert (tmp_path / "metrics.jsonl").read_text() == ""  # nothing half-logged
    with pytest.raises(RuntimeError):
        log.log(1, {"ppo/entropy": 1.0})


def test_read_jsonl_partial_last_line_and_corrupt_middle(tmp_path):
    p = tmp_path / "m.jsonl"
    good = json.dumps({"iteration": 0, "env_steps": None, "metrics": {"ppo/entropy": 1.0}, "nonfinite": {}})
    p.write_text(good + "\n" + good[:20])  # killed mid-line
    assert len(M.read_jsonl(p)) == 1
    p.write_text(good + "\n" + good[:20] + "\n" + good + "\n")
    with pytest.raises(ValueError, match=":2:"):
        M.read_jsonl(p)


def test_logger_appends_on_resume(tmp_path):
    with M.MetricsLogger(tmp_path) as log:
        log.log(0, {"ppo/entropy": 1.0})
    with M.MetricsLogger(tmp_path) as log:
        log.log(1, {"ppo/entropy": 2.0})
    assert [r["iteration"] for r in M.read_jsonl(tmp_path / "metrics.jsonl")] == [0, 1]


def test_optional_sinks_name_the_pip_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # makes the import fail
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ImportError, match=r"wildamp\[logging\]"):
        M.TensorBoardSink(tmp_path / "tb")
    with pytest.raises(ImportError, match=r"wildamp\[logging\]"):
        M.WandbSink("proj", dir=tmp_path)


def test_tensorboard_and_wandb_sinks_receive_records(monkeypatch, tmp_path):
    calls: dict[str, list] = {"tb": [], "wb": [], "init": []}

    class FakeWriter:
        def __init__(self, logdir):
            calls["tb"].append(("init", logdir))

        def add_scalar(self, tag, value, global_step):
            calls["tb"].append((tag, value, global_step))

        def flush(self):
            pass

        def close(self):
            calls["tb"].append("close")

    class FakeRun:
        def log(self, payload, step):
            calls["wb"].append((payload, step))

        def finish(self):
            calls["wb"].append("finish")

    monkeypatch.setitem(sys.modules, "tensorboardX", types.SimpleNamespace(SummaryWriter=FakeWriter))
    monkeypatch.setitem(
        sys.modules, "wandb", types.SimpleNamespace(init=lambda **kw: calls["init"].append(kw) or FakeRun())
    )
    sinks = [M.TensorBoardSink(tmp_path / "tb"), M.WandbSink("proj", dir=tmp_path)]
    with M.MetricsLogger(tmp_path, sinks=sinks) as log:
        log.log(3, {"training/env_steps": 64, "amp/disc_acc": 0.6})
    assert ("amp/disc_acc", 0.6, 64) in calls["tb"] and calls["tb"][-1] == "close"
    assert calls["init"][0]["mode"] == "offline" and calls["init"][0]["project"] == "proj"
    assert calls["wb"][0] == ({"training/env_steps": 64.0, "amp/disc_acc": 0.6}, 3)
    assert calls["wb"][-1] == "finish"
    assert len(M.read_jsonl(tmp_path / "metrics.jsonl")) == 1  # the JSONL sink is always there


def test_plot_dashboard_skips_absent_keys_and_redraws(tmp_path):
    recs = [
        {"iteration": i, "env_steps": 10 * i, "metrics": {"amp/disc_acc": 0.5 + 0.01 * i, "episode/length": float(i)}}
        for i in range(5)
    ]
    recs[2]["metrics"]["amp/disc_acc"] = float("nan")
    fig = M.plot_dashboard(recs)
    titles = sorted(ax.get_title() for ax in fig.axes)
    assert titles == ["amp/disc_acc", "episode/length [steps]"]
    fig2 = M.plot_dashboard(recs, keys=["episode/length"], axes=fig)
    assert fig2 is fig and len(fig.axes) == 1
    line = fig.axes[0].lines[0]
    np.testing.assert_array_equal(line.get_xdata(), [0, 10, 20, 30, 40])
    empty = M.plot_dashboard([], axes=fig)
    assert len(empty.axes) == 1 and not empty.axes[0].axison
    plt.close("all")


def test_plot_dashboard_leaves_gaps_for_missing_values_and_says_when_a_panel_is_empty():
    nan = float("nan")
    # episode/return: no episode ended yet in any iteration; episode/length: a gap and one isolated value.
    lengths = [nan, 3.0, 4.0, nan, 6.0, nan]
    recs = [{"iteration": i, "env_steps": 10 * i,
             "metrics": {"episode/return": nan, "episode/length": lengths[i], "amp/disc_acc": 0.6}}
            for i in range(6)]
    fig = M.plot_dashboard(recs, keys=["episode/return", "episode/length", "amp/disc_acc"])
    ret, length, acc = fig.axes
    # All NaN: no curve, no markers, one note.
    assert len(ret.lines) == 0 and [t.get_text().splitlines()[0] for t in ret.texts] == ["no episode finished yet"]
    # NaN are gaps: no × anywhere; the one point without finite neighbours is a dot so it stays visible.
    markers = [ln.get_marker() for ax in fig.axes for ln in ax.lines]
    assert "x" not in markers
    dots = [ln for ln in length.lines if ln.get_marker() == "."]
    assert len(dots) == 1 and list(dots[0].get_xdata()) == [40.0]
    assert len(acc.texts) == 0 and len(acc.lines) >= 1
    # ±inf is an error, not a missing value: still marked.
    recs[1]["metrics"]["amp/disc_acc"] = float("inf")
    fig = M.plot_dashboard(recs, keys=["amp/disc_acc"], axes=fig)
    assert [ln.get_marker() for ln in fig.axes[0].lines].count("x") == 1
    plt.close("all")
