"""The exact switching core against independent ground truth.

Ground truths: brute force over all K^T paths; Pyro's generic enumeration (pyro.markov +
TraceEnum_ELBO); pyro.distributions.DiscreteHMM; a float64 sequential forward pass in numpy; autograd
gradcheck. Exact algorithms are compared at 1e-5 (float64 round-off is ~1e-15; the slack covers the
float32 cases).
"""

import itertools

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import TraceEnum_ELBO, config_enumerate
from pyro.ops.indexing import Vindex

from pyro_neurodyn.distributions import switching_filter, switching_log_marginal, switching_posterior, switching_viterbi

K, T, B = 3, 6, 2


def random_chain(batch=(B,), num_steps=T, num_states=K, dtype=torch.float64, seed=0, scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    init = torch.randn(batch + (num_states,), generator=gen, dtype=dtype)
    trans = scale * torch.randn(batch + (num_steps - 1, num_states, num_states), generator=gen, dtype=dtype)
    emission = scale * torch.randn(batch + (num_steps, num_states), generator=gen, dtype=dtype)
    return init, trans, emission


def brute_force(init, trans, emission):
    """log p(z, obs) of every path, shape (B, K^T), and the paths (K^T, T); trans must be (B, T-1, K, K)."""
    num_steps, num_states = emission.shape[-2:]
    paths = torch.tensor(list(itertools.product(range(num_states), repeat=num_steps)))
    log_init, log_trans = init.log_softmax(-1), trans.log_softmax(-1)
    joint = log_init[:, paths[:, 0]] + emission[:, 0, paths[:, 0]]
    for t in range(1, num_steps):
        joint = joint + log_trans[:, t - 1, paths[:, t - 1], paths[:, t]] + emission[:, t, paths[:, t]]
    return joint, paths


def brute_posterior(init, trans, emission):
    joint, paths = brute_force(init, trans, emission)
    weights = (joint - joint.logsumexp(-1, keepdim=True)).exp()  # (B, paths)
    onehot = torch.nn.functional.one_hot(paths, emission.shape[-1]).to(weights)  # (paths, T, K)
    marginals = torch.einsum("bp,ptk->btk", weights, onehot)
    pairwise = torch.einsum("bp,pti,ptj->btij", weights, onehot[:, :-1], onehot[:, 1:])
    return marginals, pairwise


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_log_marginal_matches_brute_force(dtype, scale):
    init, trans, emission = random_chain(dtype=dtype, scale=scale)
    joint, _ = brute_force(init.double(), trans.double(), emission.double())
    expected = joint.logsumexp(-1)
    actual = switching_log_marginal(init, trans, emission)
    assert actual.shape == (B,)
    assert actual.dtype == dtype
    torch.testing.assert_close(actual.double(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("num_steps", [1, 2, 5, 6, 7])
def test_posterior_matches_brute_force(num_steps):
    init, trans, emission = random_chain(num_steps=num_steps)
    marginals, pairwise = brute_posterior(init, trans, emission)
    post = switching_posterior(init, trans, emission)
    assert post.marginals.shape == (B, num_steps, K)
    assert post.pairwise.shape == (B, num_steps - 1, K, K)
    torch.testing.assert_close(post.marginals, marginals, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(post.pairwise, pairwise, rtol=1e-5, atol=1e-5)


def test_log_space_posterior_and_its_gradient_stay_finite():
    """log_space=True equals the log of the brute-force posterior, and differentiating a log-probability
    of a state that is nearly impossible (marginal ~ e^-200) gives finite gradients."""
    init, trans, emission = random_chain()
    marginals, pairwise = brute_posterior(init, trans, emission)
    post = switching_posterior(init, trans, emission, log_space=True)
    torch.testing.assert_close(post.marginals, marginals.log(), rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(post.pairwise, pairwise.log(), rtol=1e-7, atol=1e-7)
    emission = emission.clone()
    emission[:, :, 0] -= 200.0  # state 0 is nearly impossible everywhere
    emission.requires_grad_()
    log_marginals = switching_posterior(init, trans, emission, log_space=True).marginals
    (grad,) = torch.autograd.grad(log_marginals[..., 0].sum(), emission)
    assert bool(torch.isfinite(grad).all())


def test_filter_matches_brute_force_on_every_prefix():
    init, trans, emission = random_chain(num_steps=6)
    filtered = switching_filter(init, trans, emission)
    assert filtered.shape == (B, 6, K)
    for t in range(6):
        expected = brute_posterior(init, trans[:, :t], emission[:, : t + 1])[0][:, -1]
        torch.testing.assert_close(filtered[:, t], expected, rtol=1e-5, atol=1e-5)


def test_gradient_of_log_marginal_is_posterior_marginals():
    init, trans, emission = random_chain()
    emission.requires_grad_()
    (grad,) = torch.autograd.grad(switching_log_marginal(init, trans, emission).sum(), emission)
    torch.testing.assert_close(grad, brute_posterior(init, trans, emission.detach())[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("num_steps", [1, 2, 6])
def test_viterbi_matches_brute_force(num_steps):
    init, trans, emission = random_chain(num_steps=num_steps, seed=3)
    joint, paths = brute_force(init, trans, emission)
    path = switching_viterbi(init, trans, emission)
    assert path.states.dtype == torch.int64 and path.states.shape == (B, num_steps)
    torch.testing.assert_close(path.states, paths[joint.argmax(-1)])
    torch.testing.assert_close(path.log_joint, joint.max(-1).values, rtol=1e-5, atol=1e-5)


def test_viterbi_with_ties_returns_a_valid_optimal_path():
    """All paths equally likely: any path is optimal, but it must be one path with the optimal score."""
    init, trans, emission = torch.zeros(B, K), torch.zeros(B, T - 1, K, K), torch.zeros(B, T, K)
    path = switching_viterbi(init, trans, emission)
    joint, paths = brute_force(init, trans, emission)
    index = (paths.unsqueeze(0) == path.states.unsqueeze(1)).all(-1).float().argmax(-1)
    torch.testing.assert_close(joint.gather(1, index.unsqueeze(1)).squeeze(1), joint.max(-1).values)
    torch.testing.assert_close(path.log_joint, joint.max(-1).values)


def test_broadcasting_and_homogeneous_transitions():
    """A (K, K) transition matrix and batch dims that broadcast give the same answer as explicit tensors."""
    gen = torch.Generator().manual_seed(1)
    init = torch.randn(K, generator=gen, dtype=torch.float64)
    trans = torch.randn(K, K, generator=gen, dtype=torch.float64)
    emission = torch.randn(4, 1, T, K, generator=gen, dtype=torch.float64)
    batch = (4, 1)
    full = (init.expand(batch + (K,)), trans.expand(batch + (T - 1, K, K)), emission)
    for got, want in [
        (switching_log_marginal(init, trans, emission), switching_log_marginal(*full)),
        (switching_posterior(init, trans, emission).marginals, switching_posterior(*full).marginals),
        (switching_viterbi(init, trans, emission).states, switching_viterbi(*full).states),
    ]:
        torch.testing.assert_close(got, want)
    joint, _ = brute_force(*(x.reshape((4,) + x.shape[2:]) for x in full))
    torch.testing.assert_close(switching_log_marginal(init, trans, emission).reshape(4), joint.logsumexp(-1))


def test_gradcheck_log_marginal_and_posterior():
    init, trans, emission = random_chain(batch=(2,), num_steps=5)
    for x in (init, trans, emission):
        x.requires_grad_()
    assert torch.autograd.gradcheck(switching_log_marginal, (init, trans, emission))
    homogeneous = torch.randn(K, K, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(switching_log_marginal, (init, homogeneous, emission))
    weights = torch.randn(2, 5, K, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda *args: (switching_posterior(*args).marginals * weights).sum(), (init, trans, emission)
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_exact_where_discrete_hmm_underflows(dtype):
    """Transition log-probabilities spanning 1000 nats: Pyro's shifted matmul loses mass, ours does not.

    exp(-1000) underflows in both float32 and float64, so the exact fallback of the scan runs in both.
    Tolerance: log-potentials here are ~3000 in size, which float32 holds to ~eps * 3000 ~ 4e-4 (that
    rounding, not the algorithm, bounds the float32 agreement); float64 must agree to ~1e-9.
    """
    init = torch.zeros(1, 2, dtype=dtype)
    trans = torch.tensor([[0.0, -1000.0], [-1000.0, 0.0]], dtype=dtype).expand(1, 3, 2, 2)
    emission = torch.tensor([[0.0, -1000.0], [-1000.0, 0.0], [0.0, -1000.0], [-1000.0, 0.0]], dtype=dtype).unsqueeze(0)
    exact = [x.double() for x in (init, trans, emission)]
    joint, _ = brute_force(*exact)
    tol = 1e-9 if dtype == torch.float64 else 4 * 3000 * torch.finfo(torch.float32).eps
    torch.testing.assert_close(switching_log_marginal(init, trans, emission).double(), joint.logsumexp(-1), rtol=0, atol=tol)
    torch.testing.assert_close(switching_posterior(init, trans, emission).marginals.double(), brute_posterior(*exact)[0], rtol=0, atol=tol)
    hmm = dist.DiscreteHMM(torch.zeros(2), torch.cat([torch.zeros(1, 1, 2, 2), trans.float()], -3), dist.Unit(log_factor=emission.float()))
    assert hmm.log_prob(torch.zeros(1, 4, 0)).item() < joint.logsumexp(-1).item() - 0.5  # what we improve on


def test_impossible_states_give_finite_gradients():
    init, trans, emission = random_chain()
    emission[:, 2, 1] = -float("inf")  # state 1 is impossible at t = 2
    trans[:, 3, 0, 2] = -float("inf")  # 0 -> 2 is impossible at t = 3
    joint, _ = brute_force(init, trans, emission)
    init.requires_grad_(), trans.requires_grad_(), emission.requires_grad_()
    value = switching_log_marginal(init, trans, emission)
    torch.testing.assert_close(value, joint.logsumexp(-1))
    grads = torch.autograd.grad(value.sum(), (init, trans, emission))
    assert all(bool(torch.isfinite(g).all()) for g in grads)


def test_matches_discrete_hmm():
    """DiscreteHMM starts one step earlier (its initial state precedes the first observation): give its
    first transition rows equal to our initial distribution."""
    init, trans, emission = random_chain(batch=(3,), num_steps=50)
    first = init.unsqueeze(-2).unsqueeze(-3).expand(3, 1, K, K)
    hmm = dist.DiscreteHMM(torch.zeros(K, dtype=init.dtype), torch.cat([first, trans], -3), dist.Unit(log_factor=emission))
    torch.testing.assert_close(switching_log_marginal(init, trans, emission), hmm.log_prob(torch.zeros(3, 50, 0, dtype=init.dtype)))


def test_matches_generic_pyro_enumeration():
    """The same chain as a Pyro program (pyro.markov + parallel enumeration), scored by TraceEnum_ELBO."""
    init, trans, emission = random_chain(batch=(3,), num_steps=7)
    batch = torch.arange(3)

    @config_enumerate
    def model():
        with pyro.plate("trials", 3, dim=-1):
            z = pyro.sample("z_0", dist.Categorical(logits=init))
            pyro.factor("e_0", Vindex(emission)[batch, 0, z])
            for t in pyro.markov(range(1, 7)):
                z = pyro.sample(f"z_{t}", dist.Categorical(logits=Vindex(trans)[batch, t - 1, z]))
                pyro.factor(f"e_{t}", Vindex(emission)[batch, t, z])

    def guide():
        pass

    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    expected = -elbo.loss(model, guide)
    torch.testing.assert_close(switching_log_marginal(init, trans, emission).sum().item(), expected, rtol=1e-8, atol=1e-8)


def test_long_sequence_is_finite_and_accurate():
    """T = 100000 in float32 stays finite and agrees with a float64 sequential scaled forward pass."""
    gen = torch.Generator().manual_seed(0)
    init = torch.randn(3, generator=gen)
    trans = 3 * torch.randn(3, 3, generator=gen)
    emission = 5 * torch.randn(1, 100_000, 3, generator=gen)
    value = switching_log_marginal(init, trans, emission)
    assert bool(torch.isfinite(value).all())
    log_trans = trans.double().log_softmax(-1).numpy()
    em = emission[0].double().numpy()
    alpha = init.double().log_softmax(-1).numpy() + em[0]
    transition = np.exp(log_trans)
    for t in range(1, em.shape[0]):
        shift = alpha.max()
        alpha = np.log(np.exp(alpha - shift) @ transition) + shift + em[t]
    expected = np.logaddexp.reduce(alpha)
    # float32 holds |log Z| ~ 1e5 to ~1e-2 absolutely; the tree sums pairwise, so the error stays there
    assert abs(value.item() - expected) < 1e-6 * abs(expected) + 1e-2
    states = switching_viterbi(init, trans, emission).states
    assert states.shape == (1, 100_000)


@pytest.mark.parametrize(
    "args, message",
    [
        ((torch.zeros(3), torch.zeros(3, 3), torch.zeros(5)), "emission_logp must have at least 2 dims"),
        ((torch.zeros(2), torch.zeros(3, 3), torch.zeros(5, 3)), "init_logits has 2 states"),
        ((torch.zeros(3), torch.zeros(3, 2), torch.zeros(5, 3)), "trans_logits must end in"),
        ((torch.zeros(3), torch.zeros(3, 3, 3), torch.zeros(5, 3)), "time dim"),
        ((torch.zeros(2, 3), torch.zeros(3, 3), torch.zeros(4, 5, 3)), "do not broadcast"),
        ((torch.zeros(3), torch.zeros(3, 3), torch.zeros(5, 3, dtype=torch.long)), "floating point"),
    ],
)
def test_shape_errors_name_the_argument(args, message):
    for fn in (switching_log_marginal, switching_posterior, switching_viterbi):
        with pytest.raises((ValueError, TypeError), match=message):
            fn(*args)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_float32_marginals_of_a_long_chain_with_large_scores_match_float64(seed):
    """T = 1000 steps of emission scores -1000 +- 300 nats (an SRNN's log p(h_t | h_{t-1}, z) far from its maps):
    the float32 smoothed log marginals, their gradients (the SRNN's label term), the filtered marginals, Viterbi
    and log Z against the same computation in float64. Two shifts keep float32's digits where the marginals are
    decided: each step's scores by their maximum over the states, and each matrix of the scan tree by its maximum
    entry. Measured, seeds 0-2 (log marginals / gradients / filtered): with neither, 0.16-0.17 / 0.16-0.25 / 0.027-0.030;
    with the score shift only, 3.4-3.8e-4 / 2.1-6.5e-4 / 5.6-5.8e-5; with both, 2.7-3.1e-4 / 3.2-4.8e-5 / 4.5-5.2e-7.
    The log marginals' error is then the scores' own rounding (300 x 6e-8 per step over a path). Bounds: 1e-3,
    1.5e-4 and 5e-6, each at least 3x above the measured and below the runs without the tree's shift (the
    gradients' on seeds 1-2, the filter's on all three)."""
    torch.manual_seed(seed)
    init, trans, emission = torch.randn(4, 3), torch.randn(4, 999, 3, 3), -1000 + 300 * torch.randn(4, 1000, 3)
    labels = torch.randint(3, (4, 1000))
    results = []
    for dtype in (torch.float32, torch.float64):
        t, e = trans.to(dtype).requires_grad_(), emission.to(dtype).requires_grad_()
        log_marginals = switching_posterior(init.to(dtype), t, e, log_space=True).marginals
        gradients = torch.autograd.grad(log_marginals.gather(-1, labels.unsqueeze(-1)).sum(), (t, e))
        filtered = switching_filter(init.to(dtype), t.detach(), e.detach())
        results.append([log_marginals.detach(), *gradients, filtered, switching_log_marginal(init.to(dtype), t.detach(), e.detach())])
        results[-1].append(switching_viterbi(init.to(dtype), t.detach(), e.detach()).states)
    *single, single_path = results[0]
    *double, double_path = results[1]
    bounds = {"log marginals": 1e-3, "gradient (transitions)": 1.5e-4, "gradient (emissions)": 1.5e-4, "filtered": 5e-6}
    for (name, bound), x, y in zip(bounds.items(), single, double):
        assert float((x.double() - y).abs().max()) < bound, name
    torch.testing.assert_close(single[-1].double(), double[-1], rtol=1e-6, atol=0)  # log Z ~ -4e6: float32 relative precision
    assert float((single_path == double_path).double().mean()) > 0.999
