"""A two-regime switching low-rank RNN teacher with known fixed points, and data simulated from it.

Both regimes are rank-2 ReLU networks of N = 20 units over one shared latent x in R^2 with decay
``a = 0.9`` (``x_{t+1} = a x_t + V_k relu(U_k x_t - h_k) + N(0, sigma_x^2 I)``):

- regime 0, *bistable*: 16 units read ``x_1`` (four groups of four with slightly jittered thresholds) and
  add ``s(x_1) = g (clip(x_1, -c, c))`` along ``e_1`` (g = 0.2, c = 1), 4 units read ``x_2`` and contract
  it. Along ``x_1`` the map is ``0.9 x_1 + s(x_1)``: slope 1.1 in the middle, so the origin is a saddle,
  and stable fixed points at ``x_1 = ±10 g c = ±2``; along ``x_2`` the slopes are 0.8 and 0.85. Fixed
  points: ``(-2, 0)`` and ``(2, 0)`` stable, ``(0, 0)`` a saddle (exactly, by construction).
- regime 1, *oscillator*: :func:`~pyro_neurodyn.data.oscillator_teacher` (N = 20), an unstable spiral
  near the origin surrounded by a stable limit cycle of radius ≈ 2 (period ≈ 25 steps).

The regime ``z_t`` is a sticky Markov chain (``p(stay) = stay``); ``z_t`` selects the map that produces
``x_t`` from ``x_{t-1}``. Recordings are Gaussian, ``y_t = C x_t + d + N(0, obs_noise_std^2 I)`` with a
random ``C`` ``(D, 2)`` of unit-norm columns (D = 20 by default) and ``d ~ N(0, 0.1^2)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor
from torch.nn import functional as F

from .lowrank_teachers import oscillator_teacher
from .validation import check_count, check_positive

__all__ = ["SwitchingLowRankData", "SwitchingLowRankTeacher", "bistable_teacher_map", "switching_lowrank_data", "switching_lowrank_teacher"]


class SwitchingLowRankTeacher(NamedTuple):
    """Teacher parameters: shared decay ``a``; per regime ``U`` ``(K, N, R)``, ``V`` ``(K, R, N)``, ``h``
    ``(K, N)`` (``relu(U_k x - h_k)``); ``transition_matrix`` ``(K, K)``, ``initial_probs`` ``(K,)``;
    ``latent_noise_std``; readout ``C`` ``(D, R)``, ``d`` ``(D,)``, ``obs_noise_std``."""

    a: float
    U: Tensor
    V: Tensor
    h: Tensor
    transition_matrix: Tensor
    initial_probs: Tensor
    latent_noise_std: float
    C: Tensor
    d: Tensor
    obs_noise_std: float

    def latent_map(self, state: int) -> tuple:
        """``(a, V_k, U_k, h_k, "relu")``: the arguments of :func:`~pyro_neurodyn.analysis.fixed_points`."""
        return (torch.tensor(self.a), self.V[state], self.U[state], self.h[state], "relu")

    def step_means(self, x: Tensor) -> Tensor:
        """``a x + V_k relu(U_k x - h_k)`` for every regime, ``(..., K, R)`` from ``x`` ``(..., R)``."""
        rates = F.relu(torch.einsum("knr,...r->...kn", self.U, x) - self.h)
        return self.a * x.unsqueeze(-2) + torch.einsum("krn,...kn->...kr", self.V, rates)


class SwitchingLowRankData(NamedTuple):
    """Recordings ``y`` ``(trials, T, D)``, latents ``x`` ``(trials, T, R)``, regimes ``z`` ``(trials, T)``
    (int64), and the ``teacher``."""

    y: Tensor
    x: Tensor
    z: Tensor
    teacher: SwitchingLowRankTeacher


def bistable_teacher_map(num_units: int = 20, gain: float = 0.2, clip: float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
    """``(U (N, 2), V (2, N), h (N,))`` of the bistable regime (module docstring); N >= 8, a multiple of 4 plus 4."""
    per_group = (num_units - 4) // 4
    if num_units < 8 or (num_units - 4) % 4:
        raise ValueError(f"num_units must be 4 * m + 4 with m >= 1, got {num_units}")
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    U, V, h = [], [], []
    weight = gain / (2 * per_group)
    # relu(x + c) - relu(x - c) - relu(-x + c) + relu(-x - c) = 2 clip(x, -c, c) (thresholds jittered
    # symmetrically within each group, which keeps s odd and the fixed points exactly at 0 and ±10 g c)
    for sign_in, threshold, sign_out in ((1, -clip, 1), (1, clip, -1), (-1, -clip, -1), (-1, clip, 1)):
        for j in range(per_group):
            U.append(sign_in * e1)
            h.append(threshold + (j - (per_group - 1) / 2) * 0.05 * clip)
            V.append(sign_out * weight * e1)
    # x_2: relu(x + B) - relu(-x + B) = 2x on |x| < B, contracting (slopes 0.8 inside, 0.85 beyond)
    for bound, w in ((1.0, 0.025), (1.5, 0.025)):
        for sign in (1, -1):
            U.append(sign * e2)
            h.append(-bound)
            V.append(-sign * w * e2)
    return torch.stack(U), torch.stack(V, 1), torch.tensor(h)


def switching_lowrank_teacher(num_units: int = 20, obs_dim: int = 20, *, stay: float = 0.97, latent_noise_std: float = 0.05, obs_noise_std: float = 0.1, seed: int = 0) -> SwitchingLowRankTeacher:
    """The two-regime teacher of the module docstring."""
    num_units = check_count(num_units, "num_units", 8)
    obs_dim = check_count(obs_dim, "obs_dim")
    if not 0.0 < stay < 1.0:
        raise ValueError(f"stay must be in (0, 1), got {stay}")
    U0, V0, h0 = bistable_teacher_map(num_units)
    oscillator = oscillator_teacher(num_units, seed)
    generator = torch.Generator().manual_seed(seed + 7)
    C = torch.randn(obs_dim, 2, generator=generator)
    C = C / C.norm(dim=0, keepdim=True)
    d = 0.1 * torch.randn(obs_dim, generator=generator)
    transition = torch.full((2, 2), 1.0 - stay)
    transition.fill_diagonal_(stay)
    return SwitchingLowRankTeacher(
        a=0.9,
        U=torch.stack([U0, oscillator.U]),
        V=torch.stack([V0, oscillator.V]),
        h=torch.stack([h0, oscillator.h]),
        transition_matrix=transition,
        initial_probs=torch.full((2,), 0.5),
        latent_noise_std=check_positive(latent_noise_std, "latent_noise_std"),
        C=C,
        d=d,
        obs_noise_std=check_positive(obs_noise_std, "obs_noise_std"),
    )


def switching_lowrank_data(num_trials: int = 20, num_steps: int = 150, *, seed: int = 0, **teacher_options) -> SwitchingLowRankData:
    """Simulate ``num_trials`` trials of ``num_steps`` steps from :func:`switching_lowrank_teacher`.

    ``x_0 = 2 (cos p, sin p)`` with ``p ~ U(0, 2 pi)`` (on the cycle / near a stable point), ``z_0`` from
    ``initial_probs``; then ``z_t ~ transition_matrix[z_{t-1}]`` and ``x_t ~ N(f_{z_t}(x_{t-1}), sigma_x^2 I)``.
    """
    num_trials, num_steps = check_count(num_trials, "num_trials"), check_count(num_steps, "num_steps", 2)
    teacher = switching_lowrank_teacher(seed=seed, **teacher_options)
    generator = torch.Generator().manual_seed(seed + 1)
    phase = 2 * math.pi * torch.rand(num_trials, generator=generator)
    x = 2.0 * torch.stack([phase.cos(), phase.sin()], -1)
    z = torch.multinomial(teacher.initial_probs, num_trials, replacement=True, generator=generator)
    xs, zs = [x], [z]
    for _ in range(1, num_steps):  # sequential: each step needs the previous sampled (z, x)
        z = torch.multinomial(teacher.transition_matrix[z], 1, generator=generator).squeeze(-1)
        mean = teacher.step_means(x)[torch.arange(num_trials), z]
        x = mean + teacher.latent_noise_std * torch.randn(mean.shape, generator=generator)
        xs.append(x)
        zs.append(z)
    x, z = torch.stack(xs, 1), torch.stack(zs, 1)
    y = x @ teacher.C.T + teacher.d + teacher.obs_noise_std * torch.randn(num_trials, num_steps, teacher.C.shape[0], generator=generator)
    return SwitchingLowRankData(y, x, z, teacher)
