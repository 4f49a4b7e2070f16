r"""The switching low-rank RNN: K low-rank networks over one shared latent, switched by a Markov chain.

Generative model (z_t in 1..K, x_t in R^R, y_t in R^D):

    z_1 ~ Cat(softmax(pi)),                         x_1 | z_1 = k ~ N(mu_k, diag(s_0^2))
    z_t | z_{t-1}, x_{t-1} ~ Cat(softmax(L(x_{t-1}))[z_{t-1}])     (stationary/sticky or recurrent)
    x_t | x_{t-1}, z_t = k ~ N(a x_{t-1} + V_k phi(U_k x_{t-1} - b_k), sigma_x^2 I)
    y_t | x_t ~ N(C x_t + d, diag sigma_y^2)   or   Poisson(softplus(C x_t + d))

b_k are state k's unit thresholds (``LowRankBank.threshold[k]``). The decay a is shared by the states
(:class:`~pyro_neurodyn.dynamics.LowRankBank`); Sigma_x = sigma_x^2 I
is isotropic, as in the switching state-space model. One module serves two objectives:

1. Collapsed (as the SRNN): :meth:`model` / :meth:`guide` of
   :class:`~pyro_neurodyn.models.switching_ssm.SwitchingStateSpaceModel`: an encoder samples x, the states
   are summed out exactly by the forward algorithm.
2. Variational SMC, a Rao-Blackwellized particle filter: :meth:`init` / :meth:`step` in the protocol of
   :class:`~pyro_neurodyn.infer.VSMC_ELBO`. Each of the ``S`` particles carries ``x_{t-1}`` ``(S, B, R)`` and
   its exact filter over the states, the normalized ``log alpha_{t-1}(k) = log p(z_{t-1} = k | x_{1:t-1})``
   ``(S, B, K)``. Step t predicts ``alpha_pred(k) = sum_j alpha_{t-1}(j) p(z_t = k | z_{t-1} = j, x_{t-1})``,
   scores the proposed ``x_t`` by the marginal over the states

       p(x_t | x_{t-1}, alpha_{t-1}) = sum_k alpha_pred(k) N(x_t; f_k(x_{t-1}), Sigma_x)

   (site ``"x"``, a ``MixtureSameFamily``; the states never enter the particle as samples), observes
   ``y_t`` (site ``"y"``), and updates ``alpha_t(k) ∝ alpha_pred(k) N(x_t; f_k(x_{t-1}), Sigma_x)``. So the
   weight ``log w_t = log p(x_t | x_{t-1}, alpha_{t-1}) + log p(y_t | x_t) - log q(x_t)`` has the states
   marginalized exactly inside every particle, and ``prod_t mean_s w_t^s`` is unbiased for p(y).
   The proposal is :class:`~pyro_neurodyn.guides.proposals.SwitchingKalmanProposal` (a Gaussian stand-in
   for the optimal proposal of this mixture).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import pyro
import pyro.distributions as dist
import torch
import torch.distributions as td
from pyro.nn import pyro_method
from torch import Tensor

from ..distributions.observation_mask import mask_observation
from ..dynamics import LowRankBank, make_emission, make_transitions
from ..dynamics.readouts import LinearForm
from ..guides.encoders import RecurrentEncoder
from ..infer.particle_state import step_memo
from .lowrank_rnn import trial_plate
from .module_names import unique_module_name
from .switching_ssm import SwitchingStateSpaceModel

__all__ = ["StatePrediction", "SwitchingLowRankModel"]


class StatePrediction(NamedTuple):
    """The prior of ``x_t`` given one particle's past: ``sum_k exp(log_probs[..., k]) N(means[..., k, :], diag(scale^2))``.

    ``log_probs`` ``(..., K)`` normalized (``alpha_pred``; at t = 0 the initial state probabilities),
    ``means`` ``(..., K, R)``, ``scale`` ``(R,)``.
    """

    log_probs: Tensor
    means: Tensor
    scale: Tensor

    def distribution(self) -> dist.MixtureSameFamily:
        """The marginal over the states as a Pyro distribution with event dim 1."""
        return dist.MixtureSameFamily(dist.Categorical(logits=self.log_probs), self.components())

    def components(self) -> dist.Independent:
        return dist.Normal(self.means, self.scale).to_event(1)


class SwitchingLowRankModel(SwitchingStateSpaceModel):
    """The switching low-rank RNN of the module docstring, from parts.

    Args:
        num_states: K. rank: R. num_units: N per state. obs_dim: D. input_dim: M (raw inputs of the units).
        activation: of the units (``"relu"``, ``"clipped_relu"``, ``"tanh"``, ``"identity"``).
        transitions: ``"stationary"``, ``"sticky"`` (default) or ``"recurrent"`` (logits from x_{t-1}).
        observation: ``"gaussian"`` (affine readout) or ``"poisson"`` (softplus rates).
        stickiness: initial diagonal bias of the transition logits (``"sticky"``: 3 if 0).
        latent_scale: fixed sigma_x, or None to learn it. decay: initial shared a.
        encoder_hidden: width of the collapsed objective's bidirectional encoder.
    """

    def __init__(
        self,
        num_states: int,
        rank: int,
        num_units: int,
        obs_dim: int,
        *,
        input_dim: int = 0,
        activation: str = "relu",
        transitions: str = "sticky",
        observation: str = "gaussian",
        stickiness: float = 0.0,
        latent_scale: Optional[float] = None,
        decay: float = 0.9,
        encoder_hidden: int = 32,
    ):
        super().__init__(
            dynamics=LowRankBank(num_states, rank, num_units, input_dim, activation, decay),
            transitions=make_transitions(transitions, num_states, rank, input_dim, stickiness),
            emission=make_emission(observation, rank, obs_dim, mapping="linear", link="softplus"),
            encoder=RecurrentEncoder(obs_dim, rank, input_dim, hidden_dim=encoder_hidden),
            latent_scale=latent_scale,
            name=unique_module_name("switching_lowrank"),
        )
        self.observation_family = observation

    # ----- the pieces shared with the proposal ------------------------------------------------------
    @pyro_method
    def predict(self, state: dict, t: int, u: Optional[Tensor] = None) -> StatePrediction:
        """The :class:`StatePrediction` of ``x_t`` from ``state`` (``x_{t-1}``, ``log_alpha_{t-1}``); the
        proposal and the model both ask for it, so it is computed once per step (``state.memo[(model, t)]``)."""
        if t == 0:
            return StatePrediction(torch.log_softmax(self.init_logits, -1), self.init_loc, self.init_log_scale.exp())
        return step_memo(state, (self, t), lambda: self._transition_prediction(state, t, u))

    def _transition_prediction(self, state: dict, t: int, u: Optional[Tensor]) -> StatePrediction:
        x_prev = state["x"]
        u_t = None if u is None else u[:, t]
        log_transitions = torch.log_softmax(self.transitions(x_prev, u_t), -1)  # (K, K) or (..., K, K)
        log_probs = torch.logsumexp(state["log_alpha"].unsqueeze(-1) + log_transitions, -2)
        scale = self.latent_log_scale.exp().expand(self.latent_dim)
        return StatePrediction(log_probs, self.dynamics(x_prev, u_t), scale)

    @pyro_method
    def emission_linear_form(self) -> Optional[LinearForm]:
        """``y = C x + d + N(0, diag r)`` of the Gaussian readout (None for Poisson)."""
        if self.observation_family != "gaussian":
            return None
        mapping = self.emission.mapping
        return LinearForm(mapping.weight, mapping.bias, (2.0 * self.emission.log_scale).exp())

    # ----- the particle program (VSMC) ---------------------------------------------------------------
    @pyro_method
    def init(self, state: dict, y: Optional[Tensor], u: Optional[Tensor] = None, mask: Optional[Tensor] = None, **kwargs) -> Tensor:
        """Score (or sample) ``x_1`` from the initial mixture, observe ``y_1`` (its entries where ``mask (B, T, D)``
        is True; None: all); write ``state``."""
        return self._particle_step(state, self.predict(state, 0, u), y, mask, 0)

    @pyro_method
    def step(self, state: dict, t: int, y: Optional[Tensor], u: Optional[Tensor] = None, mask: Optional[Tensor] = None, **kwargs) -> Tensor:
        """Score (or sample) ``x_t`` from the predicted mixture, observe ``y_t`` (where ``mask`` is True); write ``state``."""
        return self._particle_step(state, self.predict(state, t, u), y, mask, t)

    def _particle_step(self, state: dict, prediction: StatePrediction, y: Optional[Tensor], mask: Optional[Tensor], t: int) -> Tensor:
        with trial_plate(y.shape[0]):
            x = pyro.sample("x", prediction.distribution())
            observation = td.Independent(self.emission(x), 1)
            y_t = pyro.sample("y", mask_observation(observation, None if mask is None else mask[:, t]), obs=y[:, t])
        log_joint = prediction.log_probs + prediction.components().log_prob(x.unsqueeze(-2))  # (..., K)
        state["log_alpha"] = log_joint - torch.logsumexp(log_joint, -1, keepdim=True)
        state["x"] = x
        return y_t
