"""wildamp silences MJX's "Failed to import warp" notice (and nothing else) for every entry point."""

from __future__ import annotations

import subprocess
import sys

from wildamp import _quiet_mjx as Q


def test_filter_output_drops_only_the_warp_not_installed_notices():
    text = ("Failed to import warp: No module named 'warp'\n"
            "Failed to import mujoco_warp: No module named 'warp'\n"
            "Failed to import warp: CUDA driver initialization failed\n"
            "something else\n")
    assert Q.filter_output(text) == "Failed to import warp: CUDA driver initialization failed\nsomething else\n"


def test_importing_mjx_after_wildamp_prints_no_warp_notice():
    # A fresh interpreter: in this session mujoco.mjx may be imported already.
    code = ("import wildamp, mujoco.mjx, mujoco.mjx.warp as w; "
            "print('loader', type(w.__spec__.loader).__name__, w.WARP_INSTALLED)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Failed to import" not in out.stdout + out.stderr
    warp_installed = out.stdout.split()[-1] == "True"
    assert out.stdout.splitlines()[-1].startswith("loader SourceFileLoader"), out.stdout
    assert warp_installed or out.stdout.strip().splitlines() == ["loader SourceFileLoader False"]
