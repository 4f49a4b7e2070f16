"""A hidden Markov model with Gaussian emissions on the observations themselves: the smallest switching
Pyro program, and the mixture baseline (no dynamics) of the switching models.

(Not Pyro's ``pyro.distributions.GaussianHMM``, which is a linear-Gaussian state-space model.)
"""

from __future__ import annotations

from typing import Optional

import torch
from pyro.nn import PyroModule
from pyro.nn.module import to_pyro_module_
from scipy.cluster.vq import kmeans2
from torch import Tensor, nn

from ..distributions import (
    SwitchingFactors,
    gaussian_log_density,
    switching_log_marginal,
    switching_posterior,
    switching_viterbi,
)
from ..data.recording import observed_entries, steps_within
from ..dynamics import StationaryTransitions
from .module_names import unique_module_name
from .observed_chain import ObservedChainProgram


class GaussianEmissionHMM(ObservedChainProgram, PyroModule):
    r"""``z`` Markov with K states, ``y_t | z_t = k ~ N(mu_k, diag(sigma_k^2))``.

    The model observes y through :class:`~pyro_neurodyn.distributions.CollapsedSwitchingPath`: the
    exact forward algorithm gives log p(y), so SVI with an empty guide is maximum likelihood. For the
    Gaussian case the closed-form EM (Baum-Welch) of :meth:`fit_em` is faster and is what
    ``SRNN.fit(init="hmm")`` uses to label time points.
    """

    def __init__(self, num_states: int, obs_dim: int, stickiness: float = 0.0):
        super().__init__(name=unique_module_name("gaussian_hmm"))
        self.num_states = num_states
        self.init_logits = nn.Parameter(torch.zeros(num_states))
        self.transitions = StationaryTransitions(num_states, stickiness)
        self.loc = nn.Parameter(torch.randn(num_states, obs_dim))
        self.log_scale = nn.Parameter(torch.zeros(num_states, obs_dim))
        to_pyro_module_(self)

    def factors(self, y: Tensor, mask: Optional[Tensor] = None) -> SwitchingFactors:
        """The chain of ``y (..., T, D)``: ``emission_logp[..., t, k] = log N(y_t; mu_k, sigma_k^2)`` ``(..., T, K)``,
        ``init_logits (K,)``, stationary ``trans_logits (K, K)``. With ``mask (..., T, D)`` only the observed
        channels are scored (a step with none, e.g. padding after a trial's end, scores 0: exact for the trimmed
        trial, since the transition rows are normalized)."""
        if mask is None:
            emission_logp = gaussian_log_density(y.unsqueeze(-2), self.loc, self.log_scale.exp())
        else:
            per_channel = torch.distributions.Normal(self.loc, self.log_scale.exp()).log_prob(y.unsqueeze(-2))  # (..., T, K, D)
            emission_logp = (per_channel * mask.unsqueeze(-2)).sum(-1)
        return SwitchingFactors(self.init_logits, self.transitions(), emission_logp)

    @torch.no_grad()
    def fit_em(
        self,
        y: Tensor,
        num_iters: int = 50,
        seed: Optional[int] = 0,
        min_scale: float = 1e-3,
        mask: Optional[Tensor] = None,
        lengths: Optional[Tensor] = None,
    ) -> list[float]:
        """Baum-Welch on ``y (trials, T, D)`` from a k-means start; returns log p(y) per iteration.

        E step: :func:`switching_posterior`; M step: weighted means/variances, expected transition counts.
        ``y`` is converted to the model's dtype and device. ``mask (trials, T, D)``: only observed entries
        count (each channel's mean and variance from its observed entries); ``lengths (trials,)``: the steps
        of padded trials (no transition is counted after a trial's end).
        """
        y = self._placed(y)
        observed = observed_entries(y, mask, lengths)  # None: every entry
        pairs = None if lengths is None else steps_within(lengths.to(y.device), y.shape[1])[:, 1:]  # transitions t-1 -> t
        entries = torch.ones_like(y, dtype=torch.bool) if observed is None else observed
        flat, weights_of_entries = y.reshape(-1, y.shape[-1]), entries.reshape(-1, y.shape[-1]).to(y.dtype)
        complete = weights_of_entries.bool().all(-1)
        centroids, _ = kmeans2(flat[complete].double().cpu().numpy(), self.num_states, minit="++", seed=seed)
        self.loc.copy_(torch.as_tensor(centroids, dtype=y.dtype, device=y.device))
        self.log_scale.copy_(flat[complete].std(0).clamp_min(min_scale).log().expand_as(self.log_scale))
        history = []
        for _ in range(num_iters):
            factors = self.factors(y, observed)
            history.append(float(switching_log_marginal(*factors).sum()))
            marginals, pairwise = switching_posterior(*factors)
            weights = marginals.reshape(-1, self.num_states)  # (N, K)
            if observed is None:
                total = weights.sum(0).clamp_min(1e-12)[:, None]
                loc, second = weights.T @ flat / total, weights.T @ flat.pow(2) / total
            else:  # (K, D): each channel's weight over its observed entries
                total = (weights.T @ weights_of_entries).clamp_min(1e-12)
                loc, second = weights.T @ (weights_of_entries * flat) / total, weights.T @ (weights_of_entries * flat.pow(2)) / total
            var = second - loc.pow(2)
            self.loc.copy_(loc)
            self.log_scale.copy_(0.5 * var.clamp_min(min_scale**2).log())
            self.init_logits.copy_(marginals[:, 0].mean(0).clamp_min(1e-12).log())
            counted = pairwise if pairs is None else pairwise * pairs[..., None, None]
            self.transitions.logits.copy_(counted.sum((0, 1)).clamp_min(1e-12).log())
        return history

    @torch.no_grad()
    def most_likely_states(self, y: Tensor, mask: Optional[Tensor] = None, lengths: Optional[Tensor] = None) -> Tensor:
        """Viterbi path ``(trials, T)`` int64 of ``y (trials, T, D)`` (converted to the model's dtype and device);
        ``mask``/``lengths`` as in :meth:`fit_em` (the padding's labels are the prior's continuation)."""
        y = self._placed(y)
        return switching_viterbi(*self.factors(y, observed_entries(y, mask, lengths))).states

    def _placed(self, y: Tensor) -> Tensor:
        """``y`` in the dtype and on the device of the parameters."""
        return y.to(device=self.loc.device, dtype=self.loc.dtype)
