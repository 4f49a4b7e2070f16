"""Bits per spike (NLB definition) on hand-computed cases and a simulated Poisson process."""

import numpy as np
import pytest
import torch

from pyro_neurodyn.metrics import bits_per_spike, co_smoothing_bits_per_spike


def test_hand_computed_value():
    """One neuron, spikes (0, 2), rates (0.5, 1.5); the null rate is the mean count 1.

    log L(rates) = (0 - 0.5) + (2 log 1.5 - 1.5), log L(null) = -1 + (0 - 1): gain 2 log 1.5 nats
    over 2 spikes, so bits/spike = log2(1.5).
    """
    assert bits_per_spike([[0.5], [1.5]], [[0], [2]]) == pytest.approx(np.log2(1.5))


def test_zero_rate_is_floored_as_in_nlb():
    """Rate 0 where a spike occurs is replaced by 1e-9: gain log(1e-9) + log 2 (null rate 1) over 2 spikes."""
    assert bits_per_spike([[0.0], [2.0]], [[1], [1]]) == pytest.approx((np.log(1e-9) + np.log(2)) / (2 * np.log(2)))


def simulated_population(seed=0, trials=20, steps=1000, neurons=20):
    """Poisson counts with smoothly modulated rates between ~0.05 and ~0.6 spikes per bin."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)[None, :, None]
    phase = rng.uniform(0, 2 * np.pi, size=(trials, 1, neurons))
    period = rng.uniform(50, 300, size=(1, 1, neurons))
    rates = 0.17 * np.exp(1.2 * np.sin(2 * np.pi * t / period + phase))
    return rates, rng.poisson(rates)


def test_mean_rate_model_scores_zero():
    _, spikes = simulated_population(trials=3, steps=200)
    mean_rates = np.broadcast_to(spikes.mean((0, 1)), spikes.shape)
    assert bits_per_spike(mean_rates, spikes) == pytest.approx(0.0, abs=1e-12)


def test_true_rates_score_the_expected_information():
    """E[gain] = sum lambda log(lambda / lambda_bar) (lambda_bar: each neuron's mean rate), so

    bits/spike -> b = sum lambda log(lambda / lambda_bar) / (sum lambda ln 2). Fluctuations: the gain
    minus b ln2 x (total spikes) is sum_x y_x (log(lambda_x / lambda_bar) - b ln 2) + const, with
    Poisson variance sum lambda (log(lambda / lambda_bar) - b ln 2)^2; divided by (sum lambda ln 2) that
    is the standard error. The null fitted to the same spikes gains about 1/2 nat per neuron (Wilks),
    a bias of neurons / (2 sum lambda ln 2), added to the 4-standard-error tolerance.
    """
    rates, spikes = simulated_population()
    log_ratio = np.log(rates / rates.mean((0, 1)))
    total = rates.sum() * np.log(2)
    expected = (rates * log_ratio).sum() / total
    stderr = np.sqrt((rates * (log_ratio - expected * np.log(2)) ** 2).sum()) / total
    bias = rates.shape[-1] / 2 / total
    score = bits_per_spike(rates, spikes)
    assert score > 0.3
    assert abs(score - expected) < 4 * stderr + bias
    assert bits_per_spike(rates[::-1], spikes) < 0  # another trial's rates are worse than the mean


def test_co_smoothing_uses_only_the_heldout_neurons():
    rates, spikes = simulated_population(trials=4, steps=300, neurons=6)
    heldout = [1, 4]
    expected = bits_per_spike(rates[..., heldout], spikes[..., heldout])
    assert co_smoothing_bits_per_spike(rates, spikes, heldout) == expected
    mask = np.zeros(6, dtype=bool)
    mask[heldout] = True
    assert co_smoothing_bits_per_spike(rates, spikes, mask) == expected
    # the held-in neurons do not matter
    assert co_smoothing_bits_per_spike(np.where(mask, rates, 1e3), spikes, heldout) == expected


def test_bad_input():
    rates, spikes = simulated_population(trials=2, steps=50, neurons=3)
    with pytest.raises(ValueError, match="same shape"):
        bits_per_spike(rates[..., :2], spikes)
    negative = rates.copy()
    negative[0, 0, 0] = -1.0
    with pytest.raises(ValueError, match=r"rates must be non-negative expected counts, found 1 negative"):
        bits_per_spike(negative, spikes)
    with pytest.raises(ValueError, match="spikes must hold integer counts"):
        bits_per_spike(rates, spikes + 0.5)
    with pytest.raises(ValueError, match="no spike"):
        bits_per_spike(rates, np.zeros_like(spikes))
    with pytest.raises(ValueError, match=r"distinct indices in \[0, 2\]"):
        co_smoothing_bits_per_spike(rates, spikes, [0, 3])
    with pytest.raises(ValueError, match=r"distinct indices"):
        co_smoothing_bits_per_spike(rates, spikes, [1, 1])
    with pytest.raises(ValueError, match=r"mask must have shape \(3,\)"):
        co_smoothing_bits_per_spike(rates, spikes, [True, False])


def test_masked_bits_per_spike_equal_the_trimmed_trials_concatenated():
    """A Recording's padding and missing entries do not count: bits/spike over it equals bits/spike of its
    observed entries laid end to end (each neuron's null mean over its own observed bins)."""
    from pyro_neurodyn.data import Recording

    rng = np.random.default_rng(0)
    lengths = [30, 18, 25]
    spikes = [rng.poisson(1.5, size=(n, 4)).astype(float) for n in lengths]
    rates = [rng.gamma(2.0, 0.75, size=(n, 4)) for n in lengths]
    rec = Recording.from_trials(spikes)
    padded_rates = torch.full(rec.y.shape, float("nan"), dtype=torch.float64)
    for b, n in enumerate(lengths):
        padded_rates[b, :n] = torch.as_tensor(rates[b])
    expected = bits_per_spike(np.concatenate(rates), np.concatenate(spikes))
    assert abs(bits_per_spike(padded_rates, rec) - expected) < 1e-12
    held_in, targets = rec.hold_out_channels([1, 3])
    expected_co = bits_per_spike(np.concatenate(rates)[:, [1, 3]], np.concatenate(spikes)[:, [1, 3]])
    assert abs(co_smoothing_bits_per_spike(padded_rates, rec, [1, 3]) - expected_co) < 1e-12
    assert not held_in.mask[..., [1, 3]].any() and bool(targets[..., [1, 3]].sum() == rec.mask[..., [1, 3]].sum())
