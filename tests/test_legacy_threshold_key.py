"""Checkpoints written before the low-rank RNN's unit thresholds were renamed (``h`` -> ``threshold``) still load."""

import re

import pytest
import torch

from pyro_neurodyn import LowRankRNN, SwitchingLowRankRNN
from pyro_neurodyn.dynamics import LowRankBank, LowRankTransition
from pyro_neurodyn.infer import save_checkpoint


def _old_style(state: dict) -> dict:
    """``state`` with every ``...threshold`` key (``.threshold`` in torch's names, ``$$$threshold`` in Pyro's)
    named ``...h``, as written before the rename."""
    return {re.sub(r"(\.|\$\$\$)threshold$", r"\1h", key): value for key, value in state.items()}


@pytest.mark.parametrize(
    "make", [lambda: LowRankTransition(2, 7, input_dim=1, activation="clipped_relu"), lambda: LowRankBank(3, 2, 7, activation="clipped_relu")]
)
def test_the_modules_load_a_state_dict_that_names_the_thresholds_h(make):
    torch.manual_seed(0)
    saved = torch.nn.ModuleDict({"transition": make()})
    torch.manual_seed(1)
    fresh = torch.nn.ModuleDict({"transition": make()})
    old = _old_style(saved.state_dict())
    assert "transition.h" in old and "transition.threshold" not in old
    fresh.load_state_dict(old)  # strict: no missing or unexpected keys
    for key, value in saved.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    with pytest.raises(RuntimeError, match="threshold"):  # neither name: still an error
        fresh.load_state_dict({k: v for k, v in old.items() if k != "transition.h"})


def test_a_lowrank_rnn_checkpoint_with_the_old_names_loads_with_its_optimizer_state(tmp_path):
    y = torch.randn(3, 12, 6, generator=torch.Generator().manual_seed(0))
    rnn = LowRankRNN(6, 2, 6, seed=0)
    rnn.fit(y, num_particles=4, num_steps=2, progress=False)
    config, state, extra = rnn._checkpoint_contents()
    assert "model.transition.threshold" in state and "model.transition$$$threshold" in extra["optimizer_state"]
    old_extra = dict(extra, optimizer_state=_old_style(extra["optimizer_state"]))
    assert "model.transition.h" in _old_style(state) and "model.transition$$$h" in old_extra["optimizer_state"]
    save_checkpoint(tmp_path / "old.pt", rnn.kind, config, _old_style(state), **old_extra)
    loaded = LowRankRNN.load(tmp_path / "old.pt")
    assert torch.equal(loaded.model.transition.threshold, rnn.model.transition.threshold)
    moments = loaded._optimizer_state[1][f"{loaded.model._pyro_name}.transition$$$threshold"]
    saved = extra["optimizer_state"]["model.transition$$$threshold"]["optimizer"]["state"][0]
    assert all(torch.equal(moments["optimizer"]["state"][0][name], value) for name, value in saved.items())  # Adam moments kept
    assert torch.equal(loaded.log_evidence(y, num_particles=8, seed=0), rnn.log_evidence(y, num_particles=8, seed=0))


def test_a_switching_lowrank_checkpoint_with_the_old_name_loads(tmp_path):
    model = SwitchingLowRankRNN(6, 2, 2, 8, seed=0)
    config, state, extra = model._checkpoint_contents()
    assert "dynamics.threshold" in state
    save_checkpoint(tmp_path / "old.pt", model.kind, config, _old_style(state), **extra)
    loaded = SwitchingLowRankRNN.load(tmp_path / "old.pt")
    assert torch.equal(loaded.module.dynamics.threshold, model.module.dynamics.threshold)
