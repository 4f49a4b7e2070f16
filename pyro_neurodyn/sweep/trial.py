"""One trial of a sweep: the Ray Tune function trainable that fits one (grid point, seed) and reports it.

A trial

1. builds the estimator, ``build(**point, seed=seed)``;
2. fits it on the training recordings, ``fit(train, seed=seed, **fit_kwargs)``, checkpointing the fit to
   ``<storage>/fits/point<i>_seed<s>.ckpt`` (:class:`~pyro_neurodyn.infer.FitRun`): a retried or resumed trial
   continues its fit from there rather than from step 0, to the same parameters;
3. scores every held-out trial, ``log_evidence(test, num_particles=..., seed=evaluation_seed)``, a tensor
   ``(test trials,)`` of estimates of ``log p(y_b | fitted model)``;
4. reports once, ``tune.report(metrics, checkpoint=...)``, with a Tune checkpoint (a folder that Tune
   copies to the sweep's storage) holding ``model.pt`` (the fitted estimator, ``Estimator.save``) and
   ``metrics.json``.

A trial that Tune restarts after it reported (its latest checkpoint is ``tune.get_checkpoint()``) reports
the same metrics again without fitting. The metrics:

    point, seed                 the grid point's index and the seed
    heldout_log_evidence        sum over the test trials of the log-evidence estimates (nats)
    log_evidence_per_trial      the estimates themselves, a list of length (test trials)
    final_loss, fit_steps       the last training loss and the number of recorded steps (``.losses``)
    fit_seconds                 wall time of this attempt's fit
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

__all__ = ["METRICS_FILE", "MODEL_FILE", "fit_file", "run_trial"]

MODEL_FILE = "model.pt"
METRICS_FILE = "metrics.json"


def fit_file(fits: Path, point: int, seed: int) -> Path:
    """Where the fit of grid point ``point`` with ``seed`` keeps its checkpoint while it runs."""
    return fits / f"point{point}_seed{seed}.ckpt"


def run_trial(
    config: dict,
    *,
    build: Callable[..., Any],
    points: Sequence[dict],
    train: Any,
    test: Any,
    fit_kwargs: dict,
    num_particles: int,
    evaluation_seed: int,
    threads: int,
    fits: str,
) -> None:
    """The function trainable (see the module docstring); ``config = {"point": index, "seed": seed}``, the rest
    bound by ``tune.with_parameters``. ``threads``: torch threads (the trial's CPUs); ``fits``: the folder of
    fit checkpoints."""
    from ray import tune

    reported = tune.get_checkpoint()
    if reported is not None:  # this trial finished before an interruption: its result stands
        with reported.as_directory() as folder:
            metrics = json.loads((Path(folder) / METRICS_FILE).read_text())
        tune.report(metrics, checkpoint=reported)
        return
    point, seed = int(config["point"]), int(config["seed"])
    torch.set_num_threads(threads)
    estimator = build(**points[point], seed=seed)
    checkpoint = fit_file(Path(fits), point, seed)
    start = time.perf_counter()
    estimator.fit(train, seed=seed, progress=False, checkpoint=checkpoint, resume=checkpoint.exists(), **fit_kwargs)
    fit_seconds = time.perf_counter() - start
    with torch.no_grad():
        values = estimator.log_evidence(test, num_particles=num_particles, seed=evaluation_seed)
    values = values.detach().to("cpu", torch.float64)
    metrics = {
        "point": point, "seed": seed, "heldout_log_evidence": float(values.sum()), "log_evidence_per_trial": values.tolist(),
        "final_loss": float(estimator.losses[-1]) if estimator.losses else float("nan"), "fit_steps": len(estimator.losses),
        "fit_seconds": fit_seconds,
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        estimator.save(Path(folder) / MODEL_FILE)
        (Path(folder) / METRICS_FILE).write_text(json.dumps(metrics))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
    checkpoint.unlink(missing_ok=True)  # the reported checkpoint now holds the fitted model
