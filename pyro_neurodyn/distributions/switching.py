"""Exact inference in a discrete switching chain: log marginal, posterior, Viterbi, posterior samples.

The chain has K states z_1..z_T and is described by three log-space tensors (batch-first; their
leading batch dims broadcast against each other):

* ``init_logits``   ``(..., K)``: unnormalized log p(z_1 = k).
* ``trans_logits``  ``(..., T-1, K, K)``, ``(..., 1, K, K)`` or ``(K, K)``: ``trans_logits[..., t, i, j]``
  is the unnormalized log p(z_{t+2} = j | z_{t+1} = i) (0-based t; normalized over j here).
* ``emission_logp`` ``(..., T, K)``: log p(observation at t | z_t = k), any real score.

Values: real numbers or -inf (an impossible state, transition or emission). Every function raises a
``ValueError`` naming the argument, before any work, for NaN, +inf, or a row of all -inf (no initial
state; a state without successor; a step no state can emit); the posterior, filter, Viterbi and
sampling functions also for a chain that -inf entries leave without any path (log Z = -inf), for which
:func:`switching_log_marginal` returns -inf.

The joint is ``log p(z, obs) = log p(z_1) + sum_t log p(z_{t+1} | z_t) + sum_t e_t[z_t]``. Everything
here sums or maximizes over the K^T paths exactly, with balanced-tree scans of depth O(log T)
(:mod:`~pyro_neurodyn.distributions.semiring_scan`); nothing loops over time in Python.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from .switching_forward_backward import (
    SwitchingPosterior,
    switching_filter,
    switching_filter_step,
    switching_log_marginal,
    switching_posterior,
)
from .switching_paths import (
    SwitchingBackwardKernel,
    ViterbiPath,
    switching_backward_kernel,
    switching_sample,
    switching_viterbi,
)

__all__ = [
    "SwitchingBackwardKernel",
    "SwitchingFactors",
    "SwitchingPosterior",
    "ViterbiPath",
    "switching_backward_kernel",
    "switching_filter",
    "switching_filter_step",
    "switching_log_marginal",
    "switching_posterior",
    "switching_sample",
    "switching_viterbi",
]


class SwitchingFactors(NamedTuple):
    """The three log-space tensors that define a chain (see the module docstring for shapes)."""

    init_logits: Tensor
    trans_logits: Tensor
    emission_logp: Tensor
