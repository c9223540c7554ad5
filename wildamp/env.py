"""MJX walking environment for WildRobot: ``reset(rng)`` / ``step(state, action)`` over a pytree.

One env instance holds static things (the MJX model, index arrays, config); all per-episode data
lives in :class:`EnvState`, so ``jax.vmap(env.step)`` runs thousands of envs. Auto-reset happens
inside ``step``: the returned state of a finished episode is already the next episode's first state,
while the transition keeps what GAE and AMP need from the finished one (``final_critic_obs`` for
truncation bootstrapping, the AMP sample of the last real transition).

Frames and signs follow DESIGN.md §3: wxyz quaternions, heading-local root velocities (yaw removed,
pitch/roll kept), gravity projected into the body frame, joints by name.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx

from wildamp import features as F
from wildamp.features import heading_frame as to_heading_frame
from wildamp.features import quat_rotate as _quat_rotate
from wildamp.features import quat_rotate_inv
from wildamp import paths
from wildamp.config import REWARD_TERMS, Config
from wildamp.physics import geom_ids, make_mjx_model, mjx_geom_normal_forces
from wildamp.robot import RobotSpec, load_model, load_robot_spec

def quat_from_yaw(yaw: jax.Array) -> jax.Array:
    return jnp.stack([jnp.cos(yaw / 2), jnp.zeros_like(yaw), jnp.zeros_like(yaw), jnp.sin(yaw / 2)], -1)


# --------------------------------------------------------------------------------------------- #
# State
# --------------------------------------------------------------------------------------------- #


class EnvState(NamedTuple):
    data: mjx.Data
    obs: jax.Array                 # policy observation
    critic_obs: jax.Array          # privileged (or == obs when privileged_critic is false)
    reward: jax.Array              # task reward of the last transition
    terminated: jax.Array          # the last transition ended the episode by failure
    truncated: jax.Array           # the last transition hit the time limit
    final_critic_obs: jax.Array    # critic obs of the true last state (before auto-reset)
    amp_sample: jax.Array          # AMP sample of the last transition (history · F)
    amp_valid: jax.Array           # 0 where the sample would span an episode boundary
    reward_terms: dict[str, jax.Array]   # unweighted terms of the last transition
    command: jax.Array             # (3,) vx, vy, yaw rate
    step_count: jax.Array
    last_action: jax.Array
    filtered_action: jax.Array
    prev_frame: Any                # features.FeatureFrame of the current state
    history: Any                   # features history buffer
    feet_air_time: jax.Array       # (2,) seconds since each foot left the floor
    feet_contact: jax.Array        # (2,) bool
    episode_return: jax.Array
    vel_error: jax.Array           # |v_x − cmd_x| (heading frame) of the last transition
    nonfinite: jax.Array           # the last transition produced a NaN/inf physics state
    dr: jax.Array                  # (3,) domain randomisation of this episode: friction, mass, kp scale
    rng: jax.Array


OBS_LAYOUT = (
    ("gravity_body", 3), ("lin_vel_heading", 3), ("ang_vel_heading", 3), ("joint_pos_rel", None),
    ("joint_vel", None), ("last_action", None), ("command", 3),
)


class WalkEnv:
    """WildRobot velocity-command walking env in MJX (one instance, vmapped over envs)."""

    def __init__(self, cfg: Config, model: mujoco.MjModel | None = None,
                 spec: RobotSpec | None = None):
        ecfg = cfg.env
        self.cfg = cfg
        self.mj_model = model if model is not None else load_model(paths.resolve(cfg.robot.model))
        self.mj_model.opt.timestep = ecfg.sim_dt
        self.mj_model.opt.iterations = ecfg.solver_iterations
        self.mj_model.opt.ls_iterations = ecfg.ls_iterations
        self.spec = spec if spec is not None else load_robot_spec(
            paths.resolve(cfg.robot.robot_config), model=self.mj_model)
        self.mjx_model = make_mjx_model(self.mj_model)
        self.n_substeps = int(round(ecfg.ctrl_dt / ecfg.sim_dt))
        self.episode_steps = int(round(ecfg.episode_seconds / ecfg.ctrl_dt))
        self.resample_steps = max(1, int(round(ecfg.command.resample_seconds / ecfg.ctrl_dt)))
        J = len(self.spec.joint_names)
        self.num_joints = J
        self.qpos_adr = jnp.asarray(self.spec.qpos_adr)
        self.qvel_adr = jnp.asarray(self.spec.qvel_adr)
        self.home_qpos = jnp.asarray(self.spec.home_qpos, dtype=jnp.float32)
        self.home_joints = self.home_qpos[self.qpos_adr]
        lo, hi = np.asarray(self.spec.joint_ranges, dtype=np.float32).T
        self.joint_lo, self.joint_hi = jnp.asarray(lo), jnp.asarray(hi)
        # Mirror-aware action signs: a given action value asks for the same physical motion on both
        # legs (right-side joints whose axes are mirrored get sign −1).
        names = self.spec.joint_names
        sign = np.ones(J, np.float32)
        for j, n in enumerate(names):
            if n.startswith("right_"):
                sign[j] = float(self.spec.mirror_sign[j])
        self.action_sign = jnp.asarray(sign)
        self.pad_ids = geom_ids(self.mj_model, self.spec.foot_geoms)
        # Feature machinery: the SAME functions are used for the reference dataset.
        self.frame_ids = F.FrameIds.from_model(self.mj_model, self.spec)
        self.layout = F.FeatureLayout.build(self.spec, cfg.features)
        self.feature_params = F.FeatureParams.from_config(cfg.features, self.spec, self.mj_model)
        self.total_mass = float(self.spec.total_mass)
        self.obs_size = 3 + 3 + 3 + 3 * J + 3
        self.critic_obs_size = self.obs_size + (1 + 4 + 4 + 2 if ecfg.privileged_critic else 0)
        self.action_size = J
        self.reward_weights = {k: float(getattr(cfg.reward_weights, k)) for k in REWARD_TERMS}
        self.amp_sample_size = cfg.features.history * self.layout.size
        home = mujoco.MjData(self.mj_model)
        home.qpos[:] = self.spec.home_qpos
        mujoco.mj_forward(self.mj_model, home)
        self._home_data = mjx.put_data(self.mj_model, home, impl="jax")
        self._cos_max_tilt = float(np.cos(np.deg2rad(ecfg.max_tilt_deg)))

    # ------------------------------------------------------------------ commands and observations
    def sample_command(self, rng: jax.Array) -> jax.Array:
        c = self.cfg.env.command
        k1, k2, k3, k4 = jax.random.split(rng, 4)
        cmd = jnp.array([
            jax.random.uniform(k1, minval=c.forward_range[0], maxval=c.forward_range[1]),
            jax.random.uniform(k2, minval=c.lateral_range[0], maxval=c.lateral_range[1]),
            jax.random.uniform(k3, minval=c.yaw_rate_range[0], maxval=c.yaw_rate_range[1]),
        ])
        standing = jax.random.uniform(k4) < c.standing_fraction
        return jnp.where(standing, jnp.zeros(3), cmd)

    def _root(self, data: mjx.Data) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        quat = data.qpos[3:7]
        lin_world = data.qvel[0:3]
        ang_body = data.qvel[3:6]
        return data.qpos[0:3], quat, lin_world, ang_body

    def _observe(self, data: mjx.Data, command: jax.Array, last_action: jax.Array,
                 forces: jax.Array, air_time: jax.Array, pad_z: jax.Array) -> tuple[jax.Array, jax.Array]:
        pos, quat, lin_world, ang_body = self._root(data)
        gravity_body = quat_rotate_inv(quat, jnp.array([0.0, 0.0, -1.0]))
        lin_h = to_heading_frame(quat, lin_world)
        ang_world = _quat_rotate(quat, ang_body)
        ang_h = to_heading_frame(quat, ang_world)
        q = data.qpos[self.qpos_adr] - self.home_joints
        qd = data.qvel[self.qvel_adr]
        obs = jnp.concatenate([gravity_body, lin_h, ang_h, q, 0.1 * qd, last_action, command])
        if not self.cfg.env.privileged_critic:
            return obs, obs
        priv = jnp.concatenate([pos[2:3], jnp.tanh(forces / self.cfg.env.contact_force_scale),
                                pad_z, air_time])
        return obs, jnp.concatenate([obs, priv])

    # ------------------------------------------------------------------ reset
    def _fresh(self, rng: jax.Array) -> tuple[mjx.Data, jax.Array]:
        """A new episode's physics state and command (randomised around home)."""
        ecfg = self.cfg.env
        k_yaw, k_q, k_v, k_cmd = jax.random.split(rng, 4)
        qpos = self.home_qpos
        yaw = jax.random.uniform(k_yaw, minval=-jnp.pi, maxval=jnp.pi)
        qpos = qpos.at[3:7].set(quat_from_yaw(yaw))
        noise = jax.random.uniform(k_q, (self.num_joints,), minval=-1.0, maxval=1.0) * ecfg.reset_noise_qpos
        joints = jnp.clip(self.home_joints + noise, self.joint_lo, self.joint_hi)
        qpos = qpos.at[self.qpos_adr].set(joints)
        qvel = jax.random.uniform(k_v, (self.mj_model.nv,), minval=-1.0, maxval=1.0) * ecfg.reset_noise_qvel
        data = self._home_data.replace(qpos=qpos, qvel=qvel, ctrl=joints,
                                       time=jnp.zeros_like(self._home_data.time))
        return data, self.sample_command(k_cmd)

    def sample_randomization(self, rng: jax.Array) -> jax.Array:
        """Per-episode (friction, mass, servo kp) scale factors; ones when randomisation is off."""
        dr = self.cfg.env.domain_randomization
        if not dr.enabled:
            return jnp.ones(3)
        lo = jnp.array([dr.friction_range[0], dr.mass_scale_range[0], dr.kp_scale_range[0]])
        hi = jnp.array([dr.friction_range[1], dr.mass_scale_range[1], dr.kp_scale_range[1]])
        return jax.random.uniform(rng, (3,), minval=lo, maxval=hi)

    def physics_model(self, dr: jax.Array) -> mjx.Model:
        """The MJX model of one episode: friction of every geom, every body's mass and inertia, and
        the servos' kp scaled by ``dr`` (friction combines by max, so scaling all geoms scales the
        effective pad–floor friction). Without randomisation the shared model is used as is."""
        if not self.cfg.env.domain_randomization.enabled:
            return self.mjx_model
        m = self.mjx_model
        kp = m.actuator_gainprm[:, 0] * dr[2]
        return m.replace(
            geom_friction=m.geom_friction.at[:, 0].multiply(dr[0]),
            body_mass=m.body_mass * dr[1], body_inertia=m.body_inertia * dr[1],
            actuator_gainprm=m.actuator_gainprm.at[:, 0].set(kp),
            actuator_biasprm=m.actuator_biasprm.at[:, 1].set(-kp))

    def reset(self, rng: jax.Array) -> EnvState:
        rng, k = jax.random.split(rng)
        k_dr = jax.random.fold_in(k, 1)  # folded in so the other random streams do not change
        data, command = self._fresh(k)
        data = mjx.kinematics(self.mjx_model, data)
        return self._initial_state(data, command, rng, self.sample_randomization(k_dr))

    def reset_with_command(self, rng: jax.Array, command: jax.Array) -> EnvState:
        """A reset whose command is given (deterministic evaluation)."""
        return self.with_command(self.reset(rng), command)

    def with_command(self, state: EnvState, command: jax.Array) -> EnvState:
        """``state`` with its command (and the command entries of the observations) replaced."""
        o = self.obs_size
        return state._replace(command=command, obs=state.obs.at[o - 3:o].set(command),
                              critic_obs=state.critic_obs.at[o - 3:o].set(command))

    def _initial_state(self, data: mjx.Data, command: jax.Array, rng: jax.Array,
                       dr: jax.Array) -> EnvState:
        J = self.num_joints
        forces = jnp.zeros(4)
        frame = F.frame_from_data(self.frame_ids, data.qpos, data.qvel, data.geom_xpos, forces)
        zeros_a = jnp.zeros(J)
        obs, critic = self._observe(data, command, zeros_a, forces, jnp.zeros(2),
                                    data.geom_xpos[self.pad_ids, 2])
        return EnvState(
            data=data, obs=obs, critic_obs=critic, reward=jnp.zeros(()),
            terminated=jnp.zeros((), bool), truncated=jnp.zeros((), bool), final_critic_obs=critic,
            amp_sample=jnp.zeros(self.amp_sample_size), amp_valid=jnp.zeros(()),
            reward_terms={k: jnp.zeros(()) for k in REWARD_TERMS}, command=command,
            step_count=jnp.zeros((), jnp.int32), last_action=zeros_a, filtered_action=zeros_a,
            prev_frame=frame, history=F.init_history(self.layout.size, self.cfg.features.history),
            feet_air_time=jnp.zeros(2), feet_contact=jnp.zeros(2, bool),
            episode_return=jnp.zeros(()), vel_error=jnp.zeros(()), nonfinite=jnp.zeros((), bool),
            dr=dr, rng=rng)

    # ------------------------------------------------------------------ step
    def joint_targets(self, action: jax.Array) -> jax.Array:
        target = self.home_joints + self.cfg.env.action_scale * self.action_sign * action
        return jnp.clip(target, self.joint_lo, self.joint_hi)

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        ecfg = self.cfg.env
        dt = ecfg.ctrl_dt
        action = jnp.clip(action, -1.0, 1.0)
        alpha = ecfg.action_filter_alpha
        filtered = alpha * state.filtered_action + (1.0 - alpha) * action
        data = state.data.replace(ctrl=self.joint_targets(filtered))
        model = self.physics_model(state.dr)

        def substep(d, _):
            return mjx.step(model, d), None

        data, _ = jax.lax.scan(substep, data, None, length=self.n_substeps)
        forces = mjx_geom_normal_forces(model, data, self.pad_ids)
        # mj_step leaves positions of the pre-integration state in xpos; recompute so that geometry
        # and qpos agree exactly as they do for the kinematically replayed reference.
        data = mjx.kinematics(self.mjx_model, data)

        frame = F.frame_from_data(self.frame_ids, data.qpos, data.qvel, data.geom_xpos, forces)
        phi = F.frame_features(self.layout, self.feature_params, state.prev_frame, frame, dt)
        history = F.push_history(state.history, phi)
        amp_sample = F.sample_from_history(history)
        amp_valid = F.sample_valid(history).astype(jnp.float32)

        pos, quat, lin_world, ang_body = self._root(data)
        gravity_body = quat_rotate_inv(quat, jnp.array([0.0, 0.0, -1.0]))
        lin_h = to_heading_frame(quat, lin_world)
        ang_h = to_heading_frame(quat, _quat_rotate(quat, ang_body))
        cmd = state.command

        # Feet: a foot is in contact when its toe or heel pad carries force.
        foot_force = jnp.stack([forces[0] + forces[1], forces[2] + forces[3]])
        contact = foot_force > ecfg.contact_force_threshold
        first_contact = contact & ~state.feet_contact
        air_time = state.feet_air_time + dt
        pad_vel = (frame.pad_pos - state.prev_frame.pad_pos) / dt
        pad_contact = forces > ecfg.contact_force_threshold
        moving_cmd = jnp.linalg.norm(cmd) > 0.05

        q = data.qpos[self.qpos_adr]
        qd = data.qvel[self.qvel_adr]
        torque = data.actuator_force
        up_z = -gravity_body[2]
        terminated = (pos[2] < ecfg.min_base_height) | (pos[2] > ecfg.max_base_height) | \
            (up_z < self._cos_max_tilt)
        finite = jnp.all(jnp.isfinite(data.qpos)) & jnp.all(jnp.isfinite(data.qvel))
        terminated = terminated | ~finite
        terms = {
            "tracking_lin_vel": jnp.exp(-jnp.sum((cmd[:2] - lin_h[:2]) ** 2) / ecfg.tracking_sigma),
            "tracking_ang_vel": jnp.exp(-((cmd[2] - ang_h[2]) ** 2) / ecfg.tracking_sigma),
            "lin_vel_z": lin_h[2] ** 2,
            "ang_vel_xy": jnp.sum(ang_h[:2] ** 2),
            "orientation": jnp.sum(gravity_body[:2] ** 2),
            "base_height": (pos[2] - ecfg.base_height_target) ** 2,
            "action_rate": jnp.sum((action - state.last_action) ** 2),
            "torques": jnp.sum(torque ** 2),
            "energy": jnp.sum(jnp.abs(torque * qd)),
            "feet_air_time": jnp.sum((air_time - ecfg.feet_air_time_target) * first_contact) * moving_cmd,
            "feet_slip": jnp.sum(pad_contact * jnp.sum(pad_vel[:, :2] ** 2, axis=-1)),
            "pose": jnp.sum((q - self.home_joints) ** 2),
            "alive": jnp.ones(()),
            "termination": terminated.astype(jnp.float32),
        }
        terms = {k: jnp.where(jnp.isfinite(v), v, 0.0) for k, v in terms.items()}
        # Per-step reward Σ w_k·r_k, deliberately not multiplied by ctrl_dt: with dt the per-step
        # rewards are ~1e-3 and the critic's initial errors drown the advantages (measured: no
        # learning in 40 smoke iterations with dt, clear learning without).
        reward = sum(self.reward_weights[k] * terms[k] for k in REWARD_TERMS)
        air_time = jnp.where(contact, 0.0, air_time)

        step_count = state.step_count + 1
        truncated = (step_count >= self.episode_steps) & ~terminated
        # Commands are resampled on a timer as well as on reset.
        rng, k_cmd, k_reset = jax.random.split(state.rng, 3)
        k_dr = jax.random.fold_in(k_reset, 1)
        resample = (step_count % self.resample_steps) == 0
        cmd = jnp.where(resample, self.sample_command(k_cmd), cmd)
        obs, critic = self._observe(data, cmd, action, forces, air_time, frame.pad_pos[:, 2])

        stepped = state._replace(
            data=data, obs=obs, critic_obs=critic, reward=reward, terminated=terminated,
            truncated=truncated, final_critic_obs=critic, amp_sample=amp_sample, amp_valid=amp_valid,
            reward_terms=terms, command=cmd, step_count=step_count, last_action=action,
            filtered_action=filtered, prev_frame=frame, history=history, feet_air_time=air_time,
            feet_contact=contact, episode_return=state.episode_return + reward,
            vel_error=jnp.abs(lin_h[0] - state.command[0]), nonfinite=~finite, rng=rng)

        # Auto-reset: new physics state, new command, cleared history; the transition fields above
        # (reward, flags, final_critic_obs, amp sample) describe the finished episode's last step.
        done = terminated | truncated
        fresh_data, fresh_cmd = self._fresh(k_reset)
        fresh_data = mjx.kinematics(self.mjx_model, fresh_data)
        fresh = self._initial_state(fresh_data, fresh_cmd, rng, self.sample_randomization(k_dr))
        fresh = fresh._replace(
            reward=reward, terminated=terminated, truncated=truncated, final_critic_obs=critic,
            amp_sample=amp_sample, amp_valid=amp_valid, reward_terms=terms,
            episode_return=stepped.episode_return, vel_error=stepped.vel_error,
            nonfinite=stepped.nonfinite)
        return jax.tree.map(lambda a, b: jnp.where(_bcast(done, a), a, b), fresh, stepped)

    # ------------------------------------------------------------------ layout / spec
    def spec_dict(self) -> dict:
        """Everything a checkpoint must agree on to be loadable (observation/action/feature layout)."""
        return {
            "joint_names": list(self.spec.joint_names),
            "obs_layout": [[n, s if s is not None else self.num_joints] for n, s in OBS_LAYOUT],
            "obs_size": self.obs_size,
            "critic_obs_size": self.critic_obs_size,
            "action_size": self.action_size,
            "action_scale": self.cfg.env.action_scale,
            "feature_channels": list(self.layout.channel_names()),
            "feature_history": self.cfg.features.history,
            "ctrl_dt": self.cfg.env.ctrl_dt,
        }


def _bcast(done: jax.Array, leaf: jax.Array) -> jax.Array:
    return jnp.reshape(done, done.shape + (1,) * (jnp.ndim(leaf) - jnp.ndim(done)))
