"""Padding cannot change an SRNN's random draws: log evidence and forecasts of ragged Recordings against the
same trials trimmed to their own lengths.

"Padded vs trimmed, equal with the same seed" is meant as in tests/test_masks_particle_models.py for the
low-rank models: the same batch (the same number of trials, in the same places) and the same seed, once
padded and once trimmed. A ragged batch has no single trimmed form, so trial b is compared with the batch cut
to trial b's length (every trial cut there). The encoder and the latent recurrence then run on tensors of
different lengths, which may round differently: float64 and a relative tolerance of 1e-12 (measured: 2e-16).
A trial alone (a batch of one) draws other numbers; it is compared in distribution, over seeds.
"""

import math

import numpy as np
import pyro
import pytest
import torch

from pyro_neurodyn import SRNN
from pyro_neurodyn.data import Recording, switching_lorenz

pytestmark = pytest.mark.usefixtures("one_thread")
LENGTHS = [60, 41, 25, 52]


@pytest.fixture(scope="module")
def lorenz():
    return switching_lorenz(num_trials=4, num_steps=60, seed=0).y.double()


@pytest.fixture(scope="module")
def fitted(lorenz):
    """A fit long enough for a usable encoder: the spread of one 16-particle estimate of a trial's log evidence
    is then ~5 nats (600 nats after 6 steps, too wide for a check in distribution to have power)."""
    pyro.clear_param_store()
    return SRNN(2, 3, 3, seed=0).to(dtype=torch.float64).fit(lorenz, num_steps=100, filter_steps=33, progress=False, seed=3)


def ragged_trials(lorenz) -> tuple[list, list]:
    """The trials cut to ``LENGTHS`` and their masks (10% of the entries missing)."""
    rng = np.random.default_rng(0)
    trials = [lorenz[b, :n].numpy() for b, n in enumerate(LENGTHS)]
    return trials, [rng.random(trial.shape) > 0.1 for trial in trials]


def recording(trials: list, masks: list, cut: int = None) -> Recording:
    """The trials as a Recording, each cut to at most ``cut`` steps (None: whole)."""
    return Recording.from_trials([t[:cut] for t in trials], masks=[m[:cut] for m in masks], dtype=torch.float64)


def padded_further(rec: Recording, extra: int, u: torch.Tensor = None) -> Recording:
    """``rec`` padded by ``extra`` more unobserved steps (inputs ``u`` covering them, if given)."""
    pad = (0, 0, 0, extra)
    return Recording(torch.nn.functional.pad(rec.y, pad), torch.nn.functional.pad(rec.mask, pad), rec.lengths, u)


def test_the_same_recording_padded_further_has_the_same_log_evidence(fitted, lorenz):
    rec = recording(*ragged_trials(lorenz))
    evidence = fitted.log_evidence(rec, num_particles=16, seed=5)
    torch.testing.assert_close(fitted.log_evidence(padded_further(rec, 13), num_particles=16, seed=5), evidence, rtol=0, atol=0)
    assert bool(evidence.isfinite().all())


def test_a_trial_trimmed_to_its_length_has_its_padded_log_evidence_with_the_same_seed(fitted, lorenz):
    trials, masks = ragged_trials(lorenz)
    evidence = fitted.log_evidence(recording(trials, masks), num_particles=16, seed=5)
    for b, length in enumerate(LENGTHS):
        trimmed = fitted.log_evidence(recording(trials, masks, cut=length), num_particles=16, seed=5)
        torch.testing.assert_close(trimmed[b], evidence[b], rtol=1e-12, atol=0)


def test_padded_and_trimmed_log_evidence_are_equal_in_distribution(fitted, lorenz):
    """Trial 2 (25 of 60 steps) scored alone, trimmed, against its value in the padded batch, 200 seeds each
    (disjoint seeds: independent estimates). The two estimators are the same random variable if padding is
    ignored, so their means differ by less than 4 standard errors of the difference (measured here: 2.1
    standard errors of 0.5 nats, the estimates' spread 5 nats; -1.9 standard errors with 1500 other seeds each;
    the encoder's outputs for the trial agree to 2e-16)."""
    rec = recording(*ragged_trials(lorenz))
    seeds = range(200)
    alone = torch.stack([fitted.log_evidence(rec[2], num_particles=16, seed=s)[0] for s in seeds])
    padded = torch.stack([fitted.log_evidence(rec, num_particles=16, seed=1000 + s)[2] for s in seeds])
    standard_error = math.sqrt(float(alone.var() + padded.var()) / len(seeds))
    difference = float(alone.mean() - padded.mean())
    assert abs(difference) < 4 * standard_error, f"alone {float(alone.mean()):.2f}, padded {float(padded.mean()):.2f} +- {standard_error:.2f}"
    # the check has power: the padding read as observed zeros costs trial 2 hundreds of nats
    zeros_as_data = fitted.log_evidence(rec.y[2:3], num_particles=16, seed=0)[0]
    assert float(alone.mean() - zeros_as_data) > 100 * standard_error


def test_forecasts_of_ragged_prefixes_start_after_each_trials_own_end(fitted, lorenz):
    trials, masks = ragged_trials(lorenz)
    rec = recording(trials, masks)
    pyro.set_rng_seed(1)
    forecast = fitted.forecast(rec, 5, num_samples=7)
    assert forecast.shape == (7, 4, 5, 3) and bool(forecast.isfinite().all())
    pyro.set_rng_seed(1)
    torch.testing.assert_close(fitted.forecast(padded_further(rec, 13), 5, num_samples=7), forecast, rtol=0, atol=0)
    for b, length in enumerate(LENGTHS):
        pyro.set_rng_seed(1)
        trimmed = fitted.forecast(recording(trials, masks, cut=length), 5, num_samples=7)
        torch.testing.assert_close(trimmed[:, b], forecast[:, b], rtol=1e-12, atol=0)


def test_a_ragged_forecast_equals_the_trial_forecast_alone_in_distribution(fitted, lorenz):
    """Trial 2's forecast from the padded batch against trial 2 forecast alone: 4000 draws each, the mean of
    every (step, channel) within 4.5 standard errors (15 comparisons: a false alarm has probability 1e-4); a
    forecast started at the padded end (the padding read as data) is off by far more."""
    rec = recording(*ragged_trials(lorenz))
    pyro.set_rng_seed(2)
    padded = fitted.forecast(rec, 5, num_samples=4000)[:, 2]
    pyro.set_rng_seed(3)
    alone = fitted.forecast(rec[2], 5, num_samples=4000)[:, 0]
    standard_error = ((padded.var(0) + alone.var(0)) / 4000).sqrt()  # (5, 3)
    z = (padded.mean(0) - alone.mean(0)) / standard_error
    assert float(z.abs().max()) < 4.5, z
    pyro.set_rng_seed(3)
    from_padding = fitted.forecast(rec.y[2:3], 5, num_samples=4000)[:, 0]
    assert float(((from_padding.mean(0) - alone.mean(0)) / standard_error).abs().max()) > 20


def test_a_forecast_from_a_one_step_prefix(fitted, lorenz):
    """One observed step is a prefix too (a Recording of one-step trials, or an array ``(B, 1, D)``): trial 0 cut to
    one step within a ragged batch forecasts as the whole batch cut to one step does (same seed), a complete
    one-step Recording as the array, and the chain factors of a one-step path are the first step's of a longer one."""
    trials, masks = ragged_trials(lorenz)
    rec = Recording.from_trials([trials[0][:1]] + trials[1:], masks=[masks[0][:1]] + masks[1:], dtype=torch.float64)
    pyro.set_rng_seed(1)
    forecast = fitted.forecast(rec, 5, num_samples=7)
    pyro.set_rng_seed(1)
    torch.testing.assert_close(fitted.forecast(recording(trials, masks, cut=1), 5, num_samples=7)[:, 0], forecast[:, 0], rtol=1e-12, atol=0)
    pyro.set_rng_seed(1)
    complete = fitted.forecast(Recording.from_trials([t[:1] for t in trials], dtype=torch.float64), 5, num_samples=7)
    pyro.set_rng_seed(1)
    torch.testing.assert_close(fitted.forecast(lorenz[:, :1], 5, num_samples=7), complete, rtol=0, atol=0)
    assert complete.shape == (7, 4, 5, 3) and bool(complete.isfinite().all())
    h = torch.randn(2, 4, 6, 3, dtype=torch.float64)
    whole, first = fitted.module.latent_factors(h), fitted.module.latent_factors(h[..., :1, :])
    assert first.trans_logits.shape == (2, 4, 0, 2, 2)
    torch.testing.assert_close(first.emission_logp, whole.emission_logp[..., :1, :], rtol=0, atol=0)
    torch.testing.assert_close(first.init_logits, whole.init_logits, rtol=0, atol=0)


@pytest.fixture(scope="module")
def with_inputs(lorenz):
    """An SRNN with one input channel (6 steps: the draws, not the fit, are under test) and its inputs."""
    pyro.clear_param_store()
    u = torch.sin(torch.arange(70, dtype=torch.float64) / 5).expand(4, 70).unsqueeze(-1) * torch.arange(1, 5).reshape(4, 1, 1)
    model = SRNN(2, 3, 3, input_dim=1, seed=0).to(dtype=torch.float64)
    return model.fit(lorenz, u[:, :60], num_steps=6, filter_steps=2, progress=False, seed=3), u


def test_a_ragged_forecast_reads_each_trials_own_future_inputs(with_inputs, lorenz):
    model, u = with_inputs
    trials, masks = ragged_trials(lorenz)
    rec = recording(trials, masks)
    pyro.set_rng_seed(1)
    forecast = model.forecast(rec, 5, num_samples=6, u=u)
    pyro.set_rng_seed(1)  # the same inputs carried by the Recording itself, padded to cover the forecasts
    torch.testing.assert_close(model.forecast(padded_further(rec, 10, u), 5, num_samples=6), forecast, rtol=0, atol=0)
    for b, length in enumerate(LENGTHS):
        pyro.set_rng_seed(1)
        trimmed = model.forecast(recording(trials, masks, cut=length), 5, num_samples=6, u=u[:, : length + 5])
        torch.testing.assert_close(trimmed[:, b], forecast[:, b], rtol=1e-12, atol=0)
    pyro.set_rng_seed(1)
    other_future = u.clone()
    other_future[2, LENGTHS[2] :] += 1.0  # trial 2's future inputs only
    changed = model.forecast(rec, 5, num_samples=6, u=other_future)
    assert not torch.equal(changed[:, 2], forecast[:, 2])
    torch.testing.assert_close(changed[:, [0, 1, 3]], forecast[:, [0, 1, 3]], rtol=0, atol=0)


def test_a_ragged_forecast_needs_inputs_covering_every_trials_prefix_and_forecast(with_inputs, lorenz):
    model, u = with_inputs
    rec = recording(*ragged_trials(lorenz))
    with pytest.raises(ValueError, match=r"u must cover each trial's prefix and forecast.*trial 0: 60 \+ 5"):
        model.forecast(rec, 5, u=u[:, :64])
    with pytest.raises(ValueError, match=r"u must cover each trial's prefix and forecast.*trial 0: 60 \+ 5"):
        model.forecast(padded_further(rec, 4, u[:, :64]), 5)  # its own inputs, 1 step short for trial 0
    with pytest.raises(ValueError, match="u: the Recording carries its own inputs"):
        model.forecast(padded_further(rec, 10, u), 5, u=u)
    with pytest.raises(ValueError, match="takes inputs of dim 1"):
        model.forecast(rec, 5)
