"""wildamp.robot: the model, robot_config.yaml, mirror signs, and CAD-style models (CPU, fast)."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
import yaml

from wildamp import paths, robot
from wildamp.cli import robot_config_main

CAD_DIR = Path(__file__).parent / "data" / "cad_like"
CAD_XML = CAD_DIR / "wildrobot_cad.xml"
M = np.diag([1.0, -1.0, 1.0])

# ARCHITECTURE.md §4 (facts about the real robot, not outputs of the code under test).
EXPECTED_ORDER = (
    "waist_yaw", "left_hip_pitch", "left_hip_roll", "left_knee_pitch", "left_ankle_pitch",
    "right_hip_pitch", "right_hip_roll", "right_knee_pitch", "right_ankle_pitch",
)  # fmt: skip
EXPECTED_RANGES = {
    "waist_yaw": (-0.5236, 0.5236),
    "left_hip_pitch": (-0.0873, 1.5708),
    "left_hip_roll": (-1.5708, 0.1745),
    "left_knee_pitch": (0.0, 1.3963),
    "left_ankle_pitch": (-0.7854, 0.7854),
    "right_hip_pitch": (-1.5708, 0.0873),
    "right_hip_roll": (-0.1745, 1.5708),
    "right_knee_pitch": (0.0, 1.3963),
    "right_ankle_pitch": (-0.7854, 0.7854),
}
EXPECTED_SIGN = {"waist_yaw": -1, "hip_pitch": -1, "hip_roll": -1, "knee_pitch": 1, "ankle_pitch": 1}
EXPECTED_MASS = {"waist": 0.44, "upper_torso": 0.84, "hip": 0.085, "thigh": 0.237, "shank": 0.376, "foot": 0.349}


@pytest.fixture(scope="module")
def model() -> mujoco.MjModel:
    return robot.load_model()


@pytest.fixture(scope="module")
def spec(model: mujoco.MjModel) -> robot.RobotSpec:
    return robot.load_robot_spec(model=model)


def _pose(model: mujoco.MjModel, spec: robot.RobotSpec, q: np.ndarray) -> mujoco.MjData:
    """Kinematics at home root pose with joint angles q (actuator order)."""
    d = mujoco.MjData(model)
    d.qpos[:] = spec.home_qpos
    d.qpos[spec.qpos_adr] = q
    mujoco.mj_kinematics(model, d)
    return d


# ----------------------------------------------------------------------------- model facts


def test_model_names_ranges_servos(model: mujoco.MjModel) -> None:
    acts = [model.actuator(i).name for i in range(model.nu)]
    joints = [model.joint(int(model.actuator_trnid[i, 0])).name for i in range(model.nu)]
    assert tuple(joints) == EXPECTED_ORDER and tuple(acts) == EXPECTED_ORDER
    for name, (lo, hi) in EXPECTED_RANGES.items():
        j = model.joint(name)
        np.testing.assert_allclose(j.range, [lo, hi], atol=1e-6, err_msg=name)
        assert j.damping[0] == pytest.approx(0.08516) and j.frictionloss[0] == pytest.approx(0.022275)
        assert j.armature[0] == pytest.approx(0.024992)
        a = model.actuator(name)
        np.testing.assert_allclose(a.ctrlrange, [lo, hi], atol=1e-6)
        np.testing.assert_allclose(a.forcerange, [-4, 4])
        assert a.gainprm[0] == pytest.approx(21.1)  # kp
        assert a.biasprm[1] == pytest.approx(-21.1) and a.biasprm[2] == pytest.approx(-0.5)  # -kp, -kv
    assert model.opt.timestep == pytest.approx(0.002)
    assert model.opt.integrator == mujoco.mjtIntegrator.mjINT_EULER
    assert model.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_EULERDAMP


def test_masses(model: mujoco.MjModel) -> None:
    assert float(np.sum(model.body_mass)) == pytest.approx(3.38, abs=0.01)
    for part, mass in EXPECTED_MASS.items():
        names = [part] if part in ("waist", "upper_torso") else [f"left_{part}", f"right_{part}"]
        for n in names:
            assert model.body(n).mass[0] == pytest.approx(mass), n


def test_home_geometry(model: mujoco.MjModel, spec: robot.RobotSpec) -> None:
    d = _pose(model, spec, spec.home_joint_pos)
    assert d.xpos[model.body("waist").id][2] == pytest.approx(0.469)
    for side, y in (("left", 0.054), ("right", -0.054)):
        np.testing.assert_allclose(d.xanchor[model.joint(f"{side}_hip_pitch").id][1:], [y, 0.436], atol=2e-3)
        assert d.xanchor[model.joint(f"{side}_knee_pitch").id][2] == pytest.approx(0.244, abs=2e-3)
        assert d.xanchor[model.joint(f"{side}_ankle_pitch").id][2] == pytest.approx(0.064, abs=2e-3)
        for pad in ("toe", "heel"):
            g = model.geom(f"{side}_{pad}").id
            assert d.geom_xpos[g][1] == pytest.approx(np.sign(y) * 0.091, abs=3e-3)
            bottom = d.geom_xpos[g][2] - model.geom_size[g][2]
            assert bottom == pytest.approx(0.0, abs=1e-6), "soles must touch z=0 at home"
    # Sole length ~15 cm: heel back edge to toe front edge.
    toe, heel = model.geom("left_toe"), model.geom("left_heel")
    length = (d.geom_xpos[toe.id][0] + toe.size[0]) - (d.geom_xpos[heel.id][0] - heel.size[0])
    assert length == pytest.approx(0.15, abs=0.005)


def test_only_pads_touch_floor(model: mujoco.MjModel) -> None:
    floor = model.geom("floor").id
    colliding = []
    for g in range(model.ngeom):
        if g == floor:
            continue
        c1 = model.geom_contype[g] & model.geom_conaffinity[floor]
        c2 = model.geom_contype[floor] & model.geom_conaffinity[g]
        if c1 or c2:
            colliding.append(model.geom(g).name)
    assert sorted(colliding) == sorted(robot.FOOT_GEOMS)
    # No foot-foot (pad-pad) collisions.
    pads = [model.geom(n).id for n in robot.FOOT_GEOMS]
    for a in pads:
        for b in pads:
            assert not (model.geom_contype[a] & model.geom_conaffinity[b]), (a, b)


def test_robot_xml_loads_standalone() -> None:
    m = robot.load_model(paths.ASSETS_DIR / "wildrobot.xml")
    assert m.nu == 9 and m.nq == 16
    for cam in ("track", "side", "front"):
        assert robot.load_model().camera(cam) is not None


def test_load_model_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.xml"
    with pytest.raises(FileNotFoundError, match="nope.xml"):
        robot.load_model(missing)


def test_plus_q_semantics(model: mujoco.MjModel, spec: robot.RobotSpec) -> None:
    """Each joint's +q does what ARCHITECTURE.md §4 says it does (robot faces +x, left is +y)."""
    home = spec.home_joint_pos
    d0 = _pose(model, spec, home)

    def moved(joint: str, dq: float) -> mujoco.MjData:
        q = home.copy()
        q[robot.joint_index(spec, joint)] += dq
        return _pose(model, spec, q)

    def foot(d: mujoco.MjData, side: str) -> np.ndarray:
        return d.site_xpos[model.site(f"{side}_foot_site").id]

    assert foot(moved("left_hip_pitch", 0.5), "left")[0] > foot(d0, "left")[0] + 0.1  # forward
    assert foot(moved("right_hip_pitch", -0.5), "right")[0] > foot(d0, "right")[0] + 0.1  # - is flexion
    assert foot(moved("left_hip_roll", -0.5), "left")[1] > foot(d0, "left")[1] + 0.1  # - abduction: outward
    assert foot(moved("right_hip_roll", 0.5), "right")[1] < foot(d0, "right")[1] - 0.1  # + abduction
    for side in ("left", "right"):
        d = moved(f"{side}_knee_pitch", 0.5)
        assert foot(d, side)[0] < foot(d0, side)[0] - 0.05  # flexion: foot goes back
        d = moved(f"{side}_ankle_pitch", 0.3)
        toe, heel = (d.geom_xpos[model.geom(f"{side}_{p}").id] for p in ("toe", "heel"))
        assert toe[2] < heel[2] - 0.01  # toe down
    d = moved("waist_yaw", 0.3)
    torso_x = d.xmat[model.body("upper_torso").id].reshape(3, 3)[:, 0]
    assert torso_x[1] > 0.2  # positive yaw turns the torso to the left


# --------------------------------------------------------------------------- robot config


def test_generated_config_matches_committed() -> None:
    committed = yaml.safe_load(paths.DEFAULT_ROBOT_CONFIG.read_text())
    generated = robot.generate_robot_config(paths.DEFAULT_MODEL)
    assert generated == committed, "assets/robot_config.yaml is stale: run `wildamp robot-config assets/scene.xml`"


def test_mirror_signs_match_design(spec: robot.RobotSpec) -> None:
    for i, name in enumerate(spec.joint_names):
        base = name.removeprefix("left_").removeprefix("right_")
        assert spec.mirror_sign[i] == EXPECTED_SIGN[base], name
        partner = spec.joint_names[spec.mirror_perm[i]]
        swap = ("left_", "right_") if name.startswith("left_") else ("right_", "left_")
        expected_partner = name.replace(*swap)
        assert partner == expected_partner


def test_spec_fields(spec: robot.RobotSpec, model: mujoco.MjModel) -> None:
    assert spec.joint_names == EXPECTED_ORDER
    assert spec.foot_geoms == ("left_toe", "left_heel", "right_toe", "right_heel")
    assert spec.root_body == "waist" and spec.total_mass == pytest.approx(float(np.sum(model.body_mass)))
    np.testing.assert_allclose(spec.joint_ranges, [EXPECTED_RANGES[n] for n in spec.joint_names], atol=1e-6)
    np.testing.assert_allclose(spec.home_qpos, model.key("home").qpos)
    assert spec.home_qpos[2] == pytest.approx(0.469)
    assert robot.joint_index(spec, "left_knee_pitch") == 3
    with pytest.raises(KeyError, match="left_elbow"):
        robot.joint_index(spec, "left_elbow")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mirrored_pose_gives_mirrored_feet(model: mujoco.MjModel, spec: robot.RobotSpec, seed: int) -> None:
    rng = np.random.default_rng(seed)
    q = rng.uniform(spec.joint_ranges[:, 0], spec.joint_ranges[:, 1])
    qm = robot.mirror_joint_vector(spec, q)
    assert np.all(qm >= spec.joint_ranges[:, 0] - 1e-9) and np.all(qm <= spec.joint_ranges[:, 1] + 1e-9)
    d, dm = _pose(model, spec, q), _pose(model, spec, qm)
    for names, pos, mat in (
        (spec.foot_geoms, "geom_xpos", "geom_xmat"),
        (spec.pad_sites + spec.foot_sites, "site_xpos", "site_xmat"),
    ):
        obj = model.geom if pos == "geom_xpos" else model.site
        for n in names:
            partner = n.replace("left_", "right_") if n.startswith("left_") else n.replace("right_", "left_")
            i, k = obj(n).id, obj(partner).id
            np.testing.assert_allclose(getattr(dm, pos)[k], M @ getattr(d, pos)[i], atol=1e-9, err_msg=n)
            R, Rm = getattr(d, mat)[i].reshape(3, 3), getattr(dm, mat)[k].reshape(3, 3)
            np.testing.assert_allclose(Rm, M @ R @ M, atol=1e-9, err_msg=n)
    # The torso yaw is mirrored too (waist_yaw self-mirror with sign -1).
    t = model.body("upper_torso").id
    np.testing.assert_allclose(dm.xmat[t].reshape(3, 3), M @ d.xmat[t].reshape(3, 3) @ M, atol=1e-9)


def test_mirror_joint_vector_numpy_and_jax(spec: robot.RobotSpec) -> None:
    q = np.random.default_rng(0).normal(size=(4, 3, spec.num_joints))
    qm = robot.mirror_joint_vector(spec, q)
    np.testing.assert_allclose(robot.mirror_joint_vector(spec, qm), q)  # involution
    left = robot.joint_index(spec, "left_hip_pitch")
    right = robot.joint_index(spec, "right_hip_pitch")
    np.testing.assert_allclose(qm[..., right], -q[..., left])
    qj = robot.mirror_joint_vector(spec, jnp.asarray(q, dtype=jnp.float32))
    assert isinstance(qj, jnp.ndarray)
    np.testing.assert_allclose(np.asarray(qj), qm, rtol=1e-6)
    with pytest.raises(ValueError, match="expected 9"):
        robot.mirror_joint_vector(spec, np.zeros(8))


def test_spec_checked_against_model(model: mujoco.MjModel, tmp_path: Path) -> None:
    cfg = robot.generate_robot_config(paths.DEFAULT_MODEL)
    bad = dict(cfg, qpos_adr=[cfg["qpos_adr"][0]] + cfg["qpos_adr"][2:] + [cfg["qpos_adr"][1]])
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(bad))
    robot.load_robot_spec(p)  # structurally valid ...
    with pytest.raises(ValueError, match="left_hip_pitch"):  # ... but not this model's addresses
        robot.load_robot_spec(p, model=model)
    renamed = dict(cfg, foot_geoms=["left_toe", "left_heel", "right_toe", "right_sole"])
    p.write_text(yaml.safe_dump(renamed))
    with pytest.raises(ValueError, match="right_sole"):
        robot.load_robot_spec(p, model=model)
    p.write_text(yaml.safe_dump(dict(cfg, extra_key=1)))
    with pytest.raises(ValueError, match="extra_key"):
        robot.load_robot_spec(p)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        robot.load_robot_spec(tmp_path / "missing.yaml")


def test_robot_config_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rc.yaml"
    assert robot_config_main(str(paths.DEFAULT_MODEL), str(out)) == 0
    assert str(out) in capsys.readouterr().out
    assert yaml.safe_load(out.read_text()) == robot.generate_robot_config(paths.DEFAULT_MODEL)
    assert robot_config_main(str(tmp_path / "absent.xml"), str(out)) == 2
    assert "absent.xml" in capsys.readouterr().err


@pytest.mark.parametrize("options,culprit", [
    ({"tolerances": ["weight=0.1"]}, "weight"),
    ({"tolerances": ["mass=-1"]}, "mass=-1"),
    ({"sites": ["imu=no_such_site"]}, "no_such_site"),
    ({"sites": ["elbow=imu"]}, "elbow"),
    ({"home": "left_elbow=0.2"}, "left_elbow"),
    ({"home": "left_knee_pitch=3.0"}, "left_knee_pitch"),
    ({"home": "left_knee_pitch"}, "JOINT=RADIANS"),
])
def test_robot_config_bad_input_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      options: dict, culprit: str) -> None:
    out = tmp_path / "rc.yaml"
    assert robot_config_main(str(paths.DEFAULT_MODEL), str(out), **options) == 2
    err = capsys.readouterr().err
    assert culprit in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_home_that_does_not_stand_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Both legs swung 1.2 rad forward: placed on its heels the robot falls backwards."""
    out = tmp_path / "rc.yaml"
    assert robot_config_main(str(paths.DEFAULT_MODEL), str(out), "left_hip_pitch=1.2,right_hip_pitch=-1.2") == 1
    err = capsys.readouterr().err
    assert "does not stand" in err and not out.exists()


def test_generated_home_stands_on_its_pads() -> None:
    """Without a keyframe: straight joints, level pelvis, lowest pad point at z = 0 (our model: 0.469 m)."""
    model = robot.load_model()
    qpos, source = robot.resolve_home(model, "root", {"left_knee_pitch": 0.0})
    assert source.startswith("generated")
    np.testing.assert_allclose(qpos, model.key("home").qpos, atol=1e-12)


# -------------------------------------------------------------------------- CAD-like models


def test_cad_like_model_generates_same_robot(tmp_path: Path) -> None:
    """Meshes + meshdir, rotated body frames (local joint axes z), extra sensors, dummy bodies."""
    m = robot.load_model(CAD_XML)
    assert m.nmesh > 0 and m.nsensor > 3
    cad = robot.generate_robot_config(CAD_XML)
    ref = robot.generate_robot_config(paths.DEFAULT_MODEL)
    assert cad["root_body"] == "base_link" and cad["actuator_names"][1] == "left_hip_pitch_servo"
    for key in ("joint_names", "joint_ranges", "mirror", "foot_geoms", "total_mass"):
        assert cad[key] == ref[key], key
    out = tmp_path / "cad.yaml"
    robot.write_robot_config(CAD_XML, out)
    spec = robot.load_robot_spec(out, model=m)
    assert spec.mirror_sign.tolist() == [-1, -1, -1, 1, 1, -1, -1, 1, 1]


def _cad_variant(tmp_path: Path, old: str, new: str) -> Path:
    """Copy the CAD-like fixture (with its meshes) and apply one textual edit (every occurrence)."""
    dst = tmp_path / "cad"
    shutil.copytree(CAD_DIR, dst)
    xml = dst / CAD_XML.name
    text = xml.read_text()
    assert text.count(old) >= 1, f"fixture edit {old!r} matches nothing"
    xml.write_text(text.replace(old, new))
    return xml


@pytest.mark.parametrize(
    "old,new,culprit",
    [
        # one thigh heavier than the other
        ('<inertial pos="0 0 -0.096" mass="0.237" diaginertia="0.00075 0.00075 0.00008"/>\n'
         '          <geom class="visual" mesh="thigh_shell" pos="0 0 -0.096"/>\n'
         '          <body name="right_shank"',
         '<inertial pos="0 0 -0.096" mass="0.300" diaginertia="0.00075 0.00075 0.00008"/>\n'
         '          <geom class="visual" mesh="thigh_shell" pos="0 0 -0.096"/>\n'
         '          <body name="right_shank"', "right_thigh"),
        # a missing heel pad
        ('<geom name="right_heel" class="collision" type="box" pos="-0.028 0 -0.059" size="0.022 0.0455 0.005"/>',
         "", "right_heel"),
        # a pad of another size
        ('name="right_toe" class="collision" type="box" pos="0.062 0 -0.059" size="0.038 0.046 0.005"',
         'name="right_toe" class="collision" type="box" pos="0.062 0 -0.059" size="0.030 0.046 0.005"',
         "left_toe"),
        # a pad moved 1 cm forward on one side only
        ('name="right_toe" class="collision" type="box" pos="0.062 0 -0.059"',
         'name="right_toe" class="collision" type="box" pos="0.072 0 -0.059"', "right_toe"),
        # right knee axis flipped: |sign| is still 1, but the ranges no longer mirror
        ('<joint name="right_knee_pitch" class="servo" axis="0 1 0"',
         '<joint name="right_knee_pitch" class="servo" axis="0 -1 0"', "right_knee_pitch"),
        # a tilted axis that is no mirror image of its partner
        ('<joint name="right_ankle_pitch" class="servo" axis="0 1 0"',
         '<joint name="right_ankle_pitch" class="servo" axis="0.3 1 0"', "right_ankle_pitch"),
        # a joint without its partner (renamed in the joint and in its actuator)
        ('"right_hip_roll"', '"right_hip_rol"', "right_hip_roll"),
    ],
    ids=[
        "thigh_mass", "missing_heel", "pad_size", "pad_position", "flipped_axis", "tilted_axis", "missing_partner"
    ],
)
def test_cad_like_asymmetry_is_refused(tmp_path: Path, old: str, new: str, culprit: str) -> None:
    xml = _cad_variant(tmp_path, old, new)
    with pytest.raises(ValueError, match=culprit):
        robot.generate_robot_config(xml)


# ------------------------------------------------- an exporter-style variant (built from the fixture)

#: Sites renamed as an exporter might name them (the foot sites are dropped: sites are optional).
EXPORT_SITES = {"imu": "imu_link", "left_toe_site": "LT_contact", "left_heel_site": "LH_contact",
                "right_toe_site": "RT_contact", "right_heel_site": "RH_contact"}
#: Body frames moved along their joint axis (m), differently on the two sides: physically the same robot.
EXPORT_OFFSETS = {"upper_torso": 0.012, "right_hip": 0.017, "left_shank": 0.021, "right_shank": -0.008,
                  "left_foot": 0.013}
LEFT_LEG = ("left_hip", "left_thigh", "left_shank", "left_foot")


def _shift_frame_along_joint_axis(body: mujoco.MjsBody, d: float) -> None:
    """Move the body frame by d along its joint axis, keeping everything it carries in place."""
    joint = body.first_joint()
    a = np.asarray(joint.axis, float) / np.linalg.norm(joint.axis)
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, np.asarray(body.quat, float) / np.linalg.norm(body.quat))
    body.pos = np.asarray(body.pos) + rot.reshape(3, 3) @ a * d
    for child in list(body.geoms) + list(body.sites) + list(body.bodies):
        child.pos = np.asarray(child.pos) - a * d
    body.ipos = np.asarray(body.ipos) - a * d


def _degrees(m: re.Match) -> str:
    lo, hi = (math.degrees(float(v)) for v in m.group(2).split())
    return f'{m.group(1)}{lo:.10g} {hi:.10g}"'


def _exporter_variant(dst: Path, heavier: tuple[str, ...] = (), pad_shift: tuple[str, list] | None = None,
                      key_tilt_deg: float | None = None) -> Path:
    """The CAD-like fixture as another exporter writes it; returns a scene (floor + robot) to configure.

    waist_yaw about -z; body frames offset along joint axes (EXPORT_OFFSETS); no keyframe (or a
    settled one tilted by ``key_tilt_deg``); renamed sites, no foot sites; ranges in degrees (their
    radians are no short decimals); ``heavier`` bodies 15 % heavier; ``pad_shift`` moves one pad.
    """
    s = mujoco.MjSpec.from_file(str(CAD_XML))
    s.joint("waist_yaw").axis = [0, 0, -1]
    for name, d in EXPORT_OFFSETS.items():
        _shift_frame_along_joint_axis(s.body(name), d)
    if key_tilt_deg is None:
        s.delete(s.key("home"))
    else:
        q = np.asarray(s.key("home").qpos, float)
        q[3:7] = [math.cos(math.radians(key_tilt_deg) / 2), 0, math.sin(math.radians(key_tilt_deg) / 2), 0]
        s.key("home").qpos = q
    for name in heavier:
        s.body(name).mass *= 1.15
        s.body(name).inertia = np.asarray(s.body(name).inertia) * 1.15
    if pad_shift is not None:
        s.geom(pad_shift[0]).pos = np.asarray(s.geom(pad_shift[0]).pos) + pad_shift[1]
    text = s.to_xml()
    text = re.sub(r'\s*<site name="(left|right)_foot_site"[^>]*/>', "", text)
    for old, new in EXPORT_SITES.items():
        text = text.replace(f'"{old}"', f'"{new}"')
    text = re.sub(r'(<joint [^>]*?range=")([^"]+)"', _degrees, text.replace('angle="radian"', 'angle="degree"'))
    (dst / "meshes").mkdir(parents=True)
    shutil.copy(CAD_DIR / "meshes" / "cube.obj", dst / "meshes" / "cube.obj")
    (dst / "robot.xml").write_text(text)
    (dst / "scene.xml").write_text(
        '<mujoco model="cad_scene"><include file="robot.xml"/><worldbody><geom name="floor" type="plane" '
        'size="0 0 0.05" contype="0" conaffinity="1"/></worldbody></mujoco>')
    return dst / "scene.xml"


def _site_flags() -> list[str]:
    return [f"{role.removesuffix('_site')}={EXPORT_SITES[role]}" for role in EXPORT_SITES]


def test_exporter_variant_goes_through_and_loads_in_the_env(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scene = _exporter_variant(tmp_path / "cad")
    model = robot.load_model(scene)
    assert model.nmesh > 0 and model.nkey == 0
    # What a world-frame check of body origins refuses: the shanks 13 mm from mirror images.
    d = mujoco.MjData(model)
    mujoco.mj_kinematics(model, d)
    gap = M @ d.xpos[model.body("left_shank").id] - d.xpos[model.body("right_shank").id]
    assert np.linalg.norm(gap) > 0.01
    out = tmp_path / "cad.yaml"
    assert robot_config_main(str(scene), str(out), sites=_site_flags()) == 0
    printed = capsys.readouterr().out
    assert "home: generated" in printed and "stands" in printed
    cfg = yaml.safe_load(out.read_text())
    ours = robot.generate_robot_config(paths.DEFAULT_MODEL)
    # Same robot: the mirror map, masses and joint axes agree with ours except the reversed waist yaw.
    assert cfg["mirror"] == ours["mirror"] and cfg["total_mass"] == pytest.approx(ours["total_mass"])
    axes = np.asarray(cfg["joint_axes"])
    np.testing.assert_allclose(axes[1:], np.asarray(ours["joint_axes"])[1:], atol=1e-6)
    np.testing.assert_allclose(axes[0], [0, 0, -1], atol=1e-6)
    assert cfg["pad_sites"] == ["LT_contact", "LH_contact", "RT_contact", "RH_contact"]
    assert cfg["foot_sites"] == [None, None] and cfg["imu_site"] == "imu_link"
    home = np.asarray(cfg["home_qpos"])
    assert home[2] == pytest.approx(0.469, abs=1e-6) and np.allclose(home[3:], [1, 0, 0, 0] + [0] * 9)
    # Ranges are stored exactly (degree ranges are no short decimals in radians).
    np.testing.assert_array_equal(np.asarray(cfg["joint_ranges"]), model.jnt_range[model.actuator_trnid[:, 0]])
    # The env accepts the generated config for this model.
    from wildamp.config import load_config
    from wildamp.env import WalkEnv
    env_cfg = load_config(paths.CONFIGS_DIR / "smoke.yaml",
                          [f"robot.model={scene}", f"robot.robot_config={out}", "env.physics=mujoco"])
    env = WalkEnv(env_cfg)
    assert env.spec.root_body == "base_link" and env.spec.joint_axes[0, 2] == pytest.approx(-1.0)
    # Our config with the variant's waist axis: refused for our model, naming the reversed axis.
    flipped = tmp_path / "flipped.yaml"
    flipped.write_text(yaml.safe_dump(dict(ours, joint_axes=[axes[0].tolist()] + ours["joint_axes"][1:])))
    with pytest.raises(ValueError, match="'waist_yaw'.*reversed"):
        robot.load_robot_spec(flipped, model=robot.load_model())


def test_settled_tilted_keyframe_goes_through(tmp_path: Path) -> None:
    """A 1.5° pelvis tilt in the keyframe changes nothing: symmetry is judged in the pelvis frame."""
    scene = _exporter_variant(tmp_path / "cad", key_tilt_deg=1.5)
    cfg = robot.generate_robot_config(scene)
    assert cfg["home_source"] == "keyframe 'home'" and cfg["imu_site"] is None
    assert [m["sign"] for m in cfg["mirror"]] == [-1, -1, -1, 1, 1, -1, -1, 1, 1]


@pytest.mark.parametrize("edit,culprit", [
    ({"heavier": LEFT_LEG}, "body 'left_hip'"),
    ({"pad_shift": ("right_toe", [0.01, 0, 0])}, "pad geom 'right_toe' centre is 10.0 mm"),
], ids=["leg_15_percent_heavier", "pad_moved_1cm"])
def test_exporter_variant_genuine_asymmetry_exits_1_naming_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: dict, culprit: str) -> None:
    scene = _exporter_variant(tmp_path / "cad", **edit)
    out = tmp_path / "cad.yaml"
    assert robot_config_main(str(scene), str(out), sites=_site_flags()) == 1
    err = capsys.readouterr().err
    assert culprit in err and "not left/right symmetric" in err and not out.exists()
    if "heavier" in edit:  # every heavier link is named, and a wider tolerance admits them
        assert all(f"body {b!r}" in err for b in LEFT_LEG)
        assert robot_config_main(str(scene), str(out), sites=_site_flags(),
                                 tolerances=["mass=0.2", "inertia=0.2"]) == 0
