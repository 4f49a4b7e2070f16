"""Switching data whose regimes differ only in their dynamics (pyro_neurodyn.data.dynamics_switching)."""

import pytest
import torch

from pyro_neurodyn.data import (
    SwitchingDynamicsData,
    limit_cycle_switching_data,
    recurrent_switching_data,
    rotation_switching_data,
)
from pyro_neurodyn.data.dynamics_switching import hopf_map, recurrent_switch_probability

SIMULATORS = [rotation_switching_data, limit_cycle_switching_data, recurrent_switching_data]
OBSERVATIONS = ["gaussian", "poisson"]


pytestmark = pytest.mark.usefixtures("one_thread_fresh_param_store")


@pytest.mark.parametrize("observation", OBSERVATIONS)
@pytest.mark.parametrize("simulate", SIMULATORS)
def test_shapes_and_dtypes(simulate, observation):
    data = simulate(num_trials=3, num_steps=50, obs_dim=7, observation=observation, seed=1)
    assert isinstance(data, SwitchingDynamicsData)
    assert data.y.shape == (3, 50, 7) and data.y.dtype == torch.get_default_dtype()
    assert data.states.shape == (3, 50) and data.states.dtype == torch.int64
    assert set(data.states.unique().tolist()) <= {0, 1}
    assert data.latents.shape == (3, 50, 2)
    assert data.C.shape == (7, 2) and data.d.shape == (7,)
    assert data.rates.shape == (3, 50, 7)
    assert torch.isfinite(data.y).all() and torch.isfinite(data.latents).all()


@pytest.mark.parametrize("simulate", SIMULATORS)
def test_reproducible_for_a_seed_and_different_across_seeds(simulate):
    first, again, other = simulate(seed=3), simulate(seed=3), simulate(seed=4)
    for a, b in zip(first, again):
        assert torch.equal(a, b)
    assert not torch.equal(first.y, other.y)
    assert not torch.equal(first.states, other.states)


@pytest.mark.parametrize("simulate", SIMULATORS)
def test_states_switch_and_share_one_region(simulate):
    data = simulate(seed=0)  # 16 x 200
    states, latents = data.states, data.latents
    occupancy = states.float().mean()
    assert 0.25 <= occupancy <= 0.75
    switches = (states[:, 1:] != states[:, :-1]).sum(1).float()
    # sticky simulators: about 4 switches per trial (p(stay) = 0.98); recurrent: about 15
    assert switches.mean() >= 3 and (switches >= 1).float().mean() >= 0.75
    # both regimes cover the same region: per-state means differ by < 0.2 of the latents' spread
    # (measured over seeds 0-4: 0.003-0.064 for the sticky ones, 0.06-0.12 for the recurrent one)
    spread = latents.reshape(-1, 2).std(0).norm()
    gap = (latents[states == 0].mean(0) - latents[states == 1].mean(0)).norm()
    assert gap < 0.2 * spread
    radius = latents.norm(dim=-1)
    assert (radius.mean() - 1.0).abs() < 0.05  # on the unit circle


def test_rotation_directions_and_limit_cycle_speeds():
    """The per-step angle change has the sign / size the regime says."""
    for data, expected in (
        (rotation_switching_data(seed=2), (2 * torch.pi / 20, -2 * torch.pi / 20)),
        (limit_cycle_switching_data(seed=2), (2 * torch.pi / 25, 2 * torch.pi / 8)),
    ):
        angle = torch.atan2(data.latents[..., 1], data.latents[..., 0])
        step = torch.remainder(angle[:, 1:] - angle[:, :-1] + torch.pi, 2 * torch.pi) - torch.pi
        for state, omega in enumerate(expected):
            median = step[data.states[:, 1:] == state].median()
            assert abs(float(median) - omega) < 0.02


def test_recurrent_switch_probability_depends_on_the_latent():
    data = recurrent_switching_data(seed=0)
    prev_states, prev_x = data.states[:, :-1], data.latents[:, :-1, 0]
    switched = (data.states[:, 1:] != prev_states).float()
    signed = torch.where(prev_states == 0, prev_x, -prev_x)  # position along the own trigger direction
    in_trigger, far = signed > 0.8, signed < 0.0
    assert in_trigger.sum() > 100 and far.sum() > 1000
    rate_in, rate_far = switched[in_trigger].mean(), switched[far].mean()
    # measured over seeds 0-4: 0.72-0.84 in the trigger half-plane (~220 steps), 0 switches in ~1550 steps where x points away
    assert rate_in > 0.5 and rate_far < 0.01
    p = recurrent_switch_probability(torch.tensor([[0.95, 0.0], [0.95, 0.0], [-0.95, 0.0]]), torch.tensor([0, 1, 1]))
    assert p[0] > 0.9 and p[1] < 1e-6 and p[2] > 0.9


def test_hopf_map_keeps_the_unit_circle_and_turns():
    x = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.5, 0.0]])
    out = hopf_map(x, torch.tensor(torch.pi / 2))
    assert torch.allclose(out[0], torch.tensor([0.0, 1.0]), atol=1e-6)
    assert out[1].norm() < 2.0 and out[2].norm() > 0.5  # relaxes towards radius 1


@pytest.mark.parametrize("simulate", SIMULATORS)
def test_poisson_counts(simulate):
    data = simulate(observation="poisson", seed=0)
    assert (data.y >= 0).all() and torch.equal(data.y, data.y.round())
    assert torch.allclose(data.rates, torch.nn.functional.softplus(data.latents @ data.C.T + data.d), atol=1e-5)
    assert 1.0 < data.y.mean() < 6.0  # a few counts per bin


def test_gaussian_readout_noise():
    data = rotation_switching_data(seed=0)
    residual = data.y - (data.latents @ data.C.T + data.d)
    assert abs(float(residual.std()) - 0.1) < 0.01
    assert 0.5 < float((data.latents @ data.C.T).std()) < 2.0  # signal ~1 per channel


@pytest.mark.parametrize(
    "simulate, kwargs, name",
    [
        (rotation_switching_data, dict(num_trials=0), "num_trials"),
        (rotation_switching_data, dict(num_steps=1), "num_steps"),
        (limit_cycle_switching_data, dict(obs_dim=0), "obs_dim"),
        (recurrent_switching_data, dict(observation="bernoulli"), "observation"),
        (rotation_switching_data, dict(seed=-1), "seed"),
        (rotation_switching_data, dict(stay=1.0), "stay"),
        (limit_cycle_switching_data, dict(stay=0.0), "stay"),
        (rotation_switching_data, dict(angle=-0.1), "angle"),
        (limit_cycle_switching_data, dict(angles=(0.3, 0.3)), "angles"),
        (limit_cycle_switching_data, dict(angles=(0.3,)), "angles"),
        (recurrent_switching_data, dict(threshold=1.5), "threshold"),
        (recurrent_switching_data, dict(gain=0.0), "gain"),
        (recurrent_switching_data, dict(process_noise_std=0.0), "process_noise_std"),
        (rotation_switching_data, dict(obs_noise_std=float("nan")), "obs_noise_std"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(simulate, kwargs, name):
    with pytest.raises(ValueError, match=name):
        simulate(**kwargs)
