"""Missing entries and ragged trials in the particle (VSMC) models.

Ground truth is the independent numpy Kalman filter of ``tests/kalman.py`` that skips the missing entries:
a LowRankRNN with identity activation is linear-Gaussian, and with the optimal proposal (conditioned on
each step's observed channels) its particle filter estimates that filter's likelihood without bias.
Statistical checks replicate the recording as many trials (independent particle systems) with fixed
seeds; tolerances are stated where they are used.
"""

import math

import numpy as np
import pyro
import pytest
import torch
from kalman import kalman_filter, lowrank_kalman_parameters
from test_vsmc import linear_gaussian_rnn

from pyro_neurodyn import SwitchingLowRankRNN
from pyro_neurodyn.data import Recording, switching_lowrank_data
from pyro_neurodyn.guides import OptimalProposal, SwitchingKalmanProposal, kalman_update
from pyro_neurodyn.infer import VSMC_ELBO


pytestmark = pytest.mark.usefixtures("one_thread")  # small ops: faster with one thread on a busy 2-core machine


@pytest.fixture(scope="module")
def masked_problem():
    """One recording (T = 25, D = 6) of the linear-Gaussian model with ~30% of its entries missing, step 10
    wholly missing and steps 20-24 missing (as a ragged trial's padding), zeros in y where missing."""
    rnn = linear_gaussian_rnn()
    y = rnn.sample(1, 25, seed=1).y
    generator = torch.Generator().manual_seed(0)
    mask = torch.rand(y.shape, generator=generator) > 0.3
    mask[:, 10] = False
    mask[:, 20:] = False
    y = y * mask
    params = lowrank_kalman_parameters(rnn.model)
    log_z, means = kalman_filter(y.numpy(), **params, mask=mask.numpy())
    return rnn, y, mask, log_z[0], means[0], params


def test_masked_kalman_update_conditions_on_the_observed_channels_only():
    """The per-trial update equals the full update of the readout restricted to the observed rows."""
    rnn = linear_gaussian_rnn()
    form = rnn.model.readout_linear_form(None)
    prior = rnn.model.noise.factors()
    observed = torch.tensor([[True, False, True, True, False, True], [False] * 6])
    loc, y = torch.randn(2, 2), torch.randn(2, 6)
    update = kalman_update(prior, form, observed)
    for b in range(2):
        kept = observed[b]
        restricted = type(form)(form.weight[kept], form.bias[kept], form.variance[kept])
        expected = kalman_update(prior, restricted).distribution(loc[b], y[b, kept], form.bias[kept]) if kept.any() else None
        got = update.distribution(loc, y, form.bias)
        if expected is None:  # nothing observed: the prior itself
            torch.testing.assert_close(got.loc[b], loc[b])
            torch.testing.assert_close(got.factors.scale[b] @ got.factors.scale[b].T, prior.matrix())
        else:
            torch.testing.assert_close(got.loc[b], expected.loc)
            torch.testing.assert_close(got.factors.scale[b] @ got.factors.scale[b].T, expected.factors.matrix())


def test_masked_evidence_estimate_is_unbiased_for_the_kalman_filter_that_skips_missing_entries(masked_problem):
    rnn, y, mask, log_z, _, params = masked_problem
    num_runs = 4000
    pyro.set_rng_seed(0)
    estimates = VSMC_ELBO(10).log_evidence(rnn.model, OptimalProposal(rnn.model), y.expand(num_runs, -1, -1), None, mask.expand(num_runs, -1, -1))
    ratios = np.exp(estimates.double().numpy() - log_z)
    standard_error = ratios.std() / math.sqrt(num_runs)
    # CLT: the mean of iid ratios is within 4 standard errors of 1 unless the estimate is biased (the same
    # check as the complete data's in test_vsmc.py; measured here 1.00 with standard error 0.005-0.01)
    assert abs(ratios.mean() - 1.0) < 4 * standard_error
    assert standard_error < 0.06  # the check has power
    # reading the zeros of the missing entries as data is a different likelihood, far outside that error
    zeros_as_data = kalman_filter(y.numpy(), **params)[0][0]
    assert abs(zeros_as_data - log_z) > 20.0


def test_filter_of_a_ragged_recording_matches_the_kalman_filter_and_marks_padding(masked_problem):
    rnn, y, mask, log_z, kalman_means, params = masked_problem
    full = torch.where(mask[0], y[0], torch.nan).numpy()
    trials = [full[:20], full[:15]]  # two ragged trials; the first's missing entries are NaN
    recording = Recording.from_trials(trials)
    result = rnn.filter(recording, num_particles=4000, seed=0)
    assert result.means.shape == (2, 20, 2)
    assert bool(torch.isnan(result.means[1, 15:]).all()) and not bool(torch.isnan(result.means[1, :15]).any())
    # filtering means with 4000 particles: the Monte Carlo error is ~ posterior std / sqrt(ESS), below 0.03
    # here (posterior std <= 0.4, ESS >= 1000 with the optimal proposal); 0.06 leaves twice that
    np.testing.assert_allclose(result.means[0].numpy(), kalman_means[:20], atol=0.06)
    trimmed_mask = mask[:, :15].numpy()
    trimmed_log_z = kalman_filter(y[:, :15].numpy(), **params, mask=trimmed_mask)[0][0]
    np.testing.assert_allclose(result.means[1, :15].numpy(), kalman_filter(y[:, :15].numpy(), **params, mask=trimmed_mask)[1][0], atol=0.06)
    # log evidence of each trial: the observed entries' likelihood (steps 20-24 of the problem are missing,
    # so trial 0's value is the whole recording's); the spread of one 4000-particle estimate is ~0.03 nats
    evidence = rnn.log_evidence(recording, num_particles=4000, seed=1)
    np.testing.assert_allclose(evidence.numpy(), [log_z, trimmed_log_z], atol=0.15)


def test_switching_lowrank_padding_contributes_nothing_in_expectation():
    """A trial padded by 4 unobserved steps has the same evidence as the trimmed trial: E[p^] agree.

    The padded steps' weights are not 1 (the Gaussian proposal is not the mixture prior) but have mean 1,
    so the estimates of p(y) (not of log p) agree in expectation."""
    data = switching_lowrank_data(num_trials=2, num_steps=30, seed=0)
    model = SwitchingLowRankRNN(data.y.shape[-1], 2, 2, 10).initialize_from_data(data.y)
    y = data.y[:1, :6]
    padded = torch.cat([y, torch.zeros(1, 4, y.shape[-1])], 1)
    mask = torch.ones_like(padded, dtype=torch.bool)
    mask[:, 6:] = False
    mask[:, 2, :3] = False  # and a few missing entries inside, in both
    y = y * mask[:, :6]
    num_runs = 2000
    # the moment-matched proposal: its log-evidence spread here is 0.1 (trimmed) and 0.4 nats (padded),
    # where the prior-mean one's is 7 nats on this only-initialized model (too heavy-tailed for a CLT check)
    elbo, proposal = VSMC_ELBO(64), SwitchingKalmanProposal(model.module, "posterior_moments")
    pyro.set_rng_seed(0)
    trimmed = elbo.log_evidence(model.module, proposal, y.expand(num_runs, -1, -1), None, mask[:, :6].expand(num_runs, -1, -1)).double()
    pyro.set_rng_seed(1)
    with_padding = elbo.log_evidence(model.module, proposal, padded.expand(num_runs, -1, -1), None, mask.expand(num_runs, -1, -1)).double()
    reference = float(trimmed.mean())
    ratios = [torch.exp(estimates - reference) for estimates in (trimmed, with_padding)]
    difference = float(ratios[0].mean() - ratios[1].mean())
    standard_error = math.sqrt(sum(float(r.var()) / num_runs for r in ratios))
    # two independent means of iid ratios: within 4 standard errors of each other unless padding adds bias
    # (measured: difference -0.010, standard error 0.031)
    assert abs(difference) < 4 * standard_error
    assert standard_error < 0.1  # the check has power: a missed step's likelihood would shift E[p^] by a factor e^{+-5}


def test_switching_lowrank_takes_ragged_recordings_in_every_method():
    data = switching_lowrank_data(num_trials=3, num_steps=40, seed=1)
    trials = [data.y[0].numpy(), data.y[1, :25].numpy().copy(), data.y[2, :32].numpy()]
    trials[1][3:6, 0] = np.nan
    recording = Recording.from_trials(trials)
    for method in ("collapsed", "vsmc"):
        model = SwitchingLowRankRNN(data.y.shape[-1], 2, 2, 10).fit(recording, method, num_steps=2, num_particles=4)
        assert all(np.isfinite(model.losses))
        states = model.most_likely_states(recording)
        assert states.shape == (3, 40) and bool((states[1, 25:] == -1).all()) and bool((states[1, :25] >= 0).all())
        marginals = model.state_marginals(recording)
        assert bool(torch.isnan(marginals[2, 32:]).all())
        torch.testing.assert_close(marginals[2, :32].sum(-1), torch.ones(32))
        assert bool(torch.isfinite(model.log_evidence(recording, num_particles=4, seed=0)).all())


def test_lowrank_posterior_predictive_of_a_ragged_recording_counts_observed_entries_only(masked_problem):
    """Backward-simulated draws: the log-likelihood of a draw is that of the observed entries alone (the readout's
    density summed over the mask, recomputed here from the drawn latents), padding comes back NaN."""
    from pyro_neurodyn.predictive import posterior_predictive, to_arviz

    rnn, y, mask, *_ = masked_problem
    full = torch.where(mask[0], y[0], torch.nan).numpy()
    recording = Recording.from_trials([full[:20], full[:15]])
    result = posterior_predictive(rnn, recording, num_samples=5, num_particles=64, seed=0)
    within = recording.time_mask
    assert result.y_rep.shape == (5, 2, 20, 6) and bool(result.y_rep[:, ~within].isnan().all())
    assert bool(result.latents[:, ~within].isnan().all()) and bool(result.y_rep[:, within].isfinite().all())
    form = rnn.model.readout_linear_form(None)
    means = result.latents[:, 1, :15] @ form.weight.T + form.bias  # (5, 15, D)
    density = torch.distributions.Normal(means, form.variance.sqrt()).log_prob(recording.y[1, :15])
    expected = (density * recording.mask[1, :15]).sum((-2, -1))
    torch.testing.assert_close(result.log_likelihood[:, 1], expected, rtol=1e-5, atol=1e-3)
    tree = to_arviz(result, recording)
    assert np.isnan(tree["observed_data"]["y"].values[~recording.mask.numpy()]).all()


@pytest.mark.parametrize("proposal", ["optimal", "bootstrap"])
def test_padded_and_trimmed_lowrank_evidence_are_equal_with_the_same_seed(masked_problem, proposal):
    """Unobserved trailing steps have weight exactly 1 under both proposals (the optimal one is the prior
    there, the bootstrap weight is an empty likelihood), so the estimate is the trimmed trial's, bit for bit."""
    from pyro_neurodyn.guides import BootstrapProposal

    rnn, y, mask, *_ = masked_problem
    guide = OptimalProposal(rnn.model) if proposal == "optimal" else BootstrapProposal()
    trimmed_mask = mask[:, :15]
    padded_mask = torch.cat([trimmed_mask, torch.zeros_like(mask[:, 15:])], 1)
    estimates = []
    for observations, observed in ((y[:, :15], trimmed_mask), (y, padded_mask)):
        pyro.set_rng_seed(3)
        estimates.append(VSMC_ELBO(32).log_evidence(rnn.model, guide, observations.expand(8, -1, -1), None, observed.expand(8, -1, -1)))
    torch.testing.assert_close(estimates[1], estimates[0], rtol=0, atol=0)
