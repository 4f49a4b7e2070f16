"""Resampling: the offspring counts of systematic and multinomial resampling, ESS, gathering."""

import math

import pytest
import torch

from pyro_neurodyn.infer import effective_sample_size, gather_particles, multinomial_ancestors, systematic_ancestors


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def counts(ancestors: torch.Tensor, num_particles: int) -> torch.Tensor:
    """``(B, K)`` offspring counts from ancestors ``(K, B)``."""
    return torch.nn.functional.one_hot(ancestors.T, num_particles).sum(1).double()


def test_systematic_offspring_counts_are_floor_or_ceil_of_k_times_weight():
    num_particles, systems = 7, 500
    log_weights = torch.randn(num_particles, systems) * 2
    weights = torch.softmax(log_weights.double(), 0).T
    offspring = counts(systematic_ancestors(log_weights), num_particles)
    assert torch.all(offspring >= torch.floor(num_particles * weights) - 1e-9)
    assert torch.all(offspring <= torch.ceil(num_particles * weights) + 1e-9)
    assert torch.all(offspring.sum(-1) == num_particles)


@pytest.mark.parametrize("scheme", [systematic_ancestors, multinomial_ancestors])
def test_resampling_is_unbiased(scheme):
    """E[offspring_j] = K w_j: averaged over 20000 systems with the same weights."""
    num_particles, systems = 5, 20000
    weights = torch.tensor([0.05, 0.4, 0.15, 0.3, 0.1])
    offspring = counts(scheme(weights.log()[:, None].expand(-1, systems).contiguous()), num_particles)
    standard_error = offspring.std(0) / math.sqrt(systems)
    # 5 standard errors of the mean over 20000 iid systems (each count's sd is at most ~1); 1e-6 absorbs
    # float32 rounding where K w_j is an integer and systematic resampling has no variance at all
    assert torch.all((offspring.mean(0) - num_particles * weights.double()).abs() < 5 * standard_error + 1e-6)


@pytest.mark.parametrize("scheme", [systematic_ancestors, multinomial_ancestors])
def test_zero_weights_are_never_chosen_and_gradients_are_cut(scheme):
    log_weights = torch.tensor([0.0, -math.inf, 1.0, -math.inf]).repeat(50, 1).T.contiguous().requires_grad_()
    ancestors = scheme(log_weights)
    assert ancestors.shape == (4, 50) and ancestors.dtype == torch.int64 and not ancestors.requires_grad
    assert set(ancestors.unique().tolist()) <= {0, 2}


def test_effective_sample_size():
    log_weights = torch.log(torch.tensor([[0.25, 1.0, 0.5], [0.25, 0.0, 0.5], [0.25, 0.0, 0.0], [0.25, 0.0, 0.0]]))
    torch.testing.assert_close(effective_sample_size(log_weights), torch.tensor([4.0, 1.0, 2.0]))
    torch.testing.assert_close(effective_sample_size(log_weights + 3.0), torch.tensor([4.0, 1.0, 2.0]))  # unnormalized


def test_gather_particles_selects_by_ancestor_and_broadcasts_shared_plates():
    value = torch.arange(3 * 2 * 4, dtype=torch.float32).reshape(3, 2, 4)  # (K, B, R)
    ancestors = torch.tensor([[2, 0], [2, 1], [0, 1]])
    gathered = gather_particles(value, ancestors)
    for k in range(3):
        for b in range(2):
            assert torch.equal(gathered[k, b], value[ancestors[k, b], b])
    shared = value[:, :1]  # (K, 1, R): the same for both systems
    assert torch.equal(gather_particles(shared, ancestors), torch.stack([shared[ancestors[:, b], 0] for b in range(2)], 1))
    with pytest.raises(ValueError, match="particles"):
        gather_particles(value[:2], ancestors)
