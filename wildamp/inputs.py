"""A config's input files, checked before anything is written or compiled.

`config check` and `train` call `check_inputs`: the MJCF model loads, the robot config matches it,
the reference dataset is readable with the robot's joints. Every failure is a `ConfigError` naming
the config key, the resolved path and the config file, so a typo costs seconds, not a run folder.
"""

from __future__ import annotations

from pathlib import Path

from wildamp import paths
from wildamp.config import Config, ConfigError


def _existing_file(key: str, value: str, where: str) -> Path:
    p = paths.resolve(value)
    if not p.exists():
        raise ConfigError(f"{where}: {key} {value!r}: {p} does not exist")
    if p.is_dir():
        raise ConfigError(f"{where}: {key} {value!r}: {p} is a folder, not a file")
    return p


def check_inputs(cfg: Config, where: str = "<config>") -> list[str]:
    """Check every input file of ``cfg``; returns one summary line per input.

    The embedded reference datasets (the gait and its PD-tracked version) are the ones allowed to be
    missing: training generates them on first use (the line says so).
    """
    import mujoco
    import yaml

    from wildamp.reference.clip import MotionDataset
    from wildamp.robot import load_robot_spec

    model_path = _existing_file("robot.model", cfg.robot.model, where)
    try:
        model = mujoco.MjModel.from_xml_path(str(model_path))
    except Exception as e:  # noqa: BLE001 - MuJoCo raises ValueError, but say so for anything
        raise ConfigError(f"{where}: robot.model: {model_path} is not a loadable MJCF model "
                          f"({' '.join(str(e).split())})") from None
    rc_path = _existing_file("robot.robot_config", cfg.robot.robot_config, where)
    try:
        spec = load_robot_spec(rc_path, model=model)
    except (ValueError, KeyError, TypeError, OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{where}: robot.robot_config: {rc_path} does not describe {model_path} "
                          f"({' '.join(str(e).split())})") from None
    lines = [f"robot.model {model_path}: {model.nq} qpos, {model.nu} actuators",
             f"robot.robot_config {rc_path}: {len(spec.joint_names)} joints"]
    ds_path = paths.resolve(cfg.reference.dataset)
    from wildamp.reference_data import embedded_default

    embedded = embedded_default(ds_path)
    if not ds_path.exists() and embedded is not None:
        lines.append(f"reference.dataset {ds_path}: {embedded}, generated on first use")
        return lines
    ds_path = _existing_file("reference.dataset", cfg.reference.dataset, where)
    try:
        ds = MotionDataset.load(ds_path, joint_names=spec.joint_names)
    except (ValueError, OSError) as e:
        raise ConfigError(f"{where}: reference.dataset: {e}") from None
    lines.append(f"reference.dataset {ds_path}: {ds.num_clips} clips, {ds.num_frames} frames @ {ds.fps:g} Hz")
    return lines
