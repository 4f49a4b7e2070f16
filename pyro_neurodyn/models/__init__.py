"""Pyro programs: the switching state-space model and its variants, the low-rank RNN."""

from .autoregressive_hmm import AutoregressiveHMM
from .enumerated_reference import elbo_fast_and_enumerated, enumerated_program
from .gaussian_hmm import GaussianHMM
from .lowrank_rnn import LatentPrior, LowRankRNNModel, PassConstants
from .module_names import unique_module_name
from .slds import RSLDS, SLDS
from .srnn import SRNNModel
from .switching_lowrank import StatePrediction, SwitchingLowRankModel
from .switching_ssm import SwitchingSample, SwitchingStateSpaceModel

__all__ = [
    "AutoregressiveHMM",
    "GaussianHMM",
    "LatentPrior",
    "LowRankRNNModel",
    "PassConstants",
    "RSLDS",
    "SLDS",
    "SRNNModel",
    "StatePrediction",
    "SwitchingLowRankModel",
    "SwitchingSample",
    "SwitchingStateSpaceModel",
    "elbo_fast_and_enumerated",
    "enumerated_program",
    "unique_module_name",
]
