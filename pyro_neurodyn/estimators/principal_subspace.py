"""The data's principal subspace: where the low-rank estimators start their readout and latents.

For recordings (or their mean scale, e.g. the link of smoothed rates) ``m (trials, T, D)`` and a rank R:
the mean ``b = mean_t,trials m``, the top-R eigenvectors ``P (D, R)`` of the covariance of ``m`` (largest
first), the mean variance outside them (the observation noise a readout ``m = P x + b + noise`` leaves;
the smallest eigenvalue when R = D), and the projected latents ``x^ = (m - b) P``.

Sessions that recorded disjoint channels (``Recording.from_sessions``; ``blocks`` of
:func:`~pyro_neurodyn.data.recording.session_blocks`) each get the subspace of their own trials on their own
channels: P's rows of session s are its top-R directions, b and the noise its own, and a trial of session s
is projected through its session's rows only. Then every session's frame is turned onto the first session's by
the orthogonal map ``Q_s`` under which its one-step dynamics best follow the first's (:mod:`.session_frames`): its
rows become ``P_s Q_s^T`` (still orthonormal), its latents ``Q_s x^_s`` (every prediction unchanged). Pooled, the
channels of the session with the most variance would take every principal direction and leave the other sessions' rows at zero (the SRNN's readout start,
:func:`~.srnn_start.initialize_linear_readout`, does the same per session).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

from . import session_frames

__all__ = ["PrincipalSubspace", "eye_like", "principal_axes", "principal_subspace"]


class PrincipalSubspace(NamedTuple):
    """``mean (D,)``, ``directions (D, R)`` (orthonormal columns, by decreasing variance),
    ``residual_variance ()`` (floored at 1e-8); with ``blocks`` (sessions with disjoint channels: ``[(trials,
    channels), ...]``) each block's rows of ``directions`` are orthonormal columns of their own and
    ``residual_variance`` is ``(D,)``, each channel its session's."""

    mean: Tensor
    directions: Tensor
    residual_variance: Tensor
    blocks: Optional[list] = None

    def project(self, m: Tensor, offset: Tensor = None) -> Tensor:
        """Latents ``(m - offset) P`` ``(..., R)`` of ``m (..., D)`` (``offset (D,)`` defaults to the mean); with blocks,
        ``m (trials, T, D)`` and each trial through its own session's rows."""
        offset = self.mean if offset is None else offset
        if self.blocks is None:
            return (m - offset) @ self.directions
        latents = m.new_zeros(m.shape[:-1] + self.directions.shape[-1:])
        for trials, channels in self.blocks:
            latents[trials] = (m[trials][..., channels] - offset[channels]) @ self.directions[channels]
        return latents


def principal_subspace(m: Tensor, rank: int, steps: Optional[Tensor] = None, blocks: Optional[list] = None) -> PrincipalSubspace:
    """The :class:`PrincipalSubspace` of rank ``rank`` of ``m (trials, T, D)`` (by ``eigh`` of the covariance), over
    the steps where ``steps (trials, T)`` is True (None: all; e.g. the steps with an observation); with ``blocks``
    (``[(trials, channels), ...]``, sessions with disjoint channels), that of each block's trials and channels (a
    channel of no block keeps mean 0, no direction and the blocks' mean residual variance)."""
    if blocks is not None:
        return _session_subspaces(m, rank, steps, blocks)
    flat = m.reshape(-1, m.shape[-1]) if steps is None else m[steps]
    eigenvalues, eigenvectors = torch.linalg.eigh(torch.cov(flat.T))
    residual = eigenvalues[:-rank].clamp(min=1e-8).mean() if m.shape[-1] > rank else eigenvalues.min().clamp(min=1e-8)
    return PrincipalSubspace(flat.mean(0), eigenvectors[:, -rank:].flip(-1), residual)


def _session_subspaces(m: Tensor, rank: int, steps: Optional[Tensor], blocks: list) -> PrincipalSubspace:
    parts = [principal_subspace(m[trials][..., channels], rank, None if steps is None else steps[trials]) for trials, channels in blocks]
    mean, directions = m.new_zeros(m.shape[-1]), m.new_zeros(m.shape[-1], rank)
    residual = torch.stack([part.residual_variance for part in parts]).mean().expand(m.shape[-1]).clone()
    for (_, channels), part in zip(blocks, parts):
        mean[channels], residual[channels] = part.mean, part.residual_variance
        directions[channels, : part.directions.shape[-1]] = part.directions  # fewer channels than the rank: zero columns
    latents = PrincipalSubspace(mean, directions, residual, blocks).project(m)
    return PrincipalSubspace(mean, session_frames.matched_frames(directions, latents, steps, blocks), residual, blocks)


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
