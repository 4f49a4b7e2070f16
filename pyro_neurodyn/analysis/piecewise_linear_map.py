"""The piecewise-linear latent map ``F(x) = a x + V phi(U x - theta)`` (theta the thresholds) of the fixed-point finder: validated
parameters (:class:`_Network`), the map itself, and its linear piece on a region (activation pattern,
region system ``M x = b``, Jacobian). The maths is in :mod:`~pyro_neurodyn.analysis.fixed_points`."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..data.validation import _check_finite, _to_numeric_tensor

__all__ = ["latent_map"]

ACTIVATIONS = ("relu", "clipped_relu")
RESIDUAL_RTOL = 1e-7


class _Network(NamedTuple):
    """Validated float64 parameters; ``clip`` is None for the ReLU."""

    a: np.ndarray  # (R,)
    V: np.ndarray  # (R, N)
    U: np.ndarray  # (N, R)
    threshold: np.ndarray  # (N,)
    clip: Any  # (N,) or None


# ---------------------------------------------------------------------------------------- validation
def _as_array(value: Any, name: str) -> np.ndarray:
    tensor = _to_numeric_tensor(value, name).cpu().double()  # any device and dtype -> float64 numpy
    _check_finite(tensor, name)
    return tensor.numpy()


def _validate(a, V, U, threshold, activation, clip) -> _Network:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    V, U, threshold = _as_array(V, "V"), _as_array(U, "U"), _as_array(threshold, "threshold")
    if U.ndim != 2 or U.shape[0] == 0 or U.shape[1] == 0:
        raise ValueError(f"U must be a non-empty 2-D array (N, R), got shape {U.shape}")
    N, R = U.shape
    if V.shape != (R, N):
        raise ValueError(f"V must have shape (R, N) = {(R, N)} to match U {U.shape}, got {V.shape}")
    if threshold.shape != (N,):
        raise ValueError(f"threshold must have shape (N,) = {(N,)} to match U {U.shape}, got {threshold.shape}")
    a = _as_array(a, "a")
    if a.ndim == 0:
        a = np.full(R, float(a))
    if a.shape != (R,):
        raise ValueError(f"a must be a scalar or have shape (R,) = {(R,)}, got {a.shape}")
    if activation == "relu":
        return _Network(a, V, U, threshold, None)
    clip = _as_array(clip, "clip")
    clip = np.full(N, float(clip)) if clip.ndim == 0 else clip
    if clip.shape != (N,):
        raise ValueError(f"clip must be a scalar or have shape (N,) = {(N,)}, got {clip.shape}")
    if not (clip > 0).all():
        raise ValueError(f"clip must be > 0, got min {clip.min()}")
    return _Network(a, V, U, threshold, clip)


# ---------------------------------------------------------------------------------------- the map
def _breakpoints(net: _Network) -> np.ndarray:
    """``(B, N)`` breakpoints of phi per unit: [0] for the ReLU, [0, c] for the clipped ReLU."""
    zeros = np.zeros((1, len(net.threshold)))
    return zeros if net.clip is None else np.concatenate([zeros, net.clip[None]])


def _phi(p: np.ndarray, net: _Network) -> np.ndarray:
    relu = np.maximum(p, 0.0)
    return relu if net.clip is None else np.minimum(relu, net.clip)


def latent_map(x: Any, a: Any, V: Any, U: Any, threshold: Any, activation: str = "relu", *, clip: Any = 1.0) -> np.ndarray:
    """``F(x) = a x + V phi(U x - theta)`` ``(..., R)`` for ``x (..., R)`` (numpy float64; the map whose fixed points are found);
    ``a``, ``V (R, N)``, ``U (N, R)``, ``threshold`` theta ``(N,)`` and ``clip`` as in :func:`~pyro_neurodyn.analysis.fixed_points`."""
    net = _validate(a, V, U, threshold, activation, clip)
    x = _as_array(x, "x")
    return net.a * x + _phi(x @ net.U.T - net.threshold, net) @ net.V.T


def _patterns(p: np.ndarray, net: _Network) -> np.ndarray:
    """Activation pattern (0 below, 1 linear, 2 clipped) of pre-activations ``p (..., N)``, strict inequalities."""
    return sum((p > b).astype(np.int8) for b in _breakpoints(net))


def _slopes(patterns: np.ndarray) -> np.ndarray:
    return (patterns == 1).astype(np.float64)


def _region_system(patterns: np.ndarray, net: _Network) -> tuple[np.ndarray, np.ndarray]:
    """``M (..., R, R)`` and ``b (..., R)`` of the regions with activation ``patterns (..., N)``."""
    slope = _slopes(patterns)
    offset = np.where(patterns == 2, net.clip if net.clip is not None else 0.0, 0.0)
    M = np.diag(1.0 - net.a) - np.einsum("rn,...n,ns->...rs", net.V, slope, net.U)
    return M, (offset - slope * net.threshold) @ net.V.T


def _jacobians(patterns: np.ndarray, net: _Network) -> np.ndarray:
    return np.diag(net.a) + np.einsum("rn,...n,ns->...rs", net.V, _slopes(patterns), net.U)


def _latent(x: np.ndarray, net: _Network) -> np.ndarray:
    return net.a * x + _phi(x @ net.U.T - net.threshold, net) @ net.V.T
