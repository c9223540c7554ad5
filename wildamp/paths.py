"""Where wildamp finds its assets, configs and default data (editable install from the repo)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = REPO_ROOT / "assets"
CONFIGS_DIR = REPO_ROOT / "configs"
DEFAULT_MODEL = ASSETS_DIR / "scene.xml"
DEFAULT_ROBOT_CONFIG = ASSETS_DIR / "robot_config.yaml"
# Generated data (the embedded reference gait) lives outside the package and is never committed.
DATA_DIR = Path(os.environ.get("WILDAMP_DATA_DIR", REPO_ROOT / "data"))
DEFAULT_REFERENCE = DATA_DIR / "reference" / "wildrobot_gait.npz"
# The same gait PD-tracked in MuJoCo (wildamp.reference.tracked): what the CPU walking config imitates.
DEFAULT_TRACKED_REFERENCE = DATA_DIR / "reference" / "wildrobot_gait_tracked.npz"


def resolve(path: str | os.PathLike) -> Path:
    """Resolve a path from a config: absolute as is, relative to the repository root otherwise."""
    p = Path(path)
    return p if p.is_absolute() else (REPO_ROOT / p)
