"""wildamp.physics: standing under the servos, MuJoCo C vs MJX, contact normal forces (CPU).

One jitted MJX rollout (2,500 steps = 5 s, single env, recording root/joint state and the four pad
normal forces every step) is compiled once and reused for three scenarios:
  home  - servos hold home: the robot must stand, and pad forces must add up to m*g;
  squat - bent-knee targets, waist yaw and a lateral push: C and MJX trajectories must agree;
  drop  - released 3 cm above the floor: forces must be exactly 0 until the pads touch.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx

from wildamp import physics, robot

N_STEPS = 2500  # 5 s at 0.002 s
N_COMPARE = 500  # 1 s
G = 9.81


@pytest.fixture(scope="module")
def sim() -> dict[str, Any]:
    model = robot.load_model()
    spec = robot.load_robot_spec(model=model)
    mx = physics.make_mjx_model(model)
    pads = physics.geom_ids(model, spec.foot_geoms)

    def rollout(d: mjx.Data) -> tuple[jax.Array, jax.Array, jax.Array]:
        def body(d: mjx.Data, _: None) -> tuple[mjx.Data, tuple[jax.Array, jax.Array, jax.Array]]:
            d = mjx.step(mx, d)
            return d, (d.qpos, d.xmat[1].reshape(9), physics.mjx_geom_normal_forces(mx, d, pads))

        return jax.lax.scan(body, d, None, length=N_STEPS)[1]

    return {"model": model, "spec": spec, "pads": pads, "run": jax.jit(rollout), "mx": mx}


def _start(sim: dict[str, Any], ctrl: np.ndarray, dz: float = 0.0, push_y: float = 0.0) -> mujoco.MjData:
    model, spec = sim["model"], sim["spec"]
    d = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, d, model.key("home").id)
    d.qpos[2] += dz
    d.ctrl[:] = ctrl
    d.xfrc_applied[model.body("upper_torso").id, 1] = push_y
    return d


def _run_c(sim: dict[str, Any], d: mujoco.MjData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    model, pads = sim["model"], sim["pads"]
    qpos, up, forces = [], [], []
    for _ in range(N_STEPS):
        mujoco.mj_step(model, d)
        qpos.append(d.qpos.copy())
        up.append(d.xmat[1].copy())
        forces.append(physics.mj_geom_normal_forces(model, d, pads))
    return np.array(qpos), np.array(up), np.array(forces)


def _run_mjx(sim: dict[str, Any], d: mujoco.MjData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dx = mjx.put_data(sim["model"], d, impl="jax")
    return tuple(np.asarray(x) for x in sim["run"](dx))  # type: ignore[return-value]


def _squat_ctrl(spec: robot.RobotSpec) -> np.ndarray:
    """Bent knees with flat feet (ankle = hip - knee in the sagittal plane) and some waist yaw."""
    q = spec.home_joint_pos.copy()
    h, k = 0.25, 0.5
    for side, s_hip in (("left", 1.0), ("right", -1.0)):  # right hip pitch + is extension
        q[robot.joint_index(spec, f"{side}_hip_pitch")] = s_hip * h
        q[robot.joint_index(spec, f"{side}_knee_pitch")] = k
        q[robot.joint_index(spec, f"{side}_ankle_pitch")] = h - k
    q[robot.joint_index(spec, "waist_yaw")] = 0.2
    return q


@pytest.fixture(scope="module")
def home_runs(sim: dict[str, Any]) -> dict[str, tuple[np.ndarray, ...]]:
    ctrl = sim["spec"].home_joint_pos
    return {"c": _run_c(sim, _start(sim, ctrl)), "mjx": _run_mjx(sim, _start(sim, ctrl))}


@pytest.mark.parametrize("impl", ["c", "mjx"])
def test_stands_at_home_for_5s(sim: dict[str, Any], home_runs: dict, impl: str) -> None:
    qpos, xmat, _ = home_runs[impl]
    assert np.all(np.isfinite(qpos))
    z = qpos[:, 2]
    dev = np.max(np.abs(z - 0.469))
    assert dev < 0.02, f"{impl}: root height left 0.469 +- 2 cm (max deviation {dev * 100:.2f} cm)"
    upright = xmat[:, 8]  # world-z component of the pelvis z axis
    tilt = np.rad2deg(np.arccos(np.clip(upright.min(), -1, 1)))
    assert tilt < 5.0, f"{impl}: pelvis tilted {tilt:.1f} deg (limit 5 deg)"
    assert np.max(np.abs(qpos[:, :2])) < 0.01, f"{impl}: robot drifted in x/y while standing"


@pytest.mark.parametrize("impl", ["c", "mjx"])
def test_standing_normal_forces_sum_to_weight(sim: dict[str, Any], home_runs: dict, impl: str) -> None:
    forces = home_runs[impl][2][-1]  # settled, after 5 s
    mg = sim["spec"].total_mass * G
    total = forces.sum()
    assert abs(total - mg) < 0.02 * mg, f"{impl}: sum of pad normal forces {total:.2f} N != m*g {mg:.2f} N +- 2%"
    assert np.all(forces > 0.05 * mg), f"{impl}: every pad should carry load when standing: {forces}"
    # Symmetric stance: left and right feet carry equal load.
    assert forces[0] + forces[1] == pytest.approx(forces[2] + forces[3], rel=0.02)


def test_c_and_mjx_agree_over_1s(sim: dict[str, Any]) -> None:
    """A moving trajectory (squat + waist yaw + lateral push), MuJoCo C (float64) vs MJX (float32)."""
    ctrl = _squat_ctrl(sim["spec"])
    qc, _, fc = _run_c(sim, _start(sim, ctrl, push_y=3.0))
    qx, _, fx = _run_mjx(sim, _start(sim, ctrl, push_y=3.0))
    sl = slice(0, N_COMPARE)
    adr = sim["spec"].qpos_adr
    assert np.ptp(qc[sl][:, adr], axis=0).max() > 0.3, "test trajectory should actually move"
    dz = np.abs(qc[sl, 2] - qx[sl, 2]).max()
    dxy = np.abs(qc[sl, :2] - qx[sl, :2]).max()
    dq = np.abs(qc[sl][:, adr] - qx[sl][:, adr]).max()
    assert dz < 1e-3, f"root height differs by {dz * 1000:.2f} mm (tolerance 1 mm) over 1 s"
    assert dxy < 2e-3, f"root x/y differs by {dxy * 1000:.2f} mm (tolerance 2 mm) over 1 s"
    assert dq < 0.01, f"joint angles differ by {dq:.4f} rad (tolerance 0.01 rad) over 1 s"
    # Settled at 5 s: per-pad forces agree, the push toward +y loads the left (+y) foot more, and
    # the vertical balance still holds (a horizontal push adds no vertical load).
    mg = sim["spec"].total_mass * G
    np.testing.assert_allclose(fx[-1], fc[-1], atol=0.05 * mg, err_msg="per-pad normal forces C vs MJX")
    for f in (fc[-1], fx[-1]):
        assert f[0] + f[1] > f[2] + f[3] + 0.1 * mg, f"left foot should carry more: {f}"
        assert abs(f.sum() - mg) < 0.02 * mg


def test_inactive_contacts_give_zero_force(sim: dict[str, Any]) -> None:
    """Dropped from 3 cm: every pad force is exactly 0 while airborne, then the weight is carried."""
    ctrl = sim["spec"].home_joint_pos
    qc, _, fc = _run_c(sim, _start(sim, ctrl, dz=0.03))
    qx, _, fx = _run_mjx(sim, _start(sim, ctrl, dz=0.03))
    airborne = 30  # free fall from 3 cm takes ~78 ms = 39 steps
    assert np.all(qc[:airborne, 2] > 0.469 + 1e-3) and np.all(qx[:airborne, 2] > 0.469 + 1e-3)
    assert np.all(fc[:airborne] == 0.0), "C: forces while airborne"
    assert np.all(fx[:airborne] == 0.0), "MJX: forces from inactive (dist > 0) contacts"
    mg = sim["spec"].total_mass * G
    assert abs(fx[-1].sum() - mg) < 0.02 * mg and abs(fc[-1].sum() - mg) < 0.02 * mg


def test_geom_ids_names_missing(sim: dict[str, Any]) -> None:
    ids = physics.geom_ids(sim["model"], ["left_toe", "right_heel"])
    assert [sim["model"].geom(int(i)).name for i in ids] == ["left_toe", "right_heel"]
    with pytest.raises(KeyError, match="left_sole"):
        physics.geom_ids(sim["model"], ["left_toe", "left_sole"])


def test_mjx_forces_vmap(sim: dict[str, Any]) -> None:
    """The MJX force decoder works on a batch (vmap) and on jnp geom ids."""
    model = sim["model"]
    d = _start(sim, sim["spec"].home_joint_pos)
    mujoco.mj_forward(model, d)
    dx = mjx.put_data(model, d, impl="jax")
    batch = jax.tree_util.tree_map(lambda x: jnp.stack([x, x]), dx)
    decode = jax.vmap(physics.mjx_geom_normal_forces, in_axes=(None, 0, None))
    f = decode(sim["mx"], batch, jnp.asarray(sim["pads"]))
    ref = physics.mj_geom_normal_forces(model, d, sim["pads"])
    assert f.shape == (2, 4)
    np.testing.assert_allclose(np.asarray(f), np.stack([ref, ref]), rtol=1e-4, atol=1e-4)
    assert ref.sum() > 0


@pytest.mark.parametrize("cone", ["pyramidal", "elliptic"])
@pytest.mark.parametrize("condim", [1, 3, 4, 6])
def test_mjx_decoder_matches_mj_contact_force(sim: dict[str, Any], cone: str, condim: int) -> None:
    """Every cone/condim layout of efc rows decodes to mj_contactForce's normal force (C solve, MJX decode)."""
    model = robot.load_model()
    model.opt.cone = mujoco.mjtCone.mjCONE_PYRAMIDAL if cone == "pyramidal" else mujoco.mjtCone.mjCONE_ELLIPTIC
    model.geom_condim[sim["pads"]] = condim
    d = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, d, model.key("home").id)
    d.qpos[2] -= 0.001  # pressed 1 mm into the floor: every pad contact is active
    d.qpos[sim["spec"].qpos_adr[robot.joint_index(sim["spec"], "left_ankle_pitch")]] = 0.02  # uneven load
    mujoco.mj_forward(model, d)
    ref = physics.mj_geom_normal_forces(model, d, sim["pads"])
    dx = mjx.put_data(model, d, impl="jax")
    got = np.asarray(physics.mjx_geom_normal_forces(physics.make_mjx_model(model), dx, sim["pads"]))
    assert np.all(ref > 0) and np.ptp(ref) > 1.0
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3)
