"""The stochastic low-rank RNN as a Pyro program (Pals et al., NeurIPS 2024).

Generative model for trials ``b`` with recordings ``y`` ``(B, T, D)`` and optional inputs ``u`` ``(B, T, Du)``:

    v_0 = 0 (filtered inputs) or u_0 (raw inputs)
    x_0 ~ N(mu_1 + U^+ W_u v_0, Sigma_1)
    x_t ~ N(a x_{t-1} + V phi(U x_{t-1} + W_u v_{t-1}, theta), Sigma_x)              t = 1 .. T-1
    v_t = a v_{t-1} + (1 - a) u_{t-1} (filtered) or u_t (raw)
    y_t ~ readout(x_t or c_t = U x_t + W_u v_t)                                        t = 0 .. T-1

(theta the units' thresholds, ``transition.threshold``; see :mod:`pyro_neurodyn.dynamics.lowrank` for phi and the N-unit network, and
:mod:`pyro_neurodyn.dynamics.readouts` for the readouts).

The program is written as ``init(state, y, u)`` / ``step(state, t, y, u)`` in the protocol of Pyro's
``SMCFilter``, so the same model trains with :class:`~pyro_neurodyn.infer.VSMC_ELBO` and filters there.
Each step samples site ``"x"`` and observes site ``"y"`` inside the plate ``"trials"`` (dim -1) and writes
``state["x"]`` ``(..., B, R)`` (and ``state["v"]`` ``(..., B, Du)`` with inputs). ``y = None`` samples the
recordings instead (generation; give ``num_trials`` to ``init`` when there are neither ``y`` nor ``u``).
``mask (B, T, D)`` (True = observed, None: all) restricts the likelihood of ``y_t`` to its observed entries:
a missing entry or a padded step after the end of a trial contributes nothing, and the latent runs on
through it.
``state`` is a :class:`~pyro_neurodyn.infer.ParticleState` under VSMC_ELBO (and in :meth:`forward`), whose
``constants`` and ``memo`` keep what a pass and a step compute once; any other dict works too, the values
then being recomputed on every call.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import pyro
import torch
from pyro.contrib.autoname import scope
from pyro.nn import PyroModule, pyro_method
from torch import Tensor, nn

from ..dynamics.lowrank import Covariance, CovarianceFactors, LowRankTransition, SharedCovarianceNormal
from ..distributions.observation_mask import mask_observation
from ..dynamics.readouts import LinearForm
from ..infer.particle_state import ParticleState, pass_constant, step_memo
from .module_names import unique_module_name

__all__ = ["LatentPrior", "LowRankRNNModel", "PassConstants", "trial_plate"]


class LatentPrior(NamedTuple):
    """The model's distribution of ``x_t`` given the past, ``N(loc, Sigma)``, and the input ``v_t``.

    ``loc`` ``(..., R)``; ``noise`` the :class:`~pyro_neurodyn.dynamics.lowrank.CovarianceFactors` of
    Sigma (Sigma_1 at t = 0, Sigma_x after); ``v`` ``(..., Du)``, or None without inputs.
    """

    loc: Tensor
    noise: CovarianceFactors
    v: Optional[Tensor]


class PassConstants(NamedTuple):
    """What every step of one pass reads, fetched once at its start (kept in ``state.constants[model]``).

    Fetching the parts inside the model's Pyro context registers their parameters with Pyro (what SVI
    updates); the steps then read plain tensors and modules, with no Pyro statement per parameter.
    ``transition``, ``readout``: the modules; ``initial_mean`` ``(R,)``; the factorized covariances
    ``initial_noise`` (Sigma_1), ``noise`` (Sigma_x) and ``readout_noise`` (None for a Poisson readout).
    """

    transition: LowRankTransition
    readout: nn.Module
    initial_mean: Tensor
    initial_noise: CovarianceFactors
    noise: CovarianceFactors
    readout_noise: Optional[CovarianceFactors]


class LowRankRNNModel(PyroModule):
    """The Pyro model of the module docstring, built from plain torch parts.

    Args:
        transition: :class:`~pyro_neurodyn.dynamics.lowrank.LowRankTransition` (a, U, V, threshold, W_u).
        readout: a readout of :mod:`pyro_neurodyn.dynamics.readouts` (its ``source`` says whether it reads
            the latent or the units' currents).
        noise: Sigma_x, and ``initial_noise``: Sigma_1 (:class:`~pyro_neurodyn.dynamics.lowrank.Covariance`).
        filter_inputs: low-pass filter the inputs through the units (True) or feed them raw.

    Speed: a :class:`~pyro_neurodyn.infer.ParticleState` is one pass (one particle filter run); the
    covariance factorizations are computed once per pass (``state.constants[model]``), and the prior of
    ``x_t`` once per step although both the guide and the model ask for it (``state.memo[(model, t)]``).
    """

    def __init__(
        self,
        transition: LowRankTransition,
        readout: nn.Module,
        noise: Covariance,
        initial_noise: Covariance,
        *,
        filter_inputs: bool = True,
    ):
        super().__init__(name=unique_module_name("lowrank_rnn"))
        self.transition = transition
        self.readout = readout
        self.noise = noise
        self.initial_noise = initial_noise
        self.initial_mean = nn.Parameter(torch.zeros(transition.rank))
        self.filter_inputs = filter_inputs

    # ---------------------------------------------------------------------------------------------
    # the pieces, shared with the proposals (guides); pyro_methods so that the parameters they read
    # are registered with Pyro whoever calls them first
    @pyro_method
    def pass_constants(self, state: dict) -> PassConstants:
        """The :class:`PassConstants` of the pass that ``state`` belongs to (computed on first use)."""
        return pass_constant(state, self, self._fetch_constants)

    def _fetch_constants(self) -> PassConstants:
        readout = self.readout
        readout_noise = getattr(readout, "noise", None)
        return PassConstants(
            transition=self.transition,
            readout=readout,
            initial_mean=self.initial_mean,
            initial_noise=self.initial_noise.factors(),
            noise=self.noise.factors(),
            readout_noise=None if readout_noise is None else readout_noise.factors(),
        )

    @pyro_method
    def latent_prior(self, state: dict, t: int, u: Optional[Tensor]) -> LatentPrior:
        """The prior of ``x_t`` given ``state`` (``x_{t-1}``, ``v_{t-1}``) and the inputs ``u`` ``(B, T, Du)``."""
        constants = self.pass_constants(state)
        if t == 0:
            return self._initial_prior(constants, u)
        return step_memo(state, (self, t), lambda: self._transition_prior(constants, state, t, u))

    def _initial_prior(self, constants: PassConstants, u: Optional[Tensor]) -> LatentPrior:
        transition = constants.transition
        v = None
        loc = constants.initial_mean
        if u is not None:
            v = torch.zeros_like(u[:, 0]) if self.filter_inputs else u[:, 0]
            if not self.filter_inputs and transition.W_u is not None:
                loc = loc + v @ (torch.linalg.pinv(transition.U) @ transition.W_u).T
        return LatentPrior(loc, constants.initial_noise, v)

    def _transition_prior(self, constants: PassConstants, state: dict, t: int, u: Optional[Tensor]) -> LatentPrior:
        transition = constants.transition
        v_prev = state.get("v")
        v = None
        if u is not None:
            v = transition.filter_input(v_prev, u[:, t - 1]) if self.filter_inputs else u[:, t]
        return LatentPrior(transition(state["x"], v_prev), constants.noise, v)

    def readout_source(self, x: Tensor, v: Optional[Tensor]) -> Tensor:
        """What the readout reads: ``x`` itself or the units' currents ``U x + W_u v``."""
        return _readout_source(self.transition, self.readout, x, v)

    @pyro_method
    def readout_linear_form(self, v: Optional[Tensor]) -> Optional[LinearForm]:
        """``y_t = C x_t + d + noise`` of a Gaussian readout (None for a non-Gaussian one); d ``(..., D)``."""
        readout = self.readout
        if not readout.reads_units:
            return readout.linear_form()
        transition = self.transition
        offset = None if v is None or transition.W_u is None else v @ transition.W_u.T
        return readout.linear_form(transition.U, offset)

    # ---------------------------------------------------------------------------------------------
    # the Pyro program
    @pyro_method
    def init(
        self, state: dict, y: Optional[Tensor], u: Optional[Tensor] = None, mask: Optional[Tensor] = None, *, num_trials: Optional[int] = None
    ) -> Tensor:
        """Sample ``x_0``, observe (or sample) ``y_0``; write ``state``; return ``y_0``."""
        prior = self.latent_prior(state, 0, u)
        return self._sample_step(state, prior, y, mask, 0, _num_trials(y, u, num_trials))

    @pyro_method
    def step(self, state: dict, t: int, y: Optional[Tensor], u: Optional[Tensor] = None, mask: Optional[Tensor] = None, **kwargs) -> Tensor:
        """Sample ``x_t`` given ``state``, observe (or sample) ``y_t``; write ``state``; return ``y_t``."""
        prior = self.latent_prior(state, t, u)
        return self._sample_step(state, prior, y, mask, t, state["x"].shape[-2])

    def _sample_step(self, state: dict, prior: LatentPrior, y: Optional[Tensor], mask: Optional[Tensor], t: int, num_trials: int) -> Tensor:
        constants = self.pass_constants(state)
        with trial_plate(num_trials):
            x = pyro.sample("x", SharedCovarianceNormal(prior.loc, prior.noise))
            source = _readout_source(constants.transition, constants.readout, x, prior.v)
            observation = constants.readout(source, constants.readout_noise)
            if mask is not None:
                observation = mask_observation(_per_channel(observation), mask[:, t])
            y_t = pyro.sample("y", observation, obs=None if y is None else y[:, t])
        state["x"] = x
        if prior.v is not None:
            state["v"] = prior.v.expand(x.shape[:-1] + prior.v.shape[-1:])
        return y_t

    def forward(
        self,
        y: Optional[Tensor] = None,
        u: Optional[Tensor] = None,
        mask: Optional[Tensor] = None,
        *,
        num_trials: Optional[int] = None,
        num_steps: Optional[int] = None,
    ) -> dict:
        """The whole sequence as one program (sites ``"t/x"``, ``"t/y"`` for t = 0..T-1).

        Returns ``{"x": (B, T, R), "y": (B, T, D)}``, the latents and the (observed or sampled) recordings.
        """
        if num_steps is None:
            if y is None and u is None:
                raise ValueError("give y, u or num_steps to set the number of time steps")
            num_steps = (y if y is not None else u).shape[1]
        state = ParticleState()
        latents, observations = [], []
        for t in range(num_steps):
            with scope(prefix=str(t)):
                y_t = self.init(state, y, u, mask, num_trials=num_trials) if t == 0 else self.step(state, t, y, u, mask)
            latents.append(state["x"])
            observations.append(y_t)
        return {"x": torch.stack(latents, dim=-2), "y": torch.stack(observations, dim=-2)}


@functools.lru_cache(maxsize=32)
def trial_plate(num_trials: int) -> pyro.plate:
    """``pyro.plate("trials", num_trials, dim=-1)``, built once per size.

    Building a plate inside a trace sends a Pyro message and records a subsample site, twice per VSMC
    step (guide and model): a measurable share of a step (``benchmarks/bench_lowrank.py``, oscillator).
    The cache holds no state of any model (a plate is its name, size and dim); re-entering a cached plate
    only skips re-recording the full-size ``"trials"`` subsample site, which nothing reads.
    """
    return pyro.plate("trials", num_trials, dim=-1)


def _num_trials(y: Optional[Tensor], u: Optional[Tensor], num_trials: Optional[int]) -> int:
    if y is not None:
        return y.shape[0]
    if u is not None:
        return u.shape[0]
    if num_trials is None:
        raise ValueError("give y, u or num_trials to set the number of trials")
    return num_trials


def _per_channel(observation):
    """A diagonal Gaussian readout as independent channels (which a mask can split); others as they are."""
    return observation.per_coordinate() if isinstance(observation, SharedCovarianceNormal) else observation


def _readout_source(transition: LowRankTransition, readout: nn.Module, x: Tensor, v: Optional[Tensor]) -> Tensor:
    return transition.currents(x, v) if readout.reads_units else x
