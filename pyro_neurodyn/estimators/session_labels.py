"""Starting labels for sessions that recorded different channels: each session labelled on its own, then aligned.

A labelling model fit on the pooled channels of sessions with disjoint channel sets sees each session in
its own subspace and learns the sessions apart instead of the regimes (measured on rotation data seen by
3 sessions of 10 neurons each: pooled ARHMM labels put the joint SRNN at 0.53-0.56 held-out accuracy).
So each session is labelled alone (:func:`~.srnn_start.initial_labels` on its trials and channels), and
the sessions' label sets are matched to session 0's by what a regime *does*: for every labelled state, the
one-step linear map ``x_{t+1} ~ A x_t + b`` of the session's principal-component latents (the frame its
readout starts in, :func:`~.srnn_start.initialize_linear_readout`). The signature of a state is its
eigenvalues' moduli and absolute angles, sorted (unchanged by any change of coordinates), and its signed
rotation rate in the plane of the first two components, ``(A[1, 0] - A[0, 1]) / 2``. Mirror-image regimes
(clockwise and counter-clockwise rotation) differ only in that sign, which a reflected frame flips: matched
on it, every session's labels agree with the orientation of its own starting frame, so one state of the
shared dynamics turns the same way in all of them. States are matched by the Hungarian algorithm on
signature distances.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from .principal_subspace import principal_axes
from .session_frames import least_squares_map, one_step_pairs

__all__ = ["aligned_session_labels", "dynamics_signatures"]


def dynamics_signatures(latents: Tensor, labels: Tensor, within: Tensor, num_states: int) -> np.ndarray:
    """``(K, 2 P + 1)``: for each state k, the sorted moduli and sorted absolute angles of the eigenvalues of the
    least-squares map ``x_{t+1} ~ A_k x_t + b_k`` over the steps labelled k, and its signed rotation rate
    ``(A_k[1, 0] - A_k[0, 1]) / 2`` (0 for P = 1), from ``latents (trials, T, P)``, ``labels (trials, T)`` and
    ``within (trials, T)`` (the trials' own steps). A state with too few steps gets NaN (matched last)."""
    dim = latents.shape[-1]
    signatures = np.full((num_states, 2 * dim + 1), np.nan)
    for k in range(num_states):
        current, following = one_step_pairs(latents.double(), within, labels == k)  # the pairs ending in state k
        if current.shape[0] <= dim + 1:
            continue
        linear_map = least_squares_map(current, following)[0].cpu().numpy()  # A_k (P, P)
        eigenvalues = np.linalg.eigvals(linear_map)
        rotation = 0.5 * (linear_map[1, 0] - linear_map[0, 1]) if dim > 1 else 0.0
        signatures[k] = np.concatenate([np.sort(np.abs(eigenvalues)), np.sort(np.abs(np.angle(eigenvalues))), [rotation]])
    return signatures


def aligned_session_labels(
    label: Callable[[Tensor, Tensor], Tensor], y: Tensor, within: Tensor, blocks: list, num_states: int, latent_dim: int
) -> Tensor:
    """Labels ``(trials, T)`` of ``y (trials, T, D)``: ``label(trials, channels)`` labels each session's block (the
    ``(trials, channels)`` pairs of :func:`~pyro_neurodyn.data.recording.session_blocks`), then every session's states are renamed
    to match session 0's (module docstring). ``within (trials, T)``: the trials' own steps."""
    labels = torch.zeros(y.shape[:2], dtype=torch.int64)
    reference = None
    for trials, channels in blocks:
        own = label(trials, channels).cpu()
        steps = within[trials.cpu()]
        latents = _principal_scores(y[trials][..., channels].cpu().double(), steps, latent_dim)
        signatures = dynamics_signatures(latents, own, steps, num_states)
        if reference is None:
            reference = signatures
        else:
            distance = np.nan_to_num(np.linalg.norm(signatures[:, None] - reference[None], axis=-1), nan=1e6)
            rows, cols = linear_sum_assignment(distance)
            renamed = torch.empty(num_states, dtype=torch.int64)
            renamed[torch.as_tensor(rows)] = torch.as_tensor(cols)
            own = renamed[own]
        labels[trials.cpu()] = own
    return labels


def _principal_scores(part: Tensor, steps: Tensor, latent_dim: int) -> Tensor:
    """``part (trials, T, D)`` centred and projected on the top ``latent_dim`` principal directions of its steps
    ``steps (trials, T)`` (:func:`.principal_subspace.principal_axes`, as the readout's start: the same frame)."""
    mean, _, vh = principal_axes(part[steps])
    return (part - mean) @ vh[:latent_dim].T
