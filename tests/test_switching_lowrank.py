"""The switching low-rank RNN: its parts against independent references, and fits on a known teacher.

References: per-state LowRankTransition modules (the bank), Pyro's generic enumeration (the collapsed
objective), the plain LowRankRNN's particle filter (the VSMC weight at K = 1), the fixed-point finder on
the teacher's own parameters, and the two-regime teacher of ``pyro_neurodyn.data`` (fits).
"""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pyro
import pytest
import torch
from matplotlib import pyplot as plt

from pyro_neurodyn import LowRankRNN, SwitchingLowRankRNN
from pyro_neurodyn.analysis import affine_alignment, fixed_points, fixed_points_in_reference, latent_map_fixed_points
from pyro_neurodyn.data import Recording, oscillator_teacher, switching_lowrank_data
from pyro_neurodyn.dynamics import LowRankBank, LowRankTransition
from pyro_neurodyn.dynamics.covariance import CovarianceFactors
from pyro_neurodyn.guides import SwitchingKalmanProposal
from pyro_neurodyn.guides.proposals import _full, moment_matched_normal
from pyro_neurodyn.infer import VSMC_ELBO
from pyro_neurodyn.metrics import state_accuracy
from pyro_neurodyn.models import SwitchingLowRankModel
from pyro_neurodyn.models.model_check import elbo_fast_and_enumerated
from pyro_neurodyn.plots import plot_lowrank_flow_field

torch.set_num_threads(1)


# ----- fixed points of LowRankRNN ------------------------------------------------------------------
def _set_transition(transition, a, U, V, threshold):
    with torch.no_grad():
        transition.decay_logit.copy_(torch.logit(torch.as_tensor(a, dtype=torch.float32)))
        transition.U.copy_(U)
        transition.V.copy_(V)
        transition.threshold.copy_(threshold)


def test_lowrank_fixed_points_are_the_teachers():
    teacher = oscillator_teacher(20, seed=0)
    rnn = LowRankRNN(obs_dim=20, rank=2, num_units=20, readout="one_to_one", seed=0)
    _set_transition(rnn.model.transition, teacher.a, teacher.U, teacher.V, teacher.threshold)
    ours = rnn.fixed_points()
    reference = fixed_points(teacher.a, teacher.V, teacher.U, teacher.threshold, "relu")
    assert len(ours.points) == len(reference.points) == 1  # the unstable spiral inside the limit cycle
    np.testing.assert_allclose(ours.points, reference.points, atol=1e-6)  # float32 a = sigmoid(logit(0.9))
    np.testing.assert_array_equal(ours.stable, reference.stable)
    direct = fixed_points(*rnn.latent_map()[:4], "relu")
    np.testing.assert_array_equal(ours.points, direct.points)


def test_clipped_relu_fixed_points_are_fixed_points_of_the_model_map():
    torch.manual_seed(3)
    transition = LowRankTransition(2, 12, activation="clipped_relu")
    with torch.no_grad():
        transition.threshold.copy_(torch.randn(12))  # thresholds of both signs, one unit switched off below
        transition.threshold[0] = 0.0
        transition.V.mul_(8.0)
    result = latent_map_fixed_points(transition.latent_map())
    assert len(result.points) >= 1
    z = torch.as_tensor(result.points, dtype=torch.float64)
    model_map = transition.double()(z)  # the model's own phi(x, b) = relu(x + b) - relu(x)
    # a = sigmoid(decay_logit) was float32 in latent_map(), float64 here: they differ by ~1e-8 relative
    torch.testing.assert_close(model_map, z, atol=1e-6, rtol=0)
    # and nothing is missed: a dense grid's local minima of |F(z) - z| all lie near a reported point
    grid = torch.stack(torch.meshgrid(torch.linspace(-6, 6, 401, dtype=torch.float64), torch.linspace(-6, 6, 401, dtype=torch.float64), indexing="ij"), -1)
    residual = (transition(grid) - grid).norm(dim=-1)
    near_zero = grid[residual < 0.01].reshape(-1, 2)
    distance = torch.cdist(near_zero, z).min(1).values
    assert bool((distance < 0.2).all())


# ----- the bank and the two objectives --------------------------------------------------------------
def test_bank_equals_per_state_low_rank_transitions():
    torch.manual_seed(0)
    bank = LowRankBank(3, 2, 7, activation="relu")
    x = torch.randn(5, 4, 2)
    out = bank(x)
    assert out.shape == (5, 4, 3, 2)
    for k in range(3):
        single = LowRankTransition(2, 7)
        _set_transition(single, bank.a.detach(), bank.U[k].detach(), bank.V[k].detach(), bank.threshold[k].detach())
        torch.testing.assert_close(out[..., k, :], single(x), atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(bank.state_map(k)(x), single(x), atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="state"):
        bank.latent_map(3)


@pytest.mark.parametrize("options", [{"transitions": "sticky"}, {"transitions": "recurrent"}, {"transitions": "stationary", "observation": "poisson"}])
def test_collapsed_objective_equals_generic_enumeration(options):
    torch.manual_seed(0)
    pyro.clear_param_store()
    module = SwitchingLowRankModel(3, 2, 6, 4, **options).double()
    y = torch.randn(3, 8, 4, dtype=torch.float64)
    if options.get("observation") == "poisson":
        y = torch.poisson(torch.full((3, 8, 4), 2.0, dtype=torch.float64))
    fast, generic = elbo_fast_and_enumerated(module, y)
    torch.testing.assert_close(fast, generic, rtol=1e-10, atol=1e-8)  # float64: equal up to round-off
    params = [p for _, p in module.named_parameters()]
    for a, b in zip(torch.autograd.grad(fast, params, retain_graph=True, allow_unused=True), torch.autograd.grad(generic, params, allow_unused=True)):
        if a is not None or b is not None:
            torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("moments", SwitchingKalmanProposal.MOMENTS)
def test_vsmc_with_one_state_equals_the_plain_low_rank_rnn(moments):
    """K = 1: the mixture is one Gaussian, either proposal the optimal one: the same particle filter."""
    torch.manual_seed(1)
    T, D, N = 12, 5, 6
    switching = SwitchingLowRankModel(1, 2, N, D, transitions="stationary")
    proposal = SwitchingKalmanProposal(switching, moments)
    rnn = LowRankRNN(obs_dim=D, rank=2, num_units=N, noise="scalar", initial_noise="diag", proposal="optimal")
    bank = switching.dynamics
    _set_transition(rnn.model.transition, bank.a.detach(), bank.U[0].detach(), bank.V[0].detach(), bank.threshold[0].detach())
    with torch.no_grad():
        rnn.model.noise.set_(switching.latent_log_scale.exp().square() * torch.eye(2))
        rnn.model.initial_noise.set_(torch.diag(switching.init_log_scale.exp().square()))
        rnn.model.initial_mean.copy_(switching.init_loc[0])
        rnn.model.readout.map.weight.copy_(switching.emission.mapping.weight)
        rnn.model.readout.map.bias.copy_(switching.emission.mapping.bias)
        rnn.model.readout.noise.set_(torch.diag((2 * switching.emission.log_scale).exp()))
    y = torch.randn(4, T, D)
    plain = rnn.log_evidence(y, num_particles=8, seed=5)
    pyro.set_rng_seed(5)
    with pyro.validation_enabled(False):
        ours = VSMC_ELBO(8).log_evidence(switching, proposal, y)
    torch.testing.assert_close(ours, plain, rtol=1e-5, atol=1e-4)  # float32 round-off over 12 steps


def test_switching_proposal_has_the_moments_of_the_exact_mixture_posterior():
    """The ``"posterior_moments"`` proposal of x_t against Bayes' rule done by brute force in float64:
    components ``N(m_k, Sigma)`` weighted by alpha_pred, the readout ``N(C x + d, diag r)``; the posterior
    is ``sum_k beta_k N(mu_k, P)`` with ``beta_k ∝ alpha_pred(k) N(y; C m_k + d, C Sigma C^T + diag r)``
    (``MultivariateNormal`` in D = 5 dimensions). The proposal must have its mean and covariance (the
    ``"prior_mean"`` proposal, centred by alpha_pred, fails this)."""
    torch.manual_seed(4)
    module = SwitchingLowRankModel(3, 2, 6, 5, transitions="stationary")
    with torch.no_grad():
        module.latent_log_scale.fill_(-2.0)  # sigma_x ~ 0.14: components apart by several sigma_x
        module.dynamics.V.mul_(6.0)
    proposal = SwitchingKalmanProposal(module, "posterior_moments")
    y = torch.randn(4, 3, 5)
    state = {"x": torch.randn(7, 4, 2), "log_alpha": torch.log_softmax(torch.randn(7, 4, 3), -1)}
    q = proposal.proposal(state, 2, y, None)
    prediction = module.predict(state, 2)
    C, d, r = (t.detach().double() for t in module.emission_linear_form())
    sigma2 = module.latent_log_scale.detach().double().exp().square()
    means, log_alpha = prediction.means.detach().double(), prediction.log_probs.detach().double()
    S = sigma2 * C @ C.T + torch.diag(r)
    log_beta = log_alpha + torch.distributions.MultivariateNormal(means @ C.T + d, S).log_prob(y[:, 2].double().unsqueeze(-2))
    beta = torch.softmax(log_beta, -1)
    P = torch.linalg.inv(torch.eye(2, dtype=torch.float64) / sigma2 + C.T @ torch.diag(1 / r) @ C)
    mu = (means / sigma2 + (((y[:, 2].double() - d) / r) @ C).unsqueeze(-2)).unsqueeze(-1)
    mu = (P @ mu).squeeze(-1)  # (7, 4, 3, 2)
    mean = (beta.unsqueeze(-1) * mu).sum(-2)
    deviation = mu - mean.unsqueeze(-2)
    covariance = P + torch.einsum("...k,...ki,...kj->...ij", beta, deviation, deviation)
    assert float(beta.max(-1).values.min()) < 0.9  # the test case has truly mixed posteriors
    torch.testing.assert_close(q.mean.double(), mean, atol=1e-4, rtol=1e-4)  # float32 proposal
    factor = q.factors.scale.double()
    torch.testing.assert_close(factor @ factor.transpose(-1, -2), covariance, atol=1e-5, rtol=1e-4)
    x = q.rsample()
    reference = torch.distributions.MultivariateNormal(mean, covariance).log_prob(x.double())
    torch.testing.assert_close(q.log_prob(x).double(), reference, atol=1e-3, rtol=1e-4)


def test_moment_matched_proposal_of_components_far_apart_in_float32():
    """Two components 3e4 noise scales apart (particles of two states diverging through a long unobserved
    stretch): the bracket ``I + sum_k w_k e_k e_k^T`` is rank one plus I, and formed in float32 the I is lost
    to round-off (a Cholesky of it failed). The factor must still be finite and give the mixture's covariance,
    computed here in float64: ``F F^T + sum_k w_k (m_k - mu)(m_k - mu)^T``."""
    torch.manual_seed(0)
    means = torch.stack([torch.zeros(64, 2), 3e3 * torch.randn(64, 2)], -2)  # (64, K = 2, R = 2), sigma = 0.1
    log_weights = torch.log_softmax(torch.randn(64, 2), -1)
    factors = CovarianceFactors.from_std(torch.full((2,), 0.1))
    q = moment_matched_normal(means, log_weights, _full(factors))
    weights, means64 = log_weights.double().exp(), means.double()
    deviation = means64 - (weights.unsqueeze(-1) * means64).sum(-2, keepdim=True)
    covariance = 0.01 * torch.eye(2, dtype=torch.float64) + torch.einsum("...k,...ki,...kj->...ij", weights, deviation, deviation)
    factor = q.factors.scale.double()
    assert bool(torch.isfinite(factor).all()) and bool((factor.diagonal(dim1=-2, dim2=-1) > 0).all())
    torch.testing.assert_close(factor @ factor.mT, covariance, rtol=1e-4, atol=1e-2)  # float32 entries up to ~1e7
    # the small singular direction carries a relative error ~ float32 eps x cond ~ 6e-8 x 3e4 = 2e-3 (measured 1.9e-3)
    assert float(q.factors.half_log_det.double().sub(0.5 * torch.linalg.slogdet(covariance).logabsdet).abs().max()) < 1e-2


def test_posterior_moments_proposal_runs_through_a_long_unobserved_stretch():
    """End to end, the case that raised ``linalg.cholesky: ... not positive-definite``: Poisson counts, 100 and
    300 unobserved steps, the model started from the data (model seed 1 diverged in the gap)."""
    data = switching_lowrank_data(2, 400, seed=0)
    counts = torch.poisson(torch.ones_like(data.y), generator=torch.Generator().manual_seed(0))
    for gap in (100, 300):
        y = counts.clone()
        y[:, 50 : 50 + gap] = float("nan")
        recording = Recording.from_trials(list(y))  # NaN = missing
        model = SwitchingLowRankRNN(data.y.shape[-1], 2, 2, 20, observation="poisson", proposal="posterior_moments", seed=1)
        model.initialize_from_data(recording)
        assert not bool(torch.isnan(model.log_evidence(recording)).any())


# ----- fits on the two-regime teacher ----------------------------------------------------------------
@pytest.fixture(scope="module")
def teacher_data():
    return switching_lowrank_data(num_trials=20, num_steps=150, seed=0)


def test_teacher_fixed_points_are_known_and_visited_by_their_own_regime(teacher_data):
    """The finder on the teacher returns exactly the constructed points (float32 round-off), and each
    regime's data visit each of that regime's points: the comparisons below are about fitted maps, not
    extrapolation."""
    teacher, x, z = teacher_data.teacher, teacher_data.x, teacher_data.z
    previous, regime = x[:, :-1], z[:, 1:]  # z_t generates x_t from x_{t-1}
    for k in range(2):
        found = fixed_points(*teacher.latent_map(k))
        points, stable = teacher.known_fixed_points(k)
        np.testing.assert_allclose(found.points, points.numpy(), atol=1e-5)
        np.testing.assert_array_equal(found.stable, stable.numpy())
        for point in points:
            visits = ((previous - point).norm(dim=-1) < 0.2) & (regime == k)
            # measured within 0.2: 222, 180, 85 steps at (-2, 0), the saddle, (2, 0); 1221 at the focus
            assert int(visits.sum()) >= 50, (k, point, int(visits.sum()))


def _filter_round_numbers(data, seed: int) -> tuple[list, list]:
    """sigma_x and the log-evidence estimate after 0 and after 3 filter rounds of the initialization."""
    sigma_x, evidence = [], []
    for rounds in (0, 3):
        pyro.set_rng_seed(seed)
        model = SwitchingLowRankRNN(20, 2, 2, 20, seed=seed, proposal="posterior_moments")
        model.initialize_from_data(data.y, filter_rounds=rounds)
        sigma_x.append(model.module.latent_log_scale.exp().item())
        evidence.append(model.log_evidence(data.y, num_particles=64, seed=seed + 1).sum().item())
    return sigma_x, evidence


def measure_filter_rounds(seed: int) -> dict:
    """The filter-rounds test's numbers for seed ``seed`` (benchmarks/quality_spread.py)."""
    sigma_x, evidence = _filter_round_numbers(switching_lowrank_data(num_trials=20, num_steps=150, seed=0), seed)
    return {"sigma_x_0_rounds": sigma_x[0], "sigma_x_3_rounds": sigma_x[1], "evidence_gain": evidence[1] - evidence[0]}


def test_filter_rounds_of_the_initialization_take_the_readout_noise_out_of_sigma_x(teacher_data):
    """The PCA projections carry the readout noise (sd 0.1 per channel), so maps fit to them overstate the
    latent noise sigma_x (teacher: 0.05); refitting to the particle filter's means (``filter_rounds``)
    brings it to the teacher's and raises the log evidence. Measured: sigma_x 0.129 -> 0.053; log p(y)
    estimate (64 particles, 20 trials) 50890 -> 51500 nats, spread over three filter seeds 2 and 16 nats.
    Over seeds 0-4 with native and scalar CPU kernels (``python benchmarks/quality_spread.py
    tests/test_switching_lowrank.py --function measure_filter_rounds --threads 1 --kernels native
    default``): sigma_x 0.129-0.130 -> 0.053-0.054, gain 604-626 nats."""
    sigma_x, evidence = _filter_round_numbers(teacher_data, seed=0)
    assert sigma_x[0] > 0.1 and abs(sigma_x[1] - 0.05) < 0.01, sigma_x
    assert evidence[1] > evidence[0] + 100, evidence


def _aligned_fixed_points(model, data):
    """Every fixed point of every student state (no restriction on where), in the teacher's latent
    coordinates, keyed by the teacher's state (Hungarian matching of the Viterbi paths).

    The student's latent is identified only up to an invertible affine map. Its posterior latent means are
    a noisy affine image of the true latents, ``x_student = [x_true, 1] B + e``, so B is estimated by least
    squares in that direction (the noise is in the regressand: no attenuation) and student points ``p``
    map back as ``(p - B_1) B_x^{-1}``. (Regressing the other way shrinks every point towards the data mean
    by var(x) / (var(x) + var(e)), a bias of several hundredths at (±2, 0).)"""
    return fixed_points_in_reference(model, data.y, data.x, data.z)


def _fit_numbers(model, data) -> dict:
    """Accuracy; for each teacher point the distance to the nearest student point of the same stability;
    and the number of student points beyond the teacher's (anywhere in the plane)."""
    numbers = {"accuracy": state_accuracy(data.z, model.most_likely_states(data.y)), "extra_points": 0}
    names = {0: ("well_left", "saddle", "well_right"), 1: ("focus",)}
    for k, (points, stable) in _aligned_fixed_points(model, data).items():
        truth, truth_stable = (t.numpy() for t in data.teacher.known_fixed_points(k))
        numbers["extra_points"] += len(points) - len(truth)
        for name, point, kind in zip(names[k], truth, truth_stable):
            same_kind = points[stable == kind]
            numbers[name] = np.linalg.norm(same_kind - point, axis=1).min() if len(same_kind) else np.inf
    return numbers


def measure_collapsed(seed: int) -> dict:
    """The collapsed fit test's numbers for model and fit seed ``seed`` (benchmarks/quality_spread.py)."""
    data = switching_lowrank_data(num_trials=20, num_steps=150, seed=0)
    model = SwitchingLowRankRNN(20, 2, 2, 20, seed=seed).fit(data.y, "collapsed", num_steps=150, seed=seed)
    return _fit_numbers(model, data)


def measure_vsmc(seed: int) -> dict:
    """The VSMC fit test's numbers for model and fit seed ``seed`` (benchmarks/quality_spread.py)."""
    data = switching_lowrank_data(num_trials=20, num_steps=150, seed=0)
    model = SwitchingLowRankRNN(20, 2, 2, 20, seed=seed).fit(data.y, "vsmc", num_steps=5, num_particles=8, seed=seed)
    return _fit_numbers(model, data)


def test_collapsed_fit_recovers_the_states_and_every_fixed_point(teacher_data):
    """The collapsed fit (150 steps, CI-sized): the states (accuracy >= 0.94) and, for each teacher point, a student
    point of the same stability within 0.15 (the focus within 0.05).

    Bounds from the spread (``python benchmarks/quality_spread.py tests/test_switching_lowrank.py --function
    measure_collapsed --threads 1 --kernels native default``: model and fit seeds 0-4, native and scalar CPU
    kernels; 2 threads change nothing here, the module runs on one): accuracy 0.954-0.967; the nearest
    same-stability point 0.020-0.114 from a well, 0.058-0.118 from the saddle, <= 0.020 from the focus. Seed 0
    meets 0.1 for every point (0.029, 0.097, 0.086) but seeds 1-3 do not on every kernel: at 20 trials 0.1 is
    near the data's own floor (least squares on the TRUE latents and states puts the wells 0.05-0.09 off, and
    the saddle, with eigenvalues 1.2 and 0.8, amplifies an offset error of its map 5x), so 0.1 is a per-seed
    outcome, not a property of the method; the README's 60-trial fits meet it. The counts are not asserted:
    model seeds 3 and 4 have 2 extra points in state 0 (the units' random thresholds put a small region of
    extra points near the saddle), the others none. What a broken fit looks like, for scale: the wells are 2
    apart, a regime's map fit to the wrong states puts them >= 0.5 off."""
    model = SwitchingLowRankRNN(20, 2, 2, 20, seed=0).fit(teacher_data.y, "collapsed", num_steps=150, seed=0)
    numbers = _fit_numbers(model, teacher_data)
    assert numbers["accuracy"] >= 0.94, numbers
    assert max(numbers["well_left"], numbers["saddle"], numbers["well_right"]) <= 0.15, numbers
    assert numbers["focus"] <= 0.05, numbers


def test_vsmc_fit_keeps_the_states_and_finds_every_fixed_point(teacher_data):
    """VSMC, 5 steps x 8 particles from the data initialization (CI-sized, ~5 s): the states (accuracy >= 0.94) and,
    for each teacher point, a student point of the same stability nearby: the wells and the saddle within 0.2,
    the focus within 0.1.

    Bounds from the spread (``python benchmarks/quality_spread.py tests/test_switching_lowrank.py --function
    measure_vsmc --kernels native default``: model and fit seeds 0-4, native and scalar kernels; 2 threads
    gave the same numbers): accuracy 0.951-0.961; the nearest same-stability point 0.026-0.152 from a well,
    0.050-0.157 from the saddle, <= 0.035 from the focus. Five steps at lr 1e-2 are the fit's unsettled phase
    (Adam's first steps move every parameter by ~lr and throw the maps off before the fit settles), so the CI
    fit does NOT meet the 0.1 bar the longer recipe meets (150 steps at lr 3e-3 with the posterior-moments
    proposal on 60 trials: every point within 0.1 for seeds 0-5; README), and it does not keep the counts: the
    student has 2-3 extra points in state 0 (near the saddle, where several units' hyperplanes cross, or far
    from the data) for model seeds 3 and 4 already at the data initialization. What a broken fit looks like,
    for scale: the wells are 2 apart, a point lost to the wrong regime or a collapsed map is >= 0.5 off."""
    model = SwitchingLowRankRNN(20, 2, 2, 20, seed=0).fit(teacher_data.y, "vsmc", num_steps=5, num_particles=8, seed=0)
    numbers = _fit_numbers(model, teacher_data)
    assert model.method == "vsmc" and len(model.losses) == 5
    assert numbers["accuracy"] >= 0.94, numbers
    assert max(numbers["well_left"], numbers["saddle"], numbers["well_right"]) <= 0.2, numbers
    assert numbers["focus"] <= 0.1, numbers


# ----- API ---------------------------------------------------------------------------------------------
def test_api_save_load_sample_and_validation(tmp_path, teacher_data):
    model = SwitchingLowRankRNN(20, 2, 2, 8, seed=1).fit(teacher_data.y[:4, :30], "collapsed", num_steps=3, init_from_data=False)
    path = tmp_path / "switching.pt"
    model.save(path)
    with pytest.raises(FileExistsError):
        model.save(path)
    loaded = SwitchingLowRankRNN.load(path)
    torch.testing.assert_close(loaded.state_marginals(teacher_data.y[:2, :30]), model.state_marginals(teacher_data.y[:2, :30]))
    sample = loaded.sample(3, 10)
    assert sample.y.shape == (3, 10, 20) and sample.z.shape == (3, 10) and sample.h.shape == (3, 10, 2)
    assert len(loaded.fixed_points()) == 2 and loaded.orthogonal_basis(1).U.shape == (8, 2)
    with pytest.raises(ValueError, match="method"):
        model.fit(teacher_data.y, "em")
    with pytest.raises(ValueError, match="resampling_gradient"):
        model.fit(teacher_data.y, "vsmc", resampling_gradient="score")
    with pytest.raises(ValueError, match="resampling_gradient='stop_gradient' applies to method='vsmc'"):
        model.fit(teacher_data.y, "collapsed", resampling_gradient="stop_gradient")
    with pytest.raises(ValueError, match="init_filter_rounds"):
        model.fit(teacher_data.y, "vsmc", init_filter_rounds=-1)
    with pytest.raises(TypeError, match="filter_rounds"):
        model.initialize_from_data(teacher_data.y, filter_rounds=1.5)
    with pytest.raises(ValueError, match="obs_dim"):
        model.fit(teacher_data.y[..., :3])
    with pytest.raises(ValueError, match="num_units"):
        SwitchingLowRankRNN(20, 2, 2, 0)
    with pytest.raises(ValueError, match="proposal"):
        SwitchingLowRankRNN(20, 2, 2, 8, proposal="optimal")
    with pytest.raises(RuntimeError, match="fit"):
        SwitchingLowRankRNN(20, 2, 2, 8).most_likely_states(teacher_data.y)


def test_flow_field_figure_is_written_and_plots_the_map_displacement(tmp_path, teacher_data):
    model = SwitchingLowRankRNN(20, 2, 2, 8, seed=2)
    model.method = "collapsed"  # an unfit model still has a map to draw
    transform = model.orthogonal_basis(0).transform
    fig, ax = plt.subplots()
    field = plot_lowrank_flow_field(ax, model.module.dynamics.state_map(0), transform, model.fixed_points(0), trajectories=[teacher_data.x[0]], title="state 0")
    fig.savefig(tmp_path / "flow.png")
    plt.close(fig)
    assert (tmp_path / "flow.png").stat().st_size > 1000
    # the plotted field is f(z) - z on the grid, in the orthogonalized coordinates z' = T z
    grid = torch.stack(torch.meshgrid(field.a, field.b, indexing="xy"), -1)
    z = grid @ torch.linalg.inv(transform).T
    expected = (model.module.dynamics.state_map(0)(z) - z) @ transform.T
    torch.testing.assert_close(field.velocity, expected.detach(), atol=1e-5, rtol=1e-5)
    assert ax.get_xlabel() == "orthogonalized latent 1"


def test_affine_alignment_inverts_a_known_affine_map():
    """Student latents that are an exact affine image of the reference, plus regressand noise: the
    alignment recovers the map (least squares, unbiased with noise in the regressand) and maps points back."""
    generator = torch.Generator().manual_seed(0)
    truth = torch.randn(2000, 2, generator=generator, dtype=torch.float64)
    weight, offset = torch.tensor([[1.5, 0.3], [-0.4, 0.8]], dtype=torch.float64), torch.tensor([0.5, -1.0], dtype=torch.float64)
    student = truth @ weight + offset + 0.01 * torch.randn(2000, 2, generator=generator, dtype=torch.float64)
    alignment = affine_alignment(student, truth)
    # standard error of each coefficient ~ 0.01 / sqrt(2000) ~ 2e-4: 5e-3 is > 20 standard errors
    np.testing.assert_allclose(alignment.weight, weight.numpy(), atol=5e-3)
    np.testing.assert_allclose(alignment.offset, offset.numpy(), atol=5e-3)
    points = np.array([[2.0, 0.0], [0.0, 0.3]])
    np.testing.assert_allclose(alignment.to_reference(points @ weight.numpy() + offset.numpy()), points, atol=2e-2)
    with pytest.raises(ValueError, match="dimension"):
        affine_alignment(student, truth[:, :1])
