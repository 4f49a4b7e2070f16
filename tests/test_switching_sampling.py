"""Forward filtering, backward sampling of the state path against brute-force enumeration (K = 3, T = 5)."""

import math

import torch

from pyro_neurodyn.distributions import switching_backward_kernel, switching_sample
from test_switching import brute_force, random_chain

K, T = 3, 5


def path_index(paths: torch.Tensor) -> torch.Tensor:
    """Index of each path (..., T) in the lexicographic order of itertools.product (as brute_force uses)."""
    powers = K ** torch.arange(T - 1, -1, -1)
    return (paths * powers).sum(-1)


def test_backward_kernel_gives_every_path_its_exact_posterior_probability():
    """The sampler's own law, p(z_T | obs) prod_t p(z_t | z_{t+1}, obs_{1:t}), read off the kernel for all
    243 paths, equals the brute-force posterior (exact maths: compared at float64 round-off)."""
    init, trans, emission = random_chain(batch=(2,), num_steps=T, num_states=K, seed=3)
    joint, paths = brute_force(init, trans, emission)
    expected = joint - joint.logsumexp(-1, keepdim=True)  # (2, 243)
    last, log_kernel = switching_backward_kernel(init, trans, emission)
    law = last[:, paths[:, -1]]
    for t in range(T - 1):
        law = law + log_kernel[:, t, paths[:, t + 1], paths[:, t]]
    torch.testing.assert_close(law, expected, rtol=0, atol=1e-10)


def test_sample_frequencies_match_brute_force_posterior():
    """Empirical path frequencies of 200 000 draws against the exact posterior over the 243 paths.

    Paths with N p_p < 5 are pooled into one cell, as the chi^2 approximation asks (191 cells here).
    Pearson's statistic sum (n_c - N p_c)^2 / (N p_c) is then chi^2 with dof = cells - 1 (mean dof, sd
    sqrt(2 dof)) for a correct sampler; the bound dof + 6 sd is exceeded by chance with probability
    < 1e-6, while wrong samplers score above 10^5 here (measured: drawing each z_t from the filtered
    marginals, or independently from the smoothed marginals). Fixed seed."""
    init, trans, emission = random_chain(batch=(1,), num_steps=T, num_states=K, seed=7)
    joint, _ = brute_force(init, trans, emission)
    probs = (joint[0] - joint[0].logsumexp(-1)).exp()
    num_draws = 200_000
    torch.manual_seed(0)
    samples = switching_sample(init, trans, emission, (num_draws,))  # (N, 1, T)
    assert samples.shape == (num_draws, 1, T) and samples.dtype == torch.int64
    counts = torch.bincount(path_index(samples[:, 0]), minlength=K**T).double()
    expected = num_draws * probs
    large = expected >= 5
    observed_cells = torch.cat([counts[large], counts[~large].sum().reshape(1)])
    expected_cells = torch.cat([expected[large], expected[~large].sum().reshape(1)])
    chi2 = ((observed_cells - expected_cells) ** 2 / expected_cells).sum()
    dof = observed_cells.numel() - 1
    assert chi2 < dof + 6 * math.sqrt(2 * dof), (float(chi2), dof)


def test_sample_broadcasts_homogeneous_transitions_and_batch():
    """A (K, K) transition matrix with batched emissions; a single step (T = 1) samples p(z_1 | obs_1)."""
    gen = torch.Generator().manual_seed(1)
    emission = torch.randn(4, 6, K, generator=gen)
    samples = switching_sample(torch.zeros(K), torch.randn(K, K, generator=gen), emission, (2, 3))
    assert samples.shape == (2, 3, 4, 6)
    # impossible states are never drawn
    emission[..., 1] = -math.inf
    assert not (switching_sample(torch.zeros(K), torch.zeros(K, K), emission, (50,)) == 1).any()
    one_step = switching_sample(torch.zeros(K), torch.zeros(K, K), torch.tensor([[[0.0, 50.0, 0.0]]]), (10,))
    assert one_step.shape == (10, 1, 1) and (one_step == 1).all()
