"""The parts of a ``LowRankRNN`` built from its config, and the inputs its units see.

``build_model(config)`` assembles :class:`~pyro_neurodyn.models.LowRankRNNModel` (transition, readout,
Sigma_x, Sigma_1) and ``build_guide(config, model)`` the proposal; ``unit_inputs`` gives the inputs
``v_t`` the units receive (low-pass filtered ``v_t = a v_{t-1} + (1 - a) u_{t-1}``, or raw ``u_t``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..dynamics.lowrank import Covariance, LowRankTransition
from ..dynamics.readouts import AffineReadoutMap, LowRankGaussianReadout, LowRankPoissonReadout, OneToOneReadoutMap
from ..guides.proposals import BootstrapProposal, EncoderProposal, OptimalProposal
from ..models.lowrank_rnn import LowRankRNNModel
from .configs import LowRankRNNConfig

__all__ = ["build_guide", "build_model", "unit_inputs"]


def build_model(config: LowRankRNNConfig) -> LowRankRNNModel:
    """The model of a validated ``LowRankRNN`` config (parameters drawn from torch's global RNG)."""
    rank, num_units, obs_dim = config.rank, config.num_units, config.obs_dim
    transition = LowRankTransition(
        rank, num_units, config.input_dim, config.activation, config.decay, config.train_decay
    )
    gaussian = config.observation == "gaussian"
    train = config.train_readout
    if config.readout == "affine":
        train = True if train is None else train
        readout_map = AffineReadoutMap(rank, obs_dim, train_weight=train, train_bias=train)
        source = "latent"
    else:
        train = (not gaussian) if train is None else train
        readout_map = OneToOneReadoutMap(obs_dim, train_gain=train, train_bias=train)
        source = "units"
    if gaussian:
        readout = LowRankGaussianReadout(readout_map, obs_dim, source, config.obs_noise_scale)
    else:
        readout = LowRankPoissonReadout(readout_map, source)
    noise = Covariance(rank, config.noise, config.noise_scale)
    initial_noise = Covariance(rank, config.initial_noise, config.initial_noise_scale)
    return LowRankRNNModel(transition, readout, noise, initial_noise, filter_inputs=config.filter_inputs)


def build_guide(config: LowRankRNNConfig, model: LowRankRNNModel):
    """The proposal named by ``config.proposal`` (optimal, bootstrap or encoder) for ``model``."""
    if config.proposal == "optimal":
        return OptimalProposal(model)
    if config.proposal == "bootstrap":
        return BootstrapProposal()
    return EncoderProposal(model, config.obs_dim, kernel_sizes=config.encoder_kernel_sizes, channels=config.encoder_channels)


def unit_inputs(transition: LowRankTransition, u: Tensor, filter_inputs: bool) -> Tensor:
    """The inputs ``v_t`` the units see, ``(B, T, Du)``: ``u`` itself, or low-pass filtered from ``v_0 = 0``."""
    if not filter_inputs:
        return u
    v = torch.zeros_like(u[:, 0])
    seen = [v]
    for t in range(1, u.shape[1]):
        v = transition.filter_input(v, u[:, t - 1])
        seen.append(v)
    return torch.stack(seen, 1)
