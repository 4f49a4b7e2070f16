"""The Gaussian-emission HMM on padded and partly missing trials: exact against the trimmed trials."""

import pytest
import torch

from pyro_neurodyn.data import Recording, rotation_switching_data
from pyro_neurodyn.distributions import switching_log_marginal
from pyro_neurodyn.models import GaussianEmissionHMM

pytestmark = pytest.mark.usefixtures("one_thread_fresh_param_store")


def test_masked_log_marginal_of_padded_trials_equals_the_trimmed_trials():
    torch.manual_seed(0)
    hmm = GaussianEmissionHMM(3, 4).double()
    lengths = [9, 5, 7]
    rec = Recording.from_trials([torch.randn(n, 4, dtype=torch.float64) for n in lengths], dtype=torch.float64)
    padded = switching_log_marginal(*hmm.factors(rec.y, rec.mask))
    for b, n in enumerate(lengths):
        trimmed = switching_log_marginal(*hmm.factors(rec.y[b : b + 1, :n]))
        torch.testing.assert_close(padded[b : b + 1], trimmed, rtol=1e-12, atol=1e-8)


def test_em_on_a_recording_ignores_missing_values_and_padding_and_never_decreases():
    data = rotation_switching_data(num_trials=6, num_steps=80, obs_dim=4, seed=0)
    trials = [data.y[b, : 80 - 7 * b].double() for b in range(6)]
    masks = [torch.rand(t.shape, generator=torch.Generator().manual_seed(b)) > 0.1 for b, t in enumerate(trials)]
    rec = Recording.from_trials(trials, masks=masks, dtype=torch.float64)
    histories = []
    for fill in (0.0, 1e3):
        filled = torch.where(rec.mask, rec.y, torch.full((), fill, dtype=torch.float64))
        hmm = GaussianEmissionHMM(2, 4).double()
        histories.append(hmm.fit_em(filled, num_iters=20, mask=rec.mask, lengths=rec.lengths))
    assert histories[0] == histories[1]  # what a missing entry or the padding holds cannot matter
    assert all(b >= a - 1e-8 * abs(a) for a, b in zip(histories[0], histories[0][1:]))  # EM
    states = hmm.most_likely_states(rec.y, rec.mask, rec.lengths)
    assert states.shape == rec.y.shape[:2]
