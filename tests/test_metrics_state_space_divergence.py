"""D_stsp: histogram KL against exact bin probabilities, Gaussian-mixture KL against closed forms."""

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import logsumexp
from scipy.stats import multivariate_normal, norm

from pyro_neurodyn.metrics import gaussian_mixture_kl, histogram_kl, state_space_divergence
from pyro_neurodyn.metrics.state_space_divergence import mixture_log_density

ALPHA = 1e-5  # the documented Laplace pseudo-count


def box_edges(x, bins):
    """The documented box: [min - 0.1 std, max + 0.1 std] of the true points, per dimension."""
    std = x.std(0, ddof=1)
    return x.min(0) - 0.1 * std, x.max(0) + 0.1 * std


def smoothed_kl(true_counts, gen_counts):
    """Laplace-smoothed KL over a dense array of bins (the definition, written out)."""
    bins = true_counts.size
    p = (true_counts + ALPHA) / (true_counts.sum() + ALPHA * bins)
    q = (gen_counts + ALPHA) / (gen_counts.sum() + ALPHA * bins)
    return float((p * np.log(p / q)).sum())


def test_identical_data_give_zero():
    y = np.random.default_rng(0).normal(size=(3, 400, 8))
    assert histogram_kl(y[..., :3], y[..., :3]) == 0.0
    assert gaussian_mixture_kl(y, y).value == 0.0
    assert state_space_divergence(y, y) == 0.0


def test_histogram_equals_a_dense_histogramdd_computation():
    """Sparse counting (only occupied bins, empty bins in closed form) = numpy.histogramdd over all bins.

    Some generated points lie outside the true box: they count in the nearest edge bin.
    """
    rng = np.random.default_rng(1)
    true = rng.normal(size=(2, 3000, 3))
    gen = 1.3 * rng.normal(size=(5, 1000, 3)) + [0.5, 0.0, -0.2]
    x, g = true.reshape(-1, 3), gen.reshape(-1, 3)
    low, high = box_edges(x, 12)
    assert ((g < low) | (g > high)).any()
    ranges = list(zip(low, high))
    true_counts = np.histogramdd(x, bins=12, range=ranges)[0]
    gen_counts = np.histogramdd(np.clip(g, low, high), bins=12, range=ranges)[0]
    assert histogram_kl(true, gen, bins=12) == pytest.approx(smoothed_kl(true_counts, gen_counts), rel=1e-10)


@pytest.mark.parametrize("shift", [0.5, 1.0])
def test_histogram_of_shifted_gaussians_matches_exact_bin_probabilities(shift):
    """N(0, 1) vs N(shift, 1), represented without sampling noise by their N quantiles.

    Each bin then holds N * P(bin) +- 1 points, P from the normal CDF (the edge bins extend to
    +-infinity, because outside points count in them), so the estimate can differ from the KL of the
    exact bin probabilities only by rounding: to first order by at most
    sum_i (|log(p_i/q_i) + 1| + p_i/q_i) / N; we allow twice that for second-order terms in the sparse
    tail bins. The binned KL is itself the closed form shift^2 / 2 minus the loss of resolution of
    bins of width h ~ 0.3 (about h^2 / 12 ~ 0.8% relatively): checked to 2%.
    """
    n, bins = 100_000, 30
    x = norm.ppf((np.arange(n) + 0.5) / n)[:, None]
    estimate = histogram_kl(x, x + shift, bins=bins)
    low, high = box_edges(x, bins)
    edges = np.linspace(low[0], high[0], bins + 1)
    edges[0], edges[-1] = -np.inf, np.inf
    p_exact, q_exact = np.diff(norm.cdf(edges)), np.diff(norm.cdf(edges - shift))
    exact = smoothed_kl(n * p_exact, n * q_exact)
    first_order = (np.abs(np.log(p_exact / q_exact) + 1) + p_exact / q_exact).sum() / n
    assert abs(estimate - exact) < 2 * first_order
    assert exact == pytest.approx(shift**2 / 2, rel=0.02)


def test_mixture_log_density_against_scipy():
    rng = np.random.default_rng(2)
    centers, x = rng.normal(size=(7, 8)), 3 * rng.normal(size=(5, 8))
    scale = 0.7
    direct = logsumexp(
        [multivariate_normal(c, scale**2 * np.eye(8)).logpdf(x) for c in centers], axis=0
    ) - np.log(len(centers))
    ours = mixture_log_density(torch.as_tensor(x), torch.as_tensor(centers), scale)
    np.testing.assert_allclose(ours.numpy(), direct, rtol=1e-12)


def test_mixture_kl_against_numerical_integration():
    """1-D mixtures of 5 and 7 unit Gaussians: KL by quadrature vs the Monte Carlo estimate (4 s.e.)."""
    true_points = np.array([-2.0, -1.5, 0.0, 0.3, 2.5])
    gen_points = np.array([-3.0, -1.0, -0.5, 0.5, 1.0, 1.5, 4.0])

    def density(x, points):
        return norm.pdf(x - points[:, None]).mean(0)

    def integrand(x):
        p = density(np.atleast_1d(x), true_points)[0]
        return p * np.log(p / density(np.atleast_1d(x), gen_points)[0])

    exact = integrate.quad(integrand, -15, 15, limit=200)[0]
    estimate = gaussian_mixture_kl(true_points[:, None], gen_points[:, None], num_samples=20_000, seed=3)
    assert abs(estimate.value - exact) < 4 * estimate.stderr


def test_mixture_kl_of_shifted_gaussian_clouds_matches_the_gaussian_closed_form():
    """Point clouds N(0, s^2 I) and N(m, s^2 I) in 8 dims, each point a N(y_t, I) component.

    With many points the mixtures are N(mean, I + cov) of each cloud (sample moments), whose KL is
    closed form; the gap of that approximation was below 1e-3 in a 100 000-sample check, far below
    the Monte Carlo tolerance of 4 standard errors (~0.06) used here.
    """
    rng = np.random.default_rng(4)
    dims = 8
    true = 0.3 * rng.normal(size=(5000, dims))
    gen = 0.3 * rng.normal(size=(5000, dims)) + 0.4
    cov_p, cov_q = np.eye(dims) + np.cov(true.T, bias=True), np.eye(dims) + np.cov(gen.T, bias=True)
    diff = gen.mean(0) - true.mean(0)
    inv_q = np.linalg.inv(cov_q)
    closed = 0.5 * (
        np.trace(inv_q @ cov_p) + diff @ inv_q @ diff - dims + np.linalg.slogdet(cov_q)[1] - np.linalg.slogdet(cov_p)[1]
    )
    estimate = gaussian_mixture_kl(true, gen, num_samples=2000, seed=5)
    assert abs(estimate.value - closed) < 4 * estimate.stderr + 2e-3


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_far_apart_sets_give_the_exact_large_kl_without_underflow(scale):
    """Single points a and a + c: p = N(a, s^2 I), q = N(a + c, s^2 I), KL = |c|^2 / (2 s^2) = 5000 / s^2.

    q(x_s) underflows to 0 in float64 for every sample (log q ~ -5000): a density-space computation
    would drop them all. The log-ratio per sample is (|c|^2 - 2 c.z s) / (2 s^2), z ~ N(0, I), whose
    standard deviation is |c| / s: the standard error must be |c| / (s sqrt(S)) (to 10%).
    """
    a = np.linspace(-1, 1, 64)
    c = np.full(64, 12.5)  # |c|^2 = 10 000
    estimate = gaussian_mixture_kl(np.tile(a, (50, 1)), np.tile(a + c, (80, 1)), scale=scale, num_samples=1000)
    assert np.isfinite(estimate.value)
    assert abs(estimate.value - 5000 / scale**2) < 4 * estimate.stderr
    assert estimate.stderr == pytest.approx(100 / scale / np.sqrt(1000), rel=0.1)


def test_long_trajectories_are_thinned_and_seeds_reproduce():
    rng = np.random.default_rng(6)
    true, gen = rng.normal(size=(500, 6)), rng.normal(size=(4, 1000, 6)) + 0.3
    assert gaussian_mixture_kl(true, gen, num_samples=200) == gaussian_mixture_kl(true, gen, num_samples=200)
    # evenly thinning 4000 generated points to 2000 keeps the occupation measure: nearly the same value
    full = gaussian_mixture_kl(true, gen, num_samples=500, max_points=None)
    thinned = gaussian_mixture_kl(true, gen, num_samples=500, max_points=2000)
    assert thinned.value != full.value
    assert abs(thinned.value - full.value) < 0.1 * full.value


def test_dispatch_by_dimension():
    rng = np.random.default_rng(7)
    low_true, low_gen = rng.normal(size=(500, 5)), rng.normal(size=(700, 5)) + 0.2
    assert state_space_divergence(low_true, low_gen, bins=8) == histogram_kl(low_true, low_gen, bins=8)
    high_true, high_gen = rng.normal(size=(500, 6)), rng.normal(size=(700, 6)) + 0.2
    assert state_space_divergence(high_true, high_gen, seed=1) == gaussian_mixture_kl(high_true, high_gen, seed=1).value


def test_bad_input():
    y = np.random.default_rng(8).normal(size=(100, 3))
    with pytest.raises(ValueError, match="same number of dimensions"):
        histogram_kl(y, y[:, :2])
    with pytest.raises(ValueError, match=r"y_true is constant along dimension\(s\) \[1\]"):
        histogram_kl(y * [1, 0, 1], y)
    with pytest.raises(ValueError, match="smoothing_alpha must be finite and > 0"):
        histogram_kl(y, y, smoothing_alpha=0.0)
    with pytest.raises(ValueError, match="too many to index"):
        histogram_kl(np.random.default_rng(0).normal(size=(50, 20)), np.zeros((50, 20)), bins=30)
    gen = y.copy()
    gen[5, 1] = np.nan
    with pytest.raises(ValueError, match=r"y_gen contains 1 NaN or infinite value\(s\), the first at index \(0, 5, 1\)"):
        gaussian_mixture_kl(y, gen)
    with pytest.raises(ValueError, match="num_samples must be >= 2"):
        gaussian_mixture_kl(y, y, num_samples=1)
