"""Guides: amortized encoders q(h | y) and particle proposals for variational SMC."""

from .encoders import RecurrentEncoder
from .proposals import (
    BootstrapProposal,
    CausalConvEncoder,
    EncoderProposal,
    KalmanUpdate,
    OptimalProposal,
    SwitchingKalmanProposal,
    kalman_update,
)

__all__ = [
    "BootstrapProposal",
    "CausalConvEncoder",
    "EncoderProposal",
    "KalmanUpdate",
    "OptimalProposal",
    "RecurrentEncoder",
    "SwitchingKalmanProposal",
    "kalman_update",
]
