"""Payloads of the cells of a hyperplane arrangement: :class:`CellCandidates`, the blocks of candidate
cells that :meth:`~pyro_neurodyn.analysis.hyperplane_arrangement.Arrangement.candidates` yields (with the
Gray-code walk over each vertex's local cells), and signed payload sums (modulo 2^64 for uint64)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

__all__ = ["CellCandidates"]


class CellCandidates(NamedTuple):
    """A block of ``n`` vertices and the ``c`` cells of each one's local arrangement: ``n * c`` candidate
    cells. Cells repeat across vertices (name them by a hash payload to identify them).

    Attributes:
        vertex_payloads: one array ``(P_i, n)`` per payload given to :meth:`Arrangement.candidates`: the
            payload at each vertex with the hyperplanes through it counted as negative.
        through_payloads: one array ``(w, P_i, n)`` per payload: those hyperplanes' payloads.
        constraint_index: ``(n, w)`` int, indices into the distinct hyperplanes
            (:attr:`Arrangement.normals`) through each vertex.
        constraint_sign: ``(c, w)`` +1/-1, each local cell's sign for them. A cell lies in every half-space
            ``sign * (w_k . y - t_k) >= 0`` listed with it, and every facet of a cell is listed by at least
            one of its candidates (a facet has a vertex, where its hyperplane passes), so a point
            satisfies all constraints of all candidates of a cell iff it lies in the cell's closure.
        vertex: ``(n, R)`` the vertices, in the original coordinates.
    """

    vertex_payloads: tuple[np.ndarray, ...]
    through_payloads: tuple[np.ndarray, ...]
    constraint_index: np.ndarray
    constraint_sign: np.ndarray
    vertex: np.ndarray

    def cell_payloads(self) -> Iterator[tuple[int, tuple[np.ndarray, ...]]]:
        """Yield ``(cell, payloads)``: the payloads ``(P_i, n)`` of each local cell at every vertex,
        ``base + sum_{sigma_k = +} p_k``. Cells come in Gray-code order, each obtained from the previous one
        by adding or removing the few hyperplanes whose sign differs (one for a simple vertex)."""
        positive = self.constraint_sign > 0  # (c, w)
        weights = 1 << np.arange(positive.shape[1]) if positive.shape[1] <= 30 else None
        order = np.arange(len(positive))
        if weights is not None:
            code = positive @ weights
            rank = code.copy()  # inverse of the binary reflected Gray code
            for shift in (1, 2, 4, 8, 16):
                rank ^= rank >> shift
            order = np.argsort(rank, kind="stable")
        current = [v.copy() for v in self.vertex_payloads]
        state = np.zeros(positive.shape[1], dtype=bool)
        for cell in order:
            for j in np.flatnonzero(positive[cell] != state):
                for payload, through in zip(current, self.through_payloads):
                    if positive[cell, j]:
                        payload += through[j]
                    else:
                        payload -= through[j]
            state = positive[cell]
            yield cell, tuple(current)


def _signed(payload: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """``sign[..., None] * payload`` for sign in {-1, 0, +1}; for uint64 payloads modulo 2^64."""
    if payload.dtype == np.uint64:
        sign = sign.astype(np.int64).astype(np.uint64)  # -1 -> 2^64 - 1, i.e. negation modulo 2^64
    return payload * sign[..., None]


def _indicator_sum(indicator: np.ndarray, payload: np.ndarray) -> np.ndarray:
    """``indicator (..., m) @ payload (m, P)`` with the payload's dtype (modular for uint64)."""
    return indicator.astype(payload.dtype) @ payload
