"""The SRNN's warm start (estimators/srnn_warm_start.py) and its residual MLP dynamics (dynamics/residual_mlp_bank.py).

Ground truth: rotation data (two linear maps, clockwise and counter-clockwise) seen through a readout whose
least-squares inverse gives back the true latents up to the readout noise. Fitting an ``"rnn"`` bank's
dynamics to those latents with the true states as labels must recover each state's rotation, and the
noise scale sigma_h must come down to the latents' one-step residual."""

import math

import pytest
import torch

from pyro_neurodyn import SRNN
from pyro_neurodyn.data import rotation_switching_data
from pyro_neurodyn.dynamics import ResidualMLPBank, make_dynamics
from pyro_neurodyn.estimators.srnn_warm_start import fit_dynamics_to_latents, fit_encoder_to_latents, readout_latents
from pyro_neurodyn.models import SRNNModel

pytestmark = pytest.mark.usefixtures("one_thread")


def test_residual_mlp_bank_shapes_inputs_and_identity_start():
    torch.manual_seed(0)
    bank = ResidualMLPBank(3, 2, input_dim=4, hidden_dim=6)
    h, u = torch.randn(5, 7, 2), torch.randn(5, 7, 4)
    out = bank(h, u)
    assert out.shape == (5, 7, 3, 2)
    assert float((out - h.unsqueeze(-2)).detach().abs().max()) < 0.5  # B_k starts small: each map starts near the identity
    assert not torch.allclose(bank(h, torch.zeros_like(u)), out)  # the inputs reach the maps
    torch.testing.assert_close(bank.state_map(1)(h), bank(h, torch.zeros_like(u))[..., 1, :])
    with pytest.raises(ValueError, match="u is None"):
        bank(h)
    with pytest.raises(ValueError, match="dynamics must be one of"):
        make_dynamics("lstm", 2, 2)
    with pytest.raises(ValueError, match="dynamics"):
        SRNN(2, 2, 3, dynamics="gru")


@pytest.fixture(scope="module")
def rotation():
    return rotation_switching_data(8, 100, 10, "gaussian", seed=0)


def test_dynamics_fit_to_true_latents_recovers_each_states_rotation(rotation):
    """With the true latents and states, the fitted tanh maps' Jacobians at the origin are the teacher's two
    rotations (angles of opposite sign): the latents stay well inside tanh's linear range (|x| < 0.5)."""
    torch.manual_seed(0)
    module = SRNNModel(2, 2, 10, latent_scale=None)
    scale = rotation.latents.abs().max()
    h0 = rotation.latents / scale * 0.4
    losses = fit_dynamics_to_latents(module, h0, None, rotation.states, None, steps=400, lr=3e-2, label_weight=10.0)
    assert losses[-1] < losses[0]
    weight = module.dynamics.weight.detach()  # (K, 2, 2); at small h, tanh(W h + b) ~ W h + b
    angles = torch.atan2(weight[:, 1, 0] - weight[:, 0, 1], weight[:, 0, 0] + weight[:, 1, 1])
    residual = (h0[:, 1:] - h0[:, :-1]).norm(dim=-1).mean()
    print(f"fitted angles {angles.tolist()}, sigma_h {module.latent_log_scale.exp().item():.4f}, step size {float(residual):.4f}")
    # the teacher turns by +-2 pi / 20 = 0.314 per step (state 0 counter-clockwise); least squares over 792 steps
    # with process noise 0.05 on the unit circle has a standard error near 0.05 / sqrt(792) = 0.002 (seeds 0-2 of
    # the fit gave 0.316 / -0.317), and tanh's curvature at |h| <= 0.4 bends it less than 0.01: bound 0.02
    torch.testing.assert_close(angles, torch.tensor([1.0, -1.0]) * 2 * math.pi / 20, rtol=0, atol=0.02)
    assert module.latent_log_scale.exp().item() < 0.5 * float(residual)  # noise well below the step: dynamics explain it


def test_encoder_fit_to_latents_and_readout_latents_invert_the_readout(rotation):
    model = SRNN(2, 2, 10, seed=0)
    model.fit(rotation.y, num_steps=1, filter_steps=0, init=None, progress=False)  # readout at the PCA
    h0 = readout_latents(model.module.emission, rotation.y)
    reconstructed = model.module.emission.mapping(h0)
    residual = float((reconstructed - rotation.y).pow(2).mean() / rotation.y.var())
    assert residual < 0.05  # 2 principal components of a 2-D latent's readout: only the noise is left
    encoder = model.module.encoder
    before = float(encoder(rotation.y).log_prob(h0).mean())
    losses = fit_encoder_to_latents(encoder, rotation.y, None, h0, None, None, steps=100, lr=1e-2)
    assert losses[-1] < losses[0] and float(encoder(rotation.y).log_prob(h0).mean()) > before


def test_warm_start_argument_errors_and_fingerprint(rotation):
    with pytest.raises(ValueError, match="warm_start"):
        SRNN(2, 2, 10, observation="poisson").fit(rotation.y.round().clamp_min(0), num_steps=1, warm_start=5, progress=False)
    with pytest.raises(ValueError, match="warm_start"):
        SRNN(2, 2, 10).fit(rotation.y, num_steps=1, warm_start=-1, progress=False)
    warm = SRNN(2, 2, 10, seed=0).fit(rotation.y, num_steps=2, filter_steps=0, warm_start=20, progress=False)
    cold = SRNN(2, 2, 10, seed=0).fit(rotation.y, num_steps=2, filter_steps=0, progress=False)
    assert math.isfinite(warm.losses[-1]) and warm.losses[0] < cold.losses[0]  # the ELBO starts better
