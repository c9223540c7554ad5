"""The robot: model loading, names -> indices, mirror signs, robot_config.yaml generation/validation.

Everything about the robot that the rest of wildamp needs (joint order, addresses, ranges, feet,
left/right mirror map) is *derived from the MJCF by name* and written to ``robot_config.yaml``;
``RobotSpec`` is that file, loaded and (optionally) checked against a model. Nothing here hard-codes
a joint position or a mirror sign (ARCHITECTURE.md §3.2 and §4).

Mirror signs: for a left/right joint pair with world axes ``a_l``, ``a_r`` at the ``home`` keyframe,
the sagittal reflection ``M = diag(1, -1, 1)`` maps the left joint onto the right one. Joint axes are
pseudovectors, so a reflected axis is ``-M a``; the mirror sign is ``s = a_r . (-M a_l)`` (``+1``:
same angle on both sides gives mirrored poses, ``-1``: the angle must be negated). An unpaired joint
(``waist_yaw``) maps to itself with ``s = a . (-M a)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np
import yaml

from wildamp import paths

#: Sole pad collision geoms, in the order every contact vector of wildamp uses.
FOOT_GEOMS: tuple[str, ...] = ("left_toe", "left_heel", "right_toe", "right_heel")
#: Sites at the bottom centre of each pad (same order as FOOT_GEOMS).
PAD_SITES: tuple[str, ...] = ("left_toe_site", "left_heel_site", "right_toe_site", "right_heel_site")
#: One site per foot at the sole (left, right).
FOOT_SITES: tuple[str, ...] = ("left_foot_site", "right_foot_site")
#: Torso IMU site (gravity / gyro observations).
IMU_SITE = "imu"
HOME_KEY = "home"
CONFIG_VERSION = 1

_M = np.diag([1.0, -1.0, 1.0])  # sagittal reflection: left (+y) <-> right (-y)

# Symmetry tolerances (CAD exports carry rounding noise, so they are not exact-equality checks).
MASS_RTOL = 0.01  # 1 % relative body-mass difference between mirrored bodies
POS_ATOL = 2e-3  # 2 mm between a position and the mirror image of its partner
AXIS_ATOL = 1e-3  # |s| must be 1 within this (axes mirror images of each other)
RANGE_ATOL = 1e-3  # rad, joint ranges of a pair must map onto each other under the mirror sign


# --------------------------------------------------------------------------------------- loading


def load_model(path: str | os.PathLike = paths.DEFAULT_MODEL) -> mujoco.MjModel:
    """Load an MJCF file into a ``mujoco.MjModel`` (FileNotFoundError naming the path if absent)."""
    p = paths.resolve(path)
    if not p.is_file():
        raise FileNotFoundError(f"MuJoCo model file not found: {p}")
    return mujoco.MjModel.from_xml_path(str(p))


def _name(model: mujoco.MjModel, obj: mujoco.mjtObj, i: int) -> str:
    return mujoco.mj_id2name(model, obj, i) or ""


def _id(model: mujoco.MjModel, obj: mujoco.mjtObj, name: str) -> int:
    return mujoco.mj_name2id(model, obj, name)


def _partner_name(name: str) -> str | None:
    """``left_X`` <-> ``right_X``; None for a name without a side prefix (self-mirrored)."""
    if name.startswith("left_"):
        return "right_" + name[len("left_") :]
    if name.startswith("right_"):
        return "left_" + name[len("right_") :]
    return None


def _home_data(model: mujoco.MjModel) -> mujoco.MjData:
    """MjData at the ``home`` keyframe with kinematics computed."""
    key = _id(model, mujoco.mjtObj.mjOBJ_KEY, HOME_KEY)
    if key < 0:
        raise ValueError(f"model has no keyframe named {HOME_KEY!r} (needed for the home pose and mirror signs)")
    data = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, data, key)
    mujoco.mj_kinematics(model, data)
    return data


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


def _require(model: mujoco.MjModel, obj: mujoco.mjtObj, names: tuple[str, ...], what: str) -> None:
    missing = [n for n in names if _id(model, obj, n) < 0]
    if missing:
        raise ValueError(f"model is missing required {what}: {missing}")


def mirror_signs(model: mujoco.MjModel, joint_names: list[str] | tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(mirror_perm, mirror_sign) of ``joint_names`` derived from the joint world axes at ``home``.

    ``mirror_perm[i]`` is the index of joint i's mirror partner (``left_X`` <-> ``right_X``, itself for
    unprefixed joints); ``mirror_sign[i] = a_partner . (-M a_i)``. Raises ValueError naming a missing
    partner or a pair whose axes are not mirror images.
    """
    data = _home_data(model)
    index = {n: i for i, n in enumerate(joint_names)}
    perm = np.zeros(len(joint_names), dtype=np.int64)
    sign = np.zeros(len(joint_names), dtype=np.float64)
    for i, name in enumerate(joint_names):
        partner = _partner_name(name) or name
        if partner not in index:
            raise ValueError(f"joint {name!r} has no mirror partner {partner!r} among the actuated joints")
        j_i = _id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
        j_p = _id(model, mujoco.mjtObj.mjOBJ_JOINT, partner)
        s = float(data.xaxis[j_p] @ (-_M @ data.xaxis[j_i]))
        if abs(abs(s) - 1.0) > AXIS_ATOL:
            raise ValueError(
                f"joint axes of {name!r} and {partner!r} are not mirror images at {HOME_KEY!r} "
                f"(a_partner . (-M a) = {s:.4f}, expected +-1)"
            )
        perm[i] = index[partner]
        sign[i] = float(np.sign(s))
    return perm, sign


def validate_symmetry(model: mujoco.MjModel, joint_names: list[str] | tuple[str, ...]) -> None:
    """Raise ValueError naming the first left/right asymmetry of the model at ``home``.

    Checks: every ``left_*``/``right_*`` body, geom and site has its partner; mirrored bodies have equal
    masses (MASS_RTOL); pad geoms have equal sizes and types; body frames, pad geoms, sites and joint anchors
    lie at mirrored positions (POS_ATOL); each joint pair's ranges map onto each other under its
    mirror sign (RANGE_ATOL).
    """
    _require(model, mujoco.mjtObj.mjOBJ_GEOM, FOOT_GEOMS, "sole pad geoms")
    _require(model, mujoco.mjtObj.mjOBJ_SITE, PAD_SITES + FOOT_SITES + (IMU_SITE,), "sites")
    data = _home_data(model)

    def pairs(obj: mujoco.mjtObj, count: int, kind: str) -> list[tuple[str, int, int]]:
        out = []
        for i in range(count):
            n = _name(model, obj, i)
            p = _partner_name(n)
            if p is None:
                continue
            k = _id(model, obj, p)
            if k < 0:
                raise ValueError(f"{kind} {n!r} has no mirror partner {p!r}")
            if n.startswith("left_"):
                out.append((n, i, k))
        return out

    def check_pos(kind: str, n: str, x_l: np.ndarray, x_r: np.ndarray, partner: str | None = None) -> None:
        partner = partner or _partner_name(n)
        err = float(np.max(np.abs(_M @ x_l - x_r)))
        if err > POS_ATOL:
            raise ValueError(
                f"{kind} {n!r} and {partner!r} are not at mirrored positions at {HOME_KEY!r} "
                f"(error {err * 1000:.1f} mm > {POS_ATOL * 1000:.1f} mm)"
            )

    for n, i, k in pairs(mujoco.mjtObj.mjOBJ_BODY, model.nbody, "body"):
        m_l, m_r = float(model.body_mass[i]), float(model.body_mass[k])
        if abs(m_l - m_r) > MASS_RTOL * max(m_l, m_r):
            raise ValueError(
                f"body {n!r} mass {m_l:.4f} kg differs from {_partner_name(n)!r} mass {m_r:.4f} kg"
            )
        check_pos("body", n, data.xpos[i], data.xpos[k])
    for n, i, k in pairs(mujoco.mjtObj.mjOBJ_GEOM, model.ngeom, "geom"):
        if n in FOOT_GEOMS:
            if int(model.geom_type[i]) != int(model.geom_type[k]) or not np.allclose(
                model.geom_size[i], model.geom_size[k], atol=1e-4
            ):
                raise ValueError(f"pad geom {n!r} differs in type or size from {_partner_name(n)!r}")
            check_pos("pad geom", n, data.geom_xpos[i], data.geom_xpos[k])
    for n, i, k in pairs(mujoco.mjtObj.mjOBJ_SITE, model.nsite, "site"):
        check_pos("site", n, data.site_xpos[i], data.site_xpos[k])
    perm, sign = mirror_signs(model, joint_names)
    for i, n in enumerate(joint_names):
        j_i = _id(model, mujoco.mjtObj.mjOBJ_JOINT, n)
        j_p = _id(model, mujoco.mjtObj.mjOBJ_JOINT, joint_names[perm[i]])
        check_pos("joint anchor of", n, data.xanchor[j_i], data.xanchor[j_p], joint_names[perm[i]])
        mapped = np.sort(sign[i] * model.jnt_range[j_i])
        if np.max(np.abs(mapped - model.jnt_range[j_p])) > RANGE_ATOL:
            raise ValueError(
                f"joint range of {n!r} {model.jnt_range[j_i].tolist()} does not mirror onto "
                f"{joint_names[perm[i]]!r} {model.jnt_range[j_p].tolist()} (mirror sign {sign[i]:+.0f})"
            )


def _floats(x: np.ndarray, nd: int = 6) -> list:
    """Round for a stable, readable YAML (python floats, not numpy scalars)."""
    return np.round(np.asarray(x, dtype=np.float64), nd).tolist()


def generate_robot_config(model_path: str | os.PathLike) -> dict[str, Any]:
    """Derive the robot config (plain dict, YAML-ready) from an MJCF file, validating symmetry."""
    model = load_model(model_path)
    act_names, jnt_names = _actuated_joints(model)
    root_body, root_joint = _root(model)
    validate_symmetry(model, jnt_names)
    perm, sign = mirror_signs(model, jnt_names)
    jids = [_id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in jnt_names]
    key = _id(model, mujoco.mjtObj.mjOBJ_KEY, HOME_KEY)
    return {
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
        "joint_ranges": [_floats(model.jnt_range[j]) for j in jids],
        "qpos_adr": [int(model.jnt_qposadr[j]) for j in jids],
        "qvel_adr": [int(model.jnt_dofadr[j]) for j in jids],
        "foot_geoms": list(FOOT_GEOMS),
        "pad_sites": list(PAD_SITES),
        "foot_sites": list(FOOT_SITES),
        "imu_site": IMU_SITE,
        "mirror": [
            {"joint": n, "partner": jnt_names[perm[i]], "sign": int(sign[i])} for i, n in enumerate(jnt_names)
        ],
        "home_qpos": _floats(model.key_qpos[key]),
        "total_mass": round(float(np.sum(model.body_mass)), 6),
    }


def write_robot_config(
    model_path: str | os.PathLike, out_path: str | os.PathLike = paths.DEFAULT_ROBOT_CONFIG
) -> dict[str, Any]:
    """Generate the config of ``model_path`` and write it as YAML to ``out_path``; returns the dict."""
    cfg = generate_robot_config(model_path)
    out = paths.resolve(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# Generated by `wildamp robot-config` from the MJCF (wildamp.robot.write_robot_config).\n"
        "# Do not edit by hand: regenerate when the model changes (a test checks they agree).\n"
    )
    out.write_text(header + yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None, width=100))
    return cfg


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
    qpos_adr: np.ndarray  # (J,) int
    qvel_adr: np.ndarray  # (J,) int
    foot_geoms: tuple[str, ...]  # [left_toe, left_heel, right_toe, right_heel]
    pad_sites: tuple[str, ...]
    foot_sites: tuple[str, ...]  # [left_foot_site, right_foot_site]
    imu_site: str
    mirror_perm: np.ndarray  # (J,) int: index of each joint's mirror partner
    mirror_sign: np.ndarray  # (J,) float: +-1
    home_qpos: np.ndarray  # (nq,)
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
    "joint_names", "joint_ranges", "qpos_adr", "qvel_adr", "foot_geoms", "pad_sites", "foot_sites",
    "imu_site", "mirror", "home_qpos", "total_mass",
)  # fmt: skip


def spec_from_dict(cfg: dict[str, Any], source: str = "<dict>") -> RobotSpec:
    """Build a RobotSpec from a config dict; every key must be present and none may be unknown."""
    missing = [k for k in _SPEC_KEYS if k not in cfg]
    unknown = [k for k in cfg if k not in _SPEC_KEYS]
    if missing or unknown:
        raise ValueError(f"{source}: missing keys {missing}, unknown keys {unknown}")
    if cfg["version"] != CONFIG_VERSION:
        raise ValueError(f"{source}: config version {cfg['version']} != supported {CONFIG_VERSION}")
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
        qpos_adr=np.asarray(cfg["qpos_adr"], dtype=np.int64),
        qvel_adr=np.asarray(cfg["qvel_adr"], dtype=np.int64),
        foot_geoms=tuple(cfg["foot_geoms"]),
        pad_sites=tuple(cfg["pad_sites"]),
        foot_sites=tuple(cfg["foot_sites"]),
        imu_site=str(cfg["imu_site"]),
        mirror_perm=np.asarray([index[mirror[n]["partner"]] for n in names], dtype=np.int64),
        mirror_sign=np.asarray([float(mirror[n]["sign"]) for n in names], dtype=np.float64),
        home_qpos=np.asarray(cfg["home_qpos"], dtype=np.float64),
        total_mass=float(cfg["total_mass"]),
    )
    lengths = {"qpos_adr": spec.qpos_adr, "qvel_adr": spec.qvel_adr, "actuator_names": spec.actuator_names}
    for field, arr in lengths.items():
        if len(arr) != len(names):
            raise ValueError(f"{source}: {field} has {len(arr)} entries, joint_names has {len(names)}")
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
        if not np.allclose(model.jnt_range[j], spec.joint_ranges[i], atol=1e-5):
            problems.append(
                f"joint {n!r}: model range {model.jnt_range[j].tolist()} != config {spec.joint_ranges[i].tolist()}"
            )
        if i < model.nu:
            jact = _name(model, mujoco.mjtObj.mjOBJ_JOINT, int(model.actuator_trnid[i, 0]))
            if jact != n:
                problems.append(f"actuator {i} drives joint {jact!r}, config expects {n!r}")
    for obj, names, kind in (
        (mujoco.mjtObj.mjOBJ_GEOM, spec.foot_geoms, "geom"),
        (mujoco.mjtObj.mjOBJ_SITE, spec.pad_sites + spec.foot_sites + (spec.imu_site,), "site"),
        (mujoco.mjtObj.mjOBJ_BODY, (spec.root_body,), "body"),
        (mujoco.mjtObj.mjOBJ_JOINT, (spec.root_joint,), "joint"),
    ):
        problems += [f"{kind} {n!r} not in model" for n in names if _id(model, obj, n) < 0]
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
