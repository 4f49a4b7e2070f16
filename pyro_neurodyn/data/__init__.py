"""Data: validation of user arrays, simulators and loaders."""

from .validation import as_inputs, as_state_labels, as_trials, check_count, check_positive

__all__ = ["as_inputs", "as_state_labels", "as_trials", "check_count", "check_positive"]
