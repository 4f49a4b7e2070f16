"""Exact inference for discrete switching chains, and the Pyro distributions built on it."""

from .collapsed_switching_path import CollapsedSwitchingPath
from .switching import (
    SwitchingFactors,
    SwitchingPosterior,
    ViterbiPath,
    switching_log_marginal,
    switching_posterior,
    switching_viterbi,
)

__all__ = [
    "CollapsedSwitchingPath",
    "SwitchingFactors",
    "SwitchingPosterior",
    "ViterbiPath",
    "switching_log_marginal",
    "switching_posterior",
    "switching_viterbi",
]
