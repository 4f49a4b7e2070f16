# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. Fixed points and dynamics of low-rank RNNs
#
# Fixed points organize what a recurrent network computes: stable points are memories or decisions,
# saddles separate them, an unstable point inside a limit cycle tells of an oscillation. For the latent map
# of a low-rank ReLU network,
#
# $$
# F(z) = a z + V \phi(U z - b), \qquad z \in \mathbb R^R,\; U \in \mathbb R^{N \times R},\; V \in \mathbb R^{R\times N},\; b \in \mathbb R^N,
# $$
#
# they can be found **exactly and completely**. Fix which units are active — a pattern $D = \mathrm{diag}(d)$,
# $d \in \{0,1\}^N$. On the set of $z$ with that pattern the map is linear, and a fixed point solves the
# $R\times R$ system
#
# $$
# \big((1-a) I - V D U\big)\, z = -V D b .
# $$
#
# Trying all $2^N$ patterns is hopeless beyond $N \approx 20$. But the patterns that actually occur are the
# cells of the **arrangement of $N$ hyperplanes** $U_i \cdot z = b_i$ in $\mathbb R^R$, and there are only
# $O(N^R)$ of them: $\sum_{j \le R} \binom{N}{j}$ in general position. `fixed_points` enumerates the cells
# through the arrangement's vertices and solves one small system per cell; neighbouring cells differ in one
# unit, so their systems differ by a rank-one term and are built by cumulative sums rather than from scratch.
# Degenerate cases — parallel or repeated hyperplanes, more than $R$ through a point, singular systems (a line
# of fixed points) — are handled and reported.

# %%
import itertools
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from pyro_neurodyn import LowRankRNN
from pyro_neurodyn.analysis import fixed_points
from pyro_neurodyn.data import gaussian_oscillator_data
from pyro_neurodyn.plots import plot_lowrank_flow_field

FAST = os.environ.get("NEURODYN_TUTORIAL_FAST") == "1"
FIGURES = Path(os.environ.get("NEURODYN_TUTORIAL_OUTPUT", "figures")) / "04_fixed_points_and_dynamics"
FIGURES.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Check it by brute force on a small network
#
# With $N = 12$ units all $2^{12} = 4096$ patterns can be tried: solve each system and keep the solutions
# whose pattern is the one assumed. The exact method must find the same points.

# %%
rng = np.random.default_rng(2)
N, R = 12, 2
U = rng.normal(size=(N, R))
V = 3.0 * U.T / N + rng.normal(size=(R, N)) / N  # partly self-exciting along U: several fixed points
threshold = rng.normal(size=N) * 0.5
a = 0.5

brute_force = []
for pattern in itertools.product([0.0, 1.0], repeat=N):
    d = np.array(pattern)
    system = (1 - a) * np.eye(R) - (V * d) @ U
    if abs(np.linalg.det(system)) < 1e-12:
        continue
    z = np.linalg.solve(system, -(V * d) @ threshold)
    if np.array_equal((U @ z - threshold > 0).astype(float), d):
        brute_force.append(z)
brute_force = np.array(sorted(map(tuple, brute_force)))

result = fixed_points(a, V, U, threshold, activation="relu")
print(f"brute force: {len(brute_force)} fixed points from {2 ** N} systems;"
      f" exact method: {len(result.points)} from {result.num_solves} systems over {result.num_regions} regions")
assert len(brute_force) == len(result.points) >= 2 and np.allclose(brute_force, result.points, atol=1e-8)

# %% [markdown]
# ## All fixed points of a trained network
#
# We fit a rank-2 student to the oscillator teacher of tutorial 3 (variational SMC, optimal proposal) and ask
# for its fixed points with one call. Stability comes from the Jacobian $aI + V D U$ at each point (all
# eigenvalues inside the unit circle).

# %%
data = gaussian_oscillator_data(64, 75, seed=0)
student = LowRankRNN(20, 2, 20, readout="one_to_one", seed=0)
student.fit(data.y, num_particles=16, num_steps=40 if FAST else 200, batch_size=64, lr=1e-2, optimizer="adam", seed=0, progress=False)

found = student.fixed_points()
for point, stable, radius in zip(found.points, found.stable, found.spectral_radius):
    print(f"fixed point {np.round(point, 3)}: {'stable' if stable else 'unstable'}, spectral radius {radius:.3f}")
teacher_points = fixed_points(data.teacher.a, data.teacher.V, data.teacher.U, data.teacher.threshold, activation="relu")
print(f"teacher: {len(teacher_points.points)} fixed point(s), stable: {teacher_points.stable.tolist()}")

# %% [markdown]
# The teacher's only fixed point is an unstable spiral at the centre of its limit cycle; the student should
# have one too. (Its coordinates differ from the teacher's: the latent is defined up to a linear map.)
#
# ## Phase portrait
#
# The flow $F(z) - z$ in the orthogonalized latent plane (the basis in which $U$ has orthonormal columns, so
# distances are distances between patterns of unit currents), speed as colour, fixed points filled if stable
# and open if not, with trajectories generated by the student.

# %%
generated = student.sample(3, 150, seed=1)
fig, ax = plt.subplots(figsize=(5.6, 4.6))
plot_lowrank_flow_field(
    ax, student.model.transition, student.orthogonal_basis().transform, fixed_points=found,
    trajectories=list(generated.latents), title="trained student: flow, fixed points, samples",
)
fig.tight_layout()
fig.savefig(FIGURES / "phase_portrait.png", dpi=110)

# %% [markdown]
# ## Why the cost is polynomial
#
# For random rank-2 networks of growing size we count the regions visited and time the search. The number of
# regions grows as $N^2/2$ — compare $2^N$ — and the time close to it, as the vertex sweep shares work between
# neighbouring regions.

# %%
sizes = [50, 100, 200, 400] if FAST else [50, 100, 200, 400, 800, 1600]
seconds, regions = [], []
for size in sizes:
    U_n, V_n, threshold_n = rng.normal(size=(size, 2)), rng.normal(size=(2, size)) / size, rng.normal(size=size)
    start = time.perf_counter()
    search = fixed_points(0.5, V_n, U_n, threshold_n)
    seconds.append(time.perf_counter() - start)
    regions.append(search.num_regions)
    print(f"N = {size:5d}: {search.num_regions:8d} regions (2^N = 10^{size * np.log10(2):.0f}), {seconds[-1]:.3f} s")
slope = np.polyfit(np.log(sizes[1:]), np.log(seconds[1:]), 1)[0]
print(f"fitted time exponent: N^{slope:.2f}")

fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
axes[0].loglog(sizes, regions, "o-")
axes[0].loglog(sizes, [1 + n + n * (n - 1) / 2 for n in sizes], "k:", label="1 + N + C(N, 2)")
axes[0].set_xlabel("units N")
axes[0].set_ylabel("regions")
axes[0].legend()
axes[1].loglog(sizes, seconds, "o-")
axes[1].set_xlabel("units N")
axes[1].set_ylabel("seconds")
axes[1].set_title(f"time ~ N^{slope:.1f}")
fig.tight_layout()
fig.savefig(FIGURES / "scaling.png", dpi=110)

# %% [markdown]
# ## Headline numbers
#
# Brute force and the exact method agree; the trained student has, like its teacher, a single unstable
# fixed point inside its cycle; random networks in general position have exactly $1 + N + \binom N2$
# regions, and the search time grows far slower than $N^3$ (about $N^{1.6-1.9}$ on one core).

# %%
assert all(r == 1 + n + n * (n - 1) // 2 for r, n in zip(regions, sizes)), regions
assert slope < 2.5, slope
assert len(teacher_points.points) == 1 and not teacher_points.stable[0]
if not FAST:
    assert len(found.points) == 1 and not found.stable[0], found
print("ok")
