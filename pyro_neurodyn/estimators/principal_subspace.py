"""The data's principal subspace: where the low-rank estimators start their readout and latents.

For recordings (or their mean scale, e.g. the link of smoothed rates) ``m (trials, T, D)`` and a rank R:
the mean ``b = mean_t,trials m``, the top-R eigenvectors ``P (D, R)`` of the covariance of ``m`` (largest
first), the mean variance outside them (the observation noise a readout ``m = P x + b + noise`` leaves;
the smallest eigenvalue when R = D), and the projected latents ``x^ = (m - b) P``.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

__all__ = ["PrincipalSubspace", "eye_like", "principal_axes", "principal_subspace"]


class PrincipalSubspace(NamedTuple):
    """``mean (D,)``, ``directions (D, R)`` (orthonormal columns, by decreasing variance),
    ``residual_variance ()`` (floored at 1e-8)."""

    mean: Tensor
    directions: Tensor
    residual_variance: Tensor

    def project(self, m: Tensor, offset: Tensor = None) -> Tensor:
        """Latents ``(m - offset) P`` ``(..., R)`` (``offset`` defaults to the mean)."""
        return (m - (self.mean if offset is None else offset)) @ self.directions


def principal_subspace(m: Tensor, rank: int, steps: Optional[Tensor] = None) -> PrincipalSubspace:
    """The :class:`PrincipalSubspace` of rank ``rank`` of ``m (trials, T, D)`` (by ``eigh`` of the covariance), over
    the steps where ``steps (trials, T)`` is True (None: all; e.g. the steps with an observation)."""
    flat = m.reshape(-1, m.shape[-1]) if steps is None else m[steps]
    eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov(flat.T))
    residual = eigenvalues[:-rank].clamp(min=1e-8).mean() if m.shape[-1] > rank else eigenvalues.min().clamp(min=1e-8)
    return PrincipalSubspace(flat.mean(0), eigenvectors[:, -rank:].flip(-1), residual)


def principal_axes(rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(mean (D,), singular values (r,), directions vh (r, D))`` of the rows ``rows (N, D)``: the SVD of the centred
    rows, largest first. The SRNN's readout start and the session labels' frames both come from it, so that
    they share one frame and one orientation."""
    mean = rows.mean(0)
    _, singular, vh = torch.linalg.svd(rows - mean, full_matrices=False)
    return mean, singular, vh


def eye_like(like: Tensor, size: int) -> Tensor:
    """The identity ``(size, size)`` in ``like``'s dtype, on its device."""
    return torch.eye(size, dtype=like.dtype, device=like.device)
