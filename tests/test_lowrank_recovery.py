"""Teacher-student recovery: a LowRankRNN fit by VSMC to the Gaussian oscillator teacher's data.

Why the comparisons below are valid despite the latent's non-identifiability: the model is unchanged by
any invertible change of latent coordinates ``x -> Q x`` (``U -> U Q^-1``, ``V -> Q V``, ``Sigma_x -> Q
Sigma_x Q^T``), so teacher and student latents are not comparable coordinate by coordinate. Both read
the recording one-to-one, channel i = unit i's current ``c = U x``, so the units' currents are the same
physical quantity for both; we compare only quantities defined in that space:

- the latent noise seen by the units, ``U Sigma_x U^T`` (N x N, rank 2). Its nonzero eigenvalues are
  invariant under ``x -> Q x``; they are the eigenvalues of Sigma_x in the orthonormal basis
  (``LowRankRNN.orthogonal_basis``, ``U^T U = I``), the basis in which the teacher's Sigma_x = 0.04 I,
  i.e. a noise scale of 0.2 per direction;
- the autocorrelation of the currents, ``sum_i cov(x_i(t), x_i(t + lag)) / sum_i var(x_i(t))``, also
  invariant (it is ``tr(U C_lag U^T) / tr(U C_0 U^T)`` for the latent covariances ``C``).
"""


import numpy as np
import pytest
import torch

from pyro_neurodyn import LowRankRNN
from pyro_neurodyn.data import gaussian_oscillator_data
from pyro_neurodyn.metrics import population_autocorrelation


pytestmark = pytest.mark.usefixtures("one_thread_fresh_param_store")


def fit_student(seed: int) -> LowRankRNN:
    data = gaussian_oscillator_data(64, 75, seed=0)
    student = LowRankRNN(20, 2, 20, readout="one_to_one", seed=seed)  # as in the paper: full Sigma_x, fixed gain
    return student.fit(data.y, num_particles=16, num_steps=80, batch_size=64, lr=1e-2, optimizer="adam", seed=seed, progress=False)


def teacher_acf(seed):
    teacher = gaussian_oscillator_data(400, 100, seed=seed)
    return population_autocorrelation(teacher.latents[:, 25:] @ teacher.teacher.U.T, 50)


def student_acf(student):
    sample = student.sample(400, 100, seed=0)
    return population_autocorrelation(student.to_units(sample.latents)[:, 25:], 50)


def measure(seed: int) -> dict:
    """The recovery test's numbers for model and fit seed ``seed`` (benchmarks/quality_spread.py)."""
    student = fit_student(seed)
    noise_std = torch.linalg.eigvalsh(student.orthogonal_basis().noise_cov).sqrt()
    acf = student_acf(student)
    return {"noise_scale": noise_std.square().mean().sqrt().item(), "noise_min": noise_std.min().item(),
            "noise_max": noise_std.max().item(), "readout_std": student.model.readout.noise.std().mean().item(),
            "acf_error": np.abs(acf - teacher_acf(5)).max(), "acf_lag25": acf[25]}


def test_student_recovers_the_teachers_noise_and_autocorrelation():
    student = fit_student(seed=0)

    # noise: the eigenvalues of U Sigma_x U^T = of Sigma_x in the orthonormal basis (teacher: 0.2^2 each)
    noise_std = torch.linalg.eigvalsh(student.orthogonal_basis().noise_cov).sqrt()
    noise_scale = noise_std.square().mean().sqrt().item()  # sqrt(trace / R)
    assert noise_scale == pytest.approx(0.2, rel=0.2)
    # each direction, too (measured: 0.203 and 0.210; over model and fit seeds 0-4 with native and scalar
    # CPU kernels, `python benchmarks/quality_spread.py tests/test_lowrank_recovery.py --threads 1
    # --kernels native default`: 0.203-0.211, readout sd 0.1000-0.1001; without the data-driven
    # initialization the same budget stalls in local optima with 0.14-0.26)
    assert torch.all((noise_std - 0.2).abs() < 0.2 * 0.2)
    assert student.model.readout.noise.std().mean().item() == pytest.approx(0.1, rel=0.05)  # Sigma_y = 0.01 I

    # generated data: 400 new trials of each, past the first 25 steps (the initial transient), two periods
    reference, other = teacher_acf(5), teacher_acf(6)
    generated = student_acf(student)
    # two independent teacher sets of this size differ by up to 0.03 (sampling noise); the fitted student
    # is within 0.08 at every lag (measured 0.055; 0.051-0.065 over the 10 runs above), whereas a student
    # stuck in a local optimum of a fit without the data-driven initialization (noise 0.20/0.26, oscillation decaying too fast) was 0.2 off
    assert np.abs(other - reference).max() < 0.04
    assert np.abs(generated - reference).max() < 0.08
    assert reference[25] > 0.7 and generated[25] > 0.7  # both still oscillate coherently a period later
