"""``posterior_predictive``: joint posterior draws of latents, states and replicated recordings.

    result = posterior_predictive(fitted, y, num_samples=200)   # an SRNN, LowRankRNN, ... fit to y
    result.latents      # (S, trials, T, P)    h or z drawn from the (approximate) posterior given y
    result.states       # (S, trials, T)       discrete states, for switching models (else None)
    result.y_rep        # (S, trials, T, D)    replicated recordings y_rep ~ p(y | latents, states)
    result.log_likelihood  # (S, trials)       log p(y_trial | latents of the draw)

What the log-likelihood is. Every model of the suite has trial-local latents, so the pointwise
log-likelihood is the *conditional* ``log p(y_b | latents_b^s, theta)`` at the fitted parameters theta.
Pareto-smoothed importance sampling LOO over trials with these values (``arviz_stats.loo``) re-weights the
draws of trial b by ``1 / p(y_b | latents_b^s)``: since the latents of trial b have only trial b's data,
that moves them back to their prior, i.e. PSIS-LOO computes a harmonic-mean estimate of p(y_b), whose
Pareto k is typically large for long trials (the diagnostic says so). It is the right input for LOO-PIT
and checks, not for choosing between models: for that, use held-out log evidence
(:func:`~pyro_neurodyn.predictive.comparison.compare_models`), where each model's own marginal estimate
(particle filter, importance weighting) is what it gives.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import pyro
import torch
from torch import Tensor

from ..data.recording import Recording
from ..data.validation import check_count
from ..estimators.base import Estimator, mark_padding, modules_local_to
from .protocol import predictive_model

__all__ = ["PosteriorPredictive", "posterior_predictive"]


class PosteriorPredictive(NamedTuple):
    """Posterior predictive draws (see the module docstring): ``latents`` ``(S, B, T, P)``, ``states``
    ``(S, B, T)`` int64 or None, ``y_rep`` ``(S, B, T, D)``, ``log_likelihood`` ``(S, B)`` (conditional,
    ``log p(y_b | latents_b^s)``), ``num_states`` K (None without discrete states)."""

    latents: Tensor
    states: Optional[Tensor]
    y_rep: Tensor
    log_likelihood: Tensor
    num_states: Optional[int]


@torch.no_grad()
def posterior_predictive(
    fitted: Any, y: Any, num_samples: int = 100, inputs: Any = None, *, num_particles: int = 256, seed: Optional[int] = 0
) -> PosteriorPredictive:
    """Draw ``num_samples`` joint samples of the posterior given ``y`` and replicate the recordings.

    Args:
        fitted: a fitted model of a registered type (``SRNN``, ``LowRankRNN``; see
            :func:`~pyro_neurodyn.predictive.protocol.register_predictive` to add one).
        y: recordings ``(trials, T, D)`` (or ``(T, D)``), validated by the model; or a Recording (SRNN: missing
            entries and padding do not count in the log-likelihood; padding comes back NaN, states -1).
        num_samples: S. inputs: the model's inputs ``u`` ``(trials, T, M)`` if it has any.
        num_particles: particles of the filter for models smoothed by particles (LowRankRNN; the draws
            converge to the exact smoothing posterior as it grows); unused by the SRNN.
        seed: seeds Pyro's RNGs first (None: leave them as they are).

    Per model: SRNN: h ~ q(h | y) (encoder), z ~ p(z | h) exactly (forward filtering, backward
    sampling), y_rep ~ p(y | h). LowRankRNN: z by backward simulation from the particle filter,
    y_rep ~ p(y | z). Both replicate through ``pyro.infer.Predictive``. An estimator's modules run with module-local
    parameters, as in its methods (:func:`~pyro_neurodyn.estimators.base.module_local`).
    """
    with modules_local_to(fitted):
        return _posterior_predictive(fitted, y, num_samples, inputs, num_particles, seed)


def _posterior_predictive(fitted: Any, y: Any, num_samples: int, inputs: Any, num_particles: int, seed: Optional[int]) -> PosteriorPredictive:
    adapter = predictive_model(fitted)
    num_samples = check_count(num_samples, "num_samples")
    num_particles = check_count(num_particles, "num_particles")
    y, u, mask, lengths = _observed_data(fitted, adapter, y, inputs)
    if seed is not None:
        pyro.set_rng_seed(seed)
    if mask is None and lengths is None:
        draws = adapter.posterior_draws(y, u, num_samples, num_particles)
    else:
        draws = adapter.posterior_draws(y, u, num_samples, num_particles, mask=mask, lengths=lengths)
    latents, y_rep = (mark_padding(x, lengths, float("nan"), sample_dims=1) for x in (draws.latents, draws.y_rep))
    states = None if draws.states is None else mark_padding(draws.states, lengths, -1, sample_dims=1)
    return PosteriorPredictive(latents, states, y_rep, draws.log_likelihood, adapter.num_states)


def _observed_data(fitted: Any, adapter: Any, y: Any, inputs: Any) -> tuple:
    """``(y, u, mask, lengths)``: a Recording's arrays (mask/lengths None when complete), or the validated arrays."""
    if not isinstance(y, Recording):
        return (*adapter.validate(y, inputs), None, None)
    if not isinstance(fitted, Estimator):
        raise TypeError(f"a Recording needs a fitted estimator (SRNN, LowRankRNN, ...), got {type(fitted).__name__}")
    y, u, mask, lengths = fitted.recording_arrays(y, inputs)
    if (mask is not None or lengths is not None) and not getattr(adapter, "takes_masks", False):
        raise ValueError(f"posterior_predictive of a {type(fitted).__name__} does not handle missing entries or ragged trials yet")
    return y, u, mask, lengths
