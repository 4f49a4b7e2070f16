"""The autoregressive HMM on ragged trials and missing entries.

Ground truth: the padded trial's log-likelihood equals the trimmed trial's (float64), and a brute-force
sum over all K^T state paths of the counted steps' densities (written out here with numpy) equals the
masked log-likelihood; exact EM never lowers the masked log-likelihood; on rotation data the fit on a
ragged recording labels the regimes as well as one on complete trials.
"""

import itertools

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from pyro_neurodyn.data import Recording, rotation_switching_data
from pyro_neurodyn.metrics import state_accuracy
from pyro_neurodyn.models import AutoregressiveHMM


@pytest.fixture(scope="module")
def fitted():
    data = rotation_switching_data(8, 60, obs_dim=3, seed=0)
    model = AutoregressiveHMM(2, 3, lags=1, covariance="full").double()
    model.fit_em(data.y.double(), num_iters=5, seed=0)
    return model, data


def test_padding_leaves_each_trials_log_likelihood_exactly(fitted):
    model, data = fitted
    y = data.y.double()[:3]
    lengths = torch.tensor([60, 41, 17])
    padded = y.clone()
    for b, n in enumerate(lengths.tolist()):
        padded[b, n:] = 123.0  # whatever the padding holds is never read
    together = model.log_likelihood(padded, lengths=lengths)
    alone = torch.stack([model.log_likelihood(y[b : b + 1, :n])[0] for b, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(together, alone, rtol=1e-12, atol=1e-8)


def test_masked_log_likelihood_is_the_brute_force_sum_over_paths(fitted):
    """T = 7, K = 2: all 128 paths; a partly observed step and the step after it (its regression input is
    incomplete) drop out, everything else is scored with the model's own densities."""
    model, data = fitted
    y = data.y.double()[:1, :7]
    mask = torch.ones_like(y, dtype=torch.bool)
    mask[0, 3, 1] = False
    counted = [True, True, True, False, False, True, True]
    with torch.no_grad():
        init_p = torch.softmax(model.init_logits, -1).numpy()
        trans_p = torch.softmax(model.transitions(), -1).numpy()
        A, b, tril = model.weight.numpy(), model.bias.numpy(), model.scale_tril().numpy()
        init_loc, init_scale = model.init_loc.numpy(), model.init_log_scale.exp().numpy()
    values = y[0].numpy()

    def density(t, k):
        if not counted[t]:
            return 0.0
        if t == 0:
            return multivariate_normal(init_loc[k], np.diag(init_scale[k] ** 2)).logpdf(values[0])
        return multivariate_normal(A[k] @ values[t - 1] + b[k], tril[k] @ tril[k].T).logpdf(values[t])

    total = []
    for path in itertools.product(range(2), repeat=7):
        log_p = np.log(init_p[path[0]]) + sum(np.log(trans_p[i, j]) for i, j in zip(path[:-1], path[1:]))
        total.append(log_p + sum(density(t, k) for t, k in enumerate(path)))
    expected = np.logaddexp.reduce(total)
    np.testing.assert_allclose(model.log_likelihood(y, mask=mask).numpy(), [expected], rtol=1e-10)


def test_em_on_a_ragged_recording_never_lowers_the_likelihood_and_finds_the_regimes():
    data = rotation_switching_data(12, 200, obs_dim=10, seed=1)
    lengths = [200, 60, 150, 90, 200, 120, 80, 200, 100, 170, 140, 200]
    trials = [data.y[b, :n].numpy().copy() for b, n in enumerate(lengths)]
    trials[2][40:43, 4] = np.nan  # and a few missing entries
    recording = Recording.from_trials(trials, dtype=torch.float64)
    model = AutoregressiveHMM(2, 10).double()
    history = model.fit_em(recording.y, ridge=0.0, num_restarts=1, mask=recording.mask, lengths=recording.lengths)
    assert all(later >= earlier - 1e-8 * abs(earlier) for earlier, later in zip(history[:-1], history[1:]))
    states = model.most_likely_states(recording.y, mask=recording.mask, lengths=recording.lengths)
    within = recording.time_mask
    # the complete-data ARHMM labels this data perfectly (README, "Which model do I need?"); 0.98 leaves room
    # for a few steps around switches (measured 0.994-0.998 over data seeds 0-3; 0.995 for seed 1)
    assert state_accuracy(data.states[:, :200][within], states[within]) >= 0.98
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        model.log_likelihood(recording.y, mask=recording.mask[:, :10])
    with pytest.raises(ValueError, match="lengths must hold"):
        model.log_likelihood(recording.y, lengths=torch.tensor([0] * 12))
