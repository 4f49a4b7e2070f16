"""The fast SRNN ELBO equals the same model written generically: pyro.markov + enumeration of z.

For one guide sample h, the fast path scores h with log sum_z p(z, h) (a parallel scan). The generic
program below samples every z_t as an enumerated site and every h_t as an observed site, and
TraceEnum_ELBO sums z out by variable elimination. Both must give the same ELBO (1e-4 relative, the
issue's bar; in float64 they agree to ~1e-12) and the same gradients.
"""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO, config_enumerate
from pyro.ops.indexing import Vindex

from pyro_neurodyn.models.srnn import SRNNModel

B, T, D, K, P, M = 3, 8, 4, 3, 2, 2


def generic_program(module, y, h, u):
    """The SRNN with z sampled and enumerated step by step (the slow, obviously-correct form)."""
    sigma_h = module.latent_log_scale.exp()
    u_next = (lambda t: None) if u is None else (lambda t: u[:, t])

    @config_enumerate
    def model():
        with pyro.plate("trials", y.shape[0], dim=-1):
            z = pyro.sample("z_0", dist.Categorical(logits=module.init_logits))
            pyro.sample("h_0", dist.Normal(Vindex(module.init_loc)[..., z, :], module.init_log_scale.exp()).to_event(1), obs=h[:, 0])
            for t in pyro.markov(range(1, y.shape[1])):
                logits = module.transitions(h[:, t - 1], u_next(t)).expand(y.shape[0], K, K)
                z = pyro.sample(f"z_{t}", dist.Categorical(logits=Vindex(logits)[torch.arange(y.shape[0]), z]))
                means = module.dynamics(h[:, t - 1], u_next(t))  # (B, K, P)
                pyro.sample(f"h_{t}", dist.Normal(Vindex(means)[torch.arange(y.shape[0]), z], sigma_h).to_event(1), obs=h[:, t])
            pyro.sample("y", dist.Independent(module.emission(h), 2), obs=y)

    return model


def fast_and_generic_elbo(module, y, u):
    guide_trace = poutine.trace(module.guide).get_trace(y, u)
    h = guide_trace.nodes["h"]["value"]
    model_trace = poutine.trace(poutine.replay(module.model, trace=guide_trace)).get_trace(y, u)
    log_q = guide_trace.log_prob_sum()
    fast = model_trace.log_prob_sum() - log_q
    generic = -TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(generic_program(module, y, h, u), lambda: None) - log_q
    return fast, generic


@pytest.mark.parametrize(
    "options",
    [
        {"transitions": "recurrent"},
        {"transitions": "stationary"},
        {"transitions": "input", "input_dim": M},
        {"transitions": "recurrent", "input_dim": M, "observation": "poisson", "emission": "mlp"},
    ],
)
def test_fast_elbo_equals_generic_enumeration(options):
    torch.manual_seed(0)
    pyro.clear_param_store()
    module = SRNNModel(K, P, D, **options).double()
    y = torch.randn(B, T, D, dtype=torch.float64)
    if options.get("observation") == "poisson":
        y = torch.poisson(torch.full((B, T, D), 2.0, dtype=torch.float64))
    u = torch.randn(B, T, M, dtype=torch.float64) if options.get("input_dim") else None
    fast, generic = fast_and_generic_elbo(module, y, u)
    assert abs(fast.item() - generic.item()) <= 1e-4 * abs(generic.item())
    torch.testing.assert_close(fast, generic, rtol=1e-10, atol=1e-8)  # float64: the two agree to round-off
    params = [p for name, p in module.named_parameters() if not name.startswith("filter_encoder")]
    fast_grads = torch.autograd.grad(fast, params, retain_graph=True, allow_unused=True)
    generic_grads = torch.autograd.grad(generic, params, allow_unused=True)
    for (name, _), a, b in zip([(n, p) for n, p in module.named_parameters() if not n.startswith("filter_encoder")], fast_grads, generic_grads):
        if a is None and b is None:
            continue
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-8, msg=f"gradient of {name} differs")
