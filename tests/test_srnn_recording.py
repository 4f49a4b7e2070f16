"""The SRNN estimator on Recordings: ragged trials and missing entries in, padding marked in the outputs.

Ground truth: a complete, equal-length Recording is the arrays themselves (bitwise the same fit); what a
Recording holds at its missing entries and padding cannot change a fit (bitwise).
"""

import numpy as np
import pytest
import torch

from pyro_neurodyn import SRNN
from pyro_neurodyn.data import Recording, switching_lorenz

pytestmark = pytest.mark.usefixtures("one_thread_fresh_param_store")
QUICK = dict(num_steps=6, filter_steps=2, progress=False, seed=3)


@pytest.fixture(scope="module")
def lorenz():
    return switching_lorenz(num_trials=6, num_steps=60, seed=0)


def ragged(lorenz, fill: float) -> Recording:
    """Trials cut to 40-60 steps with 10% of entries missing, ``fill`` at the missing entries and padding."""
    rng = np.random.default_rng(0)
    lengths = [60, 52, 40, 47, 60, 44]
    trials = [lorenz.y[b, :n].numpy().astype(np.float64) for b, n in enumerate(lengths)]
    masks = [rng.random(t.shape) > 0.1 for t in trials]
    rec = Recording.from_trials(trials, masks=masks)
    padding = ~rec.mask
    return Recording(torch.where(padding, torch.full((), fill), rec.y), rec.mask, rec.lengths)


def test_a_complete_recording_fits_exactly_as_its_arrays(lorenz):
    arrays = SRNN(2, 3, 3, seed=0).fit(lorenz.y, **QUICK)
    recording = SRNN(2, 3, 3, seed=0).fit(Recording.from_trials(list(lorenz.y)), **QUICK)
    assert recording.losses == arrays.losses
    torch.testing.assert_close(recording.state_marginals(lorenz.y), arrays.state_marginals(lorenz.y), rtol=0, atol=0)


@pytest.mark.parametrize("init", ["arhmm", "kmeans", None])
def test_missing_entries_and_padding_cannot_change_a_fit(lorenz, init):
    fits = [SRNN(2, 3, 3, seed=0).fit(ragged(lorenz, fill), init=init, **QUICK) for fill in (0.0, 1e3)]
    assert fits[0].losses == fits[1].losses and np.isfinite(fits[0].losses).all()


def test_minibatches_of_a_ragged_recording_fit_as_their_trimmed_trials(lorenz):
    """batch_size < trials: the buckets are cut to their longest trial; what the padding holds still cannot
    change the fit, and the cut batches give a finite loss at every step."""
    fits = [SRNN(2, 3, 3, seed=0).fit(ragged(lorenz, fill), batch_size=2, **QUICK) for fill in (0.0, 1e3)]
    assert fits[0].losses == fits[1].losses and np.isfinite(fits[0].losses).all()


def test_outputs_mark_the_padding(lorenz):
    rec = ragged(lorenz, 0.0)
    model = SRNN(2, 3, 3, seed=0).fit(rec, **QUICK)
    states = model.most_likely_states(rec)
    marginals = model.state_marginals(rec)
    within = rec.time_mask
    assert bool((states[~within] == -1).all()) and bool((states[within] >= 0).all())
    assert bool(marginals[~within].isnan().all()) and torch.allclose(marginals[within].sum(-1), torch.ones(()))
    assert bool(model.reconstruct(rec)[~within].isnan().all()) and bool(model.posterior_latents(rec)[within].isfinite().all())
    evidence = model.log_evidence(rec, num_particles=8, seed=0)
    assert evidence.shape == (6,) and bool(evidence.isfinite().all())
    with pytest.raises(ValueError, match="Recording carries its own inputs"):
        model.log_evidence(rec, torch.zeros(6, 60, 1))


def test_posterior_predictive_and_arviz_on_a_recording(lorenz):
    """Draws for a ragged Recording: the log-likelihood counts observed entries only (it equals the
    trimmed trial's at the same latent draw), padding comes back NaN / -1, and ArviZ sees NaN there."""
    from pyro_neurodyn.predictive import posterior_predictive, to_arviz

    rec = ragged(lorenz, 0.0)
    model = SRNN(2, 3, 3, seed=0).fit(rec, **QUICK)
    result = posterior_predictive(model, rec, num_samples=4, seed=1)
    within = rec.time_mask
    assert result.y_rep.shape == (4, 6, 60, 3) and bool(result.y_rep[:, ~within].isnan().all())
    assert bool((result.states[:, ~within] == -1).all()) and bool(result.log_likelihood.isfinite().all())
    b, n = 2, int(rec.lengths[2])  # log p(y_b | h) of trial 2 from its own observed entries
    h = result.latents[:, b : b + 1, :n]
    emission = model.module.emission(h)
    expected = (emission.log_prob(rec.y[b : b + 1, :n].to(h)) * rec.mask[b : b + 1, :n]).sum((-3, -2, -1))
    torch.testing.assert_close(result.log_likelihood[:, b], expected, rtol=1e-5, atol=1e-3)
    tree = to_arviz(result, rec)
    observed = tree["observed_data"]["y"].values
    assert np.isnan(observed[~rec.mask.numpy()]).all() and np.isfinite(observed[rec.mask.numpy()]).all()
