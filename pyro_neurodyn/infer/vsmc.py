"""Variational sequential Monte Carlo (VSMC / FIVO / AESMC) as a ``pyro.infer.ELBO``.

The objective works for any sequential model/guide pair written in the protocol of Pyro's
:class:`~pyro.infer.SMCFilter`, so one model serves training here and filtering there::

    class Model(PyroModule):                      # the guide likewise; decorate with @pyro_method
        def init(self, state, y, *args, **kwargs):    # samples the t = 0 latents, may observe y[:, 0]
        def step(self, state, t, y, *args, **kwargs): # samples the latents of step t, observes y[:, t]

``y`` is the first argument, batch-first ``(trials, T, ...)``; the objective calls ``init`` and then
``step`` for ``t = 1 .. T-1``, each traced on its own (site names repeat across steps). ``state`` is a
:class:`~pyro_neurodyn.infer.ParticleState`, a dict of tensors ``(S, *plates, *event)`` whose leading
dim is the particle dim (``S`` particles): the model writes it, the guide only reads it (writing raises
:class:`~pyro_neurodyn.infer.particle_state.ReadOnlyStateError`); its ``constants`` (per pass) and
``memo`` (per step) hold what model and guide compute once (see :mod:`~pyro_neurodyn.infer.particle_state`).
Particles are a vectorized plate at dim ``-(max_plate_nesting + 1)`` (as in ``vectorize_particles``),
so a trial plate at dim -1 gives tensors ``(S, trials, ...)``.

Maths. With ``S`` particles per trial, step ``t`` proposes ``x_t^s ~ q(x_t | x_{t-1}^{a_s}, y)`` from the
guide and weighs it by

    log w_t^s = log p(x_t^s, y_t | x_{t-1}^{a_s}) - log q(x_t^s | x_{t-1}^{a_s}, y)

(every model site of the step: the latents the guide proposed and the observations; latents that the
model samples itself are proposed from the model, as in a bootstrap filter, and carry no weight). The
bound, an estimate of ``log p(y)`` whose expectation is below it, is

    L = sum_trials sum_t log sum_s W_{t-1}^s w_t^s,    W_t^s ∝ W_{t-1}^s w_t^s  (normalized),

``W_{t-1} = 1/S`` after resampling, so with resampling at every step (the default) each term is
``log mean_s w_t^s``. Resampling draws ancestors ``a`` from the *detached* normalized weights
(systematic or multinomial; every step, or when the effective sample size falls below
``ess_threshold * S``) and gathers every state tensor by ancestor; the score-function term of the
resampling step is dropped (FIVO, Maddison et al. 2017; Naesseth et al. 2018; Le et al. 2018), so
gradients flow only through reparameterized samples and weights. ``exp(L)`` is an unbiased estimate of
``p(y)`` for every ``S``.

Gradient through resampling. Cutting the ancestors (``resampling_gradient="none"``, the papers' choice)
leaves a bias in the gradient of the model's parameters that more particles do not remove (measured
against a Kalman filter's exact score: about 10 standard errors off for the dynamics with the optimal
proposal at S = 30, 17-32 and a wrong sign with the bootstrap proposal at S = 100; ``tests/test_vsmc.py``).
``"stop_gradient"`` (Scibior & Wood, "Differentiable particle filtering without modifying the forward
pass", 2021) gives each resampled
particle the log weight ``log W_{t-1}^{a_s} - stop_grad(log W_{t-1}^{a_s}) - log S``: the same values, so
the same bound and the same filter, but the gradient becomes Fisher's identity over the particle paths,
``sum_s W_T^s grad sum_t log w_t^s``, a consistent estimate of ``grad log p(y)`` for parameters the model
and a model-derived proposal (bootstrap, optimal, Kalman-type) share. It is NOT a training signal for a
proposal's own parameters (an encoder): their exact gradient of ``log p(y)`` is zero.

Particle systems. Each index of the plate dims on which the step's latent sites vary is an independent
particle system (one per trial); model sites with extra plate dims (e.g. an observation plate over
channels) are summed over those dims. Sites outside the latents' plates (a global latent) would couple
the systems and are rejected.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple, Optional, Union

import pyro
import torch
from pyro import poutine
from pyro.infer import ELBO
from pyro.poutine.messenger import Messenger
from torch import Tensor

from ..data.validation import check_count
from .particle_state import ParticleState
from .resampling import RESAMPLING_SCHEMES, effective_sample_size, gather_particles
from .vsmc_step_weight import step_log_weight

__all__ = ["VSMC_ELBO", "ParticleFilterResult", "RESAMPLING_GRADIENTS"]

RESAMPLING_GRADIENTS = ("none", "stop_gradient")


class ParticleFilterResult(NamedTuple):
    """A particle filter's record of one pass over ``y`` (``T`` steps, ``S`` particles, systems ``*W``).

    Attributes:
        log_evidence: ``(*W)`` the estimate ``log p^(y) = sum_t log_normalizers[t]`` per particle system.
        log_normalizers: ``(T, *W)`` ``log sum_s W_{t-1}^s w_t^s``, the estimate of ``log p(y_t | y_{<t})``.
        states: ``{key: (T, S, *plates, *event)}`` the state after step ``t``'s model, before resampling,
            i.e. the particles of the filtering distribution ``p(x_t | y_{<=t})`` (keys present at every
            step with one shape).
        log_weights: ``(T, S, *W)`` their normalized log weights ``log W_t^s``.
        ess: ``(T, *W)`` effective sample size ``1 / sum_s (W_t^s)^2`` of those weights.
        resampled: ``(T, *W)`` bool, whether the system was resampled after step ``t``.
    """

    log_evidence: Tensor
    log_normalizers: Tensor
    states: dict
    log_weights: Tensor
    ess: Tensor
    resampled: Tensor


def _protocol_methods(fn: Callable, role: str) -> tuple[Callable, Callable]:
    """``(init, step)`` of a model or guide, seen through Pyro handlers wrapped around it.

    ``poutine.scale(model, s)`` (as :func:`~pyro_neurodyn.infer.fit_svi` applies for minibatches) or
    any other handler wrapping the object is applied to its ``init`` and ``step`` in the same order.
    """
    handlers: list[Messenger] = []
    while not (hasattr(fn, "init") and hasattr(fn, "step")):
        if isinstance(fn, functools.partial) and len(fn.args) == 2 and isinstance(fn.args[0], Messenger):
            handlers.append(fn.args[0])
            fn = fn.args[1]
        else:
            raise TypeError(
                f"the {role} must be an object with init(state, y, ...) and step(state, t, y, ...) methods "
                f"(the protocol of pyro.infer.SMCFilter), got {fn!r}"
            )
    init, step = fn.init, fn.step
    for handler in handlers:  # innermost first, so the outermost handler ends up outermost
        init, step = handler(init), handler(step)
    return init, step


class VSMC_ELBO(ELBO):
    """The variational SMC bound (see the module docstring), usable with ``pyro.infer.SVI``.

    Args:
        num_particles: particles ``S`` per trial.
        resampling: ``"systematic"`` (default, lower variance) or ``"multinomial"``.
        ess_threshold: ``None`` resamples after every step; a number in ``(0, 1]`` resamples a trial
            only when its effective sample size is below ``ess_threshold * S``.
        max_plate_nesting: how many plate dims the model uses (the particle plate goes left of them).
        resampling_gradient: ``"none"`` (FIVO: ancestors cut, default) or ``"stop_gradient"`` (consistent
            score estimates for the model's parameters; see the module docstring).

    ``loss``/``differentiable_loss``/``loss_and_grads`` return ``-L`` summed over trials (scaled by
    ``poutine.scale``, e.g. for minibatches); :meth:`log_evidence` returns the per-trial estimate of
    ``log p(y)`` and :meth:`filter` the whole particle record, both without gradients.
    """

    def __init__(
        self,
        num_particles: int = 64,
        resampling: str = "systematic",
        ess_threshold: Optional[float] = None,
        max_plate_nesting: int = 1,
        retain_graph: Optional[bool] = None,
        resampling_gradient: str = "none",
    ):
        num_particles = check_count(num_particles, "num_particles")
        max_plate_nesting = check_count(max_plate_nesting, "max_plate_nesting", minimum=0)
        if resampling not in RESAMPLING_SCHEMES:
            raise ValueError(f"resampling must be one of {sorted(RESAMPLING_SCHEMES)}, got {resampling!r}")
        if ess_threshold is not None and not (isinstance(ess_threshold, (int, float)) and 0 < ess_threshold <= 1):
            raise ValueError(f"ess_threshold must be None or a number in (0, 1], got {ess_threshold!r}")
        if resampling_gradient not in RESAMPLING_GRADIENTS:
            raise ValueError(f"resampling_gradient must be one of {RESAMPLING_GRADIENTS}, got {resampling_gradient!r}")
        super().__init__(num_particles=num_particles, max_plate_nesting=max_plate_nesting, retain_graph=retain_graph)
        self.resampling = resampling
        self.ess_threshold = ess_threshold
        self._ancestors = RESAMPLING_SCHEMES[resampling]
        self.resampling_gradient = resampling_gradient

    # ----------------------------------------------------------------------------------------------
    # pyro.infer.ELBO interface
    def differentiable_loss(self, model, guide, *args, **kwargs) -> Tensor:
        """``-L`` (a scalar tensor to differentiate), ``L`` summed over trials and steps."""
        return -self._run(model, guide, args, kwargs, record=False)[0]

    def loss(self, model, guide, *args, **kwargs) -> float:
        """``-L`` as a float, without gradients."""
        with torch.no_grad():
            return -self._run(model, guide, args, kwargs, record=False)[0].item()

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        """``-L`` as a float; its gradient is accumulated into the parameters' ``.grad``."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        if loss.requires_grad:
            loss.backward(retain_graph=self.retain_graph)
        return loss.item()

    def _get_trace(self, model, guide, args, kwargs):
        raise NotImplementedError("VSMC_ELBO traces every step on its own; there is no single model/guide trace")

    # ----------------------------------------------------------------------------------------------
    # filtering
    def log_evidence(self, model, guide, *args, **kwargs) -> Tensor:
        """The estimate ``log p^(y)`` per particle system (trial), shape ``(*W)``, without gradients."""
        with torch.no_grad():
            return self._run(model, guide, args, kwargs, record=False)[1]

    def filter(self, model, guide, *args, **kwargs) -> ParticleFilterResult:
        """Run the particle filter without gradients and return its record (:class:`ParticleFilterResult`)."""
        with torch.no_grad():
            return self._run(model, guide, args, kwargs, record=True)[2]

    # ----------------------------------------------------------------------------------------------
    def _run(self, model, guide, args: tuple, kwargs: dict, record: bool):
        """One particle filter pass: ``(bound (scalar, scaled), log_evidence (*W), record or None)``."""
        if not args or not isinstance(args[0], Tensor) or args[0].dim() < 2:
            raise ValueError("the first argument of model and guide must be y, a tensor (trials, T, ...)")
        num_steps = args[0].shape[1]
        model_init, model_step = _protocol_methods(model, "model")
        guide_init, guide_step = _protocol_methods(guide, "guide")
        particle_plate = self.particle_plate()
        state = ParticleState()
        log_prev: Optional[Tensor] = None  # normalized log weights W_{t-1}: 1/S before the first step
        bound = 0.0
        log_evidence = 0.0
        history = {"log_normalizers": [], "states": [], "log_weights": [], "ess": [], "resampled": []}
        for t in range(num_steps):
            functions = (model_init, guide_init) if t == 0 else (model_step, guide_step)
            log_prev, log_normalizer, scale = self.particle_step(functions, state, t, args, kwargs, log_prev, particle_plate)
            bound = bound + scale * log_normalizer.sum()
            log_evidence = log_evidence + log_normalizer.detach()
            resample = self._should_resample(log_prev) if t < num_steps - 1 or record else None
            if record:
                history["log_normalizers"].append(log_normalizer)
                history["states"].append(dict(state))
                history["log_weights"].append(log_prev)
                history["ess"].append(effective_sample_size(log_prev))
                history["resampled"].append(resample)
            if t < num_steps - 1:
                log_prev = self._resample(state, log_prev, resample)
        result = self._record(history) if record else None
        return torch.as_tensor(bound), log_evidence, result

    def particle_plate(self) -> pyro.plate:
        """The vectorized particle plate, ``S`` particles at dim ``-(max_plate_nesting + 1)``."""
        return pyro.plate("vsmc_particles", self.num_particles, dim=-(self.max_plate_nesting + 1))

    def particle_step(
        self, functions: tuple, state: ParticleState, t: int, args: tuple, kwargs: dict, log_prev: Optional[Tensor], particle_plate: pyro.plate
    ) -> tuple[Tensor, Tensor, Union[float, Tensor]]:
        """One propose-and-weigh step of the particle filter (resampling is :meth:`resample`, between steps).

        ``functions``: ``(model_fn, guide_fn)``, the ``init`` pair at ``t = 0`` and the ``step`` pair after;
        they are called with ``(state, *args)`` at ``t = 0`` and ``(state, t, *args)`` after (plus ``kwargs``).
        ``log_prev``: the normalized log weights ``log W_{t-1}`` ``(S, *W)`` after resampling (None at the first step:
        uniform). The guide proposes the step's latents, the model (replaying them) writes ``state``.
        Returns ``(log W_t (S, *W) normalized, log_normalizer (*W) = log sum_s W_{t-1}^s w_t^s, scale)``.
        Used by :meth:`filter`'s loop and by the online filter
        (:class:`~pyro_neurodyn.infer.particle_online_filter.ParticleOnlineFilter`), so both draw in one order.
        """
        model_fn, guide_fn = functions
        call_args = (state,) + tuple(args) if t == 0 else (state, t) + tuple(args)
        state.begin_step()
        with poutine.block(hide_types=["sample"]), particle_plate:
            with state.read_only(f"the guide's {'init' if t == 0 else f'step at t = {t}'}"):
                guide_trace = poutine.trace(guide_fn).get_trace(*call_args, **kwargs)
            model_trace = poutine.trace(poutine.replay(model_fn, trace=guide_trace)).get_trace(*call_args, **kwargs)
        log_w, scale = self._step_log_weight(model_trace, guide_trace, t)
        if log_prev is None:  # in the weights' dtype, on their device
            log_prev = log_w.new_full((), -math.log(self.num_particles))
        log_joint = log_prev + log_w
        log_normalizer = torch.logsumexp(log_joint, dim=0)  # (*W)
        return log_joint - log_normalizer, log_normalizer, scale

    def resample(self, state: dict, log_weights: Tensor) -> Tensor:
        """Resample ``state`` in place after a step with normalized ``log_weights`` ``(S, *W)`` (every system, or
        those whose ESS is below ``ess_threshold * S``); return the log weights the next step starts from."""
        return self._resample(state, log_weights, self._should_resample(log_weights))

    def _step_log_weight(self, model_trace, guide_trace, t: int) -> tuple[Tensor, float]:
        """``log w_t`` ``(S, *W)`` of one step and the scale of its sites (:func:`.vsmc_step_weight.step_log_weight`)."""
        return step_log_weight(model_trace, guide_trace, t, self.max_plate_nesting)

    def _should_resample(self, log_weights: Tensor) -> Optional[Tensor]:
        """``None`` for every system, else a bool mask ``(*W)`` of the systems whose ESS is too small."""
        if self.ess_threshold is None:
            return None
        return effective_sample_size(log_weights) < self.ess_threshold * self.num_particles

    def _resample(self, state: dict, log_weights: Tensor, which: Optional[Tensor]) -> Tensor:
        """Resample ``state`` in place (all systems, or those in mask ``which``); return the new log weights."""
        num_particles = log_weights.shape[0]
        if which is not None and not bool(which.any()):
            return log_weights
        ancestors = self._ancestors(log_weights)
        uniform = torch.full_like(log_weights, -math.log(num_particles))
        if self.resampling_gradient == "stop_gradient":  # value 1/S, gradient of the ancestor's log W
            survivors = gather_particles(log_weights, ancestors)
            uniform = uniform + (survivors - survivors.detach())
        if which is not None:
            keep = torch.arange(num_particles, device=ancestors.device).reshape((num_particles,) + (1,) * (log_weights.dim() - 1))
            ancestors = torch.where(which, ancestors, keep)
            uniform = torch.where(which, uniform, log_weights)
        for key, value in state.items():
            state[key] = gather_particles(value, ancestors)
        return uniform

    def _record(self, history: dict) -> ParticleFilterResult:
        states = {}
        for key, first in history["states"][0].items():
            values = [s.get(key) for s in history["states"]]
            if all(v is not None and v.shape == first.shape for v in values):
                states[key] = torch.stack(values)
        log_weights = [lw.expand_as(history["log_weights"][-1]) for lw in history["log_weights"]]
        resampled = [
            torch.ones(lw.shape[1:], dtype=torch.bool, device=lw.device) if r is None else r for r, lw in zip(history["resampled"], log_weights)
        ]
        resampled[-1] = torch.zeros_like(resampled[-1])  # nothing follows the last step
        log_normalizers = torch.stack(history["log_normalizers"])
        return ParticleFilterResult(
            log_evidence=log_normalizers.sum(0),
            log_normalizers=log_normalizers,
            states=states,
            log_weights=torch.stack(log_weights),
            ess=torch.stack(history["ess"]),
            resampled=torch.stack(resampled),
        )
