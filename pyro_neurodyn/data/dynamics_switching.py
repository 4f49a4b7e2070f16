r"""Switching data whose regimes differ only in their dynamics, not in where the data lie.

On such data a mixture (a Gaussian HMM on y) cannot tell the regimes apart: both regimes cover the
same region, so the position of a sample says nothing about its regime; only how the data *move*
does. They separate dynamics models (an autoregressive HMM, an rSLDS, an SRNN) from mixtures
(see the README's "Which model do I need?" for the numbers).

Every simulator has a latent ``x_t`` in R^2 and a regime ``z_t`` in {0, 1}; ``z_t`` selects the map
that produces ``x_t`` from ``x_{t-1}`` (as in an ARHMM or SLDS):

.. math::

    x_t = f_{z_t}(x_{t-1}) + \epsilon_t, \quad \epsilon_t \sim N(0, \sigma_x^2 I), \qquad
    f_k(x) = R(\omega_k)\, x\, (1 + \lambda (1 - |x|^2))

``f_k`` is a discretized Hopf normal form: the factor ``1 + lambda (1 - r^2)`` pulls the radius to the
unit circle (slope ``1 - 2 lambda`` there, ``lambda = 0.2``), and ``R(omega_k)`` turns by ``omega_k`` per
step (positive: counter-clockwise). Trials start at a random angle on the circle in a random regime.

- :func:`rotation_switching_data`: ``omega = +2 pi/20`` (state 0) and ``-2 pi/20`` (state 1), sticky
  Markov switches (``p(stay) = 0.98``).
- :func:`limit_cycle_switching_data`: ``omega = 2 pi/25`` and ``2 pi/8`` (same circle, same direction),
  sticky Markov switches.
- :func:`recurrent_switching_data`: ``omega = +2 pi/40`` and ``-2 pi/40``, recurrent (rSLDS-style)
  switches: ``p(z_t != z_{t-1} | x_{t-1}) = sigmoid(gain (s_k x_{t-1,1} - threshold))`` with
  ``s_0 = +1``, ``s_1 = -1``. The counter-clockwise regime turns round when it enters the half-plane
  ``x_1 > threshold`` and the clockwise one when it enters ``x_1 < -threshold``, so the latent swings
  back and forth along the lower arc of the circle, both regimes over the same arc, and the switch
  times are a function of the latent.

Readouts (``C`` ``(D, 2)`` with N(0, 1) entries, so every channel's signal has a standard deviation near
``|c_i| / sqrt 2 ~ 1`` on the unit circle):

- ``observation="gaussian"``: ``y_t = C x_t + d + N(0, obs_noise_std^2 I)``, ``d ~ N(0, 0.1^2)``,
  ``obs_noise_std = 0.1``.
- ``observation="poisson"``: ``y_t ~ Poisson(softplus(C x_t + d))`` with ``d = 3 + N(0, 0.1^2)``:
  rates of about 1.5 to 4.5 counts per bin (5-95%, median 3); ``y`` holds the counts as floats.
  The Poisson noise (sd ~1.7) exceeds the modulation (~1) in every channel, so a dynamics model of y
  itself needs channels and time steps pooled: measured on held-out trials (seeds 0-4), an ARHMM on raw
  or sqrt counts decodes the rotation regimes at chance (0.50-0.53), on sqrt counts smoothed by a
  Gaussian of 1 bin and projected on their top 2 principal components at 0.96-0.97.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
from torch import Tensor
from torch.nn import functional as F

from .validation import check_count, check_positive

__all__ = [
    "SwitchingDynamicsData",
    "hopf_map",
    "recurrent_switch_probability",
    "limit_cycle_switching_data",
    "recurrent_switching_data",
    "rotation_switching_data",
]

OBSERVATIONS = ("gaussian", "poisson")
POISSON_BIAS = 3.0  # softplus(3 + C x): 5-95% of rates within about 1.5-4.5 counts per bin, median 3


class SwitchingDynamicsData(NamedTuple):
    """A simulated data set (``D`` = ``obs_dim``).

    Attributes:
        y: ``(trials, T, D)`` observations (float counts for a Poisson readout).
        states: ``(trials, T)`` int64, the true regime ``z_t`` (the map that produced ``x_t``).
        latents: ``(trials, T, 2)``, the latent ``x_t``.
        C: ``(D, 2)`` readout. d: ``(D,)`` offset.
        rates: ``(trials, T, D)`` Poisson rates ``softplus(C x_t + d)``, or the noise-free mean
            ``C x_t + d`` for a Gaussian readout.
    """

    y: Tensor
    states: Tensor
    latents: Tensor
    C: Tensor
    d: Tensor
    rates: Tensor


def hopf_map(x: Tensor, omega: Tensor, relax: float = 0.2) -> Tensor:
    """``R(omega) x (1 + relax (1 - |x|^2))`` for ``x (..., 2)`` and angles ``omega`` broadcasting with ``x[..., 0]``:
    ``(..., 2)``."""
    gain = 1.0 + relax * (1.0 - x.square().sum(-1))
    cos, sin = torch.cos(omega) * gain, torch.sin(omega) * gain
    return torch.stack([cos * x[..., 0] - sin * x[..., 1], sin * x[..., 0] + cos * x[..., 1]], -1)


SwitchProb = Callable[[Tensor, Tensor], Tensor]  # (x_{t-1} (B, 2), z_{t-1} (B,)) -> p(switch) (B,)


def _check_common(num_trials, num_steps, obs_dim, observation, seed) -> tuple[int, int, int, str, int]:
    if observation not in OBSERVATIONS:
        raise ValueError(f"observation must be one of {OBSERVATIONS}, got {observation!r}")
    return (
        check_count(num_trials, "num_trials"),
        check_count(num_steps, "num_steps", 2),
        check_count(obs_dim, "obs_dim"),
        observation,
        check_count(seed, "seed", 0),
    )


def _check_unit_interval(value: float, name: str) -> float:
    """``value`` as a float if it is a number strictly between 0 and 1, else a ValueError naming ``name``."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


def _simulate_latents(
    num_trials: int, num_steps: int, omegas: tuple[float, float], switch_prob: SwitchProb, noise_std: float, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """``states (trials, T)`` int64 and ``latents (trials, T, 2)`` float64 of the module docstring's chain."""
    omegas = torch.tensor(omegas, dtype=torch.float64)
    angle = 2 * math.pi * torch.rand(num_trials, generator=generator, dtype=torch.float64)
    x = torch.stack([angle.cos(), angle.sin()], -1)
    z = torch.randint(2, (num_trials,), generator=generator)
    uniforms = torch.rand(num_steps, num_trials, generator=generator, dtype=torch.float64)
    noise = noise_std * torch.randn(num_steps, num_trials, 2, generator=generator, dtype=torch.float64)
    xs, zs = [x], [z]
    for t in range(1, num_steps):
        z = torch.where(uniforms[t] < switch_prob(x, z), 1 - z, z)
        x = hopf_map(x, omegas[z]) + noise[t]
        xs.append(x)
        zs.append(z)
    return torch.stack(zs, 1), torch.stack(xs, 1)


def _observe(latents: Tensor, obs_dim: int, observation: str, obs_noise_std: float, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``y, C, d, rates`` of the module docstring's readouts, from float64 ``latents (trials, T, 2)``."""
    C = torch.randn(obs_dim, 2, generator=generator, dtype=torch.float64)
    d = 0.1 * torch.randn(obs_dim, generator=generator, dtype=torch.float64)
    if observation == "poisson":
        d = d + POISSON_BIAS
    mean = latents @ C.T + d
    if observation == "poisson":
        rates = F.softplus(mean)
        y = torch.poisson(rates, generator=generator)
    else:
        rates = mean
        y = mean + obs_noise_std * torch.randn(mean.shape, generator=generator, dtype=torch.float64)
    return y, C, d, rates


def _dataset(num_trials, num_steps, obs_dim, observation, seed, omegas, switch_prob, process_noise_std, obs_noise_std) -> SwitchingDynamicsData:
    num_trials, num_steps, obs_dim, observation, seed = _check_common(num_trials, num_steps, obs_dim, observation, seed)
    process_noise_std = check_positive(process_noise_std, "process_noise_std")
    obs_noise_std = check_positive(obs_noise_std, "obs_noise_std")
    generator = torch.Generator().manual_seed(seed)
    states, latents = _simulate_latents(num_trials, num_steps, omegas, switch_prob, process_noise_std, generator)
    y, C, d, rates = _observe(latents, obs_dim, observation, obs_noise_std, generator)
    dtype = torch.get_default_dtype()
    return SwitchingDynamicsData(y.to(dtype), states, latents.to(dtype), C.to(dtype), d.to(dtype), rates.to(dtype))


def _sticky(stay: float) -> SwitchProb:
    stay = _check_unit_interval(stay, "stay")
    return lambda x, z: torch.full(z.shape, 1.0 - stay, dtype=x.dtype, device=x.device)


def rotation_switching_data(
    num_trials: int = 16,
    num_steps: int = 200,
    obs_dim: int = 10,
    observation: str = "gaussian",
    seed: int = 0,
    *,
    stay: float = 0.98,
    angle: float = 2 * math.pi / 20,
    process_noise_std: float = 0.05,
    obs_noise_std: float = 0.1,
) -> SwitchingDynamicsData:
    """Counter-clockwise (state 0) vs clockwise (state 1) rotation by ``angle`` per step on the unit circle.

    Sticky Markov regimes (``p(z_t = z_{t-1}) = stay``); see the module docstring for the maps and readouts.

    Args:
        num_trials, num_steps, obs_dim: the shape ``(trials, T, D)`` of ``y``.
        observation: ``"gaussian"`` or ``"poisson"``.
        seed: seeds the whole simulation (latents, regimes, readout, noise).
        stay: probability to keep the regime at each step.
        angle: rotation per step (radians, > 0).
        process_noise_std: sigma_x. obs_noise_std: Gaussian readout noise (unused for Poisson).
    """
    angle = check_positive(angle, "angle")
    return _dataset(num_trials, num_steps, obs_dim, observation, seed, (angle, -angle), _sticky(stay), process_noise_std, obs_noise_std)


def limit_cycle_switching_data(
    num_trials: int = 16,
    num_steps: int = 200,
    obs_dim: int = 10,
    observation: str = "gaussian",
    seed: int = 0,
    *,
    stay: float = 0.98,
    angles: tuple[float, float] = (2 * math.pi / 25, 2 * math.pi / 8),
    process_noise_std: float = 0.05,
    obs_noise_std: float = 0.1,
) -> SwitchingDynamicsData:
    """Two limit cycles on the same unit circle, slow (state 0) and fast (state 1), same direction.

    ``angles``: the two angular frequencies (radians per step, positive, different); other arguments as
    :func:`rotation_switching_data`.
    """
    if len(angles) != 2:
        raise ValueError(f"angles must hold two angular frequencies, got {angles!r}")
    slow, fast = (check_positive(a, "angles") for a in angles)
    if slow == fast:
        raise ValueError(f"angles must differ, got {angles!r}")
    return _dataset(num_trials, num_steps, obs_dim, observation, seed, (slow, fast), _sticky(stay), process_noise_std, obs_noise_std)


def recurrent_switch_probability(x: Tensor, z: Tensor, threshold: float = 0.8, gain: float = 20.0) -> Tensor:
    """``p(z_t != z_{t-1} | x_{t-1}, z_{t-1}) = sigmoid(gain (s x_1 - threshold))``, ``s = +1`` in state 0, ``-1`` in state 1.

    ``x (..., 2)``, ``z (...)`` int -> ``(...)``: high in state 0's trigger half-plane ``x_1 > threshold``
    and state 1's ``x_1 < -threshold``, negligible elsewhere.
    """
    sign = 1.0 - 2.0 * z.to(x.dtype)
    return torch.sigmoid(gain * (sign * x[..., 0] - threshold))


def recurrent_switching_data(
    num_trials: int = 16,
    num_steps: int = 200,
    obs_dim: int = 10,
    observation: str = "gaussian",
    seed: int = 0,
    *,
    angle: float = 2 * math.pi / 40,
    threshold: float = 0.8,
    gain: float = 20.0,
    process_noise_std: float = 0.05,
    obs_noise_std: float = 0.1,
) -> SwitchingDynamicsData:
    """rSLDS-style recurrent switches between counter-clockwise (0) and clockwise (1) rotation.

    The switch probability is :func:`recurrent_switch_probability` of the previous latent (module
    docstring): each regime turns round in its own trigger half-plane, so the latent swings along the
    lower arc of the circle. ``threshold`` in (0, 1) places the half-planes, ``gain`` (> 0) sets how
    sharply the probability rises; other arguments as :func:`rotation_switching_data`.
    """
    angle, gain = check_positive(angle, "angle"), check_positive(gain, "gain")
    threshold = _check_unit_interval(threshold, "threshold")
    switch_prob = lambda x, z: recurrent_switch_probability(x, z, threshold, gain)  # noqa: E731
    return _dataset(num_trials, num_steps, obs_dim, observation, seed, (angle, -angle), switch_prob, process_noise_std, obs_noise_std)
