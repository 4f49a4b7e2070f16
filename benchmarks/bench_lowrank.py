"""Seconds per training epoch of LowRankRNN, and the cost of writing the particle filter in Pyro.

Epochs (as in the paper's scripts, mackelab/smc_rnns): every trial once, minibatches of 10 trials,
one RAdam step per minibatch, VSMC with systematic resampling at every step.

* oscillator: the Gaussian teacher-student set (200 trials, 20 channels, T = 75), rank 2, N = 20,
  one-to-one readout, full Sigma_x, 64 particles; optimal and bootstrap proposals (20 steps per epoch).
* EEG-sized: 500 windows of T = 50 from a 64-channel recording (the paper's ``n_trials = 50 * bs``),
  rank 3, N = 512, clipped ReLU, affine readout, 10 particles, optimal proposal (50 steps per epoch).
  Uses ``shared/data/eeg_physionet_S001R01_smoothed.npy`` when present, else noise of the same shape
  (the cost does not depend on the values).

The overhead rows time one pass (forward and backward) over one minibatch with
``VSMC_ELBO.loss_and_grads`` and with the same particle filter written in plain torch over the same
modules (``torch_particle_filter`` below): the difference is what tracing every step with Pyro costs.
Timings are medians over epochs / interleaved repeats, in one process; epochs are also given in CPU
seconds of this process, which a busy shared machine disturbs less than wall time.

    python benchmarks/bench_lowrank.py [--threads 1] [--epochs 3] [--repeats 5] [--skip-eeg]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import numpy as np
import pyro
import torch

from pyro_neurodyn import LowRankRNN
from pyro_neurodyn.data import gaussian_oscillator_data
from pyro_neurodyn.dynamics import SharedCovarianceNormal
from pyro_neurodyn.guides import OptimalProposal, kalman_update
from pyro_neurodyn.infer import VSMC_ELBO, gather_particles, systematic_ancestors

EEG_FILE = "eeg_physionet_S001R01_smoothed.npy"


def oscillator_case(proposal: str):
    data = gaussian_oscillator_data(200, 75, seed=0)
    rnn = LowRankRNN(20, 2, 20, readout="one_to_one", proposal=proposal, seed=0)
    return rnn, data.y, 64


def eeg_case():
    recording = None
    for folder in (Path(__file__).resolve().parents[2] / "shared" / "data", Path("/work/shared/data")):
        if (folder / EEG_FILE).is_file():
            recording = torch.as_tensor(np.load(folder / EEG_FILE), dtype=torch.float32)
            break
    if recording is None:
        recording = torch.randn(9640, 64)
    starts = torch.randint(0, recording.shape[0] - 50, (500,), generator=torch.Generator().manual_seed(0))
    windows = torch.stack([recording[s : s + 50] for s in starts.tolist()])
    rnn = LowRankRNN(64, 3, 512, activation="clipped_relu", readout="affine", proposal="optimal", seed=0)
    return rnn, windows, 10


def seconds_per_epoch(rnn: LowRankRNN, y: torch.Tensor, num_particles: int, epochs: int) -> tuple[float, float]:
    """Median wall and CPU (this process) seconds of an epoch of ``rnn.fit`` (batch size 10, RAdam, lr 1e-3
    as in the paper). On a shared machine the CPU time is the steadier of the two."""
    steps_per_epoch = y.shape[0] // 10
    stamps = [(time.perf_counter(), time.process_time())]

    def stamp(step, loss):
        if (step + 1) % steps_per_epoch == 0:
            stamps.append((time.perf_counter(), time.process_time()))

    rnn.fit(y, num_particles=num_particles, epochs=epochs, batch_size=10, lr=1e-3, progress=False, seed=0, callback=stamp)
    wall = [b[0] - a[0] for a, b in zip(stamps, stamps[1:])]
    cpu = [b[1] - a[1] for a, b in zip(stamps, stamps[1:])]
    return statistics.median(wall), statistics.median(cpu)


def torch_particle_filter(model, y: torch.Tensor, num_particles: int, optimal: bool) -> torch.Tensor:
    """The bound sum_b sum_t log mean_k w_t^k of ``model`` (no inputs) in plain torch, as VSMC_ELBO computes it."""
    num_trials, num_steps, _ = y.shape
    initial_noise, noise = model.initial_noise.factors(), model.noise.factors()
    readout_noise = model.readout.noise.factors()
    form = model.readout_linear_form(None)
    updates = (kalman_update(initial_noise, form), kalman_update(noise, form)) if optimal else None
    bound, z = torch.zeros(()), None
    for t in range(num_steps):
        if t == 0:
            loc, factors = model.initial_mean.expand(num_particles, num_trials, -1), initial_noise
        else:
            loc, factors = model.transition(z), noise
        prior = SharedCovarianceNormal(loc, factors)
        if optimal:
            proposal = updates[min(t, 1)].distribution(loc, y[:, t], form.bias)
            z = proposal.rsample()
            log_w = prior.log_prob(z) - proposal.log_prob(z)
        else:
            z = prior.rsample()
            log_w = 0.0
        log_w = log_w + model.readout(model.readout_source(z, None), readout_noise).log_prob(y[:, t])
        bound = bound + (torch.logsumexp(log_w, 0) - math.log(num_particles)).sum()
        if t < num_steps - 1:
            z = gather_particles(z, systematic_ancestors(log_w))
    return bound


def overhead(rnn: LowRankRNN, y: torch.Tensor, num_particles: int, repeats: int) -> tuple[float, float]:
    """Median seconds of one forward + backward pass over ``y`` (one minibatch): (VSMC_ELBO, plain torch)."""
    model, guide = rnn.model, rnn.guide
    optimal = isinstance(guide, OptimalProposal)
    elbo = VSMC_ELBO(num_particles)
    runs = {"vsmc": lambda: elbo.loss_and_grads(model, guide, y), "torch": lambda: (-torch_particle_filter(model, y, num_particles, optimal)).backward()}
    times = {name: [] for name in runs}
    for _ in range(repeats + 1):  # the first round warms up
        for name, run in runs.items():
            model.zero_grad()
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return statistics.median(times["vsmc"][1:]), statistics.median(times["torch"][1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-eeg", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pyro.enable_validation(False)
    cases = [("oscillator, optimal", lambda: oscillator_case("optimal")), ("oscillator, bootstrap", lambda: oscillator_case("bootstrap"))]
    if not args.skip_eeg:
        cases.append(("EEG-sized, optimal", eeg_case))
    print(f"torch {torch.__version__}, pyro {pyro.__version__}, {args.threads} thread(s)\n")
    print("| case | trials x T, batch | K | s / epoch, wall (CPU) | VSMC_ELBO pass ms | plain torch ms | overhead |")
    print("|---|---|---|---|---|---|---|")
    for name, build in cases:
        rnn, y, num_particles = build()
        wall, cpu = seconds_per_epoch(rnn, y, num_particles, args.epochs)
        vsmc, plain = overhead(rnn, y[:10], num_particles, args.repeats)
        print(
            f"| {name} | {y.shape[0]} x {y.shape[1]}, 10 | {num_particles} | {wall:.2f} ({cpu:.2f}) "
            f"| {1e3 * vsmc:.0f} | {1e3 * plain:.0f} | {vsmc / plain:.2f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
