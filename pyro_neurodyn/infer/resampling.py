"""Resampling for particle filters: ancestor indices, effective sample size, gathering by ancestor.

Layout: particles are dim 0 and every other dim is a batch of independent particle systems (trials),
so with ``S`` particles ``log_weights`` has shape ``(S, *batch)`` and ancestor indices have the same
shape, with ``ancestors[s, b]`` the particle of system ``b`` that particle ``s`` descends from.

Both schemes are unbiased, ``E[#{s : ancestors[s, b] = j}] = S w_j`` with ``w`` the normalized
weights; systematic resampling (one uniform per system, stratified positions ``(u + s) / S``) has the
smaller variance, every count being ``floor(S w_j)`` or ``ceil(S w_j)``. Ancestors are drawn from
the weights with gradients cut: the resampling step is not differentiated (as in FIVO).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "RESAMPLING_SCHEMES",
    "effective_sample_size",
    "gather_particles",
    "log_mean_exp",
    "multinomial_ancestors",
    "systematic_ancestors",
]


def _normalized_weights(log_weights: Tensor) -> Tensor:
    """``(S, *batch)`` log weights -> ``(B, S)`` normalized weights, detached, in float64."""
    flat = log_weights.detach().to(torch.float64).reshape(log_weights.shape[0], -1).T
    return torch.softmax(flat, dim=-1)


def systematic_ancestors(log_weights: Tensor) -> Tensor:
    """Systematic resampling: ancestor indices ``(S, *batch)`` (int64) from ``log_weights`` ``(S, *batch)``.

    Particle ``s`` takes the ancestor ``j`` whose cumulative-weight interval contains ``(u + s) / S``,
    ``u ~ Uniform(0, 1)`` drawn once per particle system.
    """
    num_particles = log_weights.shape[0]
    weights = _normalized_weights(log_weights)  # (B, S)
    cumulative = weights.cumsum(-1)
    cumulative = cumulative / cumulative[:, -1:]  # exact 1 at the end despite rounding
    like = dict(dtype=weights.dtype, device=weights.device)
    positions = (torch.rand(weights.shape[0], 1, **like) + torch.arange(num_particles, **like)) / num_particles
    ancestors = torch.searchsorted(cumulative, positions, right=True).clamp_(max=num_particles - 1)
    return ancestors.T.reshape(log_weights.shape)


def multinomial_ancestors(log_weights: Tensor) -> Tensor:
    """Multinomial resampling: ``S`` independent draws per system from the normalized weights."""
    num_particles = log_weights.shape[0]
    ancestors = torch.multinomial(_normalized_weights(log_weights), num_particles, replacement=True)
    return ancestors.T.reshape(log_weights.shape)


RESAMPLING_SCHEMES = {"systematic": systematic_ancestors, "multinomial": multinomial_ancestors}


def effective_sample_size(log_weights: Tensor) -> Tensor:
    """``1 / sum_s w_s^2`` of the normalized weights, shape ``batch`` (between 1 and S)."""
    log_w = log_weights.detach()
    log_w = log_w - torch.logsumexp(log_w, dim=0, keepdim=True)
    return torch.exp(-torch.logsumexp(2.0 * log_w, dim=0))


def gather_particles(value: Tensor, ancestors: Tensor) -> Tensor:
    """Select ``value[ancestors[s, b], b, ...]``: the particles that survive resampling.

    Args:
        value: ``(S, *plates, *event)``, where ``plates`` has as many dims as ``ancestors`` has batch
            dims (size 1 allowed: a tensor shared by all systems is expanded first).
        ancestors: ``(S, *batch)`` int64 from :func:`systematic_ancestors` or :func:`multinomial_ancestors`.
    """
    batch_ndim = ancestors.dim() - 1
    if value.dim() < ancestors.dim() or value.shape[0] != ancestors.shape[0]:
        raise ValueError(
            f"a particle tensor of shape {tuple(value.shape)} does not start with (particles, {batch_ndim} plate dims) "
            f"matching the ancestors' shape {tuple(ancestors.shape)}"
        )
    event_shape = value.shape[1 + batch_ndim :]
    plate_shape = value.shape[1 : 1 + batch_ndim]
    batch_shape = plate_shape if plate_shape == ancestors.shape[1:] else torch.broadcast_shapes(plate_shape, ancestors.shape[1:])
    full_shape = (value.shape[0],) + batch_shape + event_shape
    index = ancestors.reshape(ancestors.shape + (1,) * len(event_shape)).expand(full_shape)
    return torch.gather(value if batch_shape == plate_shape else value.expand(full_shape), 0, index)


def log_mean_exp(log_values: Tensor, dim: int = 0) -> Tensor:
    """``log mean exp`` along ``dim``, stable."""
    return torch.logsumexp(log_values, dim=dim) - math.log(log_values.shape[dim])
