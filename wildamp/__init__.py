"""wildamp: PPO + Adversarial Motion Priors for the WildRobot biped in MuJoCo MJX."""

__version__ = "0.1.0"
