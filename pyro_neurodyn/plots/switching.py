"""Figures of switching models: states over time, data against reconstruction."""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap

STATE_COLORS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]


def state_colormap(num_states: int) -> ListedColormap:
    """One colour per state ``0 .. num_states - 1`` (the palette repeats beyond its length)."""
    return ListedColormap([STATE_COLORS[k % len(STATE_COLORS)] for k in range(num_states)])


def plot_states(rows: Sequence[np.ndarray], labels: Sequence[str], num_states: int, title: str = "", dt: float = 1.0):
    """One coloured band per state sequence (each ``(time,)`` ints), e.g. true vs inferred. Returns the figure."""
    fig, ax = plt.subplots(figsize=(9, 0.6 + 0.45 * len(rows)))
    image = np.stack([np.asarray(r) for r in rows])
    ax.imshow(image, aspect="auto", interpolation="nearest", cmap=state_colormap(num_states), vmin=-0.5, vmax=num_states - 0.5,
              extent=(0, image.shape[1] * dt, len(rows) - 0.5, -0.5))  # fmt: skip
    ax.set_yticks(range(len(rows)), labels)
    ax.set_xlabel("time step" if dt == 1.0 else "time")
    handles = [plt.Rectangle((0, 0), 1, 1, color=STATE_COLORS[k % len(STATE_COLORS)]) for k in range(num_states)]
    ax.legend(handles, [f"state {k}" for k in range(num_states)], loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_reconstruction(y: np.ndarray, reconstruction: np.ndarray, states: Optional[np.ndarray] = None, num_states: int = 0,
                        channel_names: Optional[Sequence[str]] = None, title: str = ""):  # fmt: skip
    """Data (grey) and reconstruction (colour, by inferred state if given) of each channel of one trial
    ``(time, channels)``, ``states`` ``(time,)`` ints. Returns the figure."""
    channels = y.shape[-1]
    fig, axes = plt.subplots(channels, 1, figsize=(9, 1.6 * channels), sharex=True, squeeze=False)
    time = np.arange(y.shape[0])
    for c, ax in enumerate(axes[:, 0]):
        ax.plot(time, y[:, c], color="0.6", linewidth=2.5, label="data")
        if states is None:
            ax.plot(time, reconstruction[:, c], color="tab:blue", linewidth=1.0, label="reconstruction")
        else:
            for k in range(num_states):
                ax.plot(time, np.where(states == k, reconstruction[:, c], np.nan), color=STATE_COLORS[k % len(STATE_COLORS)],
                        linewidth=1.0, label=f"reconstruction (state {k})")  # fmt: skip
        ax.set_ylabel(channel_names[c] if channel_names else f"channel {c}")
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    axes[-1, 0].set_xlabel("time step")
    if title:
        axes[0, 0].set_title(title)
    fig.tight_layout()
    return fig
