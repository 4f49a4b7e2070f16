"""Region enumeration for the fixed-point finder: the breakpoint hyperplanes of the map with their payloads
(rank-one updates of the region system and a random 64-bit hash of the sign vector), activation patterns
from sign vectors, and the bookkeeping that accepts a region iff all its candidates pass (steps 1-3 of
the algorithm in :mod:`~pyro_neurodyn.analysis.fixed_points`)."""

from __future__ import annotations

import numpy as np

from .batched_solves import _solve
from .hyperplane_arrangement import Arrangement
from .piecewise_linear_map import _breakpoints, _Network

_HASH_SEED = 20241209


# ---------------------------------------------------------------------------------------- hyperplanes
def _hyperplanes(net: _Network) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Breakpoint hyperplanes ``U_i . x = theta_i + beta`` (theta the thresholds) and their payloads.

    Returns normals ``(m, R)``, offsets ``(m,)``, and the payloads of crossing each one upwards:
    ``(m, R*R + R)`` = (-ds V_i U_i^T, V_i (do - ds theta_i)) flattened, and ``(m, 1)`` uint64 random hashes.
    """
    R, N = net.V.shape
    breakpoints = _breakpoints(net)
    # Change of (slope, intercept) when p crosses the breakpoint upwards: (+1, 0) at 0, (-1, +c) at c.
    ds = np.array([1.0, -1.0])[: len(breakpoints), None] * np.ones(N)
    do = np.zeros_like(ds) if net.clip is None else np.stack([np.zeros(N), net.clip])
    outer = np.einsum("rn,ns->nrs", net.V, net.U).reshape(N, R * R)
    matrix = -(ds[..., None] * outer)  # (B, N, R*R)
    vector = (do - ds * net.threshold)[..., None] * net.V.T  # (B, N, R)
    normals = np.tile(net.U, (len(breakpoints), 1))
    offsets = (net.threshold + breakpoints).reshape(-1)
    payload = np.concatenate([matrix, vector], axis=-1).reshape(-1, R * R + R)
    hashes = np.random.default_rng(_HASH_SEED).integers(0, 2**64, size=(len(offsets), 1), dtype=np.uint64)
    return normals, offsets, payload, hashes


def _hyperplane_patterns(signs: np.ndarray, arrangement: Arrangement, N: int) -> np.ndarray:
    """Activation patterns ``(..., N)`` from signs ``(..., m')`` of the arrangement's distinct hyperplanes."""
    group, orientation = arrangement.group, arrangement.orientation
    own = np.where(group >= 0, signs[..., np.maximum(group, 0)] * orientation, orientation)  # (..., m)
    return (own > 0).reshape(signs.shape[:-1] + (-1, N)).sum(axis=-2).astype(np.int8)


class _Accumulator:
    """Region bookkeeping across candidate blocks.

    Each candidate gets the key ``(hash with its lowest bit cleared) | failed``: after sorting the keys of
    all candidates, a region is accepted iff its even key appears and its odd key does not. Only the
    passing candidates' solutions are kept.
    """

    def __init__(self):
        self.keys, self.passing_key, self.passing_x = [], [], []
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
            x, singular = _solve(float_payload, R, scale)  # (R, n), (n,)
            passed = ~singular
            size = np.maximum.reduce([np.abs(component) for component in x])  # (n,)
            for j, sign in enumerate(signs):
                distance = sum(x[r] * normals[j, r] for r in range(R)) - offsets[j]
                passed &= sign * distance >= -tol * np.maximum(size, offset_size[j])
            key = (hashes[0] & ~np.uint64(1)) | (~passed).astype(np.uint64)
            keys.append(key)
            self.passing_key.append(key[passed])
            self.passing_x.append(x[:, passed].T)
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
        return np.concatenate(self.passing_x)[chosen][first], len(keys) - int(has_failed_twin.sum())


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    values = np.sort(values)
    return values[np.concatenate([[True], values[1:] != values[:-1]])] if values.size else values
