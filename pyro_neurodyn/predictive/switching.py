"""Posterior predictive draws of a switching state-space model (SRNN, SLDS, rSLDS, ...).

Given recordings y, a draw is

    h^s ~ q_phi(h | y)                   (the amortized encoder, the guide)
    z^s ~ p(z | h^s, y) = p(z | h^s)     (exact, forward filtering backward sampling: switching_sample)
    y_rep^s ~ p(y | h^s)                 (the model with y unobserved, through pyro.infer.Predictive)

and its log-likelihood is ``log p(y_b | h_b^s)``. h and y_rep come from one ``Predictive`` call (guide,
then the unconditioned model); z is drawn afterwards from the chain factors of the same h, which is
exactly p(z | h, y) because y depends on z only through h.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from torch import Tensor

from ..data import as_inputs, as_trials
from ..distributions import switching_sample
from ..dynamics import PoissonEmission
from ..estimators.placement import module_placement
from ..estimators.srnn import SRNN
from ..models.switching_ssm import SwitchingStateSpaceModel
from .protocol import PosteriorDraws, observed_log_likelihood, register_predictive, replicated_observations

__all__ = ["SwitchingPredictive"]


class SwitchingPredictive:
    """:class:`~pyro_neurodyn.predictive.protocol.PredictiveModel` of a :class:`SwitchingStateSpaceModel`.

    Args:
        module: the fitted Pyro module (``model``/``guide``/``latent_factors``).
        validate: ``(y, u) -> (y, u)`` tensors, raising ValueError on bad input (an estimator's own check).
    """

    def __init__(self, module: SwitchingStateSpaceModel, validate: Callable[[Any, Any], tuple[Tensor, Optional[Tensor]]]):
        self.module = module
        self.num_states = module.num_states
        self.validate = validate

    takes_masks = True  # posterior_draws accepts mask and lengths (a Recording's missing entries and padding)

    def posterior_draws(
        self, y: Tensor, u: Optional[Tensor], num_samples: int, num_particles: int = 1, mask=None, lengths=None
    ) -> PosteriorDraws:
        """Draws given ``y (B, T, D)``, ``u (B, T, M)`` or None: ``latents (S, B, T, P)``, ``states (S, B, T)``,
        ``y_rep (S, B, T, D)``, ``log_likelihood (S, B)`` (of the entries of ``mask (B, T, D)`` up to ``lengths (B,)``);
        ``num_particles`` is unused."""
        module = self.module
        draws = replicated_observations(module.model, {}, num_samples, y, u, None, mask, lengths, guide=module.guide)
        h, y_rep = draws["h"], draws["y"]  # (S, B, T, P), (S, B, T, D)
        states = switching_sample(*module.latent_factors(h, u, lengths))  # (S, B, T)
        log_likelihood = observed_log_likelihood(module.model, {"h": h}, num_samples, 1, y, u, None, mask, lengths)
        return PosteriorDraws(h, states, y_rep, log_likelihood)

    def log_evidence(self, y: Tensor, u: Optional[Tensor], num_particles: int) -> Tensor:
        """The importance-weighted estimate of :meth:`SwitchingStateSpaceModel.log_evidence`, ``(B,)`` for ``y (B, T, D)``."""
        return self.module.log_evidence(y, u, num_particles)


def _validate_for(module: SwitchingStateSpaceModel) -> Callable[[Any, Any], tuple[Tensor, Optional[Tensor]]]:
    """Input checks for a bare module (an SLDS, rSLDS or SRNNModel used without an estimator); the data
    is converted to the module's dtype and device."""

    def validate(y: Any, u: Any) -> tuple[Tensor, Optional[Tensor]]:
        device, dtype = module_placement([module])
        y = as_trials(y, "y", counts=isinstance(module.emission, PoissonEmission), dtype=dtype, device=device)
        return y, (None if u is None else as_inputs(u, y, "inputs"))

    return validate


register_predictive(SRNN, lambda fitted: SwitchingPredictive(fitted._fitted_module(), fitted.validate))
register_predictive(SwitchingStateSpaceModel, lambda module: SwitchingPredictive(module, _validate_for(module)))
