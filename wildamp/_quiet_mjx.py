"""Silence MJX's notice that the optional Warp backend is not installed.

``import mujoco.mjx`` imports ``mujoco.mjx.warp``, whose ``__init__`` *prints* (to stdout, not through
``logging``) ``Failed to import warp: No module named 'warp'`` and the same for ``mujoco_warp`` when
NVIDIA Warp is absent. wildamp never uses the Warp backend, so every command and notebook printed two
alarming lines. `install` (called by ``wildamp/__init__.py``, so by every entry point) adds an import
hook that runs that one module with stdout captured and passes through everything it printed except
exactly those "no module named warp" notices (they go to the ``wildamp`` logger at DEBUG level).
Any other message, e.g. Warp installed but failing to load, is printed as before.

The hook imports nothing heavy and does nothing until ``mujoco.mjx`` is imported; if MJX was imported
before wildamp, it is a no-op.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import io
import logging
import re
import sys
from typing import Any

TARGET = "mujoco.mjx.warp"
#: What ``mujoco.mjx.warp`` prints when Warp is simply not installed (nothing else is dropped).
WARP_MISSING = re.compile(r"^Failed to import (warp|mujoco_warp): No module named 'warp(\.[\w.]+)?'\s*$")

_log = logging.getLogger("wildamp")


def filter_output(text: str) -> str:
    """``text`` without the lines that only say Warp is not installed."""
    kept = []
    for line in text.splitlines(keepends=True):
        if WARP_MISSING.match(line):
            _log.debug("suppressed on importing %s: %s", TARGET, line.rstrip())
        else:
            kept.append(line)
    return "".join(kept)


class _QuietLoader(importlib.abc.Loader):
    """Runs the wrapped loader's module with stdout captured, then prints what `filter_output` keeps."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf):
                self._loader.exec_module(module)
        finally:
            out = filter_output(buf.getvalue())
            if out:
                sys.stdout.write(out)
            # From here on the module looks as if imported normally.
            module.__loader__ = self._loader
            if getattr(module, "__spec__", None) is not None:
                module.__spec__.loader = self._loader

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, ...
        return getattr(self._loader, name)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds ``mujoco.mjx.warp`` with the other finders and wraps its loader in `_QuietLoader`."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


def install() -> None:
    """Add the import hook once (nothing to do when ``mujoco.mjx.warp`` is already imported)."""
    if TARGET in sys.modules or any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietFinder())
