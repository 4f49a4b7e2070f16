"""Parallel (associative) scans over a chain of K x K log-potential matrices.

A discrete chain z_1..z_T with log-potentials

    alpha_1[k]      = log p(z_1 = k) + e_1[k]
    M_t[i, j]       = log p(z_{t+1} = j | z_t = i) + e_{t+1}[j],      t = 1..T-1

has log normalizer ``log Z = logsumexp(alpha_1 (x) M_1 (x) ... (x) M_{T-1})``, where ``(x)`` is the
log-sum-exp matrix product ``(A (x) B)[i, j] = logsumexp_k A[i, k] + B[k, j]``. The product is
associative, so the chain is reduced as a balanced binary tree (depth O(log T)) instead of a Python
loop over T steps (Sarkka & Garcia-Fernandez 2021, "Temporal parallelization of Bayesian smoothers").

Layout: **states first, time last**. Matrices are ``(K, K, N, n)`` and vectors ``(K, N, n)`` (N a
flat batch, n time steps). Every product and reduction over states then runs over leading dims, as
K or K^2 operations on long contiguous vectors; measured 2.5x faster than batched K x K matmuls on
2 CPU cores, where reductions over a tiny last dim are slow.

* :func:`up_sweep` builds the tree's levels bottom-up with any associative ``combine``;
  :func:`normalized_log_up_sweep` the log-sum-exp tree with each matrix shifted by its maximum (float32).
* :func:`prefix_messages` / :func:`suffix_messages` walk the tree top-down (Blelloch's down-sweep) and
  return the forward messages alpha_t and backward messages beta_t for every t. They are
  vector-matrix products, O(K^2) each: O(T K^2) work in O(log T) depth.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

Combine = Callable[[Tensor, Tensor], Tensor]


def log_matmul_exp(x: Tensor, y: Tensor) -> Tensor:
    """``out[i, j] = logsumexp_k x[i, k] + y[k, j]`` for state-major log-matrices ``(K, K, ...)``.

    Fast path: shift x by its row maxima and y by its column maxima, exponentiate, and accumulate K
    outer products. Entry (i, j) of the shifted product is a sum of non-negative terms, and a term lost
    to underflow is below ``finfo.tiny``; so where every entry is at least ``tiny / eps`` the loss is
    below ``K * eps`` relative, i.e. rounding. Otherwise (log-transition probabilities spanning more
    than ~70 nats in float32: sharp recurrent transitions, structural zeros) the product is recomputed
    with the exact broadcast ``logsumexp``. ``pyro.distributions.hmm._logmatmulexp`` has no such guard:
    with a 1000-nat span it returns -87 where the answer is -999.

    The in-place ops only touch fresh temporaries whose values autograd does not need (``exp_`` saves
    its own output, ``addcmul_`` its factors), so the function is differentiable yet allocates little;
    measured 2.5x faster than the out-of-place form at (K, B, T) = (5, 64, 1000).
    """
    finfo = torch.finfo(x.dtype)
    x_shift = x.detach().amax(1, keepdim=True).clamp_min(finfo.min)
    y_shift = y.detach().amax(0, keepdim=True).clamp_min(finfo.min)
    x_exp, y_exp = (x - x_shift).exp_(), (y - y_shift).exp_()
    product = x_exp[:, :1] * y_exp[:1, :]
    for k in range(1, x.size(1)):
        product.addcmul_(x_exp[:, k : k + 1], y_exp[k : k + 1, :])
    if bool(product.detach().amin() < finfo.tiny / finfo.eps):
        return (x.unsqueeze(2) + y.unsqueeze(0)).logsumexp(1)
    return product.log().add_(x_shift).add_(y_shift)


def max_plus_matmul(x: Tensor, y: Tensor) -> Tensor:
    """``out[i, j] = max_k x[i, k] + y[k, j]`` for state-major ``(K, K, ...)``.

    Uses ``max(dim)`` rather than ``amax`` so that autograd routes the gradient to a single maximizer,
    which is what lets :func:`~pyro_neurodyn.distributions.switching.switching_viterbi` read one
    consistent path off the gradient even when optima tie.
    """
    return (x.unsqueeze(2) + y.unsqueeze(0)).max(1).values


def _logsumexp_fresh(x: Tensor, dim: int) -> Tensor:
    """``logsumexp`` over ``dim`` that may overwrite ``x``, a temporary of the caller (autograd-safe)."""
    shift = x.detach().amax(dim, keepdim=True).clamp_min(torch.finfo(x.dtype).min)
    return x.sub_(shift).exp_().sum(dim).log().add_(shift.squeeze(dim))


def log_vecmat_exp(v: Tensor, m: Tensor) -> Tensor:
    """``out[j] = logsumexp_i v[i] + m[i, j]``; v ``(K, ...)``, m ``(K, K, ...)``."""
    return _logsumexp_fresh(v.unsqueeze(1) + m, 0)


def log_matvec_exp(m: Tensor, v: Tensor) -> Tensor:
    """``out[i] = logsumexp_j m[i, j] + v[j]``; m ``(K, K, ...)``, v ``(K, ...)``."""
    return _logsumexp_fresh(m + v.unsqueeze(0), 1)


def _pair_up(mats: Tensor, combine: Combine) -> Tensor:
    """One tree level: combine neighbours ``(2i, 2i+1)`` along the last dim, carry an odd last one."""
    n = mats.size(-1)
    even = n - n % 2
    paired = combine(mats[..., 0:even:2], mats[..., 1:even:2])
    return torch.cat([paired, mats[..., -1:]], dim=-1) if n % 2 else paired


def up_sweep(mats: Tensor, combine: Combine) -> list[Tensor]:
    """Levels of the reduction tree of ``mats`` ``(K, K, N, n)``, n >= 1.

    ``levels[0] = mats``; ``levels[l + 1][..., i] = combine(levels[l][..., 2i], levels[l][..., 2i + 1])``,
    and when ``levels[l]`` has odd length its last element is carried up unchanged. The last level has
    length 1 and holds the product of the whole chain.
    """
    levels = [mats]
    while levels[-1].size(-1) > 1:
        levels.append(_pair_up(levels[-1], combine))
    return levels


def finite_max(x: Tensor, dims: int | tuple[int, ...]) -> Tensor:
    """``x``'s maximum over ``dims`` without gradient, 0 where it is not finite (every entry -inf: an impossible
    step or block, which a shift by it would turn into NaN): the constant a log-potential is shifted by."""
    shift = x.detach().amax(dims)
    return torch.where(torch.isfinite(shift), shift, shift.new_zeros(()))


def normalized_log_up_sweep(mats: Tensor) -> tuple[list[Tensor], Tensor]:
    """:func:`up_sweep` in the log-sum-exp semiring with every level's matrices shifted by their maximum entry:
    ``(levels, offset)``, ``offset (N,)`` the sum of all shifts up to the top (``log Z`` of the chain is the top's
    plus it). Unshifted, a level-l matrix holds log-potentials summed over 2^l steps, ~1e6 nats after 1e4 steps of
    large scores, and in float32 the differences between its entries, which are all a posterior reads, lose their
    digits; shifted, every entry is at most 0. The shifts are constants per matrix (no gradient): normalized
    messages and posteriors do not change."""
    levels, offsets = [mats], [mats.new_zeros(mats.shape[2:])]  # offsets (N, n): what each matrix has dropped
    while levels[-1].size(-1) > 1:
        paired = _pair_up(levels[-1], log_matmul_exp)
        shift = finite_max(paired, (0, 1))
        levels.append(paired - shift)
        offsets.append(_pair_up(offsets[-1], torch.add) + shift)
    return levels, offsets[-1][..., 0]


def reduce_chain(mats: Tensor, combine: Combine) -> Tensor:
    """Product ``mats[..., 0] (x) ... (x) mats[..., n-1]`` of ``(K, K, N, n)``, as ``(K, K, N)``."""
    while mats.size(-1) > 1:
        mats = _pair_up(mats, combine)
    return mats[..., 0]


def _interleave(first: Tensor, second: Tensor, carried: Tensor | None) -> Tensor:
    """``[first_0, second_0, first_1, second_1, ..., carried]`` along the last dim."""
    out = torch.stack([first, second], dim=-1).flatten(-2)
    return out if carried is None else torch.cat([out, carried], dim=-1)


def prefix_messages(levels: list[Tensor], alpha_1: Tensor) -> Tensor:
    """Forward messages entering every matrix of the chain.

    Args:
        levels: output of :func:`up_sweep` (log-sum-exp semiring) over ``M_1..M_n``.
        alpha_1: ``(K, N)`` message entering ``M_1``.

    Returns:
        ``(K, N, n)``: ``out[..., t] = alpha_1 (x) M_1 (x) ... (x) M_t`` (``out[..., 0] = alpha_1``),
        i.e. alpha_{t+1}[k] = log p(z_{t+1} = k, e_1..e_{t+1}) in the chain's notation.
    """
    messages = alpha_1.unsqueeze(-1)
    for level in reversed(levels[:-1]):
        half = level.size(-1) // 2
        parents = messages[..., :half]
        carried = messages[..., -1:] if level.size(-1) % 2 else None
        after_left = log_vecmat_exp(parents, level[..., 0 : 2 * half : 2])
        messages = _interleave(parents, after_left, carried)
    return messages


def suffix_messages(levels: list[Tensor]) -> Tensor:
    """Backward messages leaving every matrix of the chain.

    Returns ``(K, N, n)``: ``out[..., t] = M_{t+2} (x) ... (x) M_n (x) 0`` (``out[..., n-1] = 0``),
    i.e. beta_{t+2}[k] = log p(e_{t+3}..e_T | z_{t+2} = k) in the chain's notation.
    """
    messages = levels[-1].new_zeros(levels[-1].shape[1:])
    for level in reversed(levels[:-1]):
        half = level.size(-1) // 2
        parents = messages[..., :half]
        carried = messages[..., -1:] if level.size(-1) % 2 else None
        before_right = log_matvec_exp(level[..., 1 : 2 * half : 2], parents)
        messages = _interleave(before_right, parents, carried)
    return messages
