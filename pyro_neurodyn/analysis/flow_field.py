"""Flow fields of latent maps on a 2-D plane: where one step of the dynamics moves each point.

For a discrete-time map ``f: R^P -> R^P`` (an RNN of a switching state, a low-rank RNN's latent
map), the flow at h is the one-step displacement ``f(h) - h``. It is evaluated on a grid of the plane
``h = center + a * basis[:, 0] + b * basis[:, 1]`` and projected onto that plane. The plane is
usually spanned by the first two principal components of posterior latents (:func:`pca_plane`).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Union

import torch
from torch import Tensor

__all__ = ["FlowField", "Plane", "coordinate_plane", "flow_field", "map_in_basis", "pca_plane"]

LatentMap = Callable[[Tensor], Tensor]


class Plane(NamedTuple):
    """A 2-D affine plane in latent space: ``center (P,)``, orthonormal ``basis (P, 2)``, and the
    fraction of the latents' variance it captures (``explained``, NaN when not from data)."""

    center: Tensor
    basis: Tensor
    explained: float

    def project(self, h: Tensor) -> Tensor:
        """Coordinates ``(..., 2)`` of points ``h (..., P)`` in the plane."""
        return (h - self.center) @ self.basis

    def lift(self, coords: Tensor) -> Tensor:
        """Points ``(..., P)`` of plane coordinates ``(..., 2)``."""
        return self.center + coords @ self.basis.T


class FlowField(NamedTuple):
    """``a (n,)`` and ``b (n,)`` grid coordinates; ``velocity (n, n, 2)`` the in-plane displacement
    at ``(b[i], a[j])`` (row i, column j, as matplotlib's ``streamplot`` wants); ``speed (n, n)`` the
    norm of the full P-dimensional displacement; ``plane``."""

    a: Tensor
    b: Tensor
    velocity: Tensor
    speed: Tensor
    plane: Plane


def pca_plane(latents: Tensor) -> Plane:
    """The plane of the first two principal components of ``latents (..., P)``, P >= 2."""
    points = latents.reshape(-1, latents.shape[-1]).double()
    if points.shape[-1] < 2:
        raise ValueError(f"a flow field needs a latent dimension >= 2, got {points.shape[-1]}")
    center = points.mean(0)
    _, singular, vh = torch.linalg.svd(points - center, full_matrices=False)
    explained = float(singular[:2].pow(2).sum() / singular.pow(2).sum())
    return Plane(center.to(latents.dtype), vh[:2].T.to(latents.dtype), explained)


def coordinate_plane(dim: int = 2, dtype: Optional[torch.dtype] = None, device: Union[str, torch.device, None] = None) -> Plane:
    """The plane of the first two coordinates of R^dim through the origin (``explained`` NaN), in
    ``dtype`` (default: torch's default dtype) on ``device`` (default: the CPU), e.g. a model's."""
    if dim < 2:
        raise ValueError(f"a flow field needs a latent dimension >= 2, got {dim}")
    like = dict(dtype=dtype or torch.get_default_dtype(), device=device)
    return Plane(torch.zeros(dim, **like), torch.eye(dim, 2, **like), float("nan"))


def map_in_basis(latent_map: LatentMap, transform: Tensor) -> LatentMap:
    """The map in the coordinates ``x' = T x``: ``x' -> T f(T^{-1} x')``, with ``transform`` T ``(P, P)``.

    E.g. a low-rank RNN's map in its orthogonalized basis (``orthogonal_basis().transform``), whose first
    two coordinates (:func:`coordinate_plane`) are the plane in which its units' currents live.
    """
    inverse = torch.linalg.inv(transform)
    return lambda x: latent_map(x @ inverse.T) @ transform.T


@torch.no_grad()
def flow_field(
    latent_map: LatentMap,
    plane: Plane,
    extent: Optional[tuple[float, float, float, float]] = None,
    resolution: int = 30,
) -> FlowField:
    """Evaluate ``latent_map`` on a ``resolution x resolution`` grid of ``plane``.

    Args:
        latent_map: ``h (..., P) -> (..., P)``, one step of the dynamics.
        plane: the plane (e.g. :func:`pca_plane` of posterior latents).
        extent: ``(a_min, a_max, b_min, b_max)`` in plane coordinates (default: [-1, 1]^2).
    """
    a_min, a_max, b_min, b_max = extent if extent is not None else (-1.0, 1.0, -1.0, 1.0)
    like = dict(dtype=plane.basis.dtype, device=plane.basis.device)  # the grid lives where the plane does
    a = torch.linspace(a_min, a_max, resolution, **like)
    b = torch.linspace(b_min, b_max, resolution, **like)
    coords = torch.stack(torch.meshgrid(a, b, indexing="xy"), -1)  # (n_b, n_a, 2): row i is b[i]
    points = plane.lift(coords)
    displacement = latent_map(points) - points
    return FlowField(a, b, displacement @ plane.basis, displacement.norm(dim=-1), plane)
