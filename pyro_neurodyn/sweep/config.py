"""Sweep files (TOML) for ``neurodyn sweep CONFIG.toml``.

A sweep file names the model, the grid of constructor arguments to try, the seeds, the data and the fit
(relative paths are relative to the sweep file)::

    [model]                          # the estimator and the constructor arguments every point shares
    kind = "SRNN"                    # "SRNN", "LowRankRNN" or "SwitchingLowRankRNN"
    latent_dim = 3

    [grid]                           # constructor arguments to vary: every combination is a grid point
    num_states = [1, 2, 3]

    [sweep]
    seeds = [0, 1, 2]                # each point is fit once per seed (the model's and the fit's seed)
    storage = "sweeps/srnn_k"        # the sweep's folder; rerun the same file to resume an interrupted sweep
    num_particles = 100              # optional: particles of each held-out trial's log-evidence estimate
    evaluation_seed = 0              # optional: their seed
    max_failures = 2                 # optional: retries of a trial that raised
    resources_per_trial = { cpu = 1 }   # optional: Ray resources of one trial (add gpu = 1 for a GPU each)
    address = "auto"                 # optional: an existing Ray cluster (default: a local Ray instance)

    [data]                           # one of three sources:
    simulator = "switching_lorenz"   # (1) a simulator of pyro_neurodyn.data, with its keyword arguments,
    arguments = { num_trials = 16, num_steps = 200, seed = 0 }
    test_fraction = 0.25             #     split at random into training and held-out trials (split_seed = 0)
    # nwb = ["session1.nwb", "session2.nwb"]   (2) NWB sessions (pyro_neurodyn.data.load_nwb_sessions), with
    # arguments = { bin_size = 0.02 }          #     its keyword arguments; split as above
    # train = "train.npz"                      (3) training and held-out recordings: .npy (trials, T, D), or
    # test = "test.npz"                        #     .npz with y (and inputs u)

    [fit]                            # keyword arguments of every fit (not seed: [sweep] seeds)
    num_steps = 500

Every source becomes a :class:`~pyro_neurodyn.data.Recording` (inputs travel with it). The results go
to the console and to ``results.csv`` (one row per trial) and ``comparison.csv`` in the storage folder
(rewritten by every run).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from ..data.recording import Recording
from ..runs import check_arguments, estimator_classes, load_recordings, read_sections
from .ray_sweep import ray_and_tune

__all__ = ["EstimatorBuilder", "SweepConfig", "load_sweep_config", "run_sweep_config", "sweep_data"]

SECTIONS = {"model", "grid", "sweep", "data", "fit"}
SWEEP_ENTRIES = {"seeds", "storage", "num_particles", "evaluation_seed", "max_failures", "resources_per_trial", "address"}
SIMULATORS = (
    "switching_lorenz", "rotation_switching_data", "limit_cycle_switching_data", "recurrent_switching_data",
    "gaussian_oscillator_data", "poisson_oscillator_data", "ring_task_data", "switching_lowrank_data",
)  # fmt: skip
RESULTS, COMPARISON = "results.csv", "comparison.csv"


@dataclass(frozen=True)
class EstimatorBuilder:
    """``build(**point, seed=seed)`` of a sweep file: ``kind(**arguments, **point, seed=seed)``. A dataclass, so
    that its ``repr`` (what identifies the sweep's build in its storage) shows the kind and the shared arguments."""

    kind: str
    arguments: dict

    def __call__(self, seed: int, **point: Any) -> Any:
        return estimator_classes()[self.kind](**self.arguments, **point, seed=seed)


@dataclass
class SweepConfig:
    """A parsed sweep file (see the module docstring); ``sweep`` holds run_sweep's options of ``[sweep]``."""

    path: Path
    build: EstimatorBuilder
    grid: dict
    seeds: list
    storage: Path
    data: dict
    fit_arguments: dict
    sweep: dict


def load_sweep_config(path: Any) -> SweepConfig:
    """Read and check a sweep file; every problem is a ValueError naming the section and entry."""
    path = Path(path)
    table = read_sections(path, SECTIONS, "sweep")
    model = dict(table.get("model", {}))
    kind = model.pop("kind", None)
    classes = estimator_classes()
    if kind not in classes:
        raise ValueError(f"{path}: [model] kind must be one of {sorted(classes)}, got {kind!r}")
    grid = dict(table.get("grid", {}))
    if not grid:
        raise ValueError(f"{path}: [grid] is empty or missing: give the constructor arguments to vary, e.g. num_states = [1, 2, 3]")
    for section, names in (("model", model), ("grid", grid)):
        if "seed" in names:
            raise ValueError(f"{path}: [{section}] must not set seed: the seeds are [sweep] seeds")
    shared = sorted(set(model) & set(grid))
    if shared:
        raise ValueError(f"{path}: {shared} are set both in [model] and in [grid]")
    check_arguments(path, "model", model, classes[kind].__init__)
    check_arguments(path, "grid", grid, classes[kind].__init__)
    sweep = dict(table.get("sweep", {}))
    unknown = sorted(set(sweep) - SWEEP_ENTRIES)
    if unknown:
        raise ValueError(f"{path}: [sweep] has unknown entries {unknown}; accepted: {sorted(SWEEP_ENTRIES)}")
    for required in ("seeds", "storage"):
        if required not in sweep:
            raise ValueError(f"{path}: [sweep] {required} is missing")
    seeds, storage = sweep.pop("seeds"), sweep.pop("storage")
    if not isinstance(storage, str):
        raise ValueError(f"{path}: [sweep] storage must be a folder path (a string), got {storage!r}")
    data = dict(table.get("data", {}))
    _check_data_section(path, data)
    return SweepConfig(path, EstimatorBuilder(kind, model), grid, seeds, path.parent / storage, data, dict(table.get("fit", {})), sweep)


def _check_data_section(path: Path, data: dict) -> None:
    sources = [name for name in ("simulator", "nwb", "train") if name in data]
    if len(sources) != 1:
        raise ValueError(f"{path}: [data] needs exactly one of simulator, nwb or train (with test), got {sources or 'none'}")
    if sources == ["train"]:
        allowed = {"train", "test"}
        if "test" not in data:
            raise ValueError(f"{path}: [data] test (the held-out recordings) is missing")
    else:
        allowed = {sources[0], "arguments", "test_fraction", "split_seed"}
        if sources == ["simulator"] and data["simulator"] not in SIMULATORS:
            raise ValueError(f"{path}: [data] simulator must be one of {list(SIMULATORS)}, got {data['simulator']!r}")
        if not isinstance(data.get("arguments", {}), dict):
            raise ValueError(f"{path}: [data] arguments must be a table of keyword arguments, got {data['arguments']!r}")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"{path}: [data] has entries {unknown} that do not go with {sources[0]}; accepted: {sorted(allowed)}")


def sweep_data(config: SweepConfig) -> tuple[Recording, Recording]:
    """``(train, test)`` Recordings of the sweep file's ``[data]`` (see the module docstring)."""
    import pyro_neurodyn.data as simulators

    data, base = config.data, config.path.parent
    if "train" in data:
        return _file_recording(base / data["train"]), _file_recording(base / data["test"])
    arguments = dict(data.get("arguments", {}))
    if "simulator" in data:
        simulated = getattr(simulators, data["simulator"])(**arguments)
        inputs = getattr(simulated, "inputs", None)
        recording = _complete_recording(simulated.y, inputs)
    else:
        sources = [data["nwb"]] if isinstance(data["nwb"], str) else list(data["nwb"])
        bin_size = arguments.pop("bin_size", None)
        if bin_size is None:
            raise ValueError(f"{config.path}: [data] arguments.bin_size (seconds per bin) is needed to read NWB files")
        recording = simulators.load_nwb_sessions([base / source for source in sources], bin_size, **arguments)
    return recording.split(data.get("test_fraction", 0.25), seed=data.get("split_seed", 0))


def _file_recording(path: Path) -> Recording:
    arrays = load_recordings(path)
    return _complete_recording(arrays["y"], arrays.get("u"))


def _complete_recording(y: torch.Tensor, u: Optional[torch.Tensor]) -> Recording:
    """Equal-length, fully observed trials ``y (trials, T, D)`` (inputs ``u (trials, T, M)``) as a Recording."""
    y = torch.as_tensor(y)
    if y.dim() != 3:
        raise ValueError(f"recordings must be (trials, T, channels), got shape {tuple(y.shape)}")
    dtype = y.dtype if y.is_floating_point() else torch.get_default_dtype()
    return Recording.from_trials(list(y.numpy()), inputs=None if u is None else list(torch.as_tensor(u).numpy()), dtype=dtype)


def run_sweep_config(config: SweepConfig, *, num_cpus: Optional[int] = None, verbose: int = 1) -> Any:
    """Run (or resume) the sweep of a sweep file; write ``results.csv`` and ``comparison.csv`` to its storage
    folder and return the :class:`~pyro_neurodyn.sweep.SweepResult`. ``num_cpus``: the CPUs of a local Ray
    instance (default: all; not with ``[sweep] address``)."""
    from .ray_sweep import run_sweep

    if num_cpus is not None and config.sweep.get("address") is not None:
        raise ValueError("num_cpus applies to a local Ray instance; a cluster ([sweep] address) has its own")
    train, test = sweep_data(config)
    started = False
    if num_cpus is not None:
        ray, _ = ray_and_tune()
        if not ray.is_initialized():
            ray.init(num_cpus=num_cpus, include_dashboard=False)
            started = True
    try:
        result = run_sweep(config.build, config.grid, train, test, seeds=config.seeds, fit_kwargs=config.fit_arguments,
                           storage=config.storage, verbose=verbose, **config.sweep)  # fmt: skip
    finally:
        if started:
            ray.shutdown()
    result.table.to_csv(config.storage / RESULTS, index=False)
    if result.comparison is not None:
        result.comparison.to_csv(config.storage / COMPARISON)
    return result
