"""LinearGaussianPath and the parallel linear recurrence against sequential loops and closed forms."""

import torch
from torch.distributions import Normal

from pyro_neurodyn.distributions import LinearGaussianPath, linear_recurrence, time_blocked_normal


def sequential_recurrence(coef, inputs):
    state, out = torch.zeros_like(inputs[..., 0, :]), []
    for t in range(inputs.shape[-2]):
        state = coef[..., t, :] * state + inputs[..., t, :]
        out.append(state)
    return torch.stack(out, -2)


def test_linear_recurrence_matches_loop_for_every_length():
    gen = torch.Generator().manual_seed(0)
    for steps in (1, 2, 3, 7, 8, 33, 1000):
        coef, inputs = torch.randn(2, steps, 4, generator=gen, dtype=torch.float64), torch.randn(2, steps, 4, generator=gen, dtype=torch.float64)
        torch.testing.assert_close(linear_recurrence(coef, inputs), sequential_recurrence(coef, inputs))


def test_linear_recurrence_gradients_match_autograd_through_the_loop():
    # the hand-written backward (the recurrence run backwards) against autograd through the plain loop,
    # for lengths around the block size (perfect squares and not), broadcast coef and a zero coef
    gen = torch.Generator().manual_seed(2)
    for steps in (1, 2, 5, 9, 10, 26):
        coef = torch.tanh(torch.randn(1, steps, 3, generator=gen, dtype=torch.float64))
        coef[0, steps // 2, 0] = 0.0
        inputs = torch.randn(4, 2, steps, 3, generator=gen, dtype=torch.float64)
        weights = torch.randn(4, 2, steps, 3, generator=gen, dtype=torch.float64)
        grads = []
        for solve in (linear_recurrence, sequential_recurrence):
            leaves = coef.clone().requires_grad_(), inputs.clone().requires_grad_()
            grads.append(torch.autograd.grad((solve(*leaves) * weights).sum(), leaves))
        for fast, reference in zip(*grads):
            torch.testing.assert_close(fast, reference)
    leaves = (torch.tanh(torch.randn(2, 7, 2, dtype=torch.float64)).requires_grad_(), torch.randn(3, 2, 7, 2, dtype=torch.float64, requires_grad=True))
    assert torch.autograd.gradcheck(linear_recurrence, leaves)


def test_rsample_log_prob_and_mean():
    gen = torch.Generator().manual_seed(1)
    coef = torch.tanh(torch.randn(3, 20, 2, generator=gen, dtype=torch.float64))
    loc = torch.randn(3, 20, 2, generator=gen, dtype=torch.float64)
    scale = torch.rand(3, 20, 2, generator=gen, dtype=torch.float64) + 0.1
    path = LinearGaussianPath(coef, loc, scale)
    assert path.batch_shape == (3,) and path.event_shape == (20, 2)
    torch.manual_seed(0)
    h = path.rsample((5,))
    torch.manual_seed(0)  # the noise: time blocks from a generator seeded by one draw of the global RNG
    generator = torch.Generator().manual_seed(int(torch.randint(2**63 - 1, ())))
    noise = time_blocked_normal((5, 3, 20, 2), dtype=torch.float64, generator=generator)
    torch.testing.assert_close(h, sequential_recurrence(coef, loc + scale * noise))
    torch.testing.assert_close(path.from_noise(noise), h, rtol=0, atol=0)
    # log q(h) = sum_t log N(h_t; coef_t h_{t-1} + loc_t, scale_t), h_0 = 0, written out step by step
    previous = torch.cat([torch.zeros_like(h[..., :1, :]), h[..., :-1, :]], -2)
    expected = Normal(coef * previous + loc, scale).log_prob(h).sum((-2, -1))
    torch.testing.assert_close(path.log_prob(h), expected)
    torch.testing.assert_close(path.mean, sequential_recurrence(coef, loc))
    expected_entropy = Normal(loc, scale).entropy().sum((-2, -1))
    torch.testing.assert_close(path.entropy(), expected_entropy)


def test_rsample_is_differentiable_and_expand_works():
    loc = torch.zeros(4, 6, 3, requires_grad=True)
    path = LinearGaussianPath(torch.full((4, 6, 3), 0.5), loc, torch.ones(4, 6, 3))
    path.rsample().sum().backward()
    assert loc.grad is not None and bool((loc.grad > 0).all())
    assert path.expand((2, 4)).rsample().shape == (2, 4, 6, 3)


def test_time_blocked_noise_of_a_path_does_not_depend_on_what_follows_it():
    """The first t steps hold the same numbers for every T >= t (block edges 8, 16, 32, ... included), the
    numbers are standard normal, and a path's sample leaves the global RNG where any other length would."""
    reference = time_blocked_normal((4, 3, 200, 2), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for steps in (1, 7, 8, 9, 16, 17, 32, 33, 100, 128, 129, 200):
        noise = time_blocked_normal((4, 3, steps, 2), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        assert noise.shape == (4, 3, steps, 2)
        torch.testing.assert_close(noise, reference[..., :steps, :], rtol=0, atol=0)
    # mean 0 and variance 1 within 5 standard errors of 4800 numbers (sd of the mean 0.014, of the variance 0.020)
    assert abs(float(reference.mean())) < 0.07 and abs(float(reference.var()) - 1.0) < 0.1
    states = []
    for steps in (5, 50):
        torch.manual_seed(1)
        LinearGaussianPath(torch.zeros(2, steps, 3), torch.zeros(2, steps, 3), torch.ones(2, steps, 3)).rsample((4,))
        states.append(torch.get_rng_state())
    assert torch.equal(states[0], states[1])
