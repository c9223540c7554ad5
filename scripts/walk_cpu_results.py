"""Collect the CPU walking result: evaluate the AMP and the PPO-only run with one seed, write
results/walk_cpu.json (targets, gait metrics, wall clock, machine) and results/walk_cpu.png (learning
curves of both runs side by side).

Usage: python scripts/walk_cpu_results.py RUN_AMP RUN_PPO [--policy assets/policies/walk_cpu]
                                          [--other-seeds RUN ...] [--eval-seeds SEED ...]
--other-seeds records the evaluation curves of runs of the same config with other seeds (the spread
between runs), as they were logged during training; --eval-seeds evaluates the shipped policy again
with other evaluation seeds (the seed of the config picked it as the best checkpoint).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np


def _wall_s(run: Path) -> float:
    """Training wall clock including compilation: the largest elapsed time the run logged."""
    from wildamp.metrics import read_jsonl
    return max((float(r.get("elapsed_s") or 0.0) for r in read_jsonl(run / "metrics.jsonl")), default=0.0)


def _eval_curve(run: Path) -> list[dict]:
    """The deterministic evaluations logged during training: iteration, wall clock, headline metrics."""
    from wildamp.metrics import read_jsonl
    keys = ("vel_error", "fall_rate", "alternation", "style_auc")
    return [{"iteration": r["iteration"], "elapsed_s": r.get("elapsed_s"),
             **{k: r["metrics"][f"eval/{k}"] for k in keys}}
            for r in read_jsonl(run / "metrics.jsonl") if "eval/style_auc" in r["metrics"]]


def _eval(dir_: Path, out: Path, seed: int | None = None) -> dict:
    from wildamp.cli import eval_main
    eval_main(str(dir_), out=str(out), seed=seed)
    return json.loads(out.read_text())


def _other_eval_seeds(policy: Path, seeds: list[int], scratch: Path) -> list[dict]:
    """The shipped policy under evaluation seeds other than the one that picked it as the best
    checkpoint (other episodes' starts and other classifier samples): how far its figures are the
    policy's and not the picking seed's luck."""
    rows = []
    for seed in seeds:
        ev = _eval(policy, scratch / f"eval_seed{seed}.json", seed=seed)
        rows.append({"seed": seed, **{k: ev[k] for k in ("style_auc", "vel_error", "fall_rate", "alternation")},
                     "style_auc_per_command": ev["style_auc_per_command"]})
    return rows


def _curves(runs: dict[str, Path], png: Path, other_seeds: dict[str, Path] | None = None) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wildamp.metrics import metric_series, read_jsonl
    # (key, title, target line): eval/* series are the deterministic evaluations (every eval.every_iterations).
    panels = [("eval/vel_error", "|v - cmd| (m/s), eval, speed over one gait cycle", 0.05),
              ("eval/alternation", "alternation of touchdowns, eval", 0.9),
              ("reward/task", "task reward per step", None),
              ("amp/reward_mean", "AMP style reward per step (AMP run)", None),
              ("amp/disc_acc", "discriminator accuracy (AMP run)", None),
              ("eval/style_auc", "style AUC, eval (0.5 = like the reference)", 0.80)]
    fig, axes = plt.subplots(2, 3, figsize=(15, 7.5))
    for ax, (key, title, target) in zip(axes.flat, panels):
        evaluated = key.startswith("eval/")
        for name, run in runs.items():
            recs = read_jsonl(run / "metrics.jsonl")
            x, y = metric_series(recs, key) if evaluated else metric_series(recs, key, x="env_steps")
            if len(x) and np.isfinite(y).any():
                ax.plot(np.asarray(x) / (1 if evaluated else 1e6), y, label=name,
                        marker="o" if evaluated else None, lw=1.2)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("iteration" if evaluated else "env steps (M)")
        ax.grid(alpha=0.3)
        if key == "eval/style_auc":
            for name, run in (other_seeds or {}).items():
                x, y = metric_series(read_jsonl(run / "metrics.jsonl"), key)
                ax.plot(x, y, label=name, marker=".", lw=0.8, ls=":")
        if target is not None:
            ax.axhline(target, color="k", ls="--", lw=0.8, label="target")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle("CPU walking: PPO+AMP vs PPO-only (configs/cpu.yaml, 2-core CPU)")
    fig.tight_layout()
    fig.savefig(png, dpi=90)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("amp_run")
    ap.add_argument("ppo_run", nargs="?", default=None, help="the PPO-only run (same config, --no-amp)")
    ap.add_argument("--policy", default="assets/policies/walk_cpu")
    ap.add_argument("--out", default="results/walk_cpu.json")
    ap.add_argument("--other-seeds", nargs="*", default=[], metavar="RUN",
                    help="PPO+AMP runs of the same config with other seeds: their evaluation curves")
    ap.add_argument("--eval-seeds", type=int, nargs="*", default=[], metavar="SEED",
                    help="also evaluate the shipped policy with these evaluation seeds")
    a = ap.parse_args()
    from wildamp.provenance import library_versions, machine_info
    amp, policy = Path(a.amp_run), Path(a.policy)
    evaluated_policy = policy if policy.exists() else amp   # the exported policy, else the run's best checkpoint
    res = {
        "what": "deterministic evaluation (eval.seed of the config) over forward commands, 20 s episodes, "
                "metrics after a 2 s settling time; wall_clock_s = training time including compilation",
        "amp": {"run": amp.name, "wall_clock_s": _wall_s(amp), "eval_curve": _eval_curve(amp),
                "eval": _eval(evaluated_policy, amp / "eval_final.json")},
        "machine": machine_info(), "cpu_count": os.cpu_count(), "versions": library_versions(),
    }
    if a.eval_seeds:
        res["amp"]["other_eval_seeds"] = _other_eval_seeds(evaluated_policy, a.eval_seeds, amp)
    runs = {"PPO+AMP": amp}
    if a.ppo_run:
        ppo_only = Path(a.ppo_run)
        res["ppo_only"] = {"run": ppo_only.name, "wall_clock_s": _wall_s(ppo_only),
                           "eval_curve": _eval_curve(ppo_only),
                           "eval": _eval(ppo_only, ppo_only / "eval_final.json")}
        runs["PPO only"] = ppo_only
    from wildamp.config import load_config
    seed_of = {Path(r): load_config(Path(r) / "config.yaml").trainer.seed for r in a.other_seeds}
    if seed_of:
        res["amp_other_seeds"] = [{"run": r.name, "seed": seed, "eval_curve": _eval_curve(r)}
                                  for r, seed in seed_of.items()]
    from wildamp.gait import target_table
    for k in ("amp", "ppo_only"):
        if k in res:
            res[k]["targets"] = target_table(res[k]["eval"])
    Path(a.out).write_text(json.dumps(res, indent=1))
    _curves(runs, Path(a.out).with_suffix(".png"),
            {f"PPO+AMP seed {seed}": r for r, seed in seed_of.items()})
    print(f"→ {a.out}, {Path(a.out).with_suffix('.png')}")


if __name__ == "__main__":
    main()
