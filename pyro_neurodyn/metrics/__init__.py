"""Metrics of the field: state recovery, and (later) reconstruction, forecasting and geometry."""

from .states import balanced_state_error, confusion_matrix, match_states, state_accuracy

__all__ = ["balanced_state_error", "confusion_matrix", "match_states", "state_accuracy"]
