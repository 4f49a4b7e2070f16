"""Checkpoints written before the low-rank RNN's unit thresholds were renamed (``h`` -> ``threshold``) still load."""

import re
from pathlib import Path

import pytest
import torch

from pyro_neurodyn import LowRankRNN, SwitchingLowRankRNN
from pyro_neurodyn.data import gaussian_oscillator_data
from pyro_neurodyn.dynamics import LowRankBank, LowRankTransition
from pyro_neurodyn.infer import save_checkpoint
from pyro_neurodyn.infer.checkpoint import _checksum

LEGACY = Path(__file__).parent / "data" / "legacy_optimizer_state"  # files written with pyro.optim (see its README)


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
    """A saved model of checkpoint format 2 (pyro.optim's moments under Pyro's param-store names) from before the rename."""
    raw = torch.load(LEGACY / "lowrank_rnn_model.ckpt", weights_only=True)
    assert raw["format_version"] == 2 and "model.transition$$$threshold" in raw["optimizer_state"]
    old = dict(raw, state_dict=_old_style(raw["state_dict"]), optimizer_state=_old_style(raw["optimizer_state"]))
    assert "model.transition.h" in old["state_dict"] and "model.transition$$$h" in old["optimizer_state"]
    old["checksum"] = _checksum(old)
    torch.save(old, tmp_path / "old.pt")
    loaded, reference = LowRankRNN.load(tmp_path / "old.pt"), LowRankRNN.load(LEGACY / "lowrank_rnn_model.ckpt")
    assert torch.equal(loaded.model.transition.threshold, reference.model.transition.threshold)
    moments = loaded._optimizer_state[1]["optimizer"]["state"]["model.transition.threshold"]
    saved = raw["optimizer_state"]["model.transition$$$threshold"]["optimizer"]["state"][0]
    assert all(torch.equal(moments[name], value) for name, value in saved.items())  # RAdam moments kept
    y = gaussian_oscillator_data(12, 20, seed=3).y
    assert torch.equal(loaded.log_evidence(y, num_particles=8, seed=0), reference.log_evidence(y, num_particles=8, seed=0))


def test_a_switching_lowrank_checkpoint_with_the_old_name_loads(tmp_path):
    model = SwitchingLowRankRNN(6, 2, 2, 8, seed=0)
    config, state, extra = model._checkpoint_contents()
    assert "dynamics.threshold" in state
    save_checkpoint(tmp_path / "old.pt", model.kind, config, _old_style(state), **extra)
    loaded = SwitchingLowRankRNN.load(tmp_path / "old.pt")
    assert torch.equal(loaded.module.dynamics.threshold, model.module.dynamics.threshold)
