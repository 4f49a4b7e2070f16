"""Posterior predictive checks: draws of latents, states and replicated recordings, ArviZ conversion,
held-out model comparison.

    from pyro_neurodyn.predictive import posterior_predictive, to_arviz, compare_models
    result = posterior_predictive(fitted, y, num_samples=200)
    tree = to_arviz(result, y)                  # arviz_stats.loo / ess / summary, arviz_plots
"""

from .protocol import PosteriorDraws, PredictiveModel, predictive_model, register_predictive
from .posterior_predictive import PosteriorPredictive, posterior_predictive
from .switching import SwitchingPredictive  # registers SRNN
from .lowrank import LowRankPredictive, backward_simulation  # registers LowRankRNN
from .switching_lowrank import SwitchingLowRankPredictive  # registers SwitchingLowRankRNN
from .gaussian_emission_hmm import GaussianEmissionHMMPredictive  # registers GaussianEmissionHMM
from .arviz_conversion import to_arviz
from .comparison import ModelComparison, compare_models, heldout_elpd

__all__ = [
    "GaussianEmissionHMMPredictive",
    "LowRankPredictive",
    "ModelComparison",
    "PosteriorDraws",
    "PosteriorPredictive",
    "PredictiveModel",
    "SwitchingLowRankPredictive",
    "SwitchingPredictive",
    "backward_simulation",
    "compare_models",
    "heldout_elpd",
    "posterior_predictive",
    "predictive_model",
    "register_predictive",
    "to_arviz",
]
