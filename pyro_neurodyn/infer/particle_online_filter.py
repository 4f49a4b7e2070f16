r"""Online particle filtering: one propose-weigh-resample step of :class:`~pyro_neurodyn.infer.VSMC_ELBO` per observation.

    f = rnn.online(num_particles=64, seed=0)       # LowRankRNN / SwitchingLowRankRNN
    for y_t in stream:
        belief = f.update(y_t)                     # LowRankRNN: E[x_t | y_{<=t}] (R,); switching: p(z_t | y_{<=t}) (K,)

Update ``t`` runs exactly what the offline filter (``VSMC_ELBO.filter``, which ``rnn.filter`` calls) runs at
step ``t``: first the resampling that follows step ``t - 1`` (:meth:`VSMC_ELBO.resample`), then the step
itself (:meth:`VSMC_ELBO.particle_step`: the guide proposes ``x_t^s``, the model weighs it,
``W_t^s ∝ W_{t-1}^s w_t^s``). The random draws therefore come in the offline order, and with the same seed
the beliefs equal the offline filter's record (the tests check it).

The model and the guide index the recordings by time (``y[:, t]``, the filtered inputs ``u[:, t - 1]``, a
causal encoder's window). The filter keeps the last ``L`` steps of ``y`` (and ``u``) in a buffer and calls
them with the local index ``t' = len(buffer) - 1``:
``L = max(2, guide.data_window)`` (``data_window``: how many recent steps of ``y`` the proposal reads, 1 by
default; the causal CNN encoder's receptive field), so the buffer is the whole prefix until it is full and
the last ``L`` steps after, which is all a step reads. A proposal that keeps an output computed from ``y`` in
its pass constants (``guide.constants_read_data``, the encoder) has that entry recomputed each update; the
other pass constants (covariance factors, Kalman gains) depend on the parameters only and are computed once
per :meth:`~pyro_neurodyn.infer.OnlineFilter.reset` (refit the model, then reset or make a new filter).

Memory: the particles (``state`` items, ``(S, B, ...)``), their log weights ``(S, B)``, and the ``L``-step
buffers, whatever the number of updates.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable, Optional

import pyro
import torch
from torch import Tensor

from .local_params import pyro_modules
from .online_filter import OnlineFilter
from .particle_state import ParticleState
from .vsmc import VSMC_ELBO, _protocol_methods

__all__ = ["ParticleOnlineFilter", "BeliefFunction"]

BeliefFunction = Callable[[dict, Tensor], Tensor]
"""``belief(state, log_weights)``: the particles' ``state`` items ``(S, B, ...)`` and normalized ``log W_t``
``(S, B)`` -> the belief ``(B, K)`` that :meth:`ParticleOnlineFilter.update` returns."""


def filtered_mean(key: str) -> BeliefFunction:
    """The belief ``sum_s W_t^s state[key]^s`` ``(B, R)``: the filtered mean ``E[x_t | y_{<=t}]`` of ``key = "x"``."""

    def belief(state: dict, log_weights: Tensor) -> Tensor:
        return (log_weights.exp().unsqueeze(-1) * state[key]).sum(0)

    return belief


def filtered_state_probabilities(state: dict, log_weights: Tensor) -> Tensor:
    """The belief ``p(z_t = k | y_{<=t}) = sum_s W_t^s alpha_t^s(k)`` ``(B, K)`` from each particle's exact filter over
    the discrete states, ``state["log_alpha"]`` ``(S, B, K)``."""
    return (log_weights.exp().unsqueeze(-1) * state["log_alpha"].exp()).sum(0)


class ParticleOnlineFilter(OnlineFilter):
    """A particle filter stepped one observation at a time (see the module docstring).

    Args:
        model, guide: the sequential pair in the ``init``/``step`` protocol (as for :class:`VSMC_ELBO`), called as
            ``init(state, y, u)`` / ``step(state, t, y, u)`` with ``y (B, L', D)``, ``u (B, L', M)`` or None.
        belief: ``belief(state, log_weights) -> (B, K)`` (:func:`filtered_mean`, :func:`filtered_state_probabilities`).
        obs_dim: D. input_dim: M (0: the model takes no inputs). num_states: K, the size of the belief.
        num_particles: S. seed: None draws from torch's global RNG (as the offline filter does); an integer gives the
            filter its own random stream, started at ``torch.manual_seed(seed)`` at every reset (the stream of
            ``rnn.filter(..., seed=seed)``), leaving the global RNG untouched.
        resampling, ess_threshold: see :class:`VSMC_ELBO`. dtype, device: the model's. counts: Poisson observations.

    :attr:`log_weights` ``(S, B)`` and :attr:`particles` (the state items) are the current particle system.
    """

    def __init__(
        self,
        model: Any,
        guide: Any,
        belief: BeliefFunction,
        *,
        obs_dim: int,
        input_dim: int,
        num_states: int,
        num_particles: int,
        seed: Optional[int] = None,
        resampling: str = "systematic",
        ess_threshold: Optional[float] = None,
        dtype: torch.dtype,
        device: Any = None,
        counts: bool = False,
    ):
        self.elbo = VSMC_ELBO(num_particles, resampling=resampling, ess_threshold=ess_threshold)
        self.model, self.guide, self.belief = model, guide, belief
        self._functions = tuple(zip(_protocol_methods(model, "model"), _protocol_methods(guide, "guide")))  # ((m_init, g_init), (m_step, g_step))
        window = getattr(guide, "data_window", 1)
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"guide: data_window must be a positive integer (the steps of y a proposal reads), got {window!r}")
        self.window = max(2, window)
        self._refresh_constants = bool(getattr(guide, "constants_read_data", False))
        self.seed = seed
        self._plate = self.elbo.particle_plate()
        super().__init__(obs_dim, input_dim, num_states, dtype=dtype, device=device, counts=counts, modules=pyro_modules(model, guide))

    def _reset_state(self) -> None:
        self._state = ParticleState()
        self.log_weights: Optional[Tensor] = None  # log W_{t-1} (S, B), before resampling
        self._y: Optional[Tensor] = None  # the last L steps, (B, L', D)
        self._u: Optional[Tensor] = None
        self._mask: Optional[Tensor] = None  # their mask (B, L', D), None while every entry of the window is observed
        if self.seed is not None:
            with torch.random.fork_rng(devices=self._rng_devices()):
                torch.manual_seed(self.seed)
                self._rng_state = self._get_rng_state()

    @property
    def particles(self) -> dict[str, Tensor]:
        """The particles of the last update by name, ``(S, B, ...)`` (before the resampling of the next update)."""
        return dict(self._state)

    def state_tensors(self) -> dict[str, Tensor]:
        if self.log_weights is None:
            return {}
        buffers = {"y_window": self._y, "u_window": self._u, "mask_window": self._mask}
        return {**self.particles, "log_weights": self.log_weights, **{name: x for name, x in buffers.items() if x is not None}}

    def _step(self, y: Tensor, u: Optional[Tensor], mask: Optional[Tensor]) -> Tensor:
        rng = torch.random.fork_rng(devices=self._rng_devices()) if self.seed is not None else nullcontext()
        with rng, pyro.validation_enabled(False):
            if self.seed is not None:
                self._set_rng_state(self._rng_state)
            belief = self._filter_step(y, u, mask)
            if self.seed is not None:
                self._rng_state = self._get_rng_state()
        return belief

    def _filter_step(self, y: Tensor, u: Optional[Tensor], mask: Optional[Tensor]) -> Tensor:
        """The model and proposal read ``(y, u)`` windows, and the mask window as a third argument while any entry of
        the window is missing (the low-rank models' ``mask``)."""
        first = self.log_weights is None
        if mask is not None and self._mask is None:
            self._mask = torch.ones_like(self._y, dtype=torch.bool) if self._y is not None else None
        self._y = _push(self._y, y, self.window)
        self._u = None if u is None else _push(self._u, u, self.window)
        if mask is not None or self._mask is not None:
            self._mask = _push(self._mask, torch.ones_like(y, dtype=torch.bool) if mask is None else mask, self.window)
            self._mask = None if bool(self._mask.all()) else self._mask
        state = self._state
        if not first:
            self.log_weights = self.elbo.resample(state, self.log_weights)
        if self._refresh_constants:
            state.constants.pop(self.guide, None)
        t = self._y.shape[1] - 1  # the local time index of y_t in the buffer (0 only at the first update)
        with getattr(self.model, "_pyro_context", nullcontext()):
            data = (self._y, self._u) if self._mask is None else (self._y, self._u, self._mask)
            self.log_weights, _, _ = self.elbo.particle_step(self._functions[0 if first else 1], state, t, data, {}, self.log_weights, self._plate)
        return self.belief(state, self.log_weights)

    def _rng_devices(self) -> list:
        return [self.device] if self.device.type == "cuda" else []

    def _get_rng_state(self) -> tuple:
        return (torch.get_rng_state(), torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None)

    def _set_rng_state(self, states: tuple) -> None:
        torch.set_rng_state(states[0])
        if states[1] is not None:
            torch.cuda.set_rng_state(states[1], self.device)


def _push(window: Optional[Tensor], value: Tensor, length: int) -> Tensor:
    """The buffer ``(B, L', C)`` with ``value (B, C)`` appended and only its last ``length`` steps kept."""
    value = value.unsqueeze(1)
    if window is None:
        return value
    return torch.cat([window[:, 1 - length :] if window.shape[1] >= length else window, value], 1)
