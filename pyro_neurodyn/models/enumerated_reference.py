"""The switching state-space model written the generic way: every z_t an enumerated Pyro site.

This is the slow, obviously-correct form of :class:`~pyro_neurodyn.models.switching_ssm.SwitchingStateSpaceModel`
(``pyro.markov`` over time, ``config_enumerate``, ``TraceEnum_ELBO`` sums z out by variable
elimination). It exists as a cross-check: for the same guide sample both give the same ELBO and
gradients (:func:`elbo_fast_and_enumerated`), which is how you verify a variant you wrote yourself.
Its cost grows with T as a Python loop of Pyro sites (~seconds per step at T = 1000); never train with it.
"""

from __future__ import annotations

from typing import Callable, Optional

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO, config_enumerate
from pyro.ops.indexing import Vindex
from torch import Tensor

from .switching_ssm import SwitchingStateSpaceModel

__all__ = ["enumerated_program", "elbo_fast_and_enumerated"]


def enumerated_program(module: SwitchingStateSpaceModel, y: Tensor, h: Tensor, u: Optional[Tensor] = None) -> Callable[[], None]:
    """A Pyro model scoring the latent path ``h (trials, T, P)`` and data ``y`` with z enumerated step by step."""
    num_trials, num_steps = y.shape[:2]
    trials = torch.arange(num_trials, device=h.device)
    sigma_h = module.latent_log_scale.exp()

    def inputs_at(t: int) -> Optional[Tensor]:
        return None if u is None else u[:, t]

    @config_enumerate
    def model():
        with pyro.plate("trials", num_trials, dim=-1):
            z = pyro.sample("z_0", dist.Categorical(logits=module.init_logits))
            pyro.sample("h_0", dist.Normal(Vindex(module.init_loc)[..., z, :], module.init_log_scale.exp()).to_event(1), obs=h[:, 0])
            for t in pyro.markov(range(1, num_steps)):
                logits = module.transitions(h[:, t - 1], inputs_at(t)).expand(num_trials, module.num_states, module.num_states)
                z = pyro.sample(f"z_{t}", dist.Categorical(logits=Vindex(logits)[trials, z]))
                means = module.dynamics(h[:, t - 1], inputs_at(t))  # (trials, K, P)
                pyro.sample(f"h_{t}", dist.Normal(Vindex(means)[trials, z], sigma_h).to_event(1), obs=h[:, t])
            pyro.sample("y", dist.Independent(module.emission(h), 2), obs=y)

    return model


def elbo_fast_and_enumerated(module: SwitchingStateSpaceModel, y: Tensor, u: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """Single-sample ELBO of ``module`` on ``y`` by the fast path and by :func:`enumerated_program`,
    for one shared guide sample h (both differentiable)."""
    guide_trace = poutine.trace(module.guide).get_trace(y, u)
    h = guide_trace.nodes["h"]["value"]
    model_trace = poutine.trace(poutine.replay(module.model, trace=guide_trace)).get_trace(y, u)
    log_q = guide_trace.log_prob_sum()
    fast = model_trace.log_prob_sum() - log_q
    enumerated = -TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(enumerated_program(module, y, h, u), lambda: None) - log_q
    return fast, enumerated
