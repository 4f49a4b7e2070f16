"""Seconds per SVI step of the SRNN: the fast path against the generic enumerated form, one process.

Sizes: the Lorenz demo (15 trials x 200 steps x 3 channels, K = 2, P = 3) and a larger case (64 x 1000
x 50, K = 5, P = 16). One "step" is the loss, its gradient and an Adam update (what fit() does per step).

* ``fast``: SRNNModel.model / .guide with Trace_ELBO (z summed by the parallel scan).
* ``enumerated``: the same model with every z_t an enumerated Pyro site (``stepwise_model``, see models/model_check.py),
  TraceEnum_ELBO, same guide sample; a handful of steps (it takes seconds per step). Its timing
  includes one fast evaluation of the same sample, negligible next to it.

Both steps run the same amortized encoder (a bidirectional LSTM, forward and backward), which is
most of the fast step's cost at the large size; the "encoder" column times it (a guide sample and its
log density, plus the backward), and "cap" = enumerated step / encoder is the ratio a free model term
would give. The "model term" columns time what the two forms do differently: the model's log density
of one fixed latent path (switch summed out) plus its backward, by the collapsed parallel scan vs by
TraceEnum_ELBO over the enumerated program.

    python benchmarks/bench_srnn.py [--threads N] [--repeats R]
"""

from __future__ import annotations

import argparse
import statistics
import time

import pyro
import torch
from pyro.infer import Trace_ELBO

from pyro_neurodyn.models.model_check import elbo_fast_and_enumerated, enumerated_log_joint
from pyro_neurodyn.models.srnn import SRNNModel

SIZES = [
    ("Lorenz demo", 15, 200, 3, 2, 3),
    ("large", 64, 1000, 50, 5, 16),
]


def median_seconds(step, repeats):
    step()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--enumerated-repeats", type=int, default=2)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pyro.enable_validation(False)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; seconds per SVI step (loss + grad + Adam), median")
    print(f"{'case':>12} | {'(B, T, D, K, P)':>20} | {'fast':>8} | {'enumerated':>10} | {'enum/fast':>9} | {'encoder':>8} | {'cap':>5}"
          f" | {'model term: fast':>16} | {'enumerated':>10} | {'enum/fast':>9}")  # fmt: skip
    for name, trials, steps, channels, states, latent in SIZES:
        torch.manual_seed(0)
        module = SRNNModel(states, latent, channels)
        y = torch.randn(trials, steps, channels)
        module.encoder.set_input_statistics(y)
        optim = pyro.optim.Adam({"lr": 1e-3})
        svi = pyro.infer.SVI(module.model, module.guide, optim, Trace_ELBO())
        fast = median_seconds(lambda: svi.step(y), args.repeats)

        params = list(module.parameters())
        torch_optim = torch.optim.Adam(params, lr=1e-3)

        def enumerated_step():
            _, elbo = elbo_fast_and_enumerated(module, y)
            torch_optim.zero_grad()
            (-elbo).backward()
            torch_optim.step()

        enumerated = median_seconds(enumerated_step, args.enumerated_repeats)
        encoder = median_seconds(lambda: encoder_term(module, y), args.repeats)
        fast_term, enumerated_term = model_term_seconds(module, y, args)
        print(f"{name:>12} | {str((trials, steps, channels, states, latent)):>20} | {fast:8.4f} | {enumerated:10.3f} | {enumerated / fast:9.1f}"
              f" | {encoder:8.4f} | {enumerated / encoder:5.1f} | {fast_term:16.4f} | {enumerated_term:10.3f} | {enumerated_term / fast_term:9.1f}")  # fmt: skip


def encoder_term(module, y):
    """What both steps share: a guide sample h ~ q(h | y), log q(h | y), and the backward of both."""
    posterior = module.encoder(y)
    h = posterior.rsample()
    (h.sum() - posterior.log_prob(h).sum()).backward()


def model_term_seconds(module, y, args):
    """Seconds of log p(y, h) (z summed out) + backward for one fixed latent path, fast vs enumerated."""
    with torch.no_grad():
        h = module.encoder(y).rsample()
    num_trials, num_steps = y.shape[:2]

    def fast_term():
        log_joint = module.latent_prior(num_trials, num_steps).log_prob(h).sum() + module.observation(h).log_prob(y).sum()
        log_joint.backward()

    def enumerated_term():
        (-enumerated_log_joint(module, y, h)).backward()

    return median_seconds(fast_term, args.repeats), median_seconds(enumerated_term, args.enumerated_repeats)


if __name__ == "__main__":
    main()
