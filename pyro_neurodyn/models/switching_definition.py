r"""What a switching state-space model is, step by step: the five distributions a variant defines.

For discrete states z_t in {0..K-1}, a continuous latent h_t in R^P, observations y_t and optional
inputs u_t, a switching model is

    z_1 ~ Cat(softmax(initial_logits(u_1)))                 h_1 | z_1 = k ~ initial_latent(u_1)[k]
    z_t | z_{t-1} = j ~ Cat(softmax(transition_logits(h_{t-1}, u_t)[j]))
    h_t | h_{t-1}, z_t = k ~ latent_step(h_{t-1}, u_t)[k]
    y_t | h_t ~ observation(h_t, u_t)

Every method is pointwise over leading dims: given ``h_prev (..., P)`` and ``u (..., M)`` it returns
the step's distributions for every leading index at once, so one call scores a whole path
``(..., T, P)`` (the fast collapsed objective) and the same call scores one step ``(trials, P)`` (the
stepwise Pyro program, simulation). From these five methods
:class:`~pyro_neurodyn.models.SwitchingStateSpaceModel` derives everything else: the collapsed ELBO
(``latent_factors`` -> exact forward algorithm), the plain Pyro program with a ``z_t`` site per step
(``stepwise_model``: enumeration, ``Predictive`` with the states, ``infer_discrete``), ancestral
simulation, FFBS draws of the states and decoding. :func:`~pyro_neurodyn.models.check_model` checks
any variant's fast objective and gradients against Pyro's ``TraceEnum_ELBO`` on the stepwise program.
"""

from __future__ import annotations

from typing import Optional, Protocol, runtime_checkable

from torch import Tensor
from torch.distributions import Distribution

__all__ = ["SwitchingStepDefinition"]


@runtime_checkable
class SwitchingStepDefinition(Protocol):
    """The per-step definition of a switching model (see the module docstring for the maths).

    Shapes: K = ``num_states``, P = ``latent_dim``, D observed channels, M inputs; ``...`` any leading dims.
    """

    num_states: int
    latent_dim: int

    def initial_logits(self, u_first: Optional[Tensor] = None) -> Tensor:
        """Unnormalized ``log p(z_1 = k)``: ``(K,)`` or ``(..., K)`` for inputs ``u_first (..., M)``."""

    def initial_latent(self, u_first: Optional[Tensor] = None) -> Distribution:
        """``p(h_1 | z_1 = k)`` for every k: batch ``(..., K)``, event ``(P,)`` (for inputs ``u_first (..., M)``)."""

    def transition_logits(self, h_prev: Tensor, u: Optional[Tensor] = None) -> Tensor:
        """Unnormalized ``log p(z_t = k | z_{t-1} = j, h_{t-1}, u_t)`` at ``[..., j, k]``: ``h_prev (..., P)``,
        ``u (..., M)`` -> ``(K, K)`` or ``(..., K, K)``."""

    def latent_step(self, h_prev: Tensor, u: Optional[Tensor] = None) -> Distribution:
        """``p(h_t | h_{t-1}, z_t = k, u_t)`` for every k: ``h_prev (..., P)``, ``u (..., M)`` -> batch ``(..., K)``,
        event ``(P,)``."""

    def observation(self, h: Tensor, u: Optional[Tensor] = None) -> Distribution:
        """``p(y_t | h_t, u_t)``: ``h (..., P)``, ``u (..., M)`` -> batch ``(...)``, event ``(D,)``."""
