"""Switching low-rank RNN on the two-regime teacher: state accuracy and fixed-point recovery, both objectives.

    python benchmarks/bench_switching_lowrank.py [--collapsed-steps 400] [--vsmc-steps 30] [--particles 16]

Prints, per objective: fit time (wall), Hungarian state accuracy, and each teacher state's fixed points
next to the student's. Every student fixed point is listed (no restriction on where), in the teacher's
latent: the student's latent is identified only up to an affine map, estimated by least squares of the
student's posterior latent means on the true latents, ``x_student = [x_true, 1] B + e`` (noise in the
regressand, so no attenuation), and inverted, ``x = (p - B_1) B_x^{-1}``. Same alignment as the tests.
"""

import argparse
import time

import numpy as np
import torch

from pyro_neurodyn import SwitchingLowRankRNN
from pyro_neurodyn.analysis import fixed_points_in_reference
from pyro_neurodyn.data import switching_lowrank_data
from pyro_neurodyn.metrics import state_accuracy


def aligned_fixed_points(model, data):
    return fixed_points_in_reference(model, data.y, data.x, data.z)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--collapsed-steps", type=int, default=400)
    parser.add_argument("--vsmc-steps", type=int, default=30)
    parser.add_argument("--particles", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = switching_lowrank_data(num_trials=20, num_steps=150, seed=0)
    for method, steps in (("collapsed", args.collapsed_steps), ("vsmc", args.vsmc_steps)):
        start, cpu = time.perf_counter(), time.process_time()
        model = SwitchingLowRankRNN(20, 2, 2, 20, seed=0).fit(data.y, method, num_steps=steps, num_particles=args.particles, seed=0)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        accuracy = state_accuracy(data.z, model.most_likely_states(data.y))
        print(f"{method}: {steps} steps, fit {wall:.1f} s wall ({cpu:.1f} s CPU), state accuracy {accuracy:.3f}")
        for k, (points, stable) in sorted(aligned_fixed_points(model, data).items()):
            truth, truth_stable = (t.numpy() for t in data.teacher.known_fixed_points(k))
            print(f"  teacher state {k}: {np.round(truth, 3).tolist()} stable {truth_stable.tolist()}")
            print(f"  student        : {np.round(points, 3).tolist()} stable {stable.tolist()}")
            if len(points) == len(truth):
                print(f"  distance       : {np.round(np.linalg.norm(points - truth, axis=1), 3).tolist()}")


if __name__ == "__main__":
    main()
