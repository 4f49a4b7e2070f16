"""Online decoding (issue 19, part 4): ``SRNN.online()`` equals the offline causal filter, in O(1) memory.

The ground truth is the offline filter ``p(z_t | h_{1:t})`` at the causal encoder's mean path, computed for
the whole sequence at once (encoder over all T, parallel-scan filter). The online filter steps the
encoder's cell with its state carried and runs one forward step per update; the two must agree to
rounding (float64: 1e-10, float32: 1e-5). Untrained models suffice for the equalities; the estimator
tests fit one step of each phase.
"""

import pytest
import torch

from pyro_neurodyn import SRNN
from pyro_neurodyn.data import Recording
from pyro_neurodyn.distributions import switching_filter, switching_filter_step
from pyro_neurodyn.guides import RecurrentEncoder
from pyro_neurodyn.infer import OnlineFilter
from pyro_neurodyn.infer.switching_online_filter import SwitchingOnlineFilter
from pyro_neurodyn.models import SRNNModel

QUICK = dict(num_steps=1, filter_steps=1, init=None, progress=False)


pytestmark = pytest.mark.usefixtures("one_thread")


def offline_causal_filter(module, encoder, y, u=None):
    """The reference: encoder over the whole sequence, chain factors of its mean path, parallel-scan filter."""
    with torch.no_grad():
        return switching_filter(*module.latent_factors(encoder(y, u).mean, u))


def test_filter_step_iterated_equals_parallel_scan_filter():
    """The per-step recursion the online filter runs reproduces the tree-structured offline filter, with batch
    dims, per-step and stationary transitions and impossible (-inf) transitions."""
    torch.manual_seed(0)
    batch, steps, states = 3, 60, 4
    init = torch.randn(batch, states, dtype=torch.float64)
    trans = 4 * torch.randn(batch, steps - 1, states, states, dtype=torch.float64)
    trans[..., 0, 1] = -float("inf")
    emission = 6 * torch.randn(batch, steps, states, dtype=torch.float64)
    for transitions in (trans, trans[0, 0]):  # (B, T-1, K, K) and one stationary (K, K)
        belief = switching_filter_step(init, emission[:, 0])
        online = [belief]
        for t in range(1, steps):
            belief = switching_filter_step(belief, emission[:, t], transitions if transitions.dim() == 2 else transitions[:, t - 1])
            online.append(belief)
        torch.testing.assert_close(torch.stack(online, 1).exp(), switching_filter(init, transitions, emission), rtol=0, atol=1e-12)


@pytest.mark.parametrize("transitions, cell", [("recurrent", "lstm"), ("input", "lstm"), ("recurrent", "gru")])
def test_online_updates_equal_offline_causal_filter_float64(transitions, cell):
    torch.manual_seed(1)
    module = SRNNModel(3, 2, 4, input_dim=2, transitions=transitions).double()
    encoder = RecurrentEncoder(4, 2, 2, hidden_dim=8, causal=True, cell=cell).double()
    y, u = torch.randn(3, 50, 4, dtype=torch.float64), torch.randn(3, 50, 2, dtype=torch.float64)
    encoder.set_input_statistics(2 * y + 1, u)  # a non-trivial standardization, read by both paths
    expected = offline_causal_filter(module, encoder, y, u)
    online = SwitchingOnlineFilter(module, encoder, obs_dim=4)
    torch.testing.assert_close(online.run(y, u), expected, rtol=0, atol=1e-10)  # batched: (B, D) updates
    online.reset()
    torch.testing.assert_close(online.run(y[1], u[1]), expected[1], rtol=0, atol=1e-10)  # single stream: (D,) updates
    torch.testing.assert_close(online.latent_mean, encoder(y[1:2], u[1:2]).mean[:, -1].detach(), rtol=0, atol=1e-10)


@pytest.fixture(scope="module")
def fitted():
    torch.manual_seed(2)
    y = torch.randn(2, 60, 3)
    model = SRNN(num_states=2, latent_dim=3, obs_dim=3).fit(y, **QUICK)
    return model, y


def test_srnn_online_equals_filter_marginals_float32(fitted):
    model, y = fitted
    expected = model.filter_marginals(y)  # (trials, T, K)
    assert expected.shape == (2, 60, 2)
    online = model.online()
    beliefs = torch.stack([online.update(y[:, t]) for t in range(y.shape[1])], 1)
    torch.testing.assert_close(beliefs, expected, rtol=0, atol=1e-5)
    assert isinstance(online, OnlineFilter) and online.num_updates == 60
    single = model.online()
    torch.testing.assert_close(torch.stack([single.update(y[0, t].numpy()) for t in range(60)]), expected[0], rtol=0, atol=1e-5)


def test_missing_entries_online_equal_the_offline_filter_of_the_recording(fitted):
    """NaN entries of ``y_t`` are missing: the beliefs equal ``filter_marginals`` of the Recording with those entries
    missing (one entry in ten, and every channel of steps 20-24 of trial 1), and differ from reading them as 0."""
    model, y = fitted
    missing = y.clone()
    missing[torch.rand(y.shape, generator=torch.Generator().manual_seed(0)) < 0.1] = float("nan")
    missing[1, 20:25] = float("nan")
    expected = model.filter_marginals(Recording.from_trials(list(missing)))
    online = model.online()
    torch.testing.assert_close(online.run(missing), expected, rtol=0, atol=1e-5)
    as_zeros = model.online().run(torch.nan_to_num(missing))
    assert float((as_zeros - expected).abs().max()) > 1e-2


def test_the_filter_keeps_no_history_and_reset_restarts(fitted):
    model, y = fitted
    online = model.online()
    assert online.state_tensors() == {}
    first = online.run(y[0, :5])
    sizes = {name: t.numel() for name, t in online.state_tensors().items()}
    assert set(sizes) == {"latent_mean", "log_belief", "encoder_state_0", "encoder_state_1"}
    long_stream = torch.randn(400, 3)
    for y_t in long_stream:
        online.update(y_t)
    assert {name: t.numel() for name, t in online.state_tensors().items()} == sizes  # O(1) in the number of updates
    held = [value for value in vars(online).values() if isinstance(value, (list, tuple, dict, torch.Tensor))]
    assert sum(v.numel() for v in held if isinstance(v, torch.Tensor)) + sum(len(v) for v in held if not isinstance(v, torch.Tensor)) < 100
    online.reset()
    assert online.num_updates == 0 and online.state_tensors() == {}
    torch.testing.assert_close(online.run(y[0, :5]), first, rtol=0, atol=0)


def test_online_input_errors(fitted):
    model, y = fitted
    online = model.online()
    with pytest.raises(ValueError, match=r"y_t must be \(D,\) or \(B, D\) with D = obs_dim = 3"):
        online.update(torch.zeros(4))
    with pytest.raises(ValueError, match="y_t must be"):
        online.update(torch.zeros(1, 1, 3))
    with pytest.raises(ValueError, match="y_t contains infinite values"):
        online.update(torch.tensor([0.0, float("inf"), 1.0]))
    with pytest.raises(ValueError, match="u_t: this model takes no inputs"):
        online.update(torch.zeros(3), torch.zeros(1))
    with pytest.raises(TypeError, match="y_t must be a numeric array"):
        online.update("not data")
    online.update(torch.zeros(3))
    with pytest.raises(ValueError, match="call reset"):
        online.update(torch.zeros(2, 3))  # a batch after single updates
    assert online.num_updates == 1  # refused updates change nothing
    with pytest.raises(ValueError, match="causal encoder"):
        SwitchingOnlineFilter(model.module, model.module.encoder, obs_dim=3)  # the bidirectional one


def test_inputs_and_counts_are_checked():
    torch.manual_seed(3)
    y = torch.poisson(2 * torch.ones(1, 30, 3))
    model = SRNN(num_states=2, latent_dim=2, obs_dim=3, input_dim=2, observation="poisson").fit(y, torch.randn(1, 30, 2), **QUICK)
    online = model.online()
    with pytest.raises(ValueError, match="u_t: this model takes inputs of dim 2"):
        online.update(torch.ones(3))
    with pytest.raises(ValueError, match=r"u_t must be \(2,\)"):
        online.update(torch.ones(3), torch.zeros(3))
    with pytest.raises(ValueError, match="non-negative integer counts"):
        online.update(torch.tensor([1.0, 0.5, 2.0]), torch.zeros(2))
    assert online.update(torch.tensor([1.0, 0.0, 2.0]), torch.zeros(2)).shape == (2,)


def test_online_needs_a_fitted_causal_encoder(tmp_path):
    with pytest.raises(RuntimeError, match="has not been fit"):
        SRNN(obs_dim=3).online()
    y = torch.randn(1, 30, 3)
    model = SRNN(num_states=2, latent_dim=2, obs_dim=3).fit(y, num_steps=1, filter_steps=0, init=None, progress=False)
    for action in (model.online, lambda: model.filter_marginals(y), lambda: model.forecast(y, 3)):
        with pytest.raises(RuntimeError, match=r"never trained \(filter_steps=0\)"):
            action()
    model.save(tmp_path / "m.pt")  # the count travels with the model
    with pytest.raises(RuntimeError, match="never trained"):
        SRNN.load(tmp_path / "m.pt").online()
