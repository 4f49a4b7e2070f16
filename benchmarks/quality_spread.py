"""The spread of a quality test's numbers over seeds, thread counts and CPU kernels.

A short fit is chaotic in floating-point details: the same seed on a machine whose CPU kernels differ
(another vector width, another BLAS code path) ends elsewhere, so a bound tuned to one run on one machine
fails on the next. Every test that asserts the quality of a fit defines ``measure(seed) -> {name: number}``
(the numbers it asserts on, from the fit it runs, with ``seed`` in place of its fixed seed); this script
runs it for each seed under each *condition* and prints one row per run and the range of each number, from
which the test's bounds are set (the test's comment cites this table).

A condition is a torch thread count and a kernel set, chosen by environment variables read at import:
``ATEN_CPU_CAPABILITY`` selects PyTorch's vectorized kernels (``avx512``, ``avx2`` or ``default``, the
scalar fallback) and ``MKL_ENABLE_INSTRUCTIONS`` the instruction set of MKL's BLAS/LAPACK (``AVX512``,
``AVX2``, ``SSE4_2``). Each run is a fresh subprocess, so the variables take effect.

    python benchmarks/quality_spread.py tests/test_lowrank_poisson_recovery.py --seeds 0 1 2 3 4 \
        [--threads 1 2] [--kernels native avx2 default] [--cores 2] [--median-of 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

KERNELS = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "default": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
}


def load_measure(test_file: str, name: str):
    """The function ``name`` of the test module at ``test_file`` (imported by path, as pytest would)."""
    path = Path(test_file).resolve()
    sys.path[:0] = [str(path.parent), str(path.parents[1])]
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def run_one(test_file: str, name: str, seed: int, threads: int) -> dict:
    """Child process: set the thread count, run ``measure(seed)``, print its numbers as one JSON line."""
    import torch

    torch.set_num_threads(threads)
    start = time.perf_counter()
    numbers = load_measure(test_file, name)(seed)
    numbers = {key: float(value) for key, value in numbers.items()}
    numbers["seconds"] = time.perf_counter() - start
    print("RESULT " + json.dumps(numbers))


def launch(test_file: str, name: str, seed: int, threads: int, kernel: str) -> subprocess.Popen:
    env = dict(os.environ, **KERNELS[kernel], PYTHONHASHSEED="0")
    command = [sys.executable, __file__, test_file, "--function", name, "--child", str(seed), str(threads)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def collect(process: subprocess.Popen) -> dict:
    stdout, stderr = process.communicate()
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return {"error": (stderr.strip().splitlines() or ["no output"])[-1]}


def subset_medians(results: list[dict], key: str, size: int) -> list[float]:
    """``key``'s median over each ``size``-subset of the seeds, within each (threads, kernel) condition:
    what a test that asserts the median of ``size`` seeds would see on a machine like that condition."""
    medians = []
    for condition in {(r["threads"], r["kernel"]) for r in results}:
        values = [r[key] for r in results if (r["threads"], r["kernel"]) == condition and key in r]
        medians += [statistics.median(subset) for subset in itertools.combinations(values, size)]
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("test_file")
    parser.add_argument("--function", default="measure", help="the test module's measurement function")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--kernels", nargs="+", default=list(KERNELS), choices=list(KERNELS))
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="threads in flight at most (runs in parallel)")
    parser.add_argument("--median-of", type=int, default=0, help="also the range of the median of this many seeds")
    parser.add_argument("--json", help="also write every run's numbers to this file")
    parser.add_argument("--summarize", help="only print the summary of a --json file written before")
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_one(args.test_file, args.function, *args.child)
        return

    if args.summarize:
        results = json.loads(Path(args.summarize).read_text())
    else:
        results = run_all(args)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
    summarize(results, f"{args.test_file}::{args.function}", args.median_of)


def run_all(args) -> list[dict]:
    """Every (seed, threads, kernel) run; fewer threads first, and never more threads in flight than
    cores (oversubscribed OpenMP threads spin and slow every run several-fold)."""
    runs = sorted(itertools.product(args.seeds, args.threads, args.kernels), key=lambda run: run[1])
    results, pending = [], []
    while runs or pending:
        busy = sum(run[1] for run, _ in pending)
        if runs and busy + runs[0][1] <= max(args.cores, runs[0][1]):
            run = runs.pop(0)
            pending.append((run, launch(args.test_file, args.function, *run)))
            continue
        (seed, threads, kernel), process = pending.pop(0)
        results.append({"seed": seed, "threads": threads, "kernel": kernel, **collect(process)})
        print(json.dumps(results[-1]), flush=True)
    return results


def summarize(results: list[dict], name: str, median_of: int) -> None:
    """The range of each number over the runs (and of the median of ``median_of`` seeds)."""
    keys = sorted({k for r in results for k in r} - {"seed", "threads", "kernel", "error", "seconds"})
    conditions = sorted({(r["threads"], r["kernel"]) for r in results})
    print(f"\n{name}: {len(results)} runs, seeds {sorted({r['seed'] for r in results})}, (threads, kernel) {conditions}")
    for key in keys:
        values = sorted(r[key] for r in results if key in r)
        print(f"  {key}: min {values[0]:.4g}  median {values[len(values) // 2]:.4g}  max {values[-1]:.4g}")
    if median_of:
        print(f"  the median of {median_of} seeds, over every subset of the seeds in every condition:")
        for key in keys:
            medians = sorted(subset_medians(results, key, median_of))
            print(f"  {key}: min {medians[0]:.4g}  max {medians[-1]:.4g}  ({len(medians)} subsets)")
    failures = [r for r in results if "error" in r]
    if failures:
        print(f"  {len(failures)} runs failed: {failures[0]['error']}")

if __name__ == "__main__":
    main()
