r"""The component of a per-state distribution that a discrete state selects.

A switching model's step distributions carry one component per state in their last batch dim:
``p(h_t | h_{t-1}, z_t = k)`` for every k as one distribution of batch ``(..., K)``. A Pyro program
that has ``z_t`` as a sample site needs ``p(h_t | h_{t-1}, z_t)`` for the drawn (or enumerated)
``z_t``: that is :class:`StateComponent`,

    log p(x | z) = components.log_prob(x[..., None, :])[..., z],        x | z ~ components[..., z],

for ANY component distribution (Gaussian, Student-t, a user's own), with ``z`` of any shape that
broadcasts with the components' batch (Pyro's enumeration puts the K values of ``z`` in a dim of its
own on the left; the gather is :class:`~pyro.ops.indexing.Vindex`).
"""

from __future__ import annotations

import torch
from pyro.distributions import TorchDistribution
from pyro.ops.indexing import Vindex
from torch import Tensor
from torch.distributions import Distribution

from .diagonal_normal import DiagonalNormal

__all__ = ["StateComponent"]


class StateComponent(TorchDistribution):
    """Component ``state`` of ``components`` (batch ``(..., K)``, any event shape).

    Batch shape ``broadcast(components.batch_shape[:-1], state.shape)``; event shape that of the components.
    :meth:`sample` draws the selected component only when the components are a
    :class:`~pyro_neurodyn.distributions.DiagonalNormal` (its parameters are gathered first); otherwise it
    draws all K components and keeps the selected one.
    """

    arg_constraints = {}

    def __init__(self, components: Distribution, state: Tensor, validate_args=None):
        if not components.batch_shape:
            raise ValueError("components must have the states in their last batch dim, got batch shape ()")
        self.components, self.state = components, state
        batch_shape = torch.broadcast_shapes(components.batch_shape[:-1], state.shape)
        super().__init__(batch_shape, components.event_shape, validate_args=validate_args)

    @property
    def support(self):
        return self.components.support

    @property
    def has_rsample(self) -> bool:
        return self.components.has_rsample

    def _select(self, per_state: Tensor) -> Tensor:
        """``per_state (..., K, *event)`` at ``state``: ``(..., *event)``."""
        event_slices = (slice(None),) * len(self.event_shape)
        return Vindex(per_state)[(Ellipsis, self.state) + event_slices]

    def log_prob(self, value: Tensor) -> Tensor:
        """``log p(value | state)``: ``value (..., *event)`` -> ``(...)`` (the batch shape, broadcast with ``value``'s)."""
        event_dim = len(self.event_shape)
        per_state = self.components.log_prob(value.unsqueeze(-1 - event_dim))  # (..., K)
        return Vindex(per_state)[..., self.state]

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        """Reparameterized draws of the selected components: ``sample_shape + batch_shape + event_shape``."""
        return self._draw(sample_shape, reparameterized=True)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        """Draws of the selected components (no gradient): ``sample_shape + batch_shape + event_shape``."""
        with torch.no_grad():
            return self._draw(sample_shape, reparameterized=False)

    def _draw(self, sample_shape: torch.Size, reparameterized: bool) -> Tensor:
        components = self.components
        if isinstance(components, DiagonalNormal):  # gather the parameters, draw only the selected component
            num_states = components.batch_shape[-1]
            scale = components.scale
            if scale.dim() >= 2:  # (..., K or 1, P or 1): a scale per state
                scale = self._select(scale.expand(scale.shape[:-2] + (num_states,) + scale.shape[-1:]))
            loc = components.loc
            selected = DiagonalNormal(self._select(loc.expand(loc.shape[:-2] + (num_states,) + loc.shape[-1:])), scale)
            return selected.rsample(sample_shape) if reparameterized else selected.sample(sample_shape)
        every_state = components.rsample(sample_shape) if reparameterized else components.sample(sample_shape)
        return self._select(every_state).expand(self._extended_shape(sample_shape))
