"""User-facing model classes with ``fit`` / decode / forecast / ``save`` / ``load`` (above ``infer``)."""

from .lowrank import LowRankFilterResult, LowRankRNN, LowRankSample
from .srnn import SRNN
from .switching_lowrank import SwitchingLowRankRNN

__all__ = ["LowRankFilterResult", "LowRankRNN", "LowRankSample", "SRNN", "SwitchingLowRankRNN"]
