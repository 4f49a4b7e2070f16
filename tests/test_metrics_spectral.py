"""D_H on pure sinusoids, whose smoothed spectra are sampled Gaussian kernels known in closed form.

A z-scored sinusoid with an integer number f of periods in T steps has all its power in rfft bin f.
``gaussian_filter1d`` with sigma = 20 turns that bin into the kernel w_j = exp(-j^2 / (2 sigma^2)) / Z
for |j| <= 4 sigma (scipy's default truncation; Z normalises), so every spectrum below is a sum of
such kernels placed at known bins (all at least 4 sigma from the ends: no reflection).
"""

import numpy as np
import pytest

from pyro_neurodyn.metrics import power_spectrum_distance, smoothed_power_spectrum

T, SIGMA = 2000, 20.0
RADIUS = int(4 * SIGMA)
FREQS = np.arange(T // 2 + 1)


def sinusoid(frequency, phase=0.0):
    """(T, 1): a sine with `frequency` periods in T steps."""
    return np.sin(2 * np.pi * frequency * np.arange(T) / T + phase)[:, None]


def kernel_at(frequency):
    """The smoothed, normalised spectrum of sinusoid(frequency): a truncated sampled Gaussian."""
    offset = FREQS - frequency
    weights = np.where(np.abs(offset) <= RADIUS, np.exp(-(offset**2) / (2 * SIGMA**2)), 0.0)
    return weights / weights.sum()


def hellinger(p, q):
    return np.sqrt(1 - np.sqrt(p * q).sum())


def test_identical_and_affinely_rescaled_data_give_zero():
    y = np.random.default_rng(0).normal(size=(2, 500, 4))
    assert power_spectrum_distance(y, y) == 0.0
    # per-channel z-scoring removes each channel's offset and scale
    assert power_spectrum_distance(y, 3 * y + np.array([5.0, -1.0, 0.0, 2.0])) == pytest.approx(0.0, abs=1e-12)


def test_distant_sinusoids_have_distance_one():
    """Peaks 400 bins apart: the kernels (radius 80 bins) do not overlap, sum sqrt(pq) = 0, D_H = 1."""
    assert power_spectrum_distance(sinusoid(300), sinusoid(700)) == pytest.approx(1.0, abs=1e-9)


def test_nearby_sinusoids_match_the_closed_form():
    """Peaks Delta = 20 bins apart.

    Exactly (truncated sampled kernels): H = sqrt(1 - sum_k sqrt(w(k - f1) w(k - f2))), to 1e-9.
    Continuous closed form: for Gaussians of equal sigma the Bhattacharyya coefficient is
    exp(-Delta^2 / (8 sigma^2)), so H = sqrt(1 - exp(-1/8)) = 0.3428; the truncated, sampled kernels
    differ from it by the Gaussian tail mass beyond the overlap (3.5 sigma: ~5e-4 in the coefficient),
    i.e. by less than 1e-3 in H.
    """
    distance = power_spectrum_distance(sinusoid(300), sinusoid(320, phase=1.0))
    assert distance == pytest.approx(hellinger(kernel_at(300), kernel_at(320)), abs=1e-9)
    assert distance == pytest.approx(np.sqrt(1 - np.exp(-(20**2) / (8 * SIGMA**2))), abs=1e-3)


def test_channels_trials_and_cutoff_against_direct_computation():
    """Two channels averaged (and raw), trial-averaged spectra, and a frequency cut-off renormalised."""
    true = np.concatenate([np.concatenate([sinusoid(300), sinusoid(500)], 1)[None],
                           np.concatenate([sinusoid(340), sinusoid(500)], 1)[None]])  # (2 trials, T, 2)
    gen = np.concatenate([sinusoid(320), sinusoid(900)], 1)  # one trial
    p0 = (kernel_at(300) + kernel_at(340)) / 2  # channel 0 of the true data, averaged over trials
    expected = np.array([hellinger(p0, kernel_at(320)), hellinger(kernel_at(500), kernel_at(900))])
    np.testing.assert_allclose(power_spectrum_distance(true, gen, multioutput="raw_values"), expected, atol=1e-9)
    assert power_spectrum_distance(true, gen) == pytest.approx(expected.mean(), abs=1e-9)
    cut = 330
    p, q = p0[:cut] / p0[:cut].sum(), kernel_at(320)[:cut] / kernel_at(320)[:cut].sum()
    got = power_spectrum_distance(true, gen, freq_cutoff=cut, multioutput="raw_values")[0]
    assert got == pytest.approx(hellinger(p, q), abs=1e-9)


def test_smoothed_power_spectrum():
    spectrum = smoothed_power_spectrum(sinusoid(250), smoothing=SIGMA)
    np.testing.assert_allclose(spectrum.frequency, np.fft.rfftfreq(T))
    np.testing.assert_allclose(spectrum.density[:, 0], kernel_at(250), atol=1e-12)
    unsmoothed = smoothed_power_spectrum(sinusoid(250), smoothing=0).density[:, 0]
    assert unsmoothed.argmax() == 250 and unsmoothed[250] == pytest.approx(1.0)


def test_bad_input():
    y = np.random.default_rng(1).normal(size=(100, 2))
    with pytest.raises(ValueError, match=r"same time steps and channels.*\(100, 2\) and \(99, 2\)"):
        power_spectrum_distance(y, y[:99])
    with pytest.raises(ValueError, match="y_gen is constant in trial 0, channel 1"):
        power_spectrum_distance(y, y * [1, 0])
    with pytest.raises(ValueError, match="smoothing must be finite and > 0"):
        power_spectrum_distance(y, y, smoothing=-1.0)
    with pytest.raises(ValueError, match="multioutput must be one of"):
        power_spectrum_distance(y, y, multioutput="variance_weighted")
