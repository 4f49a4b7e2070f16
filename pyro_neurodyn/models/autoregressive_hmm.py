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
import numbers
from typing import NamedTuple, Optional, Union

import numpy as np
import pyro
import torch
from pyro.nn import PyroModule, pyro_method
from pyro.nn.module import to_pyro_module_
from scipy.cluster.vq import kmeans2
from torch import Tensor, nn

from ..data.validation import as_state_labels, as_trials, check_count, check_positive
from ..distributions import (
    CollapsedSwitchingPath,
    SwitchingFactors,
    switching_filter,
    switching_log_marginal,
    switching_posterior,
    switching_viterbi,
)
from ..dynamics import StationaryTransitions
from .module_names import unique_module_name
from .switching_ssm import gaussian_log_density

__all__ = ["ARHMMStatistics", "AutoregressiveHMM", "principal_component_scores"]

LOG_2PI = math.log(2 * math.pi)
COVARIANCES = ("diag", "full")
INITS = ("kmeans", "random")


class ARHMMStatistics(NamedTuple):
    """Expected sufficient statistics of one E step (``M`` = trials * (T - L) regression rows).

    Attributes:
        init_weights: ``(trials, L, K)`` p(z_t = k | y) for the first L steps.
        ar_weights: ``(M, K)`` p(z_t = k | y) for the autoregressive steps, trials and time flattened.
        first_state: ``(K,)`` expected count of z_1 = k over trials.
        transition_counts: ``(K, K)`` expected number of i -> j transitions.
    """

    init_weights: Tensor
    ar_weights: Tensor
    first_state: Tensor
    transition_counts: Tensor


def lagged_regressors(y: Tensor, lags: int) -> Tensor:
    """``X (..., T-L, L*D)`` with ``X[..., t-L, :] = [y_{t-1}, y_{t-2}, ..., y_{t-L}]`` (0-based t >= L)."""
    num_steps = y.shape[-2]
    return torch.cat([y[..., lags - l : num_steps - l, :] for l in range(1, lags + 1)], -1)


def _check_real(value, name: str, minimum: Optional[float] = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return float(value)


class AutoregressiveHMM(PyroModule):
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
        """``(..., T-L, K, D)``: ``sum_l A_{k,l} y_{t-l} + b_k`` for every state and every step t > L."""
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

    def factors(self, y: Tensor) -> SwitchingFactors:
        """The chain of ``y (..., T, D)``: ``emission_logp (..., T, K)`` (the initial Gaussians for
        t <= L, the autoregressions after), ``init_logits (K,)``, stationary ``trans_logits (K, K)``."""
        if y.dim() < 2 or y.shape[-1] != self.obs_dim:
            raise ValueError(f"y must end in (T, D = {self.obs_dim}), got shape {tuple(y.shape)}")
        head = y[..., : self.lags, :].unsqueeze(-2)
        init_logp = gaussian_log_density(head, self.init_loc, self.init_log_scale.exp())  # (..., min(T, L), K)
        emission_logp = torch.cat([init_logp, self._ar_log_density(y)], -2) if y.shape[-2] > self.lags else init_logp
        return SwitchingFactors(self.init_logits, self.transitions(), emission_logp)

    @pyro_method
    def model(self, y: Tensor):
        num_trials, num_steps, obs_dim = y.shape
        with pyro.plate("trials", num_trials, dim=-1):
            pyro.sample("y", CollapsedSwitchingPath(self.factors, num_steps, obs_dim, (num_trials,)), obs=y)

    @pyro_method
    def guide(self, y: Tensor):
        pass  # nothing latent is sampled: z is summed out exactly inside the model

    def _validate(self, y, name: str = "y", min_steps: int = 2) -> Tensor:
        y = as_trials(y, name, min_steps=min_steps, dtype=self.weight.dtype, device=self.weight.device)  # the model's dtype and device
        if y.shape[-1] != self.obs_dim:
            raise ValueError(f"{name} has {y.shape[-1]} channels but the model has obs_dim = {self.obs_dim}")
        return y

    @torch.no_grad()
    def log_likelihood(self, y) -> Tensor:
        """Exact ``log p(y_b)`` per trial, ``(trials,)``, for ``y (trials, T, D)`` (T >= 2)."""
        return switching_log_marginal(*self.factors(self._validate(y)))

    @torch.no_grad()
    def state_marginals(self, y) -> Tensor:
        """Smoothed ``p(z_t = k | y)``, ``(trials, T, K)``."""
        return switching_posterior(*self.factors(self._validate(y))).marginals

    @torch.no_grad()
    def most_likely_states(self, y) -> Tensor:
        """Viterbi path ``(trials, T)`` int64."""
        return switching_viterbi(*self.factors(self._validate(y))).states

    # ------------------------------------------------------------------ forecasting

    @torch.no_grad()
    def predict(self, y, steps: int) -> Tensor:
        r"""Exact mean forecasts ``E[y_{T+h} | y_{1:T}]`` for h = 1..steps, ``(trials, steps, D)``.

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

    # ------------------------------------------------------------------ EM

    def _expected_statistics(self, y: Tensor) -> tuple[float, ARHMMStatistics]:
        """E step: ``log p(y)`` summed over trials and the :class:`ARHMMStatistics`."""
        factors = self.factors(y)
        log_p = float(switching_log_marginal(*factors).sum())
        marginals, pairwise = switching_posterior(*factors)
        stats = ARHMMStatistics(
            marginals[:, : self.lags],
            marginals[:, self.lags :].reshape(-1, self.num_states),
            marginals[:, 0].sum(0),
            pairwise.sum((0, 1)),
        )
        return log_p, stats

    def _maximize(self, design: "_Design", stats: ARHMMStatistics, options: "_EMOptions") -> None:
        """M step: weighted least squares per state, weighted residual (co)variances, counts -> probabilities."""
        weights = stats.ar_weights.to(design.regressors.dtype)  # (M, K)
        total = weights.sum(0).clamp_min(1e-12)  # (K,)
        gram = torch.einsum("mk,mp,mq->kpq", weights, design.regressors, design.regressors)
        gram = gram + options.ridge * design.ridge_mask
        cross = torch.einsum("mk,mp,md->kpd", weights, design.regressors, design.targets)
        coef = torch.linalg.lstsq(gram, cross).solution  # (K, P+1, D); lstsq: a state without weight is fine
        residual = design.targets.unsqueeze(1) - torch.einsum("mp,kpd->mkd", design.regressors, coef)  # (M, K, D)
        floor = design.variance_floor
        if self.covariance == "diag":
            variance = torch.einsum("mk,mkd->kd", weights, residual.square()) / total[:, None]
            self.log_scale.copy_(0.5 * torch.maximum(variance, floor).log())
        else:
            cov = torch.einsum("mk,mki,mkj->kij", weights, residual, residual) / total[:, None, None]
            tril = torch.linalg.cholesky(cov + torch.diag_embed(floor.expand(self.num_states, -1)))
            self.log_scale.copy_(tril.diagonal(dim1=-2, dim2=-1).log())
            self.scale_offdiag.copy_(tril.tril(-1))
        self.weight.copy_(coef[:, :-1].transpose(-1, -2))
        self.bias.copy_(coef[:, -1])
        self._maximize_initial(design, stats, options)

    def _maximize_initial(self, design: "_Design", stats: ARHMMStatistics, options: "_EMOptions") -> None:
        """Initial Gaussians (per-state means, variance pooled over states: one y_1 per trial is too few to
        estimate K variances, and a per-state variance can collapse onto a single trial), and the chain."""
        head, weights = design.head, stats.init_weights.to(design.head.dtype)  # (N, L, D), (N, L, K)
        total = weights.sum((0, 1)).clamp_min(1e-12)
        loc = torch.einsum("nlk,nld->kd", weights, head) / total[:, None]
        spread = torch.einsum("nlk,nlkd->d", weights, (head.unsqueeze(-2) - loc).square()) / weights.sum()
        self.init_loc.copy_(loc)
        self.init_log_scale.copy_(0.5 * torch.maximum(spread, design.variance_floor).log().expand_as(self.init_log_scale))
        first = stats.first_state + options.transition_prior
        self.init_logits.copy_(first.clamp_min(1e-12).log() - first.sum().log())
        eye = torch.eye(self.num_states, dtype=stats.transition_counts.dtype, device=stats.transition_counts.device)
        counts = stats.transition_counts + options.transition_prior + options.sticky_prior * eye
        self.transitions.logits.copy_(counts.clamp_min(1e-12).log().log_softmax(-1))

    def _maximize_from_labels(self, design: "_Design", labels: Tensor, options: "_EMOptions") -> None:
        """One M step from hard labels ``(trials, T)`` (an initialization)."""
        onehot = nn.functional.one_hot(labels, self.num_states).to(design.regressors.dtype)  # (N, T, K)
        pairs = torch.einsum("ntk,ntj->kj", onehot[:, :-1], onehot[:, 1:])
        stats = ARHMMStatistics(onehot[:, : self.lags], onehot[:, self.lags :].reshape(-1, self.num_states), onehot[:, 0].sum(0), pairs)
        self._maximize(design, stats, options)

    def _em(self, y: Tensor, design: "_Design", num_iters: int, options: "_EMOptions") -> list[float]:
        history = []
        for _ in range(num_iters):
            log_p, stats = self._expected_statistics(y)
            history.append(log_p)
            if options.tol is not None and len(history) > 1 and abs(history[-1] - history[-2]) <= options.tol * abs(history[-1]):
                break
            self._maximize(design, stats, options)
        return history

    @torch.no_grad()
    def fit_em(
        self,
        y,
        num_iters: int = 50,
        seed: Optional[int] = 0,
        init: Union[str, Tensor] = "kmeans",
        num_restarts: int = 4,
        restart_iters: int = 10,
        ridge: float = 1e-4,
        min_scale: float = 1e-3,
        transition_prior: float = 0.0,
        sticky_prior: float = 0.0,
        tol: Optional[float] = None,
    ) -> list[float]:
        r"""Exact EM (Baum-Welch) on ``y (trials, T, D)``; returns log p(y) (summed over trials) per iteration.

        E step: :func:`~pyro_neurodyn.distributions.switching_posterior` (smoothed and pairwise marginals).
        M step, in closed form: per state the weighted least squares ``[A_k, b_k] = (X^T W_k X + ridge I)^{-1}
        X^T W_k Y`` over the rows ``X_t = [y_{t-1}, ..., y_{t-L}, 1]`` (the ridge spares the bias), the
        weighted residual (co)variance, floored at ``(min_scale * std of each channel)^2``; the initial
        Gaussians; ``p(z_1)`` and the transition matrix from expected counts plus ``transition_prior`` (every
        entry) and ``sticky_prior`` (the diagonal): a Dirichlet MAP estimate. With ``ridge = 0`` and no prior
        every iteration is an exact EM step and log p(y) never decreases; the default ridge is a shrinkage far
        below the data's scale (the tests find log p(y) non-decreasing to rounding with it too).

        Start (after ssm's ARHMM): ``init="kmeans"`` labels time points by k-means on standardized
        ``[y_t, y_t - y_{t-1}, a_t]``, ``a_t`` the antisymmetric part of ``u_t u_{t-1}^T`` (``u`` the top 10
        principal components of y): position, velocity, and the signed area swept per step, which tells
        rotation directions and speeds apart where positions and velocities do not; ``"random"`` by a
        random sticky segmentation (mean segment T/10); a ``(trials, T)`` int tensor gives the labels. One
        M step from the labels, then ``restart_iters`` EM iterations; ``num_restarts - 1`` more starts do the
        same: the second from k-means on the standardized positions ``y_t`` alone (the ARHMM contains the
        Gaussian HMM, ``A_k = 0``, but EM from dynamics features can miss that optimum: on two regimes that
        differ only in their means it settled on "stay" vs "jump" states, log p(y) -566 against the
        Gaussian HMM's -395, accuracy 0.58), the rest from random sticky segmentations; and the start with the highest log p(y) continues to
        ``num_iters`` iterations in all (``seed`` seeds k-means and the segmentations). The returned history
        is that start's; the parameters end one M step past its last entry. ``tol``: stop early when the
        relative change of log p(y) falls below it.

        Measured (1 thread, 16 trials x 200 steps x 10 channels, K = 2, defaults): about 0.5-0.7 s.
        """
        y = self._validate(y, min_steps=max(2, self.lags + 1))
        num_iters = check_count(num_iters, "num_iters")
        num_restarts = check_count(num_restarts, "num_restarts")
        restart_iters = check_count(restart_iters, "restart_iters")
        options = _EMOptions(
            _check_real(ridge, "ridge", 0.0),
            _check_real(transition_prior, "transition_prior", 0.0),
            _check_real(sticky_prior, "sticky_prior", 0.0),
            None if tol is None else check_positive(tol, "tol"),
        )
        design = _design(y, self.lags, check_positive(min_scale, "min_scale"))
        generator = np.random.default_rng(seed)
        first_labels = self._initial_labels(y, init, generator)
        if num_restarts == 1:
            self._maximize_from_labels(design, first_labels, options)
            return self._em(y, design, num_iters, options)
        best = None
        for start in range(num_restarts):
            labels = first_labels if start == 0 else self._restart_labels(y, start, generator)
            self._maximize_from_labels(design, labels, options)
            history = self._em(y, design, min(restart_iters, num_iters), options)
            if best is None or history[-1] > best[0][-1]:
                best = (history, {name: value.clone() for name, value in self.state_dict().items()})
        history, state = best
        self.load_state_dict(state)  # the best start, one M step past its last recorded log p(y)
        if num_iters > len(history) and (options.tol is None or len(history) == min(restart_iters, num_iters)):
            history = history + self._em(y, design, num_iters - len(history), options)
        return history

    def _restart_labels(self, y: Tensor, start: int, generator: np.random.Generator) -> Tensor:
        """Labels of restart ``start`` >= 1: k-means on positions first, then random sticky segmentations."""
        if start == 1:
            return _kmeans_labels(y, self.num_states, generator, dynamics_features=False)
        return _random_segmentation(y.shape[:2], self.num_states, generator).to(y.device)

    def _initial_labels(self, y: Tensor, init: Union[str, Tensor], generator: np.random.Generator) -> Tensor:
        if isinstance(init, str):
            if init not in INITS:
                raise ValueError(f"init must be one of {INITS} or a (trials, T) tensor of labels, got {init!r}")
            if init == "random":
                return _random_segmentation(y.shape[:2], self.num_states, generator).to(y.device)
            return _kmeans_labels(y, self.num_states, generator)
        labels = as_state_labels(init, "init", num_states=self.num_states, device=y.device)
        if labels.shape != y.shape[:2]:
            raise ValueError(f"init labels must have shape (trials, T) = {tuple(y.shape[:2])}, got {tuple(labels.shape)}")
        return labels


class _EMOptions(NamedTuple):
    ridge: float
    transition_prior: float
    sticky_prior: float
    tol: Optional[float]


class _Design(NamedTuple):
    """Fixed regression data of an EM run: ``regressors (M, P+1)`` ``[lags, 1]``, ``targets (M, D)``,
    ``ridge_mask (P+1, P+1)`` (identity without the bias), ``head (trials, L, D)`` the first L steps,
    ``variance_floor (D,)``."""

    regressors: Tensor
    targets: Tensor
    ridge_mask: Tensor
    head: Tensor
    variance_floor: Tensor


def _design(y: Tensor, lags: int, min_scale: float) -> _Design:
    regressors = lagged_regressors(y, lags).reshape(-1, lags * y.shape[-1])
    regressors = torch.cat([regressors, torch.ones_like(regressors[:, :1])], -1)
    mask = torch.eye(regressors.shape[-1], dtype=y.dtype, device=y.device)
    mask[-1, -1] = 0.0
    std = y.reshape(-1, y.shape[-1]).std(0)
    floor = (min_scale * torch.where(std > 0, std, torch.ones_like(std))).square()
    return _Design(regressors, y[:, lags:].reshape(-1, y.shape[-1]), mask, y[:, :lags], floor)


def principal_component_scores(y: Tensor, num_components: int) -> Tensor:
    """``(..., T, min(num_components, D))``: ``y (..., T, D)`` centred and projected on its top principal
    directions, all leading dims pooled."""
    flat = y.reshape(-1, y.shape[-1])
    centered = flat - flat.mean(0)
    _, _, vh = torch.linalg.svd(centered, full_matrices=False)
    return (centered @ vh[:num_components].T).reshape(*y.shape[:-1], -1)


def _rotation_features(y: Tensor, max_dim: int = 10) -> Tensor:
    """``(trials, T-1, Q(Q-1)/2)``: upper triangle of ``u_t u_{t-1}^T - u_{t-1} u_t^T``, ``u`` the top
    ``Q = min(D, max_dim)`` principal components of y.

    For ``u_t = A u_{t-1} + noise`` its mean is the antisymmetric part of ``A E[u u^T]``: the signed area
    swept per step, which tells rotation directions and speeds apart where positions do not.
    """
    u = principal_component_scores(y, max_dim) if y.shape[-1] > max_dim else y - y.reshape(-1, y.shape[-1]).mean(0)
    outer = u[:, 1:].unsqueeze(-1) * u[:, :-1].unsqueeze(-2)
    rows, cols = torch.triu_indices(u.shape[-1], u.shape[-1], 1, device=u.device)
    return (outer - outer.transpose(-1, -2))[..., rows, cols]


def _kmeans_labels(y: Tensor, num_states: int, generator: np.random.Generator, dynamics_features: bool = True) -> Tensor:
    """k-means labels ``(trials, T)`` on standardized ``[y_t, y_t - y_{t-1}, rotation features]``
    (:func:`_rotation_features`), or on ``y_t`` alone; step 0 takes step 1's label. On ``y``'s device."""
    device, y = y.device, y.double().cpu()
    parts = [y[:, 1:], y[:, 1:] - y[:, :-1], _rotation_features(y)] if dynamics_features else [y[:, 1:]]
    features = torch.cat(parts, -1).flatten(0, 1)
    std = features.std(0)
    features = (features - features.mean(0)) / torch.where(std > 0, std, torch.ones_like(std))
    _, labels = kmeans2(features.numpy(), num_states, minit="++", seed=generator)
    labels = torch.as_tensor(labels, dtype=torch.long).reshape(y.shape[0], y.shape[1] - 1)
    return torch.cat([labels[:, :1], labels], 1).to(device)


def _random_segmentation(shape: torch.Size, num_states: int, generator: np.random.Generator) -> Tensor:
    """Random sticky labels ``(trials, T)``: segments of geometric length, mean ~T/10, uniform states."""
    num_trials, num_steps = shape
    switch = generator.random((num_trials, num_steps)) < min(1.0, 10.0 / num_steps)
    switch[:, 0] = True
    segment = np.cumsum(switch, axis=1)
    labels = generator.integers(num_states, size=(num_trials, num_steps + 1))
    return torch.as_tensor(np.take_along_axis(labels, segment, axis=1), dtype=torch.long)
