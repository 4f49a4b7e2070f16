"""Teacher-student data sets for the stochastic low-rank RNN, after Pals et al. (NeurIPS 2024).

A *teacher* is a known rank-2 ReLU network (:class:`LowRankTeacher`); a student fit to its data should
recover its noise and dynamics. The teachers here are built in closed form (no training needed):
``N`` units with preferred angles ``theta_i`` (evenly spaced, jittered by ``seed``), input weights
``U_i ∝ (cos theta_i, sin theta_i)`` orthonormalized so that ``U^T U = I`` (then latent distances are
distances between unit current patterns), output weights ``V_i ∝ R(delta) U_i`` and negative thresholds
``threshold_i = -b``. Near the origin every unit is active and the map is ``x -> (a I + g R(delta)) x``; far
out only half the units are, and the gain halves. So

- ``delta ≈ 1.3``, ``g = 0.4``: the origin is an unstable spiral and a stable limit cycle of radius
  ``≈ 13.7 b`` turns once every 25 steps (:func:`oscillator_teacher`);
- ``delta = 0``, ``g = 0.15``: a ring of (nearly continuous) fixed points of radius ``≈ 21 b``: a ring
  attractor that stores an angle cued by a 2-D input ``(cos phi, sin phi)`` (:func:`ring_teacher`).

Data sets (trials are independent; ``latents`` are the teacher's ``x``, ``(trials, T, 2)``):

- :func:`gaussian_oscillator_data`: N = 20, T = 75, Sigma_x = 0.04 I, y = U x + N(0, 0.01 I).
- :func:`poisson_oscillator_data`: N = 40, counts ``y ~ Poisson(softplus(4 c - 3))``, ``c = U x``.
- :func:`ring_task_data`: N = 60, T = 250, a cue of 25 steps from step 25 at one of 8 angles, raw
  inputs, Sigma_x = 0.0025 I, y = U x + W_u u + N(0, 0.0025 I).

:func:`load_teacher_npz` reads the trained teachers distributed with the paper's code (``.npz`` files
with the arrays listed in its docstring) into the same :class:`LowRankTeacher` shape. (This module depends on torch
only: ``data`` sits below ``dynamics`` in the package's layers.)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple, Optional, Union

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from .validation import check_count, check_positive

__all__ = [
    "LowRankTeacher",
    "TeacherData",
    "gaussian_oscillator_data",
    "load_teacher_npz",
    "oscillator_teacher",
    "poisson_oscillator_data",
    "ring_task_data",
    "ring_teacher",
    "simulate_teacher_latents",
]


class LowRankTeacher(NamedTuple):
    """A ReLU teacher: ``x_{t+1} = a x_t + V relu(U x_t + W_u v_t - b) + N(0, latent_noise_std^2 I)``, ``c = U x + W_u v``.

    ``U`` ``(N, R)``, ``V`` ``(R, N)``, ``threshold`` b ``(N,)``, ``W_u`` ``(N, Du)`` or None; ``filter_inputs``: v is
    the low-pass filtered input (True) or the raw input (False).
    """

    a: float
    U: Tensor
    V: Tensor
    threshold: Tensor
    W_u: Optional[Tensor]
    latent_noise_std: float
    filter_inputs: bool


class TeacherData(NamedTuple):
    """Recordings ``y`` ``(trials, T, N)``, the teacher's ``latents`` ``(trials, T, R)``, ``inputs``
    ``(trials, T, Du)`` or None, Poisson ``rates`` or None, and the ``teacher``."""

    y: Tensor
    latents: Tensor
    inputs: Optional[Tensor]
    rates: Optional[Tensor]
    teacher: LowRankTeacher


def _angular_teacher(num_units: int, gain: float, rotation: float, threshold_depth: float, seed: int, latent_noise_std: float, input_gain: float = 0.0) -> LowRankTeacher:
    generator = torch.Generator().manual_seed(seed)
    theta = torch.arange(num_units) * (2 * math.pi / num_units)
    theta = theta + (torch.rand(num_units, generator=generator) - 0.5) * (math.pi / num_units)
    directions = torch.stack([theta.cos(), theta.sin()], dim=1)  # (N, 2)
    rotated = torch.stack([(theta + rotation).cos(), (theta + rotation).sin()], dim=0)  # (2, N)
    U = math.sqrt(2.0 / num_units) * directions
    V = (2.0 * gain / (num_units * math.sqrt(2.0 / num_units))) * rotated
    # x' = S x with S = (U^T U)^{1/2} (near I despite the jitter) makes U' = U S^{-1} exactly orthonormal
    # and keeps x' aligned with the angles theta
    eigenvalues, eigenvectors = torch.linalg.eigh(U.T @ U)
    root = eigenvectors @ torch.diag_embed(eigenvalues.sqrt()) @ eigenvectors.T
    W_u = input_gain * directions if input_gain else None
    threshold = -threshold_depth * (1.0 + 0.1 * (torch.rand(num_units, generator=generator) - 0.5))
    return LowRankTeacher(0.9, U @ torch.linalg.inv(root), root @ V, threshold, W_u, latent_noise_std, filter_inputs=False)


def oscillator_teacher(num_units: int = 20, seed: int = 0, latent_noise_std: float = 0.2) -> LowRankTeacher:
    """A rank-2 ReLU network with a stable limit cycle (radius ≈ 2, period ≈ 25 steps); a = 0.9."""
    return _angular_teacher(check_count(num_units, "num_units", 3), 0.4, 1.302, 0.15, seed, latent_noise_std)


def ring_teacher(num_units: int = 60, seed: int = 0, latent_noise_std: float = 0.05) -> LowRankTeacher:
    """A rank-2 ReLU ring attractor (radius ≈ 2) with a 2-D input ``W_u`` that cues an angle; a = 0.9."""
    return _angular_teacher(check_count(num_units, "num_units", 3), 0.15, 0.0, 0.1, seed, latent_noise_std, input_gain=0.5)


def load_teacher_npz(path: Union[str, Path], latent_noise_std: float = 0.05) -> LowRankTeacher:
    """A trained teacher from an ``.npz`` with ``m (N, R)``, ``n (R, N)``, ``b_rec (N)``, ``w_inp (Du, N)``, ``dt``, ``tau``.

    Discrete-time map of the teacher's continuous-time network: ``a = 1 - dt/tau``, ``U = m``, ``V = n (dt/tau) / N``,
    ``threshold = -b_rec``, ``W_u = w_inp^T``; raw inputs; the latent noise is isotropic in these coordinates.
    """
    with np.load(Path(path)) as arrays:
        m, n, b_rec, w_inp = (torch.as_tensor(arrays[k], dtype=torch.get_default_dtype()) for k in ("m", "n", "b_rec", "w_inp"))
        step = float(arrays["dt"]) / float(arrays["tau"])
    V = n * step / m.shape[0]
    return LowRankTeacher(1.0 - step, m, V, -b_rec, w_inp.T.contiguous(), check_positive(latent_noise_std, "latent_noise_std"), filter_inputs=False)


def simulate_teacher_latents(teacher: LowRankTeacher, initial: Tensor, num_steps: int, inputs: Optional[Tensor] = None, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Optional[Tensor]]:
    """Latents ``(B, T, R)`` from ``x_0 = initial`` ``(B, R)``, and the inputs ``v`` the units saw ``(B, T, Du)``."""
    x, latents, seen = initial, [initial], []
    v = None
    if inputs is not None:
        v = torch.zeros_like(inputs[:, 0]) if teacher.filter_inputs else inputs[:, 0]
        seen.append(v)
    for t in range(1, num_steps):
        currents = x @ teacher.U.T
        if v is not None:
            currents = currents + v @ teacher.W_u.T
        noise = torch.randn(x.shape, generator=generator) * teacher.latent_noise_std
        x = teacher.a * x + F.relu(currents - teacher.threshold) @ teacher.V.T + noise
        if inputs is not None:
            v = teacher.a * v + (1 - teacher.a) * inputs[:, t - 1] if teacher.filter_inputs else inputs[:, t]
            seen.append(v)
        latents.append(x)
    return torch.stack(latents, 1), (torch.stack(seen, 1) if inputs is not None else None)


def _initial_latents(num_trials: int, radius_std: float, noise_std: float, generator: torch.Generator) -> Tensor:
    """``r (cos p, sin p) + N(0, noise_std^2)`` with ``r ~ N(0, radius_std^2)``, ``p ~ U(0, 2 pi)`` (as in the paper)."""
    radius = torch.randn(num_trials, generator=generator) * radius_std
    phase = torch.rand(num_trials, generator=generator) * 2 * math.pi
    return torch.stack([radius * phase.cos(), radius * phase.sin()], 1) + noise_std * torch.randn(num_trials, 2, generator=generator)


def _currents(teacher: LowRankTeacher, latents: Tensor, seen: Optional[Tensor]) -> Tensor:
    currents = latents @ teacher.U.T
    return currents if seen is None else currents + seen @ teacher.W_u.T


def gaussian_oscillator_data(num_trials: int = 200, num_steps: int = 75, *, num_units: int = 20, obs_noise_std: float = 0.1, latent_noise_std: float = 0.2, seed: int = 0) -> TeacherData:
    """The Gaussian oscillator set: ``y_t = U x_t + N(0, obs_noise_std^2 I)`` (defaults: Sigma_x = 0.04 I, Sigma_y = 0.01 I)."""
    num_trials, num_steps = check_count(num_trials, "num_trials"), check_count(num_steps, "num_steps", 2)
    check_positive(obs_noise_std, "obs_noise_std")
    teacher = oscillator_teacher(num_units, seed, check_positive(latent_noise_std, "latent_noise_std"))
    generator = torch.Generator().manual_seed(seed + 1)
    latents, _ = simulate_teacher_latents(teacher, _initial_latents(num_trials, 2.0, latent_noise_std, generator), num_steps, generator=generator)
    currents = _currents(teacher, latents, None)
    y = currents + obs_noise_std * torch.randn(currents.shape, generator=generator)
    return TeacherData(y, latents, None, None, teacher)


def poisson_oscillator_data(num_trials: int = 400, num_steps: int = 200, *, num_units: int = 40, gain: float = 4.0, bias: float = -3.0, latent_noise_std: float = 0.2, seed: int = 0) -> TeacherData:
    """The Poisson oscillator set: counts ``y ~ Poisson(softplus(gain c + bias))`` with ``c = U x`` (rates in ``.rates``)."""
    num_trials, num_steps = check_count(num_trials, "num_trials"), check_count(num_steps, "num_steps", 2)
    teacher = oscillator_teacher(num_units, seed, check_positive(latent_noise_std, "latent_noise_std"))
    generator = torch.Generator().manual_seed(seed + 1)
    latents, _ = simulate_teacher_latents(teacher, _initial_latents(num_trials, 2.0, latent_noise_std, generator), num_steps, generator=generator)
    rates = F.softplus(gain * _currents(teacher, latents, None) + bias)
    return TeacherData(torch.poisson(rates, generator=generator), latents, None, rates, teacher)


def ring_task_data(num_trials: int = 400, num_steps: int = 250, *, num_units: int = 60, num_angles: int = 8, cue_onset: int = 25, cue_steps: int = 25, obs_noise_std: float = 0.05, latent_noise_std: float = 0.05, seed: int = 0, teacher: Optional[LowRankTeacher] = None) -> TeacherData:
    """The ring/angle task: from ``x_0 ≈ 0``, a cue ``(cos phi, sin phi)`` at one of ``num_angles`` angles for
    ``cue_steps`` steps moves the latent to that angle on the ring, where it stays (drifting slowly).

    Observations are the units' currents including the input, ``y = U x + W_u u + N(0, obs_noise_std^2)``.
    Pass ``teacher`` (e.g. from :func:`load_teacher_npz`) to use another network with a 2-D input.
    """
    num_trials, num_steps = check_count(num_trials, "num_trials"), check_count(num_steps, "num_steps", 2)
    if not 0 <= cue_onset < cue_onset + cue_steps <= num_steps:
        raise ValueError(f"the cue (onset {cue_onset}, {cue_steps} steps) must lie within the {num_steps} steps")
    teacher = teacher if teacher is not None else ring_teacher(num_units, seed, check_positive(latent_noise_std, "latent_noise_std"))
    generator = torch.Generator().manual_seed(seed + 1)
    angles = (torch.arange(num_trials) % check_count(num_angles, "num_angles")) * (2 * math.pi / num_angles)
    inputs = torch.zeros(num_trials, num_steps, 2)
    inputs[:, cue_onset : cue_onset + cue_steps] = torch.stack([angles.cos(), angles.sin()], 1)[:, None]
    initial = teacher.latent_noise_std * torch.randn(num_trials, teacher.U.shape[1], generator=generator)
    latents, seen = simulate_teacher_latents(teacher, initial, num_steps, inputs, generator)
    currents = _currents(teacher, latents, seen)
    y = currents + obs_noise_std * torch.randn(currents.shape, generator=generator)
    return TeacherData(y, latents, inputs, None, teacher)
