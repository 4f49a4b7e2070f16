"""Matplotlib figures used by the CLI and the tutorials."""

from .flow_field import plot_flow_field, plot_lowrank_flow_field
from .switching import plot_reconstruction, plot_states, state_colormap

__all__ = ["plot_flow_field", "plot_lowrank_flow_field", "plot_reconstruction", "plot_states", "state_colormap"]
