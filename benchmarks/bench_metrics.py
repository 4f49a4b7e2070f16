"""Time the geometry/spectral/spike metrics at EEG size, each against a plain baseline, in one process.

* D_H, (9640, 64) data vs generated: ``power_spectrum_distance`` (one vectorized FFT and one
  ``gaussian_filter1d`` over all channels) vs a per-channel loop in the style of the published code.
* D_stsp, Gaussian mixture, held-out EEG-sized data (1928, 64) vs long generated trajectories:
  default (thinned to 10 000 points) and every point; baseline: the density-space evaluation of the
  published code (exp, no logsumexp: same cost, but underflowing samples are lost).
* D_stsp, histogram, 3 dims, 10^6 points: sparse counting vs a dense 30^3 histogram.
* bits/spike, (100, 1000, 100) counts.
* If the reference EEG is present: data-vs-data values (last 20% of the recording against the first
  80%), the floor a fitted model can be compared with.

Prints milliseconds (median of repeats) and baseline / ours.

    python benchmarks/bench_metrics.py [--threads N] [--repeats R]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from pyro_neurodyn.metrics import bits_per_spike, gaussian_mixture_kl, histogram_kl, power_spectrum_distance

EEG = Path(__file__).resolve().parents[2] / "shared" / "data" / "eeg_physionet_S001R01_smoothed.npy"
EEG_FALLBACK = Path("/work/shared/data/eeg_physionet_S001R01_smoothed.npy")


def median_ms(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def loop_power_spectrum_distance(x, y, smoothing=20.0):
    """Baseline: one channel at a time, as the published evaluation code does."""
    distances = []
    for c in range(x.shape[1]):
        spectra = []
        for series in (x[:, c], y[:, c]):
            z = (series - series.mean()) / series.std()
            power = gaussian_filter1d(np.abs(np.fft.rfft(z)) ** 2, smoothing)
            spectra.append(power / power.sum())
        distances.append(np.sqrt(0.5 * ((np.sqrt(spectra[0]) - np.sqrt(spectra[1])) ** 2).sum()))
    return float(np.mean(distances))


def density_space_gmm_kl(true, gen, num_samples=1000, seed=0):
    """Baseline: mixture densities exponentiated, samples where either underflows to 0 dropped."""
    generator = torch.Generator().manual_seed(seed)
    x = true[torch.randint(len(true), (num_samples,), generator=generator)]
    x = x + torch.randn(x.shape, generator=generator, dtype=x.dtype)
    p = torch.exp(-0.5 * torch.cdist(x, true).pow(2)).mean(1)
    q = torch.exp(-0.5 * torch.cdist(x, gen).pow(2)).mean(1)
    keep = (p > 0) & (q > 0)
    return float((p[keep].log() - q[keep].log()).mean()), int((~keep).sum())


def dense_histogram_kl(x, y, bins=30, alpha=1e-5):
    """Baseline: dense bins^D histograms (same box and clipping convention as histogram_kl)."""
    std = x.std(0)
    low, high = x.min(0).values - 0.1 * std, x.max(0).values + 0.1 * std

    def counts(points):
        idx = torch.floor(bins * (points - low) / (high - low)).clamp(0, bins - 1).long()
        flat = (idx * bins ** torch.arange(points.shape[1])).sum(1)
        return torch.bincount(flat, minlength=bins ** points.shape[1]).double()

    p, q = counts(x), counts(y)
    p = (p + alpha) / (p.sum() + alpha * p.numel())
    q = (q + alpha) / (q.sum() + alpha * q.numel())
    return float((p * (p / q).log()).sum())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []

    data, gen = rng.normal(size=(9640, 64)), rng.normal(size=(9640, 64))
    assert abs(power_spectrum_distance(data, gen) - loop_power_spectrum_distance(data, gen)) < 1e-12
    ours = median_ms(lambda: power_spectrum_distance(data, gen), args.repeats)
    base = median_ms(lambda: loop_power_spectrum_distance(data, gen), args.repeats)
    rows.append(("D_H (9640, 64)", ours, "per-channel loop", base))

    held_out = torch.randn(1928, 64, dtype=torch.float64)
    for length in (10_000, 100_000):
        long_gen = torch.randn(length, 64, dtype=torch.float64)
        ours = median_ms(lambda: gaussian_mixture_kl(held_out, long_gen), args.repeats)
        every = median_ms(lambda: gaussian_mixture_kl(held_out, long_gen, max_points=None), args.repeats)
        base = median_ms(lambda: density_space_gmm_kl(held_out, long_gen), args.repeats)
        rows.append((f"D_stsp GMM (1928 vs {length}, 64), thinned to 10k", ours, "density space, all points", base))
        rows.append((f"D_stsp GMM (1928 vs {length}, 64), every point", every, "density space, all points", base))

    x, y = torch.randn(10**6, 3, dtype=torch.float64), torch.randn(10**6, 3, dtype=torch.float64) + 0.3
    assert abs(histogram_kl(x, y) - dense_histogram_kl(x, y)) < 1e-9
    ours = median_ms(lambda: histogram_kl(x, y), args.repeats)
    base = median_ms(lambda: dense_histogram_kl(x, y), args.repeats)
    rows.append(("D_stsp histogram (1e6, 3), 30 bins", ours, "dense 30^3 histogram", base))

    rates = rng.uniform(0.01, 1.0, size=(100, 1000, 100))
    spikes = rng.poisson(rates)
    ours = median_ms(lambda: bits_per_spike(rates, spikes), args.repeats)
    rows.append(("bits/spike (100, 1000, 100)", ours, "", float("nan")))

    print(f"threads: {args.threads}, median of {args.repeats}")
    print("| metric | ours (ms) | baseline | baseline (ms) | baseline / ours |\n|---|---|---|---|---|")
    for name, ours, base_name, base in rows:
        print(f"| {name} | {ours:.0f} | {base_name} | {base:.0f} | {base / ours:.1f} |")

    path = EEG if EEG.exists() else EEG_FALLBACK
    if path.exists():
        eeg = np.load(path).astype(np.float64)
        split = int(0.8 * len(eeg))
        train, test = eeg[:split], eeg[split:]
        stsp = gaussian_mixture_kl(test, train)
        hellinger = power_spectrum_distance(test, train[-len(test):])
        dropped = density_space_gmm_kl(torch.as_tensor(test), torch.as_tensor(train))[1]
        print(f"\nEEG {eeg.shape}, data vs data (last 20% as y_true, first 80% as y_gen):")
        print(f"  D_stsp (GMM, sigma=1) = {stsp.value:.3f} +- {stsp.stderr:.3f}; samples a density-space "
              f"evaluation would drop: {dropped} of 1000")
        print(f"  D_H (sigma=20, last {len(test)} steps of the first 80%) = {hellinger:.4f}")


if __name__ == "__main__":
    main()
