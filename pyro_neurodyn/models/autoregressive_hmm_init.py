"""Initial state labels for fitting an :class:`~pyro_neurodyn.models.AutoregressiveHMM`: k-means on
position, velocity and rotation features (the latter from principal component scores), and random
sticky segmentations."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from scipy.cluster.vq import kmeans2, vq
from torch import Tensor

__all__ = ["principal_component_scores"]


def principal_component_scores(y: Tensor, num_components: int) -> Tensor:
    """``(..., T, min(num_components, D))``: ``y (..., T, D)`` centred and projected on its top principal
    directions, all leading dims pooled."""
    flat = y.reshape(-1, y.shape[-1])
    centered = flat - flat.mean(0)
    _, _, vh = torch.linalg.svd(centered, full_matrices=False)
    return (centered @ vh[:num_components].T).reshape(*y.shape[:-1], -1)


def _rotation_features(y: Tensor, max_dim: int = 10) -> Tensor:
    """``(trials, T-1, Q(Q-1)/2)``: upper triangle of ``u_t u_{t-1}^T - u_{t-1} u_t^T``, ``u`` the top
    ``Q = min(D, max_dim)`` principal components of y.

    For ``u_t = A u_{t-1} + noise`` its mean is the antisymmetric part of ``A E[u u^T]``: the signed area
    swept per step, which tells rotation directions and speeds apart where positions do not.
    """
    u = principal_component_scores(y, max_dim) if y.shape[-1] > max_dim else y - y.reshape(-1, y.shape[-1]).mean(0)
    outer = u[:, 1:].unsqueeze(-1) * u[:, :-1].unsqueeze(-2)
    rows, cols = torch.triu_indices(u.shape[-1], u.shape[-1], 1, device=u.device)
    return (outer - outer.transpose(-1, -2))[..., rows, cols]


def _kmeans_labels(
    y: Tensor, num_states: int, generator: np.random.Generator, dynamics_features: bool = True, rows: Optional[Tensor] = None
) -> Tensor:
    """k-means labels ``(trials, T)`` on standardized ``[y_t, y_t - y_{t-1}, rotation features]``
    (:func:`_rotation_features`), or on ``y_t`` alone; step 0 takes step 1's label. On ``y``'s device.
    ``rows (trials, T-1)`` bool: cluster those steps only (e.g. the complete ones), label the rest by the
    nearest centre."""
    device, y = y.device, y.double().cpu()
    parts = [y[:, 1:], y[:, 1:] - y[:, :-1], _rotation_features(y)] if dynamics_features else [y[:, 1:]]
    features = torch.cat(parts, -1).flatten(0, 1)
    chosen = features if rows is None else features[rows.cpu().flatten()]
    std = chosen.std(0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    features, chosen = (features - chosen.mean(0)) / std, (chosen - chosen.mean(0)) / std
    centres, labels = kmeans2(chosen.numpy(), num_states, minit="++", seed=generator)
    if rows is not None:
        labels, _ = vq(features.numpy(), centres)
    labels = torch.as_tensor(labels, dtype=torch.long).reshape(y.shape[0], y.shape[1] - 1)
    return torch.cat([labels[:, :1], labels], 1).to(device)


def _random_segmentation(shape: torch.Size, num_states: int, generator: np.random.Generator) -> Tensor:
    """Random sticky labels ``(trials, T)``: segments of geometric length, mean ~T/10, uniform states."""
    num_trials, num_steps = shape
    switch = generator.random((num_trials, num_steps)) < min(1.0, 10.0 / num_steps)
    switch[:, 0] = True
    segment = np.cumsum(switch, axis=1)
    labels = generator.integers(num_states, size=(num_trials, num_steps + 1))
    return torch.as_tensor(np.take_along_axis(labels, segment, axis=1), dtype=torch.long)
