"""Analysis of fitted dynamics: flow fields (and fixed points)."""

from .flow_field import FlowField, Plane, flow_field, pca_plane

__all__ = ["FlowField", "Plane", "flow_field", "pca_plane"]
