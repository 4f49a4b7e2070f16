"""Gaussian noise covariances of the low-rank models: a learnable ``Covariance`` module, the factors of
``Sigma = S S^T`` computed once per pass (``CovarianceFactors``), and the normal law sharing them across a batch
of means (``SharedCovarianceNormal``).

Everything here is plain torch (``nn.Module`` s and a Pyro distribution); vectors are batch-first ``(..., R)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import pyro.distributions as dist
import torch
from torch import Tensor, nn
from torch.distributions import constraints

__all__ = ["Covariance", "CovarianceFactors", "SharedCovarianceNormal"]


class CovarianceFactors(NamedTuple):
    """Factors of ``Sigma = S S^T``, computed once per pass and shared by every particle and trial.

    ``scale``: a square root ``S`` ``(R, R)`` of a full covariance (the Cholesky factor, or any other),
    or the standard deviations ``(R,)`` of a diagonal one; ``inverse``: ``S^{-1}`` ``(R, R)`` or
    ``1 / std`` ``(R,)``; ``half_log_det``: ``log |det S|`` (scalar). A full covariance may also be
    batched, one per particle: ``scale`` and ``inverse`` ``(..., R, R)``, ``half_log_det`` ``(...)``.
    """

    scale: Tensor
    inverse: Tensor
    half_log_det: Tensor

    @property
    def diagonal(self) -> bool:
        return self.scale.dim() == 1

    def matrix(self) -> Tensor:
        """``Sigma`` ``(R, R)``."""
        return torch.diag_embed(self.scale.square()) if self.diagonal else self.scale @ self.scale.mT

    def variance(self) -> Tensor:
        """``diag Sigma`` ``(R,)``."""
        return self.scale.square() if self.diagonal else self.scale.square().sum(-1)

    @classmethod
    def from_scale_tril(cls, scale_tril: Tensor) -> "CovarianceFactors":
        """The factors of ``L L^T`` from its lower Cholesky factor ``scale_tril`` ``L (R, R)``."""
        eye = torch.eye(scale_tril.shape[-1], dtype=scale_tril.dtype, device=scale_tril.device)
        inverse = torch.linalg.solve_triangular(scale_tril, eye, upper=False)
        return cls(scale_tril, inverse, scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1))

    @classmethod
    def from_std(cls, std: Tensor) -> "CovarianceFactors":
        """The factors of ``diag(std^2)`` from the standard deviations ``std (R,)``."""
        return cls(std, std.reciprocal(), std.log().sum())


class SharedCovarianceNormal(dist.TorchDistribution):
    """``N(loc, Sigma)`` for a batch of means ``loc`` ``(..., R)`` sharing one covariance (its factors).

    The same law as ``MultivariateNormal(loc, scale_tril=L)`` (or a diagonal ``Normal(...).to_event(1)``),
    with the factorization done once for all particles: ``rsample = loc + S eps`` and
    ``log_prob(x) = -|S^{-1}(x - loc)|^2 / 2 - log|det S| - R log(2 pi) / 2``.
    """

    arg_constraints: dict = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc: Tensor, factors: CovarianceFactors, validate_args=None):
        self.loc, self.factors = loc, factors
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=False)

    def expand(self, batch_shape, _instance=None) -> "SharedCovarianceNormal":
        batch_shape = torch.Size(batch_shape)
        if batch_shape == self.batch_shape:  # Pyro's plates expand every site, mostly to the same shape
            return self
        return SharedCovarianceNormal(self.loc.expand(batch_shape + self.event_shape), self.factors)

    @property
    def mean(self) -> Tensor:
        """``loc`` ``(..., R)``."""
        return self.loc

    @property
    def variance(self) -> Tensor:
        """``diag Sigma`` expanded to ``(..., R)``."""
        return self.factors.variance().expand(self.loc.shape)

    def rsample(self, sample_shape=torch.Size()) -> Tensor:
        """``loc + S eps``, ``sample_shape + (..., R)``."""
        eps = torch.randn(self._extended_shape(sample_shape), dtype=self.loc.dtype, device=self.loc.device)
        return self.loc + _apply_factor(self.factors.scale, eps)

    def log_prob(self, value: Tensor) -> Tensor:
        """``log N(value; loc, Sigma)``: ``value (..., R)`` (broadcasting with ``loc``) -> ``(...)``."""
        white = _apply_factor(self.factors.inverse, value - self.loc)
        return -0.5 * white.square().sum(-1) - (self.factors.half_log_det + 0.5 * self.event_shape[0] * _LOG_2PI)

    def per_coordinate(self) -> dist.TorchDistribution:
        """The same law as ``Independent(Normal(loc, std), 1)`` when Sigma is diagonal, so that single coordinates
        can be masked (:func:`~pyro_neurodyn.distributions.mask_observation`); ``self`` when it is not."""
        if not self.factors.diagonal:
            return self
        return dist.Normal(self.loc, self.factors.scale.expand(self.loc.shape)).to_event(1)


_LOG_2PI = math.log(2.0 * math.pi)


def _apply_factor(factor: Tensor, vectors: Tensor) -> Tensor:
    """``factor @ v`` for every vector ``(..., R)``: a diagonal ``(R,)``, one matrix ``(R, R)`` or a batch ``(..., R, R)``."""
    if factor.dim() == 1:
        return vectors * factor
    if factor.dim() == 2:
        return vectors @ factor.T
    return (factor @ vectors.unsqueeze(-1)).squeeze(-1)


class Covariance(nn.Module):
    """A covariance ``Sigma`` ``(dim, dim)``: ``"full"`` (Cholesky factor), ``"diag"`` or ``"scalar"`` (``s^2 I``).

    Full: ``Sigma = L L^T`` with ``L`` lower triangular and ``diag(L) = exp(log_diag)``; diag and scalar
    store log standard deviations. ``init_scale`` is the initial standard deviation of every coordinate.
    """

    KINDS = ("full", "diag", "scalar")

    def __init__(self, dim: int, kind: str = "full", init_scale: float = 0.1):
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"the covariance kind must be one of {self.KINDS}, got {kind!r}")
        self.dim, self.kind = dim, kind
        log_scale = math.log(init_scale)
        if kind == "full":
            self.log_diag = nn.Parameter(torch.full((dim,), log_scale))
            self.lower = nn.Parameter(torch.zeros(dim * (dim - 1) // 2))
        else:
            self.log_scale = nn.Parameter(torch.full((dim,) if kind == "diag" else (), log_scale))
        self.register_buffer("_tril_index", torch.tril_indices(dim, dim, offset=-1), persistent=False)

    def std(self) -> Tensor:
        """Standard deviations ``sqrt(diag Sigma)`` ``(dim,)``."""
        if self.kind == "full":
            return self.scale_tril().square().sum(-1).sqrt()
        return self.log_scale.exp().expand(self.dim)

    def scale_tril(self) -> Tensor:
        """The lower Cholesky factor ``L`` ``(dim, dim)`` of ``Sigma``."""
        if self.kind != "full":
            return torch.diag_embed(self.std())
        rows, cols = self._tril_index
        lower = self.log_diag.new_zeros(self.dim, self.dim).index_put((rows, cols), self.lower)
        return lower + torch.diag_embed(self.log_diag.exp())

    def matrix(self) -> Tensor:
        """``Sigma`` ``(dim, dim)``."""
        scale_tril = self.scale_tril()
        return scale_tril @ scale_tril.T

    def factors(self) -> CovarianceFactors:
        """:class:`CovarianceFactors` of ``Sigma`` (diagonal ones for kinds diag and scalar)."""
        if self.kind == "full":
            return CovarianceFactors.from_scale_tril(self.scale_tril())
        return CovarianceFactors.from_std(self.std())

    def distribution(self, loc: Tensor, factors: Optional[CovarianceFactors] = None) -> SharedCovarianceNormal:
        """``N(loc, Sigma)``: ``loc (..., dim)`` -> batch ``(...)``, event ``(dim,)``; pass this pass's ``factors`` to skip
        refactorizing."""
        return SharedCovarianceNormal(loc, self.factors() if factors is None else factors)

    @torch.no_grad()
    def set_(self, matrix: Tensor) -> "Covariance":
        """Set ``Sigma`` to ``matrix`` ``(dim, dim)`` (symmetric positive definite; diagonal for kinds diag/scalar),
        converted to the parameters' dtype and device."""
        parameter = self.log_diag if self.kind == "full" else self.log_scale
        matrix = torch.as_tensor(matrix, dtype=parameter.dtype, device=parameter.device)
        if self.kind == "full":
            scale_tril = torch.linalg.cholesky(matrix)
            self.log_diag.copy_(scale_tril.diagonal().log())
            self.lower.copy_(scale_tril[tuple(self._tril_index)])
            return self
        off_diagonal = matrix - torch.diag_embed(matrix.diagonal())
        if off_diagonal.abs().max() > 1e-6 * matrix.diagonal().abs().max():
            raise ValueError(f"a {self.kind} covariance cannot hold a matrix with off-diagonal entries")
        variances = matrix.diagonal()
        if self.kind == "scalar":
            variances = variances.mean()
        self.log_scale.copy_(0.5 * variances.log())
        return self
