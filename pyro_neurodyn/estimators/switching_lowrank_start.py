"""How a ``SwitchingLowRankRNN`` starts from data: hard EM of per-state maps on projected latents.

``affine_labels`` labels the steps by K affine maps (an autoregressive HMM fit by hard EM), and
``fit_state_maps`` fits every state's low-rank map to its labelled one-step pairs (see
``SwitchingLowRankRNN.initialize_from_data`` for the whole recipe).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..distributions import gaussian_log_density, switching_viterbi
from ..models.switching_lowrank import SwitchingLowRankModel
from .principal_subspace import eye_like

__all__ = ["affine_labels", "fit_state_maps"]


def affine_labels(module: SwitchingLowRankModel, latents: Tensor, labels: Tensor, max_iters: int = 20) -> Tensor:
    """Hard EM of K affine maps ``x_{t+1} = [x_t, 1] W_k + N(0, s^2 I)`` on ``latents (B, T, R)``, from ``labels (B, T)``.

    Alternates (i) least squares of every state's ``W_k`` ``(R + 1, R)`` on its labelled one-step pairs,
    all states in one batched solve of the normal equations ``(X^T D_k X) W_k = X^T D_k Y`` with
    ``D_k = diag(labels == k)`` (a small ridge keeps an empty state solvable), ``s^2`` from the
    residuals, and (ii) the Viterbi path of these Gaussian factors under the model's transition
    logits; stops when the labels stop changing. Returns labels ``(B, T)``.
    """
    inputs = torch.cat([latents[:, :-1], torch.ones_like(latents[:, :-1, :1])], -1)  # (B, T-1, R+1)
    targets = latents[:, 1:]
    trans_logits = module.transitions(latents[:, :-1]).expand(latents.shape[:-2] + (latents.shape[-2] - 1,) + (module.num_states,) * 2)
    eye = eye_like(inputs, inputs.shape[-1])
    for _ in range(max_iters):
        weights = torch.nn.functional.one_hot(labels[:, 1:], module.num_states).to(inputs)  # (B, T-1, K)
        gram = torch.einsum("btk,bti,btj->kij", weights, inputs, inputs) + 1e-6 * eye
        W = torch.linalg.solve(gram, torch.einsum("btk,bti,btr->kir", weights, inputs, targets))  # (K, R+1, R)
        residuals = targets.unsqueeze(-2) - torch.einsum("bti,kir->btkr", inputs, W)  # (B, T-1, K, R)
        scale = ((weights.unsqueeze(-1) * residuals.square()).sum() / (weights.sum() * latents.shape[-1])).sqrt()
        step_logp = gaussian_log_density(residuals, residuals.new_zeros(()), scale)
        emission_logp = torch.cat([torch.zeros_like(step_logp[:, :1]), step_logp], 1)
        updated = switching_viterbi(module.init_logits, trans_logits, emission_logp).states
        if torch.equal(updated, labels):
            break
        labels = updated
    return labels


def fit_state_maps(module: SwitchingLowRankModel, latents: Tensor, labels: Tensor, learn_scale: bool) -> None:
    """Least-squares one-step fit of every state's map to its labelled pairs ``latents (B, T, R)``,
    ``labels (B, T)``; sigma_x from the residuals when ``learn_scale``."""
    bank = module.dynamics
    current, following = latents[:, :-1].reshape(-1, latents.shape[-1]), latents[:, 1:].reshape(-1, latents.shape[-1])
    owner = labels[:, 1:].reshape(-1)  # z_t generates x_t from x_{t-1}
    parameters = [bank.V, bank.U, bank.threshold, bank.decay_logit]
    with torch.enable_grad():
        optimizer = torch.optim.LBFGS(parameters, max_iter=100, line_search_fn="strong_wolfe")

        def prediction_error() -> Tensor:
            optimizer.zero_grad()
            predicted = bank(current).gather(-2, owner[:, None, None].expand(-1, 1, current.shape[-1])).squeeze(-2)
            error = (following - predicted).square().sum(-1).mean()
            error.backward()
            return error

        optimizer.step(prediction_error)
        optimizer.zero_grad(set_to_none=True)
        error = prediction_error().detach()
        optimizer.zero_grad(set_to_none=True)
    if learn_scale:
        module.latent_log_scale.fill_(0.5 * float((error / latents.shape[-1]).clamp_min(1e-6).log()))
