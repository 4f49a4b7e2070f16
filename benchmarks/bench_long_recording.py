"""An hour-long recording: one trial of T = 1e5 steps, 10 channels, fit on random windows, then decoded whole.

1. Data: ``limit_cycle_switching_data`` (slow vs fast limit cycle, 10 Gaussian channels), one trial of T steps.
2. Fit: the default-size SRNN (K = 3, P = 3, encoder 32 units per direction) on random windows
   (``fit(y, window=200, batch_size=16)``; ``--window``), then its causal encoder (``filter_steps``).
3. Overlap: chunked against one pass on the first 2000 steps (chunks of 500): the smoothed marginals' error
   at the chunk edges (within ``--edge`` steps of a boundary) and elsewhere, the latent mean path's, the
   filtered marginals', Viterbi disagreements, for several overlaps: what sets ``DEFAULT_OVERLAP``. Then the default chunking against one pass on the whole
   trial.
4. Time: ``state_marginals`` and ``most_likely_states`` (chunked: the default for T > 20000; and one pass)
   at T = 25000, 50000, 100000, median of ``--repeats``, at 1 and 2 threads: linear in T?
5. Memory: the peak resident memory each call adds, in a fresh process per measurement (the kernel's
   high-water mark, reset just before the call, minus the resident size then; model and data loaded first).

    python benchmarks/bench_long_recording.py [--steps 100000] [--fit-steps 300] [--window 200] [--repeats 3]

``--model lowrank``: the LowRankRNN (rank 2, N = 20, one-to-one readout, optimal proposal) on one trial of the
Gaussian oscillator teacher (20 channels), fit on random windows (``fit(y, window=75, batch_size=10)``,
``--lowrank-fit-steps``), the latent recovery (R^2 of the true latents regressed on the filtered means), then
``filter(y, num_particles=64)`` of the first T = 25000, 50000, 100000 steps, each in a fresh process at 1 thread:
seconds and the peak memory the call adds (its record of all particles, ``(T, 64, 1, 2)``, included).

    python benchmarks/bench_long_recording.py --model lowrank [--steps 100000] [--lowrank-fit-steps 200]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch

from bench_srnn import median_seconds  # run as a script: benchmarks/ is on sys.path
from pyro_neurodyn import SRNN, LowRankRNN
from pyro_neurodyn.data import gaussian_oscillator_data, limit_cycle_switching_data

SIZES = (25_000, 50_000, 100_000)


def resident_mib() -> tuple[float, float]:
    """The process's resident set size now and its high-water mark (VmRSS, VmHWM), MiB (Linux)."""
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return tuple(int(status[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM"))


def measure_memory(model_path: str, data_path: str, method: str, steps: int, chunk_size) -> None:
    """In a fresh process: the peak memory one call adds, printed as JSON. The kernel's high-water mark is
    reset just before the call (``/proc/self/clear_refs``), so the import and the loading do not count."""
    torch.set_num_threads(2)
    model, y = SRNN.load(model_path), torch.load(data_path)[:, :steps].clone()
    getattr(model, method)(y[:, :3000], chunk_size=chunk_size)  # warm-up at a small size (kernels, allocator)
    with open("/proc/self/clear_refs", "w") as stream:
        stream.write("5")
    before, _ = resident_mib()
    start = time.perf_counter()
    getattr(model, method)(y, chunk_size=chunk_size)
    seconds = time.perf_counter() - start
    _, peak = resident_mib()
    print(json.dumps({"added_mb": peak - before, "peak_mb": peak, "seconds": seconds}))


def measure_lowrank_filter(model_path: str, data_path: str, steps: int, num_particles: int) -> None:
    """In a fresh process at 1 thread: seconds and peak memory added by ``LowRankRNN.filter`` of the first ``steps``."""
    torch.set_num_threads(1)
    model, y = LowRankRNN.load(model_path), torch.load(data_path)[:, :steps].clone()
    model.filter(y[:, :500], num_particles=num_particles)  # warm-up
    with open("/proc/self/clear_refs", "w") as stream:
        stream.write("5")
    before, _ = resident_mib()
    start = time.perf_counter()
    model.filter(y, num_particles=num_particles)
    seconds = time.perf_counter() - start
    _, peak = resident_mib()
    print(json.dumps({"added_mb": peak - before, "peak_mb": peak, "seconds": seconds}))


def lowrank_long_recording(args) -> None:
    torch.set_num_threads(1)
    start = time.perf_counter()
    data = gaussian_oscillator_data(1, args.steps, seed=0)
    print(f"data: one trial of the Gaussian oscillator, y {tuple(data.y.shape)}, simulated in {time.perf_counter() - start:.1f} s")
    model = LowRankRNN(obs_dim=20, rank=2, num_units=20, readout="one_to_one", seed=0)
    start = time.perf_counter()
    model.fit(data.y, window=75, batch_size=10, num_steps=args.lowrank_fit_steps, num_particles=64, progress=False, seed=0)
    print(f"fit on random windows (75 steps x 10 per step, {args.lowrank_fit_steps} steps, 64 particles, 1 thread): "
          f"{time.perf_counter() - start:.1f} s; loss (nats per step), mean of the first / last 20 steps: "
          f"{sum(model.losses[:20]) / len(model.losses[:20]):.3f} / {sum(model.losses[-20:]) / len(model.losses[-20:]):.3f}")  # fmt: skip
    part = min(args.steps, 25_000)
    means = model.filter(data.y[:, :part], num_particles=64).means[0]
    design = torch.cat([means, torch.ones(part, 1)], 1)
    truth = data.latents[0, :part]
    residual = truth - design @ torch.linalg.lstsq(design, truth).solution
    print(f"latent recovery on the first {part} steps: R^2 {float(1 - residual.square().sum() / (truth - truth.mean(0)).square().sum()):.3f}")
    with tempfile.TemporaryDirectory() as folder:
        model_path, data_path = os.path.join(folder, "model.pt"), os.path.join(folder, "y.pt")
        model.save(model_path)
        torch.save(data.y, data_path)
        print("\nfilter(y, num_particles=64), fresh process each, 1 thread: seconds, ms per step, peak memory added (MiB)")
        for steps in [s for s in SIZES if s <= args.steps]:
            command = [sys.executable, __file__, "--measure-lowrank", model_path, data_path, str(steps), "64"]
            row = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
            print(f"  T = {steps:6d}: {row['seconds']:6.1f} s, {1e3 * row['seconds'] / steps:.3f} ms/step, "
                  f"{row['added_mb']:7.1f} MiB (process peak {row['peak_mb']:.0f} MiB)")  # fmt: skip


def memory_row(model_path, data_path, method, steps, chunk_size) -> dict:
    command = [sys.executable, __file__, "--measure", model_path, data_path, method, str(steps), str(chunk_size)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def overlap_errors(model: SRNN, y: torch.Tensor, chunk_size: int, overlaps, edge: int) -> None:
    one_pass = dict(chunk_size=y.shape[1])
    reference = model.state_marginals(y, **one_pass)
    latents, path, filtered = model.posterior_latents(y, **one_pass), model.most_likely_states(y, **one_pass), model.filter_marginals(y, **one_pass)
    steps = torch.arange(y.shape[1])
    distance = torch.minimum(steps % chunk_size, chunk_size - steps % chunk_size)  # to the nearest chunk boundary
    near = (distance <= edge) & (steps >= chunk_size)  # the trial's own start is no cut
    print(f"\nchunked vs one pass, T = {y.shape[1]}, chunks of {chunk_size}: max |difference| of the smoothed marginals within {edge} "
          "steps of a chunk boundary / elsewhere; of the latent mean path; of the filtered marginals; Viterbi steps that differ")  # fmt: skip
    for overlap in overlaps:
        chunked = dict(chunk_size=chunk_size, overlap=overlap)
        error = (model.state_marginals(y, **chunked) - reference).abs().amax(-1)[0]
        latent_error = float((model.posterior_latents(y, **chunked) - latents).abs().max())
        filter_error = float((model.filter_marginals(y, **chunked) - filtered).abs().max())
        differ = int((model.most_likely_states(y, **chunked) != path).sum())
        print(f"  overlap {overlap:4d}: marginals {float(error[near].max()):.1e} / {float(error[~near].max()):.1e}, latents "
              f"{latent_error:.1e}, filtered {filter_error:.1e}, Viterbi {differ}")  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--fit-steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--edge", type=int, default=10)
    parser.add_argument("--window", type=int, default=200, help="steps per fit window")
    parser.add_argument("--model", choices=("srnn", "lowrank"), default="srnn")
    parser.add_argument("--lowrank-fit-steps", type=int, default=200)
    parser.add_argument("--measure", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--measure-lowrank", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_lowrank:
        model_path, data_path, steps, particles = args.measure_lowrank
        return measure_lowrank_filter(model_path, data_path, int(steps), int(particles))
    if args.model == "lowrank":
        return lowrank_long_recording(args)
    if args.measure:
        model_path, data_path, method, steps, chunk = args.measure
        return measure_memory(model_path, data_path, method, int(steps), None if chunk == "None" else int(chunk))

    torch.set_num_threads(2)
    start = time.perf_counter()
    y = limit_cycle_switching_data(num_trials=1, num_steps=args.steps, obs_dim=10, seed=0).y
    print(f"data: one trial, y {tuple(y.shape)}, simulated in {time.perf_counter() - start:.1f} s")
    model = SRNN(num_states=3, latent_dim=3, obs_dim=10)
    start = time.perf_counter()
    model.fit(y, window=args.window, batch_size=16, num_steps=args.fit_steps, progress=False, num_threads=1)
    print(f"fit on random windows ({args.window} steps x 16 per step, {args.fit_steps} + {args.fit_steps // 3} filter steps, labels "
          f"included): {time.perf_counter() - start:.1f} s")  # fmt: skip

    overlap_errors(model, y[:, :2000], 500, (0, 5, 10, 20, 50, 100, 200), args.edge)
    reference = model.state_marginals(y, chunk_size=args.steps)
    error = (model.state_marginals(y) - reference).abs().max()
    differ = int((model.most_likely_states(y) != model.most_likely_states(y, chunk_size=args.steps)).sum())
    print(f"whole trial, default chunking vs one pass: max |marginal difference| {float(error):.2e}, Viterbi steps that differ: {differ}")

    for threads in (1, 2):
        torch.set_num_threads(threads)
        print(f"\nseconds, median of {args.repeats}, {threads} thread(s): state_marginals, most_likely_states (chunked | one pass)")
        for steps in [s for s in SIZES if s <= args.steps]:
            part = y[:, :steps]
            times = [median_seconds(lambda: getattr(model, method)(part, chunk_size=chunk), args.repeats)
                     for method in ("state_marginals", "most_likely_states") for chunk in (None, steps)]  # fmt: skip
            print(f"  T = {steps:6d}: {times[0]:.2f} | {times[1]:.2f}   {times[2]:.2f} | {times[3]:.2f}")

    with tempfile.TemporaryDirectory() as folder:
        model_path, data_path = os.path.join(folder, "model.pt"), os.path.join(folder, "y.pt")
        model.save(model_path)
        torch.save(y, data_path)
        print("\npeak memory added by one call (MiB; fresh process each, 2 threads): chunked | one pass")
        for method in ("state_marginals", "most_likely_states"):
            for steps in [s for s in SIZES if s <= args.steps]:
                rows = [memory_row(model_path, data_path, method, steps, chunk) for chunk in (None, steps)]
                print(f"  {method:18s} T = {steps:6d}: {rows[0]['added_mb']:7.1f} | {rows[1]['added_mb']:7.1f}"
                      f"   (process peak {rows[0]['peak_mb']:.0f} | {rows[1]['peak_mb']:.0f} MiB)")  # fmt: skip


if __name__ == "__main__":
    main()
