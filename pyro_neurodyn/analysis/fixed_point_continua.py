"""Continua of fixed points: regions whose system is singular (step 4 of the algorithm in
:mod:`~pyro_neurodyn.analysis.fixed_points`), analysed one by one, and the test whether isolated points
lie on such a continuum."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

from .batched_solves import SINGULAR_RTOL
from .fixed_point_regions import _hyperplane_patterns
from .fixed_point_results import FixedPointSet
from .hyperplane_arrangement import Arrangement
from .piecewise_linear_map import RESIDUAL_RTOL, _Network, _region_system


# ---------------------------------------------------------------------------------------- continua
def _singular_region(candidate, arrangement: Arrangement, net: _Network, tol: float):
    """Fixed points of one region whose system was flagged singular.

    Returns None (none in the region), an ``(R,)`` point (the system is regular after all, at the
    precision of an SVD of the directly built system), or a :class:`FixedPointSet`.
    """
    vertex, through, local_signs = candidate
    signs = np.where(arrangement.normals @ vertex - arrangement.offsets > 0, 1.0, -1.0)
    signs[through] = local_signs
    pattern = _hyperplane_patterns(signs, arrangement, len(net.threshold))
    M, b = _region_system(pattern, net)
    left, singular_values, vt = np.linalg.svd(M)
    rank = int((singular_values > SINGULAR_RTOL * max(1.0, singular_values[0])).sum())
    particular = vt[:rank].T @ ((left[:, :rank].T @ b) / singular_values[:rank])
    size = max(1.0, np.abs(particular).max())
    if np.abs(M @ particular - b).max() > RESIDUAL_RTOL * max(1.0, np.abs(b).max(), np.abs(M).max() * size):
        return None  # inconsistent: no fixed point in this region
    directions = vt[rank:]  # (q, R)
    # max eps  s.t.  signs_k (w_k . (particular + directions^T t) - offset_k) >= eps,  eps <= 1
    distance = signs * (arrangement.normals @ particular - arrangement.offsets)
    if len(directions) == 0:
        return particular if distance.min(initial=np.inf) >= -tol * size else None
    slope = signs[:, None] * (arrangement.normals @ directions.T)
    q = len(directions)
    result = linprog(
        np.r_[np.zeros(q), -1.0],
        A_ub=np.hstack([-slope, np.ones((len(signs), 1))]),
        b_ub=distance,
        bounds=[(None, None)] * q + [(None, 1.0)],
        method="highs",
    )
    if result.status != 0:
        return None
    anchor = particular + directions.T @ result.x[:q]
    depth, size = -result.fun, max(1.0, np.abs(anchor).max())
    if depth < -tol * size:
        return None  # the subspace misses the closed region
    return FixedPointSet(anchor, directions, pattern, bool(depth > tol * size))


def _on_continuum(points: np.ndarray, continua: list, net: _Network, tol: float, merge_tol: float) -> np.ndarray:
    """Whether each point lies on one of the continua (in its subspace and in its closed region)."""
    found = np.zeros(len(points), dtype=bool)
    size = np.maximum(1.0, np.abs(points).max(axis=1, initial=0.0))
    for part in continua:
        offset = points - part.anchor
        off_subspace = np.abs(offset - (offset @ part.directions.T) @ part.directions).max(axis=1, initial=0.0)
        found |= (off_subspace <= merge_tol * size) & _in_closed_region(points, part.pattern, net, tol * size)
    return found


def _in_closed_region(points: np.ndarray, pattern: np.ndarray, net: _Network, slack: np.ndarray) -> np.ndarray:
    """Whether ``points (n, R)`` lie within distance ``slack (n,)`` of the closed region of ``pattern (N,)``."""
    clip = np.inf if net.clip is None else net.clip
    lower = np.choose(pattern, [-np.inf, 0.0, clip])
    upper = np.choose(pattern, [0.0, clip, np.inf])
    p = points @ net.U.T - net.threshold
    margin = slack[:, None] * np.linalg.norm(net.U, axis=1)
    return ((p >= lower - margin) & (p <= upper + margin)).all(axis=1)
