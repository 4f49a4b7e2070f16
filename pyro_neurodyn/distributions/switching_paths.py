"""State paths of the switching chain (:mod:`~pyro_neurodyn.distributions.switching`): the Viterbi path,
the posterior as a backward Markov kernel, and exact posterior samples (forward filtering, backward
sampling)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .semiring_scan import max_plus_matmul, reduce_chain
from .switching_checks import _chain_batch_shape, _check_possible
from .switching_forward_backward import _log_filtered, _potentials, _state_major_chain

__all__ = ["SwitchingBackwardKernel", "ViterbiPath", "switching_backward_kernel", "switching_sample", "switching_viterbi"]


class ViterbiPath(NamedTuple):
    """Most likely state path.

    Attributes:
        states: ``(..., T)`` int64, ``argmax_z p(z | obs)``.
        log_joint: ``(...,)``, ``max_z log p(z, obs)``.
    """

    states: Tensor
    log_joint: Tensor


class SwitchingBackwardKernel(NamedTuple):
    """The posterior of the chain as a backward Markov chain (forward filtering, backward sampling).

    ``p(z | obs) = p(z_T | obs) prod_{t<T} p(z_t | z_{t+1}, obs_{1:t})``, with
    ``p(z_t = i | z_{t+1} = j, obs_{1:t}) ∝ p(z_t = i | obs_{1:t}) p(z_{t+1} = j | z_t = i)``.

    Attributes:
        last_log_probs: ``(..., K)``, ``log p(z_T = k | obs_{1:T})``.
        log_kernel: ``(..., T-1, K, K)``, ``log_kernel[..., t, j, i] = log p(z_t = i | z_{t+1} = j, obs_{1:t})``
            (0-based t; each row j normalized over i).
    """

    last_log_probs: Tensor
    log_kernel: Tensor


def switching_backward_kernel(init_logits: Tensor, trans_logits: Tensor, emission_logp: Tensor) -> SwitchingBackwardKernel:
    """The :class:`SwitchingBackwardKernel` of a chain: log filtered marginals (parallel scan) combined
    with the normalized transitions, all steps at once. O(T K^3) work, O(log T) depth.

    Chain ``init_logits (..., K)``, ``trans_logits (..., T-1, K, K)`` or ``(K, K)``, ``emission_logp (..., T, K)``.
    """
    log_filtered, chain, batch_shape = _log_filtered(init_logits, trans_logits, emission_logp)
    # joint[i, j, *B, t] = log p(z_t = i | obs_{1:t}) + log p(z_{t+1} = j | z_t = i)
    joint = log_filtered[..., :-1].unsqueeze(1) + chain.log_trans
    log_kernel = (joint - joint.logsumexp(0, keepdim=True)).movedim((1, 0), (-2, -1))  # (*B, T-1, j, i)
    num_states = log_filtered.shape[0]
    num_steps = log_filtered.shape[-1]
    return SwitchingBackwardKernel(
        log_filtered[..., -1].movedim(0, -1).expand(batch_shape + (num_states,)),
        log_kernel.expand(batch_shape + (num_steps - 1, num_states, num_states)),
    )


def switching_sample(
    init_logits: Tensor, trans_logits: Tensor, emission_logp: Tensor, sample_shape: torch.Size = torch.Size()  # noqa: B008
) -> Tensor:
    """Exact posterior samples of the state path, ``(*sample_shape, ..., T)`` int64, ``z ~ p(z | obs)``.

    Chain ``init_logits (..., K)``, ``trans_logits (..., T-1, K, K)`` or ``(K, K)``, ``emission_logp (..., T, K)``.

    Forward filtering, backward sampling: ``z_T ~ p(z_T | obs)``, then ``z_t ~ p(z_t | z_{t+1}, obs_{1:t})``
    for t = T-1 .. 1 (:func:`switching_backward_kernel`). The kernels of all steps come from one
    vectorized computation; the Python loop only draws (each z_t depends on the drawn z_{t+1}), every
    draw vectorized over samples and batch by the Gumbel-max trick with noise drawn up front.
    """
    try:
        sample_shape = torch.Size(sample_shape)
    except TypeError as error:
        raise TypeError(f"sample_shape must be a tuple of non-negative ints (a torch.Size), got {sample_shape!r}") from error
    if any(size < 0 for size in sample_shape):
        raise ValueError(f"sample_shape must hold non-negative sizes, got {tuple(sample_shape)}")
    last_log_probs, log_kernel = switching_backward_kernel(init_logits.detach(), trans_logits.detach(), emission_logp.detach())
    shape = sample_shape + last_log_probs.shape[:-1]
    num_steps, num_states = log_kernel.shape[-3] + 1, last_log_probs.shape[-1]
    gumbel = -last_log_probs.new_empty(shape + (num_steps, num_states)).exponential_().log()
    states = [(last_log_probs + gumbel[..., -1, :]).argmax(-1)]
    log_kernel = log_kernel.expand(shape + log_kernel.shape[-3:])
    for t in range(num_steps - 2, -1, -1):
        rows = log_kernel[..., t, :, :].gather(-2, states[-1][..., None, None].expand(shape + (1, num_states))).squeeze(-2)
        states.append((rows + gumbel[..., t, :]).argmax(-1))
    return torch.stack(states[::-1], -1)


def switching_viterbi(init_logits: Tensor, trans_logits: Tensor, emission_logp: Tensor) -> ViterbiPath:
    """Most likely path ``states (..., T)`` and its ``log_joint (...)``.

    Chain ``init_logits (..., K)``, ``trans_logits (..., T-1, K, K)`` or ``(K, K)``, ``emission_logp (..., T, K)``.

    The max-product chain is reduced as a balanced tree in the (max, +) semiring; the path is read off
    the gradient of the maximum with respect to the emission scores, which autograd routes through the
    single chosen maximizer of every max: a one-hot per time step (Viterbi's backtracking, done by
    autograd in O(log T) depth). Ties are broken consistently, so the path is always a valid optimum.
    """
    batch_shape = _chain_batch_shape(init_logits, trans_logits, emission_logp)
    num_steps, num_states = emission_logp.shape[-2:]
    with torch.enable_grad():
        # a leaf of the full batch shape, so that each chain's gradient is its own path
        emission = emission_logp.detach().expand(batch_shape + (num_steps, num_states)).clone().requires_grad_()
        chain = _state_major_chain(init_logits.detach(), trans_logits.detach(), emission, len(batch_shape))
        alpha_1, mats = _potentials(chain)
        scores = alpha_1 if num_steps == 1 else alpha_1.unsqueeze(1) + reduce_chain(mats, max_plus_matmul)
        log_joint = scores.flatten(0, scores.dim() - len(batch_shape) - 1).max(0).values + chain.emission_shift
        _check_possible(log_joint.detach())
        (chosen,) = torch.autograd.grad(log_joint.sum(), emission)
    return ViterbiPath(chosen.argmax(-1), log_joint.detach().expand(batch_shape).clone())
