"""Phase portraits: a flow field with speed as colour, fixed points, trajectories."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from matplotlib.axes import Axes

import torch

from ..analysis.flow_field import FlowField, coordinate_plane, flow_field, map_in_basis


def plot_flow_field(
    ax: Axes,
    field: FlowField,
    trajectories: Sequence[np.ndarray] = (),
    fixed_points: Optional[np.ndarray] = None,
    stable: Optional[np.ndarray] = None,
    title: str = "",
    colorbar: bool = True,
    trajectory_colors: Optional[Sequence] = None,
    axis_labels: Optional[tuple[str, str]] = None,
):
    """Draw ``field`` on ``ax``: streamlines coloured by speed (with a colour bar), trajectories
    (arrays ``(time, 2)`` in plane coordinates), fixed points (``(n, 2)``) filled if ``stable`` (``(n,)`` bool), open if not.
    ``axis_labels`` replace the default "latent PC 1/2" (e.g. for a coordinate plane). Returns the
    streamplot's line collection."""
    a, b = field.a.cpu().numpy(), field.b.cpu().numpy()
    velocity, speed = field.velocity.cpu().numpy(), field.speed.cpu().numpy()
    stream = ax.streamplot(a, b, velocity[..., 0], velocity[..., 1], color=speed, cmap="viridis", density=1.2, linewidth=0.8, arrowsize=0.8)
    if colorbar:
        ax.figure.colorbar(stream.lines, ax=ax, label="speed |f(h) - h| per step")
    colors = trajectory_colors or ["tab:red"] * len(trajectories)
    for path, color in zip(trajectories, colors):
        ax.plot(path[:, 0], path[:, 1], color=color, linewidth=1.0, alpha=0.8)
    if fixed_points is not None and len(fixed_points):
        is_stable = np.ones(len(fixed_points), bool) if stable is None else np.asarray(stable, bool)
        ax.scatter(*fixed_points[is_stable].T, s=60, c="black", zorder=5, label="stable fixed point")
        ax.scatter(*fixed_points[~is_stable].T, s=60, facecolors="white", edgecolors="black", zorder=5, label="unstable fixed point")
        ax.legend(loc="lower right", fontsize=7)
    ax.set_xlim(a[0], a[-1])
    ax.set_ylim(b[0], b[-1])
    if axis_labels is None:
        explained = field.plane.explained
        suffix = "" if np.isnan(explained) else f" ({100 * explained:.0f}% of latent variance)"
        axis_labels = ("latent PC 1" + suffix, "latent PC 2")
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    if title:
        ax.set_title(title)
    return stream


def plot_lowrank_flow_field(
    ax: Axes,
    latent_map,
    transform,
    fixed_points=None,
    trajectories: Sequence = (),
    extent: Optional[tuple[float, float, float, float]] = None,
    resolution: int = 30,
    title: str = "",
) -> FlowField:
    """The flow of a low-rank map in its orthogonalized latent plane, drawn by :func:`plot_flow_field`.

    Args:
        latent_map: ``x (..., R) -> (..., R)`` in the model's coordinates (e.g. ``bank.state_map(k)``).
        transform: ``T`` ``(R, R)`` of the orthogonalized basis ``x' = T x`` (``orthogonal_basis().transform``).
        fixed_points: a :class:`~pyro_neurodyn.analysis.FixedPoints` of the map (model coordinates), marked
            filled if stable and open if not.
        trajectories: latent paths ``(time, R)`` in model coordinates, drawn in the plane.
        extent: ``(a_min, a_max, b_min, b_max)`` in the orthogonal coordinates (default: around the
            trajectories and fixed points, else [-1, 1]^2).
    Returns the :class:`FlowField` drawn (its ``velocity`` is ``T f(T^{-1} x') - x'`` on the grid).
    """
    # a tensor keeps its dtype and device (the model's: the grid goes through latent_map); arrays: default dtype
    transform = transform if torch.is_tensor(transform) else torch.as_tensor(transform, dtype=torch.get_default_dtype())
    points = None if fixed_points is None else fixed_points.points @ transform.double().cpu().numpy().T
    paths = [(torch.as_tensor(p, dtype=transform.dtype, device=transform.device) @ transform.T).cpu().numpy() for p in trajectories]
    if extent is None:
        seen = [p[:, :2] for p in paths] + ([] if points is None or not len(points) else [points[:, :2]])
        if seen:
            stacked = np.concatenate(seen)
            low, high = stacked.min(0), stacked.max(0)
            margin = 0.15 * (high - low).max() + 1e-3
            extent = (low[0] - margin, high[0] + margin, low[1] - margin, high[1] + margin)
    field = flow_field(map_in_basis(latent_map, transform), coordinate_plane(transform.shape[0], transform.dtype, transform.device), extent, resolution)
    plot_flow_field(
        ax, field, trajectories=[p[:, :2] for p in paths],
        fixed_points=None if points is None else points[:, :2], stable=None if fixed_points is None else fixed_points.stable,
        title=title, axis_labels=("orthogonalized latent 1", "orthogonalized latent 2"),
    )  # fmt: skip
    return field
