"""Shared test helpers."""

from pathlib import Path

import pyro
import pytest
import torch

_SHARED_DATA_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "shared" / "data",  # CI: ../shared next to the checkout
    Path("/work/shared/data"),  # the development machines
)


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
