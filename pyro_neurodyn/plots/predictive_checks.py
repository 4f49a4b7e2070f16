"""Posterior predictive check figures for neural recordings, from the ``DataTree`` of ``to_arviz``.

ArviZ's own plots where it has them (``plot_ppc_dist``, ``plot_ppc_rootogram``, ``plot_loo_pit``), fed
the (trial, time, channel) observations flattened to one dim; matplotlib for what needs the time axis
(statistics of each trial's time series, power spectra, interspike intervals). Every function returns
a matplotlib ``Figure`` (``fig.savefig(path)`` to write it).
"""

from __future__ import annotations

import functools
from typing import Callable, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from xarray import DataTree

from ..data.validation import check_count
from ..metrics.neural_statistics import band_power, fano_factor, interspike_intervals, lag_autocorrelation, mean_rate, trial_rates
from ..metrics.spectral import normalised_power

__all__ = [
    "default_statistics",
    "plot_loo_pit",
    "plot_power_spectrum",
    "plot_ppc_dist",
    "plot_ppc_rootogram",
    "plot_ppc_tstat",
    "plot_spike_statistics",
]

DATA_COLOR, MODEL_COLOR = "black", "#d95f02"
Statistic = Callable[[np.ndarray], np.ndarray]


# ----- reading the tree -------------------------------------------------------------------------------
def _check_tree(tree: DataTree, groups: Sequence[str] = ("posterior_predictive", "observed_data")) -> None:
    if not isinstance(tree, DataTree):
        raise TypeError(f"tree must be an xarray DataTree (from to_arviz), got {type(tree).__name__}")
    missing = [g for g in groups if g not in tree.children or "y" not in tree[g].data_vars]
    if missing:
        raise ValueError(f"tree needs variable 'y' in groups {list(groups)} (from to_arviz); missing in {missing}")


def _observed(tree: DataTree) -> np.ndarray:
    """``(trials, T, channels)``."""
    return tree["observed_data"]["y"].transpose("trial", "time", "channel").values


def _replicated(tree: DataTree) -> np.ndarray:
    """``(draws, trials, T, channels)``, chains and draws stacked."""
    y = tree["posterior_predictive"]["y"].transpose("chain", "draw", "trial", "time", "channel").values
    return y.reshape((-1,) + y.shape[2:])


def _observed_entries(tree: DataTree) -> tuple[np.ndarray, np.ndarray]:
    """The recorded values ``(n,)`` and their replicates ``(draws, n)``, flattened over trials, time and channels;
    entries NaN in ``observed_data`` (a Recording's missing entries and padding) left out."""
    observed, replicated = _observed(tree), _replicated(tree)
    keep = np.isfinite(observed)
    return observed[keep], replicated[:, keep]


def _is_counts(*arrays: np.ndarray) -> bool:
    return all((a >= 0).all() and (a == np.round(a)).all() for a in arrays)


def _flat_tree(tree: DataTree, observed: np.ndarray, replicated: np.ndarray, log_likelihood: Optional[np.ndarray] = None) -> DataTree:
    """A tree with ``y`` over one dim ``obs``, as arviz's one-variable plots expect."""
    from arviz_base import from_dict

    data = {"posterior_predictive": {"y": replicated[None]}, "observed_data": {"y": observed}}
    if log_likelihood is not None:  # LOO also reads the posterior (relative efficiency of the draws)
        data["log_likelihood"] = {"y": log_likelihood[None]}
        data["posterior"] = {"latents": tree["posterior"]["latents"].values}
    return from_dict(data, dims={"y": ["obs"]})


def _figure(plot_collection) -> Figure:
    return plot_collection.viz["figure"].item()


# ----- arviz plots --------------------------------------------------------------------------------------
def plot_ppc_dist(tree: DataTree, num_samples: int = 50, kind: str = "kde") -> Figure:
    """Marginal distribution of all recorded values: the data against ``num_samples`` replicated data sets
    (``arviz_plots.plot_ppc_dist``; ``kind`` ``"kde"``, ``"hist"`` or ``"ecdf"``)."""
    import arviz_plots

    _check_tree(tree)
    observed, replicated = _observed_entries(tree)
    flat = _flat_tree(tree, observed, replicated)
    pc = arviz_plots.plot_ppc_dist(flat, num_samples=min(num_samples, replicated.shape[0]), kind=kind)
    figure = _figure(pc)
    figure.axes[0].set_title("posterior predictive distribution of the recorded values")
    return figure


def plot_ppc_rootogram(tree: DataTree) -> Figure:
    """Hanging rootogram of spike counts per bin (``arviz_plots.plot_ppc_rootogram``): observed frequency of
    each count against the replicated data's, on a square-root scale. Needs count data."""
    import arviz_plots

    _check_tree(tree)
    observed, replicated = _observed_entries(tree)
    if not _is_counts(observed, replicated):
        raise ValueError("plot_ppc_rootogram needs spike counts (non-negative integers) in y and y_rep")
    flat = _flat_tree(tree, observed.astype(np.int64), replicated.astype(np.int64))
    figure = _figure(arviz_plots.plot_ppc_rootogram(flat))
    figure.axes[0].set_title("rootogram of spike counts per bin")
    return figure


def plot_loo_pit(tree: DataTree, statistic: Optional[Statistic] = None, name: str = "trial mean") -> Figure:
    """LOO-PIT over trials of a per-trial statistic (``arviz_plots.plot_loo_pit``): for each trial i,
    ``p(T(y_rep_i) <= T(y_i) | y_{-i})`` with PSIS weights from the per-trial log-likelihood; uniform if
    calibrated.

    ``statistic``: ``(..., trials, T, channels) -> (..., trials)``; default the trial's mean over time and
    channels. Needs the ``log_likelihood`` group and at least ~25 draws (for the Pareto tail fit).
    """
    import arviz_plots

    _check_tree(tree, ("posterior_predictive", "observed_data", "log_likelihood"))
    if "posterior" not in tree.children:
        raise ValueError("tree needs its posterior group (from to_arviz) for LOO")
    statistic = statistic or (lambda y: y.mean(axis=(-2, -1)))
    log_likelihood = tree["log_likelihood"]["y"].transpose("chain", "draw", "trial").values
    log_likelihood = log_likelihood.reshape((-1, log_likelihood.shape[-1]))
    flat = _flat_tree(tree, statistic(_observed(tree)), statistic(_replicated(tree)), log_likelihood)
    figure = _figure(arviz_plots.plot_loo_pit(flat))
    figure.axes[0].set_title(f"LOO-PIT over trials of the {name}")
    return figure


# ----- matplotlib plots -------------------------------------------------------------------------------
def default_statistics(counts: bool, band: Sequence[float] = (0.0, 0.1), sampling_rate: float = 1.0) -> dict[str, Statistic]:
    """``{name: statistic}`` for :func:`plot_ppc_tstat`: mean (rate), lag-1 autocorrelation, fraction of
    power in ``band`` and, for spike counts, the Fano factor."""
    statistics = {
        "mean rate" if counts else "mean": mean_rate,
        "lag-1 autocorrelation": lag_autocorrelation,
        f"power in {band[0]:g}-{band[1]:g} {'Hz' if sampling_rate != 1.0 else 'cycles/step'}": functools.partial(band_power, band=band, sampling_rate=sampling_rate),
    }
    if counts:
        statistics["Fano factor"] = fano_factor
    return statistics


def plot_ppc_tstat(tree: DataTree, statistics: Optional[dict[str, Statistic]] = None) -> Figure:
    """Posterior predictive distribution of summary statistics of the recordings against the data's value.

    Each statistic maps ``(..., trials, T, channels) -> (..., channels)`` (see
    :mod:`pyro_neurodyn.metrics.neural_statistics`); its channel average is shown, with the posterior
    predictive p-value ``P(T(y_rep) >= T(y))`` (values near 0 or 1 flag a misfit). Default:
    :func:`default_statistics`. (ArviZ's ``plot_ppc_tstat`` reduces flattened observations, which loses
    the time axis these statistics need.)
    """
    _check_tree(tree)
    observed, replicated = _observed(tree), _replicated(tree)
    statistics = statistics or default_statistics(_is_counts(observed, replicated))
    fig, axes = plt.subplots(1, len(statistics), figsize=(3.6 * len(statistics), 3.0), squeeze=False)
    for ax, (name, statistic) in zip(axes[0], statistics.items()):
        model_values = np.nanmean(statistic(replicated), axis=-1)  # (draws,)
        data_value = float(np.nanmean(statistic(observed)))
        ax.hist(model_values[np.isfinite(model_values)], bins=30, color=MODEL_COLOR, alpha=0.6, label="replicated")
        ax.axvline(data_value, color=DATA_COLOR, lw=2, label="data")
        ax.set_title(f"{name}\np = {np.mean(model_values >= data_value):.2f}", fontsize=10)
        ax.set_yticks([])
    axes[0, 0].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def plot_power_spectrum(tree: DataTree, sampling_rate: float = 1.0, smoothing: float = 2.0, interval: float = 0.9) -> Figure:
    """Power spectrum of the data against the replicated data (median and ``interval`` band over draws).

    Spectra as :func:`~pyro_neurodyn.metrics.smoothed_power_spectrum` computes them (z-scored, Gaussian
    smoothing of ``smoothing`` bins, normalised, averaged over trials), averaged over channels; log scale.
    """
    _check_tree(tree)
    observed, replicated = _observed(tree), _replicated(tree)
    frequency = np.fft.rfftfreq(observed.shape[1], d=1.0 / sampling_rate)
    data = normalised_power(observed.astype(np.float64), smoothing).mean(-1)
    model = normalised_power(replicated.astype(np.float64), smoothing, "y_rep").mean(-1)  # (draws, F)
    low, median, high = np.quantile(model, [(1 - interval) / 2, 0.5, (1 + interval) / 2], axis=0)
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.fill_between(frequency[1:], low[1:], high[1:], color=MODEL_COLOR, alpha=0.3, label=f"replicated ({interval:.0%})")
    ax.plot(frequency[1:], median[1:], color=MODEL_COLOR, label="replicated (median)")
    ax.plot(frequency[1:], data[1:], color=DATA_COLOR, lw=1.5, label="data")
    ax.set_yscale("log")
    ax.set_xlabel("frequency (Hz)" if sampling_rate != 1.0 else "frequency (cycles / step)")
    ax.set_ylabel("normalised power")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def plot_spike_statistics(tree: DataTree, bin_size: float = 1.0, max_interval: Optional[int] = None) -> Figure:
    """Interspike-interval distribution and the distribution of trial firing rates, data vs replicated.

    ISIs are in bins (from counts, :func:`~pyro_neurodyn.metrics.interspike_intervals`), rates per trial
    and channel in spikes per ``bin_size`` unit (spikes/s with ``bin_size`` in seconds).
    """
    _check_tree(tree)
    observed, replicated = _observed(tree), _replicated(tree)
    if not _is_counts(observed, replicated):
        raise ValueError("plot_spike_statistics needs spike counts (non-negative integers) in y and y_rep")
    data_isi, model_isi = interspike_intervals(observed), interspike_intervals(replicated)
    if max_interval is None:
        pooled = np.concatenate([data_isi, model_isi])
        max_interval = int(np.quantile(pooled, 0.99)) + 1 if pooled.size else 1
    top = check_count(max_interval, "max_interval")
    bins = np.arange(top + 2) - 0.5
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.hist(model_isi, bins=bins, density=True, color=MODEL_COLOR, alpha=0.6, label="replicated")
    left.hist(data_isi, bins=bins, density=True, histtype="step", color=DATA_COLOR, lw=1.5, label="data")
    left.set_xlabel("interspike interval (bins)")
    left.set_title("ISI distribution", fontsize=10)
    data_rates, model_rates = trial_rates(observed, bin_size).ravel(), trial_rates(replicated, bin_size).ravel()
    rate_bins = np.histogram_bin_edges(np.concatenate([data_rates, model_rates]), bins=30)
    right.hist(model_rates, bins=rate_bins, density=True, color=MODEL_COLOR, alpha=0.6, label="replicated")
    right.hist(data_rates, bins=rate_bins, density=True, histtype="step", color=DATA_COLOR, lw=1.5, label="data")
    right.set_xlabel("rate per trial (spikes / bin)" if bin_size == 1.0 else "rate per trial (spikes / s)")
    right.set_title("firing-rate distribution", fontsize=10)
    left.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig
