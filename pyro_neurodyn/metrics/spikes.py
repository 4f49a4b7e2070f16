"""Bits per spike and co-smoothing bits per spike, as defined by the Neural Latents Benchmark.

How much better a model's Poisson rates explain spike counts than each neuron's constant mean rate,
in bits per spike (Pei et al. 2021, "Neural Latents Benchmark '21", NeurIPS Datasets and Benchmarks;
the definition follows their ``nlb_tools.evaluation.bits_per_spike``). Rates are expected counts per
time bin (not Hz), ``(trials, time, neurons)`` like the spike counts.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..data.recording import Recording
from ..data.validation import as_trials

__all__ = ["bits_per_spike", "co_smoothing_bits_per_spike"]

ZERO_RATE_FLOOR = 1e-9  # NLB replaces zero predicted rates by this before taking logs


def _poisson_log_likelihood(rates: Tensor, spikes: Tensor, mask: Tensor) -> Tensor:
    """``sum (y log r - r)`` over the entries of ``mask``: the Poisson log-likelihood without ``-log y!``, which
    cancels in differences."""
    rates = torch.where(rates == 0, torch.full_like(rates, ZERO_RATE_FLOOR), rates)
    return ((torch.special.xlogy(spikes, rates) - rates) * mask).sum()


def _rates_and_counts(rates: Any, spikes: Any, mask: Any = None) -> tuple[Tensor, Tensor, Tensor]:
    """Validate predicted rates and observed counts of one shape ``(trials, time, neurons)`` and the mask of the
    entries that count (a Recording's own mask joins it; rates there may be NaN, e.g. on padding); float64
    rates and counts and a bool mask, on the device of ``spikes``."""
    if isinstance(spikes, Recording):
        mask = spikes.mask if mask is None else torch.as_tensor(mask, dtype=torch.bool) & spikes.mask
        spikes = spikes.y
    y = as_trials(spikes, "spikes", counts=True, min_steps=1, dtype=torch.float64)
    if mask is None:
        mask = torch.ones(y.shape, dtype=torch.bool, device=y.device)
    else:  # rates at the entries that do not count may be anything (NaN on padding): replaced before the checks
        mask = torch.as_tensor(mask, device=y.device).reshape(y.shape) if torch.as_tensor(mask).numel() == y.numel() else None
        if mask is None or mask.dtype != torch.bool:
            raise ValueError(f"mask must be bool with the spikes' {y.numel()} entries {tuple(y.shape)}")
        raw = rates if isinstance(rates, Tensor) else torch.as_tensor(np.asarray(rates, dtype=np.float64))
        if raw.numel() != y.numel():
            raise ValueError(f"rates and spikes must have the same shape, got {tuple(raw.shape)} and {tuple(y.shape)}")
        rates = torch.where(mask, raw.reshape(y.shape).to(device=y.device, dtype=torch.float64), 1.0)
    r = as_trials(rates, "rates", min_steps=1, dtype=torch.float64, device=y.device)
    if r.shape != y.shape:
        raise ValueError(f"rates and spikes must have the same shape, got {tuple(r.shape)} and {tuple(y.shape)}")
    if bool((r < 0).any()):
        raise ValueError(f"rates must be non-negative expected counts, found {int((r < 0).sum())} negative value(s)")
    return r, y, mask


def _null_log_likelihood(spikes: Tensor, mask: Tensor) -> Tensor:
    """``sum (y log ybar_i - ybar_i)`` over the entries of ``mask``, ``ybar_i`` each neuron's mean count over its
    counted bins, per neuron in closed form.

    For neuron i with ``S_i`` spikes in ``n_i`` counted bins, ``ybar_i = S_i / n_i`` and the sum is
    ``S_i log ybar_i - S_i`` (0 for a silent neuron; NLB's 1e-9 floor would add ``-n 1e-9`` there).
    """
    per_neuron = (spikes * mask).reshape(-1, spikes.shape[-1]).sum(0)
    bins = mask.reshape(-1, spikes.shape[-1]).sum(0).clamp_min(1)
    return (torch.special.xlogy(per_neuron, per_neuron / bins) - per_neuron).sum()


def _bits_per_spike(rates: Tensor, spikes: Tensor, mask: Tensor) -> float:
    total = float((spikes * mask).sum())
    if total == 0:
        raise ValueError("spikes contains no spike: bits per spike is undefined")
    gain = _poisson_log_likelihood(rates, spikes, mask) - _null_log_likelihood(spikes, mask)
    return float(gain) / (total * math.log(2))


def bits_per_spike(rates: Any, spikes: Any, mask: Any = None) -> float:
    """Bits per spike of predicted Poisson rates (Pei et al. 2021, Neural Latents Benchmark).

        bits/spike = (log L(rates) - log L(null)) / (n_spikes ln 2),
        log L(r) = sum_{n,t,i} [y log r - r - log y!],   null[i] = mean_{n,t} y[n, t, i],

    i.e. the log-likelihood gain over a homogeneous Poisson process with each neuron's mean count per
    bin (on the evaluated data itself), per spike, in bits. 0 for the mean-rate model, negative for a
    model worse than it; for the true rates of a Poisson process it tends to
    ``sum lambda log(lambda / mean lambda) / (sum lambda ln 2)``. As NLB, a predicted rate of exactly 0
    is replaced by 1e-9 (a spike there then costs about 30 bits).

    Args:
        rates: predicted expected counts per bin, ``(trials, time, neurons)`` or ``(time, neurons)``, >= 0.
        spikes: observed counts, the same shape, non-negative integers; or a
            :class:`~pyro_neurodyn.data.Recording` (its unobserved entries and padding do not count).
        mask: optional bool ``(trials, time, neurons)``: only these entries count (sums and mean rates).

    Raises:
        ValueError: shapes differ, negative rates, or no spike at all (bits/spike undefined).
    """
    return _bits_per_spike(*_rates_and_counts(rates, spikes, mask))


def _heldout_indices(heldout_neurons: Any, num_neurons: int) -> Tensor:
    """Distinct indices in ``[0, num_neurons)`` from an index array or a boolean mask; int64 ``(H,)``."""
    heldout = np.asarray(heldout_neurons)
    if heldout.dtype == bool:
        if heldout.shape != (num_neurons,):
            raise ValueError(f"heldout_neurons as a mask must have shape ({num_neurons},), got {heldout.shape}")
        heldout = np.flatnonzero(heldout)
    if heldout.ndim != 1 or heldout.size == 0 or not np.issubdtype(heldout.dtype, np.integer):
        raise ValueError(f"heldout_neurons must be non-empty 1-D integer indices or a boolean mask, got {heldout_neurons!r}")
    if heldout.min() < 0 or heldout.max() >= num_neurons or len(np.unique(heldout)) != len(heldout):
        raise ValueError(f"heldout_neurons must be distinct indices in [0, {num_neurons - 1}], got {heldout.tolist()}")
    return torch.as_tensor(heldout, dtype=torch.int64)


def co_smoothing_bits_per_spike(rates: Any, spikes: Any, heldout_neurons: Any, mask: Any = None) -> float:
    """Co-smoothing bits per spike (co-bps): :func:`bits_per_spike` on held-out neurons only.

    ``co-bps = bits_per_spike(rates[..., H], spikes[..., H])`` with H the held-out neurons (Pei et al.
    2021): the model is fit without ever seeing the spikes of H and predicts their rates from the
    held-in neurons of the same trials; the null is the held-out neurons' own mean rate on the
    evaluated data. The metric cannot check that ``rates[..., H]`` was predicted without
    ``spikes[..., H]``: that is the caller's protocol.

    Args:
        rates: predicted rates for all neurons, ``(trials, time, neurons)`` or ``(time, neurons)``.
        spikes: observed counts, the same shape, or a Recording (the original, with the held-out neurons observed;
            ``Recording.hold_out_channels`` gives the held-in view to predict from).
        heldout_neurons: distinct indices (1-D ints) or a boolean mask ``(neurons,)`` of held-out neurons.
        mask: optional bool ``(trials, time, neurons)`` of the entries that count.
    """
    r, y, mask = _rates_and_counts(rates, spikes, mask)
    heldout = _heldout_indices(heldout_neurons, y.shape[-1])
    return _bits_per_spike(r[..., heldout], y[..., heldout], mask[..., heldout])
