"""Input checking for the switching chain (:mod:`~pyro_neurodyn.distributions.switching`): shapes and
broadcast batch shape of the three log-space tensors, NaN/+inf and all -inf rows rejected before any
work, and the chains that -inf entries leave without any path (log Z = -inf)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


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
