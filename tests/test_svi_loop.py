"""The shared SVI loop: guards, clipping, minibatch scaling, reproducibility, module-local parameters; checkpoints."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO
from pyro.nn import PyroModule
from torch import nn

from pyro_neurodyn.infer import GuardedSVI, NonFiniteLossError, fit_svi, load_checkpoint, save_checkpoint
from pyro_neurodyn.models.module_names import unique_module_name


class GaussianMean(PyroModule):
    """y_b ~ N(mu, 1) per trial b, mu a parameter (a model with no latents)."""

    def __init__(self, mu: float = 0.0):
        super().__init__()
        self.mu = nn.Parameter(torch.tensor(mu))

    def forward(self, y):
        with pyro.plate("trials", y.shape[0]):
            pyro.sample("y", dist.Normal(self.mu, 1.0).expand(y.shape[1:]).to_event(1), obs=y)


def no_guide(y):
    pass


@pytest.fixture(autouse=True)
def fresh_param_store():
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


def test_fit_reaches_the_maximum_likelihood_estimate_and_leaves_the_param_store_empty():
    y = torch.randn(20, 5, generator=torch.Generator().manual_seed(0)) + 2.0
    model = GaussianMean()  # built with Pyro's global params (the default): it runs module-locally in the fit
    losses = fit_svi(model, no_guide, Trace_ELBO(), torch.optim.Adam(model.parameters(), lr=0.1), [y], num_steps=300, progress=False)
    assert len(losses) == 300 and losses[-1] < losses[0]
    # the MLE of a Gaussian mean is the sample mean; Adam with lr 0.1 settles within ~1e-2 of it
    assert abs(model.mu.item() - y.mean().item()) < 1e-2
    assert len(pyro.get_param_store()) == 0 and not pyro.settings.get("module_local_params")  # the caller's setting is back


def test_a_function_with_pyro_param_statements_trains_through_its_global_parameter():
    """Module-local parameters concern PyroModules: a plain function's pyro.param lives in the global store, and
    the optimizer takes its unconstrained tensor."""

    def model(y):
        loc = pyro.param("loc", torch.tensor(0.0))
        with pyro.plate("trials", y.shape[0]):
            pyro.sample("y", dist.Normal(loc, 1.0).expand(y.shape[1:]).to_event(1), obs=y)

    y = torch.full((4, 3), 1.5)
    optimizer = torch.optim.Adam([pyro.param("loc", torch.tensor(0.0)).unconstrained()], lr=0.1)
    fit_svi(model, no_guide, Trace_ELBO(), optimizer, [y], num_steps=200, progress=False)
    assert abs(pyro.param("loc").item() - 1.5) < 1e-2


def test_only_the_optimizers_parameters_move_and_the_others_keep_no_gradient():
    """A frozen parameter (not in the optimizer) keeps its value, and the gradient the loss gave it is dropped."""

    class TwoMeans(GaussianMean):
        def __init__(self):
            super().__init__()
            self.offset = nn.Parameter(torch.tensor(0.5))

        def forward(self, y):
            with pyro.plate("trials", y.shape[0]):
                pyro.sample("y", dist.Normal(self.mu + self.offset, 1.0).expand(y.shape[1:]).to_event(1), obs=y)

    model = TwoMeans()
    fit_svi(model, no_guide, Trace_ELBO(), torch.optim.SGD([model.mu], lr=0.01), [torch.full((4, 3), 2.0)], num_steps=3, progress=False)
    assert model.offset.item() == 0.5 and model.offset.grad is None and model.mu.item() > 0.0 and model.mu.grad is None


def test_optimizer_and_scheduler_are_checked():
    model, y = GaussianMean(), torch.zeros(2, 3)
    with pytest.raises(ValueError, match="optimizer must be a torch.optim.Optimizer"):
        fit_svi(model, no_guide, Trace_ELBO(), pyro.optim.Adam({"lr": 0.1}), [y], num_steps=1)
    optimizer, other = torch.optim.Adam(model.parameters(), lr=0.1), torch.optim.Adam(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="scheduler must be a learning-rate scheduler of optimizer"):
        fit_svi(model, no_guide, Trace_ELBO(), optimizer, [y], num_steps=1, scheduler=torch.optim.lr_scheduler.ExponentialLR(other, 0.5))


def test_minibatch_losses_are_unbiased_for_the_full_loss():
    """With lr = 0 the parameters stay put, so one epoch of scaled minibatch losses must average to the full loss."""
    y = torch.randn(12, 3, generator=torch.Generator().manual_seed(1))
    model = GaussianMean()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    full = fit_svi(model, no_guide, Trace_ELBO(), optimizer, [y], num_steps=1, progress=False)[0]
    batches = fit_svi(model, no_guide, Trace_ELBO(), optimizer, [y], num_steps=3, batch_size=4, progress=False, seed=0)
    assert sum(batches) / 3 == pytest.approx(full, rel=1e-6)


@pytest.mark.filterwarnings("ignore:Encountered NaN:UserWarning")  # Pyro warns about the NaN we provoke
def test_nan_loss_raises_and_leaves_parameters_untouched():
    class ZeroMean(PyroModule):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(1.0))  # unconstrained: a step can make it negative

        def forward(self, y):
            pyro.sample("y", dist.Normal(0.0, self.scale).expand(y.shape).to_event(2), obs=y)

    model = ZeroMean()
    y = torch.zeros(2, 3)  # d loss / d scale = 6 / scale > 0
    svi = GuardedSVI(model, no_guide, torch.optim.SGD(model.parameters(), lr=10.0), Trace_ELBO())
    with pyro.validation_enabled(False):
        svi.step(y)  # a big step pushes scale below zero
        before = model.scale.item()
        assert before < 0
        with pytest.raises(NonFiniteLossError, match="non-finite .* at step 1; the parameters were not updated"):
            svi.step(y)
    assert model.scale.item() == before and model.scale.grad is None


def test_clip_norm_bounds_the_step():
    y = torch.full((4, 3), 100.0)  # a huge gradient for mu
    model = GaussianMean()
    fit_svi(model, no_guide, Trace_ELBO(), torch.optim.SGD(model.parameters(), lr=1.0), [y], num_steps=1, clip_norm=0.5, progress=False)
    assert model.mu.item() == pytest.approx(0.5)


class LatentMeans(PyroModule):
    """z_b ~ N(loc, 1), y_b ~ N(z_b, 1): the model, and ``guide`` the guide q(z_b) = N(q_b, 1)."""

    def __init__(self, num_trials: int):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(()))
        self.q = nn.Parameter(torch.zeros(num_trials))

    def forward(self, y):
        with pyro.plate("trials", y.shape[0]):
            z = pyro.sample("z", dist.Normal(self.loc, 1.0))
            pyro.sample("y", dist.Normal(z, 1.0), obs=y)

    @pyro.nn.pyro_method
    def guide(self, y):
        with pyro.plate("trials", y.shape[0]):
            pyro.sample("z", dist.Normal(self.q, 1.0))


def test_seed_reproducibility_callback_and_errors():
    y = torch.randn(6)
    runs, calls = [], []
    for _ in range(2):
        model = LatentMeans(6)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
        runs.append(fit_svi(model, model.guide, Trace_ELBO(), optimizer, [y], num_steps=5, seed=3, progress=False, callback=lambda step, loss: calls.append(step)))
    assert runs[0] == runs[1]
    assert calls == list(range(5)) * 2
    with pytest.raises(ValueError, match="num_steps must be >= 1"):
        fit_svi(model, model.guide, Trace_ELBO(), optimizer, [y], num_steps=0)
    with pytest.raises(ValueError, match="same number of trials"):
        fit_svi(model, model.guide, Trace_ELBO(), optimizer, [y, torch.ones(5)], num_steps=1)


def test_two_modules_of_one_pyro_name_share_nothing_in_fits():
    """Pyro's global store would give two modules named alike one parameter; the fits keep each module's own."""
    y = torch.randn(6)
    first, second = LatentMeans(6), LatentMeans(6)
    assert first._pyro_name == second._pyro_name == ""
    for model, target in ((first, 1.0), (second, -1.0)):
        fit_svi(model, model.guide, Trace_ELBO(), torch.optim.Adam(model.parameters(), lr=0.1), [y + target], num_steps=100, seed=0, progress=False)
    assert first.loc.item() > 0.5 and second.loc.item() < -0.5 and len(pyro.get_param_store()) == 0


def test_checkpoint_round_trip_and_no_silent_overwrite(tmp_path):
    path = tmp_path / "model.pt"
    state = {"weight": torch.randn(3, 2)}
    save_checkpoint(path, "Thing", {"num_states": 2, "name": "x"}, state, losses=[1.0, 0.5])
    payload = load_checkpoint(path, "Thing")
    assert payload["config"] == {"num_states": 2, "name": "x"} and payload["losses"] == [1.0, 0.5]
    assert torch.equal(payload["state_dict"]["weight"], state["weight"])
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        save_checkpoint(path, "Thing", {}, state)
    assert torch.equal(load_checkpoint(path, "Thing")["state_dict"]["weight"], state["weight"])  # untouched
    save_checkpoint(path, "Thing", {"num_states": 3}, state, overwrite=True)
    assert load_checkpoint(path, "Thing")["config"] == {"num_states": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no temporary left behind
    with pytest.raises(ValueError, match="holds a Thing checkpoint, not a Other"):
        load_checkpoint(path, "Other")
    torch.save({"some": "dict"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a pyro_neurodyn checkpoint"):
        load_checkpoint(tmp_path / "other.pt", "Thing")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt", "Thing")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_checkpoint(tmp_path / "nope" / "m.pt", "Thing", {}, state)


def test_num_threads_is_set_during_the_fit_and_restored():
    before = torch.get_num_threads()
    seen = []
    y = torch.randn(4, 3)
    model = GaussianMean()
    fit_svi(model, no_guide, Trace_ELBO(), torch.optim.Adam(model.parameters(), lr=0.1), [y], num_steps=2, progress=False,
            num_threads=1, callback=lambda step, loss: seen.append(torch.get_num_threads()))  # fmt: skip
    assert seen == [1, 1] and torch.get_num_threads() == before


def test_unique_module_names():
    assert unique_module_name("srnn") != unique_module_name("srnn")


def test_minibatches_of_ragged_trials_are_length_buckets_cut_to_their_longest_trial():
    from pyro_neurodyn.infer.fit_run import Minibatches

    torch.manual_seed(0)
    lengths = torch.tensor([50, 900, 120, 700, 300, 1000, 80, 450, 610, 200, 990, 60, 330])
    y = torch.randn(13, 1000, 2)
    mask = torch.arange(1000) < lengths[:, None]
    batches = Minibatches(13, 4, lengths=lengths)
    seen = []
    for _ in range(3):  # one epoch: 13 // 4 batches, 1 trial left out at random
        batch_y, batch_mask, batch_lengths, constant = batches.next([y, mask, lengths, None])
        index = torch.cat([torch.nonzero((lengths == n))[0] for n in batch_lengths])
        seen.extend(index.tolist())
        assert batch_y.shape == (4, int(batch_lengths.max()), 2) and batch_mask.shape == (4, int(batch_lengths.max()))
        torch.testing.assert_close(batch_y, y[index, : int(batch_lengths.max())])
        assert constant is None
    assert len(set(seen)) == 12  # disjoint batches
    # buckets: the 12 kept trials sorted by length, cut in 3 consecutive groups of 4
    kept = torch.tensor(sorted(seen, key=lambda b: int(lengths[b])))
    groups = {frozenset(kept[i : i + 4].tolist()) for i in range(0, 12, 4)}
    assert groups == {frozenset(seen[i : i + 4]) for i in range(0, 12, 4)}
    again = Minibatches(13, 13, lengths=lengths).next([y, lengths])
    assert again[0] is y  # the full batch stays whole
