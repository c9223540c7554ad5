"""Motion clips and motion datasets (the reference data wildamp trains against).

A :class:`Clip` is one continuous motion: root position, root orientation (wxyz, unit,
sign-continuous) and joint angles whose columns are named by ``joint_names`` (names, never
positions). A :class:`MotionDataset` is a list of clips sharing one frame rate and one joint
order; clip boundaries are kept so that no AMP transition ever spans two clips.

Datasets are stored as ``.npz`` (``np.load(allow_pickle=False)`` reads them): the per-frame
arrays of all clips concatenated, plus ``clip_starts``/``clip_lengths``, names, sources, per-clip
metadata as JSON strings, ``joint_names``, ``fps`` and dataset metadata as a JSON string.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["Clip", "MotionDataset", "DATASET_FORMAT_VERSION", "command_speed", "commanded_clips", "walked_speed"]

# Bumped whenever the npz layout changes, so an old file is refused by name instead of misread.
DATASET_FORMAT_VERSION = 1

# A stored quaternion is "unit" if its norm is within this of 1 (float64 data, so this is loose
# enough for float32 round trips and tight enough to catch unnormalised or garbage input).
_UNIT_TOL = 1e-6


def _check_json(obj: Any, what: str) -> str:
    """Serialise ``obj`` to JSON or raise ValueError naming ``what``."""
    try:
        return json.dumps(obj, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} is not JSON-serialisable: {e}") from e


@dataclass
class Clip:
    """One continuous motion sampled on a uniform time grid ``t_i = i / fps``.

    Attributes:
        name: unique name of the clip within its dataset.
        fps: frame rate in Hz (> 0).
        root_pos: (T, 3) float64 world position of the root body, metres.
        root_quat: (T, 4) float64 root orientation, **wxyz**, unit norm, sign-continuous
            (consecutive quaternions have a non-negative dot product).
        joint_pos: (T, J) float64 joint angles in radians, columns in ``joint_names`` order.
        joint_names: the J joint names (unique).
        source: where the clip came from (a file path, "generator", ...).
        meta: JSON-serialisable extra information (generator parameters, speed, ...).

    Construction only coerces types (arrays to float64, names to a tuple); call
    :meth:`validate` to check the invariants (``MotionDataset`` does so for every clip).
    """

    name: str
    fps: float
    root_pos: np.ndarray
    root_quat: np.ndarray
    joint_pos: np.ndarray
    joint_names: tuple[str, ...]
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.name = str(self.name)
        self.fps = float(self.fps)
        self.root_pos = np.asarray(self.root_pos, dtype=np.float64)
        self.root_quat = np.asarray(self.root_quat, dtype=np.float64)
        self.joint_pos = np.asarray(self.joint_pos, dtype=np.float64)
        self.joint_names = tuple(str(n) for n in self.joint_names)
        self.source = str(self.source)
        self.meta = dict(self.meta)

    @property
    def num_frames(self) -> int:
        """Number of frames T."""
        return int(self.root_pos.shape[0])

    @property
    def duration(self) -> float:
        """Time spanned by the clip in seconds, ``(T - 1) / fps`` (first to last frame)."""
        return (self.num_frames - 1) / self.fps

    @property
    def num_joints(self) -> int:
        """Number of joints J."""
        return len(self.joint_names)

    def validate(self) -> "Clip":
        """Check every invariant; raise ValueError naming the clip and the problem.

        Returns the clip itself so calls can be chained.
        """
        who = f"clip {self.name!r}"
        if not self.name:
            raise ValueError("clip has an empty name")
        if not np.isfinite(self.fps) or self.fps <= 0:
            raise ValueError(f"{who}: fps must be a finite positive number, got {self.fps}")
        if len(set(self.joint_names)) != len(self.joint_names):
            dups = sorted({n for n in self.joint_names if self.joint_names.count(n) > 1})
            raise ValueError(f"{who}: duplicate joint names {dups}")
        if len(self.joint_names) == 0:
            raise ValueError(f"{who}: no joint names")
        T = self.root_pos.shape[0] if self.root_pos.ndim >= 1 else 0
        expected = {
            "root_pos": (self.root_pos, (T, 3)),
            "root_quat": (self.root_quat, (T, 4)),
            "joint_pos": (self.joint_pos, (T, len(self.joint_names))),
        }
        for key, (arr, shape) in expected.items():
            if arr.shape != shape:
                raise ValueError(
                    f"{who}: {key} has shape {arr.shape}, expected {shape} "
                    f"(T={T} frames, {len(self.joint_names)} joints)"
                )
        if T < 2:
            raise ValueError(f"{who}: needs at least 2 frames, has {T}")
        for key, (arr, _) in expected.items():
            bad = ~np.isfinite(arr)
            if bad.any():
                frame = int(np.argwhere(bad)[0, 0])
                raise ValueError(f"{who}: {key} has non-finite values (first at frame {frame})")
        norms = np.linalg.norm(self.root_quat, axis=-1)
        off = np.abs(norms - 1.0)
        if (off > _UNIT_TOL).any():
            frame = int(np.argmax(off))
            raise ValueError(
                f"{who}: root_quat is not unit norm (frame {frame} has norm {norms[frame]:.6g})"
            )
        dots = np.sum(self.root_quat[1:] * self.root_quat[:-1], axis=-1)
        if (dots < 0).any():
            frame = int(np.argmax(dots < 0)) + 1
            raise ValueError(
                f"{who}: root_quat is not sign-continuous (sign flip at frame {frame}); "
                "apply wildamp.quat.make_sign_continuous"
            )
        _check_json(self.meta, f"{who}: meta")
        return self

    def to_qpos(self, spec_or_ids: Any, base: np.ndarray | None = None) -> np.ndarray:
        """(T, nq) float64 MuJoCo qpos of the clip for kinematic replay: the one place a clip's
        columns are placed into a model's generalised coordinates.

        The root position and the root quaternion (wxyz, normalised to unit norm, sign kept) go to
        the free joint's 7 entries; every joint angle goes to its joint's qpos address, matched
        **by name** (the clip's column order does not matter). Coordinates the clip does not set
        take ``base``.

        Args:
            spec_or_ids: where the coordinates live, either a ``wildamp.robot.RobotSpec``
                (``joint_names``, ``qpos_adr``, ``nq``, ``home_qpos``; its free joint owns the 7
                qpos entries no named joint uses) or a ``wildamp.features.FrameIds``
                (``joint_names``, ``joint_qpos_adr``, ``root_qpos_adr``, ``nq``).
            base: (nq,) values of the coordinates the clip does not set. Default: the spec's
                ``home_qpos``; zeros for a FrameIds, which has no home pose (for WildRobot the
                root and the joints are the whole qpos, so nothing is left to fill).

        Raises ValueError naming the joints missing from the clip and the clip's joints unknown to
        the robot, a zero or non-finite root quaternion, or non-finite root positions/joint angles.
        """
        names = tuple(self.joint_names)
        robot = tuple(spec_or_ids.joint_names)
        missing = [n for n in robot if n not in names]
        extra = [n for n in names if n not in robot]
        if missing or extra:
            raise ValueError(f"clip {self.name!r}: joint names do not match the robot; "
                             f"missing from the clip: {missing}; unknown to the robot: {extra}")
        order = [names.index(n) for n in robot]
        rq = np.asarray(self.root_quat, dtype=np.float64)
        n = np.linalg.norm(rq, axis=-1, keepdims=True)
        if not np.all(np.isfinite(rq)) or np.any(n < 1e-9):
            raise ValueError(f"clip {self.name!r}: root_quat has zero or non-finite entries")
        root_pos = np.asarray(self.root_pos, np.float64)
        joints = np.asarray(self.joint_pos, np.float64)[:, order]
        if not (np.all(np.isfinite(root_pos)) and np.all(np.isfinite(joints))):
            raise ValueError(f"clip {self.name!r}: non-finite root_pos or joint_pos")
        root, joint_adr, nq, default_base = _qpos_layout(spec_or_ids)
        if base is None:
            base = default_base
        base = np.asarray(base, dtype=np.float64)
        if base.shape != (nq,):
            raise ValueError(f"clip {self.name!r}: base qpos has shape {base.shape}, expected ({nq},)")
        q = np.tile(base, (root_pos.shape[0], 1))
        q[:, root:root + 3] = root_pos
        q[:, root + 3:root + 7] = rq / n
        q[:, joint_adr] = joints
        return q


def _qpos_layout(spec_or_ids: Any) -> tuple[int, np.ndarray, int, np.ndarray]:
    """(root qpos address, joint qpos addresses in ``joint_names`` order, nq, default base qpos) of
    a RobotSpec or a features.FrameIds (duck-typed: this module imports neither)."""
    nq = int(spec_or_ids.nq)
    if hasattr(spec_or_ids, "joint_qpos_adr"):  # features.FrameIds
        joint_adr = np.asarray(spec_or_ids.joint_qpos_adr, dtype=np.int64)
        root = int(spec_or_ids.root_qpos_adr)
        return root, joint_adr, nq, np.zeros(nq)
    joint_adr = np.asarray(spec_or_ids.qpos_adr, dtype=np.int64)  # robot.RobotSpec
    free = sorted(set(range(nq)) - {int(a) for a in joint_adr})
    if len(free) != 7 or free != list(range(free[0], free[0] + 7)):
        raise ValueError(f"robot spec: expected the free joint to own 7 consecutive qpos entries besides "
                         f"the named joints, found {free} (nq={nq}, joints={list(spec_or_ids.joint_names)})")
    return free[0], joint_adr, nq, np.asarray(spec_or_ids.home_qpos, dtype=np.float64)


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an npz to ``path`` via a temporary file in the same directory and ``os.replace``,
    so a crash never leaves a half-written dataset under the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # Writing to the open file object stops np.savez from appending ".npz" to the name.
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


_REQUIRED_ARRAYS = (
    "format_version", "fps", "joint_names", "clip_names", "clip_sources", "clip_meta",
    "clip_starts", "clip_lengths", "root_pos", "root_quat", "joint_pos", "metadata",
)
#: The most a dataset's arrays may declare in all; far above any motion dataset (a million frames
#: are ~150 MB), it stops a forged header from allocating terabytes.
MAX_DATASET_BYTES = 4 << 30


def _read_npz_checked(path: Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The named arrays of an npz, each header checked against the bytes really stored before any
    array is allocated; ValueError naming the file for anything that is not such an npz."""
    import zipfile

    if not path.exists():
        raise FileNotFoundError(f"motion dataset {path} does not exist")
    if path.is_dir():
        raise ValueError(f"motion dataset {path} is a folder, not a dataset file (.npz)")
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"motion dataset {path} is an empty file")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic == b"\x93NUMPY":
        raise ValueError(f"motion dataset {path} is a plain .npy array, not a wildamp dataset (.npz written by "
                         "`wildamp reference generate` or `convert-gmr`)")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = {i.filename: i for i in zf.infolist()}
            missing = [k for k in names if f"{k}.npy" not in infos]
            if missing:
                raise ValueError(f"motion dataset {path}: missing arrays {missing}")
            declared = 0
            for k in names:
                info = infos[f"{k}.npy"]
                if info.compress_type == zipfile.ZIP_STORED and info.file_size > size:
                    raise ValueError(f"motion dataset {path}: array {k!r} claims {info.file_size} bytes, "
                                     f"more than the whole file ({size})")
                with zf.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                                   (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                    if read_header is None:
                        raise ValueError(f"motion dataset {path}: array {k!r} has npy format {version}")
                    shape, _, dtype = read_header(member)
                    header_len = member.tell()
                if dtype.hasobject:
                    raise ValueError(f"motion dataset {path}: array {k!r} holds Python objects (refused)")
                nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
                declared += nbytes
                if nbytes != info.file_size - header_len or declared > MAX_DATASET_BYTES:
                    raise ValueError(
                        f"motion dataset {path}: array {k!r} declares shape {shape} of {dtype} "
                        f"({nbytes} bytes) but the file stores {info.file_size - header_len} bytes for it")
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in names}
    except ValueError as e:
        if str(e).startswith(f"motion dataset {path}"):
            raise
        raise ValueError(f"motion dataset {path} is not a readable .npz dataset ({e})") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as e:
        raise ValueError(f"motion dataset {path} is not a readable .npz dataset "
                         f"({type(e).__name__}: {e}; truncated or not an npz?)") from None


def _scalar(d: dict[str, np.ndarray], key: str, path: Path, kind: type) -> Any:
    a = d[key]
    if a.size != 1 or not np.issubdtype(a.dtype, np.number):
        raise ValueError(f"motion dataset {path}: {key} must be one number, got shape {a.shape} of {a.dtype}")
    return kind(a.reshape(()))


def _clip_bounds(d: dict[str, np.ndarray], path: Path) -> tuple[np.ndarray, np.ndarray]:
    """clip_starts/clip_lengths checked: integers, one per clip, monotone, non-overlapping, inside
    the per-frame arrays (which must all have the same number of frames)."""
    starts, lengths = d["clip_starts"], d["clip_lengths"]
    total = int(d["root_pos"].shape[0]) if d["root_pos"].ndim else 0
    for k in ("root_quat", "joint_pos"):
        if d[k].ndim < 1 or d[k].shape[0] != total:
            raise ValueError(f"motion dataset {path}: {k} has {d[k].shape[:1]} frames, root_pos has {total}")
    n = len(np.atleast_1d(d["clip_names"]))
    for k, a in (("clip_starts", starts), ("clip_lengths", lengths)):
        if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer) or len(a) != n:
            raise ValueError(f"motion dataset {path}: {k} must be {n} integers (one per clip), "
                             f"got shape {a.shape} of {a.dtype}")
    ends = starts + lengths
    if n and ((lengths < 1).any() or (starts < 0).any() or (ends > total).any()):
        i = int(np.argmax((lengths < 1) | (starts < 0) | (ends > total)))
        raise ValueError(f"motion dataset {path}: clip {i} spans frames [{starts[i]}, {ends[i]}), "
                         f"outside the {total} stored frames")
    if n > 1 and (starts[1:] < ends[:-1]).any():
        i = int(np.argmax(starts[1:] < ends[:-1])) + 1
        raise ValueError(f"motion dataset {path}: clip {i} starts at frame {starts[i]}, inside clip {i - 1} "
                         f"(frames [{starts[i - 1]}, {ends[i - 1]})): clip_starts/clip_lengths overlap or are "
                         "not in order")
    return starts, lengths


@dataclass
class MotionDataset:
    """Clips sharing one frame rate and one joint order, with clip boundaries kept.

    Construction validates every clip and the shared ``fps``/``joint_names`` (ValueError
    otherwise); a dataset has at least one clip and unique clip names.
    """

    clips: list[Clip]
    joint_names: tuple[str, ...]
    fps: float
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.clips = list(self.clips)
        self.joint_names = tuple(str(n) for n in self.joint_names)
        self.fps = float(self.fps)
        self.metadata = dict(self.metadata)
        self.validate()

    def validate(self) -> "MotionDataset":
        """Check every clip and the dataset-wide invariants; raise ValueError naming the problem."""
        if not self.clips:
            raise ValueError("motion dataset has no clips")
        if len(set(self.joint_names)) != len(self.joint_names):
            raise ValueError(f"motion dataset has duplicate joint names: {list(self.joint_names)}")
        names = [c.name for c in self.clips]
        if len(set(names)) != len(names):
            dups = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"motion dataset has duplicate clip names {dups}")
        for c in self.clips:
            c.validate()
            if c.fps != self.fps:
                raise ValueError(
                    f"clip {c.name!r}: fps {c.fps} differs from the dataset fps {self.fps} "
                    "(resample it with wildamp.reference.resample.resample_clip)"
                )
            if c.joint_names != self.joint_names:
                raise ValueError(
                    f"clip {c.name!r}: joint_names {list(c.joint_names)} differ from the dataset "
                    f"joint_names {list(self.joint_names)}"
                )
        _check_json(self.metadata, "motion dataset metadata")
        return self

    @property
    def num_clips(self) -> int:
        """Number of clips."""
        return len(self.clips)

    @property
    def clip_names(self) -> tuple[str, ...]:
        """Clip names in dataset order."""
        return tuple(c.name for c in self.clips)

    @property
    def num_frames(self) -> int:
        """Total number of frames over all clips."""
        return sum(c.num_frames for c in self.clips)

    def clip(self, name_or_index: str | int) -> Clip:
        """Return a clip by name or by position; KeyError/IndexError naming what exists otherwise."""
        if isinstance(name_or_index, (int, np.integer)) and not isinstance(name_or_index, bool):
            i = int(name_or_index)
            if not -len(self.clips) <= i < len(self.clips):
                raise IndexError(f"clip index {i} out of range for {len(self.clips)} clips")
            return self.clips[i]
        for c in self.clips:
            if c.name == name_or_index:
                return c
        raise KeyError(f"no clip named {name_or_index!r}; clips are {list(self.clip_names)}")

    def save(self, path: str | os.PathLike) -> None:
        """Write the dataset to ``path`` as an npz (no pickled objects), atomically."""
        self.validate()
        lengths = np.array([c.num_frames for c in self.clips], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        arrays = {
            "format_version": np.array(DATASET_FORMAT_VERSION, dtype=np.int64),
            "fps": np.array(self.fps, dtype=np.float64),
            "joint_names": np.array(self.joint_names, dtype=np.str_),
            "clip_names": np.array(self.clip_names, dtype=np.str_),
            "clip_sources": np.array([c.source for c in self.clips], dtype=np.str_),
            "clip_meta": np.array(
                [_check_json(c.meta, f"clip {c.name!r}: meta") for c in self.clips], dtype=np.str_
            ),
            "clip_starts": starts,
            "clip_lengths": lengths,
            "root_pos": np.concatenate([c.root_pos for c in self.clips]),
            "root_quat": np.concatenate([c.root_quat for c in self.clips]),
            "joint_pos": np.concatenate([c.joint_pos for c in self.clips]),
            "metadata": np.array(_check_json(self.metadata, "motion dataset metadata"), dtype=np.str_),
        }
        _atomic_savez(Path(path), arrays)

    @classmethod
    def load(
        cls, path: str | os.PathLike, joint_names: Sequence[str] | None = None
    ) -> "MotionDataset":
        """Read a dataset written by :meth:`save`.

        If ``joint_names`` is given (e.g. the model's joint order), the joint columns are
        reordered to it by name; if the stored names are not the same set, ValueError lists
        the missing and extra names.
        """
        path = Path(path)
        d = _read_npz_checked(path, _REQUIRED_ARRAYS)
        version = _scalar(d, "format_version", path, int)
        if version != DATASET_FORMAT_VERSION:
            raise ValueError(
                f"motion dataset {path}: format_version {version}, this wildamp reads "
                f"{DATASET_FORMAT_VERSION}"
            )
        stored = tuple(str(n) for n in np.atleast_1d(d["joint_names"]))
        fps = _scalar(d, "fps", path, float)
        starts, lengths = _clip_bounds(d, path)
        # Column permutation from stored order to the requested order, by name.
        order = np.arange(len(stored))
        out_names = stored
        if joint_names is not None:
            want = tuple(str(n) for n in joint_names)
            missing_names = [n for n in want if n not in stored]
            extra_names = [n for n in stored if n not in want]
            if missing_names or extra_names or len(want) != len(stored):
                raise ValueError(
                    f"motion dataset {path}: joint names do not match the requested joints; "
                    f"missing from the dataset: {missing_names}; extra in the dataset: {extra_names}"
                )
            order = np.array([stored.index(n) for n in want])
            out_names = want

        clips = []
        for i, name in enumerate(d["clip_names"]):
            s, n = int(starts[i]), int(lengths[i])
            try:
                meta = json.loads(str(d["clip_meta"][i]))
            except json.JSONDecodeError as e:
                raise ValueError(f"motion dataset {path}: clip {str(name)!r} meta is not JSON: {e}") from e
            clips.append(
                Clip(
                    name=str(name),
                    fps=fps,
                    root_pos=d["root_pos"][s : s + n],
                    root_quat=d["root_quat"][s : s + n],
                    joint_pos=d["joint_pos"][s : s + n][:, order],
                    joint_names=out_names,
                    source=str(d["clip_sources"][i]),
                    meta=meta,
                )
            )
        try:
            metadata = json.loads(str(d["metadata"]))
        except json.JSONDecodeError as e:
            raise ValueError(f"motion dataset {path}: metadata is not JSON: {e}") from e
        try:
            return cls(clips=clips, joint_names=out_names, fps=fps, metadata=metadata)
        except ValueError as e:
            raise ValueError(f"motion dataset {path}: {e}") from e


def walked_speed(clip: Clip) -> tuple[float, float]:
    """The (forward, lateral) speed a clip walks: its measured ``meta['speed']`` /
    ``meta['lateral_speed']`` (forward NaN, lateral 0 when absent)."""
    return float(clip.meta.get("speed", np.nan)), float(clip.meta.get("lateral_speed", 0.0))


def command_speed(clip: Clip) -> tuple[float, float]:
    """The (forward, lateral) speed command a clip is an example of: the nominal speed it was made
    for (``meta['nominal_speed']``, ``meta['nominal_lateral_speed']``) when it has one, else its
    measured ``meta['speed']`` / ``meta['lateral_speed']``; forward NaN when it has neither.

    A PD-tracked clip re-planned to its nominal speed walks it only to within a few mm/s (0.2502 m/s
    for 0.25), so a clip made for the edge of a command range must be judged by its nominal speed."""
    walked_fwd, walked_lat = walked_speed(clip)
    return (float(clip.meta.get("nominal_speed", walked_fwd)),
            float(clip.meta.get("nominal_lateral_speed", walked_lat)))


def commanded_clips(dataset: MotionDataset, forward_range: Sequence[float] | None = None,
                    lateral_range: Sequence[float] | None = None) -> list[Clip]:
    """The clips whose :func:`command_speed` lies inside the command ranges: the motions a policy is
    asked to walk like. ``None`` ranges: every clip."""
    if forward_range is None:
        return list(dataset.clips)
    lateral_range = (0.0, 0.0) if lateral_range is None else lateral_range
    out = []
    for clip in dataset.clips:
        fwd, lat = command_speed(clip)
        if (forward_range[0] - 1e-9 <= fwd <= forward_range[1] + 1e-9
                and lateral_range[0] - 1e-9 <= lat <= lateral_range[1] + 1e-9):
            out.append(clip)
    return out
