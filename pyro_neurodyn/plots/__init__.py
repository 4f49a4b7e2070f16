"""Matplotlib figures used by the CLI and the tutorials."""

from .flow_field import plot_flow_field, plot_lowrank_flow_field
from .predictive_checks import (
    default_statistics,
    plot_loo_pit,
    plot_power_spectrum,
    plot_ppc_dist,
    plot_ppc_rootogram,
    plot_ppc_tstat,
    plot_spike_statistics,
)
from .switching import plot_reconstruction, plot_states, state_colormap

__all__ = [
    "default_statistics",
    "plot_flow_field",
    "plot_loo_pit",
    "plot_lowrank_flow_field",
    "plot_power_spectrum",
    "plot_ppc_dist",
    "plot_ppc_rootogram",
    "plot_ppc_tstat",
    "plot_reconstruction",
    "plot_spike_statistics",
    "plot_states",
    "state_colormap",
]
