"""GPU readiness: each estimator's fit, log evidence, posterior predictive and fixed points, on the CPU and on CUDA.

For SRNN, LowRankRNN and SwitchingLowRankRNN, a fresh estimator is moved to the device
(``estimator.to(device)``), fit for a few steps on data given on the CPU (the estimator moves it), and
then scores the data (``log_evidence``), draws posterior predictive samples (``posterior_predictive``)
and finds the fixed points of its networks (``fixed_points``; the low-rank models). Each operation is
timed (``torch.cuda.synchronize`` around it on CUDA) ``--repeats`` times with a new estimator each time,
and the minimum is printed: the first round on CUDA pays for its context and kernel set-up.

Without CUDA (``torch.cuda.is_available()`` False) the CUDA column is skipped with a line that says so,
and the CPU times are still printed; the exit status is 0 either way. The code path is the same on
both devices (placement: ``pyro_neurodyn.estimators.placement``; ``tests/test_dtype_device.py`` checks
that nothing is allocated on the default dtype or device).

    python benchmarks/gpu_check.py [--trials 16] [--time 100] [--steps 20] [--particles 32] [--repeats 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable, NamedTuple, Optional

import torch

from pyro_neurodyn import SRNN, LowRankRNN, SwitchingLowRankRNN
from pyro_neurodyn.data import gaussian_oscillator_data, switching_lorenz, switching_lowrank_data
from pyro_neurodyn.predictive import posterior_predictive


class Case(NamedTuple):
    """One estimator: ``build() -> unfitted estimator``, ``fit(estimator, y, steps, particles)``, ``data(trials, T) -> y``."""

    build: Callable[[], Any]
    fit: Callable[[Any, torch.Tensor, int, int], Any]
    data: Callable[[int, int], torch.Tensor]
    has_fixed_points: bool


CASES = {
    "SRNN": Case(
        lambda: SRNN(num_states=2, latent_dim=3, obs_dim=3, seed=0),
        lambda m, y, steps, particles: m.fit(y, num_steps=steps, init="kmeans", progress=False, seed=0),
        lambda trials, T: switching_lorenz(trials, T, seed=0).y,
        False,
    ),
    "LowRankRNN": Case(
        lambda: LowRankRNN(obs_dim=20, rank=2, num_units=20, readout="one_to_one", seed=0),
        lambda m, y, steps, particles: m.fit(y, num_particles=particles, num_steps=steps, batch_size=8, progress=False, seed=0),
        lambda trials, T: gaussian_oscillator_data(trials, T, seed=0).y,
        True,
    ),
    "SwitchingLowRankRNN": Case(
        lambda: SwitchingLowRankRNN(obs_dim=20, num_states=2, rank=2, num_units=8, seed=0),
        lambda m, y, steps, particles: m.fit(y, "vsmc", num_steps=steps, num_particles=particles, seed=0),
        lambda trials, T: switching_lowrank_data(trials, T, seed=0).y,
        True,
    ),
}


def timed(action: Callable[[], Any], device: torch.device) -> float:
    """Seconds that ``action()`` takes on ``device`` (synchronized before and after on CUDA)."""
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    synchronize()
    start = time.perf_counter()
    action()
    synchronize()
    return time.perf_counter() - start


def operation_times(case: Case, y: torch.Tensor, device: torch.device, steps: int, particles: int) -> dict[str, float]:
    """Seconds of each operation of one fresh estimator on ``device``."""
    estimator = case.build().to(device)
    times = {f"fit ({steps} steps)": timed(lambda: case.fit(estimator, y, steps, particles), device)}
    with torch.no_grad():
        times["log_evidence"] = timed(lambda: estimator.log_evidence(y, num_particles=particles, seed=0), device)
        times["posterior_predictive"] = timed(lambda: posterior_predictive(estimator, y, num_samples=20, num_particles=particles), device)
    if case.has_fixed_points:
        times["fixed_points"] = timed(estimator.fixed_points, device)
    return times


def best_times(case: Case, y: torch.Tensor, device: torch.device, args: argparse.Namespace) -> dict[str, float]:
    """The minimum over ``args.repeats`` rounds of :func:`operation_times`."""
    rounds = [operation_times(case, y, device, args.steps, args.particles) for _ in range(args.repeats)]
    return {name: min(r[name] for r in rounds) for name in rounds[0]}


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16, help="trials of each data set (default: %(default)s)")
    parser.add_argument("--time", type=int, default=100, help="time steps per trial (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=20, help="fit steps (default: %(default)s)")
    parser.add_argument("--particles", type=int, default=32, help="particles / importance samples (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds per device, minimum reported (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
        print(f"cuda: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    else:
        print("cuda: not available (torch.cuda.is_available() is False): the CUDA column is skipped")
    print(f"data: {args.trials} trials x {args.time} steps; {args.particles} particles; cpu with {args.threads} thread(s); "
          f"minimum of {args.repeats} round(s)")  # fmt: skip
    header = f"{'model':<20} {'operation':<22} {'cpu (s)':>9}" + (f" {'cuda (s)':>9} {'cpu/cuda':>9}" if len(devices) > 1 else "")
    print(header)
    for name, case in CASES.items():
        y = case.data(args.trials, args.time)
        times = {device.type: best_times(case, y, device, args) for device in devices}
        for operation, cpu in times["cpu"].items():
            line = f"{name:<20} {operation:<22} {cpu:>9.3f}"
            if "cuda" in times:
                cuda = times["cuda"][operation]
                line += f" {cuda:>9.3f} {cpu / cuda:>9.2f}"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
