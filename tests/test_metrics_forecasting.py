"""k-step forecasts and PE_n against a linear AR(1) process, whose forecast errors are known exactly.

For y_{t+1} = A y_t + e_t, e_t ~ N(0, Q), the j-step conditional mean is A^j y_t and its error
y_{t+j} - A^j y_t ~ N(0, S_j), S_j = sum_{i<j} A^i Q A^i^T. So the expected MSE (mean over channels)
is tr(S_j) / C, and the standard error of the mean of n independent squared errors |e|^2 / C is
sqrt(2 tr(S_j^2) / n) / C (Var |e|^2 = 2 tr(S^2) for Gaussian e). Errors from origins at least j steps
apart use disjoint noise, so they are independent: the tests use origins spaced by the horizon.
"""

import numpy as np
import pytest
import torch
from scipy.linalg import solve_discrete_lyapunov

from pyro_neurodyn.metrics import k_step_forecast, prediction_error

C, K = 3, 5
ANGLE = 0.5
A = 0.85 * np.array([[np.cos(ANGLE), -np.sin(ANGLE), 0.0], [np.sin(ANGLE), np.cos(ANGLE), 0.0], [0.0, 0.0, 1.0]])
Q = np.diag([0.5, 0.3, 0.2])
STATIONARY = solve_discrete_lyapunov(A, Q)  # P = A P A^T + Q


def error_covariance(j):
    powers = [np.linalg.matrix_power(A, i) for i in range(j)]
    return sum(p @ Q @ p.T for p in powers)


def simulate(trials, steps, seed):
    rng = np.random.default_rng(seed)
    y = np.empty((trials, steps, C))
    y[:, 0] = rng.multivariate_normal(np.zeros(C), STATIONARY, size=trials)
    noise = rng.multivariate_normal(np.zeros(C), Q, size=(trials, steps))
    for t in range(1, steps):
        y[:, t] = y[:, t - 1] @ A.T + noise[:, t]
    return y


def conditional_means(last, k):
    """(..., C) last observed values -> (..., k, C) exact conditional means A^j y_t, j = 1..k."""
    powers = torch.as_tensor(np.stack([np.linalg.matrix_power(A, j) for j in range(1, k + 1)]), dtype=last.dtype)
    return torch.stack([last @ power.T for power in powers], dim=-2)


def exact_forecaster(prefix, k):
    return conditional_means(prefix[:, -1], k)[None]  # (1, trials, k, C)


def sampling_forecaster(num_samples, seed=0):
    """Draws each step from its exact predictive marginal N(A^j y_t, S_j)."""
    generator = torch.Generator().manual_seed(seed)
    chol = torch.as_tensor(np.stack([np.linalg.cholesky(error_covariance(j)) for j in range(1, K + 1)]))

    def forecast(prefix, k):
        mean = conditional_means(prefix[:, -1].double(), k)
        noise = torch.randn((num_samples,) + mean.shape, generator=generator, dtype=torch.float64)
        return mean + torch.einsum("jcd,snjd->snjc", chol[:k], noise)

    return forecast


def expected_mse_and_stderr(j, num_errors, inflation=1.0):
    cov = inflation * error_covariance(j)
    return np.trace(cov) / C, np.sqrt(2 * np.trace(cov @ cov) / num_errors) / C


Y = simulate(trials=400, steps=101, seed=1)
ORIGINS = np.arange(0, 101 - K, K)  # 19 origins spaced by K: independent errors, 400 * 19 per step


def test_exact_conditional_mean_has_the_known_mse_at_every_horizon():
    scores = k_step_forecast(Y, exact_forecaster, K, ORIGINS)
    assert scores.mse.shape == (K,) and scores.predictions.shape == (len(ORIGINS), 400, K, C)
    for j in range(1, K + 1):
        expected, stderr = expected_mse_and_stderr(j, 400 * len(ORIGINS))
        assert abs(scores.mse[j - 1] - expected) < 4 * stderr, (j, scores.mse[j - 1], expected, stderr)


def test_r2_matches_the_stationary_variance():
    """Variance-weighted k-step R^2 -> 1 - tr(S_k) / tr(P), P the stationary covariance.

    Tolerance 0.025: R^2 is a ratio of two noisy sums (squared errors, and the target variance from
    7600 autocorrelated values); its standard deviation over 40 simulated data sets of this size
    (seeds 100-139) was 0.006, so the tolerance is about 4 standard deviations.
    """
    scores = k_step_forecast(Y, exact_forecaster, K, ORIGINS, multioutput="variance_weighted")
    expected = 1 - np.trace(error_covariance(K)) / np.trace(STATIONARY)
    assert scores.r2[-1] == pytest.approx(expected, abs=0.025)
    assert np.all(np.diff(scores.r2) < 0)  # forecasts get worse with the horizon


@pytest.mark.parametrize("num_samples", [1, 4])
def test_point_forecast_is_the_mean_of_the_samples(num_samples):
    """Averaging S predictive samples leaves Monte Carlo error with covariance S_j / S: MSE x (1 + 1/S)."""
    scores = k_step_forecast(Y, sampling_forecaster(num_samples), K, ORIGINS)
    expected, stderr = expected_mse_and_stderr(K, 400 * len(ORIGINS), inflation=1 + 1 / num_samples)
    assert abs(scores.mse[-1] - expected) < 4 * stderr


def test_batched_forecaster_gives_the_same_scores_and_sees_no_future():
    def batched(y, origins, k):
        assert y.shape[1] == int(origins.max()) + 1  # handed nothing past the last origin
        return conditional_means(y[:, origins], k).permute(1, 0, 2, 3)[None]  # (1, origins, trials, k, C)

    looped = k_step_forecast(Y[:50], exact_forecaster, K, ORIGINS)
    at_once = k_step_forecast(Y[:50], batched, K, ORIGINS, batched=True)
    np.testing.assert_allclose(at_once.predictions.numpy(), looped.predictions.numpy(), rtol=1e-12)
    np.testing.assert_allclose(at_once.r2, looped.r2)


def test_prediction_error_is_the_n_step_mse_and_zero_for_exact_deterministic_dynamics():
    n = 3
    scores = k_step_forecast(Y, exact_forecaster, n, ORIGINS)
    assert prediction_error(Y, exact_forecaster, n, ORIGINS) == pytest.approx(scores.mse[-1], rel=1e-12)
    # noise-free rotation: iterating the true map from the observed state predicts perfectly
    y = np.empty((2, 40, C))
    y[:, 0] = [[1.0, 0.0, 0.5], [0.0, 2.0, -1.0]]
    for t in range(1, 40):
        y[:, t] = y[:, t - 1] @ A.T
    pe = prediction_error(y, exact_forecaster, 20)  # default: every origin 0..T-1-n
    assert pe < 1e-10  # float32 round-off of the forecaster's input (torch's default dtype)


def test_default_origins_and_raw_values():
    scores = k_step_forecast(Y[:5, :12], exact_forecaster, 2, multioutput="raw_values")
    assert scores.origins.tolist() == list(range(10))
    assert scores.mse.shape == (2, C) and scores.r2.shape == (2, C)
    np.testing.assert_array_equal(scores.targets[3, :, 1].numpy(), Y[:5, 5])  # origin 3, step 2 -> t = 5


def test_bad_input():
    with pytest.raises(ValueError, match="k = 12 leaves no forecast origin"):
        k_step_forecast(Y[:, :12], exact_forecaster, 12)
    with pytest.raises(ValueError, match=r"origins must lie in \[0, T - 1 - k\] = \[0, 6\]"):
        k_step_forecast(Y[:, :10], exact_forecaster, 3, origins=[0, 7])
    with pytest.raises(ValueError, match="origins must be a non-empty 1-D array of integers"):
        k_step_forecast(Y[:, :10], exact_forecaster, 3, origins=[0.5])
    with pytest.raises(TypeError, match="forecast must be callable"):
        k_step_forecast(Y, "model", 3)
    with pytest.raises(ValueError, match=r"forecast\(y_prefix, k\) at origin 0 returned shape \(400, 3, 3\)"):
        k_step_forecast(Y, lambda prefix, k: exact_forecaster(prefix, k)[0], 3)
    with pytest.raises(ValueError, match="returned NaN or infinite values"):
        k_step_forecast(Y, lambda prefix, k: exact_forecaster(prefix, k) * np.nan, 3)
    with pytest.raises(ValueError, match="n must be >= 1"):
        prediction_error(Y, exact_forecaster, 0)


def test_constant_targets_make_r2_undefined_but_not_pe():
    """One trial and one origin: one target per channel and step, so R^2 is undefined (raised before
    the forecaster runs), while PE_n is the plain squared error of that single forecast."""
    calls = []

    def counting(prefix, k):
        calls.append(k)
        return exact_forecaster(prefix, k)

    with pytest.raises(ValueError, match=r"y at forecast step 1 is constant in channel\(s\) \[0, 1, 2\]"):
        k_step_forecast(Y[:1], counting, 2, origins=[4])
    assert calls == []
    expected = np.mean((Y[0, 6] - np.linalg.matrix_power(A, 2) @ Y[0, 4]) ** 2)
    assert prediction_error(Y[:1], counting, 2, origins=[4]) == pytest.approx(expected, rel=1e-6)
