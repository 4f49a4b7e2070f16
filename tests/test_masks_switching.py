"""Masks in the switching state-space models: padded trials and missing entries score exactly what the
trimmed trials and the observed entries score (float64 ground truth: the same model on the trimmed data)."""

import pyro
import pytest
import torch

from pyro_neurodyn.distributions import switching_log_marginal
from pyro_neurodyn.models import SLDS, SRNNModel

B, T, D, K, P = 3, 9, 4, 3, 2
LENGTHS = torch.tensor([9, 5, 7])


def padded_model_and_data(seed=0, observation="gaussian"):
    pyro.clear_param_store()
    torch.manual_seed(seed)
    model = SRNNModel(K, P, D, observation=observation).double()
    y = torch.randn(B, T, D, dtype=torch.float64)
    if observation == "poisson":
        y = torch.poisson(torch.full((B, T, D), 2.0, dtype=torch.float64))
    within = torch.arange(T) < LENGTHS.unsqueeze(-1)
    y = torch.where(within.unsqueeze(-1), y, torch.zeros(()))  # the padding holds 0, as in a Recording
    return model, y


def test_the_switching_core_of_a_padded_trial_equals_the_trimmed_trial():
    """Emission terms after a trial's end set to 0: the forward algorithm gives the trimmed trial's log marginal."""
    model, _ = padded_model_and_data()
    h = torch.randn(B, T, P, dtype=torch.float64)
    padded = switching_log_marginal(*model.latent_factors(h, lengths=LENGTHS))
    for b, length in enumerate(LENGTHS.tolist()):
        trimmed = switching_log_marginal(*model.latent_factors(h[b : b + 1, :length]))
        torch.testing.assert_close(padded[b : b + 1], trimmed, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("observation", ["gaussian", "poisson"])
def test_padded_log_joint_and_encoder_equal_the_trimmed_trials(observation):
    """log p(y, h) + log q(h | y) of padded trials at one latent path equal each trimmed trial's; the
    bidirectional encoder reads no padding (its output on the trial's steps is the trimmed trial's)."""
    model, y = padded_model_and_data(observation=observation)
    h = torch.randn(B, T, P, dtype=torch.float64)
    model_trace = pyro.poutine.trace(pyro.poutine.condition(model.model, data={"h": h})).get_trace(y, None, None, None, LENGTHS)
    guide = model.encoder(y, None, None, LENGTHS)
    for b, length in enumerate(LENGTHS.tolist()):
        trimmed_trace = pyro.poutine.trace(pyro.poutine.condition(model.model, data={"h": h[b : b + 1, :length]})).get_trace(y[b : b + 1, :length])
        for site in ("h", "y"):
            padded_lp = model_trace.nodes[site]["fn"].log_prob(model_trace.nodes[site]["value"])[b]
            trimmed_lp = trimmed_trace.nodes[site]["fn"].log_prob(trimmed_trace.nodes[site]["value"])[0]
            torch.testing.assert_close(padded_lp, trimmed_lp, rtol=1e-12, atol=1e-10)
        trimmed_guide = model.encoder(y[b : b + 1, :length])
        torch.testing.assert_close(guide.loc[b, :length], trimmed_guide.loc[0], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(guide.log_prob(h)[b], trimmed_guide.log_prob(h[b : b + 1, :length])[0], rtol=1e-10, atol=1e-10)


def test_a_missing_entry_contributes_nothing():
    """The masked observation's log density is the sum over the observed entries only (missing values
    replaced by anything give the same number)."""
    model, y = padded_model_and_data()
    h = torch.randn(B, T, P, dtype=torch.float64)
    mask = torch.rand(B, T, D, generator=torch.Generator().manual_seed(1)) > 0.3
    scored = []
    for fill in (0.0, 1e3):
        filled = torch.where(mask, y, torch.full((), fill, dtype=torch.float64))
        trace = pyro.poutine.trace(pyro.poutine.condition(model.model, data={"h": h})).get_trace(filled, None, None, mask)
        scored.append(trace.nodes["y"]["fn"].log_prob(filled))
    per_entry = model.emission(h).log_prob(y)
    torch.testing.assert_close(scored[0], (per_entry * mask).sum((-2, -1)), rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(scored[0], scored[1], rtol=1e-12, atol=1e-10)


def test_slds_takes_masks_too():
    pyro.clear_param_store()
    torch.manual_seed(0)
    model = SLDS(K, P, D).double()
    y = torch.randn(B, T, D, dtype=torch.float64)
    loss = pyro.infer.Trace_ELBO().differentiable_loss(model.model, model.guide, y, None, None, torch.rand(B, T, D) > 0.2, LENGTHS)
    assert torch.isfinite(loss)
