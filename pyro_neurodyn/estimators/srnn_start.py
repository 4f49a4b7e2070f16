"""How an ``SRNN`` fit starts: the labels that anchor its states, and its readout at the data's PCA.

Labels (the SRNN paper's initialization; see ``SRNN.fit``'s ``init`` for the measured reasons of the
default): the Viterbi path of an autoregressive HMM (``"arhmm"``), of a Gaussian HMM (``"hmm"``), k-means
clusters (``"kmeans"``), the user's own ``(trials, T)`` array, or none.
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch
from scipy.cluster.vq import kmeans2
from scipy.ndimage import gaussian_filter1d
from torch import Tensor, nn

from ..data.recording import equal_length_windows, session_blocks, steps_within
from ..data.validation import as_state_labels
from ..models.autoregressive_hmm import AutoregressiveHMM, principal_component_scores
from ..models.gaussian_emission_hmm import GaussianEmissionHMM
from .configs import SRNNConfig
from .principal_subspace import principal_axes
from .session_labels import aligned_session_labels

__all__ = ["InitLabels", "initial_labels", "initialize_linear_readout", "label_features", "session_blocks"]

InitLabels = Union[str, None, np.ndarray, Tensor]


def initial_labels(
    init: InitLabels,
    y: Tensor,
    config: SRNNConfig,
    seed: Optional[int],
    mask: Optional[Tensor] = None,
    lengths: Optional[Tensor] = None,
    blocks: Optional[list] = None,
) -> Optional[Tensor]:
    """Labels ``(trials, T)`` int64 for ``y (trials, T, D)`` by the method ``init`` (None: no labels).

    With ``mask (trials, T, D)`` / ``lengths (trials,)`` (a recording with missing entries or ragged trials),
    the missing entries are filled by linear interpolation in time (labels are a starting point only), the
    labelling model is fit on windows as long as the shortest trial, and each trial is labelled on its own
    steps (the padding gets label 0, which the fit ignores). With ``blocks`` (sessions with disjoint channels,
    :func:`session_blocks`) each session is labelled on its own channels and the sessions' labels are aligned
    by their dynamics (:mod:`.session_labels`)."""
    num_states = config.num_states
    if init is None:
        return None
    if isinstance(init, str) and blocks is not None:
        return _session_labels(init, y, config, seed, mask, lengths, blocks).to(y.device)
    if isinstance(init, str) and (mask is not None or lengths is not None):
        return _ragged_labels(init, y, config, seed, mask, lengths).to(y.device)
    if isinstance(init, str):
        if init == "kmeans":
            flat = y.reshape(-1, y.shape[-1]).double().cpu().numpy()
            _, labels = kmeans2(flat, num_states, minit="++", seed=seed)
            return torch.as_tensor(labels, dtype=torch.long).reshape(y.shape[:2])
        if init == "hmm":
            hmm = GaussianEmissionHMM(num_states, y.shape[-1])
            hmm.fit_em(y, seed=seed)
            return hmm.most_likely_states(y)
        if init == "arhmm":
            features = label_features(y, config)
            arhmm = AutoregressiveHMM(num_states, features.shape[-1], covariance="full")
            arhmm.fit_em(features, seed=seed)
            return arhmm.most_likely_states(features)
        raise ValueError(f"init must be 'kmeans', 'hmm', 'arhmm', None or an array of labels, got {init!r}")
    labels = as_state_labels(init, "init", num_states=num_states)
    if labels.shape != y.shape[:2]:
        raise ValueError(f"init labels must have shape (trials, time) = {tuple(y.shape[:2])}, got {tuple(labels.shape)}")
    return labels


def _session_labels(init: str, y: Tensor, config: SRNNConfig, seed: Optional[int], mask, lengths, blocks: list) -> Tensor:
    num_steps = y.shape[1]
    within = steps_within(lengths.cpu(), num_steps) if lengths is not None else torch.ones(y.shape[:2], dtype=torch.bool)

    def label(trials: Tensor, channels: Tensor) -> Tensor:
        own_mask = None if mask is None else mask[trials][..., channels]
        own_lengths = None if lengths is None else lengths[trials]
        if own_mask is not None and bool(own_mask[within[trials.cpu()].to(own_mask.device)].all()):
            own_mask = None  # only padding is missing: the lengths say it
        if own_lengths is not None and bool((own_lengths == num_steps).all()):
            own_lengths = None
        return initial_labels(init, y[trials][..., channels], config, seed, own_mask, own_lengths)

    return aligned_session_labels(label, fill_missing(y, mask, lengths), within, blocks, config.num_states, config.latent_dim)


def _ragged_labels(init: str, y: Tensor, config: SRNNConfig, seed: Optional[int], mask, lengths) -> Tensor:
    lengths = torch.full(y.shape[:1], y.shape[1], dtype=torch.int64) if lengths is None else lengths.cpu()
    within = steps_within(lengths, y.shape[1])  # (trials, T)
    features = _ragged_features(fill_missing(y, mask, lengths).cpu(), within, config)  # one basis for all trials
    labels = torch.zeros(y.shape[:2], dtype=torch.int64)
    if init == "kmeans":  # the trials' own time points only
        _, clusters = kmeans2(features[within].double().numpy(), config.num_states, minit="++", seed=seed)
        labels[within] = torch.as_tensor(clusters, dtype=torch.int64)
        return labels
    window = int(lengths.min())
    if window < 3:
        raise ValueError(f"init={init!r} on ragged trials needs every trial to have >= 3 steps (shortest: {window}); pass init=None")
    model = _labelling_model(init, equal_length_windows(features, lengths), config, seed)
    for b, n in enumerate(lengths.tolist()):
        labels[b, :n] = model.most_likely_states(features[b : b + 1, :n])[0]
    return labels


def _ragged_features(filled: Tensor, within: Tensor, config: SRNNConfig) -> Tensor:
    """:func:`label_features` of padded trials ``(trials, T, D)``: the padding holds each trial's last value (so
    smoothing does not pull the trial's end towards it), and the principal directions are those of the trials'
    own steps."""
    last = (within.sum(-1) - 1).clamp_min(0)
    held = torch.where(within.unsqueeze(-1), filled, filled[torch.arange(len(filled)), last].unsqueeze(1))
    if config.observation != "poisson":
        return held
    smooth = torch.as_tensor(gaussian_filter1d(held.double().sqrt().numpy(), 1.0, axis=1))
    centered = smooth - smooth[within].mean(0)
    _, _, vh = torch.linalg.svd(centered[within], full_matrices=False)
    return (centered @ vh[: config.latent_dim].T).to(filled.dtype)


def _labelling_model(init: str, windows: Tensor, config: SRNNConfig, seed: Optional[int]):
    """A labelling model (with ``most_likely_states``) fit on feature ``windows (W, L, F)``."""
    if init == "hmm":
        model = GaussianEmissionHMM(config.num_states, windows.shape[-1])
    elif init == "arhmm":
        model = AutoregressiveHMM(config.num_states, windows.shape[-1], covariance="full")
    else:
        raise ValueError(f"init must be 'kmeans', 'hmm', 'arhmm', None or an array of labels, got {init!r}")
    model.fit_em(windows, seed=seed)
    return model


def fill_missing(y: Tensor, mask: Optional[Tensor], lengths: Optional[Tensor]) -> Tensor:
    """``y (trials, T, D)`` with unobserved entries linearly interpolated in time within each trial (held at the
    ends; a channel never observed in a trial takes its mean over all observed entries), padding left as is."""
    if mask is None:
        return y
    values, observed = y.detach().double().cpu().numpy().copy(), mask.cpu().numpy()
    steps = np.arange(y.shape[1])
    channel_mean = (values * observed).sum((0, 1)) / np.maximum(observed.sum((0, 1)), 1)
    ends = [y.shape[1]] * y.shape[0] if lengths is None else lengths.tolist()
    for b, end in enumerate(ends):
        for d in range(y.shape[2]):
            seen = np.flatnonzero(observed[b, :end, d])
            values[b, :end, d] = np.interp(steps[:end], seen, values[b, seen, d]) if len(seen) else channel_mean[d]
    return torch.as_tensor(values, dtype=y.dtype, device=y.device)


def label_features(y: Tensor, config: SRNNConfig) -> Tensor:
    """What the ARHMM labels: ``y`` itself for Gaussian observations; for counts, square roots
    (variance-stabilized) smoothed over time by a Gaussian of one bin and projected on their
    ``latent_dim`` principal components (per-bin Poisson noise otherwise swamps the dynamics: an
    ARHMM on raw or square-root counts of the rotation data is at chance, on these features 0.95-0.97).
    ``y (trials, T, D)`` -> ``(trials, T, D)``, or ``(trials, T, min(latent_dim, D))`` for counts."""
    if config.observation != "poisson":
        return y
    smooth = torch.as_tensor(gaussian_filter1d(y.double().sqrt().cpu().numpy(), 1.0, axis=1))
    return principal_component_scores(smooth, config.latent_dim).to(device=y.device, dtype=y.dtype)


@torch.no_grad()
def initialize_linear_readout(
    emission: nn.Module, y: Tensor, latent_dim: int, lengths: Optional[Tensor] = None, blocks: Optional[list] = None
) -> None:
    """Start a linear Gaussian readout at PCA of ``y (trials, T, D)`` (the steps ``t < lengths`` of padded trials):
    ``C = V_P diag(s)``, ``d = mean(y)``, the latent coordinates scaled to std 0.5 (inside tanh's range),
    sigma_y the residual std (or 10% of the data's std where P >= D). With ``blocks`` (:func:`session_blocks`)
    each session's channels start at the PCA of its own trials: pooled, the channels of the session with the
    most variance would take every principal direction and leave the other sessions' rows at zero."""
    parts = [(torch.arange(y.shape[0], device=y.device), torch.arange(y.shape[-1], device=y.device))] if blocks is None else blocks
    weight = y.new_zeros(y.shape[-1], latent_dim, dtype=torch.float64)
    bias, noise = y.new_zeros(y.shape[-1], dtype=torch.float64), y.new_ones(y.shape[-1], dtype=torch.float64)
    for trials, channels in parts:
        part = y[trials][..., channels]
        flat = part.reshape(-1, part.shape[-1]).double()
        if lengths is not None:
            flat = flat[steps_within(lengths[trials].to(y.device), y.shape[1]).reshape(-1)]
        weight[channels], bias[channels], noise[channels] = _principal_readout(flat, latent_dim)
    emission.mapping.weight.copy_(weight)
    emission.mapping.bias.copy_(bias)
    emission.log_scale.copy_(noise.clamp_min(1e-4).log())


def _principal_readout(flat: Tensor, latent_dim: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(C (D, P), d (D,), sigma_y (D,))`` of the readout at the PCA of the rows ``flat (N, D)``."""
    mean, singular, vh = principal_axes(flat)
    components = vh[:latent_dim]  # (<=P, D)
    scale = singular[:latent_dim] / (flat.shape[0] - 1) ** 0.5 / 0.5  # projection std / 0.5
    weight = flat.new_zeros(flat.shape[-1], latent_dim)  # float64, on the data's device
    weight[:, : components.shape[0]] = components.T * scale
    residual = flat - mean - (flat - mean) @ components.T @ components
    noise = residual.std(0) if components.shape[0] < flat.shape[-1] else 0.1 * flat.std(0)
    return weight, mean, noise
