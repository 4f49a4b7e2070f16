"""Exact inference for discrete switching chains, and the Pyro distributions built on it."""

from .collapsed_switching_path import CollapsedSwitchingPath
from .linear_gaussian_path import LinearGaussianPath, linear_recurrence
from .switching import (
    SwitchingFactors,
    SwitchingPosterior,
    ViterbiPath,
    switching_filter,
    switching_log_marginal,
    switching_posterior,
    switching_viterbi,
)

__all__ = [
    "CollapsedSwitchingPath",
    "LinearGaussianPath",
    "SwitchingFactors",
    "SwitchingPosterior",
    "ViterbiPath",
    "linear_recurrence",
    "switching_filter",
    "switching_log_marginal",
    "switching_posterior",
    "switching_viterbi",
]
