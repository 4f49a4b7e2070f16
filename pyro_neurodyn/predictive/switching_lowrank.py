"""Posterior predictive draws of a switching low-rank RNN, for either of its objectives.

* After a collapsed fit (``method="collapsed"``) the model is a :class:`SwitchingStateSpaceModel` with a
  trained encoder: draws are those of :class:`~pyro_neurodyn.predictive.switching.SwitchingPredictive`.
* After a VSMC fit the encoder is untrained; the draws come from the fit's Rao-Blackwellized particle
  filter instead. Each particle s carries x_t^s and its exact filter over the states, alpha_t^s; paths
  are drawn by backward simulation (:func:`~pyro_neurodyn.predictive.lowrank.backward_simulation`) with
  each particle's one-step predictive density as the transition,

      p(x_{t+1} | particle s) = sum_j alpha_pred^s(j) N(x_{t+1}; a x_t^s + V_j phi(U_j x_t^s - b_j), sigma_x^2 I),
      alpha_pred^s(j) = sum_i alpha_t^s(i) P(i -> j),      (b_j: state j's thresholds)

  (an approximation: the backward kernel of the collapsed chain also depends on the states' future,
  which this one-step density ignores; with K = 1 it is exact FFBSi). The states are then drawn exactly
  from p(z | x) by forward filtering backward sampling, and y_rep and the log-likelihood come from the
  collapsed model with its latent path fixed to the drawn x.
"""

from __future__ import annotations

from typing import Optional

import pyro
import torch
from torch import Tensor

from ..distributions import switching_sample
from ..estimators.switching_lowrank import SwitchingLowRankRNN
from ..infer import VSMC_ELBO
from .lowrank import backward_simulation
from .protocol import PosteriorDraws, observed_log_likelihood, register_predictive, replicated_observations
from .switching import SwitchingPredictive

__all__ = ["SwitchingLowRankPredictive"]


class SwitchingLowRankPredictive(SwitchingPredictive):
    """:class:`~pyro_neurodyn.predictive.protocol.PredictiveModel` of a fitted :class:`SwitchingLowRankRNN`."""

    def __init__(self, fitted: SwitchingLowRankRNN):
        fitted.check_fitted("posterior_predictive")
        super().__init__(fitted.module, fitted.validate)
        self.fitted = fitted

    @torch.no_grad()
    def posterior_draws(self, y: Tensor, u: Optional[Tensor], num_samples: int, num_particles: int = 1) -> PosteriorDraws:
        """Draws given ``y (B, T, D)`` (``u`` None): ``latents (S, B, T, R)``, ``states (S, B, T)``, ``y_rep (S, B, T, D)``,
        ``log_likelihood (S, B)``; ``num_particles``: the VSMC filter's particles (unused after a collapsed fit)."""
        if self.fitted.method == "collapsed":
            return super().posterior_draws(y, u, num_samples, num_particles)
        module = self.module
        with pyro.validation_enabled(False):
            record = VSMC_ELBO(num_particles).filter(module, self.fitted.proposal, y)
            particles, log_alpha = record.states["x"], record.states["log_alpha"]  # (T, S, B, R), (T, S, B, K): S particles, K states
            prediction = module.predict({"x": particles[:-1], "log_alpha": log_alpha[:-1]}, 1)  # steps 2..T

            def transition_log_density(t: int, x_next: Tensor) -> Tensor:  # (N_d, 1, B, R) -> (N_d, S, B), N_d draws
                components = torch.distributions.Normal(prediction.means[t], prediction.scale).log_prob(x_next.unsqueeze(-2)).sum(-1)
                return torch.logsumexp(prediction.log_probs[t] + components, -1)

            latents = backward_simulation(particles, record.log_weights, transition_log_density, num_samples)
            states = switching_sample(*module.latent_factors(latents))
            draws = replicated_observations(module.model, {"h": latents}, num_samples, y)
            log_likelihood = observed_log_likelihood(module.model, {"h": latents}, num_samples, 1, y)
        return PosteriorDraws(latents, states, draws["y"], log_likelihood)

    def log_evidence(self, y: Tensor, u: Optional[Tensor], num_particles: int) -> Tensor:
        """Importance-weighted (collapsed fit) or particle-filter (VSMC fit) estimate of ``log p(y_b)`` ``(B,)`` for
        ``y (B, T, D)``."""
        if self.fitted.method == "collapsed":
            return super().log_evidence(y, u, num_particles)
        return self.fitted.log_evidence(y, num_particles=num_particles)


register_predictive(SwitchingLowRankRNN, SwitchingLowRankPredictive)
