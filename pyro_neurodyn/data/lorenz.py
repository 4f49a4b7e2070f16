"""Switching Lorenz data: the benchmark of switching dynamical models (SNLDS, SRNN).

The Lorenz system ``x' = sigma (y - x)``, ``y' = x (rho - z) - y``, ``z' = x y - beta z`` (sigma = 10,
rho = 28, beta = 8/3) circles two unstable fixed points; the "state" is the lobe being circled, the
sign of x. The recipe of the SRNN paper's reference data file: one long
trajectory sampled every dt = 0.1, cut into consecutive trials, standardized as
``(x - (-0.5, -0.5, 2)) / 15`` and observed with N(0, noise^2) noise. With dt = 0.1 the samples are
coarse (about 12 lobe switches per 200 steps), which makes the one-step maps strongly nonlinear.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import Tensor

from .validation import check_count, check_positive

__all__ = ["LorenzData", "switching_lorenz", "LORENZ_CENTER", "LORENZ_SCALE"]

LORENZ_CENTER = np.array([-0.5, -0.5, 2.0])
LORENZ_SCALE = 15.0


class LorenzData(NamedTuple):
    """``y (trials, T, 3)`` noisy standardized observations, ``states (trials, T)`` lobe (1: x > 0),
    ``latents (trials, T, 3)`` the noise-free standardized trajectory."""

    y: Tensor
    states: Tensor
    latents: Tensor


def _lorenz(_, s, sigma=10.0, rho=28.0, beta=8.0 / 3.0):
    x, y, z = s
    return [sigma * (y - x), x * (rho - z) - y, x * y - beta * z]


def switching_lorenz(
    num_trials: int = 16,
    num_steps: int = 200,
    dt: float = 0.1,
    noise: float = 1e-3,
    seed: int = 0,
    burn_in: float = 10.0,
) -> LorenzData:
    """Simulate switching Lorenz trials.

    Args:
        num_trials, num_steps: the output shape (consecutive chunks of one trajectory).
        dt: sampling interval (integration is adaptive RK45 at 1e-9 tolerance, independent of dt).
        noise: standard deviation of the observation noise (in standardized units).
        seed: seeds the random initial condition and the noise.
        burn_in: time discarded before sampling, so the trajectory is on the attractor.
    """
    num_trials, num_steps = check_count(num_trials, "num_trials"), check_count(num_steps, "num_steps", 2)
    dt, burn_in = check_positive(dt, "dt"), float(burn_in)
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    start = rng.normal(size=3) * np.array([5.0, 5.0, 5.0]) + np.array([0.0, 0.0, 25.0])
    times = burn_in + dt * np.arange(num_trials * num_steps)
    solution = solve_ivp(_lorenz, (0.0, times[-1]), start, t_eval=times, rtol=1e-9, atol=1e-9)
    raw = solution.y.T.reshape(num_trials, num_steps, 3)
    latents = (raw - LORENZ_CENTER) / LORENZ_SCALE
    y = latents + noise * rng.normal(size=latents.shape)
    dtype = torch.get_default_dtype()
    return LorenzData(torch.tensor(y, dtype=dtype), torch.tensor(raw[..., 0] > 0).long(), torch.tensor(latents, dtype=dtype))
