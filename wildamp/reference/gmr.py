"""GMR motion files (pickled dicts, root_rot in xyzw): safe loading, validation, conversion.

GMR files come from outside, and a pickle can run arbitrary code when loaded. They are read with
:class:`RestrictedUnpickler`, which resolves only the handful of globals that numpy arrays and
scalars need and refuses every other global *before* anything is called. Everything past this
module is wxyz and ``.npz``; pickle exists only at this boundary (ARCHITECTURE.md §3.9).

The GMR dict (ARCHITECTURE.md §5): ``fps`` (float), ``root_pos`` (N, 3), ``root_rot`` (N, 4) **xyzw**,
``dof_pos`` (N, J) in the robot's actuator order, ``local_body_pos``/``link_body_list`` (usually
None), optional ``source_file``, ``robot``, ``num_frames``, ``duration_sec``.
"""

from __future__ import annotations

import codecs
import io
import math
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from wildamp import quat
from wildamp.reference.clip import Clip, MotionDataset
from wildamp.reference.conventions import QuatOrder, root_quat_from_gmr
from wildamp.reference.resample import resample_clip

__all__ = [
    "UnsafePickleError", "RestrictedUnpickler", "load_gmr_pickle", "gmr_to_clip",
    "convert_gmr_files", "write_gmr_pickle",
    "MIN_GMR_FRAMES", "REQUIRED_KEYS", "OPTIONAL_KEYS",
]

#: Fewest frames a GMR file may have (before resampling): fewer cannot hold one step of motion
#: and make the interpolation and velocity estimates meaningless.
MIN_GMR_FRAMES = 4
REQUIRED_KEYS = ("fps", "root_pos", "root_rot", "dof_pos")
OPTIONAL_KEYS = ("local_body_pos", "link_body_list", "source_file", "robot", "num_frames", "duration_sec")
# A GMR root_rot whose norm is further than this from 1 is not a rotation stored by a sane exporter.
_QUAT_NORM_TOL = 1e-3


class UnsafePickleError(ValueError):
    """A pickle asked for something outside the plain-data allowlist (it was not executed)."""


def _latin1_encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode``, which protocol ≤ 2 pickles use to rebuild ``bytes``.

    Only the latin-1 text → bytes direction that pickle itself emits is admitted, so a crafted
    pickle cannot reach other codecs through it.
    """
    if not isinstance(obj, str) or codecs.lookup(encoding).name != "iso8859-1" or errors != "strict":
        raise UnsafePickleError(f"refused _codecs.encode({type(obj).__name__}, {encoding!r}, {errors!r})")
    return obj.encode("latin-1")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """The (module, name) pairs a GMR pickle may reference, mapped to what they resolve to.

    Both the numpy 1.x (``numpy.core``) and numpy 2.x (``numpy._core``) spellings are accepted and
    resolved to this numpy's objects without importing the deprecated alias.
    """
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:  # numpy 1.26
        from numpy.core import multiarray, numeric

    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for mod in ("numpy.core", "numpy._core"):
        allowed[(f"{mod}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{mod}.multiarray", "scalar")] = multiarray.scalar
        # Protocol-5 pickles of contiguous arrays rebuild them with _frombuffer(bytes, dtype, shape, order).
        allowed[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only numpy array/scalar globals; any other global is refused.

    ``find_class`` is the only way a pickle reaches callables, so refusing there means a refused
    object (``os.system``, ``builtins.open``, ``pathlib.Path``, ...) is never called.
    """

    def __init__(self, file: io.BufferedIOBase, source: str = "<pickle>") -> None:
        super().__init__(file)
        self._source = source
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 (pickle API)
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._source}: refused global {module}.{name} (GMR files may contain only "
                "numpy arrays, numpy scalars, numbers, strings, lists, dicts and None; "
                "nothing was executed)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102 (pickle API)
        raise UnsafePickleError(f"{self._source}: refused persistent id {pid!r}")


#: The most values a GMR pickle may unfold into (arrays count their elements, lists their items,
#: shared references every time they are referenced): hours of motion capture are a few million.
MAX_PLAIN_VALUES = 50_000_000


def _check_plain(obj: Any, where: str, source: str, depth: int = 0, seen: dict[int, int] | None = None) -> int:
    """Raise UnsafePickleError unless ``obj`` is plain data (numeric arrays, scalars, str, ...);
    return how many values it unfolds into.

    Containers are checked once each (``seen`` maps the id of each one checked to its count): a
    pickle can reference one list many times, and a few hundred bytes of shared references would
    otherwise unfold into billions of visits (here: counted, then refused by `load_gmr_pickle`).
    """
    if depth > 32:
        raise UnsafePickleError(f"{source}: {where} is nested too deeply")
    if obj is None or isinstance(obj, (bool, int, float, str, bytes, np.bool_, np.number)):
        return 1
    seen = {} if seen is None else seen
    if id(obj) in seen:
        return seen[id(obj)]
    if isinstance(obj, np.ndarray):
        # Object arrays can hold anything; numeric, bool and string arrays cannot.
        if obj.dtype.kind not in "biufcUS":
            raise UnsafePickleError(f"{source}: {where} is an array of dtype {obj.dtype}, not plain data")
        return int(obj.size)
    if isinstance(obj, (list, tuple)):
        n = sum(_check_plain(v, f"{where}[{i}]", source, depth + 1, seen) for i, v in enumerate(obj))
    elif isinstance(obj, dict):
        n = 0
        for k, v in obj.items():
            if not isinstance(k, str):
                raise UnsafePickleError(f"{source}: {where} has a non-string key {k!r}")
            n += _check_plain(v, f"{where}[{k!r}]", source, depth + 1, seen)
    else:
        raise UnsafePickleError(f"{source}: {where} is a {type(obj).__name__}, not plain data")
    seen[id(obj)] = n  # only once checked: a cycle still runs into the depth limit
    return n


def load_gmr_pickle(path: str | os.PathLike) -> dict:
    """Load a GMR pickle safely and return its dict (not yet validated: see :func:`gmr_to_clip`).

    Raises FileNotFoundError for a missing file, :class:`UnsafePickleError` (a ValueError) for a
    refused global or non-plain content, ValueError for a corrupt pickle or a non-dict top level.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GMR file {path} does not exist")
    with open(path, "rb") as f:
        try:
            obj = RestrictedUnpickler(f, source=str(path)).load()
        except UnsafePickleError:
            raise
        except Exception as e:  # corrupt/truncated pickles raise many exception types
            raise ValueError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: GMR file must hold a dict, found {type(obj).__name__}")
    n = _check_plain(obj, "the GMR dict", str(path))
    if n > MAX_PLAIN_VALUES:
        raise UnsafePickleError(f"{path}: unfolds into {n:,} values (shared references), more than the "
                                f"{MAX_PLAIN_VALUES:,} a motion file may hold")
    return obj


def _numeric_array(d: dict, key: str, path: str) -> np.ndarray:
    value = d[key]
    if not isinstance(value, (np.ndarray, list, tuple)):
        raise ValueError(f"{path}: {key} must be an array, found {type(value).__name__}")
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{path}: {key} must be a numeric array, found dtype {arr.dtype}")
    return arr.astype(np.float64)


def _scalar(value: Any) -> float | None:
    """A Python float from a number / numpy scalar / 0-d numeric array, else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "iuf":
        return float(value)
    return None


def gmr_to_clip(
    d: dict, joint_names: Sequence[str], path: str | os.PathLike, target_fps: float = 50.0,
    name: str | None = None, quat_order: QuatOrder | None = None, joint_signs: dict[str, float] | None = None,
) -> Clip:
    """Validate a GMR dict and convert it to a wxyz :class:`Clip` resampled to ``target_fps``.

    ``joint_names`` is the source robot's actuator order (robot_config.yaml ``joint_names``), which
    is the column order of GMR ``dof_pos``. ``path`` names the file in every error message and is the
    clip's source; ``name`` defaults to the file's stem. Every problem raises ValueError naming the
    file: missing keys, wrong shapes, wrong joint count, non-finite values, fps ≤ 0, fewer than
    :data:`MIN_GMR_FRAMES` frames, non-unit quaternions; a root that reads as upside down, walking
    backwards or leaning raises :class:`wildamp.reference.conventions.ConventionError` unless
    ``quat_order`` states the order (see that module). ``joint_signs`` (``{joint: ±1}``, from
    :func:`wildamp.reference.conventions.joint_signs`) multiplies each named column.
    """
    path = str(path)
    joint_names = tuple(str(n) for n in joint_names)
    J = len(joint_names)
    if J == 0 or len(set(joint_names)) != J:
        raise ValueError(f"{path}: robot joint_names must be non-empty and unique, got {list(joint_names)}")
    if not isinstance(d, dict):
        raise ValueError(f"{path}: GMR data must be a dict, found {type(d).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in d]
    if missing:
        raise ValueError(f"{path}: missing required key(s) {missing} (GMR files need {list(REQUIRED_KEYS)})")

    fps = _scalar(d["fps"])
    if fps is None:
        raise ValueError(f"{path}: fps must be a number, found {type(d['fps']).__name__}")
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"{path}: fps must be finite and > 0, got {fps}")

    root_pos = _numeric_array(d, "root_pos", path)
    root_rot = _numeric_array(d, "root_rot", path)
    dof_pos = _numeric_array(d, "dof_pos", path)
    for key, arr, width in (("root_pos", root_pos, 3), ("root_rot", root_rot, 4)):
        if arr.ndim != 2 or arr.shape[1] != width:
            raise ValueError(f"{path}: {key} has shape {arr.shape}, expected (N, {width})")
    if dof_pos.ndim != 2:
        raise ValueError(f"{path}: dof_pos has shape {dof_pos.shape}, expected (N, {J})")
    if dof_pos.shape[1] != J:
        raise ValueError(
            f"{path}: wrong joint count: dof_pos has {dof_pos.shape[1]} columns, the robot has "
            f"{J} joints {list(joint_names)}"
        )
    N = root_pos.shape[0]
    if root_rot.shape[0] != N or dof_pos.shape[0] != N:
        raise ValueError(
            f"{path}: frame counts differ: root_pos {N}, root_rot {root_rot.shape[0]}, "
            f"dof_pos {dof_pos.shape[0]}"
        )
    if N < MIN_GMR_FRAMES:
        raise ValueError(f"{path}: too short: {N} frame(s), at least {MIN_GMR_FRAMES} are needed")
    for key, arr in (("root_pos", root_pos), ("root_rot", root_rot), ("dof_pos", dof_pos)):
        bad = ~np.isfinite(arr)
        if bad.any():
            frame = int(np.argwhere(bad)[0, 0])
            kind = "NaN" if np.isnan(arr).any() else "inf"
            raise ValueError(f"{path}: {key} has non-finite values ({kind}; first at frame {frame})")
    if "num_frames" in d and d["num_frames"] is not None:
        n_decl = _scalar(d["num_frames"])
        if n_decl != N:
            raise ValueError(f"{path}: num_frames says {d['num_frames']!r} but the arrays have {N} frames")

    norms = np.linalg.norm(root_rot, axis=1)
    worst = int(np.argmax(np.abs(norms - 1.0)))
    if abs(norms[worst] - 1.0) > _QUAT_NORM_TOL:
        raise ValueError(
            f"{path}: root_rot is not a unit quaternion (frame {worst} has norm {norms[worst]:.6g})"
        )
    q, orientation = root_quat_from_gmr(root_pos, root_rot, fps, path, quat_order)
    flipped = sorted(n for n, s in (joint_signs or {}).items() if s < 0)
    unknown = sorted(set(joint_signs or {}) - set(joint_names))
    if unknown:
        raise ValueError(f"{path}: joint signs given for joints {unknown} not among {list(joint_names)}")
    if joint_signs:
        dof_pos = dof_pos * np.array([float(joint_signs.get(n, 1.0)) for n in joint_names])

    meta: dict[str, Any] = {"format": "gmr", "source_fps": fps, "source_num_frames": int(N),
                            "orientation": orientation, "joints_negated": flipped}
    for key in ("source_file", "robot"):
        if isinstance(d.get(key), str):
            meta[key] = d[key]
    ignored = sorted(k for k in d if k not in REQUIRED_KEYS and k not in OPTIONAL_KEYS)
    if ignored:
        meta["ignored_keys"] = ignored
    clip = Clip(
        name=name if name is not None else Path(path).stem,
        fps=fps,
        root_pos=root_pos,
        root_quat=q,
        joint_pos=dof_pos,
        joint_names=joint_names,
        source=path,
        meta=meta,
    )
    try:
        return resample_clip(clip, target_fps)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e


def _clip_names(paths: Sequence[Path]) -> list[str]:
    """File stems, made unique with the parent folder where two files share a stem."""
    stems = [p.stem for p in paths]
    names = [f"{p.parent.name}/{p.stem}" if stems.count(p.stem) > 1 else p.stem for p in paths]
    if len(set(names)) != len(names):
        dups = sorted({str(p) for p, n in zip(paths, names) if names.count(n) > 1})
        raise ValueError(f"GMR files would give duplicate clip names: {dups}")
    return names


def convert_gmr_files(
    paths: Sequence[str | os.PathLike], joint_names: Sequence[str],
    out: str | os.PathLike | None, target_fps: float = 50.0, quat_order: QuatOrder | None = None,
    joint_signs: dict[str, float] | None = None,
) -> MotionDataset:
    """Convert GMR files to one :class:`MotionDataset` and save it to ``out`` (unless None).

    ``quat_order`` and ``joint_signs`` as in :func:`gmr_to_clip`. Every file is loaded and validated
    before anything is written, so on any error (ValueError naming the file) ``out`` is left
    untouched. The dataset records the source files and the conventions applied.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no GMR files given")
    names = _clip_names(paths)
    clips = [
        gmr_to_clip(load_gmr_pickle(p), joint_names, p, target_fps=target_fps, name=n,
                    quat_order=quat_order, joint_signs=joint_signs)
        for p, n in zip(paths, names)
    ]
    ds = MotionDataset(
        clips=clips,
        joint_names=tuple(joint_names),
        fps=float(target_fps),
        metadata={"source": "gmr", "files": [str(p) for p in paths], "target_fps": float(target_fps),
                  "quat_order": quat_order or "xyzw (checked)",
                  "joints_negated": sorted(n for n, s in (joint_signs or {}).items() if s < 0)},
    )
    if out is not None:
        ds.save(out)
    return ds


def write_gmr_pickle(
    clip: Clip, path: str | os.PathLike, fps: float | None = None,
    protocol: int = pickle.DEFAULT_PROTOCOL,
) -> None:
    """Write ``clip`` as a GMR pickle (xyzw root_rot), optionally resampled to ``fps`` first.

    ``dof_pos`` columns are written in ``clip.joint_names`` order, which must be the robot's
    actuator order for the file to be a valid GMR file. Used to exercise the ingest path end to
    end; wildamp's own data never goes through pickle.
    """
    if fps is not None and float(fps) != clip.fps:
        clip = resample_clip(clip, float(fps))
    d = {
        "fps": float(clip.fps),
        "root_pos": np.array(clip.root_pos, dtype=np.float64),
        "root_rot": quat.to_xyzw(clip.root_quat),
        "dof_pos": np.array(clip.joint_pos, dtype=np.float64),
        "local_body_pos": None,
        "link_body_list": None,
        "source_file": clip.source or clip.name,
        "robot": "wildrobot",
        "num_frames": int(clip.num_frames),
        "duration_sec": float(clip.num_frames / clip.fps),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(d, f, protocol=protocol)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
