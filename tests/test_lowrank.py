"""The low-rank RNN: dynamics, conversions, readouts, proposals, the Pyro model, the estimator, teachers."""

import copy
import math

import numpy as np
import pyro
import pytest
import torch
from torch.nn import functional as F

from pyro_neurodyn import LowRankRNN
from pyro_neurodyn.data import (
    gaussian_oscillator_data,
    load_teacher_npz,
    oscillator_teacher,
    poisson_oscillator_data,
    ring_task_data,
    simulate_teacher_latents,
)
from pyro_neurodyn.dynamics import (
    ACTIVATIONS,
    AffineReadoutMap,
    Covariance,
    LowRankGaussianReadout,
    LowRankPoissonReadout,
    LowRankTransition,
    OneToOneReadoutMap,
    SharedCovarianceNormal,
    latent_to_units,
    orthogonal_basis,
    unit_network,
    units_to_latent,
)
from pyro_neurodyn.guides import CausalConvEncoder, kalman_update


@pytest.fixture(autouse=True)
def fast_and_clean():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small ops: one thread is faster, several fight over a busy machine
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------------
# dynamics


def test_activations_follow_their_definitions():
    x, threshold = torch.linspace(-3, 3, 13), torch.full((13,), 0.5)
    torch.testing.assert_close(ACTIVATIONS["relu"](x, threshold), torch.clamp(x - 0.5, min=0))
    torch.testing.assert_close(ACTIVATIONS["clipped_relu"](x, threshold), torch.clamp(x + 0.5, min=0, max=0.5))  # 0, ramp, threshold
    torch.testing.assert_close(ACTIVATIONS["identity"](x, threshold), x - 0.5)
    torch.testing.assert_close(ACTIVATIONS["tanh"](x, threshold), torch.tanh(x - 0.5))


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_transition_is_the_low_rank_latent_map(activation):
    torch.manual_seed(0)
    transition = LowRankTransition(3, 11, input_dim=2, activation=activation, decay=0.8)
    x, v = torch.randn(5, 3), torch.randn(5, 2)
    a, V, U, threshold, name = transition.latent_map()
    assert name == activation and a.item() == pytest.approx(0.8)
    expected = a * x + ACTIVATIONS[activation](x @ U.T + v @ transition.W_u.T, threshold) @ V.T
    torch.testing.assert_close(transition(x, v), expected)
    torch.testing.assert_close(transition.filter_input(v, torch.ones(5, 2)), 0.8 * v + 0.2)


@pytest.mark.parametrize("kind", Covariance.KINDS)
def test_covariance_kinds_and_shared_normal_match_torch(kind):
    torch.manual_seed(0)
    covariance = Covariance(3, kind, init_scale=0.7)
    target = torch.tensor([[1.0, 0.3, 0.0], [0.3, 0.5, -0.1], [0.0, -0.1, 0.8]])
    if kind == "full":
        covariance.set_(target)
    else:
        with pytest.raises(ValueError, match="off-diagonal"):
            covariance.set_(target)
        covariance.set_(torch.diag_embed(target.diagonal()))
        target = torch.diag_embed(target.diagonal() if kind == "diag" else target.diagonal().mean().expand(3))
    torch.testing.assert_close(covariance.matrix(), target, atol=1e-6, rtol=1e-5)
    factors = covariance.factors()
    torch.testing.assert_close(factors.matrix(), target, atol=1e-6, rtol=1e-5)
    loc, value = torch.randn(4, 5, 3), torch.randn(4, 5, 3)
    reference = torch.distributions.MultivariateNormal(loc, covariance_matrix=target)
    normal = covariance.distribution(loc)
    torch.testing.assert_close(normal.log_prob(value), reference.log_prob(value), atol=1e-5, rtol=1e-5)
    samples = SharedCovarianceNormal(torch.zeros(3), factors).rsample((20000,))
    # sample covariance of 20000 draws: standard error ~ sigma^2 sqrt(2/20000) = 0.01 for unit variances
    torch.testing.assert_close(samples.T.cov(), target, atol=0.04, rtol=0)
    assert normal.expand((2, 4, 5)).batch_shape == (2, 4, 5)


def test_latent_and_unit_coordinates_convert_both_ways():
    torch.manual_seed(0)
    U, W_u = torch.randn(9, 2), torch.randn(9, 3)
    x, v = torch.randn(4, 6, 2), torch.randn(4, 6, 3)
    c = latent_to_units(x, U, W_u, v)
    torch.testing.assert_close(c, x @ U.T + v @ W_u.T)
    torch.testing.assert_close(units_to_latent(c, U, W_u, v), x, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("activation", ["relu", "clipped_relu", "tanh"])
def test_the_latent_model_is_exactly_the_unit_network(activation):
    """c_t = U x_t + W_u v_t of the rank-R latent follows the N-unit RNN c' = a c + J phi(c) + (1-a) W_u u."""
    torch.manual_seed(1)
    transition = LowRankTransition(2, 15, input_dim=2, activation=activation, decay=0.85)
    network = unit_network(transition, torch.eye(2))
    u = torch.randn(3, 20, 2)
    x, v = torch.randn(3, 2), torch.zeros(3, 2)
    c = latent_to_units(x, transition.U.detach(), network.W_u, v)
    with torch.no_grad():
        for t in range(19):
            x, v = transition(x, v), transition.filter_input(v, u[:, t])
            c = network.a * c + ACTIVATIONS[activation](c, network.threshold) @ network.J.T + (1 - network.a) * u[:, t] @ network.W_u.T
            torch.testing.assert_close(c, latent_to_units(x, transition.U, transition.W_u, v), atol=1e-4, rtol=1e-4)
    U = transition.U.detach()
    torch.testing.assert_close(network.noise_cov, U @ U.T)


def test_orthogonal_basis_is_an_exact_change_of_coordinates():
    torch.manual_seed(2)
    transition = LowRankTransition(3, 12, activation="relu")
    a, V, U, threshold, _ = transition.latent_map()
    noise = torch.tensor([[0.5, 0.1, 0.0], [0.1, 0.3, 0.0], [0.0, 0.0, 0.2]])
    basis = orthogonal_basis(U, V, noise)
    torch.testing.assert_close(basis.U.T @ basis.U, torch.eye(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(basis.U @ basis.V, U @ V, atol=1e-5, rtol=1e-5)
    x = torch.randn(6, 3)
    with torch.no_grad():
        mapped = transition(x) @ basis.transform.T  # T f(x)
        direct = a * (x @ basis.transform.T) + F.relu((x @ basis.transform.T) @ basis.U.T - threshold) @ basis.V.T  # f'(T x)
    torch.testing.assert_close(mapped, direct, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(basis.noise_cov, basis.transform @ noise @ basis.transform.T)
    torch.testing.assert_close(basis.latents(x) @ basis.U.T, x @ U.T, atol=1e-5, rtol=1e-5)  # same unit currents
    assert torch.all(basis.V.norm(dim=1)[:-1] >= basis.V.norm(dim=1)[1:])  # ordered by singular value


# --------------------------------------------------------------------------------------------------
# readouts and proposals


def test_readout_linear_forms_give_the_readout_means():
    torch.manual_seed(3)
    x, offset = torch.randn(4, 2), torch.randn(4, 6)
    affine = LowRankGaussianReadout(AffineReadoutMap(2, 6), 6)
    form = affine.linear_form()
    torch.testing.assert_close(x @ form.weight.T + form.bias, affine(x).mean)
    units = LowRankGaussianReadout(OneToOneReadoutMap(6, gain=2.0, bias=0.5, train_gain=False), 6, source="units", init_scale=0.3)
    assert units.reads_units and "gain" in dict(units.map.named_buffers())  # frozen: a buffer, not a parameter
    pre = torch.randn(6, 2)
    form = units.linear_form(pre, offset)
    torch.testing.assert_close(x @ form.weight.T + form.bias, units(x @ pre.T + offset).mean)
    torch.testing.assert_close(form.variance, torch.full((6,), 0.09))
    poisson = LowRankPoissonReadout(OneToOneReadoutMap(6, gain=4.0, bias=-3.0), source="units")
    x = torch.randn(4, 6)
    torch.testing.assert_close(poisson(x).mean, F.softplus(4 * x - 3) + 1e-6)
    assert poisson.linear_form() is None


def test_kalman_update_is_gaussian_conditioning():
    """Against the joint Gaussian of (x, y): E[x | y] = m + S C^T (C S C^T + R)^-1 (y - C m - d)."""
    torch.manual_seed(4)
    covariance = Covariance(3, "full")
    covariance.set_(torch.tensor([[1.0, 0.3, 0.1], [0.3, 0.6, 0.0], [0.1, 0.0, 0.4]]))
    readout = LowRankGaussianReadout(AffineReadoutMap(3, 5), 5, init_scale=0.5)
    form = readout.linear_form()
    loc, y = torch.randn(7, 3), torch.randn(7, 5)
    posterior = kalman_update(covariance.factors(), form).distribution(loc, y, form.bias)
    S, C, R = (x.double().numpy() for x in (covariance.matrix().detach(), form.weight.detach(), torch.diag(form.variance.detach())))
    gain = S @ C.T @ np.linalg.inv(C @ S @ C.T + R)
    innovation = y.double().numpy() - loc.double().numpy() @ C.T - form.bias.detach().double().numpy()
    np.testing.assert_allclose(posterior.mean.detach().numpy(), loc.double().numpy() + innovation @ gain.T, atol=1e-5)
    np.testing.assert_allclose(posterior.factors.matrix().detach().numpy(), S - gain @ C @ S, atol=1e-6)


def test_encoder_is_causal():
    torch.manual_seed(5)
    encoder = CausalConvEncoder(4, 2, kernel_sizes=(5, 3, 2), channels=8)
    y = torch.randn(2, 30, 4)
    changed = y.clone()
    changed[:, 17:] += 10.0
    mean, log_var = encoder(y)
    mean_changed, log_var_changed = encoder(changed)
    assert mean.shape == log_var.shape == (2, 30, 2)
    torch.testing.assert_close(mean[:, :17], mean_changed[:, :17])
    torch.testing.assert_close(log_var[:, :17], log_var_changed[:, :17])
    assert not torch.allclose(mean[:, 17], mean_changed[:, 17])


# --------------------------------------------------------------------------------------------------
# the model and the estimator


@pytest.fixture(scope="module")
def small_gaussian():
    return gaussian_oscillator_data(12, 20, seed=3)


def test_generation_shapes_and_inputs():
    rnn = LowRankRNN(6, 2, 6, input_dim=2, readout="one_to_one", seed=0)
    u = torch.randn(3, 15, 2)
    sample = rnn.sample(3, 15, u, seed=0)
    assert sample.latents.shape == (3, 15, 2) and sample.y.shape == sample.means.shape == (3, 15, 6)
    # the one-to-one readout's mean is the units' current, with the input term: c = U x + W_u v
    torch.testing.assert_close(sample.means, rnn.to_units(sample.latents, u))
    again = rnn.sample(3, 15, u, seed=0)
    torch.testing.assert_close(sample.y, again.y)  # seeded
    trace = pyro.poutine.trace(rnn.model).get_trace(None, u, num_steps=15)
    assert {"0/x", "0/y", "14/x", "14/y"} <= set(trace.nodes)
    with pytest.raises(ValueError, match="input_dim=2"):
        rnn.sample(3, 15)


def test_generation_from_given_initial_latents_steps_the_latent_map():
    rnn = LowRankRNN(4, 2, 8, noise="diag", seed=2)
    x0 = torch.tensor([1.5, -0.7])
    num_trials = 4000
    sample = rnn.sample(num_trials, 3, initial_latents=x0.expand(num_trials, 2), seed=0)
    torch.testing.assert_close(sample.latents[:, 0], x0.expand(num_trials, 2), rtol=0, atol=0)
    # x_1 ~ N(a x_0 + V relu(U x_0 - threshold), Sigma_x): closed form for the mean, written out here
    a, V, U, threshold, activation = rnn.latent_map()
    assert activation == "relu"
    expected = a * x0 + V @ torch.clamp(U @ x0 - threshold, min=0)
    std = rnn.noise_covariance().diagonal().sqrt()
    # the sample mean of 4000 draws has standard error std / sqrt(4000); 5 standard errors: false alarm < 1e-6
    assert bool(((sample.latents[:, 1].mean(0) - expected).abs() < 5 * std / math.sqrt(num_trials)).all())
    with pytest.raises(ValueError, match="initial_latents"):
        rnn.sample(3, 5, initial_latents=torch.zeros(2, 2))


def test_raw_inputs_enter_the_initial_state_and_every_step():
    rnn = LowRankRNN(5, 2, 5, input_dim=1, readout="one_to_one", filter_inputs=False, seed=1)
    u = torch.randn(2, 4, 1)
    prior = rnn.model.latent_prior({}, 0, u)
    transition = rnn.model.transition
    expected = rnn.model.initial_mean + u[:, 0] @ (torch.linalg.pinv(transition.U) @ transition.W_u).T
    torch.testing.assert_close(prior.loc, expected)
    torch.testing.assert_close(prior.v, u[:, 0])
    state = {"x": torch.zeros(2, 2), "v": u[:, 0]}
    torch.testing.assert_close(rnn.model.latent_prior(state, 1, u).v, u[:, 1])


def test_fit_trains_every_parameter_and_lowers_the_loss(small_gaussian):
    rnn = LowRankRNN(20, 2, 20, readout="one_to_one", seed=0)
    before = {name: p.detach().clone() for name, p in rnn.model.named_parameters()}
    rnn.fit(small_gaussian.y, num_particles=8, num_steps=12, batch_size=6, lr=1e-2, optimizer="adam", seed=0, progress=False)
    assert len(rnn.losses) == 12 and np.all(np.isfinite(rnn.losses))
    assert np.mean(rnn.losses[-3:]) < np.mean(rnn.losses[:3])
    changed = {name for name, p in rnn.model.named_parameters() if not torch.equal(p.detach(), before[name])}
    assert changed == set(before)
    other = LowRankRNN(20, 2, 20, readout="one_to_one", seed=0)  # a fresh model does not share the trained values
    torch.testing.assert_close(other.model.transition.V, before["transition.V"])


def test_a_fixed_decay_stays_put_while_the_rest_trains(tmp_path, small_gaussian):
    rnn = LowRankRNN(20, 2, 20, readout="one_to_one", decay=0.85, train_decay=False, seed=0)
    assert "transition.decay_logit" not in dict(rnn.model.named_parameters())
    before = {name: p.detach().clone() for name, p in rnn.model.named_parameters()}
    initial_a = rnn.model.transition.a.item()
    assert initial_a == pytest.approx(0.85, rel=1e-6)
    rnn.fit(small_gaussian.y, num_particles=8, num_steps=6, batch_size=6, lr=1e-2, optimizer="adam", seed=0, progress=False)
    # through the one-step regression of initialize_from_data and the gradient steps: bit for bit 0.85
    assert rnn.model.transition.a.item() == initial_a
    changed = {name for name, p in rnn.model.named_parameters() if not torch.equal(p.detach(), before[name])}
    assert changed == set(before)
    rnn.save(tmp_path / "fixed.pt")
    loaded = LowRankRNN.load(tmp_path / "fixed.pt")
    assert loaded.config.train_decay is False and loaded.model.transition.a.item() == rnn.model.transition.a.item()
    learned = LowRankRNN(20, 2, 20, readout="one_to_one", decay=0.85, seed=0)
    learned.fit(small_gaussian.y, num_particles=8, num_steps=6, batch_size=6, lr=1e-2, optimizer="adam", seed=0, progress=False)
    assert learned.model.transition.a.item() != pytest.approx(0.85, abs=1e-4)  # the default learns it


def test_initialize_from_data_finds_the_principal_subspace(small_gaussian):
    rnn = LowRankRNN(20, 2, 20, readout="one_to_one", seed=0).initialize_from_data(small_gaussian.y)
    U, teacher_U = rnn.model.transition.U.detach(), small_gaussian.teacher.U
    # the teacher's latent plane is the data's top-2 principal subspace (signal ~2 vs noise 0.1 per channel)
    overlap = torch.linalg.svdvals(U.T @ teacher_U)  # cosines of the principal angles
    assert overlap.min() > 0.99
    assert rnn.model.readout.noise.std().mean().item() == pytest.approx(0.1, rel=0.25)


@pytest.mark.parametrize("proposal", ["optimal", "bootstrap", "encoder"])
def test_every_proposal_fits_filters_and_estimates(small_gaussian, proposal):
    rnn = LowRankRNN(20, 2, 20, readout="affine", proposal=proposal, activation="clipped_relu", noise="diag", seed=1)
    rnn.fit(small_gaussian.y, num_particles=4, num_steps=2, batch_size=12, progress=False, seed=0)
    result = rnn.filter(small_gaussian.y[:3], num_particles=16, seed=0)
    assert result.means.shape == (3, 20, 2) and result.particles.shape == (3, 20, 16, 2)
    assert result.ess.shape == (3, 20) and torch.all(result.ess <= 16 + 1e-4)
    log_evidence = rnn.log_evidence(small_gaussian.y[:3], num_particles=16, seed=0)
    torch.testing.assert_close(log_evidence, result.log_evidence)
    assert torch.isfinite(log_evidence).all()


def test_poisson_model_with_encoder_proposal():
    data = poisson_oscillator_data(8, 30, seed=0)
    assert data.y.dtype == torch.float32 and torch.equal(data.y, data.y.round())
    torch.testing.assert_close(data.rates, F.softplus(4 * data.latents @ data.teacher.U.T - 3))
    rnn = LowRankRNN(40, 2, 40, observation="poisson", readout="one_to_one", seed=0)
    assert rnn.config.proposal == "encoder"
    rnn.fit(data.y, num_particles=4, num_steps=2, batch_size=8, progress=False, seed=0)
    assert np.all(np.isfinite(rnn.losses))
    sample = rnn.sample(2, 10, seed=0)
    assert torch.equal(sample.y, sample.y.round()) and torch.all(sample.means > 0)
    with pytest.raises(ValueError, match="integer counts"):
        rnn.fit(data.y + 0.5, num_steps=1, progress=False)


def test_ring_task_with_inputs():
    data = ring_task_data(16, 60, seed=0)
    rnn = LowRankRNN(60, 2, 60, input_dim=2, readout="one_to_one", filter_inputs=False, seed=0)
    rnn.fit(data.y, data.inputs, num_particles=4, num_steps=2, batch_size=8, progress=False, seed=0)
    assert rnn.filter(data.y[:2], data.inputs[:2], num_particles=8).means.shape == (2, 60, 2)
    with pytest.raises(ValueError, match="pass the inputs u"):
        rnn.log_evidence(data.y)


def test_save_and_load_round_trip(tmp_path, small_gaussian):
    rnn = LowRankRNN(20, 2, 20, proposal="encoder", seed=2)
    rnn.fit(small_gaussian.y, num_particles=4, num_steps=2, progress=False)
    path = tmp_path / "lowrank.pt"
    rnn.save(path)
    with pytest.raises(FileExistsError):
        rnn.save(path)
    loaded = LowRankRNN.load(path)
    assert loaded.config == rnn.config and loaded.losses == rnn.losses
    torch.testing.assert_close(
        loaded.log_evidence(small_gaussian.y, num_particles=8, seed=0), rnn.log_evidence(small_gaussian.y, num_particles=8, seed=0)
    )


def test_latent_map_and_network_views():
    rnn = LowRankRNN(8, 3, 16, activation="clipped_relu", seed=0)
    a, V, U, threshold, activation = rnn.latent_map()  # the arguments of analysis.fixed_points
    assert V.shape == (3, 16) and U.shape == (16, 3) and threshold.shape == (16,) and activation == "clipped_relu"
    assert not V.requires_grad and 0 < a.item() < 1
    network = rnn.unit_network()
    torch.testing.assert_close(network.J, U @ V)
    basis = rnn.orthogonal_basis()
    torch.testing.assert_close(torch.linalg.eigvalsh(basis.noise_cov), torch.linalg.eigvalsh(network.noise_cov)[-3:], atol=1e-6, rtol=1e-4)
    with pytest.raises(ValueError, match="rank = 3"):
        rnn.to_units(torch.zeros(2, 5, 2))


def test_fitted_model_and_proposal_keep_nothing_of_a_pass_and_can_be_copied(small_gaussian):
    """What a pass computes once (which holds autograd graphs) lives in its ParticleState, not on the modules."""
    rnn = LowRankRNN(20, 2, 20, proposal="encoder", seed=0)
    attributes = [dict(vars(module)) for module in (rnn.model, rnn.guide)]
    rnn.fit(small_gaussian.y, num_particles=4, num_steps=1, progress=False)
    for module, before in zip((rnn.model, rnn.guide), attributes):  # not one attribute was set
        assert vars(module).keys() == before.keys() and all(vars(module)[key] is value for key, value in before.items())
    model, guide = copy.deepcopy(rnn.model), copy.deepcopy(rnn.guide)
    torch.testing.assert_close(model.transition.V, rnn.model.transition.V)
    torch.testing.assert_close(guide.encoder.net[-1].bias, rnn.guide.encoder.net[-1].bias)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(obs_dim=5, rank=2, num_units=6, readout="one_to_one"), "obs_dim == num_units"),
        (dict(obs_dim=5, rank=2, num_units=6, observation="poisson", proposal="optimal"), "Gaussian observations"),
        (dict(obs_dim=5, rank=2, num_units=6, activation="softplus"), "activation"),
        (dict(obs_dim=5, rank=0, num_units=6), "rank"),
        (dict(obs_dim=5, rank=2, num_units=6, noise="low_rank"), "noise"),
        (dict(obs_dim=5, rank=2, num_units=6, decay=1.0), "decay"),
        (dict(obs_dim=5, rank=2, num_units=6, train_decay="no"), "train_decay"),
    ],
)
def test_constructor_rejects_bad_configurations(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LowRankRNN(**kwargs)


def test_fit_rejects_bad_data(small_gaussian):
    rnn = LowRankRNN(20, 2, 20)
    U = rnn.model.transition.U.detach().clone()
    y = small_gaussian.y
    with pytest.raises(ValueError, match="20 channels"):
        LowRankRNN(19, 2, 20).fit(y, num_steps=1, progress=False)
    bad = y.clone()
    bad[0, 3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        rnn.fit(bad, num_steps=1, progress=False)
    with pytest.raises(ValueError, match="exactly one of epochs and num_steps"):
        rnn.fit(y, progress=False)
    with pytest.raises(ValueError, match="input_dim=0"):
        rnn.fit(y, torch.zeros(12, 20, 1), num_steps=1, progress=False)
    with pytest.raises(ValueError, match="optimizer"):
        rnn.fit(y, num_steps=1, optimizer="sgd", progress=False)
    with pytest.raises(ValueError, match="resampling"):
        rnn.fit(y, num_steps=1, resampling="stratified", progress=False)
    assert rnn.losses == [] and torch.equal(rnn.model.transition.U, U)  # nothing ran, not even the initialization


# --------------------------------------------------------------------------------------------------
# teachers


def test_oscillator_teacher_has_a_limit_cycle():
    teacher = oscillator_teacher()._replace(latent_noise_std=0.0)
    torch.testing.assert_close(teacher.U.T @ teacher.U, torch.eye(2), atol=1e-5, rtol=0)
    start = torch.tensor([[0.05, 0.0], [6.0, 0.0]])  # from inside and from outside
    latents, _ = simulate_teacher_latents(teacher, start, 400)
    radius = latents.norm(dim=-1)
    assert torch.all((radius[:, -50:] - 2.06).abs() < 0.1)  # both reach the cycle of radius ~13.7 b = 2.06
    angle = torch.atan2(latents[:, -100:, 1], latents[:, -100:, 0])
    step = torch.remainder(angle[:, 1:] - angle[:, :-1] + math.pi, 2 * math.pi) - math.pi
    assert 2 * math.pi / step.mean().abs().item() == pytest.approx(25.0, rel=0.05)


def test_gaussian_oscillator_data_has_the_stated_noise_levels():
    data = gaussian_oscillator_data(200, 75, seed=0)
    assert data.y.shape == (200, 75, 20) and data.latents.shape == (200, 75, 2) and data.inputs is None
    residual = data.y - data.latents @ data.teacher.U.T
    assert residual.std().item() == pytest.approx(0.1, rel=0.02)  # 300000 draws: sd known to 0.2%
    assert data.teacher.latent_noise_std == 0.2


def test_ring_task_stores_the_cued_angle():
    data = ring_task_data(32, 250, seed=0)
    cue = torch.atan2(data.inputs[:, 30, 1], data.inputs[:, 30, 0])
    angle = torch.atan2(data.latents[..., 1], data.latents[..., 0])
    error = (torch.remainder(angle - cue[:, None] + math.pi, 2 * math.pi) - math.pi).abs()
    assert error[:, 60].mean() < 0.2 and error[:, -1].mean() < 0.4  # slow drift along the ring after the cue
    assert error[:, 20].mean() > 1.0  # before the cue the angle is random (mean |error| ~ pi/2)
    torch.testing.assert_close(data.latents[:, -1].norm(dim=-1).mean(), torch.tensor(2.1), atol=0.2, rtol=0)  # on the ring


def test_load_the_papers_reach_teacher(shared_data_path):
    teacher = load_teacher_npz(shared_data_path("lowrank_teacher_reach_rnn.npz"))
    assert teacher.a == pytest.approx(0.9) and teacher.U.shape == (60, 2) and teacher.W_u.shape == (60, 2)
    arrays = np.load(shared_data_path("lowrank_teacher_reach_rnn.npz"))
    np.testing.assert_allclose(teacher.V.numpy(), arrays["n"] * 0.1 / 60, rtol=1e-6)
    np.testing.assert_allclose(teacher.threshold.numpy(), -arrays["b_rec"])
    data = ring_task_data(8, 80, teacher=teacher, seed=0)
    assert data.y.shape == (8, 80, 60) and torch.isfinite(data.y).all()


def test_initialize_from_data_leaves_no_gradient_behind():
    """A stale .grad (U collected one through the dynamics' least squares) would be added to the first SVI step's."""
    rnn = LowRankRNN(20, 2, 20, readout="one_to_one", seed=7).initialize_from_data(gaussian_oscillator_data(12, 20, seed=3).y)
    assert all(p.grad is None for p in list(rnn.model.parameters()) + list(rnn.guide.parameters()))
