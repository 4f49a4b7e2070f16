"""The inputs of ``SRNN.forecast``: its prefixes and the inputs of the forecast, checked and split.

``forecast_inputs`` turns the prefixes (an array ``(trials, t, channels)`` or a Recording of ragged
prefixes) and the inputs ``u`` covering prefix and forecast into what the filter and the simulation read.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch

from ..data.recording import Recording
from ..data.validation import as_trials

if TYPE_CHECKING:
    from .srnn import SRNN

__all__ = ["forecast_inputs"]


def forecast_inputs(srnn: "SRNN", y_prefix: Any, steps: int, u: Any) -> tuple:
    """``(y, u_prefix, mask, lengths, u_future)`` of ``srnn.forecast(y_prefix, steps, u=u)``: the prefixes ``y (B, T, D)``
    and their inputs ``u_prefix (B, T, M)`` or None, checked and converted as :meth:`SRNN.validate` does, ``mask`` and
    ``lengths`` (None for an array of prefixes) and the inputs of each trial's forecast ``u_future (B, steps, M)`` or
    None. Arrays: ``u`` ``(B, t + steps, M)`` (or longer); a Recording: see :func:`_ragged_prefix_inputs`."""
    if isinstance(y_prefix, Recording):
        return _ragged_prefix_inputs(srnn, y_prefix, steps, u)
    y = as_trials(y_prefix, "y_prefix", counts=srnn.config.observation == "poisson", min_steps=1)
    prefix_length = y.shape[1]
    u_all = None if u is None else as_trials(u, "u", min_steps=prefix_length + steps, dtype=srnn.dtype, device=srnn.device)
    y, u_prefix = srnn.validate(y, None if u_all is None else u_all[:, :prefix_length], name="y_prefix", min_steps=1)
    return y, u_prefix, None, None, None if u_all is None else u_all[:, prefix_length : prefix_length + steps]


def _ragged_prefix_inputs(srnn: "SRNN", recording: Recording, steps: int, u: Any) -> tuple:
    """``(y, u_prefix, mask, lengths, u_future)`` of :meth:`SRNN.forecast` for a Recording of prefixes: ``y (B, T, D)`` cut
    to the longest prefix T, ``u_prefix (B, T, M)`` or None, ``mask``/``lengths`` as :meth:`SRNN.recording_arrays` gives
    them, and the inputs of each trial's forecast ``u_future[b, j] = u[b, lengths[b] + j]``, ``(B, steps, M)``."""
    if u is not None and recording.u is not None:
        raise ValueError("u: the Recording carries its own inputs (Recording.u); pass u=None, or a Recording without inputs")
    inputs = recording.u if u is None else u
    recording = replace(recording[:], u=None)  # cut to its longest trial; the inputs are read from `inputs`
    num_trials, prefix_length = recording.y.shape[:2]
    if inputs is None:
        return (*srnn.recording_arrays(recording, min_steps=1), None)
    inputs = as_trials(inputs, "u", min_steps=1, dtype=srnn.dtype, device=srnn.device)
    needed = recording.lengths.to(inputs.device) + steps
    if inputs.shape[0] != num_trials or bool((needed > inputs.shape[1]).any()):
        longest = int(torch.argmax(needed))
        raise ValueError(
            f"u must cover each trial's prefix and forecast, lengths + steps: ({num_trials}, >= {int(needed[longest])}, M) "
            f"(trial {longest}: {int(needed[longest]) - steps} + {steps} steps), got {tuple(inputs.shape)}"
        )
    y, u_prefix, mask, lengths = srnn.recording_arrays(replace(recording, u=inputs[:, :prefix_length]), min_steps=1)
    future = (needed - steps).unsqueeze(-1) + torch.arange(steps, device=inputs.device)  # (B, steps)
    return y, u_prefix, mask, lengths, inputs.gather(1, future.unsqueeze(-1).expand(-1, -1, inputs.shape[-1]))
