"""Checkpoints: flax msgpack state + JSON metadata, written atomically, never pickled.

Layout of a run directory::

    run_dir/checkpoints/ckpt_000000120/state.msgpack   # flax.serialization bytes of the state pytree
    run_dir/checkpoints/ckpt_000000120/meta.json       # iteration, env_steps, spec, spec_hash, config,
                                                       # state_sha256 (of state.msgpack), rng, ...
    run_dir/checkpoints/best.json                      # {"step", "score", "path"} of the best checkpoint

Atomicity: a checkpoint is written into a hidden temporary directory in the same parent, every
file is fsynced, and the directory is renamed into place with ``os.replace`` (atomic on POSIX
within one filesystem). A process killed mid-write leaves only a hidden ``.tmp_ckpt_*`` directory,
which `latest_checkpoint` never returns and the next `save_checkpoint` removes; earlier
checkpoints are untouched.

Integrity: ``meta.json`` records the SHA-256 of the state bytes; every load verifies it, so a
flipped byte in the weights or the header is refused naming the file instead of loading silently
(or failing deep inside msgpack).

The *spec* is the caller's description of everything a checkpoint's arrays silently depend on
(joint order, observation layout, action dimension, feature layout, ...). `check_spec` compares a
saved spec with the current one and names every differing key with both values.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, Mapping

import jax
import numpy as np
from flax import serialization

from wildamp import provenance
from wildamp.config import flatten_dict

CKPT_DIRNAME = "checkpoints"
STATE_FILE = "state.msgpack"
META_FILE = "meta.json"
BEST_FILE = "best.json"
_CKPT_RE = re.compile(r"^ckpt_(\d{9})$")
_TMP_PREFIX = ".tmp_ckpt_"
#: Keys the caller must put in ``meta`` (the rest is added by `save_checkpoint`).
REQUIRED_META_KEYS = ("iteration", "env_steps", "spec", "config")
_VERSIONED_PACKAGES = ("wildamp", "jax", "jaxlib", "flax", "optax", "mujoco", "mujoco-mjx", "numpy")


class SpecMismatchError(ValueError):
    """A checkpoint's spec differs from the current one; ``differences`` maps key -> (saved, current)."""

    def __init__(self, message: str, differences: dict[str, tuple[Any, Any]]) -> None:
        super().__init__(message)
        self.differences = differences


class CheckpointStructureError(ValueError):
    """The saved state does not fit the template pytree (missing/extra leaf, shape or dtype)."""


class CheckpointCorruptError(ValueError):
    """A checkpoint file is unreadable or its state bytes do not match the recorded SHA-256."""


# ------------------------------------------------------------------------------------ JSON helpers

_MISSING = "<missing>"


def jsonable(obj: Any, where: str = "") -> Any:
    """Convert numpy/jax scalars and arrays, tuples and Paths to JSON types; refuse anything else."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        if not np.isfinite(obj):
            raise ValueError(f"{where or 'value'}: {obj} is not finite (JSON cannot hold NaN/inf)")
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{where or 'value'}: dict key {k!r} is not a string (JSON needs string keys)")
            out[k] = jsonable(v, f"{where}.{k}" if where else k)
        return out
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return jsonable(obj.item(), where)
    if isinstance(obj, (np.ndarray, jax.Array)):
        arr = obj
        if isinstance(arr, jax.Array) and jax.dtypes.issubdtype(arr.dtype, jax.dtypes.prng_key):
            arr = jax.random.key_data(arr)
        return jsonable(np.asarray(arr).tolist(), where)
    raise TypeError(f"{where or 'value'}: {type(obj).__name__} is not JSON-serialisable")


def _canonical_json(obj: Any) -> str:
    return json.dumps(jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def spec_hash(spec: Mapping[str, Any]) -> str:
    """sha256 hex digest of the canonical JSON of ``spec`` (sorted keys, tuples as lists)."""
    return hashlib.sha256(_canonical_json(spec).encode("ascii")).hexdigest()


#: Tolerance of the spec entries compared numerically (`check_spec`'s ``tolerant`` keys): far above
#: the last-bit differences between CPUs, far below any change of the data they were derived from.
SPEC_RTOL, SPEC_ATOL = 1e-3, 1e-4


def _numbers_close(a: Any, b: Any) -> bool:
    try:
        x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    except (TypeError, ValueError):
        return False
    return x.shape == y.shape and bool(np.allclose(x, y, rtol=SPEC_RTOL, atol=SPEC_ATOL))


def check_spec(saved_spec: Mapping[str, Any], current_spec: Mapping[str, Any],
               tolerant: tuple[str, ...] = ()) -> None:
    """Raise `SpecMismatchError` listing every key whose value differs (both values shown).

    Nested dicts are compared key by key (reported as dotted paths); lists are compared whole. The
    (dotted) keys in ``tolerant`` hold numbers computed from data that floating point makes differ
    in the last bits from machine to machine: they match within `SPEC_RTOL` / `SPEC_ATOL`.
    """
    saved = flatten_dict(jsonable(saved_spec))   # a joint order is compared as a whole
    current = flatten_dict(jsonable(current_spec))
    diffs: dict[str, tuple[Any, Any]] = {}
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key, _MISSING), current.get(key, _MISSING)
        if a != b and not (key in tolerant and _numbers_close(a, b)):
            diffs[key] = (a, b)
    if not diffs:
        return
    lines = []
    for key, (a, b) in diffs.items():
        line = f"  {key}: checkpoint {a!r} vs current {b!r}"
        if isinstance(a, list) and isinstance(b, list) and a != b and sorted(map(repr, a)) == sorted(map(repr, b)):
            line += "  (same elements, different order)"
        lines.append(line)
    raise SpecMismatchError(
        f"checkpoint spec does not match the current run in {len(diffs)} key(s):\n" + "\n".join(lines), diffs
    )


# ------------------------------------------------------------------------------------ pytree <-> bytes


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _encode(state: Any) -> Any:
    """Device arrays -> numpy; typed PRNG keys -> their raw uint32 data (msgpack cannot hold keys)."""

    def enc(x: Any) -> Any:
        if _is_key(x):
            return np.asarray(jax.random.key_data(x))
        if isinstance(x, (jax.Array, np.ndarray, np.generic)):
            return np.asarray(x)
        return x

    return jax.tree_util.tree_map(enc, state)


def _serialize_state(state: Any) -> bytes:
    """The bytes written to ``state.msgpack`` (a module-level function so tests can interrupt it)."""
    return serialization.to_bytes(_encode(state))


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    # Directory fsync makes the rename durable; not supported on every platform/filesystem.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _compare_structure(template: Any, restored: Any, path: str, problems: list[str]) -> None:
    """Walk the template's state dict and the restored one side by side, collecting mismatches."""
    if isinstance(template, Mapping):
        if not isinstance(restored, Mapping):
            problems.append(f"{path or '/'}: template has a subtree, checkpoint has {type(restored).__name__}")
            return
        for k in sorted(set(template) | set(restored), key=str):
            sub = f"{path}/{k}"
            if k not in restored:
                problems.append(f"{sub}: in the template but not in the checkpoint")
            elif k not in template:
                problems.append(f"{sub}: in the checkpoint but not in the template")
            else:
                _compare_structure(template[k], restored[k], sub, problems)
        return
    if isinstance(restored, Mapping) and restored:
        problems.append(f"{path}: template has a leaf, checkpoint has a subtree")
        return
    if template is None:
        if restored not in (None, {}):
            problems.append(f"{path}: template leaf is None, checkpoint has {type(restored).__name__}")
        return
    if isinstance(template, (np.ndarray, np.generic)):
        if not isinstance(restored, (np.ndarray, np.generic)):
            problems.append(f"{path}: template is an array {template.shape}, checkpoint has {type(restored).__name__}")
            return
        if template.shape != restored.shape:
            problems.append(f"{path}: shape {restored.shape} in the checkpoint, {template.shape} in the template")
        elif template.dtype != restored.dtype:
            problems.append(f"{path}: dtype {restored.dtype} in the checkpoint, {template.dtype} in the template")
        return
    if np.shape(restored) != ():
        problems.append(f"{path}: template is a scalar, checkpoint has shape {np.shape(restored)}")


def _restore(template: Any, state_bytes: bytes, source: Path) -> Any:
    try:
        restored_sd = serialization.msgpack_restore(state_bytes)
    except Exception as e:  # noqa: BLE001 - msgpack raises many types on garbage; one clear error
        raise CheckpointCorruptError(f"{source}: not a readable checkpoint state ({type(e).__name__}: {e})") from None
    template_sd = serialization.to_state_dict(_encode(template))
    problems: list[str] = []
    _compare_structure(template_sd, restored_sd, "", problems)
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise CheckpointStructureError(
            f"{source}: saved state does not match the template pytree ({len(problems)} problem(s)):\n  {shown}"
        )
    state = serialization.from_state_dict(template, restored_sd)

    def dec(t: Any, r: Any) -> Any:
        # Typed keys were stored as raw data; rebuild them with the template key's implementation.
        return jax.random.wrap_key_data(r, impl=jax.random.key_impl(t)) if _is_key(t) else r

    return jax.tree_util.tree_map(dec, template, state)


# ------------------------------------------------------------------------------------ public API


def checkpoints_dir(run_dir: str | os.PathLike) -> Path:
    """``run_dir/checkpoints``."""
    return Path(run_dir) / CKPT_DIRNAME


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run as ``(step, path)``, oldest first (temporary dirs excluded)."""
    d = checkpoints_dir(run_dir)
    if not d.is_dir():
        return []
    out = []
    for p in d.iterdir():
        m = _CKPT_RE.match(p.name)
        if m and p.is_dir():
            out.append((int(m.group(1)), p))
    return sorted(out)


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """Path of the checkpoint with the highest step, or ``None`` if the run has none."""
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1][1] if ckpts else None


def read_json(p: Path) -> dict[str, Any]:
    """A JSON object from ``p``; `CheckpointCorruptError` naming the file if it is not one."""
    try:
        obj = json.loads(p.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointCorruptError(f"{p}: not readable JSON ({e})") from None
    if not isinstance(obj, dict):
        raise CheckpointCorruptError(f"{p}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _read_best(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    p = checkpoints_dir(run_dir) / BEST_FILE
    if not p.exists():
        return None
    best = read_json(p)
    if not isinstance(best.get("step"), int) or not isinstance(best.get("score"), (int, float)):
        raise CheckpointCorruptError(f"{p}: expected integer 'step' and numeric 'score', got {best}")
    return best


def best_checkpoint(run_dir: str | os.PathLike) -> tuple[Path, dict[str, Any]] | None:
    """``(path, best_record)`` of the checkpoint marked best, or ``None``.

    Raises ``FileNotFoundError`` if best.json names a checkpoint that no longer exists.
    """
    best = _read_best(run_dir)
    if best is None:
        return None
    path = checkpoints_dir(run_dir) / _ckpt_name(best["step"])
    if not path.is_dir():
        raise FileNotFoundError(f"{checkpoints_dir(run_dir) / BEST_FILE} names step {best['step']}, but {path} is missing")
    return path, best


def _ckpt_name(step: int) -> str:
    return f"ckpt_{int(step):09d}"


def save_checkpoint(
    run_dir: str | os.PathLike,
    step: int,
    state_pytree: Any,
    meta: Mapping[str, Any],
    keep_last: int | None = 5,
) -> Path:
    """Atomically write ``run_dir/checkpoints/ckpt_<step:09d>/{state.msgpack,meta.json}``.

    Args:
        run_dir: the run directory.
        step: checkpoint index (the training iteration); re-saving an existing step replaces it.
        state_pytree: params, optimizer state, normalisers, ... (jax/numpy arrays, typed PRNG keys,
            python scalars, dicts, namedtuples, flax structs).
        meta: must hold ``iteration``, ``env_steps``, ``spec`` (dict) and ``config`` (the effective
            config dict); may hold ``rng`` and anything else JSON-serialisable. ``spec_hash``,
            ``state_sha256`` (of the state bytes, verified on load), ``step``, ``created`` (UTC ISO
            time) and ``versions`` are added here.
        keep_last: keep this many most recent checkpoints (the one marked best is never deleted);
            ``None`` keeps all.

    Returns:
        Path of the new checkpoint directory.
    """
    if isinstance(step, bool) or int(step) != step or step < 0:
        raise ValueError(f"step must be a non-negative integer, got {step!r}")
    if keep_last is not None and keep_last < 1:
        raise ValueError(f"keep_last must be >= 1 or None, got {keep_last}")
    missing = [k for k in REQUIRED_META_KEYS if k not in meta]
    if missing:
        raise KeyError(f"checkpoint meta is missing required key(s) {missing} (required: {list(REQUIRED_META_KEYS)})")
    if not isinstance(meta["spec"], Mapping):
        raise TypeError(f"meta['spec'] must be a dict, got {type(meta['spec']).__name__}")
    state_bytes = _serialize_state(state_pytree)
    full_meta = dict(jsonable(dict(meta), "meta"))
    full_meta.update(
        step=int(step),
        state_sha256=hashlib.sha256(state_bytes).hexdigest(),
        spec_hash=spec_hash(meta["spec"]),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        versions=provenance.library_versions(_VERSIONED_PACKAGES, missing=None),
    )
    meta_text = json.dumps(full_meta, indent=2, sort_keys=True, allow_nan=False)

    parent = checkpoints_dir(run_dir)
    parent.mkdir(parents=True, exist_ok=True)
    # Leftovers of a writer killed mid-save: never visible as checkpoints, safe to remove now.
    for stale in parent.glob(_TMP_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)

    final = parent / _ckpt_name(step)
    tmp = parent / f"{_TMP_PREFIX}{int(step):09d}_{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _write_file(tmp / META_FILE, meta_text.encode("utf-8"))
        _write_file(tmp / STATE_FILE, state_bytes)
        _fsync_dir(tmp)
        if final.exists():
            # os.replace cannot replace a non-empty directory: move the old one aside first.
            old = parent / f"{_TMP_PREFIX}old_{final.name}_{uuid.uuid4().hex[:8]}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    if keep_last is not None:
        _prune(run_dir, keep_last)
    return final


def _prune(run_dir: str | os.PathLike, keep_last: int) -> None:
    best = _read_best(run_dir)
    best_step = None if best is None else int(best["step"])
    ckpts = list_checkpoints(run_dir)
    for step, path in ckpts[: max(len(ckpts) - keep_last, 0)]:
        if step != best_step:
            shutil.rmtree(path)


def mark_best(run_dir: str | os.PathLike, step: int, score: float, higher_is_better: bool = True) -> bool:
    """Record checkpoint ``step`` as best in ``checkpoints/best.json`` if ``score`` beats the current best.

    Returns whether best.json was updated. The checkpoint must exist; ``score`` must be finite.
    The best checkpoint is exempt from keep-last pruning.
    """
    score = float(score)
    if not np.isfinite(score):
        raise ValueError(f"best-checkpoint score must be finite, got {score}")
    path = checkpoints_dir(run_dir) / _ckpt_name(step)
    if not path.is_dir():
        raise FileNotFoundError(f"cannot mark step {step} as best: {path} does not exist")
    best = _read_best(run_dir)
    if best is not None:
        better = score > best["score"] if higher_is_better else score < best["score"]
        if not better:
            return False
    record = {"step": int(step), "score": score, "path": path.name, "higher_is_better": higher_is_better}
    tmp = checkpoints_dir(run_dir) / f"{_TMP_PREFIX}best_{uuid.uuid4().hex[:8]}.json"
    _write_file(tmp, json.dumps(record, indent=2).encode("utf-8"))
    os.replace(tmp, checkpoints_dir(run_dir) / BEST_FILE)
    return True


def load_meta(path: str | os.PathLike) -> dict[str, Any]:
    """Read ``meta.json`` of checkpoint directory ``path`` (`CheckpointCorruptError` if unreadable)."""
    p = Path(path) / META_FILE
    if not p.exists():
        raise FileNotFoundError(f"{p} not found: {path} is not a wildamp checkpoint directory")
    return read_json(p)


def verify_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], bytes]:
    """``(meta, state bytes)`` of checkpoint ``path`` once the bytes match the SHA-256 in its meta.

    Raises `CheckpointCorruptError` naming the file for unreadable metadata, a missing or changed
    state file, or metadata without a hash (a checkpoint of a wildamp that did not record one);
    ``FileNotFoundError`` if ``path`` is not a checkpoint directory.
    """
    path = Path(path)
    meta = load_meta(path)
    state_file = path / STATE_FILE
    if not state_file.is_file():
        raise CheckpointCorruptError(f"{state_file} is missing")
    data = state_file.read_bytes()
    recorded = meta.get("state_sha256")
    if not isinstance(recorded, str):
        raise CheckpointCorruptError(f"{path / META_FILE} records no state_sha256: the state cannot be verified")
    actual = hashlib.sha256(data).hexdigest()
    if actual != recorded:
        raise CheckpointCorruptError(
            f"{state_file} is corrupt: its SHA-256 {actual[:12]}… differs from {recorded[:12]}… recorded "
            f"in {META_FILE} when it was written")
    return meta, data


def newest_intact_checkpoint(run_dir: str | os.PathLike) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest checkpoint of a run that passes `verify_checkpoint`, and ``(path, reason)`` of
    every newer one that does not."""
    bad: list[tuple[Path, str]] = []
    for _, path in reversed(list_checkpoints(run_dir)):
        try:
            verify_checkpoint(path)
        except (CheckpointCorruptError, FileNotFoundError) as e:
            bad.append((path, str(e)))
            continue
        return path, bad
    return None, bad


def load_checkpoint(path: str | os.PathLike, target_pytree: Any) -> tuple[Any, dict[str, Any]]:
    """Restore a checkpoint into the structure of ``target_pytree``; returns ``(state, meta)``.

    The state bytes are verified against the SHA-256 recorded in the metadata first
    (`CheckpointCorruptError` naming the file otherwise). The template supplies the pytree
    structure (dicts, namedtuples, flax structs) and the expected shape/dtype of every leaf; any
    missing or extra leaf, shape or dtype mismatch raises `CheckpointStructureError` naming the
    leaf path. Restored arrays are numpy (``jax.device_put`` them as needed); typed PRNG keys come
    back as typed keys. Call `check_spec` on ``meta['spec']`` before trusting the arrays.
    """
    path = Path(path)
    meta, data = verify_checkpoint(path)
    state = _restore(target_pytree, data, path / STATE_FILE)
    return state, meta
