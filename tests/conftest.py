"""Shared test helpers."""

import os
from pathlib import Path

import pyro
import pytest
import torch

_SHARED_DATA_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "shared" / "data",  # CI: ../shared next to the checkout
    Path("/work/shared/data"),  # the development machines
)


def pytest_configure(config):
    """Under pytest-xdist with several workers (one process per core), each worker and the subprocesses it starts
    (tutorials, the CLI) use one thread: two processes of two threads each on two cores slow small calls 10-50x."""
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


# The files with the longest fits, started first so that no process is left with one of them at the end
# (the CI log's "slowest durations"; under xdist each file runs in one process).
LONGEST_FIRST = ("test_srnn_quality.py", "test_tutorials.py", "test_sessions.py", "test_fit_resume.py", "test_lowrank_poisson_recovery.py")


def pytest_collection_modifyitems(items):
    """Run the files of :data:`LONGEST_FIRST` first (in that order), the rest in their usual order."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture
def shared_data_path():
    """``shared_data_path(name)`` -> the path of reference file ``name``; skips the test when it is absent."""

    def locate(name: str) -> Path:
        for folder in _SHARED_DATA_CANDIDATES:
            if (folder / name).is_file():
                return folder / name
        pytest.skip(f"reference data {name} not found (looked in {', '.join(str(f) for f in _SHARED_DATA_CANDIDATES)})")

    return locate


@pytest.fixture(scope="module")
def one_thread():
    """Small models: one torch thread for the module (two threads slow small calls 10-50x when other jobs hold
    the cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def one_thread_fresh_param_store():
    """One torch thread and an empty Pyro param store for the test (fits whose numbers were measured so)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()
    torch.set_num_threads(threads)
