"""Fits that survive interruption: checkpoints while fitting, resuming after SIGKILL, Ctrl-C, non-finite losses.

Ground truth for resumption is the uninterrupted fit itself: the same fit killed with SIGKILL (in a
subprocess, so nothing survives but the file) and resumed must end with bitwise the same parameters and
losses, on every estimator and wherever the kill lands (inside a phase, or in a later phase than the
last checkpoint's).
"""

import os
import signal
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

from pyro_neurodyn import SRNN, LowRankRNN, SwitchingLowRankRNN
from pyro_neurodyn.data import gaussian_oscillator_data, switching_lorenz
from pyro_neurodyn.infer import CheckpointError, FitRun, NonFiniteLossError, VSMC_ELBO, fit_svi
from pyro_neurodyn.infer.fit_run import MAX_ROLLBACKS, ROLLBACK_INTERVAL

pytestmark = pytest.mark.usefixtures("one_thread_fresh_param_store")

# Each case: build the estimator and fit it (checkpoint options appended). The SRNN fit has three phases
# (labels 6 steps, free 6 steps, filter 6 steps); checkpoints every 4 steps of a phase.
SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    torch.set_num_threads(1)
    from pyro_neurodyn import SRNN, LowRankRNN, SwitchingLowRankRNN
    from pyro_neurodyn.data import gaussian_oscillator_data, switching_lorenz, switching_lowrank_data
    from pyro_neurodyn.infer import svi_loop

    name, mode, kill_after, path, output = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    if mode == "kill":  # SIGKILL the process right after its kill_after-th SVI step (any phase)
        original_step, count = svi_loop.GuardedSVI.step, [0]
        def step(self, *args, **kwargs):
            loss = original_step(self, *args, **kwargs)
            count[0] += 1
            if count[0] == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
            return loss
        svi_loop.GuardedSVI.step = step
    options = dict(checkpoint=path, checkpoint_every=4, resume=mode == "resume")
    if name == "SRNN":
        y = switching_lorenz(4, 30, seed=1).y
        model = SRNN(2, 3, 3, seed=7)
        model.fit(y, num_steps=12, label_steps=6, filter_steps=6, init="kmeans", seed=11, progress=False, **options)
    elif name == "SRNN windows":  # random windows of two long trials
        y = switching_lorenz(2, 60, seed=1).y
        model = SRNN(2, 3, 3, seed=7)
        model.fit(y, window=10, batch_size=3, num_steps=12, label_steps=6, filter_steps=6, init="kmeans", seed=11, progress=False, **options)
    elif name == "LowRankRNN":
        y = gaussian_oscillator_data(12, 20, seed=3).y
        model = LowRankRNN(20, 2, 20, readout="one_to_one", seed=7)
        model.fit(y, num_particles=4, num_steps=14, batch_size=5, optimizer="adam", seed=11, progress=False, **options)
    elif name == "LowRankRNN windows":  # 3 steps per epoch of windows
        y = gaussian_oscillator_data(2, 40, seed=3).y
        model = LowRankRNN(20, 2, 20, readout="one_to_one", seed=7)
        model.fit(y, window=8, num_particles=4, num_steps=14, batch_size=3, optimizer="adam", seed=11, progress=False, **options)
    else:
        y = switching_lowrank_data(4, 30, seed=0).y
        model = SwitchingLowRankRNN(20, 2, 2, 8, seed=7)
        model.fit(y, "vsmc", num_steps=10, num_particles=4, seed=11, **options)
    model.save(output)
    """
)

# estimator -> SVI step after which the first run is killed: the SRNN's 17th step is the filter phase's
# 5th (the last checkpoint, at its 4th, is in the same phase; the label and free phases are skipped on
# resume); the LowRankRNN's 10th is inside its 3rd epoch of 2 minibatches (checkpoint at 8, mid-epoch
# permutation restored); the SwitchingLowRankRNN's 6th follows its checkpoint at 4. Fits on random windows: the
# same kills (the windows drawn after the checkpoint come from the restored RNG; the LowRankRNN's checkpoint at 8
# is inside its 3rd epoch of 3 steps, its learning-rate schedule restored mid-epoch).
KILL_AFTER = {"SRNN": 17, "SRNN windows": 17, "LowRankRNN": 10, "LowRankRNN windows": 10, "SwitchingLowRankRNN": 6}
# losses in the history at the last checkpoint before the kill (the SRNN's filter phase records none)
LOSSES_AT_CHECKPOINT = {"SRNN": 12, "SRNN windows": 12, "LowRankRNN": 8, "LowRankRNN windows": 8, "SwitchingLowRankRNN": 4}
ESTIMATORS = {"SRNN": SRNN, "SRNN windows": SRNN, "LowRankRNN": LowRankRNN, "LowRankRNN windows": LowRankRNN, "SwitchingLowRankRNN": SwitchingLowRankRNN}


def run_script(tmp_path, *args):
    return subprocess.run([sys.executable, "-c", SCRIPT, *map(str, args)], capture_output=True, text=True, cwd=tmp_path)


@pytest.mark.parametrize("name", list(KILL_AFTER))
def test_a_fit_killed_with_sigkill_and_resumed_ends_exactly_like_the_uninterrupted_fit(tmp_path, name):
    reference = run_script(tmp_path, name, "reference", 0, tmp_path / "reference.ckpt", tmp_path / "reference.pt")
    assert reference.returncode == 0, reference.stderr
    killed = run_script(tmp_path, name, "kill", KILL_AFTER[name], tmp_path / "fit.ckpt", tmp_path / "killed.pt")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (tmp_path / "killed.pt").exists()
    # the checkpoint left behind is a usable model (the fit's state at its last checkpoint)
    partial = ESTIMATORS[name].load(tmp_path / "fit.ckpt")
    assert len(partial.losses) == LOSSES_AT_CHECKPOINT[name]
    resumed = run_script(tmp_path, name, "resume", 0, tmp_path / "fit.ckpt", tmp_path / "resumed.pt")
    assert resumed.returncode == 0, resumed.stderr
    expected, found = (ESTIMATORS[name].load(tmp_path / f"{run}.pt") for run in ("reference", "resumed"))
    assert found.losses == expected.losses
    expected_state, found_state = expected._checkpoint_contents()[1], found._checkpoint_contents()[1]
    assert expected_state.keys() == found_state.keys()
    for key, value in expected_state.items():
        assert torch.equal(found_state[key], value), key
    # resuming the finished fit again changes nothing and reruns no step
    again = run_script(tmp_path, name, "resume", 0, tmp_path / "fit.ckpt", tmp_path / "again.pt")
    assert again.returncode == 0, again.stderr
    assert ESTIMATORS[name].load(tmp_path / "again.pt").losses == expected.losses


# ----- in-process behaviour ----------------------------------------------------------------------------
def small_lowrank():
    return LowRankRNN(20, 2, 20, readout="one_to_one", seed=7), gaussian_oscillator_data(12, 20, seed=3).y


FIT = dict(num_particles=4, batch_size=6, optimizer="adam", seed=11, progress=False)


def test_checkpoint_options_are_checked_before_any_work(tmp_path):
    rnn, y = small_lowrank()
    existing = tmp_path / "existing.ckpt"
    existing.write_bytes(b"a user's file")
    with pytest.raises(FileExistsError, match="resume=True"):
        rnn.fit(y, num_steps=2, checkpoint=existing, **FIT)
    assert existing.read_bytes() == b"a user's file" and rnn.losses == []
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        rnn.fit(y, num_steps=2, checkpoint=tmp_path / "missing.ckpt", resume=True, **FIT)
    with pytest.raises(ValueError, match="checkpoint=PATH"):
        rnn.fit(y, num_steps=2, resume=True, **FIT)
    with pytest.raises(ValueError, match="on_nonfinite"):
        rnn.fit(y, num_steps=2, on_nonfinite="ignore", **FIT)
    with pytest.raises(ValueError, match="checkpoint_every"):
        rnn.fit(y, num_steps=2, checkpoint=tmp_path / "new.ckpt", checkpoint_every=0, **FIT)
    assert rnn.losses == [] and not (tmp_path / "new.ckpt").exists()


def test_resume_refuses_a_file_from_another_fit_or_a_saved_model(tmp_path):
    rnn, y = small_lowrank()
    rnn.fit(y, num_steps=2, checkpoint=tmp_path / "fit.ckpt", **FIT)
    with pytest.raises(ValueError, match="different y") as error:
        LowRankRNN(20, 2, 20, readout="one_to_one", seed=7).fit(y + 1.0, num_steps=2, checkpoint=tmp_path / "fit.ckpt", resume=True, **FIT)
    assert "num_steps" not in str(error.value)
    with pytest.raises(ValueError, match="different num_steps"):
        LowRankRNN(20, 2, 20, readout="one_to_one", seed=7).fit(y, num_steps=3, checkpoint=tmp_path / "fit.ckpt", resume=True, **FIT)
    # an argument the file does not name (an option added since) matches None only
    FitRun(rnn, checkpoint=tmp_path / "older.ckpt", arguments={"y": y}).save(0)
    FitRun(rnn, checkpoint=tmp_path / "older.ckpt", resume=True, arguments={"y": y, "mask": None})
    with pytest.raises(ValueError, match="different mask"):
        FitRun(rnn, checkpoint=tmp_path / "older.ckpt", resume=True, arguments={"y": y, "mask": torch.ones(y.shape, dtype=torch.bool)})
    rnn.save(tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="not a fit in progress"):
        LowRankRNN(20, 2, 20, readout="one_to_one", seed=7).fit(y, num_steps=2, checkpoint=tmp_path / "model.pt", resume=True, **FIT)


def test_ctrl_c_stops_after_the_step_in_flight_and_keeps_a_usable_model(tmp_path):
    """SIGINT during the fit is deferred to the end of the step; the model keeps that step's parameters and
    every completed loss, saves, and the checkpoint written at the interrupt resumes to the uninterrupted fit."""
    rnn, y = small_lowrank()

    def press_ctrl_c(step, loss):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt, match="after step 3"):
        rnn.fit(y, num_steps=6, checkpoint=tmp_path / "fit.ckpt", callback=press_ctrl_c, **FIT)
    assert len(rnn.losses) == 3
    assert torch.isfinite(rnn.log_evidence(y, num_particles=4, seed=0)).all()
    rnn.save(tmp_path / "interrupted.pt")
    assert LowRankRNN.load(tmp_path / "fit.ckpt").losses == rnn.losses
    resumed = LowRankRNN(20, 2, 20, readout="one_to_one", seed=7).fit(y, num_steps=6, checkpoint=tmp_path / "fit.ckpt", resume=True, **FIT)
    reference = LowRankRNN(20, 2, 20, readout="one_to_one", seed=7).fit(y, num_steps=6, **FIT)
    assert resumed.losses == reference.losses and len(reference.losses) == 6


@pytest.fixture
def nan_losses_at(monkeypatch):
    """nan_losses_at(steps): VSMC_ELBO reports a NaN loss at those (0-based) calls, a genuine non-finite step."""

    def install(steps):
        original, calls = VSMC_ELBO.loss_and_grads, [0]

        def loss_and_grads(self, model, guide, *args, **kwargs):
            loss = original(self, model, guide, *args, **kwargs)
            calls[0] += 1
            return float("nan") if calls[0] - 1 in steps else loss

        monkeypatch.setattr(VSMC_ELBO, "loss_and_grads", loss_and_grads)

    return install


def test_a_nonfinite_loss_leaves_the_last_good_parameters_and_history(nan_losses_at):
    rnn, y = small_lowrank()
    reference = LowRankRNN(20, 2, 20, readout="one_to_one", seed=7)
    after_four_steps = {}

    def keep_state(step, loss):
        if step == 3:
            after_four_steps.update({key: value.clone() for key, value in reference.model.state_dict().items()})

    reference.fit(y, num_steps=8, callback=keep_state, **FIT)
    nan_losses_at({4})
    with pytest.raises(NonFiniteLossError, match="step 4"):
        rnn.fit(y, num_steps=8, **FIT)
    assert rnn.losses == reference.losses[:4]
    for key, value in rnn.model.state_dict().items():
        assert torch.equal(value, after_four_steps[key]), key
    assert torch.isfinite(rnn.log_evidence(y, num_particles=4, seed=0)).all()


def test_on_nonfinite_stop_ends_the_fit_with_a_warning(nan_losses_at):
    rnn, y = small_lowrank()
    nan_losses_at({5})
    with pytest.warns(RuntimeWarning, match="stopped"):
        rnn.fit(y, num_steps=8, on_nonfinite="stop", **FIT)
    assert len(rnn.losses) == 5


def test_on_nonfinite_rollback_returns_to_the_snapshot_with_half_the_learning_rate(nan_losses_at):
    """One NaN at step 13 (0-based): back to the snapshot at step 10, learning rate halved, and the fit
    still completes all its steps; NaN from then on: MAX_ROLLBACKS rollbacks, then it stops at step 10."""
    assert ROLLBACK_INTERVAL == 10
    rnn, y = small_lowrank()
    nan_losses_at({13})
    with pytest.warns(RuntimeWarning, match="Rolled back to step 10"):
        rnn.fit(y, num_steps=16, on_nonfinite="rollback", **FIT)
    assert len(rnn.losses) == 16 and all(map(torch.isfinite, torch.tensor(rnn.losses)))
    _, state = rnn._optimizer_state
    assert all(group["lr"] < 0.6 * 1e-3 for group in state["optimizer"]["param_groups"])

    rnn, y = small_lowrank()
    nan_losses_at(set(range(13, 100)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rnn.fit(y, num_steps=30, on_nonfinite="rollback", **FIT)
    messages = [str(w.message) for w in caught]
    assert sum("Rolled back" in m for m in messages) == MAX_ROLLBACKS and "after 3 rollbacks" in messages[-1]
    assert len(rnn.losses) == 10


@pytest.mark.filterwarnings("ignore:Encountered NaN:UserWarning")  # Pyro's own note on the poisoned step
def test_rollback_in_a_bare_fit_svi_restores_the_parameter():
    """fit_svi on its own, with a FitRun(on_nonfinite="rollback"): the quadratic's parameter returns to
    its value at the snapshot after the NaN step, and the optimization still reaches the optimum."""
    import pyro
    import pyro.distributions as dist

    calls = [0]
    parameter = pyro.param("x", torch.tensor(0.0)).unconstrained()  # a global parameter of a plain function

    def model(y):
        x = pyro.param("x")
        calls[0] += 1
        pyro.sample("y", dist.Normal(x, 1.0).expand(y.shape).to_event(1), obs=y)
        if calls[0] == 16:
            pyro.factor("poison", torch.tensor(float("nan")))

    run = FitRun(on_nonfinite="rollback")
    with pytest.warns(RuntimeWarning, match="Rolled back to step 10"), pyro.validation_enabled(False):
        losses = fit_svi(model, lambda y: None, pyro.infer.Trace_ELBO(), torch.optim.Adam([parameter], lr=0.1), [torch.full((1, 5), 3.0)],
                         num_steps=200, progress=False, run=run)  # fmt: skip
    assert len(run.history) == 200 and len(losses) == 200 and run.rollbacks == 1
    assert abs(pyro.param("x").item() - 3.0) < 1e-2


def test_a_second_srnn_fit_extends_the_history():
    y = switching_lorenz(4, 30, seed=1).y
    model = SRNN(2, 3, 3, seed=7)
    first = list(model.fit(y, num_steps=3, filter_steps=1, init="kmeans", progress=False).losses)
    model.fit(y, num_steps=2, filter_steps=1, init="kmeans", progress=False)
    assert len(first) == 3 and len(model.losses) == 5 and model.losses[:3] == first
