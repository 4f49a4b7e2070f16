"""Latency of online state decoding, ``SRNN.online().update(y_t)``, against the offline filter's cost per step.

Models: the demo SRNN (``neurodyn demo``: K = 2, P = 3, 3 channels, encoder 32 units; its fit trains the
causal encoder that ``online()`` steps, so nothing is substituted) and the long-recording size (K = 3,
10 channels). Both are fit briefly on switching Lorenz / random data (latency does not depend on the fit).

* ``update``: one ``f.update(y_t)`` for a single stream (``y_t`` of shape (D,)), median and 90th/99th
  percentiles over ``--updates`` consecutive updates, after 50 warm-up updates;
* ``update, 16 streams``: one update of a batch ``(16, D)``, per update (all 16 streams);
* ``offline / step``: ``filter_marginals`` of one ``(1, T, D)`` trial (T = ``--updates``: the whole
  causal encoder and the parallel-scan filter) divided by T, median of 5.

LowRankRNN (issue 19 part 4: <= 2 ms per update with 64 particles): the Gaussian oscillator teacher's data
(20 channels, rank 2, N = 20, one-to-one readout, optimal proposal), started by ``initialize_from_data`` and
a short fit; ``online(num_particles=64)``, one VSMC step per update: the same columns, the offline column being
``filter(y[:1], num_particles=64)`` per step.

    python benchmarks/bench_online.py [--threads 1] [--updates 2000] [--particles 64]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench_srnn import median_seconds  # run as a script: benchmarks/ is on sys.path
from pyro_neurodyn import SRNN, LowRankRNN
from pyro_neurodyn.data import gaussian_oscillator_data
from pyro_neurodyn.data.lorenz import switching_lorenz


def update_latencies(model, y: torch.Tensor, **options) -> list[float]:
    """Seconds of each ``update`` of ``model.online(**options)`` over the steps of ``y (T, D)`` (or ``(B, T, D)``), after 50
    warm-up updates."""
    online = model.online(**options)
    for t in range(50):
        online.update(y[..., t, :])
    online.reset()
    times = []
    for t in range(y.shape[-2]):
        start = time.perf_counter()
        online.update(y[..., t, :])
        times.append(time.perf_counter() - start)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--particles", type=int, default=64, help="particles of the LowRankRNN's online filter")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lorenz = switching_lorenz(num_trials=16, num_steps=200, seed=0).y
    cases = [
        ("demo SRNN (K=2, P=3, D=3)", SRNN(num_states=2, latent_dim=3, obs_dim=3), lorenz),
        ("long-recording SRNN (K=3, P=3, D=10)", SRNN(num_states=3, latent_dim=3, obs_dim=10), torch.randn(16, 200, 10).cumsum(1).sin()),
    ]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); milliseconds")
    print(f"{'model':>38} | {'update median':>13} | {'p90':>6} | {'p99':>6} | {'16 streams':>10} | {'offline / step':>14} | {'ratio':>5}")
    for name, model, train in cases:
        model.fit(train, num_steps=10, filter_steps=5, progress=False, num_threads=args.threads)
        generator = torch.Generator().manual_seed(0)
        y = torch.randn(16, args.updates, train.shape[-1], generator=generator).cumsum(1).sin()
        print_row(name, model, y, lambda: model.filter_marginals(y[:1]))
    oscillator = gaussian_oscillator_data(40, 75, seed=0).y
    rnn = LowRankRNN(obs_dim=20, rank=2, num_units=20, readout="one_to_one", seed=0)
    rnn.fit(oscillator, num_steps=5, batch_size=10, num_particles=args.particles, progress=False, seed=0)
    y = gaussian_oscillator_data(16, args.updates, seed=1).y
    print_row(f"LowRankRNN (R=2, D=20, {args.particles} particles)", rnn, y, lambda: rnn.filter(y[:1], num_particles=args.particles),
              num_particles=args.particles)  # fmt: skip


def print_row(name: str, model, y: torch.Tensor, offline_filter, **options) -> None:
    """One table row: ``model.online(**options)`` on ``y (16, T, D)`` against ``offline_filter()`` of ``y[:1]`` per step."""
    single = sorted(update_latencies(model, y[0], **options))
    batch = statistics.median(update_latencies(model, y, **options))
    offline = median_seconds(offline_filter, 5) / y.shape[1]
    median = statistics.median(single)
    p90, p99 = single[int(0.9 * len(single))], single[int(0.99 * len(single))]
    print(f"{name:>38} | {1e3 * median:13.3f} | {1e3 * p90:6.3f} | {1e3 * p99:6.3f} | {1e3 * batch:10.3f} | "
          f"{1e3 * offline:14.4f} | {median / offline:5.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
