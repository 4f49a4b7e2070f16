"""Start a ``LowRankRNN`` near its data (see ``LowRankRNN.initialize_from_data`` for the recipe).

0. :func:`readout_scale`: what the readout's mean should match: ``y`` (Gaussian), or for counts the link of
   Gaussian-smoothed rates, ``softplus^-1(max(G * y, 0.01))``.
1. :func:`initialize_readout`: the readout at the data's principal subspace, ``mu_1`` / ``Sigma_1`` from the
   projected first step; returns the projected latents ``(B, T, R)``.
2. :func:`initialize_dynamics`: ``a``, ``V``, ``threshold`` (and ``W_u``) by one-step least squares (L-BFGS) on those
   latents; Sigma_x from the residuals.
"""

from __future__ import annotations

from typing import Optional

import torch
from scipy.ndimage import gaussian_filter1d
from torch import Tensor, nn

from ..dynamics.lowrank import Covariance
from ..models.lowrank_rnn import LowRankRNNModel
from .principal_subspace import eye_like, principal_subspace

__all__ = ["SMOOTHED_RATE_FLOOR", "check_enough_pairs", "impute_missing", "initialize_dynamics", "initialize_readout", "readout_scale"]

SMOOTHED_RATE_FLOOR = 0.01  # counts per step; where smoothed Poisson counts are lower, initialization clamps them
MAX_PAIRS = 20000  # one-step pairs the dynamics are regressed on (a random subset beyond)


def check_enough_pairs(y: Tensor) -> None:
    """Initializing estimates covariances of one-step pairs ``(x_t, x_{t+1})``: it needs two, in ``y (trials, T, D)``."""
    pairs = y.shape[0] * (y.shape[1] - 1)
    if pairs < 2:
        raise ValueError(
            f"y of shape {tuple(y.shape)} holds {pairs} one-step pair (trials * (T - 1)); initializing from data "
            "needs at least 2: pass more trials or steps, or fit(init_from_data=False)"
        )


def impute_missing(y: Tensor, mask: Optional[Tensor]) -> Tensor:
    """``y (B, T, D)`` with each entry missing in ``mask (B, T, D)`` (False) set to its channel's observed mean: a
    start for the data-driven initialization only (the likelihood never reads missing entries)."""
    if mask is None:
        return y
    weights = mask.to(y.dtype)
    channel_mean = (y * weights).sum((0, 1)) / weights.sum((0, 1)).clamp(min=1.0)  # (D,)
    return torch.where(mask, y, channel_mean)


def readout_scale(y: Tensor, gaussian: bool, smoothing: float) -> Tensor:
    """Step 0: ``y`` itself (Gaussian), or the link of counts smoothed over ``smoothing`` steps ``(B, T, D)``."""
    if gaussian:
        return y
    rates = torch.as_tensor(gaussian_filter1d(y.cpu().numpy(), smoothing, axis=1, mode="nearest"), dtype=y.dtype, device=y.device)
    rates = rates.clamp(min=SMOOTHED_RATE_FLOOR)
    return rates + torch.log(-torch.expm1(-rates))  # softplus^-1(r) = log(e^r - 1), stable for large r


@torch.no_grad()
def initialize_readout(
    model: LowRankRNNModel, m: Tensor, rank: int, gaussian: bool, steps: Optional[Tensor] = None, blocks: Optional[list] = None
) -> Tensor:
    """Step 1 on the mean scale ``m (B, T, D)`` (its steps where ``steps (B, T)`` is True; None: all); returns the
    projected latents ``(B, T, R)``. With ``blocks`` (sessions with disjoint channels, ``[(trials, channels), ...]``)
    each session's readout rows start at the subspace of its own trials (:func:`.principal_subspace.principal_subspace`)."""
    subspace = principal_subspace(m, rank, steps, blocks)
    top, mean = subspace.directions, subspace.mean  # (D, R), (D,)
    readout = model.readout
    if readout.reads_units:
        model.transition.U.copy_(top)
        if isinstance(readout.map.bias, nn.Parameter):
            readout.map.bias.copy_(mean)
        offset = readout.map.bias
    else:
        readout.map.weight.copy_(top)
        readout.map.bias.copy_(mean)
        offset = mean
    if gaussian:
        readout.noise.set_(torch.diag_embed(subspace.residual_variance.expand(m.shape[2])))
    latents = subspace.project(m, offset)
    model.initial_mean.copy_(latents[:, 0].mean(0))
    if m.shape[0] > rank:
        _set_covariance(model.initial_noise, torch.cov(latents[:, 0].T).reshape(rank, rank) + 1e-4 * eye_like(latents, rank))
    return latents


def initialize_dynamics(model: LowRankRNNModel, latents: Tensor, unit_inputs: Optional[Tensor], steps: Optional[Tensor] = None) -> None:
    """Step 2: least squares one step ahead on ``latents (B, T, R)`` (with the units' inputs ``(B, T, Du)``), over
    the pairs of steps both True in ``steps (B, T)`` (None: all), then Sigma_x from the residuals."""
    transition = model.transition
    rank = latents.shape[-1]
    pairs = torch.ones_like(latents[:, 1:, 0], dtype=torch.bool) if steps is None else steps[:, :-1] & steps[:, 1:]  # (B, T-1)
    current, following = latents[:, :-1][pairs], latents[:, 1:][pairs]
    v = None if unit_inputs is None else unit_inputs[:, :-1][pairs]
    if current.shape[0] > MAX_PAIRS:
        keep = torch.randperm(current.shape[0], generator=torch.Generator().manual_seed(0))[:MAX_PAIRS]
        current, following, v = current[keep], following[keep], None if v is None else v[keep]
    parameters = [transition.V, transition.threshold] + ([transition.W_u] if v is not None else [])
    if isinstance(transition.decay_logit, nn.Parameter):  # a fixed decay (train_decay=False) stays put
        parameters.append(transition.decay_logit)
    optimizer = torch.optim.LBFGS(parameters, max_iter=100, line_search_fn="strong_wolfe")

    def prediction_error() -> Tensor:
        optimizer.zero_grad()
        error = (following - transition(current, v)).square().sum(-1).mean()
        error.backward()
        return error

    optimizer.step(prediction_error)
    # every gradient, not only the optimized ones': U (fixed here) collected them through transition(current),
    # and a stale .grad would be added to the first SVI step's gradient
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        residuals = following - transition(current, v)
        _set_covariance(model.noise, torch.cov(residuals.T).reshape(rank, rank) + 1e-6 * eye_like(residuals, rank))


def _set_covariance(covariance: Covariance, matrix: Tensor) -> None:
    """Set a Covariance to ``matrix``, or to its diagonal when the covariance is diagonal."""
    covariance.set_(matrix if covariance.kind == "full" else torch.diag_embed(matrix.diagonal()))
