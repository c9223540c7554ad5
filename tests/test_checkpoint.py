"""Tests for wildamp.checkpoint: round trip, atomicity under failure/kill, pruning, specs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import pytest  # noqa: E402

from wildamp import checkpoint as C  # noqa: E402

SPEC = {
    "joint_names": ["waist_yaw", "left_hip_pitch", "right_hip_pitch"],
    "action_dim": 3,
    "obs": {"layout": [["gravity", 3], ["joint_pos", 3]], "dim": 6},
}


def make_state(seed: int = 0):
    k = jax.random.key(seed)
    params = {"w": jax.random.normal(k, (4, 3)), "b": jnp.arange(3, dtype=jnp.float32)}
    return {
        "params": params,
        "opt": optax.adam(1e-3).init(params),
        "norm": {"mean": np.linspace(0, 1, 5), "count": np.int64(7)},
        "rng": jax.random.key(seed + 1),
        "iteration": seed,
        "unused": None,
    }


def make_meta(it: int = 1, **extra):
    return {"iteration": it, "env_steps": 1000 * it, "spec": SPEC, "config": {"ppo": {"lr": 3e-4}},
            "rng": jax.random.key(3), **extra}


def assert_trees_equal(a, b):
    ka = jax.random.key_data(a["rng"])
    kb = jax.random.key_data(b["rng"])
    np.testing.assert_array_equal(ka, kb)
    a2 = {k: v for k, v in a.items() if k != "rng"}
    b2 = {k: v for k, v in b.items() if k != "rng"}
    la, ta = jax.tree_util.tree_flatten(a2)
    lb, tb = jax.tree_util.tree_flatten(b2)
    assert ta == tb
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_roundtrip_restores_structure_values_and_meta(tmp_path):
    state = make_state(1)
    path = C.save_checkpoint(tmp_path, 12, state, make_meta(12), keep_last=3)
    assert path == tmp_path / "checkpoints" / "ckpt_000000012"
    assert sorted(p.name for p in path.iterdir()) == ["meta.json", "state.msgpack"]
    # never pickle: the state file is msgpack, which starts with a map marker, not a pickle protocol byte
    assert path.joinpath("state.msgpack").read_bytes()[:1] != b"\x80"
    restored, meta = C.load_checkpoint(path, make_state(0))  # template with different values
    assert_trees_equal(restored, state)
    assert type(restored["opt"][0]) is type(state["opt"][0])  # optax namedtuple kept
    assert jax.dtypes.issubdtype(restored["rng"].dtype, jax.dtypes.prng_key)
    assert meta["iteration"] == 12 and meta["env_steps"] == 12000 and meta["step"] == 12
    assert meta["spec"] == json.loads(json.dumps(SPEC))
    assert meta["spec_hash"] == C.spec_hash(SPEC)
    assert meta["config"] == {"ppo": {"lr": 3e-4}}
    assert meta["rng"] == np.asarray(jax.random.key_data(jax.random.key(3))).tolist()
    assert meta["versions"]["jax"] == jax.__version__ and "created" in meta
    assert C.latest_checkpoint(tmp_path) == path


def test_meta_must_hold_required_keys_and_be_json(tmp_path):
    with pytest.raises(KeyError, match="spec"):
        C.save_checkpoint(tmp_path, 1, make_state(), {"iteration": 1, "env_steps": 0, "config": {}})
    with pytest.raises(ValueError, match="lr"):
        C.save_checkpoint(tmp_path, 1, make_state(), make_meta(config={"lr": float("nan")}))
    assert C.latest_checkpoint(tmp_path) is None


def test_failure_mid_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    state1 = make_state(1)
    C.save_checkpoint(tmp_path, 1, state1, make_meta(1))
    real_write = C._write_file

    def partial_write(path, data):
        if path.name == C.STATE_FILE:
            real_write(path, data[: len(data) // 2])  # half a file on disk, then the "crash"
            raise OSError("disk full (simulated)")
        real_write(path, data)

    monkeypatch.setattr(C, "_write_file", partial_write)
    with pytest.raises(OSError, match="simulated"):
        C.save_checkpoint(tmp_path, 2, make_state(2), make_meta(2))
    monkeypatch.undo()
    assert [s for s, _ in C.list_checkpoints(tmp_path)] == [1]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["ckpt_000000001"]
    restored, meta = C.load_checkpoint(C.latest_checkpoint(tmp_path), make_state(0))
    assert_trees_equal(restored, state1)
    assert meta["iteration"] == 1


def test_process_killed_mid_write_leaves_previous_checkpoint_intact(tmp_path):
    state1 = make_state(1)
    C.save_checkpoint(tmp_path, 1, state1, make_meta(1))
    # A real kill: no exception handler runs, the half-written temp dir stays on disk.
    script = textwrap.dedent(
        f"""
        import os
        os.environ["JAX_PLATFORMS"] = "cpu"
        from wildamp import checkpoint as C
        real = C._write_file
        def dying_write(path, data):
            if path.name == C.STATE_FILE:
                with open(path, "wb") as fh:
                    fh.write(data[: len(data) // 3])
                os._exit(9)
            real(path, data)
        C._write_file = dying_write
        C.save_checkpoint({str(tmp_path)!r}, 2, {{"w": [1.0, 2.0]}},
                          {{"iteration": 2, "env_steps": 2, "spec": {{}}, "config": {{}}}})
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert len(names) == 2 and names[0].startswith(".tmp_ckpt_") and names[1] == "ckpt_000000001"
    assert C.latest_checkpoint(tmp_path).name == "ckpt_000000001"
    restored, _ = C.load_checkpoint(C.latest_checkpoint(tmp_path), make_state(0))
    assert_trees_equal(restored, state1)
    # The next save cleans up the leftover.
    C.save_checkpoint(tmp_path, 3, make_state(3), make_meta(3))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["ckpt_000000001", "ckpt_000000003"]


def test_keep_last_prunes_but_never_the_best(tmp_path):
    state = {"x": np.zeros(2)}
    for s in (1, 2):
        C.save_checkpoint(tmp_path, s, state, make_meta(s), keep_last=2)
    assert C.mark_best(tmp_path, 1, score=0.5)
    for s in (3, 4, 5):
        C.save_checkpoint(tmp_path, s, state, make_meta(s), keep_last=2)
    assert [s for s, _ in C.list_checkpoints(tmp_path)] == [1, 4, 5]
    assert not C.mark_best(tmp_path, 4, score=0.4)  # worse: best stays at 1
    assert C.best_checkpoint(tmp_path)[1]["step"] == 1
    assert C.mark_best(tmp_path, 5, score=0.9)
    C.save_checkpoint(tmp_path, 6, state, make_meta(6), keep_last=2)
    assert [s for s, _ in C.list_checkpoints(tmp_path)] == [5, 6]
    path, rec = C.best_checkpoint(tmp_path)
    assert path.name == "ckpt_000000005" and rec["score"] == 0.9
    with pytest.raises(FileNotFoundError, match="ckpt_000000002"):
        C.mark_best(tmp_path, 2, score=1.0)
    with pytest.raises(ValueError, match="finite"):
        C.mark_best(tmp_path, 6, score=float("nan"))


def test_lower_is_better_and_resave_same_step(tmp_path):
    C.save_checkpoint(tmp_path, 1, {"x": np.zeros(2)}, make_meta(1))
    C.save_checkpoint(tmp_path, 2, {"x": np.zeros(2)}, make_meta(2))
    assert C.mark_best(tmp_path, 1, 0.3, higher_is_better=False)
    assert C.mark_best(tmp_path, 2, 0.2, higher_is_better=False)
    assert not C.mark_best(tmp_path, 1, 0.25, higher_is_better=False)
    C.save_checkpoint(tmp_path, 2, {"x": np.ones(2)}, make_meta(2))  # replaces step 2
    state, _ = C.load_checkpoint(C.latest_checkpoint(tmp_path), {"x": np.zeros(2)})
    np.testing.assert_array_equal(state["x"], np.ones(2))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "best.json", "ckpt_000000001", "ckpt_000000002"]


def test_template_mismatch_names_the_leaf(tmp_path):
    state = make_state(1)
    path = C.save_checkpoint(tmp_path, 1, state, make_meta(1))
    bad_shape = make_state(0)
    bad_shape["params"]["w"] = jnp.zeros((4, 5))
    with pytest.raises(C.CheckpointStructureError, match=r"/params/w: shape \(4, 3\) in the checkpoint, \(4, 5\)"):
        C.load_checkpoint(path, bad_shape)
    bad_keys = make_state(0)
    bad_keys["norm"]["std"] = np.ones(5)
    del bad_keys["norm"]["count"]
    with pytest.raises(C.CheckpointStructureError) as e:
        C.load_checkpoint(path, bad_keys)
    assert "/norm/std: in the template but not in the checkpoint" in str(e.value)
    assert "/norm/count: in the checkpoint but not in the template" in str(e.value)
    bad_dtype = make_state(0)
    bad_dtype["norm"]["mean"] = np.zeros(5, np.float32)
    with pytest.raises(C.CheckpointStructureError, match="/norm/mean: dtype float64"):
        C.load_checkpoint(path, bad_dtype)


def test_spec_hash_is_canonical():
    a = {"b": [1, 2], "a": {"y": 1.5, "x": "q"}}
    b = {"a": {"x": "q", "y": 1.5}, "b": (1, 2)}
    assert C.spec_hash(a) == C.spec_hash(b)
    assert C.spec_hash(a) != C.spec_hash({**a, "b": [2, 1]})
    assert len(C.spec_hash(a)) == 64


def test_check_spec_tolerant_keys_match_within_float_noise_only():
    saved = {**SPEC, "norm": {"mean": [0.1, -2.0, 0.0], "std": [0.05, 1.0, 3.0]}}
    noisy = json.loads(json.dumps(saved))
    noisy["norm"]["mean"] = [0.1 * (1 + 1e-6), -2.0 * (1 - 1e-6), 1e-7]   # last-bit differences
    C.check_spec(saved, noisy, tolerant=("norm.mean",))
    with pytest.raises(C.SpecMismatchError):               # not tolerant: compared exactly
        C.check_spec(saved, noisy)
    changed = json.loads(json.dumps(saved))
    changed["norm"]["mean"][1] = -2.02                     # 1 %: a different reference
    changed["norm"]["std"] = [0.05, 1.0]                   # a different layout
    with pytest.raises(C.SpecMismatchError) as e:
        C.check_spec(saved, changed, tolerant=("norm.mean", "norm.std"))
    assert set(e.value.differences) == {"norm.mean", "norm.std"}


def test_check_spec_names_every_differing_key_with_both_values():
    C.check_spec(SPEC, json.loads(json.dumps(SPEC)))  # equal: no error
    cur = json.loads(json.dumps(SPEC))
    cur["joint_names"] = ["waist_yaw", "right_hip_pitch", "left_hip_pitch"]
    cur["action_dim"] = 9
    cur["obs"]["dim"] = 7
    cur["features"] = {"layout": ["root_height"]}
    with pytest.raises(C.SpecMismatchError) as e:
        C.check_spec(SPEC, cur)
    err = e.value
    assert set(err.differences) == {"joint_names", "action_dim", "obs.dim", "features.layout"}
    msg = str(err)
    assert "action_dim: checkpoint 3 vs current 9" in msg
    assert "obs.dim: checkpoint 6 vs current 7" in msg
    assert "same elements, different order" in msg
    assert "features.layout: checkpoint '<missing>' vs current ['root_height']" in msg
    assert "obs.layout" not in msg
