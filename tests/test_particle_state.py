"""ParticleState: the lifetimes of its three stores, the guide's lock, and plain dicts as states."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.nn import PyroModule, pyro_method

from pyro_neurodyn import LowRankRNN
from pyro_neurodyn.guides import BootstrapProposal, OptimalProposal
from pyro_neurodyn.infer import VSMC_ELBO, ParticleState, ReadOnlyStateError
from pyro_neurodyn.infer.particle_state import pass_constant, step_memo


pytestmark = pytest.mark.usefixtures("one_thread_fresh_param_store")


def test_memos_live_one_step_and_constants_one_pass():
    state = ParticleState(x=torch.zeros(3, 2))
    owner = object()
    calls = []
    constant = pass_constant(state, owner, lambda: calls.append("c") or 1.0)
    assert pass_constant(state, owner, lambda: calls.append("c") or 2.0) == constant == 1.0
    assert step_memo(state, (owner, 1), lambda: calls.append("m") or 3.0) == 3.0
    assert step_memo(state, (owner, 1), lambda: calls.append("m") or 4.0) == 3.0
    state["x"] = torch.ones(3, 2)  # the particles moved: the memo is stale
    assert step_memo(state, (owner, 1), lambda: 5.0) == 5.0
    state.begin_step()
    assert not state.memo and state.constants == {owner: 1.0} and calls == ["c", "m"]
    plain = {"x": torch.zeros(3, 2)}  # SMCFilter's state or a hand-written loop's: computed every time
    assert [pass_constant(plain, owner, lambda: len(calls)) for _ in range(2)] == [2, 2]
    assert step_memo(plain, owner, lambda: 6.0) == 6.0 and plain.keys() == {"x"}


def test_a_locked_state_refuses_every_kind_of_write():
    state = ParticleState(x=torch.zeros(3))
    with state.read_only("the guide's step at t = 4"):
        for write in (
            lambda: state.__setitem__("x", torch.ones(3)),
            lambda: state.update(w=torch.ones(3)),
            lambda: state.setdefault("w", torch.ones(3)),
            lambda: state.pop("x"),
            lambda: state.clear(),
            lambda: state.__delitem__("x"),
        ):
            with pytest.raises(ReadOnlyStateError, match="the guide's step at t = 4"):
                write()
        state.constants["mine"] = 1  # a proposal's own per-pass values are its business
        state.memo["mine"] = 2
    state["x"] = torch.ones(3)  # unlocked again
    assert torch.equal(state["x"], torch.ones(3))


class WritingGuide(BootstrapProposal):
    """A guide that moves the particles: VSMC_ELBO must refuse it (as SMCFilter does)."""

    @pyro_method
    def step(self, state, t, y, *args, **kwargs):
        state["x"] = state["x"] + 1.0


def test_vsmc_refuses_a_guide_that_writes_the_state_and_the_model_may():
    rnn = LowRankRNN(4, 2, 6, readout="affine", seed=0)
    y = rnn.sample(3, 5, seed=0).y
    with pytest.raises(ReadOnlyStateError, match=r"the guide's step at t = 1 wrote state\['x'\].*only the model"):
        VSMC_ELBO(8).loss(rnn.model, WritingGuide(), y)
    assert torch.isfinite(VSMC_ELBO(8).log_evidence(rnn.model, BootstrapProposal(), y)).all()


class CountingCalls:
    """Wraps ``owner.name`` and counts its calls."""

    def __init__(self, monkeypatch, owner, name):
        self.count, method = 0, getattr(owner, name)

        def counted(*args, **kwargs):
            self.count += 1
            return method(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)


def test_a_pass_factorizes_once_and_each_prior_is_computed_once_per_step(monkeypatch):
    """With the optimal proposal the guide and the model both ask for the prior of x_t and for the pass
    constants; a VSMC pass computes the constants once and each step's transition once."""
    rnn = LowRankRNN(4, 2, 6, readout="affine", seed=0)
    y = rnn.sample(3, 7, seed=0).y
    guide = OptimalProposal(rnn.model)
    factorizations = CountingCalls(monkeypatch, rnn.model.noise, "factors")
    transitions = CountingCalls(monkeypatch, rnn.model.transition, "forward")
    VSMC_ELBO(8).loss(rnn.model, guide, y)
    assert (factorizations.count, transitions.count) == (1, y.shape[1] - 1)


class Drift(PyroModule):
    """x_t ~ N(x_{t-1} + 1, 1), nothing observed: a model whose state is a plain tensor."""

    def __init__(self):
        super().__init__()

    @pyro_method
    def init(self, state, y):
        with pyro.plate("trials", y.shape[0], dim=-1):
            state["x"] = pyro.sample("x", dist.Normal(torch.zeros(y.shape[0]), 1.0))

    @pyro_method
    def step(self, state, t, y):
        with pyro.plate("trials", y.shape[0], dim=-1):
            state["x"] = pyro.sample("x", dist.Normal(state["x"] + 1.0, 1.0))


def test_models_run_with_plain_dicts_as_their_state():
    """Outside VSMC_ELBO a model takes any dict: the low-rank model's hand-written loop gives its forward's
    draws, and a model written for SMCFilter with plain dicts runs under VSMC_ELBO."""
    rnn = LowRankRNN(4, 2, 6, readout="affine", seed=0)
    y = rnn.sample(3, 5, seed=0).y
    pyro.set_rng_seed(0)
    state, latents = {}, []
    for t in range(y.shape[1]):
        rnn.model.init(state, y) if t == 0 else rnn.model.step(state, t, y)
        latents.append(state["x"])
    pyro.set_rng_seed(0)
    torch.testing.assert_close(torch.stack(latents, -2), rnn.model(y)["x"], rtol=0, atol=0)
    record = VSMC_ELBO(4).filter(Drift(), BootstrapProposal(), torch.zeros(2, 3, 1))
    assert record.states["x"].shape == (3, 4, 2)
