"""wildamp: PPO + Adversarial Motion Priors for the WildRobot biped in MuJoCo MJX."""

__version__ = "0.1.0"

# MJX prints "Failed to import warp: No module named 'warp'" on import (its optional Warp backend,
# unused here); every entry point imports this package first, so silence exactly that here.
from wildamp import _quiet_mjx

_quiet_mjx.install()
