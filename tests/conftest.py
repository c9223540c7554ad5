"""Shared fixtures: the default robot spec and its scene model (MuJoCo C), loaded once per session.

Test modules that need another variant (the bare robot model, a spec built from a given model)
define their own ``spec``/``model`` fixtures, which take precedence over these.
"""

from __future__ import annotations

import pytest

from wildamp.robot import load_model, load_robot_spec


@pytest.fixture(scope="session")
def spec():
    return load_robot_spec()


@pytest.fixture(scope="session")
def model(spec):
    return load_model(spec.model_path)
