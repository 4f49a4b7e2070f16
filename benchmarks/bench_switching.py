"""Time the exact switching core against the alternatives a Pyro user has, in one process.

For each (B, T, K) this times one evaluation of log p(obs) = log sum_z p(z, obs) plus its backward
pass (what one SVI step costs), for:

* ``ours``       pyro_neurodyn.distributions.switching_log_marginal (parallel scan, custom backward)
* ``sequential`` the textbook forward recursion in log space, a Python loop over T, autograd backward
* ``enum``       the same chain as a Pyro program (pyro.markov + parallel enumeration), TraceEnum_ELBO
* ``DiscreteHMM`` pyro.distributions.DiscreteHMM.log_prob (Pyro's own parallel scan)

and prints milliseconds (median of repeats, interleaved) and each method's time / ours.

    python benchmarks/bench_switching.py [--threads N] [--repeats R] [--skip-enum]
"""

from __future__ import annotations

import argparse
import statistics
import time

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import TraceEnum_ELBO, config_enumerate
from pyro.ops.indexing import Vindex

from pyro_neurodyn.distributions import switching_log_marginal

SIZES = [(16, 200, 3), (16, 2000, 3), (64, 1000, 5)]


def make_chain(batch, steps, states, seed=0):
    gen = torch.Generator().manual_seed(seed)
    tensors = (
        torch.randn(batch, states, generator=gen),
        torch.randn(batch, steps - 1, states, states, generator=gen),
        torch.randn(batch, steps, states, generator=gen),
    )
    return [t.requires_grad_() for t in tensors]


def ours(init, trans, emission):
    switching_log_marginal(init, trans, emission).sum().backward()


def sequential(init, trans, emission):
    log_trans = trans.log_softmax(-1)
    alpha = init.log_softmax(-1) + emission[:, 0]
    for t in range(1, emission.shape[1]):
        alpha = (alpha.unsqueeze(-1) + log_trans[:, t - 1]).logsumexp(-2) + emission[:, t]
    alpha.logsumexp(-1).sum().backward()


def discrete_hmm(init, trans, emission):
    batch, steps, states = emission.shape
    # DiscreteHMM's initial state precedes the first observation: its first transition rows are our init.
    first = init.log_softmax(-1)[:, None, None, :].expand(batch, 1, states, states)
    hmm = dist.DiscreteHMM(torch.zeros(states), torch.cat([first, trans], 1), dist.Unit(log_factor=emission))
    hmm.log_prob(torch.zeros(batch, steps, 0)).sum().backward()


def generic_enumeration(init, trans, emission):
    batch, steps, _ = emission.shape
    trials = torch.arange(batch)

    @config_enumerate
    def model():
        with pyro.plate("trials", batch, dim=-1):
            z = pyro.sample("z_0", dist.Categorical(logits=init))
            pyro.factor("e_0", Vindex(emission)[trials, 0, z])
            for t in pyro.markov(range(1, steps)):
                z = pyro.sample(f"z_{t}", dist.Categorical(logits=Vindex(trans)[trials, t - 1, z]))
                pyro.factor(f"e_{t}", Vindex(emission)[trials, t, z])

    TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(model, lambda: None).backward()


def time_methods(methods, tensors, repeats):
    """Median seconds per call of each method, repeats interleaved so drifts hit all methods alike."""
    times = {name: [] for name in methods}
    for name, fn in methods.items():  # warm-up
        fn(*tensors)
    for _ in range(repeats):
        for name, fn in methods.items():
            for t in tensors:
                t.grad = None
            start = time.perf_counter()
            fn(*tensors)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--skip-enum", action="store_true", help="leave out the slow generic enumeration")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pyro.enable_validation(False)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; log marginal + backward, median ms")
    header = f"{'(B, T, K)':>16} | {'ours':>8} | {'sequential':>10} | {'enum':>9} | {'DiscreteHMM':>11} | {'seq/ours':>8} | {'enum/ours':>9} | {'DHMM/ours':>9}"
    print(header)
    print("-" * len(header))
    for size in SIZES:
        tensors = make_chain(*size)
        fast = time_methods({"ours": ours, "sequential": sequential, "hmm": discrete_hmm}, tensors, args.repeats)
        slow = {"enum": float("nan")}
        if not args.skip_enum:
            slow = time_methods({"enum": generic_enumeration}, tensors, max(1, args.repeats // 5))
        ms = {name: 1e3 * value for name, value in {**fast, **slow}.items()}
        print(
            f"{str(size):>16} | {ms['ours']:8.2f} | {ms['sequential']:10.2f} | {ms['enum']:9.1f} | {ms['hmm']:11.2f} | "
            f"{ms['sequential'] / ms['ours']:8.1f} | {ms['enum'] / ms['ours']:9.1f} | {ms['hmm'] / ms['ours']:9.2f}"
        )


if __name__ == "__main__":
    main()
