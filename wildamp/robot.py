"""The robot: model loading, names -> indices, robot_config.yaml generation/validation.

Everything about the robot that the rest of wildamp needs (joint order, addresses, ranges, axes,
feet, left/right mirror map, home pose) is *derived from the MJCF by name* and written to
``robot_config.yaml``; ``RobotSpec`` is that file, loaded and (optionally) checked against a model.
Nothing here hard-codes a joint position or a mirror sign (ARCHITECTURE.md §3.2 and §4).

Any MJCF with WildRobot's joint names and the four sole pad geoms goes through, CAD exports
included: symmetry and mirror signs are judged in the pelvis frame on what matters physically
(:mod:`wildamp.symmetry`); a model without a ``home`` keyframe gets a generated home pose
(:mod:`wildamp.home_pose`); sites are optional and may carry other names (``--site ROLE=NAME``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import mujoco
import numpy as np
import yaml

from wildamp import paths
from wildamp.home_pose import Standing, generated_home_qpos, standing_check
from wildamp.symmetry import Tolerances, check_symmetry, joint_axes, mirror_signs

#: Sole pad collision geoms, in the order every contact vector of wildamp uses (the contact
#: features are named by them, so a model must name its pads so).
FOOT_GEOMS: tuple[str, ...] = ("left_toe", "left_heel", "right_toe", "right_heel")
FOOT_NAMES: tuple[str, ...] = ("left", "right")
#: Indices of each foot's pads in the pad order (FOOT_GEOMS), per foot in FOOT_NAMES order.
PADS_OF_FOOT: tuple[tuple[int, ...], ...] = tuple(
    tuple(i for i, g in enumerate(FOOT_GEOMS) if g.startswith(f + "_")) for f in FOOT_NAMES)
#: Sites at the bottom centre of each pad (same order as FOOT_GEOMS). Optional: nothing in wildamp
#: needs them (foot frames come from the pad geoms); recorded when the model has them.
PAD_SITES: tuple[str, ...] = ("left_toe_site", "left_heel_site", "right_toe_site", "right_heel_site")
#: One site per foot at the sole (left, right). Optional, like PAD_SITES.
FOOT_SITES: tuple[str, ...] = ("left_foot_site", "right_foot_site")
#: Torso IMU site. Optional, like PAD_SITES.
IMU_SITE = "imu"
#: Site roles ``--site ROLE=NAME`` may rename, with their default site names.
SITE_ROLES: dict[str, str] = {
    "imu": IMU_SITE,
    **{p.removesuffix("_site"): p for p in PAD_SITES},
    "left_foot": FOOT_SITES[0],
    "right_foot": FOOT_SITES[1],
}
HOME_KEY = "home"
CONFIG_VERSION = 2
#: A config's joint axis may differ from the model's by this much (unit vectors) and still match.
AXIS_MATCH_TOL = 1e-3
#: A config's joint range may differ from the model's by this much (rad); ranges are stored in full.
RANGE_MATCH_TOL = 1e-9


# --------------------------------------------------------------------------------------- loading


def load_model(path: str | os.PathLike = paths.DEFAULT_MODEL) -> mujoco.MjModel:
    """Load an MJCF file into a ``mujoco.MjModel`` (FileNotFoundError naming the path if absent)."""
    p = paths.resolve(path)
    if not p.is_file():
        raise FileNotFoundError(f"MuJoCo model file not found: {p}")
    try:
        return mujoco.MjModel.from_xml_path(str(p))
    except ValueError as e:  # MuJoCo's compile errors span lines: keep the message to one
        raise ValueError(f"{p}: MuJoCo cannot load it: {' '.join(str(e).split())}") from None


def _name(model: mujoco.MjModel, obj: mujoco.mjtObj, i: int) -> str:
    return mujoco.mj_id2name(model, obj, i) or ""


def _id(model: mujoco.MjModel, obj: mujoco.mjtObj, name: str) -> int:
    return mujoco.mj_name2id(model, obj, name)


def _rel_model_path(model_path: str | os.PathLike) -> str:
    """The model path as stored in robot_config.yaml: repo-relative if inside the repo (portable)."""
    p = paths.resolve(model_path).resolve()
    try:
        return p.relative_to(paths.REPO_ROOT.resolve()).as_posix()
    except ValueError:
        return str(p)


# ------------------------------------------------------------------------------ config generation


def _actuated_joints(model: mujoco.MjModel) -> tuple[list[str], list[str]]:
    """(actuator names, joint names) in actuator order; every actuator must drive one hinge/slide joint."""
    act_names, jnt_names = [], []
    for a in range(model.nu):
        aname = _name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, a)
        if int(model.actuator_trntype[a]) != int(mujoco.mjtTrn.mjTRN_JOINT):
            raise ValueError(
                f"actuator {aname or a!r} does not drive a joint (transmission type {model.actuator_trntype[a]})"
            )
        j = int(model.actuator_trnid[a, 0])
        jname = _name(model, mujoco.mjtObj.mjOBJ_JOINT, j)
        if not jname:
            raise ValueError(f"actuator {aname or a!r} drives an unnamed joint (id {j})")
        if int(model.jnt_type[j]) not in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)):
            raise ValueError(f"actuated joint {jname!r} is not a hinge or slide joint")
        if not model.jnt_limited[j]:
            raise ValueError(f"actuated joint {jname!r} has no range (limited='false')")
        act_names.append(aname or jname)
        jnt_names.append(jname)
    if not jnt_names:
        raise ValueError("model has no actuators")
    dup = sorted({n for n in jnt_names if jnt_names.count(n) > 1})
    if dup:
        raise ValueError(f"joint(s) driven by more than one actuator: {dup}")
    return act_names, jnt_names


def _root(model: mujoco.MjModel) -> tuple[str, str]:
    """(root body name, free joint name): the model must have exactly one free joint."""
    free = [j for j in range(model.njnt) if int(model.jnt_type[j]) == int(mujoco.mjtJoint.mjJNT_FREE)]
    if len(free) != 1:
        raise ValueError(f"expected exactly one free joint (the floating root), found {len(free)}")
    j = free[0]
    jname = _name(model, mujoco.mjtObj.mjOBJ_JOINT, j)
    bname = _name(model, mujoco.mjtObj.mjOBJ_BODY, int(model.jnt_bodyid[j]))
    if not jname or not bname:
        raise ValueError("the free joint and its body must be named")
    if model.jnt_qposadr[j] != 0:
        raise ValueError(f"free joint {jname!r} must come first in qpos (qposadr {model.jnt_qposadr[j]})")
    return bname, jname


def _require_pads(model: mujoco.MjModel) -> None:
    missing = [n for n in FOOT_GEOMS if _id(model, mujoco.mjtObj.mjOBJ_GEOM, n) < 0]
    if missing:
        raise ValueError(
            f"model has no sole pad geom(s) {missing}: name the four floor-contact pads of the feet "
            f"{list(FOOT_GEOMS)} in the MJCF (the contact features are named by them)")


def parse_site_names(items: Sequence[str]) -> dict[str, str]:
    """``["imu=imu_link", "left_toe=LT"]`` → ``{role: site name}`` (ValueError naming a bad item)."""
    out: dict[str, str] = {}
    for item in items:
        role, sep, name = item.partition("=")
        if not sep or role.strip() not in SITE_ROLES or not name.strip():
            raise ValueError(f"--site {item!r}: expected ROLE=SITE_NAME with ROLE one of {list(SITE_ROLES)}")
        out[role.strip()] = name.strip()
    return out


def _sites(model: mujoco.MjModel, names: Mapping[str, str] | None) -> dict[str, str | None]:
    """Site of every role: a renamed one must exist (ValueError); a default one is None if absent."""
    names = dict(names or {})
    out: dict[str, str | None] = {}
    for role, default in SITE_ROLES.items():
        name = names.get(role, default)
        exists = _id(model, mujoco.mjtObj.mjOBJ_SITE, name) >= 0
        if role in names and not exists:
            raise ValueError(f"--site {role}={name}: the model has no site {name!r}")
        out[role] = name if exists else None
    return out


def resolve_home(model: mujoco.MjModel, root_joint: str,
                 home: Mapping[str, float] | None) -> tuple[np.ndarray, str]:
    """(home qpos, where it came from): ``--home`` values if given, else the ``home`` keyframe,
    else generated from the reference configuration (:func:`wildamp.home_pose.generated_home_qpos`)."""
    key = _id(model, mujoco.mjtObj.mjOBJ_KEY, HOME_KEY)
    if home is None and key >= 0:
        return model.key_qpos[key].copy(), f"keyframe {HOME_KEY!r}"
    qpos = generated_home_qpos(model, root_joint, FOOT_GEOMS, home)
    given = ", ".join(f"{k}={v:g}" for k, v in (home or {}).items())
    return qpos, f"generated ({given or 'reference joint angles'}; pelvis level, pads on z = 0)"


def _full(x: np.ndarray) -> list:
    """Python floats at full precision (YAML writes their repr, which reads back exactly)."""
    return [float(v) for v in np.asarray(x, dtype=np.float64).ravel()]


def _axis(a: np.ndarray) -> list[float]:
    """A unit axis for YAML: round-off below 1e-9 removed (and no -0.0)."""
    return [float(v) + 0.0 for v in np.round(a, 9)]


@dataclass(frozen=True)
class RobotConfigResult:
    """A generated config with what its checks measured (for the command's report)."""

    config: dict[str, Any]
    symmetry: dict[str, tuple[float, str]]  # criterion -> (worst deviation, where)
    tolerances: Tolerances
    standing: Standing


def build_robot_config(model_path: str | os.PathLike, *, home: Mapping[str, float] | None = None,
                       sites: Mapping[str, str] | None = None,
                       tolerances: Tolerances | None = None) -> RobotConfigResult:
    """Derive the robot config of an MJCF file and check it (symmetry, home pose stands).

    ``home``: joint values of a generated home pose (overrides a ``home`` keyframe); ``sites``:
    ``{role: site name}`` for sites named otherwise than :data:`SITE_ROLES` says. Raises ValueError
    / FileNotFoundError for input wildamp cannot use, :class:`wildamp.symmetry.RobotCheckError` for a
    model that is asymmetric or does not stand on its home pose.
    """
    tol = tolerances or Tolerances()
    model = load_model(model_path)
    act_names, jnt_names = _actuated_joints(model)
    root_body, root_joint = _root(model)
    _require_pads(model)
    site = _sites(model, sites)
    symmetry = check_symmetry(model, jnt_names, root_body, FOOT_GEOMS, tol)
    perm, sign = mirror_signs(model, jnt_names, root_body, tol)
    home_qpos, home_source = resolve_home(model, root_joint, home)
    standing = standing_check(paths.resolve(model_path), home_qpos, root_body, jnt_names, FOOT_GEOMS)
    jids = [_id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in jnt_names]
    cfg = {
        "version": CONFIG_VERSION,
        "model_path": _rel_model_path(model_path),
        "root_body": root_body,
        "root_joint": root_joint,
        "nq": int(model.nq),
        "nv": int(model.nv),
        "nu": int(model.nu),
        "sim_dt": float(model.opt.timestep),
        "actuator_names": act_names,
        "joint_names": jnt_names,
        "joint_ranges": [_full(model.jnt_range[j]) for j in jids],
        "joint_axes": [_axis(a) for a in joint_axes(model, jnt_names, root_body)],
        "qpos_adr": [int(model.jnt_qposadr[j]) for j in jids],
        "qvel_adr": [int(model.jnt_dofadr[j]) for j in jids],
        "foot_geoms": list(FOOT_GEOMS),
        "pad_sites": [site[r] for r in ("left_toe", "left_heel", "right_toe", "right_heel")],
        "foot_sites": [site["left_foot"], site["right_foot"]],
        "imu_site": site["imu"],
        "mirror": [
            {"joint": n, "partner": jnt_names[perm[i]], "sign": int(sign[i])} for i, n in enumerate(jnt_names)
        ],
        "home_qpos": _full(home_qpos),
        "home_source": home_source,
        "total_mass": round(float(np.sum(model.body_mass)), 6),
    }
    return RobotConfigResult(config=cfg, symmetry=symmetry, tolerances=tol, standing=standing)


def generate_robot_config(model_path: str | os.PathLike, **options: Any) -> dict[str, Any]:
    """The robot config (plain dict, YAML-ready) of an MJCF file; options as :func:`build_robot_config`."""
    return build_robot_config(model_path, **options).config


def write_robot_config(
    model_path: str | os.PathLike, out_path: str | os.PathLike = paths.DEFAULT_ROBOT_CONFIG, **options: Any,
) -> RobotConfigResult:
    """Generate the config of ``model_path`` (options as :func:`build_robot_config`), write it as
    YAML to ``out_path`` and return it with its check results."""
    result = build_robot_config(model_path, **options)
    out = paths.resolve(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# Generated by `wildamp robot-config` from the MJCF (wildamp.robot.write_robot_config).\n"
        "# Do not edit by hand: regenerate when the model changes (a test checks they agree).\n"
    )
    out.write_text(header + yaml.safe_dump(result.config, sort_keys=False, default_flow_style=None, width=100))
    return result


# ---------------------------------------------------------------------------------- RobotSpec


@dataclass(frozen=True, eq=False)  # eq=False: identity hash, usable as a static jit argument
class RobotSpec:
    """robot_config.yaml as typed arrays. Joint order == actuator order == action order."""

    model_path: str
    root_body: str
    root_joint: str
    nq: int
    nv: int
    nu: int
    sim_dt: float
    actuator_names: tuple[str, ...]
    joint_names: tuple[str, ...]
    joint_ranges: np.ndarray  # (J, 2) rad
    joint_axes: np.ndarray  # (J, 3) unit axes in the pelvis frame at qpos0 (what +q turns about)
    qpos_adr: np.ndarray  # (J,) int
    qvel_adr: np.ndarray  # (J,) int
    foot_geoms: tuple[str, ...]  # [left_toe, left_heel, right_toe, right_heel]
    pad_sites: tuple[str | None, ...]  # optional sites (None: not in the model)
    foot_sites: tuple[str | None, ...]  # [left, right]
    imu_site: str | None
    mirror_perm: np.ndarray  # (J,) int: index of each joint's mirror partner
    mirror_sign: np.ndarray  # (J,) float: +-1
    home_qpos: np.ndarray  # (nq,)
    home_source: str  # the keyframe, or how the home pose was generated
    total_mass: float

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def home_joint_pos(self) -> np.ndarray:
        """Joint angles of ``home`` in actuator order (the servo targets that hold the home pose)."""
        return self.home_qpos[self.qpos_adr]


_SPEC_KEYS = (
    "version", "model_path", "root_body", "root_joint", "nq", "nv", "nu", "sim_dt", "actuator_names",
    "joint_names", "joint_ranges", "joint_axes", "qpos_adr", "qvel_adr", "foot_geoms", "pad_sites", "foot_sites",
    "imu_site", "mirror", "home_qpos", "home_source", "total_mass",
)  # fmt: skip


def spec_from_dict(cfg: dict[str, Any], source: str = "<dict>") -> RobotSpec:
    """Build a RobotSpec from a config dict; every key must be present and none may be unknown."""
    missing = [k for k in _SPEC_KEYS if k not in cfg]
    unknown = [k for k in cfg if k not in _SPEC_KEYS]
    if missing or unknown:
        raise ValueError(f"{source}: missing keys {missing}, unknown keys {unknown}")
    if cfg["version"] != CONFIG_VERSION:
        raise ValueError(f"{source}: config version {cfg['version']} != supported {CONFIG_VERSION} "
                         "(regenerate it with `wildamp robot-config MODEL.xml`)")
    names = tuple(cfg["joint_names"])
    mirror = {m["joint"]: m for m in cfg["mirror"]}
    if set(mirror) != set(names):
        raise ValueError(f"{source}: 'mirror' joints {sorted(mirror)} != joint_names {sorted(names)}")
    index = {n: i for i, n in enumerate(names)}
    unknown_partner = [m["partner"] for m in cfg["mirror"] if m["partner"] not in index]
    if unknown_partner:
        raise ValueError(f"{source}: mirror partners not among joint_names: {unknown_partner}")
    spec = RobotSpec(
        model_path=str(cfg["model_path"]),
        root_body=str(cfg["root_body"]),
        root_joint=str(cfg["root_joint"]),
        nq=int(cfg["nq"]),
        nv=int(cfg["nv"]),
        nu=int(cfg["nu"]),
        sim_dt=float(cfg["sim_dt"]),
        actuator_names=tuple(cfg["actuator_names"]),
        joint_names=names,
        joint_ranges=np.asarray(cfg["joint_ranges"], dtype=np.float64).reshape(len(names), 2),
        joint_axes=np.asarray(cfg["joint_axes"], dtype=np.float64).reshape(len(names), 3),
        qpos_adr=np.asarray(cfg["qpos_adr"], dtype=np.int64),
        qvel_adr=np.asarray(cfg["qvel_adr"], dtype=np.int64),
        foot_geoms=tuple(cfg["foot_geoms"]),
        pad_sites=tuple(cfg["pad_sites"]),
        foot_sites=tuple(cfg["foot_sites"]),
        imu_site=None if cfg["imu_site"] is None else str(cfg["imu_site"]),
        mirror_perm=np.asarray([index[mirror[n]["partner"]] for n in names], dtype=np.int64),
        mirror_sign=np.asarray([float(mirror[n]["sign"]) for n in names], dtype=np.float64),
        home_qpos=np.asarray(cfg["home_qpos"], dtype=np.float64),
        home_source=str(cfg["home_source"]),
        total_mass=float(cfg["total_mass"]),
    )
    lengths = {"qpos_adr": spec.qpos_adr, "qvel_adr": spec.qvel_adr, "actuator_names": spec.actuator_names}
    for field, arr in lengths.items():
        if len(arr) != len(names):
            raise ValueError(f"{source}: {field} has {len(arr)} entries, joint_names has {len(names)}")
    for field, arr, n in (("pad_sites", spec.pad_sites, 4), ("foot_sites", spec.foot_sites, 2)):
        if len(arr) != n:
            raise ValueError(f"{source}: {field} has {len(arr)} entries, expected {n} (names or null)")
    if spec.home_qpos.shape != (spec.nq,):
        raise ValueError(f"{source}: home_qpos has shape {spec.home_qpos.shape}, expected ({spec.nq},)")
    if not np.all(np.isin(np.abs(spec.mirror_sign), [1.0])):
        raise ValueError(f"{source}: mirror signs must be +-1, got {spec.mirror_sign.tolist()}")
    return spec


def check_spec_against_model(spec: RobotSpec, model: mujoco.MjModel) -> None:
    """Raise ValueError naming every way ``spec`` disagrees with ``model`` (names, addresses, ranges)."""
    problems: list[str] = []
    if (model.nq, model.nv, model.nu) != (spec.nq, spec.nv, spec.nu):
        problems.append(
            f"(nq, nv, nu) model {(model.nq, model.nv, model.nu)} != config {(spec.nq, spec.nv, spec.nu)}"
        )
    for i, n in enumerate(spec.joint_names):
        j = _id(model, mujoco.mjtObj.mjOBJ_JOINT, n)
        if j < 0:
            problems.append(f"joint {n!r} not in model")
            continue
        if model.jnt_qposadr[j] != spec.qpos_adr[i] or model.jnt_dofadr[j] != spec.qvel_adr[i]:
            problems.append(
                f"joint {n!r}: model qpos/qvel address ({model.jnt_qposadr[j]}, {model.jnt_dofadr[j]}) "
                f"!= config ({spec.qpos_adr[i]}, {spec.qvel_adr[i]})"
            )
        if not np.allclose(model.jnt_range[j], spec.joint_ranges[i], rtol=0.0, atol=RANGE_MATCH_TOL):
            problems.append(
                f"joint {n!r}: model range {model.jnt_range[j].tolist()} != config {spec.joint_ranges[i].tolist()}"
            )
        if i < model.nu:
            jact = _name(model, mujoco.mjtObj.mjOBJ_JOINT, int(model.actuator_trnid[i, 0]))
            if jact != n:
                problems.append(f"actuator {i} drives joint {jact!r}, config expects {n!r}")
    for obj, names, kind in (
        (mujoco.mjtObj.mjOBJ_GEOM, spec.foot_geoms, "geom"),
        (mujoco.mjtObj.mjOBJ_SITE, tuple(n for n in spec.pad_sites + spec.foot_sites + (spec.imu_site,) if n),
         "site"),
        (mujoco.mjtObj.mjOBJ_BODY, (spec.root_body,), "body"),
        (mujoco.mjtObj.mjOBJ_JOINT, (spec.root_joint,), "joint"),
    ):
        problems += [f"{kind} {n!r} not in model" for n in names if _id(model, obj, n) < 0]
    joints_found = all(_id(model, mujoco.mjtObj.mjOBJ_JOINT, n) >= 0 for n in spec.joint_names)
    if joints_found and _id(model, mujoco.mjtObj.mjOBJ_BODY, spec.root_body) >= 0:
        # A joint axis reversed in the model flips what +q means for every clip and policy.
        axes = joint_axes(model, spec.joint_names, spec.root_body)
        for n, a_model, a_cfg in zip(spec.joint_names, axes, spec.joint_axes):
            if np.linalg.norm(a_model - a_cfg) > AXIS_MATCH_TOL:
                how = " (reversed)" if a_model @ a_cfg < 0 else ""
                problems.append(f"joint {n!r}: model axis {_axis(a_model)} != config axis {_axis(a_cfg)}{how}")
    if problems:
        raise ValueError(f"robot config {spec.model_path!r} does not match the model: " + "; ".join(problems))


def load_robot_spec(
    path: str | os.PathLike = paths.DEFAULT_ROBOT_CONFIG, model: mujoco.MjModel | None = None
) -> RobotSpec:
    """Load robot_config.yaml into a RobotSpec; if ``model`` is given, check it matches (ValueError)."""
    p = paths.resolve(path)
    if not p.is_file():
        raise FileNotFoundError(f"robot config not found: {p} (generate it with `wildamp robot-config MODEL.xml`)")
    cfg = yaml.safe_load(p.read_text())
    if not isinstance(cfg, dict):
        raise ValueError(f"{p}: expected a mapping at the top level")
    spec = spec_from_dict(cfg, source=str(p))
    if model is not None:
        check_spec_against_model(spec, model)
    return spec


# --------------------------------------------------------------------------------------- helpers


def joint_index(spec: RobotSpec, name: str) -> int:
    """Index of joint ``name`` in the spec's (actuator) order; KeyError naming it if absent."""
    try:
        return spec.joint_names.index(name)
    except ValueError:
        raise KeyError(f"joint {name!r} not in robot spec joints {list(spec.joint_names)}") from None


def mirror_joint_vector(spec: RobotSpec, q: Any) -> Any:
    """Left/right mirror of joint-space vectors ``q[..., J]`` (numpy or jax): ``q'[i] = s_i q[perm_i]``.

    Because the signs are +-1 and the permutation is an involution, this is its own inverse. It also
    mirrors joint velocities and actions (same linear map).
    """
    if q.shape[-1] != spec.num_joints:
        raise ValueError(f"last axis has size {q.shape[-1]}, expected {spec.num_joints} joints")
    return q[..., spec.mirror_perm] * spec.mirror_sign.astype(q.dtype)
