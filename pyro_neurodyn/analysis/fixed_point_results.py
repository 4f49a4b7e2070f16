"""The result types of the fixed-point finder: :class:`FixedPoints` (isolated points with their Jacobians
and stability) and :class:`FixedPointSet` (a continuum of fixed points). The maths is in
:mod:`~pyro_neurodyn.analysis.fixed_points`."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["FixedPointSet", "FixedPoints"]


class FixedPointSet(NamedTuple):
    """A continuum of fixed points: the part of an affine subspace that lies in one closed region.

    The set is ``{anchor + directions.T @ t : t in R^q} intersected with the closure of the region whose
    activation pattern is ``pattern`` (a polyhedron: a segment, a ray, a polygon, ...), one entry per
    region whose linear system is singular and consistent there.

    Attributes:
        anchor: ``(R,)`` a fixed point in the set (as deep inside the region as the set allows).
        directions: ``(q, R)`` orthonormal rows spanning the subspace (q >= 1).
        pattern: ``(N,)`` int8 activation pattern of the region (0 below, 1 linear, 2 clipped).
        touches_interior: whether the set meets the open region (False: it lies on the region's boundary).
    """

    anchor: np.ndarray
    directions: np.ndarray
    pattern: np.ndarray
    touches_interior: bool


class FixedPoints(NamedTuple):
    """All fixed points of ``x -> a x + V phi(U x - theta)`` (theta the thresholds; see the module docstring for the maths).

    Attributes:
        points: ``(n, R)`` every fixed point that is the unique solution of its region's system (sorted
            lexicographically); together with ``continua`` these are all fixed points.
        stable: ``(n,)`` bool, all eigenvalues of the Jacobian strictly inside the unit circle.
        jacobians: ``(n, R, R)`` ``a I + V diag(phi'(U x - theta)) U``.
        spectral_radius: ``(n,)`` largest eigenvalue modulus of each Jacobian.
        patterns: ``(n, N)`` int8 activation pattern of each point (0 below, 1 linear, 2 clipped).
        residuals: ``(n,)`` ``|F(x) - x|_inf``.
        on_boundary: ``(n,)`` bool, the point lies (within ``tol``) on a breakpoint hyperplane.
        on_continuum: ``(n,)`` bool, the point also belongs to one of ``continua`` (e.g. its end point).
        continua: tuple of :class:`FixedPointSet`: lines, planes, ... of fixed points.
        num_regions: number of regions (cells) of the arrangement.
        num_solves: number of R x R systems solved (candidate regions, counted once per vertex).
    """

    points: np.ndarray
    stable: np.ndarray
    jacobians: np.ndarray
    spectral_radius: np.ndarray
    patterns: np.ndarray
    residuals: np.ndarray
    on_boundary: np.ndarray
    on_continuum: np.ndarray
    continua: tuple
    num_regions: int
    num_solves: int
