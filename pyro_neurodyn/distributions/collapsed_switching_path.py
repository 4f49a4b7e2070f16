"""A Pyro distribution over a continuous path whose regime switches, the regimes summed out exactly."""

from __future__ import annotations

from typing import Callable, Optional

import torch
from pyro.distributions import TorchDistribution, constraints
from torch import Tensor

from .switching import (
    SwitchingFactors,
    SwitchingPosterior,
    ViterbiPath,
    switching_log_marginal,
    switching_posterior,
    switching_viterbi,
)

FactorFn = Callable[[Tensor], SwitchingFactors]
SamplerFn = Callable[[torch.Size], Tensor]


class CollapsedSwitchingPath(TorchDistribution):
    r"""Density of a path x_{1:T} (``(..., T, D)``) under K switching regimes, regimes summed out.

    .. math::

        p(x_{1:T}) = \sum_{z_{1:T}} p(z_1)\, p(x_1 \mid z_1)
                     \prod_{t=2}^{T} p(z_t \mid z_{t-1}, x_{t-1})\, p(x_t \mid x_{t-1}, z_t)

    The distribution is parameterized by a function ``factors(x)`` that returns the chain's
    :class:`~pyro_neurodyn.distributions.switching.SwitchingFactors` for a given path:
    ``init_logits (..., K)``, ``trans_logits (..., T-1, K, K)`` (may depend on x_{t-1}: recurrent
    transitions) and ``emission_logp (..., T, K)`` with ``emission_logp[..., t, k] =
    log p(x_t | x_{t-1}, z_t = k)``. Because x is a concrete path (sampled by a guide or observed),
    all K regime scores of a step come from one batched evaluation, and :meth:`log_prob` is the exact
    forward algorithm (:func:`switching_log_marginal`): O(T K^2) instead of K^T, and z never leaks into
    x's shape. The discrete posterior given the path is :meth:`posterior`, its best path :meth:`viterbi`.

    This is the site through which a Pyro model scores a switching latent path, e.g.::

        h = pyro.sample("h", CollapsedSwitchingPath(prior_factors, num_steps=T, dim=P, batch_shape=(B,)))

    with ``h`` supplied by an amortized guide. ``factors`` must accept extra leading batch dims on x
    (Pyro adds them for vectorized particles) and broadcast its outputs accordingly.

    Args:
        factors: path ``(..., T, D)`` -> :class:`SwitchingFactors`.
        num_steps: T. dim: D, the path's dimension per step.
        batch_shape: batch shape of the distribution (e.g. ``(trials,)``).
        sampler: optional ``sample_shape -> path`` of shape ``sample_shape + batch_shape + (T, D)`` for
            ancestral sampling (:meth:`sample` raises without it).
    """

    arg_constraints = {}
    support = constraints.independent(constraints.real, 2)
    has_rsample = False

    def __init__(
        self,
        factors: FactorFn,
        num_steps: int,
        dim: int,
        batch_shape: tuple[int, ...] | torch.Size = (),
        sampler: Optional[SamplerFn] = None,
        validate_args: Optional[bool] = None,
    ):
        if not callable(factors):
            raise TypeError(f"factors must be a callable path -> SwitchingFactors, got {type(factors).__name__}")
        if num_steps < 1 or dim < 1:
            raise ValueError(f"num_steps and dim must be >= 1, got num_steps={num_steps}, dim={dim}")
        self.factors = factors
        self.sampler = sampler
        super().__init__(torch.Size(batch_shape), torch.Size((num_steps, dim)), validate_args=validate_args)

    def log_prob(self, value: Tensor) -> Tensor:
        """``log sum_z p(z, x)`` for the path ``value (..., T, D)``, shape ``value.shape[:-2]``."""
        if self._validate_args:
            self._validate_sample(value)
        return switching_log_marginal(*self.factors(value))

    def posterior(self, value: Tensor) -> SwitchingPosterior:
        """Smoothed p(z_t | x) ``(..., T, K)`` and p(z_t, z_{t+1} | x) ``(..., T-1, K, K)`` for the path ``value (..., T, D)``."""
        return switching_posterior(*self.factors(value))

    def viterbi(self, value: Tensor) -> ViterbiPath:
        """``argmax_z p(z | x)`` ``(..., T)`` and its log joint ``(...)`` for the path ``value (..., T, D)``."""
        return switching_viterbi(*self.factors(value))

    @torch.no_grad()
    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        """Ancestral paths from ``sampler``: ``sample_shape + batch_shape + (T, D)``."""
        if self.sampler is None:
            raise NotImplementedError(
                "CollapsedSwitchingPath.sample needs an ancestral sampler: pass sampler=... to the constructor"
            )
        return self.sampler(torch.Size(sample_shape))
