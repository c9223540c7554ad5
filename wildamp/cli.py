"""`wildamp …` command line: thin wrappers over the package modules.

Every command's body (``*_main``) lives here; the package modules hold only library functions.
Imports are local to each command so that `wildamp --help` and config checks start fast.
Exit status: 0 success, 1 a check failed (e.g. an infeasible clip), 2 bad input (config, files,
run folder, corrupt checkpoint), 3 training diverged, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from wildamp.reference.clip import Clip


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value (repeatable); validated like the file")


def robot_config_main(model: str, out: str | None, home: str | None = None,
                      sites: Sequence[str] = (), tolerances: Sequence[str] = ()) -> int:
    """CLI body of ``wildamp robot-config MODEL.xml [--out PATH] [--home J=V,...] [--site ROLE=NAME]
    [--tolerance KEY=VALUE]``: write the config, print what was checked, return the exit code
    (0 written, 1 a check failed: asymmetric or not standing, 2 unusable input)."""
    from wildamp import paths
    from wildamp.home_pose import parse_joint_values
    from wildamp.robot import parse_site_names, write_robot_config
    from wildamp.symmetry import RobotCheckError, parse_tolerances

    out_path = paths.resolve(out) if out else paths.DEFAULT_ROBOT_CONFIG
    try:
        options = {"home": parse_joint_values(home) if home is not None else None,
                   "sites": parse_site_names(sites), "tolerances": parse_tolerances(tolerances)}
        result = write_robot_config(model, out_path, **options)
    except RobotCheckError as e:
        print(f"robot-config: check failed: {e}", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError) as e:
        print(f"robot-config: error: {e}", file=sys.stderr)
        return 2
    cfg = result.config
    worst = ", ".join(f"{k} " + (f"{v:.3g} ({where})" if v > 1e-9 else "0")  # round-off reads 0
                      for k, (v, where) in sorted(result.symmetry.items()))
    absent = [r for r, n in zip(("pad", "foot", "imu"), (cfg["pad_sites"], cfg["foot_sites"], [cfg["imu_site"]]))
              if None in n]
    print(f"wrote {out_path}: {len(cfg['joint_names'])} joints {cfg['joint_names']}, "
          f"mirror signs {[m['sign'] for m in cfg['mirror']]}, total mass {cfg['total_mass']:.3f} kg")
    print(f"symmetry in the pelvis frame: worst {worst}; tolerances {result.tolerances.describe()}")
    print(f"home: {cfg['home_source']}; {result.standing.describe()}")
    if absent:
        print(f"sites not in the model (optional; rename with --site ROLE=NAME): {absent}")
    return 0


def _cmd_robot_config(a: argparse.Namespace) -> int:
    return robot_config_main(a.model, a.out, a.home, a.site, a.tolerance)


def _cmd_config_check(a: argparse.Namespace) -> int:
    from wildamp.config import load_config, read_config_file
    from wildamp.inputs import check_inputs
    path, _ = read_config_file(a.config)
    cfg = load_config(path, a.overrides)
    for line in check_inputs(cfg, str(path)):
        print(f"  {line}")
    print(f"{path}: OK (version {cfg.version} '{cfg.version_name}')")
    return 0


def generate_main(out: str | os.PathLike, write_gmr_dir: str | os.PathLike | None = None,
                  speeds: Sequence[float] | None = None) -> int:
    """CLI body of ``wildamp reference generate --out DATASET.npz [--gmr-dir DIR] [--speeds ...]``."""
    from pathlib import Path

    import numpy as np

    from wildamp import paths
    from wildamp.reference.generator import generate_dataset
    from wildamp.robot import load_model, load_robot_spec

    spec = load_robot_spec(paths.DEFAULT_ROBOT_CONFIG)
    model = load_model(spec.model_path)
    ds = generate_dataset(spec, speeds=speeds, model=model)
    ds.save(out)
    for c in ds.clips:
        disp = np.linalg.norm(c.root_pos[-1, :2] - c.root_pos[0, :2])
        print(f"{c.name}: {c.num_frames} frames @ {c.fps:g} Hz, {c.duration:.2f} s, "
              f"distance {disp:.2f} m, step period {c.meta['params']['step_period']:.3f} s")
    print(f"wrote {out}: {ds.num_clips} clips, {ds.num_frames} frames "
          f"(check them with `wildamp reference check {out}`)")
    if write_gmr_dir is not None:
        from wildamp.reference.gmr import write_gmr_pickle

        d = Path(write_gmr_dir)
        d.mkdir(parents=True, exist_ok=True)
        for c in ds.clips:
            write_gmr_pickle(c, d / f"{c.name}.pkl")
        print(f"wrote {ds.num_clips} GMR pickles to {d}")
    return 0


def _cmd_ref_generate(a: argparse.Namespace) -> int:
    speeds = [float(s) for s in a.speeds.split(",")] if a.speeds else None
    return generate_main(a.out, write_gmr_dir=a.gmr_dir, speeds=speeds)


def _clip_summary_line(clip: Clip) -> str:
    import numpy as np

    from wildamp import quat

    xy = clip.root_pos[:, :2]
    dist = float(np.sum(np.linalg.norm(np.diff(xy, axis=0), axis=1)))
    speed = dist / clip.duration if clip.duration > 0 else 0.0
    yaw = np.unwrap(quat.yaw_of(clip.root_quat))
    src = clip.meta.get("source_fps")
    src_txt = f"{clip.meta.get('source_num_frames')} frames @ {src:.4g} Hz -> " if src else ""
    line = (
        f"{clip.name}: {src_txt}{clip.num_frames} frames @ {clip.fps:.4g} Hz, {clip.duration:.2f} s, "
        f"mean horizontal speed {speed:.3f} m/s, heading change {np.degrees(yaw[-1] - yaw[0]):+.0f} deg, "
        f"root height {clip.root_pos[:, 2].min():.3f}-{clip.root_pos[:, 2].max():.3f} m"
    )
    if clip.meta.get("ignored_keys"):
        line += f", ignored keys {clip.meta['ignored_keys']}"
    return line


def convert_gmr_main(
    files: Sequence[str | os.PathLike], robot_config: str | os.PathLike, out: str | os.PathLike,
    target_fps: float = 50.0, source_robot_config: str | os.PathLike | None = None,
    quat_order: str | None = None,
) -> int:
    """CLI body of ``wildamp reference convert-gmr``: convert (joint signs from the source robot's
    axes, quaternion order checked), print one line per clip and the conversion report, write the
    dataset with the report in its metadata. Exit code 0 written, 1 a convention check failed,
    2 unusable input; nothing is written unless 0."""
    from wildamp.reference.conventions import ConventionError, joint_signs
    from wildamp.reference.conversion_report import dataset_reports, format_report_table
    from wildamp.reference.gmr import convert_gmr_files
    from wildamp.robot import load_model, load_robot_spec

    try:
        target = load_robot_spec(robot_config)
        source = load_robot_spec(source_robot_config) if source_robot_config is not None else target
        signs = joint_signs(source.joint_names, source.joint_axes, target.joint_names, target.joint_axes,
                            source=f"source ({source_robot_config or robot_config})", target=f"target ({robot_config})")
        # GMR dof_pos columns are the source robot's actuator order, which its joint_names follow.
        ds = convert_gmr_files(files, source.joint_names, None, target_fps=target_fps, quat_order=quat_order,
                               joint_signs=signs)
        reports = dataset_reports(load_model(target.model_path), target, ds)
    except ConventionError as e:
        print(f"convert-gmr: check failed: {e}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"convert-gmr: error: {e}", file=sys.stderr)
        return 2
    ds.metadata.update(robot_config=str(robot_config), source_robot_config=str(source_robot_config or robot_config),
                       conversion_report=reports)
    ds.save(out)
    for c in ds.clips:
        print(_clip_summary_line(c))
    negated = ds.metadata["joints_negated"]
    if negated:
        print(f"joints negated (their axes are reversed between source and target): {negated}")
    print(format_report_table(reports))
    print(f"wrote {out}: {ds.num_clips} clip(s), {ds.num_frames} frames @ {ds.fps:.4g} Hz, "
          f"joints {list(ds.joint_names)}")
    return 0


def _cmd_ref_convert(a: argparse.Namespace) -> int:
    return convert_gmr_main(a.files, a.robot_config, a.out, source_robot_config=a.source_robot_config,
                            quat_order=a.quat_order)


def check_main(dataset_path: str | os.PathLike, out_json: str | os.PathLike | None = None,
               starts: int = 0, friction_scales: Sequence[float] = (1.0,)) -> int:
    """CLI body of ``wildamp reference check DATASET.npz [--out FILE.json] [--starts N]
    [--friction-scales 0.75,1,1.25]``.

    Prints the table (and every failing criterion), writes the JSON if asked; returns 0 iff every
    clip passes, 1 otherwise. With ``starts`` > 0 (or friction scales other than 1) it also runs
    :func:`wildamp.reference.feasibility.robustness` and prints its table; that part is information
    and does not change the exit status.
    """
    from pathlib import Path

    import numpy as np

    from wildamp import paths
    from wildamp.provenance import library_versions, machine_info
    from wildamp.reference.clip import MotionDataset
    from wildamp.reference.feasibility import (
        FeasibilityThresholds, check_dataset, format_robustness, format_table, reports_to_json, robustness,
        start_timings,
    )
    from wildamp.robot import load_model, load_robot_spec

    spec = load_robot_spec(paths.DEFAULT_ROBOT_CONFIG)
    model = load_model(spec.model_path)
    ds = MotionDataset.load(dataset_path, joint_names=spec.joint_names)
    th = FeasibilityThresholds()
    reports = check_dataset(model, spec, ds, th)
    print(format_table(reports))
    for r in reports:
        for f in r.failures:
            print(f"  {r.name}: {f}")
    rows = None
    if starts > 0 or tuple(friction_scales) != (1.0,):
        settle = start_timings(starts) if starts > 0 else np.array([th.settle_time])
        print(f"\nrobustness: {len(settle)} start timings ({settle.min():.3f}-{settle.max():.3f} s) x "
              f"friction scales {', '.join(f'{f:g}' for f in friction_scales)}")
        rows = robustness(model, spec, ds, settle, friction_scales, th)
        print(format_robustness(rows))
    if out_json is not None:
        out = Path(out_json)
        out.parent.mkdir(parents=True, exist_ok=True)
        extra = {"environment": {**library_versions(("mujoco", "numpy")), **machine_info()}}
        if rows is not None:
            extra["robustness"] = [r.to_dict() for r in rows]
        out.write_text(reports_to_json(reports, th, extra=extra))
        print(f"wrote {out}")
    return 0 if all(r.passed for r in reports) else 1


def _cmd_ref_check(a: argparse.Namespace) -> int:
    return check_main(a.dataset, a.out, starts=a.starts,
                      friction_scales=tuple(float(f) for f in a.friction_scales.split(",")))


def track_main(dataset_path: str | os.PathLike, out: str | os.PathLike,
               robot_config: str | os.PathLike | None = None, ctrl_dt: float | None = None) -> int:
    """CLI body of ``wildamp reference track DATASET.npz --out TRACKED.npz [--robot-config F] [--ctrl-dt S]``.

    Writes the physics-filtered dataset (:mod:`wildamp.reference.tracked`): every clip replaced by the
    robot's own motion when its servos PD-track it, with measured speeds; a generated clip (one with
    generator parameters) is re-planned until the robot walks at its nominal speed. Exit 0 written,
    1 a clip made the robot fall (nothing written), 2 unusable input.
    """
    from wildamp import paths
    from wildamp.reference.clip import MotionDataset
    from wildamp.reference.feasibility import DEFAULT_CTRL_DT
    from wildamp.reference.tracked import tracked_dataset
    from wildamp.robot import load_model, load_robot_spec

    spec = load_robot_spec(robot_config or paths.DEFAULT_ROBOT_CONFIG)
    model = load_model(spec.model_path)
    ds = MotionDataset.load(dataset_path, joint_names=spec.joint_names)
    try:
        tracked = tracked_dataset(model, spec, ds, ctrl_dt=ctrl_dt or DEFAULT_CTRL_DT)
    except ValueError as e:
        print(f"wildamp reference track: {e}", file=sys.stderr)
        return 1
    tracked.save(out)
    print(f"wrote {out}: {tracked.num_clips} tracked clips, {tracked.num_frames} frames @ {tracked.fps:g} Hz")
    return 0


def _cmd_ref_track(a: argparse.Namespace) -> int:
    return track_main(a.dataset, a.out, robot_config=a.robot_config, ctrl_dt=a.ctrl_dt)


def repair_main(source: str | os.PathLike, out: str | os.PathLike, clip: str | None = None,
                robot_config: str | os.PathLike | None = None, source_robot_config: str | os.PathLike | None = None,
                quat_order: str | None = None, config: str | os.PathLike | None = None,
                duration: float | None = None, evaluations: int = 120, top: int = 10,
                settle_times: Sequence[float] | None = None, min_speed_ratio: float = 0.0,
                progress: bool = True) -> int:
    """CLI body of ``wildamp reference repair SOURCE.pkl|SOURCE.npz [--clip NAME] --out REPAIRED.npz``.

    Fits the embedded gait generator to the source's AMP features, checks the result with the
    feasibility gate from several start timings (``settle_times``, default the tuner's; with
    ``min_speed_ratio`` > 0 the tracked robot must keep that share of the reference's speed) and prints
    the style distance to the source before and after (:mod:`wildamp.reference.repair`). Exit code
    0 written (the repaired clip passes the gate, or the source already did and is written
    unchanged), 1 nothing passed the gate or a convention check on a GMR source failed (nothing
    written), 2 unusable input (one line).
    """
    from wildamp import paths
    from wildamp.config import load_config
    from wildamp.reference.conventions import ConventionError
    from wildamp.reference.generator import default_gait_params
    from wildamp.reference.repair import format_repair_report, load_source_clip, repair_clip, repaired_dataset
    from wildamp.reference.tuning import DEFAULT_SETTLE_TIMES
    from wildamp.robot import load_model, load_robot_spec

    try:
        if evaluations < 1:
            raise ValueError(f"--evaluations must be at least 1, got {evaluations}")
        settle_times = tuple(DEFAULT_SETTLE_TIMES if settle_times is None else settle_times)
        if not all(0.0 <= t <= 1.0 for t in settle_times):
            raise ValueError(f"--settle-times must lie in [0, 1] s, got {list(settle_times)}")
        if not 0.0 <= min_speed_ratio <= 1.0:
            raise ValueError(f"--min-speed-ratio must lie in [0, 1], got {min_speed_ratio}")
        if duration is not None:
            default_gait_params(duration=duration)  # ValueError naming the duration if it is too short
        spec = load_robot_spec(robot_config or paths.DEFAULT_ROBOT_CONFIG)
        source_spec = load_robot_spec(source_robot_config) if source_robot_config is not None else None
        features = load_config(config or paths.CONFIGS_DIR / "smoke.yaml").features
        src = load_source_clip(source, spec, clip, source_spec=source_spec, quat_order=quat_order)
        model = load_model(spec.model_path)
    except ConventionError as e:
        print(f"repair: check failed: {e}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"repair: error: {msg}", file=sys.stderr)
        return 2
    result = repair_clip(model, spec, src, features, duration=duration, evaluations=evaluations,
                         settle_times=settle_times, min_speed_ratio=min_speed_ratio, progress=progress)
    print(format_repair_report(result, top))
    if not result.repaired:
        print(f"repair: {src.name!r} could not be repaired: no candidate passed the feasibility gate "
              "(nothing written)", file=sys.stderr)
        return 1
    repaired_dataset(result).save(out)
    print(f"wrote {out}: clip {result.clip.name!r}, {result.clip.num_frames} frames @ {result.clip.fps:g} Hz "
          f"(check it with `wildamp reference check {out}`)")
    return 0


def _cmd_ref_repair(a: argparse.Namespace) -> int:
    return repair_main(a.source, a.out, clip=a.clip, robot_config=a.robot_config,
                       source_robot_config=a.source_robot_config, quat_order=a.quat_order, config=a.config,
                       duration=a.duration, evaluations=a.evaluations, top=a.top,
                       settle_times=[float(t) for t in a.settle_times.split(",")] if a.settle_times else None,
                       min_speed_ratio=a.min_speed_ratio)


def tune_main(speeds: Sequence[float], out: str | os.PathLike | None = None, iterations: int = 14,
              population: int = 40, init: str | None = None, seed: int = 0, workers: int | None = None,
              settle_times: Sequence[float] | None = None, friction_scales: Sequence[float] = (1.0,),
              jitter: float = 0.0, jitter_draws: int = 0, lateral_speeds: Sequence[float] = ()) -> int:
    """CLI body of ``wildamp reference tune --speeds 0.4 [--lateral-speeds 0.1,-0.1] [--init PARAMS.json]
    [--out PARAMS.json]``.

    Prints the best parameters and their gate runs; exit status 0 iff every run of the best set
    passes the gate.
    """
    import json
    from pathlib import Path

    from wildamp.reference.tuning import DEFAULT_SETTLE_TIMES, tune_gait

    init_params = None
    if init is not None:
        raw = json.loads(Path(init).read_text())
        init_params = raw.get("params", raw) if isinstance(raw, dict) else None
        if not isinstance(init_params, dict):
            raise ValueError(f"{init}: expected a JSON object of gait parameters (or a tune result)")
    workers = workers or max(1, min(os.cpu_count() or 1, 8))
    res = tune_gait(speeds, iterations=iterations, population=population, init=init_params, seed=seed,
                    workers=workers, settle_times=settle_times or DEFAULT_SETTLE_TIMES,
                    friction_scales=friction_scales, jitter=jitter, jitter_draws=jitter_draws,
                    lateral_speeds=lateral_speeds)
    print(json.dumps(res.params, indent=1))
    print(f"score {res.score:.3f} (at most {3.5 * 1.1:.2f})")
    print(f"{'speed':>6} {'lateral':>7} {'variant':>7} {'settle':>6} {'friction':>8} {'pass':>5} {'survived':>8} "
          f"{'v_sim/v_ref':>11} {'slip':>5}")
    for t in res.trials:
        print(f"{t.speed:6.2f} {t.lateral_speed:+7.2f} {t.variant:7d} {t.settle_time:6.2f} {t.friction_scale:8.2f} {str(t.passed):>5} "
              f"{t.survived:8.2f} {t.speed_ratio:11.2f} {t.slip_fraction:5.2f}")
    if out is not None:
        Path(out).write_text(json.dumps(res.to_dict(), indent=1))
        print(f"wrote {out}")
    return 0 if res.trials and all(t.passed for t in res.trials) else 1


def _cmd_ref_tune(a: argparse.Namespace) -> int:
    speeds = [float(s) for s in a.speeds.split(",")] if a.speeds else []
    lateral = [float(s) for s in a.lateral_speeds.split(",")] if a.lateral_speeds else []
    settle = tuple(float(s) for s in a.settle_times.split(",")) if a.settle_times else None
    return tune_main(speeds, out=a.out, iterations=a.iterations, population=a.population, init=a.init,
                     seed=a.seed, workers=a.workers, settle_times=settle,
                     friction_scales=tuple(float(f) for f in a.friction_scales.split(",")),
                     jitter=a.jitter, jitter_draws=a.jitter_draws, lateral_speeds=lateral)


def diagnose_features_main(ref_path: str | os.PathLike, other_path: str | os.PathLike,
                           out: str | os.PathLike | None = None, config: Any = None,
                           threshold: float | None = None) -> int:
    """CLI body of ``wildamp diagnose features REF.npz OTHER.npz [--out FILE.json]``.

    Prints the leak table; writes the JSON report to ``out`` if given; returns 0. Raises ValueError
    if the two inputs have different channels. ``threshold`` defaults to
    :data:`wildamp.diagnose.DEFAULT_THRESHOLD`.
    """
    from pathlib import Path

    from wildamp.diagnose import DEFAULT_THRESHOLD, diagnose, load_samples, print_table

    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    ref, ref_names = load_samples(ref_path, config)
    other, other_names = load_samples(other_path, config)
    if ref_names != other_names:
        missing = [n for n in ref_names if n not in other_names]
        extra = [n for n in other_names if n not in ref_names]
        raise ValueError(f"{ref_path} and {other_path} have different feature channels "
                         f"(only in the reference: {missing[:6]}; only in the other: {extra[:6]})")
    report = diagnose(ref, other, ref_names, threshold=threshold)
    print(f"reference: {ref_path} ({report.n_ref} samples); other: {other_path} ({report.n_other} samples)")
    print_table(report)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(report.to_json())
        print(f"wrote {out}")
    return 0


def _cmd_diagnose_features(a: argparse.Namespace) -> int:
    return diagnose_features_main(a.ref, a.other, out=a.out, config=a.config)


def train_main(config: str | None, overrides: list[str], run_dir: str | None, resume: str | None,
               no_amp: bool = False, iterations: int | None = None, force_new: bool = False,
               allow_config_change: bool = False, fall_back: bool = False) -> int:
    """`wildamp train`: check everything, train, then evaluate the best checkpoint and write video + plots.

    The config, its input files and the run folder are checked before anything is written: a new
    run gets a fresh folder (an occupied ``--run-dir`` is refused unless ``force_new``); a resumed
    run keeps its own config.yaml (``--config`` is refused with ``--resume``), and ``--set`` changes
    beyond the iteration count, logging and evaluation need ``allow_config_change``.
    """
    from pathlib import Path

    from wildamp import run_folder as RF
    from wildamp.config import ConfigError, load_config
    from wildamp.inputs import check_inputs

    if resume:
        for flag, given in (("--config", config), ("--run-dir", run_dir), ("--force-new", force_new)):
            if given:
                raise ConfigError(f"{flag} cannot be combined with --resume: a resumed run continues in its own "
                                  f"folder with its own config.yaml ({Path(resume) / RF.CONFIG_FILE}); change "
                                  "values with --set (beyond iterations/logging/eval also --allow-config-change)")
        cfg_path = RF.check_resumable(resume)
    else:
        if allow_config_change or fall_back:
            raise ConfigError("--allow-config-change and --fall-back only apply with --resume")
        if config:
            cfg_path = Path(config)
        else:
            from wildamp.train import default_config_path
            cfg_path = default_config_path()
    overrides = list(overrides) + (["amp.enabled=false"] if no_amp else [])
    cfg = load_config(cfg_path, overrides)
    check_inputs(cfg, str(cfg_path))
    if resume:
        out = Path(resume)
        RF.resume_config_changes(out, cfg, allow_changes=allow_config_change)  # refuse before any import
    else:
        out = Path(run_dir) if run_dir else RF.new_run_dir(cfg_path.stem)
        moved = RF.prepare_new_run_dir(out, force_new=force_new)
        if moved is not None:
            print(f"--force-new: the previous contents of {out} were moved to {moved}")

    import jax

    from wildamp.train import TrainingDiverged, run_training
    print(f"wildamp train: config {cfg_path} → run dir {out}  (JAX backend: {jax.default_backend()}, "
          f"physics {cfg.env.physics}, {cfg.trainer.num_envs} envs on {jax.device_count()} device(s), "
          f"AMP {'on' if cfg.amp.enabled else 'off'})")
    try:
        run_training(cfg, out, resume=bool(resume), iterations=iterations,
                     allow_config_change=allow_config_change, fall_back=fall_back)
    except TrainingDiverged as e:
        print(f"wildamp train: stopped: {e}")
        return 3
    except KeyboardInterrupt:
        return 130
    # Evaluate first: a finished run's evaluation must not depend on drawing its curves.
    rc = eval_main(str(out), video=str(out / "eval.mp4") if cfg.video.enabled else None,
                   checkpoint="best", out=str(out / "eval.json"))
    from wildamp.metrics import plot_dashboard, read_jsonl
    try:
        fig = plot_dashboard(read_jsonl(out / "metrics.jsonl"))
        fig.savefig(out / "training.png", dpi=100)
    except (ValueError, OSError) as e:
        print(f"wildamp train: training curves not drawn: {e}", file=sys.stderr)
        return rc or 1
    print(f"training curves → {out / 'training.png'}")
    return rc


def eval_main(run_dir: str, video: str | None = None, checkpoint: str = "best", out: str | None = None,
              overrides: list[str] | None = None, seed: int | None = None, fall_back: bool = False) -> int:
    """`wildamp eval DIR`: evaluate a run's checkpoint (or an exported policy directory such as
    assets/policies/walk_cpu) deterministically; print the metrics and the walking-target table.
    The checkpoint is verified intact before anything is built; ``fall_back`` uses the run's newest
    intact checkpoint when the chosen one is corrupt."""
    import json
    from pathlib import Path

    from wildamp import run_state
    from wildamp.config import load_config

    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: no such run folder or exported policy")
    if not (run / "config.yaml").is_file():
        raise FileNotFoundError(f"{run} has no config.yaml: not a run directory or exported policy")
    cfg = load_config(run / "config.yaml", overrides or [])
    policy = run_state.is_policy_dir(run)
    path = None if policy else run_state.resolve_checkpoint(run, checkpoint, fall_back=fall_back)

    from wildamp.evaluate import Evaluator, write_eval_video
    from wildamp.gait import format_table
    from wildamp.train import Trainer
    trainer = Trainer.build(cfg)
    template = trainer.init_state()
    if policy:
        state, meta = run_state.load_policy(trainer, template, run)
        source = str(run / run_state.POLICY_FILE)
    else:
        state, meta = run_state.restore_checkpoint(trainer, template, path)
        source = str(path)
    ev = Evaluator(trainer)
    res = ev.evaluate(state.ppo.params, state.obs_norm, seed=seed, keep_qpos=video is not None)
    qpos = res.pop("qpos", None)
    res["checkpoint"] = source
    res["iteration"] = int(meta["iteration"])
    print(json.dumps({k: v for k, v in res.items() if k != "per_command"}, indent=1))
    for c, r in res["per_command"].items():
        print(f"  cmd {c} m/s: v = {r.get('forward_velocity', float('nan')):.3f} m/s, "
              f"|v - cmd| = {r['vel_error']:.3f} m/s, falls {100 * r['fall_rate']:.0f}%")
    print(format_table(res))
    if out:
        Path(out).write_text(json.dumps(res, indent=1))
    if video and qpos is not None:
        write_eval_video(trainer, qpos, ev.commands, video)
    return 0


def export_main(run_dir: str, out_dir: str, checkpoint: str = "best") -> int:
    """`wildamp export RUN_DIR OUT_DIR`: the policy alone (parameters, normaliser, config, spec)."""
    from wildamp import run_state
    from wildamp.config import load_config
    from wildamp.train import Trainer

    cfg = load_config(f"{run_dir}/config.yaml")
    path = run_state.resolve_checkpoint(run_dir, checkpoint)
    trainer = Trainer.build(cfg)
    state, meta = run_state.restore_checkpoint(trainer, trainer.init_state(), path)
    out = run_state.export_policy(trainer, state, meta, out_dir, extra={"source_checkpoint": str(path)})
    print(f"policy of {path} → {out}")
    return 0


def _cmd_train(a: argparse.Namespace) -> int:
    return train_main(config=a.config, overrides=a.overrides, run_dir=a.run_dir, resume=a.resume,
                      no_amp=a.no_amp, iterations=a.iterations, force_new=a.force_new,
                      allow_config_change=a.allow_config_change, fall_back=a.fall_back)


def _cmd_eval(a: argparse.Namespace) -> int:
    return eval_main(a.run_dir, video=a.video, checkpoint=a.checkpoint, out=a.out,
                     overrides=a.overrides, seed=a.seed, fall_back=a.fall_back)


def _cmd_export(a: argparse.Namespace) -> int:
    return export_main(a.run_dir, a.out_dir, checkpoint=a.checkpoint)


def learner_check_main(out: str | None, steps: int | None = None, num_envs: int | None = None,
                       seed: int = 0) -> dict[str, Any]:
    """`wildamp bench learner`: run the check, print a summary, write JSON + PNG (same stem)."""
    import json
    from pathlib import Path

    from wildamp.learner_check import TARGET_ENV_STEPS, LearnerCheckConfig, plot_learning_curve, run_learner_check

    res = run_learner_check(env_steps=steps or TARGET_ENV_STEPS, seed=seed,
                            num_envs=num_envs or LearnerCheckConfig().num_envs)
    summary = {k: res[k] for k in ("passed", "env_steps", "wall_s", "compile_s", "eval")}
    print(json.dumps(summary, indent=1))
    print(f"target: {res['target']['criterion']}")
    if out:
        p = Path(out)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(res, indent=2) + "\n")
        png = plot_learning_curve(res, p.with_suffix(".png"))
        print(f"→ {p}\n→ {png}")
    return res


def bench_main(what: str, num_envs: int, out: str | None, config: str | None,
               overrides: list[str], steps: int | None = None, physics: str | None = None) -> int:
    """`wildamp bench physics|env|train|learner`: run one benchmark, print it, write JSON if asked.

    ``physics`` ("mjx,mujoco"): run the env/train benchmark once per physics backend in this one
    process, one after the other, and report the ratio (machine noise hits both alike).
    ``learner``: ``wildamp.learner_check`` (``steps`` = env-step budget; JSON + PNG; exit 1 if the
    stated target is missed)."""
    import json

    from wildamp import paths
    from wildamp.bench import (
        BACKEND_RATE_KEY, bench_env, bench_physics, bench_train, compare_backends, write_json,
    )
    from wildamp.config import load_config

    if what == "learner":
        return 0 if learner_check_main(out, steps=steps)["passed"] else 1
    if what == "physics":
        res = bench_physics(num_envs, n_control_steps=steps or 50)
    else:
        backends = [b.strip() for b in physics.split(",")] if physics else [None]

        def run(backend: str | None) -> dict:
            extra = [f"env.physics={backend}"] if backend else []
            cfg = load_config(config or paths.CONFIGS_DIR / "smoke.yaml",
                              list(overrides) + [f"trainer.num_envs={num_envs}"] + extra)
            r = (bench_env(cfg, num_envs, n_control_steps=steps or 50) if what == "env"
                 else bench_train(cfg, calls=steps or 2))
            r["physics"] = backend or cfg.env.physics
            return r

        results = {b or "configured": run(b) for b in backends}
        res = compare_backends(results, what) if len(results) > 1 else next(iter(results.values()))
        if len(results) > 1:
            for n, r in res[next(k for k in res if k.startswith("ratio_to_"))].items():
                print(f"{what} {n}: {results[n][BACKEND_RATE_KEY[what]]:,.0f} /s  (x{r:.2f})")
    print(json.dumps(res, indent=1))
    if out:
        print(f"→ {write_json(res, out)}")
    return 0


def _cmd_bench(a: argparse.Namespace) -> int:
    return bench_main(a.what, num_envs=a.envs, out=a.out, config=a.config,
                      overrides=a.overrides, steps=a.steps, physics=a.physics)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wildamp", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    rc = sub.add_parser("robot-config", help="generate robot_config.yaml from an MJCF model")
    rc.add_argument("model")
    rc.add_argument("--out", default=None, help="default: assets/robot_config.yaml")
    rc.add_argument("--home", default=None, metavar="JOINT=RAD,...",
                    help="generate the home pose from these joint angles (others at 0) instead of the "
                         "'home' keyframe; without a keyframe the home pose is generated anyway")
    rc.add_argument("--site", action="append", default=[], metavar="ROLE=NAME",
                    help="a site named otherwise (roles: imu, left_toe, left_heel, right_toe, right_heel, "
                         "left_foot, right_foot); sites are optional")
    rc.add_argument("--tolerance", action="append", default=[], metavar="KEY=VALUE",
                    help="symmetry tolerance (mass 0.02 relative, length 0.003 m, inertia 0.10 relative, "
                         "axis 0.02, range 0.001 rad)")
    rc.set_defaults(fn=_cmd_robot_config)

    cfg = sub.add_parser("config", help="config utilities").add_subparsers(dest="sub", required=True)
    chk = cfg.add_parser("check", help="validate a config file strictly")
    chk.add_argument("config")
    _add_set(chk)
    chk.set_defaults(fn=_cmd_config_check)

    ref = sub.add_parser("reference", help="reference motions").add_subparsers(dest="sub", required=True)
    gen = ref.add_parser("generate", help="generate the embedded WildRobot walking gait")
    gen.add_argument("--out", required=True)
    gen.add_argument("--gmr-dir", default=None, help="also write each clip as a GMR pickle here")
    gen.add_argument("--speeds", default=None, help="comma-separated forward speeds (m/s)")
    gen.set_defaults(fn=_cmd_ref_generate)
    conv = ref.add_parser("convert-gmr", help="convert GMR motion pickles to a dataset (.npz)")
    conv.add_argument("files", nargs="+")
    conv.add_argument("--robot-config", required=True, help="the target robot's config")
    conv.add_argument("--source-robot-config", default=None,
                      help="config of the robot the clips were made for (default: the target's); joint "
                           "angles are negated where its axes are reversed")
    conv.add_argument("--quat-order", choices=["xyzw", "wxyz"], default=None,
                      help="order of root_rot (default: xyzw, refused if it reads as upside down, "
                           "backwards or leaning; stating it skips that check)")
    conv.add_argument("--out", required=True)
    conv.set_defaults(fn=_cmd_ref_convert)
    rchk = ref.add_parser("check", help="feasibility gate: PD-track every clip in MuJoCo")
    rchk.add_argument("dataset")
    rchk.add_argument("--out", default=None, help="write the report as JSON")
    rchk.add_argument("--starts", type=int, default=0,
                      help="also track every clip from N start timings (0.045-0.26 s) and report pass counts")
    rchk.add_argument("--friction-scales", default="1.0",
                      help="with --starts: also on floors of these friction scales (e.g. 0.75,1,1.25)")
    rchk.set_defaults(fn=_cmd_ref_check)
    trk = ref.add_parser("track", help="physics-filtered copy of a dataset: every clip as the robot moves when "
                                       "its servos PD-track it (what a policy can reproduce exactly)")
    trk.add_argument("dataset")
    trk.add_argument("--out", required=True)
    trk.add_argument("--robot-config", default=None, help="the robot's config (default: assets/robot_config.yaml)")
    trk.add_argument("--ctrl-dt", type=float, default=None, help="control period of the servo targets (default 0.02 s)")
    trk.set_defaults(fn=_cmd_ref_track)
    rep = ref.add_parser("repair", help="the nearest clip the robot can follow: the gait generator fitted to "
                                         "an infeasible clip's AMP features, checked by the gate")
    rep.add_argument("source", help="a GMR pickle (.pkl) or a motion dataset (.npz)")
    rep.add_argument("--clip", default=None, help="the clip of a dataset to repair (needed when it holds several)")
    rep.add_argument("--out", required=True, help="the repaired dataset (.npz, one clip)")
    rep.add_argument("--robot-config", default=None, help="the robot's config (default: assets/robot_config.yaml)")
    rep.add_argument("--source-robot-config", default=None,
                     help="GMR source: config of the robot the clip was made for (as for convert-gmr)")
    rep.add_argument("--quat-order", choices=["xyzw", "wxyz"], default=None,
                     help="GMR source: order of root_rot (as for convert-gmr)")
    rep.add_argument("--config", default=None, help="config whose features section is used (default: configs/smoke.yaml)")
    rep.add_argument("--duration", type=float, default=None, help="length of the repaired clip (s; default: the source's, within 3-5 s)")
    rep.add_argument("--evaluations", type=int, default=120,
                     help="most candidate clips generated by the fit (each a fraction of a second)")
    rep.add_argument("--top", type=int, default=10, help="channels listed in the style table")
    rep.add_argument("--settle-times", default=None,
                     help="comma-separated start timings (s) the repaired clip must pass the gate from "
                          "(default 0.07,0.1,0.13,0.17; the gate's own 0.1 is always included)")
    rep.add_argument("--min-speed-ratio", type=float, default=0.0,
                     help="also require the tracked robot to keep this share of the reference's mean speed from "
                          "every start (default 0: the gate alone; the embedded gait keeps 0.87 or more)")
    rep.set_defaults(fn=_cmd_ref_repair)
    tune = ref.add_parser("tune", help="search gait-generator parameters the robot follows (gate in the loop)")
    tune.add_argument("--speeds", default=None, help="comma-separated forward speeds (m/s) the set must walk")
    tune.add_argument("--lateral-speeds", default=None,
                      help="comma-separated sideways speeds (m/s, + = left) of sideways clips the set must walk")
    tune.add_argument("--iterations", type=int, default=14)
    tune.add_argument("--population", type=int, default=40)
    tune.add_argument("--init", default=None, help="JSON file with the starting parameters (or a tune result)")
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--settle-times", default=None,
                      help="comma-separated start timings (s) every candidate is tracked from (default 0.07,0.1,0.13,0.17)")
    tune.add_argument("--workers", type=int, default=None, help="processes (default: the CPU count, at most 8)")
    tune.add_argument("--friction-scales", default="1.0",
                      help="comma-separated floor friction scales every start is also tracked on (e.g. 0.8,1,1.2)")
    tune.add_argument("--jitter", type=float, default=0.002,
                      help="relative parameter jitter of the perturbed copies (with --jitter-draws)")
    tune.add_argument("--jitter-draws", type=int, default=0,
                      help="also track this many slightly perturbed copies of every candidate")
    tune.add_argument("--out", default=None, help="write the result (parameters, score, gate runs) as JSON")
    tune.set_defaults(fn=_cmd_ref_tune)

    diag = sub.add_parser("diagnose", help="diagnostics").add_subparsers(dest="sub", required=True)
    df = diag.add_parser("features", help="per-channel separability (leak detector) of two feature sets")
    df.add_argument("ref")
    df.add_argument("other")
    df.add_argument("--out", default=None)
    df.add_argument("--config", default=None, help="config whose features section is used")
    df.set_defaults(fn=_cmd_diagnose_features)

    tr = sub.add_parser("train", help="train PPO (+AMP) (MJX or MuJoCo C physics)")
    tr.add_argument("--config", default=None,
                    help="default: configs/ppo_amass_training.yaml on a GPU, configs/cpu.yaml otherwise")
    _add_set(tr)
    tr.add_argument("--run-dir", default=None,
                    help="a new, empty folder (default: runs/<config>-<time>-<random>)")
    tr.add_argument("--resume", default=None, metavar="RUN_DIR",
                    help="continue a run from its latest checkpoint, with its own config.yaml")
    tr.add_argument("--force-new", action="store_true",
                    help="start a new run in an occupied --run-dir (its contents are moved to a sibling folder)")
    tr.add_argument("--allow-config-change", action="store_true",
                    help="with --resume: accept --set changes beyond iterations/logging/eval (recorded in the run)")
    tr.add_argument("--fall-back", action="store_true",
                    help="with --resume: if the latest checkpoint is corrupt, continue from the newest intact one")
    tr.add_argument("--no-amp", action="store_true", help="PPO baseline (amp.enabled=false)")
    tr.add_argument("--iterations", type=int, default=None, help="override trainer.iterations")
    tr.set_defaults(fn=_cmd_train)

    ev = sub.add_parser("eval", help="deterministic evaluation (+ video) of a run's checkpoint or an exported policy")
    ev.add_argument("run_dir")
    ev.add_argument("--video", default=None, help="write an mp4 here")
    ev.add_argument("--checkpoint", default="best", help="'best', 'latest' or a checkpoint dir")
    ev.add_argument("--out", default=None, help="write the metrics as JSON")
    ev.add_argument("--seed", type=int, default=None, help="evaluation seed (default: the config's eval.seed)")
    ev.add_argument("--fall-back", action="store_true",
                    help="if the chosen checkpoint is corrupt, evaluate the newest intact one")
    _add_set(ev)
    ev.set_defaults(fn=_cmd_eval)

    ex = sub.add_parser("export", help="write a run's policy alone (small; evaluable with `wildamp eval`)")
    ex.add_argument("run_dir")
    ex.add_argument("out_dir")
    ex.add_argument("--checkpoint", default="best", help="'best', 'latest' or a checkpoint dir")
    ex.set_defaults(fn=_cmd_export)

    b = sub.add_parser("bench", help="benchmarks writing JSON")
    b.add_argument("what", choices=["physics", "env", "train", "learner"],
                   help="learner: PPO on a pendulum swing-up (--steps = env-step budget; --envs unused)")
    b.add_argument("--envs", type=int, default=256)
    b.add_argument("--steps", type=int, default=None)
    b.add_argument("--out", default=None)
    b.add_argument("--config", default=None)
    b.add_argument("--physics", default=None,
                   help="env/train: comma-separated backends measured side by side, e.g. mjx,mujoco")
    _add_set(b)
    b.set_defaults(fn=_cmd_bench)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    from wildamp.viz import ensure_gl_backend
    ensure_gl_backend()  # must precede the first mujoco import (headless rendering)
    args = build_parser().parse_args(argv)
    from wildamp.checkpoint import CheckpointCorruptError
    from wildamp.config import ConfigError
    from wildamp.run_folder import ConfigChangeError, RunFolderError
    try:
        return int(args.fn(args) or 0)
    except ConfigError as e:
        print(f"wildamp: config error: {e}", file=sys.stderr)
        return 2
    except (CheckpointCorruptError, ConfigChangeError, RunFolderError) as e:
        print(f"wildamp: error: {e}", file=sys.stderr)
        return 2
    except (OSError, KeyError, ValueError) as e:
        # Bad input files (missing, unreadable, malformed): one line naming them, never a traceback.
        print(f"wildamp: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
