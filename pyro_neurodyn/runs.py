"""Runs described by a TOML file: ``neurodyn fit``, ``neurodyn evaluate`` and ``neurodyn sample``.

A run file names the model, its data, the fit's options and an output folder (relative paths are
relative to the run file)::

    [model]                      # the estimator and its constructor arguments
    kind = "SRNN"                # "SRNN", "LowRankRNN" or "SwitchingLowRankRNN"
    num_states = 2
    latent_dim = 3

    [data]
    train = "train.npy"          # (trials, T, channels); or .npz with "y" (and "u", "states")
    test = "test.npz"            # optional: held-out trials for `neurodyn evaluate`

    [fit]                        # keyword arguments of the estimator's fit
    num_steps = 1000
    seed = 0
    checkpoint_every = 50        # steps between checkpoints (default 50)

    [output]
    folder = "runs/srnn"

``fit`` writes ``checkpoint.ckpt`` while fitting (atomic; ``--resume`` continues from it after any
interruption, SIGKILL included, to the same parameters as an uninterrupted fit), then ``model.pt``,
``losses.json`` and a copy of the run file. ``evaluate`` writes ``evaluation.json`` (held-out log
evidence per trial and per bin, state accuracy where true states are given) and posterior predictive
figures. ``sample`` writes new trials drawn from the fitted model to an ``.npz`` file.
"""

from __future__ import annotations

import inspect
import json
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

__all__ = ["RunConfig", "evaluate_run", "fit_run", "load_run_config", "sample_run"]

CHECKPOINT, MODEL, LOSSES, EVALUATION = "checkpoint.ckpt", "model.pt", "losses.json", "evaluation.json"
SECTIONS = {"model", "data", "fit", "output"}


def estimator_classes() -> dict[str, type]:
    """``{kind: class}`` of the estimators a run (or sweep) file can name in ``[model] kind``."""
    from .estimators.lowrank import LowRankRNN
    from .estimators.srnn import SRNN
    from .estimators.switching_lowrank import SwitchingLowRankRNN

    return {"SRNN": SRNN, "LowRankRNN": LowRankRNN, "SwitchingLowRankRNN": SwitchingLowRankRNN}


@dataclass
class RunConfig:
    """A parsed run file: the estimator class, its constructor and fit arguments, data files, output folder."""

    path: Path
    estimator: type
    model_arguments: dict
    fit_arguments: dict
    train: Path
    test: Optional[Path]
    output: Path
    checkpoint_every: Optional[int] = None


def read_sections(path: Any, sections: set, kind: str) -> dict:
    """The tables of the TOML file ``path`` (a ``kind`` file: "run", "sweep"), which may hold only ``sections``:
    FileNotFoundError when it is missing, a ValueError naming the file when it is not TOML or has other sections."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {kind} file at {path}")
    try:
        table = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path} is not valid TOML: {error}") from None
    unknown = sorted(set(table) - sections)
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {unknown}; a {kind} file has {', '.join(f'[{s}]' for s in sorted(sections))}")
    return table


def load_run_config(path: Any) -> RunConfig:
    """Read and check a run file (see the module docstring); every problem is a ValueError naming the entry."""
    path = Path(path)
    table = read_sections(path, SECTIONS, "run")
    model = dict(table.get("model", {}))
    estimators = estimator_classes()
    kind = model.pop("kind", None)
    if kind not in estimators:
        raise ValueError(f"{path}: [model] kind must be one of {sorted(estimators)}, got {kind!r}")
    estimator = estimators[kind]
    check_arguments(path, "model", model, estimator.__init__)
    fit = dict(table.get("fit", {}))
    checkpoint_every = fit.pop("checkpoint_every", None)
    for reserved in ("checkpoint", "resume", "progress", "callback"):
        if reserved in fit:
            raise ValueError(f"{path}: [fit] {reserved} is set by the command line, not the run file")
    check_arguments(path, "fit", fit, estimator.fit)
    data = table.get("data", {})
    if "train" not in data:
        raise ValueError(f"{path}: [data] train (the recordings to fit: .npy or .npz) is missing")
    folder = table.get("output", {}).get("folder")
    if not isinstance(folder, str):
        raise ValueError(f"{path}: [output] folder (where the model and checkpoints go) is missing")
    base = path.parent
    test = data.get("test")
    return RunConfig(path, estimator, model, fit, base / data["train"], None if test is None else base / test, base / folder, checkpoint_every)


def check_arguments(path: Path, section: str, arguments: dict, function: Any) -> None:
    """A ValueError naming ``[section]`` of the file ``path`` if ``arguments`` has names ``function`` does not take."""
    accepted = [name for name in inspect.signature(function).parameters if name not in ("self", "y", "u")]  # data: [data]
    unknown = sorted(set(arguments) - set(accepted))
    if unknown:
        raise ValueError(f"{path}: [{section}] has unknown entries {unknown}; accepted: {accepted}")


def load_recordings(path: Path) -> dict[str, torch.Tensor]:
    """``{"y": ..., optionally "u", "states"}`` from an ``.npy`` array or an ``.npz`` archive holding ``y``."""
    if not path.is_file():
        raise FileNotFoundError(f"no data file at {path}")
    if path.suffix == ".npy":
        return {"y": torch.as_tensor(np.load(path, allow_pickle=False))}
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if "y" not in archive:
                raise ValueError(f"{path} has no array 'y' (it has {sorted(archive.files)})")
            return {key: torch.as_tensor(archive[key]) for key in ("y", "u", "states") if key in archive}
    raise ValueError(f"{path}: data files are .npy (the recordings) or .npz (y, and optionally u and states), got {path.suffix!r}")


def _data_arguments(recordings: dict) -> tuple:
    """Positional data arguments of the estimator's methods: ``(y,)`` or ``(y, u)`` where it takes inputs."""
    return (recordings["y"],) if "u" not in recordings else (recordings["y"], recordings["u"])


# ----- fit ---------------------------------------------------------------------------------------------
def fit_run(config: RunConfig, *, resume: bool = False, progress: bool = True) -> Any:
    """Fit the run's model, checkpointing into its output folder; return the fitted estimator.

    A folder that already holds ``model.pt`` is a finished run (FileExistsError); one that holds
    ``checkpoint.ckpt`` is an interrupted run, continued only with ``resume=True``.
    """
    output = config.output
    if (output / MODEL).exists():
        raise FileExistsError(f"{output / MODEL} exists: this run is finished (use another [output] folder for a new fit)")
    if (output / CHECKPOINT).exists() and not resume:
        raise FileExistsError(f"{output / CHECKPOINT} exists: an interrupted fit; continue it with --resume (or use another [output] folder)")
    if resume and not (output / CHECKPOINT).exists():
        raise FileNotFoundError(f"--resume: there is no checkpoint at {output / CHECKPOINT} to resume from")
    recordings = load_recordings(config.train)
    output.mkdir(parents=True, exist_ok=True)
    estimator = config.estimator(**config.model_arguments)
    options = dict(config.fit_arguments, checkpoint=output / CHECKPOINT, checkpoint_every=config.checkpoint_every, resume=resume)
    if "progress" in inspect.signature(estimator.fit).parameters:
        options["progress"] = progress
    estimator.fit(*_data_arguments(recordings), **options)
    estimator.save(output / MODEL)
    (output / LOSSES).write_text(json.dumps({"losses": list(estimator.losses)}))
    if not (output / "run.toml").exists():
        shutil.copyfile(config.path, output / "run.toml")
    return estimator


def load_fitted(config: RunConfig) -> Any:
    path = config.output / MODEL
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `neurodyn fit {config.path}` first")
    return config.estimator.load(path)


# ----- evaluate ----------------------------------------------------------------------------------------
def evaluate_run(config: RunConfig, data: Optional[Path] = None, *, num_samples: int = 100, seed: int = 0) -> dict:
    """Held-out metrics of the fitted run on ``data`` (default ``[data] test``), written to ``evaluation.json``
    with posterior predictive figures (``ppc_dist.png``, ``ppc_statistics.png``) in the output folder."""
    import matplotlib.pyplot as plt

    from .metrics import state_accuracy
    from .plots import plot_ppc_dist, plot_ppc_tstat
    from .predictive import posterior_predictive, to_arviz

    data = data if data is not None else config.test
    if data is None:
        raise ValueError(f"{config.path}: no held-out data: set [data] test or pass --data")
    estimator, recordings = load_fitted(config), load_recordings(Path(data))
    arguments = _data_arguments(recordings)
    y = recordings["y"]
    log_evidence = estimator.log_evidence(*arguments, seed=seed).double()
    result = {"data": str(data), "trials": int(y.shape[0]), "log_evidence_per_trial": log_evidence.tolist(),
              "log_evidence_per_bin": float(log_evidence.sum() / (y.shape[0] * y.shape[1]))}  # fmt: skip
    if "states" in recordings and hasattr(estimator, "most_likely_states"):
        found = estimator.most_likely_states(*arguments)
        result["state_accuracy"] = float(state_accuracy(recordings["states"].numpy().ravel(), found.numpy().ravel()))
    draws = posterior_predictive(estimator, y, num_samples=num_samples, inputs=recordings.get("u"), seed=seed)
    tree = to_arviz(draws, y)
    for name, plot in (("ppc_dist.png", plot_ppc_dist), ("ppc_statistics.png", plot_ppc_tstat)):
        figure = plot(tree)
        figure.savefig(config.output / name, dpi=110)
        plt.close(figure)
        result.setdefault("figures", []).append(name)
    (config.output / EVALUATION).write_text(json.dumps(result, indent=1))
    return result


# ----- sample ------------------------------------------------------------------------------------------
def sample_run(config: RunConfig, destination: Path, num_trials: int, num_steps: int, *, seed: int = 0, overwrite: bool = False) -> dict:
    """Draw ``num_trials`` new trials of ``num_steps`` steps from the fitted run into ``destination`` (.npz:
    ``y`` and the latents/states the model has); refuses to replace a file unless ``overwrite``."""
    destination = Path(destination)
    if destination.suffix != ".npz":
        raise ValueError(f"the sample file must end in .npz, got {destination.name}")
    if destination.exists() and not overwrite:
        raise FileExistsError(f"{destination} exists (pass --overwrite to replace it)")
    estimator = load_fitted(config)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        sample = estimator.sample(num_trials, num_steps)
    arrays = {name: value.numpy() for name, value in sample._asdict().items()}
    np.savez(destination, **arrays)
    return arrays
