r"""K per-state residual MLP maps: switching dynamics that can represent a smooth flow such as Lorenz's.

``f_k(h, u) = h + B_k tanh(A_k h + G_k u + a_k) + b_k``, hidden width H: one Euler-like step of a vector
field written as a one-hidden-layer network. The SRNN's own map ``tanh(W_k h + b_k)`` (:class:`~.RNNBank`)
with P = 3 cannot follow the Lorenz flow: fit by least squares on the true latents with the true lobe
states it forecasts 10 steps ahead no better than a Gaussian HMM (MSE 0.36 against 0.31 on
``switching_lorenz`` seed 0), where one residual map of width 64 reaches 5e-4. README, "Which model do I
need?", has the fitted numbers.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from .state_maps import StateMaps


class ResidualMLPBank(StateMaps, nn.Module):
    """K maps ``f_k(h, u) = h + B_k tanh(A_k h + G_k u + a_k) + b_k``, all evaluated in one batched op.

    Args:
        num_states: K. latent_dim: P. input_dim: M (0 for autonomous dynamics). hidden_dim: H.

    Starts near the identity (``B_k`` small), so each state begins as a slow drift. Shapes:
    ``forward(h (..., P), u (..., M) or None) -> (..., K, P)``; the interface of :class:`~.RNNBank`.
    """

    def __init__(self, num_states: int, latent_dim: int, input_dim: int = 0, hidden_dim: int = 32):
        super().__init__()
        self.num_states, self.latent_dim, self.input_dim, self.hidden_dim = num_states, latent_dim, input_dim, hidden_dim
        self.in_weight = nn.Parameter(torch.randn(num_states, hidden_dim, latent_dim) / math.sqrt(latent_dim))  # A_k
        self.input_weight = nn.Parameter(torch.randn(num_states, hidden_dim, input_dim) / math.sqrt(max(input_dim, 1)))  # G_k
        self.in_bias = nn.Parameter(0.1 * torch.randn(num_states, hidden_dim))  # a_k
        self.out_weight = nn.Parameter(0.01 * torch.randn(num_states, latent_dim, hidden_dim))  # B_k
        self.out_bias = nn.Parameter(torch.zeros(num_states, latent_dim))  # b_k

    def forward(self, h: Tensor, u: Optional[Tensor] = None) -> Tensor:
        """All K next states ``f_k(h, u)``: ``h (..., P)``, ``u (..., M)`` or None -> ``(..., K, P)``."""
        pre = torch.einsum("khp,...p->...kh", self.in_weight, h) + self.in_bias
        if self.input_dim:
            if u is None:
                raise ValueError(f"this dynamics bank takes inputs of dim {self.input_dim}, but u is None")
            pre = pre + torch.einsum("khm,...m->...kh", self.input_weight, u)
        return h.unsqueeze(-2) + torch.einsum("kph,...kh->...kp", self.out_weight, torch.tanh(pre)) + self.out_bias
