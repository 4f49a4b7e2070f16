"""The switching recurrent neural network (SRNN; Zhang & Saxena, NeurIPS 2024) as a Pyro program."""

from __future__ import annotations

from typing import Optional

from ..dynamics import make_dynamics, make_emission, make_transitions
from ..guides.encoders import RecurrentEncoder
from .module_names import unique_module_name
from .switching_ssm import SwitchingStateSpaceModel


class SRNNModel(SwitchingStateSpaceModel):
    r"""K tanh RNNs ``h_t = tanh(W_k h_{t-1} + U_k u_t + b_k) + noise`` switched by a Markov chain.

    A :class:`SwitchingStateSpaceModel` whose dynamics are an :class:`~pyro_neurodyn.dynamics.RNNBank`
    (the model, the ELBO and why it is exact: :mod:`pyro_neurodyn.models.switching_ssm`).

    Args:
        num_states: K. latent_dim: P. obs_dim: D. input_dim: M.
        transitions: ``"recurrent"`` (logits from h_{t-1}, default), ``"stationary"``, ``"sticky"``, ``"input"``.
        emission: ``"linear"`` or ``"mlp"``. observation: ``"gaussian"`` or ``"poisson"`` (``link``:
            ``"softplus"`` or ``"exp"``).
        latent_scale: fixed sigma_h, or None to learn it.
        encoder_hidden: width of the amortized (LSTM) encoder, per direction.
        stickiness: initial bias of the self-transition logits.
        dynamics: ``"rnn"`` (the paper's ``tanh(W_k h + U_k u + b_k)``) or ``"mlp"`` (residual maps
            ``h + B_k tanh(A_k h + G_k u + a_k) + b_k``, :class:`~pyro_neurodyn.dynamics.ResidualMLPBank`).
        dynamics_hidden: H of the ``"mlp"`` maps.
    """

    def __init__(
        self,
        num_states: int,
        latent_dim: int,
        obs_dim: int,
        *,
        input_dim: int = 0,
        transitions: str = "recurrent",
        emission: str = "linear",
        observation: str = "gaussian",
        link: str = "softplus",
        latent_scale: Optional[float] = None,
        encoder_hidden: int = 32,
        stickiness: float = 0.0,
        dynamics: str = "rnn",
        dynamics_hidden: int = 32,
    ):
        super().__init__(
            dynamics=make_dynamics(dynamics, num_states, latent_dim, input_dim, dynamics_hidden),
            transitions=make_transitions(transitions, num_states, latent_dim, input_dim, stickiness),
            emission=make_emission(observation, latent_dim, obs_dim, mapping=emission, link=link),
            encoder=RecurrentEncoder(obs_dim, latent_dim, input_dim, hidden_dim=encoder_hidden),
            filter_encoder=RecurrentEncoder(obs_dim, latent_dim, input_dim, hidden_dim=encoder_hidden, causal=True),
            latent_scale=latent_scale,
            name=unique_module_name("srnn"),
        )
