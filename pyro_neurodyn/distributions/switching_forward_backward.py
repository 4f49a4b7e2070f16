"""The forward/backward scan of the switching chain (:mod:`~pyro_neurodyn.distributions.switching`):
the normalized chain in state-major layout, the log marginal with its hand-written backward, the smoothed
posterior and the filtered marginals, all from balanced-tree scans of depth O(log T)."""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

from .semiring_scan import (
    finite_max,
    log_vecmat_exp,
    normalized_log_up_sweep,
    prefix_messages,
    suffix_messages,
)
from .switching_checks import _chain_batch_shape, _check_possible

__all__ = ["SwitchingPosterior", "switching_filter", "switching_filter_step", "switching_log_marginal", "switching_posterior"]


class SwitchingPosterior(NamedTuple):
    """Smoothed posterior of the chain given all observations.

    Attributes:
        marginals: ``(..., T, K)``, ``marginals[..., t, k] = p(z_t = k | obs_{1:T})``.
        pairwise: ``(..., T-1, K, K)``, ``pairwise[..., t, i, j] = p(z_t = i, z_{t+1} = j | obs_{1:T})``.
    """

    marginals: Tensor
    pairwise: Tensor

def _states_first(x: Tensor, num_state_dims: int, other_ndim: int) -> Tensor:
    """``(*b, *states)`` -> contiguous ``(*states, *1s, *b)`` with ``other_ndim`` dims after the states."""
    x = x.reshape((1,) * (other_ndim + num_state_dims - x.dim()) + x.shape)
    return x.movedim(tuple(range(-num_state_dims, 0)), tuple(range(num_state_dims))).contiguous()


def _states_last(x: Tensor, num_state_dims: int, shape: torch.Size) -> Tensor:
    """Inverse of :func:`_states_first`, summing broadcast dims: a gradient of an input of ``shape``."""
    return x.movedim(tuple(range(num_state_dims)), tuple(range(-num_state_dims, 0))).sum_to_size(shape)


class _StateMajorChain(NamedTuple):
    """Normalized chain in state-major layout (``B`` = batch dims, broadcastable)."""

    log_init: Tensor  # (K, *B)            log p(z_1)
    log_trans: Tensor  # (K, K, *B, T-1|1)  log p(z_{t+1} | z_t)
    emission: Tensor  # (K, *B, T)         e_t - c_t
    emission_shift: Tensor  # (*B)          sum_t c_t, to add back to a log normalizer or a path's score


def _state_major_chain(init_logits: Tensor, trans_logits: Tensor, emission_logp: Tensor, batch_ndim: int) -> _StateMajorChain:
    """The chain of the module docstring in state-major layout, each step's emission scores shifted by their
    maximum over the states, ``c_t = max_k e_t[k]`` (0 where no state is possible; constant, no gradient).

    The shift leaves every posterior, filtered marginal and Viterbi path unchanged (a constant per step) and
    keeps the messages small: unshifted, they carry the running sum of the scores, so a marginal is a
    difference of numbers of size ~ T |e_t| (1e5 after 1000 steps of -100 nats), which in float32 loses the
    marginals' digits (measured: the SRNN's label term then pushed its fits on trials of 700-1000 steps to a
    non-finite loss within 15 steps; on 500 steps they converged)."""
    if trans_logits.dim() == 2:
        trans_logits = trans_logits.unsqueeze(-3)
    init = _states_first(init_logits, 1, batch_ndim)
    trans = _states_first(trans_logits, 2, batch_ndim + 1)
    emission = _states_first(emission_logp, 1, batch_ndim + 1)
    shift = finite_max(emission, 0)  # (*B, T)
    return _StateMajorChain(init.log_softmax(0), trans.log_softmax(1), emission - shift, shift.sum(-1))


def _potentials(chain: _StateMajorChain) -> tuple[Tensor, Tensor]:
    """alpha_1 = log p(z_1) + e_1 ``(K, *B)``; M_t[i, j] = log p(z_{t+1}=j | z_t=i) + e_{t+1}[j] ``(K, K, *B, T-1)``."""
    return chain.log_init + chain.emission[..., 0], chain.log_trans + chain.emission[..., 1:].unsqueeze(0)


def _up_sweep(mats: Tensor) -> tuple[list[Tensor], Tensor]:
    """``(levels, offset)`` of :func:`~.semiring_scan.normalized_log_up_sweep` (``([], 0)`` when T = 1)."""
    if not mats.size(-1):
        return [], mats.new_zeros(())
    return normalized_log_up_sweep(mats)


def _log_normalizer(alpha_1: Tensor, levels: list[Tensor], offset: Tensor) -> Tensor:
    """log Z ``(*B)`` from alpha_1, the top of the up-sweep (``levels`` empty when T = 1) and its dropped ``offset``."""
    if not levels:
        return alpha_1.logsumexp(0)
    return log_vecmat_exp(alpha_1, levels[-1][..., 0]).logsumexp(0) + offset


def _log_posterior_from_levels(alpha_1: Tensor, levels: list[Tensor], log_z: Tensor) -> tuple[Tensor, Tensor]:
    """Log smoothed marginals ``(K, *B, T)`` and log pairwise marginals ``(K, K, *B, T-1)``.

    log p(z_t = i, z_{t+1} = j | obs) = alpha_t[i] + M_t[i, j] + beta_{t+1}[j] - log Z, with alpha and
    beta from the down-sweeps of the same tree; singleton marginals are its row and column sums.
    """
    if not levels:
        log_marginals = (alpha_1 - log_z).unsqueeze(-1)
        return log_marginals, log_marginals.new_zeros(log_marginals.shape[:1] + log_marginals.shape[:-1] + (0,))
    alpha = prefix_messages(levels, alpha_1)
    beta = suffix_messages(levels)
    log_pairwise = (levels[0] + alpha.unsqueeze(1)).add_(beta.unsqueeze(0))
    # normalize each step by its own total: mathematically log Z at every t, numerically it removes
    # the rounding of log Z and the messages (log-potentials of size ~1e3 cost ~1e-4 in float32)
    log_pairwise = log_pairwise - log_pairwise.flatten(0, 1).logsumexp(0)
    log_marginals = torch.cat([log_pairwise.logsumexp(1), log_pairwise[..., -1:].logsumexp(0)], dim=-1)
    return log_marginals, log_pairwise


def _posterior_from_levels(alpha_1: Tensor, levels: list[Tensor], log_z: Tensor) -> tuple[Tensor, Tensor]:
    """Smoothed marginals ``(K, *B, T)`` and pairwise marginals ``(K, K, *B, T-1)`` (probabilities).

    As :func:`_log_posterior_from_levels`, exponentiated; the singleton marginals are plain sums of
    the pairwise ones, which is cheaper than log-sum-exps.
    """
    if not levels:
        log_marginals, log_pairwise = _log_posterior_from_levels(alpha_1, levels, log_z)
        return log_marginals.exp(), log_pairwise
    alpha = prefix_messages(levels, alpha_1)
    beta = suffix_messages(levels)
    log_pairwise = (levels[0] + alpha.unsqueeze(1)).add_(beta.unsqueeze(0))  # log p(z_t, z_{t+1}, obs) up to a constant per step
    pairwise = log_pairwise.sub_(finite_max(log_pairwise, (0, 1))).exp_()
    pairwise = pairwise / pairwise.sum((0, 1))  # per-step normalization, as in _log_posterior_from_levels
    marginals = torch.cat([pairwise.sum(1), pairwise[..., -1:].sum(0)], dim=-1)
    return marginals, pairwise


class _LogMarginal(torch.autograd.Function):
    """log Z with a hand-written backward: d log Z / d potentials are the posterior marginals.

    Forward is the no-grad up-sweep (O(T K^3) work); backward runs the two down-sweeps (O(T K^2)) and
    maps the marginals through the softmax normalizations:
    d/d init_logits = p(z_1) - softmax(init_logits),
    d/d trans_logits[t, i, j] = p(z_t=i, z_{t+1}=j) - p(z_t=i) softmax(trans_logits[t, i])[j],
    d/d emission_logp[t, k] = p(z_t = k).
    """

    @staticmethod
    def forward(ctx, init_logits: Tensor, trans_logits: Tensor, emission_logp: Tensor, batch_shape: torch.Size) -> Tensor:
        chain = _state_major_chain(init_logits, trans_logits, emission_logp, len(batch_shape))
        alpha_1, mats = _potentials(chain)
        levels, offset = _up_sweep(mats)
        log_z = _log_normalizer(alpha_1, levels, offset)  # of the shifted chain
        ctx.saved = (chain.log_init, chain.log_trans, alpha_1, levels, log_z)
        ctx.input_shapes = (init_logits.shape, trans_logits.shape, emission_logp.shape)
        return (log_z + chain.emission_shift).expand(batch_shape).clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_log_z: Tensor):
        log_init, log_trans, alpha_1, levels, log_z = ctx.saved
        init_shape, trans_shape, emission_shape = ctx.input_shapes
        marginals, pairwise = _posterior_from_levels(alpha_1, levels, log_z)
        grad = grad_log_z.unsqueeze(-1)
        grad_init = (marginals[..., 0] - log_init.exp()) * grad_log_z
        grad_trans = torch.mul(log_trans.exp(), marginals[..., :-1].unsqueeze(1)).neg_().add_(pairwise).mul_(grad)
        grad_emission = marginals.mul_(grad)
        return (
            _states_last(grad_init, 1, init_shape),
            _states_last(grad_trans, 2, trans_shape),
            _states_last(grad_emission, 1, emission_shape),
            None,
        )


def switching_log_marginal(init_logits: Tensor, trans_logits: Tensor, emission_logp: Tensor) -> Tensor:
    """``log sum_z p(z, obs)``, shape ``(...)`` (the broadcast batch shape).

    Chain ``init_logits (..., K)``, ``trans_logits (..., T-1, K, K)`` or ``(K, K)``, ``emission_logp (..., T, K)``.

    Exact: a balanced-tree reduction of the chain in the log-sum-exp semiring, guarded against
    underflow (:func:`~pyro_neurodyn.distributions.semiring_scan.log_matmul_exp`), so T = 1e5 stays
    finite. Differentiable once with respect to all three inputs; the gradient with respect to
    ``emission_logp`` is the smoothed marginals.
    """
    batch_shape = _chain_batch_shape(init_logits, trans_logits, emission_logp)
    return _LogMarginal.apply(init_logits, trans_logits, emission_logp, batch_shape)


def _batch_first(marginals: Tensor, pairwise: Tensor, batch_shape: torch.Size) -> SwitchingPosterior:
    marginals = marginals.movedim(0, -1).expand(batch_shape + marginals.shape[-1:] + marginals.shape[:1])
    pairwise = pairwise.movedim((0, 1), (-2, -1)).expand(batch_shape + pairwise.shape[-1:] + pairwise.shape[:2])
    return SwitchingPosterior(marginals, pairwise)


def switching_posterior(init_logits: Tensor, trans_logits: Tensor, emission_logp: Tensor, log_space: bool = False) -> SwitchingPosterior:
    """Smoothed ``marginals (..., T, K)`` and ``pairwise (..., T-1, K, K)`` by parallel forward-backward.

    Chain ``init_logits (..., K)``, ``trans_logits (..., T-1, K, K)`` or ``(K, K)``, ``emission_logp (..., T, K)``.

    Plain differentiable torch ops: autograd flows through the marginals. O(T K^3) work, O(log T) depth.
    With ``log_space=True`` both are returned as log-probabilities, computed without leaving log space:
    use that to differentiate a log-probability of the states (e.g. a cross-entropy to labels), whose
    gradient through ``marginals.log()`` would overflow where a marginal is tiny.
    """
    batch_shape = _chain_batch_shape(init_logits, trans_logits, emission_logp)
    chain = _state_major_chain(init_logits, trans_logits, emission_logp, len(batch_shape))
    alpha_1, mats = _potentials(chain)
    levels, offset = _up_sweep(mats)
    posterior = _log_posterior_from_levels if log_space else _posterior_from_levels
    log_z = _log_normalizer(alpha_1, levels, offset)
    _check_possible(log_z)
    marginals, pairwise = posterior(alpha_1, levels, log_z)
    return _batch_first(marginals, pairwise, batch_shape)


def _log_filtered(init_logits: Tensor, trans_logits: Tensor, emission_logp: Tensor) -> tuple[Tensor, _StateMajorChain, torch.Size]:
    """Log filtered marginals, state-major ``(K, *B, T)``, with the normalized chain and the batch shape."""
    batch_shape = _chain_batch_shape(init_logits, trans_logits, emission_logp)
    chain = _state_major_chain(init_logits, trans_logits, emission_logp, len(batch_shape))
    alpha_1, mats = _potentials(chain)
    if mats.size(-1):
        prefix = prefix_messages(_up_sweep(mats)[0], alpha_1)  # alpha_1..alpha_{T-1}, each up to a constant
        last = log_vecmat_exp(prefix[..., -1], mats[..., -1])  # alpha_T
        alpha = torch.cat([prefix, last.unsqueeze(-1)], dim=-1)
    else:
        alpha = alpha_1.unsqueeze(-1)
    log_norm = alpha.logsumexp(0, keepdim=True)
    _check_possible(log_norm[..., -1])  # log Z: finite exactly when every alpha_t has a finite entry
    return alpha - log_norm, chain, batch_shape


def switching_filter(init_logits: Tensor, trans_logits: Tensor, emission_logp: Tensor) -> Tensor:
    """Filtered marginals ``(..., T, K)``: ``out[..., t, k] = p(z_t = k | obs_{1:t})``.

    Chain ``init_logits (..., K)``, ``trans_logits (..., T-1, K, K)`` or ``(K, K)``, ``emission_logp (..., T, K)``.

    The forward messages alpha_t normalized over k, from the up-sweep and the prefix down-sweep of
    the same tree as :func:`switching_posterior` (O(log T) depth). Differentiable. Used to start
    forecasts from the state belief at the end of a prefix.
    """
    log_filtered, _, batch_shape = _log_filtered(init_logits, trans_logits, emission_logp)
    filtered = log_filtered.exp()
    return filtered.movedim(0, -1).expand(batch_shape + filtered.shape[-1:] + filtered.shape[:1])


def switching_filter_step(log_prior: Tensor, emission_logp: Tensor, trans_logits: Optional[Tensor] = None) -> Tensor:
    """One step of the forward recursion whose every step :func:`switching_filter` computes as a tree:

        log p(z_t = k | obs_{1:t}) = e_t[k] + log sum_j p(z_{t-1} = j | obs_{1:t-1}) p(z_t = k | z_{t-1} = j) - log c_t,

    c_t normalizing over k. Args: ``log_prior (..., K)``: with ``trans_logits``, the previous step's output
    ``log p(z_{t-1} | obs_{1:t-1})`` (normalized or not); without (the first step), the unnormalized
    ``log p(z_1)`` (``init_logits``). ``emission_logp (..., K)``: e_t. ``trans_logits``: ``(..., K, K)`` or
    ``(K, K)``, row = previous state, as in the chain. Returns ``(..., K)`` normalized log filtered marginals.

    Iterated over t it gives :func:`switching_filter`'s output (tested to float64 rounding); it is what an
    online filter runs, O(K^2) work and memory per step. The same normalizations (``log_softmax`` of the
    initial and transition logits, as :func:`_state_major_chain`) and the same log-space vector-matrix
    product (:func:`~pyro_neurodyn.distributions.semiring_scan.log_vecmat_exp`) as the tree's forward
    messages, in the state-major layout.
    """
    batch_ndim = max(log_prior.dim() - 1, emission_logp.dim() - 1, 0 if trans_logits is None else trans_logits.dim() - 2)
    alpha = _states_first(log_prior, 1, batch_ndim).log_softmax(0)  # (K, *B)
    if trans_logits is not None:
        alpha = log_vecmat_exp(alpha, _states_first(trans_logits, 2, batch_ndim).log_softmax(1))
    alpha = alpha + _states_first(emission_logp, 1, batch_ndim)
    log_norm = alpha.logsumexp(0)
    _check_possible(log_norm)
    return (alpha - log_norm).movedim(0, -1)
