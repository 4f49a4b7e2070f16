"""``neurodyn fit / evaluate / sample`` on run files, and a fit killed with SIGKILL then resumed."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from pyro_neurodyn import SRNN, LowRankRNN
from pyro_neurodyn.cli import main
from pyro_neurodyn.data import gaussian_oscillator_data, switching_lorenz

LOWRANK_RUN = """
[model]
kind = "LowRankRNN"
obs_dim = 20
rank = 2
num_units = 20
readout = "one_to_one"
seed = 7

[data]
train = "train.npy"

[fit]
num_steps = {num_steps}
num_particles = 4
batch_size = 6
optimizer = "adam"
seed = 11
checkpoint_every = 20

[output]
folder = "{folder}"
"""

SRNN_RUN = """
[model]
kind = "SRNN"
num_states = 2
latent_dim = 3
seed = 7

[data]
train = "train.npz"
test = "test.npz"

[fit]
num_steps = 30
init = "kmeans"

[output]
folder = "srnn"
"""


def write_lowrank_run(folder, name, num_steps, output):
    np.save(folder / "train.npy", gaussian_oscillator_data(12, 20, seed=3).y.numpy())
    (folder / name).write_text(LOWRANK_RUN.format(num_steps=num_steps, folder=output))
    return folder / name


def test_fit_evaluate_and_sample_an_srnn_run(tmp_path, capsys):
    train, test = switching_lorenz(6, 60, seed=1), switching_lorenz(2, 60, seed=2)
    np.savez(tmp_path / "train.npz", y=train.y.numpy())
    np.savez(tmp_path / "test.npz", y=test.y.numpy(), states=test.states.numpy())
    (tmp_path / "run.toml").write_text(SRNN_RUN)
    assert main(["fit", str(tmp_path / "run.toml"), "--quiet"]) == 0
    output = tmp_path / "srnn"
    assert {"model.pt", "checkpoint.ckpt", "losses.json", "run.toml"} <= {p.name for p in output.iterdir()}
    model = SRNN.load(output / "model.pt")
    assert json.loads((output / "losses.json").read_text())["losses"] == model.losses and len(model.losses) == 30

    assert main(["evaluate", str(tmp_path / "run.toml"), "--samples", "5"]) == 0
    result = json.loads((output / "evaluation.json").read_text())
    assert len(result["log_evidence_per_trial"]) == 2 and np.isfinite(result["log_evidence_per_bin"])
    assert 0.0 <= result["state_accuracy"] <= 1.0
    assert all((output / name).stat().st_size > 0 for name in result["figures"])
    expected = model.log_evidence(test.y, seed=0)
    np.testing.assert_allclose(result["log_evidence_per_trial"], expected.double().numpy(), rtol=1e-6)

    assert main(["sample", str(tmp_path / "run.toml"), "--trials", "3", "--steps", "40", "--output", str(tmp_path / "new.npz")]) == 0
    with np.load(tmp_path / "new.npz") as sample:
        assert sample["y"].shape == (3, 40, 3) and sample["z"].shape == (3, 40)
    assert main(["sample", str(tmp_path / "run.toml"), "--trials", "3", "--steps", "40", "--output", str(tmp_path / "new.npz")]) == 1
    assert "exists" in capsys.readouterr().err
    # a finished run is never fitted over
    assert main(["fit", str(tmp_path / "run.toml"), "--quiet"]) == 1
    assert "finished" in capsys.readouterr().err


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda text: text + "\n[extra]\nx = 1\n", "unknown section"),
        (lambda text: text.replace('kind = "LowRankRNN"', 'kind = "LSTM"'), "kind must be one of"),
        (lambda text: text.replace("num_particles = 4", "num_particle = 4"), "unknown entries ['num_particle']"),
        (lambda text: text.replace('train = "train.npy"', 'training = "train.npy"'), "[data] train"),
        (lambda text: text.replace("[fit]", "[fit]\nresume = true"), "set by the command line"),
        (lambda text: text.replace('folder = "lowrank"', ""), "[output] folder"),
        (lambda text: text.replace("rank = 2", "rank = 2 2"), "not valid TOML"),
    ],
)
def test_a_bad_run_file_is_one_clear_error(tmp_path, capsys, change, message):
    run = write_lowrank_run(tmp_path, "run.toml", 5, "lowrank")
    run.write_text(change(run.read_text()))
    assert main(["fit", str(run), "--quiet"]) == 1
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert not (tmp_path / "lowrank").exists()


def test_an_interrupted_run_continues_only_with_resume(tmp_path, capsys):
    run = write_lowrank_run(tmp_path, "run.toml", 5, "lowrank")
    (tmp_path / "lowrank").mkdir()
    (tmp_path / "lowrank" / "checkpoint.ckpt").write_bytes(b"")
    assert main(["fit", str(run), "--quiet"]) == 1
    assert "--resume" in capsys.readouterr().err
    assert main(["fit", str(write_lowrank_run(tmp_path, "other.toml", 5, "other")), "--quiet", "--resume"]) == 1
    assert "no checkpoint" in capsys.readouterr().err


def test_neurodyn_fit_killed_with_sigkill_and_resumed_gives_the_uninterrupted_result(tmp_path):
    """The run is killed as soon as its first checkpoint (step 20 of 120) is on disk, then resumed with
    --resume; the final model equals that of the same run never interrupted (bitwise, same machine). The kill
    follows the checkpoint within milliseconds of polling, while a step takes tens of milliseconds: the 100 steps
    after it cannot all run first (measured: killed at step 20 in 3 of 3 runs, 57 s with 600 steps, 17 s now)."""
    command = [sys.executable, "-m", "pyro_neurodyn.cli", "fit", "--quiet"]
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    reference = write_lowrank_run(tmp_path, "reference.toml", 120, "reference")
    subprocess.run(command + [str(reference)], check=True, env=environment, capture_output=True)
    killed = write_lowrank_run(tmp_path, "killed.toml", 120, "killed")
    process = subprocess.Popen(command + [str(killed)], env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "killed" / "checkpoint.ckpt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert not (tmp_path / "killed" / "model.pt").exists()
    assert 20 <= len(LowRankRNN.load(checkpoint).losses) < 120  # killed mid-run
    subprocess.run(command + [str(killed), "--resume"], check=True, env=environment, capture_output=True)
    expected, found = (LowRankRNN.load(tmp_path / name / "model.pt") for name in ("reference", "killed"))
    assert found.losses == expected.losses and len(found.losses) == 120
    for (key, value), other in zip(expected.model.state_dict().items(), found.model.state_dict().values()):
        assert torch.equal(value, other), key
