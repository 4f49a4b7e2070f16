"""Phase portraits: a flow field with speed as colour, fixed points, trajectories."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from matplotlib.axes import Axes

from ..analysis.flow_field import FlowField


def plot_flow_field(
    ax: Axes,
    field: FlowField,
    trajectories: Sequence[np.ndarray] = (),
    fixed_points: Optional[np.ndarray] = None,
    stable: Optional[np.ndarray] = None,
    title: str = "",
    colorbar: bool = True,
    trajectory_colors: Optional[Sequence] = None,
):
    """Draw ``field`` on ``ax``: streamlines coloured by speed (with a colour bar), trajectories
    (arrays ``(time, 2)`` in plane coordinates), fixed points (``(n, 2)``) filled if stable, open if not.
    Returns the streamplot's line collection."""
    a, b = field.a.numpy(), field.b.numpy()
    velocity, speed = field.velocity.numpy(), field.speed.numpy()
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
    explained = field.plane.explained
    suffix = "" if np.isnan(explained) else f" ({100 * explained:.0f}% of latent variance)"
    ax.set_xlabel("latent PC 1" + suffix)
    ax.set_ylabel("latent PC 2")
    if title:
        ax.set_title(title)
    return stream
