"""Affine alignment of a fitted model's latent space to a reference latent space (e.g. a teacher's).

A latent-variable model is unchanged by an invertible affine change of its latent coordinates, so a
student's latents are comparable to a teacher's only after such a map. Given paired latents of the same
time points, the student's are regressed on the teacher's,

    x_student = x_teacher B + b + e,        B (R, R), b (R,), by least squares,

(the estimation noise is in the regressand, so B is not attenuated), and student points p map back as
``(p - b) B^{-1}``. Regressing the other way would shrink every mapped point towards the data mean by
var(x) / (var(x) + var(e)).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

__all__ = ["AffineAlignment", "affine_alignment", "fixed_points_in_reference"]


class AffineAlignment(NamedTuple):
    """``x_student ~= x_reference @ weight + offset``; ``weight`` ``(R, R)``, ``offset`` ``(R,)``."""

    weight: np.ndarray
    offset: np.ndarray

    def to_reference(self, points: Any) -> np.ndarray:
        """Student points ``(n, R)`` in reference coordinates: ``(p - offset) weight^{-1}``."""
        points = np.asarray(points, dtype=np.float64)
        return np.linalg.solve(self.weight.T, (points - self.offset).T).T


def affine_alignment(latents: Any, reference: Any) -> AffineAlignment:
    """Fit the map above from paired latents ``(..., R)`` (student) and ``(..., R)`` (reference)."""
    student = _float64_cpu(latents)
    student = student.reshape(-1, student.shape[-1])
    truth = _float64_cpu(reference).reshape(student.shape[0], -1)
    if truth.shape[-1] != student.shape[-1]:
        raise ValueError(f"latents have dimension {student.shape[-1]} but reference has {truth.shape[-1]}")
    if not (torch.isfinite(student).all() and torch.isfinite(truth).all()):
        raise ValueError("latents and reference must be finite")
    design = torch.cat([truth, torch.ones(len(truth), 1, dtype=truth.dtype)], 1)
    solution = torch.linalg.lstsq(design, student).solution.numpy()
    return AffineAlignment(solution[:-1], solution[-1])


def _float64_cpu(values: Any) -> torch.Tensor:
    """An array or a tensor (any dtype and device) as a float64 CPU tensor."""
    return torch.as_tensor(values).detach().cpu().double()


def fixed_points_in_reference(fitted: Any, y: Any, reference_latents: Any, reference_states: Any) -> dict:
    """Every fixed point of every state of a fitted switching low-rank model, in reference coordinates.

    ``fitted`` needs ``posterior_latents(y)``, ``most_likely_states(y)`` and ``fixed_points()`` (one
    :class:`~pyro_neurodyn.analysis.FixedPoints` per state), e.g. a ``SwitchingLowRankRNN``. The latents are
    aligned by :func:`affine_alignment` to ``reference_latents`` (trials, T, R), and the states are named by
    their Hungarian match to ``reference_states`` (trials, T). Returns ``{reference state: (points (n, R)
    sorted lexicographically, stable (n,))}``.
    """
    from ..metrics import match_states

    alignment = affine_alignment(fitted.posterior_latents(y), reference_latents)
    names = match_states(reference_states, fitted.most_likely_states(y))
    aligned = {}
    for k, result in enumerate(fitted.fixed_points()):
        points = alignment.to_reference(result.points)
        order = np.lexsort(points.T[::-1])
        aligned[names.get(k, k)] = (points[order], result.stable[order])
    return aligned
