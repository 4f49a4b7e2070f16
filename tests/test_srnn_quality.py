"""The SRNN's quality with its DEFAULTS, on data a mixture model separates and on data it cannot.

No tuning here: ``SRNN(latent_dim=P)`` and ``fit(y)`` as a user calls them (15 training trials, trial 0
held out), with the Gaussian HMM's accuracy on the same split in every failure message.

- Switching Lorenz (data seeds 0 and 1) and the SRNN paper's own file (skipped if absent): lobes, which a
  Gaussian HMM without dynamics already finds (0.945-0.975 here).
- Three simulators whose regimes share one circle and differ only in their dynamics (rotation direction,
  limit-cycle frequency, latent-triggered switches): the Gaussian HMM is at chance (0.51-0.53).

Bounds from the spread over model and fit seeds, native and scalar CPU kernels, 1 thread (the suite runs
on one), ``python benchmarks/quality_spread.py tests/test_srnn_quality.py [--function measure_dynamics]
--threads 1 --seeds 0 1 2 --kernels native default``: 0.015 on Lorenz, 0.005 on the simulators.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pyro_neurodyn import SRNN
from pyro_neurodyn.data import limit_cycle_switching_data, recurrent_switching_data, rotation_switching_data
from pyro_neurodyn.data.lorenz import switching_lorenz
from pyro_neurodyn.demo import run_demo
from pyro_neurodyn.metrics import r2_score, state_accuracy
from pyro_neurodyn.models import GaussianEmissionHMM


# measured held-out lobe accuracy with the defaults (full-covariance ARHMM labels for the first 200 steps), model
# and fit seeds 0-2, native and scalar kernels: data seed 0: 0.940-0.955; seed 1: 0.965-0.975; the paper's file:
# 0.950-0.955; R^2 >= 0.9995 everywhere. With the labels kept on for all 1000 steps (the default before) fit seed
# 0 gave 0.950-0.955, 0.970 and 0.955, and with Gaussian-HMM labels 0.960-0.965, 0.975-0.980 and 0.965. The
# lobes are where a mixture already does well; on the simulators below the ARHMM labels are what finds the
# states at all. The bar leaves 0.02 below the lowest run.
LORENZ_BAR = 0.92


def fit_and_score(y, states, seed=0, latent_dim=3):
    """Fit ``SRNN`` with its defaults on trials 1..; held-out accuracy and R^2 on trial 0, and the held-out
    accuracy of a Gaussian HMM (the baseline without dynamics) on the same split."""
    model = SRNN(latent_dim=latent_dim, seed=seed)
    model.fit(y[1:], seed=seed, progress=False)
    accuracy = state_accuracy(states[:1], model.most_likely_states(y[:1]))
    r2 = r2_score(y[:1], model.reconstruct(y[:1]))
    hmm = GaussianEmissionHMM(2, y.shape[-1])
    hmm.fit_em(y[1:], seed=seed)
    return accuracy, r2, state_accuracy(states[:1], hmm.most_likely_states(y[:1]))


def lorenz_data(name: str, locate) -> tuple:
    """``(y, lobe states)`` of ``switching_lorenz`` data seed ``name`` or of the SRNN paper's file."""
    if name == "file":
        y = torch.tensor(np.load(locate("lorenz_srnn_reference.npy")))
        return y, (y[..., 0] > 0.5 / 15).long()  # the lobe: x > 0 in unstandardized coordinates
    data = switching_lorenz(num_trials=16, num_steps=200, seed=int(name))
    return data.y, data.states


DYNAMICS_DATA = {"rotation": rotation_switching_data, "limit_cycle": limit_cycle_switching_data, "recurrent": recurrent_switching_data}


def measure(seed: int) -> dict:
    """The Lorenz tests' numbers for model and fit seed ``seed`` (benchmarks/quality_spread.py)."""
    numbers = {}
    for name in ("0", "1", "file"):
        y, states = lorenz_data(name, lambda file: Path("/work/shared/data") / file)
        numbers.update(zip([f"lorenz{name}_accuracy", f"lorenz{name}_r2"], fit_and_score(y, states, seed)))
    return numbers


def measure_dynamics(seed: int) -> dict:
    """The dynamics-defined tests' numbers for model and fit seed ``seed`` (benchmarks/quality_spread.py)."""
    numbers = {}
    for name, simulate in DYNAMICS_DATA.items():
        data = simulate(16, 200, seed=0)
        numbers.update(zip([f"{name}_accuracy", f"{name}_r2"], fit_and_score(data.y, data.states, seed, latent_dim=2)))
    return numbers


@pytest.mark.parametrize("name", ["0", "1", "file"])
def test_defaults_reach_the_bar_on_switching_lorenz(name, shared_data_path):
    """Lobe accuracy and R^2 on switching Lorenz (data seeds 0 and 1) and the SRNN paper's file."""
    y, states = lorenz_data(name, shared_data_path)
    accuracy, r2, baseline = fit_and_score(y, states)
    assert accuracy >= LORENZ_BAR, f"held-out state accuracy {accuracy:.3f} (Gaussian HMM: {baseline:.3f})"
    assert r2 >= 0.95, f"held-out reconstruction R^2 {r2:.4f}"


@pytest.mark.parametrize("name", list(DYNAMICS_DATA))
def test_defaults_find_states_defined_by_dynamics(name):
    """Regimes on the same circle that differ only in their dynamics (rotation direction, limit-cycle
    frequency, latent-triggered switches; 10 channels, 15 training trials, trial 0 held out): a Gaussian
    HMM is at chance (0.51-0.53), the SRNN with its defaults finds the states: 0.995-1.000 on each of the three
    for model and fit seeds 0-2 with native and scalar kernels (an SRNN anchored to Gaussian-HMM labels:
    0.51-0.53).
    0.98 is the target the project set for dynamics-defined switching."""
    data = DYNAMICS_DATA[name](16, 200, seed=0)
    accuracy, r2, baseline = fit_and_score(data.y, data.states, latent_dim=2)
    assert accuracy >= 0.98, f"held-out state accuracy {accuracy:.3f} (Gaussian HMM: {baseline:.3f})"
    assert baseline < 0.7, f"the Gaussian HMM should be near chance here, got {baseline:.3f}"


def test_demo_pipeline_writes_its_outputs_and_never_overwrites(tmp_path):
    """A short demo run (20 steps: the pipeline, not the quality) writes all it promises."""
    output = tmp_path / "demo"
    metrics = run_demo(str(output), num_steps=20, progress=False)
    assert sorted(p.name for p in output.iterdir()) == ["flow_fields.png", "metrics.json", "model.pt", "reconstruction.png", "states.png"]
    saved = json.loads((output / "metrics.json").read_text())
    assert 0 <= saved["heldout_state_accuracy"] <= 1 and np.isfinite(saved["heldout_10_step_forecast_mse"])
    assert metrics["heldout_reconstruction_r2"] == saved["heldout_reconstruction_r2"]
    with pytest.raises(FileExistsError, match="not empty"):
        run_demo(str(output), num_steps=20, progress=False)
    assert SRNN.load(output / "model.pt").config.num_states == 2
