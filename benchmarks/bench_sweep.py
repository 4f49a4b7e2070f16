"""Overhead of a sweep on Ray Tune against the same fits in a plain loop.

A 3 x 3 sweep (K = num_states in {1, 2, 3} x seeds {0, 1, 2}) of small SRNN fits on switching Lorenz
data, on a local Ray instance with ``--cpus`` CPUs (one per trial, one torch thread each), against the
same nine fits (build, fit, held-out log evidence, save) one after the other in this process with one
torch thread. The loop runs before and after the sweep (the machine is shared: its load can change
during the run) and the ratio uses their mean:

    ratio = sweep wall time / loop wall time      (1 / cpus if Ray cost nothing and the cores were free)

The sweep's wall time includes starting the trials' worker processes (each imports torch, Pyro and
pyro_neurodyn) and Tune's bookkeeping, but not ``ray.init``, which is printed apart.

    python benchmarks/bench_sweep.py [--cpus 2] [--steps 150] [--trials 16] [--time 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from pyro_neurodyn import SRNN
from pyro_neurodyn.data import switching_lorenz
from pyro_neurodyn.sweep import run_sweep

GRID = {"num_states": [1, 2, 3]}
SEEDS = [0, 1, 2]
PARTICLES = 16


def build(num_states: int, seed: int) -> SRNN:
    return SRNN(num_states=num_states, latent_dim=3, seed=seed)


def plain_loop(train, test, fit_kwargs: dict, folder: Path) -> float:
    """Seconds for the sweep's nine fits one after the other (each: build, fit, held-out log evidence, save)."""
    start = time.perf_counter()
    for num_states in GRID["num_states"]:
        for seed in SEEDS:
            model = build(num_states, seed).fit(train, seed=seed, progress=False, **fit_kwargs)
            with torch.no_grad():
                model.log_evidence(test, num_particles=PARTICLES, seed=0)
            model.save(folder / f"k{num_states}_seed{seed}.pt", overwrite=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=150, help="SVI steps per fit (default: %(default)s)")
    parser.add_argument("--trials", type=int, default=16, help="recorded trials, a quarter held out (default: %(default)s)")
    parser.add_argument("--time", type=int, default=100, help="time steps per trial (default: %(default)s)")
    args = parser.parse_args()
    import ray

    torch.set_num_threads(1)
    y = switching_lorenz(num_trials=args.trials, num_steps=args.time, seed=0).y
    num_test = max(2, args.trials // 4)
    train, test = y[:-num_test], y[-num_test:]
    fit_kwargs = {"num_steps": args.steps}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        plain_loop(train, test, {"num_steps": 2}, folder)  # warm-up: first-call costs of this process
        loop_before = plain_loop(train, test, fit_kwargs, folder)
        start = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        init_seconds = time.perf_counter() - start
        start = time.perf_counter()
        result = run_sweep(build, GRID, train, test, seeds=SEEDS, fit_kwargs=fit_kwargs, storage=folder / "sweep",
                           resources_per_trial={"cpu": 1}, num_particles=PARTICLES, verbose=0)  # fmt: skip
        sweep_seconds = time.perf_counter() - start
        ray.shutdown()
        loop_after = plain_loop(train, test, fit_kwargs, folder)
    loop = (loop_before + loop_after) / 2
    fits = result.table["fit_seconds"].sum()
    print(f"data: {tuple(train.shape)} train, {tuple(test.shape)} test; {args.steps} steps per fit; 9 fits; torch threads 1")
    print(f"plain loop:  {loop_before:.1f} s before, {loop_after:.1f} s after the sweep (mean {loop:.1f} s)")
    print(f"sweep:       {sweep_seconds:.1f} s on {args.cpus} CPUs (ray.init {init_seconds:.1f} s apart); fits inside the trials "
          f"{fits:.1f} s in all")  # fmt: skip
    print(f"ratio sweep / loop: {sweep_seconds / loop:.2f} (ideal {1 / args.cpus:.2f})")
    print(result.comparison[["rank", "elpd", "elpd_diff", "dse"]].to_string(float_format=lambda v: f"{v:.1f}"))


if __name__ == "__main__":
    main()
