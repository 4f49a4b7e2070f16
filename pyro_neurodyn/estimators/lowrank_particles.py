"""Particle filtering, log evidence and generation of a ``LowRankRNN`` (a mixin of ``LowRankRNN``).

The filter is :class:`~pyro_neurodyn.infer.VSMC_ELBO`'s (the fit's proposal, ``self.num_particles``
particles unless asked otherwise); generation runs the model's own program with no observations.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import pyro
import torch
from pyro import poutine
from torch import Tensor

from ..data.validation import as_inputs, as_trials, check_count
from ..infer import VSMC_ELBO
from ..infer.particle_online_filter import ParticleOnlineFilter, filtered_mean
from .base import mark_padding, module_local

__all__ = ["LowRankFilterResult", "LowRankParticleMethods", "LowRankSample"]


class LowRankFilterResult(NamedTuple):
    """Particle filter output, batch-first: ``means`` ``(B, T, R)`` = ``sum_k W_t^k x_t^k`` (the filtering
    means ``E[x_t | y_{<=t}]``), ``particles`` ``(B, T, S, R)``, normalized ``log_weights`` ``(B, T, S)`` (S particles),
    ``ess`` ``(B, T)``, and ``log_evidence`` ``(B,)`` the estimate of ``log p(y)``."""

    means: Tensor
    particles: Tensor
    log_weights: Tensor
    ess: Tensor
    log_evidence: Tensor


class LowRankSample(NamedTuple):
    """Generated trials: ``latents`` ``(B, T, R)``, recordings ``y`` ``(B, T, D)``, and ``means``
    ``(B, T, D)`` the readout means (Gaussian mean or Poisson rate) given the latents."""

    latents: Tensor
    y: Tensor
    means: Tensor


class LowRankParticleMethods:
    """Filtering, log evidence and sampling (methods of ``LowRankRNN``)."""

    @torch.no_grad()
    def log_evidence(self, y: Any, u: Any = None, *, num_particles: Optional[int] = None, seed: Optional[int] = None) -> Tensor:
        """Per-trial estimates of ``log p(y | u)`` ``(trials,)`` from the particle filter (``exp`` of it is unbiased), for
        ``y (trials, T, D)`` and ``u (trials, T, Du)``, or a Recording (of its observed entries only).

        Raises a RuntimeError on a model that still has its random initial parameters (not fit, not
        loaded, parameters not set by hand), like :meth:`filter` and :meth:`save`."""
        return self._filter(y, u, num_particles, seed, "log_evidence").log_evidence

    @torch.no_grad()
    def filter(self, y: Any, u: Any = None, *, num_particles: Optional[int] = None, seed: Optional[int] = None) -> LowRankFilterResult:
        """Run the particle filter (the fit's proposal) over ``y (trials, T, D)`` (``u (trials, T, Du)``) or a Recording;
        see :class:`LowRankFilterResult` for the shapes. On a ragged Recording the ``means`` of the padded steps
        (``t >= lengths``) are NaN; its particles run on through them under the model's dynamics.

        Long trials: one pass, time linear in T; memory is the record, about 5 kB a step with 64 particles and rank 2
        (0.5 GB at T = 1e5; ``benchmarks/bench_long_recording.py --model lowrank``); no trace outlives its step.
        For a stream, or the means alone in O(1) memory, :meth:`online` runs the same steps one at a time."""
        return self._filter(y, u, num_particles, seed, "filter")

    @module_local
    def _filter(self, y: Any, u: Any, num_particles: Optional[int], seed: Optional[int], action: str) -> LowRankFilterResult:
        y, u, mask, lengths = self.recording_arrays(y, u)
        if num_particles is not None:
            num_particles = check_count(num_particles, "num_particles")
        if seed is not None:
            seed = check_count(seed, "seed", minimum=0)
        self.check_fitted(action)
        elbo = VSMC_ELBO(self.num_particles if num_particles is None else num_particles)
        if seed is not None:
            pyro.set_rng_seed(seed)
        with pyro.validation_enabled(False):
            record = elbo.filter(self.model, self.guide, y, u, mask)
        particles = record.states["x"]  # (T, S, B, R)
        weights = record.log_weights.exp()  # (T, S, B)
        means = (weights.unsqueeze(-1) * particles).sum(1)  # (T, B, R)
        return LowRankFilterResult(
            means=mark_padding(means.transpose(0, 1), lengths, float("nan")),
            particles=particles.permute(2, 0, 1, 3),
            log_weights=record.log_weights.permute(2, 0, 1),
            ess=record.ess.T,
            log_evidence=record.log_evidence,
        )

    def online(self, num_particles: Optional[int] = None, seed: Optional[int] = None) -> ParticleOnlineFilter:
        """A new online particle filter (the fit's proposal, ``num_particles`` particles, default the fit's):
        ``f.update(y_t (D,) or (B, D), u_t (Du,) or (B, Du)) -> (R,) or (B, R)``, the filtered mean
        ``E[x_t | y_{<=t}] = sum_s W_t^s x_t^s`` (this model has no discrete states: the belief is the latent's mean);
        ``f.particles["x"]`` ``(S, B, R)`` and ``f.log_weights`` ``(S, B)`` are the particle system. One step of
        :meth:`filter` per update, O(1) memory in time; with the same ``seed`` the beliefs equal
        ``filter(y, u, seed=seed).means`` (:mod:`~pyro_neurodyn.infer.particle_online_filter`)."""
        if num_particles is not None:
            num_particles = check_count(num_particles, "num_particles")
        if seed is not None:
            seed = check_count(seed, "seed", minimum=0)
        self.check_fitted("online")
        config = self.config
        return ParticleOnlineFilter(
            self.model, self.guide, filtered_mean("x"), obs_dim=config.obs_dim, input_dim=config.input_dim, num_states=config.rank,
            num_particles=self.num_particles if num_particles is None else num_particles, seed=seed, dtype=self.dtype,
            device=self.device, counts=config.observation == "poisson",
        )  # fmt: skip

    @module_local
    @torch.no_grad()
    def sample(
        self, num_trials: int, num_steps: int, u: Any = None, *, initial_latents: Any = None, seed: Optional[int] = None
    ) -> LowRankSample:
        """Generate ``num_trials`` trials of ``num_steps`` steps (given inputs ``u`` ``(num_trials, num_steps, Du)``).

        ``initial_latents`` ``(num_trials, R)`` fixes ``x_0`` (e.g. particles of :meth:`filter` at the end
        of a recording, to run the network on from there) instead of drawing it from ``N(mu_1, Sigma_1)``;
        ``y_0`` is still drawn from the readout given ``x_0``. Returns ``latents (num_trials, num_steps, R)``, ``y`` and
        ``means`` ``(num_trials, num_steps, D)``.
        """
        num_trials, num_steps = check_count(num_trials, "num_trials"), check_count(num_steps, "num_steps")
        if u is not None:
            shape = torch.empty(num_trials, num_steps, 0, dtype=self.dtype, device=self.device)  # u's trials, steps, dtype and device
            u = as_inputs(u, shape, y_name="(num_trials, num_steps)")
        self._check_inputs(u)
        model = self.model
        if initial_latents is not None:
            x0 = as_trials(initial_latents, "initial_latents", min_steps=1, dtype=self.dtype, device=self.device)
            rank = self.config.rank
            if x0.shape != (1, num_trials, rank):
                raise ValueError(f"initial_latents must have shape (num_trials, R) = ({num_trials}, {rank}), got {tuple(x0.shape[1:])}")
            model = poutine.condition(model, data={"0/x": x0[0]})
        if seed is not None:
            pyro.set_rng_seed(seed)
        with pyro.validation_enabled(False):
            out = model(None, u, num_trials=num_trials, num_steps=num_steps)
        return LowRankSample(out["x"], out["y"], self.readout_means(out["x"], u))
