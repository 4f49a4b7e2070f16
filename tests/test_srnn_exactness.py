"""The fast SRNN ELBO equals the same model written generically: pyro.markov + enumeration of z.

For one guide sample h, the fast path scores h with log sum_z p(z, h) (a parallel scan). The generic
program (models/enumerated_reference.py) samples every z_t as an enumerated site and every h_t as an
observed site, and
TraceEnum_ELBO sums z out by variable elimination. Both must give the same ELBO (1e-4 relative, the
issue's bar; in float64 they agree to ~1e-12) and the same gradients.
"""

import pyro
import pytest
import torch

from pyro_neurodyn.dynamics import RNNBank
from pyro_neurodyn.models.model_check import elbo_fast_and_enumerated
from pyro_neurodyn.models.srnn import SRNNModel
from pyro_neurodyn.distributions import gaussian_log_density

B, T, D, K, P, M = 3, 8, 4, 3, 2, 2


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
    fast, generic = elbo_fast_and_enumerated(module, y, u)
    assert abs(fast.item() - generic.item()) <= 1e-4 * abs(generic.item())
    torch.testing.assert_close(fast, generic, rtol=1e-10, atol=1e-8)  # float64: the two agree to round-off
    params = [p for name, p in module.named_parameters() if not name.startswith("filter_encoder")]
    fast_grads = torch.autograd.grad(fast, params, retain_graph=True, allow_unused=True)
    generic_grads = torch.autograd.grad(generic, params, allow_unused=True)
    for (name, _), a, b in zip([(n, p) for n, p in module.named_parameters() if not n.startswith("filter_encoder")], fast_grads, generic_grads):
        if a is None and b is None:
            continue
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-8, msg=f"gradient of {name} differs")


@pytest.mark.parametrize("scale_shape", [(), (1,), (4,), (3, 1), (3, 4)])
def test_gaussian_log_density_equals_torch_normal(scale_shape):
    """The switching models' density of K candidates against torch's Normal, for every scale layout they
    use (scalar, per-dimension, per-state, per-state-and-dimension)."""
    torch.manual_seed(0)
    x, mean = torch.randn(5, 1, 4, dtype=torch.float64), torch.randn(5, 3, 4, dtype=torch.float64)
    scale = torch.rand(scale_shape, dtype=torch.float64) + 0.5
    expected = torch.distributions.Normal(mean, scale).log_prob(x).sum(-1)
    torch.testing.assert_close(gaussian_log_density(x, mean, scale), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nonlinearity", ["tanh", "identity"])
def test_rnn_bank_evaluates_every_state_map(nonlinearity):
    """All K maps phi(W_k h + U_k u + b_k) from one call, against each map written out on its own."""
    torch.manual_seed(0)
    bank = RNNBank(3, 4, input_dim=2, nonlinearity=nonlinearity).double()
    h, u = torch.randn(5, 7, 4, dtype=torch.float64), torch.randn(5, 7, 2, dtype=torch.float64)
    phi = torch.tanh if nonlinearity == "tanh" else (lambda x: x)
    expected = torch.stack([phi(h @ bank.weight[k].T + u @ bank.input_weight[k].T + bank.bias[k]) for k in range(3)], -2)
    torch.testing.assert_close(bank(h, u), expected, rtol=1e-12, atol=1e-12)
