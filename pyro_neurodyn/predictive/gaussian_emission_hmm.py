"""Posterior predictive draws of a Gaussian HMM (no continuous latent: the state's mean stands in for it).

    z^s ~ p(z | y)                       (exact, forward filtering backward sampling)
    y_rep^s ~ N(mu_{z^s}, diag sigma_{z^s}^2)

``latents`` are the drawn states' means ``mu_{z_t}`` ``(S, B, T, D)`` (the HMM's "latent path");
``log_likelihood`` is ``log p(y_b | z_b^s)``; the log evidence is the exact forward-algorithm ``log p(y_b)``.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from ..data import as_trials
from ..distributions import switching_log_marginal, switching_sample
from ..models.gaussian_emission_hmm import GaussianEmissionHMM
from .protocol import PosteriorDraws, register_predictive

__all__ = ["GaussianEmissionHMMPredictive"]


class GaussianEmissionHMMPredictive:
    """:class:`~pyro_neurodyn.predictive.protocol.PredictiveModel` of a fitted :class:`GaussianEmissionHMM`."""

    def __init__(self, hmm: GaussianEmissionHMM):
        self.hmm = hmm
        self.num_states = hmm.num_states

    def validate(self, y: Any, u: Any) -> tuple[Tensor, None]:
        """``y`` as ``(B, T, D)`` in the HMM's dtype and device, and None (``u`` must be None)."""
        if u is not None:
            raise ValueError("a GaussianEmissionHMM takes no inputs, but inputs were given")
        y = as_trials(y, "y", dtype=self.hmm.loc.dtype, device=self.hmm.loc.device)  # the HMM's dtype and device
        if y.shape[-1] != self.hmm.loc.shape[-1]:
            raise ValueError(f"y has {y.shape[-1]} channels but the HMM has {self.hmm.loc.shape[-1]}")
        return y, None

    @torch.no_grad()
    def posterior_draws(self, y: Tensor, u: Optional[Tensor], num_samples: int, num_particles: int = 1) -> PosteriorDraws:
        """Exact draws for ``y (B, T, D)``: ``latents`` and ``y_rep`` ``(S, B, T, D)``, ``states (S, B, T)``,
        ``log_likelihood (S, B)``; ``u`` and ``num_particles`` are unused."""
        states = switching_sample(*self.hmm.factors(y), sample_shape=(num_samples,))  # (S, B, T)
        loc, scale = self.hmm.loc[states], self.hmm.log_scale.exp()[states]  # (S, B, T, D)
        noise = torch.distributions.Normal(loc, scale)
        return PosteriorDraws(loc, states, noise.sample(), noise.log_prob(y).sum((-2, -1)))

    @torch.no_grad()
    def log_evidence(self, y: Tensor, u: Optional[Tensor], num_particles: int) -> Tensor:
        """The exact ``log p(y_b)`` ``(B,)`` of ``y (B, T, D)`` (forward algorithm); ``num_particles`` is unused."""
        return switching_log_marginal(*self.hmm.factors(y))


register_predictive(GaussianEmissionHMM, GaussianEmissionHMMPredictive)
