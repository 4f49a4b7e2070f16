"""pyro_neurodyn: switching and low-rank stochastic RNNs for neural recordings, as Pyro programs."""

__version__ = "0.1.0"

from . import data, distributions, metrics  # noqa: E402
from .estimators.srnn import SRNN  # noqa: E402

__all__ = ["LowRankRNN", "SRNN", "SwitchingLowRankRNN", "__version__", "data", "distributions", "metrics"]

from .estimators.lowrank import LowRankRNN  # noqa: E402
from .estimators.switching_lowrank import SwitchingLowRankRNN  # noqa: E402
