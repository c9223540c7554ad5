"""What produced a result: library versions and the machine, for JSON files and checkpoints.

Benchmarks, checkpoints and the feasibility gate's report all record these; one place keeps them
alike. No jax import here, so MuJoCo-only tools (the gate) stay light.
"""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import Sequence

__all__ = ["DEFAULT_PACKAGES", "library_versions", "machine_info"]

#: Packages whose versions decide simulation and training results.
DEFAULT_PACKAGES: tuple[str, ...] = ("jax", "jaxlib", "mujoco", "mujoco-mjx", "numpy")


def library_versions(packages: Sequence[str] = DEFAULT_PACKAGES,
                     missing: str | None = "not installed") -> dict[str, str | None]:
    """``{"python": ..., package: version}`` for the installed distributions (``missing`` for others)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = missing
    return out


def machine_info() -> dict[str, str]:
    """Operating system, architecture and processor name of this machine (on Linux the CPU model from
    /proc/cpuinfo: ``platform.processor()`` is often empty there, and results differ between CPU vendors)."""
    return {"system": platform.system(), "machine": platform.machine(), "processor": platform.processor() or _cpu_model()}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""
