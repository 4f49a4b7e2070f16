"""dynamics (see DESIGN.md section 2)."""

from .lowrank import (  # noqa: E402
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
from .readouts import (  # noqa: E402
    AffineReadoutMap,
    LinearForm,
    LowRankGaussianReadout,
    LowRankPoissonReadout,
    OneToOneReadoutMap,
)
