"""Online particle filtering (issue 19, part 4): ``LowRankRNN.online()`` and ``SwitchingLowRankRNN.online()``.

The ground truth is the offline particle filter (``VSMC_ELBO.filter``) on the same data with the same seed:
the online filter runs the same step function (``VSMC_ELBO.particle_step``) and the same resampling in the
same order, so the random draws coincide and the beliefs agree bitwise for the Kalman-type and bootstrap
proposals; the CNN encoder proposal reads a window of y in the online filter (a shorter convolution), so it
agrees to float32 rounding. Models start from ``initialize_from_data`` (no fit: the equalities hold for any
parameters).
"""

import pyro
import pytest
import torch

from pyro_neurodyn import LowRankRNN, SwitchingLowRankRNN
from pyro_neurodyn.data import Recording
from pyro_neurodyn.infer import VSMC_ELBO
from pyro_neurodyn.infer.particle_online_filter import ParticleOnlineFilter


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def recording(trials, steps, channels, seed=0, counts=False):
    generator = torch.Generator().manual_seed(seed)
    y = torch.randn(trials, steps, channels, generator=generator).cumsum(1).sin()
    return torch.poisson(2 * (y + 1), generator=generator) if counts else y


def lowrank(steps=40, **options):
    """A data-initialized LowRankRNN (6 channels, rank 2), its recording (2, steps, 6) and inputs (or None)."""
    rnn = LowRankRNN(obs_dim=6, rank=2, num_units=6, seed=0, **options)
    counts = options.get("observation") == "poisson"
    y = recording(2, steps, 6, counts=counts)
    u = torch.randn(2, steps, options["input_dim"], generator=torch.Generator().manual_seed(1)) if options.get("input_dim") else None
    return rnn.initialize_from_data(y, u), y, u


CASES = {
    "optimal": dict(),
    "bootstrap": dict(proposal="bootstrap"),
    "filtered inputs": dict(input_dim=2),
    "raw inputs, one-to-one": dict(input_dim=2, filter_inputs=False, readout="one_to_one"),
    "poisson, encoder": dict(observation="poisson", encoder_kernel_sizes=(5, 3, 1), encoder_channels=8),
}


@pytest.mark.parametrize("case", list(CASES))
def test_lowrank_online_equals_offline_filter(case):
    """Over 40 steps (beyond the encoder's 7-step window), for two streams at once, and for one stream alone."""
    rnn, y, u = lowrank(**CASES[case])
    exact = rnn.config.proposal != "encoder"
    tolerance = dict(rtol=0, atol=0) if exact else dict(rtol=1e-5, atol=1e-5)
    offline = rnn.filter(y, u, num_particles=16, seed=3)
    online = rnn.online(num_particles=16, seed=3)
    torch.testing.assert_close(online.run(y, u), offline.means, **tolerance)
    torch.testing.assert_close(online.particles["x"], offline.particles[:, -1].transpose(0, 1), **tolerance)
    torch.testing.assert_close(online.log_weights, offline.log_weights[:, -1].T, **tolerance)
    single = rnn.filter(y[:1], None if u is None else u[:1], num_particles=16, seed=4).means[0]
    stream = rnn.online(num_particles=16, seed=4)
    beliefs = [stream.update(y[0, t], None if u is None else u[0, t]) for t in range(y.shape[1])]
    assert beliefs[0].shape == (2,)
    torch.testing.assert_close(torch.stack(beliefs), single, **tolerance)


@pytest.mark.parametrize("case", ["optimal", "bootstrap", "poisson, encoder"])
def test_missing_entries_online_equal_the_offline_filter_of_the_recording(case):
    """NaN entries of ``y_t`` are missing: the online beliefs equal the offline filter of the Recording with those
    entries missing (same seed; one entry in five, and every channel of steps 10-14 of stream 0), bitwise for the
    Kalman-type and bootstrap proposals, to float32 rounding for the encoder (module docstring)."""
    rnn, y, u = lowrank(**CASES[case])
    missing = y.clone()
    missing[torch.rand(y.shape, generator=torch.Generator().manual_seed(0)) < 0.2] = float("nan")
    missing[0, 10:15] = float("nan")
    tolerance = dict(rtol=0, atol=0) if rnn.config.proposal != "encoder" else dict(rtol=1e-5, atol=1e-5)
    offline = rnn.filter(Recording.from_trials(list(missing)), num_particles=16, seed=3)
    online = rnn.online(num_particles=16, seed=3)
    torch.testing.assert_close(online.run(missing), offline.means, **tolerance)
    complete = rnn.online(num_particles=16, seed=3).run(torch.nan_to_num(missing))
    assert float((complete - offline.means).abs().max()) > 1e-2  # the missing entries read as 0 are not missing


def test_encoder_window_is_the_receptive_field():
    rnn, y, _ = lowrank(steps=12, proposal="encoder", encoder_kernel_sizes=(5, 3, 1), encoder_channels=8)
    assert rnn.guide.data_window == 7
    online = rnn.online(num_particles=4, seed=0)
    online.run(y)
    assert online.state_tensors()["y_window"].shape == (2, 7, 6)


def test_lowrank_online_memory_does_not_grow_and_reset_restarts_the_stream():
    rnn, y, u = lowrank(input_dim=2)
    online = rnn.online(num_particles=8, seed=5)
    first = online.run(y[:, :10], u[:, :10])
    shapes = {name: tensor.shape for name, tensor in online.state_tensors().items()}
    assert set(shapes) == {"x", "v", "log_weights", "y_window", "u_window"}
    online.run(y[:, 10:], u[:, 10:])
    assert {name: tensor.shape for name, tensor in online.state_tensors().items()} == shapes
    assert online.num_updates == 40
    online.reset()
    assert online.state_tensors() == {}
    torch.testing.assert_close(online.run(y[:, :10], u[:, :10]), first, rtol=0, atol=0)


def test_seeded_filter_leaves_the_global_rng_alone_and_unseeded_one_follows_it():
    rnn, y, _ = lowrank()
    torch.manual_seed(11)
    expected_next = torch.rand(3)
    torch.manual_seed(11)
    rnn.online(num_particles=8, seed=0).run(y[:, :5])
    assert torch.equal(torch.rand(3), expected_next)
    offline = rnn.filter(y, num_particles=8, seed=21).means
    pyro.set_rng_seed(21)
    torch.testing.assert_close(rnn.online(num_particles=8).run(y), offline, rtol=0, atol=0)


def test_lowrank_online_argument_errors():
    with pytest.raises(RuntimeError, match="not been fit"):
        LowRankRNN(obs_dim=6, rank=2, num_units=6, seed=0).online()
    rnn, y, _ = lowrank(input_dim=2)
    with pytest.raises(ValueError, match="num_particles"):
        rnn.online(num_particles=0)
    with pytest.raises(ValueError, match="seed"):
        rnn.online(seed=-1)
    online = rnn.online(num_particles=4)
    assert isinstance(online, ParticleOnlineFilter) and online.elbo.num_particles == 4
    assert rnn.online().elbo.num_particles == rnn.num_particles
    with pytest.raises(ValueError, match="u_t"):
        online.update(y[0, 0])
    with pytest.raises(ValueError, match="y_t"):
        online.update(y[0, 0, :3], torch.zeros(2))


@pytest.mark.parametrize("moments", ["prior_mean", "posterior_moments"])
def test_switching_online_equals_weighted_alpha_of_offline_filter(moments):
    """p(z_t | y_{<=t}) = sum_s W_t^s alpha_t^s from the offline record, for two streams."""
    y = recording(2, 30, 8, seed=2)
    rnn = SwitchingLowRankRNN(8, 2, 2, 8, seed=0, proposal=moments).initialize_from_data(y, num_rounds=1)
    pyro.set_rng_seed(7)
    with pyro.validation_enabled(False):
        record = VSMC_ELBO(16).filter(rnn.module, rnn.proposal, y, None, None)
    expected = (record.log_weights.exp().unsqueeze(-1) * record.states["log_alpha"].exp()).sum(1).transpose(0, 1)  # (B, T, K)
    online = rnn.online(num_particles=16, seed=7)
    beliefs = online.run(y)
    assert beliefs.shape == (2, 30, 2)
    torch.testing.assert_close(beliefs, expected, rtol=0, atol=0)
    torch.testing.assert_close(beliefs.sum(-1), torch.ones(2, 30))
    assert set(online.state_tensors()) == {"x", "log_alpha", "log_weights", "y_window"}
    with pytest.raises(ValueError, match="u_t"):
        online.update(y[:, 0], torch.zeros(2, 1))


def test_lowrank_fit_on_random_windows(monkeypatch):
    """Each step filters batch_size windows of W steps (not the whole trial); the loss is per step, like a fit on
    whole trials; an epoch is the number of windows that tile the data."""
    y = recording(1, 600, 6, seed=3)
    rnn = LowRankRNN(obs_dim=6, rank=2, num_units=6, seed=0)
    shapes = []
    init = rnn.model.init

    def recording_init(state, y, *args, **kwargs):
        shapes.append(tuple(y.shape))
        return init(state, y, *args, **kwargs)

    monkeypatch.setattr(rnn.model, "init", recording_init)
    rnn.fit(y, window=50, batch_size=4, epochs=1, num_particles=4, progress=False, seed=0)
    assert shapes == [(4, 50, 6)] * 3  # round(600 / (4 * 50)) steps
    whole = LowRankRNN(obs_dim=6, rank=2, num_units=6, seed=0).fit(y, num_steps=1, num_particles=4, progress=False, seed=0)
    assert all(abs(loss - whole.losses[0]) < 0.5 * abs(whole.losses[0]) for loss in rnn.losses)  # per step (not 12x: per window)
    with pytest.raises(ValueError, match="window"):
        rnn.fit(y, window=601, num_steps=1, progress=False)
