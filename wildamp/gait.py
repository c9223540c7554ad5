"""Gait metrics of evaluation rollouts (numpy, host side) and the walking targets they are judged by.

Inputs are per-step arrays of deterministic rollouts (leading axes: time T, episode N): foot contact
(force over the env's threshold), pad positions and the heading-frame forward velocity, plus the
mask of live steps after the settling time. Every metric is a mean over the masked steps or over
the events (touchdowns, swings) inside them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wildamp.robot import FOOT_NAMES, PADS_OF_FOOT


@dataclass(frozen=True)
class WalkingTargets:
    """What "walks" means for a shipped policy (evaluated deterministically, after settling)."""
    max_vel_error: float = 0.05        # m/s, mean |v_x − cmd_x|
    max_fall_rate: float = 0.05
    min_alternation: float = 0.9       # fraction of consecutive touchdowns made by alternate feet
    min_swing_per_cycle: float = 0.9   # fraction of gait cycles in which each foot swings (0.9 ≈ every one)
    max_style_auc: float = 0.80


TARGETS = WalkingTargets()


#: A foot is in swing only once it has been off the floor this long (s). When one foot strikes the
#: floor the other, still standing, is unloaded and reloaded for one or two control steps (the PD-tracked
#: reference gait does it at every step); counted as a swing and a touchdown, such a blip doubles the step
#: frequency and breaks alternation (the reference itself would score 0.56-0.65) though no foot moved.
MIN_SWING_SECONDS = 0.06


def debounce_contact(contact: np.ndarray, min_off_steps: int) -> np.ndarray:
    """``contact`` (T, ...) bool with every loss of contact shorter than ``min_off_steps`` steps that
    ends in contact again read as contact (an unloading blip, not a swing)."""
    out = np.array(contact, bool)
    if min_off_steps <= 1:
        return out
    T = out.shape[0]
    flat = out.reshape(T, -1)
    for j in range(flat.shape[1]):
        c = flat[:, j]
        t = 0
        while t < T:
            if c[t]:
                t += 1
                continue
            end = t
            while end < T and not c[end]:
                end += 1
            if t > 0 and end < T and end - t < min_off_steps:
                c[t:end] = True
            t = end
    return flat.reshape(out.shape)


def _touchdowns(contact: np.ndarray) -> np.ndarray:
    """(T-1, N, 2) bool: the foot went from swing to stance between t-1 and t."""
    return contact[1:] & ~contact[:-1]


def gait_metrics(contact: np.ndarray, pad_pos: np.ndarray, forward_vel: np.ndarray, mask: np.ndarray,
                 dt: float, min_swing_seconds: float = MIN_SWING_SECONDS) -> dict[str, float]:
    """Gait statistics of evaluation rollouts.

    Args:
      contact: (T, N, 2) bool, foot in contact; pad_pos: (T, N, 4, 3) pad positions (m);
      forward_vel: (T, N) heading-frame forward root velocity (m/s); mask: (T, N) bool live steps
      after settling; dt: control period (s).

    Returns single-support fraction per foot (share of live steps on that foot alone), step
    frequency (touchdowns per second per foot), stride length (forward travel of a foot between two
    of its touchdowns), foot clearance (mean of each swing's peak pad-height gain), left/right
    symmetry (min/max of the two feet's single-support fractions; 1 = symmetric), alternation
    (share of consecutive touchdowns made by alternate feet), swing-per-cycle (share of the other
    foot's step intervals during which this foot swung at least once), slip (mean horizontal speed
    of pads in contact, m/s) and the mean measured forward velocity.

    A foot counts as off the floor only after ``min_swing_seconds`` without contact
    (:func:`debounce_contact`; 0 reads the raw force contact).
    """
    contact = debounce_contact(contact, int(round(min_swing_seconds / dt)))
    mask = np.asarray(mask, bool)
    T, N = mask.shape
    live_steps = max(int(mask.sum()), 1)
    seconds = live_steps * dt
    out: dict[str, float] = {}
    both = contact.sum(-1)
    for f, name in enumerate(FOOT_NAMES):
        alone = contact[..., f] & (both == 1)
        out[f"single_support_{name}"] = float((alone & mask).sum() / live_steps)
    out["single_support_fraction"] = out["single_support_left"] + out["single_support_right"]
    ss = [out["single_support_left"], out["single_support_right"]]
    out["symmetry"] = float(min(ss) / max(ss)) if max(ss) > 0 else 0.0

    td = _touchdowns(contact) & mask[1:, :, None]
    out["step_frequency_hz"] = float(td.sum() / 2 / seconds)

    foot_xy = np.stack([pad_pos[:, :, list(p), :2].mean(axis=2) for p in PADS_OF_FOOT], axis=2)  # (T,N,2,2)
    foot_z = np.stack([pad_pos[:, :, list(p), 2].mean(axis=2) for p in PADS_OF_FOOT], axis=2)     # (T,N,2)
    strides, clearances, alternate, total_pairs, swung, cycles = [], [], 0, 0, 0, 0
    for n in range(N):
        events = []   # (time index, foot)
        for f in range(2):
            times = np.nonzero(td[:, n, f])[0] + 1
            events += [(int(t), f) for t in times]
            for a, b in zip(times[:-1], times[1:]):
                strides.append(float(np.linalg.norm(foot_xy[b, n, f] - foot_xy[a, n, f])))
            # Swings: maximal runs of no contact that end in a counted touchdown.
            for t in times:
                s = t - 1
                while s > 0 and not contact[s, n, f]:
                    s -= 1
                if t - 1 > s:
                    clearances.append(float(foot_z[s + 1:t, n, f].max() - foot_z[t, n, f]))
        events.sort()
        for (t0, f0), (t1, f1) in zip(events[:-1], events[1:]):
            total_pairs += 1
            alternate += int(f0 != f1)
        # A gait cycle of foot f = the interval between two touchdowns of the other foot; foot f must
        # have been off the floor at some point inside it.
        for f in range(2):
            other = np.nonzero(td[:, n, 1 - f])[0] + 1
            for a, b in zip(other[:-1], other[1:]):
                cycles += 1
                swung += int((~contact[a:b, n, f]).any())
    out["stride_length_m"] = float(np.mean(strides)) if strides else 0.0
    out["foot_clearance_m"] = float(np.mean(clearances)) if clearances else 0.0
    out["alternation"] = float(alternate / total_pairs) if total_pairs else 0.0
    out["swing_per_cycle"] = float(swung / cycles) if cycles else 0.0
    pad_vel = np.linalg.norm(np.diff(pad_pos[..., :2], axis=0), axis=-1) / dt        # (T-1, N, 4)
    pad_contact = np.repeat(contact, 2, axis=-1)[1:] & mask[1:, :, None]
    out["slip_m_s"] = float((pad_vel * pad_contact).sum() / max(pad_contact.sum(), 1))
    out["forward_velocity"] = float((np.asarray(forward_vel) * mask).sum() / live_steps)
    return out


def _vel_label(result: dict) -> str:
    w = result.get("velocity_window_seconds") or 0.0
    return f"|v - cmd| ({w:.2f} s mean)" if w > 0 else "|v - cmd| (m/s)"


def target_table(result: dict, targets: WalkingTargets = TARGETS) -> list[dict]:
    """Rows (metric, value, target, ok) judging an evaluation result against the walking targets."""
    rows = [
        (_vel_label(result), result.get("vel_error"), f"<= {targets.max_vel_error}",
         lambda v: v <= targets.max_vel_error),
        ("falls", result.get("fall_rate"), f"<= {targets.max_fall_rate}", lambda v: v <= targets.max_fall_rate),
        ("alternation", result.get("alternation"), f">= {targets.min_alternation}",
         lambda v: v >= targets.min_alternation),
        ("swing per cycle", result.get("swing_per_cycle"), f">= {targets.min_swing_per_cycle}",
         lambda v: v >= targets.min_swing_per_cycle),
        ("style AUC", result.get("style_auc"), f"<= {targets.max_style_auc}",
         lambda v: v <= targets.max_style_auc),
    ]
    out = []
    for name, v, t, ok in rows:
        v = float("nan") if v is None else float(v)
        out.append({"metric": name, "value": v, "target": t, "ok": bool(np.isfinite(v) and ok(v))})
    return out


def format_table(result: dict) -> str:
    """The target table plus the descriptive gait metrics, as text."""
    lines = [f"{'metric':<26}{'value':>8}  {'target':<10} ok"]
    for r in target_table(result):
        lines.append(f"{r['metric']:<26}{r['value']:>8.3f}  {r['target']:<10} {'yes' if r['ok'] else 'NO'}")
    for k in ("vel_error_instantaneous", "forward_velocity", "single_support_left", "single_support_right", "symmetry",
              "step_frequency_hz", "stride_length_m", "foot_clearance_m", "slip_m_s"):
        if k in result:
            lines.append(f"{k:<26}{result[k]:>8.3f}")
    return "\n".join(lines)
