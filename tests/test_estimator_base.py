"""The contract every estimator shares (pyro_neurodyn.estimators.base.Estimator): fit returns the estimator,
one validation entry point, posterior_predictive as a method, save/load through the base."""

import pyro
import pytest
import torch

from pyro_neurodyn import SRNN, LowRankRNN, SwitchingLowRankRNN
from pyro_neurodyn.data import gaussian_oscillator_data, switching_lorenz, switching_lowrank_data
from pyro_neurodyn.estimators.base import Estimator
from pyro_neurodyn.predictive import posterior_predictive

pytestmark = pytest.mark.usefixtures("one_thread_fresh_param_store")

ESTIMATORS = {
    "SRNN": (lambda: SRNN(2, 2, 3, seed=0), lambda m, y: m.fit(y, num_steps=3, filter_steps=1, init="kmeans", progress=False),
             lambda: switching_lorenz(3, 20, seed=0).y),  # fmt: skip
    "LowRankRNN": (lambda: LowRankRNN(20, 2, 20, readout="one_to_one", seed=0),
                   lambda m, y: m.fit(y, num_particles=4, num_steps=2, batch_size=4, progress=False),
                   lambda: gaussian_oscillator_data(4, 20, seed=3).y),  # fmt: skip
    "SwitchingLowRankRNN": (lambda: SwitchingLowRankRNN(20, 2, 2, 8, seed=0),
                            lambda m, y: m.fit(y, "collapsed", num_steps=2, init_from_data=False),
                            lambda: switching_lowrank_data(2, 20, seed=0).y),  # fmt: skip
}


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_every_estimator_keeps_the_shared_contract(name, tmp_path):
    build, fit, data = ESTIMATORS[name]
    y = data()
    model = build()
    assert isinstance(model, Estimator)
    with pytest.raises(RuntimeError, match="not been fit yet"):
        model.save(tmp_path / "unfitted.pt")
    assert fit(model, y) is model and len(model.losses) > 0
    checked, _ = model.validate(y)
    assert checked.dtype == model.dtype and checked.shape == y.shape
    with pytest.raises(ValueError, match="channels"):
        model.validate(y[..., :-1])
    as_method = model.posterior_predictive(y, num_samples=3, seed=5)
    as_function = posterior_predictive(model, y, num_samples=3, seed=5)
    torch.testing.assert_close(as_method.y_rep, as_function.y_rep, rtol=0, atol=0)
    model.save(tmp_path / "fit.pt")
    loaded = type(model).load(tmp_path / "fit.pt")
    assert type(loaded) is type(model) and loaded.losses == model.losses and loaded.config == model.config
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "fit.pt")


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_constructor_arguments_are_the_config_fields(name):
    """Every constructor argument is saved in the config (and only those): load rebuilds from it."""
    import dataclasses
    import inspect

    build, _, _ = ESTIMATORS[name]
    model = build()
    arguments = [p for p in inspect.signature(type(model).__init__).parameters if p != "self"]
    assert arguments == [f.name for f in dataclasses.fields(model.config)]


@pytest.mark.parametrize("name", ["LowRankRNN", "SwitchingLowRankRNN"])
def test_complete_recordings_fit_as_their_arrays_and_unmasked_methods_refuse_ragged_ones(name):
    from pyro_neurodyn.data import Recording

    build, fit, data = ESTIMATORS[name]
    y = data()
    arrays, recording = build(), build()
    pyro.set_rng_seed(0)
    fit(arrays, y)
    pyro.set_rng_seed(0)
    fit(recording, Recording.from_trials(list(y)))
    assert recording.losses == arrays.losses
    with pytest.raises(ValueError, match="this method of .* does not take missing entries or ragged trials yet"):
        recording.validate(Recording.from_trials([y[0], y[1, :10]]))
