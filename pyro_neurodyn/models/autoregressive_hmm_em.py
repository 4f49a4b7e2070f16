"""Exact EM for the :class:`~pyro_neurodyn.models.AutoregressiveHMM` (mixed into it as
:class:`_EMFitting`): the E step's expected statistics, the closed-form M step (weighted least squares on
the lagged regressors, residual (co)variances, Dirichlet MAP transitions), the restarts and their initial
labels, and the argument checks they share with the model."""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple, Optional

import numpy as np
import torch
from torch import Tensor, nn

from ..data.recording import steps_within
from ..data.validation import as_state_labels, check_count, check_positive
from ..distributions import switching_log_marginal, switching_posterior
from .autoregressive_hmm_init import _kmeans_labels, _random_segmentation

__all__ = ["ARHMMStatistics", "lagged_regressors"]

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
    """``X (..., T-L, L*D)`` with ``X[..., t-L, :] = [y_{t-1}, y_{t-2}, ..., y_{t-L}]`` (0-based t >= L) of ``y (..., T, D)``."""
    num_steps = y.shape[-2]
    return torch.cat([y[..., lags - l : num_steps - l, :] for l in range(1, lags + 1)], -1)


def _check_real(value, name: str, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return float(value)


class _EMFitting:
    """EM fitting of :class:`~pyro_neurodyn.models.AutoregressiveHMM` (a mixin: it uses the model's
    parameters, :meth:`factors` and :meth:`_validate`)."""

    def _expected_statistics(self, y: Tensor, observed: Optional[Tensor] = None, pairs: Optional[Tensor] = None) -> tuple[float, ARHMMStatistics]:
        """E step: ``log p(y)`` summed over trials and the :class:`ARHMMStatistics`; with ``observed (trials, T, D)``
        only the counted steps (:meth:`counted_steps`) weigh in the M step, and with ``pairs (trials, T-1)`` only
        the transitions within the trials."""
        factors = self.factors(y, observed)
        log_p = float(switching_log_marginal(*factors).sum())
        marginals, pairwise = switching_posterior(*factors)
        counted = self.counted_steps(observed)
        weights = marginals if counted is None else marginals * counted.unsqueeze(-1)
        stats = ARHMMStatistics(
            weights[:, : self.lags],
            weights[:, self.lags :].reshape(-1, self.num_states),
            marginals[:, 0].sum(0),
            (pairwise if pairs is None else pairwise * pairs[..., None, None]).sum((0, 1)),
        )
        return log_p, stats

    def _maximize(self, design: _Design, stats: ARHMMStatistics, options: _EMOptions) -> None:
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
            # in float64: a float32 sum of M outer products can lose positive definiteness by more than the floor
            # (channels that are constant fills of missing entries in most rows)
            residual64 = residual.double()
            cov = torch.einsum("mk,mki,mkj->kij", weights.double(), residual64, residual64) / total[:, None, None].double()
            tril = torch.linalg.cholesky(cov + torch.diag_embed(floor.double().expand(self.num_states, -1))).to(residual.dtype)
            self.log_scale.copy_(tril.diagonal(dim1=-2, dim2=-1).log())
            self.scale_offdiag.copy_(tril.tril(-1))
        self.weight.copy_(coef[:, :-1].transpose(-1, -2))
        self.bias.copy_(coef[:, -1])
        self._maximize_initial(design, stats, options)

    def _maximize_initial(self, design: _Design, stats: ARHMMStatistics, options: _EMOptions) -> None:
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

    def _maximize_from_labels(self, design: _Design, labels: Tensor, options: _EMOptions) -> None:
        """One M step from hard labels ``(trials, T)`` (an initialization)."""
        onehot = nn.functional.one_hot(labels, self.num_states).to(design.regressors.dtype)  # (N, T, K)
        pairs = torch.einsum("ntk,ntj->kj", onehot[:, :-1], onehot[:, 1:])
        stats = ARHMMStatistics(onehot[:, : self.lags], onehot[:, self.lags :].reshape(-1, self.num_states), onehot[:, 0].sum(0), pairs)
        self._maximize(design, stats, options)

    def _em(self, y: Tensor, design: _Design, num_iters: int, options: _EMOptions) -> list[float]:
        history = []
        for _ in range(num_iters):
            log_p, stats = self._expected_statistics(y, design.observed, design.pairs)
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
        seed: int | None = 0,
        init: str | Tensor = "kmeans",
        num_restarts: int = 4,
        restart_iters: int = 10,
        ridge: float = 1e-4,
        min_scale: float = 1e-3,
        transition_prior: float = 0.0,
        sticky_prior: float = 0.0,
        tol: float | None = None,
        mask: Optional[Tensor] = None,
        lengths: Optional[Tensor] = None,
    ) -> list[float]:
        r"""Exact EM (Baum-Welch) on ``y (trials, T, D)``; returns log p(y) (summed over trials) per iteration.

        With ``mask (trials, T, D)`` (True = observed) and ``lengths (trials,)`` (ragged trials padded to T) the
        likelihood is that of the counted steps (:meth:`counted_steps`), the M step weighs those only, no
        transition is counted after a trial's end, and the starting labels cluster the counted steps.

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
        observed = self._observed(y, mask, lengths)
        num_iters = check_count(num_iters, "num_iters")
        num_restarts = check_count(num_restarts, "num_restarts")
        restart_iters = check_count(restart_iters, "restart_iters")
        options = _EMOptions(
            _check_real(ridge, "ridge", 0.0),
            _check_real(transition_prior, "transition_prior", 0.0),
            _check_real(sticky_prior, "sticky_prior", 0.0),
            None if tol is None else check_positive(tol, "tol"),
        )
        pairs = None if lengths is None else steps_within(torch.as_tensor(lengths, device=y.device), y.shape[1])[:, 1:]
        design = _design(y, self.lags, check_positive(min_scale, "min_scale"), observed, pairs)
        generator = np.random.default_rng(seed)
        first_labels = self._initial_labels(y, init, generator, design.label_rows)
        if num_restarts == 1:
            self._maximize_from_labels(design, first_labels, options)
            return self._em(y, design, num_iters, options)
        best = None
        for start in range(num_restarts):
            labels = first_labels if start == 0 else self._restart_labels(y, start, generator, design.label_rows)
            self._maximize_from_labels(design, labels, options)
            history = self._em(y, design, min(restart_iters, num_iters), options)
            if best is None or history[-1] > best[0][-1]:
                best = (history, {name: value.clone() for name, value in self.state_dict().items()})
        history, state = best
        self.load_state_dict(state)  # the best start, one M step past its last recorded log p(y)
        if num_iters > len(history) and (options.tol is None or len(history) == min(restart_iters, num_iters)):
            history = history + self._em(y, design, num_iters - len(history), options)
        return history

    def _restart_labels(self, y: Tensor, start: int, generator: np.random.Generator, rows: Optional[Tensor] = None) -> Tensor:
        """Labels of restart ``start`` >= 1: k-means on positions first, then random sticky segmentations."""
        if start == 1:
            return _kmeans_labels(y, self.num_states, generator, dynamics_features=False, rows=rows)
        return _random_segmentation(y.shape[:2], self.num_states, generator).to(y.device)

    def _initial_labels(self, y: Tensor, init: str | Tensor, generator: np.random.Generator, rows: Optional[Tensor] = None) -> Tensor:
        if isinstance(init, str):
            if init not in INITS:
                raise ValueError(f"init must be one of {INITS} or a (trials, T) tensor of labels, got {init!r}")
            if init == "random":
                return _random_segmentation(y.shape[:2], self.num_states, generator).to(y.device)
            return _kmeans_labels(y, self.num_states, generator, rows=rows)
        labels = as_state_labels(init, "init", num_states=self.num_states, device=y.device)
        if labels.shape != y.shape[:2]:
            raise ValueError(f"init labels must have shape (trials, T) = {tuple(y.shape[:2])}, got {tuple(labels.shape)}")
        return labels


class _EMOptions(NamedTuple):
    ridge: float
    transition_prior: float
    sticky_prior: float
    tol: float | None


class _Design(NamedTuple):
    """Fixed regression data of an EM run: ``regressors (M, P+1)`` ``[lags, 1]``, ``targets (M, D)``,
    ``ridge_mask (P+1, P+1)`` (identity without the bias), ``head (trials, L, D)`` the first L steps,
    ``variance_floor (D,)``; with missing data ``observed (trials, T, D)``, the transitions within the trials
    ``pairs (trials, T-1)`` and the rows k-means may cluster, ``label_rows (trials, T-1)`` (None: all)."""

    regressors: Tensor
    targets: Tensor
    ridge_mask: Tensor
    head: Tensor
    variance_floor: Tensor
    observed: Optional[Tensor] = None
    pairs: Optional[Tensor] = None
    label_rows: Optional[Tensor] = None


def _design(y: Tensor, lags: int, min_scale: float, observed: Optional[Tensor] = None, pairs: Optional[Tensor] = None) -> _Design:
    regressors = lagged_regressors(y, lags).reshape(-1, lags * y.shape[-1])
    regressors = torch.cat([regressors, torch.ones_like(regressors[:, :1])], -1)
    mask = torch.eye(regressors.shape[-1], dtype=y.dtype, device=y.device)
    mask[-1, -1] = 0.0
    complete = None if observed is None else observed.all(-1)  # (trials, T)
    std = (y.reshape(-1, y.shape[-1]) if complete is None else y[complete]).std(0)
    floor = (min_scale * torch.where(std > 0, std, torch.ones_like(std))).square()
    rows = None if complete is None else complete[:, 1:] & complete[:, :-1]  # k-means reads y_t and y_t - y_{t-1}
    return _Design(regressors, y[:, lags:].reshape(-1, y.shape[-1]), mask, y[:, :lags], floor, observed, pairs, rows)
