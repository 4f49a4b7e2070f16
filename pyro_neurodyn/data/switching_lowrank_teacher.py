"""A two-regime switching low-rank RNN teacher whose every fixed point lies where its regime's data go.

Both regimes are rank-2 ReLU networks of N = 20 units over one shared latent x in R^2 with decay
``a = 0.9`` (``x_{t+1} = a x_t + V_k relu(U_k x_t - threshold_k) + N(0, sigma_x^2 I)``), built from *odd pairs*
of units that read one axis ``e_i`` and write a vector ``w``:

    w [relu(x_i + b) - relu(-x_i + b)] = 2 w x_i   for |x_i| < b   (slope w, x_i + b sign(x_i) beyond),
    w [relu(x_i + c) - relu(x_i - c) - relu(-x_i + c) + relu(-x_i - c)] = 2 w clip(x_i, -c, c).

Each term is split over several units whose thresholds are jittered symmetrically (the sums above are
unchanged where all units agree, and the ReLU arrangement is not degenerate).

- regime 0, *bistable*: along ``x_1`` the map is ``0.9 x_1 + g clip(x_1, -c, c)`` (g = 0.3, c = 2/3):
  slope 1.2 for ``|x_1| < c``, so the origin is a saddle, and stable fixed points at ``x_1 = ±10 g c = ±2``
  (slope 0.9); ``x_2`` contracts (slope 0.8 for ``|x_2| < 1``, 0.85 up to 1.5, 0.9 beyond). Fixed points:
  ``(-2, 0)`` and ``(2, 0)`` stable, ``(0, 0)`` a saddle whose stable manifold is the ``x_2`` axis.
- regime 1, *focus*: ``x -> p + rho R(theta) (x - p)`` (rho = 0.8, theta = pi/8, ``p = (0, 0.3)``) wherever
  ``|x_1|, |x_2| < 4`` (slopes halve beyond): one fixed point, ``p``, a stable spiral.

These are all the fixed points (the finder checks every region), and they sit where the constructions put
them, up to float32 round-off. The regimes hand the latent to each other at their fixed points: regime 1
spirals any state into ``p``, on the stable manifold of regime 0's saddle; regime 0 then carries it down
towards the saddle and out along the unstable axis ``x_1`` into a well at ``(±2, 0)``, from where regime 1
spirals back. So every fixed point of every regime lies where that regime's own data go, the saddle's
neighbourhood included (about 180 of the 3000 steps of the default data set start within 0.2 of it in
regime 0). ``p`` is off the saddle on purpose: at every fixed point the other regime's flow is clearly
non-zero (``f_0(p) - p = (0, -0.06)``, ``|f_1(0)| = |(I - rho R) p| = 0.12``, against ``sigma_x = 0.05``),
so the regimes are identifiable where the data dwell.

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

from .validation import check_count, check_positive

__all__ = [
    "SwitchingLowRankData",
    "SwitchingLowRankTeacher",
    "bistable_teacher_map",
    "focus_teacher_map",
    "switching_lowrank_data",
    "switching_lowrank_teacher",
]

FOCUS_CENTER = (0.0, 0.3)  # the stable point of regime 1, on the stable manifold of regime 0's saddle

# the teacher's fixed points, exactly, by construction (module docstring): (points (n, 2), stable (n,)),
# sorted lexicographically as the fixed-point finder reports them
TEACHER_FIXED_POINTS = (
    (torch.tensor([[-2.0, 0.0], [0.0, 0.0], [2.0, 0.0]]), torch.tensor([True, False, True])),
    (torch.tensor([FOCUS_CENTER]), torch.tensor([True])),
)


class SwitchingLowRankTeacher(NamedTuple):
    """Teacher parameters: shared decay ``a``; per regime ``U`` ``(K, N, R)``, ``V`` ``(K, R, N)``,
    ``threshold`` ``(K, N)`` (``relu(U_k x - threshold_k)``); ``transition_matrix`` ``(K, K)``, ``initial_probs`` ``(K,)``;
    ``latent_noise_std``; readout ``C`` ``(D, R)``, ``d`` ``(D,)``, ``obs_noise_std``."""

    a: float
    U: Tensor
    V: Tensor
    threshold: Tensor
    transition_matrix: Tensor
    initial_probs: Tensor
    latent_noise_std: float
    C: Tensor
    d: Tensor
    obs_noise_std: float

    def latent_map(self, state: int) -> tuple:
        """``(a, V_k (R, N), U_k (N, R), threshold_k (N,), "relu")`` (``a`` a scalar tensor): the arguments of
        :func:`~pyro_neurodyn.analysis.fixed_points`."""
        return (torch.tensor(self.a), self.V[state], self.U[state], self.threshold[state], "relu")

    def known_fixed_points(self, state: int) -> tuple[Tensor, Tensor]:
        """State ``state``'s fixed points as constructed (module docstring): ``points (n, 2)``, ``stable (n,)``."""
        return TEACHER_FIXED_POINTS[state]

    def step_means(self, x: Tensor) -> Tensor:
        """``a x + V_k relu(U_k x - threshold_k)`` for every regime, ``(..., K, R)`` from ``x`` ``(..., R)``."""
        rates = F.relu(torch.einsum("knr,...r->...kn", self.U, x) - self.threshold)
        return self.a * x.unsqueeze(-2) + torch.einsum("krn,...kn->...kr", self.V, rates)


class SwitchingLowRankData(NamedTuple):
    """Recordings ``y`` ``(trials, T, D)``, latents ``x`` ``(trials, T, R)``, regimes ``z`` ``(trials, T)``
    (int64), and the ``teacher``."""

    y: Tensor
    x: Tensor
    z: Tensor
    teacher: SwitchingLowRankTeacher


def _odd_units(axis: int, write: Tensor, terms: tuple, copies: int, jitter: float) -> list:
    """Units ``(u (2,), v (2,), threshold)`` of ``write * sum_terms sign_out relu(sign_in x_axis - threshold)``.

    ``terms``: ``(sign_in, threshold, sign_out)`` triples; each is split over ``copies`` units of weight
    ``1/copies`` with thresholds ``threshold + (j - (copies - 1)/2) jitter`` (symmetric, so the sum is
    unchanged wherever the copies' patterns agree).
    """
    e = torch.eye(2)[axis]
    return [
        (sign_in * e, sign_out * write / copies, threshold + (j - (copies - 1) / 2) * jitter)
        for sign_in, threshold, sign_out in terms
        for j in range(copies)
    ]


def _linear_terms(bound: float) -> tuple:
    """``relu(x + b) - relu(-x + b)``: ``2 x`` for ``|x| < b``."""
    return ((1, -bound, 1), (-1, -bound, -1))


def _clip_terms(clip: float) -> tuple:
    """``relu(x + c) - relu(x - c) - relu(-x + c) + relu(-x - c) = 2 clip(x, -c, c)``."""
    return ((1, -clip, 1), (1, clip, -1), (-1, -clip, -1), (-1, clip, 1))


def _stack(units: list) -> tuple[Tensor, Tensor, Tensor]:
    U, V, threshold = zip(*units)
    return torch.stack(U), torch.stack(V, 1), torch.tensor(threshold)


def bistable_teacher_map(num_units: int = 20, gain: float = 0.3, clip: float = 2 / 3) -> tuple[Tensor, Tensor, Tensor]:
    """``(U (N, 2), V (2, N), threshold (N,))`` of the bistable regime (module docstring): saddle at 0, stable points
    at ``(±10 gain clip, 0)``; N = 4 m + 4 with m >= 1 (16 units for x_1 when N = 20, 4 for x_2)."""
    if num_units < 8 or (num_units - 4) % 4:
        raise ValueError(f"num_units must be 4 * m + 4 with m >= 1, got {num_units}")
    e1, e2 = torch.eye(2)
    units = _odd_units(0, gain / 2 * e1, _clip_terms(clip), (num_units - 4) // 4, 0.05 * clip)
    for bound in (1.0, 1.5):  # x_2: slope 0.9 - 2 * 0.025 per pair inside its bound
        units += _odd_units(1, -0.025 * e2, _linear_terms(bound), 1, 0.0)
    return _stack(units)


def focus_teacher_map(num_units: int = 20, decay: float = 0.9, rho: float = 0.8, theta: float = math.pi / 8, center: tuple = FOCUS_CENTER, bound: float = 4.0) -> tuple[Tensor, Tensor, Tensor]:
    """``(U (N, 2), V (2, N), threshold (N,))`` with ``decay x + V relu(U x - threshold) = p + rho R(theta) (x - p)``, ``p = center``,
    for ``|x_i| < bound`` (module docstring); N = 4 m with m >= 1 (m units per term of the two odd pairs).

    With ``M = rho R - decay I`` the pair reading ``x_i`` writes ``M_i / 2`` (column i) times
    ``relu(x_i + b + delta_i / 2) - relu(-x_i + b - delta_i / 2) = 2 x_i + delta_i``: the map is
    ``rho R x + M delta / 2``, whose fixed point is ``p`` iff ``delta = 2 M^{-1} (I - rho R) p``.
    """
    if num_units < 4 or num_units % 4:
        raise ValueError(f"num_units must be 4 * m with m >= 1, got {num_units}")
    rotation = rho * torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]], dtype=torch.float64)
    coupling = rotation - decay * torch.eye(2, dtype=torch.float64)
    center = torch.tensor(center, dtype=torch.float64)
    delta = 2 * torch.linalg.solve(coupling, (torch.eye(2, dtype=torch.float64) - rotation) @ center)
    units = []
    for axis in range(2):
        terms = ((1, -bound - float(delta[axis]) / 2, 1), (-1, -bound + float(delta[axis]) / 2, -1))
        units += _odd_units(axis, coupling[:, axis].float() / 2, terms, num_units // 4, 0.05)
    return _stack(units)


def switching_lowrank_teacher(num_units: int = 20, obs_dim: int = 20, *, stay: float = 0.97, latent_noise_std: float = 0.05, obs_noise_std: float = 0.1, seed: int = 0) -> SwitchingLowRankTeacher:
    """The two-regime teacher of the module docstring (regime 0 bistable, regime 1 a stable focus)."""
    num_units = check_count(num_units, "num_units", 8)
    obs_dim = check_count(obs_dim, "obs_dim")
    if not 0.0 < stay < 1.0:
        raise ValueError(f"stay must be in (0, 1), got {stay}")
    if num_units % 4:
        raise ValueError(f"num_units must be a multiple of 4, got {num_units}")
    U0, V0, threshold0 = bistable_teacher_map(num_units)
    U1, V1, threshold1 = focus_teacher_map(num_units)
    generator = torch.Generator().manual_seed(seed + 7)
    C = torch.randn(obs_dim, 2, generator=generator)
    C = C / C.norm(dim=0, keepdim=True)
    d = 0.1 * torch.randn(obs_dim, generator=generator)
    transition = torch.full((2, 2), 1.0 - stay)
    transition.fill_diagonal_(stay)
    return SwitchingLowRankTeacher(
        a=0.9,
        U=torch.stack([U0, U1]),
        V=torch.stack([V0, V1]),
        threshold=torch.stack([threshold0, threshold1]),
        transition_matrix=transition,
        initial_probs=torch.full((2,), 0.5),
        latent_noise_std=check_positive(latent_noise_std, "latent_noise_std"),
        C=C,
        d=d,
        obs_noise_std=check_positive(obs_noise_std, "obs_noise_std"),
    )


def switching_lowrank_data(num_trials: int = 20, num_steps: int = 150, *, seed: int = 0, **teacher_options) -> SwitchingLowRankData:
    """Simulate ``num_trials`` trials of ``num_steps`` steps from :func:`switching_lowrank_teacher`.

    ``x_0 = 2 (cos p, sin p)`` with ``p ~ U(0, 2 pi)``, ``z_0`` from ``initial_probs``; then
    ``z_t ~ transition_matrix[z_{t-1}]`` and ``x_t ~ N(f_{z_t}(x_{t-1}), sigma_x^2 I)``.
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
