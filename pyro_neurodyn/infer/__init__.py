"""Inference: the shared SVI loop (minibatches of trials or random windows of long trials), checkpoints, the
online-filter interface, and the VSMC objective with its particle state."""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .fit_run import FitRun
from .online_filter import OnlineFilter
from .svi_loop import GuardedSVI, NonFiniteLossError, fit_svi
from .windows import RandomWindows

__all__ = [
    "CheckpointError",
    "FitRun",
    "GuardedSVI",
    "NonFiniteLossError",
    "OnlineFilter",
    "RandomWindows",
    "fit_svi",
    "load_checkpoint",
    "save_checkpoint",
]

from .particle_state import ParticleState, ReadOnlyStateError  # noqa: E402
from .resampling import effective_sample_size, gather_particles, multinomial_ancestors, systematic_ancestors  # noqa: E402
from .vsmc import VSMC_ELBO, ParticleFilterResult  # noqa: E402

__all__ += [
    "ParticleFilterResult",
    "ParticleState",
    "ReadOnlyStateError",
    "VSMC_ELBO",
    "effective_sample_size",
    "gather_particles",
    "multinomial_ancestors",
    "systematic_ancestors",
]
