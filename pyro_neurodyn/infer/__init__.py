"""Inference: the shared SVI loop, checkpoints, and (later) the VSMC objective."""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .fit_run import FitRun
from .svi_loop import GuardedSVI, NonFiniteLossError, fit_svi

__all__ = ["CheckpointError", "FitRun", "GuardedSVI", "NonFiniteLossError", "fit_svi", "load_checkpoint", "save_checkpoint"]

from .resampling import effective_sample_size, gather_particles, multinomial_ancestors, systematic_ancestors  # noqa: E402
from .vsmc import VSMC_ELBO, ParticleFilterResult  # noqa: E402

__all__ += [
    "ParticleFilterResult",
    "VSMC_ELBO",
    "effective_sample_size",
    "gather_particles",
    "multinomial_ancestors",
    "systematic_ancestors",
]
