"""How a ``SwitchingLowRankRNN`` starts from data: hard EM of per-state maps on projected latents.

``start_from_data`` runs the whole recipe (see ``SwitchingLowRankRNN.initialize_from_data``):
``affine_labels`` labels the steps by K affine maps (an autoregressive HMM fit by hard EM),
``fit_state_maps`` fits every state's low-rank map to its labelled one-step pairs, and
``filtered_means`` gives the particle filter's means that its filter rounds refit to (and that the
estimator decodes after a VSMC fit).
"""

from __future__ import annotations

from typing import Optional

import pyro
import torch
from torch import Tensor

from ..data.recording import equal_length_windows
from ..distributions import gaussian_log_density, switching_viterbi
from ..guides.proposals import SwitchingKalmanProposal
from ..infer import VSMC_ELBO
from ..models.gaussian_emission_hmm import GaussianEmissionHMM
from ..models.switching_lowrank import SwitchingLowRankModel
from .configs import SwitchingLowRankRNNConfig
from .lowrank_initialization import impute_missing
from .principal_subspace import eye_like, principal_subspace

__all__ = ["affine_labels", "filtered_means", "fit_state_maps", "start_from_data"]


@torch.no_grad()
def start_from_data(
    module: SwitchingLowRankModel, config: SwitchingLowRankRNNConfig, y: Tensor, mask: Optional[Tensor], lengths: Optional[Tensor],
    num_rounds: int, filter_rounds: int, num_particles: int, blocks: Optional[list] = None,
) -> None:  # fmt: skip
    """Set ``module``'s readout, initial state, maps and sigma_x from ``y (B, T, D)`` (observed where ``mask (B, T, D)``,
    trials of ``lengths (B,)``; sessions ``blocks``), Gaussian observations: the steps of
    ``SwitchingLowRankRNN.initialize_from_data``, with ``num_rounds`` rounds of hard EM on the projected latents
    and ``filter_rounds`` on the particle filter's means (``num_particles`` particles)."""
    rank = config.rank
    filled = impute_missing(y, mask)
    subspace = principal_subspace(filled, rank, None if mask is None else mask.any(-1), blocks)
    module.emission.mapping.weight.copy_(subspace.directions)
    module.emission.mapping.bias.copy_(subspace.mean)
    module.emission.log_scale.copy_(0.5 * subspace.residual_variance.log().expand_as(module.emission.log_scale))
    latents = equal_length_windows(subspace.project(filled), lengths)  # (B, T, R), or windows (N, W, R) of ragged trials
    y, observed = equal_length_windows(filled, lengths), None if mask is None else equal_length_windows(mask, lengths)
    features = (latents[:, 1:] - latents[:, :-1]).norm(dim=-1, keepdim=True)
    hmm = GaussianEmissionHMM(config.num_states, 1).to(features)  # in the data's dtype, on its device
    hmm.fit_em(features, seed=config.seed)
    labels = torch.cat([hmm.most_likely_states(features), hmm.most_likely_states(features)[:, -1:]], 1)
    labels = affine_labels(module, latents, labels)
    module.init_loc.copy_(latents[:, 0].mean(0).expand_as(module.init_loc))
    module.init_log_scale.copy_(latents[:, 0].std(0).clamp_min(1e-3).log())
    for _ in range(num_rounds):
        fit_state_maps(module, latents, labels, learn_scale=config.latent_scale is None)
        labels = switching_viterbi(*module.latent_factors(latents)).states
    for _ in range(filter_rounds):
        latents = filtered_means(module, SwitchingKalmanProposal(module, "posterior_moments"), y, num_particles, observed)
        labels = switching_viterbi(*module.latent_factors(latents)).states
        fit_state_maps(module, latents, labels, learn_scale=config.latent_scale is None)


def filtered_means(
    module: SwitchingLowRankModel, proposal: SwitchingKalmanProposal, y: Tensor, num_particles: int, mask: Optional[Tensor] = None
) -> Tensor:
    """The particle filter's weighted means ``E[x_t | y_{<=t}]`` ``(trials, T, R)`` of ``y (trials, T, D)`` under ``module``
    and ``proposal`` (observing ``y`` where ``mask``)."""
    with pyro.validation_enabled(False):
        record = VSMC_ELBO(num_particles).filter(module, proposal, y, None, mask)
    weights = record.log_weights.exp().unsqueeze(-1)  # (T, P, B, 1)
    return (weights * record.states["x"]).sum(1).transpose(0, 1)


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
