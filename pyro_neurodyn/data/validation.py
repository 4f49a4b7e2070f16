"""Turn user arrays into tensors of the shapes the suite uses, rejecting bad input early.

Every public entry point (``fit``, metrics, the CLI) passes user data through these functions, so a
mistake is reported once, clearly, before any work is done: a ``ValueError`` (or ``TypeError``) that
names the argument and says what is wrong with it.

Shapes: recordings are ``(trials, time, channels)``; a 2-D array ``(time, channels)`` is one trial.
"""

from __future__ import annotations

import numbers
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "as_trials",
    "as_inputs",
    "as_state_labels",
    "check_choice",
    "check_count",
    "check_flag",
    "check_magnitude",
    "check_open_unit_interval",
    "check_positive",
    "check_sequence",
]

Device = Union[str, torch.device, None]


def _to_numeric_tensor(data: Any, name: str) -> Tensor:
    if isinstance(data, Tensor):
        tensor = data.detach()
    else:
        try:
            array = np.asarray(data)
        except (ValueError, TypeError) as error:  # ragged lists and the like
            raise ValueError(f"{name} could not be read as an array: {error}") from error
        if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise TypeError(f"{name} must be numeric, got an array of dtype {array.dtype}")
        tensor = torch.from_numpy(np.ascontiguousarray(array).reshape(array.shape))  # keep 0-d arrays 0-d
    if tensor.is_complex():
        raise TypeError(f"{name} must be real-valued, got dtype {tensor.dtype}")
    return tensor


def _check_finite(tensor: Tensor, name: str) -> None:
    if tensor.dtype.is_floating_point and not bool(torch.isfinite(tensor).all()):
        bad = ~torch.isfinite(tensor)
        first = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{name} contains {int(bad.sum())} NaN or infinite value(s), the first at index {first}")


def _check_counts(tensor: Tensor, name: str) -> None:
    if bool((tensor < 0).any()):
        raise ValueError(f"{name} must hold non-negative counts, found {int((tensor < 0).sum())} negative value(s)")
    if tensor.dtype.is_floating_point and not bool((tensor == tensor.round()).all()):
        raise ValueError(f"{name} must hold integer counts, found non-integer values (e.g. {tensor[tensor != tensor.round()][0].item()})")


def as_trials(
    data: Any,
    name: str = "y",
    *,
    counts: bool = False,
    min_steps: int = 2,
    dtype: Optional[torch.dtype] = None,
    device: Device = None,
) -> Tensor:
    """Validate a recording and return it as a float tensor ``(trials, time, channels)``.

    The checks run on the data as given; the result is then converted to ``dtype`` on ``device`` (an
    estimator passes its own, so a float32 array given to a float64 model arrives in float64).

    Args:
        data: numpy array, torch tensor or nested list, ``(trials, time, channels)`` or
            ``(time, channels)`` for a single trial.
        name: the argument's name, used in error messages.
        counts: require non-negative integer values (spike counts for a Poisson readout).
        min_steps: the least number of time steps accepted (2: a dynamics model needs a transition).
        dtype: float dtype of the result (default: torch's default dtype).
        device: device of the result (default: where ``data`` is, the CPU for arrays and lists).

    Raises:
        TypeError: non-numeric or complex data.
        ValueError: wrong ndim, zero trials/channels, fewer than ``min_steps`` steps, NaN/inf,
            negative or non-integer counts.
    """
    tensor = _to_numeric_tensor(data, name)
    if tensor.dim() == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 3:
        raise ValueError(
            f"{name} must be 3-D (trials, time, channels) or 2-D (time, channels), got shape {tuple(tensor.shape)}"
        )
    trials, steps, channels = tensor.shape
    if trials == 0:
        raise ValueError(f"{name} has zero trials (shape {tuple(tensor.shape)})")
    if channels == 0:
        raise ValueError(f"{name} has zero channels (shape {tuple(tensor.shape)})")
    if steps < min_steps:
        raise ValueError(f"{name} needs at least T = {min_steps} time steps, got T = {steps} (shape {tuple(tensor.shape)})")
    _check_finite(tensor, name)
    if counts:
        _check_counts(tensor, name)
    dtype = dtype or torch.get_default_dtype()
    converted = tensor.to(device=device, dtype=dtype)
    if tensor.dtype.is_floating_point and torch.finfo(tensor.dtype).max > torch.finfo(dtype).max:
        if not bool(torch.isfinite(converted).all()):  # finite values that overflow the narrower dtype
            raise ValueError(
                f"{name} has values up to {float(tensor.abs().max()):.3g} in magnitude, beyond the range of "
                f"{dtype} (max {torch.finfo(dtype).max:.3g}): rescale {name}"
            )
    return converted


def as_inputs(u: Any, y: Tensor, name: str = "u", y_name: str = "y") -> Optional[Tensor]:
    """Validate external inputs ``u`` against a validated recording ``y`` ``(trials, time, channels)``.

    Returns ``None`` for ``None``, else a float tensor ``(trials, time, input_dim)`` with the trials and
    time steps of ``y`` (a 2-D ``u`` is one trial, and is shared by all trials of ``y``), in ``y``'s
    dtype on ``y``'s device.
    """
    if u is None:
        return None
    u = as_trials(u, name, min_steps=1, dtype=y.dtype, device=y.device)
    if u.shape[0] == 1 and y.shape[0] > 1:
        u = u.expand(y.shape[0], -1, -1)
    if u.shape[:2] != y.shape[:2]:
        raise ValueError(
            f"{name} must match {y_name} in trials and time: {name} has shape {tuple(u.shape)}, "
            f"{y_name} has shape {tuple(y.shape)} (trials, time, channels)"
        )
    return u


def as_state_labels(labels: Any, name: str = "states", *, num_states: Optional[int] = None, device: Device = None) -> Tensor:
    """Validate discrete state labels; return int64 ``(trials, time)`` (a 1-D input is one trial).

    Labels must be non-negative integers, and below ``num_states`` when it is given. ``device``: where
    the result goes (default: where ``labels`` are, the CPU for arrays and lists).
    """
    tensor = _to_numeric_tensor(labels, name)
    if tensor.dim() == 1:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 2:
        raise ValueError(f"{name} must be 2-D (trials, time) or 1-D (time,), got shape {tuple(tensor.shape)}")
    if tensor.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(tensor.shape)})")
    _check_finite(tensor, name)
    _check_counts(tensor, name)
    tensor = tensor.long()
    if num_states is not None and int(tensor.max()) >= num_states:
        raise ValueError(f"{name} must be below num_states = {num_states}, found label {int(tensor.max())}")
    return tensor.to(device) if device is not None else tensor


def check_count(value: Any, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int if it is an integer >= ``minimum`` (e.g. K >= 1), else raise."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and float(value).is_integer():
            value = int(value)
        else:
            raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_positive(value: Any, name: str) -> float:
    """Return ``value`` as a float if it is finite and > 0 (a learning rate, a scale), else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value}")
    return float(value)


MAGNITUDE_HEADROOM = 1e-4  # check_magnitude's limit is sqrt(finfo.max) times this


def check_magnitude(tensor: Tensor, name: str, dtype: Optional[torch.dtype] = None) -> Tensor:
    """Return ``tensor`` (any shape, unchanged) if its values are small enough for second moments in ``dtype``, else raise.

    A model fit in float32 squares the data (covariances, Gaussian densities) and sums the squares over
    up to ~1e8 points: that overflows to inf (and then NaN, or an ``eigh`` failure deep inside) once
    ``|value| > sqrt(finfo.max) * 1e-4``, about 1.8e15 in float32 (1.3e150 in float64). Data that large
    is almost surely in the wrong units; the error says to rescale it.

    Args:
        tensor: finite values (validate with :func:`as_trials` first).
        name: the argument's name, used in the error message.
        dtype: the float dtype of the arithmetic (default: ``tensor``'s, if floating, else torch's default).
    """
    dtype = dtype or (tensor.dtype if tensor.dtype.is_floating_point else torch.get_default_dtype())
    limit = float(np.sqrt(torch.finfo(dtype).max)) * MAGNITUDE_HEADROOM
    largest = float(tensor.detach().abs().max()) if tensor.numel() else 0.0
    if largest > limit:
        raise ValueError(
            f"{name} has values up to {largest:.3g} in magnitude, beyond {limit:.3g}, where their squares and "
            f"covariances overflow {dtype}: rescale {name} (e.g. z-score each channel)"
        )
    return tensor


def check_choice(value: Any, name: str, options: tuple) -> str:
    """``value`` if it is one of ``options``, else a ValueError naming ``name`` and the options."""
    if value not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")
    return value


def check_flag(value: Any, name: str) -> bool:
    """``value`` if it is a bool, else a ValueError naming ``name``."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def check_sequence(value: Any, name: str) -> list:
    """``value`` as a list, if it is a sequence other than a string, else a TypeError naming ``name``."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a sequence of integers (list or tuple), got {value!r}")
    return list(value)


def check_open_unit_interval(value: Any, name: str) -> float:
    """``value`` as a float in (0, 1), else a ValueError (TypeError for a non-number) naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in (0, 1), got {value!r}")
    if not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value}")
    return float(value)
