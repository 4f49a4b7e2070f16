"""Check a switching model's fast objective against Pyro's generic enumeration of the same definition.

The fast path scores a guide sample h by ``log sum_z p(z, h)`` (the exact forward algorithm over
``latent_factors``). The stepwise program (``stepwise_model``: a ``z_t`` site per step, ``pyro.markov``)
scored by ``TraceEnum_ELBO`` sums the same states out by variable elimination, with no code in common
but the five step methods. For one shared guide sample both must give the same ELBO and the same
gradients for every parameter. A mismatch means the variant's fast path and its definition disagree:
a transition matrix transposed, an input fed at the wrong step, a ``latent_factors`` override that the
step methods do not match. The generic form is a Python loop of Pyro sites (seconds at T = 1000):
check on a few short trials, never train with it.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO, config_enumerate
from torch import Tensor

from ..data.validation import as_inputs, as_trials
from .switching_ssm import SwitchingStateSpaceModel

__all__ = ["ModelCheck", "ModelCheckError", "check_model", "elbo_fast_and_enumerated", "enumerated_log_joint"]

# Default relative tolerances by dtype. float64: the two forms agree to round-off (measured ~1e-15 for the
# ELBO, ~1e-13 for gradients on every shipped model). float32: sums over T x D terms in a different order
# (measured up to ~3e-6 on the ELBO, ~2e-4 on gradients of small parameters).
DEFAULT_TOLERANCE = {torch.float64: 1e-8, torch.float32: 2e-3}


class ModelCheck(NamedTuple):
    """Result of :func:`check_model`.

    ``elbo_fast`` and ``elbo_enumerated``: the single-sample ELBO by the two forms; ``elbo_gap``:
    ``|fast - enumerated| / |enumerated|``; ``gradient_gap``: the largest over parameters of
    ``max|g_fast - g_enum| / max|g_enum|``, at ``worst_parameter``; ``tolerance`` the bound both gaps
    were held to; ``passed`` whether both are below it.
    """

    elbo_fast: float
    elbo_enumerated: float
    elbo_gap: float
    gradient_gap: float
    worst_parameter: str
    tolerance: float
    passed: bool


class ModelCheckError(AssertionError):
    """The fast objective of a switching model disagrees with its stepwise definition."""


def enumerated_log_joint(model: SwitchingStateSpaceModel, y: Tensor, h: Tensor, u: Optional[Tensor] = None) -> Tensor:
    """``log p(y, h) = log sum_z p(z, h, y)`` summed over trials, by ``TraceEnum_ELBO`` on ``model.stepwise_model``
    with every ``z_t`` enumerated and ``h (trials, T, P)`` observed (differentiable): a scalar, for ``y (trials, T, D)``,
    ``u (trials, T, M)`` or None."""
    program = config_enumerate(model.stepwise_model)
    return -TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(program, _no_guide, y, u, h)


def _no_guide(*args, **kwargs) -> None:
    return None


def elbo_fast_and_enumerated(model: SwitchingStateSpaceModel, y: Tensor, u: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """Single-sample ELBO of ``model`` on ``y (trials, T, D)`` (``u (trials, T, M)`` or None) by the fast path and by
    :func:`enumerated_log_joint`, for one shared guide sample h (both differentiable scalars)."""
    guide_trace = poutine.trace(model.guide).get_trace(y, u)
    h = guide_trace.nodes["h"]["value"]
    model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(y, u)
    log_q = guide_trace.log_prob_sum()
    return model_trace.log_prob_sum() - log_q, enumerated_log_joint(model, y, h, u) - log_q


def check_model(
    model: SwitchingStateSpaceModel,
    y,
    u=None,
    *,
    tolerance: Optional[float] = None,
    raise_on_failure: bool = True,
) -> ModelCheck:
    """Compare ``model``'s fast ELBO and its gradients with ``TraceEnum_ELBO`` on its stepwise program.

    Args:
        model: any :class:`SwitchingStateSpaceModel` (a shipped one or a variant you wrote).
        y: ``(trials, T, D)`` data in the model's dtype (a few short trials suffice; float64 gives a sharp
            check: ``model.double()`` before checking).
        u: optional inputs ``(trials, T, M)``.
        tolerance: relative bound on both gaps (default by dtype: 1e-8 in float64, 2e-3 in float32).
        raise_on_failure: raise :class:`ModelCheckError` naming the worst gap (default) or return the result.

    Returns:
        :class:`ModelCheck`.
    """
    if not isinstance(model, SwitchingStateSpaceModel):
        raise TypeError(f"model must be a SwitchingStateSpaceModel, got {type(model).__name__}")
    parameter = next(model.parameters())
    y = as_trials(y, "y", dtype=parameter.dtype, device=parameter.device)
    u = None if u is None else as_inputs(u, y, "u")
    tolerance = DEFAULT_TOLERANCE.get(y.dtype, 2e-3) if tolerance is None else tolerance
    fast, enumerated = elbo_fast_and_enumerated(model, y, u)
    names, parameters = zip(*[(n, p) for n, p in model.named_parameters() if p.requires_grad])
    fast_grads = torch.autograd.grad(fast, parameters, retain_graph=True, allow_unused=True)
    enum_grads = torch.autograd.grad(enumerated, parameters, allow_unused=True)
    gradient_gap, worst = _largest_gradient_gap(names, parameters, fast_grads, enum_grads)
    elbo_gap = float((fast - enumerated).detach().abs() / enumerated.detach().abs().clamp_min(torch.finfo(y.dtype).tiny))
    result = ModelCheck(float(fast.detach()), float(enumerated.detach()), elbo_gap, gradient_gap, worst, tolerance,
                        elbo_gap <= tolerance and gradient_gap <= tolerance)  # fmt: skip
    if raise_on_failure and not result.passed:
        raise ModelCheckError(
            f"{type(model).__name__}: fast ELBO {result.elbo_fast:.10g} vs enumerated {result.elbo_enumerated:.10g} "
            f"(relative gap {elbo_gap:.2e}); largest relative gradient gap {gradient_gap:.2e} at '{worst}'; "
            f"tolerance {tolerance:.1e}. The fast path (latent_factors) and the step methods define different models."
        )
    return result


def _largest_gradient_gap(names, parameters, fast_grads, enum_grads) -> tuple[float, str]:
    """Largest ``max|a - b| / max|b|`` over parameters (a missing gradient counts as zero; ``max|b|`` floored
    at 1e-6 of the largest gradient, so a parameter the ELBO barely depends on is judged on the common
    scale, not on its own round-off); parameters reached by neither form (a filter encoder) are skipped."""
    pairs = [
        (name, torch.zeros_like(p) if a is None else a, torch.zeros_like(p) if b is None else b)
        for name, p, a, b in zip(names, parameters, fast_grads, enum_grads)
        if a is not None or b is not None
    ]
    floor = 1e-6 * max(float(b.abs().max()) for _, _, b in pairs) if pairs else 0.0
    worst, worst_name = 0.0, ""
    for name, a, b in pairs:
        gap = float((a - b).abs().max()) / max(float(b.abs().max()), floor, torch.finfo(b.dtype).tiny)
        if gap > worst:
            worst, worst_name = gap, name
    return worst, worst_name
