"""Reconstruction error: mean squared error and coefficient of determination R^2 per channel.

A reconstruction ``y_pred`` (e.g. the posterior-mean of the emission given the smoothed latents) is
compared with the recording ``y_true``, both ``(trials, time, channels)``. Every statistic pools
trials and time; channels are kept apart and then reduced as ``multioutput`` says, with the options
and meanings of scikit-learn's ``r2_score`` / ``mean_squared_error`` (Pedregosa et al., JMLR 2011):

- ``"raw_values"``: one value per channel, shape ``(channels,)``;
- ``"uniform_average"``: the plain mean over channels (the default, as in scikit-learn);
- ``"variance_weighted"`` (R^2 only): channels weighted by their variance in ``y_true``, which is
  the same as ``1 - sum_c SS_res[c] / sum_c SS_tot[c]``.
"""

from __future__ import annotations

from typing import Any, Union

import numpy as np
import torch
from torch import Tensor

from ..data.validation import as_trials

__all__ = ["mean_squared_error", "r2_score"]

MULTIOUTPUT_OPTIONS = ("raw_values", "uniform_average", "variance_weighted")


def check_multioutput(multioutput: Any, allowed: tuple[str, ...] = MULTIOUTPUT_OPTIONS[:2]) -> str:
    """Return ``multioutput`` if it is one of ``allowed``, else raise a ValueError naming the options."""
    if multioutput not in allowed:
        raise ValueError(f"multioutput must be one of {', '.join(map(repr, allowed))}; got {multioutput!r}")
    return multioutput


def reduce_channels(values: Union[Tensor, np.ndarray], multioutput: str) -> Union[float, np.ndarray]:
    """Per-channel values ``(channels,)`` (array, or tensor on any device) -> a float64 array for
    ``"raw_values"``, else their plain mean."""
    values = np.asarray(values.detach().cpu() if isinstance(values, Tensor) else values, dtype=np.float64)
    return values if multioutput == "raw_values" else float(values.mean())


def paired_recordings(y_true: Any, y_pred: Any, pred_name: str = "y_pred") -> tuple[Tensor, Tensor]:
    """Validate two recordings of identical shape ``(trials, time, channels)``; float64 tensors on
    ``y_true``'s device."""
    true = as_trials(y_true, "y_true", min_steps=1, dtype=torch.float64)
    pred = as_trials(y_pred, pred_name, min_steps=1, dtype=torch.float64, device=true.device)
    if true.shape != pred.shape:
        raise ValueError(
            f"y_true and {pred_name} must have the same shape (trials, time, channels), "
            f"got {tuple(true.shape)} and {tuple(pred.shape)}"
        )
    return true, pred


def squared_error_per_channel(y_true: Tensor, y_pred: Tensor) -> Tensor:
    """``MSE[c] = mean_{...} (y_true[..., c] - y_pred[..., c])^2``, pooling all leading dims: ``(..., C)`` -> ``(C,)``."""
    return (y_true - y_pred).pow(2).reshape(-1, y_true.shape[-1]).mean(0)


def power_of_two_scale(largest: Tensor) -> Tensor:
    """The power of two at or above each entry of ``largest`` (>= 0, any shape), 1 where it is 0; same shape.

    Dividing by it is exact, so scale-free statistics computed on ``x / scale`` equal those of ``x`` bit
    for bit, and stay finite where squares of ``x`` over- or underflow (|x| beyond 1e154 or below 1e-154
    in float64)."""
    _, exponent = torch.frexp(largest)
    return torch.ldexp(torch.ones_like(largest), exponent)


def total_sum_of_squares(y_true: Tensor, name: str = "y_true") -> Tensor:
    """``SS_tot[c] = sum (y_true[..., c] - mean y_true[..., c])^2`` over all leading dims, ``(C,)``.

    Raises a ValueError if a channel is constant (SS_tot = 0), where R^2 is undefined; computed on each
    channel scaled by a power of two, so that tiny or huge values are not mistaken for constant ones.
    """
    true = y_true.reshape(-1, y_true.shape[-1])
    scale = power_of_two_scale(true.abs().amax(0))
    scaled = true / scale
    total = (scaled - scaled.mean(0)).pow(2).sum(0)
    constant = (total == 0).nonzero().flatten()
    if len(constant):
        raise ValueError(
            f"R^2 is undefined: {name} is constant in channel(s) {constant.tolist()} (zero total sum of squares)"
        )
    return total * scale.square()


def r2_from_tensors(y_true: Tensor, y_pred: Tensor, multioutput: str) -> Union[float, np.ndarray]:
    """R^2 of ``y_pred`` for ``y_true`` (``(..., C)``, all leading dims pooled); no input validation."""
    true = y_true.reshape(-1, y_true.shape[-1])
    pred = y_pred.reshape(true.shape)
    # R^2 is scale-free: divide both by a power of two per channel (one for all channels when they are
    # pooled), exact, so that squares of |y| > 1e154 do not overflow into inf / inf = NaN
    largest = torch.maximum(true.abs().amax(0), pred.abs().amax(0))
    scale = power_of_two_scale(largest.amax() if multioutput == "variance_weighted" else largest)
    true, pred = true / scale, pred / scale
    residual = (true - pred).pow(2).sum(0)
    total = total_sum_of_squares(true)
    if multioutput == "variance_weighted":
        return float(1.0 - residual.sum() / total.sum())
    return reduce_channels(1.0 - residual / total, multioutput)


def mean_squared_error(y_true: Any, y_pred: Any, multioutput: str = "uniform_average") -> Union[float, np.ndarray]:
    """Mean squared reconstruction error per channel, pooled over trials and time.

    ``MSE[c] = 1 / (N T) sum_{n, t} (y_true[n, t, c] - y_pred[n, t, c])^2``. With
    ``multioutput="uniform_average"`` the result is ``mean_c MSE[c]``, i.e. the mean over every
    element (all channels have the same number of points). Same definition as scikit-learn's
    ``mean_squared_error``.

    Args:
        y_true: recording, ``(trials, time, channels)`` or ``(time, channels)``.
        y_pred: reconstruction of the same shape.
        multioutput: ``"uniform_average"`` (float) or ``"raw_values"`` (array ``(channels,)``).
    """
    multioutput = check_multioutput(multioutput)
    true, pred = paired_recordings(y_true, y_pred)
    return reduce_channels(squared_error_per_channel(true, pred), multioutput)


def r2_score(y_true: Any, y_pred: Any, multioutput: str = "uniform_average") -> Union[float, np.ndarray]:
    """Coefficient of determination per channel, pooled over trials and time.

    ``R2[c] = 1 - SS_res[c] / SS_tot[c]`` with ``SS_res[c] = sum_{n,t} (y_true - y_pred)^2`` and
    ``SS_tot[c] = sum_{n,t} (y_true - mean_{n,t} y_true[..., c])^2`` (the baseline predicts each
    channel's mean over all trials and times). Definition and ``multioutput`` options as scikit-learn's
    ``r2_score`` (see the module docstring): ``"uniform_average"`` (default) is ``mean_c R2[c]``,
    ``"variance_weighted"`` is ``1 - sum_c SS_res[c] / sum_c SS_tot[c]``. R^2 can be negative.

    Raises:
        ValueError: a channel of ``y_true`` is constant (R^2 undefined there; scikit-learn would
            silently report 0 or 1).
    """
    multioutput = check_multioutput(multioutput, MULTIOUTPUT_OPTIONS)
    true, pred = paired_recordings(y_true, y_pred)
    return r2_from_tensors(true, pred, multioutput)
