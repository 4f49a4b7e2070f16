"""User-facing model classes with ``fit`` / decode / forecast / ``save`` / ``load`` (above ``infer``)."""

from .lowrank import LowRankFilterResult, LowRankRNN, LowRankSample  # noqa: E402
from .switching_lowrank import SwitchingLowRankRNN  # noqa: E402
