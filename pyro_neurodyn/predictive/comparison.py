"""Model comparison on held-out trials with ``arviz_stats.compare``.

Why held-out log evidence, and how it enters ``compare``. The models of the suite have trial-local
latents, so PSIS-LOO over trials with conditional log-likelihoods degenerates into a harmonic-mean
estimate (see :mod:`~pyro_neurodyn.predictive.posterior_predictive`). Instead each model, fit on training
trials, scores every held-out trial b with its own estimate of the log predictive density

    elpd_b = log p(y_b^test | theta_hat(y^train)),

the marginal over the trial's latents (and states): the particle filter's ``log p^(y_b)`` for the
LowRankRNN, the importance-weighted (IWAE) estimate for switching models. These are wrapped in an
``arviz_stats.ELPDData`` of kind ``"heldout"`` whose pointwise values ``elpd_i`` are the per-trial
held-out densities, their sum the elpd and ``se = sqrt(n var(elpd_i))`` its standard error, exactly the
quantities ``compare`` derives from PSIS-LOO (so elpd differences and their ``dse`` are paired over the
same test trials). What differs from LOO, and is stated here rather than hidden: theta is a point
estimate (no parameter uncertainty), ``p`` (effective parameters) is not defined (NaN), and each elpd_b
is a Monte Carlo estimate whose exponential is unbiased, so the log is biased down by about
var/2 (more particles shrink it; use the same particle budget for all models).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence

import numpy as np
import pyro
import torch
import xarray as xr

from ..data.validation import check_count
from ..estimators.base import modules_local_to
from .protocol import predictive_model

__all__ = ["ModelComparison", "compare_models", "heldout_elpd"]


def heldout_elpd(log_densities: Any, num_particles: int) -> Any:
    """``arviz_stats.ELPDData`` (kind ``"heldout"``) of per-trial held-out log densities ``(trials,)``."""
    from arviz_stats.utils import ELPDData

    values = np.asarray(torch.as_tensor(log_densities, dtype=torch.float64).detach().cpu())
    if values.ndim != 1 or values.size < 2:
        raise ValueError(f"log_densities must be 1-D with at least 2 trials, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("log_densities must be finite")
    return ELPDData(
        kind="heldout", elpd=float(values.sum()), se=float(np.sqrt(values.size * values.var())), p=float("nan"),
        n_samples=check_count(num_particles, "num_particles"), n_data_points=values.size, scale="log",
        warning=False, good_k=0.7, elpd_i=xr.DataArray(values, dims=["trial"]),
    )  # fmt: skip


class ModelComparison(NamedTuple):
    """``table``: the ``arviz_stats.compare`` DataFrame (best first); ``models``: ``{label: fitted model}``;
    ``elpd``: ``{label: ELPDData}`` of the held-out trials."""

    table: Any  # pandas.DataFrame
    models: dict
    elpd: dict


def compare_models(
    make_model: Callable[[Any], Any],
    grid: Sequence,
    y_train: Any,
    y_test: Any,
    fit_kwargs: Optional[dict] = None,
    *,
    inputs_train: Any = None,
    inputs_test: Any = None,
    num_particles: int = 100,
    method: str = "BB-pseudo-BMA",
    seed: Optional[int] = 0,
    label: Callable[[Any], str] = str,
) -> ModelComparison:
    """Fit ``make_model(value)`` on ``y_train`` for every value of ``grid`` (e.g. K or the rank) and rank the
    fits by held-out log evidence on ``y_test`` (see the module docstring).

    Args:
        make_model: value -> an unfitted model with ``fit(y, u, **fit_kwargs)`` of a registered type.
        grid: the values to try (at least two). y_train, y_test: recordings ``(trials, T, D)``.
        fit_kwargs: keyword arguments of every ``fit``. inputs_train, inputs_test: their inputs ``(trials, T, M)``.
        num_particles: particles (or importance samples) of each held-out trial's estimate.
        method: model weights of ``arviz_stats.compare``. The default ``"BB-pseudo-BMA"`` works on
            log densities of any size; arviz's ``"stacking"`` exponentiates the pointwise elpd without a
            shift, which underflows to 0 for trials of more than ~700 nats (its weights then stay uniform).
        seed: seeds Pyro before each fit and each evaluation (None: leave the RNGs alone).
        label: value -> the model's name in the table.
    """
    from arviz_stats import compare

    grid = list(grid)
    if len(grid) < 2:
        raise ValueError(f"grid must hold at least two values to compare, got {grid!r}")
    num_particles = check_count(num_particles, "num_particles")
    if fit_kwargs is not None and not isinstance(fit_kwargs, dict):
        raise TypeError(f"fit_kwargs must be a dict, got {type(fit_kwargs).__name__}")
    labels = [label(value) for value in grid]
    if len(set(labels)) != len(labels):
        raise ValueError(f"grid values must have distinct labels, got {labels}")
    models, elpd = {}, {}
    for value, name in zip(grid, labels):
        if seed is not None:
            pyro.set_rng_seed(seed)
        model = make_model(value)
        model.fit(y_train, inputs_train, **(fit_kwargs or {}))
        adapter = predictive_model(model)
        y, u = adapter.validate(y_test, inputs_test)
        if seed is not None:
            pyro.set_rng_seed(seed)
        with torch.no_grad(), modules_local_to(model):  # an estimator's modules as in its methods (estimators.base.module_local)
            elpd[name] = heldout_elpd(adapter.log_evidence(y, u, num_particles), num_particles)
        models[name] = model
    return ModelComparison(compare(elpd, method=method), models, elpd)
