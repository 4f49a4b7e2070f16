"""Power-spectrum distance D_H: Hellinger distance between smoothed power spectra, per channel.

Temporal counterpart of the state-space divergence: it compares how power is distributed over
frequencies in the recording and in freely generated data (Mikhaeil et al. 2022, NeurIPS; Hess et al.
2023, ICML; Pals et al. 2024, NeurIPS, with smoothing sigma = 20 frequency bins on EEG).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Union

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from ..data.validation import as_trials, check_count, check_positive
from .reconstruction import check_multioutput, reduce_channels

__all__ = ["PowerSpectrum", "power_spectrum_distance", "smoothed_power_spectrum"]


class PowerSpectrum(NamedTuple):
    """Normalised, smoothed power spectrum of each channel, averaged over trials.

    Attributes:
        frequency: ``(F,)`` frequencies in cycles per time step, ``numpy.fft.rfftfreq(T)``,
            ``F = T // 2 + 1``; multiply by the sampling rate for Hz.
        density: ``(F, channels)``, every column non-negative and summing to 1.
    """

    frequency: np.ndarray
    density: np.ndarray


def _check_smoothing(smoothing: Any) -> float:
    return 0.0 if isinstance(smoothing, (int, float)) and smoothing == 0 else check_positive(smoothing, "smoothing")


def _power_of_two_scale(y: np.ndarray, axis) -> np.ndarray:
    """The power of two at or above ``y``'s largest magnitude along ``axis`` (kept dims; 1 where all 0)."""
    _, exponent = np.frexp(np.abs(y).max(axis=axis, keepdims=True))  # largest = m 2^e, m in [0.5, 1); e = 0 for 0
    return np.ldexp(1.0, exponent)


def _power_of_two_scaled(y: np.ndarray, axis) -> np.ndarray:
    """``y`` divided by :func:`_power_of_two_scale` along ``axis``.

    Scale-free statistics (z-scores, power fractions, correlations) of the result equal those of ``y``,
    and they stay finite where squares of ``y`` would overflow (|y| > 1e154) or underflow (|y| < 1e-154).
    Dividing by a power of two is exact, so for ordinary data the results are unchanged bit for bit.
    """
    return y / _power_of_two_scale(y, axis)


def normalised_power(y: np.ndarray, smoothing: float, name: str = "y") -> np.ndarray:
    """Normalised, smoothed power ``(..., F, channels)`` of float64 ``y`` ``(..., trials, T, channels)``,
    averaged over trials (leading dims, e.g. posterior draws, are kept; see :func:`smoothed_power_spectrum`)."""
    y = _power_of_two_scaled(y, axis=-2)  # z-scoring is scale-free: this keeps y.std finite for |y| up to 1e308
    std = y.std(axis=-2, keepdims=True)
    if (std == 0).any():
        index = np.argwhere(std == 0)[0]
        raise ValueError(
            f"{name} is constant in trial {index[-3]}, channel {index[-1]}: its z-scored power spectrum is undefined"
        )
    power = np.abs(np.fft.rfft((y - y.mean(axis=-2, keepdims=True)) / std, axis=-2)) ** 2
    if smoothing > 0:
        power = gaussian_filter1d(power, smoothing, axis=-2)  # mode "reflect", kernel radius 4 sigma
    return (power / power.sum(axis=-2, keepdims=True)).mean(axis=-3)


def _spectrum_of(y: np.ndarray, smoothing: float, name: str) -> PowerSpectrum:
    """Spectrum of a validated float64 array ``(trials, T, channels)``."""
    return PowerSpectrum(np.fft.rfftfreq(y.shape[1]), normalised_power(y, smoothing, name))


def smoothed_power_spectrum(y: Any, smoothing: float = 20.0) -> PowerSpectrum:
    """Per-channel power spectrum as D_H uses it (also what a spectrum plot of data vs model needs).

    For every trial n and channel c: z-score over time, ``x = (y - mean_t y) / std_t y``; power
    ``P[f] = |sum_t x_t exp(-2 pi i f t / T)|^2`` (``numpy.fft.rfft``, ``f = 0..T//2``); Gaussian
    smoothing over frequency with standard deviation ``smoothing`` bins
    (``scipy.ndimage.gaussian_filter1d``, reflecting at the ends); normalise to sum 1. The
    normalised spectra are then averaged over trials (as Pals et al. 2024's code does).
    ``smoothing = 0`` skips the smoothing.

    Args:
        y: ``(trials, time, channels)`` or ``(time, channels)``.
        smoothing: sigma of the Gaussian kernel, in frequency bins (>= 0).

    Raises:
        ValueError: a channel is constant within a trial (nothing to z-score).
    """
    smoothing = _check_smoothing(smoothing)
    return _spectrum_of(as_trials(y, "y", dtype=torch.float64, device="cpu").numpy(), smoothing, "y")


def power_spectrum_distance(
    y_true: Any,
    y_gen: Any,
    smoothing: float = 20.0,
    freq_cutoff: Optional[int] = None,
    multioutput: str = "uniform_average",
) -> Union[float, np.ndarray]:
    """D_H: Hellinger distance between the smoothed power spectra of data and model, per channel.

    With ``p_c`` and ``q_c`` the :func:`smoothed_power_spectrum` densities of channel c of ``y_true``
    and ``y_gen`` (optionally cut to the first ``freq_cutoff`` frequencies and renormalised to sum 1),

        H_c = sqrt(1/2 sum_f (sqrt p_c[f] - sqrt q_c[f])^2) = sqrt(1 - sum_f sqrt(p_c[f] q_c[f])),

    which lies in [0, 1] (0: identical spectra; 1: disjoint support). ``D_H = mean_c H_c``
    (Mikhaeil et al. 2022; Hess et al. 2023; Pals et al. 2024, who use ``smoothing = 20``).

    Args:
        y_true, y_gen: ``(trials, time, channels)`` or ``(time, channels)``, with the same number of
            time steps (one frequency grid) and channels; the number of trials may differ.
        smoothing: sigma of the Gaussian smoothing over frequency bins (>= 0).
        freq_cutoff: keep the ``freq_cutoff`` lowest frequencies, 2 to ``T // 2 + 1`` (``None``: all).
        multioutput: ``"uniform_average"`` (D_H, a float) or ``"raw_values"`` (``H_c``, ``(channels,)``).
    """
    multioutput = check_multioutput(multioutput)
    smoothing = _check_smoothing(smoothing)
    true = as_trials(y_true, "y_true", dtype=torch.float64, device="cpu").numpy()
    gen = as_trials(y_gen, "y_gen", dtype=torch.float64, device="cpu").numpy()
    if true.shape[1:] != gen.shape[1:]:
        raise ValueError(
            f"y_true and y_gen must have the same time steps and channels (one frequency grid), "
            f"got (time, channels) = {true.shape[1:]} and {gen.shape[1:]}"
        )
    if freq_cutoff is not None:
        freq_cutoff = check_count(freq_cutoff, "freq_cutoff", minimum=2)
        num_frequencies = true.shape[1] // 2 + 1
        if freq_cutoff > num_frequencies:
            raise ValueError(
                f"freq_cutoff = {freq_cutoff} exceeds the T // 2 + 1 = {num_frequencies} frequencies of T = {true.shape[1]} steps"
            )
    p = _spectrum_of(true, smoothing, "y_true").density[:freq_cutoff]
    q = _spectrum_of(gen, smoothing, "y_gen").density[:freq_cutoff]
    if (p.sum(0) == 0).any() or (q.sum(0) == 0).any():
        raise ValueError(f"freq_cutoff = {freq_cutoff} keeps no power in some channel; raise it or smooth")
    p, q = p / p.sum(0), q / q.sum(0)
    hellinger = np.sqrt(0.5 * ((np.sqrt(p) - np.sqrt(q)) ** 2).sum(0))
    return reduce_channels(hellinger, multioutput)
