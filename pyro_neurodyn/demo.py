"""``neurodyn demo``: fit an SRNN to switching Lorenz data and report what it learned.

Trains on 15 trials (200 steps, 3 channels), holds one out, and on the held-out trial reports the
state accuracy (Hungarian-matched) and balanced error against the true lobes, the reconstruction
R^2 and the 10-step forecast MSE (with the persistence forecast for scale). Writes figures, the
numbers (``metrics.json``) and the fitted model (``model.pt``) into a new output folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .analysis import flow_field, pca_plane  # noqa: E402
from .data.lorenz import switching_lorenz  # noqa: E402
from .estimators.srnn import SRNN  # noqa: E402
from .models import AutoregressiveHMM, GaussianEmissionHMM  # noqa: E402
from .metrics import balanced_state_error, k_step_forecast, match_states, r2_score, state_accuracy  # noqa: E402
from .plots import plot_flow_field, plot_reconstruction, plot_states  # noqa: E402

FORECAST_STEPS = 10


def prepare_output(output: Path, overwrite: bool) -> Path:
    """Create ``output``; refuse a non-empty existing folder unless ``overwrite`` (never delete files)."""
    if output.exists() and not output.is_dir():
        raise FileExistsError(f"{output} exists and is not a folder")
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise FileExistsError(f"{output} already exists and is not empty: choose another --output or pass --overwrite")
    output.mkdir(parents=True, exist_ok=True)
    return output


def relabel(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Inferred labels renamed to their Hungarian-matched true labels (unmatched keep their index)."""
    mapping = match_states(true, pred)
    return np.vectorize(lambda k: mapping.get(int(k), int(k)))(pred)


def save_figures(model: SRNN, test_y: torch.Tensor, test_states: torch.Tensor, output: Path) -> list[str]:
    num_states = model.config.num_states
    pred = model.most_likely_states(test_y)[0].numpy()
    true = test_states[0].numpy()
    shown = relabel(pred, true)
    accuracy = (shown == true).mean()
    plot_states([true, shown], ["true lobe", "SRNN (Viterbi)"], num_states, f"Held-out trial: accuracy {accuracy:.3f}").savefig(output / "states.png", dpi=120)
    recon = model.reconstruct(test_y)[0].numpy()
    plot_reconstruction(test_y[0].numpy(), recon, shown, num_states, ["x", "y", "z"], "Held-out trial: data and reconstruction").savefig(output / "reconstruction.png", dpi=120)
    latents = model.posterior_latents(test_y)[0]
    plane = pca_plane(latents)
    coords = plane.project(latents).numpy()
    span = np.abs(coords).max() * 1.3
    fig, axes = plt.subplots(1, num_states, figsize=(5.2 * num_states, 4.2), squeeze=False)
    for k, ax in enumerate(axes[0]):
        field = flow_field(model.module.dynamics.state_map(k), plane, (-span, span, -span, span))
        segments = [np.where((shown == k)[:, None], coords, np.nan)]
        plot_flow_field(ax, field, trajectories=segments, title=f"RNN of state {k} (trajectory: time in state {k})")
    fig.tight_layout()
    fig.savefig(output / "flow_fields.png", dpi=120)
    plt.close("all")
    return ["states.png", "reconstruction.png", "flow_fields.png"]


def baseline_accuracies(train_y: torch.Tensor, test_y: torch.Tensor, test_states: torch.Tensor, seed: int) -> dict:
    """Held-out state accuracy of the linear baselines fit by exact EM: a Gaussian HMM (a mixture, no
    dynamics) and an autoregressive HMM (linear dynamics per state)."""
    accuracies = {}
    for name, baseline in (("gaussian_hmm", GaussianEmissionHMM(2, train_y.shape[-1])), ("arhmm", AutoregressiveHMM(2, train_y.shape[-1]))):
        baseline.fit_em(train_y, seed=seed)
        accuracies[f"heldout_state_accuracy_{name}"] = state_accuracy(test_states, baseline.most_likely_states(test_y))
    return accuracies


def run_demo(output: str = "neurodyn_output", seed: int = 0, num_steps: Optional[int] = None, overwrite: bool = False, progress: bool = True) -> dict:
    """Run the demo; returns the metrics it printed and wrote to ``metrics.json``."""
    start = time.time()
    folder = prepare_output(Path(output), overwrite)
    data = switching_lorenz(num_trials=16, num_steps=200, seed=seed)
    train_y, test_y, test_states = data.y[1:], data.y[:1], data.states[:1]
    model = SRNN(num_states=2, latent_dim=3, obs_dim=3)
    fit_options = {} if num_steps is None else {"num_steps": num_steps}
    model.fit(train_y, seed=seed, progress=progress, **fit_options)
    fit_seconds = time.time() - start
    pred = model.most_likely_states(test_y)
    torch.manual_seed(seed)
    forecast = k_step_forecast(test_y, lambda prefix, k: model.forecast(prefix, k, num_samples=100), FORECAST_STEPS, origins=range(49, 189, 10))
    persistence = k_step_forecast(test_y, lambda prefix, k: prefix[None, :, -1:].expand(1, -1, k, -1), FORECAST_STEPS, origins=range(49, 189, 10))
    metrics = {
        "heldout_state_accuracy": state_accuracy(test_states, pred),
        "heldout_balanced_state_error": balanced_state_error(test_states, pred),
        "heldout_reconstruction_r2": r2_score(test_y, model.reconstruct(test_y)),
        f"heldout_{FORECAST_STEPS}_step_forecast_mse": float(forecast.mse[-1]),
        f"heldout_{FORECAST_STEPS}_step_persistence_mse": float(persistence.mse[-1]),
        **baseline_accuracies(train_y, test_y, test_states, seed),
        "fit_seconds": fit_seconds,
        "seed": seed,
    }
    figures = save_figures(model, test_y, test_states, folder)
    model.save(folder / "model.pt")
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    metrics["total_seconds"] = time.time() - start
    print(f"SRNN on switching Lorenz (15 training trials, 1 held out; K = 2, P = 3; seed {seed})")
    print(f"  held-out state accuracy      {metrics['heldout_state_accuracy']:.3f}   (linear baselines fit by EM:"
          f" Gaussian HMM {metrics['heldout_state_accuracy_gaussian_hmm']:.3f}, ARHMM {metrics['heldout_state_accuracy_arhmm']:.3f})")
    print(f"  held-out balanced error      {metrics['heldout_balanced_state_error']:.3f}")
    print(f"  reconstruction R^2           {metrics['heldout_reconstruction_r2']:.4f}")
    print(f"  {FORECAST_STEPS}-step forecast MSE        {metrics[f'heldout_{FORECAST_STEPS}_step_forecast_mse']:.4f}"
          f"   (persistence forecast: {metrics[f'heldout_{FORECAST_STEPS}_step_persistence_mse']:.4f})")  # fmt: skip
    print(f"  fit {fit_seconds:.0f} s, total {metrics['total_seconds']:.0f} s")
    print(f"  wrote {', '.join(figures)}, metrics.json and model.pt to {folder}/")
    return metrics
