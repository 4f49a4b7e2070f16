"""An observation distribution restricted to the observed entries of a recording.

For ``p(y_t | h_t)`` with event ``(D,)`` and ``mask (..., D)`` (True = observed),

    log p_mask(y_t | h_t) = sum_{d observed} log p(y_td | h_t)

when the channels are independent given h_t (an ``Independent`` over a per-channel distribution, as every
shipped emission is): a missing entry contributes nothing. A distribution that couples the channels
(a multivariate normal, say) can only be masked by whole time steps: all its channels observed or none.
"""

from __future__ import annotations

from typing import Optional

import pyro.distributions as dist
from torch import Tensor
from torch.distributions import Distribution, Independent

__all__ = ["mask_observation"]


def mask_observation(observation: Distribution, mask: Optional[Tensor]) -> Distribution:
    """``observation`` (batch ``(...)``, event ``(D,)``) scoring only the entries where ``mask (..., D)`` is True."""
    if mask is None:
        return observation
    if isinstance(observation, Independent) and observation.reinterpreted_batch_ndims == 1:
        return dist.Independent(dist.MaskedDistribution(observation.base_dist, mask), 1)
    step_observed = mask.any(-1)
    if not bool((mask == step_observed.unsqueeze(-1)).all()):
        raise ValueError(
            f"{type(observation).__name__} couples the channels, so a time step must have all its channels observed "
            "or none; mask has partly observed steps"
        )
    return dist.MaskedDistribution(observation, step_observed)


