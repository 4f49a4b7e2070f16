"""Pyro programs: the switching state-space model and its variants, the low-rank RNN."""

from .autoregressive_hmm import AutoregressiveHMM
from .gaussian_emission_hmm import GaussianEmissionHMM
from .lowrank_rnn import LatentPrior, LowRankRNNModel, PassConstants
from .model_check import ModelCheck, ModelCheckError, check_model, elbo_fast_and_enumerated, enumerated_log_joint
from .module_names import unique_module_name
from .slds import RSLDS, SLDS
from .srnn import SRNNModel
from .switching_lowrank import StatePrediction, SwitchingLowRankModel
from .switching_definition import SwitchingStepDefinition
from .switching_ssm import SwitchingSample, SwitchingStateSpaceModel

__all__ = [
    "AutoregressiveHMM",
    "GaussianEmissionHMM",
    "LatentPrior",
    "LowRankRNNModel",
    "ModelCheck",
    "ModelCheckError",
    "PassConstants",
    "RSLDS",
    "SLDS",
    "SRNNModel",
    "StatePrediction",
    "SwitchingLowRankModel",
    "SwitchingSample",
    "SwitchingStateSpaceModel",
    "SwitchingStepDefinition",
    "check_model",
    "elbo_fast_and_enumerated",
    "enumerated_log_joint",
    "unique_module_name",
]
