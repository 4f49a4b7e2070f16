"""Neural summary statistics on cases with known values."""

import numpy as np
import pytest
import torch

from pyro_neurodyn.metrics import (
    band_power,
    fano_factor,
    interspike_intervals,
    lag_autocorrelation,
    mean_rate,
    population_autocorrelation,
    trial_rates,
)


def test_mean_rate_of_constant_counts_and_bin_size():
    y = np.full((3, 10, 2), 4.0)
    y[..., 1] = 2.0
    np.testing.assert_allclose(mean_rate(y), [4.0, 2.0])
    np.testing.assert_allclose(mean_rate(torch.tensor(y), bin_size=0.01), [400.0, 200.0])
    assert trial_rates(y).shape == (3, 2)
    assert mean_rate(np.stack([y, 2 * y])).shape == (2, 2)  # leading draw dim kept


def test_fano_factor_of_poisson_regular_and_bursty_counts():
    """Poisson counts: Fano 1 (its estimator's sd for 200 trials of 500 bins at rate 3 is ~0.004, so 0.03
    is > 7 sd); constant counts: 0; counts 0 or 2k with equal odds: var/mean = k (here 5)."""
    rng = np.random.default_rng(0)
    assert abs(fano_factor(rng.poisson(3.0, (200, 500, 1)))[0] - 1.0) < 0.03
    np.testing.assert_allclose(fano_factor(np.full((2, 50, 1), 3.0)), [0.0])
    bursty = 10.0 * np.tile([0.0, 1.0], 50)[None, :, None]
    np.testing.assert_allclose(fano_factor(bursty), [5.0])
    assert np.isnan(fano_factor(np.zeros((2, 5, 1)))).all()


def test_lag_autocorrelation_of_ar1_and_alternating_series():
    """AR(1) with coefficient 0.8: lag-1 autocorrelation 0.8 and lag-2 0.64 (bias of the estimator at
    T = 2000 is O(1/T) and its sd ~ sqrt((1 - phi^2)/T) / sqrt(trials) ~ 0.003 over 50 trials: 0.02 is
    > 6 sd); an alternating series has autocorrelation exactly -(T-1)/T at lag 1."""
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(50, 2000, 1))
    x = np.zeros_like(noise)
    for t in range(1, x.shape[1]):
        x[:, t] = 0.8 * x[:, t - 1] + noise[:, t]
    assert abs(lag_autocorrelation(x)[0] - 0.8) < 0.02
    assert abs(lag_autocorrelation(x, lag=2)[0] - 0.64) < 0.02
    alternating = np.tile([1.0, -1.0], 10)[None, :, None]
    np.testing.assert_allclose(lag_autocorrelation(alternating), [-19 / 20])
    with pytest.raises(ValueError, match="lag"):
        lag_autocorrelation(alternating, lag=20)


def test_band_power_of_sinusoids():
    """A sinusoid on an exact frequency bin has all its power there; two equal-amplitude ones split it."""
    t = np.arange(200) / 100.0  # 2 s at 100 Hz: bins every 0.5 Hz
    ten = np.sin(2 * np.pi * 10 * t)
    both = ten + np.sin(2 * np.pi * 30 * t)
    y = np.stack([ten, both], -1)[None]
    np.testing.assert_allclose(band_power(y, (8, 12), sampling_rate=100), [1.0, 0.5], atol=1e-10)
    np.testing.assert_allclose(band_power(y, (13, 50), sampling_rate=100), [0.0, 0.5], atol=1e-10)
    with pytest.raises(ValueError, match="band"):
        band_power(y, (12, 8))


def test_interspike_intervals_of_counts():
    spikes = np.zeros((2, 10, 1))
    spikes[0, [1, 4, 9], 0] = 1
    spikes[1, 2, 0] = 2  # two spikes in one bin: an interval of 0
    spikes[1, 5, 0] = 1
    np.testing.assert_array_equal(interspike_intervals(spikes), [3, 5, 0, 3])
    with pytest.raises(ValueError, match="spikes"):
        interspike_intervals(spikes - 0.5)


def test_constant_trials_are_left_out_and_all_constant_channels_give_nan():
    """A silent neuron in one trial must not make band power or autocorrelation undefined for the others
    (replicated spike counts often have such trials); a channel constant in every trial gives NaN."""
    t = np.arange(64)
    wave = np.sin(2 * np.pi * 8 * t / 64)  # all power at 8 cycles per 64 steps, i.e. 0.125 cycles/step
    y = np.zeros((2, 64, 2))
    y[0, :, 0] = wave  # channel 0: oscillating in trial 0, constant in trial 1; channel 1: constant
    power = band_power(y, (0.1, 0.2))
    assert power[0] == pytest.approx(1.0) and np.isnan(power[1])
    autocorrelation = lag_autocorrelation(y, 1)
    assert autocorrelation[0] == pytest.approx(lag_autocorrelation(y[:1], 1)[0]) and np.isnan(autocorrelation[1])


def test_population_autocorrelation_of_ar1_channels_and_rotation_invariance():
    """Independent AR(1) channels with phi = 0.8: acf(l) ~ 0.8^l (sd of each estimate ~ 0.002 over 20 x
    1000 x 3 points, bias O(1/T): 0.02 is > 6 sd); rotating the channels leaves it unchanged exactly."""
    rng = np.random.default_rng(2)
    noise = rng.normal(size=(20, 1000, 3))
    x = np.zeros_like(noise)
    for t in range(1, x.shape[1]):
        x[:, t] = 0.8 * x[:, t - 1] + noise[:, t]
    acf = population_autocorrelation(x, 4)
    np.testing.assert_allclose(acf, 0.8 ** np.arange(4), atol=0.02)
    rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    np.testing.assert_allclose(population_autocorrelation(x @ rotation, 4), acf, rtol=1e-10)
    with pytest.raises(ValueError, match="num_lags"):
        population_autocorrelation(x, 1001)
