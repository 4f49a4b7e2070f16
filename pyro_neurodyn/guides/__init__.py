"""guides (see DESIGN.md section 2)."""

from .proposals import (  # noqa: E402
    BootstrapProposal,
    CausalConvEncoder,
    EncoderProposal,
    KalmanUpdate,
    OptimalProposal,
    SwitchingKalmanProposal,
    kalman_update,
)
