"""Switching linear dynamical systems (SLDS) and their recurrent variant (rSLDS), from the same parts.

These show how a variant is written: choose the parts, hand them to
:class:`~pyro_neurodyn.models.switching_ssm.SwitchingStateSpaceModel`; its model/guide do the rest.
"""

from __future__ import annotations

from typing import Optional

from torch import nn

from ..dynamics import RNNBank, RecurrentTransitions, StationaryTransitions, make_emission
from ..guides.encoders import RecurrentEncoder
from .module_names import unique_module_name
from .switching_ssm import SwitchingStateSpaceModel


class SLDS(SwitchingStateSpaceModel):
    r"""``h_t = A_k h_{t-1} + b_k + N(0, sigma_h^2 I)`` with z Markov (stationary K x K transitions),
    ``y_t ~ N(C h_t + d, diag sigma_y^2)`` (or Poisson counts with ``observation="poisson"``)."""

    def __init__(
        self,
        num_states: int,
        latent_dim: int,
        obs_dim: int,
        *,
        observation: str = "gaussian",
        transitions: Optional[nn.Module] = None,
        latent_scale: Optional[float] = None,
        encoder_hidden: int = 64,
    ):
        super().__init__(
            dynamics=RNNBank(num_states, latent_dim, nonlinearity="identity"),
            transitions=transitions if transitions is not None else StationaryTransitions(num_states),
            emission=make_emission(observation, latent_dim, obs_dim),
            encoder=RecurrentEncoder(obs_dim, latent_dim, hidden_dim=encoder_hidden),
            latent_scale=latent_scale,
            name=unique_module_name(type(self).__name__.lower()),
        )


class RSLDS(SLDS):
    r"""Recurrent SLDS (Linderman et al. 2017): as :class:`SLDS`, but the switch depends on where the
    latent is, ``p(z_t | z_{t-1}, h_{t-1}) = softmax(R h_{t-1} + r)[z_{t-1}]``."""

    def __init__(self, num_states: int, latent_dim: int, obs_dim: int, **kwargs):
        super().__init__(num_states, latent_dim, obs_dim, transitions=RecurrentTransitions(num_states, latent_dim), **kwargs)
