"""Plain torch building blocks of the dynamics models: RNN banks, transitions, emissions,
low-rank latent maps and their readouts."""

from .emissions import GaussianEmission, PoissonEmission, make_emission, make_mapping
from .lowrank import (
    ACTIVATIONS,
    Covariance,
    CovarianceFactors,
    LatentMap,
    LowRankTransition,
    OrthogonalBasis,
    SharedCovarianceNormal,
    UnitNetwork,
    latent_to_units,
    orthogonal_basis,
    unit_network,
    units_to_latent,
)
from .readouts import (
    AffineReadoutMap,
    LinearForm,
    LowRankGaussianReadout,
    LowRankPoissonReadout,
    OneToOneReadoutMap,
)
from .bank_choice import DYNAMICS_KINDS, make_dynamics
from .lowrank_bank import LowRankBank
from .residual_mlp_bank import ResidualMLPBank
from .rnn_bank import RNNBank
from .transitions import InputTransitions, RecurrentTransitions, StationaryTransitions, make_transitions

__all__ = [
    "ACTIVATIONS",
    "DYNAMICS_KINDS",
    "AffineReadoutMap",
    "Covariance",
    "CovarianceFactors",
    "GaussianEmission",
    "InputTransitions",
    "LatentMap",
    "LinearForm",
    "LowRankBank",
    "LowRankGaussianReadout",
    "LowRankPoissonReadout",
    "LowRankTransition",
    "OneToOneReadoutMap",
    "OrthogonalBasis",
    "PoissonEmission",
    "RNNBank",
    "ResidualMLPBank",
    "RecurrentTransitions",
    "SharedCovarianceNormal",
    "StationaryTransitions",
    "UnitNetwork",
    "make_dynamics",
    "latent_to_units",
    "make_emission",
    "make_mapping",
    "make_transitions",
    "orthogonal_basis",
    "unit_network",
    "units_to_latent",
]
