"""One latent frame for sessions that recorded different neurons: each session's frame turned onto a reference's.

Each session s of a multi-session Recording starts its readout rows at the principal subspace ``P_s (D_s, R)`` of
its own neurons (orthonormal columns; :func:`.principal_subspace.principal_subspace`), so its projected latents
are ``x^_s = P_s^T (y_s - b_s) = G_s x`` (plus projected noise): the shared latent ``x`` seen through an arbitrary
invertible ``G_s = P_s^T W_s (R, R)`` (``W_s`` the true readout rows) -- an eigenvector's sign alone reflects it.
One shared dynamics must explain every session, and a reflection cannot be undone by gradient steps on the readout.
So before the dynamics are regressed, each session's latents are mapped into the reference's frame (session 0, the
first block), ``x'_s = Q_s x^_s``, by the orthogonal map that makes the two sessions' dynamics agree.

Dynamics. Session 0's one-step map ``x^_{t+1} ~ F_0(x^_t) = A_0 x^_t + c_0`` (least squares over its trials' observed
pairs, :func:`least_squares_map` of :func:`one_step_pairs`, as the SRNN's session labels; ``A_0 = G_0 A G_0^{-1}`` for the true
linearized ``A``). A map ``T`` takes session s's frame into session 0's
when ``T x^_s`` follows ``F_0``; the criterion is its one-step prediction error over session s's pairs::

    J(T) = mean_t |T x^_{s,t+1} - F_0(T x^_{s,t})|^2  ~=  |(T A_s - A_0 T) S_s^{1/2}|_F^2 + noise   (A_s = G_s A G_s^{-1}),

zero (up to noise) at ``T_true = G_0 G_s^{-1}``: the Sylvester-type equation ``T A_s = A_0 T``, whose solutions
``T = C T_true`` for every ``C`` commuting with ``A_0`` form a subspace of dimension >= R (for a 2-D oscillator,
the scaled rotations in ``A_0``'s own frame; for real distinct eigenvalues, scalings along its eigenvectors).

Orthogonal maps. ``T`` is restricted to orthogonal ``Q`` (both components of O(R): rotations and reflections), so
the readout rows stay orthonormal and the latents keep their scale. ``T_true`` itself is orthogonal only when
the sessions' ``G_s`` differ by one; what the restriction keeps exact is the orientation, ``sign det Q_s =
sign det T_true``, and for dynamics with a rotational symmetry (an oscillator) the angle is what no linear
description can see anyway. Ground truth (tests/test_sessions.py): on the oscillator teacher with one session's
neurons reflected and on the switching low-rank teacher, three sessions of ten neurons, data seeds 0-9, the
matched frames' orientation agrees with session 0's in 20 of 20 sessions (own frames: 10 and 5 of 20). The
full map whitened by each session's latent covariance (``T = S_0^{1/2} Q S_s^{-1/2}``, which keeps ``T S_s T^T = S_0``,
exact when the covariances match) measured worse (held-out evidence -0.001 to -0.011 nats per entry below the own
frames on the oscillator; the covariances of 6 trials differ by sampling), and a least-squares polynomial ``F_0`` of
degree 2 or 3 got the orientation wrong in 1-3 of the 20 switching-teacher sessions.

What stays ambiguous is what ``F_0`` cannot see: the orthogonal ``Q`` commuting with ``A_0`` (``-I`` when ``c_0 = 0``, as for centred latents; for an
oscillator every rotation; for R = 1, the sign). The minimum is found by L-BFGS on ``Q = expm(K - K^T) D``
(``D = I`` or ``diag(-1, 1, ...)``) from ``NUM_STARTS`` starts per component; the identity wins ties.

The session's readout rows and latents are then re-expressed in the new frame, which leaves every prediction
unchanged: ``P_s x^_s = (P_s Q_s^T) (Q_s x^_s)``, rows ``P_s Q_s^T`` still orthonormal.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

__all__ = ["NUM_STARTS", "frame_map", "least_squares_map", "matched_frames", "one_step_pairs"]

NUM_STARTS = 8  # L-BFGS starts per component of O(R) (the identity, then seeded random rotations)
MAX_PAIRS = 4000  # one-step pairs per session the criterion reads (an evenly spaced subset beyond)


def one_step_pairs(latents: Tensor, within: Optional[Tensor] = None, select: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """``(current (N, P), following (N, P))``: the one-step pairs ``(x_t, x_{t+1})`` of ``latents (trials, T, P)`` whose two
    steps are both True in ``within (trials, T)`` (None: all) and whose later step is True in ``select (trials, T)``."""
    pairs = torch.ones_like(latents[:, 1:, 0], dtype=torch.bool) if within is None else within[:, 1:] & within[:, :-1]
    if select is not None:
        pairs = pairs & select[:, 1:]
    return latents[:, :-1][pairs], latents[:, 1:][pairs]


def least_squares_map(current: Tensor, following: Tensor) -> tuple[Tensor, Tensor]:
    """``(A (P, P), b (P,))``: least squares ``following ~ current A^T + b`` over the rows of ``current, following (N, P)``."""
    design = torch.cat([current, torch.ones_like(current[:, :1])], -1)
    coefficients = torch.linalg.lstsq(design, following).solution  # (P + 1, P)
    return coefficients[:-1].T, coefficients[-1]


def frame_map(latents: Tensor, steps: Optional[Tensor], reference: Tensor, reference_steps: Optional[Tensor]) -> Tensor:
    """The orthogonal ``Q (R, R)`` taking a session's latents ``latents (trials, T, R)`` into the frame of the
    reference session's ``reference (trials', T', R)``, ``x' = Q x^`` (module docstring); ``steps``,
    ``reference_steps`` ``(trials, T)``: their observed steps (None: all)."""
    for name, value in (("latents", latents), ("reference", reference)):
        if value.ndim != 3 or value.shape[-1] != reference.shape[-1] or not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name} must be finite latents (trials, T, R) with R = {reference.shape[-1]}, got shape {tuple(value.shape)}")
    current, following = one_step_pairs(latents.double().cpu(), None if steps is None else steps.cpu())
    reference_pairs = one_step_pairs(reference.double().cpu(), None if reference_steps is None else reference_steps.cpu())
    if min(current.shape[0], reference_pairs[0].shape[0]) <= reference.shape[-1] + 1:
        raise ValueError("latents and reference each need more than R + 1 one-step pairs (the reference map's coefficients)")
    keep = torch.linspace(0, current.shape[0] - 1, min(current.shape[0], MAX_PAIRS)).round().long()  # at most MAX_PAIRS, evenly spaced
    linear, offset = least_squares_map(*reference_pairs)  # F_0(x) = A_0 x + c_0
    return _matching_rotation(current[keep], following[keep], linear, offset)


def _mismatch(q: Tensor, current: Tensor, following: Tensor, linear: Tensor, offset: Tensor) -> Tensor:
    """``J(Q) = mean |Q x_{t+1} - F_0(x_t Q^T)|^2`` over the session's pairs ``current, following (N, R)`` (rows)."""
    return (following @ q.T - current @ q.T @ linear.T - offset).square().sum(-1).mean()


def _matching_rotation(current: Tensor, following: Tensor, linear: Tensor, offset: Tensor) -> Tensor:
    """The orthogonal ``Q (R, R)`` minimizing :func:`_mismatch`: L-BFGS over ``Q = expm(K - K^T) D`` from NUM_STARTS starts
    per sign of the determinant (D = I or diag(-1, 1, ...)); the earlier start wins ties."""
    dim = current.shape[-1]
    generator = torch.Generator().manual_seed(0)
    best, best_error = torch.eye(dim, dtype=torch.float64), float("inf")
    for flip in ([1.0], [-1.0]):
        sign = torch.diag(torch.tensor(flip + [1.0] * (dim - 1), dtype=torch.float64))
        for start in range(NUM_STARTS if dim > 1 else 1):
            skew = torch.zeros(dim, dim, dtype=torch.float64) if start == 0 else 2.0 * torch.randn(dim, dim, dtype=torch.float64, generator=generator)
            q, error = _descend(skew, sign, lambda q: _mismatch(q, current, following, linear, offset))
            if error < best_error - 1e-9:
                best, best_error = q, error
    return best


def _descend(start: Tensor, sign: Tensor, objective) -> tuple[Tensor, float]:
    """L-BFGS on ``Q = expm(K - K^T) sign`` from ``K = start (R, R)``; returns ``(Q, objective(Q))`` at its end."""
    raw = start.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([raw], max_iter=100, tolerance_grad=1e-10, tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        value = objective(torch.linalg.matrix_exp(raw - raw.T) @ sign)
        value.backward()
        return value

    optimizer.step(closure)
    with torch.no_grad():
        q = torch.linalg.matrix_exp(raw - raw.T) @ sign
        return q, float(objective(q))


def matched_frames(directions: Tensor, latents: Tensor, steps: Optional[Tensor], blocks: list) -> Tensor:
    """Readout rows ``directions (D, R)`` with every block's rows after the first re-expressed in the first's frame,
    ``P_s -> P_s Q_s^T`` (module docstring); ``latents (trials, T, R)`` each trial's projection on its own
    session's rows, ``steps (trials, T)`` its observed steps (None: all), ``blocks`` ``[(trials, channels), ...]``.
    A session with fewer channels than R (a zero column) or too few pairs keeps its own frame."""
    step_sets = [None if steps is None else steps[trials] for trials, _ in blocks]
    directions = directions.clone()
    for (trials, channels), own_steps in list(zip(blocks, step_sets))[1:]:
        if not all(bool((directions[rows].norm(dim=0) > 0).all()) for rows in (channels, blocks[0][1])):
            continue
        try:
            rotation = frame_map(latents[trials], own_steps, latents[blocks[0][0]], step_sets[0])
        except ValueError:  # too few one-step pairs
            continue
        directions[channels] = (directions[channels].double() @ rotation.T.to(directions.device)).to(directions.dtype)
    return directions
