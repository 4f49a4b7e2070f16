"""Exact inference for discrete switching chains, and the Pyro distributions built on it."""

from .collapsed_switching_path import CollapsedSwitchingPath
from .linear_gaussian_path import LinearGaussianPath, linear_recurrence
from .switching import (
    SwitchingBackwardKernel,
    SwitchingFactors,
    SwitchingPosterior,
    ViterbiPath,
    switching_backward_kernel,
    switching_filter,
    switching_log_marginal,
    switching_posterior,
    switching_sample,
    switching_viterbi,
)

__all__ = [
    "CollapsedSwitchingPath",
    "LinearGaussianPath",
    "SwitchingBackwardKernel",
    "SwitchingFactors",
    "SwitchingPosterior",
    "ViterbiPath",
    "linear_recurrence",
    "switching_backward_kernel",
    "switching_filter",
    "switching_log_marginal",
    "switching_posterior",
    "switching_sample",
    "switching_viterbi",
]
