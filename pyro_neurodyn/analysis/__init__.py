"""Analysis of fitted dynamics: all fixed points of piecewise-linear low-rank maps, flow fields."""

from .fixed_points import FixedPoints, FixedPointSet, fixed_points, latent_map, latent_map_fixed_points
from .flow_field import FlowField, Plane, coordinate_plane, flow_field, map_in_basis, pca_plane
from .hyperplane_arrangement import Arrangement
from .latent_alignment import AffineAlignment, affine_alignment, fixed_points_in_reference

__all__ = [
    "AffineAlignment",
    "Arrangement",
    "affine_alignment",
    "FixedPointSet",
    "FixedPoints",
    "FlowField",
    "Plane",
    "fixed_points",
    "fixed_points_in_reference",
    "coordinate_plane",
    "flow_field",
    "map_in_basis",
    "latent_map",
    "latent_map_fixed_points",
    "pca_plane",
]
