r"""The online-filter interface: a belief about the present updated one observation at a time, in O(1) memory.

    f = model.online()                 # an OnlineFilter
    for y_t in stream:                 # y_t (D,), or (B, D) for B streams at once
        p = f.update(y_t)              # (K,) or (B, K): p(z_t = k | y_{1:t})
    f.reset()                          # forget everything: the next update is a first step again

Every filter of the suite implements it: the SRNN's (a causal encoder stepped with its recurrent state
carried, then one step of the exact forward recursion over the K states,
:class:`~pyro_neurodyn.infer.switching_online_filter.SwitchingOnlineFilter`), and the low-rank models' particle
filter (one propagate-weight-resample step per update, its particles the carried state,
:class:`~pyro_neurodyn.infer.particle_online_filter.ParticleOnlineFilter`). What a subclass writes:

* :meth:`OnlineFilter._step`: ``y (B, D)``, ``u (B, M)`` or None, ``mask (B, D)`` bool or None -> the belief
  ``(B, K)`` at the new step, updating the subclass's carried state (its recurrent state, messages, particles: a
  fixed size, never a history over time);
* :meth:`OnlineFilter._reset_state`: back to before the first observation;
* :meth:`OnlineFilter.state_tensors`: the carried tensors by name (what the filter remembers; its size
  does not grow with the number of updates).

The base class validates every update before the subclass sees it (shape, batch size fixed by the first
update after a reset, infinite values, counts for count models, inputs present exactly when the model takes
them; a ``ValueError`` naming ``y_t`` or ``u_t`` otherwise), converts to the model's dtype and device,
reads NaN entries of ``y_t`` as missing (a ``mask`` with False there, the entry itself set to 0; None when every
entry is observed: the complete-data path, as the offline methods of a Recording without missing entries),
and runs the step without autograd and with Pyro's module-local parameters over the ``modules`` the
subclass names (:mod:`~pyro_neurodyn.infer.local_params`): like the estimators' methods, an update neither
reads nor writes Pyro's global param store. For a switching model the belief is ``p(z_t = k | y_{1:t}, u_{1:t})``;
a filter of a model without discrete states returns whatever its docstring says (e.g. a filtered mean).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn

from .local_params import module_local_params

__all__ = ["OnlineFilter"]


class OnlineFilter(ABC):
    """Base of the online filters (see the module docstring).

    Args:
        obs_dim: D, channels of ``y_t``. input_dim: M, channels of ``u_t`` (0: the model takes no inputs).
        num_states: K, the size of the belief :meth:`update` returns.
        dtype, device: what inputs are converted to (the model's).
        counts: ``y_t`` must hold non-negative integers (a Poisson model).
        modules: the modules the steps run (e.g. the model and the encoder or proposal); every update runs with
            their parameters module-local.

    Attributes:
        num_updates: updates since construction or the last :meth:`reset`.
    """

    def __init__(self, obs_dim: int, input_dim: int, num_states: int, *, dtype: torch.dtype, device: Any = None, counts: bool = False,
                 modules: Sequence[nn.Module] = ()):  # fmt: skip
        self.obs_dim, self.input_dim, self.num_states = obs_dim, input_dim, num_states
        self.modules = list(modules)
        self.dtype, self.device, self.counts = dtype, torch.device(device or "cpu"), counts
        self.reset()

    # ----- what a subclass implements -------------------------------------------------------------------
    @abstractmethod
    def _step(self, y: Tensor, u: Optional[Tensor], mask: Optional[Tensor]) -> Tensor:
        """One update: ``y (B, D)``, ``u (B, M)`` or None, ``mask (B, D)`` (True = observed; None: all observed), validated
        -> belief ``(B, K)``; updates the carried state. A missing entry must contribute nothing, as in the offline
        methods given a Recording with that entry missing."""

    @abstractmethod
    def _reset_state(self) -> None:
        """Forget the carried state: the next :meth:`_step` is a first step."""

    @abstractmethod
    def state_tensors(self) -> dict[str, Tensor]:
        """The carried state by name (empty before the first update): all the filter remembers of the past."""

    # ----- shared --------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Start again: the next :meth:`update` is the first step of a new recording (and may change its batch size)."""
        self.num_updates = 0
        self._batch_layout: Optional[tuple[bool, int]] = None  # (unbatched, B), fixed by the first update
        self._reset_state()

    @torch.no_grad()
    def update(self, y_t: Any, u_t: Any = None) -> Tensor:
        """Take the observation ``y_t`` (``(D,)`` or ``(B, D)`` for B streams) and the inputs ``u_t`` (``(M,)`` or
        ``(B, M)``; only if the model takes inputs) of the next step; return the belief at that step,
        ``(K,)`` or ``(B, K)`` (for a switching model ``p(z_t = k | y_{1:t}, u_{1:t})``). NaN entries of ``y_t`` are
        missing: they contribute nothing (a step with every channel missing moves the belief by the dynamics alone)."""
        y, mask, unbatched = self._observation(y_t)
        u = self._inputs(u_t, y.shape[0])
        with module_local_params(*self.modules):
            belief = self._step(y, u, mask)
        self.num_updates += 1
        return belief[0] if unbatched else belief

    def run(self, y: Any, u: Any = None) -> Tensor:
        """:meth:`update` with each step of ``y (T, D)`` (or ``(B, T, D)``) in turn, inputs ``u (T, M)`` (or
        ``(B, T, M)``), continuing from the current state: the beliefs ``(T, K)`` (or ``(B, T, K)``).
        A Python loop over time, for replaying a recording through the filter."""
        y = torch.as_tensor(y)
        if y.dim() not in (2, 3):
            raise ValueError(f"y must be (T, D) or (B, T, D), got shape {tuple(y.shape)}")
        u = None if u is None else torch.as_tensor(u)
        beliefs = [self.update(y[..., t, :], None if u is None else u[..., t, :]) for t in range(y.shape[-2])]
        return torch.stack(beliefs, -2)

    def _observation(self, y_t: Any) -> tuple[Tensor, Optional[Tensor], bool]:
        """``y_t`` checked and converted: ``(B, D)`` (missing entries 0), its mask ``(B, D)`` (None if complete) and
        whether it came unbatched."""
        y = _as_tensor(y_t, "y_t", self.dtype, self.device)
        if y.dim() not in (1, 2) or y.shape[-1] != self.obs_dim:
            raise ValueError(f"y_t must be (D,) or (B, D) with D = obs_dim = {self.obs_dim}, got shape {tuple(y.shape)}")
        unbatched = y.dim() == 1
        y = y.unsqueeze(0) if unbatched else y
        layout = (unbatched, y.shape[0])
        if self._batch_layout is None:
            if y.shape[0] == 0:
                raise ValueError("y_t has a batch of 0 streams")
            self._batch_layout = layout
        elif layout != self._batch_layout:
            raise ValueError(
                f"y_t has shape {tuple(y_t.shape) if hasattr(y_t, 'shape') else tuple(y.shape)}, but this filter was started on "
                f"{'single' if self._batch_layout[0] else f'batches of {self._batch_layout[1]}'} observations: keep the "
                "shape of the first update, or call reset() to start a new recording"
            )
        if bool(torch.isinf(y).any()):
            raise ValueError(f"y_t contains infinite values at update {self.num_updates} (NaN marks a missing entry)")
        observed = ~torch.isnan(y)
        y = torch.where(observed, y, y.new_zeros(()))
        if self.counts and not bool(((y >= 0) & (y == y.round())).all()):
            raise ValueError(f"y_t must hold non-negative integer counts for this model, got {y.tolist()}")
        return y, None if bool(observed.all()) else observed, unbatched

    def _inputs(self, u_t: Any, batch: int) -> Optional[Tensor]:
        """``u_t`` checked against the model and the batch: ``(B, M)`` or None."""
        if not self.input_dim:
            if u_t is not None:
                raise ValueError("u_t: this model takes no inputs (input_dim = 0); pass u_t=None")
            return None
        if u_t is None:
            raise ValueError(f"u_t: this model takes inputs of dim {self.input_dim}; pass u_t of shape ({self.input_dim},) or (B, {self.input_dim})")
        u = _as_tensor(u_t, "u_t", self.dtype, self.device)
        if u.dim() not in (1, 2) or u.shape[-1] != self.input_dim or (u.dim() == 2 and u.shape[0] != batch):
            raise ValueError(f"u_t must be ({self.input_dim},) or ({batch}, {self.input_dim}) like y_t, got shape {tuple(u.shape)}")
        if not bool(torch.isfinite(u).all()):
            raise ValueError(f"u_t contains NaN or infinite values at update {self.num_updates}")
        return u.expand(batch, self.input_dim)


def _as_tensor(value: Any, name: str, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``value`` as a real tensor of ``dtype`` on ``device`` (a TypeError naming ``name`` if it is not numeric)."""
    try:
        tensor = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"{name} must be a numeric array, got {type(value).__name__}: {error}") from error
    if not (tensor.dtype.is_floating_point or tensor.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool)):
        raise TypeError(f"{name} must hold real numbers, got dtype {tensor.dtype}")
    return tensor.to(device=device, dtype=dtype)
