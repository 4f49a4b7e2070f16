"""User-facing model classes with ``fit`` / decode / forecast / ``save`` / ``load`` (above ``infer``)."""

from .lowrank import LowRankFilterResult, LowRankRNN, LowRankSample
from .srnn import SRNN

__all__ = ["LowRankFilterResult", "LowRankRNN", "LowRankSample", "SRNN"]
