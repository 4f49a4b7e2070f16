"""The cells of a hyperplane arrangement, checked against independent ground truth.

Ground truth: (a) a sign vector is a cell iff the linear program "maximize eps subject to
sign_k (w_k . y - t_k) >= eps" has eps > 0, tried for all 2^m sign vectors; (b) Zaslavsky's count
sum_{i <= R} C(m, i) for hyperplanes in general position.
"""

import itertools
from math import comb

import numpy as np
import pytest
from scipy.optimize import linprog

from pyro_neurodyn.analysis import Arrangement


def cells_by_linear_programming(normals, offsets):
    """All realizable sign vectors (+1/-1), one LP per candidate sign vector."""
    m, R = normals.shape
    cells = []
    for signs in itertools.product((-1, 1), repeat=m):
        s = np.array(signs)
        result = linprog(
            np.r_[np.zeros(R), -1.0],
            A_ub=np.hstack([-(s[:, None] * normals), np.ones((m, 1))]),
            b_ub=-s * offsets,
            bounds=[(None, None)] * R + [(None, 1.0)],
            method="highs",
        )
        if result.status == 0 and -result.fun > 1e-9:
            cells.append(signs)
    return set(cells)


def as_set(sign_vectors):
    return set(map(tuple, sign_vectors.tolist()))


@pytest.mark.parametrize("R", [1, 2, 3, 4])
def test_general_position_has_zaslavsky_many_cells(R):
    rng = np.random.default_rng(R)
    for m in (1, R, 9):
        sign_vectors = Arrangement(rng.normal(size=(m, R)), rng.normal(size=m)).sign_vectors()
        assert len(sign_vectors) == sum(comb(m, i) for i in range(R + 1))
        assert len(as_set(sign_vectors)) == len(sign_vectors)


DEGENERATE = {
    "lines through one point": ([[1, 0], [0, 1], [1, 1], [1, -1], [2, 1]], [0, 0, 0, 0, 0]),
    "duplicates, also with opposite orientation": ([[1, 0], [1, 0], [-1, 0], [0, 1], [1, 1]], [1, 1, -1, 0, 0.5]),
    "parallel lines": ([[1, 0], [1, 0], [2, 0], [0, 1]], [0, 1, 4, 0]),
    "all parallel: no vertex in R^2": ([[1, 1], [1, 1], [2, 2]], [0, 1, 3]),
    "a zero normal": ([[0, 0], [1, 0]], [1, 0]),
    "planes sharing a line": ([[1, 0, 0], [0, 1, 0], [1, 1, 0], [1, -1, 0], [0, 0, 1], [1, 1, 1]], [0, 0, 0, 0, 0, 0.5]),
    "five planes through a point": ([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [1, 2, 3]], [0, 0, 0, 0, 0]),
    "a grid of planes": ([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], [0, 1, 0, 1, 0, 1]),
    "rank 1 in R^3": ([[1, 2, 0], [2, 4, 0], [-1, -2, 0]], [0, 1, 3]),
}


@pytest.mark.parametrize("name", DEGENERATE)
def test_degenerate_arrangements_match_linear_programming(name):
    normals, offsets = (np.array(v, dtype=float) for v in DEGENERATE[name])
    assert as_set(Arrangement(normals, offsets).sign_vectors()) == cells_by_linear_programming(normals, offsets)


def test_random_integer_arrangements_match_linear_programming():
    """Small integer normals and offsets make parallel, duplicated and concurrent hyperplanes common."""
    rng = np.random.default_rng(7)
    for _ in range(40):
        R, m = int(rng.integers(1, 4)), int(rng.integers(2, 7))
        normals = rng.integers(-2, 3, size=(m, R)).astype(float)
        offsets = rng.integers(-1, 2, size=m).astype(float)
        offsets[np.abs(normals).sum(axis=1) == 0] = 1.0  # 0 . y = 0 holds everywhere: no strict side exists
        found = as_set(Arrangement(normals, offsets).sign_vectors())
        assert found == cells_by_linear_programming(normals, offsets), (normals, offsets)


def test_payloads_are_sums_over_positive_hyperplanes():
    """Each candidate's payload is base + sum of the payloads of its positive hyperplanes (float and uint64)."""
    rng = np.random.default_rng(3)
    normals, offsets = rng.normal(size=(7, 2)), rng.normal(size=7)
    weights = rng.normal(size=(7, 3))
    hashes = rng.integers(0, 2**64, size=(7, 1), dtype=np.uint64)
    arrangement = Arrangement(normals, offsets)
    for block in arrangement.candidates([weights, hashes], [np.ones(3), np.zeros(1, dtype=np.uint64)]):
        for cell, (float_payload, hash_payload) in block.cell_payloads():
            # a point just inside the local cell: w_k . u = sign_k for the (distinct, oriented) hyperplanes k
            # through the vertex
            local_normals = arrangement.normals[block.constraint_index]  # (n, 2, 2)
            signs = np.broadcast_to(block.constraint_sign[cell], (len(local_normals), 2))
            inside = block.vertex + 1e-6 * np.linalg.solve(local_normals, signs[..., None])[..., 0]
            positive = normals @ inside.T - offsets[:, None] > 0  # (m, n)
            np.testing.assert_allclose(float_payload, 1.0 + weights.T @ positive)
            expected = (positive.astype(np.uint64) * hashes).sum(axis=0, dtype=np.uint64)
            np.testing.assert_array_equal(hash_payload[0], expected)
