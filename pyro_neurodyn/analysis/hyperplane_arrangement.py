"""Every cell of a hyperplane arrangement, enumerated through its vertices with work shared along lines.

An arrangement is a finite list of hyperplanes ``H_k = {y in R^R : w_k . y = t_k}``, ``k = 1..m``. Its
cells (regions) are the connected components of R^R minus the hyperplanes; a cell is identified by its
sign vector ``sigma_k = sign(w_k . y - t_k)`` (all non-zero inside a cell). A caller attaches a payload
``p_k`` (a vector; float64 or uint64) to each hyperplane and gets, for every cell, its payload

    P(cell) = base + sum_{k : sigma_k(cell) = +1} p_k        (uint64 sums are modulo 2^64)

e.g. the linear system of a piecewise-linear map on that cell, or a random hash that names the cell.

Why the enumeration is complete, also for degenerate arrangements
-----------------------------------------------------------------
1. Preprocessing. Hyperplanes with a zero normal have a constant sign (folded into ``base``).
   Coincident hyperplanes (duplicates, or the same hyperplane with the opposite orientation) are merged:
   they change sign together. Coordinates are reduced to the span of the normals (rank ``r``), where the
   arrangement is essential: then every cell is a pointed polyhedron and so has a vertex. (With rank
   ``r < R`` every cell is a cylinder over a cell in r dimensions; with ``r = 0`` there is one cell.)
2. Near a vertex ``v`` a cell is a cell of the *local central arrangement* of the hyperplanes through
   ``v``. So the cells are exactly the union over vertices of these local cells: the ``2^r`` sign choices
   at a simple vertex (exactly r hyperplanes through it), and at a degenerate vertex (more than r
   hyperplanes through it) the cells of its central arrangement, computed by slicing it with the
   parallel hyperplanes ``y_1 = +1`` and ``y_1 = -1`` (every open cone meets one of them), which is an
   arrangement in r - 1 dimensions: the recursion ends at dimension 0.
3. Vertices are found on lines. Each set ``J`` of ``r - 1`` hyperplanes with independent normals spans a
   line ``L_J = {p_J + s d_J}``; another hyperplane either crosses it at ``s_k = (t_k - w_k.p_J) / (w_k.d_J)``,
   or is parallel to it (constant sign along it), or contains it (then ``L_J`` is a degenerate line).
   Every vertex lies on such lines; it is emitted on exactly one of them: the one whose ``J`` is the
   first ``r - 1`` members of the greedy (lexicographically first) basis of the hyperplanes through it.
   Crossings that coincide (more than r hyperplanes through a point) form one vertex.

Why it is fast (the shared work)
--------------------------------
Along ``L_J`` the sign of hyperplane ``k`` flips once, at ``s_k``, so the payload at the vertex at
position ``i`` of the sorted crossings is the payload at ``s = -inf`` plus an exclusive cumulative sum of
the signed payloads ``sign(w_k . d_J) p_k`` in sorted order. One sort and one cumulative sum per line give
the payloads of all its vertices: O(m (log m + P)) per line, with no O(m) work per vertex. With
``C(m, r - 1)`` lines the total is O(m^r (log m + P)) time, vectorized over chunks of lines; the number of
candidate cells is ``2^r C(m, r)`` for a simple arrangement (each cell is met once per vertex; the number
of distinct cells is ``sum_{i<=r} C(m, i)``, Zaslavsky). Lines are processed in chunks, so memory stays
bounded. Degenerate vertices are handled one by one (they are rare in fitted networks; a hand-made,
highly degenerate arrangement such as a grid is slower).

Tolerances. Geometry decisions use ``GEOMETRY_RTOL`` (about 1e-11): normals and offsets that agree to
this relative precision are the same hyperplane, crossings closer than it are one vertex, a hyperplane
this close to parallel to a line is parallel to it (so vertices farther than ~1e11 times the scale of
the arrangement are not resolved). This only matters for inputs that are degenerate up to rounding.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .arrangement_payloads import CellCandidates, _indicator_sum, _signed

__all__ = ["GEOMETRY_RTOL", "Arrangement", "CellCandidates", "cluster_labels"]

GEOMETRY_RTOL = 1e-11


class _Line(NamedTuple):
    """Geometry of a chunk of lines ``L_J``, in the essential coordinates (dimension r)."""

    members: np.ndarray  # (L, r - 1) the hyperplanes J spanning each line
    point: np.ndarray  # (L, r) p_J, the point of the line closest to the origin
    direction: np.ndarray  # (L, r) unit d_J


def cluster_labels(points: np.ndarray, radius: float) -> np.ndarray:
    """Label ``points (n, d)`` by the connected components of "closer than ``radius`` (max-norm)"."""
    if len(points) == 0:
        return np.zeros(0, dtype=np.int64)
    pairs = cKDTree(points).query_pairs(radius, p=np.inf, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(points),) * 2)
    return connected_components(graph, directed=False)[1]


class Arrangement:
    """Hyperplanes ``w_k . y = t_k`` in R^R, preprocessed for cell enumeration (see the module docstring).

    Args:
        normals: ``(m, R)`` float.
        offsets: ``(m,)`` float.

    Attributes (of the distinct, non-constant hyperplanes, ``m'`` of them):
        normals: ``(m', R)`` unit normals. offsets: ``(m',)``.
        group: ``(m,)`` index of each input hyperplane's distinct hyperplane, -1 for a constant one.
        orientation: ``(m,)`` +1/-1: the input's sign is ``orientation * sign`` of its distinct hyperplane
            (for a constant hyperplane: its constant sign; an identically-zero one counts as -1).
        rank: dimension r of the span of the normals.
    """

    def __init__(self, normals: np.ndarray, offsets: np.ndarray):
        normals = np.asarray(normals, dtype=np.float64)
        offsets = np.asarray(offsets, dtype=np.float64)
        self.dim = normals.shape[1]
        norms = np.linalg.norm(normals, axis=1)
        constant = norms <= GEOMETRY_RTOL * norms.max(initial=0.0)  # also the exact zeros
        unit = normals[~constant] / norms[~constant, None]
        shifted = offsets[~constant] / norms[~constant]
        # Orient every hyperplane so that its normal points along a fixed generic direction, then merge
        # those whose (normal, offset) agree: duplicates, and the same hyperplane with opposite orientation.
        generic = np.random.default_rng(12345).normal(size=self.dim)
        flip = np.where(unit @ generic < 0, -1.0, 1.0)
        unit, shifted = unit * flip[:, None], shifted * flip
        labels = self._coincident_groups(unit, shifted)
        first = np.unique(labels, return_index=True)[1] if labels.size else np.zeros(0, dtype=np.int64)
        self.normals, self.offsets = unit[first], shifted[first]
        self.group = np.full(len(offsets), -1)
        self.group[~constant] = labels
        self.orientation = np.ones(len(offsets))
        self.orientation[~constant] = flip
        self.orientation[constant] = np.where(-offsets[constant] > 0, 1.0, -1.0)
        self._essential_coordinates()

    @staticmethod
    def _coincident_groups(unit: np.ndarray, shifted: np.ndarray) -> np.ndarray:
        """Label hyperplanes whose oriented unit normal and offset agree within GEOMETRY_RTOL.

        Offsets are compared through arcsinh: absolutely near 0, relatively when large.
        """
        if len(shifted) == 0:
            return np.zeros(0, dtype=np.int64)
        return cluster_labels(np.concatenate([unit, np.arcsinh(shifted)[:, None]], axis=1), GEOMETRY_RTOL)

    def _essential_coordinates(self) -> None:
        """Coordinates ``y_r = Q^T y`` on the span of the normals, where the arrangement is essential."""
        if len(self.offsets) == 0:
            self.rank, self._basis = 0, np.zeros((self.dim, 0))
        else:
            _, singular, vt = np.linalg.svd(self.normals, full_matrices=False)
            self.rank = int((singular > GEOMETRY_RTOL * singular[0]).sum())
            self._basis = vt[: self.rank].T  # (R, r), orthonormal columns
        projected = self.normals @ self._basis
        length = np.linalg.norm(projected, axis=1) if self.rank else np.ones(len(self.offsets))
        self._normals_r = projected / length[:, None]
        self._offsets_r = self.offsets / length

    # ------------------------------------------------------------------ payloads
    def _distinct_payloads(self, payload: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fold constant and coincident hyperplanes: returns (per distinct hyperplane payload, base).

        A distinct hyperplane's members with orientation +1 are positive when it is, those with -1 when
        it is not: base gets the sum of the latter, and crossing adds (sum of former - sum of latter).
        """
        constant = self.group < 0
        base = base.astype(payload.dtype) + _indicator_sum(constant & (self.orientation > 0), payload)
        distinct = np.zeros((len(self.offsets),) + payload.shape[1:], dtype=payload.dtype)
        member = ~constant
        signed = _signed(payload[member], self.orientation[member])
        np.add.at(distinct, self.group[member], signed)
        negative = member & (self.orientation < 0)
        if negative.any():
            base = base + payload[negative].sum(axis=0, dtype=payload.dtype)
        return distinct, base

    # ------------------------------------------------------------------ enumeration
    def candidates(
        self, payloads: Sequence[np.ndarray], bases: Sequence[np.ndarray], chunk_size: int = 1 << 16
    ) -> Iterator[CellCandidates]:
        """Yield blocks of candidate cells covering every cell (each cell once per vertex).

        Args:
            payloads: arrays ``(m, P_i)`` (float64 or uint64), one row per input hyperplane.
            bases: arrays ``(P_i,)``, the payload of the cell where every hyperplane is negative.
            chunk_size: about how many (line, crossing) pairs one block sweeps (memory ~ chunk_size * P).
        """
        folded = [self._distinct_payloads(np.asarray(p), np.asarray(b)) for p, b in zip(payloads, bases)]
        per_hyperplane = tuple(f[0] for f in folded)
        base = tuple(f[1] for f in folded)
        r = self.rank
        if r == 0:
            yield CellCandidates(
                tuple(b[:, None] for b in base),
                tuple(np.zeros((0,) + b.shape + (1,), dtype=b.dtype) for b in base),
                np.zeros((1, 0), dtype=np.int64),
                np.zeros((1, 0)),
                np.zeros((1, self.dim)),
            )
            return
        m = len(self.offsets)
        lines_per_chunk = max(1, chunk_size // m)
        for members in self._line_member_chunks(lines_per_chunk):
            line = self._line_geometry(members)
            if len(line.members):
                yield from self._sweep(line, per_hyperplane, base)

    def _line_member_chunks(self, size: int) -> Iterator[np.ndarray]:
        """All (r-1)-subsets of the distinct hyperplanes, as int arrays ``(L, r - 1)`` of at most ``size`` rows."""
        r, m = self.rank, len(self.offsets)
        if r == 1:
            yield np.zeros((1, 0), dtype=np.int64)
            return
        if r == 2:
            for start in range(0, m, size):
                yield np.arange(start, min(m, start + size))[:, None]
            return
        combos = itertools.combinations(range(m), r - 1)
        while True:
            chunk = np.fromiter(itertools.chain.from_iterable(itertools.islice(combos, size)), dtype=np.int64)
            if chunk.size == 0:
                return
            yield chunk.reshape(-1, r - 1)

    def _line_geometry(self, members: np.ndarray) -> _Line:
        """Point and direction of each line ``L_J``; lines whose J is dependent are dropped."""
        W, t, r = self._normals_r, self._offsets_r, self.rank
        count = len(members)
        if r == 1:
            return _Line(members, np.zeros((count, 1)), np.ones((count, 1)))
        if r == 2:
            w = W[members[:, 0]]
            return _Line(members, w * t[members[:, 0], None], np.stack([-w[:, 1], w[:, 0]], axis=1))
        left, singular, vt = np.linalg.svd(W[members], full_matrices=True)  # (L, r-1, r-1), (L, r-1), (L, r, r)
        independent = singular[:, -1] > GEOMETRY_RTOL * singular[:, 0]
        coefficients = np.einsum("lij,li->lj", left, t[members]) / np.where(independent[:, None], singular, 1.0)
        point = np.einsum("lj,ljr->lr", coefficients, vt[:, : r - 1])
        return _Line(members[independent], point[independent], vt[independent, -1])

    def _sweep(self, line: _Line, payloads: tuple, base: tuple) -> Iterator[CellCandidates]:
        W, t, r = self._normals_r, self._offsets_r, self.rank
        rows = np.arange(len(line.members))[:, None]
        along = line.direction @ W.T  # (L, m): w_k . d_J
        gap = t[None, :] - line.point @ W.T  # (L, m): t_k - w_k . p_J
        point_norm = np.linalg.norm(line.point, axis=1, keepdims=True)
        parallel = np.abs(along) <= GEOMETRY_RTOL
        parallel[rows, line.members] = True
        contains = parallel & (np.abs(gap) <= GEOMETRY_RTOL * (1.0 + np.abs(t)[None, :] + point_norm))
        contains[rows, line.members] = True
        degenerate_line = contains.sum(axis=1) > r - 1
        crossing = np.where(parallel, np.inf, gap / np.where(parallel, 1.0, along))
        positive_at_start = np.where(parallel, ~contains & (gap < 0), along < 0)  # sign at s -> -inf
        order = np.argsort(crossing, axis=1, kind="stable")
        crossing = np.take_along_axis(crossing, order, axis=1)
        flip_sign = np.take_along_axis(np.where(parallel, 0.0, np.sign(along)), order, axis=1)

        # Payload after each crossing: its value at s = -inf plus a cumulative sum of the signed payloads.
        start = [b + _indicator_sum(positive_at_start, p) for p, b in zip(payloads, base)]  # (L, P) each
        after = [np.cumsum(_signed(np.take(p, order, axis=0), flip_sign), axis=1, dtype=p.dtype) for p in payloads]

        starts, sizes = self._vertex_groups(crossing, point_norm)
        line_of, position = starts // crossing.shape[1], starts % crossing.shape[1]
        hyperplane = order[line_of, position]
        last_member = line.members.max(axis=1) if r > 1 else np.full(len(line.members), -1)
        simple = (sizes == 1) & ~degenerate_line[line_of]
        emit = simple & (hyperplane > last_member[line_of])
        vertex = line.point[line_of] + crossing[line_of, position][:, None] * line.direction[line_of]
        # At a vertex its crossing hyperplanes count as negative (the local sign choices add them): after
        # the last crossing of the group, remove those that became positive (w_k . d_J > 0).
        became_positive = -(flip_sign > 0).astype(np.float64)
        if emit.any():
            l, i = line_of[emit], position[emit]
            through = np.concatenate([line.members[l], hyperplane[emit, None]], axis=1)
            at_vertex = [
                s0[l] + a[l, i] + _signed(p[through[:, -1]], became_positive[l, i])
                for s0, a, p in zip(start, after, payloads)
            ]
            yield self._local_candidates(at_vertex, payloads, through, self._simple_signs(), vertex[emit])
        # A degenerate line is swept from every independent (r-1)-subset of the hyperplanes containing it;
        # its vertices are emitted only from the greedy one (see the module docstring, item 3).
        canonical = np.ones(len(line.members), dtype=bool)
        for l in np.flatnonzero(degenerate_line):
            canonical[l] = np.array_equal(self._greedy_basis(np.flatnonzero(contains[l]))[: r - 1], line.members[l])
        for index in np.flatnonzero(~simple & canonical[line_of]):
            l, i = line_of[index], position[index]
            through = np.union1d(
                np.flatnonzero(contains[l]), order[l, i : i + sizes[index]]
            )  # J, the other hyperplanes containing the line, and the crossings at this point
            if not np.array_equal(self._greedy_basis(through)[: r - 1], line.members[l]):
                continue  # this vertex is emitted on another line
            group = slice(i, i + sizes[index])
            at_vertex = [
                s0[l][None] + a[l, group.stop - 1] + _signed(p[order[l, group]], became_positive[l, group]).sum(0, dtype=p.dtype)
                for s0, a, p in zip(start, after, payloads)
            ]
            signs = self.local_cell_signs(W[through])
            yield self._local_candidates(at_vertex, payloads, through[None], signs, vertex[index][None])

    @staticmethod
    def _vertex_groups(crossing: np.ndarray, point_norm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat indices of the first crossing of each vertex (coincident crossings grouped) and group sizes."""
        finite = np.isfinite(crossing)
        new = finite.copy()
        with np.errstate(invalid="ignore"):  # inf - inf past the last crossing
            step = np.diff(crossing, axis=1)
        tolerance = GEOMETRY_RTOL * (1.0 + np.abs(crossing[:, 1:]) + point_norm)
        new[:, 1:] &= ~(step <= tolerance)
        starts = np.flatnonzero(new)
        columns = crossing.shape[1]
        ends = np.empty_like(starts)
        ends[:-1] = starts[1:]
        same_line = ends[:-1] // columns == starts[:-1] // columns
        line_end = (starts // columns) * columns + finite.sum(axis=1)[starts // columns]
        ends[:-1] = np.where(same_line, ends[:-1], line_end[:-1])
        ends[-1:] = line_end[-1:]
        return starts, ends - starts

    def _simple_signs(self) -> np.ndarray:
        """The 2^r sign choices ``(2^r, r)`` around a simple vertex."""
        return np.array(list(itertools.product((-1.0, 1.0), repeat=self.rank)))

    def _greedy_basis(self, indices: np.ndarray) -> np.ndarray:
        """The first (in index order) maximal independent subset of the normals ``indices``."""
        basis, chosen = np.zeros((0, self.rank)), []
        for k in indices:
            w = self._normals_r[k]
            residual = w - basis.T @ (basis @ w)
            size = np.linalg.norm(residual)
            if size > GEOMETRY_RTOL:
                basis = np.vstack([basis, residual / size])
                chosen.append(k)
        return np.array(chosen, dtype=np.int64)

    def _local_candidates(self, at_vertex, payloads, through, signs, vertex) -> CellCandidates:
        """Candidates for vertices with hyperplanes ``through (n, w)`` and local sign choices ``signs (c, w)``."""
        return CellCandidates(
            tuple(b.T for b in at_vertex),
            tuple(np.moveaxis(p[through], (1, 2), (0, 1)) for p in payloads),  # (w, P, n)
            through,
            signs,
            vertex @ self._basis.T,
        )

    # ------------------------------------------------------------------ explicit sign vectors
    def sign_vectors(self, chunk_size: int = 1 << 16) -> np.ndarray:
        """All cells as sign vectors ``(num_cells, m)`` over the input hyperplanes (+1/-1), unique rows."""
        m = len(self.group)
        found = [
            payloads[0].T.copy()
            for block in self.candidates([np.eye(m)], [np.zeros(m)], chunk_size)
            for _, payloads in block.cell_payloads()
        ]
        return np.unique(np.where(np.concatenate(found) > 0.5, 1, -1).astype(np.int8), axis=0)

    @staticmethod
    def local_cell_signs(normals: np.ndarray) -> np.ndarray:
        """Cells ``(c, k)`` (+1/-1) of the central arrangement ``{w_i . u = 0}`` of ``k`` normals in R^r, ``normals (k, r)``.

        Every open cone meets ``u_1 = +1`` or ``u_1 = -1``; on those slices the hyperplanes are
        ``w_i[1:] . x = -w_i[0] * u_1``, an arrangement in r - 1 dimensions.
        """
        slices = [
            Arrangement(normals[:, 1:], -side * normals[:, 0]).sign_vectors() for side in (1.0, -1.0)
        ]
        return np.unique(np.concatenate(slices), axis=0).astype(np.float64)
