"""Teacher-student recovery for Poisson counts: a LowRankRNN fit by VSMC (encoder proposal) to the
Poisson oscillator teacher (N = 40 channels, rates ``softplus(4 x - 3)`` of a rank-2 ReLU limit cycle).

The latent is not identifiable (any ``z -> Q z`` leaves the model unchanged, see
test_lowrank_recovery.py), but the rates are: both networks generate counts from ``softplus`` of their
readout, so we compare the generated data only through coordinate-free statistics:

- the Fano factor of the counts (variance over time / mean, per trial and channel; 1 for constant rates,
  the teacher's oscillating rates make it 1.25);
- the autocorrelation of the rates pooled over channels, ``sum_i cov(r_i(t), r_i(t + lag)) / sum_i var r_i``.
"""

import math

import numpy as np
import pytest
import torch

from pyro_neurodyn import LowRankRNN
from pyro_neurodyn.data import poisson_oscillator_data
from pyro_neurodyn.metrics import fano_factor, population_autocorrelation


pytestmark = pytest.mark.usefixtures("one_thread_fresh_param_store")


def generated_statistics(y: torch.Tensor, rates: torch.Tensor) -> tuple[float, np.ndarray]:
    """Mean Fano factor and rate autocorrelation (40 lags) past the first 25 steps (the initial transient)."""
    return float(np.nanmean(fano_factor(y[:, 25:]))), population_autocorrelation(rates[:, 25:], 40)


def teacher_statistics(seed: int) -> tuple[float, np.ndarray]:
    """Fano factor and rate autocorrelation of 400 new trials of the teacher."""
    teacher = poisson_oscillator_data(400, 100, seed=seed)
    return generated_statistics(teacher.y, teacher.rates)


def fit_student(num_steps: int, seed: int = 0, **options) -> LowRankRNN:
    data = poisson_oscillator_data(64, 100, seed=0)
    student = LowRankRNN(40, 2, 40, observation="poisson", seed=seed)
    return student.fit(data.y, num_particles=16, num_steps=num_steps, batch_size=32, lr=1e-2, optimizer="adam", seed=seed, progress=False, **options)


def measure(seed: int) -> dict:
    """A 40-step student's generated statistics against the teacher's, for model and fit seed ``seed``
    (also used by benchmarks/quality_spread.py)."""
    student = fit_student(40, seed)
    fano_teacher, acf_teacher = teacher_statistics(5)
    sample = student.sample(400, 100, seed=0)
    fano_student, acf_student = generated_statistics(sample.y, sample.means)
    return {"fano_error": abs(fano_student - fano_teacher), "acf_error": np.abs(acf_student - acf_teacher).max(),
            "acf_lag10": acf_student[10], "acf_lag30": acf_student[30]}


def test_the_teachers_statistics_are_measured_far_below_the_tolerances():
    # two independent teacher sets of 400 trials: Fano factors 1.2524 and 1.2531, autocorrelations within
    # 0.019 at every lag: the sampling noise of these statistics is far below the tolerances below, which
    # measure the fit itself. The teacher's rates anticorrelate half a period later (-0.39 at lag 10) and
    # recorrelate a period later (0.24 at lag 30), whereas flat rates (noise around a fixed point) decay
    # monotonically and give Fano 1 (the fit without the data-driven start: 1.00).
    fano_teacher, acf_teacher = teacher_statistics(5)
    fano_other, acf_other = teacher_statistics(6)
    assert abs(fano_other - fano_teacher) < 0.01
    assert np.abs(acf_other - acf_teacher).max() < 0.03
    assert fano_teacher == pytest.approx(1.25, abs=0.01)
    assert acf_teacher[10] < -0.3 and acf_teacher[30] > 0.15


def test_poisson_students_recover_the_teachers_overdispersion_and_rhythm():
    """The median over three students (model and fit seeds 0-2, 40 steps each) of each statistic.

    One 40-step fit is not a reliable yardstick: over seeds 0-4, 1 and 2 threads, native and scalar CPU
    kernels (20 runs, ``python benchmarks/quality_spread.py tests/test_lowrank_poisson_recovery.py
    --kernels native default --median-of 3``) the Fano error ranges 0.004-0.248 and the autocorrelation
    error 0.033-0.648 (seed 4 on native kernels settles on a faster rhythm; 80 steps do not narrow the
    spread: seed 2 goes from 0.065 to 0.121). The median of three seeds, over every 3 of the 5 seeds in
    every condition (40 subsets): Fano error <= 0.136, autocorrelation error <= 0.139, lag 10 <= -0.337,
    lag 30 >= 0.221. The bounds below leave a margin over those and stay far from flat rates (Fano error
    0.25, autocorrelation error >= 0.39 at lag 10): the students recover more than a third of the
    over-dispersion (it keeps rising with the budget: 1.19 against 1.25 after 60 steps on 200 trials) and
    the rhythm's phase a half and a whole period later."""
    numbers = [measure(seed) for seed in range(3)]
    median = {key: float(np.median([n[key] for n in numbers])) for key in numbers[0]}
    assert median["fano_error"] < 0.16, numbers
    assert median["acf_error"] < 0.16, numbers
    assert median["acf_lag10"] < -0.3 and median["acf_lag30"] > 0.15, numbers


def second_fit_losses(seed: int) -> tuple[LowRankRNN, float, list]:
    """A 20-step fit, then a second call of 4 steps: ``(student, mean of the first's last 5 losses, the
    second's losses)``."""
    student = fit_student(20, seed)
    end_of_first = float(np.mean(student.losses[-5:]))
    student.fit(poisson_oscillator_data(64, 100, seed=0).y, num_particles=16, num_steps=4, batch_size=32, lr=1e-2, optimizer="adam", seed=seed + 1, progress=False)
    return student, end_of_first, student.losses[-4:]


def measure_second_fit(seed: int) -> dict:
    """The second-fit test's number for seed ``seed`` (benchmarks/quality_spread.py)."""
    _, end_of_first, second = second_fit_losses(seed)
    return {"second_fit_rise": max(second) - end_of_first}


def test_a_second_fit_call_continues_without_nan():
    # a fresh Adam's first step moves every parameter by about lr whatever its gradient; from a fitted
    # Poisson model (20 steps) that threw the loss from 13.9 to 3395 (to NaN in longer fits). With the
    # moments kept, the second call continues at the first one's level (measured: 13.8-14.5 over 10 steps;
    # after only 10 first steps the moments are too young to help: 23). Over seeds 0-4 with native and
    # scalar CPU kernels (`python benchmarks/quality_spread.py tests/test_lowrank_poisson_recovery.py
    # --function measure_second_fit --threads 1 --kernels native default`) the second call's worst loss
    # rose 0.14-1.10 above the first's end: the bound 2.0 has that margin and is 1700x below the jump.
    student, end_of_first, second = second_fit_losses(seed=0)
    assert len(student.losses) == 24 and all(math.isfinite(loss) for loss in second)
    assert max(second) < end_of_first + 2.0
