"""Fitting on random windows of long trials (issue 19, part 3): ``RandomWindows`` and ``SRNN.fit(window=...)``."""

import pytest
import torch

from pyro_neurodyn import SRNN
from pyro_neurodyn.data import Recording
from pyro_neurodyn.infer import RandomWindows, fit_svi


pytestmark = pytest.mark.usefixtures("one_thread")


def test_windows_lie_inside_their_trials_and_are_uniform_over_all_windows():
    lengths = torch.tensor([100, 40, 70])
    windows = RandomWindows(lengths, window=31, batch_size=4000)
    trial, start = windows.draw()
    assert bool((start >= 0).all()) and bool((start + 31 <= lengths[trial]).all())
    counts = torch.bincount(trial, minlength=3).double() / 4000
    expected = (lengths - 30).double() / (lengths - 30).sum()  # 70, 10, 40 windows
    torch.testing.assert_close(counts, expected, rtol=0, atol=0.03)
    assert set(start[trial == 1].tolist()) == set(range(10))  # every start of the short trial is drawn
    assert windows.scale == pytest.approx(210 / (4000 * 31))


def test_next_cuts_time_indexed_entries_and_drops_lengths():
    torch.manual_seed(0)
    y = torch.arange(2 * 50, dtype=torch.float32).reshape(2, 50, 1).expand(2, 50, 3)
    labels = torch.arange(50).expand(2, 50)
    windows = RandomWindows(torch.tensor([50, 30]), window=8, batch_size=5)
    cut_y, cut_u, cut_labels, cut_lengths = windows.next([y, None, labels, torch.tensor([50, 30])])
    assert cut_y.shape == (5, 8, 3) and cut_u is None and cut_lengths is None and cut_labels.shape == (5, 8)
    steps = cut_y[..., 0] % 50  # the step index each entry came from
    assert torch.equal(steps, cut_labels.float()) and bool((steps[:, 1:] - steps[:, :-1] == 1).all())


def test_window_errors():
    with pytest.raises(ValueError, match=r"window \(60 steps\) is longer than trial 1 \(40 steps"):
        RandomWindows(torch.tensor([100, 40]), window=60, batch_size=2)
    with pytest.raises(ValueError, match="window"):
        RandomWindows(torch.tensor([100]), window=1, batch_size=2)
    with pytest.raises(ValueError, match="batch_size: give either"):
        fit_svi(lambda y: None, lambda y: None, None, None, [torch.zeros(1, 10, 1)], num_steps=1, batch_size=1,
                batches=RandomWindows(torch.tensor([10]), 5, 1))  # fmt: skip
    with pytest.raises(ValueError, match="window"):
        SRNN(obs_dim=2).fit(torch.randn(1, 50, 2), window=80, num_steps=1, progress=False)


def test_srnn_fits_one_long_recording_on_windows_reproducibly():
    torch.manual_seed(1)
    y = torch.randn(1, 3000, 4).cumsum(1).sin()
    y[0, 100:200, 1] = float("nan")  # a gap in one channel: its mask is cut with the windows
    recording = Recording.from_trials([y[0].numpy()])
    options = dict(window=100, batch_size=8, num_steps=4, filter_steps=2, init="kmeans", progress=False, seed=3)
    first = SRNN(num_states=2, latent_dim=2, obs_dim=4).fit(recording, **options)
    second = SRNN(num_states=2, latent_dim=2, obs_dim=4).fit(recording, **options)
    assert len(first.losses) == 4 and all(torch.isfinite(torch.tensor(first.losses)))
    assert first.losses == second.losses and first.filter_steps_done == 2
    assert first.state_marginals(recording).shape == (1, 3000, 2)
