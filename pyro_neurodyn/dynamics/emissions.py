"""Emission models p(y_t | h_t): a mapping of the latent (linear or MLP) and an observation noise.

``forward(h (..., T, P))`` returns a torch distribution with batch shape ``(..., T, D)``; ``mean(h)``
its mean (the reconstruction). Gaussian noise has a learned diagonal scale; Poisson counts use a
softplus or exp link on the mapped latent.
"""

from __future__ import annotations

import torch
import torch.distributions as td
from torch import Tensor, nn
from torch.nn.functional import softplus

MAPPINGS = ("linear", "mlp")
OBSERVATIONS = ("gaussian", "poisson")
LINKS = {"softplus": softplus, "exp": torch.exp}


def make_mapping(kind: str, latent_dim: int, obs_dim: int, hidden_dim: int = 64) -> nn.Module:
    """``"linear"``: C h + d. ``"mlp"``: one hidden layer of ``hidden_dim`` tanh units. Maps ``h (..., P)`` -> ``(..., D)``."""
    if kind == "linear":
        return nn.Linear(latent_dim, obs_dim)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(latent_dim, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, obs_dim))
    raise ValueError(f"emission must be one of {MAPPINGS}, got {kind!r}")


class GaussianEmission(nn.Module):
    """``y_t ~ N(g(h_t), diag(sigma_y^2))`` with a learned sigma_y (initialized to ``init_scale``)."""

    def __init__(self, mapping: nn.Module, obs_dim: int, init_scale: float = 0.1):
        super().__init__()
        self.mapping = mapping
        self.log_scale = nn.Parameter(torch.full((obs_dim,), float(init_scale)).log())

    def mean(self, h: Tensor) -> Tensor:
        """The reconstruction ``g(h)``: ``h (..., P)`` -> ``(..., D)``."""
        return self.mapping(h)

    def forward(self, h: Tensor) -> td.Distribution:
        """``N(g(h), diag(sigma_y^2))``: ``h (..., P)`` -> batch ``(..., D)``."""
        return td.Normal(self.mapping(h), self.log_scale.exp())


class PoissonEmission(nn.Module):
    """``y_t ~ Poisson(link(g(h_t)))``, link softplus (default) or exp."""

    def __init__(self, mapping: nn.Module, link: str = "softplus"):
        super().__init__()
        if link not in LINKS:
            raise ValueError(f"link must be one of {sorted(LINKS)}, got {link!r}")
        self.mapping, self.link = mapping, link

    def mean(self, h: Tensor) -> Tensor:
        """The rates ``link(g(h))``: ``h (..., P)`` -> ``(..., D)``."""
        return LINKS[self.link](self.mapping(h))

    def forward(self, h: Tensor) -> td.Distribution:
        """``Poisson(link(g(h)))``: ``h (..., P)`` -> batch ``(..., D)``."""
        return td.Poisson(self.mean(h))


def make_emission(observation: str, latent_dim: int, obs_dim: int, mapping: str = "linear", link: str = "softplus", init_scale: float = 0.1) -> nn.Module:
    """Build an emission by name (see the module docstring)."""
    if observation == "gaussian":
        return GaussianEmission(make_mapping(mapping, latent_dim, obs_dim), obs_dim, init_scale)
    if observation == "poisson":
        return PoissonEmission(make_mapping(mapping, latent_dim, obs_dim), link)
    raise ValueError(f"observation must be one of {OBSERVATIONS}, got {observation!r}")
