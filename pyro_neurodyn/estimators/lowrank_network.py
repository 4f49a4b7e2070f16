"""The fitted network of a ``LowRankRNN``, seen the ways users analyse it (a mixin of ``LowRankRNN``).

The latent map ``x -> a x + V phi(U x, b)`` (b the thresholds) and its fixed points, Sigma_x, the parameters in an orthonormal
basis, the equivalent N-unit network, the units' currents ``c = U x + W_u v`` and the readout means of
latent paths. Reads ``self.model``, ``self.config`` and the estimator's input checks.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from ..analysis.fixed_points import FixedPoints, latent_map_fixed_points
from ..data.validation import as_inputs, as_trials
from ..dynamics.lowrank import LatentMap, OrthogonalBasis, UnitNetwork, latent_to_units, orthogonal_basis, unit_network
from .lowrank_parts import unit_inputs

__all__ = ["LowRankNetworkViews"]


class LowRankNetworkViews:
    """Analysis of the fitted network (methods of ``LowRankRNN``)."""

    def latent_map(self) -> LatentMap:
        """``(a, V (R, N), U (N, R), threshold (N,), activation)`` of ``x -> a x + V phi(U x, b)``, detached."""
        return self.model.transition.latent_map()

    def fixed_points(self, **options: Any) -> FixedPoints:
        """All fixed points of the latent map (ReLU or clipped ReLU), exactly: one call into
        :func:`~pyro_neurodyn.analysis.fixed_points` with :meth:`latent_map` (see
        :func:`~pyro_neurodyn.analysis.latent_map_fixed_points`; ``options``: ``tol``, ``merge_tol``, ...)."""
        return latent_map_fixed_points(self.latent_map(), **options)

    def noise_covariance(self) -> Tensor:
        """Sigma_x ``(R, R)``, detached."""
        return self.model.noise.matrix().detach()

    def orthogonal_basis(self) -> OrthogonalBasis:
        """The parameters in the latent basis where U has orthonormal columns (for plots and comparisons):
        ``transform (R, R)``, ``U (N, R)``, ``V (R, N)``, ``noise_cov (R, R)``."""
        _, V, U, _, _ = self.latent_map()
        return orthogonal_basis(U, V, self.noise_covariance())

    def unit_network(self) -> UnitNetwork:
        """The equivalent N-unit RNN: connectivity ``J = U V`` ``(N, N)``, noise ``U Sigma_x U^T`` ``(N, N)``, ``threshold (N,)``,
        ``W_u (N, Du)`` or None, ``a`` a scalar tensor."""
        return unit_network(self.model.transition, self.noise_covariance())

    @torch.no_grad()
    def to_units(self, x: Any, u: Any = None) -> Tensor:
        """The units' currents ``c = U x + W_u v`` ``(B, T, N)`` of latents ``x`` ``(B, T, R)`` (inputs ``u`` ``(B, T, Du)``)."""
        x, v = self._latents_and_unit_inputs(x, u)
        transition = self.model.transition
        return latent_to_units(x, transition.U, transition.W_u, v)

    @torch.no_grad()
    def readout_means(self, x: Any, u: Any = None) -> Tensor:
        """The readout's mean (Gaussian) or rate (Poisson) ``(B, T, D)`` for latents ``x`` ``(B, T, R)`` (inputs ``u``
        ``(B, T, Du)``)."""
        x, v = self._latents_and_unit_inputs(x, u)
        return self.model.readout.mean(self.model.readout_source(x, v))

    def _latents_and_unit_inputs(self, x: Any, u: Any) -> tuple[Tensor, Optional[Tensor]]:
        x = as_trials(x, "x", min_steps=1, dtype=self.dtype, device=self.device)
        if x.shape[2] != self.config.rank:
            raise ValueError(f"x must have rank = {self.config.rank} latent dims, got shape {tuple(x.shape)}")
        u = as_inputs(u, x, y_name="x")
        self._check_inputs(u)
        return x, None if u is None else unit_inputs(self.model.transition, u, self.config.filter_inputs)
