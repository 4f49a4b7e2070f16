"""A Gaussian path with linear (diagonal) autoregressive dependence, sampled in O(log T) depth."""

from __future__ import annotations

from typing import Optional

import torch
from pyro.distributions import TorchDistribution, constraints
from torch import Tensor

__all__ = ["LinearGaussianPath", "linear_recurrence"]


def linear_recurrence(coef: Tensor, inputs: Tensor) -> Tensor:
    """Solve ``x_t = coef_t * x_{t-1} + inputs_t`` (elementwise, x_0 = 0) for all t at once.

    Args:
        coef, inputs: ``(..., T, P)`` (broadcastable); ``coef[..., 0, :]`` multiplies x_0 = 0 and is unused.

    Returns:
        ``(..., T, P)`` path x.

    The affine maps ``x -> coef_t x + inputs_t`` compose associatively, so a Hillis-Steele scan
    (doubling the reach each round) solves the recurrence in ceil(log2 T) rounds of vectorized ops
    instead of a T-step Python loop; differentiable.
    """
    coef, inputs = torch.broadcast_tensors(coef, inputs)
    num_steps = inputs.shape[-2]
    shift = 1
    while shift < num_steps:
        inputs = torch.cat([inputs[..., :shift, :], inputs[..., shift:, :] + coef[..., shift:, :] * inputs[..., :-shift, :]], -2)
        coef = torch.cat([coef[..., :shift, :], coef[..., shift:, :] * coef[..., :-shift, :]], -2)
        shift *= 2
    return inputs


class LinearGaussianPath(TorchDistribution):
    r"""Path h_{1:T} with ``h_t | h_{t-1} ~ N(coef_t * h_{t-1} + loc_t, diag(scale_t^2))`` (h_0 = 0).

    The variational family of the suite's amortized encoders: autoregressive in the *sampled*
    h_{t-1} (so a sample is a coherent path, not independent marginals), with coef, loc, scale
    produced by a recurrent network from the data. Because the dependence is linear, a
    reparameterized sample is the linear recurrence ``h_t = coef_t h_{t-1} + loc_t + scale_t eps_t``,
    solved by :func:`linear_recurrence` in O(log T) depth, and the mean path is the same recurrence
    with eps = 0.

    Args:
        coef, loc, scale: ``(..., T, P)``; scale > 0. event_shape = (T, P).
    """

    arg_constraints = {"coef": constraints.real, "loc": constraints.real, "scale": constraints.positive}
    support = constraints.independent(constraints.real, 2)
    has_rsample = True

    def __init__(self, coef: Tensor, loc: Tensor, scale: Tensor, validate_args: Optional[bool] = None):
        self.coef, self.loc, self.scale = torch.broadcast_tensors(coef, loc, scale)
        if self.loc.dim() < 2:
            raise ValueError(f"loc must have shape (..., T, P), got {tuple(self.loc.shape)}")
        super().__init__(self.loc.shape[:-2], self.loc.shape[-2:], validate_args=validate_args)

    @property
    def mean(self) -> Tensor:
        return linear_recurrence(self.coef, self.loc)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        noise = torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)
        return linear_recurrence(self.coef, self.loc + self.scale * noise)

    def conditional_means(self, value: Tensor) -> Tensor:
        """``coef_t * h_{t-1} + loc_t`` for a given path (``(..., T, P)``)."""
        previous = torch.nn.functional.pad(value[..., :-1, :], (0, 0, 1, 0))
        return self.coef * previous + self.loc

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        residual = (value - self.conditional_means(value)) / self.scale
        log_density = -0.5 * residual.pow(2) - self.scale.log() - 0.5 * torch.log(torch.tensor(2 * torch.pi, dtype=value.dtype))
        return log_density.sum((-2, -1))

    def entropy(self) -> Tensor:
        return (0.5 * torch.log(torch.tensor(2 * torch.pi * torch.e, dtype=self.scale.dtype)) + self.scale.log()).sum((-2, -1))

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(LinearGaussianPath, _instance)
        shape = torch.Size(batch_shape) + self.event_shape
        new.coef, new.loc, new.scale = self.coef.expand(shape), self.loc.expand(shape), self.scale.expand(shape)
        super(LinearGaussianPath, new).__init__(torch.Size(batch_shape), self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new
