"""One per-step definition, everything derived: variants written in a few lines are checked by one call.

Ground truth: Pyro's generic enumeration (``TraceEnum_ELBO`` over ``stepwise_model``, a ``z_t`` site per step)
for the fast objective and its gradients; closed-form prior state marginals (init @ P^t) for ``Predictive``
draws of the stepwise program; the exact smoothed marginals of the forward-backward algorithm for
``infer_discrete`` state draws.
"""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Predictive, config_enumerate, infer_discrete
from torch import nn

from pyro_neurodyn.distributions import DiagonalNormal, StateComponent, switching_posterior
from pyro_neurodyn.models import (
    RSLDS,
    SLDS,
    ModelCheckError,
    SRNNModel,
    SwitchingLowRankModel,
    SwitchingStepDefinition,
    check_model,
)

B, T, D, K, P, M = 3, 7, 4, 3, 2, 2


# ----- three variants, each a few lines: per-state noise, Student-t observations, cue-gated switching -----
class PerStateNoiseSRNN(SRNNModel):
    """Each state k has its own latent noise sigma_k."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.state_log_scale = nn.Parameter(torch.linspace(-1.0, 0.0, self.num_states).unsqueeze(-1))  # (K, 1)

    def latent_step(self, h_prev, u=None):
        return DiagonalNormal(self.dynamics(h_prev, u), self.state_log_scale.exp())


class StudentTSRNN(SRNNModel):
    """Heavy-tailed observations: y_t ~ StudentT(nu, C h_t + d, sigma)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.log_df = nn.Parameter(torch.tensor(1.0))

    def observation(self, h, u=None):
        return dist.StudentT(2.0 + self.log_df.exp(), self.emission.mean(h), self.emission.log_scale.exp()).to_event(1)


class CueGatedSRNN(SRNNModel):
    """A cue u_t[0] > 0 opens switching; the first cue also sets the initial state."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, input_dim=M, **kwargs)
        self.gate = nn.Parameter(torch.full((self.num_states, self.num_states), 2.0) - 6.0 * torch.eye(self.num_states))
        self.initial_weight = nn.Parameter(torch.randn(self.num_states))

    def initial_logits(self, u_first=None):
        return self.init_logits + u_first[..., :1] * self.initial_weight

    def transition_logits(self, h_prev, u=None):
        return 3.0 * torch.eye(self.num_states) + u[..., :1, None] * self.gate  # (..., K, K)


def float64_data(observation="gaussian", inputs=False):
    torch.manual_seed(0)
    y = torch.randn(B, T, D, dtype=torch.float64)
    if observation == "poisson":
        y = torch.poisson(torch.full((B, T, D), 2.0, dtype=torch.float64))
    u = torch.randn(B, T, M, dtype=torch.float64) if inputs else None
    return y, u


SHIPPED = {
    "srnn-recurrent": (lambda: SRNNModel(K, P, D), {}),
    "srnn-input-poisson-mlp": (lambda: SRNNModel(K, P, D, input_dim=M, transitions="input", observation="poisson", emission="mlp"),
                               {"observation": "poisson", "inputs": True}),  # fmt: skip
    "srnn-mlp-dynamics-inputs": (lambda: SRNNModel(K, P, D, input_dim=M, dynamics="mlp", dynamics_hidden=5), {"inputs": True}),
    "slds": (lambda: SLDS(K, P, D), {}),
    "rslds": (lambda: RSLDS(K, P, D), {}),
    "switching-lowrank": (lambda: SwitchingLowRankModel(K, P, 8, D, transitions="recurrent"), {}),
}
VARIANTS = {
    "per-state-noise": (lambda: PerStateNoiseSRNN(K, P, D), {}),
    "student-t": (lambda: StudentTSRNN(K, P, D), {}),
    "cue-gated": (lambda: CueGatedSRNN(K, P, D), {"inputs": True}),
}


@pytest.mark.parametrize("name", list(SHIPPED) + list(VARIANTS))
def test_check_model_passes_on_every_shipped_model_and_variant(name):
    build, data = {**SHIPPED, **VARIANTS}[name]
    pyro.clear_param_store()
    torch.manual_seed(1)
    model = build().double()
    assert isinstance(model, SwitchingStepDefinition)
    y, u = float64_data(**data)
    result = check_model(model, y, u)
    assert result.passed and result.elbo_gap < 1e-10 and result.gradient_gap < 1e-8, result
    assert result.worst_parameter  # every model has parameters with a gradient


class TransposedFastPath(SRNNModel):
    """A variant whose hand-written fast path transposes the transition matrix: the bug check_model exists for."""

    def latent_factors(self, h, u=None, lengths=None):
        factors = super().latent_factors(h, u, lengths)
        return factors._replace(trans_logits=factors.trans_logits.transpose(-1, -2))


def test_check_model_catches_a_fast_path_that_disagrees_with_the_definition():
    pyro.clear_param_store()
    torch.manual_seed(1)
    model = TransposedFastPath(K, P, D).double()
    y, _ = float64_data()
    with pytest.raises(ModelCheckError, match="fast ELBO .* vs enumerated"):
        check_model(model, y)
    result = check_model(model, y, raise_on_failure=False)
    assert not result.passed and result.elbo_gap > 1e-6


def test_check_model_names_bad_arguments():
    model = SRNNModel(K, P, D).double()
    with pytest.raises(TypeError, match="model must be a SwitchingStateSpaceModel"):
        check_model(object(), torch.zeros(B, T, D))
    with pytest.raises(ValueError, match="y"):
        check_model(model, torch.full((B, T, D), float("nan")))


def test_predictive_on_the_stepwise_program_draws_states_with_the_prior_marginals():
    """Stationary switching: p(z_t) = softmax(pi) @ softmax(L)^t in closed form. 6000 draws: each frequency has
    standard error <= 0.0065; the bound is 5 standard errors of each entry (21 entries)."""
    pyro.clear_param_store()
    torch.manual_seed(2)
    model = SLDS(K, P, D).double()
    with torch.no_grad():
        model.init_logits.copy_(torch.tensor([1.5, 0.0, -1.0]))
        model.transitions.logits.copy_(torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.0, 0.0], [-1.0, 1.0, 1.5]]))
    num_draws, num_steps = 6000, 7
    draws = Predictive(model.stepwise_model, num_samples=num_draws, parallel=True)(num_trials=1, num_steps=num_steps)
    z = torch.stack([draws[f"z_{t}"].reshape(-1) for t in range(num_steps)], -1)  # (draws, T)
    assert draws["y_3"].shape[-1] == D and draws["h_3"].shape[-1] == P
    marginal = model.init_logits.softmax(-1)
    transition = model.transitions.logits.softmax(-1)
    for t in range(num_steps):
        frequency = torch.bincount(z[:, t], minlength=K).double() / num_draws
        standard_error = (marginal * (1 - marginal) / num_draws).sqrt()
        assert ((frequency - marginal).abs() <= 5 * standard_error + 1e-12).all(), (t, frequency, marginal)
        marginal = marginal @ transition


def test_infer_discrete_on_the_stepwise_program_matches_the_exact_smoothed_marginals():
    """Posterior state draws by Pyro's generic infer_discrete (FFBS by variable elimination) given h and y,
    against forward-backward on the fast factors. 3000 copies of each trial; 5 standard errors."""
    pyro.clear_param_store()
    torch.manual_seed(3)
    model = SRNNModel(K, P, D).double()
    copies = 3000
    y, _ = float64_data()
    h = torch.randn(B, T, P, dtype=torch.float64) * 0.7
    exact = switching_posterior(*model.latent_factors(h)).marginals.detach()  # (B, T, K)
    program = infer_discrete(config_enumerate(model.stepwise_model), first_available_dim=-2, temperature=1)
    trace = pyro.poutine.trace(program).get_trace(y.repeat(copies, 1, 1), None, h.repeat(copies, 1, 1))
    z = torch.stack([trace.nodes[f"z_{t}"]["value"] for t in range(T)], -1).reshape(copies, B, T)
    frequency = torch.nn.functional.one_hot(z, K).double().mean(0)
    standard_error = (exact * (1 - exact) / copies).sqrt()
    assert ((frequency - exact).abs() <= 5 * standard_error + 1e-9).all()


@pytest.mark.parametrize("name", list(VARIANTS))
def test_a_variant_samples_and_simulates_from_its_own_definition(name):
    """Ancestral sampling runs through the overridden step methods (no separate simulation code to update)."""
    build, data = VARIANTS[name]
    pyro.clear_param_store()
    torch.manual_seed(4)
    model = build()
    u = torch.zeros(5, 30, M) if data.get("inputs") else None
    sample = model.sample(5, 30, u)
    assert sample.y.shape == (5, 30, D) and sample.h.shape == (5, 30, P) and sample.z.shape == (5, 30)


def test_state_component_scores_and_draws_the_selected_component():
    torch.manual_seed(5)
    loc, scale = torch.randn(4, K, P, dtype=torch.float64), torch.rand(K, 1, dtype=torch.float64) + 0.5
    z = torch.tensor([0, 2, 1, 2])
    x = torch.randn(4, P, dtype=torch.float64)
    rows = torch.arange(4)
    expected = dist.Normal(loc[rows, z], scale[z]).to_event(1).log_prob(x)
    torch.testing.assert_close(StateComponent(DiagonalNormal(loc, scale), z).log_prob(x), expected)
    student = dist.StudentT(3.0, loc, scale).to_event(1)
    torch.testing.assert_close(StateComponent(student, z).log_prob(x), dist.StudentT(3.0, loc[rows, z], scale[z]).to_event(1).log_prob(x))
    draws = StateComponent(DiagonalNormal(loc, scale), z).sample((40000,))  # mean within 5 standard errors
    assert ((draws.mean(0) - loc[rows, z]).abs() <= 5 * scale[z] / 200).all()
    assert StateComponent(student, z).sample((2,)).shape == (2, 4, P)
