"""VSMC_ELBO: exactness against Kalman filters, unbiasedness, generality (a toy model), the ELBO API.

Ground truth is the independent numpy Kalman filter in ``tests/kalman.py``. Statistical checks average
many independent particle filters, run at once as many "trials" holding the same recording (each
trial is its own particle system), with fixed seeds; tolerances are stated where they are used.
"""

import copy
import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from kalman import kalman_filter, kalman_log_likelihood, lowrank_kalman_parameters
from pyro.nn import PyroModule, pyro_method
from pyro.optim.clipped_adam import ClippedAdam
from scipy.optimize import minimize_scalar
from torch import nn

from pyro_neurodyn import LowRankRNN
from pyro_neurodyn.guides import BootstrapProposal, OptimalProposal
from pyro_neurodyn.infer import VSMC_ELBO, fit_svi
from pyro_neurodyn.infer.vsmc import RESAMPLING_GRADIENTS


@pytest.fixture(autouse=True)
def fast_and_clean():
    # one thread: these small ops run up to 15x slower with two threads on a busy 2-core machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    pyro.clear_param_store()
    pyro.enable_validation(False)
    yield
    pyro.enable_validation(True)
    pyro.clear_param_store()
    torch.set_num_threads(threads)


def linear_gaussian_rnn(seed=0, obs_dim=6, num_units=8, obs_std=0.5, noise_std=0.3) -> LowRankRNN:
    """A rank-2 LowRankRNN with identity activation: a linear-Gaussian model with a slowly rotating latent."""
    rnn = LowRankRNN(obs_dim, 2, num_units, activation="identity", readout="affine", seed=seed, obs_noise_scale=obs_std, noise_scale=noise_std)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        transition = rnn.model.transition
        angle = 0.3
        target = 0.97 * torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        transition.U.copy_(torch.randn(num_units, 2, generator=generator) / math.sqrt(2))
        transition.V.copy_((target - transition.a * torch.eye(2)) @ torch.linalg.pinv(transition.U))  # a I + V U = target
        transition.threshold.copy_(0.1 * torch.randn(num_units, generator=generator))
        rnn.model.noise.lower.fill_(0.05)  # a correlated (full) Sigma_x
        rnn.model.readout.map.weight.copy_(torch.randn(obs_dim, 2, generator=generator))
        rnn.model.readout.map.bias.copy_(torch.randn(obs_dim, generator=generator))
    return rnn


@pytest.fixture(scope="module")
def lg_problem():
    """One recording (T = 25) of the linear-Gaussian model and its exact log-likelihood."""
    rnn = linear_gaussian_rnn()
    y = rnn.sample(1, 25, seed=1).y
    log_z = kalman_log_likelihood(y.numpy(), **lowrank_kalman_parameters(rnn.model))[0]
    return rnn, y, log_z


def replicated_log_evidence(rnn, guide, y, num_particles, num_runs, seed, **elbo_kwargs) -> np.ndarray:
    """``num_runs`` independent estimates of log p(y): the recording repeated as trials, one system each."""
    pyro.set_rng_seed(seed)
    elbo = VSMC_ELBO(num_particles, **elbo_kwargs)
    return elbo.log_evidence(rnn.model, guide, y.expand(num_runs, -1, -1)).double().numpy()


def test_optimal_proposal_matches_the_kalman_filter_from_10_particles(lg_problem):
    rnn, y, log_z = lg_problem
    estimates = replicated_log_evidence(rnn, OptimalProposal(rnn.model), y, 10, 1000, seed=0)
    error, spread = estimates.mean() - log_z, estimates.std()
    # With 10 particles the expected error is within the Monte Carlo spread of one estimate (measured:
    # error -0.56 nats, spread 1.1 nats over T = 25 steps), as the bias of log p^ is -Var/2 to first order.
    assert abs(error) < spread < 1.5
    # ... and shrinks like 1/K: 100 particles (measured error -0.05 nats, spread 0.33)
    estimates_100 = replicated_log_evidence(rnn, OptimalProposal(rnn.model), y, 100, 100, seed=1)
    assert abs(estimates_100.mean() - log_z) < min(0.2, estimates_100.std())
    # whereas the bootstrap proposal with 10 particles is off by far more than its spread (measured -9.8 vs 8)
    bootstrap = replicated_log_evidence(rnn, BootstrapProposal(), y, 10, 1000, seed=2)
    assert log_z - bootstrap.mean() > 5.0


def test_bootstrap_estimate_stays_below_and_approaches_the_exact_value(lg_problem):
    rnn, y, log_z = lg_problem
    means, standard_errors = [], []
    for num_particles, num_runs in ((1, 1000), (10, 1000), (1000, 50)):
        estimates = replicated_log_evidence(rnn, BootstrapProposal(), y, num_particles, num_runs, seed=num_particles)
        means.append(estimates.mean())
        standard_errors.append(estimates.std() / math.sqrt(num_runs))
    # E[log p^] <= log p(y) (Jensen), strictly increasing in K: measured -817, -9.8, -0.04 nats below log p(y)
    assert means[0] < means[1] - 100 and means[1] < means[2] - 5
    assert means[2] < log_z + 3 * standard_errors[2]
    assert log_z - means[2] < 0.2  # 1000 particles: within 0.2 nats (measured 0.04 +- 0.045)


@pytest.mark.parametrize(
    "proposal, num_particles, num_runs, elbo_kwargs",
    [
        ("optimal", 10, 4000, {}),
        ("optimal", 10, 2000, {"resampling": "multinomial"}),
        ("bootstrap", 100, 1000, {"ess_threshold": 0.5}),
    ],
)
def test_evidence_estimate_is_unbiased(lg_problem, proposal, num_particles, num_runs, elbo_kwargs):
    """E[p^(y)] = p(y) for every K, resampling scheme and (adaptive) resampling schedule."""
    rnn, y, log_z = lg_problem
    guide = OptimalProposal(rnn.model) if proposal == "optimal" else BootstrapProposal()
    ratios = np.exp(replicated_log_evidence(rnn, guide, y, num_particles, num_runs, seed=3, **elbo_kwargs) - log_z)
    standard_error = ratios.std() / math.sqrt(len(ratios))
    # CLT: the mean of the iid ratios is within 4 standard errors of 1 unless something is biased
    # (measured: 0.99-1.01 with standard errors 0.01-0.04; a bias of the size of the K = 10 Jensen gap,
    # e^-0.56 = 0.57, would be 10+ standard errors away)
    assert abs(ratios.mean() - 1.0) < 4 * standard_error
    assert standard_error < 0.06  # the check has power


def test_filtered_means_match_the_kalman_filter(lg_problem):
    rnn, y, _ = lg_problem
    _, kalman_means = kalman_filter(y.numpy(), **lowrank_kalman_parameters(rnn.model))
    result = rnn.filter(y, num_particles=3000, seed=0)
    # 3000 particles with the optimal proposal: Monte Carlo error of a filtered mean ~ sd / sqrt(ESS), well
    # below 0.05 (the filtered posterior sd is ~0.2 here)
    np.testing.assert_allclose(result.means[0].numpy(), kalman_means[0], atol=0.05)
    assert result.particles.shape == (1, 25, 3000, 2) and result.log_weights.shape == (1, 25, 3000)
    assert torch.allclose(result.log_weights.exp().sum(-1), torch.ones(1, 25), atol=1e-4)


def kalman_directional_derivative(model, y: torch.Tensor, name: str, direction: torch.Tensor, eps: float = 1e-6) -> float:
    """``d/de log p(y | theta + e direction)`` at ``e = 0`` by central differences of the Kalman filter (float64)."""
    reference = copy.deepcopy(model).double()
    parameter = dict(reference.named_parameters())[name]
    values = []
    for step in (eps, -eps):
        with torch.no_grad():
            parameter.add_(step * direction.double())
            values.append(kalman_log_likelihood(y.double().numpy(), **lowrank_kalman_parameters(reference))[0])
            parameter.sub_(step * direction.double())
    return (values[0] - values[1]) / (2 * eps)


@pytest.mark.parametrize("proposal, num_particles", [("optimal", 30), ("bootstrap", 100)])
def test_stop_gradient_resampling_estimates_the_score_and_the_detached_one_is_biased(lg_problem, proposal, num_particles):
    """The gradient of the bound along random directions of the dynamics (V, U) against the exact score
    ``d log p(y) / d theta`` (Kalman filter). ``"stop_gradient"`` (Scibior & Wood 2021) estimates it
    consistently (Fisher's identity over the particle paths); the FIVO gradient (``"none"``: ancestors cut)
    keeps a bias that more runs do not remove (measured at K = 30, optimal: V 0.98 +- 0.07 vs exact 0.006,
    U 2.07 +- 0.01 vs 1.80; stop_gradient -0.06 +- 0.13 and 1.83 +- 0.04)."""
    rnn, y, _ = lg_problem
    model = rnn.model
    guide = OptimalProposal(model) if proposal == "optimal" else BootstrapProposal()
    parameters = dict(model.named_parameters())
    generator = torch.Generator().manual_seed(0)
    directions = {name: torch.randn(parameters[name].shape, generator=generator) for name in ("transition.V", "transition.U")}
    exact = {name: kalman_directional_derivative(model, y, name, d) for name, d in directions.items()}
    num_groups, runs_per_group = 10, 40  # each group: one gradient of the bound summed over 40 independent filters
    for mode in RESAMPLING_GRADIENTS:
        pyro.set_rng_seed(0)
        estimates = {name: [] for name in directions}
        for _ in range(num_groups):
            loss = VSMC_ELBO(num_particles, resampling_gradient=mode).differentiable_loss(model, guide, y.expand(runs_per_group, -1, -1))
            grads = torch.autograd.grad(loss, [parameters[name] for name in directions])
            for (name, direction), grad in zip(directions.items(), grads):
                estimates[name].append(-(grad * direction).sum().item() / runs_per_group)
        for name, values in estimates.items():
            # z-score of the mean over 400 filters against the exact score, with the standard error from
            # the spread of the 10 group means (t with 9 dof: |t| > 4 has probability 0.003)
            z = (np.mean(values) - exact[name]) / (np.std(values, ddof=1) / math.sqrt(num_groups))
            if mode == "stop_gradient":
                assert abs(z) < 4, (mode, name, np.mean(values), exact[name], z)
            else:
                assert abs(z) > 6, (mode, name, np.mean(values), exact[name], z)


def test_the_model_and_proposal_run_in_pyros_smc_filter(lg_problem):
    """The init/step protocol is SMCFilter's: the trained model filters there too."""
    rnn, y, _ = lg_problem
    _, kalman_means = kalman_filter(y.numpy(), **lowrank_kalman_parameters(rnn.model))
    pyro.set_rng_seed(0)
    smc = pyro.infer.SMCFilter(rnn.model, OptimalProposal(rnn.model), num_particles=2000, max_plate_nesting=1)
    smc.init(y)
    for t in range(1, y.shape[1]):
        smc.step(t, y)
    mean = smc.get_empirical()["x"].mean.detach().squeeze()
    np.testing.assert_allclose(mean.numpy(), kalman_means[0, -1], atol=0.05)


# --------------------------------------------------------------------------------------------------
# a second, unrelated model: a scalar AR(1) latent per trial seen through C channels in a plate


class ToyModel(PyroModule):
    """x_0 ~ N(0, 1), x_t ~ N(phi x_{t-1}, sigma^2), y_{t,c} ~ N(x_t, tau^2) for c in a channel plate."""

    def __init__(self, phi=0.5, sigma=0.5, tau=1.0):
        super().__init__()
        self.phi = nn.Parameter(torch.tensor(phi))
        self.sigma, self.tau = sigma, tau

    @pyro_method
    def init(self, state, y):
        self._observe(state, y, 0, dist.Normal(0.0, 1.0))

    @pyro_method
    def step(self, state, t, y):
        self._observe(state, y, t, dist.Normal(self.phi * state["x"], self.sigma))

    def _observe(self, state, y, t, prior):
        with pyro.plate("trials", y.shape[0], dim=-2):
            x = pyro.sample("x", prior)  # (K, B, 1)
            with pyro.plate("channels", y.shape[2], dim=-1):
                pyro.sample("y", dist.Normal(x, self.tau), obs=y[:, t])
        state["x"] = x


class ToyOptimalGuide(PyroModule):
    """q(x_t) = p(x_t | x_{t-1}, y_t): Gaussian prior times C Gaussian channels."""

    def __init__(self, model):
        super().__init__()
        object.__setattr__(self, "toy", model)

    @pyro_method
    def init(self, state, y):
        self._propose(y, 0, torch.zeros(()), 1.0)

    @pyro_method
    def step(self, state, t, y):
        self._propose(y, t, self.toy.phi * state["x"], self.toy.sigma)

    def _propose(self, y, t, prior_mean, prior_std):
        precision = prior_std**-2 + y.shape[2] / self.toy.tau**2
        mean = (prior_mean * prior_std**-2 + y[:, t].sum(-1, keepdim=True) / self.toy.tau**2) / precision
        with pyro.plate("trials", y.shape[0], dim=-2):
            pyro.sample("x", dist.Normal(mean, precision**-0.5))


class EmptyGuide:
    def init(self, state, y):
        pass

    def step(self, state, t, y):
        pass


def toy_kalman(y, phi, sigma=0.5, tau=1.0):
    channels = y.shape[2]
    return kalman_log_likelihood(
        y.numpy(), [0.0], [[1.0]], [[phi]], [0.0], [[sigma**2]], np.ones((channels, 1)), np.zeros(channels), tau**2 * np.eye(channels)
    )


@pytest.fixture(scope="module")
def toy_data():
    return simulate_toy_data()


def simulate_toy_data():
    pyro.set_rng_seed(0)
    with torch.no_grad():
        model = ToyModel(phi=0.8)
        state, ys = {}, []
        y_dummy = torch.zeros(40, 30, 3)
        for t in range(30):
            pyro.poutine.trace(model.init if t == 0 else model.step).get_trace(
                *((state, y_dummy) if t == 0 else (state, t, y_dummy))
            )
            ys.append(state["x"] + model.tau * torch.randn(40, 3))
        return torch.stack(ys, 1)  # (40, 30, 3)


def test_vsmc_works_for_another_model_with_nested_plates(toy_data):
    """A model with a channel plate inside the trial plate (max_plate_nesting = 2), other site names, a
    hand-written optimal guide, and a guide that proposes nothing (the model proposes: bootstrap)."""
    y = toy_data[:3]
    exact = toy_kalman(y, 0.5)
    model = ToyModel(phi=0.5)
    num_runs = 50
    for guide, num_particles in ((ToyOptimalGuide(model), 100), (EmptyGuide(), 500)):
        pyro.set_rng_seed(0)
        replicated = y.repeat_interleave(num_runs, dim=0)
        estimate = VSMC_ELBO(num_particles, max_plate_nesting=2).log_evidence(model, guide, replicated)
        assert estimate.shape == (3 * num_runs, 1)  # one particle system per trial (the channel plate is summed)
        errors = estimate.reshape(3, num_runs).double().numpy() - exact[:, None]
        mean, variance = errors.mean(1), errors.var(1)
        # E[log p^] = log p - Var/2 to first order (Jensen); allow 4 standard errors around that band
        # (measured per-trial error sd: 0.1-0.2 nats optimal, 0.1-0.6 bootstrap)
        standard_error = np.sqrt(variance / num_runs)
        assert np.all(mean < 4 * standard_error) and np.all(mean > -variance / 2 - 4 * standard_error), (mean, variance)


def fit_toy_model(y, seed: int):
    """SVI with VSMC_ELBO on the toy model from phi = 0.2: ``(model, losses, maximum-likelihood phi)``."""
    mle = minimize_scalar(lambda phi: -toy_kalman(y, phi).sum(), bounds=(0.0, 0.99), method="bounded").x
    model = ToyModel(phi=0.2)
    guide = ToyOptimalGuide(model)
    elbo = VSMC_ELBO(30, max_plate_nesting=2)
    optimizer = ClippedAdam(elbo(model, guide).parameters(), lr=0.05, lrd=0.96)
    losses = fit_svi(model, guide, elbo, optimizer, [y], num_steps=60, batch_size=20, seed=seed, progress=False)
    return model, losses, mle


def measure(seed: int) -> dict:
    """The maximum-likelihood test's numbers for fit seed ``seed`` (benchmarks/quality_spread.py)."""
    model, losses, mle = fit_toy_model(simulate_toy_data(), seed)
    return {"phi_error": abs(model.phi.item() - mle), "loss_drop": losses[0] - losses[-1]}


def test_svi_with_vsmc_finds_the_maximum_likelihood_estimate(toy_data):
    """SVI (fit_svi, minibatches) with VSMC_ELBO maximizes the bound over phi; with the
    optimal proposal and 50 particles the bound's maximizer is the likelihood's, found by scipy on the
    exact (Kalman) log-likelihood."""
    model, losses, mle = fit_toy_model(toy_data, seed=0)
    assert losses[-1] < losses[0]
    # phi's posterior sd given 40 trials x 30 steps is ~0.02; SVI noise and the bias of the FIVO gradient
    # leave measured deviations of 0.003-0.005 (0.808 vs 0.803-0.811 across particle numbers 30-50), and
    # 0.0002-0.0042 over fit seeds 0-4 with native and scalar CPU kernels (`python
    # benchmarks/quality_spread.py tests/test_vsmc.py --threads 1 --kernels native default`)
    assert abs(model.phi.item() - mle) < 0.02


# --------------------------------------------------------------------------------------------------
# the ELBO interface


def test_loss_gradients_and_scaling_are_consistent(lg_problem):
    rnn, y, _ = lg_problem
    y = y.expand(3, -1, -1)
    model, guide = rnn.model, OptimalProposal(rnn.model)
    elbo = VSMC_ELBO(16)
    pyro.set_rng_seed(0)
    log_evidence = elbo.log_evidence(model, guide, y)
    pyro.set_rng_seed(0)
    loss = elbo.loss(model, guide, y)
    assert loss == pytest.approx(-log_evidence.sum().item(), rel=1e-5)
    pyro.set_rng_seed(0)
    scaled = elbo.loss(pyro.poutine.scale(model, 4.0), pyro.poutine.scale(guide, 4.0), y)
    assert scaled == pytest.approx(4.0 * loss, rel=1e-5)  # minibatch scaling reaches init/step
    pyro.set_rng_seed(0)
    model.zero_grad()
    assert elbo.loss_and_grads(model, guide, y) == pytest.approx(loss, rel=1e-5)
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values()), grads.keys()
    pyro.set_rng_seed(0)
    differentiable = elbo.differentiable_loss(model, guide, y)
    assert differentiable.requires_grad and differentiable.item() == pytest.approx(loss, rel=1e-5)


def test_plain_pyro_svi_updates_the_parameters(lg_problem):
    rnn, y, _ = lg_problem
    before = {name: p.detach().clone() for name, p in rnn.model.named_parameters()}
    svi = pyro.infer.SVI(rnn.model, OptimalProposal(rnn.model), pyro.optim.Adam({"lr": 0.01}), VSMC_ELBO(8))
    for _ in range(3):
        svi.step(y)
    changed = [name for name, p in rnn.model.named_parameters() if not torch.equal(p.detach(), before[name])]
    assert set(changed) == set(before)  # every parameter, the latent noise's included, was trained


def test_filter_record_and_adaptive_resampling(lg_problem):
    rnn, y, _ = lg_problem
    pyro.set_rng_seed(0)
    record = VSMC_ELBO(32, ess_threshold=0.5).filter(rnn.model, BootstrapProposal(), y.expand(4, -1, -1))
    assert record.log_normalizers.shape == (25, 4) and record.log_weights.shape == (25, 32, 4)
    assert record.states["x"].shape == (25, 32, 4, 2) and record.ess.shape == (25, 4)
    torch.testing.assert_close(record.log_evidence, record.log_normalizers.sum(0))
    resampled = record.resampled[:-1]
    assert resampled.any() and not resampled.all()  # some steps kept their weights
    assert torch.equal(resampled, record.ess[:-1] < 16)


def test_invalid_arguments_and_models_are_rejected(lg_problem):
    rnn, y, _ = lg_problem
    with pytest.raises(ValueError, match="num_particles"):
        VSMC_ELBO(0)
    with pytest.raises(ValueError, match="resampling"):
        VSMC_ELBO(4, resampling="residual")
    with pytest.raises(ValueError, match="ess_threshold"):
        VSMC_ELBO(4, ess_threshold=1.5)
    with pytest.raises(ValueError, match="resampling_gradient"):
        VSMC_ELBO(4, resampling_gradient="score_function")
    elbo = VSMC_ELBO(4)
    with pytest.raises(TypeError, match="init.*step"):
        elbo.loss(lambda y: None, BootstrapProposal(), y)
    with pytest.raises(ValueError, match="first argument"):
        elbo.loss(rnn.model, BootstrapProposal(), None)

    class StrayGuide(EmptyGuide):
        def init(self, state, y):
            pyro.sample("w", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="'w'.*model does not have"):
        elbo.loss(rnn.model, StrayGuide(), y)

    class GlobalSite(ToyModel):
        @pyro_method
        def init(self, state, y):
            pyro.sample("g", dist.Normal(0.0, 1.0))  # outside the trial plate
            super().init(state, y)

    with pytest.raises(ValueError, match="'g'.*couple"):
        VSMC_ELBO(4, max_plate_nesting=2).loss(GlobalSite(), EmptyGuide(), torch.zeros(3, 5, 2))

    class DiscreteLatent(ToyModel):
        @pyro_method
        def init(self, state, y):
            with pyro.plate("trials", y.shape[0], dim=-2):
                state["x"] = pyro.sample("k", dist.Bernoulli(0.5))

    with pytest.raises(ValueError, match="reparameterized.*'k'"):
        VSMC_ELBO(4, max_plate_nesting=2).differentiable_loss(DiscreteLatent(), EmptyGuide(), torch.zeros(3, 5, 2))
