r"""Transition logits of a K-state switch: ``trans_logits[..., i, j]`` = unnormalized log p(z_t = j | z_{t-1} = i).

All modules share one call signature, ``forward(h_prev (..., P), u (..., M) or None) -> (..., K, K)``
(or ``(K, K)`` when the transitions do not depend on either), so a model evaluates them along a whole
path at once with ``h_prev = h[..., :-1, :]`` and ``u = u[..., 1:, :]`` and in a sampling loop one step
at a time. Logits are never squashed (no tanh): a state can be as sticky as the data say.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

TRANSITION_KINDS = ("recurrent", "stationary", "sticky", "input")


class StationaryTransitions(nn.Module):
    """A learned (K, K) logit matrix; ``stickiness`` > 0 starts it with that bias on the diagonal."""

    def __init__(self, num_states: int, stickiness: float = 0.0):
        super().__init__()
        self.logits = nn.Parameter(stickiness * torch.eye(num_states))

    def forward(self, h_prev: Optional[Tensor] = None, u: Optional[Tensor] = None) -> Tensor:
        """The logits ``(K, K)`` (``h_prev``, ``u`` ignored)."""
        return self.logits


class _LinearLogits(nn.Module):
    """``base + reshape(W x, (K, K))``: logits linear in a driving signal x of dim ``in_dim``."""

    def __init__(self, num_states: int, in_dim: int, stickiness: float = 0.0):
        super().__init__()
        self.num_states = num_states
        self.base = nn.Parameter(stickiness * torch.eye(num_states))
        self.weight = nn.Parameter(0.1 * torch.randn(num_states * num_states, in_dim))

    def logits_from(self, x: Tensor) -> Tensor:
        return self.base + (x @ self.weight.T).unflatten(-1, (self.num_states, self.num_states))


class RecurrentTransitions(_LinearLogits):
    """rSLDS-style: logits depend on the previous continuous state, ``base + R h_{t-1}`` (per previous z)."""

    def forward(self, h_prev: Tensor, u: Optional[Tensor] = None) -> Tensor:
        """Logits from ``h_prev (..., P)`` (``u`` ignored): ``(..., K, K)``."""
        return self.logits_from(h_prev)


class InputTransitions(_LinearLogits):
    """Input-driven: logits depend on the external input at the new step, ``base + R u_t``."""

    def forward(self, h_prev: Optional[Tensor], u: Optional[Tensor]) -> Tensor:
        """Logits from ``u (..., M)`` (``h_prev`` ignored): ``(..., K, K)``."""
        if u is None:
            raise ValueError("input-driven transitions need inputs u, got None")
        return self.logits_from(u)


def make_transitions(kind: str, num_states: int, latent_dim: int, input_dim: int = 0, stickiness: float = 0.0) -> nn.Module:
    """Build transitions by name: ``"recurrent"``, ``"stationary"``, ``"sticky"`` (stationary with a
    diagonal bias of ``stickiness`` or 3.0 by default), or ``"input"``."""
    if kind == "recurrent":
        return RecurrentTransitions(num_states, latent_dim, stickiness)
    if kind == "stationary":
        return StationaryTransitions(num_states, stickiness)
    if kind == "sticky":
        return StationaryTransitions(num_states, stickiness or 3.0)
    if kind == "input":
        if input_dim < 1:
            raise ValueError("transitions='input' needs input_dim >= 1")
        return InputTransitions(num_states, input_dim, stickiness)
    raise ValueError(f"transitions must be one of {TRANSITION_KINDS}, got {kind!r}")
