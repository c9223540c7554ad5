"""`wildamp …` command line: thin wrappers over the package modules.

Imports are local to each command so that `wildamp --help` and config checks start fast.
Exit status: 0 success, 1 a check failed (e.g. an infeasible clip), 2 bad input (config, files).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value (repeatable); validated like the file")


def _cmd_robot_config(a: argparse.Namespace) -> int:
    from wildamp.robot import robot_config_main
    return robot_config_main(a.model, a.out)


def _cmd_config_check(a: argparse.Namespace) -> int:
    from wildamp.config import load_config
    cfg = load_config(a.config, a.overrides)
    print(f"{a.config}: OK (version {cfg.version} '{cfg.version_name}')")
    return 0


def _cmd_ref_generate(a: argparse.Namespace) -> int:
    from wildamp.reference.generator import generate_main
    speeds = [float(s) for s in a.speeds.split(",")] if a.speeds else None
    return generate_main(a.out, write_gmr_dir=a.gmr_dir, speeds=speeds)


def _cmd_ref_convert(a: argparse.Namespace) -> int:
    from wildamp.reference.gmr import convert_gmr_main
    return convert_gmr_main(a.files, a.robot_config, a.out)


def _cmd_ref_check(a: argparse.Namespace) -> int:
    from wildamp.reference.feasibility import check_main
    return check_main(a.dataset, a.out, starts=a.starts,
                      friction_scales=tuple(float(f) for f in a.friction_scales.split(",")))


def _cmd_ref_tune(a: argparse.Namespace) -> int:
    from wildamp.reference.tuning import tune_main
    speeds = [float(s) for s in a.speeds.split(",")] if a.speeds else []
    lateral = [float(s) for s in a.lateral_speeds.split(",")] if a.lateral_speeds else []
    settle = tuple(float(s) for s in a.settle_times.split(",")) if a.settle_times else None
    return tune_main(speeds, out=a.out, iterations=a.iterations, population=a.population, init=a.init,
                     seed=a.seed, workers=a.workers, settle_times=settle,
                     friction_scales=tuple(float(f) for f in a.friction_scales.split(",")),
                     jitter=a.jitter, jitter_draws=a.jitter_draws, lateral_speeds=lateral)


def _cmd_diagnose_features(a: argparse.Namespace) -> int:
    from wildamp.diagnose import diagnose_features_main
    return diagnose_features_main(a.ref, a.other, out=a.out, config=a.config)


def train_main(config: str | None, overrides: list[str], run_dir: str | None, resume: str | None,
               no_amp: bool = False, iterations: int | None = None) -> int:
    """`wildamp train`: train, then evaluate the best checkpoint and write video + plots."""
    from pathlib import Path

    import jax

    from wildamp.config import load_config
    from wildamp.train import TrainingDiverged, default_config_path, new_run_dir, run_training
    if resume:
        run_dir = resume
        cfg_path = Path(resume) / "config.yaml"
    else:
        cfg_path = Path(config) if config else default_config_path()
    overrides = list(overrides) + (["amp.enabled=false"] if no_amp else [])
    cfg = load_config(cfg_path, overrides)
    out = Path(run_dir) if run_dir else new_run_dir(cfg_path)
    print(f"wildamp train: config {cfg_path} → run dir {out}  (JAX backend: {jax.default_backend()}, "
          f"physics {cfg.env.physics}, {cfg.trainer.num_envs} envs on {jax.device_count()} device(s), "
          f"AMP {'on' if cfg.amp.enabled else 'off'})")
    try:
        run_training(cfg, out, resume=bool(resume), iterations=iterations)
    except TrainingDiverged as e:
        print(f"wildamp train: stopped: {e}")
        return 3
    except KeyboardInterrupt:
        return 130
    from wildamp.metrics import plot_dashboard, read_jsonl
    fig = plot_dashboard(read_jsonl(out / "metrics.jsonl"))
    fig.savefig(out / "training.png", dpi=100)
    print(f"training curves → {out / 'training.png'}")
    return eval_main(str(out), video=str(out / "eval.mp4") if cfg.video.enabled else None,
                     checkpoint="best", out=str(out / "eval.json"))


def eval_main(run_dir: str, video: str | None = None, checkpoint: str = "best", out: str | None = None,
              overrides: list[str] | None = None, seed: int | None = None) -> int:
    """`wildamp eval DIR`: evaluate a run's checkpoint (or an exported policy directory such as
    assets/policies/walk_cpu) deterministically; print the metrics and the walking-target table."""
    import json
    from pathlib import Path

    from wildamp import run_state
    from wildamp.config import load_config
    from wildamp.evaluate import Evaluator, write_eval_video
    from wildamp.gait import format_table
    from wildamp.train import Trainer

    run = Path(run_dir)
    if not (run / "config.yaml").is_file():
        raise FileNotFoundError(f"{run} has no config.yaml: not a run directory or exported policy")
    cfg = load_config(run / "config.yaml", overrides or [])
    trainer = Trainer.build(cfg)
    template = trainer.init_state()
    if run_state.is_policy_dir(run):
        state, meta = run_state.load_policy(trainer, template, run)
        source = str(run / run_state.POLICY_FILE)
    else:
        path = run_state.resolve_checkpoint(run, checkpoint)
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
    trainer = Trainer.build(cfg)
    path = run_state.resolve_checkpoint(run_dir, checkpoint)
    state, meta = run_state.restore_checkpoint(trainer, trainer.init_state(), path)
    out = run_state.export_policy(trainer, state, meta, out_dir, extra={"source_checkpoint": str(path)})
    print(f"policy of {path} → {out}")
    return 0


def _cmd_train(a: argparse.Namespace) -> int:
    return train_main(config=a.config, overrides=a.overrides, run_dir=a.run_dir, resume=a.resume,
                      no_amp=a.no_amp, iterations=a.iterations)


def _cmd_eval(a: argparse.Namespace) -> int:
    return eval_main(a.run_dir, video=a.video, checkpoint=a.checkpoint, out=a.out,
                     overrides=a.overrides, seed=a.seed)


def _cmd_export(a: argparse.Namespace) -> int:
    return export_main(a.run_dir, a.out_dir, checkpoint=a.checkpoint)


def _cmd_bench(a: argparse.Namespace) -> int:
    from wildamp import bench
    return bench.bench_main(a.what, num_envs=a.envs, out=a.out, config=a.config,
                            overrides=a.overrides, steps=a.steps, physics=a.physics)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wildamp", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    rc = sub.add_parser("robot-config", help="generate robot_config.yaml from an MJCF model")
    rc.add_argument("model")
    rc.add_argument("--out", default=None, help="default: assets/robot_config.yaml")
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
    conv.add_argument("--robot-config", required=True)
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

    tr = sub.add_parser("train", help="train PPO (+AMP) in MJX")
    tr.add_argument("--config", default=None,
                    help="default: configs/ppo_amass_training.yaml on a GPU, configs/cpu.yaml otherwise")
    _add_set(tr)
    tr.add_argument("--run-dir", default=None)
    tr.add_argument("--resume", default=None, metavar="RUN_DIR")
    tr.add_argument("--no-amp", action="store_true", help="PPO baseline (amp.enabled=false)")
    tr.add_argument("--iterations", type=int, default=None, help="override trainer.iterations")
    tr.set_defaults(fn=_cmd_train)

    ev = sub.add_parser("eval", help="deterministic evaluation (+ video) of a run's checkpoint or an exported policy")
    ev.add_argument("run_dir")
    ev.add_argument("--video", default=None, help="write an mp4 here")
    ev.add_argument("--checkpoint", default="best", help="'best', 'latest' or a checkpoint dir")
    ev.add_argument("--out", default=None, help="write the metrics as JSON")
    ev.add_argument("--seed", type=int, default=None, help="evaluation seed (default: the config's eval.seed)")
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
    from wildamp.config import ConfigError
    try:
        return int(args.fn(args) or 0)
    except ConfigError as e:
        print(f"wildamp: config error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"wildamp: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
