"""Padding cannot change an SRNN's random draws: log evidence of ragged Recordings against the same trials
trimmed to their own lengths.

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


def padded_further(rec: Recording, extra: int) -> Recording:
    """``rec`` padded by ``extra`` more unobserved steps."""
    pad = (0, 0, 0, extra)
    return Recording(torch.nn.functional.pad(rec.y, pad), torch.nn.functional.pad(rec.mask, pad), rec.lengths)


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
