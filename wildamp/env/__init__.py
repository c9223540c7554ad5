"""The walking environment, split by job:

- :mod:`wildamp.env.backends`      physics backends (MJX, MuJoCo C) behind one ``initial``/``step`` seam
- :mod:`wildamp.env.rewards`       task-reward terms and their registry
- :mod:`wildamp.env.observations`  policy / critic observations
- :mod:`wildamp.env.randomization` per-episode domain randomisation
- :mod:`wildamp.env.posture`       default posture and reference-state initialisation from the clips
- :mod:`wildamp.env.walk`          :class:`WalkEnv`: reset / step over a pytree, auto-reset

Attributes are imported lazily so that ``wildamp.config`` can read the reward registry without
importing the env (which imports the config).
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "WalkEnv": "wildamp.env.walk", "EnvState": "wildamp.env.walk", "OBS_LAYOUT": "wildamp.env.observations",
    "quat_from_yaw": "wildamp.rotations", "quat_rotate_inv": "wildamp.rotations",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'wildamp.env' has no attribute {name!r}")
