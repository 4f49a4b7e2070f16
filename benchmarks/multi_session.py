"""One dynamics seen through several sessions of different neurons: a joint SRNN fit against per-session fits.

A teacher (two regimes that differ only in their rotation direction, ``rotation_switching_data``) drives
``3 * N`` neurons; session s records neurons ``[s N, (s + 1) N)`` only, on its own trials. The joint fit
takes ``Recording.from_sessions`` of the three (each session's channels side by side, masked in the
other sessions' trials: its own readout and encoder input columns, shared dynamics); each single fit
takes one session. Held-out state accuracy per session (Hungarian matching), for every data seed.

    python benchmarks/multi_session.py [--seeds 0 1 2] [--train 4] [--test 4] [--neurons 10] [--steps 400]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from pyro_neurodyn import SRNN
from pyro_neurodyn.data import Recording, rotation_switching_data
from pyro_neurodyn.metrics import state_accuracy

NUM_SESSIONS = 3


def sessions(seed: int, train: int, test: int, neurons: int, num_steps: int, observation: str = "gaussian") -> tuple[list, list, list]:
    """``(train recordings, test recordings, test states)`` of the sessions: disjoint neurons, disjoint trials."""
    per_session = train + test
    data = rotation_switching_data(NUM_SESSIONS * per_session, num_steps, NUM_SESSIONS * neurons, observation, seed=seed)
    trains, tests, states = [], [], []
    for s in range(NUM_SESSIONS):
        trials = slice(s * per_session, (s + 1) * per_session)
        y = data.y[trials, :, s * neurons : (s + 1) * neurons]
        trains.append(Recording.from_trials(list(y[:train])))
        tests.append(Recording.from_trials(list(y[train:])))
        states.append(data.states[trials][train:])
    return trains, tests, states


def accuracies(model: SRNN, tests: list, states: list) -> list[float]:
    return [state_accuracy(z, model.most_likely_states(test)) for test, z in zip(tests, states)]


def joint_and_single(
    seed: int, train: int, test: int, neurons: int, num_steps: int, fit_steps: int, init, observation: str = "gaussian"
) -> tuple[list, list, float, float]:
    trains, tests, states = sessions(seed, train, test, neurons, num_steps, observation)
    start = time.perf_counter()
    joint = SRNN(2, 2, NUM_SESSIONS * neurons, observation=observation, seed=seed).fit(Recording.from_sessions(trains), num_steps=fit_steps, progress=False, init=init)
    joint_seconds = time.perf_counter() - start
    wide_tests = Recording.from_sessions(tests)
    joint_accuracy = [state_accuracy(states[s], joint.most_likely_states(wide_tests[wide_tests.session == s])) for s in range(NUM_SESSIONS)]
    start = time.perf_counter()
    single_accuracy = []
    for s in range(NUM_SESSIONS):
        single = SRNN(2, 2, neurons, observation=observation, seed=seed).fit(trains[s], num_steps=fit_steps, progress=False, init=init)
        single_accuracy.append(state_accuracy(states[s], single.most_likely_states(tests[s])))
    return joint_accuracy, single_accuracy, joint_seconds, (time.perf_counter() - start) / NUM_SESSIONS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train", type=int, default=4, help="training trials per session")
    parser.add_argument("--test", type=int, default=4, help="held-out trials per session")
    parser.add_argument("--neurons", type=int, default=10, help="neurons per session")
    parser.add_argument("--steps", type=int, default=400, help="time steps per trial")
    parser.add_argument("--fit-steps", type=int, default=1000, help="SVI steps per fit")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--init", default="arhmm", help="SRNN.fit's init ('none' for None)")
    parser.add_argument("--observation", default="gaussian", choices=["gaussian", "poisson"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("seed | joint accuracy per session | single-session accuracy per session | joint s | single s")
    for seed in args.seeds:
        joint, single, joint_seconds, single_seconds = joint_and_single(seed, args.train, args.test, args.neurons, args.steps, args.fit_steps, None if args.init == "none" else args.init, args.observation)
        print(f"{seed} | {np.round(joint, 3).tolist()} | {np.round(single, 3).tolist()} | {joint_seconds:.0f} | {single_seconds:.0f}")


if __name__ == "__main__":
    main()
