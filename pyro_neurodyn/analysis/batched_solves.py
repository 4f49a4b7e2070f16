"""Batched solves of the fixed-point finder's R x R region systems ``M z = b``: closed form for R <= 2,
vectorized elimination without pivoting (LAPACK where its backward error is not at rounding level)
otherwise, with the singularity test ``|det M| <= SINGULAR_RTOL * scale``."""

from __future__ import annotations

import numpy as np

SINGULAR_RTOL = 1e-10
_ELIMINATION_BATCH = 8192


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
