"""K low-rank RNN latent maps over one shared latent, evaluated together: the dynamics of a switching
low-rank RNN.

State k is a rank-R network of N units with its own connectivity and thresholds b_k (``threshold[k]``),

    f_k(x, u) = a x + V_k phi(U_k x + W_k u, b_k),     x (..., R),  U_k (N, R),  V_k (R, N),  b_k (N,),

with phi one of :data:`~pyro_neurodyn.dynamics.lowrank.ACTIVATIONS` and one decay ``a = 1 - dt/tau``
shared by all states (the units' time constant is a property of the cells, not of the regime). The bank
has the interface of :class:`~pyro_neurodyn.dynamics.RNNBank`: ``forward(x (..., R), u (..., M) or None)
-> (..., K, R)``, one batched op for all K maps, so a switching model can score every state at one
concrete latent (see :mod:`pyro_neurodyn.models.switching_ssm`).
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from .legacy_keys import LegacyThresholdKey
from .lowrank import ACTIVATIONS, LatentMap
from .state_maps import StateMaps

__all__ = ["LowRankBank"]


class LowRankBank(StateMaps, LegacyThresholdKey):
    """K low-rank maps ``f_k(x, u) = a x + V_k phi(U_k x + W_k u, b_k)`` (see the module docstring).

    Args:
        num_states: K. rank: R (the latent dim, ``latent_dim`` as in :class:`RNNBank`). num_units: N per state.
        input_dim: M (0 for autonomous dynamics); inputs enter raw, ``W_k`` ``(N, M)``.
        activation: one of :data:`ACTIVATIONS`. decay: initial shared ``a`` in (0, 1), stored as a logit.

    Initialization per state as :class:`~pyro_neurodyn.dynamics.LowRankTransition` (Pals et al.):
    ``V_k ~ U(-1/sqrt(N), 1/sqrt(N))``, ``U_k, W_k ~ U(-1/sqrt(R), 1/sqrt(R))``, ``threshold[k] = 0`` (uniform in
    ``(-1/sqrt(N), 1/sqrt(N))`` for clipped_relu); the states differ by their random draws.
    """

    def __init__(self, num_states: int, rank: int, num_units: int, input_dim: int = 0, activation: str = "relu", decay: float = 0.9):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.num_states, self.latent_dim, self.rank, self.num_units = num_states, rank, rank, num_units
        self.input_dim, self.activation = input_dim, activation
        self._phi = ACTIVATIONS[activation]
        self.decay_logit = nn.Parameter(torch.tensor(math.log(decay / (1.0 - decay))))
        self.U = nn.Parameter(_uniform((num_states, num_units, rank), 1.0 / math.sqrt(rank)))
        self.V = nn.Parameter(_uniform((num_states, rank, num_units), 1.0 / math.sqrt(num_units)))
        bound = 1.0 / math.sqrt(num_units)
        threshold = _uniform((num_states, num_units), bound) if activation == "clipped_relu" else torch.zeros(num_states, num_units)
        self.threshold = nn.Parameter(threshold)
        self.W_u = nn.Parameter(_uniform((num_states, num_units, input_dim), 1.0 / math.sqrt(rank))) if input_dim else None

    @property
    def a(self) -> Tensor:
        """The shared decay ``a = 1 - dt/tau`` (scalar tensor)."""
        return torch.sigmoid(self.decay_logit)

    def currents(self, x: Tensor, u: Optional[Tensor] = None) -> Tensor:
        """Every state's unit currents ``U_k x + W_k u`` ``(..., K, N)``."""
        currents = torch.einsum("knr,...r->...kn", self.U, x)
        if self.input_dim:
            if u is None:
                raise ValueError(f"this bank takes inputs of dim {self.input_dim}, but u is None")
            currents = currents + torch.einsum("knm,...m->...kn", self.W_u, u)
        return currents

    def forward(self, x: Tensor, u: Optional[Tensor] = None) -> Tensor:
        """All K means ``f_k(x, u)`` ``(..., K, R)`` for latents ``x`` ``(..., R)``."""
        rates = self._phi(self.currents(x, u), self.threshold)  # (..., K, N)
        return self.a * x.unsqueeze(-2) + torch.einsum("krn,...kn->...kr", self.V, rates)

    def state_map(self, state: int) -> Callable[[Tensor], Tensor]:
        """The k-th map alone, ``x (..., R) -> (..., R)`` (autonomous, zero input), e.g. for flow fields."""
        self._check_state(state)
        return super().state_map(state)

    def latent_map(self, state: int) -> LatentMap:
        """``(a, V_k, U_k, threshold[k], activation)`` of state k, detached (the arguments of the fixed-point finder)."""
        self._check_state(state)
        return LatentMap(self.a.detach(), self.V[state].detach(), self.U[state].detach(), self.threshold[state].detach(), self.activation)

    def _check_state(self, state: int) -> None:
        if not isinstance(state, int) or not 0 <= state < self.num_states:
            raise ValueError(f"state must be an int in [0, {self.num_states}), got {state!r}")


def _uniform(shape: tuple, bound: float) -> Tensor:
    return (2.0 * torch.rand(shape) - 1.0) * bound
