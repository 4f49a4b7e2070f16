"""The latent map of a low-rank RNN and conversions to the N-unit network (its noise covariances:
:mod:`.covariance`, re-exported here).

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

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .covariance import Covariance, CovarianceFactors, SharedCovarianceNormal
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
