"""analysis (see DESIGN.md section 2)."""

from .fixed_points import FixedPoints, FixedPointSet, fixed_points, latent_map
from .hyperplane_arrangement import Arrangement

__all__ = ["Arrangement", "FixedPointSet", "FixedPoints", "fixed_points", "latent_map"]
