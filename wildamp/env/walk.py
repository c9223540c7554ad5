"""WildRobot velocity-command walking env: ``reset(rng)`` / ``step(state, action)`` over a pytree.

One env instance holds static things (physics backend, index arrays, config); all per-episode data
lives in :class:`EnvState`, so ``jax.vmap(env.step)`` runs thousands of envs. Auto-reset happens
inside ``step``: the returned state of a finished episode is already the next episode's first state,
while the transition keeps what GAE and AMP need from the finished one (``final_critic_obs`` for
truncation bootstrapping, the AMP sample of the last real transition).

A step reads top to bottom: joint targets → physics backend → AMP feature frame → reward terms →
termination → observations → auto-reset. Frames and signs follow ARCHITECTURE.md ("Contracts"):
wxyz quaternions, heading-local root velocities, gravity in the body frame, joints by name.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from wildamp import features as F
from wildamp import paths
from wildamp.config import Config
from wildamp.env import observations as O
from wildamp.env.backends import make_backend
from wildamp.env.posture import (
    RsiTable, default_qpos, reference_joint_spread, resting_pad_height, rsi_table, sample_rsi,
)
from wildamp.env.randomization import sample_randomization
from wildamp.env.rewards import REWARD_TERMS, RewardInputs, reward_terms, weighted_sum
from wildamp.physics import geom_ids
from wildamp.robot import PADS_OF_FOOT, RobotSpec, load_model, load_robot_spec
from wildamp.rotations import quat_from_yaw


class EnvState(NamedTuple):
    physics: Any                   # the backend's physics state (mjx.Data or HostState)
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
    recent_vel: jax.Array          # (W, 3) the last W control steps' (vx, vy, yaw rate), heading frame
    recent_joints: jax.Array       # (W, J) the last W control steps' joint positions, oldest first
    nonfinite: jax.Array           # the last transition produced a NaN/inf physics state
    dr: jax.Array                  # (3,) domain randomisation of this episode: friction, mass, kp scale
    rng: jax.Array

    @property
    def window_vel(self) -> jax.Array:
        """(3,) vx, vy, yaw rate averaged over the velocity window: what the tracking reward compares
        with the command."""
        return self.recent_vel.mean(axis=-2)


OBS_LAYOUT = O.OBS_LAYOUT


class WalkEnv:
    """WildRobot velocity-command walking env (one instance, vmapped over envs)."""

    def __init__(self, cfg: Config, model: mujoco.MjModel | None = None,
                 spec: RobotSpec | None = None, dataset: Any = None):
        ecfg = cfg.env
        self.cfg = cfg
        model_path = paths.resolve(cfg.robot.model)
        self.mj_model = model if model is not None else load_model(model_path)
        self.mj_model.opt.timestep = ecfg.sim_dt
        self.mj_model.opt.iterations = ecfg.solver_iterations
        self.mj_model.opt.ls_iterations = ecfg.ls_iterations
        self.spec = spec if spec is not None else load_robot_spec(
            paths.resolve(cfg.robot.robot_config), model=self.mj_model)
        self.n_substeps = int(round(ecfg.ctrl_dt / ecfg.sim_dt))
        self.episode_steps = int(round(ecfg.episode_seconds / ecfg.ctrl_dt))
        self.resample_steps = max(1, int(round(ecfg.command.resample_seconds / ecfg.ctrl_dt)))
        self.backend = make_backend(ecfg.physics, self.mj_model, model_path, self.spec.foot_geoms,
                                    self.n_substeps, ecfg.domain_randomization.enabled, ecfg.physics_threads)
        J = len(self.spec.joint_names)
        self.num_joints = J
        self.qpos_adr = jnp.asarray(self.spec.qpos_adr)
        self.qvel_adr = jnp.asarray(self.spec.qvel_adr)
        self.pad_ids = geom_ids(self.mj_model, self.spec.foot_geoms)
        self.frame_ids = F.FrameIds.from_model(self.mj_model, self.spec)
        needs_reference = ecfg.default_pose == "reference_mean" or ecfg.rsi_fraction > 0
        if needs_reference and dataset is None:
            from wildamp.reference_data import load_reference_dataset
            dataset = load_reference_dataset(cfg, self.spec)
        self.dataset = dataset  # the reference clips, when the env needed them (else None)
        self.default_qpos = jnp.asarray(default_qpos(
            ecfg.default_pose, self.spec.home_qpos, self.frame_ids, dataset, self.mj_model, self.pad_ids,
            ecfg.command.forward_range, ecfg.command.lateral_range),
            dtype=jnp.float32)
        self.default_joints = self.default_qpos[self.qpos_adr]
        # Per-joint scale of posture offsets (pose_mean): the reference's own spread, at least
        # env.pose_spread_floor; 1 rad without a reference posture.
        self.joint_spread = jnp.asarray(
            reference_joint_spread(dataset, self.frame_ids, ecfg.command.forward_range, ecfg.command.lateral_range,
                                   floor=ecfg.pose_spread_floor)
            if ecfg.default_pose == "reference_mean" else np.ones(J), dtype=jnp.float32)
        self.rsi: RsiTable | None = (
            rsi_table(dataset, self.frame_ids, ecfg.rsi_skip_seconds, ecfg.command.forward_range,
                      ecfg.command.lateral_range) if ecfg.rsi_fraction > 0 else None)
        lo, hi = np.asarray(self.spec.joint_ranges, dtype=np.float32).T
        self.joint_lo, self.joint_hi = jnp.asarray(lo), jnp.asarray(hi)
        # Mirror-aware action signs: a given action value asks for the same physical motion on both
        # legs (right-side joints whose axes are mirrored get sign −1).
        sign = np.ones(J, np.float32)
        for j, n in enumerate(self.spec.joint_names):
            if n.startswith("right_"):
                sign[j] = float(self.spec.mirror_sign[j])
        self.action_sign = jnp.asarray(sign)
        # Feature machinery: the SAME functions are used for the reference dataset.
        self.layout = F.FeatureLayout.build(self.spec, cfg.features)
        self.feature_params = F.FeatureParams.from_config(cfg.features, self.spec, self.mj_model)
        self.total_mass = float(self.spec.total_mass)
        self.gait_clock = ecfg.gait_period > 0.0
        self.obs_layout = O.policy_layout(J, self.gait_clock)
        self.obs_size = O.obs_size(J, self.gait_clock)
        self.critic_obs_size = O.critic_obs_size(J, ecfg.privileged_critic, self.gait_clock)
        # Height of the pad centres when a foot rests on the floor (feet_phase measures lift from it).
        self.pad_rest_height = float(resting_pad_height(self.mj_model, np.asarray(self.default_qpos), self.pad_ids))
        self.action_size = J
        self.reward_weights = {k: float(getattr(cfg.reward_weights, k)) for k in REWARD_TERMS}
        self.amp_sample_size = cfg.features.history * self.layout.size
        self._cos_max_tilt = float(np.cos(np.deg2rad(ecfg.max_tilt_deg)))
        # Control steps in the velocity window (1 = the instantaneous velocity).
        self.window_steps = max(1, int(round(ecfg.velocity_window_seconds / ecfg.ctrl_dt)))

    # ------------------------------------------------------------------ commands
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

    def joint_targets(self, action: jax.Array) -> jax.Array:
        target = self.default_joints + self.cfg.env.action_scale * self.action_sign * action
        return jnp.clip(target, self.joint_lo, self.joint_hi)

    # ------------------------------------------------------------------ reset
    def _fresh(self, rng: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """A new episode's (qpos, qvel, command): randomised around the default posture, or — for a
        fraction ``rsi_fraction`` of resets — a random reference frame with that clip's command."""
        ecfg = self.cfg.env
        k_yaw, k_q, k_v, k_cmd = jax.random.split(rng, 4)
        yaw = jax.random.uniform(k_yaw, minval=-jnp.pi, maxval=jnp.pi)
        qpos = self.default_qpos.at[3:7].set(quat_from_yaw(yaw))
        noise = jax.random.uniform(k_q, (self.num_joints,), minval=-1.0, maxval=1.0) * ecfg.reset_noise_qpos
        joints = jnp.clip(self.default_joints + noise, self.joint_lo, self.joint_hi)
        qpos = qpos.at[self.qpos_adr].set(joints)
        qvel = jax.random.uniform(k_v, (self.mj_model.nv,), minval=-1.0, maxval=1.0) * ecfg.reset_noise_qvel
        command = self.sample_command(k_cmd)
        if self.rsi is not None:
            k_rsi, k_frame = jax.random.split(jax.random.fold_in(rng, 2))
            r_qpos, r_qvel, r_cmd = sample_rsi(self.rsi, k_frame, yaw)
            use = jax.random.uniform(k_rsi) < ecfg.rsi_fraction
            qpos, qvel = jnp.where(use, r_qpos, qpos), jnp.where(use, r_qvel, qvel)
            command = jnp.where(use, r_cmd, command)
        return qpos, qvel, command

    def reset(self, rng: jax.Array) -> EnvState:
        rng, k = jax.random.split(rng)
        k_dr = jax.random.fold_in(k, 1)  # folded in so the other random streams do not change
        qpos, qvel, command = self._fresh(k)
        return self._initial_state(qpos, qvel, command, rng,
                                   sample_randomization(k_dr, self.cfg.env.domain_randomization))

    def reset_with_command(self, rng: jax.Array, command: jax.Array) -> EnvState:
        """A reset whose command is given (deterministic evaluation)."""
        return self.with_command(self.reset(rng), command)

    def with_command(self, state: EnvState, command: jax.Array) -> EnvState:
        """``state`` with its command (and the command entries of the observations) replaced."""
        c = O.obs_slice("command", self.num_joints)
        return state._replace(command=command, obs=state.obs.at[c].set(command),
                              critic_obs=state.critic_obs.at[c].set(command))

    def gait_phase(self, step_count: jax.Array) -> jax.Array:
        """Gait-clock phase (cycles, [0, 1)) after ``step_count`` control steps of an episode."""
        if not self.gait_clock:
            return jnp.zeros(())
        return jnp.mod(step_count * self.cfg.env.ctrl_dt / self.cfg.env.gait_period, 1.0)

    def _observe(self, frame, command, last_action, pad_force, air_time, pad_z, step_count):
        return O.observe(frame.qpos, frame.qvel, frame.qpos[self.qpos_adr] - self.default_joints,
                         frame.qvel[self.qvel_adr], command, last_action, pad_force, air_time, pad_z,
                         self.cfg.env.privileged_critic, self.cfg.env.contact_force_scale,
                         phase=self.gait_phase(step_count) if self.gait_clock else None)

    def _initial_state(self, qpos: jax.Array, qvel: jax.Array, command: jax.Array, rng: jax.Array,
                       dr: jax.Array) -> EnvState:
        J = self.num_joints
        physics, pf = self.backend.initial(qpos, qvel, qpos[self.qpos_adr])
        frame = F.frame_from_pads(self.frame_ids, pf.qpos, pf.qvel, pf.pad_pos, pf.pad_force)
        zeros_a = jnp.zeros(J)
        obs, critic = self._observe(pf, command, zeros_a, pf.pad_force, jnp.zeros(2), pf.pad_pos[:, 2],
                                    jnp.zeros((), jnp.int32))
        _, _, lin_h, ang_h = O.root_kinematics(pf.qpos, pf.qvel)
        return EnvState(
            physics=physics, obs=obs, critic_obs=critic, reward=jnp.zeros(()),
            terminated=jnp.zeros((), bool), truncated=jnp.zeros((), bool), final_critic_obs=critic,
            amp_sample=jnp.zeros(self.amp_sample_size), amp_valid=jnp.zeros(()),
            reward_terms={k: jnp.zeros(()) for k in REWARD_TERMS}, command=command,
            step_count=jnp.zeros((), jnp.int32), last_action=zeros_a, filtered_action=zeros_a,
            prev_frame=frame, history=F.init_history(self.layout.size, self.cfg.features.history),
            feet_air_time=jnp.zeros(2), feet_contact=jnp.zeros(2, bool),
            episode_return=jnp.zeros(()), vel_error=jnp.zeros(()),
            recent_vel=jnp.tile(O.commanded_velocity(lin_h, ang_h), (self.window_steps, 1)),
            recent_joints=jnp.tile(pf.qpos[self.qpos_adr], (self.window_steps, 1)),
            nonfinite=jnp.zeros((), bool),
            dr=dr, rng=rng)

    # ------------------------------------------------------------------ step
    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        ecfg = self.cfg.env
        dt = ecfg.ctrl_dt
        action = jnp.clip(action, -1.0, 1.0)
        alpha = ecfg.action_filter_alpha
        filtered = alpha * state.filtered_action + (1.0 - alpha) * action
        physics, pf = self.backend.step(state.physics, self.joint_targets(filtered), state.dr)

        # AMP features of this transition (the same function as for the reference).
        frame = F.frame_from_pads(self.frame_ids, pf.qpos, pf.qvel, pf.pad_pos, pf.pad_force)
        phi = F.frame_features(self.layout, self.feature_params, state.prev_frame, frame, dt)
        history = F.push_history(state.history, phi)
        amp_sample = F.sample_from_history(history)
        amp_valid = F.sample_valid(history).astype(jnp.float32)

        # Feet: a foot is in contact when its toe or heel pad carries force.
        forces = pf.pad_force
        foot_force = jnp.stack([forces[jnp.asarray(p)].sum() for p in PADS_OF_FOOT])
        contact = foot_force > ecfg.contact_force_threshold
        first_contact = contact & ~state.feet_contact
        air_time = state.feet_air_time + dt

        pos, gravity_body, lin_h, ang_h = O.root_kinematics(pf.qpos, pf.qvel)
        # The window starts filled with the reset's velocity, so a new episode is judged at once.
        recent_vel = jnp.concatenate([state.recent_vel[1:], O.commanded_velocity(lin_h, ang_h)[None]])
        recent_joints = jnp.concatenate([state.recent_joints[1:], pf.qpos[self.qpos_adr][None]])
        terminated = (pos[2] < ecfg.min_base_height) | (pos[2] > ecfg.max_base_height) | \
            (-gravity_body[2] < self._cos_max_tilt)
        finite = jnp.all(jnp.isfinite(pf.qpos)) & jnp.all(jnp.isfinite(pf.qvel))
        terminated = terminated | ~finite
        step_count = state.step_count + 1
        pad_lift = frame.pad_pos[:, 2] - self.pad_rest_height
        foot_height = jnp.stack([pad_lift[jnp.asarray(p)].min() for p in PADS_OF_FOOT])
        terms = reward_terms(RewardInputs(
            cfg=ecfg, command=state.command, lin_vel_heading=lin_h, ang_vel_heading=ang_h,
            window_vel=recent_vel.mean(axis=0), gravity_body=gravity_body, base_height=pos[2], action=action,
            last_action=state.last_action,
            joint_pos=pf.qpos[self.qpos_adr], joint_vel=pf.qvel[self.qvel_adr],
            default_joint_pos=self.default_joints, window_joint_pos=recent_joints.mean(axis=0),
            joint_spread=self.joint_spread,
            actuator_force=pf.actuator_force, air_time=air_time,
            first_contact=first_contact, pad_contact=forces > ecfg.contact_force_threshold,
            pad_vel=(frame.pad_pos - state.prev_frame.pad_pos) / dt,
            foot_height=foot_height, gait_phase=self.gait_phase(step_count),
            moving_command=jnp.linalg.norm(state.command) > 0.05, terminated=terminated))
        reward = weighted_sum(terms, self.reward_weights)
        air_time = jnp.where(contact, 0.0, air_time)

        truncated = (step_count >= self.episode_steps) & ~terminated
        # Commands are resampled on a timer as well as on reset.
        rng, k_cmd, k_reset = jax.random.split(state.rng, 3)
        k_dr = jax.random.fold_in(k_reset, 1)
        resample = (step_count % self.resample_steps) == 0
        cmd = jnp.where(resample, self.sample_command(k_cmd), state.command)
        obs, critic = self._observe(pf, cmd, action, forces, air_time, frame.pad_pos[:, 2], step_count)

        stepped = state._replace(
            physics=physics, obs=obs, critic_obs=critic, reward=reward, terminated=terminated,
            truncated=truncated, final_critic_obs=critic, amp_sample=amp_sample, amp_valid=amp_valid,
            reward_terms=terms, command=cmd, step_count=step_count, last_action=action,
            filtered_action=filtered, prev_frame=frame, history=history, feet_air_time=air_time,
            feet_contact=contact, episode_return=state.episode_return + reward,
            vel_error=jnp.abs(lin_h[0] - state.command[0]), recent_vel=recent_vel,
            recent_joints=recent_joints, nonfinite=~finite, rng=rng)

        # Auto-reset: new physics state, new command, cleared history, return back at 0; the transition
        # fields above (reward, flags, final_critic_obs, amp sample) describe the finished episode's
        # last step (its return is the previous state's return plus this reward).
        done = terminated | truncated
        f_qpos, f_qvel, f_cmd = self._fresh(k_reset)
        fresh = self._initial_state(f_qpos, f_qvel, f_cmd, rng,
                                    sample_randomization(k_dr, ecfg.domain_randomization))
        fresh = fresh._replace(
            reward=reward, terminated=terminated, truncated=truncated, final_critic_obs=critic,
            amp_sample=amp_sample, amp_valid=amp_valid, reward_terms=terms,
            vel_error=stepped.vel_error, nonfinite=stepped.nonfinite)
        return jax.tree.map(lambda a, b: jnp.where(_bcast(done, a), a, b), fresh, stepped)

    # ------------------------------------------------------------------ layout / spec
    def spec_dict(self) -> dict:
        """Everything a checkpoint must agree on to be loadable (observation/action/feature layout)."""
        return {
            "joint_names": list(self.spec.joint_names),
            "obs_layout": [[n, s] for n, s in self.obs_layout],
            "obs_size": self.obs_size,
            "critic_obs_size": self.critic_obs_size,
            "action_size": self.action_size,
            "action_scale": self.cfg.env.action_scale,
            "default_joint_pos": [round(float(x), 6) for x in np.asarray(self.default_joints)],
            "feature_channels": list(self.layout.channel_names()),
            "feature_history": self.cfg.features.history,
            "ctrl_dt": self.cfg.env.ctrl_dt,
        }


def _bcast(done: jax.Array, leaf: jax.Array) -> jax.Array:
    return jnp.reshape(done, done.shape + (1,) * (jnp.ndim(leaf) - jnp.ndim(done)))
