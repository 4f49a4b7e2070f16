"""One dynamics seen through several sessions of different neurons: a joint SRNN fit against per-session fits.

A teacher (two regimes that differ only in their rotation direction, ``rotation_switching_data``) drives
``3 * N`` neurons; session s records neurons ``[s N, (s + 1) N)`` only, on its own trials. The joint fit
takes ``Recording.from_sessions`` of the three (each session's channels side by side, masked in the
other sessions' trials: its own readout and encoder input columns, shared dynamics); each single fit
takes one session. Held-out state accuracy per session (Hungarian matching), for every data seed.

    python benchmarks/multi_session.py [--seeds 0 1 2] [--train 4] [--test 4] [--neurons 10] [--steps 400]

With 10 clean neurons and 4 trials of 400 steps a session alone already labels its held-out trials at 0.999.
The data-limited setting (``DATA_LIMITED``): 2 training trials of 100 steps per session, 5 neurons at readout
noise 0.5, starting labels for the first 50 of 400 SVI steps (joint and single fits alike), where the union
of the sessions is needed for the shared dynamics:

    python benchmarks/multi_session.py --seeds 0 1 2 3 4 --fit-seeds 0 1 2 --train 2 --train-steps 100 --neurons 5 \
        --obs-noise 0.5 --test 4 --steps 200 --fit-steps 400 --init arhmm --label-steps 50 --threads 1
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
# joint_and_single's keywords of the data-limited setting (module docstring), also tests/test_sessions.py's
DATA_LIMITED = dict(train=2, test=4, neurons=5, num_steps=200, fit_steps=400, init="arhmm", train_steps=100, obs_noise=0.5, label_steps=50)


def sessions(
    seed: int, train: int, test: int, neurons: int, num_steps: int, observation: str = "gaussian", train_steps: int | None = None, obs_noise: float = 0.1
) -> tuple[list, list, list]:
    """``(train recordings, test recordings, test states)`` of the sessions: disjoint neurons, disjoint trials.
    Each session: ``train`` trials of ``train_steps`` (default ``num_steps``) steps, ``test`` of ``num_steps``,
    ``neurons`` channels; test states ``(test, num_steps)`` per session."""
    per_session = train + test
    data = rotation_switching_data(NUM_SESSIONS * per_session, num_steps, NUM_SESSIONS * neurons, observation, seed=seed, obs_noise_std=obs_noise)
    trains, tests, states = [], [], []
    for s in range(NUM_SESSIONS):
        trials = slice(s * per_session, (s + 1) * per_session)
        y = data.y[trials, :, s * neurons : (s + 1) * neurons]
        trains.append(Recording.from_trials(list(y[:train, :train_steps])))
        tests.append(Recording.from_trials(list(y[train:])))
        states.append(data.states[trials][train:])
    return trains, tests, states


def joint_and_single(
    seed: int, train: int, test: int, neurons: int, num_steps: int, fit_steps: int, init, observation: str = "gaussian",
    *, fit_seed: int | None = None, train_steps: int | None = None, obs_noise: float = 0.1, label_steps: int | None = None,
) -> tuple[list, list, float, float]:
    """Held-out state accuracy per session of the joint fit and of each session's own fit (same SVI steps and
    defaults; model and fit seed ``fit_seed``, default ``seed``), and their seconds (single: per session)."""
    trains, tests, states = sessions(seed, train, test, neurons, num_steps, observation, train_steps, obs_noise)
    fit_seed = seed if fit_seed is None else fit_seed
    fit = dict(num_steps=fit_steps, progress=False, seed=fit_seed, label_steps=label_steps)
    start = time.perf_counter()
    joint = SRNN(2, 2, NUM_SESSIONS * neurons, observation=observation, seed=fit_seed).fit(
        Recording.from_sessions(trains), init=init, **fit)
    joint_seconds = time.perf_counter() - start
    wide_tests = Recording.from_sessions(tests)
    joint_accuracy = [state_accuracy(states[s], joint.most_likely_states(wide_tests[wide_tests.session == s])) for s in range(NUM_SESSIONS)]
    start = time.perf_counter()
    single_accuracy = []
    for s in range(NUM_SESSIONS):
        single = SRNN(2, 2, neurons, observation=observation, seed=fit_seed).fit(trains[s], init=init, **fit)
        single_accuracy.append(state_accuracy(states[s], single.most_likely_states(tests[s])))
    return joint_accuracy, single_accuracy, joint_seconds, (time.perf_counter() - start) / NUM_SESSIONS


def init_option(name: str):
    """``--init`` as SRNN.fit takes it (``'none'``: None)."""
    return None if name == "none" else name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="data seeds")
    parser.add_argument("--fit-seeds", type=int, nargs="+", default=None, help="model and fit seeds (default: the data seed)")
    parser.add_argument("--train", type=int, default=4, help="training trials per session")
    parser.add_argument("--test", type=int, default=4, help="held-out trials per session")
    parser.add_argument("--neurons", type=int, default=10, help="neurons per session")
    parser.add_argument("--steps", type=int, default=400, help="time steps per trial")
    parser.add_argument("--train-steps", type=int, default=None, help="time steps per training trial (default --steps)")
    parser.add_argument("--obs-noise", type=float, default=0.1, help="Gaussian readout noise std of the teacher")
    parser.add_argument("--fit-steps", type=int, default=1000, help="SVI steps per fit")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--init", default="arhmm", help="SRNN.fit's init ('none' for None)")
    parser.add_argument("--label-steps", type=int, default=None, help="SRNN.fit's label_steps (default: all --fit-steps)")
    parser.add_argument("--observation", default="gaussian", choices=["gaussian", "poisson"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("seed | fit seed | joint accuracy per session | single-session accuracy per session | joint s | single s")
    for seed in args.seeds:
        for fit_seed in args.fit_seeds or [seed]:
            joint, single, joint_seconds, single_seconds = joint_and_single(
                seed, args.train, args.test, args.neurons, args.steps, args.fit_steps, init_option(args.init), args.observation,
                fit_seed=fit_seed, train_steps=args.train_steps, obs_noise=args.obs_noise, label_steps=args.label_steps)
            print(f"{seed} | {fit_seed} | {np.round(joint, 3).tolist()} | {np.round(single, 3).tolist()} | {joint_seconds:.0f} | {single_seconds:.0f}", flush=True)


if __name__ == "__main__":
    main()
