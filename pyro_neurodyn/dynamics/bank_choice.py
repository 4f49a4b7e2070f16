"""The SRNN's per-state maps by name: ``"rnn"`` (the paper's ``tanh(W_k h + U_k u + b_k)``) or ``"mlp"``
(residual one-hidden-layer maps ``h + B_k tanh(A_k h + G_k u + a_k) + b_k``)."""

from __future__ import annotations

from torch import nn

from .residual_mlp_bank import ResidualMLPBank
from .rnn_bank import RNNBank

DYNAMICS_KINDS = ("rnn", "mlp")


def make_dynamics(kind: str, num_states: int, latent_dim: int, input_dim: int = 0, hidden_dim: int = 32) -> nn.Module:
    """A bank of K maps ``(..., P), (..., M) -> (..., K, P)`` of the named kind (``hidden_dim``: H of ``"mlp"``)."""
    if kind == "rnn":
        return RNNBank(num_states, latent_dim, input_dim, nonlinearity="tanh")
    if kind == "mlp":
        return ResidualMLPBank(num_states, latent_dim, input_dim, hidden_dim)
    raise ValueError(f"dynamics must be one of {DYNAMICS_KINDS}, got {kind!r}")
