"""The style AUC a physically perfect imitator gets: each commanded clip PD-tracked by the robot's own
servos from a different start timing (a second physical run), scored by the evaluation's style check
against the kinematic embedded gait and against its PD-tracked version (configs/cpu.yaml's features,
normaliser fitted to each reference as a training run would).

Writes results/style_ceiling_cpu.json. Usage: python scripts/style_ceiling.py [--settle 0.13]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/cpu.yaml")
    ap.add_argument("--settle", type=float, default=0.13, help="start timing of the second run (s; the gate uses 0.1)")
    ap.add_argument("--out", default="results/style_ceiling_cpu.json")
    a = ap.parse_args()

    from wildamp import features as F
    from wildamp import paths
    from wildamp.config import load_config
    from wildamp.evaluate import SETTLE_SECONDS, style_auc
    from wildamp.provenance import library_versions, machine_info
    from wildamp.reference_data import after_start
    from wildamp.reference.clip import MotionDataset, commanded_clips
    from wildamp.reference.feasibility import track_clip
    from wildamp.reference.generator import ensure_default_reference
    from wildamp.reference.tracked import ensure_tracked_default_reference, replanned_clip
    from wildamp.robot import load_model, load_robot_spec

    t0 = time.time()
    cfg = load_config(a.config)
    fcfg, dt = cfg.features, cfg.env.ctrl_dt
    model = load_model(cfg.robot.model)
    spec = load_robot_spec(cfg.robot.robot_config, model)
    layout = F.FeatureLayout.build(spec, fcfg)
    params = F.FeatureParams.from_config(fcfg, spec, model)
    ids = F.FrameIds.from_model(model, spec)
    names = layout.sample_channel_names()
    refs = {"kinematic": MotionDataset.load(ensure_default_reference(paths.DEFAULT_REFERENCE)),
            "tracked": MotionDataset.load(ensure_tracked_default_reference(paths.DEFAULT_TRACKED_REFERENCE))}
    skip = int(round(cfg.reference.skip_seconds / dt))   # each clip's start, as the AMP reference leaves it out
    norms, samples = {}, {}
    for label, ds in refs.items():
        s, idx = after_start(*F.dataset_samples(ds, model, spec, fcfg, ctrl_dt=dt), skip, ds.clip_names)
        norms[label] = F.FeatureNormalizer.from_config(s, names, fcfg)
        samples[label] = {c.name: np.asarray(s)[np.asarray(idx) == i] for i, c in enumerate(ds.clips)}
    tracked_by_name = {c.name: c for c in refs["tracked"].clips}
    rows = []
    for clip in commanded_clips(refs["kinematic"], cfg.env.command.forward_range, cfg.env.command.lateral_range):
        # The tracked clip may come from a re-planned speed (tracked.speed_matched_tracked_clip): the
        # second run follows the same plan, and is judged against that plan as the kinematic reference.
        plan_speed = tracked_by_name[clip.name].meta["tracked"].get("plan_speed")
        if plan_speed is not None and "params" in clip.meta:
            clip = replanned_clip(model, spec, clip, plan_speed)
            s, _ = after_start(*F.dataset_samples(MotionDataset(clips=[clip], joint_names=clip.joint_names,
                                                                fps=clip.fps), model, spec, fcfg, ctrl_dt=dt),
                               skip, [clip.name])
            samples["kinematic"][clip.name] = np.asarray(s)
        run = track_clip(model, spec, clip, ctrl_dt=dt, settle_time=a.settle)
        frames = F.mj_frames(model, ids, run.qpos, contact_force=run.foot_forces)
        run_s = np.asarray(F.trajectory_samples(layout, params, [frames], dt)[0])[int(SETTLE_SECONDS / dt):]
        row = {"clip": clip.name, "fell": run.fell_at is not None}
        for label in refs:
            ref = samples[label][clip.name]
            row[f"auc_vs_{label}"] = style_auc(norms[label].apply(ref), norms[label].apply(run_s))
        rows.append(row)
        print(f"{clip.name}: second physical run vs kinematic reference AUC {row['auc_vs_kinematic']:.3f}, "
              f"vs tracked reference {row['auc_vs_tracked']:.3f}")
    out = {"what": "style AUC (evaluation's classifier) of a second PD-tracked run of each commanded clip "
                   f"(start timing {a.settle} s, samples after {SETTLE_SECONDS} s; the clip's plan re-planned "
                   "to the tracked clip's plan speed) against that kinematic plan and against the PD-tracked "
                   f"reference (each reference clip from {cfg.reference.skip_seconds} s on, reference.skip_seconds)",
           "config": a.config, "rows": rows, "wall_s": time.time() - t0,
           "machine": machine_info(), "versions": library_versions()}
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(f"→ {a.out}")


if __name__ == "__main__":
    main()
