r"""Online state decoding for a switching state-space model (SRNN, SLDS, rSLDS) with a causal encoder.

At each new observation y_t (inputs u_t):

1. the causal encoder's recurrence takes one step from its carried state (LSTM: (hidden, cell)), and its
   head gives (a_t, m_t); the latent mean is ``h_t = a_t * h_{t-1} + m_t`` (``h_1 = m_1``), the mean of
   ``q(h_t | y_{1:t})`` that the encoder computes offline for the whole prefix;
2. the chain's factors of that step come from the model's step definition, as offline
   (:meth:`~pyro_neurodyn.models.SwitchingStateSpaceModel.step_factors`): the transition logits
   ``L(h_{t-1}, u_t)`` and ``e_t[k] = log p(h_t | h_{t-1}, z_t = k)`` (at t = 1, ``initial_logits`` and
   ``log p(h_1 | z_1 = k)``);
3. one step of the exact forward recursion (:func:`~pyro_neurodyn.distributions.switching_filter_step`):

       alpha_t(k) ∝ e_t[k] * sum_j alpha_{t-1}(j) p(z_t = k | z_{t-1} = j, h_{t-1}, u_t).

``p(y_t | h_t)`` does not depend on z and cancels in the normalization. The output, ``alpha_t = p(z_t | h_{1:t})``
at the causal posterior-mean path, equals the offline causal filter on the same data
(``SRNN.filter_marginals``: the encoder over the whole prefix, then the parallel-scan filter), which the
tests check to float32/float64 rounding. Memory: the recurrent state, the last latent mean and the
last belief, ``O(B (H + P + K))`` whatever the number of updates.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Optional

from torch import Tensor

from ..distributions import switching_filter_step
from ..guides.encoders import RecurrentEncoder
from ..models.switching_ssm import SwitchingStateSpaceModel
from .online_filter import OnlineFilter

__all__ = ["SwitchingOnlineFilter"]


class SwitchingOnlineFilter(OnlineFilter):
    """``p(z_t | y_{1:t})`` one observation at a time (see the module docstring for the maths).

    Args:
        model: the switching model (its step definition scores the chain).
        encoder: a causal :class:`~pyro_neurodyn.guides.RecurrentEncoder` of ``(y, u)`` (``causal=True``), e.g.
            ``model.filter_encoder``; a ValueError for a bidirectional one.
        obs_dim: D. counts: observations are counts (a Poisson readout): checked at every update.

    ``update(y_t (D,) or (B, D), u_t (M,) or (B, M)) -> (K,) or (B, K)``; :attr:`latent_mean` is the current
    ``E_q[h_t | y_{1:t}]`` ``(B, P)``.
    """

    def __init__(self, model: SwitchingStateSpaceModel, encoder: RecurrentEncoder, obs_dim: int, *, counts: bool = False):
        if not getattr(encoder, "causal", False):
            raise ValueError("encoder: online filtering needs a causal encoder (RecurrentEncoder(..., causal=True)); a bidirectional one reads the future")
        self.model, self.encoder = model, encoder
        parameter = next(encoder.parameters())
        super().__init__(obs_dim, encoder.input_dim, model.num_states, dtype=parameter.dtype, device=parameter.device, counts=counts,
                         modules=(model, encoder))  # fmt: skip

    def _reset_state(self) -> None:
        self._carry: Optional[tuple] = None  # the encoder's recurrent state
        self._mean: Optional[Tensor] = None  # h_{t-1}, (B, P)
        self._log_belief: Optional[Tensor] = None  # log alpha_{t-1}, (B, K)

    def state_tensors(self) -> dict[str, Tensor]:
        if self._mean is None:
            return {}
        carry = self._carry if isinstance(self._carry, tuple) else (self._carry,)
        return {"latent_mean": self._mean, "log_belief": self._log_belief, **{f"encoder_state_{i}": c for i, c in enumerate(carry)}}

    @property
    def latent_mean(self) -> Optional[Tensor]:
        """The current posterior-mean latent ``E_q[h_t | y_{1:t}]`` ``(B, P)`` (None before the first update)."""
        return self._mean

    def _step(self, y: Tensor, u: Optional[Tensor], mask: Optional[Tensor]) -> Tensor:
        with getattr(self.model, "_pyro_context", nullcontext()):  # a PyroModule: read each parameter once per update
            return self._filter_step(y, u, mask)

    def _filter_step(self, y: Tensor, u: Optional[Tensor], mask: Optional[Tensor]) -> Tensor:
        coef, loc, self._carry = self.encoder.step(y, u, self._carry, mask)  # a missing entry reads as the channel's mean
        if self._mean is None:
            mean = loc
            init_logits, emission_logp = self.model.first_step_factors(mean, u)
            log_belief = switching_filter_step(init_logits, emission_logp)
        else:
            mean = coef * self._mean + loc
            trans_logits, emission_logp = self.model.step_factors(self._mean, mean, u)
            log_belief = switching_filter_step(self._log_belief, emission_logp, trans_logits)
        self._mean, self._log_belief = mean, log_belief.expand(mean.shape[:-1] + log_belief.shape[-1:])
        return self._log_belief.exp()
