"""The configurations of the estimators: what a model is built from, validated once, saved with it.

Each estimator's constructor arguments are exactly the fields of its config (``SRNN(...).config`` is an
:class:`SRNNConfig`, and so on); the checks run in ``__post_init__``, so a config is valid wherever it
comes from (a constructor, a run file, a checkpoint). ``dataclasses.asdict(config)`` is what a
checkpoint stores and ``Estimator(**that)`` rebuilds the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from ..data.validation import (
    check_choice,
    check_count,
    check_flag,
    check_open_unit_interval,
    check_positive,
    check_sequence,
)
from ..dynamics.bank_choice import DYNAMICS_KINDS
from ..dynamics.emissions import LINKS, MAPPINGS, OBSERVATIONS
from ..dynamics.lowrank import ACTIVATIONS, Covariance
from ..dynamics.transitions import TRANSITION_KINDS
from ..guides.proposals import SwitchingKalmanProposal

__all__ = ["LowRankRNNConfig", "SRNNConfig", "SwitchingLowRankRNNConfig", "config_arguments"]


def config_arguments(arguments: dict) -> dict:
    """An estimator constructor's ``locals()`` as config fields (every constructor argument is one)."""
    return {name: value for name, value in arguments.items() if name not in ("self", "__class__")}


def _optional(check, value, *args, **kwargs):
    return None if value is None else check(value, *args, **kwargs)


@dataclass
class SRNNConfig:
    """Configuration of an :class:`~pyro_neurodyn.SRNN` (see its Args). ``obs_dim`` may stay None until the first fit."""

    num_states: int = 2
    latent_dim: int = 3
    obs_dim: Optional[int] = None
    input_dim: int = 0
    observation: str = "gaussian"
    transitions: str = "recurrent"
    emission: str = "linear"
    link: str = "softplus"
    latent_scale: Optional[float] = None
    encoder_hidden: int = 32
    seed: Optional[int] = 0
    dynamics: str = "rnn"
    dynamics_hidden: int = 32

    def __post_init__(self):
        self.observation = check_choice(self.observation, "observation", OBSERVATIONS)
        self.dynamics = check_choice(self.dynamics, "dynamics", DYNAMICS_KINDS)
        self.dynamics_hidden = check_count(self.dynamics_hidden, "dynamics_hidden")
        self.transitions = check_choice(self.transitions, "transitions", TRANSITION_KINDS)
        self.emission = check_choice(self.emission, "emission", MAPPINGS)
        self.link = check_choice(self.link, "link", tuple(LINKS))
        self.num_states = check_count(self.num_states, "num_states")
        self.latent_dim = check_count(self.latent_dim, "latent_dim")
        self.obs_dim = _optional(check_count, self.obs_dim, "obs_dim")
        self.input_dim = check_count(self.input_dim, "input_dim", minimum=0)
        self.latent_scale = _optional(check_positive, self.latent_scale, "latent_scale")
        self.encoder_hidden = check_count(self.encoder_hidden, "encoder_hidden")
        self.seed = _optional(check_count, self.seed, "seed", minimum=0)
        if self.transitions == "input" and self.input_dim < 1:
            raise ValueError("transitions='input' needs input_dim >= 1")


@dataclass
class LowRankRNNConfig:
    """Configuration of a :class:`~pyro_neurodyn.LowRankRNN` (see its Args). ``proposal=None`` becomes
    ``"optimal"`` for Gaussian and ``"encoder"`` for Poisson observations."""

    obs_dim: int
    rank: int
    num_units: int
    input_dim: int = 0
    activation: str = "relu"
    observation: str = "gaussian"
    readout: str = "affine"
    proposal: Optional[str] = None
    noise: str = "full"
    initial_noise: str = "full"
    filter_inputs: bool = True
    decay: float = 0.9
    train_decay: bool = True
    noise_scale: float = 0.1
    initial_noise_scale: float = 1.0
    obs_noise_scale: float = 0.1
    train_readout: Optional[bool] = None
    encoder_kernel_sizes: list = field(default_factory=lambda: [21, 11, 1])
    encoder_channels: int = 64
    seed: Optional[int] = None

    def __post_init__(self):
        for name in ("obs_dim", "rank", "num_units", "encoder_channels"):
            setattr(self, name, check_count(getattr(self, name), name))
        self.input_dim = check_count(self.input_dim, "input_dim", minimum=0)
        self.activation = check_choice(self.activation, "activation", tuple(ACTIVATIONS))
        self.observation = check_choice(self.observation, "observation", ("gaussian", "poisson"))
        self.readout = check_choice(self.readout, "readout", ("affine", "one_to_one"))
        default_proposal = "optimal" if self.observation == "gaussian" else "encoder"
        self.proposal = check_choice(self.proposal or default_proposal, "proposal", ("optimal", "bootstrap", "encoder"))
        self.noise = check_choice(self.noise, "noise", Covariance.KINDS)
        self.initial_noise = check_choice(self.initial_noise, "initial_noise", Covariance.KINDS)
        self.filter_inputs = check_flag(self.filter_inputs, "filter_inputs")
        self.decay = check_open_unit_interval(self.decay, "decay")
        self.train_decay = check_flag(self.train_decay, "train_decay")
        for name in ("noise_scale", "initial_noise_scale", "obs_noise_scale"):
            setattr(self, name, check_positive(getattr(self, name), name))
        self.train_readout = _optional(check_flag, self.train_readout, "train_readout")
        self.encoder_kernel_sizes = [check_count(k, "encoder_kernel_sizes") for k in check_sequence(self.encoder_kernel_sizes, "encoder_kernel_sizes")]
        self.seed = _optional(check_count, self.seed, "seed", minimum=0)
        self._check_shapes()

    def _check_shapes(self) -> None:
        if self.rank > self.num_units:
            raise ValueError(
                f"rank must be <= num_units: a rank-R connectivity U V needs at least R units, got rank={self.rank}, num_units={self.num_units}"
            )
        if self.rank > self.obs_dim:
            raise ValueError(
                f"rank must be <= obs_dim: R latent dims read out into fewer channels are not identifiable "
                f"(and the readout starts at the data's top-R principal directions), got rank={self.rank}, obs_dim={self.obs_dim}"
            )
        if self.readout == "one_to_one" and self.obs_dim != self.num_units:
            raise ValueError(f"a one_to_one readout needs obs_dim == num_units, got obs_dim={self.obs_dim}, num_units={self.num_units}")
        if self.proposal == "optimal" and self.observation != "gaussian":
            raise ValueError("proposal='optimal' needs Gaussian observations; use 'encoder' or 'bootstrap' for Poisson")


@dataclass
class SwitchingLowRankRNNConfig:
    """Configuration of a :class:`~pyro_neurodyn.SwitchingLowRankRNN` (see its Args)."""

    obs_dim: int
    num_states: int
    rank: int
    num_units: int
    activation: str = "relu"
    observation: str = "gaussian"
    transitions: str = "sticky"
    stickiness: float = 3.0
    latent_scale: Optional[float] = None
    decay: float = 0.9
    encoder_hidden: int = 32
    proposal: str = "prior_mean"
    seed: Optional[int] = 0

    def __post_init__(self):
        for name in ("obs_dim", "num_states", "rank", "num_units", "encoder_hidden"):
            setattr(self, name, check_count(getattr(self, name), name))
        self.activation = check_choice(self.activation, "activation", tuple(ACTIVATIONS))
        self.observation = check_choice(self.observation, "observation", ("gaussian", "poisson"))
        self.transitions = check_choice(self.transitions, "transitions", ("sticky", "stationary", "recurrent"))
        self.stickiness = float(self.stickiness)
        if not math.isfinite(self.stickiness):
            raise ValueError(f"stickiness must be finite, got {self.stickiness}")
        self.latent_scale = _optional(check_positive, self.latent_scale, "latent_scale")
        self.decay = check_open_unit_interval(self.decay, "decay")
        self.proposal = check_choice(self.proposal, "proposal", SwitchingKalmanProposal.MOMENTS)
        self.seed = _optional(check_count, self.seed, "seed", minimum=0)
        if self.rank > min(self.num_units, self.obs_dim):
            raise ValueError(f"rank ({self.rank}) must not exceed num_units ({self.num_units}) or obs_dim ({self.obs_dim})")
