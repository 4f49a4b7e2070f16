"""Decoding long trials in chunks (issue 19, part 3): equal to one pass over the trial, up to the cuts.

The encoder runs over overlapping windows; the latent mean's recurrence, the chain's factors and the
forward-backward / Viterbi scans run over the whole trial. On T = 2000 in chunks of 500 the smoothed
marginals must equal the one-pass ones within 1e-4 away from the chunk edges (more than ``EDGE`` steps
from a boundary) with the default overlap; the edge error is reported, and with no overlap it is large
(so the comparison can fail). An untrained model with a small dynamics noise (sharp, K = 3 factors)
makes the marginals sensitive to the latent path; one fit step of each phase only marks it fitted.
"""

import pytest
import torch

from pyro_neurodyn import SRNN
from pyro_neurodyn.data import Recording
from pyro_neurodyn.guides.chunked_encoding import AUTO_CHUNK_ABOVE, DEFAULT_CHUNK_SIZE, DEFAULT_OVERLAP, resolve_chunking

STEPS, CHUNK, EDGE = 2000, 500, 10


pytestmark = pytest.mark.usefixtures("one_thread")


def near_chunk_edges(num_steps: int, chunk_size: int, edge: int) -> torch.Tensor:
    """``(num_steps,)`` bool: within ``edge`` steps of a chunk boundary (the trial's own start is not one)."""
    steps = torch.arange(num_steps)
    distance = torch.minimum(steps % chunk_size, chunk_size - steps % chunk_size)
    return (distance <= edge) & (steps >= chunk_size)


@pytest.fixture(scope="module")
def long_trial():
    torch.manual_seed(0)
    y = torch.cumsum(0.3 * torch.randn(2, STEPS, 10), 1).sin() + 0.1 * torch.randn(2, STEPS, 10)
    u = torch.randn(2, STEPS, 2)
    model = SRNN(num_states=3, latent_dim=3, obs_dim=10, input_dim=2, latent_scale=0.05, seed=0)
    model.fit(y, u, num_steps=1, filter_steps=1, init=None, progress=False)
    return model, y, u


def test_chunked_marginals_and_viterbi_equal_one_pass_away_from_the_edges(long_trial):
    model, y, u = long_trial
    near = near_chunk_edges(STEPS, CHUNK, EDGE)
    reference = model.state_marginals(y, u, chunk_size=STEPS)  # one window covers the trial: one pass
    assert 0.5 < float(reference.amax(-1).mean()) < 0.99  # neither uniform nor certain: differences would show
    chunked = model.state_marginals(y, u, chunk_size=CHUNK)  # default overlap
    error = (chunked - reference).abs().amax(-1)  # (trials, T)
    edge_error, interior_error = float(error[:, near].max()), float(error[:, ~near].max())
    print(f"default overlap {DEFAULT_OVERLAP}: max marginal error at chunk edges {edge_error:.2e}, elsewhere {interior_error:.2e}")
    assert interior_error <= 1e-4 and edge_error <= 1e-4
    reference_path = model.most_likely_states(y, u, chunk_size=STEPS)
    assert torch.equal(model.most_likely_states(y, u, chunk_size=CHUNK)[:, ~near], reference_path[:, ~near])
    uncut = (model.state_marginals(y, u, chunk_size=CHUNK, overlap=0) - reference).abs().amax(-1)
    print(f"no overlap: edges {float(uncut[:, near].max()):.2e}, elsewhere {float(uncut[:, ~near].max()):.2e}")
    assert float(uncut[:, near].max()) > 1e-2  # cutting the encoder does show: the comparison above can fail


def test_chunked_causal_filter_latents_and_reconstruction(long_trial):
    """The causal encoder carries its recurrent state across chunks: chunked filtering is one pass up to float32
    round-off (1e-5 on probabilities), whatever the LSTM remembers; the smoother's overlap cut stays within 1e-5
    on the latents of this model."""
    model, y, u = long_trial
    torch.testing.assert_close(model.filter_marginals(y, u, chunk_size=CHUNK), model.filter_marginals(y, u), rtol=0, atol=1e-5)
    torch.testing.assert_close(model.posterior_latents(y, u, chunk_size=CHUNK), model.posterior_latents(y, u), rtol=0, atol=1e-5)
    torch.testing.assert_close(model.reconstruct(y, u, chunk_size=CHUNK), model.reconstruct(y, u), rtol=0, atol=1e-5)


def test_chunked_ragged_recording_matches_one_pass(long_trial):
    model, y, u = long_trial
    recording = Recording.from_trials([y[0].numpy(), y[1, :1234].numpy()], inputs=[u[0].numpy(), u[1, :1234].numpy()])
    reference = model.state_marginals(recording, chunk_size=STEPS)
    chunked = model.state_marginals(recording, chunk_size=CHUNK)
    assert torch.isnan(chunked[1, 1234:]).all() and not torch.isnan(chunked[1, :1234]).any()
    torch.testing.assert_close(chunked, reference, rtol=0, atol=1e-4, equal_nan=True)
    assert (model.most_likely_states(recording, chunk_size=CHUNK)[1, 1234:] == -1).all()


def test_automatic_chunking_and_argument_errors(long_trial):
    model, y, u = long_trial
    assert resolve_chunking(AUTO_CHUNK_ABOVE, None, None) is None
    assert resolve_chunking(AUTO_CHUNK_ABOVE + 1, None, None) == (DEFAULT_CHUNK_SIZE, DEFAULT_OVERLAP)
    assert resolve_chunking(100, 50, 10) == (50, 10)
    with pytest.raises(ValueError, match=r"chunk_size \(100\) must be at least overlap \(200\)"):
        model.state_marginals(y, u, chunk_size=100)
    with pytest.raises(ValueError, match="chunk_size"):
        model.most_likely_states(y, u, chunk_size=0)
    with pytest.raises(ValueError, match="overlap"):
        model.state_marginals(y, u, chunk_size=500, overlap=-1)
