"""Checkpoint compatibility: the low-rank RNN's unit thresholds were once the parameter ``h``.

:class:`~pyro_neurodyn.dynamics.LowRankTransition` and :class:`~pyro_neurodyn.dynamics.LowRankBank` now
call them ``threshold``; state dicts saved before that have keys ``{prefix}h`` (``transition.h``,
``dynamics.h``), which these modules read as ``{prefix}threshold``.
"""

from __future__ import annotations

from torch import nn

__all__ = ["LegacyThresholdKey", "renamed_legacy_threshold"]


class LegacyThresholdKey(nn.Module):
    """An ``nn.Module`` whose ``load_state_dict`` also accepts the old threshold key ``{prefix}h``."""

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        old, new = prefix + "h", prefix + "threshold"
        if old in state_dict and new not in state_dict:
            state_dict[new] = state_dict.pop(old)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def renamed_legacy_threshold(state: dict, old: str, new: str) -> dict:
    """``state`` (e.g. a saved per-parameter optimizer state keyed by parameter names) with the key ``old``
    (the threshold's old name, e.g. ``model.transition$$$h`` in Pyro's naming) renamed to ``new``, unless ``new`` is there."""
    if old not in state or new in state:
        return state
    return {(new if key == old else key): value for key, value in state.items()}
