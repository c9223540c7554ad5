"""Nothing lost, nothing silently wrong: bad inputs are refused by name, with exit 2, before anything
is written (run folders, resume, checkpoints, configs, datasets, pickles).

The table drives the real command line in this process (``wildamp.cli.main``); every refusal happens
before a trainer is built, so the whole table costs seconds. A snapshot of the test's folder before
and after each case shows that nothing was written or lost (the run folder's ``.lock`` file, which
a refused ``--resume`` may create while holding the lock, is the one exception).
"""

from __future__ import annotations

import io
import json
import pickle
import time
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from wildamp import checkpoint as C
from wildamp import paths
from wildamp.config import ConfigError, load_config, parse_override, save_effective_config
from wildamp.metrics import read_jsonl, trim_jsonl
from wildamp.reference_data import reference_dataset_path
from wildamp.run_folder import (
    ConfigChangeError, RunFolderError, RunLock, check_writable, new_run_dir, prepare_new_run_dir,
    record_config_changes, resume_config_changes,
)
from wildamp.run_state import resolve_checkpoint

SMOKE = paths.CONFIGS_DIR / "smoke.yaml"


# ----------------------------------------------------------------------------------------- fixtures


def _row(it: int) -> str:
    return json.dumps({"iteration": it, "env_steps": 10 * it, "time": 0.0, "elapsed_s": 0.0,
                       "metrics": {"ppo/entropy": 1.0}, "nonfinite": {}})


def make_run(root: Path) -> Path:
    """A run folder as training leaves it: config.yaml, checkpoints 1 and 2 (1 marked best), metrics."""
    run = root / "run"
    cfg = load_config(SMOKE)
    save_effective_config(cfg, run)
    state = {"w": np.arange(64, dtype=np.float32).reshape(8, 8), "b": np.zeros(8, np.float32)}
    for it in (1, 2):
        C.save_checkpoint(run, it, {k: v + it for k, v in state.items()},
                          {"iteration": it, "env_steps": 10 * it, "spec": {"robot": "wildrobot"},
                           "config": cfg.to_dict()})
    C.mark_best(run, 1, 0.5)
    (run / "metrics.jsonl").write_text(_row(1) + "\n" + _row(2) + "\n")
    return run


def flip_byte(path: Path, index: int) -> None:
    b = bytearray(path.read_bytes())
    b[index] ^= 0xFF
    path.write_bytes(bytes(b))


def dataset_arrays() -> dict[str, np.ndarray]:
    with np.load(reference_dataset_path(load_config(SMOKE)), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def write_npz_with_header(path: Path, arrays: dict, key: str, shape: tuple) -> None:
    """An npz whose ``key`` member declares ``shape`` float64 but stores 64 bytes."""
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f8", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as zf:
        for k, v in arrays.items():
            with zf.open(f"{k}.npy", "w") as f:
                if k == key:
                    f.write(head.getvalue() + b"\0" * 64)
                else:
                    np.lib.format.write_array(f, v)


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*")) if p.name != ".lock"}


# ----------------------------------------------------------------------------------------- the table
# Each case: (id, setup(tmp, run) -> argv, words the error must contain). Every case exits 2.

def _cfg_file(text: str | bytes) -> Callable[[Path, Path], list[str]]:
    def setup(tmp: Path, run: Path) -> list[str]:
        p = tmp / "bad.yaml"
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        return ["config", "check", str(p)]
    return setup


def _smoke_with(replace: Callable[[str], str]) -> str:
    return replace(SMOKE.read_text())


def _dataset(make: Callable[[Path], None]) -> Callable[[Path, Path], list[str]]:
    def setup(tmp: Path, run: Path) -> list[str]:
        p = tmp / "bad.npz"
        make(p)
        return ["config", "check", str(SMOKE), "--set", f"reference.dataset={p}"]
    return setup


def _alias_bomb() -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


def _npy(p: Path) -> None:
    with open(p, "wb") as f:
        np.save(f, np.zeros(3))


def _truncated(p: Path) -> None:
    b = reference_dataset_path(load_config(SMOKE)).read_bytes()
    p.write_bytes(b[: len(b) // 2])


def _overlapping(p: Path) -> None:
    a = dataset_arrays()
    a["clip_starts"] = a["clip_starts"].copy()
    a["clip_starts"][1] -= 21  # clip 1 starts 21 frames inside clip 0 (a root jump inside a clip)
    np.savez(p, **a)


def _missing_array(p: Path) -> None:
    a = dataset_arrays()
    del a["clip_lengths"]
    np.savez(p, **a)


def _object_array(p: Path) -> None:
    a = dataset_arrays()
    a["clip_meta"] = np.array([{"x": 1}] * len(a["clip_meta"]), dtype=object)
    np.savez(p, **a)


def _renamed_joints(p: Path) -> None:
    a = dataset_arrays()
    names = a["joint_names"].copy()
    names[0] = "tail_joint"
    a["joint_names"] = names
    np.savez(p, **a)


def _train_new(extra: list[str]) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, run: ["train", "--config", str(SMOKE), "--run-dir", str(tmp / "new"), *extra]


def _corrupt(which: str, argv: Callable[[Path, Path], list[str]]) -> Callable[[Path, Path], list[str]]:
    def setup(tmp: Path, run: Path) -> list[str]:
        ck = run / "checkpoints"
        if which == "weights":       # the last bytes of state.msgpack are array data
            flip_byte(ck / "ckpt_000000002" / "state.msgpack", -3)
        elif which == "header":      # the first byte is the msgpack map header
            flip_byte(ck / "ckpt_000000002" / "state.msgpack", 0)
        elif which == "meta":
            (ck / "ckpt_000000002" / "meta.json").write_bytes(b"{\x00garbage")
        elif which == "best":
            (ck / "best.json").write_text("[1, 2")
        elif which == "best_weights":
            flip_byte(ck / "ckpt_000000001" / "state.msgpack", -3)
        return argv(tmp, run)
    return setup


TABLE: list[tuple[str, Callable[[Path, Path], list[str]], list[str]]] = [
    # --- configs
    ("config: missing file, no fallback to configs/", lambda t, r: ["config", "check", "typo_dir/smoke.yaml"],
     ["not found", "typo_dir/smoke.yaml"]),
    ("config: a folder", lambda t, r: ["config", "check", str(t)], ["is a folder"]),
    ("config: not UTF-8", _cfg_file(b"version: \xff\xfe\n"), ["bad.yaml", "UTF-8"]),
    ("config: empty file", _cfg_file(""), ["bad.yaml", "mapping"]),
    ("config: a list at top level", _cfg_file("- 1\n- 2\n"), ["bad.yaml", "mapping"]),
    ("config: invalid YAML", _cfg_file("a: [1,\n"), ["bad.yaml", "not valid YAML"]),
    ("config: duplicate key", _cfg_file(_smoke_with(lambda s: s.replace("robot:\n", "seed_note: 1\nseed_note: 2\nrobot:\n", 1))),
     ["bad.yaml", "duplicate key 'seed_note'"]),
    ("config: duplicated section", _cfg_file(_smoke_with(lambda s: s + "\nrobot:\n  model: assets/scene.xml\n")),
     ["bad.yaml", "duplicate key 'robot'"]),
    ("config: alias bomb", _cfg_file(_alias_bomb()), ["bad.yaml", "alias", "not allowed"]),
    ("--set: not YAML", lambda t, r: ["config", "check", str(SMOKE), "--set", "trainer.lr=[1"], ["--set", "trainer.lr"]),
    ("--set: unknown key", lambda t, r: ["config", "check", str(SMOKE), "--set", "trainer.lrr=1e-3"], ["--set", "trainer.lrr"]),
    ("--set: wrong type blames --set", lambda t, r: ["config", "check", str(SMOKE), "--set", "trainer.lr=fast"],
     ["trainer.lr", "must be a number", "--set 'trainer.lr=fast'"]),
    ("--set: out of range", lambda t, r: ["config", "check", str(SMOKE), "--set", "amp.replay_buffer_ratio=1e3"],
     ["amp.replay_buffer_ratio", "out of range", "--set"]),
    # --- paths named by the config
    ("robot.model missing", lambda t, r: ["config", "check", str(SMOKE), "--set", f"robot.model={t}/nope.xml"],
     ["robot.model", "nope.xml", "does not exist"]),
    ("robot.model not MJCF", lambda t, r: ["config", "check", str(SMOKE), "--set", "robot.model=/etc/passwd"],
     ["robot.model", "/etc/passwd", "not a loadable MJCF"]),
    ("robot.model a folder", lambda t, r: ["config", "check", str(SMOKE), "--set", f"robot.model={t}"],
     ["robot.model", "is a folder"]),
    ("robot.robot_config missing", lambda t, r: ["config", "check", str(SMOKE), "--set", f"robot.robot_config={t}/rc.yaml"],
     ["robot.robot_config", "rc.yaml"]),
    ("reference.dataset missing", lambda t, r: ["config", "check", str(SMOKE), "--set", f"reference.dataset={t}/none.npz"],
     ["reference.dataset", "none.npz", "does not exist"]),
    # --- datasets
    ("dataset: plain .npy", _dataset(_npy), ["bad.npz", "plain .npy"]),
    ("dataset: truncated zip", _dataset(_truncated), ["bad.npz", "not a readable .npz"]),
    ("dataset: empty file", _dataset(lambda p: p.write_bytes(b"")), ["bad.npz", "empty"]),
    ("dataset: a folder", _dataset(lambda p: p.mkdir()), ["bad.npz", "folder"]),
    ("dataset: header declares 3e12 floats", _dataset(lambda p: write_npz_with_header(p, dataset_arrays(), "root_pos", (1_000_000, 3_000_000))),
     ["bad.npz", "root_pos", "declares shape"]),
    ("dataset: overlapping clips", _dataset(_overlapping), ["bad.npz", "overlap"]),
    ("dataset: missing array", _dataset(_missing_array), ["bad.npz", "clip_lengths"]),
    ("dataset: object array", _dataset(_object_array), ["bad.npz", "clip_meta", "Python objects"]),
    ("dataset: unknown joint", _dataset(_renamed_joints), ["bad.npz", "tail_joint"]),
    # --- train: refused before a run folder exists
    ("train: bad config value", _train_new(["--set", "trainer.lr=-1"]), ["trainer.lr", "out of range"]),
    ("train: missing dataset", _train_new(["--set", "reference.dataset=/nonexistent/d.npz"]), ["reference.dataset"]),
    ("train: --fall-back without --resume", _train_new(["--fall-back"]), ["--resume"]),
    # --- run folders and resume
    ("train: occupied --run-dir", lambda t, r: ["train", "--config", str(SMOKE), "--run-dir", str(r)],
     ["already holds", "--resume", "--force-new"]),
    ("resume: --config given", lambda t, r: ["train", "--resume", str(r), "--config", str(SMOKE)],
     ["--config cannot be combined with --resume"]),
    ("resume: not a run folder", lambda t, r: ["train", "--resume", str(t / "nothing")], ["no such run folder"]),
    ("resume: features change", lambda t, r: ["train", "--resume", str(r), "--set", "features.history=3"],
     ["features.history", "2 → 3", "--allow-config-change"]),
    ("resume: physics + objective change", lambda t, r: ["train", "--resume", str(r), "--set", "env.sim_dt=0.004",
                                                         "--set", "amp.objective=lsgan_pm1"],
     ["env.sim_dt", "amp.objective", "lsgan_pm1", "--allow-config-change"]),
    ("resume: corrupt latest checkpoint", _corrupt("weights", lambda t, r: ["train", "--resume", str(r)]),
     ["ckpt_000000002", "state.msgpack", "corrupt", "--fall-back"]),
    # --- checkpoints
    ("eval: flipped weight bytes", _corrupt("weights", lambda t, r: ["eval", str(r), "--checkpoint", "latest"]),
     ["ckpt_000000002", "state.msgpack", "SHA-256"]),
    ("eval: flipped header byte", _corrupt("header", lambda t, r: ["eval", str(r), "--checkpoint", "latest"]),
     ["ckpt_000000002", "corrupt"]),
    ("eval: garbage meta.json", _corrupt("meta", lambda t, r: ["eval", str(r), "--checkpoint", "latest"]),
     ["ckpt_000000002", "meta.json", "not readable JSON"]),
    ("eval: garbage best.json", _corrupt("best", lambda t, r: ["eval", str(r)]), ["best.json"]),
    ("eval: corrupt best checkpoint", _corrupt("best_weights", lambda t, r: ["eval", str(r)]),
     ["ckpt_000000001", "corrupt"]),
    ("eval: checkpoint path missing", lambda t, r: ["eval", str(r), "--checkpoint", str(t / "ck")], ["ck", "not a directory"]),
    ("eval: not a run", lambda t, r: ["eval", str(t / "nothing")], ["nothing"]),
    ("export: corrupt checkpoint", _corrupt("weights", lambda t, r: ["export", str(r), str(t / "out"), "--checkpoint", "latest"]),
     ["ckpt_000000002", "corrupt"]),
]


@pytest.mark.parametrize("setup,words", [c[1:] for c in TABLE], ids=[c[0] for c in TABLE])
def test_bad_input_exits_2_naming_it_and_writes_nothing(tmp_path, capsys, setup, words):
    from wildamp.cli import main
    run = make_run(tmp_path)
    argv = setup(tmp_path, run)
    before = snapshot(tmp_path)
    t0 = time.time()
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, (rc, err)
    assert "Traceback" not in err and len(err) < 4000, err
    for w in words:
        assert w in err, f"{w!r} not in {err!r}"
    assert snapshot(tmp_path) == before, "a refused command changed files"
    assert time.time() - t0 < 30


def test_table_is_large_enough():
    assert len(TABLE) >= 30


# ------------------------------------------------------------------------------- run folders (1, 2)


def test_default_run_names_are_unique_within_one_second(tmp_path):
    names = {new_run_dir("smoke", tmp_path).name for _ in range(50)}
    assert len(names) == 50


def test_force_new_moves_the_old_run_aside(tmp_path):
    run = make_run(tmp_path)
    before = snapshot(run)
    moved = prepare_new_run_dir(run, force_new=True)
    assert moved is not None and moved.parent == run.parent and snapshot(moved) == before
    assert run.is_dir() and not any(run.iterdir())


def test_two_processes_cannot_share_a_run_folder(tmp_path):
    run = make_run(tmp_path)
    with RunLock(run):
        with pytest.raises(RunFolderError, match="in use"):
            RunLock(run).acquire()  # a second open file description: what another process would hold
        with pytest.raises(RunFolderError, match="in use"):
            prepare_new_run_dir(run, force_new=True)  # never moves a folder being written
    with RunLock(run):
        pass  # released: usable again


def test_unwritable_or_full_run_folder_is_refused_before_training(tmp_path, monkeypatch):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(RunFolderError, match="not writable"):
        check_writable(not_a_dir, 0)
    import shutil as sh
    from collections import namedtuple
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(sh, "disk_usage", lambda p: usage(10 << 30, 10 << 30, 1 << 20))
    with pytest.raises(RunFolderError, match="MiB free"):
        check_writable(tmp_path, 1 << 20)


def test_resume_changes_are_listed_and_recorded_only_when_allowed(tmp_path):
    run = make_run(tmp_path)
    cfg_text = (run / "config.yaml").read_text()
    safe = load_config(run / "config.yaml", ["trainer.iterations=8", "logging.log_every=2"])
    assert set(resume_config_changes(run, safe)) == {"trainer.iterations", "logging.log_every"}
    physics = load_config(run / "config.yaml", ["env.sim_dt=0.004", "trainer.iterations=8"])
    with pytest.raises(ConfigChangeError, match="env.sim_dt"):
        resume_config_changes(run, physics)
    changes = resume_config_changes(run, physics, allow_changes=True)
    assert changes["env.sim_dt"] == (0.002, 0.004)
    assert (run / "config.yaml").read_text() == cfg_text  # comparing writes nothing
    record_config_changes(run, changes, 2)
    rec = json.loads((run / "config_changes.jsonl").read_text())
    assert rec["resumed_from_iteration"] == 2
    assert rec["changes"]["env.sim_dt"] == {"old": 0.002, "new": 0.004, "resume_safe": False}
    assert rec["changes"]["trainer.iterations"]["resume_safe"] is True


# ------------------------------------------------------------------------------- checkpoints (3)


def test_flipped_weight_bytes_are_refused_not_loaded(tmp_path):
    run = make_run(tmp_path)
    path = run / "checkpoints" / "ckpt_000000002"
    template = {"w": np.zeros((8, 8), np.float32), "b": np.zeros(8, np.float32)}
    C.load_checkpoint(path, template)  # intact: loads
    flip_byte(path / "state.msgpack", -3)
    with pytest.raises(C.CheckpointCorruptError, match="state.msgpack is corrupt"):
        C.load_checkpoint(path, template)


def test_fall_back_to_the_newest_intact_checkpoint_only_when_asked(tmp_path, capsys):
    run = make_run(tmp_path)
    flip_byte(run / "checkpoints" / "ckpt_000000002" / "state.msgpack", 0)
    with pytest.raises(C.CheckpointCorruptError, match="--fall-back"):
        resolve_checkpoint(run, "latest")
    assert resolve_checkpoint(run, "latest", fall_back=True) == run / "checkpoints" / "ckpt_000000001"
    assert "falling back" in capsys.readouterr().err


# ------------------------------------------------------------------------------- config loading (4)


def test_set_parses_numbers_with_exponents():
    assert parse_override("trainer.lr=1e3") == (["trainer", "lr"], 1000.0)
    assert parse_override("trainer.lr=3E-4")[1] == 3e-4
    assert parse_override("a.b=[1e3, 2]")[1] == [1000.0, 2]
    assert load_config(SMOKE, ["trainer.lr=1e-3"]).trainer.lr == 1e-3


def test_alias_bomb_fails_fast_with_a_short_message(tmp_path):
    p = tmp_path / "bomb.yaml"
    p.write_text(_alias_bomb())
    t0 = time.time()
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert time.time() - t0 < 1.0 and len(str(e.value)) < 500


def test_relative_config_resolves_from_the_repository_root_only_by_its_full_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config("configs/smoke.yaml").version  # the path as written, from the repository root
    with pytest.raises(ConfigError, match="not found"):
        load_config("other/smoke.yaml")  # never configs/<same name>


# ------------------------------------------------------------------------------- metrics (6)


def test_trim_drops_rows_after_the_checkpoint_and_a_partial_line(tmp_path):
    p = tmp_path / "metrics.jsonl"
    its = [1, 2, 2, 3, 4, 3, 4, 4]  # what a killed, resumed and killed-again run left
    p.write_text("".join(_row(i) + "\n" for i in its) + _row(5)[:17])
    report = trim_jsonl(p, 2)
    assert report.dropped_rows == 5 and report.dropped_partial_line
    assert [r["iteration"] for r in read_jsonl(p)] == [1, 2, 2]
    assert p.read_text().endswith("\n")
    unchanged = p.read_text()
    assert trim_jsonl(p, 2).dropped_rows == 0 and p.read_text() == unchanged


def test_train_evaluates_even_when_the_curves_cannot_be_drawn(tmp_path, monkeypatch):
    """A malformed metrics file costs the plot, never the finished run's evaluation."""
    import wildamp.cli as cli
    import wildamp.inputs
    import wildamp.train
    calls = []
    monkeypatch.setattr(wildamp.inputs, "check_inputs", lambda cfg, where="": [])
    monkeypatch.setattr(wildamp.train, "run_training", lambda cfg, out, **kw: (out / "metrics.jsonl").write_text(
        _row(1) + "\n{broken\n" + _row(2) + "\n"))
    monkeypatch.setattr(cli, "eval_main", lambda run, **kw: calls.append(kw["out"]) or 0)
    rc = cli.train_main(str(SMOKE), [], str(tmp_path / "run"), None)
    assert calls == [str(tmp_path / "run" / "eval.json")] and rc == 1


# ------------------------------------------------------------------------------- pickles (8)


def test_shared_reference_pickle_is_checked_in_linear_time(tmp_path):
    from wildamp.reference.gmr import UnsafePickleError, load_gmr_pickle
    x: list = [1.0]
    for _ in range(30):
        x = [x, x]  # 2**30 leaves in a few hundred bytes
    p = tmp_path / "shared.pkl"
    p.write_bytes(pickle.dumps({"fps": 30.0, "root_pos": x}))
    t0 = time.time()
    with pytest.raises(UnsafePickleError, match="unfolds into"):
        load_gmr_pickle(p)
    assert time.time() - t0 < 1.0
