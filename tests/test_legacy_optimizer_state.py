"""Files written with ``pyro.optim`` (checkpoint formats 1 and 2) load and resume with ``torch.optim``.

Their optimizer state is one torch optimizer per parameter, keyed by Pyro's param-store names;
:func:`~pyro_neurodyn.infer.optimizer_state.from_pyro_optim_state` converts it. ``tests/data/legacy_optimizer_state``
holds files written by the code before the change (see its README): resuming them restores every parameter's
saved moments exactly. A fit's numbers differ between machines (CPU kernels), so the end-to-end check that a
resumed fit ends exactly like the uninterrupted one rewrites a checkpoint written here into pyro.optim's layout.
"""

import shutil
from pathlib import Path

import pytest
import torch

from pyro_neurodyn import SRNN, LowRankRNN, SwitchingLowRankRNN
from pyro_neurodyn.data import gaussian_oscillator_data, switching_lorenz, switching_lowrank_data
from pyro_neurodyn.infer import FitRun, svi_loop
from pyro_neurodyn.infer.checkpoint import _checksum
from pyro_neurodyn.infer.optimizer_state import named_state, parameter_names

pytestmark = pytest.mark.usefixtures("one_thread_fresh_param_store")

LEGACY = Path(__file__).parent / "data" / "legacy_optimizer_state"


# the fits that wrote the files (make_legacy_files.py); checkpoint options appended
def srnn_fit(**options):
    y = switching_lorenz(4, 30, seed=1).y  # labels 6 steps, free 6 steps, filter 6 steps
    return SRNN(2, 3, 3, encoder_hidden=8, seed=7).fit(y, num_steps=12, label_steps=6, filter_steps=6, init="kmeans", seed=11, progress=False, **options)


def lowrank_fit(num_steps: int = 14, **options):
    y = gaussian_oscillator_data(12, 20, seed=3).y  # 2 steps per epoch of 5-trial batches
    rnn = LowRankRNN(20, 2, 20, readout="one_to_one", seed=7)
    return rnn.fit(y, num_particles=4, num_steps=num_steps, batch_size=5, optimizer="radam", seed=11, progress=False, **options)


def switching_fit(**options):
    y = switching_lowrank_data(4, 30, seed=0).y
    return SwitchingLowRankRNN(20, 2, 2, 8, encoder_hidden=8, seed=7).fit(y, "vsmc", num_steps=10, num_particles=4, seed=11, **options)


FITS = {"srnn_free_phase.ckpt": srnn_fit, "srnn_filter_phase.ckpt": srnn_fit, "lowrank_rnn.ckpt": lowrank_fit, "switching_lowrank_rnn.ckpt": switching_fit}


@pytest.fixture
def restored_optimizer_states(monkeypatch):
    """The named state (:mod:`~pyro_neurodyn.infer.optimizer_state`) of each phase's optimizer and scheduler right
    after a resumed fit restored it (the phases resumed mid-way, where ``begin_phase`` returns a step > 0)."""
    states = []
    begin_phase = FitRun.begin_phase

    def recording(self, optimizer, scheduler, batches):
        step = begin_phase(self, optimizer, scheduler, batches)
        if step:
            states.append(named_state(optimizer, scheduler, parameter_names(self.owner._modules_by_name())))
        return step

    monkeypatch.setattr(FitRun, "begin_phase", recording)
    return states


def same(a, b) -> bool:
    return torch.equal(torch.as_tensor(a), torch.as_tensor(b))


@pytest.mark.parametrize("name", sorted(FITS))
def test_a_legacy_fit_checkpoint_resumes_with_every_parameters_saved_moments(tmp_path, restored_optimizer_states, name):
    """Each parameter of the resumed phase's optimizer gets its saved moments and step count, the scheduler its
    saved state; the fit then runs to its end, its history starting with the file's.

    pyro.optim decayed a parameter's learning rate only at the steps that saw it. The SRNN's free phase read
    init_logits, init_loc, init_log_scale and latent_log_scale only lazily, so pyro's SVI never saw them there
    (they trained in the label phase alone): their rates lag in ``srnn_free_phase.ckpt``, and the group continues
    at the rate of its most-stepped parameters, where the fit's schedule stood."""
    legacy = torch.load(LEGACY / name, weights_only=True)
    assert legacy["format_version"] == 2
    saved = {key.replace("$$$", "."): entry for key, entry in legacy["fit_progress"]["optimizer_state"].items()}
    shutil.copy(LEGACY / name, tmp_path / name)
    fitted = FITS[name](checkpoint=tmp_path / name, checkpoint_every=4, resume=True)
    (restored,) = restored_optimizer_states
    (group,) = restored["optimizer"]["param_groups"]
    optimized = group["params"]
    if name == "srnn_filter_phase.ckpt":  # the filter phase's optimizer: the causal encoder's parameters alone
        assert len(optimized) == 6 and all(p.startswith("srnn.filter_encoder.") for p in optimized)
    else:  # and parameters the old fits never stepped (a SwitchingLowRankRNN's encoder in VSMC), which have no state
        assert {p for p in saved if not p.startswith("srnn.filter_encoder.")} <= set(optimized)
    optimizers = {p: saved[p].get("optimizer", saved[p]) for p in optimized if p in saved}  # a scheduler's entry nests its optimizer's
    assert restored["optimizer"]["state"].keys() == optimizers.keys()
    for parameter, entry in optimizers.items():
        expected = entry["state"][0]
        assert restored["optimizer"]["state"][parameter].keys() == expected.keys()
        assert all(same(restored["optimizer"]["state"][parameter][k], v) for k, v in expected.items()), parameter
    steps = {p: float(entry["state"][0]["step"]) for p, entry in optimizers.items()}
    most_stepped = max(steps, key=steps.get)
    assert group["lr"] == optimizers[most_stepped]["param_groups"][0]["lr"]
    if name == "srnn_free_phase.ckpt":
        assert steps["srnn.init_loc"] == 6 and steps[most_stepped] == 10 and group["lr"] < optimizers["srnn.init_loc"]["param_groups"][0]["lr"]
    if name == "lowrank_rnn.ckpt":  # one ExponentialLR over the parameters: the per-parameter ones' shared state
        scheduler = saved[most_stepped]["scheduler"]
        assert restored["scheduler"]["last_epoch"] == scheduler["last_epoch"] == 4 and restored["scheduler"]["_last_lr"] == scheduler["_last_lr"]
    assert fitted.losses[: len(legacy["losses"])] == legacy["losses"] and len(fitted.losses) == {"lowrank_rnn.ckpt": 14, "switching_lowrank_rnn.ckpt": 10}.get(name, 12)


def test_a_legacy_saved_lowrank_model_keeps_its_moments_for_a_later_fit():
    legacy = torch.load(LEGACY / "lowrank_rnn_model.ckpt", weights_only=True)
    loaded = LowRankRNN.load(LEGACY / "lowrank_rnn_model.ckpt")
    name, state = loaded._optimizer_state
    assert name == "radam" and state["scheduler"] is not None
    for key, entry in legacy["optimizer_state"].items():
        moments = state["optimizer"]["state"][key.replace("$$$", ".")]
        assert all(same(moments[k], v) for k, v in entry["optimizer"]["state"][0].items()), key
    y = gaussian_oscillator_data(12, 20, seed=3).y
    loaded.fit(y, num_particles=4, num_steps=2, batch_size=6, seed=12, progress=False)  # continues from them
    assert len(loaded.losses) == len(legacy["losses"]) + 2


# ----- end to end, on this machine ----------------------------------------------------------------------
def as_pyro_optim_state(state: dict) -> dict:
    """A named optimizer state (one group) in pyro.optim's layout: ``{name: optimizer.state_dict()}`` per parameter,
    ``{name: {"scheduler": ..., "optimizer": ...}}`` with a scheduler (its per-group lists of one entry)."""
    (group,) = state["optimizer"]["param_groups"]
    hyperparameters = {k: v for k, v in group.items() if k != "params"}
    legacy = {}
    for name in group["params"]:
        per_parameter = {"state": {0: state["optimizer"]["state"][name]} if name in state["optimizer"]["state"] else {},
                         "param_groups": [{**hyperparameters, "params": [0]}]}  # fmt: skip
        legacy[name] = per_parameter if state["scheduler"] is None else {"scheduler": state["scheduler"], "optimizer": per_parameter}
    return legacy


def interrupted(fit, path: Path, num_steps: int) -> None:
    """``fit(checkpoint=path)`` (a checkpoint every 4 steps) stopped after ``num_steps`` SVI steps."""
    original, count = svi_loop.GuardedSVI.step, [0]

    class Stop(Exception):
        pass

    def step(self, *args, **kwargs):
        if count[0] == num_steps:
            raise Stop
        count[0] += 1
        return original(self, *args, **kwargs)

    svi_loop.GuardedSVI.step = step
    try:
        with pytest.raises(Stop):
            fit(checkpoint=path, checkpoint_every=4)
    finally:
        svi_loop.GuardedSVI.step = original


@pytest.mark.parametrize("fit, num_steps", [(lowrank_fit, 10), (switching_fit, 6), (srnn_fit, 17)])
def test_a_format_2_checkpoint_resumes_to_the_uninterrupted_fit(tmp_path, fit, num_steps):
    """A checkpoint rewritten into format 2 (pyro.optim's per-parameter moments and schedulers) resumes to exactly
    the uninterrupted fit: mid-epoch with a learning-rate schedule (LowRankRNN), with ClippedAdam's decay
    (SwitchingLowRankRNN), in the SRNN's filter phase (an optimizer of its own)."""
    path = tmp_path / "fit.ckpt"
    interrupted(fit, path, num_steps)
    payload = torch.load(path, weights_only=True)
    progress = payload["fit_progress"]
    payload.update(format_version=2, fit_progress=dict(progress, optimizer_state=as_pyro_optim_state(progress["optimizer_state"])))
    if "optimizer_state" in payload:  # the LowRankRNN's copy for later fits
        payload["optimizer_state"] = as_pyro_optim_state(payload["optimizer_state"])
    payload["checksum"] = _checksum(payload)
    torch.save(payload, path)
    found, expected = fit(checkpoint=path, checkpoint_every=4, resume=True), fit()
    assert found.losses == expected.losses
    found_state, expected_state = found._checkpoint_contents()[1], expected._checkpoint_contents()[1]
    assert found_state.keys() == expected_state.keys()
    for key, value in expected_state.items():
        assert torch.equal(found_state[key], value), key
