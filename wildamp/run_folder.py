"""Run folders: unique fresh names, no silent reuse, one process per folder, room to write.

A new run never writes into a folder that already holds files: `prepare_new_run_dir` refuses
(naming ``--resume`` and ``--force-new``) or, when asked, moves the old contents aside to a sibling
folder so nothing is lost. `RunLock` holds an exclusive ``flock`` on ``RUN/.lock`` for as long as a
process writes into the folder (the kernel drops it when the process dies, so a killed run never
leaves a stale lock). `check_writable` writes and removes a probe file and checks the free space
before any compute is spent. `resume_config_changes` compares a resumed run's config with the one
in its folder before anything is written; `record_config_changes` keeps what an allowed change was.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from wildamp import paths

if TYPE_CHECKING:
    from wildamp.config import Config

LOCK_FILE = ".lock"
#: Free space required beyond the estimated checkpoints (metrics, plots, video, evaluation JSON).
HEADROOM_BYTES = 64 << 20


class RunFolderError(ValueError):
    """A run folder cannot be used as asked (occupied, locked, not writable, full); names the folder."""


def new_run_dir(config_stem: str, root: str | os.PathLike | None = None) -> Path:
    """``runs/<config>-<YYYYmmdd-HHMMSS>-<6 hex>``: unique even for runs started in the same second."""
    base = Path(root) if root is not None else paths.REPO_ROOT / "runs"
    return base / f"{config_stem}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def contents(run_dir: str | os.PathLike) -> list[str]:
    """Names in ``run_dir`` other than the lock file (empty when the folder does not exist)."""
    d = Path(run_dir)
    if not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir() if p.name != LOCK_FILE)


def prepare_new_run_dir(run_dir: str | os.PathLike, force_new: bool = False) -> Path | None:
    """Make ``run_dir`` an empty folder for a new run.

    An existing folder with files is refused (`RunFolderError` naming ``--resume`` and
    ``--force-new``) unless ``force_new``: then it is renamed to ``<name>.replaced-<time>-<hex>``
    next to it (returned) and a fresh folder takes its name. Returns None when nothing was moved.
    """
    d = Path(run_dir)
    if d.exists() and not d.is_dir():
        raise RunFolderError(f"run folder {d} exists and is not a folder")
    held = contents(d)
    moved = None
    if held:
        if not force_new:
            shown = ", ".join(held[:6]) + (f", … ({len(held)} entries)" if len(held) > 6 else "")
            raise RunFolderError(
                f"run folder {d} already holds files ({shown}); a new run never writes into it. "
                f"Continue that run with `wildamp train --resume {d}`, start over there with --force-new "
                "(the old contents are moved to a sibling folder), or choose another --run-dir")
        moved = d.with_name(f"{d.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}")
        with RunLock(d):  # never move a folder another process is writing into
            os.rename(d, moved)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunFolderError(f"cannot create run folder {d}: {e.strerror or e}") from None
    return moved


class RunLock:
    """Exclusive lock on a run folder (``with RunLock(run_dir): ...``); `RunFolderError` if another
    process holds it. The lock file records the holder's process id."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise RunFolderError(f"run folder {self.path.parent} is not writable ({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise RunFolderError(f"run folder {self.path.parent} is in use by another wildamp process "
                                     f"(pid {holder}, lock {self.path}); two runs cannot share a folder") from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def check_writable(run_dir: str | os.PathLike, need_bytes: int) -> None:
    """Write, fsync and remove a probe file in ``run_dir`` and require ``need_bytes`` +
    `HEADROOM_BYTES` free; `RunFolderError` naming the folder otherwise."""
    d = Path(run_dir)
    probe = d / f".write_probe_{secrets.token_hex(4)}"
    try:
        with open(probe, "wb") as fh:
            fh.write(b"\0" * 4096)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as e:
        raise RunFolderError(f"run folder {d} is not writable ({e.strerror or e})") from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    free = shutil.disk_usage(d).free
    need = int(need_bytes) + HEADROOM_BYTES
    if free < need:
        raise RunFolderError(f"run folder {d}: {free / 2**20:.0f} MiB free, the run needs about "
                             f"{need / 2**20:.0f} MiB (checkpoints kept, metrics, plots)")


# ---------------------------------------------------------------------------------------- resume

CONFIG_FILE = "config.yaml"
CHANGES_FILE = "config_changes.jsonl"


class ConfigChangeError(ValueError):
    """A resume would change keys beyond `wildamp.config.RESUME_SAFE_KEYS` without permission."""


def check_resumable(run_dir: str | os.PathLike) -> Path:
    """The run's ``config.yaml``; `RunFolderError` if ``run_dir`` is not a run folder."""
    d = Path(run_dir)
    if not d.is_dir():
        raise RunFolderError(f"--resume {d}: no such run folder")
    cfg = d / CONFIG_FILE
    if not cfg.is_file():
        raise RunFolderError(f"--resume {d}: not a run folder (no {CONFIG_FILE})")
    return cfg


def resume_config_changes(run_dir: str | os.PathLike, cfg: "Config", allow_changes: bool = False
                          ) -> dict[str, tuple]:
    """Compare ``cfg`` with the run's own ``config.yaml``; returns every changed key.

    Changes outside `wildamp.config.RESUME_SAFE_KEYS` raise `ConfigChangeError` listing them unless
    ``allow_changes``. Nothing is written here (see `record_config_changes`).
    """
    from wildamp.config import config_changes, is_resume_safe, read_config_file

    _, saved = read_config_file(check_resumable(run_dir))
    changes = config_changes(saved, cfg)
    unsafe = {k: v for k, v in changes.items() if not is_resume_safe(k)}
    if unsafe and not allow_changes:
        lines = "\n".join(f"  {k}: {a!r} → {b!r}" for k, (a, b) in unsafe.items())
        raise ConfigChangeError(
            f"--resume {run_dir}: the resumed config changes {len(unsafe)} key(s) that change what is "
            f"trained:\n{lines}\nPass --allow-config-change to resume with them anyway (recorded in "
            f"{Path(run_dir) / CHANGES_FILE}), or start a new run.")
    return changes


def record_config_changes(run_dir: str | os.PathLike, changes: dict[str, tuple], iteration: int) -> None:
    """Append one line to ``RUN/config_changes.jsonl``: when, from which iteration, what changed."""
    import json

    from wildamp.config import is_resume_safe

    if not changes:
        return
    line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "resumed_from_iteration": int(iteration),
            "changes": {k: {"old": a, "new": b, "resume_safe": is_resume_safe(k)} for k, (a, b) in changes.items()}}
    with open(Path(run_dir) / CHANGES_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, default=str) + "\n")
