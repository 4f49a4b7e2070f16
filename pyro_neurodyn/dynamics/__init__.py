"""Plain torch building blocks of the dynamics models: RNN banks, transitions, emissions."""

from .emissions import GaussianEmission, PoissonEmission, make_emission, make_mapping
from .rnn_bank import RNNBank
from .transitions import InputTransitions, RecurrentTransitions, StationaryTransitions, make_transitions

__all__ = [
    "GaussianEmission",
    "InputTransitions",
    "PoissonEmission",
    "RNNBank",
    "RecurrentTransitions",
    "StationaryTransitions",
    "make_emission",
    "make_mapping",
    "make_transitions",
]
