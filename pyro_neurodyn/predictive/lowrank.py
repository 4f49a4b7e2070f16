"""Posterior predictive draws of a stochastic low-rank RNN from its particle filter.

The filter of the fit (variational SMC with the fitted proposal, :class:`~pyro_neurodyn.infer.VSMC_ELBO`)
gives ``S`` weighted particles ``{x_t^s, W_t^s}`` of every filtering distribution p(x_t | y_{<=t}).
Smoothed paths are drawn from them by backward simulation (FFBSi; Godsill, Doucet & West 2004):

    x_T ~ sum_s W_T^s delta(x_T^s),
    x_t | x_{t+1} ~ sum_s W_t^s p(x_{t+1} | x_t^s) delta(x_t^s) / normalizer,   t = T-1 .. 1,

with the model's transition density ``p(x_{t+1} | x_t) = N(a x_t + V phi(U x_t + W_u v_t, b), Sigma_x)`` (b the thresholds).
Each draw is a path of the particle approximation of p(x_{1:T} | y); as the number of particles grows
the draws converge to the exact smoothing posterior. Then ``y_rep ~ p(y | x)`` through
``pyro.infer.Predictive`` on the model with its latents fixed to the drawn paths, and the log-likelihood
``log p(y_b | x_b^n)`` of each draw ``n`` from a trace of the same model with y observed.

Letters: ``S`` particles (as in :class:`~pyro_neurodyn.infer.VSMC_ELBO`), ``N_d`` posterior draws
(``num_samples``; the predictive protocol's ``S``), ``B`` trials, ``T`` steps, ``R`` the rank.
"""

from __future__ import annotations

from typing import Optional

import pyro
import torch
from torch import Tensor

from ..dynamics.lowrank import SharedCovarianceNormal
from ..estimators.lowrank import LowRankRNN
from ..infer import VSMC_ELBO, ParticleFilterResult
from .protocol import PosteriorDraws, observed_log_likelihood, register_predictive, replicated_observations

__all__ = ["LowRankPredictive", "backward_simulation"]


def backward_simulation(particles: Tensor, log_weights: Tensor, transition_log_density, num_samples: int) -> Tensor:
    """Smoothed paths ``(N_d, B, T, R)`` from a particle filter's record (see the module docstring).

    Args:
        particles: a filter's particles ``(T, S, B, R)`` (e.g. ``ParticleFilterResult.states["x"]``).
        log_weights: their normalized log weights ``(T, S, B)``.
        transition_log_density: ``(t, x_next (N_d, 1, B, R)) -> (N_d, S, B)`` ``log p(x_{t+1} = x_next | x_t^s)``.
        num_samples: N_d.

    The per-step draws are vectorized over samples, particles and trials; the loop runs over time
    because x_t is drawn given the drawn x_{t+1}.
    """
    num_steps, _, num_trials, _ = particles.shape
    trials = torch.arange(num_trials, device=particles.device)
    index = torch.distributions.Categorical(logits=log_weights[-1].T).sample((num_samples,))  # (N_d, B)
    path = [particles[-1][index, trials]]  # (N_d, B, R)
    for t in range(num_steps - 2, -1, -1):
        logits = log_weights[t] + transition_log_density(t, path[-1].unsqueeze(1))  # (N_d, S, B)
        index = torch.distributions.Categorical(logits=logits.transpose(1, 2)).sample()  # (N_d, B)
        path.append(particles[t][index, trials])
    return torch.stack(path[::-1], dim=2)


class LowRankPredictive:
    """:class:`~pyro_neurodyn.predictive.protocol.PredictiveModel` of a fitted :class:`LowRankRNN`."""

    num_states = None
    takes_masks = True  # posterior_draws accepts mask and lengths (a Recording's missing entries and padding)

    def __init__(self, fitted: LowRankRNN):
        self.fitted = fitted
        self.validate = fitted.validate

    @torch.no_grad()
    def posterior_draws(
        self, y: Tensor, u: Optional[Tensor], num_samples: int, num_particles: int, mask: Optional[Tensor] = None, lengths: Optional[Tensor] = None
    ) -> PosteriorDraws:
        """Draws given ``y (B, T, D)``; with ``mask (B, T, D)`` the filter and the log-likelihood read the observed
        entries only (``lengths`` is in the mask: its padding is unobserved), and the latents run through the rest."""
        model = self.fitted.model
        with pyro.validation_enabled(False):
            record = VSMC_ELBO(num_particles).filter(model, self.fitted.guide, y, u, mask)
            latents = backward_simulation(record.states["x"], record.log_weights, self._transition_log_density(record), num_samples)
            sites = {f"{t}/x": latents[:, :, t] for t in range(y.shape[1])}
            draws = replicated_observations(model, sites, num_samples, y, u, mask)
            y_rep = torch.stack([draws[f"{t}/y"] for t in range(y.shape[1])], dim=2)
            log_likelihood = observed_log_likelihood(model, sites, num_samples, 1, y, u, mask)
        return PosteriorDraws(latents, None, y_rep, log_likelihood)

    def _transition_log_density(self, record: ParticleFilterResult):
        """``(t, x_next) -> log N(x_next; a x_t^s + V phi(U x_t^s + W_u v_t, b), Sigma_x)`` ``(N_d, S, B)``."""
        model = self.fitted.model
        particles, inputs = record.states["x"], record.states.get("v")
        means = model.transition(particles[:-1], None if inputs is None else inputs[:-1])  # (T-1, S, B, R)
        noise = model.noise.factors()
        return lambda t, x_next: SharedCovarianceNormal(means[t], noise).log_prob(x_next)

    def log_evidence(self, y: Tensor, u: Optional[Tensor], num_particles: int) -> Tensor:
        """The particle filter's estimate of ``log p(y_b | u_b)`` (``exp`` unbiased)."""
        return self.fitted.log_evidence(y, u, num_particles=num_particles)


register_predictive(LowRankRNN, LowRankPredictive)
