"""All fixed points of a piecewise-linear low-rank RNN, exactly, in polynomial time (DESIGN.md 1.2).

The latent map of a rank-R network with N units is

    F(z) = a * z + V phi(U z - h),      z in R^R,  a scalar or (R,),  V (R, N),  U (N, R),  h (N,)

with phi applied per unit to ``x_i = U_i . z - h_i``:

* ``"relu"``:          ``phi(x) = max(x, 0)``                                  breakpoints {0}
* ``"clipped_relu"``:  ``phi(x) = min(max(x, 0), c) = relu(x) - relu(x - c)``, ``c > 0`` (``clip``,
  scalar or (N,))                                                          breakpoints {0, c}

  Pals et al.'s clipped ReLU ``relu(U_i z + b_i) - relu(U_i z)`` is this with ``h_i = -b_i, c_i = b_i``
  when ``b_i > 0``; when ``b_i < 0`` it is ``-phi(U_i z)`` with ``c_i = -b_i, h_i = 0`` (negate column i of V).

Regions. Each breakpoint of each unit is a hyperplane ``{z : U_i . z = h_i + beta}`` in R^R. Inside a cell
of this arrangement (a *region*) every unit sits on one linear piece ``phi(x) = s_i x + o_i`` (its
*activation pattern*: 0 below, 1 linear, 2 clipped, with ``(s, o) = (0, 0), (1, 0), (0, c)``), so F is
affine there and its fixed points solve

    M z = b,   M = diag(1 - a) - V S U,   b = V (o - S h),   S = diag(s).

A solution is a fixed point of F iff it lies in the region's closure. Crossing a hyperplane changes one
unit's piece, i.e. adds the rank-one term ``-ds V_i U_i^T`` to M and ``V_i (do - ds h_i)`` to b.

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
distance to each of the region's hyperplanes is >= ``-tol * max(1, |z|_inf, |offset|)``: a fixed point
exactly on a boundary (or at a vertex) is therefore accepted by every region around it, never lost, and
the copies are merged into one point if closer than ``merge_tol * max(1, |z|_inf)``, never duplicated.
Such points have ``on_boundary = True``; their Jacobian uses the pattern with strict inequalities
(``x = 0`` counts as below, ``x = c`` as linear) and, as F is not differentiable there, ``stable`` is
only that one-sided Jacobian's verdict. A region system is singular if
``|det M| <= 1e-10 * prod_r (|1 - a_r| + sum_i |V_ri| |U_i|)``. Every reported point satisfies
``|F(z) - z|_inf <= 1e-7 * scale`` (``residuals``); candidates that pass the region test but fail this
check (only possible for inputs degenerate up to rounding) are reported by a warning.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np
from scipy.optimize import linprog

from ..data.validation import _check_finite, _to_numeric_tensor, check_count, check_positive
from .hyperplane_arrangement import Arrangement, cluster_labels

__all__ = ["FixedPoints", "FixedPointSet", "fixed_points", "latent_map", "latent_map_fixed_points"]

ACTIVATIONS = ("relu", "clipped_relu")
SINGULAR_RTOL = 1e-10
RESIDUAL_RTOL = 1e-7
_HASH_SEED = 20241209
_ELIMINATION_BATCH = 8192


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
    """All fixed points of ``z -> a z + V phi(U z - h)`` (see the module docstring for the maths).

    Attributes:
        points: ``(n, R)`` every fixed point that is the unique solution of its region's system (sorted
            lexicographically); together with ``continua`` these are all fixed points.
        stable: ``(n,)`` bool, all eigenvalues of the Jacobian strictly inside the unit circle.
        jacobians: ``(n, R, R)`` ``a I + V diag(phi'(U z - h)) U``.
        spectral_radius: ``(n,)`` largest eigenvalue modulus of each Jacobian.
        patterns: ``(n, N)`` int8 activation pattern of each point (0 below, 1 linear, 2 clipped).
        residuals: ``(n,)`` ``|F(z) - z|_inf``.
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


class _Network(NamedTuple):
    """Validated float64 parameters; ``clip`` is None for the ReLU."""

    a: np.ndarray  # (R,)
    V: np.ndarray  # (R, N)
    U: np.ndarray  # (N, R)
    h: np.ndarray  # (N,)
    clip: Any  # (N,) or None


# ---------------------------------------------------------------------------------------- validation
def _as_array(value: Any, name: str) -> np.ndarray:
    tensor = _to_numeric_tensor(value, name).cpu().double()  # any device and dtype -> float64 numpy
    _check_finite(tensor, name)
    return tensor.numpy()


def _validate(a, V, U, h, activation, clip) -> _Network:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    V, U, h = _as_array(V, "V"), _as_array(U, "U"), _as_array(h, "h")
    if U.ndim != 2 or U.shape[0] == 0 or U.shape[1] == 0:
        raise ValueError(f"U must be a non-empty 2-D array (N, R), got shape {U.shape}")
    N, R = U.shape
    if V.shape != (R, N):
        raise ValueError(f"V must have shape (R, N) = {(R, N)} to match U {U.shape}, got {V.shape}")
    if h.shape != (N,):
        raise ValueError(f"h must have shape (N,) = {(N,)} to match U {U.shape}, got {h.shape}")
    a = _as_array(a, "a")
    if a.ndim == 0:
        a = np.full(R, float(a))
    if a.shape != (R,):
        raise ValueError(f"a must be a scalar or have shape (R,) = {(R,)}, got {a.shape}")
    if activation == "relu":
        return _Network(a, V, U, h, None)
    clip = _as_array(clip, "clip")
    clip = np.full(N, float(clip)) if clip.ndim == 0 else clip
    if clip.shape != (N,):
        raise ValueError(f"clip must be a scalar or have shape (N,) = {(N,)}, got {clip.shape}")
    if not (clip > 0).all():
        raise ValueError(f"clip must be > 0, got min {clip.min()}")
    return _Network(a, V, U, h, clip)


# ---------------------------------------------------------------------------------------- the map
def _breakpoints(net: _Network) -> np.ndarray:
    """``(B, N)`` breakpoints of phi per unit: [0] for the ReLU, [0, c] for the clipped ReLU."""
    zeros = np.zeros((1, len(net.h)))
    return zeros if net.clip is None else np.concatenate([zeros, net.clip[None]])


def _phi(x: np.ndarray, net: _Network) -> np.ndarray:
    relu = np.maximum(x, 0.0)
    return relu if net.clip is None else np.minimum(relu, net.clip)


def latent_map(z: Any, a: Any, V: Any, U: Any, h: Any, activation: str = "relu", *, clip: Any = 1.0) -> np.ndarray:
    """``F(z) = a z + V phi(U z - h)`` for ``z (..., R)`` (numpy float64; the map whose fixed points are found)."""
    net = _validate(a, V, U, h, activation, clip)
    z = _as_array(z, "z")
    return net.a * z + _phi(z @ net.U.T - net.h, net) @ net.V.T


def _patterns(x: np.ndarray, net: _Network) -> np.ndarray:
    """Activation pattern (0 below, 1 linear, 2 clipped) of pre-activations ``x (..., N)``, strict inequalities."""
    return sum((x > b).astype(np.int8) for b in _breakpoints(net))


def _slopes(patterns: np.ndarray) -> np.ndarray:
    return (patterns == 1).astype(np.float64)


def _region_system(patterns: np.ndarray, net: _Network) -> tuple[np.ndarray, np.ndarray]:
    """``M (..., R, R)`` and ``b (..., R)`` of the regions with activation ``patterns (..., N)``."""
    slope = _slopes(patterns)
    offset = np.where(patterns == 2, net.clip if net.clip is not None else 0.0, 0.0)
    M = np.diag(1.0 - net.a) - np.einsum("rn,...n,ns->...rs", net.V, slope, net.U)
    return M, (offset - slope * net.h) @ net.V.T


def _jacobians(patterns: np.ndarray, net: _Network) -> np.ndarray:
    return np.diag(net.a) + np.einsum("rn,...n,ns->...rs", net.V, _slopes(patterns), net.U)


# ---------------------------------------------------------------------------------------- hyperplanes
def _hyperplanes(net: _Network) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Breakpoint hyperplanes ``U_i . z = h_i + beta`` and their payloads.

    Returns normals ``(m, R)``, offsets ``(m,)``, and the payloads of crossing each one upwards:
    ``(m, R*R + R)`` = (-ds V_i U_i^T, V_i (do - ds h_i)) flattened, and ``(m, 1)`` uint64 random hashes.
    """
    R, N = net.V.shape
    breakpoints = _breakpoints(net)
    # Change of (slope, intercept) when x crosses the breakpoint upwards: (+1, 0) at 0, (-1, +c) at c.
    ds = np.array([1.0, -1.0])[: len(breakpoints), None] * np.ones(N)
    do = np.zeros_like(ds) if net.clip is None else np.stack([np.zeros(N), net.clip])
    outer = np.einsum("rn,ns->nrs", net.V, net.U).reshape(N, R * R)
    matrix = -(ds[..., None] * outer)  # (B, N, R*R)
    vector = (do - ds * net.h)[..., None] * net.V.T  # (B, N, R)
    normals = np.tile(net.U, (len(breakpoints), 1))
    offsets = (net.h + breakpoints).reshape(-1)
    payload = np.concatenate([matrix, vector], axis=-1).reshape(-1, R * R + R)
    hashes = np.random.default_rng(_HASH_SEED).integers(0, 2**64, size=(len(offsets), 1), dtype=np.uint64)
    return normals, offsets, payload, hashes


def _hyperplane_patterns(signs: np.ndarray, arrangement: Arrangement, N: int) -> np.ndarray:
    """Activation patterns ``(..., N)`` from signs ``(..., m')`` of the arrangement's distinct hyperplanes."""
    group, orientation = arrangement.group, arrangement.orientation
    own = np.where(group >= 0, signs[..., np.maximum(group, 0)] * orientation, orientation)  # (..., m)
    return (own > 0).reshape(signs.shape[:-1] + (-1, N)).sum(axis=-2).astype(np.int8)


# ---------------------------------------------------------------------------------------- batched solves
def _gaussian_elimination(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``det M`` and the solution ``z (R, K)`` of ``M z = b`` for augmented matrices ``A = [M | b]``
    of shape ``(R, R + 1, K)`` (overwritten), without pivoting.

    Vectorized over the batch (the last, contiguous axis): for R = 4 about 10 times faster than
    ``np.linalg.solve``'s per-matrix LAPACK calls or than vectorized partial pivoting. Without pivoting
    a small pivot can spoil the result: callers check the residual and redo those systems with LAPACK.
    """
    R = A.shape[0]
    det, z = np.ones(A.shape[-1]), np.empty((R, A.shape[-1]))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for k in range(R):
            det *= A[k, k]
            A[k + 1 :, k:] -= (A[k + 1 :, k] / A[k, k])[:, None] * A[k, k:][None]
        for k in reversed(range(R)):
            z[k] = (A[k, R] - (A[k, k + 1 : R] * z[k + 1 :]).sum(axis=0)) / A[k, k]
    return det, z


def _solve_batched(payload: np.ndarray, R: int) -> tuple[np.ndarray, np.ndarray]:
    """``det M`` ``(K,)`` and ``z (R, K)`` for systems packed as ``payload (R*R + R, K)`` = (M, b):
    elimination without pivoting in cache-sized batches, then LAPACK (partial pivoting) for the systems
    whose backward error ``|M z - b|`` is not at rounding level."""
    K = payload.shape[1]
    det, z, redo = np.empty(K), np.empty((R, K)), np.empty(K, dtype=bool)
    for start in range(0, K, _ELIMINATION_BATCH):
        batch = slice(start, start + _ELIMINATION_BATCH)
        M, b = payload[: R * R, batch].reshape(R, R, -1), payload[R * R :, batch]
        det[batch], solution = _gaussian_elimination(np.concatenate([M, b[:, None]], axis=1))
        z[:, batch] = solution
        residual = np.maximum.reduce([np.abs(sum(M[i, j] * solution[j] for j in range(R)) - b[i]) for i in range(R)])
        size = np.maximum.reduce(np.abs(M).reshape(R * R, -1)) * np.maximum.reduce(np.abs(solution))
        redo[batch] = ~(residual <= 1e-13 * R * (size + np.maximum.reduce(np.abs(b))))  # also NaN after a zero pivot
    if redo.any():
        M, b = payload[: R * R, redo].T.reshape(-1, R, R), payload[R * R :, redo].T
        det[redo] = np.linalg.det(M)
        regular = det[redo] != 0
        z[:, np.flatnonzero(redo)[regular]] = np.linalg.solve(M[regular], b[regular][..., None])[..., 0].T
    return det, z


def _solve(payload: np.ndarray, R: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Solve the systems ``M z = b`` packed as ``payload (R*R + R, ...)`` = (M row-major, b).

    Returns ``z (R, ...)`` and the mask of singular systems (``|det M| <= SINGULAR_RTOL * scale``).
    """
    M, b = payload[: R * R], payload[R * R :]
    if R == 1:
        det, solution = M[0], b
    elif R == 2:
        det = M[0] * M[3] - M[1] * M[2]
        solution = np.stack([b[0] * M[3] - b[1] * M[1], M[0] * b[1] - M[2] * b[0]])  # adjugate(M) b = det(M) z
    else:
        det, z = _solve_batched(payload.reshape(R * R + R, -1), R)
        return z.reshape(b.shape), np.abs(det.reshape(b.shape[1:])) <= SINGULAR_RTOL * scale
    singular = np.abs(det) <= SINGULAR_RTOL * scale
    return solution / np.where(singular, 1.0, det), singular


class _Accumulator:
    """Region bookkeeping across candidate blocks.

    Each candidate gets the key ``(hash with its lowest bit cleared) | failed``: after sorting the keys of
    all candidates, a region is accepted iff its even key appears and its odd key does not. Only the
    passing candidates' solutions are kept.
    """

    def __init__(self):
        self.keys, self.passing_key, self.passing_z = [], [], []
        self.singular = {}  # hash -> (vertex, through, signs) of one candidate
        self.num_solves = 0

    def add(self, block, arrangement: Arrangement, net: _Network, tol: float, scale: float) -> None:
        """Solve and test the candidates of one block, local cell by local cell (vectorized over vertices)."""
        R = net.a.shape[0]
        normals = np.ascontiguousarray(arrangement.normals[block.constraint_index].transpose(1, 2, 0))  # (w, R, n)
        offsets = np.ascontiguousarray(arrangement.offsets[block.constraint_index].T)  # (w, n)
        offset_size = np.maximum(np.abs(offsets), 1.0)
        keys = []
        for cell, (float_payload, hashes) in block.cell_payloads():
            signs = block.constraint_sign[cell]
            z, singular = _solve(float_payload, R, scale)  # (R, n), (n,)
            passed = ~singular
            size = np.maximum.reduce([np.abs(component) for component in z])  # (n,)
            for j, sign in enumerate(signs):
                distance = sum(z[r] * normals[j, r] for r in range(R)) - offsets[j]
                passed &= sign * distance >= -tol * np.maximum(size, offset_size[j])
            key = (hashes[0] & ~np.uint64(1)) | (~passed).astype(np.uint64)
            keys.append(key)
            self.passing_key.append(key[passed])
            self.passing_z.append(z[:, passed].T)
            singular_vertices = np.flatnonzero(singular)
            for vertex in singular_vertices[np.unique(key[singular_vertices], return_index=True)[1]]:
                self.singular.setdefault(key[vertex], (block.vertex[vertex], block.constraint_index[vertex], signs))
        keys = np.concatenate(keys)
        self.num_solves += keys.size
        self.keys.append(_sorted_unique(keys))

    def regions(self) -> tuple[np.ndarray, int]:
        """Solutions ``(k, R)`` of the accepted regions (all candidates passed) and the number of regions."""
        keys = _sorted_unique(np.concatenate(self.keys))
        has_failed_twin = np.zeros(len(keys), dtype=bool)
        has_failed_twin[:-1] = keys[1:] == keys[:-1] + np.uint64(1)  # even key followed by its odd twin
        accepted = keys[(keys & np.uint64(1) == 0) & ~has_failed_twin]
        passing_key = np.concatenate(self.passing_key)
        position = np.searchsorted(accepted, passing_key).clip(max=max(len(accepted) - 1, 0))
        chosen = accepted[position] == passing_key if len(accepted) else np.zeros(len(passing_key), dtype=bool)
        _, first = np.unique(passing_key[chosen], return_index=True)
        return np.concatenate(self.passing_z)[chosen][first], len(keys) - int(has_failed_twin.sum())


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    values = np.sort(values)
    return values[np.concatenate([[True], values[1:] != values[:-1]])] if values.size else values


# ---------------------------------------------------------------------------------------- continua
def _singular_region(candidate, arrangement: Arrangement, net: _Network, tol: float):
    """Fixed points of one region whose system was flagged singular.

    Returns None (none in the region), an ``(R,)`` point (the system is regular after all, at the
    precision of an SVD of the directly built system), or a :class:`FixedPointSet`.
    """
    vertex, through, local_signs = candidate
    signs = np.where(arrangement.normals @ vertex - arrangement.offsets > 0, 1.0, -1.0)
    signs[through] = local_signs
    pattern = _hyperplane_patterns(signs, arrangement, len(net.h))
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
    x = points @ net.U.T - net.h
    margin = slack[:, None] * np.linalg.norm(net.U, axis=1)
    return ((x >= lower - margin) & (x <= upper + margin)).all(axis=1)


# ---------------------------------------------------------------------------------------- the finder
def fixed_points(
    a: Any,
    V: Any,
    U: Any,
    h: Any,
    activation: str = "relu",
    *,
    clip: Any = 1.0,
    tol: float = 1e-9,
    merge_tol: float = 1e-8,
    chunk_size: int = 1 << 16,
) -> FixedPoints:
    """All fixed points of ``z -> a z + V phi(U z - h)``, exactly (see the module docstring).

    Args:
        a: decay, scalar or ``(R,)``.
        V: ``(R, N)`` output (left) weights.
        U: ``(N, R)`` input (right) weights: unit i's pre-activation is ``U_i . z - h_i``.
        h: ``(N,)`` thresholds.
        activation: ``"relu"`` or ``"clipped_relu"`` (``phi(x) = min(max(x, 0), clip)``).
        clip: clipping level c > 0 of the clipped ReLU, scalar or ``(N,)`` (ignored for the ReLU).
        tol: relative tolerance of the region membership test (see the tolerance policy).
        merge_tol: solutions closer than ``merge_tol * max(1, |z|_inf)`` are one fixed point.
        chunk_size: (line, crossing) pairs swept per batch; memory grows with it, speed little.

    Numpy arrays, torch tensors or nested lists are accepted; results are float64 numpy arrays.

    Returns:
        :class:`FixedPoints`.
    """
    net = _validate(a, V, U, h, activation, clip)
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
    """All fixed points of a low-rank RNN's latent map ``latent`` = ``(a, V, U, h, activation)``
    (:class:`~pyro_neurodyn.dynamics.lowrank.LatentMap`, the parameterization of the models); ``options``
    go to :func:`fixed_points` (``tol``, ``merge_tol``, ``chunk_size``).

    The models' ReLU ``relu(U z - h)`` is :func:`fixed_points`' ReLU. Their clipped ReLU
    ``relu(U_i z + h_i) - relu(U_i z)`` is ``min(max(U_i z + h_i, 0), h_i)`` for ``h_i > 0`` (threshold
    ``-h_i``, clip ``h_i``), ``-min(max(U_i z, 0), -h_i)`` for ``h_i < 0`` (threshold 0, clip ``-h_i``,
    column i of V negated) and zero for ``h_i = 0`` (column i of V zeroed). ``identity`` and ``tanh``
    activations have no piecewise-linear arrangement and raise ``ValueError``.
    """
    a, V, U, h, activation = latent
    if activation == "relu":
        return fixed_points(a, V, U, h, "relu", **options)
    if activation != "clipped_relu":
        raise ValueError(f"fixed points are exact for activation 'relu' or 'clipped_relu' only, got {activation!r}")
    h = _as_array(h, "h")
    V = _as_array(V, "V").copy()
    V[:, h < 0] *= -1.0
    V[:, h == 0] = 0.0
    threshold = np.where(h > 0, -h, 0.0)
    clip = np.where(h != 0, np.abs(h), 1.0)
    return fixed_points(a, V, U, threshold, "clipped_relu", clip=clip, **options)


def _classified(points: np.ndarray, continua: list, net: _Network, tol: float, merge_tol: float) -> FixedPoints:
    """Patterns, Jacobians, stability and boundary flags of the fixed points (region counts left at 0)."""
    x = points @ net.U.T - net.h
    patterns = _patterns(x, net)
    jacobians = _jacobians(patterns, net)
    radius = np.abs(np.linalg.eigvals(jacobians)).max(axis=-1) if len(points) else np.zeros(0)
    size = np.maximum(1.0, np.abs(points).max(axis=1, initial=0.0))
    norm = np.linalg.norm(net.U, axis=1)  # units with U_i = 0 have no boundary
    distance = np.abs(x[..., None] - _breakpoints(net).T[None]).min(axis=-1) / np.where(norm > 0, norm, np.inf)
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


def _latent(z: np.ndarray, net: _Network) -> np.ndarray:
    return net.a * z + _phi(z @ net.U.T - net.h, net) @ net.V.T


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
    ) + (np.abs(net.V) @ (np.abs(net.h) + (0.0 if net.clip is None else net.clip))).max()
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
