"""Same seeds, same numbers, for every estimator: the constructor's seed fixes the initial parameters and
leaves the caller's RNG alone, fit's seed fixes the fit, whatever the global RNG held before."""

import pytest
import torch

from pyro_neurodyn import SRNN, LowRankRNN, SwitchingLowRankRNN
from pyro_neurodyn.data import gaussian_oscillator_data, switching_lorenz, switching_lowrank_data

pytestmark = pytest.mark.usefixtures("one_thread_fresh_param_store")


def srnn_losses(y):
    return SRNN(2, 3, 3, seed=7).fit(y, num_steps=4, filter_steps=2, seed=11, progress=False).losses


def lowrank_losses(y):
    rnn = LowRankRNN(20, 2, 20, readout="one_to_one", seed=7)
    return rnn.fit(y, num_particles=4, num_steps=3, batch_size=6, optimizer="adam", seed=11, progress=False).losses


def switching_lowrank_losses(y):
    return SwitchingLowRankRNN(20, 2, 2, 8, seed=7).fit(y, "vsmc", num_steps=2, num_particles=4, seed=11).losses


CASES = {
    "SRNN": (srnn_losses, lambda: switching_lorenz(4, 30, seed=1).y),
    "LowRankRNN": (lowrank_losses, lambda: gaussian_oscillator_data(12, 20, seed=3).y),
    "SwitchingLowRankRNN": (switching_lowrank_losses, lambda: switching_lowrank_data(4, 30, seed=0).y),
}


@pytest.mark.parametrize("name", list(CASES))
def test_same_seeds_give_identical_losses_whatever_the_global_rng_held(name):
    fit, data = CASES[name]
    y = data()
    runs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        runs.append(fit(y))
    assert runs[0] == runs[1] and len(runs[0]) > 0


@pytest.mark.parametrize("build", [lambda: SRNN(2, 3, 3, seed=7), lambda: LowRankRNN(20, 2, 20, seed=7),
                                   lambda: SwitchingLowRankRNN(20, 2, 2, 8, seed=7)], ids=list(CASES))
def test_a_seeded_constructor_leaves_the_global_rng_alone(build):
    torch.manual_seed(3)
    state = torch.get_rng_state()
    build()
    assert torch.equal(torch.get_rng_state(), state)


def test_a_loaded_lowrank_rnn_continues_exactly_like_the_original(tmp_path):
    """save() keeps the optimizer's moments (a fresh Adam's first steps move every parameter by ~lr and
    once threw a fitted Poisson model to NaN): continuing the loaded model equals continuing the original,
    loss for loss and parameter for parameter."""
    y = gaussian_oscillator_data(12, 20, seed=3).y
    options = dict(num_particles=4, num_steps=3, batch_size=6, optimizer="adam", progress=False)
    original = LowRankRNN(20, 2, 20, readout="one_to_one", seed=7).fit(y, seed=11, **options)
    original.save(tmp_path / "rnn.pt")
    loaded = LowRankRNN.load(tmp_path / "rnn.pt")
    for rnn in (original, loaded):
        rnn.fit(y, seed=12, **options)
    assert loaded.losses == original.losses and len(loaded.losses) == 6
    for (name, a), b in zip(original.model.state_dict().items(), loaded.model.state_dict().values()):
        assert torch.equal(a, b), name
