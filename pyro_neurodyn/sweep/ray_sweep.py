"""``run_sweep``: fit every (grid point, seed) of a model family with Ray Tune and compare the grid points.

    from pyro_neurodyn import SRNN
    from pyro_neurodyn.sweep import run_sweep

    def build(num_states, seed):
        return SRNN(num_states=num_states, latent_dim=3, seed=seed)

    result = run_sweep(build, {"num_states": [1, 2, 3]}, y_train, y_test, seeds=[0, 1, 2],
                       fit_kwargs={"num_steps": 500}, storage="sweeps/srnn_k")
    result.table            # one row per (grid point, seed): held-out log evidence, status, model path, ...
    result.comparison       # arviz_stats.compare over grid points, best seed each
    best = result.load_best()

Each (grid point, seed) is one Ray Tune trial (:func:`~pyro_neurodyn.sweep.trial.run_trial`, a function
trainable that fits, scores the held-out trials, and reports with a checkpoint holding the model). Tune
runs as many trials at once as the cluster's resources allow (``resources_per_trial`` each), retries a
trial that raised (``FailureConfig(max_failures)``), and keeps its state in ``storage``: calling
``run_sweep`` again with the same arguments after an interruption (Ctrl-C, a crash, a lost node)
resumes the sweep with ``Tuner.restore``, without refitting finished trials (and fits that were under
way continue from their own checkpoints); trials that failed after their retries are tried again. ``storage`` that holds another sweep is refused
(:mod:`~pyro_neurodyn.sweep.storage`).

On one machine, ``address=None`` starts a local Ray instance with every CPU (or uses the one already
started by ``ray.init(num_cpus=...)``). On a cluster (``ray start --head`` on one machine, ``ray start
--address=HEAD:6379`` on the others), run the script on a cluster machine with ``address="auto"`` and a
``storage`` folder on a file system that every machine mounts at the same path; every machine needs
pyro_neurodyn installed, and ``build`` must be importable there or defined in the script itself (Ray
pickles functions of ``__main__`` by value). For GPUs, give ``resources_per_trial={"cpu": 1, "gpu": 1}``
and return ``estimator.to("cuda")`` from ``build``.

Ray is imported here, inside :func:`run_sweep`, so that ``import pyro_neurodyn`` never pays for it.
"""

from __future__ import annotations

import inspect
import numbers
import signal
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import numpy as np

from ..data.recording import Recording
from ..data.validation import check_count
from ..estimators.base import Estimator
from .grid import check_seeds, grid_points, point_label
from .results import FAILED, UNFINISHED, SweepResult, collect_results
from .storage import FITS, build_identity, claim_storage, sweep_identity
from .trial import run_trial

__all__ = ["SweepInterrupted", "run_sweep"]

RESERVED_FIT_ARGUMENTS = ("seed", "progress", "checkpoint", "resume")  # set by the sweep for every trial


class SweepInterrupted(RuntimeError):
    """The sweep stopped before every trial ended (Ctrl-C, SIGUSR1, ...); ``result`` holds what finished.
    Calling :func:`run_sweep` again with the same arguments resumes it."""

    def __init__(self, result: SweepResult):
        unfinished = int((result.table["status"] == UNFINISHED).sum())
        super().__init__(f"the sweep was interrupted with {unfinished} of {len(result.table)} trials unfinished: "
                         "call run_sweep again with the same arguments and storage to resume it")  # fmt: skip
        self.result = result


def ray_and_tune():
    """``(ray, ray.tune)``, imported on first use (``import pyro_neurodyn`` never starts Ray); an ImportError that
    says how to install them when Ray is missing (it is the optional extra ``sweep``)."""
    try:
        import ray
        from ray import tune
    except ImportError as error:
        raise ImportError("pyro_neurodyn.sweep runs on Ray Tune, which is not installed: pip install 'pyro_neurodyn[sweep]' "
                          "(or pip install 'ray[tune]')") from error  # fmt: skip
    return ray, tune


def run_sweep(
    build: Callable[..., Estimator],
    grid: Any,
    train: Any,
    test: Any,
    *,
    seeds: Sequence[int],
    fit_kwargs: Optional[Mapping[str, Any]] = None,
    storage: Any,
    resources_per_trial: Optional[Mapping[str, float]] = None,
    address: Optional[str] = None,
    num_particles: int = 100,
    evaluation_seed: int = 0,
    max_failures: int = 2,
    verbose: int = 1,
) -> SweepResult:
    """Fit ``build(**point, seed=seed)`` for every grid point and seed on Ray Tune and compare the points on
    held-out trials (see the module docstring, and :mod:`~pyro_neurodyn.sweep.results` for what the
    comparison means).

    Args:
        build: ``build(**point, seed=seed)`` -> an unfitted estimator (``SRNN``, ``LowRankRNN``,
            ``SwitchingLowRankRNN``). Called once per grid point here, to check the arguments, and once
            per trial on the workers.
        grid: ``{argument: [values]}`` (every combination) or a list of dicts (the points themselves).
        train: training recordings, ``(trials, T, D)`` tensor or array, or a
            :class:`~pyro_neurodyn.data.Recording` (which carries its inputs).
        test: held-out recordings of the same kind, at least 2 trials.
        seeds: the seeds of each grid point, each given to ``build`` and to ``fit``.
        fit_kwargs: keyword arguments of every ``fit`` (not ``seed``, ``progress``, ``checkpoint``, ``resume``:
            the sweep sets them).
        storage: the sweep's folder (new, empty, or holding this same sweep, which is then resumed). On a
            cluster, a path on a file system shared by every machine.
        resources_per_trial: Ray resources of one trial (default ``{"cpu": 1}``); the trial's fit uses
            ``int(cpu)`` torch threads (at least 1).
        address: Ray cluster to connect to (``"auto"``, ``"HOST:6379"``); None: the Ray instance already
            initialized in this process, else a new local one (shut down again at the end).
        num_particles: particles (importance samples) of each held-out trial's log-evidence estimate.
        evaluation_seed: seed of those estimates (the same for every trial).
        max_failures: retries of a trial that raised (Tune's ``FailureConfig``) before it counts as failed.
        verbose: Tune's console output, 0 (silent), 1 or 2.

    Returns:
        A :class:`~pyro_neurodyn.sweep.SweepResult`: ``table``, ``comparison``, ``load_best()``. Trials that
        still failed after their retries appear with status ``"failed"`` and their error (and a warning).

    Raises:
        SweepInterrupted: the run stopped before every trial ended; its ``result`` has what finished.
        ValueError, TypeError: bad arguments, before any trial starts (each message names the argument).
        FileExistsError: ``storage`` is a non-empty folder that is not a sweep's.
    """
    ray, tune = ray_and_tune()  # before any work: a clear message when Ray is not installed
    points = grid_points(grid)
    seeds = check_seeds(seeds)
    fit_kwargs = _check_fit_kwargs_mapping(fit_kwargs)
    num_particles = check_count(num_particles, "num_particles")
    evaluation_seed = check_count(evaluation_seed, "evaluation_seed", minimum=0)
    max_failures = check_count(max_failures, "max_failures", minimum=0)
    resources = _check_resources(resources_per_trial)
    _check_test_trials(test)
    if not callable(build):
        raise TypeError(f"build must be a callable build(**point, seed=seed) -> estimator, got {type(build).__name__}")
    classes = [_checked_class(build, point, seeds[0], fit_kwargs, train, test) for point in points]
    folder = Path(storage).expanduser().resolve()
    identity = sweep_identity(build=build_identity(build), points=points, seeds=seeds, fit_kwargs=fit_kwargs,
                              num_particles=num_particles, evaluation_seed=evaluation_seed, train=train, test=test)  # fmt: skip
    description = {"build": build_identity(build), "points": [point_label(point) for point in points], "seeds": seeds,
                   "fit_kwargs": {name: repr(value) for name, value in fit_kwargs.items()}, "num_particles": num_particles,
                   "evaluation_seed": evaluation_seed}  # fmt: skip
    resuming = claim_storage(folder, identity, description)

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False)
    try:
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, build=build, points=points, train=train, test=test, fit_kwargs=fit_kwargs, num_particles=num_particles,
                                 evaluation_seed=evaluation_seed, threads=max(1, int(resources.get("cpu", 1))), fits=str(folder / FITS)),
            resources,
        )  # fmt: skip
        if resuming and tune.Tuner.can_restore(folder):
            tuner = tune.Tuner.restore(str(folder), trainable, resume_unfinished=True, resume_errored=True)
        else:
            tuner = tune.Tuner(
                trainable,
                param_space={"point": tune.grid_search(list(range(len(points)))), "seed": tune.grid_search(seeds)},
                # reuse_actors: a trial starts in a warm process (torch and Pyro imported): 4x faster sweeps of short fits here
                tune_config=tune.TuneConfig(reuse_actors=True),
                run_config=tune.RunConfig(name=folder.name, storage_path=str(folder.parent), verbose=verbose,
                                          failure_config=tune.FailureConfig(max_failures=max_failures)),  # fmt: skip
            )
        with _signal_handlers_kept():
            result = collect_results(tuner.fit(), points, seeds, classes, num_particles)
    finally:
        if started:
            ray.shutdown()
    status = result.table["status"]
    if (status == UNFINISHED).any():
        raise SweepInterrupted(result)
    if (status == FAILED).any():
        failed = result.table[status == FAILED]
        warnings.warn(f"{len(failed)} trial(s) failed after {max_failures} retries: "
                      + "; ".join(f"{row.point}, seed {row.seed}: {row.error}" for row in failed.itertuples()), stacklevel=2)  # fmt: skip
    return result


def _check_fit_kwargs_mapping(fit_kwargs: Any) -> dict:
    if fit_kwargs is None:
        return {}
    if not isinstance(fit_kwargs, Mapping):
        raise TypeError(f"fit_kwargs must be a dict of fit's keyword arguments, got {type(fit_kwargs).__name__}")
    reserved = sorted(set(fit_kwargs) & set(RESERVED_FIT_ARGUMENTS))
    if reserved:
        raise ValueError(f"fit_kwargs must not set {reserved}: the sweep sets {list(RESERVED_FIT_ARGUMENTS)} for every trial (seeds come from seeds=)")
    return dict(fit_kwargs)


def _check_resources(resources: Any) -> dict:
    if resources is None:
        return {"cpu": 1}
    if not isinstance(resources, Mapping) or not resources:
        raise ValueError(f"resources_per_trial must be a non-empty dict such as {{'cpu': 1}} or {{'cpu': 1, 'gpu': 1}}, got {resources!r}")
    for name, amount in resources.items():
        if not isinstance(name, str) or isinstance(amount, bool) or not isinstance(amount, numbers.Real) or not amount >= 0:
            raise ValueError(f"resources_per_trial: {name!r} must be a non-negative number, got {amount!r}")
    return dict(resources)


def _check_test_trials(test: Any) -> None:
    shape = (len(test),) if isinstance(test, Recording) else np.shape(test)
    if len(shape) == 0 or shape[0] < 2:
        raise ValueError(f"test must hold at least 2 held-out trials (trials, T, D) to compare models on, got shape {tuple(shape)}")


def _checked_class(build: Callable, point: dict, seed: int, fit_kwargs: dict, train: Any, test: Any) -> type:
    """The estimator class that ``build`` returns at ``point``, after checking it, ``fit_kwargs`` and the data."""
    estimator = build(**point, seed=seed)
    if not isinstance(estimator, Estimator):
        raise TypeError(f"build(**{point}, seed={seed}) must return a pyro_neurodyn estimator (SRNN, LowRankRNN, SwitchingLowRankRNN), "
                        f"got {type(estimator).__name__}")  # fmt: skip
    accepted = [name for name in inspect.signature(type(estimator).fit).parameters if name not in ("self", "y", "u")]
    unknown = sorted(set(fit_kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"fit_kwargs has unknown entries {unknown} for {type(estimator).__name__}.fit; accepted: {accepted}")
    for name, data in (("train", train), ("test", test)):
        try:
            estimator.recording_arrays(data)
        except (ValueError, TypeError) as error:
            raise type(error)(f"{name}: {error}") from None
    return type(estimator)


@contextmanager
def _signal_handlers_kept() -> Iterator[None]:
    """Restore the SIGINT (and SIGUSR1) handlers after the block. Ray Tune installs its own for a run and puts
    SIGINT's back only when a signal arrives, so after an uninterrupted sweep Ctrl-C went to Tune's handler,
    which logs and returns: a later fit in the same process could no longer be interrupted."""
    names = [name for name in ("SIGINT", "SIGUSR1") if hasattr(signal, name)]
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {name: signal.getsignal(getattr(signal, name)) for name in names}
    try:
        yield
    finally:
        for name, handler in handlers.items():
            if handler is not None:  # None: installed outside Python, cannot be set back
                signal.signal(getattr(signal, name), handler)
