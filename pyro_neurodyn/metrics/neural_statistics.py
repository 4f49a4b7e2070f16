"""Summary statistics of neural recordings, for posterior predictive checks (data vs replicated data).

Every function takes recordings ``(..., trials, T, channels)`` (numpy or torch; leading dims such as
posterior draws are kept, a 2-D array is one trial) and returns one value per channel, averaged over
trials: shape ``(..., channels)``. Rates are per time bin unless ``bin_size`` (seconds per bin) is given.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..data.validation import _to_numeric_tensor, check_count, check_positive
from .spectral import _power_of_two_scale, _power_of_two_scaled

__all__ = [
    "band_power",
    "fano_factor",
    "interspike_intervals",
    "lag_autocorrelation",
    "mean_rate",
    "population_autocorrelation",
    "trial_rates",
]


def _recordings(y: Any, name: str = "y", min_steps: int = 2) -> np.ndarray:
    """float64 numpy ``(..., trials, T, channels)``; ValueError on bad shape or non-finite values."""
    # ValueError for ragged lists, TypeError for strings, objects or complex numbers, naming the argument
    array = _to_numeric_tensor(y, name).cpu().numpy().astype(np.float64)
    if array.ndim == 2:
        array = array[None]
    if array.ndim < 3:
        raise ValueError(f"{name} must be (..., trials, time, channels) or (time, channels), got shape {array.shape}")
    if array.shape[-2] < min_steps or 0 in array.shape:
        raise ValueError(f"{name} needs at least {min_steps} time steps and non-empty dims, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def trial_rates(y: Any, bin_size: float = 1.0) -> np.ndarray:
    """Mean rate of each trial and channel, ``mean_t y / bin_size``, shape ``(..., trials, channels)``."""
    return _recordings(y, min_steps=1).mean(axis=-2) / check_positive(bin_size, "bin_size")


def mean_rate(y: Any, bin_size: float = 1.0) -> np.ndarray:
    """Mean rate ``mean_{trials, t} y / bin_size`` (counts per second with ``bin_size`` in seconds), ``(..., channels)``."""
    return trial_rates(y, bin_size).mean(axis=-2)


def fano_factor(y: Any) -> np.ndarray:
    """Fano factor of the counts in time bins, ``var_t y / mean_t y`` per trial, averaged over trials.

    1 for a homogeneous Poisson process, < 1 for regular firing, > 1 for bursty or rate-modulated firing.
    Channels silent in a trial (mean 0) are left out of the average (NaN if silent in every trial).
    ``y (..., trials, T, channels)`` -> ``(..., channels)``.
    """
    array = _recordings(y)
    # var / mean = s var(y / s) / mean(y / s): with s a power of two (exact) at the series' largest count,
    # the variance does not overflow for counts beyond 1e154
    scale = _power_of_two_scale(array, axis=-2)
    array = array / scale
    mean = array.mean(axis=-2)
    ratio = np.divide(array.var(axis=-2), mean, out=np.full_like(mean, np.nan), where=mean > 0) * scale.squeeze(-2)
    return _mean_over_trials(ratio)


def lag_autocorrelation(y: Any, lag: int = 1) -> np.ndarray:
    """Autocorrelation at ``lag`` steps, ``sum_t (y_t - m)(y_{t+lag} - m) / sum_t (y_t - m)^2`` per trial
    (m the trial's mean; the standard biased estimator), averaged over the trials in which the channel is
    not constant (NaN if it is constant in all). ``y (..., trials, T, channels)`` -> ``(..., channels)``."""
    array = _recordings(y)
    lag = check_count(lag, "lag")
    if lag >= array.shape[-2]:
        raise ValueError(f"lag must be below the number of time steps {array.shape[-2]}, got {lag}")
    array = _power_of_two_scaled(array, axis=-2)  # correlations are scale-free; squares of |y| > 1e154 overflow
    centred = array - array.mean(axis=-2, keepdims=True)
    numerator = (centred[..., lag:, :] * centred[..., :-lag, :]).sum(axis=-2)
    denominator = np.square(centred).sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _mean_over_trials(numerator / denominator)


def population_autocorrelation(y: Any, num_lags: int) -> np.ndarray:
    """Autocorrelation of a population's activity pooled over channels, lags ``0 .. num_lags - 1``: ``(..., num_lags)``.

    ``acf(l) = mean_{trials, t} sum_i x_i(t) x_i(t + l) / mean_{trials, t} sum_i x_i(t)^2`` with ``x`` the
    activity minus its mean over trials and time, per channel. Invariant to rotations of the channels
    (e.g. ``U z`` of a low-rank network in any latent basis); ``acf(0) = 1``. For a stationary AR(1)
    with coefficient phi in every channel, ``acf(l) ~ phi^l``. ``y (..., trials, T, channels)``.
    """
    array = _recordings(y)
    num_lags = check_count(num_lags, "num_lags")
    if num_lags > array.shape[-2]:
        raise ValueError(f"num_lags must be at most the number of time steps {array.shape[-2]}, got {num_lags}")
    array = _power_of_two_scaled(array, axis=(-3, -2, -1))  # one scale for the whole population: scale-free
    x = array - array.mean(axis=(-3, -2), keepdims=True)
    variance = np.square(x).sum(-1).mean(axis=(-2, -1))
    lagged = [(x[..., : x.shape[-2] - lag, :] * x[..., lag:, :]).sum(-1).mean(axis=(-2, -1)) for lag in range(num_lags)]
    return np.stack(lagged, axis=-1) / variance[..., None]


def band_power(y: Any, band: Sequence[float], sampling_rate: float = 1.0) -> np.ndarray:
    """Fraction of a channel's power in ``band = (low, high)`` (Hz with ``sampling_rate`` in Hz; else cycles
    per step), ``low <= f < high``: per trial, the periodogram of the mean-removed series (the unsmoothed
    spectrum of :func:`~pyro_neurodyn.metrics.smoothed_power_spectrum`), summed inside the band over its
    total; averaged over the trials in which the channel is not constant (NaN if it is constant in all,
    e.g. a silent neuron). In [0, 1]. ``y (..., trials, T, channels)`` -> ``(..., channels)``.

    Raises:
        ValueError: ``band`` is not ``(low, high)`` with ``0 <= low < high``, lies above the Nyquist frequency
            ``sampling_rate / 2``, or holds no frequency of the periodogram (bins ``sampling_rate / T`` apart).
    """
    array = _recordings(y)
    try:
        low, high = (float(f) for f in band)
    except (TypeError, ValueError) as error:
        raise ValueError(f"band must be a pair (low, high) of frequencies, got {band!r}") from error
    if not 0 <= low < high:
        raise ValueError(f"band must be (low, high) with 0 <= low < high, got {tuple(band)}")
    sampling_rate = check_positive(sampling_rate, "sampling_rate")
    num_steps = array.shape[-2]
    frequency = np.fft.rfftfreq(num_steps, d=1.0 / sampling_rate)
    if low > sampling_rate / 2:
        raise ValueError(
            f"band {tuple(band)} lies above the Nyquist frequency sampling_rate / 2 = {sampling_rate / 2:g}: "
            "a sampled series has no power there"
        )
    inside = (frequency >= low) & (frequency < high)
    if not inside.any():
        raise ValueError(
            f"band {tuple(band)} holds no frequency of the periodogram of T = {num_steps} steps "
            f"(bins every sampling_rate / T = {sampling_rate / num_steps:g}): widen the band or use longer trials"
        )
    array = _power_of_two_scaled(array, axis=-2)  # power fractions are scale-free; squares of |y| > 1e154 overflow
    power = np.abs(np.fft.rfft(array - array.mean(axis=-2, keepdims=True), axis=-2)) ** 2  # (..., trials, F, channels)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = power[..., inside, :].sum(axis=-2) / power.sum(axis=-2)  # (..., trials, channels), NaN if constant
    return _mean_over_trials(fraction)


def _mean_over_trials(values: np.ndarray) -> np.ndarray:
    """Mean over axis -2 (trials) ignoring NaN; NaN (without a warning) where every trial is NaN."""
    counts = np.isfinite(values).sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.nansum(values, axis=-2) / counts, np.nan)


def interspike_intervals(spikes: Any) -> np.ndarray:
    """Intervals (in bins) between successive non-empty bins of each trial and channel, pooled: ``(n,)``.

    With counts in bins, a bin holding c > 1 spikes contributes c - 1 intervals of 0 bins.
    ``spikes (..., trials, T, channels)``, all leading dims pooled.
    """
    array = _recordings(spikes, "spikes", min_steps=1)
    if (array < 0).any() or (array != np.round(array)).any():
        raise ValueError("spikes must be non-negative integer counts")
    num_steps = array.shape[-2]
    counts = np.moveaxis(array, -1, -2).reshape(-1).astype(np.int64)  # series (trial, channel) after series
    positions = np.repeat(np.arange(counts.size), counts)  # one entry per spike, in time order per series
    same_series = positions[1:] // num_steps == positions[:-1] // num_steps
    return np.diff(positions % num_steps)[same_series]
