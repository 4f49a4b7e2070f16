r"""An autoregressive HMM (ARHMM): the linear switching-dynamics baseline, scored and fit exactly.

``z`` is a Markov chain over K states; given it, the observations follow a state-specific linear
autoregression of order L (``lags``):

.. math::

    y_t \mid y_{t-L:t-1}, z_t = k \sim N\Big(\sum_{l=1}^{L} A_{k,l}\, y_{t-l} + b_k,\ \Sigma_k\Big)
    \quad (t > L), \qquad y_t \mid z_t = k \sim N(\mu_k, \mathrm{diag}(s_k^2)) \quad (t \le L)

with ``Sigma_k`` diagonal (``covariance="diag"``) or full (``"full"``, as ``L_k L_k^T``). Because the
y's are observed, every step's K emission scores come from one batched evaluation, and the exact
switching core (:mod:`~pyro_neurodyn.distributions.switching`) sums, marginalizes or maximizes over the
K^T paths: log p(y), smoothed marginals, the Viterbi path. Unlike a Gaussian HMM (a mixture) it tells
regimes apart by how the data move, not where they lie (``pyro_neurodyn.data.dynamics_switching``).

Fitting is exact EM (:meth:`AutoregressiveHMM.fit_em`); the recipe follows ssm's ARHMM: a start from
labels (k-means on position, velocity and rotation features: ``y_t``, ``y_t - y_{t-1}`` and the
antisymmetric part of ``y_t y_{t-1}^T``) plus a few random sticky
segmentations, each refined by a short EM run, the best continued.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from pyro.nn import PyroModule
from pyro.nn.module import to_pyro_module_
from torch import Tensor, nn

from ..data.recording import observed_entries
from ..data.validation import as_trials, check_count
from ..distributions import (
    SwitchingFactors,
    switching_filter,
    switching_log_marginal,
    switching_posterior,
    switching_viterbi,
)
from ..dynamics import StationaryTransitions
from .autoregressive_hmm_em import (
    INITS,  # noqa: F401  (public constant of this module before the split)
    ARHMMStatistics,
    _check_real,
    _EMFitting,
    lagged_regressors,
)
from .autoregressive_hmm_init import principal_component_scores
from .module_names import unique_module_name
from .observed_chain import ObservedChainProgram
from ..distributions.diagonal_normal import gaussian_log_density

__all__ = ["ARHMMStatistics", "AutoregressiveHMM", "principal_component_scores"]

LOG_2PI = math.log(2 * math.pi)
COVARIANCES = ("diag", "full")


class AutoregressiveHMM(ObservedChainProgram, _EMFitting, PyroModule):
    r"""``z`` Markov with K states; ``y_t | y_{t-L:t-1}, z_t = k ~ N(sum_l A_{k,l} y_{t-l} + b_k, Sigma_k)``.

    Parameters (``P = lags * D``): ``init_logits (K,)``; ``transitions.logits (K, K)``;
    ``weight (K, D, P)`` the stacked ``[A_{k,1}, ..., A_{k,L}]``; ``bias (K, D)``; ``log_scale (K, D)``
    the log diagonal of the Cholesky factor ``L_k`` of ``Sigma_k`` and, for ``covariance="full"``,
    ``scale_offdiag (K, D, D)`` its strictly lower part; ``init_loc (K, D)`` and ``init_log_scale (K, D)``
    of the first L steps.

    The model observes y through :class:`~pyro_neurodyn.distributions.CollapsedSwitchingPath` (z summed
    out exactly), so SVI with the empty guide is maximum likelihood; :meth:`fit_em` is the fast way.

    Args:
        num_states: K >= 1. obs_dim: D >= 1. lags: L >= 1, the order of the autoregression.
        stickiness: initial bias of the transition logits' diagonal.
        covariance: ``"diag"`` or ``"full"`` noise covariance per state.
    """

    def __init__(self, num_states: int, obs_dim: int, lags: int = 1, stickiness: float = 0.0, covariance: str = "diag"):
        num_states = check_count(num_states, "num_states")
        obs_dim = check_count(obs_dim, "obs_dim")
        lags = check_count(lags, "lags")
        stickiness = _check_real(stickiness, "stickiness")
        if covariance not in COVARIANCES:
            raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
        super().__init__(name=unique_module_name("autoregressive_hmm"))
        self.num_states, self.obs_dim, self.lags, self.covariance = num_states, obs_dim, lags, covariance
        self.init_logits = nn.Parameter(torch.zeros(num_states))
        self.transitions = StationaryTransitions(num_states, stickiness)
        self.weight = nn.Parameter(0.1 * torch.randn(num_states, obs_dim, lags * obs_dim))
        self.bias = nn.Parameter(torch.zeros(num_states, obs_dim))
        self.log_scale = nn.Parameter(torch.zeros(num_states, obs_dim))
        if covariance == "full":
            self.scale_offdiag = nn.Parameter(torch.zeros(num_states, obs_dim, obs_dim))
        self.init_loc = nn.Parameter(torch.randn(num_states, obs_dim))
        self.init_log_scale = nn.Parameter(torch.zeros(num_states, obs_dim))
        to_pyro_module_(self)

    # ------------------------------------------------------------------ scoring

    def scale_tril(self) -> Tensor:
        """``L_k (K, D, D)``, ``Sigma_k = L_k L_k^T`` (diagonal for ``covariance="diag"``)."""
        tril = torch.diag_embed(self.log_scale.exp())
        if self.covariance == "full":
            tril = tril + self.scale_offdiag.tril(-1)
        return tril

    def step_means(self, y: Tensor) -> Tensor:
        """``(..., T-L, K, D)``: ``sum_l A_{k,l} y_{t-l} + b_k`` for every state and every step t > L of ``y (..., T, D)``."""
        return torch.einsum("...tp,kdp->...tkd", lagged_regressors(y, self.lags), self.weight) + self.bias

    def _ar_log_density(self, y: Tensor) -> Tensor:
        """``(..., T-L, K)``: ``log N(y_t; step mean_k, Sigma_k)``."""
        diff = y[..., self.lags :, :].unsqueeze(-2) - self.step_means(y)
        if self.covariance == "diag":
            return gaussian_log_density(diff, diff.new_zeros(()), self.log_scale.exp())
        eye = torch.eye(self.obs_dim, dtype=diff.dtype, device=diff.device)
        inverse_tril = torch.linalg.solve_triangular(self.scale_tril(), eye, upper=False)  # (K, D, D)
        white = torch.einsum("kij,...kj->...ki", inverse_tril, diff)
        return -0.5 * white.square().sum(-1) - self.log_scale.sum(-1) - 0.5 * LOG_2PI * self.obs_dim

    def factors(self, y: Tensor, mask: Optional[Tensor] = None) -> SwitchingFactors:
        """The chain of ``y (..., T, D)``: ``emission_logp (..., T, K)`` (the initial Gaussians for
        t <= L, the autoregressions after), ``init_logits (K,)``, stationary ``trans_logits (K, K)``.
        With ``mask (..., T, D)`` (True = observed) a step is scored only if :meth:`counted_steps` counts it
        (0 otherwise: the padding after a trial's end leaves the trimmed trial's chain exactly)."""
        if y.dim() < 2 or y.shape[-1] != self.obs_dim:
            raise ValueError(f"y must end in (T, D = {self.obs_dim}), got shape {tuple(y.shape)}")
        head = y[..., : self.lags, :].unsqueeze(-2)
        init_logp = gaussian_log_density(head, self.init_loc, self.init_log_scale.exp())  # (..., min(T, L), K)
        emission_logp = torch.cat([init_logp, self._ar_log_density(y)], -2) if y.shape[-2] > self.lags else init_logp
        counted = self.counted_steps(mask)
        if counted is not None:
            emission_logp = torch.where(counted.unsqueeze(-1), emission_logp, torch.zeros((), dtype=emission_logp.dtype, device=emission_logp.device))
        return SwitchingFactors(self.init_logits, self.transitions(), emission_logp)

    def counted_steps(self, mask: Optional[Tensor]) -> Optional[Tensor]:
        """``(..., T)`` bool, the steps whose emission is scored given ``mask (..., T, D)`` (None: all): ``y_t``
        observed in every channel and, for ``t >= L``, its L lags too (the regression needs the whole past
        vector). A partly observed step, and the L steps after it, drop out of the likelihood entirely: the
        likelihood of the complete steps given their pasts (exact for ragged trials, whose padding is at the end)."""
        if mask is None:
            return None
        complete = mask.all(-1)  # (..., T)
        counted = complete.clone()
        for lag in range(1, self.lags + 1):
            counted[..., self.lags :] &= complete[..., self.lags - lag : complete.shape[-1] - lag]
        return counted

    def _validate(self, y, name: str = "y", min_steps: int = 2) -> Tensor:
        y = as_trials(y, name, min_steps=min_steps, dtype=self.weight.dtype, device=self.weight.device)  # the model's dtype and device
        if y.shape[-1] != self.obs_dim:
            raise ValueError(f"{name} has {y.shape[-1]} channels but the model has obs_dim = {self.obs_dim}")
        return y

    def _observed(self, y: Tensor, mask: Optional[Tensor], lengths: Optional[Tensor]) -> Optional[Tensor]:
        """``mask (trials, T, D)`` and ``lengths (trials,)`` checked against ``y`` and combined (None: all observed)."""
        if mask is not None:
            mask = torch.as_tensor(mask, device=y.device)
            if mask.dtype != torch.bool or mask.shape != y.shape:
                raise ValueError(f"mask must be a bool tensor of y's shape {tuple(y.shape)}, got {mask.dtype} {tuple(mask.shape)}")
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=y.device)
            if lengths.shape != y.shape[:1] or bool((lengths < 1).any()) or bool((lengths > y.shape[1]).any()):
                raise ValueError(f"lengths must hold one length in 1..T = {y.shape[1]} per trial ({y.shape[0]}), got {lengths.tolist()}")
        return observed_entries(y, mask, lengths)

    @torch.no_grad()
    def log_likelihood(self, y, mask: Optional[Tensor] = None, lengths: Optional[Tensor] = None) -> Tensor:
        """Exact ``log p(y_b)`` per trial, ``(trials,)``, for ``y (trials, T, D)`` (T >= 2); with ``mask (trials, T, D)``
        and ``lengths (trials,)``, of the steps :meth:`counted_steps` counts."""
        y = self._validate(y)
        return switching_log_marginal(*self.factors(y, self._observed(y, mask, lengths)))

    @torch.no_grad()
    def state_marginals(self, y, mask: Optional[Tensor] = None, lengths: Optional[Tensor] = None) -> Tensor:
        """Smoothed ``p(z_t = k | y)``, ``(trials, T, K)``, for ``y (trials, T, D)`` (``mask``, ``lengths`` as in
        :meth:`log_likelihood`; the padding's marginals are the prior chain's continuation)."""
        y = self._validate(y)
        return switching_posterior(*self.factors(y, self._observed(y, mask, lengths))).marginals

    @torch.no_grad()
    def most_likely_states(self, y, mask: Optional[Tensor] = None, lengths: Optional[Tensor] = None) -> Tensor:
        """Viterbi path ``(trials, T)`` int64 for ``y (trials, T, D)`` (``mask``, ``lengths`` as in :meth:`log_likelihood`)."""
        y = self._validate(y)
        return switching_viterbi(*self.factors(y, self._observed(y, mask, lengths))).states

    # ------------------------------------------------------------------ forecasting

    @torch.no_grad()
    def predict(self, y, steps: int) -> Tensor:
        r"""Exact mean forecasts ``E[y_{T+h} | y_{1:T}]`` for h = 1..steps, ``(trials, steps, D)``, from ``y (trials, T, D)``.

        With the stacked lags ``s_t = [y_t, ..., y_{t-L+1}]`` the step is linear given the state,
        ``s_t = F_k s_{t-1} + g_k`` (companion form), so ``m^k_h = E[s_{T+h} 1{z_{T+h} = k}]`` obeys
        ``m^k_h = F_k sum_j P_{jk} m^j_{h-1} + g_k p_h(k)`` from ``m^j_0 = s_T p(z_T = j | y_{1:T})``
        (filtered), with ``p_h = p_{h-1} P``; the forecast is ``sum_k`` of the first block of ``m^k_h``.
        As a :func:`~pyro_neurodyn.metrics.forecasting.k_step_forecast` forecaster:
        ``lambda prefix, k: model.predict(prefix, k).unsqueeze(0)``. Needs T >= L.
        """
        steps = check_count(steps, "steps")
        y = self._validate(y, min_steps=max(self.lags, 2))
        factors = self.factors(y)
        belief = switching_filter(*factors)[:, -1]  # (N, K)
        trans = factors.trans_logits.softmax(-1)  # (K, K)
        num_lagged = self.lags * self.obs_dim
        stacked = y[:, -self.lags :].flip(1).reshape(y.shape[0], num_lagged)  # [y_T, y_{T-1}, ...]
        moments = belief.unsqueeze(-1) * stacked.unsqueeze(-2)  # (N, K, P)
        forecasts = []
        for _ in range(steps):
            mixed = torch.einsum("jk,njp->nkp", trans, moments)
            belief = belief @ trans
            head = torch.einsum("kdp,nkp->nkd", self.weight, mixed) + self.bias * belief.unsqueeze(-1)
            moments = torch.cat([head, mixed[..., : num_lagged - self.obs_dim]], -1)
            forecasts.append(head.sum(1))
        return torch.stack(forecasts, 1)
