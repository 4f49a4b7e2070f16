"""k-step-ahead forecast accuracy and the n-step prediction error PE_n, for any forecaster.

A forecast from origin ``t`` sees the data ``y[:, :t+1]`` (time steps ``0..t``) and predicts the next
``k`` steps; step ``j`` (``1 <= j <= k``) of it predicts ``y[:, t+j]``. A model plugs in through a
callable, so the metric never needs to know how the model filters (a causal encoder, a particle
filter, a Kalman filter) or simulates:

- ``forecast(y_prefix, k) -> samples``: ``y_prefix`` ``(trials, t+1, channels)``, ``samples``
  ``(num_samples, trials, k, channels)``, called once per origin;
- or, with ``batched=True``, ``forecast(y, origins, k) -> samples`` with ``origins`` ``(O,)`` int64,
  ``samples`` ``(num_samples, O, trials, k, channels)``; for origin ``origins[o]`` the forecaster
  must use ``y[:, :origins[o]+1]`` only (it is handed ``y`` up to the last origin, no further). One
  filtering pass then serves every origin.

The point forecast is the mean over the forecaster's samples (a Monte Carlo estimate of the
conditional mean ``E[y_{t+j} | y_{0..t}]``, which minimises the expected squared error); a
deterministic forecaster returns ``num_samples = 1``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..data.validation import as_trials, check_count
from .reconstruction import (
    MULTIOUTPUT_OPTIONS,
    check_multioutput,
    r2_from_tensors,
    reduce_channels,
    total_sum_of_squares,
)

__all__ = ["ForecastScores", "k_step_forecast", "prediction_error"]

Forecaster = Callable[..., Any]


class ForecastScores(NamedTuple):
    """Accuracy of j-step-ahead point forecasts, j = 1..k, pooled over origins and trials.

    ``mse[j-1] = mean_{o, n, c} (y[n, t_o + j, c] - yhat[o, n, j, c])^2`` (or per channel, shape
    ``(k, channels)``, with ``multioutput="raw_values"``), and ``r2[j-1]`` the :func:`r2_score` of
    the j-step forecasts ``yhat[:, :, j]`` for the data ``y[:, t_o + j]``: the baseline is each
    channel's mean of those data, so R^2 is comparable across horizons. ``r2[-1]`` is the k-step R^2.

    Attributes:
        mse: ``(k,)`` or ``(k, channels)`` float64 array.
        r2: ``(k,)`` or ``(k, channels)`` float64 array.
        predictions: ``(origins, trials, k, channels)`` point forecasts (mean over samples).
        targets: ``(origins, trials, k, channels)`` the data they predict.
        origins: ``(origins,)`` int64, the last observed time step of each forecast.
    """

    mse: np.ndarray
    r2: np.ndarray
    predictions: Tensor
    targets: Tensor
    origins: Tensor


def _check_origins(origins: Any, num_steps: int, k: int, k_name: str) -> Tensor:
    """Default: every origin ``0 <= t <= T-1-k``; else validate a 1-D integer array in that range."""
    if k > num_steps - 1:
        raise ValueError(
            f"{k_name} = {k} leaves no forecast origin in y with T = {num_steps} time steps (need {k_name} <= T - 1)"
        )
    if origins is None:
        return torch.arange(num_steps - k)
    array = np.asarray(origins)
    if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"origins must be a non-empty 1-D array of integers, got {origins!r}")
    if array.min() < 0 or array.max() > num_steps - 1 - k:
        raise ValueError(
            f"origins must lie in [0, T - 1 - {k_name}] = [0, {num_steps - 1 - k}] so that all {k_name} = {k} steps are observed; "
            f"got values in [{array.min()}, {array.max()}]"
        )
    return torch.as_tensor(array, dtype=torch.int64)


def _checked_samples(output: Any, expected: tuple[int, ...], what: str, device: torch.device) -> Tensor:
    """The forecaster's output as float64 ``(num_samples, *expected)`` on ``device`` (the data's), or a
    ValueError saying why not."""
    samples = torch.as_tensor(output).detach().to(device=device, dtype=torch.float64)
    if samples.dim() != len(expected) + 1 or tuple(samples.shape[1:]) != expected:
        raise ValueError(f"{what} returned shape {tuple(samples.shape)}, expected (num_samples, *{expected})")
    if samples.shape[0] == 0:
        raise ValueError(f"{what} returned zero samples")
    if not bool(torch.isfinite(samples).all()):
        raise ValueError(f"{what} returned NaN or infinite values")
    return samples


def _point_forecasts(y: Tensor, forecast: Forecaster, k: int, origins: Tensor, batched: bool) -> Tensor:
    """Mean over samples of the forecasts from every origin: ``(origins, trials, k, channels)``."""
    trials, _, channels = y.shape
    y_model = y.to(torch.get_default_dtype())
    if batched:
        last = int(origins.max())
        output = forecast(y_model[:, : last + 1], origins.clone(), k)
        expected = (len(origins), trials, k, channels)
        return _checked_samples(output, expected, "forecast(y, origins, k)", y.device).mean(0)
    return torch.stack(
        [
            _checked_samples(forecast(y_model[:, : t + 1], k), (trials, k, channels), f"forecast(y_prefix, k) at origin {t}", y.device).mean(0)
            for t in origins.tolist()
        ]
    )


def _validated(y: Any, forecast: Any, k: Any, origins: Any, k_name: str) -> tuple[Tensor, int, Tensor, Tensor]:
    """Validated ``y`` (float64), horizon, ``origins`` and the targets ``(origins, trials, k, channels)``."""
    y = as_trials(y, "y", dtype=torch.float64)
    k = check_count(k, k_name)
    if not callable(forecast):
        raise TypeError(f"forecast must be callable, got {type(forecast).__name__}")
    origins = _check_origins(origins, y.shape[1], k, k_name)
    steps = origins[:, None] + torch.arange(1, k + 1)  # (origins, k)
    return y, k, origins, y[:, steps].permute(1, 0, 2, 3)


def k_step_forecast(
    y: Any,
    forecast: Forecaster,
    k: int,
    origins: Any = None,
    *,
    batched: bool = False,
    multioutput: str = "uniform_average",
) -> ForecastScores:
    """MSE and R^2 of 1..k-step-ahead forecasts, averaged over forecast origins and trials.

    For each origin ``t`` in ``origins`` the forecaster sees ``y[:, :t+1]`` and returns samples of
    ``y[:, t+1 : t+k+1]``; their mean ``yhat`` is scored against the data (see :class:`ForecastScores`
    for the formulas). This is the k-step prediction MSE / R^2 of the switching-dynamics literature
    (filter to t, simulate k steps, average; e.g. Linderman et al. 2017, rSLDS; Nassar et al. 2019;
    Zhang & Saxena 2024, SRNN), for any model expressed as a forecaster (see the module docstring).

    Args:
        y: recording ``(trials, time, channels)`` or ``(time, channels)``.
        forecast: the forecaster callable (module docstring); it receives tensors in torch's default
            dtype and may return a tensor or an array.
        k: forecast horizon, ``1 <= k <= T - 1``.
        origins: last observed time step of each forecast, 1-D ints in ``[0, T-1-k]``; default: all
            of them. Origins ``k`` or more steps apart have independent forecast errors.
        batched: ``forecast`` is the batched form ``forecast(y, origins, k)``.
        multioutput: reduction over channels, as in :func:`r2_score` (``"variance_weighted"`` affects
            R^2 only; MSE is then the uniform mean).

    Returns:
        :class:`ForecastScores`; ``.mse[-1]`` and ``.r2[-1]`` are the k-step values.

    Raises:
        ValueError: besides bad arguments, targets constant in a channel at some horizon (R^2
            undefined; :func:`prediction_error` still gives the MSE), checked before forecasting.
    """
    multioutput = check_multioutput(multioutput, MULTIOUTPUT_OPTIONS)
    y, k, origins, targets = _validated(y, forecast, k, origins, "k")
    for j in range(k):
        total_sum_of_squares(targets[:, :, j], f"y at forecast step {j + 1}")
    predictions = _point_forecasts(y, forecast, k, origins, bool(batched))
    per_channel_mse = (targets - predictions).pow(2).mean((0, 1))  # (k, channels)
    mse_reduction = "raw_values" if multioutput == "raw_values" else "uniform_average"
    mse = np.array([reduce_channels(step, mse_reduction) for step in per_channel_mse])
    r2 = np.array([r2_from_tensors(targets[:, :, j], predictions[:, :, j], multioutput) for j in range(k)])
    return ForecastScores(mse, r2, predictions, targets, origins)


def prediction_error(y: Any, forecast: Forecaster, n: int, origins: Any = None, *, batched: bool = False) -> float:
    """PE_n, the n-step prediction error of dynamical-systems reconstruction.

    ``PE_n = 1 / (|origins| N C) sum_{t, trial, c} (y[trial, t+n, c] - yhat_n[trial, t, c])^2``, where
    ``yhat_n`` is the model's n-step-ahead prediction from its state inferred at ``t`` (Koppe et al.
    2019, PLOS Comput Biol 15:e1007263; Brenner et al. 2022, ICML; Hess et al. 2023, ICML use n = 20
    and run the model without noise from the inferred state). It is the k-step MSE of
    :func:`k_step_forecast` with ``k = n`` (``.mse[-1]``), without R^2: a deterministic forecaster
    (``num_samples = 1``) gives the published variant, a sampling one the MSE of the predictive mean.
    Arguments as :func:`k_step_forecast`.
    """
    y, n, origins, targets = _validated(y, forecast, n, origins, "n")
    predictions = _point_forecasts(y, forecast, n, origins, bool(batched))
    return float((targets[:, :, -1] - predictions[:, :, -1]).pow(2).mean())
