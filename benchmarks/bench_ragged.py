"""Seconds per SRNN SVI step on a ragged batch against an equal-length batch of the same observed bins.

16 trials with lengths spread evenly over 50-1000 steps (10 channels, K = 2, P = 3), as a padded
Recording (``mask``/``lengths``), against 16 trials all of the mean length; one step = the loss, its
gradient and an Adam update through the model's own ``model``/``guide`` (what ``SRNN.fit`` runs per step).
"Padded" scores the ragged batch padded to its longest trial in one call; "bucketed" splits it into
``--buckets`` groups of similar length, each padded to its own longest trial, and sums their losses.
"Epoch of minibatches" is what a fit with ``batch_size`` = 16 / buckets runs: one pass over the trials in
minibatches (``fit_svi``'s :class:`~pyro_neurodyn.infer.fit_run.Minibatches`, buckets of similar length
cut to their longest trial on ragged data) against the same on the equal-length trials.

    python benchmarks/bench_ragged.py [--threads 2] [--repeats 7] [--buckets 4]
"""

from __future__ import annotations

import argparse

import pyro
import torch
from pyro.infer import Trace_ELBO

from bench_srnn import median_seconds  # run as a script: benchmarks/ is on sys.path
from pyro_neurodyn.data import Recording
from pyro_neurodyn.infer.fit_run import Minibatches
from pyro_neurodyn.models import SRNNModel


def svi_step(module, optimizer, batches) -> None:
    optimizer.zero_grad()
    loss = sum(Trace_ELBO().differentiable_loss(module.model, module.guide, *batch) for batch in batches)
    loss.backward()
    optimizer.step()


def epoch(module, optimizer, data: list, batches: Minibatches) -> None:
    for _ in range(batches.num_trials // batches.batch_size):
        svi_step(module, optimizer, [tuple(batches.next(data))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--buckets", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pyro.enable_validation(False)
    torch.manual_seed(0)
    lengths = torch.linspace(50, 1000, 16).round().long()
    recording = Recording.from_trials([torch.randn(int(n), 10) for n in lengths])
    equal = torch.randn(16, int(lengths.float().mean().round()), 10)
    module = SRNNModel(2, 3, 10)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    module.encoder.set_input_statistics(equal)
    padded = [(recording.y, None, None, recording.mask, recording.lengths)]
    order = torch.argsort(recording.lengths)
    groups = order.chunk(args.buckets)
    bucketed = []
    for group in groups:
        part = recording[group.numpy()]
        bucketed.append((part.y, None, None, part.mask, part.lengths))
    results = {
        "equal length": median_seconds(lambda: svi_step(module, optimizer, [(equal,)]), args.repeats),
        "ragged, padded": median_seconds(lambda: svi_step(module, optimizer, padded), args.repeats),
        f"ragged, {args.buckets} buckets": median_seconds(lambda: svi_step(module, optimizer, bucketed), args.repeats),
    }
    batch_size = 16 // args.buckets
    equal_batches, ragged_batches = Minibatches(16, batch_size), Minibatches(16, batch_size, lengths=recording.lengths)
    ragged_data = [recording.y, None, None, recording.mask, recording.lengths]
    equal_epoch = median_seconds(lambda: epoch(module, optimizer, [equal, None, None, None, None], equal_batches), args.repeats)
    ragged_epoch = median_seconds(lambda: epoch(module, optimizer, ragged_data, ragged_batches), args.repeats)
    print(f"16 trials, lengths 50-1000 (total {int(lengths.sum())} bins) vs 16 x {equal.shape[1]} ({equal.shape[0] * equal.shape[1]} bins), "
          f"{args.threads} threads")  # fmt: skip
    for name, seconds in results.items():
        print(f"{name:>20}: {1e3 * seconds:7.1f} ms per step, {seconds / results['equal length']:.2f}x equal length")
    print(f"epoch of minibatches of {batch_size}: equal length {1e3 * equal_epoch:.1f} ms, ragged (buckets) {1e3 * ragged_epoch:.1f} ms, "
          f"{ragged_epoch / equal_epoch:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
