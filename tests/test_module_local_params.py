"""The estimators keep their parameters in their modules: Pyro's global param store plays no part.

Every fit (and every other method that runs the models) runs with Pyro's module-local parameters
(:mod:`pyro_neurodyn.infer.local_params`): two estimators of one class fit one after the other share nothing,
the first keeps its fitted parameters and the second ends exactly where it ends when fit alone, and the
store stays empty. A user's own ``pyro.infer.SVI`` with ``pyro.optim``, which needs the global store, still
trains the same models afterwards.
"""

import pyro
import pytest
import torch

from pyro_neurodyn import SRNN, LowRankRNN, SwitchingLowRankRNN
from pyro_neurodyn.data import Recording, gaussian_oscillator_data, switching_lorenz, switching_lowrank_data
from pyro_neurodyn.predictive import compare_models, posterior_predictive

pytestmark = pytest.mark.usefixtures("one_thread_fresh_param_store")


def sessions(seed: int) -> Recording:
    """Two sessions of switching Lorenz data that recorded different channels (3 each, side by side)."""
    return Recording.from_sessions([Recording.from_trials(list(switching_lorenz(2, 30, seed=seed + s).y.numpy())) for s in (0, 10)])


# name -> (build an estimator, fit it to y, data of seed s): all estimators of a name start from one seed
CASES = {
    "SRNN": (
        lambda: SRNN(2, 3, 3, encoder_hidden=8, seed=7),
        lambda model, y: model.fit(y, num_steps=4, label_steps=2, filter_steps=2, init="kmeans", seed=1, progress=False),
        lambda seed: switching_lorenz(4, 30, seed=seed).y,
    ),
    "SRNN windows": (
        lambda: SRNN(2, 3, 3, encoder_hidden=8, seed=7),
        lambda model, y: model.fit(y, window=10, batch_size=3, num_steps=4, label_steps=2, filter_steps=2, init="kmeans", seed=1, progress=False),
        lambda seed: switching_lorenz(2, 60, seed=seed).y,
    ),
    "SRNN sessions": (  # each session labelled alone and the labels aligned (estimators/session_labels.py)
        lambda: SRNN(2, 3, 6, encoder_hidden=8, seed=7),
        lambda model, y: model.fit(y, num_steps=4, label_steps=2, filter_steps=2, init="kmeans", seed=1, progress=False),
        sessions,
    ),
    "LowRankRNN": (
        lambda: LowRankRNN(20, 2, 20, readout="one_to_one", seed=7),
        lambda model, y: model.fit(y, num_particles=4, num_steps=4, batch_size=6, seed=1, progress=False),
        lambda seed: gaussian_oscillator_data(12, 20, seed=seed).y,
    ),
    "LowRankRNN windows": (
        lambda: LowRankRNN(20, 2, 20, readout="one_to_one", seed=7),
        lambda model, y: model.fit(y, window=8, num_particles=4, num_steps=4, batch_size=3, seed=1, progress=False),
        lambda seed: gaussian_oscillator_data(2, 40, seed=seed).y,
    ),
    "SwitchingLowRankRNN": (
        lambda: SwitchingLowRankRNN(20, 2, 2, 8, encoder_hidden=8, seed=7),
        lambda model, y: model.fit(y, "vsmc", num_steps=3, num_particles=4, seed=1),
        lambda seed: switching_lowrank_data(4, 30, seed=seed).y,
    ),
}


def parameters(model) -> dict:
    """Every saved tensor of an estimator (its ``state_dict``), cloned."""
    return {key: value.clone() for key, value in model._checkpoint_contents()[1].items()}


def assert_equal_states(found: dict, expected: dict) -> None:
    assert found.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(found[key], value), key


@pytest.mark.parametrize("name", sorted(CASES))
def test_two_estimators_of_one_class_fit_one_after_the_other_share_nothing(name):
    build, fit, data = CASES[name]
    alone = fit(build(), data(1))  # the second fit below, with nothing before it
    first = fit(build(), data(0))
    fitted_first = parameters(first)
    assert not all(torch.equal(value, parameters(alone)[key]) for key, value in fitted_first.items())  # two different fits
    second = fit(build(), data(1))
    assert_equal_states(parameters(first), fitted_first)  # the second fit left the first model alone
    assert second.losses == alone.losses  # and was not influenced by it
    assert_equal_states(parameters(second), parameters(alone))
    assert len(pyro.get_param_store()) == 0


def test_the_estimators_methods_leave_the_param_store_empty():
    """Every method that runs the models, the online filters' updates (outside any method) and the predictive
    functions that take an estimator."""
    y = switching_lorenz(4, 30, seed=0).y
    srnn = CASES["SRNN"][1](CASES["SRNN"][0](), y)
    srnn.posterior_latents(y), srnn.state_marginals(y), srnn.most_likely_states(y), srnn.filter_marginals(y), srnn.reconstruct(y)
    srnn.state_marginals(y, chunk_size=10, overlap=3), srnn.filter_marginals(y, chunk_size=10, overlap=3)  # long trials: in chunks
    srnn.log_evidence(y, num_particles=4), srnn.forecast(y[:, :20], 3, num_samples=2), srnn.sample(2, 10), srnn.posterior_predictive(y, 2)
    srnn.online().run(y[0]), posterior_predictive(srnn, y, 2)
    y = gaussian_oscillator_data(12, 20, seed=0).y
    rnn = CASES["LowRankRNN"][1](CASES["LowRankRNN"][0](), y)
    rnn.initialize_from_data(y), rnn.log_evidence(y, num_particles=4), rnn.filter(y, num_particles=4), rnn.sample(2, 10)
    rnn.posterior_predictive(y, 2, num_particles=4), rnn.online(num_particles=4, seed=0).run(y[0])
    y = switching_lowrank_data(4, 30, seed=0).y
    switching = CASES["SwitchingLowRankRNN"][1](CASES["SwitchingLowRankRNN"][0](), y)
    switching.initialize_from_data(y, num_rounds=1, filter_rounds=1, num_particles=4)
    switching.posterior_latents(y), switching.most_likely_states(y), switching.state_marginals(y), switching.log_evidence(y, num_particles=4)
    switching.sample(2, 10), switching.posterior_predictive(y, 2), switching.online(num_particles=4, seed=0).run(y[0])
    y = switching_lorenz(8, 30, seed=0).y
    compare_models(lambda k: SRNN(k, 2, 3, encoder_hidden=8), [1, 2], y[:4], y[4:], dict(num_steps=2, filter_steps=0, progress=False), num_particles=4)
    assert len(pyro.get_param_store()) == 0 and not pyro.settings.get("module_local_params")


def test_a_fit_leaves_a_users_own_global_parameters_as_they_were():
    weight = pyro.param("user_weight", torch.ones(3))  # the user's own Pyro code, with the global store
    y = gaussian_oscillator_data(12, 20, seed=0).y
    CASES["LowRankRNN"][1](CASES["LowRankRNN"][0](), y)
    assert list(pyro.get_param_store().keys()) == ["user_weight"]
    assert pyro.param("user_weight").unconstrained() is weight.unconstrained() and torch.equal(pyro.param("user_weight"), torch.ones(3))


def test_a_users_plain_svi_with_the_global_store_trains_a_fitted_model():
    """``pyro.infer.SVI`` with ``pyro.optim`` finds the model's parameters in the global store (under the
    module's own Pyro name) and trains every one the objective reads; the causal filter encoder, which it does
    not read, stays put."""
    y = switching_lorenz(4, 30, seed=0).y
    srnn = CASES["SRNN"][1](CASES["SRNN"][0](), y)
    before = {key: value.detach().clone() for key, value in srnn.module.named_parameters()}
    svi = pyro.infer.SVI(srnn.model, srnn.guide, pyro.optim.Adam({"lr": 1e-2}), pyro.infer.Trace_ELBO())
    for _ in range(2):
        svi.step(y)
    unchanged = {key for key, value in srnn.module.named_parameters() if torch.equal(value, before[key])}
    assert unchanged == {key for key in before if key.startswith("filter_encoder.")} | {"dynamics.input_weight"}  # (an empty tensor: no inputs)
    assert len(pyro.get_param_store()) > 0 and all(name.startswith(srnn.module._pyro_name + ".") for name in pyro.get_param_store())
