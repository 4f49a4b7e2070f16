"""Device and dtype follow the model: every estimator moved to float64 fits and decodes in float64 end to end.

The tests run with torch's default dtype float32 (the normal default), so an allocation on the default dtype
anywhere in a float64 computation shows up: either as an error (float32 meets float64 in a matrix product) or,
where PyTorch would silently promote it, through :class:`MixedPrecisionDetector`, which fails on any op that
sees float32 and float64 tensors together.
"""

from typing import Any

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from pyro_neurodyn import SRNN, LowRankRNN, SwitchingLowRankRNN
from pyro_neurodyn.data import as_inputs, as_state_labels, as_trials, gaussian_oscillator_data, switching_lorenz, switching_lowrank_data
from pyro_neurodyn.predictive import posterior_predictive

pytestmark = pytest.mark.usefixtures("one_thread_fresh_param_store")

F64 = torch.float64


class MixedPrecisionDetector(TorchDispatchMode):
    """Records every aten op whose floating tensor arguments mix float32 and float64."""

    def __init__(self):
        super().__init__()
        self.mixed: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        flat, _ = tree_flatten((args, kwargs or {}))
        dtypes = {t.dtype for t in flat if isinstance(t, torch.Tensor) and t.is_floating_point()}
        if {torch.float32, F64} <= dtypes:
            self.mixed.append(str(func))
        return func(*args, **(kwargs or {}))


def assert_float64(value: Any, what: str) -> None:
    """Every floating tensor in ``value`` (a tensor, a NamedTuple, ...) is float64, every integer one int64."""
    tensors = [t for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor)]
    assert tensors, what
    for tensor in tensors:
        if tensor.is_floating_point():
            assert tensor.dtype == F64, (what, tensor.dtype)
            assert bool(torch.isfinite(tensor).all()), what
        else:
            assert tensor.dtype in (torch.int64, torch.bool), (what, tensor.dtype)


def parameters_and_buffers(*modules) -> list:
    return [t for m in modules for t in list(m.parameters()) + list(m.buffers()) if t.is_floating_point()]


def fit_in_float64(build, fit, data) -> tuple:
    """Build an estimator, move it to float64, fit it on float64 data with the mixed-precision detector on."""
    assert torch.get_default_dtype() == torch.float32
    estimator = build()
    assert estimator.to(dtype=F64) is estimator
    assert estimator.dtype == F64 and estimator.device == torch.device("cpu")
    y = data()
    with MixedPrecisionDetector() as detector:
        fit(estimator, y.double())
    assert not detector.mixed, detector.mixed
    return estimator, y


CASES = {
    "SRNN": (
        lambda: SRNN(2, 3, 3, seed=7),
        lambda m, y: m.fit(y, num_steps=3, filter_steps=1, init="kmeans", progress=False),
        lambda: switching_lorenz(4, 30, seed=1).y,
        lambda m: [m.module],
    ),
    "LowRankRNN": (
        lambda: LowRankRNN(20, 2, 20, readout="one_to_one", seed=7),
        lambda m, y: m.fit(y, num_particles=4, num_steps=3, batch_size=6, progress=False),
        lambda: gaussian_oscillator_data(12, 20, seed=3).y,
        lambda m: [m.model, m.guide],
    ),
    "SwitchingLowRankRNN": (
        lambda: SwitchingLowRankRNN(20, 2, 2, 8, seed=7),
        lambda m, y: m.fit(y, "vsmc", num_steps=2, num_particles=4),
        lambda: switching_lowrank_data(4, 30, seed=0).y,
        lambda m: [m.module, m.proposal],
    ),
}


@pytest.fixture(scope="module", params=list(CASES))
def fitted(request):
    """``(name, float64 estimator fit on float64 data, the float32 data, its modules)``, fit once per module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        build, fit, data, modules = CASES[request.param]
        estimator, y = fit_in_float64(build, fit, data)
    finally:
        torch.set_num_threads(threads)
    return request.param, estimator, y, modules(estimator)


def decodings(name: str, estimator, y) -> dict:
    """Every decoding output of ``estimator`` on ``y`` (float32 data: converted by the estimator)."""
    if name == "SRNN":
        return {
            "log_evidence": estimator.log_evidence(y, num_particles=4),
            "posterior_latents": estimator.posterior_latents(y),
            "state_marginals": estimator.state_marginals(y),
            "most_likely_states": estimator.most_likely_states(y),
            "reconstruct": estimator.reconstruct(y),
            "forecast": estimator.forecast(y[:, :10], 3, num_samples=2),
            "sample": estimator.sample(2, 5),
        }
    if name == "LowRankRNN":
        result = estimator.filter(y, num_particles=4)
        return {
            "log_evidence": estimator.log_evidence(y, num_particles=4),
            "filter": result,
            "sample": estimator.sample(2, 5, initial_latents=result.means[:2, -1]),
            "readout_means": estimator.readout_means(result.means),
            "to_units": estimator.to_units(result.means),
        }
    return {
        "log_evidence": estimator.log_evidence(y, num_particles=4),
        "posterior_latents": estimator.posterior_latents(y),
        "state_marginals": estimator.state_marginals(y),
        "most_likely_states": estimator.most_likely_states(y),
        "sample": estimator.sample(2, 5),
    }


def test_a_float64_estimator_fits_and_decodes_in_float64(fitted):
    name, estimator, y, modules = fitted
    assert all(np.isfinite(estimator.losses)) and estimator.losses
    assert all(t.dtype == F64 for t in parameters_and_buffers(*modules))
    with MixedPrecisionDetector() as detector:
        outputs = decodings(name, estimator, y.double())
        draws = posterior_predictive(estimator, y.double(), num_samples=3, num_particles=4)
    assert not detector.mixed, detector.mixed
    for what, value in outputs.items():
        assert_float64(value, what)
    assert draws.latents.dtype == F64 and draws.y_rep.dtype == F64 and draws.log_likelihood.dtype == F64
    if draws.states is not None:
        assert draws.states.dtype == torch.int64
    if name != "SRNN":  # exact fixed points of the ReLU networks, from the float64 parameters
        for result in [estimator.fixed_points()] if name == "LowRankRNN" else estimator.fixed_points():
            assert result.points.dtype == np.float64 and np.isfinite(result.residuals).all()
    assert all(t.dtype == F64 for t in parameters_and_buffers(*modules))  # decoding changed nothing


def test_float32_data_into_a_float64_model_gives_float64_outputs(fitted):
    name, estimator, y, _ = fitted
    assert y.dtype == torch.float32
    for data in (y, y.numpy()):  # a float32 tensor and a float32 numpy array
        assert_float64(estimator.log_evidence(data, num_particles=4), "log_evidence")
    with MixedPrecisionDetector() as detector:
        outputs = decodings(name, estimator, y)
    assert not detector.mixed, detector.mixed
    for what, value in outputs.items():
        assert_float64(value, what)


def test_to_returns_the_estimator_and_dtype_device_report_its_parameters():
    rnn = LowRankRNN(20, 2, 20, seed=7)
    assert rnn.dtype == torch.float32 and rnn.device == torch.device("cpu")
    assert rnn.to(device="cpu") is rnn and rnn.dtype == torch.float32  # None keeps the dtype
    assert rnn.to(torch.device("cpu"), torch.float64) is rnn
    assert rnn.dtype == F64 and all(t.dtype == F64 for t in parameters_and_buffers(rnn.model, rnn.guide))
    assert rnn.to(dtype=torch.float32).dtype == torch.float32
    with pytest.raises(TypeError, match="floating"):
        rnn.to(dtype=torch.int64)
    with pytest.raises(AttributeError):
        rnn.dtype = F64  # read-only


def test_srnn_to_before_obs_dim_is_known_applies_at_the_first_fit():
    model = SRNN(2, 3, seed=7)  # obs_dim unknown: no module yet
    assert model.module is None
    assert model.to(dtype=F64) is model and model.dtype == F64
    model.fit(switching_lorenz(4, 30, seed=1).y, num_steps=2, filter_steps=1, init="kmeans", progress=False)
    assert all(t.dtype == F64 for t in parameters_and_buffers(model.module))
    assert model.most_likely_states(switching_lorenz(2, 20, seed=2).y).dtype == torch.int64


def test_a_saved_float64_estimator_loads_in_float64(fitted, tmp_path):
    name, estimator, _, modules = fitted
    estimator.save(tmp_path / "model.pt")
    loaded = type(estimator).load(tmp_path / "model.pt")
    assert loaded.dtype == F64
    restored = parameters_and_buffers(*CASES[name][3](loaded))
    assert len(restored) == len(parameters_and_buffers(*modules))
    for saved, value in zip(parameters_and_buffers(*modules), restored):
        assert value.dtype == F64 and torch.equal(saved, value)


def test_validation_converts_to_the_requested_dtype_and_device():
    y = as_trials(np.zeros((2, 5, 3), dtype=np.float32), dtype=F64, device="cpu")
    assert y.dtype == F64 and y.device == torch.device("cpu")
    assert as_inputs(np.ones((5, 2), dtype=np.float32), y).dtype == F64  # follows y
    assert as_trials(torch.zeros(5, 3, dtype=F64)).dtype == torch.get_default_dtype()  # default: torch's
    assert as_state_labels([[0, 1, 1]], device="cpu").dtype == torch.int64
