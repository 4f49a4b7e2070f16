"""Sweeps on a real local Ray (``ray.init(num_cpus=2)``): the table, retries, resuming, the best model,
refusals, and ``neurodyn sweep``. The fits are a few SVI steps on tiny data: the whole file takes ~40 s,
most of it Ray starting worker processes."""

import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import ray
import torch
from ray import cloudpickle

from pyro_neurodyn import SRNN
from pyro_neurodyn.cli import main
from pyro_neurodyn.data import switching_lorenz
from pyro_neurodyn.sweep import SweepInterrupted, run_sweep
from pyro_neurodyn.sweep.results import collect_results
from pyro_neurodyn.sweep.storage import MANIFEST

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module

FIT = {"num_steps": 3, "init": None, "filter_steps": 0}
PARTICLES = 4


@dataclass(frozen=True)
class LoggedBuild:
    """``build(num_states, seed)`` of a small SRNN that appends ``"num_states,seed"`` to ``log`` when it runs in a
    trial (not in the driver, which builds each point once to check it). On its first call in a trial, the
    point ``fail_first`` raises and the point ``interrupt_first`` sends SIGUSR1 (Tune's stop signal) to the
    driver and waits, so that the sweep is interrupted while that trial runs."""

    log: str
    driver: int
    fail_first: tuple = ()
    interrupt_first: tuple = ()

    def __call__(self, num_states, seed):
        if os.getpid() != self.driver:
            with open(self.log, "a") as handle:
                handle.write(f"{num_states},{seed}\n")
            first = calls(self.log).count((num_states, seed)) == 1
            if first and (num_states, seed) == self.fail_first:
                raise RuntimeError("this build fails on its first attempt")
            if first and (num_states, seed) == self.interrupt_first:
                os.kill(self.driver, signal.SIGUSR1)
                time.sleep(3)
        return SRNN(num_states=num_states, latent_dim=2, seed=seed)


def calls(log) -> list:
    """The (num_states, seed) of every build call in trials so far."""
    path = Path(log)
    return [tuple(int(v) for v in line.split(",")) for line in path.read_text().split()] if path.exists() else []


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def data():
    y = switching_lorenz(num_trials=6, num_steps=40, seed=0).y
    return y[:4], y[4:]


@pytest.fixture(scope="module")
def sweep(local_ray, data, tmp_path_factory):
    """A 2 x 2 sweep (num_states x seeds) whose (2, 0) trial raises on its first attempt (FailureConfig retries
    it) and whose (2, 1) trial interrupts the sweep; then the same call resumes it."""
    folder = tmp_path_factory.mktemp("sweep")
    handlers_before = [signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGUSR1)]
    build = LoggedBuild(str(folder / "builds.log"), os.getpid(), fail_first=(2, 0), interrupt_first=(2, 1))
    arguments = dict(seeds=[0, 1], fit_kwargs=FIT, storage=folder / "storage", num_particles=PARTICLES, max_failures=1, verbose=0)
    with pytest.raises(SweepInterrupted, match="interrupted with [1-4] of 4 trials unfinished") as interrupted:
        run_sweep(build, {"num_states": [1, 2]}, *data, **arguments)
    builds_before_resume = calls(build.log)
    result = run_sweep(build, {"num_states": [1, 2]}, *data, **arguments)
    handlers_after = [signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGUSR1)]
    return SimpleNamespace(build=build, arguments=arguments, interrupted=interrupted.value.result.table, builds_before_resume=builds_before_resume,
                           result=result, handlers=(handlers_before, handlers_after))  # fmt: skip


def test_table_has_one_row_per_point_and_seed_and_a_failed_trial_is_retried(sweep):
    result = sweep.result
    table = result.table
    assert sorted(zip(table["num_states"], table["seed"])) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert (table["status"] == "finished").all() and result.complete
    assert table["error"].isna().all()
    assert np.isfinite(table["heldout_log_evidence"]).all() and (table["fit_steps"] == FIT["num_steps"]).all()
    assert calls(sweep.build.log).count((2, 0)) == 2  # the failing first attempt, then the retry that finished
    for row in table.itertuples():
        values = result.log_evidence[(row.point_index, row.seed)]
        assert values.shape == (2,) and row.heldout_log_evidence == pytest.approx(values.sum())
    # the comparison: one entry per grid point, each the best of its seeds
    assert sorted(result.comparison.index) == ["num_states=1", "num_states=2"]
    assert table.groupby("point")["best_seed"].sum().tolist() == [1, 1]
    for label, entry in result.comparison.iterrows():
        assert entry["elpd"] == pytest.approx(table[table["point"] == label]["heldout_log_evidence"].max())


def test_a_sweep_leaves_the_signal_handlers_as_it_found_them(sweep):
    """Ray Tune installs its own SIGINT and SIGUSR1 handlers for a run and, unless a signal arrives, leaves them: a fit
    in the same process afterwards could not be stopped with Ctrl-C (its handler logs and returns)."""
    before, after = sweep.handlers
    assert after == before and before[0] is signal.default_int_handler


def test_an_interrupted_sweep_resumes_without_refitting_finished_trials(sweep):
    table = sweep.interrupted
    status = dict(zip(zip(table["num_states"], table["seed"]), table["status"]))
    unfinished = {key for key, value in status.items() if value == "unfinished"}
    assert status[(2, 1)] == "unfinished" and set(status.values()) <= {"finished", "unfinished"}
    resumed_builds = calls(sweep.build.log)[len(sweep.builds_before_resume):]
    assert sorted(resumed_builds) == sorted(unfinished)  # each unfinished trial built (and fit) once more, no other
    before = table.set_index(["num_states", "seed"])["heldout_log_evidence"]
    after = sweep.result.table.set_index(["num_states", "seed"])["heldout_log_evidence"]
    for key, value in status.items():
        if value == "finished":
            assert after[key] == before[key]


def test_best_model_loads_and_reproduces_its_reported_log_evidence(sweep, data):
    result = sweep.result
    best = result.best()
    assert best["heldout_log_evidence"] == result.table["heldout_log_evidence"].max()
    model = result.load_best()
    assert isinstance(model, SRNN) and model.config.num_states == best["num_states"]
    values = model.log_evidence(data[1], num_particles=PARTICLES, seed=0)
    np.testing.assert_allclose(values.double().numpy(), result.log_evidence[(int(best["point_index"]), int(best["seed"]))], rtol=1e-5)
    other = result.load({"num_states": 1}, 1)
    assert other.config.num_states == 1 and other.config.seed == 1


def test_rerunning_a_sweep_refits_nothing(sweep, data):
    build, arguments, result = sweep.build, sweep.arguments, sweep.result
    before = calls(build.log)
    again = run_sweep(build, {"num_states": [1, 2]}, *data, **arguments)
    assert calls(build.log) == before
    assert again.table["heldout_log_evidence"].tolist() == result.table["heldout_log_evidence"].tolist()


def test_storage_holding_another_sweep_is_refused_and_left_alone(sweep, data, tmp_path):
    build, arguments = sweep.build, sweep.arguments
    storage = Path(arguments["storage"])
    manifest = (storage / MANIFEST).read_bytes()
    listing = sorted(p.relative_to(storage) for p in storage.rglob("*"))
    with pytest.raises(ValueError, match="holds a different sweep .*differs in seeds"):
        run_sweep(build, {"num_states": [1, 2]}, *data, **dict(arguments, seeds=[0, 2]))
    with pytest.raises(ValueError, match="differs in fit_kwargs"):
        run_sweep(build, {"num_states": [1, 2]}, *data, **dict(arguments, fit_kwargs=dict(FIT, num_steps=4)))
    with pytest.raises(ValueError, match="differs in test"):
        run_sweep(build, {"num_states": [1, 2]}, data[0], data[1] + 1.0, **arguments)
    assert (storage / MANIFEST).read_bytes() == manifest
    assert sorted(p.relative_to(storage) for p in storage.rglob("*")) == listing
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("a user's file")
    with pytest.raises(FileExistsError, match="not a sweep's folder"):
        run_sweep(build, {"num_states": [1, 2]}, *data, **dict(arguments, storage=tmp_path / "mine"))
    assert sorted(os.listdir(tmp_path / "mine")) == ["notes.txt"]


class FakeResults(list):
    """The parts of Tune's ResultGrid that collect_results reads."""

    def __init__(self, results, num_terminated, num_errors):
        super().__init__(results)
        self.num_terminated, self.num_errors = num_terminated, num_errors


def fake_result(point, seed, values=None, error=None):
    metrics = {} if values is None else {"heldout_log_evidence": sum(values), "log_evidence_per_trial": values, "final_loss": 1.0, "fit_steps": 3, "fit_seconds": 0.1}
    checkpoint = None if values is None else SimpleNamespace(path=f"/sweep/trial_{point}_{seed}/checkpoint_000000")
    return SimpleNamespace(config={"point": point, "seed": seed}, metrics=metrics, error=error, checkpoint=checkpoint)


@pytest.mark.parametrize("ended", [True, False])
def test_collect_results_marks_failed_trials_and_compares_the_points_that_have_a_finished_one(ended):
    results = [
        fake_result(0, 0, [-10.0, -12.0]), fake_result(0, 1, [-9.0, -11.0]),  # point 0: seed 1 is the best
        fake_result(1, 0, [-30.0, -35.0]), fake_result(1, 1, error=RuntimeError("diverged")),
        fake_result(2, 0, error=RuntimeError("diverged")), fake_result(2, 1, error=RuntimeError("diverged")),
    ]  # fmt: skip
    points = [{"k": 1}, {"k": 2}, {"k": 3}]
    # after an interruption, Tune counts fewer ended trials: a trial that raised may still get its retry
    grid = FakeResults(results, num_terminated=3, num_errors=3 if ended else 0)
    with pytest.warns(UserWarning, match=r"left out of the comparison: \['k=3'\]"):
        result = collect_results(grid, points, [0, 1], [SRNN] * 3, num_particles=4)
    table = result.table
    failed = "failed" if ended else "unfinished"
    assert table["status"].tolist() == ["finished", "finished", "finished", failed, failed, failed]
    assert table["error"].tolist()[3] == "RuntimeError: diverged"
    assert table["best_seed"].tolist() == [False, True, True, False, False, False]
    assert table["heldout_log_evidence"].tolist()[:3] == [-22.0, -20.0, -65.0] and table["heldout_log_evidence"][3:].isna().all()
    assert list(result.comparison.index) == ["k=1", "k=2"] and result.comparison["elpd"].tolist() == [-20.0, -65.0]
    assert result.best()["seed"] == 1 and result.best()["model"] == "/sweep/trial_0_1/checkpoint_000000/model.pt"
    with pytest.raises(ValueError, match="has not finished"):
        result.load({"k": 2}, 1)
    assert not result.complete


@pytest.mark.parametrize(
    "change, error, match",
    [
        (dict(grid={}), ValueError, "grid is empty"),
        (dict(grid=[]), ValueError, "grid is empty"),
        (dict(grid={"num_states": []}), ValueError, r"grid\['num_states'\] is empty"),
        (dict(grid={"num_states": [1, 1]}), ValueError, "repeated points"),
        (dict(seeds=[]), ValueError, "seeds is empty"),
        (dict(seeds=[0, 0]), ValueError, "seeds must be distinct"),
        (dict(fit_kwargs={"num_step": 3}), ValueError, r"unknown entries \['num_step'\] for SRNN.fit"),
        (dict(fit_kwargs={"seed": 3}), ValueError, r"must not set \['seed'\]"),
        (dict(resources_per_trial={"cpu": -1}), ValueError, "resources_per_trial"),
        (dict(test=torch.zeros(1, 40, 3)), ValueError, "at least 2 held-out trials"),
        (dict(test=torch.zeros(2, 40, 5)), ValueError, "test: y has 5 channels"),
        (dict(build=lambda num_states, seed: object()), TypeError, "must return a pyro_neurodyn estimator"),
    ],
)
def test_bad_input_is_refused_before_anything_runs(change, error, match, data, tmp_path):
    arguments = dict(build=SRNNBuild(), grid={"num_states": [1, 2]}, train=data[0], test=data[1], seeds=[0], fit_kwargs=FIT, storage=tmp_path / "storage")
    arguments.update(change)
    with pytest.raises(error, match=match):
        run_sweep(arguments.pop("build"), arguments.pop("grid"), arguments.pop("train"), arguments.pop("test"), **arguments)
    assert not (tmp_path / "storage").exists()


@dataclass(frozen=True)
class SRNNBuild:
    def __call__(self, num_states, seed):
        return SRNN(num_states=num_states, latent_dim=2, obs_dim=3, seed=seed)


SWEEP_FILE = """
[model]
kind = "SRNN"
latent_dim = 2

[grid]
num_states = [1, 2]

[sweep]
seeds = [0]
storage = "sweep"
num_particles = 4
resources_per_trial = {{ cpu = 2 }}  # one trial at a time: one worker process to start

[data]
simulator = "switching_lorenz"
arguments = {{ num_trials = 6, num_steps = 40, seed = 0 }}
test_fraction = 0.34

[fit]
num_steps = 3
init = "{init}"
filter_steps = 0
"""


def test_cli_sweep_runs_a_sweep_file_and_refuses_a_changed_one(local_ray, tmp_path, capsys):
    config = tmp_path / "sweep.toml"
    config.write_text(SWEEP_FILE.format(init="kmeans"))
    assert main(["sweep", str(config), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "comparison of grid points" in out and "best: num_states=" in out
    table = (tmp_path / "sweep" / "results.csv").read_text().splitlines()
    assert len(table) == 3 and table[0].startswith("point,point_index,num_states,seed,status")
    assert (tmp_path / "sweep" / "comparison.csv").exists()
    config.write_text(SWEEP_FILE.format(init="hmm"))
    assert main(["sweep", str(config), "--quiet"]) == 1
    assert "differs in fit_kwargs" in capsys.readouterr().err


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda text: text.replace("[grid]\nnum_states = [1, 2]\n", ""), r"\[grid\] is empty or missing"),
        (lambda text: text.replace("latent_dim = 2", "latent_dim = 2\nseed = 3"), r"\[model\] must not set seed"),
        (lambda text: text.replace("num_states = [1, 2]", "num_state = [1, 2]"), r"\[grid\] has unknown entries \['num_state'\]"),
        (lambda text: text.replace('simulator = "switching_lorenz"', 'simulator = "lorenz96"'), r"\[data\] simulator must be one of"),
        (lambda text: text.replace("seeds = [0]\n", ""), r"\[sweep\] seeds is missing"),
    ],
)
def test_cli_sweep_reports_a_bad_sweep_file_in_one_line(edit, match, tmp_path, capsys):
    config = tmp_path / "sweep.toml"
    config.write_text(edit(SWEEP_FILE.format(init="kmeans")))
    assert main(["sweep", str(config)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("neurodyn sweep: ") and len(error.strip().splitlines()) == 1
    assert re.search(match, error)
    assert not (tmp_path / "sweep").exists()
