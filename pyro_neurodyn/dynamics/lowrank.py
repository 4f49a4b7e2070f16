"""The latent map of a low-rank RNN, its noise covariances, and conversions to the N-unit network.

An N-unit rate network ``tau dc/dt = -c + M N^T phi(c) + W_u u`` (noise in span(M)) whose connectivity
has rank R evolves, once discretized with step ``dt``, exactly in an R-dim latent space (Pals et al. 2024):

    x_{t+1} = a x_t + V phi(U x_t + W_u v_t, b) + eps_t,   eps_t ~ N(0, Sigma_x),
    c_t     = U x_t + W_u v_t                              (the N units' currents),
    v_{t+1} = a v_t + (1 - a) u_t                          (inputs low-pass filtered by the units),

with ``a = 1 - dt/tau``, ``U = M`` ``(N, R)``, ``V = (dt/tau) N^T`` ``(R, N)``. The activation takes the
unit thresholds ``b`` ``(N,)`` (the parameter ``threshold``):

    relu:          phi(c, b) = relu(c - b)
    clipped_relu:  phi(c, b) = relu(c + b) - relu(c)      (0 below -b, slope 1, saturates at b)
    identity:      phi(c, b) = c - b                        (a linear-Gaussian model)
    tanh:          phi(c, b) = tanh(c - b)

Everything here is plain torch (``nn.Module`` s and functions); latents are batch-first ``(..., R)``.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

import pyro.distributions as dist
import torch
from torch import Tensor, nn
from torch.distributions import constraints
from torch.nn import functional as F

from .legacy_keys import LegacyThresholdKey

__all__ = [
    "ACTIVATIONS",
    "Covariance",
    "CovarianceFactors",
    "LatentMap",
    "LowRankTransition",
    "OrthogonalBasis",
    "SharedCovarianceNormal",
    "UnitNetwork",
    "latent_to_units",
    "orthogonal_basis",
    "unit_network",
    "units_to_latent",
]


def _relu(c: Tensor, threshold: Tensor) -> Tensor:
    return F.relu(c - threshold)


def _clipped_relu(c: Tensor, threshold: Tensor) -> Tensor:
    return F.relu(c + threshold) - F.relu(c)


def _identity(c: Tensor, threshold: Tensor) -> Tensor:
    return c - threshold


def _tanh(c: Tensor, threshold: Tensor) -> Tensor:
    return torch.tanh(c - threshold)


ACTIVATIONS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "relu": _relu,
    "clipped_relu": _clipped_relu,
    "identity": _identity,
    "tanh": _tanh,
}


class LatentMap(NamedTuple):
    """The deterministic latent map ``x -> a x + V phi(U x - b)`` (no input), detached.

    ``a`` scalar tensor, ``V`` ``(R, N)``, ``U`` ``(N, R)``, ``threshold`` b ``(N,)``; the arguments of
    ``pyro_neurodyn.analysis.fixed_points(a, V, U, threshold, activation)``.
    """

    a: Tensor
    V: Tensor
    U: Tensor
    threshold: Tensor
    activation: str


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


class LowRankTransition(LegacyThresholdKey):
    """The deterministic part of the latent map, ``x -> a x + V phi(U x + W_u v, b)`` (b the thresholds, ``threshold``).

    Args:
        rank: R. num_units: N. input_dim: Du (0 for none).
        activation: one of :data:`ACTIVATIONS`.
        decay: initial ``a = 1 - dt/tau`` in (0, 1), stored as a logit.
        train_decay: learn ``a`` (a parameter, the default) or hold it at ``decay`` (a buffer: the time
            constant ``tau = dt / (1 - a)`` is then fixed, as when the sampling step and the units' time
            constant are known).

    Initialization as in Pals et al.: ``V ~ U(-1/sqrt(N), 1/sqrt(N))``, ``U, W_u ~ U(-1/sqrt(R), 1/sqrt(R))``,
    ``threshold = 0`` (uniform in ``(-1/sqrt(N), 1/sqrt(N))`` for clipped_relu, whose threshold is a saturation level).
    """

    def __init__(
        self, rank: int, num_units: int, input_dim: int = 0, activation: str = "relu", decay: float = 0.9, train_decay: bool = True
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.rank, self.num_units, self.input_dim, self.activation = rank, num_units, input_dim, activation
        self._phi = ACTIVATIONS[activation]
        decay_logit = torch.tensor(math.log(decay / (1.0 - decay)))
        if train_decay:
            self.decay_logit = nn.Parameter(decay_logit)
        else:
            self.register_buffer("decay_logit", decay_logit)
        self.U = nn.Parameter(_uniform((num_units, rank), 1.0 / math.sqrt(rank)))
        self.V = nn.Parameter(_uniform((rank, num_units), 1.0 / math.sqrt(num_units)))
        threshold = _uniform((num_units,), 1.0 / math.sqrt(num_units)) if activation == "clipped_relu" else torch.zeros(num_units)
        self.threshold = nn.Parameter(threshold)
        self.W_u = nn.Parameter(_uniform((num_units, input_dim), 1.0 / math.sqrt(rank))) if input_dim else None

    @property
    def a(self) -> Tensor:
        """The decay ``a = 1 - dt/tau`` (scalar tensor)."""
        return torch.sigmoid(self.decay_logit)

    def currents(self, x: Tensor, v: Optional[Tensor] = None) -> Tensor:
        """The units' currents ``c = U x + W_u v`` ``(..., N)`` from ``x`` ``(..., R)``, ``v`` ``(..., Du)``."""
        c = x @ self.U.T
        if v is not None and self.W_u is not None:
            c = c + v @ self.W_u.T
        return c

    def rates(self, x: Tensor, v: Optional[Tensor] = None) -> Tensor:
        """``phi(c, b)`` ``(..., N)`` of the currents of ``x`` ``(..., R)``, ``v`` ``(..., Du)``."""
        return self._phi(self.currents(x, v), self.threshold)

    def forward(self, x: Tensor, v: Optional[Tensor] = None) -> Tensor:
        """The mean of ``x_{t+1}``: ``a x + V phi(U x + W_u v, b)`` ``(..., R)``."""
        return self.a * x + self.rates(x, v) @ self.V.T

    def filter_input(self, v: Tensor, u: Tensor) -> Tensor:
        """One step of the units' input filter, ``a v + (1 - a) u``: ``v``, ``u`` ``(..., Du)`` -> ``(..., Du)``."""
        a = self.a
        return a * v + (1.0 - a) * u

    def latent_map(self) -> LatentMap:
        """``(a, V, U, threshold, activation)`` detached, e.g. for ``fixed_points(*latent_map()[:4])``."""
        return LatentMap(self.a.detach(), self.V.detach(), self.U.detach(), self.threshold.detach(), self.activation)


def _uniform(shape: tuple, bound: float) -> Tensor:
    return (2.0 * torch.rand(shape) - 1.0) * bound


# --------------------------------------------------------------------------------------------------
# conversions


def latent_to_units(x: Tensor, U: Tensor, W_u: Optional[Tensor] = None, v: Optional[Tensor] = None) -> Tensor:
    """The N-unit currents ``c = U x + W_u v`` ``(..., N)`` of latents ``x`` ``(..., R)``."""
    c = x @ U.T
    return c if W_u is None or v is None else c + v @ W_u.T


def units_to_latent(c: Tensor, U: Tensor, W_u: Optional[Tensor] = None, v: Optional[Tensor] = None) -> Tensor:
    """Least-squares latents ``x = U^+ (c - W_u v)`` ``(..., R)``; exact for currents in ``span(U) + W_u v``."""
    if W_u is not None and v is not None:
        c = c - v @ W_u.T
    return c @ torch.linalg.pinv(U).T


class UnitNetwork(NamedTuple):
    """The equivalent N-unit RNN ``c_{t+1} = a c_t + J phi(c_t, b) + (1 - a) W_u u_t + U eps_t``.

    ``J = U V`` ``(N, N)`` has rank R; ``noise_cov = U Sigma_x U^T`` ``(N, N)`` is the units' noise
    (confined to span(U)). Holds for filtered inputs (with raw inputs the input term is
    ``W_u (u_{t+1} - a u_t)``).
    """

    a: Tensor
    J: Tensor
    threshold: Tensor
    W_u: Optional[Tensor]
    noise_cov: Tensor
    activation: str


def unit_network(transition: LowRankTransition, noise_cov: Tensor) -> UnitNetwork:
    """The N-unit network of a low-rank transition with latent noise covariance ``noise_cov`` ``(R, R)``."""
    a, V, U, threshold, activation = transition.latent_map()
    W_u = None if transition.W_u is None else transition.W_u.detach()
    return UnitNetwork(a, U @ V, threshold, W_u, U @ noise_cov.detach() @ U.T, activation)


class OrthogonalBasis(NamedTuple):
    """The latent coordinates ``x' = T x`` in which ``U' = U T^{-1}`` has orthonormal columns.

    ``U' V' = U V`` is the SVD of the rank-R connectivity ``J = U V = P S Q^T``: ``U' = P[:, :R]`` (the
    units' directions), ``V' = S Q^T`` (rows ordered by singular value), ``T = U'^T U``. The model is the
    same in these coordinates; distances in ``x'`` are distances between unit current patterns, so this
    is the basis to plot latents and to compare fits (noise ``T Sigma T^T`` is then in units of currents).
    Fields: ``transform`` T ``(R, R)``, ``U`` ``(N, R)``, ``V`` ``(R, N)``, ``noise_cov`` ``(R, R)``.
    """

    transform: Tensor
    U: Tensor
    V: Tensor
    noise_cov: Tensor

    def latents(self, x: Tensor) -> Tensor:
        """Latents ``x`` ``(..., R)`` in this basis, ``x' = T x``."""
        return x @ self.transform.T


def orthogonal_basis(U: Tensor, V: Tensor, noise_cov: Optional[Tensor] = None) -> OrthogonalBasis:
    """Change of latent basis that orthonormalizes ``U (N, R)`` by the SVD of ``U V`` (``V (R, N)``; ``noise_cov (R, R)``,
    None: the identity); see :class:`OrthogonalBasis` for the fields' shapes."""
    U, V = U.detach(), V.detach()
    rank = U.shape[1]
    left, singular, right_t = torch.linalg.svd(U @ V, full_matrices=False)
    U_new = left[:, :rank]
    V_new = singular[:rank, None] * right_t[:rank]
    transform = U_new.T @ U
    cov = torch.eye(rank, dtype=U.dtype, device=U.device) if noise_cov is None else noise_cov.detach()
    return OrthogonalBasis(transform, U_new, V_new, transform @ cov @ transform.T)
