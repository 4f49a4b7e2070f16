r"""Start an SRNN's dynamics and encoder at the latents of its PCA readout, before the ELBO fit.

After :func:`~.srnn_start.initialize_linear_readout` the readout is ``y_t ~ N(C h_t + d, diag(sigma_y^2))``
with ``C`` the data's principal axes; the least-squares latents of the data under it are

    h0_t = (C^T C)^{-1} C^T (y_t - d)          (trials, T, P).

Two cheap regressions then move the rest of the model to agree with them, so that the ELBO starts near a
solution where the dynamics, not the noise, explain the data:

1. **dynamics**: maximize ``log p(h0) = log sum_z p(z, h0)`` (the collapsed chain of the model's own
   per-step definition, summed exactly over the states) plus the label term
   ``label_weight * sum_t log p(z_t = label_t | h0)`` over the model's non-encoder, non-readout parameters
   (dynamics bank, transitions, initial state, sigma_h);
2. **encoder**: maximize ``log q(h0 | y)`` over the encoder's parameters.

Each is an Adam loop without sampling: no encoder in the first, no model in the second.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..distributions import switching_log_marginal
from ..models.switching_ssm import label_log_match
from .srnn_start import fill_missing


def warm_start_at_readout_latents(module, y: Tensor, u, labels, mask, lengths, *, steps: int, lr: float, label_weight: float) -> None:
    """Both steps of the module docstring, ``steps`` Adam steps each at learning rate ``lr``, for a module whose
    linear readout was just set at the PCA of ``y (trials, T, D)`` (missing entries interpolated in time);
    ``u``, ``labels (trials, T)`` or None, ``mask``, ``lengths`` as in ``SRNN.fit``."""
    h0 = readout_latents(module.emission, fill_missing(y, mask, lengths))
    fit_dynamics_to_latents(module, h0, u, labels, lengths, steps=steps, lr=lr, label_weight=label_weight if labels is not None else 0.0)
    fit_encoder_to_latents(module.encoder, y, u, h0, mask, lengths, steps=steps, lr=lr)


def readout_latents(emission, y: Tensor) -> Tensor:
    """``h0 (trials, T, P)``: least-squares latents of ``y (trials, T, D)`` under the linear readout ``emission``."""
    weight, bias = emission.mapping.weight.detach(), emission.mapping.bias.detach()  # (D, P), (D,)
    return torch.linalg.lstsq(weight, (y - bias).reshape(-1, y.shape[-1]).T).solution.T.reshape(y.shape[:-1] + (weight.shape[-1],))


def fit_dynamics_to_latents(
    module, h0: Tensor, u: Optional[Tensor], labels: Optional[Tensor], lengths: Optional[Tensor], *, steps: int, lr: float, label_weight: float
) -> list[float]:
    """Step 1 of the module docstring; returns the losses (negative log p(h0) per step, label term included)."""
    skip = {id(p) for p in module.encoder.parameters()} | {id(p) for p in module.emission.parameters()}
    if module.filter_encoder is not None:
        skip |= {id(p) for p in module.filter_encoder.parameters()}
    params = [p for p in module.parameters() if id(p) not in skip]
    optimizer = torch.optim.Adam(params, lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        factors = module.latent_factors(h0, u, lengths)
        loss = -switching_log_marginal(*factors).sum()
        if labels is not None and label_weight > 0:
            loss = loss - label_weight * label_log_match(factors, labels, lengths).sum()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def fit_encoder_to_latents(encoder, y: Tensor, u: Optional[Tensor], h0: Tensor, mask, lengths, *, steps: int, lr: float) -> list[float]:
    """Step 2 of the module docstring; returns the losses (negative log q(h0 | y))."""
    optimizer = torch.optim.Adam(encoder.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = -encoder(y, u, mask, lengths).log_prob(h0).sum()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses
