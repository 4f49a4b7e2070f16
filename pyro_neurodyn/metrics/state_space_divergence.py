"""State-space divergence D_stsp: how well generated trajectories fill the true attractor.

``D_stsp = KL(p_true || p_gen) = integral p_true(x) log(p_true(x) / p_gen(x)) dx``, where ``p_true`` and
``p_gen`` are the occupation measures (the distribution of visited points, trials and time pooled)
of the recorded and the freely generated trajectories (Koppe et al. 2019, PLOS Comput Biol
15:e1007263; Brenner et al. 2022, ICML; Hess et al. 2023, ICML; Pals et al. 2024, NeurIPS). Time order
is ignored, so the two sets may differ in trials and length; they must share the dimensions.

Two estimators, as in those papers:

- :func:`histogram_kl`, for few dimensions (the papers: up to about 5): Laplace-smoothed histograms.
- :func:`gaussian_mixture_kl`, for more: each occupation measure is smoothed into a Gaussian
  mixture with one isotropic component (variance sigma^2 = 1) per visited point, and the KL is
  estimated by Monte Carlo.

:func:`state_space_divergence` picks between them by dimension. Both work in data units, so the
data should be on comparable scales (the papers z-score each channel of the recording; the
generated data must then be transformed with the same means and scales, not re-standardised).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional

import torch
from torch import Tensor

from ..data.validation import as_trials, check_count, check_magnitude, check_positive

__all__ = ["KLEstimate", "gaussian_mixture_kl", "histogram_kl", "state_space_divergence"]

HISTOGRAM_MAX_DIMS = 5
BOX_MARGIN = 0.1  # the histogram box extends this many standard deviations of y_true past its extremes
_MAX_DISTANCE_ENTRIES = 2**22  # entries of one (samples, components) distance block: 32 MiB in float64


class KLEstimate(NamedTuple):
    """A Monte Carlo estimate of a KL divergence (nats) and its standard error (nats)."""

    value: float
    stderr: float


def _point_sets(y_true: Any, y_gen: Any) -> tuple[Tensor, Tensor]:
    """Validate both recordings and pool trials and time: float64 ``(N, D)`` and ``(M, D)`` on ``y_true``'s device."""
    true = as_trials(y_true, "y_true", min_steps=1, dtype=torch.float64)
    gen = as_trials(y_gen, "y_gen", min_steps=1, dtype=torch.float64, device=true.device)
    if true.shape[-1] != gen.shape[-1]:
        raise ValueError(
            f"y_true and y_gen must have the same number of dimensions (last axis), "
            f"got {true.shape[-1]} and {gen.shape[-1]}"
        )
    return true.reshape(-1, true.shape[-1]), gen.reshape(-1, gen.shape[-1])


def _bin_indices(points: Tensor, low: Tensor, width: Tensor, bins: int) -> Tensor:
    """Linear index of each point's bin ``(N,)``; points outside ``[low, low + width]`` go to the edge bins."""
    coordinates = torch.floor(bins * (points - low) / width).clamp_(0, bins - 1).long()
    strides = bins ** torch.arange(points.shape[1], dtype=torch.int64, device=points.device)
    return (coordinates * strides).sum(1)


def histogram_kl(y_true: Any, y_gen: Any, bins: int = 30, smoothing_alpha: float = 1e-5) -> float:
    """D_stsp by binning: KL between Laplace-smoothed histograms of the two point sets (nats).

    The box around the true points, per dimension ``[min - 0.1 std, max + 0.1 std]`` of ``y_true``
    (the default of Hess et al. 2023's code; Brenner et al. 2022 used ``[-2 std, 2 std]``), is cut
    into ``bins`` equal bins per dimension (30 in those papers), ``B = bins^D`` in all. With ``n_i``
    and ``m_i`` the numbers of true and generated points in bin i (N and M in all) and alpha the
    pseudo-count of Laplace smoothing (1e-5, the value in the code of Koppe et al. 2019, Brenner et al.
    2022 and Hess et al. 2023; it keeps every ``q_i`` positive, so no other epsilon is needed),

        p_i = (n_i + alpha) / (N + alpha B),   q_i = (m_i + alpha) / (M + alpha B),
        D_stsp = sum_i p_i log(p_i / q_i).

    The sum runs over the occupied bins exactly and adds the ``B - #occupied`` empty bins in closed
    form, so memory is O(N + M), not O(B). Generated points outside the box are counted in the
    nearest edge bin. The published code drops them instead (and returns NaN when none is left;
    Brenner et al.'s also drops bin 0 by an off-by-one), which renormalises the generated histogram
    over the points that stayed and so can rate a trajectory that leaves the attractor better than
    one that stays near it. True points are never outside the box.

    Args:
        y_true, y_gen: ``(trials, time, dims)`` or ``(time, dims)``, the same ``dims``.
        bins: bins per dimension.
        smoothing_alpha: pseudo-count added to every bin of both histograms, > 0.

    Raises:
        ValueError: ``y_true`` is constant along a dimension (no box to bin), or ``bins^D`` overflows.
    """
    true, gen = _point_sets(y_true, y_gen)
    bins = check_count(bins, "bins")
    alpha = check_positive(smoothing_alpha, "smoothing_alpha")
    dims = true.shape[1]
    if dims * math.log(bins) >= 62 * math.log(2):
        raise ValueError(f"bins^D = {bins}^{dims} bins is too many to index; use gaussian_mixture_kl for D = {dims}")
    spread = true.std(0) if len(true) > 1 else true.new_zeros(dims)
    flat = (spread == 0).nonzero().flatten()
    if len(flat):
        raise ValueError(f"y_true is constant along dimension(s) {flat.tolist()}: the histogram box has zero width")
    low = true.min(0).values - BOX_MARGIN * spread
    high = true.max(0).values + BOX_MARGIN * spread
    occupied, which = torch.unique(
        torch.cat([_bin_indices(true, low, high - low, bins), _bin_indices(gen, low, high - low, bins)]),
        return_inverse=True,
    )
    true_counts = torch.bincount(which[: len(true)], minlength=len(occupied)).double()
    gen_counts = torch.bincount(which[len(true) :], minlength=len(occupied)).double()
    num_bins = float(bins) ** dims
    true_norm, gen_norm = len(true) + alpha * num_bins, len(gen) + alpha * num_bins
    p = (true_counts + alpha) / true_norm
    q = (gen_counts + alpha) / gen_norm
    empty_p, empty_q = alpha / true_norm, alpha / gen_norm
    empty_term = (num_bins - len(occupied)) * empty_p * math.log(empty_p / empty_q)
    return float((p * (p.log() - q.log())).sum() + empty_term)


def _thinned(points: Tensor, max_points: Optional[int]) -> Tensor:
    """At most ``max_points`` evenly spaced rows of ``points`` (all of them when ``max_points`` is None)."""
    if max_points is None or len(points) <= max_points:
        return points
    return points[torch.linspace(0, len(points) - 1, max_points, dtype=torch.float64, device=points.device).round().long()]


def mixture_log_density(x: Tensor, centers: Tensor, scale: float) -> Tensor:
    """``log (1/M) sum_m N(x_s; centers_m, scale^2 I)`` for every row of ``x``: ``(S, D), (M, D) -> (S,)``.

    Evaluated with ``logsumexp`` over components, in blocks of samples to bound memory; squared
    distances ``|x|^2 - 2 x.c + |c|^2`` in float64 (clamped at 0 against rounding).
    """
    dims = x.shape[1]
    log_norm = math.log(len(centers)) + 0.5 * dims * math.log(2 * math.pi * scale**2)
    center_sq = centers.pow(2).sum(1)
    block = max(1, _MAX_DISTANCE_ENTRIES // len(centers))
    out = []
    for chunk in x.split(block):
        sq_dist = (chunk.pow(2).sum(1, keepdim=True) - 2 * chunk @ centers.T + center_sq).clamp_(min=0)
        out.append(torch.logsumexp(-0.5 * sq_dist / scale**2, dim=1) - log_norm)
    return torch.cat(out)


def gaussian_mixture_kl(
    y_true: Any,
    y_gen: Any,
    scale: float = 1.0,
    num_samples: int = 1000,
    max_points: Optional[int] = 10_000,
    seed: Optional[int] = 0,
) -> KLEstimate:
    """D_stsp with Gaussian-mixture occupation measures, by Monte Carlo (nats), with its standard error.

    ``p_true(x) = 1/N sum_t N(x; y_true_t, sigma^2 I)``, ``p_gen(x) = 1/M sum_t N(x; y_gen_t, sigma^2 I)``
    (one component per time point, sigma = ``scale`` = 1 as in Koppe et al. 2019, Brenner et al. 2022
    and Pals et al. 2024), and

        D_stsp ~= 1/S sum_s [log p_true(x_s) - log p_gen(x_s)],   x_s ~ p_true,

    drawing ``x_s = y_true_t + sigma eps`` with t uniform and ``eps ~ N(0, I)`` (the Monte Carlo KL of
    Gaussian mixtures of Hershey & Olsen 2007, ICASSP); ``stderr`` is the sample standard deviation of
    the log-ratios over sqrt(S). Both log densities are computed in log space
    (``logsumexp`` over components), so a sample far from every generated point contributes its true,
    large log-ratio: the published code exponentiates, drops the samples whose density underflows to
    0, and thereby under-reports exactly the worst models.

    Cost O(S (N + M) D). Long trajectories are thinned to ``max_points`` evenly spaced points each
    (10 000 by default, as the 10 000 leading steps in Pals et al. 2024's code), which keeps the
    occupation measure of a stationary trajectory; pass ``None`` to use every point. The mixtures are
    finite-sample smoothings, so the value depends on N and M (in 64 dims, noticeably): compare models
    on the same data with the same number of generated points.

    Args:
        y_true, y_gen: ``(trials, time, dims)`` or ``(time, dims)``, the same ``dims``.
        scale: sigma, the standard deviation of every mixture component.
        num_samples: S, Monte Carlo samples from ``p_true``.
        max_points: cap on the points of each set (``None``: no cap).
        seed: seed of the samples (``None``: torch's global generator).
    """
    true, gen = _point_sets(y_true, y_gen)
    check_magnitude(true, "y_true"), check_magnitude(gen, "y_gen")  # squared distances in float64
    scale = check_positive(scale, "scale")
    num_samples = check_count(num_samples, "num_samples", minimum=2)
    if max_points is not None:
        max_points = check_count(max_points, "max_points")
    generator = None if seed is None else torch.Generator().manual_seed(check_count(seed, "seed", minimum=0))
    true, gen = _thinned(true, max_points), _thinned(gen, max_points)
    # drawn on the CPU (the seeded generator's), the same numbers wherever the data are
    which = torch.randint(len(true), (num_samples,), generator=generator).to(true.device)
    x = true[which] + scale * torch.randn(num_samples, true.shape[1], generator=generator, dtype=torch.float64).to(true.device)
    log_ratio = mixture_log_density(x, true, scale) - mixture_log_density(x, gen, scale)
    return KLEstimate(float(log_ratio.mean()), float(log_ratio.std() / math.sqrt(num_samples)))


def state_space_divergence(
    y_true: Any,
    y_gen: Any,
    *,
    bins: int = 30,
    scale: float = 1.0,
    num_samples: int = 1000,
    max_points: Optional[int] = 10_000,
    seed: Optional[int] = 0,
) -> float:
    """D_stsp = KL(p_true || p_gen) of the occupation measures (nats); see the module docstring.

    ``y_true``, ``y_gen``: ``(trials, time, dims)`` or ``(time, dims)``, the same ``dims``.

    Up to ``HISTOGRAM_MAX_DIMS = 5`` dimensions: :func:`histogram_kl` with ``bins`` per dimension; above:
    the Monte Carlo :func:`gaussian_mixture_kl` (sigma = ``scale``, ``num_samples``, ``max_points``,
    ``seed``), whose standard error that function also returns.
    """
    dims = as_trials(y_true, "y_true", min_steps=1, dtype=torch.float64).shape[-1]
    if dims <= HISTOGRAM_MAX_DIMS:
        return histogram_kl(y_true, y_gen, bins=bins)
    return gaussian_mixture_kl(y_true, y_gen, scale=scale, num_samples=num_samples, max_points=max_points, seed=seed).value
