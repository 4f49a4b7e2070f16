"""Readouts of the low-rank RNN: how recordings ``y_t`` ``(..., D)`` arise from the latent ``x_t``.

A readout reads either the latent itself (``source = "latent"``, s = x, R dims) or the N units' currents
(``source = "units"``, s = c = U x + W_u v, one channel per unit):

    affine:      m = W s + b      (W ``(D, dim s)``)
    one_to_one:  m = g * s + b    (a gain and an offset per unit; D = N)

and a likelihood on that mean:

    LowRankGaussianReadout:  y ~ N(m, diag sigma^2)   (sigma: a diagonal ``Covariance``)
    LowRankPoissonReadout:   y ~ Poisson(softplus(m) + 1e-6)   (e.g. rates softplus(4 c - 3))

A Gaussian readout is linear in s, ``y = C s + d + noise``; :meth:`LowRankGaussianReadout.linear_form`
gives ``(C, d, sigma^2)`` for closed-form (Kalman-type) proposals. Frozen maps keep their weights as
buffers, so nothing is silently trained or registered as a parameter.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import pyro.distributions as dist
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .lowrank import Covariance, CovarianceFactors

__all__ = [
    "AffineReadoutMap",
    "LinearForm",
    "LowRankGaussianReadout",
    "LowRankPoissonReadout",
    "OneToOneReadoutMap",
]

POISSON_RATE_FLOOR = 1e-6


class LinearForm(NamedTuple):
    """``y = weight x + bias + noise``, ``noise ~ N(0, diag variance)``: weight ``(D, R)``, bias ``(..., D)``, variance ``(D,)``."""

    weight: Tensor
    bias: Tensor
    variance: Tensor


def _tensor(module: nn.Module, name: str, value: Tensor, trainable: bool) -> None:
    if trainable:
        setattr(module, name, nn.Parameter(value))
    else:
        module.register_buffer(name, value)


class AffineReadoutMap(nn.Module):
    """``m = s @ weight.T + bias`` with ``weight`` ``(D, S)`` (initialized ~ N(0, 1/S)) and ``bias`` ``(D,)``."""

    def __init__(self, in_dim: int, out_dim: int, *, train_weight: bool = True, train_bias: bool = True):
        super().__init__()
        _tensor(self, "weight", torch.randn(out_dim, in_dim) / math.sqrt(in_dim), train_weight)
        _tensor(self, "bias", torch.zeros(out_dim), train_bias)

    def forward(self, s: Tensor) -> Tensor:
        """The mean ``m``: ``s (..., S)`` -> ``(..., D)``."""
        return s @ self.weight.T + self.bias

    def weight_times(self, A: Optional[Tensor] = None) -> Tensor:
        """``weight @ A`` ``(D, R)`` for ``A (S, R)`` (``weight`` itself, ``(D, S)``, for ``A = None``)."""
        return self.weight if A is None else self.weight @ A


class OneToOneReadoutMap(nn.Module):
    """``m = gain * s + bias`` per channel (``gain``, ``bias`` ``(D,)``; initially 1 and 0)."""

    def __init__(self, dim: int, *, train_gain: bool = True, train_bias: bool = True, gain: float = 1.0, bias: float = 0.0):
        super().__init__()
        _tensor(self, "gain", torch.full((dim,), float(gain)), train_gain)
        _tensor(self, "bias", torch.full((dim,), float(bias)), train_bias)

    def forward(self, s: Tensor) -> Tensor:
        """The mean ``m``: ``s (..., D)`` -> ``(..., D)``."""
        return self.gain * s + self.bias

    def weight_times(self, A: Optional[Tensor] = None) -> Tensor:
        """``diag(gain) @ A`` ``(D, R)`` for ``A (D, R)`` (``diag(gain)``, ``(D, D)``, for ``A = None``)."""
        return torch.diag_embed(self.gain) if A is None else self.gain[:, None] * A


class _Readout(nn.Module):
    def __init__(self, readout_map: nn.Module, source: str):
        super().__init__()
        if source not in ("latent", "units"):
            raise ValueError(f"source must be 'latent' or 'units', got {source!r}")
        self.map, self.source = readout_map, source

    @property
    def reads_units(self) -> bool:
        return self.source == "units"


class LowRankGaussianReadout(_Readout):
    """``y ~ N(map(s), diag sigma^2)``; ``noise`` is a diagonal :class:`Covariance`, sigma initially ``init_scale``."""

    def __init__(self, readout_map: nn.Module, obs_dim: int, source: str = "latent", init_scale: float = 0.1):
        super().__init__(readout_map, source)
        self.noise = Covariance(obs_dim, "diag", init_scale)

    def forward(self, s: Tensor, noise: Optional[CovarianceFactors] = None) -> dist.TorchDistribution:
        """The distribution of ``y`` given the source ``s`` ``(..., S)``: batch ``(...)``, event ``(D,)``; ``noise``: this
        pass's factors, if computed."""
        return self.noise.distribution(self.map(s), noise)

    def mean(self, s: Tensor) -> Tensor:
        """The mean of ``y``: ``s (..., S)`` -> ``(..., D)``."""
        return self.map(s)

    def linear_form(self, pre: Optional[Tensor] = None, offset: Optional[Tensor] = None) -> LinearForm:
        """``(C, d, sigma^2)`` with ``y = C x + d + noise`` for a source ``s = pre @ x + offset``.

        ``pre`` ``(S, R)`` (None: ``s = x``), ``offset`` ``(..., S)`` (None: 0); then ``C = W pre`` (``map.weight_times(pre)``: ``W`` the
        map's weight, ``diag(gain)`` for a one-to-one map)
        and ``d = map(offset)`` ``(..., D)``.
        """
        bias = self.map.bias if offset is None else self.map(offset)
        return LinearForm(self.map.weight_times(pre), bias, self.noise.std().square())


class LowRankPoissonReadout(_Readout):
    """``y ~ Poisson(softplus(map(s)) + 1e-6)`` (the floor keeps the rate positive where softplus underflows)."""

    def forward(self, s: Tensor, noise: None = None) -> dist.TorchDistribution:
        """The distribution of ``y`` given the source ``s (..., S)``: batch ``(...)``, event ``(D,)``."""
        return dist.Poisson(self.mean(s)).to_event(1)

    def mean(self, s: Tensor) -> Tensor:
        """The rates ``softplus(map(s)) + 1e-6``: ``s (..., S)`` -> ``(..., D)``."""
        return F.softplus(self.map(s)) + POISSON_RATE_FLOOR

    def linear_form(self, pre: Optional[Tensor] = None, offset: Optional[Tensor] = None) -> Optional[LinearForm]:
        """None: a Poisson readout has no linear-Gaussian form (``pre (S, R)``, ``offset (..., S)`` are ignored)."""
        return None
