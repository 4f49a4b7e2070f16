"""Time the exact fixed-point finder against the naive vertex enumeration and brute force.

Random rank-R ReLU networks ``z -> 0.9 z + V relu(U z - theta)`` (thresholds theta; U, theta ~ N(0, 1), V ~ N(0, 4/N^2)):

* ``ours``   ``pyro_neurodyn.analysis.fixed_points``: vertices swept along lines, region systems by
             cumulative sums of rank-one updates, batched solves: O(N^R log N + 2^R C(N, R) R^3).
* ``naive``  the published method (Pals et al. 2024), vectorized with numpy: each vertex's 2^R region
             patterns as dense N-vectors, duplicates removed, every region system built from its pattern
             (O(N R^2) each) and solved, the solution's pattern compared (O(N) each): O(N^(R+1)).
* ``brute``  all 2^N activation patterns (only feasible for small N).

For each size it prints wall-clock seconds (best of ``--repeats``; one thread), the number of R x R
solves and of regions, fits the log-log slope of time against N (N >= 200), and saves a log-log figure.

    python benchmarks/bench_fixed_points.py [--repeats 3] [--figure benchmarks/fixed_points_scaling.png]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy loads its BLAS
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import time  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from pyro_neurodyn.analysis import fixed_points  # noqa: E402

SIZES_N = [50, 100, 200, 500, 1000, 2000]
SIZES_R = [1, 2, 3, 4]
NAIVE_MAX_N = 500
BRUTE_N = [8, 10, 12, 14, 16, 18]


def network(N, R, seed=0):
    rng = np.random.default_rng(seed)
    return 0.9, 2.0 * rng.normal(size=(R, N)) / N, rng.normal(size=(N, R)), rng.normal(size=N)


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def naive(a, V, U, threshold):
    """The published vertex enumeration, vectorized: dense patterns, O(N) work per region."""
    R, N = V.shape
    vertices = np.array(list(itertools.combinations(range(N), R)))
    z = np.linalg.solve(U[vertices], threshold[vertices][..., None])[..., 0]  # (C, R)
    base = (z @ U.T - threshold) > 0
    base[np.arange(len(vertices))[:, None], vertices] = False
    patterns = []
    for choice in itertools.product((False, True), repeat=R):
        pattern = base.copy()
        pattern[np.arange(len(vertices))[:, None], vertices] = choice
        patterns.append(pattern)
    packed = np.packbits(np.concatenate(patterns), axis=1)
    regions = np.unpackbits(np.unique(packed, axis=0), axis=1, count=N).astype(float)  # (regions, N)
    M = np.diag(np.full(R, 1 - a)) - np.einsum("rn,pn,ns->prs", V, regions, U)
    b = -(regions * threshold) @ V.T
    z = np.linalg.solve(M, b[..., None])[..., 0]
    keep = (((z @ U.T - threshold) > 0) == (regions > 0)).all(axis=1)
    return z[keep], len(regions)


def brute_force(a, V, U, threshold):
    R, N = V.shape
    patterns = np.array(list(itertools.product((0.0, 1.0), repeat=N)))
    M = np.diag(np.full(R, 1 - a)) - np.einsum("rn,pn,ns->prs", V, patterns, U)
    z = np.linalg.solve(M, (-(patterns * threshold) @ V.T)[..., None])[..., 0]
    return z[(((z @ U.T - threshold) > 0) == (patterns > 0)).all(axis=1)]


def slope(sizes, times):
    keep = [i for i, n in enumerate(sizes) if n >= 200 and np.isfinite(times[i])]
    if len(keep) < 2:
        return float("nan")
    return float(np.polyfit(np.log([sizes[i] for i in keep]), np.log([times[i] for i in keep]), 1)[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--figure", default=os.path.join(os.path.dirname(__file__), "fixed_points_scaling.png"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    fixed_points(*network(20, 2))  # warm-up (imports, caches)

    print("R = 2, ReLU: seconds (best of repeats, 1 thread)")
    header = f"{'N':>5} | {'ours s':>8} | {'solves':>9} | {'regions':>9} | {'points':>6} | {'naive s':>8} | {'naive/ours':>10}"
    print(header + "\n" + "-" * len(header))
    ours_n, naive_n = [], []
    for N in SIZES_N:
        net = network(N, 2)
        repeats = args.repeats if N <= 1000 else 1
        seconds, result = best_time(lambda: fixed_points(*net), repeats)
        ours_n.append(seconds)
        naive_seconds = float("nan")
        if N <= NAIVE_MAX_N:
            naive_seconds, (points, regions) = best_time(lambda: naive(*net), 1)
            assert len(points) == len(result.points) and regions == result.num_regions
        naive_n.append(naive_seconds)
        print(
            f"{N:5d} | {seconds:8.3f} | {result.num_solves:9d} | {result.num_regions:9d} | {len(result.points):6d} | "
            f"{naive_seconds:8.3f} | {naive_seconds / seconds:10.1f}"
        )
    net = network(1000, 2)
    seconds, result = best_time(lambda: fixed_points(*net, "clipped_relu", clip=1.0), args.repeats)
    print(f"clipped ReLU, N = 1000: {seconds:.3f} s, {result.num_solves} solves, {result.num_regions} regions")
    print(f"fitted log-log slope (N >= 200): ours {slope(SIZES_N, ours_n):.2f}, naive {slope(SIZES_N, naive_n):.2f}")

    print("\nbrute force over all 2^N patterns, R = 2")
    brute_n = []
    for N in BRUTE_N:
        net = network(N, 2)
        seconds, points = best_time(lambda: brute_force(*net), 1)
        ours_seconds, result = best_time(lambda: fixed_points(*net), args.repeats)
        assert len(points) == len(result.points)
        brute_n.append(seconds)
        print(f"{N:5d} | brute {seconds:8.3f} s | ours {ours_seconds:8.4f} s")

    print("\nN = 100, ReLU, vs rank R")
    header = f"{'R':>3} | {'ours s':>8} | {'solves':>10} | {'regions':>9} | {'points':>6}"
    print(header + "\n" + "-" * len(header))
    ours_r, solves_r = [], []
    for R in SIZES_R:
        net = network(100, R)
        seconds, result = best_time(lambda: fixed_points(*net), args.repeats if R <= 3 else 1)
        ours_r.append(seconds)
        solves_r.append(result.num_solves)
        print(f"{R:3d} | {seconds:8.3f} | {result.num_solves:10d} | {result.num_regions:9d} | {len(result.points):6d}")

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.loglog(SIZES_N, ours_n, "o-", label=f"ours (slope {slope(SIZES_N, ours_n):.2f})")
    left.loglog(SIZES_N, naive_n, "s-", label=f"naive vertex enumeration (slope {slope(SIZES_N, naive_n):.2f})")
    left.loglog(BRUTE_N, brute_n, "^-", label="brute force, 2^N patterns")
    left.set(xlabel="units N", ylabel="seconds", title="all fixed points, rank R = 2")
    left.grid(True, which="both", alpha=0.3)
    left.legend()
    right.semilogy(SIZES_R, ours_r, "o-", label="seconds")
    right.semilogy(SIZES_R, solves_r, "s--", label="R x R solves")
    right.set(xlabel="rank R", ylabel="seconds; number of solves", xticks=SIZES_R, title="N = 100 units, ReLU")
    right.grid(True, which="both", alpha=0.3)
    right.legend()
    figure.tight_layout()
    figure.savefig(args.figure, dpi=120)
    print(f"\nfigure: {args.figure}")


if __name__ == "__main__":
    main()
