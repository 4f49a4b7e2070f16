"""All fixed points of a piecewise-linear low-rank RNN, exactly, in polynomial time.

The latent map of a rank-R network with N units is

    F(x) = a * x + V phi(U x - theta),  x in R^R,  a scalar or (R,),  V (R, N),  U (N, R),  theta (N,)

(theta the units' thresholds, the argument ``threshold``) with phi applied per unit to
``p_i = U_i . x - theta_i``:

* ``"relu"``:          ``phi(p) = max(p, 0)``                                  breakpoints {0}
* ``"clipped_relu"``:  ``phi(p) = min(max(p, 0), c) = relu(p) - relu(p - c)``, ``c > 0`` (``clip``,
  scalar or (N,))                                                          breakpoints {0, c}

  Pals et al.'s clipped ReLU ``relu(U_i x + b_i) - relu(U_i x)`` is this with ``theta_i = -b_i, c_i = b_i``
  when ``b_i > 0``; when ``b_i < 0`` it is ``-phi(U_i x)`` with ``c_i = -b_i, theta_i = 0`` (negate column i of V).

Regions. Each breakpoint of each unit is a hyperplane ``{x : U_i . x = theta_i + beta}`` in R^R. Inside a cell
of this arrangement (a *region*) every unit sits on one linear piece ``phi(p) = s_i p + o_i`` (its
*activation pattern*: 0 below, 1 linear, 2 clipped, with ``(s, o) = (0, 0), (1, 0), (0, c)``), so F is
affine there and its fixed points solve

    M x = b,   M = diag(1 - a) - V S U,   b = V (o - S theta),   S = diag(s).

A solution is a fixed point of F iff it lies in the region's closure. Crossing a hyperplane changes one
unit's piece, i.e. adds the rank-one term ``-ds V_i U_i^T`` to M and ``V_i (do - ds theta_i)`` to b.

Algorithm (exact and complete).
1. Enumerate the regions through the vertices of the arrangement
   (:mod:`~pyro_neurodyn.analysis.hyperplane_arrangement`): every region of the (essential part of the)
   arrangement has a vertex and is one of the local regions there; degenerate arrangements (parallel or
   duplicated units, the two parallel breakpoints of a clipped unit, more than R hyperplanes through a
   point, units with U_i = 0, rank(U) < R) are handled there. Each candidate (vertex, local region)
   comes with its (M, b) and a random 64-bit hash of its sign vector, all carried as *payloads*.
2. Solve every candidate's system (batched, no loop over regions) and test the solution against the
   hyperplanes through the candidate's vertex, with the candidate's signs.
3. A region is accepted iff all its candidates pass (regions are identified by hash): as every facet of
   a region passes through one of its vertices, this is exactly "the solution lies in the closed region".
4. Regions whose system is singular are analysed one by one: if the system is consistent, its solution
   set is an affine subspace, and where that meets the closed region (a linear program) the region holds
   a continuum of fixed points, reported in ``continua`` (never dropped).
5. Accepted points are merged (a point on a boundary is found by every region around it), checked
   against F itself, and classified by their Jacobian ``a I + V D U`` (D the slopes of their pattern).

Complexity. Let m be the number of hyperplanes (N, or 2N for the clipped ReLU). The naive method builds
each region's R x R system from scratch: O(N R^2) work for each of O(m^R) regions, O(N^3) for R = 2
(plus O(N) to compare each solution's pattern). Here no system is built from scratch: along each line
spanned by R - 1 hyperplanes the vertices are sorted and consecutive vertices differ by rank-one updates,
so one cumulative sum over the sorted crossings gives (M, b) at all vertices of the line; the 2^R
regions around a vertex are visited in Gray-code order, one rank-one update each; a solution is tested
only against the R hyperplanes through its vertex. There are C(m, R-1) lines of m crossings: O(m^R
(log m + R^2)) time in total, plus ``2^R C(m, R)`` batched R x R solves (``num_solves``; closed form
for R <= 2, vectorized elimination otherwise), and sorting their 64-bit region keys: no O(N) work per
region. For R = 2 this is O(N^2 log N) instead of O(N^3); measured (benchmarks/bench_fixed_points.py)
the time grows as N^1.9, e.g. 0.5-1 s for N = 1000 on one contended core.

Regions are named by a random 64-bit linear hash of their sign vector (sum of one random word per
hyperplane modulo 2^64, its lowest bit replaced by the pass/fail flag). Two regions collide with
probability 2^-63 per pair, below 1e-6 for the 4e6 regions of N = 100, R = 4: a collision could hide
one region's fixed point or miscount the regions by one. Reported points are verified against F.

Tolerance policy (``tol``, default 1e-9, relative). A solution belongs to a closed region if its signed
distance to each of the region's hyperplanes is >= ``-tol * max(1, |x|_inf, |offset|)``: a fixed point
exactly on a boundary (or at a vertex) is therefore accepted by every region around it, never lost, and
the copies are merged into one point if closer than ``merge_tol * max(1, |x|_inf)``, never duplicated.
Such points have ``on_boundary = True``; their Jacobian uses the pattern with strict inequalities
(``p = 0`` counts as below, ``p = c`` as linear) and, as F is not differentiable there, ``stable`` is
only that one-sided Jacobian's verdict. A region system is singular if
``|det M| <= 1e-10 * prod_r (|1 - a_r| + sum_i |V_ri| |U_i|)``. Every reported point satisfies
``|F(x) - x|_inf <= 1e-7 * scale`` (``residuals``); candidates that pass the region test but fail this
check (only possible for inputs degenerate up to rounding) are reported by a warning.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..data.validation import check_count, check_positive
from .batched_solves import SINGULAR_RTOL  # noqa: F401  (public constant of this module before the split)
from .fixed_point_continua import _on_continuum, _singular_region
from .fixed_point_regions import _Accumulator, _hyperplanes
from .fixed_point_results import FixedPoints, FixedPointSet
from .hyperplane_arrangement import Arrangement, cluster_labels
from .piecewise_linear_map import (
    ACTIVATIONS,  # noqa: F401  (public constant of this module before the split)
    RESIDUAL_RTOL,
    _as_array,
    _breakpoints,
    _jacobians,
    _latent,
    _Network,
    _patterns,
    _validate,
    latent_map,
)

__all__ = ["FixedPointSet", "FixedPoints", "fixed_points", "latent_map", "latent_map_fixed_points"]


# ---------------------------------------------------------------------------------------- the finder
def fixed_points(
    a: Any,
    V: Any,
    U: Any,
    threshold: Any,
    activation: str = "relu",
    *,
    clip: Any = 1.0,
    tol: float = 1e-9,
    merge_tol: float = 1e-8,
    chunk_size: int = 1 << 16,
) -> FixedPoints:
    """All fixed points of ``x -> a x + V phi(U x - theta)``, exactly (see the module docstring).

    Args:
        a: decay, scalar or ``(R,)``.
        V: ``(R, N)`` output (left) weights.
        U: ``(N, R)`` input (right) weights: unit i's pre-activation is ``U_i . x - theta_i``.
        threshold: ``(N,)`` thresholds theta.
        activation: ``"relu"`` or ``"clipped_relu"`` (``phi(p) = min(max(p, 0), clip)``).
        clip: clipping level c > 0 of the clipped ReLU, scalar or ``(N,)`` (ignored for the ReLU).
        tol: relative tolerance of the region membership test (see the tolerance policy).
        merge_tol: solutions closer than ``merge_tol * max(1, |x|_inf)`` are one fixed point.
        chunk_size: (line, crossing) pairs swept per batch; memory grows with it, speed little.

    Numpy arrays, torch tensors or nested lists are accepted; results are float64 numpy arrays.

    Returns:
        :class:`FixedPoints`.
    """
    net = _validate(a, V, U, threshold, activation, clip)
    tol, merge_tol = check_positive(tol, "tol"), check_positive(merge_tol, "merge_tol")
    chunk_size = check_count(chunk_size, "chunk_size")
    R = net.a.shape[0]
    normals, offsets, payload, hashes = _hyperplanes(net)
    arrangement = Arrangement(normals, offsets)
    row_scale = np.abs(1.0 - net.a) + np.abs(net.V) @ np.linalg.norm(net.U, axis=1)
    det_scale = float(np.prod(np.maximum(row_scale, 1e-300)))
    base = np.concatenate([np.diag(1.0 - net.a).reshape(-1), np.zeros(R)])
    accumulator = _Accumulator()
    for block in arrangement.candidates([payload, hashes], [base, np.zeros(1, dtype=np.uint64)], chunk_size):
        accumulator.add(block, arrangement, net, tol, det_scale)
    solutions, num_regions = accumulator.regions()
    singular = [_singular_region(c, arrangement, net, tol) for c in accumulator.singular.values()]
    continua = [part for part in singular if isinstance(part, FixedPointSet)]
    regular_after_all = [part[None] for part in singular if isinstance(part, np.ndarray)]
    points = _verified(np.concatenate([solutions] + regular_after_all), net, merge_tol)
    return _classified(points, continua, net, tol, merge_tol)._replace(
        num_regions=int(num_regions), num_solves=int(accumulator.num_solves)
    )


def latent_map_fixed_points(latent: Any, **options: Any) -> FixedPoints:
    """All fixed points of a low-rank RNN's latent map ``latent`` = ``(a, V, U, threshold, activation)``
    (:class:`~pyro_neurodyn.dynamics.lowrank.LatentMap`, the parameterization of the models); ``options``
    go to :func:`fixed_points` (``tol``, ``merge_tol``, ``chunk_size``).

    The models' ReLU ``relu(U x - theta)`` (theta their ``threshold``) is :func:`fixed_points`' ReLU. Their
    clipped ReLU ``relu(U_i x + theta_i) - relu(U_i x)`` is ``min(max(U_i x + theta_i, 0), theta_i)`` for
    ``theta_i > 0`` (finder threshold ``-theta_i``, clip ``theta_i``), ``-min(max(U_i x, 0), -theta_i)`` for
    ``theta_i < 0`` (finder threshold 0, clip ``-theta_i``, column i of V negated) and zero for ``theta_i = 0``
    (column i of V zeroed). ``identity`` and ``tanh``
    activations have no piecewise-linear arrangement and raise ``ValueError``.
    """
    a, V, U, threshold, activation = latent
    if activation == "relu":
        return fixed_points(a, V, U, threshold, "relu", **options)
    if activation != "clipped_relu":
        raise ValueError(f"fixed points are exact for activation 'relu' or 'clipped_relu' only, got {activation!r}")
    threshold = _as_array(threshold, "threshold")
    V = _as_array(V, "V").copy()
    V[:, threshold < 0] *= -1.0
    V[:, threshold == 0] = 0.0
    finder_threshold = np.where(threshold > 0, -threshold, 0.0)
    clip = np.where(threshold != 0, np.abs(threshold), 1.0)
    return fixed_points(a, V, U, finder_threshold, "clipped_relu", clip=clip, **options)


def _classified(points: np.ndarray, continua: list, net: _Network, tol: float, merge_tol: float) -> FixedPoints:
    """Patterns, Jacobians, stability and boundary flags of the fixed points (region counts left at 0)."""
    p = points @ net.U.T - net.threshold
    patterns = _patterns(p, net)
    jacobians = _jacobians(patterns, net)
    radius = np.abs(np.linalg.eigvals(jacobians)).max(axis=-1) if len(points) else np.zeros(0)
    size = np.maximum(1.0, np.abs(points).max(axis=1, initial=0.0))
    norm = np.linalg.norm(net.U, axis=1)  # units with U_i = 0 have no boundary
    distance = np.abs(p[..., None] - _breakpoints(net).T[None]).min(axis=-1) / np.where(norm > 0, norm, np.inf)
    return FixedPoints(
        points=points,
        stable=radius < 1.0,
        jacobians=jacobians,
        spectral_radius=radius,
        patterns=patterns,
        residuals=np.abs(_latent(points, net) - points).max(axis=1, initial=0.0),
        on_boundary=(distance <= tol * size[:, None]).any(axis=1),
        on_continuum=_on_continuum(points, continua, net, tol, merge_tol),
        continua=tuple(continua),
        num_regions=0,
        num_solves=0,
    )


def _verified(solutions: np.ndarray, net: _Network, merge_tol: float) -> np.ndarray:
    """Merge duplicate solutions, keep those that are fixed points of F itself, sort them."""
    R = net.a.shape[0]
    residual = np.abs(_latent(solutions, net) - solutions).max(axis=1, initial=0.0)
    labels = cluster_labels(solutions, merge_tol * max(1.0, np.abs(solutions).max(initial=0.0)))
    best = np.lexsort((residual, labels))
    representative = best[np.concatenate([[True], labels[best][1:] != labels[best][:-1]])] if len(best) else best
    points, residual = solutions[representative].reshape(-1, R), residual[representative]
    scale = max(1.0, np.abs(points).max(initial=0.0)) * (
        np.abs(net.a).max() + (np.abs(net.V) @ np.linalg.norm(net.U, axis=1)).max()
    ) + (np.abs(net.V) @ (np.abs(net.threshold) + (0.0 if net.clip is None else net.clip))).max()
    bad = residual > RESIDUAL_RTOL * scale
    if bad.any():
        warnings.warn(
            f"{int(bad.sum())} region solution(s) passed the region test but are not fixed points of the map "
            f"(residual up to {residual[bad].max():.3g}): the arrangement is degenerate up to rounding; "
            "they are left out",
            RuntimeWarning,
        )
    points = points[~bad]
    return points[np.lexsort(points.T[::-1])] if len(points) else points.reshape(0, R)
