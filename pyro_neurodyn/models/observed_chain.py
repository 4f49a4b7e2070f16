"""The Pyro program of a hidden Markov model observed directly: the recordings are the chain's emissions.

A model class with ``factors(y) -> SwitchingFactors`` (``emission_logp[..., t, k] = log p(y_t | z_t = k, ...)``)
gets :meth:`ObservedChainProgram.model`, which scores ``y`` with
:class:`~pyro_neurodyn.distributions.CollapsedSwitchingPath` (z summed out exactly, so SVI with the empty
:meth:`~ObservedChainProgram.guide` is maximum likelihood). Used by the Gaussian-emission and the
autoregressive HMM.
"""

from __future__ import annotations

import pyro
from pyro.nn import pyro_method
from torch import Tensor

from ..distributions import CollapsedSwitchingPath

__all__ = ["ObservedChainProgram"]


class ObservedChainProgram:
    """Mixin of a ``PyroModule`` with a ``factors(y)`` method: its ``model``/``guide`` (see the module docstring)."""

    @pyro_method
    def model(self, y: Tensor):
        """Observe ``y (trials, T, D)`` through :class:`CollapsedSwitchingPath` (z summed out), batch ``(trials,)``."""
        num_trials, num_steps, obs_dim = y.shape
        with pyro.plate("trials", num_trials, dim=-1):
            pyro.sample("y", CollapsedSwitchingPath(self.factors, num_steps, obs_dim, (num_trials,)), obs=y)

    @pyro_method
    def guide(self, y: Tensor):
        """The empty guide (``y (trials, T, D)`` unused): nothing is latent."""
        pass  # nothing latent is sampled: z is summed out exactly inside the model
