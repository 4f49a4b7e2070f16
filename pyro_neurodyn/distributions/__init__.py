"""Exact inference for discrete switching chains, and the Pyro distributions built on it."""

from .collapsed_switching_path import CollapsedSwitchingPath
from .diagonal_normal import DiagonalNormal, gaussian_log_density
from .linear_gaussian_path import LinearGaussianPath, linear_recurrence, time_blocked_normal
from .state_component import StateComponent
from .switching import (
    SwitchingBackwardKernel,
    SwitchingFactors,
    SwitchingPosterior,
    ViterbiPath,
    switching_backward_kernel,
    switching_filter,
    switching_filter_step,
    switching_log_marginal,
    switching_posterior,
    switching_sample,
    switching_viterbi,
)

__all__ = [
    "CollapsedSwitchingPath",
    "DiagonalNormal",
    "LinearGaussianPath",
    "StateComponent",
    "SwitchingBackwardKernel",
    "SwitchingFactors",
    "SwitchingPosterior",
    "ViterbiPath",
    "gaussian_log_density",
    "linear_recurrence",
    "switching_backward_kernel",
    "switching_filter",
    "switching_filter_step",
    "switching_log_marginal",
    "switching_posterior",
    "switching_sample",
    "switching_viterbi",
    "time_blocked_normal",
]
