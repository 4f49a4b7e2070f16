"""pyro_neurodyn: switching and low-rank stochastic RNNs for neural recordings, as Pyro programs."""

__version__ = "0.1.0"

from . import data, distributions, metrics  # noqa: E402
from .estimators import SRNN, LowRankRNN, SwitchingLowRankRNN  # noqa: E402

__all__ = ["LowRankRNN", "SRNN", "SwitchingLowRankRNN", "__version__", "data", "distributions", "metrics"]

