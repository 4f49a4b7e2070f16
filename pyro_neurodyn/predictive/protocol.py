"""What a fitted model must offer for posterior predictive checks, and how a model type finds its adapter.

A fitted estimator (``SRNN``, ``LowRankRNN``, ...) is wrapped in an adapter that implements
:class:`PredictiveModel`. Adapters are looked up in a registry keyed on the estimator's type (its MRO
is walked, so subclasses inherit their parent's adapter). A new model plugs in with one call::

    register_predictive(MyEstimator, lambda fitted: SwitchingPredictive(fitted.module, fitted.validate))

The two Pyro helpers at the bottom are what the adapters share: replicated observations through
``pyro.infer.Predictive`` (the model with its observations unconditioned, its latents fixed to posterior
draws) and the per-trial log-likelihood of the observed data given those latents.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Protocol

import pyro
import torch
from pyro import poutine
from pyro.infer import Predictive
from torch import Tensor

__all__ = [
    "PosteriorDraws",
    "PredictiveModel",
    "observed_log_likelihood",
    "predictive_model",
    "register_predictive",
    "replicated_observations",
]


class PosteriorDraws(NamedTuple):
    """``S`` joint draws from a fitted model's posterior given recordings ``y`` ``(B, T, D)``.

    Attributes:
        latents: ``(S, B, T, P)`` continuous latent paths.
        states: ``(S, B, T)`` int64 discrete states, or None for a model without them.
        y_rep: ``(S, B, T, D)`` replicated recordings, ``y_rep^s ~ p(y | latents^s, states^s)``.
        log_likelihood: ``(S, B)`` ``log p(y_b | latents_b^s)``, the observed trial's log-likelihood given
            the draw's latents (the "conditional" log-likelihood; see :func:`~pyro_neurodyn.predictive.posterior_predictive`).
    """

    latents: Tensor
    states: Optional[Tensor]
    y_rep: Tensor
    log_likelihood: Tensor


class PredictiveModel(Protocol):
    """The adapter interface (all tensors batch-first; ``u`` inputs ``(B, T, M)`` or None).

    Attributes:
        num_states: K of a model with discrete states, None otherwise.
    """

    num_states: Optional[int]

    def validate(self, y: Any, u: Any) -> tuple[Tensor, Optional[Tensor]]:
        """Check recordings and inputs against the model (ValueError naming the argument); return tensors
        ``y (B, T, D)`` and ``u (B, T, M)`` or None."""

    def posterior_draws(self, y: Tensor, u: Optional[Tensor], num_samples: int, num_particles: int) -> PosteriorDraws:
        """``num_samples`` posterior draws given validated ``y (B, T, D)``, ``u (B, T, M)`` or None (``num_particles``:
        the model's inference budget, e.g. a particle filter's particles); shapes in :class:`PosteriorDraws`."""

    def log_evidence(self, y: Tensor, u: Optional[Tensor], num_particles: int) -> Tensor:
        """Per-trial estimates of ``log p(y_b | u_b)`` ``(B,)`` whose ``exp`` is unbiased, for ``y (B, T, D)``."""


_REGISTRY: dict[type, Callable[[Any], PredictiveModel]] = {}


def register_predictive(model_type: type, make_adapter: Callable[[Any], PredictiveModel]) -> None:
    """Make :func:`predictive_model` wrap instances of ``model_type`` (and its subclasses) with ``make_adapter``."""
    if not isinstance(model_type, type):
        raise TypeError(f"model_type must be a class, got {model_type!r}")
    if not callable(make_adapter):
        raise TypeError(f"make_adapter must be callable, got {make_adapter!r}")
    _REGISTRY[model_type] = make_adapter


def predictive_model(fitted: Any) -> PredictiveModel:
    """The adapter of a fitted model (an instance of a registered type, or an adapter itself)."""
    for cls in type(fitted).__mro__:
        if cls in _REGISTRY:
            return _REGISTRY[cls](fitted)
    if all(hasattr(fitted, name) for name in ("validate", "posterior_draws", "log_evidence")):
        return fitted
    known = ", ".join(sorted(cls.__name__ for cls in _REGISTRY))
    raise ValueError(f"fitted must be a fitted model of a registered type ({known}), got {type(fitted).__name__}")


def _sample_plate(num_samples: int, max_plate_nesting: int) -> pyro.plate:
    return pyro.plate("posterior_samples", num_samples, dim=-(max_plate_nesting + 1))


def replicated_observations(
    model: Callable, latents: dict, num_samples: int, *args, guide: Optional[Callable] = None, **kwargs
) -> dict:
    """Run ``model(*args, **kwargs)`` with every observed site unconditioned, through ``pyro.infer.Predictive``.

    Latent sites take the values in ``latents`` (``{site: (S, *batch, *event)}``) or, with ``guide``,
    ``S`` draws of the guide; the observed sites are sampled, ``y_rep ~ p(y | latents)``. Returns
    ``{site: (S, ...)}`` for every sample site (the latents included).
    """
    predictive = Predictive(
        poutine.uncondition(model), posterior_samples=None if guide is not None else latents, guide=guide,
        num_samples=num_samples, return_sites=(), parallel=True,
    )  # fmt: skip
    return predictive(*args, **kwargs)


def observed_log_likelihood(model: Callable, latents: dict, num_samples: int, max_plate_nesting: int, *args, **kwargs) -> Tensor:
    """``log p(y | latents)`` ``(S, *batch)``: the log-densities of the model's observed sites summed,
    with its latent sites conditioned on ``latents`` (``{site: (S, *batch, *event)}``), all ``S`` draws in
    one vectorized trace. Observed sites must have batch shape ``(S, *batch)`` (events summed inside)."""
    with _sample_plate(num_samples, max_plate_nesting):
        trace = poutine.trace(poutine.condition(model, data=latents)).get_trace(*args, **kwargs)
    total = 0.0
    for name, site in trace.nodes.items():
        # condition() marks the latents it fixed as observed too: they are not part of the likelihood
        if site["type"] == "sample" and site["is_observed"] and name not in latents:
            total = total + site["fn"].log_prob(site["value"])
    return torch.as_tensor(total)  # in the model's dtype, on its device
