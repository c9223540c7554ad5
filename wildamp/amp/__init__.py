"""Adversarial Motion Priors: discriminator, LSGAN objective + reward, penalties, replay buffer,
discriminator update and health monitor. See ARCHITECTURE.md §3.6 for the contracts this package keeps."""

from wildamp.amp.discriminator import Discriminator, layer_names, layer_sigmas, layer_us
from wildamp.amp.hyper import ACTIVATIONS, PENALTIES, SEED_AMP_HYPER, AMPHyper, activation_fn
from wildamp.amp.monitor import HEALTH_KINDS, DiscHealthMonitor, HealthWarning
from wildamp.amp.objective import (OBJECTIVES, AMPObjective, as_objective,
                                   bug_demo_participation_trophy_reward)
from wildamp.amp.penalties import logit_l2_penalty, r1_penalty, wgan_gp_penalty
from wildamp.amp.replay import (ReplayBuffer, replay_add, replay_fill, replay_init, replay_sample,
                                replay_sample_unchecked)
from wildamp.amp.update import (DiscState, amp_reward, disc_logits, disc_sigmas, disc_update,
                                init_disc_state, make_disc_optimizer, reward_stats, sample_fake_batch)

__all__ = [
    "ACTIVATIONS", "AMPHyper", "AMPObjective", "DiscHealthMonitor", "DiscState", "Discriminator",
    "HEALTH_KINDS", "HealthWarning", "OBJECTIVES", "PENALTIES", "ReplayBuffer", "SEED_AMP_HYPER", "activation_fn", "amp_reward",
    "as_objective", "bug_demo_participation_trophy_reward", "disc_logits", "disc_sigmas", "disc_update",
    "init_disc_state", "layer_names", "layer_sigmas", "layer_us", "logit_l2_penalty",
    "make_disc_optimizer", "r1_penalty", "replay_add", "replay_fill", "replay_init", "replay_sample",
    "replay_sample_unchecked", "reward_stats", "sample_fake_batch", "wgan_gp_penalty",
]
