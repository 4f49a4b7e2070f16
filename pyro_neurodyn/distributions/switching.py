"""Exact inference in a discrete switching chain: log marginal, posterior, Viterbi, posterior samples.

The chain has K states z_1..z_T and is described by three log-space tensors (batch-first; their
leading batch dims broadcast against each other):

* ``init_logits``   ``(..., K)``: unnormalized log p(z_1 = k).
* ``trans_logits``  ``(..., T-1, K, K)``, ``(..., 1, K, K)`` or ``(K, K)``: ``trans_logits[..., t, i, j]``
  is the unnormalized log p(z_{t+2} = j | z_{t+1} = i) (0-based t; normalized over j here).
* ``emission_logp`` ``(..., T, K)``: log p(observation at t | z_t = k), any real score.

Values: real numbers or -inf (an impossible state, transition or emission). Every function raises a
``ValueError`` naming the argument, before any work, for NaN, +inf, or a row of all -inf (no initial
state; a state without successor; a step no state can emit); the posterior, filter, Viterbi and
sampling functions also for a chain that -inf entries leave without any path (log Z = -inf), for which
:func:`switching_log_marginal` returns -inf.

The joint is ``log p(z, obs) = log p(z_1) + sum_t log p(z_{t+1} | z_t) + sum_t e_t[z_t]``. Everything
here sums or maximizes over the K^T paths exactly, with balanced-tree scans of depth O(log T)
(:mod:`~pyro_neurodyn.distributions.semiring_scan`); nothing loops over time in Python.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from .semiring_scan import (
    log_matmul_exp,
    log_vecmat_exp,
    max_plus_matmul,
    prefix_messages,
    reduce_chain,
    suffix_messages,
    up_sweep,
)

__all__ = [
    "SwitchingFactors",
    "SwitchingBackwardKernel",
    "SwitchingPosterior",
    "ViterbiPath",
    "switching_backward_kernel",
    "switching_log_marginal",
    "switching_filter",
    "switching_posterior",
    "switching_sample",
    "switching_viterbi",
]


class SwitchingFactors(NamedTuple):
    """The three log-space tensors that define a chain (see the module docstring for shapes)."""

    init_logits: Tensor
    trans_logits: Tensor
    emission_logp: Tensor


class SwitchingPosterior(NamedTuple):
    """Smoothed posterior of the chain given all observations.

    Attributes:
        marginals: ``(..., T, K)``, ``marginals[..., t, k] = p(z_t = k | obs_{1:T})``.
        pairwise: ``(..., T-1, K, K)``, ``pairwise[..., t, i, j] = p(z_t = i, z_{t+1} = j | obs_{1:T})``.
    """

    marginals: Tensor
    pairwise: Tensor


class ViterbiPath(NamedTuple):
    """Most likely state path.

    Attributes:
        states: ``(..., T)`` int64, ``argmax_z p(z | obs)``.
        log_joint: ``(...,)``, ``max_z log p(z, obs)``.
    """

    states: Tensor
    log_joint: Tensor


def _chain_batch_shape(init_logits: Tensor, trans_logits: Tensor, emission_logp: Tensor) -> torch.Size:
    """Check the three tensors describe one chain; return their broadcast batch shape."""
    for name, value, min_dim in (
        ("init_logits", init_logits, 1),
        ("trans_logits", trans_logits, 2),
        ("emission_logp", emission_logp, 2),
    ):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        if value.dim() < min_dim:
            raise ValueError(f"{name} must have at least {min_dim} dims, got shape {tuple(value.shape)}")
        if not value.dtype.is_floating_point:
            raise TypeError(f"{name} must be a floating point tensor, got {value.dtype}")
    num_steps, num_states = emission_logp.shape[-2:]
    if num_states < 1 or num_steps < 1:
        raise ValueError(f"emission_logp must have T >= 1 steps and K >= 1 states, got shape {tuple(emission_logp.shape)}")
    if init_logits.shape[-1] != num_states:
        raise ValueError(f"init_logits has {init_logits.shape[-1]} states but emission_logp has K = {num_states}")
    if trans_logits.shape[-2:] != (num_states, num_states):
        raise ValueError(f"trans_logits must end in (K, K) = ({num_states}, {num_states}), got shape {tuple(trans_logits.shape)}")
    trans_batch = torch.Size()
    if trans_logits.dim() >= 3:
        if trans_logits.shape[-3] not in (1, num_steps - 1):
            raise ValueError(
                f"trans_logits time dim (dim -3) must be T-1 = {num_steps - 1} or 1, got shape {tuple(trans_logits.shape)}"
            )
        trans_batch = trans_logits.shape[:-3]
    try:
        batch_shape = torch.broadcast_shapes(init_logits.shape[:-1], trans_batch, emission_logp.shape[:-2])
    except RuntimeError as error:
        raise ValueError(
            "batch dims of init_logits, trans_logits and emission_logp do not broadcast: "
            f"{tuple(init_logits.shape)}, {tuple(trans_logits.shape)}, {tuple(emission_logp.shape)}"
        ) from error
    _check_chain_values(init_logits, trans_logits, emission_logp)
    return batch_shape


_CHAIN_ARGUMENTS = ("init_logits", "trans_logits", "emission_logp")
_DEAD_ROW_PROBLEMS = (
    "is -inf for every state: no initial state is possible",
    "has a row of all -inf: a state with no possible successor",
    "is -inf for every state at a time step: no state can emit that observation",
)


@torch.no_grad()
def _check_chain_values(init_logits: Tensor, trans_logits: Tensor, emission_logp: Tensor) -> None:
    """Reject NaN and +inf, and the -inf patterns that leave a chain without a path, before any work.

    -inf is a legitimate log-score (an impossible state or transition); what is not: NaN, +inf, and a
    last-dim row of all -inf (``init_logits``: no initial state; ``trans_logits``: a state without a
    successor, whose normalization is 0/0; ``emission_logp``: a step no state can emit), which all turn
    into NaN marginals and gradients. Cost on the common path: one sum per argument and one host sync
    (the sum of the three sums is finite or -inf exactly when no argument holds NaN or +inf); the row
    scan runs only over arguments that hold a -inf, the search for a culprit only when one exists.
    """
    tensors = (init_logits.detach(), trans_logits.detach(), emission_logp.detach())
    sums = [value.sum() for value in tensors]
    total = float(sums[0] + sums[1] + sums[2])
    if math.isfinite(total):  # no NaN, no +inf, no -inf anywhere
        return
    if total != -math.inf:  # NaN or +inf somewhere (or finite sums that overflowed: then nothing is found)
        for name, value in zip(_CHAIN_ARGUMENTS, tensors):
            for what, bad in (("NaN", torch.isnan(value)), ("+inf", torch.isposinf(value))):
                if bool(bad.any()):
                    first = tuple(int(i) for i in bad.nonzero()[0])
                    raise ValueError(
                        f"{name} contains {int(bad.sum())} {what} value(s), the first at index {first}: "
                        "log-space scores must be real numbers or -inf"
                    )
    for name, problem, value, value_sum in zip(_CHAIN_ARGUMENTS, _DEAD_ROW_PROBLEMS, tensors, sums):
        if math.isfinite(float(value_sum)):
            continue  # holds no -inf
        rows = torch.isneginf(value[..., 0])  # rows of all -inf, by K elementwise ands (faster than a
        for k in range(1, value.shape[-1]):  # reduction over a last dim of a few states)
            rows &= torch.isneginf(value[..., k])
        if bool(rows.any()):
            first = tuple(int(i) for i in rows.nonzero()[0])
            raise ValueError(f"{name} {problem} ({int(rows.sum())} such row(s), the first at index {first} of shape {tuple(value.shape)})")


def _check_possible(log_z: Tensor) -> None:
    """After the forward pass: a chain whose every path has probability 0 (log Z = -inf) has no posterior."""
    impossible = torch.isneginf(log_z)
    if bool(impossible.any()):
        first = tuple(int(i) for i in impossible.nonzero()[0])
        raise ValueError(
            "init_logits, trans_logits and emission_logp leave no possible state path (log Z = -inf) in "
            f"{int(impossible.sum())} chain(s), the first at batch index {first}: the posterior is undefined"
        )


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
    emission: Tensor  # (K, *B, T)         e_t


def _state_major_chain(init_logits: Tensor, trans_logits: Tensor, emission_logp: Tensor, batch_ndim: int) -> _StateMajorChain:
    if trans_logits.dim() == 2:
        trans_logits = trans_logits.unsqueeze(-3)
    init = _states_first(init_logits, 1, batch_ndim)
    trans = _states_first(trans_logits, 2, batch_ndim + 1)
    return _StateMajorChain(
        init.log_softmax(0),
        trans.log_softmax(1),
        _states_first(emission_logp, 1, batch_ndim + 1),
    )


def _potentials(chain: _StateMajorChain) -> tuple[Tensor, Tensor]:
    """alpha_1 = log p(z_1) + e_1 ``(K, *B)``; M_t[i, j] = log p(z_{t+1}=j | z_t=i) + e_{t+1}[j] ``(K, K, *B, T-1)``."""
    return chain.log_init + chain.emission[..., 0], chain.log_trans + chain.emission[..., 1:].unsqueeze(0)


def _log_normalizer(alpha_1: Tensor, levels: list[Tensor]) -> Tensor:
    """log Z ``(*B)`` from alpha_1 and the top of the up-sweep (``levels`` empty when T = 1)."""
    if not levels:
        return alpha_1.logsumexp(0)
    return log_vecmat_exp(alpha_1, levels[-1][..., 0]).logsumexp(0)


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
    pairwise = (levels[0] + alpha.unsqueeze(1)).add_(beta.unsqueeze(0)).sub_(log_z.unsqueeze(-1)).exp_()
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
        levels = up_sweep(mats, log_matmul_exp) if mats.size(-1) else []
        log_z = _log_normalizer(alpha_1, levels)
        ctx.saved = (chain.log_init, chain.log_trans, alpha_1, levels, log_z)
        ctx.input_shapes = (init_logits.shape, trans_logits.shape, emission_logp.shape)
        return log_z.expand(batch_shape).clone()

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

    Plain differentiable torch ops: autograd flows through the marginals. O(T K^3) work, O(log T) depth.
    With ``log_space=True`` both are returned as log-probabilities, computed without leaving log space:
    use that to differentiate a log-probability of the states (e.g. a cross-entropy to labels), whose
    gradient through ``marginals.log()`` would overflow where a marginal is tiny.
    """
    batch_shape = _chain_batch_shape(init_logits, trans_logits, emission_logp)
    chain = _state_major_chain(init_logits, trans_logits, emission_logp, len(batch_shape))
    alpha_1, mats = _potentials(chain)
    levels = up_sweep(mats, log_matmul_exp) if mats.size(-1) else []
    posterior = _log_posterior_from_levels if log_space else _posterior_from_levels
    log_z = _log_normalizer(alpha_1, levels)
    _check_possible(log_z)
    marginals, pairwise = posterior(alpha_1, levels, log_z)
    return _batch_first(marginals, pairwise, batch_shape)


def _log_filtered(init_logits: Tensor, trans_logits: Tensor, emission_logp: Tensor) -> tuple[Tensor, _StateMajorChain, torch.Size]:
    """Log filtered marginals, state-major ``(K, *B, T)``, with the normalized chain and the batch shape."""
    batch_shape = _chain_batch_shape(init_logits, trans_logits, emission_logp)
    chain = _state_major_chain(init_logits, trans_logits, emission_logp, len(batch_shape))
    alpha_1, mats = _potentials(chain)
    if mats.size(-1):
        prefix = prefix_messages(up_sweep(mats, log_matmul_exp), alpha_1)  # alpha_1..alpha_{T-1}
        last = log_vecmat_exp(prefix[..., -1], mats[..., -1])  # alpha_T
        alpha = torch.cat([prefix, last.unsqueeze(-1)], dim=-1)
    else:
        alpha = alpha_1.unsqueeze(-1)
    log_norm = alpha.logsumexp(0, keepdim=True)
    _check_possible(log_norm[..., -1])  # log Z: finite exactly when every alpha_t has a finite entry
    return alpha - log_norm, chain, batch_shape


def switching_filter(init_logits: Tensor, trans_logits: Tensor, emission_logp: Tensor) -> Tensor:
    """Filtered marginals ``(..., T, K)``: ``out[..., t, k] = p(z_t = k | obs_{1:t})``.

    The forward messages alpha_t normalized over k, from the up-sweep and the prefix down-sweep of
    the same tree as :func:`switching_posterior` (O(log T) depth). Differentiable. Used to start
    forecasts from the state belief at the end of a prefix.
    """
    log_filtered, _, batch_shape = _log_filtered(init_logits, trans_logits, emission_logp)
    filtered = log_filtered.exp()
    return filtered.movedim(0, -1).expand(batch_shape + filtered.shape[-1:] + filtered.shape[:1])


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
    with the normalized transitions, all steps at once. O(T K^3) work, O(log T) depth."""
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
    init_logits: Tensor, trans_logits: Tensor, emission_logp: Tensor, sample_shape: torch.Size = torch.Size()
) -> Tensor:
    """Exact posterior samples of the state path, ``(*sample_shape, ..., T)`` int64, ``z ~ p(z | obs)``.

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
        log_joint = scores.flatten(0, scores.dim() - len(batch_shape) - 1).max(0).values
        _check_possible(log_joint.detach())
        (chosen,) = torch.autograd.grad(log_joint.sum(), emission)
    return ViterbiPath(chosen.argmax(-1), log_joint.detach().expand(batch_shape).clone())
