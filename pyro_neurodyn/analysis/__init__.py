"""Analysis of fitted dynamics: all fixed points of piecewise-linear low-rank maps, flow fields."""

from .fixed_points import FixedPoints, FixedPointSet, fixed_points, latent_map, latent_map_fixed_points
from .flow_field import FlowField, Plane, coordinate_plane, flow_field, map_in_basis, pca_plane
from .hyperplane_arrangement import Arrangement

__all__ = [
    "Arrangement",
    "FixedPointSet",
    "FixedPoints",
    "FlowField",
    "Plane",
    "fixed_points",
    "coordinate_plane",
    "flow_field",
    "map_in_basis",
    "latent_map",
    "latent_map_fixed_points",
    "pca_plane",
]
