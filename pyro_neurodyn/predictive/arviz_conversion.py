"""``to_arviz``: posterior predictive draws as an ArviZ ``DataTree`` (``arviz_base.from_dict``).

Groups, with dims named for neural recordings (draws are independent, one chain):

    posterior             latents          (chain, draw, trial, time, latent)
                          states           (chain, draw, trial, time)          switching models
                          state_occupancy  (chain, draw, trial, state)         fraction of time in each state
    posterior_predictive  y                (chain, draw, trial, time, channel)
    log_likelihood        y                (chain, draw, trial)               per trial (LOO over trials)
    observed_data         y                (trial, time, channel)

``arviz_stats.loo(tree)`` then leaves out one trial at a time, and ``ess``/``summary`` run on the posterior.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch
from xarray import DataTree

from ..data.recording import Recording
from ..data.validation import as_trials
from .posterior_predictive import PosteriorPredictive

__all__ = ["to_arviz"]


def _draws(x: torch.Tensor) -> np.ndarray:
    """``(S, ...)`` -> numpy ``(1, S, ...)``: one chain of S independent draws."""
    return x.detach().cpu().numpy()[None]


def _coordinate(values: Optional[Sequence], size: int, name: str) -> np.ndarray:
    if values is None:
        return np.arange(size)
    values = np.asarray(values)
    if values.shape != (size,):
        raise ValueError(f"{name} must have {size} entries, got shape {values.shape}")
    return values


def to_arviz(
    result: PosteriorPredictive,
    y: Any,
    *,
    time: Optional[Sequence] = None,
    channel_names: Optional[Sequence] = None,
    trial_names: Optional[Sequence] = None,
) -> DataTree:
    """Convert :func:`~pyro_neurodyn.predictive.posterior_predictive` draws and the recordings ``y``
    ``(trials, T, D)`` (or the Recording) they were drawn for into a ``DataTree`` (groups and dims in the module
    docstring; a Recording's unobserved entries and padding are NaN in ``observed_data``).

    Args:
        time, channel_names, trial_names: coordinates of the time, channel and trial dims (default 0..n-1),
            e.g. times in seconds and electrode names.
    """
    if not isinstance(result, PosteriorPredictive):
        raise TypeError(f"result must be a PosteriorPredictive (from posterior_predictive), got {type(result).__name__}")
    missing = None
    if isinstance(y, Recording):  # its unobserved entries and padding become NaN in observed_data
        y, missing = y.y, ~y.mask
    y = as_trials(y, "y", min_steps=1, dtype=result.y_rep.dtype)  # observed data in the draws' dtype
    if missing is not None:
        y = torch.where(missing.to(y.device), torch.full((), float("nan"), dtype=y.dtype), y)
    if tuple(y.shape) != tuple(result.y_rep.shape[1:]):
        raise ValueError(f"y has shape {tuple(y.shape)} but the draws were made for recordings of shape {tuple(result.y_rep.shape[1:])}")
    num_trials, num_steps, num_channels = y.shape
    coords = {
        "trial": _coordinate(trial_names, num_trials, "trial_names"),
        "time": _coordinate(time, num_steps, "time"),
        "channel": _coordinate(channel_names, num_channels, "channel_names"),
        "latent": np.arange(result.latents.shape[-1]),
    }
    posterior = {"latents": _draws(result.latents)}
    dims = {"latents": ["trial", "time", "latent"], "y": ["trial", "time", "channel"]}
    if result.states is not None:
        num_states = result.num_states
        counted = (result.states >= 0).unsqueeze(-1)  # padding (-1) is not a state
        visits = torch.nn.functional.one_hot(result.states.clamp_min(0), num_states).double() * counted
        occupancy = visits.sum(-2) / counted.sum(-2).clamp_min(1)  # (S, B, K)
        posterior.update(states=_draws(result.states), state_occupancy=_draws(occupancy))
        dims.update(states=["trial", "time"], state_occupancy=["trial", "state"])
        coords["state"] = np.arange(num_states)
    data = {
        "posterior": posterior,
        "posterior_predictive": {"y": _draws(result.y_rep)},
        "log_likelihood": {"y": _draws(result.log_likelihood.double())},  # float64: PSIS of values ~ -1e3
        "observed_data": {"y": y.cpu().numpy()},
    }
    # dims["y"] names the leading dims of every group's "y": (trial,) for the log-likelihood
    return _from_dict(data, coords, dims)


def _from_dict(data: dict, coords: dict, dims: dict) -> DataTree:
    from arviz_base import from_dict

    return from_dict(data, coords=coords, dims=dims)
