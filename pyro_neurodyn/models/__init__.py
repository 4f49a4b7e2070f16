"""models (see DESIGN.md section 2)."""

from .lowrank_rnn import LatentPrior, LowRankRNNModel, PassConstants  # noqa: E402
from .switching_lowrank import StatePrediction, SwitchingLowRankModel  # noqa: E402
