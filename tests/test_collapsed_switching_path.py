"""CollapsedSwitchingPath: exact collapsed density of a switching path, usable as a Pyro sample site."""

import itertools

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO

from pyro_neurodyn.distributions import CollapsedSwitchingPath, SwitchingFactors

K, T, D = 2, 5, 2


class SwitchingAR:
    """x_1 | z_1=k ~ N(m_k, s^2 I); x_t | x_{t-1}, z_t=k ~ N(A_k x_{t-1} + b_k, s^2 I);
    p(z_t | z_{t-1}, x_{t-1}) = softmax(R x_{t-1} + r)[z_{t-1}]: recurrent transitions."""

    def __init__(self, seed=0):
        gen = torch.Generator().manual_seed(seed)
        self.m = torch.randn(K, D, generator=gen, dtype=torch.float64)
        self.A = 0.5 * torch.randn(K, D, D, generator=gen, dtype=torch.float64)
        self.b = torch.randn(K, D, generator=gen, dtype=torch.float64)
        self.R = torch.randn(K * K, D, generator=gen, dtype=torch.float64)
        self.r = torch.randn(K * K, generator=gen, dtype=torch.float64)
        self.init_logits = torch.randn(K, generator=gen, dtype=torch.float64)
        self.scale = 0.7

    def factors(self, x):
        """Vectorized over all K states and steps (the code under test uses this)."""
        prev = x[..., :-1, :]  # (..., T-1, D)
        mean_next = torch.einsum("kij,...tj->...tki", self.A, prev) + self.b  # (..., T-1, K, D)
        first = dist.Normal(self.m, self.scale).log_prob(x[..., :1, None, :]).sum(-1)  # (..., 1, K)
        rest = dist.Normal(mean_next, self.scale).log_prob(x[..., 1:, None, :]).sum(-1)  # (..., T-1, K)
        trans = (prev @ self.R.T + self.r).unflatten(-1, (K, K))  # (..., T-1, K, K)
        return SwitchingFactors(self.init_logits.expand(x.shape[:-2] + (K,)), trans, torch.cat([first, rest], -2))

    def brute_force_log_prob(self, x):
        """Sum over all K^T paths, each scored step by step with torch.distributions (independent code)."""
        total = []
        for path in itertools.product(range(K), repeat=T):
            logp = self.init_logits.log_softmax(-1)[path[0]]
            logp = logp + dist.Normal(self.m[path[0]], self.scale).log_prob(x[0]).sum()
            for t in range(1, T):
                logits = (self.R @ x[t - 1] + self.r).reshape(K, K)[path[t - 1]]
                logp = logp + logits.log_softmax(-1)[path[t]]
                mean = self.A[path[t]] @ x[t - 1] + self.b[path[t]]
                logp = logp + dist.Normal(mean, self.scale).log_prob(x[t]).sum()
            total.append(logp)
        return torch.stack(total).logsumexp(0)


def test_log_prob_matches_brute_force_over_paths():
    system = SwitchingAR()
    x = torch.randn(3, T, D, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    path_dist = CollapsedSwitchingPath(system.factors, num_steps=T, dim=D, batch_shape=(3,))
    expected = torch.stack([system.brute_force_log_prob(x[i]) for i in range(3)])
    torch.testing.assert_close(path_dist.log_prob(x), expected, rtol=1e-10, atol=1e-10)
    post = path_dist.posterior(x)
    assert post.marginals.shape == (3, T, K) and post.pairwise.shape == (3, T - 1, K, K)
    torch.testing.assert_close(post.marginals.sum(-1), torch.ones(3, T, dtype=torch.float64))
    assert path_dist.viterbi(x).states.shape == (3, T)


def test_pyro_site_with_vectorized_particles_and_svi():
    """As a latent site scored under a guide sample: the trace's log-density is log_prob; SVI trains."""
    system = SwitchingAR()
    y = torch.randn(4, T, D, dtype=torch.float64, generator=torch.Generator().manual_seed(2))

    def model(y):
        with pyro.plate("trials", y.shape[0], dim=-1):
            h = pyro.sample("h", CollapsedSwitchingPath(system.factors, T, D, batch_shape=(y.shape[0],)))
            pyro.sample("y", dist.Normal(h, 0.5).to_event(2), obs=y)

    def guide(y):
        loc = pyro.param("loc", torch.zeros(y.shape, dtype=torch.float64))
        with pyro.plate("trials", y.shape[0], dim=-1):
            pyro.sample("h", dist.Normal(loc, 0.3).to_event(2))

    pyro.clear_param_store()
    guide_trace = poutine.trace(guide).get_trace(y)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(y)
    h = guide_trace.nodes["h"]["value"]
    expected = CollapsedSwitchingPath(system.factors, T, D, (4,)).log_prob(h).sum()
    torch.testing.assert_close(model_trace.nodes["h"]["fn"].log_prob(h).sum(), expected)

    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO(num_particles=8, vectorize_particles=True))
    losses = [svi.step(y) for _ in range(60)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10  # the guide moves towards the posterior
    pyro.clear_param_store()


def test_sample_needs_a_sampler_and_uses_it():
    system = SwitchingAR()
    without = CollapsedSwitchingPath(system.factors, T, D)
    with pytest.raises(NotImplementedError, match="sampler"):
        without.sample()
    with_sampler = CollapsedSwitchingPath(system.factors, T, D, batch_shape=(2,), sampler=lambda shape: torch.zeros(shape + (2, T, D)))
    assert with_sampler.sample((3,)).shape == (3, 2, T, D)


def test_constructor_errors():
    with pytest.raises(TypeError, match="factors must be a callable"):
        CollapsedSwitchingPath("not callable", T, D)
    with pytest.raises(ValueError, match="num_steps and dim"):
        CollapsedSwitchingPath(lambda x: None, 0, D)
